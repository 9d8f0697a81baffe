package network

import (
	"encoding/json"
	"fmt"
	"net"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/runbook/runbook/modules/host"
)

// needOrSkip skips a test whose prerequisite is missing here, and fails it under CI=true,
// where every prerequisite is installed and a skip would hide a test that never ran.
func needOrSkip(t *testing.T, format string, args ...any) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatalf("CI=true and "+format, args...)
	}
	t.Skipf(format, args...)
}

// nsState renders links as the kernel has them, read here without the snapshot's code:
// kind, MTU, state, master, VLAN, addresses and the routes that are not the kernel's own,
// in every table (a route's device by name: a link made again has another index).
func nsState(t *testing.T, h *netlink.Handle, names []string) string {
	t.Helper()
	var out []string
	for _, n := range names {
		l, err := h.LinkByName(n)
		if err != nil {
			out = append(out, n+" absent")
			continue
		}
		a := l.Attrs()
		master := "-"
		if m, err := h.LinkByIndex(a.MasterIndex); a.MasterIndex != 0 && err == nil {
			master = m.Attrs().Name
		}
		vlan := ""
		if v, ok := l.(*netlink.Vlan); ok {
			p, _ := h.LinkByIndex(a.ParentIndex)
			vlan = fmt.Sprintf(" vlan %d on %s", v.VlanId, p.Attrs().Name)
		}
		addrs, err := h.AddrList(l, netlink.FAMILY_ALL)
		if err != nil {
			t.Fatal(err)
		}
		var as []string
		for _, ad := range addrs {
			if ad.Scope == unix.RT_SCOPE_UNIVERSE {
				as = append(as, ad.IPNet.String())
			}
		}
		slices.Sort(as)
		routes, err := h.RouteListFiltered(netlink.FAMILY_ALL, &netlink.Route{LinkIndex: a.Index, Table: unix.RT_TABLE_UNSPEC}, netlink.RT_FILTER_OIF|netlink.RT_FILTER_TABLE)
		if err != nil {
			t.Fatal(err)
		}
		var rs []string
		for _, r := range routes {
			if r.Protocol != unix.RTPROT_KERNEL {
				rs = append(rs, fmt.Sprintf("%v via %v table %d proto %d metric %d", r.Dst, r.Gw, r.Table, r.Protocol, r.Priority))
			}
		}
		slices.Sort(rs)
		out = append(out, fmt.Sprintf("%s %s mtu %d up %v master %s%s addrs %v routes %v", n, l.Type(), a.MTU, a.Flags&net.FlagUp != 0, master, vlan, as, rs))
	}
	return strings.Join(out, "\n")
}

// TestRuntimeSnapNetns snapshots links on the real kernel, in a network namespace of the
// test's own, changes them the ways a network task does (MTU, down, addresses replaced, a
// static route deleted, a link enslaved into a bridge, a VLAN deleted, a dummy created),
// restores them and verifies: no difference, the kernel as it was (read independently),
// and a second restore changes nothing. (This kernel may lack bonding: a bridge is the
// master here; the fake kernel's tests cover bonds.)
func TestRuntimeSnapNetns(t *testing.T) {
	h := inTestNetns(t)
	must := func(what string, err error) {
		t.Helper()
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	link := func(name string) netlink.Link {
		t.Helper()
		l, err := h.LinkByName(name)
		must("link "+name, err)
		return l
	}
	addr := func(name, cidr string) {
		t.Helper()
		a, err := netlink.ParseAddr(cidr)
		must(cidr, err)
		a.Flags = unix.IFA_F_NODAD
		must(name+" addr "+cidr, h.AddrAdd(link(name), a))
	}
	staticRoute := func(name, dst, gw string, table int) *netlink.Route {
		_, d, _ := net.ParseCIDR(dst)
		return &netlink.Route{LinkIndex: link(name).Attrs().Index, Dst: d, Gw: net.ParseIP(gw), Table: table}
	}
	for _, v := range []string{"rbs0", "rbs1"} {
		attrs := netlink.NewLinkAttrs()
		attrs.Name = v
		must("veth "+v, h.LinkAdd(&netlink.Veth{LinkAttrs: attrs, PeerName: v + "p"}))
		must("up", h.LinkSetUp(link(v+"p")))
		must("up", h.LinkSetUp(link(v)))
	}
	battrs := netlink.NewLinkAttrs()
	battrs.Name = "rbbr0"
	must("bridge", h.LinkAdd(&netlink.Bridge{LinkAttrs: battrs}))
	must("up", h.LinkSetUp(link("rbbr0")))
	addr("rbbr0", "10.2.0.1/24")
	addr("rbs0", "10.1.0.1/24")
	addr("rbs0", "10.1.0.2/24")
	addr("rbs0", "2001:db8:1::1/64")
	must("route", h.RouteAdd(staticRoute("rbs0", "198.51.100.0/24", "10.1.0.254", 0)))
	must("route", h.RouteAdd(staticRoute("rbs0", "0.0.0.0/0", "10.1.0.254", 100)))
	must("route", h.RouteAdd(staticRoute("rbs0", "2001:db8:99::/64", "2001:db8:1::fe", 0)))
	// Multipath routes over rbs0 and rbbr0: one stays (its hop on rbs0 is dead while rbs0
	// is down), one is deleted by the change.
	for _, dst := range []string{"192.0.2.128/25", "203.0.113.128/25"} {
		_, d, _ := net.ParseCIDR(dst)
		must("multipath "+dst, h.RouteAdd(&netlink.Route{Dst: d, MultiPath: []*netlink.NexthopInfo{
			{LinkIndex: link("rbs0").Attrs().Index, Gw: net.ParseIP("10.1.0.253")},
			{LinkIndex: link("rbbr0").Attrs().Index, Gw: net.ParseIP("10.2.0.253"), Hops: 1}}}))
	}
	// A second bridge, deleted by the change and made again by restore, address and all.
	battrs = netlink.NewLinkAttrs()
	battrs.Name = "rbbr1"
	must("bridge", h.LinkAdd(&netlink.Bridge{LinkAttrs: battrs}))
	must("up", h.LinkSetUp(link("rbbr1")))
	addr("rbbr1", "10.3.0.1/24")
	// With STP on (IFLA_BR_STP_STATE, which netlink's Bridge type does not carry): made
	// again, it gets STP back.
	must("stp", nlSetBridgeSTP(link("rbbr1").Attrs().Index, true))
	must("route", h.RouteAdd(staticRoute("rbbr1", "198.51.100.128/25", "10.3.0.254", 0)))
	// A VLAN on rbs0, deleted by the change, where the kernel has 802.1Q (netlink loads
	// 8021q by itself where it is a module).
	vattrs := netlink.NewLinkAttrs()
	vattrs.Name, vattrs.ParentIndex = "rbs0.7", link("rbs0").Attrs().Index
	hasVLAN := true
	if err := h.LinkAdd(&netlink.Vlan{LinkAttrs: vattrs, VlanId: 7}); err != nil {
		// Not a missing prerequisite: the test goes on without it (this machine's kernel has
		// no 8021q); the fake kernel's cases cover a VLAN's restore.
		t.Logf("no 802.1Q VLANs in this kernel (%v): the VLAN is left out", err)
		hasVLAN = false
	} else {
		must("up", h.LinkSetUp(link("rbs0.7")))
		addr("rbs0.7", "10.7.0.1/24")
	}

	names := []string{"rbs0", "rbs1", "rbbr0", "rbbr1", "rbd0"}
	all := slices.Clone(names)
	if hasVLAN {
		all = append(all, "rbs0.7")
	}
	f := &fileTree{host.Root(t.TempDir())}
	snap, err := snapshotRuntime(h, f, names)
	must("snapshot", err)
	var got []string
	for _, l := range snap.Links {
		got = append(got, l.Name)
	}
	if want := all; !slices.Equal(got, want) {
		t.Fatalf("snapshot of %q, want %q", got, want)
	}
	if r := snap.find("rbs0"); len(r.Routes) == 0 || len(r.Addrs) != 3 || r.MTU != 1500 || !r.Up {
		t.Fatalf("rbs0 snapshot: %+v", r)
	}
	// The journal keeps it as JSON.
	js, err := json.Marshal(snap)
	must("json", err)
	snap = &runtimeSnap{}
	must("json", json.Unmarshal(js, snap))
	before := nsState(t, h, all)
	t.Logf("before:\n%s", before)
	if lines, err := snap.restore(h, f); err != nil || len(lines) != 0 {
		t.Fatalf("restore with nothing changed: %q %v", lines, err)
	}

	// The change.
	must("mtu", h.LinkSetMTU(link("rbs0"), 1400))
	must("route del", h.RouteDel(staticRoute("rbs0", "198.51.100.0/24", "10.1.0.254", 0)))
	_, mp, _ := net.ParseCIDR("203.0.113.128/25")
	must("multipath del", h.RouteDel(&netlink.Route{Dst: mp}))
	for _, a := range []string{"10.1.0.1/24", "10.1.0.2/24", "2001:db8:1::1/64"} {
		ad, _ := netlink.ParseAddr(a)
		if err := h.AddrDel(link("rbs0"), ad); err != nil && err != unix.EADDRNOTAVAIL {
			t.Fatalf("addr del %s: %v", a, err)
		}
	}
	addr("rbs0", "10.1.0.9/24") // primary now: deleting it later takes any secondary in 10.1.0.0/24 with it
	must("down", h.LinkSetDown(link("rbs0")))
	must("enslave", h.LinkSetMaster(link("rbs1"), link("rbbr0")))
	must("stp", nlSetBridgeSTP(link("rbbr0").Attrs().Index, true))
	if hasVLAN {
		must("vlan del", h.LinkDel(link("rbs0.7")))
	}
	must("bridge del", h.LinkDel(link("rbbr1")))
	dattrs := netlink.NewLinkAttrs()
	dattrs.Name = "rbd0"
	created := "dummy"
	if err := h.LinkAdd(&netlink.Dummy{LinkAttrs: dattrs}); err != nil {
		t.Logf("no dummy links in this kernel (%v): a bridge is created instead", err)
		created = "bridge"
		must("bridge", h.LinkAdd(&netlink.Bridge{LinkAttrs: dattrs}))
	}
	must("up", h.LinkSetUp(link("rbd0")))
	addr("rbd0", "203.0.113.1/24")
	changed := nsState(t, h, all)
	if changed == before {
		t.Fatal("the change changed nothing")
	}
	diff, err := snap.verify(h, f)
	must("verify", err)
	t.Logf("verify after the change:\n%s", strings.Join(diff, "\n"))
	for _, want := range []string{"rbs0: mtu is 1400, was 1500", "rbs0: state is down, was up", "rbs1: master is rbbr0, was (none)", "rbbr0: slave rbs1 is extra",
		"rbd0: is there (" + created + "), was not", "rbbr1: is not there, was (bridge)", "rbs0: address 10.1.0.1/24 is missing", "rbs0: address 10.1.0.9/24 is extra", "rbbr0: stp is on, was off",
		"rbs0: route 198.51.100.0/24 via 10.1.0.254 proto boot scope global metric 0 is missing"} {
		if !slices.Contains(diff, want) {
			t.Errorf("verify does not say %q", want)
		}
	}

	lines, err := snap.restore(h, f)
	t.Logf("restore:\n%s", strings.Join(lines, "\n"))
	must("restore", err)
	wantLines := []string{"rbd0: deleted (created by the transaction)", "rbbr1: made again (bridge; gone)", "rbbr1: stp off → on",
		"rbbr0: stp on → off", "rbbr1: down → up",
		"rbbr1: address 10.3.0.1/24 added back", "rbbr1: route 198.51.100.128/25 via 10.3.0.254 proto boot scope global metric 0 added back", "rbs1: master rbbr0 → none",
		"rbs0: mtu 1400 → 1500", "rbs0: down → up", "rbs0: address 10.1.0.9/24 removed", "rbs0: address 10.1.0.1/24 added back",
		"rbs0: address 2001:db8:1::1/64 added back", "rbs0: route 198.51.100.0/24 via 10.1.0.254 proto boot scope global metric 0 added back",
		"rbs0: route default via 10.1.0.254 table 100 proto boot scope global metric 0 added back",
		"rbs0: route 203.0.113.128/25 proto boot scope global metric 0 nexthop via 10.1.0.253 dev rbs0 weight 1 nexthop via 10.2.0.253 dev rbbr0 weight 2 added back"}
	if hasVLAN {
		wantLines = append(wantLines, "rbs0.7: made again (vlan; gone)", "rbs0.7: address 10.7.0.1/24 added back")
	}
	for _, want := range wantLines {
		if !slices.Contains(lines, want) {
			t.Errorf("restore does not say %q", want)
		}
	}
	if d, err := snap.verify(h, f); err != nil || len(d) != 0 {
		t.Errorf("verify after restore: %q %v", d, err)
	}
	if after := nsState(t, h, all); after != before {
		t.Errorf("the kernel is\n%s\nwas\n%s", after, before)
	}
	if again, err := snap.restore(h, f); err != nil || len(again) != 0 {
		t.Errorf("restore again: %q %v", again, err)
	}
}
