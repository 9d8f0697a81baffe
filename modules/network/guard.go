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
// enslave it, remove it or change its VF count, unless the task says
// on_management_path = "allow". docs/network-safety.md explains it.

// The kinds of change the guard knows.
const (
	changeEnslave = "enslave"
	changeRemove  = "remove"
	changeDown    = "down"
	changeAddress = "address"
	changeMTU     = "mtu"
	changeVFCount = "vf_count"
)

// changeVerb says what a kind of change does to an interface.
var changeVerb = map[string]string{
	changeEnslave: "enslaves",
	changeRemove:  "removes",
	changeDown:    "takes down",
	changeAddress: "removes an address of",
	changeMTU:     "changes the MTU of",
	changeVFCount: "changes the number of VFs of",
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
		Doc: `What to do with a runtime change that would take down, re-address (remove an address), change the MTU or VF count of, enslave or remove an interface this SSH session runs over (the interface that holds the session's address, the one its route leaves by, and every bond slave, bridge port, VLAN parent or PF under them): "refuse" fails the task, in check mode too, before anything changes, naming the interface and how it carries the session; "allow" makes the change (the session may be cut). See docs/network-safety.md.`}
}

// pathLink is a link as the guard needs it.
type pathLink struct {
	Name   string
	Index  int
	Kind   string
	Master int    // index of its bond or bridge, 0 for none
	Parent int    // index of its VLAN/macvlan/ipvlan parent, 0 for none
	PF     string // the physical function of a VF, "" otherwise
	Addrs  []netip.Prefix
}

// pathSnap is what the guard reads of the host: links, which carry a default route, and
// the interface each session connection's route leaves by.
type pathSnap struct {
	Links   []pathLink
	Default map[int]bool
	Egress  []int // per connection of the session: the route's output link, 0 unknown
}

// parentKinds are the link kinds whose parent index is a device under them in this
// namespace (a veth's names its peer, which is not under it).
var parentKinds = []string{"vlan", "macvlan", "macvtap", "ipvlan", "ipvtap"}

// mgmtPath is the result: the interfaces that carry the session and how each does.
type mgmtPath struct {
	how   map[string]string
	order []string
	// lost says why the session could not be located ("" when it was); then every
	// interface with an address or a default route counts, and those under them.
	lost string
}

func (p *mgmtPath) add(name, how string) bool {
	if _, ok := p.how[name]; ok {
		return false
	}
	p.how[name] = how
	p.order = append(p.order, name)
	return true
}

// managementPath works out the interfaces that carry the session, from a snapshot; sess
// is nil when it could not be located, and why says why.
func managementPath(snap *pathSnap, sess *host.SSHSession, why error) *mgmtPath {
	p := &mgmtPath{how: map[string]string{}}
	byIndex := map[int]*pathLink{}
	for i := range snap.Links {
		byIndex[snap.Links[i].Index] = &snap.Links[i]
	}
	var tops []string
	switch {
	case sess == nil:
		p.lost = "this SSH session could not be located"
		if why != nil {
			p.lost += " (" + why.Error() + ")"
		}
		p.lost += ", so every interface that holds an address or a default route counts"
		for _, l := range snap.Links {
			var held []string
			for _, a := range l.Addrs {
				if !a.Addr().IsLinkLocalUnicast() {
					held = append(held, a.Addr().String())
				}
			}
			switch {
			case len(held) > 0:
				p.add(l.Name, fmt.Sprintf("%s holds %s", l.Name, strings.Join(held, ", ")))
			case snap.Default[l.Index]:
				p.add(l.Name, fmt.Sprintf("%s carries a default route", l.Name))
			default:
				continue
			}
			tops = append(tops, l.Name)
		}
	case sess.OtherNetns:
		// The session is in another network namespace: nothing here carries it.
		return p
	default:
		for i, c := range sess.Conns {
			local := c.Local.Addr()
			for _, l := range snap.Links {
				for _, a := range l.Addrs {
					if a.Addr().WithZone("") == local {
						if p.add(l.Name, fmt.Sprintf("%s holds %s, this SSH session's address (peer %s)", l.Name, local, c.Peer.Addr())) {
							tops = append(tops, l.Name)
						}
					}
				}
			}
			if i < len(snap.Egress) {
				if l := byIndex[snap.Egress[i]]; l != nil {
					if p.add(l.Name, fmt.Sprintf("%s is the way out to %s, this SSH session's peer (route from %s)", l.Name, c.Peer.Addr(), local)) {
						tops = append(tops, l.Name)
					}
				}
			}
		}
	}
	// Every device under those, as deep as it goes.
	byName := map[string]*pathLink{}
	for i := range snap.Links {
		byName[snap.Links[i].Name] = &snap.Links[i]
	}
	queue := slices.Clone(tops)
	for len(queue) > 0 {
		up := byName[queue[0]]
		queue = queue[1:]
		if up == nil {
			continue
		}
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
			case "bridge":
				role = "a port of"
			case "team":
				role = "a port of"
			}
			if p.add(l.Name, fmt.Sprintf("%s is %s %s, %s", l.Name, role, up.Name, carries)) {
				queue = append(queue, l.Name)
			}
		}
		if slices.Contains(parentKinds, up.Kind) {
			if l := byIndex[up.Parent]; l != nil && l.Index != up.Index {
				if p.add(l.Name, fmt.Sprintf("%s is the parent of %s (%s), %s", l.Name, up.Name, up.Kind, carries)) {
					queue = append(queue, l.Name)
				}
			}
		}
		if up.PF != "" && byName[up.PF] != nil {
			if p.add(up.PF, fmt.Sprintf("%s is the physical function of %s, a VF %s", up.PF, up.Name, carries)) {
				queue = append(queue, up.PF)
			}
		}
	}
	return p
}

// refusal names the changes that touch the path, or is nil when none does.
func (p *mgmtPath) refusal(changes []pathChange) []string {
	var out []string
	seen := map[string]bool{}
	for _, c := range changes {
		how, ok := p.how[c.Iface]
		if !ok {
			continue
		}
		line := fmt.Sprintf("%q %s %s: %s", c.Line, changeVerb[c.Kind], c.Iface, how)
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
	hits := p.refusal(changes)
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
// in part.
const maxPathLinks = 8192

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
	for _, l := range links {
		a := l.Attrs()
		pl := pathLink{Name: a.Name, Index: a.Index, Kind: l.Type(), Master: a.MasterIndex, Parent: a.ParentIndex}
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
			idx := 0
			rs, err := ops.RouteGetWithOptions(net.IP(c.Peer.Addr().AsSlice()), &netlink.RouteGetOptions{SrcAddr: net.IP(c.Local.Addr().AsSlice())})
			if err == nil && len(rs) > 0 {
				idx = rs[0].LinkIndex
			}
			snap.Egress = append(snap.Egress, idx)
		}
	}
	return snap, nil
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
