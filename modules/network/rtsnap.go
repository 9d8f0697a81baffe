package network

import (
	"errors"
	"fmt"
	"maps"
	"net"
	"net/netip"
	"path"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// The runtime half of a network transaction: the running state of the interfaces a change
// touches, taken before the change, put back when the change is not confirmed, and
// compared afterwards. Everything goes through netlink and sysfs (never a shell): names
// come from the kernel and the journal, and are checked as interface names all the same.

// Bounds on what one snapshot holds: a transaction touches a few interfaces, not a host's
// whole routing table.
const (
	maxSnapLinks   = 256
	maxSnapEntries = 4096 // addresses, routes and VFs, over all links
	rtsnapVersion  = 1
)

// runtimeSnap is the running state of some interfaces, stored as JSON in a transaction's
// journal.
type runtimeSnap struct {
	Version int        `json:"version"`
	Links   []snapLink `json:"links"`

	// sysfsWrite writes a sysfs attribute (nil: through the fileTree); settle bounds the
	// wait for a PF to list the VFs it was asked for (0: defaultSettle). Tests set both.
	sysfsWrite func(p, value string) error
	settle     time.Duration
}

// snapLink is one link as the kernel ran it. A link that did not exist is Absent (the
// transaction creates it; restore deletes it).
type snapLink struct {
	Name   string `json:"name"`
	Absent bool   `json:"absent,omitempty"`
	Kind   string `json:"kind,omitempty"`
	Index  int    `json:"ifindex,omitempty"`
	MTU    int    `json:"mtu,omitempty"`
	Up     bool   `json:"up"`
	Master string `json:"master,omitempty"`
	// Addrs are the global-scope addresses (globalAddr), canonical CIDR, in the kernel's order.
	Addrs  []string    `json:"addresses,omitempty"`
	Routes []snapRoute `json:"routes,omitempty"`
	// Bond options by the kernel's names (runningBondOptions) and the slaves in the bond's
	// order (sysfs bonding/slaves when readable); Slaves also lists a bridge's ports.
	Bond   map[string]string `json:"bond_options,omitempty"`
	Slaves []string          `json:"slaves,omitempty"`
	VLAN   *snapVLAN         `json:"vlan,omitempty"`
	// Bridge is a bridge's options.
	Bridge *snapBridge `json:"bridge,omitempty"`
	// NumVFs is sriov_numvfs of a PF (nil: not a PF); VFs their settings.
	NumVFs *int     `json:"num_vfs,omitempty"`
	VFs    []snapVF `json:"vfs,omitempty"`
}

// snapBridge is what a bridge is made with besides its ports: VLAN filtering, and STP
// (nil when the kernel did not say: not restored then).
type snapBridge struct {
	VLANFiltering bool  `json:"vlan_filtering"`
	STP           *bool `json:"stp,omitempty"`
}

type snapVLAN struct {
	Parent   string `json:"parent"`
	ID       int    `json:"id"`
	Protocol int    `json:"protocol,omitempty"` // ETH_P_8021Q / ETH_P_8021AD; 0: the kernel's default
}

// snapRoute is a route whose output device is the link, in any table.
type snapRoute struct {
	Family   int    `json:"family"`
	Table    int    `json:"table"`
	Dst      string `json:"dst"` // CIDR; the default route is 0.0.0.0/0 or ::/0
	Gw       string `json:"gateway,omitempty"`
	Src      string `json:"src,omitempty"`
	Scope    int    `json:"scope"`
	Protocol int    `json:"protocol"`
	Priority int    `json:"metric"`
	Type     int    `json:"type"`
	Tos      int    `json:"tos,omitempty"`
	OnLink   bool   `json:"onlink,omitempty"`
	// Hops are a multipath route's next hops (the route is listed on each link of the
	// snapshot it leaves by).
	Hops []snapHop `json:"nexthops,omitempty"`
}

type snapHop struct {
	Dev    string `json:"dev"`
	Gw     string `json:"gateway,omitempty"`
	Weight int    `json:"weight"`
	OnLink bool   `json:"onlink,omitempty"`
}

type snapVF struct {
	ID       int    `json:"id"`
	MAC      string `json:"mac"`
	VLAN     int    `json:"vlan"`
	Trust    bool   `json:"trust"`
	Spoofchk bool   `json:"spoofchk"`
}

// snapshotRuntime reads names (interfaces a change touches or creates) and what they hang
// together with: each one's master, a bond's (or bridge's) slaves, a VLAN's parent, the
// VLANs on it, a VF's PF; and, for what was added that way, its own master, parent and PF.
// A name that does not exist is recorded as absent (a link the change will create:
// restore deletes it).
func snapshotRuntime(ops linkOps, f *fileTree, names []string) (*runtimeSnap, error) {
	all, err := listLinks(ops)
	if err != nil {
		return nil, fmt.Errorf("snapshot: list links: %w", err)
	}
	byIndex := map[int]netlink.Link{}
	for _, l := range all {
		byIndex[l.Attrs().Index] = l
	}
	s := &runtimeSnap{Version: rtsnapVersion}
	seen := map[string]bool{}
	entries := 0
	type item struct {
		name      string
		requested bool
	}
	queue := []item{}
	for _, n := range names {
		if !validIfName(n) {
			return nil, fmt.Errorf("snapshot: %q is not an interface name", n)
		}
		queue = append(queue, item{n, true})
	}
	for len(queue) > 0 {
		it := queue[0]
		queue = queue[1:]
		if seen[it.name] {
			continue
		}
		seen[it.name] = true
		if len(s.Links) >= maxSnapLinks {
			return nil, fmt.Errorf("snapshot: more than %d links hang together with %s; a transaction cannot restore that many", maxSnapLinks, strings.Join(names, ", "))
		}
		sl, err := readSnapLink(ops, f, it.name, all)
		if err != nil {
			return nil, fmt.Errorf("snapshot: %w", err)
		}
		if sl.Name != it.name {
			// Asked by an alternative name: one entry per link.
			if seen[sl.Name] {
				continue
			}
			seen[sl.Name] = true
		}
		s.Links = append(s.Links, *sl)
		if entries += len(sl.Addrs) + len(sl.VFs); entries > maxSnapEntries {
			return nil, fmt.Errorf("snapshot: more than %d addresses, routes and VFs on %s and the links with them; a transaction cannot restore that many", maxSnapEntries, strings.Join(names, ", "))
		}
		if sl.Absent {
			continue
		}
		next := []string{sl.Master}
		if sl.VLAN != nil {
			next = append(next, sl.VLAN.Parent)
		}
		next = append(next, physFn(f, sl.Name))
		if it.requested {
			next = append(next, sl.Slaves...)
			for _, l := range all {
				if v, ok := l.(*netlink.Vlan); ok && v.ParentIndex == sl.Index && v.Name != "" {
					next = append(next, v.Name)
				}
			}
		}
		for _, n := range next {
			if n != "" && validIfName(n) && !seen[n] {
				queue = append(queue, item{n, false})
			}
		}
	}
	if err := fillRoutes(ops, s.Links, all); err != nil {
		return nil, fmt.Errorf("snapshot: %w", err)
	}
	for _, l := range s.Links {
		entries += len(l.Routes)
	}
	if entries > maxSnapEntries {
		return nil, fmt.Errorf("snapshot: more than %d addresses, routes and VFs on %s and the links with them; a transaction cannot restore that many", maxSnapEntries, strings.Join(names, ", "))
	}
	return s, nil
}

// dumpTries is how many times a dump the kernel interrupted (its tables changed while it
// was read: NLM_F_DUMP_INTR, netlink.ErrDumpInterrupted) is read.
const dumpTries = 4

func listLinks(ops linkOps) ([]netlink.Link, error) {
	for i := 1; ; i++ {
		all, err := ops.LinkList()
		if errors.Is(err, netlink.ErrDumpInterrupted) && i < dumpTries {
			continue
		}
		return all, err
	}
}

func listAddrs(ops linkOps, l netlink.Link) ([]netlink.Addr, error) {
	for i := 1; ; i++ {
		addrs, err := ops.AddrList(l, familyAll)
		if errors.Is(err, netlink.ErrDumpInterrupted) && i < dumpTries {
			continue
		}
		return addrs, err
	}
}

// listRoutes reads every table, keeping what keep says (false: not wanted; an error:
// stop). A dump the kernel interrupted is read again from the start (reset).
func listRoutes(ops linkOps, reset func(), keep func(netlink.Route) error) error {
	for i := 1; ; i++ {
		reset()
		var stop error
		err := ops.RouteListFilteredIter(familyAll, &netlink.Route{Table: unix.RT_TABLE_UNSPEC}, netlink.RT_FILTER_TABLE, func(r netlink.Route) bool {
			stop = keep(r)
			return stop == nil
		})
		if stop != nil {
			return stop
		}
		if errors.Is(err, netlink.ErrDumpInterrupted) && i < dumpTries {
			continue
		}
		return err
	}
}

// readSnapLink reads one link by name; all is the host's link list (for a master's slaves).
func readSnapLink(ops linkOps, f *fileTree, name string, all []netlink.Link) (*snapLink, error) {
	l, err := ops.LinkByName(name)
	if isNotFound(err) {
		return &snapLink{Name: name, Absent: true}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read link %s: %w", name, err)
	}
	a := l.Attrs()
	// Asked by an alternative name, the link is recorded by its name: a link made again
	// gets that name.
	sl := &snapLink{Name: a.Name, Kind: l.Type(), Index: a.Index, MTU: a.MTU, Up: a.Flags&net.FlagUp != 0}
	if a.MasterIndex != 0 {
		m, err := ops.LinkByIndex(a.MasterIndex)
		if err != nil {
			return nil, fmt.Errorf("read the master of %s: %w", name, err)
		}
		sl.Master = m.Attrs().Name
	}
	switch x := l.(type) {
	case *netlink.Bond:
		sl.Bond = runningBondOptions(ops, x)
	case *netlink.Bridge:
		sl.Bridge = &snapBridge{VLANFiltering: x.VlanFiltering != nil && *x.VlanFiltering}
		if on, err := bridgeSTP(ops, a.Name); err == nil {
			sl.Bridge.STP = &on
		}
	case *netlink.Vlan:
		// A parent in another namespace has no name here: the VLAN cannot be made again
		// (restore says so), the rest of it is restored.
		parent := ""
		if p, err := ops.LinkByIndex(a.ParentIndex); err == nil {
			parent = p.Attrs().Name
		}
		sl.VLAN = &snapVLAN{Parent: parent, ID: x.VlanId, Protocol: int(x.VlanProtocol)}
	}
	sl.Slaves = slavesOf(f, sl, all)
	addrs, err := listAddrs(ops, l)
	if err != nil {
		return nil, fmt.Errorf("read the addresses of %s: %w", name, err)
	}
	for _, ad := range addrs {
		if c, ok := globalAddr(ad); ok {
			sl.Addrs = append(sl.Addrs, c)
		}
		if len(sl.Addrs) > maxSnapEntries {
			return nil, fmt.Errorf("%s has more than %d addresses", name, maxSnapEntries)
		}
	}
	if sl.NumVFs, err = readNumVFs(f, a.Name); err != nil {
		return nil, err
	}
	if sl.NumVFs != nil {
		for _, v := range a.Vfs {
			sl.VFs = append(sl.VFs, snapVF{ID: v.ID, MAC: strings.ToLower(v.Mac.String()), VLAN: v.Vlan, Trust: v.Trust != 0, Spoofchk: v.Spoofchk})
		}
		sort.Slice(sl.VFs, func(i, j int) bool { return sl.VFs[i].ID < sl.VFs[j].ID })
	}
	return sl, nil
}

// slavesOf lists a master's slaves: a bond's in its own order (sysfs bonding/slaves, the
// order they were enslaved in), else by interface index.
func slavesOf(f *fileTree, sl *snapLink, all []netlink.Link) []string {
	var byIdx []string
	for _, l := range all {
		if l.Attrs().MasterIndex == sl.Index && sl.Index != 0 {
			byIdx = append(byIdx, l.Attrs().Name)
		}
	}
	if sl.Kind != "bond" || !validIfName(sl.Name) {
		return byIdx
	}
	text, ok, err := f.read(path.Join(sysClassNet, sl.Name, "bonding", "slaves"))
	if err != nil || !ok {
		return byIdx
	}
	ordered := strings.Fields(text)
	if len(ordered) != len(byIdx) {
		return byIdx
	}
	for _, n := range ordered {
		if !slices.Contains(byIdx, n) {
			return byIdx
		}
	}
	return ordered
}

// routesOn reads every table once and returns, by link index, the routes that leave by
// one of the links in on: its device, or one of its next hops. names names every link (for
// next hops). At most maxSnapEntries routes are kept; more is an error.
func routesOn(ops linkOps, on map[int]bool, names map[int]string) (map[int][]snapRoute, error) {
	var out map[int][]snapRoute
	n := 0
	err := listRoutes(ops, func() { out, n = map[int][]snapRoute{}, 0 }, func(r netlink.Route) error {
		at := routeLinks(r, on)
		if len(at) == 0 {
			return nil
		}
		if n++; n > maxSnapEntries {
			return fmt.Errorf("more than %d routes leave by these links", maxSnapEntries)
		}
		sr := toSnapRoute(r, names)
		for _, i := range at {
			out[i] = append(out[i], sr)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read routes: %w", err)
	}
	return out, nil
}

// routeLinks are the links of on a route leaves by: its device, or its next hops'.
func routeLinks(r netlink.Route, on map[int]bool) []int {
	var at []int
	if on[r.LinkIndex] {
		at = append(at, r.LinkIndex)
	}
	for _, h := range r.MultiPath {
		if on[h.LinkIndex] && !slices.Contains(at, h.LinkIndex) {
			at = append(at, h.LinkIndex)
		}
	}
	return at
}

// fillRoutes reads the routes of the links (present ones) in one pass over the tables.
func fillRoutes(ops linkOps, links []snapLink, all []netlink.Link) error {
	names := map[int]string{}
	for _, l := range all {
		names[l.Attrs().Index] = l.Attrs().Name
	}
	on := map[int]bool{}
	for _, l := range links {
		if !l.Absent {
			on[l.Index] = true
		}
	}
	if len(on) == 0 {
		return nil
	}
	rs, err := routesOn(ops, on, names)
	if err != nil {
		return err
	}
	for i := range links {
		if !links[i].Absent {
			links[i].Routes = rs[links[i].Index]
		}
	}
	return nil
}

func toSnapRoute(r netlink.Route, names map[int]string) snapRoute {
	fam := r.Family
	ipStr := func(ip net.IP) string {
		if ip == nil {
			return ""
		}
		a, ok := netip.AddrFromSlice(ip)
		if !ok {
			return ""
		}
		if a.Unmap().Is4() && fam == 0 {
			fam = unix.AF_INET
		}
		return a.Unmap().String()
	}
	sr := snapRoute{Table: r.Table, Gw: ipStr(r.Gw), Src: ipStr(r.Src), Scope: int(r.Scope), Protocol: int(r.Protocol),
		Priority: r.Priority, Type: r.Type, Tos: r.Tos, OnLink: r.Flags&unix.RTNH_F_ONLINK != 0}
	for _, h := range r.MultiPath {
		dev := names[h.LinkIndex]
		if dev == "" {
			dev = fmt.Sprintf("#%d", h.LinkIndex)
		}
		sr.Hops = append(sr.Hops, snapHop{Dev: dev, Gw: ipStr(h.Gw), Weight: h.Hops + 1, OnLink: h.Flags&unix.RTNH_F_ONLINK != 0})
	}
	if r.Dst != nil {
		if a, ok := netip.AddrFromSlice(r.Dst.IP); ok {
			ones, _ := r.Dst.Mask.Size()
			sr.Dst = netip.PrefixFrom(a.Unmap(), ones).Masked().String()
			if a.Unmap().Is4() && fam == 0 {
				fam = unix.AF_INET
			}
		}
	}
	if fam == 0 {
		fam = unix.AF_INET6
		if sr.Gw != "" && !strings.Contains(sr.Gw, ":") {
			fam = unix.AF_INET
		}
	}
	sr.Family = fam
	if sr.Dst == "" {
		sr.Dst = "0.0.0.0/0"
		if fam == unix.AF_INET6 {
			sr.Dst = "::/0"
		}
	}
	return sr
}

// kernelRoute is a route the kernel makes and removes with an address (proto kernel):
// restore and verify leave those to the addresses.
func (r snapRoute) kernelRoute() bool { return r.Protocol == unix.RTPROT_KERNEL }

func (r snapRoute) String() string {
	var b strings.Builder
	b.WriteString(r.Dst)
	if r.Dst == "0.0.0.0/0" || r.Dst == "::/0" {
		b.Reset()
		b.WriteString("default")
	}
	if r.Type != 0 && r.Type != unix.RTN_UNICAST {
		fmt.Fprintf(&b, " type %d", r.Type)
	}
	if r.Gw != "" {
		b.WriteString(" via " + r.Gw)
	}
	if r.Src != "" {
		b.WriteString(" src " + r.Src)
	}
	if r.Table != 0 && r.Table != unix.RT_TABLE_MAIN {
		fmt.Fprintf(&b, " table %d", r.Table)
	}
	// As ip-route(8) names them, numbers for the rest.
	if p, ok := map[int]string{unix.RTPROT_BOOT: "boot", unix.RTPROT_STATIC: "static", unix.RTPROT_DHCP: "dhcp", unix.RTPROT_RA: "ra"}[int(r.Protocol)]; ok {
		b.WriteString(" proto " + p)
	} else {
		fmt.Fprintf(&b, " proto %d", r.Protocol)
	}
	if sc, ok := map[int]string{unix.RT_SCOPE_UNIVERSE: "global", unix.RT_SCOPE_LINK: "link", unix.RT_SCOPE_HOST: "host"}[int(r.Scope)]; ok {
		b.WriteString(" scope " + sc)
	} else {
		fmt.Fprintf(&b, " scope %d", r.Scope)
	}
	fmt.Fprintf(&b, " metric %d", r.Priority)
	if r.Tos != 0 {
		fmt.Fprintf(&b, " tos %d", r.Tos)
	}
	if r.OnLink {
		b.WriteString(" onlink")
	}
	for _, h := range r.Hops {
		b.WriteString(" nexthop")
		if h.Gw != "" {
			b.WriteString(" via " + h.Gw)
		}
		fmt.Fprintf(&b, " dev %s weight %d", h.Dev, h.Weight)
		if h.OnLink {
			b.WriteString(" onlink")
		}
	}
	return b.String()
}

// netlinkRoute is the route to add on the link with that index; a multipath route's next
// hops find their devices by name.
func (r snapRoute) netlinkRoute(index int, byName func(string) netlink.Link) (*netlink.Route, error) {
	dst, err := netip.ParsePrefix(r.Dst)
	if err != nil {
		return nil, fmt.Errorf("route %q: %w", r.Dst, err)
	}
	nr := &netlink.Route{LinkIndex: index, Family: r.Family, Table: r.Table, Scope: netlink.Scope(r.Scope),
		Protocol: netlink.RouteProtocol(r.Protocol), Priority: r.Priority, Type: r.Type, Tos: r.Tos,
		Dst: &net.IPNet{IP: net.IP(dst.Addr().AsSlice()), Mask: net.CIDRMask(dst.Bits(), dst.Addr().BitLen())}}
	for _, x := range []struct {
		s  string
		to *net.IP
	}{{r.Gw, &nr.Gw}, {r.Src, &nr.Src}} {
		if x.s == "" {
			continue
		}
		a, err := netip.ParseAddr(x.s)
		if err != nil {
			return nil, fmt.Errorf("route %s: %w", r.Dst, err)
		}
		*x.to = net.IP(a.AsSlice())
	}
	if r.OnLink {
		nr.Flags |= int(netlink.FLAG_ONLINK)
	}
	if len(r.Hops) > 0 {
		nr.LinkIndex = 0
		for _, h := range r.Hops {
			l := byName(h.Dev)
			if l == nil || !validIfName(h.Dev) {
				return nil, fmt.Errorf("route %s: no link %.20q for a next hop", r.Dst, h.Dev)
			}
			nh := &netlink.NexthopInfo{LinkIndex: l.Attrs().Index, Hops: h.Weight - 1}
			if h.Gw != "" {
				a, err := netip.ParseAddr(h.Gw)
				if err != nil {
					return nil, fmt.Errorf("route %s: %w", r.Dst, err)
				}
				nh.Gw = net.IP(a.AsSlice())
			}
			if h.OnLink {
				nh.Flags |= int(netlink.FLAG_ONLINK)
			}
			nr.MultiPath = append(nr.MultiPath, nh)
		}
	}
	return nr, nil
}

// readNumVFs reads a PF's sriov_numvfs; nil when the link is not a PF.
func readNumVFs(f *fileTree, name string) (*int, error) {
	if !validIfName(name) {
		return nil, nil
	}
	p := path.Join(sysClassNet, name, "device", sriovNumFile)
	text, ok, err := f.read(p)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", p, err)
	}
	if !ok {
		return nil, nil
	}
	n, err := strconv.Atoi(strings.TrimSpace(text))
	if err != nil || n < 0 || n > maxVFs {
		return nil, fmt.Errorf("%s: %.20q is not a number of VFs", p, text)
	}
	return &n, nil
}

// check refuses a snapshot this runbook did not write, or one altered on disk, before
// anything is done with it.
func (s *runtimeSnap) check() error {
	if s.Version > rtsnapVersion {
		return fmt.Errorf("the snapshot is of version %d, written by a newer runbook (this one reads %d)", s.Version, rtsnapVersion)
	}
	if len(s.Links) > maxSnapLinks {
		return fmt.Errorf("the snapshot has %d links, more than %d", len(s.Links), maxSnapLinks)
	}
	n := 0
	for _, sl := range s.Links {
		if !validIfName(sl.Name) {
			return fmt.Errorf("%.40q in the snapshot is not an interface name", sl.Name)
		}
		n += len(sl.Addrs) + len(sl.Routes) + len(sl.VFs)
	}
	if n > maxSnapEntries {
		return fmt.Errorf("the snapshot has %d addresses, routes and VFs, more than %d", n, maxSnapEntries)
	}
	return nil
}

// restorer carries one restore: what it did and what failed.
type restorer struct {
	s     *runtimeSnap
	ops   linkOps
	f     *fileTree
	lines []string
	errs  []error
}

func (r *restorer) did(format string, a ...any) { r.lines = append(r.lines, fmt.Sprintf(format, a...)) }

func (r *restorer) fail(name, what string, err error) {
	r.errs = append(r.errs, fmt.Errorf("%s: %s: %w", name, what, err))
}

// link reads a link now; nil (without an error recorded) when there is none.
func (r *restorer) link(name string) netlink.Link {
	l, err := r.ops.LinkByName(name)
	if isNotFound(err) {
		return nil
	}
	if err != nil {
		r.fail(name, "read link", err)
		return nil
	}
	return l
}

// masterName names a link's master now ("" for none).
func (r *restorer) masterName(l netlink.Link) string {
	if l.Attrs().MasterIndex == 0 {
		return ""
	}
	m, err := r.ops.LinkByIndex(l.Attrs().MasterIndex)
	if err != nil {
		return fmt.Sprintf("#%d", l.Attrs().MasterIndex)
	}
	return m.Attrs().Name
}

// present is the snapshot's links that existed, VLANs after the rest (their parents first).
func (s *runtimeSnap) present() []*snapLink {
	var out []*snapLink
	for i := range s.Links {
		if !s.Links[i].Absent {
			out = append(out, &s.Links[i])
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].VLAN == nil && out[j].VLAN != nil })
	return out
}

func (s *runtimeSnap) find(name string) *snapLink {
	for i := range s.Links {
		if s.Links[i].Name == name {
			return &s.Links[i]
		}
	}
	return nil
}

// restore brings the links back to the snapshot, idempotently (running it twice changes
// nothing the second time; running it when nothing changed changes nothing), and returns
// one line per thing it restored. It goes on after a failing step, and returns every
// failure joined. The order is one the kernel accepts: links the transaction made go
// first, then links that went are made again, bond options that need the bond down and
// without slaves, slaves released, MTUs, slaves enslaved (down, as bonding wants), the
// primary, admin state, addresses (the extra ones first: deleting a primary address takes
// its secondaries with it), routes (after the addresses and the admin state, which the
// kernel's checks of a gateway and its removal of a downed link's routes depend on), and
// last the VFs.
func (s *runtimeSnap) restore(ops linkOps, f *fileTree) ([]string, error) {
	r := &restorer{s: s, ops: ops, f: f}
	if err := s.check(); err != nil {
		return nil, fmt.Errorf("restore: %w", err)
	}
	r.deleteCreated()
	present := s.present()
	for _, sl := range present {
		r.remake(sl)
	}
	for _, sl := range present {
		if sl.Bond != nil {
			r.bondOptions(sl)
		}
		if sl.Bridge != nil {
			r.bridgeOptions(sl)
		}
	}
	for _, sl := range present {
		r.release(sl)
	}
	r.mtus(present)
	r.enslave(present)
	r.mtus(present)
	for _, sl := range present {
		if sl.Bond != nil {
			r.primary(sl)
		}
	}
	for _, sl := range present {
		r.adminState(sl)
	}
	for _, sl := range present {
		r.addresses(sl)
	}
	r.routes(present)
	for _, sl := range present {
		if sl.NumVFs != nil {
			r.vfs(sl)
		}
	}
	r.leftCreated()
	return r.lines, errors.Join(r.errs...)
}

// deleteCreated deletes the links that were absent, releasing their slaves first: VLANs
// before the rest (deleting a parent takes its VLANs along, unreported). A device (a VF's
// netdev, a NIC that appeared) is not deleted: a VF goes with the VF count, and
// leftCreated reports what is still there at the end.
func (r *restorer) deleteCreated() {
	for _, vlans := range []bool{true, false} {
		for _, sl := range r.s.Links {
			if !sl.Absent {
				continue
			}
			l := r.link(sl.Name)
			if l == nil || (l.Type() == "vlan") != vlans || l.Type() == "device" {
				continue
			}
			r.releaseSlavesOf(l, sl.Name)
			if err := r.ops.LinkDel(l); err != nil && !isNotFound(err) {
				r.fail(sl.Name, "delete (created by the transaction)", err)
				continue
			}
			r.did("%s: deleted (created by the transaction)", sl.Name)
		}
	}
}

// leftCreated fails for each link that was absent and is still there.
func (r *restorer) leftCreated() {
	for _, sl := range r.s.Links {
		if !sl.Absent {
			continue
		}
		if l := r.link(sl.Name); l != nil {
			r.fail(sl.Name, "created by the transaction", fmt.Errorf("still there (a %s link, which restore does not delete)", l.Type()))
		}
	}
}

// releaseSlavesOf releases every slave of a master.
func (r *restorer) releaseSlavesOf(master netlink.Link, name string) {
	all, err := listLinks(r.ops)
	if err != nil {
		r.fail(name, "list links", err)
		return
	}
	for _, l := range all {
		if l.Attrs().MasterIndex != master.Attrs().Index {
			continue
		}
		if err := r.ops.LinkSetNoMaster(l); err != nil {
			r.fail(l.Attrs().Name, "release from "+name, err)
			continue
		}
		r.did("%s: master %s → none", l.Attrs().Name, name)
	}
}

// remake makes a link that went again, and one that is now of another kind or VLAN
// (deleted first). Only kinds that can be made from the snapshot alone: bond, VLAN,
// bridge, dummy.
func (r *restorer) remake(sl *snapLink) {
	l := r.link(sl.Name)
	why := "gone"
	if l != nil {
		differs := ""
		switch {
		case l.Type() != sl.Kind:
			differs = fmt.Sprintf("kind %s → %s", l.Type(), sl.Kind)
		case sl.VLAN != nil:
			v, _ := l.(*netlink.Vlan)
			parent := ""
			if p, err := r.ops.LinkByIndex(l.Attrs().ParentIndex); err == nil {
				parent = p.Attrs().Name
			}
			if v != nil && v.VlanId != sl.VLAN.ID {
				differs = fmt.Sprintf("vlan id %d → %d", v.VlanId, sl.VLAN.ID)
			} else if parent != sl.VLAN.Parent {
				differs = fmt.Sprintf("vlan parent %s → %s", orNone(parent), sl.VLAN.Parent)
			} else if v != nil && sl.VLAN.Protocol != 0 && int(v.VlanProtocol) != sl.VLAN.Protocol {
				differs = fmt.Sprintf("vlan protocol %#x → %#x", int(v.VlanProtocol), sl.VLAN.Protocol)
			}
		}
		if differs == "" {
			return
		}
		if !remakeable(sl.Kind) {
			r.fail(sl.Name, differs, errors.New("a link of that kind cannot be made again from the snapshot"))
			return
		}
		r.releaseSlavesOf(l, sl.Name)
		if err := r.ops.LinkDel(l); err != nil {
			r.fail(sl.Name, differs+": delete", err)
			return
		}
		why = differs
	}
	attrs := netlink.NewLinkAttrs()
	attrs.Name = sl.Name
	var nl netlink.Link
	switch sl.Kind {
	case "bond":
		b := netlink.NewLinkBond(attrs)
		for _, k := range sortedOptNames(sl.Bond) {
			if k == "primary" {
				continue
			}
			if o, _ := bondOpt(k); !o.allowedIn(sl.Bond["mode"]) {
				continue
			}
			if err := setBondOption(b, k, sl.Bond[k], func(string) (int, error) { return 0, nil }); err != nil {
				r.fail(sl.Name, "make again", err)
				return
			}
		}
		nl = b
	case "vlan":
		if sl.VLAN == nil {
			r.fail(sl.Name, "make again", errors.New("the snapshot has no VLAN parent and id"))
			return
		}
		p := r.link(sl.VLAN.Parent)
		if p == nil {
			r.fail(sl.Name, "make again", fmt.Errorf("its parent %s is not there", sl.VLAN.Parent))
			return
		}
		attrs.ParentIndex = p.Attrs().Index
		nl = &netlink.Vlan{LinkAttrs: attrs, VlanId: sl.VLAN.ID, VlanProtocol: netlink.VlanProtocol(sl.VLAN.Protocol)}
	case "bridge":
		br := &netlink.Bridge{LinkAttrs: attrs}
		if sl.Bridge != nil && sl.Bridge.VLANFiltering {
			// Only to turn it on: a kernel without VLAN filtering refuses the attribute.
			vf := sl.Bridge.VLANFiltering
			br.VlanFiltering = &vf
		}
		nl = br
	case "dummy":
		nl = &netlink.Dummy{LinkAttrs: attrs}
	default:
		r.fail(sl.Name, why, fmt.Errorf("a link of kind %s cannot be made again from the snapshot", sl.Kind))
		return
	}
	if err := r.ops.LinkAdd(nl); err != nil {
		r.fail(sl.Name, "make again ("+sl.Kind+")", err)
		return
	}
	r.did("%s: made again (%s; %s)", sl.Name, sl.Kind, why)
}

func remakeable(kind string) bool {
	return kind == "bond" || kind == "vlan" || kind == "bridge" || kind == "dummy"
}

// bondOptions sets the options that differ but the primary (which needs its slave): those
// the current mode takes first (lacp_rate before leaving 802.3ad), then the mode and the
// rest; the bond is emptied of slaves and set down when an option wants that. Slaves and
// admin state come back in later steps.
func (r *restorer) bondOptions(sl *snapLink) {
	l := r.link(sl.Name)
	b, ok := l.(*netlink.Bond)
	if !ok {
		return
	}
	cur := runningBondOptions(r.ops, b)
	want := sl.Bond
	// The kernel takes every option but lacp_rate (802.3ad only) and primary in any mode,
	// and the mode first in a message: lacp_rate goes before the mode leaves 802.3ad, or
	// with the mode that enters it.
	var now, later []string
	for _, o := range bondOptions {
		k := o.name
		v, ok := want[k]
		if !ok || k == "primary" || cur[k] == v {
			continue
		}
		switch {
		case k != "lacp_rate":
			later = append(later, k)
		case cur["mode"] == "802.3ad":
			now = append(now, k)
		case want["mode"] == "802.3ad":
			later = append(later, k)
		default:
			r.fail(sl.Name, "bond option lacp_rate "+v, errors.New("the kernel changes it in 802.3ad mode only, and the bond is not in it, before or now"))
		}
	}
	for _, set := range [][]string{now, later} {
		if len(set) == 0 {
			continue
		}
		noSlaves, down := false, false
		for _, k := range set {
			o, _ := bondOpt(k)
			noSlaves = noSlaves || o.needsNoSlaves
			down = down || o.needsDown
		}
		if l = r.link(sl.Name); l == nil {
			return
		}
		if noSlaves {
			r.releaseSlavesOf(l, sl.Name)
		}
		if down && l.Attrs().Flags&net.FlagUp != 0 {
			if err := r.ops.LinkSetDown(l); err != nil {
				r.fail(sl.Name, "set down to change "+strings.Join(set, ", "), err)
				return
			}
			r.did("%s: up → down (to change %s)", sl.Name, strings.Join(set, ", "))
		}
		attrs := netlink.NewLinkAttrs()
		attrs.Name, attrs.Index = sl.Name, l.Attrs().Index
		msg := netlink.NewLinkBond(attrs)
		for _, k := range set {
			if err := setBondOption(msg, k, want[k], func(string) (int, error) { return 0, nil }); err != nil {
				r.fail(sl.Name, "bond option "+k, err)
				return
			}
		}
		if err := r.ops.LinkModify(msg); err != nil {
			r.fail(sl.Name, "set bond options "+strings.Join(set, ", "), err)
			continue
		}
		for _, k := range set {
			r.did("%s: %s %s → %s", sl.Name, k, orNone(cur[k]), orNone(want[k]))
		}
	}
}

// bridgeOptions puts a bridge's VLAN filtering and STP back.
func (r *restorer) bridgeOptions(sl *snapLink) {
	l := r.link(sl.Name)
	b, ok := l.(*netlink.Bridge)
	if !ok {
		return
	}
	cur := b.VlanFiltering != nil && *b.VlanFiltering
	if want := sl.Bridge.VLANFiltering; cur != want {
		attrs := netlink.NewLinkAttrs()
		attrs.Name, attrs.Index = sl.Name, l.Attrs().Index
		if err := r.ops.LinkModify(&netlink.Bridge{LinkAttrs: attrs, VlanFiltering: &want}); err != nil {
			r.fail(sl.Name, "set vlan_filtering "+onOff(want), err)
		} else {
			r.did("%s: vlan_filtering %s → %s", sl.Name, onOff(cur), onOff(want))
		}
	}
	if sl.Bridge.STP == nil {
		return
	}
	want := *sl.Bridge.STP
	on, err := bridgeSTP(r.ops, sl.Name)
	if err != nil {
		r.fail(sl.Name, "read stp", err)
		return
	}
	if on == want {
		return
	}
	if err := setBridgeSTP(r.ops, sl.Name, want); err != nil {
		r.fail(sl.Name, "set stp "+onOff(want), err)
		return
	}
	r.did("%s: stp %s → %s", sl.Name, onOff(on), onOff(want))
}

// release takes a link out of a master it should not be in (or not in that one), and out
// of a recorded master's slaves the ones the snapshot does not list there.
func (r *restorer) release(sl *snapLink) {
	l := r.link(sl.Name)
	if l == nil {
		return
	}
	if m := r.masterName(l); m != "" && m != sl.Master {
		if err := r.ops.LinkSetNoMaster(l); err != nil {
			r.fail(sl.Name, "release from "+m, err)
		} else {
			r.did("%s: master %s → none", sl.Name, m)
		}
	}
	if sl.Slaves == nil && sl.Bond == nil && sl.Kind != "bridge" {
		return
	}
	all, err := listLinks(r.ops)
	if err != nil {
		r.fail(sl.Name, "list links", err)
		return
	}
	for _, x := range all {
		n := x.Attrs().Name
		if x.Attrs().MasterIndex != l.Attrs().Index || slices.Contains(sl.Slaves, n) || r.s.find(n) != nil {
			continue
		}
		if err := r.ops.LinkSetNoMaster(x); err != nil {
			r.fail(n, "release from "+sl.Name, err)
			continue
		}
		r.did("%s: master %s → none", n, sl.Name)
	}
}

// mtus sets the MTUs that differ, in present's order: a VLAN after its parent, as the
// kernel keeps a VLAN's MTU within its parent's (raised, the parent must go first;
// lowered, the parent takes its VLANs down with it, vlan_device_event). A bond sets its
// slaves' MTU, and enslaving sets a slave's to the bond's: restore runs this before and
// after enslaving.
func (r *restorer) mtus(present []*snapLink) {
	for _, sl := range present {
		l := r.link(sl.Name)
		if l == nil || sl.MTU == 0 {
			continue
		}
		cur := l.Attrs().MTU
		if cur == sl.MTU {
			continue
		}
		if err := r.ops.LinkSetMTU(l, sl.MTU); err != nil {
			r.fail(sl.Name, fmt.Sprintf("set mtu %d", sl.MTU), err)
			continue
		}
		r.did("%s: mtu %d → %d", sl.Name, cur, sl.MTU)
	}
}

// enslave puts links back into their masters: a bond's slaves in the bond's order, and
// down first when the master is a bond (the kernel's rule); admin state comes later.
func (r *restorer) enslave(present []*snapLink) {
	var order []*snapLink
	for _, m := range present {
		for _, n := range m.Slaves {
			sl := r.s.find(n)
			if sl == nil && validIfName(n) {
				// A slave the snapshot did not read (its master was read for another
				// link's sake), released to change the master's options: back in.
				sl = &snapLink{Name: n, Master: m.Name}
			}
			if sl != nil && !sl.Absent && sl.Master == m.Name {
				order = append(order, sl)
			}
		}
	}
	for _, sl := range present {
		if sl.Master != "" && !slices.Contains(order, sl) {
			order = append(order, sl)
		}
	}
	for _, sl := range order {
		l := r.link(sl.Name)
		if l == nil || r.masterName(l) == sl.Master {
			continue
		}
		m := r.link(sl.Master)
		if m == nil {
			r.fail(sl.Name, "enslave to "+sl.Master, errors.New("the master is not there"))
			continue
		}
		if _, bond := m.(*netlink.Bond); bond && l.Attrs().Flags&net.FlagUp != 0 {
			if err := r.ops.LinkSetDown(l); err != nil {
				r.fail(sl.Name, "set down to enslave", err)
				continue
			}
		}
		if err := r.ops.LinkSetMasterByIndex(l, m.Attrs().Index); err != nil {
			r.fail(sl.Name, "enslave to "+sl.Master, err)
			continue
		}
		r.did("%s: master none → %s", sl.Name, sl.Master)
	}
}

// primary sets a bond's primary back once its slaves are in.
func (r *restorer) primary(sl *snapLink) {
	want, ok := sl.Bond["primary"]
	if !ok {
		return
	}
	b, isBond := r.link(sl.Name).(*netlink.Bond)
	if !isBond {
		return
	}
	cur := runningBondOptions(r.ops, b)["primary"]
	if cur == want {
		return
	}
	attrs := netlink.NewLinkAttrs()
	attrs.Name, attrs.Index = sl.Name, b.Attrs().Index
	msg := netlink.NewLinkBond(attrs)
	index := func(n string) (int, error) {
		l := r.link(n)
		if l == nil {
			return 0, fmt.Errorf("no link %s", n)
		}
		return l.Attrs().Index, nil
	}
	if err := setBondOption(msg, "primary", want, index); err != nil {
		r.fail(sl.Name, "primary "+orNone(want), err)
		return
	}
	if err := r.ops.LinkModify(msg); err != nil {
		r.fail(sl.Name, "set primary "+orNone(want), err)
		return
	}
	r.did("%s: primary %s → %s", sl.Name, orNone(cur), orNone(want))
}

func (r *restorer) adminState(sl *snapLink) {
	l := r.link(sl.Name)
	if l == nil {
		return
	}
	up := l.Attrs().Flags&net.FlagUp != 0
	if up == sl.Up {
		return
	}
	var err error
	if sl.Up {
		err = r.ops.LinkSetUp(l)
	} else {
		err = r.ops.LinkSetDown(l)
	}
	if err != nil {
		r.fail(sl.Name, "set "+upDown(sl.Up), err)
		return
	}
	r.did("%s: %s → %s", sl.Name, upDown(up), upDown(sl.Up))
}

func upDown(up bool) string {
	if up {
		return "up"
	}
	return "down"
}

// currentAddrs lists a link's global addresses now.
func (r *restorer) currentAddrs(l netlink.Link) ([]string, error) {
	have, err := listAddrs(r.ops, l)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, a := range have {
		if c, ok := globalAddr(a); ok {
			out = append(out, c)
		}
	}
	return out, nil
}

func (r *restorer) addresses(sl *snapLink) {
	l := r.link(sl.Name)
	if l == nil {
		return
	}
	cur, err := r.currentAddrs(l)
	if err != nil {
		r.fail(sl.Name, "read addresses", err)
		return
	}
	for _, a := range cur {
		if contains(sl.Addrs, a) {
			continue
		}
		ad, err := parseAddr(a)
		if err == nil {
			err = r.ops.AddrDel(l, ad)
		}
		if err != nil && !errors.Is(err, unix.EADDRNOTAVAIL) {
			r.fail(sl.Name, "remove address "+a, err)
			continue
		}
		r.did("%s: address %s removed", sl.Name, a)
	}
	// Deleting a primary address can take secondaries with it: read again.
	if cur, err = r.currentAddrs(l); err != nil {
		r.fail(sl.Name, "read addresses", err)
		return
	}
	for _, a := range sl.Addrs {
		if contains(cur, a) {
			continue
		}
		ad, err := parseAddr(a)
		if err == nil {
			err = r.ops.AddrAdd(l, ad)
		}
		if err != nil && !errors.Is(err, unix.EEXIST) {
			r.fail(sl.Name, "add address "+a+" back", err)
			continue
		}
		r.did("%s: address %s added back", sl.Name, a)
	}
}

// routes deletes the routes that leave by the links and that the snapshot has not (but
// the kernel's own, which follow the addresses), and adds back the ones missing: one pass
// over the tables for all links; a multipath route once, whichever of its links sees it.
func (r *restorer) routes(present []*snapLink) {
	all, err := listLinks(r.ops)
	if err != nil {
		r.errs = append(r.errs, fmt.Errorf("routes: list links: %w", err))
		return
	}
	names, index := map[int]string{}, map[string]int{}
	for _, l := range all {
		names[l.Attrs().Index] = l.Attrs().Name
		index[l.Attrs().Name] = l.Attrs().Index
	}
	on := map[int]bool{}
	for _, sl := range present {
		if i, ok := index[sl.Name]; ok {
			on[i] = true
		}
	}
	var cur map[int][]netlink.Route
	n := 0
	err = listRoutes(r.ops, func() { cur, n = map[int][]netlink.Route{}, 0 }, func(nr netlink.Route) error {
		at := routeLinks(nr, on)
		if len(at) == 0 {
			return nil
		}
		if n++; n > maxSnapEntries {
			return fmt.Errorf("more than %d routes leave by these links", maxSnapEntries)
		}
		for _, i := range at {
			cur[i] = append(cur[i], nr)
		}
		return nil
	})
	if err != nil {
		r.errs = append(r.errs, fmt.Errorf("routes: %w", err))
		return
	}
	done := map[string]bool{}
	for _, sl := range present {
		idx, ok := index[sl.Name]
		if !ok {
			continue
		}
		want := map[string]bool{}
		for _, w := range sl.Routes {
			want[w.String()] = true
		}
		have := map[string]bool{}
		for _, nr := range cur[idx] {
			x := toSnapRoute(nr, names)
			key := x.String()
			have[key] = true
			if x.kernelRoute() || want[key] || done[key] {
				continue
			}
			done[key] = true
			del := nr
			if err := r.ops.RouteDel(&del); err != nil && !errors.Is(err, unix.ESRCH) {
				r.fail(sl.Name, "remove route "+key, err)
				continue
			}
			r.did("%s: route %s removed", sl.Name, key)
		}
		for _, w := range sl.Routes {
			key := w.String()
			if w.kernelRoute() || have[key] || done[key] {
				continue
			}
			done[key] = true
			nr, err := w.netlinkRoute(idx, r.link)
			if err == nil {
				err = r.ops.RouteAdd(nr)
			}
			if err != nil && !errors.Is(err, unix.EEXIST) {
				r.fail(sl.Name, "add route "+key+" back", err)
				continue
			}
			r.did("%s: route %s added back", sl.Name, key)
		}
	}
}

// vfs sets a PF's VF count back (through 0 from some to others, the kernel's rule), waits
// for the PF to list them, and sets each VF's settings back.
func (r *restorer) vfs(sl *snapLink) {
	cur, err := readNumVFs(r.f, sl.Name)
	if err != nil {
		r.fail(sl.Name, "read num_vfs", err)
		return
	}
	if cur == nil {
		r.fail(sl.Name, "num_vfs", fmt.Errorf("no %s any more", sriovNumFile))
		return
	}
	want := *sl.NumVFs
	if *cur != want {
		write := r.s.sysfsWrite
		if write == nil {
			write = r.f.writeSysfs
		}
		num := path.Join(sysClassNet, sl.Name, "device", sriovNumFile)
		if *cur > 0 && want > 0 {
			if err := write(num, "0"); err != nil {
				r.fail(sl.Name, "remove the VFs (write 0 to "+num+")", err)
				return
			}
		}
		if err := write(num, strconv.Itoa(want)); err != nil {
			r.fail(sl.Name, fmt.Sprintf("make %d VFs (write %s)", want, num), err)
			return
		}
		r.did("%s: num_vfs %d → %d", sl.Name, *cur, want)
	}
	settle := r.s.settle
	if settle == 0 {
		settle = defaultSettle
	}
	deadline := time.Now().Add(settle)
	var pf netlink.Link
	for {
		if pf = r.link(sl.Name); pf == nil {
			return
		}
		if len(pf.Attrs().Vfs) >= want {
			break
		}
		if time.Now().After(deadline) {
			r.fail(sl.Name, "VFs", fmt.Errorf("lists %d VFs %s after asking for %d", len(pf.Attrs().Vfs), settle, want))
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	for _, v := range sl.VFs {
		have := findVF(pf.Attrs().Vfs, v.ID)
		if have == nil {
			r.fail(sl.Name, fmt.Sprintf("vf %d", v.ID), errors.New("no such VF"))
			continue
		}
		if m := strings.ToLower(have.Mac.String()); m != v.MAC {
			hw, err := net.ParseMAC(v.MAC)
			if err == nil {
				err = r.ops.LinkSetVfHardwareAddr(pf, v.ID, hw)
			}
			if err != nil {
				r.fail(sl.Name, fmt.Sprintf("vf %d mac %s", v.ID, v.MAC), err)
			} else {
				r.did("%s: vf %d: mac %s → %s", sl.Name, v.ID, m, v.MAC)
			}
		}
		if have.Vlan != v.VLAN {
			if err := r.ops.LinkSetVfVlan(pf, v.ID, v.VLAN); err != nil {
				r.fail(sl.Name, fmt.Sprintf("vf %d vlan %d", v.ID, v.VLAN), err)
			} else {
				r.did("%s: vf %d: vlan %d → %d", sl.Name, v.ID, have.Vlan, v.VLAN)
			}
		}
		if have.Spoofchk != v.Spoofchk {
			if err := r.ops.LinkSetVfSpoofchk(pf, v.ID, v.Spoofchk); err != nil {
				r.fail(sl.Name, fmt.Sprintf("vf %d spoofchk", v.ID), err)
			} else {
				r.did("%s: vf %d: spoofchk %s → %s", sl.Name, v.ID, onOff(have.Spoofchk), onOff(v.Spoofchk))
			}
		}
		if (have.Trust != 0) != v.Trust {
			if err := r.ops.LinkSetVfTrust(pf, v.ID, v.Trust); err != nil {
				r.fail(sl.Name, fmt.Sprintf("vf %d trust", v.ID), err)
			} else {
				r.did("%s: vf %d: trust %s → %s", sl.Name, v.ID, onOff(have.Trust != 0), onOff(v.Trust))
			}
		}
	}
}

func onOff(b bool) string {
	if b {
		return "on"
	}
	return "off"
}

// verify takes a fresh snapshot of the same links and returns one line per difference
// from s (empty: restored exactly). Interface indexes of links restore makes again may
// differ; a device's index that changed is a difference (it was made again by a driver).
func (s *runtimeSnap) verify(ops linkOps, f *fileTree) ([]string, error) {
	all, err := listLinks(ops)
	if err != nil {
		return nil, fmt.Errorf("verify: list links: %w", err)
	}
	if err := s.check(); err != nil {
		return nil, fmt.Errorf("verify: %w", err)
	}
	var now []snapLink
	for i := range s.Links {
		got, err := readSnapLink(ops, f, s.Links[i].Name, all)
		if err != nil {
			return nil, fmt.Errorf("verify: %w", err)
		}
		now = append(now, *got)
	}
	if err := fillRoutes(ops, now, all); err != nil {
		return nil, fmt.Errorf("verify: %w", err)
	}
	var out []string
	for i := range s.Links {
		out = append(out, diffSnapLink(&s.Links[i], &now[i])...)
	}
	return out, nil
}

// diffSnapLink says how got differs from want, one line each: "NAME: WHAT is X, was Y".
func diffSnapLink(want, got *snapLink) []string {
	n := want.Name
	switch {
	case want.Absent && got.Absent:
		return nil
	case want.Absent:
		return []string{fmt.Sprintf("%s: is there (%s), was not", n, got.Kind)}
	case got.Absent:
		return []string{fmt.Sprintf("%s: is not there, was (%s)", n, want.Kind)}
	}
	var out []string
	diff := func(what string, g, w any) {
		if fmt.Sprint(g) != fmt.Sprint(w) {
			out = append(out, fmt.Sprintf("%s: %s is %v, was %v", n, what, g, w))
		}
	}
	diff("kind", got.Kind, want.Kind)
	if !remakeable(want.Kind) {
		diff("ifindex", got.Index, want.Index)
	}
	diff("mtu", got.MTU, want.MTU)
	diff("state", upDown(got.Up), upDown(want.Up))
	diff("master", orNone(got.Master), orNone(want.Master))
	if want.VLAN != nil || got.VLAN != nil {
		diff("vlan", fmtSnapVLAN(got.VLAN), fmtSnapVLAN(want.VLAN))
	}
	setDiff := func(what string, g, w []string) {
		for _, x := range w {
			if !contains(g, x) {
				out = append(out, fmt.Sprintf("%s: %s %s is missing", n, what, x))
			}
		}
		for _, x := range g {
			if !contains(w, x) {
				out = append(out, fmt.Sprintf("%s: %s %s is extra", n, what, x))
			}
		}
	}
	setDiff("address", got.Addrs, want.Addrs)
	routes := func(rs []snapRoute) []string {
		var o []string
		for _, r := range rs {
			if !r.kernelRoute() {
				o = append(o, r.String())
			}
		}
		return o
	}
	setDiff("route", routes(got.Routes), routes(want.Routes))
	for _, k := range sortedKeys(mergeKeys(got.Bond, want.Bond)) {
		g, gok := got.Bond[k]
		w, wok := want.Bond[k]
		if gok != wok || g != w {
			out = append(out, fmt.Sprintf("%s: bond %s is %s, was %s", n, k, orNone(g), orNone(w)))
		}
	}
	setDiff("slave", got.Slaves, want.Slaves)
	if want.Bridge != nil && got.Bridge != nil {
		diff("vlan_filtering", onOff(got.Bridge.VLANFiltering), onOff(want.Bridge.VLANFiltering))
		if want.Bridge.STP != nil && got.Bridge.STP != nil {
			diff("stp", onOff(*got.Bridge.STP), onOff(*want.Bridge.STP))
		}
	}
	num := func(p *int) string {
		if p == nil {
			return "(not a PF)"
		}
		return strconv.Itoa(*p)
	}
	diff("num_vfs", num(got.NumVFs), num(want.NumVFs))
	for _, w := range want.VFs {
		var g *snapVF
		for i := range got.VFs {
			if got.VFs[i].ID == w.ID {
				g = &got.VFs[i]
			}
		}
		if g == nil {
			out = append(out, fmt.Sprintf("%s: vf %d is missing", n, w.ID))
			continue
		}
		diff(fmt.Sprintf("vf %d mac", w.ID), g.MAC, w.MAC)
		diff(fmt.Sprintf("vf %d vlan", w.ID), g.VLAN, w.VLAN)
		diff(fmt.Sprintf("vf %d trust", w.ID), onOff(g.Trust), onOff(w.Trust))
		diff(fmt.Sprintf("vf %d spoofchk", w.ID), onOff(g.Spoofchk), onOff(w.Spoofchk))
	}
	return out
}

func fmtSnapVLAN(v *snapVLAN) string {
	if v == nil {
		return "none"
	}
	return fmt.Sprintf("%s id %d", v.Parent, v.ID)
}

func mergeKeys(a, b map[string]string) map[string]string {
	out := maps.Clone(a)
	if out == nil {
		out = map[string]string{}
	}
	for k, v := range b {
		out[k] = v
	}
	return out
}
