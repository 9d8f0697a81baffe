package plan

import (
	"fmt"
	"strings"
	"testing"

	"github.com/runbook/runbook/inventory"
)

// Every host is in exactly one shard, for every count, and the shards are not lopsided.
func TestShardPartition(t *testing.T) {
	names := make([]string, 1000)
	for i := range names {
		names[i] = fmt.Sprintf("host%04d.dc%d.example.net", i, i%3)
	}
	for n := 1; n <= 8; n++ {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			count := map[string]int{}
			sizes := make([]int, n)
			for i := 0; i < n; i++ {
				s := &Shard{Index: i, Count: n}
				for _, name := range names {
					if s.Keeps(name) {
						count[name]++
						sizes[i]++
					}
				}
			}
			for _, name := range names {
				if count[name] != 1 {
					t.Errorf("%s is in %d of %d shards, want exactly 1", name, count[name], n)
				}
			}
			// 1000 names: each shard within 40% of the even share (a broken hash that
			// put everything in one shard fails this).
			even := len(names) / n
			for i, got := range sizes {
				if got < even*6/10 || got > even*14/10 {
					t.Errorf("shard %d/%d holds %d hosts, the even share is %d", i, n, got, even)
				}
			}
		})
	}
}

// The shard of a name is pinned: a change of hash would move hosts between the
// controllers of a running fleet, and must be seen.
func TestShardOfPinned(t *testing.T) {
	for _, c := range []struct {
		name    string
		n, want int
	}{
		{"web01", 4, 2},
		{"web01", 7, 5},
		{"db-eu-1.example.com", 4, 1},
		{"db-eu-1.example.com", 7, 2},
		{"kvm03", 2, 0},
		{"kvm03", 7, 6},
		{"h001", 4, 2},
		{"ünïcode", 4, 3},
		{"", 7, 2}, // the FNV-1a 64 offset basis, 14695981039346656037, mod 7
		{"anything", 1, 0},
	} {
		if got := ShardOf(c.name, c.n); got != c.want {
			t.Errorf("ShardOf(%q, %d) = %d, want %d", c.name, c.n, got, c.want)
		}
	}
	// The published FNV-1a 64 test vector: "a" hashes to 0xaf63dc4c8601ec8c.
	const a = uint64(0xaf63dc4c8601ec8c)
	for _, n := range []int{2, 3, 5, 1000, MaxShards} {
		if got := ShardOf("a", n); got != int(a%uint64(n)) {
			t.Errorf("ShardOf(\"a\", %d) = %d, want %d (FNV-1a 64 of \"a\" mod n)", n, got, a%uint64(n))
		}
	}
}

func TestParseShard(t *testing.T) {
	for _, c := range []struct {
		in   string
		want Shard
		err  string
	}{
		{"0/1", Shard{0, 1}, ""},
		{"3/4", Shard{3, 4}, ""},
		{"0/10000", Shard{0, 10000}, ""},
		{"4/4", Shard{}, "shard index 4 is out of range: of 4 shards the indexes are 0 to 3"},
		{"0/0", Shard{}, "the shard count must be at least 1, not 0"},
		{"0/10001", Shard{}, "at most 10000"},
		{"1", Shard{}, "not of the form INDEX/COUNT"},
		{"", Shard{}, "not of the form INDEX/COUNT"},
		{"a/4", Shard{}, `the index is "a", not a whole number`},
		{"-1/4", Shard{}, `the index is "-1", not a whole number`},
		{"+1/4", Shard{}, `the index is "+1"`},
		{" 1/4", Shard{}, `the index is " 1"`},
		{"1/4 ", Shard{}, `the count is "4 "`},
		{"/4", Shard{}, "the index is empty"},
		{"1/", Shard{}, "the count is empty"},
		{"1/2/3", Shard{}, `the count is "2/3"`},
		{"1/99999999999999999999", Shard{}, "not a whole number"},
	} {
		got, err := ParseShard(c.in)
		if c.err == "" {
			if err != nil || got != c.want {
				t.Errorf("ParseShard(%q) = %v, %v; want %v", c.in, got, err, c.want)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), c.err) {
			t.Errorf("ParseShard(%q): error %v, want one containing %q", c.in, err, c.err)
		}
	}
}

// Apply gives every play the same subset of its hosts.
func TestShardApply(t *testing.T) {
	var all []*inventory.Host
	for i := 0; i < 40; i++ {
		all = append(all, &inventory.Host{Name: fmt.Sprintf("n%02d", i)})
	}
	pl := &Plan{Plays: []*Play{{Hosts: all}, {Hosts: all[10:30]}, {Hosts: nil}}}
	s := &Shard{Index: 1, Count: 3}
	s.Apply(pl)
	in := map[string]bool{}
	for _, h := range pl.Plays[0].Hosts {
		in[h.Name] = true
	}
	if len(in) == 0 || len(in) == len(all) {
		t.Fatalf("shard 1/3 of 40 hosts kept %d", len(in))
	}
	for _, h := range all {
		if in[h.Name] != (ShardOf(h.Name, 3) == 1) {
			t.Errorf("host %s: kept %v, but its shard is %d", h.Name, in[h.Name], ShardOf(h.Name, 3))
		}
	}
	for _, h := range pl.Plays[1].Hosts {
		if !in[h.Name] {
			t.Errorf("play 2 kept %s, which play 1 did not", h.Name)
		}
	}
	for _, h := range all[10:30] {
		if in[h.Name] && !s.Keeps(h.Name) {
			t.Errorf("play 2 lost %s", h.Name)
		}
	}
	if len(pl.Plays[2].Hosts) != 0 {
		t.Errorf("an empty play gained hosts")
	}
	var none *Shard
	none.Apply(pl) // a nil shard keeps everything, and a nil plan is fine
	(&Shard{0, 2}).Apply(nil)
}
