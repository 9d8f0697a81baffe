package testenv

import (
	"context"
	"fmt"
	"net/netip"
	"path/filepath"
	"strconv"
)

// Data NIC names inside every host: named like a real dual-port card.
var dataNICs = []string{"ens1f0", "ens1f1"}

// mgmtNIC is the host's interface on the lab bridge.
const mgmtNIC = "eth0"

// hostOffset is where host addresses start in a segment (.1 is the hub).
const hostOffset = 10

// MaxHostsPerSegment is how many hosts one /24 segment holds: .1 is the hub,
// .2-.10 are left free, hosts start at .11 and the broadcast address is last.
const MaxHostsPerSegment = 256 - hostOffset - 2

// MaxHosts bounds a lab's size: 16 segments (a /20 of the pool).
const MaxHosts = 16 * MaxHostsPerSegment

// Segment is one /24 (or, for a lab given a smaller subnet, that subnet) of a
// lab's management network: a bridge of its own in the hub namespace, where
// the hub has the segment's first address, and up to MaxHostsPerSegment hosts
// whose default route leads to it. Hosts of different segments meet only at
// the hub, which is all the lab needs (the controller comes in through it).
type Segment struct {
	Subnet string `json:"subnet"`
	HubIP  string `json:"hub_ip"`
	Bridge string `json:"bridge"`
}

// segmentsNeeded is how many segments n hosts take at per hosts a segment.
func segmentsNeeded(n, per int) int { return (n + per - 1) / per }

// blockBits is the prefix length of the aligned block of /24s a lab of n
// hosts takes from the pool: one /24 up to per hosts, else the smallest
// power-of-two run of /24s that holds its segments (/23, /22, ...), so the
// whole lab is one prefix: one guard route, one registry record, one overlap
// check.
func blockBits(n, per int) int {
	m := segmentsNeeded(n, per)
	bits := 24
	for size := 1; size < m; size *= 2 {
		bits--
	}
	return bits
}

// hostsPerSegment validates Options.HostsPerSegment (0: the most a /24 holds).
func hostsPerSegment(per int) (int, error) {
	if per == 0 {
		return MaxHostsPerSegment, nil
	}
	if per < 1 || per > MaxHostsPerSegment {
		return 0, fmt.Errorf("hosts per segment: %d, want 1 to %d", per, MaxHostsPerSegment)
	}
	return per, nil
}

// planSegments splits the lab's subnet into the segments n hosts need: its
// /24s for a subnet of /23 or wider, else the subnet itself as one segment.
func planSegments(subnet netip.Prefix, prefix string, n, per int) ([]Segment, error) {
	subnet = subnet.Masked()
	var nets []netip.Prefix
	if subnet.Bits() < 24 {
		for k := 0; k < 1<<(24-subnet.Bits()); k++ {
			nets = append(nets, nthSubnet(subnet, k))
		}
	} else {
		nets = []netip.Prefix{subnet}
		if room := (1 << (32 - subnet.Bits())) - hostOffset - 2; room < per {
			per = room
		}
	}
	if per < 1 {
		return nil, fmt.Errorf("lab subnet %s is too small for any host", subnet)
	}
	m := segmentsNeeded(n, per)
	if m > len(nets) {
		return nil, fmt.Errorf("lab subnet %s holds at most %d hosts (%d segment(s) of %d), %d asked", subnet, len(nets)*per, len(nets), per, n)
	}
	segs := make([]Segment, m)
	for s := range segs {
		br := prefix + "br"
		if s > 0 {
			br += strconv.Itoa(s)
		}
		segs[s] = Segment{Subnet: nets[s].String(), HubIP: nthAddr(nets[s], 1).String(), Bridge: br}
	}
	return segs, nil
}

// hostName is the name of the i-th host (from 1) of a lab of n: lab01 ..,
// with as many digits as n needs (at least two), so names sort in order.
func hostName(i, n int) string {
	width := len(strconv.Itoa(n))
	if width < 2 {
		width = 2
	}
	return fmt.Sprintf("lab%0*d", width, i)
}

// planNetwork fills in names and addresses for st's hosts, per hosts to a
// segment. Every name carries the lab's prefix; interfaces live only inside
// the lab's namespaces.
func planNetwork(st *State, n, per int) error {
	p, err := netip.ParsePrefix(st.Subnet)
	if err != nil {
		return fmt.Errorf("lab subnet: %w", err)
	}
	per, err = hostsPerSegment(per)
	if err != nil {
		return err
	}
	segs, err := planSegments(p, st.Prefix, n, per)
	if err != nil {
		return err
	}
	if p.Bits() >= 24 {
		// A small subnet's one segment may hold fewer than per.
		per = (n + len(segs) - 1) / len(segs)
	}
	st.Segments = segs
	st.HubIP = segs[0].HubIP
	st.HubNS = st.Prefix + "-hub"
	st.SwitchNS = st.Prefix + "-sw"
	st.Bridge = segs[0].Bridge
	st.Namespaces = []string{st.HubNS, st.SwitchNS}
	for i := 1; i <= n; i++ {
		s := (i - 1) / per
		seg := netip.MustParsePrefix(segs[s].Subnet)
		name := hostName(i, n)
		h := &HostState{
			Name:      name,
			Index:     i,
			NetNS:     st.Prefix + "-" + name,
			MgmtIP:    nthAddr(seg, hostOffset+1+(i-1)%per).String(),
			Segment:   s,
			Gateway:   segs[s].HubIP,
			PrefixLen: seg.Bits(),
			HubIf:     fmt.Sprintf("%sm%d", st.Prefix, i),
			SwIfs:     []string{fmt.Sprintf("%sd%da", st.Prefix, i), fmt.Sprintf("%sd%db", st.Prefix, i)},
			DataIfs:   dataNICs,
		}
		st.Hosts = append(st.Hosts, h)
		st.Namespaces = append(st.Namespaces, h.NetNS)
	}
	return nil
}

func netnsPath(name string) string { return filepath.Join("/run/netns", name) }

// fabricBridges are the switch's two bridges (one per data NIC) of segment s:
// each segment has its own, like its own bridge in the hub, because a Linux
// bridge takes at most 1,023 ports. Hosts reach each other over their data
// NICs within a segment.
func fabricBridges(prefix string, s int) []string {
	if s == 0 {
		return []string{prefix + "f0", prefix + "f1"}
	}
	return []string{fmt.Sprintf("%ss%df0", prefix, s), fmt.Sprintf("%ss%df1", prefix, s)}
}

// setupNetwork builds the lab network: the unreachable guard route first, then
// hub (a bridge per segment), switch (two fabrics per segment) and one
// namespace per host.
func setupNetwork(ctx context.Context, st *State) error {
	// The guard goes in before any lab address exists anywhere, so no lab
	// address can be routed out of the machine even for a moment.
	st.Route = st.Subnet
	if err := st.save(); err != nil {
		return err
	}
	if _, err := runCmd(ctx, "", "ip", "route", "add", "unreachable", st.Subnet); err != nil {
		return fmt.Errorf("add guard route: %w", err)
	}

	var lines []string
	for _, ns := range st.Namespaces {
		lines = append(lines, "netns add "+ns)
	}
	if err := ipBatch(ctx, "", false, lines); err != nil {
		return fmt.Errorf("create namespaces: %w", err)
	}

	hub := []string{"link set lo up"}
	for _, seg := range st.segments() {
		hub = append(hub,
			"link add name "+seg.Bridge+" type bridge",
			fmt.Sprintf("addr add %s/%d dev %s", seg.HubIP, netip.MustParsePrefix(seg.Subnet).Bits(), seg.Bridge),
			"link set "+seg.Bridge+" up")
	}
	sw := []string{"link set lo up"}
	for s := range st.segments() {
		for _, f := range fabricBridges(st.Prefix, s) {
			sw = append(sw, "link add name "+f+" type bridge", "link set "+f+" up")
		}
	}
	for _, h := range st.Hosts {
		hub = append(hub,
			fmt.Sprintf("link add name %s type veth peer name %s netns %s", h.HubIf, mgmtNIC, h.NetNS),
			fmt.Sprintf("link set %s master %s", h.HubIf, st.segmentOf(h).Bridge),
			"link set "+h.HubIf+" up")
		for j, nic := range h.DataIfs {
			sw = append(sw,
				fmt.Sprintf("link add name %s type veth peer name %s netns %s", h.SwIfs[j], nic, h.NetNS),
				fmt.Sprintf("link set %s master %s", h.SwIfs[j], fabricBridges(st.Prefix, h.Segment)[j]),
				"link set "+h.SwIfs[j]+" up")
		}
	}
	if err := ipBatch(ctx, st.HubNS, false, hub); err != nil {
		return fmt.Errorf("build hub: %w", err)
	}
	if err := ipBatch(ctx, st.SwitchNS, false, sw); err != nil {
		return fmt.Errorf("build switch: %w", err)
	}
	// Each host: lo, eth0 with its address, the data NICs up, and a default
	// route like a real server has; it leads to the hub, which has no way
	// out, so nothing leaves the lab.
	for _, h := range st.Hosts {
		gw, plen := st.hostNet(h)
		ip, err := netip.ParseAddr(h.MgmtIP)
		if err != nil {
			return fmt.Errorf("configure %s: %w", h.Name, err)
		}
		gwa, err := netip.ParseAddr(gw)
		if err != nil {
			return fmt.Errorf("configure %s: %w", h.Name, err)
		}
		if err := configureHostNetns(netnsPath(h.NetNS), mgmtNIC, ip, plen, gwa, h.DataIfs); err != nil {
			return fmt.Errorf("configure %s: %w", h.Name, err)
		}
	}
	return nil
}

// removeNamespaces deletes the lab's named namespaces (which removes every
// interface inside them) and the guard route.
func removeNetwork(ctx context.Context, st *State) error {
	var errs []error
	var lines []string
	for _, ns := range st.Namespaces {
		if exists(netnsPath(ns)) {
			lines = append(lines, "netns del "+ns)
		}
	}
	if err := ipBatch(ctx, "", true, lines); err != nil {
		errs = append(errs, fmt.Errorf("delete namespaces: %w", err))
	}
	if st.Route != "" {
		if err := delUnreachable(ctx, st.Route); err != nil {
			errs = append(errs, fmt.Errorf("delete guard route: %w", err))
		}
	}
	return joinErrs(errs)
}

// labNetnsInodes returns the inodes of the lab's namespaces that still exist.
func labNetnsInodes(st *State) map[uint64]bool {
	inos := map[uint64]bool{}
	for _, ns := range st.Namespaces {
		if ino, err := nsInode(netnsPath(ns)); err == nil {
			inos[ino] = true
		}
	}
	return inos
}

// segments returns the lab's segments; a state written before labs had
// segments has one, the whole subnet.
func (s *State) segments() []Segment {
	if len(s.Segments) > 0 {
		return s.Segments
	}
	return []Segment{{Subnet: s.Subnet, HubIP: s.HubIP, Bridge: s.Bridge}}
}

func (s *State) segmentOf(h *HostState) Segment {
	segs := s.segments()
	if h.Segment >= 0 && h.Segment < len(segs) {
		return segs[h.Segment]
	}
	return segs[0]
}

// hostNet is the host's gateway (its segment's hub address) and the prefix
// length of its management address.
func (s *State) hostNet(h *HostState) (gw string, plen int) {
	if h.Gateway != "" && h.PrefixLen > 0 {
		return h.Gateway, h.PrefixLen
	}
	seg := s.segmentOf(h)
	p, err := netip.ParsePrefix(seg.Subnet)
	if err != nil {
		return seg.HubIP, 24
	}
	return seg.HubIP, p.Bits()
}
