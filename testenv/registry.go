package testenv

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// registryDir holds one record per live lab on this machine. Labs allocate
// their slot (which fixes their name prefix and default subnet) under a file
// lock here, so labs started in parallel by `go test ./...` never clash.
const registryDir = "/run/runbook-lab"

// DefaultPool is where lab subnets come from unless Options.Pool or
// $RUNBOOK_LAB_POOL says otherwise: slot k gets the k-th /24.
const DefaultPool = "10.201.0.0/16"

// maxSlots bounds the slot number so prefixes stay short enough for 15-byte
// interface names ("rbl1023d240a").
const maxSlots = 1024

type slotRecord struct {
	Dir    string `json:"dir"`
	ID     string `json:"id"`
	Subnet string `json:"subnet"`
}

func slotPath(k int) string { return filepath.Join(registryDir, fmt.Sprintf("slot-%d.json", k)) }

// lockFile takes an exclusive flock on path, polling so ctx bounds the wait.
func lockFile(ctx context.Context, path string) (func(), error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	for {
		err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
		if err == nil {
			return func() { _ = unix.Flock(int(f.Fd()), unix.LOCK_UN); f.Close() }, nil
		}
		if !errors.Is(err, unix.EWOULDBLOCK) {
			f.Close()
			return nil, fmt.Errorf("lock %s: %w", path, err)
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, fmt.Errorf("lock %s: %w", path, ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func lockRegistry(ctx context.Context) (func(), error) {
	return lockFile(ctx, filepath.Join(registryDir, "registry.lock"))
}

// readSlots returns the records of all registered labs by slot number.
func readSlots() (map[int]slotRecord, error) {
	ents, err := os.ReadDir(registryDir)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("read lab registry: %w", err)
	}
	out := map[int]slotRecord{}
	for _, e := range ents {
		n, ok := strings.CutPrefix(e.Name(), "slot-")
		if !ok {
			continue
		}
		n, ok = strings.CutSuffix(n, ".json")
		k, err := strconv.Atoi(n)
		if !ok || err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join(registryDir, e.Name()))
		if err != nil {
			continue
		}
		var r slotRecord
		if json.Unmarshal(b, &r) == nil {
			out[k] = r
		}
	}
	return out, nil
}

// reclaimStale removes registry records whose lab is gone or orphaned, tearing
// down whatever the dead lab left behind. Called with the registry locked.
func reclaimStale(ctx context.Context, slots map[int]slotRecord, logf func(string, ...any)) {
	for k, r := range slots {
		st, err := loadState(r.Dir)
		switch {
		case err == nil && st.ID == r.ID && st.Owner.Alive():
			continue // live lab
		case err == nil && st.ID == r.ID:
			logf("reclaiming orphaned lab %s (slot %d, owner pid %d gone)", r.Dir, k, st.Owner.PID)
			if err := teardown(ctx, st, logf); err != nil {
				logf("reclaim %s: %v", r.Dir, err)
				continue // keep the record: its names and subnet are still in use
			}
			removeLabFiles(r.Dir)
		default:
			// The record outlived its state file (lab dir removed by hand or by a
			// test's TempDir cleanup after a crash): sweep by the slot's names.
			logf("sweeping slot %d: lab dir %s has no matching state", k, r.Dir)
			if err := sweepSlot(ctx, k, r.Subnet); err != nil {
				logf("sweep slot %d: %v", k, err)
				continue
			}
		}
		_ = os.Remove(slotPath(k))
		delete(slots, k)
	}
}

// allocate picks a slot and subnet for st, records them in the registry and
// saves st, all under the registry lock. Without a subnet given, the lab
// takes the aligned block of the pool's /24s of prefix length bits (24: one
// /24) at its slot: slot k is the k-th /24, and a lab of 2^j /24s starts at a
// slot that is a multiple of 2^j. Its one registry record (with the whole
// block as its subnet) keeps other labs off every /24 of the block, because
// their subnets would overlap it; the names rbl<k+1>.. of the slots it covers
// are never used.
func allocate(ctx context.Context, st *State, subnet, pool string, bits int, logf func(string, ...any)) error {
	unlock, err := lockRegistry(ctx)
	if err != nil {
		return err
	}
	defer unlock()
	slots, err := readSlots()
	if err != nil {
		return err
	}
	reclaimStale(ctx, slots, logf)

	var busy []netip.Prefix
	for _, r := range slots {
		if p, err := netip.ParsePrefix(r.Subnet); err == nil {
			busy = append(busy, p)
		}
	}
	routes, err := rootRoutes(ctx)
	if err != nil {
		return err
	}
	// The machine's own networks (and other labs' unreachable routes) are off limits.
	busy = append(busy, routes...)
	overlaps := func(p netip.Prefix) bool {
		for _, b := range busy {
			if b.Overlaps(p) {
				return true
			}
		}
		return false
	}

	var want netip.Prefix
	if subnet != "" {
		want, err = checkSubnet(subnet)
		if err != nil {
			return err
		}
		if overlaps(want) {
			return fmt.Errorf("lab subnet %s overlaps another lab or a route of this machine", want)
		}
	}
	poolP, err := checkPool(pool)
	if err != nil {
		return err
	}
	if bits < poolP.Bits() {
		return fmt.Errorf("a lab of %d /24s does not fit in the pool %s", 1<<(24-bits), poolP)
	}
	for _, k := range candidateSlots(poolP, bits) {
		if _, used := slots[k]; used {
			continue
		}
		p := want
		if subnet == "" {
			p = slotBlock(poolP, k, bits)
			if overlaps(p) {
				continue
			}
		}
		st.Slot, st.Prefix, st.Subnet = k, fmt.Sprintf("rbl%d", k), p.String()
		rec, _ := json.Marshal(slotRecord{Dir: st.Dir, ID: st.ID, Subnet: st.Subnet})
		if err := writeFile(slotPath(k), rec, 0o644); err != nil {
			return fmt.Errorf("register lab: %w", err)
		}
		// Saving the state while still locked means nobody can take this lab
		// for stale between registration and the first resource.
		if err := st.save(); err != nil {
			_ = os.Remove(slotPath(k))
			return err
		}
		return nil
	}
	if bits < 24 {
		return fmt.Errorf("no free run of %d /24s (a /%d) in pool %s (%d labs up)", 1<<(24-bits), bits, poolP, len(slots))
	}
	return fmt.Errorf("no free lab slot in pool %s (%d labs up)", poolP, len(slots))
}

// release drops st's registry record and, if st was the last lab that raised
// the inotify limit or the neighbour table limits, restores them.
func release(ctx context.Context, st *State, logf func(string, ...any)) error {
	unlock, err := lockRegistry(ctx)
	if err != nil {
		return err
	}
	defer unlock()
	return releaseLocked(st, logf)
}

func releaseLocked(st *State, logf func(string, ...any)) error {
	b, err := os.ReadFile(slotPath(st.Slot))
	if err == nil {
		var r slotRecord
		if json.Unmarshal(b, &r) == nil && r.ID == st.ID {
			if err := os.Remove(slotPath(st.Slot)); err != nil {
				return fmt.Errorf("unregister lab: %w", err)
			}
		}
	}
	slots, err := readSlots()
	if err == nil && len(slots) == 0 {
		restoreInotify()
	}
	return releaseNeighLimits(st, logf)
}

func checkSubnet(s string) (netip.Prefix, error) {
	p, err := netip.ParsePrefix(s)
	if err != nil {
		return p, fmt.Errorf("lab subnet: %w", err)
	}
	p = p.Masked()
	// Lab addresses must be private IPv4 so that, even misrouted, they could not
	// reach anyone else's network.
	if !p.Addr().Is4() || !p.Addr().IsPrivate() || p.Bits() < 16 || p.Bits() > 28 {
		return p, fmt.Errorf("lab subnet %s: want a private IPv4 prefix between /16 and /28", s)
	}
	return p, nil
}

func checkPool(s string) (netip.Prefix, error) {
	if s == "" {
		s = os.Getenv("RUNBOOK_LAB_POOL")
	}
	if s == "" {
		s = DefaultPool
	}
	p, err := netip.ParsePrefix(s)
	if err != nil {
		return p, fmt.Errorf("lab pool: %w", err)
	}
	p = p.Masked()
	if !p.Addr().Is4() || !p.Addr().IsPrivate() || p.Bits() > 24 || p.Bits() < 8 {
		return p, fmt.Errorf("lab pool %s: want a private IPv4 prefix between /8 and /24", s)
	}
	return p, nil
}

// candidateSlots lists, in order, the slots where a block of prefix length
// bits may start in pool: multiples of the block's size in /24s, bounded by
// the pool and by maxSlots.
func candidateSlots(pool netip.Prefix, bits int) []int {
	nslots := 1 << (24 - pool.Bits())
	if nslots > maxSlots {
		nslots = maxSlots
	}
	step := 1 << (24 - bits)
	var out []int
	for k := 0; k+step <= nslots; k += step {
		out = append(out, k)
	}
	return out
}

// slotBlock is the block of prefix length bits that starts at slot k's /24.
func slotBlock(pool netip.Prefix, k, bits int) netip.Prefix {
	return netip.PrefixFrom(nthSubnet(pool, k).Addr(), bits)
}

// nthSubnet returns the k-th /24 of pool.
func nthSubnet(pool netip.Prefix, k int) netip.Prefix {
	a := pool.Addr().As4()
	v := uint32(a[0])<<24 | uint32(a[1])<<16 | uint32(a[2])<<8 | uint32(a[3])
	v += uint32(k) << 8
	return netip.PrefixFrom(netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), 0}), 24)
}

// nthAddr returns the address at offset n inside p.
func nthAddr(p netip.Prefix, n int) netip.Addr {
	a := p.Masked().Addr().As4()
	v := uint32(a[0])<<24 | uint32(a[1])<<16 | uint32(a[2])<<8 | uint32(a[3])
	v += uint32(n)
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
}

// rootRoutes lists the IPv4 destinations of all routes (every table) of the
// root namespace, default routes excluded.
func rootRoutes(ctx context.Context) ([]netip.Prefix, error) {
	out, err := runCmd(ctx, "", "ip", "-j", "-4", "route", "show", "table", "all")
	if err != nil {
		return nil, fmt.Errorf("list routes: %w", err)
	}
	var rs []struct {
		Dst string `json:"dst"`
	}
	if err := json.Unmarshal(out, &rs); err != nil {
		return nil, fmt.Errorf("parse routes: %w", err)
	}
	var ps []netip.Prefix
	for _, r := range rs {
		if r.Dst == "" || r.Dst == "default" {
			continue
		}
		if !strings.Contains(r.Dst, "/") {
			r.Dst += "/32"
		}
		if p, err := netip.ParsePrefix(r.Dst); err == nil {
			ps = append(ps, p)
		}
	}
	return ps, nil
}

// sweepSlot removes what a lab in slot k may have left when its state file is
// lost: namespaces and cgroups named with the slot's prefix (and the processes
// inside them) and the unreachable route of its subnet.
func sweepSlot(ctx context.Context, k int, subnet string) error {
	prefix := fmt.Sprintf("rbl%d-", k)
	var errs []error
	ents, _ := os.ReadDir("/run/netns")
	inos := map[uint64]bool{}
	var names []string
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), prefix) {
			names = append(names, e.Name())
			if ino, err := nsInode(filepath.Join("/run/netns", e.Name())); err == nil {
				inos[ino] = true
			}
		}
	}
	var cgs []string
	for _, root := range cgroupRoots() {
		ents, _ := os.ReadDir(root)
		for _, e := range ents {
			if e.IsDir() && strings.HasPrefix(e.Name(), prefix) {
				cgs = append(cgs, filepath.Join(root, e.Name()))
			}
		}
	}
	procs := append(procsInNetns(inos), procsInCgroups(cgs)...)
	if err := stopProcs(ctx, procs, syscall.SIGKILL, 5*time.Second); err != nil {
		errs = append(errs, err)
	}
	for _, cg := range cgs {
		if err := removeCgroup(ctx, cg); err != nil {
			errs = append(errs, err)
		}
	}
	var lines []string
	for _, n := range names {
		lines = append(lines, "netns del "+n)
	}
	if err := ipBatch(ctx, "", true, lines); err != nil {
		errs = append(errs, err)
	}
	if subnet != "" {
		if err := delUnreachable(ctx, subnet); err != nil {
			errs = append(errs, err)
		}
	}
	return joinErrs(errs)
}

// delUnreachable removes the lab's unreachable route; a missing route is fine.
func delUnreachable(ctx context.Context, subnet string) error {
	out, err := runCmd(ctx, "", "ip", "-4", "route", "show", "type", "unreachable", subnet)
	if err != nil {
		return err
	}
	if strings.TrimSpace(string(out)) == "" {
		return nil
	}
	_, err = runCmd(ctx, "", "ip", "route", "del", "unreachable", subnet)
	return err
}

const inotifyPath = "/proc/sys/fs/inotify/max_user_instances"

// raiseInotify makes room for many systemd containers (each systemd and
// journald takes inotify instances; the default 128 is spent by ~15
// containers). The original value is kept in the registry and restored when
// the last lab is released.
func raiseInotify(want int) (bool, error) {
	b, err := os.ReadFile(inotifyPath)
	if err != nil {
		return false, fmt.Errorf("read inotify limit: %w", err)
	}
	cur, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	if cur >= want {
		return false, nil
	}
	orig := filepath.Join(registryDir, "inotify.orig")
	if _, err := os.Stat(orig); errors.Is(err, os.ErrNotExist) {
		if err := os.WriteFile(orig, []byte(strconv.Itoa(cur)), 0o644); err != nil {
			return false, fmt.Errorf("record inotify limit: %w", err)
		}
	}
	if err := os.WriteFile(inotifyPath, []byte(strconv.Itoa(want)), 0o644); err != nil {
		return false, fmt.Errorf("raise inotify limit: %w", err)
	}
	return true, nil
}

func restoreInotify() {
	orig := filepath.Join(registryDir, "inotify.orig")
	b, err := os.ReadFile(orig)
	if err != nil {
		return
	}
	if os.WriteFile(inotifyPath, b, 0o644) == nil {
		_ = os.Remove(orig)
	}
}
