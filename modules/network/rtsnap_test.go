package network

import (
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/vishvananda/netlink"
	"github.com/zclconf/go-cty/cty"

	"github.com/runbook/runbook/modules"
	"github.com/runbook/runbook/modules/host"
	"github.com/runbook/runbook/modules/moduletest"
)

// fakeState renders the fake kernel by names (not indexes, which a link made again
// changes), routes included, for comparing a restored kernel with the one snapshotted.
func fakeState(k *fakeKernel) string {
	name := func(i int) string {
		if i == 0 {
			return "-"
		}
		if l := k.links[i]; l != nil {
			return l.name
		}
		return fmt.Sprintf("#%d", i)
	}
	var lines []string
	for _, l := range k.links {
		b := l.bond
		lines = append(lines, fmt.Sprintf("%s %s mtu=%d up=%v master=%s parent=%s vlan=%d bond=%d/%d/%d/%d/%d/%d/%s addrs=%v vfs=%v",
			l.name, l.kind, l.mtu, l.up, name(l.master), name(l.parent), l.vlanID,
			b.Mode, b.Miimon, b.LacpRate, b.XmitHashPolicy, b.AdSelect, b.MinLinks, name(b.Primary), l.addrs, l.vfs))
	}
	for _, r := range k.routes {
		lines = append(lines, fmt.Sprintf("route dev %s %s", name(r.LinkIndex), toSnapRoute(r, k.names())))
	}
	sort.Strings(lines)
	return strings.Join(lines, "\n")
}

// route is a static route on a fake link.
func route(k *fakeKernel, dev, dst, gw string) {
	l := k.byName(dev)
	r := netlink.Route{LinkIndex: l.index, Gw: net.ParseIP(gw)}
	if dst != "default" {
		_, r.Dst, _ = net.ParseCIDR(dst)
	}
	if err := k.RouteAdd(&r); err != nil {
		panic(fmt.Sprintf("route %s %s via %s: %v", dev, dst, gw, err))
	}
}

// allow lets a module change what the test's own session might run over (the fake kernel
// holds no session's path; the guard is not what these tests are about).
func allow(args map[string]cty.Value) map[string]cty.Value {
	return runtimeOnly(with(args, "on_management_path", s("allow")))
}

func sriovRuntime(args map[string]cty.Value) map[string]cty.Value {
	return with(args, "persist", cty.False, "on_management_path", s("allow"))
}

func mustApply(t *testing.T, m modules.Module, args map[string]cty.Value) {
	t.Helper()
	res, err := moduletest.Run(t, m, args, true)
	if err != nil || res.Status != modules.StatusChanged {
		t.Fatalf("apply: %v %+v", err, res)
	}
}

// TestRuntimeSnapRestore: for each kind of change the guard knows, and for links a change
// creates: snapshot, change (with the module's own apply code, or the kernel's calls), and
// restore from the snapshot as the journal stores it (JSON): the lines say what was
// restored, the kernel is as it was (by the fake's own rendering, not only verify's),
// verify finds no difference, and restore again changes nothing. Restore right after the
// snapshot changes nothing either.
func TestRuntimeSnapRestore(t *testing.T) {
	type env struct {
		k    *fakeKernel
		f    *fileTree
		snap *runtimeSnap // set before change runs
	}
	cases := []struct {
		name   string
		setup  func(t *testing.T, e *env)
		names  []string
		change func(t *testing.T, e *env)
		want   []string // restore's lines
	}{
		{"down, and the routes the kernel dropped with it", func(t *testing.T, e *env) {
			e.k.add(&fakeLink{name: "eth0", up: true, addrs: []string{"10.0.0.5/24"}})
			e.k.addPrefixRoutes(e.k.byName("eth0"))
			route(e.k, "eth0", "default", "10.0.0.1")
			route(e.k, "eth0", "198.51.100.0/24", "10.0.0.254")
		}, []string{"eth0"}, func(t *testing.T, e *env) {
			mustApply(t, Interface{root: e.f.Root, open: e.k.opener()}, allow(map[string]cty.Value{"name": s("eth0"), "state": s("down")}))
		}, []string{"eth0: down → up",
			"eth0: route default via 10.0.0.1 proto boot scope global metric 0 added back",
			"eth0: route 198.51.100.0/24 via 10.0.0.254 proto boot scope global metric 0 added back"}},

		{"down, with a multipath route over it and another link", func(t *testing.T, e *env) {
			for i, n := range []string{"eth0", "eth1"} {
				e.k.add(&fakeLink{name: n, up: true, addrs: []string{fmt.Sprintf("10.0.%d.5/24", i)}})
				e.k.addPrefixRoutes(e.k.byName(n))
			}
			_, dst, _ := net.ParseCIDR("198.51.100.0/24")
			if err := e.k.RouteAdd(&netlink.Route{Dst: dst, MultiPath: []*netlink.NexthopInfo{
				{LinkIndex: e.k.byName("eth0").index, Gw: net.ParseIP("10.0.0.1")},
				{LinkIndex: e.k.byName("eth1").index, Gw: net.ParseIP("10.0.1.1"), Hops: 2}}}); err != nil {
				t.Fatal(err)
			}
		}, []string{"eth0", "eth1"}, func(t *testing.T, e *env) {
			for _, n := range []string{"eth0", "eth1"} {
				mustApply(t, Interface{root: e.f.Root, open: e.k.opener()}, allow(map[string]cty.Value{"name": s(n), "state": s("down")}))
			}
		}, []string{"eth0: down → up", "eth1: down → up",
			"eth0: route 198.51.100.0/24 proto boot scope global metric 0 nexthop via 10.0.0.1 dev eth0 weight 1 nexthop via 10.0.1.1 dev eth1 weight 3 added back"}},

		{"mtu lowered, which clamps a VLAN on it", func(t *testing.T, e *env) {
			p := e.k.add(&fakeLink{name: "eth0", up: true, mtu: 9000})
			e.k.add(&fakeLink{name: "eth0.100", kind: "vlan", parent: p.index, vlanID: 100, up: true, mtu: 9000})
		}, []string{"eth0"}, func(t *testing.T, e *env) {
			mustApply(t, Interface{root: e.f.Root, open: e.k.opener()}, allow(map[string]cty.Value{"name": s("eth0"), "mtu": n(1500)}))
		}, []string{"eth0: mtu 1500 → 9000", "eth0.100: mtu 1500 → 9000"}},

		{"addresses replaced, a static route deleted", func(t *testing.T, e *env) {
			e.k.add(&fakeLink{name: "eth0", up: true, addrs: []string{"10.0.0.5/24", "10.0.0.6/24", "2001:db8::5/64"}})
			e.k.addPrefixRoutes(e.k.byName("eth0"))
			route(e.k, "eth0", "198.51.100.0/24", "10.0.0.254")
		}, []string{"eth0"}, func(t *testing.T, e *env) {
			mustApply(t, Interface{root: e.f.Root, open: e.k.opener()}, allow(map[string]cty.Value{"name": s("eth0"),
				"addresses": strs("192.0.2.9/24"), "exclusive": cty.True}))
			r := netlink.Route{LinkIndex: e.k.byName("eth0").index, Gw: net.ParseIP("10.0.0.254")}
			_, r.Dst, _ = net.ParseCIDR("198.51.100.0/24")
			if err := e.k.RouteDel(&r); err != nil && !strings.Contains(err.Error(), "no such process") {
				t.Fatal(err)
			}
			route(e.k, "eth0", "203.0.113.0/24", "192.0.2.1")
		}, []string{"eth0: address 192.0.2.9/24 removed",
			"eth0: address 10.0.0.5/24 added back", "eth0: address 10.0.0.6/24 added back", "eth0: address 2001:db8::5/64 added back",
			"eth0: route 203.0.113.0/24 via 192.0.2.1 proto boot scope global metric 0 removed",
			"eth0: route 198.51.100.0/24 via 10.0.0.254 proto boot scope global metric 0 added back"}},

		{"enslaved into a bond", func(t *testing.T, e *env) {
			b := e.k.add(&fakeLink{name: "bond0", kind: "bond", up: true, bond: bondDefaults})
			e.k.add(&fakeLink{name: "eth1", up: true, master: b.index})
			e.k.add(&fakeLink{name: "eth0", up: true, mtu: 9000, addrs: []string{"10.0.0.5/24"}})
			e.k.addPrefixRoutes(e.k.byName("eth0"))
		}, []string{"eth0", "bond0"}, func(t *testing.T, e *env) {
			mustApply(t, Bond{root: e.f.Root, open: e.k.opener()}, allow(map[string]cty.Value{"name": s("bond0"), "mode": s("balance-rr"),
				"slaves": strs("eth1", "eth0"), "mtu": s("auto")}))
		}, []string{"eth0: master bond0 → none", "eth0: mtu 1500 → 9000", "eth0: down → up"}},

		{"a slave removed", func(t *testing.T, e *env) {
			b := e.k.add(&fakeLink{name: "bond0", kind: "bond", up: true, mtu: 9100, bond: netlink.Bond{Mode: netlink.BOND_MODE_802_3AD, Miimon: 100, XmitHashPolicy: 1, LacpRate: 1}})
			e.k.add(&fakeLink{name: "ens1f0", up: true, master: b.index, mtu: 9100})
			e.k.add(&fakeLink{name: "ens1f1", up: true, master: b.index, mtu: 9100})
			e.k.add(&fakeLink{name: "ens1f2", up: true, master: b.index, mtu: 9100})
		}, []string{"bond0"}, func(t *testing.T, e *env) {
			mustApply(t, Bond{root: e.f.Root, open: e.k.opener()}, allow(lacpBond))
			// Up on its own now: bonding enslaves only a device that is down.
			if err := e.k.LinkSetUp(e.k.view(e.k.byName("ens1f2"))); err != nil {
				t.Fatal(err)
			}
		}, []string{"ens1f2: master none → bond0"}},

		{"bond mode and lacp_rate changed", func(t *testing.T, e *env) {
			b := e.k.add(&fakeLink{name: "bond0", kind: "bond", up: true, bond: bondDefaults})
			e.k.add(&fakeLink{name: "ens1f0", up: true, master: b.index})
			e.k.add(&fakeLink{name: "ens1f1", up: true, master: b.index})
		}, []string{"bond0"}, func(t *testing.T, e *env) {
			mustApply(t, Bond{root: e.f.Root, open: e.k.opener()}, allow(lacpBond))
		}, []string{
			// lacp_rate while the bond is still in 802.3ad, then the mode without slaves.
			"bond0: up → down (to change lacp_rate)", "bond0: lacp_rate fast → slow",
			"ens1f0: master bond0 → none", "ens1f1: master bond0 → none",
			"bond0: mode 802.3ad → balance-rr", "bond0: miimon 100 → 0", "bond0: xmit_hash_policy layer3+4 → layer2",
			"bond0: mtu 9100 → 1500", "ens1f0: mtu 9100 → 1500", "ens1f1: mtu 9100 → 1500", // released, they kept the bond's
			"ens1f0: master none → bond0", "ens1f1: master none → bond0", "bond0: down → up"}},

		{"bond options changed, the bond read for a slave's sake", func(t *testing.T, e *env) {
			b := e.k.add(&fakeLink{name: "bond0", kind: "bond", up: true, bond: bondDefaults})
			e.k.add(&fakeLink{name: "ens1f0", up: true, master: b.index})
			e.k.add(&fakeLink{name: "ens1f1", up: true, master: b.index})
		}, []string{"ens1f0"}, func(t *testing.T, e *env) {
			mustApply(t, Bond{root: e.f.Root, open: e.k.opener()}, allow(lacpBond))
		}, []string{
			"bond0: up → down (to change lacp_rate)", "bond0: lacp_rate fast → slow",
			"ens1f0: master bond0 → none", "ens1f1: master bond0 → none",
			"bond0: mode 802.3ad → balance-rr", "bond0: miimon 100 → 0", "bond0: xmit_hash_policy layer3+4 → layer2",
			"ens1f0: mtu 9100 → 1500", "bond0: mtu 9100 → 1500",
			// ens1f1, not in the snapshot itself, is back in its bond (with the bond's MTU).
			"ens1f0: master none → bond0", "ens1f1: master none → bond0", "bond0: down → up"}},

		{"VLAN made again with another id", func(t *testing.T, e *env) {
			b := e.k.add(&fakeLink{name: "bond0", kind: "bond", up: true, bond: bondDefaults})
			e.k.add(&fakeLink{name: "vlan100", kind: "vlan", parent: b.index, vlanID: 100, up: true, addrs: []string{"198.51.100.10/24"}})
			e.k.addPrefixRoutes(e.k.byName("vlan100"))
			route(e.k, "vlan100", "default", "198.51.100.1")
		}, []string{"vlan100"}, func(t *testing.T, e *env) {
			mustApply(t, Interface{root: e.f.Root, open: e.k.opener()}, allow(map[string]cty.Value{"name": s("vlan100"),
				"vlan": vlanVal("bond0", 200), "state": s("up"), "addresses": strs("198.51.100.10/24")}))
		}, []string{"vlan100: made again (vlan; vlan id 200 → 100)", "vlan100: down → up",
			"vlan100: address 198.51.100.10/24 added back",
			"vlan100: route default via 198.51.100.1 proto boot scope global metric 0 added back"}},

		{"a bond created", func(t *testing.T, e *env) {
			e.k.add(&fakeLink{name: "ens1f0", up: true, addrs: []string{"10.0.0.5/24"}})
			e.k.addPrefixRoutes(e.k.byName("ens1f0"))
			e.k.nic("ens1f1", false)
		}, []string{"bond0", "ens1f0", "ens1f1"}, func(t *testing.T, e *env) {
			mustApply(t, Bond{root: e.f.Root, open: e.k.opener()}, allow(lacpBond))
		}, []string{"ens1f0: master bond0 → none", "ens1f1: master bond0 → none", "bond0: deleted (created by the transaction)",
			"ens1f0: mtu 9100 → 1500", "ens1f1: mtu 9100 → 1500", "ens1f0: down → up"}},

		{"a VLAN created", func(t *testing.T, e *env) {
			e.k.nic("eth0", true)
		}, []string{"eth0.200"}, func(t *testing.T, e *env) {
			mustApply(t, Interface{root: e.f.Root, open: e.k.opener()}, allow(map[string]cty.Value{"name": s("eth0.200"),
				"vlan": vlanVal("eth0", 200), "state": s("up"), "addresses": strs("192.0.2.20/24")}))
		}, []string{"eth0.200: deleted (created by the transaction)"}},

		{"a bridge's STP, VLAN filtering, ports and MTU changed", func(t *testing.T, e *env) {
			br := e.k.add(&fakeLink{name: "br0", kind: "bridge", up: true})
			e.k.add(&fakeLink{name: "eth1", up: true, master: br.index})
			e.k.nic("eth2", true)
		}, []string{"br0", "eth2"}, func(t *testing.T, e *env) {
			mustApply(t, Bridge{root: e.f.Root, open: e.k.opener()}, allow(map[string]cty.Value{"name": s("br0"), "ports": strs("eth2"),
				"exclusive_ports": cty.True, "stp": cty.True, "vlan_filtering": cty.True, "mtu": n(9000)}))
		}, []string{"br0: vlan_filtering on → off", "br0: stp on → off", "eth2: master br0 → none", "br0: mtu 9000 → 1500",
			"eth2: mtu 9000 → 1500", "eth1: master none → br0"}},

		{"a bridge created", func(t *testing.T, e *env) {
			e.k.nic("eth1", false)
		}, []string{"br0", "eth1"}, func(t *testing.T, e *env) {
			mustApply(t, Bridge{root: e.f.Root, open: e.k.opener()}, allow(map[string]cty.Value{"name": s("br0"), "ports": strs("eth1"), "stp": cty.True}))
		}, []string{"eth1: master br0 → none", "br0: deleted (created by the transaction)", "eth1: up → down"}},

		{"a bridge deleted", func(t *testing.T, e *env) {
			br := e.k.add(&fakeLink{name: "br0", kind: "bridge", up: true, mtu: 9000, stp: true, vlanFiltering: true, mtuByUser: true,
				addrs: []string{"192.0.2.20/24"}})
			e.k.addPrefixRoutes(br)
			e.k.add(&fakeLink{name: "eth1", up: true, mtu: 9000, master: br.index})
		}, []string{"br0"}, func(t *testing.T, e *env) {
			mustApply(t, Bridge{root: e.f.Root, open: e.k.opener()}, allow(map[string]cty.Value{"name": s("br0"), "state": s("absent")}))
		}, []string{"br0: made again (bridge; gone)", "br0: stp off → on", "br0: mtu 1500 → 9000", "eth1: master none → br0",
			"br0: down → up", "br0: address 192.0.2.20/24 added back"}},

		{"vf_count", func(t *testing.T, e *env) {
			e.k.nic("ens1f0", true)
			if err := e.k.setNumVFs("ens1f0", 4); err != nil {
				t.Fatal(err)
			}
			writeNumVFs(t, string(e.f.Root), 4)
			if err := e.k.LinkSetVfVlan(e.k.view(e.k.byName("ens1f0")), 2, 42); err != nil {
				t.Fatal(err)
			}
		}, []string{"ens1f0"}, func(t *testing.T, e *env) {
			mustApply(t, sriovOn(t, e.k, e.f), sriovRuntime(map[string]cty.Value{"device": s("ens1f0"), "num_vfs": n(8)}))
		}, []string{"ens1f0: num_vfs 8 → 4", "ens1f0: vf 2: vlan 0 → 42"}},

		{"vf vlan, mac and trust", func(t *testing.T, e *env) {
			e.k.nic("ens1f0", true)
			if err := e.k.setNumVFs("ens1f0", 4); err != nil {
				t.Fatal(err)
			}
			writeNumVFs(t, string(e.f.Root), 4)
		}, []string{"ens1f0"}, func(t *testing.T, e *env) {
			mustApply(t, sriovOn(t, e.k, e.f), sriovRuntime(map[string]cty.Value{"device": s("ens1f0"), "num_vfs": n(4), "vfs": vfList(
				vfVal("index", n(1), "vlan", n(5), "mac", s("02:00:00:00:00:01"), "trust", cty.True, "spoofchk", cty.False))}))
		}, []string{"ens1f0: vf 1: mac 02:00:00:00:00:01 → 00:00:00:00:00:00", "ens1f0: vf 1: vlan 5 → 0",
			"ens1f0: vf 1: spoofchk off → on", "ens1f0: vf 1: trust on → off"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			k, root := sriovKernel(t)
			e := &env{k: k, f: &fileTree{host.Root(root)}}
			c.setup(t, e)
			before := fakeState(k)
			snap, err := snapshotRuntime(k, e.f, c.names)
			if err != nil {
				t.Fatal(err)
			}
			snap = roundTrip(t, snap, k, root)
			k.calls = nil
			if lines, err := snap.restore(k, e.f); err != nil || len(lines) != 0 || len(k.calls) != 0 {
				t.Fatalf("restore with nothing changed: %q %v, calls %q", lines, err, k.calls)
			}
			e.snap = snap
			c.change(t, e)
			if fakeState(k) == before {
				t.Fatal("the change changed nothing")
			}
			if d, err := snap.verify(k, e.f); err != nil || len(d) == 0 {
				t.Fatalf("verify after the change: %q %v (a difference expected)", d, err)
			}
			lines, err := snap.restore(k, e.f)
			if err != nil {
				t.Fatalf("restore: %v\n%s", err, strings.Join(lines, "\n"))
			}
			if !slices.Equal(lines, c.want) {
				t.Errorf("restore said:\n  %s\nwant:\n  %s", strings.Join(lines, "\n  "), strings.Join(c.want, "\n  "))
			}
			if after := fakeState(k); after != before {
				t.Errorf("the kernel is\n%s\nwas\n%s", after, before)
			}
			if d, err := snap.verify(k, e.f); err != nil || len(d) != 0 {
				t.Errorf("verify after restore: %q %v", d, err)
			}
			k.calls = nil
			if again, err := snap.restore(k, e.f); err != nil || len(again) != 0 || len(k.calls) != 0 {
				t.Errorf("restore again: %q %v, calls %q", again, err, k.calls)
			}
		})
	}
}

// sriovKernel is a fake kernel and a root tree where ens1f0 (when a case makes it) is a
// PF with no VFs.
func sriovKernel(t *testing.T) (*fakeKernel, string) {
	t.Helper()
	root := loadFixture(t, "sriov-host").root(t)
	writeNumVFs(t, root, 0)
	return newFakeKernel(), root
}

func writeNumVFs(t testing.TB, root string, n int) {
	t.Helper()
	f := &fileTree{host.Root(root)}
	if err := f.writeSysfs("/sys/class/net/ens1f0/device/sriov_numvfs", fmt.Sprint(n)); err != nil {
		t.Fatal(err)
	}
}

// sysfsNumVFs writes sriov_numvfs as the kernel does: through the fake's rule, into the file.
func sysfsNumVFs(t testing.TB, k *fakeKernel, root string) func(p, v string) error {
	return func(p, v string) error {
		if p != "/sys/class/net/ens1f0/device/sriov_numvfs" {
			t.Fatalf("write to %s", p)
		}
		var x int
		if _, err := fmt.Sscan(v, &x); err != nil {
			return err
		}
		if err := k.setNumVFs("ens1f0", x); err != nil {
			return err
		}
		writeNumVFs(t, root, x)
		return nil
	}
}

func sriovOn(t *testing.T, k *fakeKernel, f *fileTree) SRIOV {
	// The file follows the fake's VFs set up before the snapshot.
	if pf := k.byName("ens1f0"); pf != nil {
		writeNumVFs(t, string(f.Root), len(pf.vfs))
	}
	return SRIOV{root: f.Root, open: k.opener(), settle: 1, sysfsWrite: sysfsNumVFs(t, k, string(f.Root))}
}

// roundTrip stores the snapshot as the journal does and reads it back, with the sysfs
// writer and settle time a test needs.
func roundTrip(t *testing.T, snap *runtimeSnap, k *fakeKernel, root string) *runtimeSnap {
	t.Helper()
	b, err := json.Marshal(snap)
	if err != nil {
		t.Fatal(err)
	}
	var out runtimeSnap
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	out.sysfsWrite, out.settle = sysfsNumVFs(t, k, root), 1
	return &out
}

// TestRestoreFails: a step the kernel refuses is reported, naming the interface and what
// failed; restore goes on with the rest; verify names what is still different, and once
// the kernel takes it, a second restore finishes the job.
func TestRestoreFails(t *testing.T) {
	k := newFakeKernel()
	root := t.TempDir()
	f := &fileTree{host.Root(root)}
	k.add(&fakeLink{name: "eth0", up: true, addrs: []string{"10.0.0.5/24"}})
	k.add(&fakeLink{name: "eth1", up: true})
	snap, err := snapshotRuntime(k, f, []string{"eth0", "eth1"})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []string{"mtu eth0 9000", "down eth0", "mtu eth1 9000"} {
		var l netlink.Link
		l, _ = k.LinkByName(strings.Fields(c)[1])
		if strings.HasPrefix(c, "mtu") {
			err = k.LinkSetMTU(l, 9000)
		} else {
			err = k.LinkSetDown(l)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	k.failOnCall = "mtu eth0"
	lines, err := snap.restore(k, f)
	if err == nil || !strings.Contains(err.Error(), "eth0: set mtu 1500: input/output error") {
		t.Errorf("restore: %v, want eth0's MTU named", err)
	}
	// The other steps were taken.
	if want := []string{"eth1: mtu 9000 → 1500", "eth0: down → up"}; !slices.Equal(lines, want) {
		t.Errorf("restore said %q, want %q", lines, want)
	}
	d, err := snap.verify(k, f)
	if err != nil || !slices.Equal(d, []string{"eth0: mtu is 9000, was 1500"}) {
		t.Errorf("verify: %q %v", d, err)
	}
	k.failOnCall = ""
	if lines, err = snap.restore(k, f); err != nil || !slices.Equal(lines, []string{"eth0: mtu 9000 → 1500"}) {
		t.Errorf("restore again: %q %v", lines, err)
	}
	if d, err := snap.verify(k, f); err != nil || len(d) != 0 {
		t.Errorf("verify: %q %v", d, err)
	}

	// A link that cannot be made again from a snapshot (a physical NIC gone) is a failure,
	// and verify says so.
	k.remove(k.byName("eth1"))
	if _, err := snap.restore(k, f); err == nil || !strings.Contains(err.Error(), "eth1: gone: a link of kind device cannot be made again") {
		t.Errorf("restore without eth1: %v", err)
	}
	if d, _ := snap.verify(k, f); !slices.Equal(d, []string{"eth1: is not there, was (device)"}) {
		t.Errorf("verify without eth1: %q", d)
	}

	// A device that appeared under a name the snapshot has as absent (a VF's netdev, a NIC)
	// is not deleted: restore says it is still there, and so does verify.
	snap, err = snapshotRuntime(k, f, []string{"eth0", "ens9"})
	if err != nil {
		t.Fatal(err)
	}
	k.nic("ens9", true)
	k.calls = nil
	if _, err := snap.restore(k, f); err == nil || !strings.Contains(err.Error(), "ens9: created by the transaction: still there (a device link, which restore does not delete)") || len(k.calls) != 0 {
		t.Errorf("restore with ens9 there: %v, calls %q", err, k.calls)
	}
	if d, _ := snap.verify(k, f); !slices.Equal(d, []string{"ens9: is there (device), was not"}) {
		t.Errorf("verify with ens9 there: %q", d)
	}
}

// TestRuntimeSnapBounds: a snapshot refuses what it could not restore in reason, and
// names that are not interface names, with clear errors; what hangs together with a name
// is followed (master, slaves, VLAN parent and VLANs on it) and a name that is not there
// is recorded as absent.
func TestRuntimeSnapBounds(t *testing.T) {
	root := t.TempDir()
	f := &fileTree{host.Root(root)}
	// sysfs: the bond's slaves in the order they were enslaved; a VF's PF.
	for p, content := range map[string]string{
		"sys/class/net/bond0/bonding/slaves":               "eth1 eth0\n",
		"sys/class/net/ens1f0v0/device/physfn/net/ens1f0/": "",
	} {
		full := filepath.Join(root, p)
		if strings.HasSuffix(p, "/") {
			if err := os.MkdirAll(full, 0o755); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	k := newFakeKernel()
	b := k.add(&fakeLink{name: "bond0", kind: "bond", up: true, bond: bondDefaults})
	e0 := k.add(&fakeLink{name: "eth0", master: b.index})
	k.add(&fakeLink{name: "eth1", master: b.index})
	k.add(&fakeLink{name: "eth0.7", kind: "vlan", parent: e0.index, vlanID: 7})
	v := k.add(&fakeLink{name: "bond0.9", kind: "vlan", parent: b.index, vlanID: 9})
	k.add(&fakeLink{name: "other", up: true})
	k.nic("ens1f0", true)
	k.nic("ens1f0v0", true)
	for _, c := range []struct {
		names []string
		want  []string
	}{
		{[]string{"bond0"}, []string{"bond0", "eth1", "eth0", "bond0.9"}},
		{[]string{"ens1f0v0"}, []string{"ens1f0v0", "ens1f0"}},
		{[]string{"eth0"}, []string{"eth0", "bond0", "eth0.7"}},
		{[]string{"bond0.9", "new0"}, []string{"bond0.9", "new0", "bond0"}},
	} {
		snap, err := snapshotRuntime(k, f, c.names)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, l := range snap.Links {
			got = append(got, l.Name)
			if l.Name == "new0" && !l.Absent {
				t.Errorf("new0 not recorded as absent")
			}
		}
		if !slices.Equal(got, c.want) {
			t.Errorf("%v: snapshot of %q, want %q", c.names, got, c.want)
		}
	}

	if _, err := snapshotRuntime(k, f, []string{"eth0", "../x"}); err == nil || !strings.Contains(err.Error(), `"../x" is not an interface name`) {
		t.Errorf("bad name: %v", err)
	}
	var many []string
	for i := 0; i <= maxSnapLinks; i++ {
		many = append(many, fmt.Sprintf("n%d", i))
	}
	if _, err := snapshotRuntime(k, f, many); err == nil || !strings.Contains(err.Error(), "more than 256 links") {
		t.Errorf("257 links: %v", err)
	}
	for i := 0; i <= maxSnapEntries; i++ {
		k.routes = append(k.routes, netlink.Route{LinkIndex: v.index, Table: 254, Protocol: 4, Type: 1, Family: 2,
			Dst: &net.IPNet{IP: net.IPv4(10, byte(i>>8), byte(i), 0).To4(), Mask: net.CIDRMask(24, 32)}})
	}
	if _, err := snapshotRuntime(k, f, []string{"bond0"}); err == nil || !strings.Contains(err.Error(), "more than 4096 routes leave by these links") {
		t.Errorf("4097 routes: %v", err)
	}
	// A journal that was tampered with is refused before anything is done.
	bad := &runtimeSnap{Links: []snapLink{{Name: "eth0"}, {Name: "a b"}}}
	k.calls = nil
	if _, err := bad.restore(k, f); err == nil || !strings.Contains(err.Error(), `"a b" in the snapshot is not an interface name`) || len(k.calls) != 0 {
		t.Errorf("bad snapshot: %v, calls %q", err, k.calls)
	}
	newer := &runtimeSnap{Version: rtsnapVersion + 1}
	if _, err := newer.verify(k, f); err == nil || !strings.Contains(err.Error(), "written by a newer runbook") {
		t.Errorf("newer snapshot: %v", err)
	}
}
