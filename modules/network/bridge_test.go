package network

import (
	"context"
	"fmt"
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

var guestBridge = map[string]cty.Value{"name": s("br0"), "ports": strs("bond0"), "mtu": n(9100)}

// TestBridgeRuntime drives the bridge module against the fake kernel from several starting
// points: apply's calls respect the kernel's rules (the fake refuses what the kernel
// refuses) and come in the order they need; check mode predicts what apply leaves.
func TestBridgeRuntime(t *testing.T) {
	cases := []struct {
		name  string
		setup func(k *fakeKernel)
		args  map[string]cty.Value
		drift []string
		calls []string
	}{
		{"create on a bond, jumbo frames", func(k *fakeKernel) {
			k.add(&fakeLink{name: "bond0", kind: "bond", up: true, mtu: 1500, bond: bondDefaults})
		}, guestBridge, []string{
			"br0: create (stp off, vlan_filtering off)", "bond0: mtu 1500 → 9100", "bond0: enslave to br0", "br0: mtu 9100", "br0: down → up",
			// The bridge took its port's MTU as it joined: nothing left to set.
		}, []string{"add bridge br0", "mtu bond0 9100", "enslave bond0 br0", "up br0"}},

		{"create with stp and vlan filtering, mtu unmanaged takes the ports'", func(k *fakeKernel) {
			k.add(&fakeLink{name: "eth1", mtu: 9000})
			k.add(&fakeLink{name: "eth2", mtu: 9000, up: true})
		}, map[string]cty.Value{"name": s("br1"), "ports": strs("eth1", "eth2"), "stp": cty.True, "vlan_filtering": cty.True,
			"addresses": strs("192.0.2.20/24")}, []string{
			"br1: create (stp on, vlan_filtering on)", "eth1: enslave to br1", "eth2: enslave to br1", "br1: down → up", "eth1: down → up",
			"br1: add address 192.0.2.20/24",
		}, []string{"add bridge br1 vlan_filtering=true", "stp br1 true", "enslave eth1 br1", "enslave eth2 br1", "up br1", "up eth1",
			"addr add br1 192.0.2.20/24"}},

		{"options change in place, a tap stays", func(k *fakeKernel) {
			br := k.add(&fakeLink{name: "br0", kind: "bridge", up: true, mtu: 9100, stp: true, vlanFiltering: true, mtuByUser: true})
			k.add(&fakeLink{name: "bond0", kind: "bond", up: true, mtu: 9100, master: br.index, bond: bondDefaults})
			k.add(&fakeLink{name: "vnet0", up: true, mtu: 9100, master: br.index})
		}, guestBridge, []string{"br0: stp on → off", "br0: vlan_filtering on → off"},
			[]string{"stp br0 false", "modify br0 vlan_filtering=false"}},

		{"exclusive_ports releases the others, a port moves from another bridge", func(k *fakeKernel) {
			br := k.add(&fakeLink{name: "br0", kind: "bridge", up: true, mtu: 1500})
			other := k.add(&fakeLink{name: "br9", kind: "bridge", up: true, mtu: 1500})
			k.add(&fakeLink{name: "eth1", up: true, master: br.index})
			k.add(&fakeLink{name: "eth2", up: true, master: other.index})
		}, map[string]cty.Value{"name": s("br0"), "ports": strs("eth2"), "exclusive_ports": cty.True}, []string{
			"eth1: release from br0", "eth2: master br9 → br0",
		}, []string{"release eth1", "release eth2", "enslave eth2 br0"}},

		{"mtu changes on the bridge and its ports", func(k *fakeKernel) {
			br := k.add(&fakeLink{name: "br0", kind: "bridge", up: true, mtu: 1500})
			k.add(&fakeLink{name: "bond0", kind: "bond", up: true, mtu: 1500, master: br.index, bond: bondDefaults})
		}, guestBridge, []string{"bond0: mtu 1500 → 9100", "br0: mtu 1500 → 9100"}, []string{"mtu bond0 9100", "mtu br0 9100"}},

		{"a kernel without VLAN filtering makes a bridge without it", func(k *fakeKernel) {
			k.noBridgeVLAN = true
			k.nic("eth1", true)
		}, map[string]cty.Value{"name": s("br2"), "ports": strs("eth1")}, nil,
			[]string{"add bridge br2", "enslave eth1 br2", "up br2"}},

		{"absent deletes the bridge, its ports stay up", func(k *fakeKernel) {
			br := k.add(&fakeLink{name: "br0", kind: "bridge", up: true, mtu: 1500})
			k.add(&fakeLink{name: "eth1", up: true, master: br.index})
		}, map[string]cty.Value{"name": s("br0"), "state": s("absent")}, []string{"eth1: released (br0 deleted)", "br0: delete"},
			[]string{"del br0"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			k := newFakeKernel()
			c.setup(k)
			m := Bridge{root: host.Root(t.TempDir()), open: k.opener()}
			name := c.args["name"].AsString()
			existed := k.byName(name) != nil
			calls, res := kernelTimeline(t, k, m, runtimeOnly(c.args), c.drift)
			// Check mode registers the bridge as it is, apply as it leaves it.
			absent := c.args["state"] == s("absent")
			for i, want := range []bool{existed, !absent} {
				d := moduletest.Data(t, m, res[i])
				if got := d.GetAttr("exists").True(); got != want {
					t.Errorf("result %d: exists %v, want %v", i, got, want)
				}
				if br := k.byName(name); i == 1 && br != nil && (d.GetAttr("mtu").IsNull() || stringsOf(t, d.GetAttr("ports")) == nil) {
					t.Errorf("after apply: mtu %#v ports %#v", d.GetAttr("mtu"), d.GetAttr("ports"))
				}
			}
			if !slices.Equal(calls, c.calls) {
				t.Errorf("calls:\n  %s\nwant:\n  %s", strings.Join(calls, "\n  "), strings.Join(c.calls, "\n  "))
			}
			if res[0].Diff.After != res[1].Diff.After {
				t.Errorf("check predicted\n%s\napply left\n%s", res[0].Diff.After, res[1].Diff.After)
			}
		})
	}
}

// TestBridgeRuntimeRefuses: what the module cannot do fails before anything changes.
func TestBridgeRuntimeRefuses(t *testing.T) {
	cases := []struct {
		name  string
		setup func(k *fakeKernel)
		args  map[string]cty.Value
		want  string
		// applyOnly: only the kernel can say (check reports the drift).
		applyOnly bool
	}{
		{"missing port", func(k *fakeKernel) {}, guestBridge, "port bond0: no such interface", false},
		{"name taken", func(k *fakeKernel) {
			k.add(&fakeLink{name: "br0", kind: "bond", bond: bondDefaults})
			k.nic("bond0", true)
		}, guestBridge, "br0 exists and is a bond link, not a bridge", false},
		{"absent is not for another kind", func(k *fakeKernel) { k.nic("br0", true) },
			map[string]cty.Value{"name": s("br0"), "state": s("absent")}, "br0 is a device link, not a bridge: not deleting it", false},
		{"vlan_filtering on a kernel without it", func(k *fakeKernel) {
			k.noBridgeVLAN = true
			k.nic("bond0", true)
		}, with(guestBridge, "vlan_filtering", cty.True),
			"create bridge br0 with vlan_filtering on: operation not supported (the kernel has no VLAN filtering for bridges: it was built without CONFIG_BRIDGE_VLAN_FILTERING)", true},
		{"no bridge driver", func(k *fakeKernel) {
			k.noBridge = true
			k.nic("bond0", true)
		}, guestBridge, "create bridge br0: operation not supported (does the kernel have the bridge driver? modprobe bridge)", true},
		{"a bridge in a bridge", func(k *fakeKernel) { k.add(&fakeLink{name: "bond0", kind: "bridge"}) }, guestBridge,
			"port bond0 is a bridge itself", false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			k := newFakeKernel()
			c.setup(k)
			before := k.state()
			m := Bridge{root: host.Root(t.TempDir()), open: k.opener()}
			for _, apply := range []bool{false, true} {
				res, err := moduletest.Run(t, m, runtimeOnly(c.args), apply)
				if !apply && c.applyOnly {
					if err != nil || res.Status != modules.StatusDrift {
						t.Fatalf("check: %v %+v", err, res)
					}
					continue
				}
				if err == nil || !strings.Contains(err.Error(), c.want) {
					t.Fatalf("apply=%v: error %v, want %q", apply, err, c.want)
				}
			}
			if k.state() != before {
				t.Errorf("the kernel changed:\n%s", k.state())
			}
		})
	}
}

func TestBridgeValidate(t *testing.T) {
	cases := []struct {
		args map[string]cty.Value
		want string
	}{
		{map[string]cty.Value{"name": s("br0"), "ports": strs("br0")}, "a bridge cannot be its own port"},
		{map[string]cty.Value{"name": s("br0"), "ports": strs("eth1", "eth1")}, "eth1 is listed twice"},
		{map[string]cty.Value{"name": s("br0"), "ports": strs("a/b")}, "is not an interface name"},
		{map[string]cty.Value{"name": s("br0"), "mtu": s("20")}, "mtu must be"},
		{map[string]cty.Value{"name": s("br0"), "state": s("absent"), "ports": strs("eth1")}, `ports does not go with state = "absent"`},
		{map[string]cty.Value{"name": s("br0"), "state": s("absent"), "stp": cty.True}, `stp does not go with state = "absent"`},
		{map[string]cty.Value{"name": s("br0"), "addresses": strs("192.0.2.1")}, "not an address with a prefix length"},
		{map[string]cty.Value{"name": s("br0"), "runtime": cty.False, "persist": cty.False}, "leaves nothing to manage"},
	}
	for _, c := range cases {
		errs := moduletest.Validate(t, Bridge{}, c.args)
		var msgs []string
		for _, e := range errs {
			msgs = append(msgs, e.Error())
		}
		if !strings.Contains(strings.Join(msgs, "\n"), c.want) {
			t.Errorf("%v: errors %q, want %q", c.args, msgs, c.want)
		}
	}
}

// bridgeWants builds the persistent wants of a bridge task from its arguments.
func bridgeWants(t *testing.T, args map[string]cty.Value) []ifWant {
	t.Helper()
	a, _, err := moduletest.Def(t, Bridge{}).Args(cty.ObjectVal(args))
	if err != nil {
		t.Fatal(err)
	}
	spec, errs := parseBridge(a.(bridgeArgs))
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	return spec.wants()
}

// TestBridgePersistGolden writes, for each backend, the bond of the guide (lacpBond) and
// then a bridge on it, as a run of the bond task and the bridge task does: the bridge's
// files are the golden "want/" files and its drift the lines given. Then both tasks find
// the files in sync (the bond task leaves the bond's place in the bridge alone), the bridge
// changed (a VLAN-aware one with STP and an address) is in sync once written, and
// state = "absent" removes what the bridge task wrote ("absent/" files) and is in sync
// after.
func TestBridgePersistGolden(t *testing.T) {
	changed := map[string]cty.Value{"name": s("br0"), "ports": strs("bond0"), "mtu": n(9100), "stp": cty.True,
		"vlan_filtering": cty.True, "addresses": strs("192.0.2.20/24")}
	absent := map[string]cty.Value{"name": s("br0"), "state": s("absent")}
	cases := []struct {
		fixture, backend   string
		drift, absentDrift []string
	}{
		{"ifupdown-bridge-on-bond", backendIfupdown, []string{"br0: not configured"}, []string{"br0: configured → absent"}},
		{"ifcfg-bridge-on-bond", backendIfcfg, []string{"br0: not configured", "bond0: bridge (none) → br0"},
			[]string{"bond0: bridge br0 → (none)", "br0: configured → absent"}},
		{"networkd-bridge-on-bond", backendNetworkd, []string{"br0: not configured", "bond0: bridge (none) → br0"},
			[]string{"bond0: bridge br0 → (none)", "br0: configured → absent"}},
		{"nm-bridge-on-bond", backendNM, []string{"br0: not configured", "bond0: bridge (none) → br0"},
			[]string{"bond0: bridge br0 → (none)", "br0: configured → absent"}},
	}
	for _, tc := range cases {
		t.Run(tc.fixture, func(t *testing.T) {
			fx := loadFixture(t, tc.fixture)
			root := fx.root(t)
			ctx := context.Background()
			f := &fileTree{host.Root(root)}
			plan := func(wants []ifWant) *persistPlan {
				t.Helper()
				p, err := planPersist(ctx, f, tc.backend, wants)
				if err != nil {
					t.Fatal(err)
				}
				return p
			}
			write := func(p *persistPlan) map[string]string {
				t.Helper()
				got := map[string]string{}
				for _, x := range p.ws.changes() {
					if x.removed {
						got[x.path] = "(removed)\n"
					} else {
						got[x.path] = x.cur
					}
				}
				if err := p.ws.apply(); err != nil {
					t.Fatal(err)
				}
				return got
			}
			inSync := func(what string, wants []ifWant) {
				t.Helper()
				if p := plan(wants); len(p.drift) > 0 || len(p.ws.changes()) > 0 {
					t.Errorf("%s: the files still differ: %q (%d changes)", what, p.drift, len(p.ws.changes()))
				}
			}
			write(plan(bondWants(t, lacpBond)))

			p := plan(bridgeWants(t, guestBridge))
			if !slices.Equal(p.drift, tc.drift) {
				t.Errorf("drift:\n  %s\nwant:\n  %s", strings.Join(p.drift, "\n  "), strings.Join(tc.drift, "\n  "))
			}
			got := write(p)
			inSync("the bond again", bondWants(t, lacpBond))
			inSync("the bridge again", bridgeWants(t, guestBridge))

			write(plan(bridgeWants(t, changed)))
			inSync("the changed bridge again", bridgeWants(t, changed))
			inSync("the bond after the changed bridge", bondWants(t, lacpBond))

			p = plan(bridgeWants(t, absent))
			if !slices.Equal(p.drift, tc.absentDrift) {
				t.Errorf("absent drift:\n  %s\nwant:\n  %s", strings.Join(p.drift, "\n  "), strings.Join(tc.absentDrift, "\n  "))
			}
			gone := write(p)
			inSync("absent again", bridgeWants(t, absent))
			inSync("the bond after the bridge went", bondWants(t, lacpBond))
			for path := range gone {
				got["/absent"+path] = gone[path]
			}
			if *update {
				fx.setWant(t, got)
				return
			}
			want := fx.want()
			for _, path := range sortedKeys(merge(got, want)) {
				if got[path] != want[path] {
					t.Errorf("%s:\n--- got\n%s--- want\n%s", path, got[path], want[path])
				}
			}
		})
	}
}

func bridgeGuarded(k *fakeKernel) Bridge {
	return Bridge{root: host.Root(filepath.Join(os.TempDir(), "nonexistent-root")), open: k.opener(), session: eth0Session}
}

// TestBridgeGuard: the bridge module refuses, in check and in apply, to put the session's
// NIC into a bridge (its address would stop working), and every change that touches a
// bridge carrying the session, naming the interface and how it carries the session; with
// on_management_path = "allow" the change is made, with a warning.
func TestBridgeGuard(t *testing.T) {
	// br0 holds the session's address; eth1 is its port.
	onBridge := func() *fakeKernel {
		k := newFakeKernel()
		br := k.add(&fakeLink{name: "br0", kind: "bridge", up: true, addrs: []string{"192.0.2.10/24"}})
		k.add(&fakeLink{name: "eth1", up: true, master: br.index})
		k.nic("eth2", true)
		k.defaultVia = br.index
		return k
	}
	const onBr0 = `br0 holds 192.0.2.10, this SSH session's address (peer 192.0.2.1)`
	br0 := map[string]cty.Value{"name": s("br0"), "ports": strs("eth1")}
	cases := []struct {
		name   string
		kernel func() *fakeKernel
		args   map[string]cty.Value
		want   string
		allows []string
	}{
		{"the session's NIC into a bridge", guardKernel, map[string]cty.Value{"name": s("br0"), "ports": strs("eth0", "ens1f0")},
			`"eth0: enslave to br0" enslaves eth0: eth0 holds 192.0.2.10, this SSH session's address (peer 192.0.2.1)`,
			[]string{"add bridge br0", "enslave eth0 br0"}},
		{"stp on the session's bridge", onBridge, with(br0, "stp", cty.True),
			`"br0: stp off → on" turns STP on or off on br0: ` + onBr0, []string{"stp br0 true"}},
		{"vlan filtering on the session's bridge", onBridge, with(br0, "vlan_filtering", cty.True),
			`"br0: vlan_filtering off → on" turns VLAN filtering on or off on br0: ` + onBr0, []string{"modify br0 vlan_filtering=true"}},
		{"mtu of the session's bridge", onBridge, with(br0, "mtu", n(9000)),
			`"br0: mtu 1500 → 9000" changes the MTU of br0: ` + onBr0, []string{"mtu eth1 9000", "mtu br0 9000"}},
		{"the session's bridge deleted", onBridge, map[string]cty.Value{"name": s("br0"), "state": s("absent")},
			`"br0: delete" removes br0: ` + onBr0, []string{"del br0"}},
		{"the session's port released", onBridge, map[string]cty.Value{"name": s("br0"), "ports": strs("eth2"), "exclusive_ports": cty.True},
			`"eth1: release from br0" removes eth1`, []string{"release eth1"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			k := c.kernel()
			before := k.state()
			m := bridgeGuarded(k)
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
}

// TestBridgeTransaction: an apply that makes a bridge on a bond and writes its ifupdown
// stanza runs as a transaction; rolled back, the bridge is gone, the bond is out of it with
// its MTU back, and the files are as they were; a check finds the same drift again.
func TestBridgeTransaction(t *testing.T) {
	k := newFakeKernel()
	k.add(&fakeLink{name: "bond0", kind: "bond", up: true, mtu: 1500, bond: bondDefaults})
	root := host.Root(t.TempDir())
	mgr, armed := testTxn(t, k, root)
	m := Bridge{root: root, open: k.opener(), txn: mgr}
	conf := "/etc/network/interfaces"
	const orig = "auto lo\niface lo inet loopback\n"
	if err := os.MkdirAll(filepath.Dir(root.Path(conf)), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(root.Path(conf), []byte(orig), 0o644); err != nil {
		t.Fatal(err)
	}
	args := with(guestBridge, "stp", cty.True, "backend", s("ifupdown"), "confirm_timeout", s("30s"))
	before := k.state()
	res, err := moduletest.Run(t, m, args, true)
	if err != nil || res.Status != modules.StatusChanged {
		t.Fatalf("apply: %v %+v", err, res)
	}
	tx := res.Transaction
	if tx == nil || tx.State != modules.TxnPending || *armed != 1 {
		t.Fatalf("transaction %+v, armed %d", tx, *armed)
	}
	if br := k.byName("br0"); br == nil || !br.stp || k.byName("bond0").master != br.index {
		t.Fatalf("not applied:\n%s", k.state())
	}
	if b, _ := os.ReadFile(root.Path(conf)); string(b) == orig {
		t.Fatal("the file was not written")
	}
	o, err := mgr.Rollback(tx.ID, "test")
	if err != nil || o.State != modules.TxnRolledBack || !o.Verified {
		t.Fatalf("rollback: %+v %v", o, err)
	}
	if got := k.state(); got != before {
		t.Errorf("the kernel after the rollback:\n%s\nwas\n%s", got, before)
	}
	if b, _ := os.ReadFile(root.Path(conf)); string(b) != orig {
		t.Errorf("file after the rollback: %q", b)
	}
	if _, err := os.Stat(root.Path("/etc/network/interfaces.d/br0")); !os.IsNotExist(err) {
		t.Errorf("the bridge's stanza file is still there after the rollback: %v", err)
	}
	if res, err := moduletest.Run(t, m, args, false); err != nil || res.Status != modules.StatusDrift {
		t.Errorf("check after the rollback: %v %+v", err, res)
	}
}

// TestBridgeAbsentNothingToDo: state = "absent" on a host with no configuration at all
// changes and reports nothing on every backend (a missing file that was only read is no
// change to write).
func TestBridgeAbsentNothingToDo(t *testing.T) {
	for _, b := range []string{backendIfupdown, backendIfcfg, backendNetworkd, backendNM} {
		f := &fileTree{host.Root(t.TempDir())}
		p, err := planPersist(context.Background(), f, b, bridgeWants(t, map[string]cty.Value{"name": s("br0"), "state": s("absent")}))
		if err != nil || len(p.drift) > 0 || len(p.ws.changes()) > 0 {
			var paths []string
			for _, x := range p.ws.changes() {
				paths = append(paths, x.path)
			}
			t.Errorf("%s: %v drift %q changes %q", b, err, p.drift, paths)
		}
	}
}

// TestBridgeAbsentOtherKind: an interface of that name configured as something else is
// not removed by state = "absent", with a warning that says so.
func TestBridgeAbsentOtherKind(t *testing.T) {
	cases := []struct {
		backend, path, text string
	}{
		{backendIfupdown, "/etc/network/interfaces", "auto br0\niface br0 inet dhcp\n"},
		{backendIfcfg, "/etc/sysconfig/network-scripts/ifcfg-br0", "DEVICE=br0\nTYPE=Ethernet\nBOOTPROTO=dhcp\n"},
		{backendNetworkd, "/etc/systemd/network/10-br0.network", "[Match]\nName=br0\n\n[Network]\nDHCP=yes\n"},
	}
	for _, c := range cases {
		root := host.Root(t.TempDir())
		if err := os.MkdirAll(filepath.Dir(root.Path(c.path)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(root.Path(c.path), []byte(c.text), 0o644); err != nil {
			t.Fatal(err)
		}
		p, err := planPersist(context.Background(), &fileTree{root}, c.backend, bridgeWants(t, map[string]cty.Value{"name": s("br0"), "state": s("absent")}))
		if err != nil || len(p.drift) > 0 || len(p.ws.changes()) > 0 {
			t.Errorf("%s: %v drift %q, %d changes", c.backend, err, p.drift, len(p.ws.changes()))
		}
		if want := "br0 is configured as ethernet in " + c.path + ", not as bridge: not removed"; !slices.Contains(p.warnings, want) {
			t.Errorf("%s: warnings %q, want %q", c.backend, p.warnings, want)
		}
	}
}

// TestBridgePortLeavesItsBond: a NIC configured as a bond's slave that a bridge task makes
// a port is no bond's slave in the files any more (its membership is on the port itself in
// these backends: ifcfg MASTER=, networkd Bond=, NetworkManager's controller).
func TestBridgePortLeavesItsBond(t *testing.T) {
	bond := map[string]cty.Value{"name": s("bond1"), "mode": s("active-backup"), "slaves": strs("eth2", "eth3")}
	for _, c := range []struct {
		backend string
		gone    string
		want    string
	}{
		{backendIfcfg, "MASTER=bond1", "BRIDGE=br1"},
		{backendNetworkd, "Bond=bond1", "Bridge=br1"},
		{backendNM, "slave-type=bond", "slave-type=bridge"},
	} {
		f := &fileTree{host.Root(t.TempDir())}
		for _, wants := range [][]ifWant{bondWants(t, bond), bridgeWants(t, map[string]cty.Value{"name": s("br1"), "ports": strs("eth2")})} {
			p, err := planPersist(context.Background(), f, c.backend, wants)
			if err != nil {
				t.Fatal(err)
			}
			if err := p.ws.apply(); err != nil {
				t.Fatal(err)
			}
		}
		var all strings.Builder
		for _, dir := range []string{ifcfgDir, networkdDir, nmConnectionsDir} {
			for _, p := range f.list(dir) {
				text, _, _ := f.read(p)
				if strings.Contains(text, "eth2") {
					all.WriteString(text)
				}
			}
		}
		if got := all.String(); strings.Contains(got, c.gone) || !strings.Contains(got, c.want) {
			t.Errorf("%s: eth2's files:\n%s", c.backend, got)
		}
	}
}

// TestBridgeIfupdownHook: with the ifupdown backend, a host without bridge-utils' hook is
// warned that its stanza makes no bridge at boot; with the hook, no warning.
func TestBridgeIfupdownHook(t *testing.T) {
	args := with(guestBridge, "backend", s(backendIfupdown), "runtime", cty.False)
	const warn = "ifupdown makes bridges with bridge-utils' hook, and /etc/network/if-pre-up.d/bridge is missing"
	for _, hook := range []bool{false, true} {
		root := host.Root(t.TempDir())
		if hook {
			p := root.Path(ifupdownBridgeHook)
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(p, []byte("#!/bin/sh\n"), 0o755); err != nil {
				t.Fatal(err)
			}
		}
		res, err := moduletest.Run(t, Bridge{root: root}, args, false)
		if err != nil {
			t.Fatal(err)
		}
		if got := slices.ContainsFunc(res.Warnings, func(w string) bool { return strings.HasPrefix(w, warn) }); got == hook {
			t.Errorf("hook %v: warnings %q", hook, res.Warnings)
		}
	}
}

// TestBridgeTooManyPorts: a transaction holds at most 256 links; a change to a bridge with
// more running ports (guests' taps) fails before anything changes, naming what the task
// asked for, not every tap.
func TestBridgeTooManyPorts(t *testing.T) {
	k := newFakeKernel()
	br := k.add(&fakeLink{name: "br0", kind: "bridge", up: true})
	for i := 0; i < 300; i++ {
		k.add(&fakeLink{name: fmt.Sprintf("vnet%d", i), up: true, master: br.index})
	}
	k.nic("eth1", true)
	root := host.Root(t.TempDir())
	mgr, _ := testTxn(t, k, root)
	before := k.state()
	m := Bridge{root: root, open: k.opener(), txn: mgr}
	_, err := moduletest.Run(t, m, map[string]cty.Value{"name": s("br0"), "ports": strs("eth1"), "backend": s("none"), "confirm_timeout": s("30s")}, true)
	if err == nil || !strings.Contains(err.Error(), "more than 256 links hang together with br0, eth1;") {
		t.Errorf("error %v", err)
	}
	if k.state() != before {
		t.Error("the kernel changed")
	}
}

// TestBridgeIfupdownBootOrder: ifup -a brings interfaces up in the order of their auto
// lines, sourced files read where their source line stands, and bridge-utils' hook skips a
// port that does not exist yet: a bridge whose bond port comes up after it is warned of
// (after a reboot it would run without the bond); one that comes up after its bond, or
// whose ports are NICs, is not.
func TestBridgeIfupdownBootOrder(t *testing.T) {
	const sourceAll = "source /etc/network/interfaces.d/*\n"
	cases := []struct {
		name         string
		main         string
		bond, bridge string
		ports        []string
		warn         bool
	}{
		{"bond0 before br0 in interfaces.d", sourceAll, "bond0", "br0", []string{"bond0"}, false},
		{"lag0 after br0 in interfaces.d", sourceAll, "lag0", "br0", []string{"lag0"}, true},
		{"vmbr0 after bond0", sourceAll, "bond0", "vmbr0", []string{"bond0"}, false},
		{"the bond in the main file before the source line", "auto lag0\niface lag0 inet manual\n    bond-slaves ens1f0 ens1f1\n    bond-mode 802.3ad\n\n" + sourceAll,
			"lag0", "br0", []string{"lag0"}, false},
		{"the bridge in the main file after the source line", sourceAll + "\nauto br0\niface br0 inet manual\n    bridge_ports none\n",
			"lag0", "br0", []string{"lag0"}, false},
		{"the bridge in the main file before the source line", "auto br0\niface br0 inet manual\n    bridge_ports none\n\n" + sourceAll,
			"bond0", "br0", []string{"bond0"}, true},
		{"NIC ports need no stanza", sourceAll, "lag0", "br0", []string{"ens2f0"}, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			root := host.Root(t.TempDir())
			if err := os.MkdirAll(root.Path(ifupdownDir), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(root.Path(ifupdownMain), []byte(c.main), 0o644); err != nil {
				t.Fatal(err)
			}
			f := &fileTree{root}
			ctx := context.Background()
			p, err := planPersist(ctx, f, backendIfupdown, bondWants(t, with(lacpBond, "name", s(c.bond))))
			if err != nil {
				t.Fatal(err)
			}
			if err := p.ws.apply(); err != nil {
				t.Fatal(err)
			}
			br := map[string]cty.Value{"name": s(c.bridge), "ports": strs(c.ports...)}
			for _, round := range []string{"check", "again"} {
				p, err = planPersist(ctx, f, backendIfupdown, bridgeWants(t, br))
				if err != nil {
					t.Fatal(err)
				}
				warned := slices.ContainsFunc(p.warnings, func(w string) bool {
					return strings.HasPrefix(w, "at boot ifup brings "+c.bridge+" up before its port "+c.bond+" (")
				})
				if warned != c.warn {
					t.Errorf("%s: warnings %q, want the boot order one: %v", round, p.warnings, c.warn)
				}
				if err := p.ws.apply(); err != nil {
					t.Fatal(err)
				}
			}
		})
	}
}

// TestBridgeIfupdownOptionWords: an ifupdown bridge stanza is read as bridge-utils' hook
// acts on it: brctl stp takes on, yes or 1 (and refuses true), the hook turns VLAN
// filtering on for "yes" alone; a word the hook does not take as on is drift, rewritten.
func TestBridgeIfupdownOptionWords(t *testing.T) {
	cases := []struct {
		stp, aware string
		want       bool // stp and vlan_filtering the task wants
		inSync     bool
	}{
		{"on", "yes", true, true},
		{"yes", "yes", true, true},
		{"1", "yes", true, true},
		{"true", "yes", true, false},
		{"on", "on", true, false},
		{"on", "1", true, false},
		{"off", "no", false, true},
		{"off", "", false, true},
	}
	for _, c := range cases {
		root := host.Root(t.TempDir())
		text := "auto br0\niface br0 inet manual\n    bridge_ports eth1\n    bridge_stp " + c.stp + "\n"
		if c.aware != "" {
			text += "    bridge_vlan_aware " + c.aware + "\n"
		}
		if err := os.MkdirAll(root.Path(ifupdownDir), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(root.Path(ifupdownMain), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		f := &fileTree{root}
		wants := bridgeWants(t, map[string]cty.Value{"name": s("br0"), "ports": strs("eth1"), "stp": cty.BoolVal(c.want), "vlan_filtering": cty.BoolVal(c.want)})
		p, err := planPersist(context.Background(), f, backendIfupdown, wants)
		if err != nil {
			t.Fatal(err)
		}
		if got := len(p.drift) == 0; got != c.inSync {
			t.Errorf("bridge_stp %s, bridge_vlan_aware %q: drift %q, want in sync: %v", c.stp, c.aware, p.drift, c.inSync)
		}
		if err := p.ws.apply(); err != nil {
			t.Fatal(err)
		}
		if p, err = planPersist(context.Background(), f, backendIfupdown, wants); err != nil || len(p.drift) > 0 {
			t.Errorf("bridge_stp %s, bridge_vlan_aware %q: after the write: %v drift %q", c.stp, c.aware, err, p.drift)
		}
	}
}

// TestBridgeGuardNMPortProfile: a port the task no longer lists stays in the bridge at
// runtime (no exclusive_ports), but with the NetworkManager backend its port profile of
// runbook's own is removed, and NetworkManager then releases the port at once: when that
// port carries the session the guard refuses, in check and apply, with nothing changed;
// a profile that is only edited, or another backend's files, release nothing now.
func TestBridgeGuardNMPortProfile(t *testing.T) {
	const bridgeProfile = "[connection]\nid=br0\ntype=bridge\ninterface-name=br0\n\n[bridge]\nstp=false\nvlan-filtering=false\n\n[ipv4]\nmethod=disabled\n\n[ipv6]\nmethod=disabled\n"
	port := func(id string) string {
		return "[connection]\nid=" + id + "\ntype=ethernet\ninterface-name=eth1\nmaster=br0\nslave-type=bridge\n"
	}
	cases := []struct {
		name    string
		backend string
		files   map[string]string
		refused bool
	}{
		{"runbook's port profile removed", backendNM, map[string]string{"br0.nmconnection": bridgeProfile, "br0-port-eth1.nmconnection": port("br0-port-eth1")}, true},
		{"another port profile edited", backendNM, map[string]string{"br0.nmconnection": bridgeProfile, "uplink.nmconnection": port("uplink")}, false},
		{"ifupdown", backendIfupdown, nil, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			k := newFakeKernel()
			br := k.add(&fakeLink{name: "br0", kind: "bridge", up: true, addrs: []string{"192.0.2.10/24"}})
			k.add(&fakeLink{name: "eth1", up: true, master: br.index})
			k.nic("eth2", true)
			k.defaultVia = br.index
			root := host.Root(t.TempDir())
			dir := root.Path(nmConnectionsDir)
			if err := os.MkdirAll(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			for name, text := range c.files {
				if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			before := k.state()
			m := Bridge{root: root, open: k.opener(), session: eth0Session}
			args := map[string]cty.Value{"name": s("br0"), "ports": strs("eth2"), "backend": s(c.backend)}
			const want = `"eth1: its profile /etc/NetworkManager/system-connections/br0-port-eth1.nmconnection removed (NetworkManager releases it from br0 at once)" removes eth1: eth1 is a port of br0`
			for _, apply := range []bool{false, true} {
				if !c.refused && apply {
					break
				}
				_, err := moduletest.Run(t, m, args, apply)
				if refused := err != nil && strings.Contains(err.Error(), want); refused != c.refused || (!c.refused && err != nil) {
					t.Fatalf("apply=%v: %v; want refused: %v", apply, err, c.refused)
				}
				if got := k.state(); got != before || len(k.calls) != 0 {
					t.Fatalf("the kernel changed: %v", k.calls)
				}
				for name, text := range c.files {
					if b, err := os.ReadFile(filepath.Join(dir, name)); err != nil || string(b) != text {
						t.Fatalf("%s changed: %q %v", name, b, err)
					}
				}
			}
			if !c.refused {
				return
			}
			res, err := moduletest.Run(t, m, with(args, "on_management_path", s("allow")), false)
			if err != nil || !slices.ContainsFunc(res.Warnings, func(w string) bool { return strings.Contains(w, want) }) {
				t.Errorf("allow: %v, result %+v", err, res)
			}
		})
	}
}
