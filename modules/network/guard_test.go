package network

import (
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/zclconf/go-cty/cty"

	"github.com/runbook/runbook/modules"
	"github.com/runbook/runbook/modules/host"
	"github.com/runbook/runbook/modules/moduletest"
)

// TestMain gives the package's tests a session of their own, in another network namespace
// (TEST-NET-3 addresses), so the guard finds no interface on the path unless a test gives
// a session itself. Without it, a test would depend on whoever runs it. (A session whose
// address no interface holds would count as not located: every addressed interface counts.)
func TestMain(m *testing.M) {
	findSession = func() (*host.SSHSession, error) {
		return &host.SSHSession{Source: "test", OtherNetns: true, Conns: []host.SessionConn{{
			Local: netip.MustParseAddrPort("203.0.113.250:22"), Peer: netip.MustParseAddrPort("203.0.113.251:40000")}}}, nil
	}
	os.Exit(m.Run())
}

func fixedSession(local, peer string) sessionFinder {
	return func() (*host.SSHSession, error) {
		return &host.SSHSession{Source: "test", Conns: []host.SessionConn{{
			Local: netip.MustParseAddrPort(local), Peer: netip.MustParseAddrPort(peer)}}}, nil
	}
}

func pfx(l ...string) []netip.Prefix {
	var out []netip.Prefix
	for _, s := range l {
		out = append(out, netip.MustParsePrefix(s))
	}
	return out
}

func sess(local, peer string) *host.SSHSession {
	s, _ := fixedSession(local, peer)()
	return s
}

// TestManagementPath: the interfaces that carry a session, on fixture link graphs.
func TestManagementPath(t *testing.T) {
	cases := []struct {
		name   string
		snap   pathSnap
		sess   *host.SSHSession
		want   []string          // the path, in the order found
		how    map[string]string // some of the reasons
		absent []string
		lost   string // a part of why the session counts as not located ("" located)
	}{
		{
			name: "bond over two NICs with a VLAN on top carrying the session",
			snap: pathSnap{Links: []pathLink{
				{Name: "lo", Index: 1, Kind: "device", Addrs: pfx("127.0.0.1/8")},
				{Name: "eth0", Index: 2, Kind: "device", Master: 4},
				{Name: "eth1", Index: 3, Kind: "device", Master: 4},
				{Name: "bond0", Index: 4, Kind: "bond"},
				{Name: "bond0.100", Index: 5, Kind: "vlan", Parent: 4, Addrs: pfx("192.0.2.10/24", "fe80::1/64")},
				{Name: "ens1f0", Index: 6, Kind: "device"},
			}, Egress: [][]int{{5}}},
			sess: sess("192.0.2.10:22", "192.0.2.1:50000"),
			want: []string{"bond0.100", "bond0", "eth0", "eth1"},
			how: map[string]string{
				"bond0.100": "bond0.100 holds 192.0.2.10, this SSH session's address (peer 192.0.2.1)",
				"bond0":     "bond0 is the parent of bond0.100 (vlan), which carries the session",
				"eth1":      "eth1 is a slave of bond0, which carries the session",
			},
			absent: []string{"lo", "ens1f0"},
		},
		{
			name: "a bridge over a bond",
			snap: pathSnap{Links: []pathLink{
				{Name: "eth0", Index: 2, Kind: "device", Master: 4},
				{Name: "eth1", Index: 3, Kind: "device", Master: 4},
				{Name: "bond0", Index: 4, Kind: "bond", Master: 5},
				{Name: "br0", Index: 5, Kind: "bridge", Addrs: pfx("192.0.2.10/24")},
				{Name: "vnet0", Index: 7, Kind: "tun", Master: 8},
				{Name: "br1", Index: 8, Kind: "bridge"},
			}, Egress: [][]int{{5}}},
			sess: sess("192.0.2.10:22", "192.0.2.1:50000"),
			want: []string{"br0", "bond0", "eth0", "eth1"},
			how:  map[string]string{"bond0": "bond0 is a port of br0, which carries the session"},
		},
		{
			name: "a VF and its PF",
			snap: pathSnap{Links: []pathLink{
				{Name: "ens1f0", Index: 2, Kind: "device"},
				{Name: "ens1f0v0", Index: 3, Kind: "device", PF: "ens1f0", Addrs: pfx("198.51.100.5/24")},
				{Name: "ens1f0v1", Index: 4, Kind: "device", PF: "ens1f0"},
			}, Egress: [][]int{{3}}},
			sess:   sess("198.51.100.5:22", "198.51.100.1:50000"),
			want:   []string{"ens1f0v0", "ens1f0"},
			how:    map[string]string{"ens1f0": "ens1f0 is the physical function of ens1f0v0, a VF which carries the session"},
			absent: []string{"ens1f0v1"},
		},
		{
			name: "the address on a dummy, the route out by eth0",
			snap: pathSnap{Links: []pathLink{
				{Name: "eth0", Index: 2, Kind: "device", Addrs: pfx("10.0.0.2/24")},
				{Name: "dummy0", Index: 3, Kind: "dummy", Addrs: pfx("192.0.2.10/32")},
			}, Egress: [][]int{{2}}},
			sess: sess("192.0.2.10:22", "198.51.100.1:50000"),
			want: []string{"dummy0", "eth0"},
			how:  map[string]string{"eth0": "eth0 is the way out to 198.51.100.1, this SSH session's peer (route from 192.0.2.10)"},
		},
		{
			name: "IPv6",
			snap: pathSnap{Links: []pathLink{
				{Name: "eth0", Index: 2, Kind: "device", Addrs: pfx("2001:db8::10/64", "fe80::10/64")},
				{Name: "eth1", Index: 3, Kind: "device", Addrs: pfx("2001:db8:1::10/64")},
			}, Egress: [][]int{{2}}},
			sess:   sess("[2001:db8::10]:22", "[2001:db8::1]:50000"),
			want:   []string{"eth0"},
			absent: []string{"eth1"},
		},
		{
			name: "a session over lo (a 127.0.0.1 lab)",
			snap: pathSnap{Links: []pathLink{
				{Name: "lo", Index: 1, Kind: "device", Addrs: pfx("127.0.0.1/8", "::1/128")},
				{Name: "eth0", Index: 2, Kind: "device", Addrs: pfx("192.0.2.10/24")},
			}, Egress: [][]int{{1}}, Default: map[int]bool{2: true}},
			sess:   sess("127.0.0.1:22", "127.0.0.1:50000"),
			want:   []string{"lo"},
			absent: []string{"eth0"},
		},
		{
			name: "a veth's peer index is not a device under it",
			snap: pathSnap{Links: []pathLink{
				{Name: "eth0", Index: 2, Kind: "veth", Parent: 3, Addrs: pfx("192.0.2.10/24")},
				{Name: "other", Index: 3, Kind: "device"},
			}, Egress: [][]int{{2}}},
			sess:   sess("192.0.2.10:22", "192.0.2.1:50000"),
			want:   []string{"eth0"},
			absent: []string{"other"},
		},
		{
			name: "the session could not be located: what holds an address or a default route",
			snap: pathSnap{Links: []pathLink{
				{Name: "lo", Index: 1, Kind: "device", Addrs: pfx("127.0.0.1/8")},
				{Name: "eth0", Index: 2, Kind: "device", Addrs: pfx("192.0.2.10/24")},
				{Name: "eth1", Index: 3, Kind: "device"},
				{Name: "eth2", Index: 4, Kind: "device", Addrs: pfx("fe80::2/64")},
				{Name: "bond0", Index: 5, Kind: "bond", Addrs: pfx("198.51.100.10/24")},
				{Name: "eth3", Index: 6, Kind: "device", Master: 5},
			}, Default: map[int]bool{3: true}},
			want:   []string{"lo", "eth0", "eth1", "bond0", "eth3"},
			how:    map[string]string{"eth1": "eth1 carries a default route", "eth3": "eth3 is a slave of bond0, which may carry the session"},
			absent: []string{"eth2"},
			lost:   "this SSH session could not be located",
		},
		{
			name: "a session whose address no interface holds: not located",
			snap: pathSnap{Links: []pathLink{
				{Name: "eth0", Index: 2, Kind: "device", Addrs: pfx("192.0.2.10/24")},
				{Name: "eth1", Index: 3, Kind: "device"},
			}},
			sess:   sess("198.51.100.77:22", "198.51.100.1:50000"),
			want:   []string{"eth0"},
			absent: []string{"eth1"},
			lost:   "no interface here holds this SSH session's address 198.51.100.77 (test)",
		},
		{
			name: "a session the finder could not follow (loopback peer, too many connections)",
			snap: pathSnap{Links: []pathLink{
				{Name: "lo", Index: 1, Kind: "device", Addrs: pfx("127.0.0.1/8")},
				{Name: "eth0", Index: 2, Kind: "device", Addrs: pfx("192.0.2.10/24")},
			}, Egress: [][]int{{1}}},
			sess: &host.SSHSession{Source: "the socket of process 70 (sshd)", Lost: "its peer 127.0.0.1:40000 is a local process whose other connections were not found",
				Conns: sess("127.0.0.1:22", "127.0.0.1:40000").Conns},
			want: []string{"lo", "eth0"},
			lost: "this SSH session (the socket of process 70 (sshd)) cannot be followed to an interface: its peer 127.0.0.1:40000",
		},
		{
			name: "every next hop of a multipath route",
			snap: pathSnap{Links: []pathLink{
				{Name: "dummy0", Index: 1, Kind: "dummy", Addrs: pfx("192.0.2.10/32")},
				{Name: "eth0", Index: 2, Kind: "device", Addrs: pfx("10.0.0.2/31")},
				{Name: "eth1", Index: 3, Kind: "device", Addrs: pfx("10.0.1.2/31")},
				{Name: "eth2", Index: 4, Kind: "device"},
			}, Egress: [][]int{{2, 3}}},
			sess:   sess("192.0.2.10:22", "198.51.100.1:50000"),
			want:   []string{"dummy0", "eth0", "eth1"},
			how:    map[string]string{"eth1": "eth1 is the way out to 198.51.100.1, this SSH session's peer (route from 192.0.2.10)"},
			absent: []string{"eth2"},
		},
		{
			name: "a tunnel: the interfaces its remote end is reached by",
			snap: pathSnap{Links: []pathLink{
				{Name: "eth0", Index: 2, Kind: "device", Addrs: pfx("10.0.0.2/24")},
				{Name: "eth1", Index: 3, Kind: "device", Addrs: pfx("10.0.1.2/24")},
				{Name: "gre1", Index: 4, Kind: "gre", Addrs: pfx("192.0.2.10/30"), Underlay: []int{3}},
			}, Egress: [][]int{{4}}},
			sess:   sess("192.0.2.10:22", "192.0.2.9:50000"),
			want:   []string{"gre1", "eth1"},
			how:    map[string]string{"eth1": "eth1 carries the packets of gre1 (gre tunnel), which carries the session"},
			absent: []string{"eth0"},
		},
		{
			name: "a tunnel whose underlay is not known (wireguard): not located",
			snap: pathSnap{Links: []pathLink{
				{Name: "eth0", Index: 2, Kind: "device", Addrs: pfx("10.0.0.2/24")},
				{Name: "eth1", Index: 3, Kind: "device"},
				{Name: "wg0", Index: 4, Kind: "wireguard", Addrs: pfx("192.0.2.10/24")},
			}, Egress: [][]int{{4}}, Default: map[int]bool{2: true}},
			sess:   sess("192.0.2.10:22", "192.0.2.1:50000"),
			want:   []string{"wg0", "eth0"},
			absent: []string{"eth1"},
			lost:   "wg0, on the path, is a wireguard tunnel whose underlay cannot be worked out",
		},
		{
			name: "an Open vSwitch internal port: the datapath and its ports",
			snap: pathSnap{Links: []pathLink{
				{Name: "ovs-system", Index: 2, Kind: kindOVS},
				{Name: "br-ex", Index: 3, Kind: kindOVS, Master: 2, Addrs: pfx("192.0.2.10/24")},
				{Name: "eth0", Index: 4, Kind: "device", Master: 2},
				{Name: "eth1", Index: 5, Kind: "device"},
			}, Egress: [][]int{{3}}},
			sess:   sess("192.0.2.10:22", "192.0.2.1:50000"),
			want:   []string{"br-ex", "ovs-system", "eth0"},
			how:    map[string]string{"eth0": "eth0 is a port of the Open vSwitch datapath ovs-system, which carries the session"},
			absent: []string{"eth1"},
		},
		{
			name: "the session is in another network namespace",
			snap: pathSnap{Links: []pathLink{{Name: "eth0", Index: 2, Kind: "device", Addrs: pfx("192.0.2.10/24")}}},
			sess: &host.SSHSession{OtherNetns: true, Conns: sess("192.0.2.10:22", "192.0.2.1:50000").Conns},
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := managementPath(&c.snap, c.sess, nil)
			if !slices.Equal(p.names(), c.want) {
				t.Errorf("path %q, want %q\n%v", p.names(), c.want, p.how)
			}
			for k, v := range c.how {
				if p.reason(k) != v {
					t.Errorf("%s: %q, want %q", k, p.reason(k), v)
				}
			}
			for _, a := range c.absent {
				if r := p.reason(a); r != "" {
					t.Errorf("%s is on the path: %s", a, r)
				}
			}
			if (p.lost != "") != (c.lost != "") || !strings.Contains(p.lost, c.lost) {
				t.Errorf("lost %q, want %q", p.lost, c.lost)
			}
		})
	}
}

// guardKernel is a host whose session comes in on eth0 (192.0.2.10, peer 192.0.2.1), with
// a data NIC beside it.
func guardKernel() *fakeKernel {
	k := newFakeKernel()
	e := k.add(&fakeLink{name: "eth0", up: true, addrs: []string{"192.0.2.10/24"}})
	k.nic("ens1f0", true)
	k.nic("ens1f1", true)
	k.defaultVia = e.index
	return k
}

var eth0Session = fixedSession("192.0.2.10:22", "192.0.2.1:50000")

// TestGuardRefuses: every module refuses, in check and in apply, a change of each kind on
// the session's interface, with a message that names it and the way out, and changes
// nothing; with on_management_path = "allow" the change is made, with a warning.
func TestGuardRefuses(t *testing.T) {
	const how = `eth0 holds 192.0.2.10, this SSH session's address (peer 192.0.2.1)`
	cases := []struct {
		name   string
		module func(k *fakeKernel) modules.Module
		args   map[string]cty.Value
		want   string
		allows []string // the kernel calls "allow" makes
	}{
		{"down", ifaceGuarded, map[string]cty.Value{"name": s("eth0"), "state": s("down")},
			`"eth0: up → down" takes down eth0: ` + how, []string{"down eth0"}},
		{"mtu", ifaceGuarded, map[string]cty.Value{"name": s("eth0"), "mtu": n(1400)},
			`"eth0: mtu 1500 → 1400" changes the MTU of eth0: ` + how, []string{"mtu eth0 1400"}},
		{"addresses replaced", ifaceGuarded, map[string]cty.Value{"name": s("eth0"), "addresses": strs("192.0.2.99/24"), "exclusive": cty.True},
			`"eth0: remove address 192.0.2.10/24" removes an address of eth0: ` + how, []string{"addr add eth0 192.0.2.99/24", "addr del eth0 192.0.2.10/24"}},
		{"enslaved", bondGuarded, map[string]cty.Value{"name": s("bond0"), "mode": s("active-backup"), "slaves": strs("eth0", "ens1f0")},
			`"eth0: enslave to bond0" enslaves eth0: ` + how, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			k := guardKernel()
			before := k.state()
			m := c.module(k)
			for _, apply := range []bool{false, true} {
				_, err := moduletest.Run(t, m, runtimeOnly(c.args), apply)
				if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), `set on_management_path = "allow" on the task`) {
					t.Fatalf("apply=%v: %v\nwant %s", apply, err, c.want)
				}
				if got := k.state(); got != before || len(k.calls) != 0 {
					t.Fatalf("a refused task changed the kernel: %v\n%s\n->\n%s", k.calls, before, got)
				}
			}
			res, err := moduletest.Run(t, m, with(runtimeOnly(c.args), "on_management_path", s("allow")), true)
			if err != nil || res.Status != modules.StatusChanged {
				t.Fatalf("allow: %v %+v", err, res)
			}
			if !slices.ContainsFunc(res.Warnings, func(w string) bool {
				return strings.Contains(w, c.want) && strings.HasPrefix(w, `on_management_path = "allow": `)
			}) {
				t.Errorf("allow: no warning %q in %q", c.want, res.Warnings)
			}
			for _, call := range c.allows {
				if !slices.Contains(k.calls, call) {
					t.Errorf("allow: no %q in %q", call, k.calls)
				}
			}
		})
	}

	// The kernel finds a link by an alternative name as by its name (ip link property add
	// dev eth0 altname mgmt0): a task naming the altname changes eth0, and is refused.
	t.Run("a change addressed to an altname", func(t *testing.T) {
		for _, c := range []struct {
			name   string
			module func(k *fakeKernel) modules.Module
			args   map[string]cty.Value
			want   string
		}{
			{"interface mtu", ifaceGuarded, map[string]cty.Value{"name": s("mgmt0"), "mtu": n(1400)},
				`"mgmt0: mtu 1500 → 1400" changes the MTU of eth0 (mgmt0): ` + how},
			{"interface down", ifaceGuarded, map[string]cty.Value{"name": s("mgmt0"), "state": s("down")},
				`"mgmt0: up → down" takes down eth0 (mgmt0): ` + how},
			{"bond slave", bondGuarded, map[string]cty.Value{"name": s("bond0"), "mode": s("active-backup"), "slaves": strs("mgmt0", "ens1f0")},
				`enslaves eth0 (mgmt0): ` + how},
		} {
			t.Run(c.name, func(t *testing.T) {
				k := guardKernel()
				k.byName("eth0").alt = []string{"mgmt0"}
				before := k.state()
				for _, apply := range []bool{false, true} {
					_, err := moduletest.Run(t, c.module(k), runtimeOnly(c.args), apply)
					if err == nil || !strings.Contains(err.Error(), c.want) {
						t.Fatalf("apply=%v: %v\nwant %s", apply, err, c.want)
					}
					if k.state() != before || len(k.calls) != 0 {
						t.Fatalf("a refused task changed the kernel: %v", k.calls)
					}
				}
			})
		}
	})

	t.Run("another interface goes through", func(t *testing.T) {
		k := guardKernel()
		m := ifaceGuarded(k)
		res, err := moduletest.Run(t, m, runtimeOnly(map[string]cty.Value{"name": s("ens1f0"), "mtu": n(9000), "state": s("down")}), true)
		if err != nil || res.Status != modules.StatusChanged || len(res.Warnings) != 0 {
			t.Fatalf("%v %+v", err, res)
		}
		// A bond of the data NICs, an address added to eth0: nothing on the path changes.
		if res, err = moduletest.Run(t, bondGuarded(k), runtimeOnly(map[string]cty.Value{"name": s("bond0"), "mode": s("802.3ad"), "slaves": strs("ens1f0", "ens1f1"), "mtu": n(9000)}), true); err != nil || res.Status != modules.StatusChanged {
			t.Fatalf("bond: %v %+v", err, res)
		}
		if res, err = moduletest.Run(t, m, runtimeOnly(map[string]cty.Value{"name": s("eth0"), "addresses": strs("192.0.2.11/24"), "state": s("up")}), true); err != nil || res.Status != modules.StatusChanged {
			t.Fatalf("an address added: %v %+v", err, res)
		}
	})

	t.Run("a bond that carries the session", func(t *testing.T) {
		k := newFakeKernel()
		b := k.add(&fakeLink{name: "bond0", kind: "bond", up: true, bond: bondDefaults, addrs: []string{"192.0.2.10/24"}})
		k.add(&fakeLink{name: "eth1", master: b.index})
		k.add(&fakeLink{name: "eth2", master: b.index})
		k.nic("eth3", false)
		before := k.state()
		m := bondGuarded(k)
		_, err := moduletest.Run(t, m, runtimeOnly(map[string]cty.Value{"name": s("bond0"), "mode": s("balance-rr"), "slaves": strs("eth1", "eth3"), "mtu": n(9000)}), false)
		for _, want := range []string{
			`"bond0: mtu 1500 → 9000" changes the MTU of bond0: bond0 holds 192.0.2.10, this SSH session's address (peer 192.0.2.1)`,
			`"eth2: release from bond0" removes eth2: eth2 is a slave of bond0, which carries the session`,
			`"eth1: mtu 1500 → 9000" changes the MTU of eth1: eth1 is a slave of bond0`,
		} {
			if err == nil || !strings.Contains(err.Error(), want) {
				t.Errorf("lacks %q: %v", want, err)
			}
		}
		if err != nil && strings.Contains(err.Error(), "eth3") {
			t.Errorf("eth3 is not on the path: %v", err)
		}
		if k.state() != before {
			t.Error("changed")
		}
		// A mode change sets the bond down and releases its slaves.
		_, err = moduletest.Run(t, m, runtimeOnly(map[string]cty.Value{"name": s("bond0"), "mode": s("active-backup"), "slaves": strs("eth1", "eth2")}), true)
		if err == nil || !strings.Contains(err.Error(), `"bond0: mode balance-rr → active-backup" takes down bond0`) || !strings.Contains(err.Error(), `"bond0: mode balance-rr → active-backup" removes eth1`) {
			t.Errorf("mode change: %v", err)
		}
	})

	// min_links above the ports the bond has up takes its carrier away.
	t.Run("min_links on a bond that carries the session", func(t *testing.T) {
		k := newFakeKernel()
		b := k.add(&fakeLink{name: "bond0", kind: "bond", up: true, bond: bondDefaults, addrs: []string{"192.0.2.10/24"}})
		k.add(&fakeLink{name: "eth1", master: b.index, up: true})
		k.add(&fakeLink{name: "eth2", master: b.index, up: true})
		before := k.state()
		args := map[string]cty.Value{"name": s("bond0"), "mode": s("balance-rr"), "slaves": strs("eth1", "eth2"), "min_links": n(3)}
		_, err := moduletest.Run(t, bondGuarded(k), runtimeOnly(args), true)
		if want := `"bond0: min_links 0 → 3" takes down bond0: bond0 holds 192.0.2.10`; err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("min_links 3 over 2 ports: %v, want %s", err, want)
		}
		if k.state() != before {
			t.Error("changed")
		}
		if res, err := moduletest.Run(t, bondGuarded(k), runtimeOnly(with(args, "min_links", n(2))), true); err != nil || res.Status != modules.StatusChanged {
			t.Errorf("min_links 2 over 2 ports: %v %+v", err, res)
		}
	})

	t.Run("sriov on the session's NIC", func(t *testing.T) {
		k, _, m, _ := sriovHost(t, 0)
		k.byName("ens1f0").addrs = []string{"192.0.2.10/24"}
		m.session = eth0Session
		args := map[string]cty.Value{"device": s("ens1f0"), "num_vfs": n(2), "persist": cty.False}
		for _, apply := range []bool{false, true} {
			_, err := moduletest.Run(t, *m, args, apply)
			if want := `"ens1f0: num_vfs 0 → 2" changes the number of VFs of ens1f0: ens1f0 holds 192.0.2.10`; err == nil || !strings.Contains(err.Error(), want) {
				t.Fatalf("apply=%v: %v", apply, err)
			}
			if len(k.calls) != 0 {
				t.Fatalf("changed: %v", k.calls)
			}
		}
		res, err := moduletest.Run(t, *m, with(args, "on_management_path", s("allow")), true)
		if err != nil || res.Status != modules.StatusChanged || len(res.Warnings) == 0 {
			t.Fatalf("allow: %v %+v", err, res)
		}
	})

	// The VLAN or MAC of a VF whose netdev carries the session, set on the PF.
	t.Run("sriov: a VF's vlan and mac on the path", func(t *testing.T) {
		k, root, m, _ := sriovHost(t, 2)
		k.nic("ens1f0v1", true).addrs = []string{"192.0.2.10/24"}
		if err := os.MkdirAll(filepath.Join(root, "sys/class/net/ens1f0/device/virtfn1/net/ens1f0v1"), 0o755); err != nil {
			t.Fatal(err)
		}
		k.calls = nil
		m.session = eth0Session
		args := map[string]cty.Value{"device": s("ens1f0"), "num_vfs": n(2), "persist": cty.False,
			"vfs": vfList(vfVal("index", n(1), "vlan", n(101), "mac", s("02:00:00:00:00:07")), vfVal("index", n(0), "vlan", n(102)))}
		for _, apply := range []bool{false, true} {
			_, err := moduletest.Run(t, *m, args, apply)
			for _, want := range []string{
				`"ens1f0 vf 1: vlan 0 → 101" changes the VLAN of the VF ens1f0v1: ens1f0v1 holds 192.0.2.10`,
				`"ens1f0 vf 1: mac 00:00:00:00:00:00 → 02:00:00:00:00:07" changes the MAC address of the VF ens1f0v1: ens1f0v1 holds 192.0.2.10`,
			} {
				if err == nil || !strings.Contains(err.Error(), want) {
					t.Errorf("apply=%v: %v\nwant %s", apply, err, want)
				}
			}
			if err != nil && strings.Contains(err.Error(), "vf 0") {
				t.Errorf("VF 0 has no netdev on the path: %v", err)
			}
			if len(k.calls) != 0 {
				t.Fatalf("changed: %v", k.calls)
			}
		}
		// VF 0 alone goes through.
		if res, err := moduletest.Run(t, *m, with(args, "vfs", vfList(vfVal("index", n(0), "vlan", n(102)))), true); err != nil || res.Status != modules.StatusChanged {
			t.Errorf("vf 0: %v %+v", err, res)
		}
	})

	t.Run("a session that cannot be located", func(t *testing.T) {
		k := guardKernel()
		m := Interface{root: host.Root(t.TempDir()), open: k.opener(), session: func() (*host.SSHSession, error) {
			return host.SessionFinder{Root: host.Root(t.TempDir()), Env: func(string) string { return "" }}.FindSSHSession()
		}}
		_, err := moduletest.Run(t, m, runtimeOnly(map[string]cty.Value{"name": s("eth0"), "mtu": n(1400)}), false)
		if err == nil || !strings.Contains(err.Error(), `changes the MTU of eth0: eth0 holds 192.0.2.10; this SSH session could not be located (no process tree to look at`) ||
			!strings.Contains(err.Error(), "so every interface that holds an address or a default route counts") {
			t.Errorf("%v", err)
		}
		// An interface without an address or a default route is still free.
		if _, err := moduletest.Run(t, m, runtimeOnly(map[string]cty.Value{"name": s("ens1f0"), "mtu": n(9000)}), true); err != nil {
			t.Error(err)
		}
	})
}

func ifaceGuarded(k *fakeKernel) modules.Module {
	return Interface{root: host.Root(os.TempDir() + "/nonexistent-root"), open: k.opener(), session: eth0Session}
}

func bondGuarded(k *fakeKernel) modules.Module {
	return Bond{root: host.Root(filepath.Join(os.TempDir(), "nonexistent-root")), open: k.opener(), session: eth0Session}
}
