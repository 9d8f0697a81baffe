package network

import (
	"fmt"
	"net"
	"slices"
	"sort"
	"strings"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// fakeKernel is an in-memory network stack with the rules the kernel applies to bonds
// (drivers/net/bonding: mode only without slaves and down; lacp_rate and ad_select only
// down; lacp_rate only in 802.3ad, primary only in active-backup/tlb/alb; no enslaving an
// up device; a released slave goes down; the bond's MTU goes to its slaves), VLANs and
// SR-IOV VFs, bridges (ports join while up and stay as they are; a bridge whose MTU was
// never set takes the smallest of its ports'; no bridge in a bridge; STP and VLAN
// filtering as attributes), and routes (a route needs its device up and a gateway on one of its
// subnets unless onlink; a device that goes down or away loses its routes; an address
// brings its proto kernel prefix route, up or when the device comes up; a deleted master
// releases its slaves, a deleted parent takes its VLANs). Every change is logged in calls.
type fakeKernel struct {
	links map[int]*fakeLink
	next  int
	calls []string
	// runs holds the calls again, one list per opened handle (per module run).
	runs      [][]string
	noBonding bool
	noVLAN    bool
	noBridge  bool
	// noBridgeVLAN: a kernel without CONFIG_BRIDGE_VLAN_FILTERING, which refuses the
	// attribute whatever its value.
	noBridgeVLAN bool
	failOnCall   string // a call prefix that fails with EIO
	// defaultVia is the link that carries the default route (0: none); routeVia the link
	// a route to an address leaves by.
	defaultVia int
	routeVia   map[string]int
	// routes is the routing table RouteListFilteredIter, RouteAdd and RouteDel work on (the
	// guard's RouteList and RouteGetWithOptions answer from defaultVia and routeVia).
	routes []netlink.Route
}

type fakeLink struct {
	name   string
	alt    []string // alternative names (ip link property add altname)
	index  int
	kind   string // "device", "bond", "vlan"
	mtu    int
	up     bool
	master int
	parent int
	vlanID int
	bond   netlink.Bond // options only
	// A bridge's STP and VLAN filtering, and whether its MTU was set (the kernel stops
	// giving it its ports' smallest then).
	stp, vlanFiltering, mtuByUser bool
	addrs                         []string
	vfs                           []netlink.VfInfo
}

func newFakeKernel() *fakeKernel { return &fakeKernel{links: map[int]*fakeLink{}, next: 1} }

func (k *fakeKernel) add(l *fakeLink) *fakeLink {
	l.index = k.next
	k.next++
	if l.mtu == 0 {
		l.mtu = 1500
	}
	if l.kind == "" {
		l.kind = "device"
	}
	k.links[l.index] = l
	return l
}

// nic adds an Ethernet NIC.
func (k *fakeKernel) nic(name string, up bool) *fakeLink {
	return k.add(&fakeLink{name: name, up: up})
}

func (k *fakeKernel) byName(name string) *fakeLink {
	for _, l := range k.links {
		if l.name == name || slices.Contains(l.alt, name) {
			return l
		}
	}
	return nil
}

func (k *fakeKernel) log(format string, a ...any) error {
	c := fmt.Sprintf(format, a...)
	k.calls = append(k.calls, c)
	if len(k.runs) > 0 {
		k.runs[len(k.runs)-1] = append(k.runs[len(k.runs)-1], c)
	}
	if k.failOnCall != "" && strings.HasPrefix(c, k.failOnCall) {
		return unix.EIO
	}
	return nil
}

func (k *fakeKernel) slaves(b *fakeLink) []*fakeLink {
	var out []*fakeLink
	for _, l := range k.links {
		if l.master == b.index {
			out = append(out, l)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].name < out[j].name })
	return out
}

func (k *fakeKernel) view(l *fakeLink) netlink.Link {
	attrs := netlink.NewLinkAttrs()
	attrs.Name, attrs.Index, attrs.MTU, attrs.MasterIndex, attrs.ParentIndex = l.name, l.index, l.mtu, l.master, l.parent
	attrs.AltNames = slices.Clone(l.alt)
	if l.up {
		attrs.Flags |= net.FlagUp
		attrs.OperState = netlink.OperUp
		attrs.RawFlags |= unix.IFF_UP | unix.IFF_LOWER_UP
	}
	attrs.Vfs = slices.Clone(l.vfs)
	switch l.kind {
	case "bond":
		b := l.bond
		b.LinkAttrs = attrs
		return &b
	case "vlan":
		return &netlink.Vlan{LinkAttrs: attrs, VlanId: l.vlanID}
	case "bridge":
		vf := l.vlanFiltering
		return &netlink.Bridge{LinkAttrs: attrs, VlanFiltering: &vf}
	case "dummy":
		return &netlink.Dummy{LinkAttrs: attrs}
	}
	return &netlink.Device{LinkAttrs: attrs}
}

func (k *fakeKernel) find(link netlink.Link) (*fakeLink, error) {
	a := link.Attrs()
	if a.Index != 0 {
		if l := k.links[a.Index]; l != nil {
			return l, nil
		}
	}
	if l := k.byName(a.Name); l != nil {
		return l, nil
	}
	return nil, unix.ENODEV
}

func (k *fakeKernel) LinkByName(name string) (netlink.Link, error) {
	if l := k.byName(name); l != nil {
		return k.view(l), nil
	}
	return nil, netlink.LinkNotFoundError{}
}

func (k *fakeKernel) LinkByIndex(i int) (netlink.Link, error) {
	if l := k.links[i]; l != nil {
		return k.view(l), nil
	}
	return nil, netlink.LinkNotFoundError{}
}

func (k *fakeKernel) LinkList() ([]netlink.Link, error) {
	var out []netlink.Link
	for _, l := range k.links {
		out = append(out, k.view(l))
	}
	// By index, as the kernel dumps them.
	sort.Slice(out, func(i, j int) bool { return out[i].Attrs().Index < out[j].Attrs().Index })
	return out, nil
}

var bondDefaults = netlink.Bond{Mode: 0, Miimon: 0, LacpRate: 0, XmitHashPolicy: 0, AdSelect: 0, MinLinks: 0, Primary: 0}

func (k *fakeKernel) LinkAdd(link netlink.Link) error {
	a := link.Attrs()
	if k.byName(a.Name) != nil {
		return unix.EEXIST
	}
	switch x := link.(type) {
	case *netlink.Bond:
		if err := k.log("add bond %s", a.Name); err != nil {
			return err
		}
		if k.noBonding {
			return unix.EOPNOTSUPP
		}
		l := k.add(&fakeLink{name: a.Name, kind: "bond", bond: bondDefaults})
		return k.setBond(l, x, true)
	case *netlink.Vlan:
		if err := k.log("add vlan %s id %d parent %d", a.Name, x.VlanId, a.ParentIndex); err != nil {
			return err
		}
		if k.noVLAN {
			return unix.EOPNOTSUPP
		}
		p := k.links[a.ParentIndex]
		if p == nil {
			return unix.ENODEV
		}
		k.add(&fakeLink{name: a.Name, kind: "vlan", parent: p.index, vlanID: x.VlanId, mtu: p.mtu})
		return nil
	case *netlink.Bridge:
		vf := x.VlanFiltering != nil && *x.VlanFiltering
		c := "add bridge " + a.Name
		if x.VlanFiltering != nil {
			c += fmt.Sprintf(" vlan_filtering=%v", vf)
		}
		if err := k.log("%s", c); err != nil {
			return err
		}
		if k.noBridge || (k.noBridgeVLAN && x.VlanFiltering != nil) {
			return unix.EOPNOTSUPP
		}
		k.add(&fakeLink{name: a.Name, kind: "bridge", vlanFiltering: vf})
		return nil
	case *netlink.Dummy:
		if err := k.log("add dummy %s", a.Name); err != nil {
			return err
		}
		k.add(&fakeLink{name: a.Name, kind: "dummy"})
		return nil
	}
	return unix.EOPNOTSUPP
}

// setBond applies the options a netlink message carries (fields >= 0), mode first, with
// the kernel's checks.
func (k *fakeKernel) setBond(l *fakeLink, x *netlink.Bond, creating bool) error {
	mode := l.bond.Mode
	hasSlaves := len(k.slaves(l)) > 0
	if x.Mode >= 0 {
		if hasSlaves {
			return unix.ENOTEMPTY
		}
		if l.up {
			return unix.EBUSY
		}
		mode = x.Mode
		l.bond.Mode = x.Mode
	}
	if x.LacpRate >= 0 {
		if mode != netlink.BOND_MODE_802_3AD {
			return unix.EACCES
		}
		if l.up {
			return unix.EBUSY
		}
		l.bond.LacpRate = x.LacpRate
	}
	if x.AdSelect >= 0 {
		if l.up {
			return unix.EBUSY
		}
		l.bond.AdSelect = x.AdSelect
	}
	if x.XmitHashPolicy >= 0 {
		l.bond.XmitHashPolicy = x.XmitHashPolicy
	}
	if x.Miimon >= 0 {
		l.bond.Miimon = x.Miimon
	}
	if x.MinLinks >= 0 {
		l.bond.MinLinks = x.MinLinks
	}
	if x.Primary >= 0 {
		if mode != netlink.BOND_MODE_ACTIVE_BACKUP && mode != netlink.BOND_MODE_BALANCE_TLB && mode != netlink.BOND_MODE_BALANCE_ALB {
			return unix.EACCES
		}
		l.bond.Primary = x.Primary
	}
	return nil
}

func (k *fakeKernel) LinkModify(link netlink.Link) error {
	l, err := k.find(link)
	if err != nil {
		return err
	}
	if br, ok := link.(*netlink.Bridge); ok && l.kind == "bridge" {
		if br.VlanFiltering == nil {
			return k.log("modify %s", l.name)
		}
		if err := k.log("modify %s vlan_filtering=%v", l.name, *br.VlanFiltering); err != nil {
			return err
		}
		if k.noBridgeVLAN {
			return unix.EOPNOTSUPP
		}
		l.vlanFiltering = *br.VlanFiltering
		return nil
	}
	x, ok := link.(*netlink.Bond)
	if !ok || l.kind != "bond" {
		return unix.EOPNOTSUPP
	}
	var set []string
	for _, f := range []struct {
		name string
		v    int
	}{{"mode", int(x.Mode)}, {"lacp_rate", int(x.LacpRate)}, {"ad_select", int(x.AdSelect)}, {"xmit_hash_policy", int(x.XmitHashPolicy)},
		{"miimon", x.Miimon}, {"min_links", x.MinLinks}, {"primary", x.Primary}} {
		if f.v >= 0 {
			set = append(set, fmt.Sprintf("%s=%d", f.name, f.v))
		}
	}
	if err := k.log("modify %s %s", l.name, strings.Join(set, " ")); err != nil {
		return err
	}
	return k.setBond(l, x, false)
}

func (k *fakeKernel) LinkDel(link netlink.Link) error {
	l, err := k.find(link)
	if err != nil {
		return err
	}
	if err := k.log("del %s", l.name); err != nil {
		return err
	}
	k.remove(l)
	return nil
}

// remove deletes a link as the kernel does: its slaves released (and down, a bond's),
// its VLANs deleted, its routes gone.
func (k *fakeKernel) remove(l *fakeLink) {
	for _, s := range k.slaves(l) {
		s.master = 0
		if l.kind == "bond" {
			k.setDown(s)
		}
	}
	for _, v := range k.links {
		if v.kind == "vlan" && v.parent == l.index {
			k.remove(v)
		}
	}
	k.dropRoutes(l.index)
	delete(k.links, l.index)
}

// setDown takes a link down: its routes go (the kernel's fib_disable_ip).
func (k *fakeKernel) setDown(l *fakeLink) {
	l.up = false
	k.dropRoutes(l.index)
}

// dropRoutes deletes the routes whose device is index, and the multipath routes left with
// no next hop on a link that is up.
func (k *fakeKernel) dropRoutes(index int) {
	k.routes = slices.DeleteFunc(k.routes, func(r netlink.Route) bool {
		if len(r.MultiPath) > 0 {
			for _, h := range r.MultiPath {
				if l := k.links[h.LinkIndex]; l != nil && l.up && h.LinkIndex != index {
					return false
				}
			}
			return true
		}
		return r.LinkIndex == index
	})
}

// names maps indexes to names, for rendering routes.
func (k *fakeKernel) names() map[int]string {
	out := map[int]string{}
	for i, l := range k.links {
		out[i] = l.name
	}
	return out
}

// prefixRoute is the route the kernel adds for an address: its subnet, on the link.
func prefixRoute(index int, cidr string) netlink.Route {
	a, _ := parseAddr(cidr)
	r := netlink.Route{LinkIndex: index, Dst: &net.IPNet{IP: a.IP.Mask(a.Mask), Mask: a.Mask}, Table: unix.RT_TABLE_MAIN,
		Protocol: unix.RTPROT_KERNEL, Type: unix.RTN_UNICAST, Scope: netlink.SCOPE_LINK, Family: unix.AF_INET}
	if a.IP.To4() == nil {
		r.Family, r.Scope, r.Priority = unix.AF_INET6, netlink.SCOPE_UNIVERSE, 256
	} else {
		r.Src = a.IP
	}
	return r
}

// addPrefixRoutes adds the kernel's routes for a link's addresses (it is up).
func (k *fakeKernel) addPrefixRoutes(l *fakeLink) {
	for _, a := range l.addrs {
		r := prefixRoute(l.index, a)
		if k.findRoute(&r) < 0 {
			k.routes = append(k.routes, r)
		}
	}
}

// normRoute fills what the kernel fills in a route it is given (netlink's defaults).
func normRoute(r netlink.Route) netlink.Route {
	if r.Table == 0 {
		r.Table = unix.RT_TABLE_MAIN
	}
	if r.Protocol == 0 {
		r.Protocol = unix.RTPROT_BOOT
	}
	if r.Type == 0 {
		r.Type = unix.RTN_UNICAST
	}
	if r.Family == 0 {
		r.Family = unix.AF_INET
		if (r.Dst != nil && r.Dst.IP.To4() == nil) || (r.Gw != nil && r.Gw.To4() == nil) {
			r.Family = unix.AF_INET6
		}
	}
	if r.Dst == nil {
		bits := 32
		if r.Family == unix.AF_INET6 {
			bits = 128
		}
		r.Dst = &net.IPNet{IP: make(net.IP, bits/8), Mask: net.CIDRMask(0, bits)}
	}
	return r
}

func (k *fakeKernel) findRoute(r *netlink.Route) int {
	names := k.names()
	want := toSnapRoute(normRoute(*r), names).String()
	for i, x := range k.routes {
		if x.LinkIndex == r.LinkIndex && toSnapRoute(x, names).String() == want {
			return i
		}
	}
	return -1
}

func (k *fakeKernel) RouteListFilteredIter(family int, filter *netlink.Route, mask uint64, f func(netlink.Route) bool) error {
	for _, r := range slices.Clone(k.routes) {
		switch {
		case family != 0 && r.Family != family:
		case mask&netlink.RT_FILTER_OIF != 0 && r.LinkIndex != filter.LinkIndex:
		case mask&netlink.RT_FILTER_TABLE == 0 && r.Table != unix.RT_TABLE_MAIN:
		case mask&netlink.RT_FILTER_TABLE != 0 && filter.Table != 0 && r.Table != filter.Table:
		default:
			if !f(r) {
				return nil
			}
		}
	}
	return nil
}

func (k *fakeKernel) RouteAdd(r *netlink.Route) error {
	name := "multipath"
	if len(r.MultiPath) == 0 {
		name = "?"
		if l := k.links[r.LinkIndex]; l != nil {
			name = l.name
		}
	}
	nr := normRoute(*r)
	if err := k.log("route add %s %s", name, toSnapRoute(nr, k.names())); err != nil {
		return err
	}
	if k.findRoute(&nr) >= 0 {
		return unix.EEXIST
	}
	// Each next hop (or the one) needs its device up and its gateway on one of its subnets.
	check := func(index int, gw net.IP, flags int) error {
		l := k.links[index]
		switch {
		case l == nil:
			return unix.ENODEV
		case !l.up:
			return unix.ENETDOWN
		case gw == nil || flags&int(netlink.FLAG_ONLINK) != 0:
			return nil
		}
		for _, a := range l.addrs {
			if _, p, err := net.ParseCIDR(a); err == nil && p.Contains(gw) {
				return nil
			}
		}
		return unix.ENETUNREACH // "Nexthop has invalid gateway"
	}
	if len(nr.MultiPath) == 0 {
		if err := check(nr.LinkIndex, nr.Gw, nr.Flags); err != nil {
			return err
		}
	}
	for _, h := range nr.MultiPath {
		if err := check(h.LinkIndex, h.Gw, h.Flags); err != nil {
			return err
		}
	}
	k.routes = append(k.routes, nr)
	return nil
}

func (k *fakeKernel) RouteDel(r *netlink.Route) error {
	name := "?"
	if l := k.links[r.LinkIndex]; l != nil {
		name = l.name
	}
	if err := k.log("route del %s %s", name, toSnapRoute(normRoute(*r), k.names())); err != nil {
		return err
	}
	i := k.findRoute(r)
	if i < 0 {
		return unix.ESRCH
	}
	k.routes = slices.Delete(k.routes, i, i+1)
	return nil
}

func (k *fakeKernel) LinkSetUp(link netlink.Link) error {
	l, err := k.find(link)
	if err != nil {
		return err
	}
	if err := k.log("up %s", l.name); err != nil {
		return err
	}
	if !l.up {
		l.up = true
		k.addPrefixRoutes(l)
	}
	return nil
}

func (k *fakeKernel) LinkSetDown(link netlink.Link) error {
	l, err := k.find(link)
	if err != nil {
		return err
	}
	if err := k.log("down %s", l.name); err != nil {
		return err
	}
	k.setDown(l)
	return nil
}

func (k *fakeKernel) LinkSetMTU(link netlink.Link, mtu int) error {
	l, err := k.find(link)
	if err != nil {
		return err
	}
	if err := k.log("mtu %s %d", l.name, mtu); err != nil {
		return err
	}
	if p := k.links[l.parent]; l.kind == "vlan" && p != nil && mtu > p.mtu {
		return unix.ERANGE // a VLAN's MTU stays within its parent's
	}
	l.mtu = mtu
	if l.kind == "bridge" {
		l.mtuByUser = true
	}
	for _, v := range k.links {
		if v.kind == "vlan" && v.parent == l.index && v.mtu > mtu {
			v.mtu = mtu
		}
	}
	if l.kind == "bond" {
		for _, s := range k.slaves(l) {
			s.mtu = mtu
		}
	}
	return nil
}

func (k *fakeKernel) LinkSetMasterByIndex(link netlink.Link, master int) error {
	l, err := k.find(link)
	if err != nil {
		return err
	}
	b := k.links[master]
	if err := k.log("enslave %s %s", l.name, b.name); err != nil {
		return err
	}
	if b != nil && b.kind == "bridge" {
		switch {
		case l.kind == "bridge":
			return unix.ELOOP
		case l.master != 0:
			return unix.EBUSY
		}
		l.master = master
		if !b.mtuByUser {
			b.mtu = 0
			for _, p := range k.slaves(b) {
				if b.mtu == 0 || p.mtu < b.mtu {
					b.mtu = p.mtu
				}
			}
		}
		return nil
	}
	switch {
	case b == nil || b.kind != "bond":
		return unix.EOPNOTSUPP
	case l.master != 0:
		return unix.EBUSY
	case l.up:
		return unix.EPERM // "Device can not be enslaved while up"
	}
	l.master, l.mtu, l.up = master, b.mtu, true
	return nil
}

func (k *fakeKernel) LinkSetNoMaster(link netlink.Link) error {
	l, err := k.find(link)
	if err != nil {
		return err
	}
	if err := k.log("release %s", l.name); err != nil {
		return err
	}
	// Bonding closes a slave it releases; a bridge leaves its port as it is.
	if m := k.links[l.master]; m == nil || m.kind != "bridge" {
		k.setDown(l)
	}
	l.master = 0
	return nil
}

func (k *fakeKernel) BridgeSTP(name string) (bool, error) {
	l := k.byName(name)
	if l == nil || l.kind != "bridge" {
		return false, unix.ENOENT
	}
	return l.stp, nil
}

func (k *fakeKernel) SetBridgeSTP(name string, on bool) error {
	l := k.byName(name)
	if l == nil || l.kind != "bridge" {
		return unix.ENOENT
	}
	if err := k.log("stp %s %v", name, on); err != nil {
		return err
	}
	l.stp = on
	return nil
}

func (k *fakeKernel) AddrList(link netlink.Link, family int) ([]netlink.Addr, error) {
	l, err := k.find(link)
	if err != nil {
		return nil, err
	}
	var out []netlink.Addr
	for _, a := range l.addrs {
		x, _ := parseAddr(a)
		out = append(out, *x)
	}
	return out, nil
}

func (k *fakeKernel) AddrAdd(link netlink.Link, addr *netlink.Addr) error {
	l, err := k.find(link)
	if err != nil {
		return err
	}
	c, _ := globalAddr(*addr)
	if err := k.log("addr add %s %s", l.name, c); err != nil {
		return err
	}
	if contains(l.addrs, c) {
		return unix.EEXIST
	}
	l.addrs = append(l.addrs, c)
	if l.up {
		k.addPrefixRoutes(l)
	}
	return nil
}

func (k *fakeKernel) AddrDel(link netlink.Link, addr *netlink.Addr) error {
	l, err := k.find(link)
	if err != nil {
		return err
	}
	c, _ := globalAddr(*addr)
	if err := k.log("addr del %s %s", l.name, c); err != nil {
		return err
	}
	if !contains(l.addrs, c) {
		return unix.EADDRNOTAVAIL
	}
	l.addrs = remove(l.addrs, c)
	pr := prefixRoute(l.index, c)
	if i := k.findRoute(&pr); i >= 0 {
		k.routes = slices.Delete(k.routes, i, i+1)
	}
	return nil
}

func (k *fakeKernel) vf(link netlink.Link, i int) (*fakeLink, *netlink.VfInfo, error) {
	l, err := k.find(link)
	if err != nil {
		return nil, nil, err
	}
	for j := range l.vfs {
		if l.vfs[j].ID == i {
			return l, &l.vfs[j], nil
		}
	}
	return nil, nil, unix.EINVAL
}

func (k *fakeKernel) LinkSetVfHardwareAddr(link netlink.Link, i int, hw net.HardwareAddr) error {
	l, v, err := k.vf(link, i)
	if err != nil {
		return err
	}
	v.Mac = hw
	return k.log("vf %s %d mac %s", l.name, i, hw)
}

func (k *fakeKernel) LinkSetVfVlan(link netlink.Link, i, vlan int) error {
	l, v, err := k.vf(link, i)
	if err != nil {
		return err
	}
	v.Vlan = vlan
	return k.log("vf %s %d vlan %d", l.name, i, vlan)
}

func (k *fakeKernel) LinkSetVfSpoofchk(link netlink.Link, i int, on bool) error {
	l, v, err := k.vf(link, i)
	if err != nil {
		return err
	}
	v.Spoofchk = on
	return k.log("vf %s %d spoofchk %v", l.name, i, on)
}

func (k *fakeKernel) LinkSetVfTrust(link netlink.Link, i int, on bool) error {
	l, v, err := k.vf(link, i)
	if err != nil {
		return err
	}
	v.Trust = 0
	if on {
		v.Trust = 1
	}
	return k.log("vf %s %d trust %v", l.name, i, on)
}

func (k *fakeKernel) RouteList(link netlink.Link, family int) ([]netlink.Route, error) {
	if k.defaultVia == 0 {
		return nil, nil
	}
	return []netlink.Route{{LinkIndex: k.defaultVia}}, nil
}

func (k *fakeKernel) RouteGetWithOptions(dst net.IP, o *netlink.RouteGetOptions) ([]netlink.Route, error) {
	if i, ok := k.routeVia[dst.String()]; ok {
		return []netlink.Route{{LinkIndex: i}}, nil
	}
	if k.defaultVia != 0 {
		return []netlink.Route{{LinkIndex: k.defaultVia}}, nil
	}
	return nil, unix.ENETUNREACH
}

// setNumVFs is what writing sriov_numvfs does: only from or to zero; new VFs have spoof
// checking on, no trust, no MAC and no VLAN.
func (k *fakeKernel) setNumVFs(pf string, n int) error {
	l := k.byName(pf)
	if l == nil {
		return unix.ENODEV
	}
	if err := k.log("numvfs %s %d", pf, n); err != nil {
		return err
	}
	if len(l.vfs) > 0 && n > 0 && n != len(l.vfs) {
		return unix.EBUSY
	}
	l.vfs = nil
	for i := 0; i < n; i++ {
		l.vfs = append(l.vfs, netlink.VfInfo{ID: i, Mac: net.HardwareAddr{0, 0, 0, 0, 0, 0}, Spoofchk: true})
	}
	return nil
}

// state renders every link, for comparing before and after.
func (k *fakeKernel) state() string {
	var lines []string
	for _, l := range k.links {
		lines = append(lines, fmt.Sprintf("%s %s mtu=%d up=%v master=%d bond=%d/%d/%d/%d/%d/%d/%d addrs=%v vfs=%v br=%v/%v", l.name, l.kind, l.mtu, l.up, l.master,
			l.bond.Mode, l.bond.Miimon, l.bond.LacpRate, l.bond.XmitHashPolicy, l.bond.AdSelect, l.bond.MinLinks, l.bond.Primary, l.addrs, l.vfs, l.stp, l.vlanFiltering))
	}
	for _, r := range k.routes {
		lines = append(lines, fmt.Sprintf("route dev %d %s", r.LinkIndex, toSnapRoute(r, k.names())))
	}
	sort.Strings(lines)
	return strings.Join(lines, "\n")
}

func (k *fakeKernel) opener() opener {
	return func() (linkOps, func(), error) {
		k.runs = append(k.runs, nil)
		return k, func() {}, nil
	}
}

var _ linkOps = (*fakeKernel)(nil)
