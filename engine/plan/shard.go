package plan

import (
	"fmt"
	"hash/fnv"
	"strconv"
	"strings"

	"github.com/runbook/runbook/inventory"
)

// MaxShards bounds the shard count: far more controllers than any fleet needs (at ~10,000
// hosts a controller), and small enough that a typo (a port number, a host count) is
// refused rather than leaving almost every shard empty.
const MaxShards = 10000

// Shard is one part of a fleet run split across controllers (--shard i/n): of the hosts
// the run selects, it keeps those whose ShardOf is Index. Index is 0-based, below Count.
type Shard struct {
	Index int `json:"index"`
	Count int `json:"count"`
}

// ShardOf is the shard, of n, that the host named name belongs to: the 64-bit FNV-1a hash
// of the name's bytes (as the inventory spells it: case and all), modulo n. FNV-1a is
// fixed by its definition (offset basis 14695981039346656037, prime 1099511628211), so
// every controller, machine and Go version puts a host in the same shard; the shard
// depends on the name and n only, not on the inventory's order or its other hosts.
func ShardOf(name string, n int) int {
	if n <= 1 {
		return 0
	}
	h := fnv.New64a()
	h.Write([]byte(name))
	return int(h.Sum64() % uint64(n))
}

// Keeps reports whether the host named name is in the shard. A nil shard keeps every host.
func (s *Shard) Keeps(name string) bool {
	return s == nil || ShardOf(name, s.Count) == s.Index
}

// String is the shard as --shard takes it: "i/n".
func (s Shard) String() string { return fmt.Sprintf("%d/%d", s.Index, s.Count) }

// ParseShard reads "i/n" (--shard): decimal numbers, 0 <= i < n <= MaxShards.
func ParseShard(s string) (Shard, error) {
	is, ns, ok := strings.Cut(s, "/")
	if !ok {
		return Shard{}, fmt.Errorf("%q is not of the form INDEX/COUNT (e.g. 0/4: the first of four shards)", s)
	}
	i, err := ShardNumber("the index", is)
	if err != nil {
		return Shard{}, err
	}
	n, err := ShardNumber("the count", ns)
	if err != nil {
		return Shard{}, err
	}
	sh := Shard{Index: i, Count: n}
	return sh, sh.Check()
}

// ShardNumber reads one of a shard's numbers: plain decimal digits, no sign or spaces.
// what names it in the error ("the index", "JOB_COMPLETIONS").
func ShardNumber(what, s string) (int, error) {
	if s == "" {
		return 0, fmt.Errorf("%s is empty", what)
	}
	if len(s) > 9 || strings.Trim(s, "0123456789") != "" {
		return 0, fmt.Errorf("%s is %q, not a whole number from 0 to %d", what, s, MaxShards)
	}
	n, err := strconv.Atoi(s)
	if err != nil {
		return 0, fmt.Errorf("%s is %q: %v", what, s, err)
	}
	return n, nil
}

// Check refuses a shard no run can be: a count below 1 or above MaxShards, an index not
// below the count.
func (s Shard) Check() error {
	switch {
	case s.Count < 1:
		return fmt.Errorf("the shard count must be at least 1, not %d", s.Count)
	case s.Count > MaxShards:
		return fmt.Errorf("the shard count must be at most %d, not %d", MaxShards, s.Count)
	case s.Index < 0 || s.Index >= s.Count:
		return fmt.Errorf("shard index %d is out of range: of %d shards the indexes are 0 to %d (0-based)", s.Index, s.Count, s.Count-1)
	}
	return nil
}

// Filter keeps the hosts of hosts that are in the shard, in their order. A nil shard keeps
// them all.
func (s *Shard) Filter(hosts []*inventory.Host) []*inventory.Host {
	if s == nil {
		return hosts
	}
	kept := hosts[:0:0]
	for _, h := range hosts {
		if s.Keeps(h.Name) {
			kept = append(kept, h)
		}
	}
	return kept
}

// Apply narrows every play of pl to the shard's hosts. The shard is a function of the host
// name alone, so every play keeps the same subset of the hosts it selected: a host is in
// this shard for the whole run or not at all. pl may be nil.
func (s *Shard) Apply(pl *Plan) {
	if s == nil || pl == nil {
		return
	}
	for _, p := range pl.Plays {
		p.Hosts = s.Filter(p.Hosts)
	}
}
