package network

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path"
	"slices"
	"sort"
	"strings"

	"github.com/vishvananda/netlink"
	"github.com/zclconf/go-cty/cty"

	"github.com/runbook/runbook/modules"
	"github.com/runbook/runbook/modules/host"
)

// The management-path guard: before a network module changes the running kernel, it works
// out which interfaces carry the SSH session the controller reaches this host over, and
// refuses a change that would take one of them down, change its MTU, remove its addresses,
// enslave it, remove it, change its VF count or a VF's VLAN or MAC, unless the task says
// on_management_path = "allow". docs/network-safety.md explains it.

// The kinds of change the guard knows.
const (
	changeEnslave = "enslave"
	changeRemove  = "remove"
	changeDown    = "down"
	changeAddress = "address"
	changeMTU     = "mtu"
	changeVFCount = "vf_count"
	changeVFVLAN  = "vf_vlan"
	changeVFMAC   = "vf_mac"
	// A bridge's STP and VLAN filtering change what it forwards (bridge_host.go).
	changeSTP           = "stp"
	changeVLANFiltering = "vlan_filtering"
)

// changeVerb says what a kind of change does to an interface.
var changeVerb = map[string]string{
	changeEnslave: "enslaves",
	changeRemove:  "removes",
	changeDown:    "takes down",
	changeAddress: "removes an address of",
	changeMTU:     "changes the MTU of",
	changeVFCount: "changes the number of VFs of",
	changeVFVLAN:  "changes the VLAN of the VF",
	changeVFMAC:   "changes the MAC address of the VF",
	// STP on: the ports listen and learn before they forward (twice the forward delay).
	changeSTP: "turns STP on or off on",
	// VLAN filtering on: frames of VLANs a port is not a member of are dropped.
	changeVLANFiltering: "turns VLAN filtering on or off on",
}

// pathChange is one change a module is about to make, as the guard sees it: the
// interface, the kind, and the module's own line for it.
type pathChange struct {
	Iface string
	Kind  string
	Line  string
}

const (
	policyRefuse = "refuse"
	policyAllow  = "allow"
)

// guardArg is the on_management_path argument bond, interface and sriov share.
func guardArg() modules.Arg {
	return modules.Arg{Name: "on_management_path", Type: cty.String, Default: cty.StringVal(policyRefuse), OneOf: []string{policyRefuse, policyAllow},
		Doc: `What to do with a runtime change that would take down (min_links above a bond's active ports included), re-address (remove an address), change the MTU or VF count of, enslave or remove an interface this SSH session runs over, or change the VLAN or MAC of a VF whose netdev is on it (the interface that holds the session's address, the one its route leaves by, and every bond slave, bridge port, VLAN parent or PF under them): "refuse" fails the task, in check mode too, before anything changes, naming the interface and how it carries the session; "allow" makes the change (the session may be cut). See docs/network-safety.md.`}
}

// pathLink is a link as the guard needs it.
type pathLink struct {
	Name     string
	AltNames []string // the kernel finds the link by these as by its name
	Index    int
	Kind     string
	Master   int    // index of its bond, bridge, VRF or Open vSwitch datapath, 0 for none
	Parent   int    // index of its VLAN/macvlan/ipvlan parent, 0 for none
	PF       string // the physical function of a VF, "" otherwise
	Addrs    []netip.Prefix
	// Underlay: for a tunnel, the links its packets leave by (its lower device, or the
	// route to its remote end); nil when that could not be worked out.
	Underlay []int
}

// pathSnap is what the guard reads of the host: links, which carry a default route, and
// the interfaces each session connection's route may leave by.
type pathSnap struct {
	Links   []pathLink
	Default map[int]bool
	Egress  [][]int // per connection of the session: every output link of its route
}

// parentKinds are the link kinds whose parent index is a device under them in this
// namespace (a veth's names its peer, which is not under it).
var parentKinds = []string{"vlan", "macvlan", "macvtap", "ipvlan", "ipvtap"}

// tunnelKinds are the link kinds whose packets leave by another interface (the underlay),
// which the link graph does not show.
var tunnelKinds = []string{"wireguard", "tuntap", "tun", "gre", "gretap", "ip6gre", "ip6gretap", "erspan", "ip6erspan",
	"vxlan", "geneve", "ipip", "sit", "ip6tnl", "vti", "vti6", "xfrm", "bareudp", "gtp"}

// kindOVS is the kind of an Open vSwitch datapath (ovs-system) and of its internal ports.
const kindOVS = "openvswitch"

// mgmtPath is the result: the interfaces that carry the session and how each does, by
// interface index.
type mgmtPath struct {
	how   map[int]string
	order []int
	links map[int]*pathLink
	// lost says why the session could not be followed to its interfaces ("" when it
	// was); then every interface with an address or a default route counts, and those
	// under them.
	lost string
}

func (p *mgmtPath) add(l *pathLink, how string) bool {
	if _, ok := p.how[l.Index]; ok {
		return false
	}
	p.how[l.Index] = how
	p.order = append(p.order, l.Index)
	return true
}

// names lists the path's interfaces by name, in the order found.
func (p *mgmtPath) names() []string {
	var out []string
	for _, i := range p.order {
		out = append(out, p.links[i].Name)
	}
	return out
}

// reason says how the interface of that name carries the session ("" when it does not).
func (p *mgmtPath) reason(name string) string {
	for _, i := range p.order {
		if p.links[i].Name == name {
			return p.how[i]
		}
	}
	return ""
}

// managementPath works out the interfaces that carry the session, from a snapshot; sess
// is nil when it could not be located, and why says why.
func managementPath(snap *pathSnap, sess *host.SSHSession, why error) *mgmtPath {
	p := &mgmtPath{how: map[int]string{}, links: map[int]*pathLink{}}
	for i := range snap.Links {
		p.links[snap.Links[i].Index] = &snap.Links[i]
	}
	var queue []*pathLink
	// unlocated counts every interface that holds an address (link-local ones aside) or
	// carries a default route: the session cannot be followed, so any of them may carry it.
	unlocated := func(reason string) {
		if p.lost != "" {
			return
		}
		p.lost = reason + ", so every interface that holds an address or a default route counts"
		for i := range snap.Links {
			l := &snap.Links[i]
			var held []string
			for _, a := range l.Addrs {
				if !a.Addr().IsLinkLocalUnicast() {
					held = append(held, a.Addr().String())
				}
			}
			switch {
			case len(held) > 0:
				if !p.add(l, fmt.Sprintf("%s holds %s", l.Name, strings.Join(held, ", "))) {
					continue
				}
			case snap.Default[l.Index]:
				if !p.add(l, fmt.Sprintf("%s carries a default route", l.Name)) {
					continue
				}
			default:
				continue
			}
			queue = append(queue, l)
		}
	}
	switch {
	case sess == nil:
		reason := "this SSH session could not be located"
		if why != nil {
			reason += " (" + why.Error() + ")"
		}
		unlocated(reason)
	case sess.OtherNetns:
		// The session is in another network namespace: nothing here carries it.
		return p
	case sess.Lost != "":
		unlocated(fmt.Sprintf("this SSH session (%s) cannot be followed to an interface: %s", sess.Source, sess.Lost))
	default:
		for i, c := range sess.Conns {
			local := c.Local.Addr()
			for j := range snap.Links {
				l := &snap.Links[j]
				for _, a := range l.Addrs {
					if a.Addr().WithZone("") == local {
						if p.add(l, fmt.Sprintf("%s holds %s, this SSH session's address (peer %s)", l.Name, local, c.Peer.Addr())) {
							queue = append(queue, l)
						}
					}
				}
			}
			if i < len(snap.Egress) {
				for _, idx := range snap.Egress[i] {
					if l := p.links[idx]; l != nil {
						if p.add(l, fmt.Sprintf("%s is the way out to %s, this SSH session's peer (route from %s)", l.Name, c.Peer.Addr(), local)) {
							queue = append(queue, l)
						}
					}
				}
			}
		}
		if len(queue) == 0 {
			var locals []string
			for _, c := range sess.Conns {
				locals = append(locals, c.Local.Addr().String())
			}
			unlocated(fmt.Sprintf("no interface here holds this SSH session's address %s (%s)", strings.Join(locals, ", "), sess.Source))
		}
	}
	// Every device under those, as deep as it goes.
	for len(queue) > 0 {
		up := queue[0]
		queue = queue[1:]
		carries := "which carries the session"
		if p.lost != "" {
			carries = "which may carry the session"
		}
		var lowers []*pathLink
		for i := range snap.Links {
			if l := &snap.Links[i]; l.Master == up.Index && l.Index != up.Index {
				lowers = append(lowers, l)
			}
		}
		sort.Slice(lowers, func(i, j int) bool { return lowers[i].Name < lowers[j].Name })
		for _, l := range lowers {
			role := "enslaved to"
			switch up.Kind {
			case "bond":
				role = "a slave of"
			case "bridge", "team":
				role = "a port of"
			case "vrf":
				role = "in the VRF"
			case kindOVS:
				role = "a port of the Open vSwitch datapath"
			}
			if p.add(l, fmt.Sprintf("%s is %s %s, %s", l.Name, role, up.Name, carries)) {
				queue = append(queue, l)
			}
		}
		if slices.Contains(parentKinds, up.Kind) {
			if l := p.links[up.Parent]; l != nil && l.Index != up.Index {
				if p.add(l, fmt.Sprintf("%s is the parent of %s (%s), %s", l.Name, up.Name, up.Kind, carries)) {
					queue = append(queue, l)
				}
			}
		}
		if up.PF != "" {
			for i := range snap.Links {
				if l := &snap.Links[i]; l.Name == up.PF && p.add(l, fmt.Sprintf("%s is the physical function of %s, a VF %s", up.PF, up.Name, carries)) {
					queue = append(queue, l)
				}
			}
		}
		// An Open vSwitch internal port: its packets leave by the datapath's other
		// ports, and which bridge of the datapath does not show here; all of them count.
		if m := p.links[up.Master]; m != nil && m.Kind == kindOVS && m.Index != up.Index {
			if p.add(m, fmt.Sprintf("%s is the Open vSwitch datapath of %s, %s", m.Name, up.Name, carries)) {
				queue = append(queue, m)
			}
		}
		if slices.Contains(tunnelKinds, up.Kind) {
			if up.Underlay == nil {
				unlocated(fmt.Sprintf("%s, on the path, is a %s tunnel whose underlay cannot be worked out", up.Name, up.Kind))
				continue
			}
			for _, idx := range up.Underlay {
				if l := p.links[idx]; l != nil && l.Index != up.Index {
					if p.add(l, fmt.Sprintf("%s carries the packets of %s (%s tunnel), %s", l.Name, up.Name, up.Kind, carries)) {
						queue = append(queue, l)
					}
				}
			}
		}
	}
	return p
}

// refusal names the changes that touch the path, or is nil when none does. A change's
// interface is found by name or alternative name in the snapshot, else by resolve (the
// kernel's lookup), and compared by index.
func (p *mgmtPath) refusal(changes []pathChange, resolve func(string) int) []string {
	var out []string
	seen := map[string]bool{}
	for _, c := range changes {
		idx := 0
		for _, l := range p.links {
			if l.Name == c.Iface {
				idx = l.Index
				break
			}
		}
		if idx == 0 {
			for _, l := range p.links {
				if slices.Contains(l.AltNames, c.Iface) {
					idx = l.Index
					break
				}
			}
		}
		if idx == 0 && resolve != nil {
			idx = resolve(c.Iface)
		}
		how, ok := p.how[idx]
		if !ok {
			continue
		}
		name := p.links[idx].Name
		if name != c.Iface {
			name += " (" + c.Iface + ")"
		}
		line := fmt.Sprintf("%q %s %s: %s", c.Line, changeVerb[c.Kind], name, how)
		if !seen[line] {
			seen[line] = true
			out = append(out, line)
		}
	}
	return out
}

// errManagementPath is the guard's refusal.
var errManagementPath = errors.New("refused: the change would touch the interfaces this SSH session runs over")

// sessionFinder locates the session; modules take it from their struct, tests give one.
type sessionFinder func() (*host.SSHSession, error)

// findSession is the finder a module uses when its own is nil.
var findSession sessionFinder = func() (*host.SSHSession, error) { return host.SessionFinder{}.FindSSHSession() }

// guardChanges checks changes against the session's path and returns the error that
// refuses them (policy "refuse") or the warnings that say they were let through ("allow").
// Nothing is read when no change is of a guarded kind.
func guardChanges(ops linkOps, f *fileTree, find sessionFinder, policy string, changes []pathChange) ([]string, error) {
	if len(changes) == 0 {
		return nil, nil
	}
	if find == nil {
		find = findSession
	}
	sess, why := find()
	snap, err := readPathSnap(ops, f, sess)
	if err != nil {
		return nil, fmt.Errorf("management-path guard: %w", err)
	}
	p := managementPath(snap, sess, why)
	hits := p.refusal(changes, func(name string) int {
		if l, err := ops.LinkByName(name); err == nil {
			return l.Attrs().Index
		}
		return 0
	})
	if len(hits) == 0 {
		return nil, nil
	}
	if policy == policyAllow {
		var out []string
		for _, h := range hits {
			out = append(out, `on_management_path = "allow": `+h)
		}
		return out, nil
	}
	lost := ""
	if p.lost != "" {
		lost = "; " + p.lost
	}
	return nil, fmt.Errorf("%w: %s%s. To make the change anyway, set on_management_path = \"allow\" on the task (the session may be cut)",
		errManagementPath, strings.Join(hits, "; "), lost)
}

// Bounds on the snapshot: a host with more links than this is refused rather than read
// in part; at most maxTunnelRoutes tunnels have their underlay looked up (the others count
// as not worked out).
const (
	maxPathLinks    = 8192
	maxTunnelRoutes = 64
)

// readPathSnap reads the links, addresses and routes the guard needs.
func readPathSnap(ops linkOps, f *fileTree, sess *host.SSHSession) (*pathSnap, error) {
	links, err := ops.LinkList()
	if err != nil {
		return nil, fmt.Errorf("list links: %w", err)
	}
	if len(links) > maxPathLinks {
		return nil, fmt.Errorf("%d links, more than the %d the guard reads", len(links), maxPathLinks)
	}
	snap := &pathSnap{Default: map[int]bool{}}
	kinds := map[int]string{}
	for _, l := range links {
		kinds[l.Attrs().Index] = l.Type()
	}
	lookups := 0
	for _, l := range links {
		a := l.Attrs()
		pl := pathLink{Name: a.Name, AltNames: slices.Clone(a.AltNames), Index: a.Index, Kind: l.Type(), Master: a.MasterIndex, Parent: a.ParentIndex}
		addrs, err := ops.AddrList(l, familyAll)
		if err != nil {
			return nil, fmt.Errorf("read addresses of %s: %w", a.Name, err)
		}
		for _, ad := range addrs {
			if ad.IPNet == nil {
				continue
			}
			ip, ok := netip.AddrFromSlice(ad.IP)
			if !ok {
				continue
			}
			ones, _ := ad.Mask.Size()
			pl.Addrs = append(pl.Addrs, netip.PrefixFrom(ip.Unmap(), ones))
		}
		pl.PF = physFn(f, a.Name)
		if slices.Contains(tunnelKinds, pl.Kind) {
			lower, remote, local := tunnelEnds(l)
			switch {
			case lower > 0:
				pl.Underlay = []int{lower}
			case remote.IsValid() && !remote.IsMulticast() && !remote.IsUnspecified() && lookups < maxTunnelRoutes:
				lookups++
				pl.Underlay = routeOut(ops, remote, local, 0)
				if len(pl.Underlay) == 0 {
					pl.Underlay = nil
				}
			}
		}
		snap.Links = append(snap.Links, pl)
	}
	routes, err := ops.RouteList(nil, familyAll)
	if err != nil {
		return nil, fmt.Errorf("list routes: %w", err)
	}
	for _, r := range routes {
		if r.Dst != nil {
			if ones, _ := r.Dst.Mask.Size(); ones != 0 {
				continue
			}
		}
		if r.LinkIndex > 0 {
			snap.Default[r.LinkIndex] = true
		}
		for _, nh := range r.MultiPath {
			if nh != nil && nh.LinkIndex > 0 {
				snap.Default[nh.LinkIndex] = true
			}
		}
	}
	if sess != nil && !sess.OtherNetns {
		for _, c := range sess.Conns {
			// The route is looked up in the VRF of the interface that holds the local
			// address, as the kernel routes the session's packets.
			vrf := 0
			for _, l := range snap.Links {
				if l.Master > 0 && kinds[l.Master] == "vrf" && slices.ContainsFunc(l.Addrs, func(p netip.Prefix) bool { return p.Addr() == c.Local.Addr() }) {
					vrf = l.Master
				}
			}
			snap.Egress = append(snap.Egress, routeOut(ops, c.Peer.Addr(), c.Local.Addr(), vrf))
		}
	}
	return snap, nil
}

// routeOut lists every interface the route from src to dst may leave by: the one the
// kernel picks now, and, from the whole matching route (FIB match), every next hop of a
// multipath route, since a flow may move to another. vrf (an index) is the VRF to look in.
func routeOut(ops linkOps, dst, src netip.Addr, vrf int) []int {
	var out []int
	addIdx := func(i int) {
		if i > 0 && !slices.Contains(out, i) {
			out = append(out, i)
		}
	}
	for _, fib := range []bool{false, true} {
		o := &netlink.RouteGetOptions{FIBMatch: fib, OifIndex: vrf}
		if src.IsValid() && !src.IsUnspecified() {
			o.SrcAddr = net.IP(src.AsSlice())
		}
		rs, err := ops.RouteGetWithOptions(net.IP(dst.AsSlice()), o)
		if err != nil {
			continue
		}
		for _, r := range rs {
			addIdx(r.LinkIndex)
			for _, nh := range r.MultiPath {
				if nh != nil {
					addIdx(nh.LinkIndex)
				}
			}
		}
	}
	return out
}

// tunnelEnds reads what netlink says of a tunnel: its lower device (0: none given), its
// remote end and its local address (invalid when not given).
func tunnelEnds(l netlink.Link) (int, netip.Addr, netip.Addr) {
	conv := func(ip net.IP) netip.Addr {
		a, _ := netip.AddrFromSlice(ip)
		return a.Unmap()
	}
	switch t := l.(type) {
	case *netlink.Vxlan:
		return t.VtepDevIndex, conv(t.Group), conv(t.SrcAddr)
	case *netlink.Geneve:
		return int(t.Link), conv(t.Remote), netip.Addr{}
	case *netlink.Gretun:
		return int(t.Link), conv(t.Remote), conv(t.Local)
	case *netlink.Gretap:
		return 0, conv(t.Remote), conv(t.Local)
	case *netlink.Iptun:
		return int(t.Link), conv(t.Remote), conv(t.Local)
	case *netlink.Ip6tnl:
		return int(t.Link), conv(t.Remote), conv(t.Local)
	case *netlink.Sittun:
		return int(t.Link), conv(t.Remote), conv(t.Local)
	case *netlink.Vti:
		return int(t.Link), conv(t.Remote), conv(t.Local)
	}
	return 0, netip.Addr{}, netip.Addr{}
}

// physFn names the physical function of a VF: /sys/class/net/NAME/device/physfn/net/*.
func physFn(f *fileTree, name string) string {
	if !validIfName(name) {
		return ""
	}
	d, err := os.Open(f.Path(path.Join(sysClassNet, name, "device", "physfn", "net")))
	if err != nil {
		return ""
	}
	defer d.Close()
	names, _ := d.Readdirnames(4)
	if len(names) == 1 && validIfName(names[0]) {
		return names[0]
	}
	return ""
}

// vfNetdev names the netdev of a PF's VF in this namespace:
// /sys/class/net/PF/device/virtfnN/net/*; "" when it has none here (bound to vfio, in a
// guest or another namespace).
func vfNetdev(f *fileTree, pf string, vf int) string {
	if !validIfName(pf) || vf < 0 {
		return ""
	}
	d, err := os.Open(f.Path(path.Join(sysClassNet, pf, "device", fmt.Sprintf("virtfn%d", vf), "net")))
	if err != nil {
		return ""
	}
	defer d.Close()
	names, _ := d.Readdirnames(4)
	if len(names) == 1 && validIfName(names[0]) {
		return names[0]
	}
	return ""
}
