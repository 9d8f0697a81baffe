package testenv

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// The kernel keeps one neighbour table per protocol (ARP for IPv4, NDISC for
// IPv6) for the whole machine: the entries of every network namespace count
// against the same limits, gc_thresh1/2/3. Those limits are visible and
// writable only in the initial network namespace's /proc/sys (this kernel
// hides them in other namespaces), so they are read and written there, by the
// process that brings the lab up. Past gc_thresh3 the kernel refuses new
// entries ("neighbor table overflow") and hosts become unreachable: with the
// defaults (128/512/1024) that happens at about 500 ns-tier hosts, because
// every host adds two ARP entries (the hub's for the host, the host's for
// the hub) and, when its interfaces come up, about ten IPv6 multicast
// entries (see neighPerHost).
//
// Each lab raises the limits for its life by what it may add, and the
// registry keeps one book for the machine (neighBookPath): the values found
// before the first lab raised them, the values written, and the labs that
// count on them. Only when the last of those labs is released are the old
// values put back, and only where nobody changed them since.

// neighSysctls are the limits a lab raises, relative to /proc/sys.
var neighSysctls = []string{
	"net/ipv4/neigh/default/gc_thresh1",
	"net/ipv4/neigh/default/gc_thresh2",
	"net/ipv4/neigh/default/gc_thresh3",
	"net/ipv6/neigh/default/gc_thresh1",
	"net/ipv6/neigh/default/gc_thresh2",
	"net/ipv6/neigh/default/gc_thresh3",
}

// neighPerHost is how many entries of a table one ns-tier host may add, with
// room to spare over what was measured with the lab up (runbench scale,
// 240-250 hosts: about 500 ARP entries on the machine, so 2 a host; with the
// limits raised, 4,300 to 4,700 NDISC entries, so up to 19 a host: multicast
// entries for router solicitations, MLD reports and duplicate address
// detection on the six veth ends of each host, which age out).
func neighPerHost(sysctl string) int {
	if strings.Contains(sysctl, "/ipv6/") {
		return 24
	}
	return 4
}

// neighBookPath is the machine's record of raised limits, in the registry.
func neighBookPath() string { return filepath.Join(registryDir, "neigh.json") }

// neighBook is the machine-wide bookkeeping of raised neighbour limits.
type neighBook struct {
	Orig map[string]int `json:"orig"` // values before the first of Labs raised them
	Set  map[string]int `json:"set"`  // values the labs last wrote
	Labs map[string]int `json:"labs"` // lab ID -> its number of hosts
}

// NeighRaise is a lab's own record of what it did to the limits: the values
// it found and the ones it wrote (a limit already high enough is not written).
type NeighRaise struct {
	Hosts int            `json:"hosts"`
	Prev  map[string]int `json:"prev"`
	Set   map[string]int `json:"set,omitempty"`
}

// prune drops labs that are no longer registered.
func (b *neighBook) prune(live func(id string) bool) {
	for id := range b.Labs {
		if !live(id) {
			delete(b.Labs, id)
		}
	}
}

// add counts lab id (of hosts hosts) in and returns the limits to write:
// each is its original value plus what all the book's labs may add, written
// only where the current value (cur) is lower. Labs that are no longer live
// are dropped first; if none is left, values they raised and nobody changed
// since count as the originals again.
func (b *neighBook) add(id string, hosts int, cur map[string]int, live func(string) bool) map[string]int {
	b.prune(live)
	writes := map[string]int{}
	eff := maps.Clone(cur) // the values as they stand once dead labs are undone
	if len(b.Labs) == 0 {
		orig := map[string]int{}
		for p, v := range cur {
			if set, ok := b.Set[p]; ok && set == v {
				if o, ok := b.Orig[p]; ok {
					// Still what dead labs wrote: the original stands, and
					// is what this lab's raise adds to.
					orig[p], eff[p], writes[p] = o, o, o
					continue
				}
			}
			orig[p] = v
		}
		b.Orig, b.Set, b.Labs = orig, map[string]int{}, map[string]int{}
	}
	if b.Set == nil {
		b.Set = map[string]int{}
	}
	b.Labs[id] = hosts
	total := 0
	for _, n := range b.Labs {
		total += n
	}
	for _, p := range neighSysctls {
		o, ok := b.Orig[p]
		if !ok {
			continue // not on this machine (no IPv6)
		}
		want := o + neighPerHost(p)*total
		if c, ok := eff[p]; ok && c < want {
			writes[p] = want
			b.Set[p] = want
		}
	}
	return writes
}

// remove counts lab id out (and labs no longer live). When no lab is left it
// returns the original values to write back, for every limit that still has
// the value a lab wrote; limits changed since by someone else are left alone
// and named in skipped. The book is then empty.
func (b *neighBook) remove(id string, cur map[string]int, live func(string) bool) (writes map[string]int, skipped []string) {
	delete(b.Labs, id)
	b.prune(live)
	if len(b.Labs) > 0 {
		return nil, nil
	}
	writes = map[string]int{}
	for p, v := range b.Set {
		o, ok := b.Orig[p]
		if !ok {
			continue
		}
		if c, ok := cur[p]; ok && c == v {
			writes[p] = o
		} else if ok {
			skipped = append(skipped, fmt.Sprintf("%s (now %d, the lab set %d)", sysctlName(p), c, v))
		}
	}
	sort.Strings(skipped)
	b.Orig, b.Set, b.Labs = nil, nil, nil
	return writes, skipped
}

func (b *neighBook) empty() bool { return len(b.Labs) == 0 && len(b.Set) == 0 }

// sysctlName turns "net/ipv4/neigh/default/gc_thresh3" into the dotted name.
func sysctlName(p string) string { return strings.ReplaceAll(p, "/", ".") }

const procSys = "/proc/sys"

func readNeighLimits() map[string]int {
	cur := map[string]int{}
	for _, p := range neighSysctls {
		b, err := os.ReadFile(filepath.Join(procSys, p))
		if err != nil {
			continue
		}
		if v, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && v >= 0 {
			cur[p] = v
		}
	}
	return cur
}

func writeNeighLimits(writes map[string]int) error {
	var errs []error
	// The order matters to nobody (the kernel does not check thresh1 <= thresh2
	// <= thresh3), but a fixed one makes logs comparable.
	for _, p := range neighSysctls {
		v, ok := writes[p]
		if !ok {
			continue
		}
		if err := os.WriteFile(filepath.Join(procSys, p), []byte(strconv.Itoa(v)+"\n"), 0o644); err != nil {
			errs = append(errs, fmt.Errorf("set %s = %d: %w", sysctlName(p), v, err))
		}
	}
	return joinErrs(errs)
}

func loadNeighBook() (*neighBook, error) {
	b, err := os.ReadFile(neighBookPath())
	if errors.Is(err, os.ErrNotExist) {
		return &neighBook{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", neighBookPath(), err)
	}
	var nb neighBook
	if err := json.Unmarshal(b, &nb); err != nil {
		return nil, fmt.Errorf("decode %s: %w (it records the neighbour table limits labs raised; with no lab up, put back the values it names and remove it)", neighBookPath(), err)
	}
	return &nb, nil
}

func (b *neighBook) save() error {
	if b.empty() {
		if err := os.Remove(neighBookPath()); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
		return nil
	}
	data, err := json.MarshalIndent(b, "", "  ")
	if err != nil {
		return err
	}
	return writeFile(neighBookPath(), append(data, '\n'), 0o644)
}

// registeredLab reports whether a lab of that ID has a registry record.
// Called with the registry locked.
func registeredLab() func(string) bool {
	slots, err := readSlots()
	ids := map[string]bool{}
	for _, r := range slots {
		ids[r.ID] = true
	}
	return func(id string) bool {
		if err != nil {
			return true // cannot tell: keep it counted
		}
		return ids[id]
	}
}

// raiseNeighLimits counts st's hosts into the machine's neighbour limits and
// raises them, recording what it found and wrote in st (saved by the caller).
func raiseNeighLimits(ctx context.Context, st *State, logf func(string, ...any)) error {
	unlock, err := lockRegistry(ctx)
	if err != nil {
		return err
	}
	defer unlock()
	book, err := loadNeighBook()
	if err != nil {
		return err
	}
	cur := readNeighLimits()
	if _, ok := cur["net/ipv4/neigh/default/gc_thresh3"]; !ok {
		logf("cannot read net.ipv4.neigh.default.gc_thresh3 (not in the initial network namespace?): the neighbour limits stay as they are")
	}
	writes := book.add(st.ID, len(st.Hosts), cur, registeredLab())
	// The book first: if the writes below half fail, the next lab or Down
	// still knows the originals.
	if err := book.save(); err != nil {
		return fmt.Errorf("record neighbour limits: %w", err)
	}
	st.Neigh = &NeighRaise{Hosts: len(st.Hosts), Prev: cur, Set: writes}
	if err := st.save(); err != nil {
		return err
	}
	if err := writeNeighLimits(writes); err != nil {
		return fmt.Errorf("raise the neighbour table limits for %d hosts: %w", len(st.Hosts), err)
	}
	if len(writes) > 0 {
		var parts []string
		for _, p := range neighSysctls {
			if v, ok := writes[p]; ok {
				parts = append(parts, fmt.Sprintf("%s %d->%d", sysctlName(p), cur[p], v))
			}
		}
		logf("neighbour table limits raised for %d hosts: %s", len(st.Hosts), strings.Join(parts, ", "))
	}
	return nil
}

// releaseNeighLimits counts st out of the machine's neighbour limits and, if
// it was the last lab counted, puts the original values back. Called with the
// registry locked, after st's registry record is gone.
func releaseNeighLimits(st *State, logf func(string, ...any)) error {
	book, err := loadNeighBook()
	if err != nil {
		return err
	}
	if book.empty() {
		return nil
	}
	writes, skipped := book.remove(st.ID, readNeighLimits(), registeredLab())
	if err := writeNeighLimits(writes); err != nil {
		return fmt.Errorf("restore the neighbour table limits: %w", err)
	}
	if len(skipped) > 0 {
		logf("neighbour table limits changed by someone else since the labs raised them, left as they are: %s", strings.Join(skipped, ", "))
	}
	if len(writes) > 0 {
		logf("neighbour table limits restored (%d values)", len(writes))
	}
	return book.save()
}
