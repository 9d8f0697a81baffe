package network

import (
	"slices"
	"strings"
	"testing"

	"github.com/zclconf/go-cty/cty"

	"github.com/runbook/runbook/modules"
	"github.com/runbook/runbook/modules/host"
	"github.com/runbook/runbook/modules/moduletest"
)

func vlanVal(parent string, id int) cty.Value {
	return cty.ObjectVal(map[string]cty.Value{"parent": s(parent), "id": n(id)})
}

// TestInterfaceRuntime runs the interface module against the fake kernel.
func TestInterfaceRuntime(t *testing.T) {
	cases := []struct {
		name  string
		setup func(k *fakeKernel)
		args  map[string]cty.Value
		drift []string
		calls []string
	}{
		{"mtu, addresses, up", func(k *fakeKernel) {
			k.add(&fakeLink{name: "ens1f0", addrs: []string{"10.9.9.9/8"}})
		}, map[string]cty.Value{"name": s("ens1f0"), "mtu": n(9000), "state": s("up"), "addresses": strs("192.0.2.10/24", "2001:db8::10/64"), "exclusive": cty.True},
			[]string{"ens1f0: mtu 1500 → 9000", "ens1f0: add address 192.0.2.10/24", "ens1f0: add address 2001:db8::10/64",
				"ens1f0: remove address 10.9.9.9/8", "ens1f0: down → up"},
			// Addresses are added before the old ones go; up comes last.
			[]string{"mtu ens1f0 9000", "addr add ens1f0 192.0.2.10/24", "addr add ens1f0 2001:db8::10/64", "addr del ens1f0 10.9.9.9/8", "up ens1f0"}},
		{"down first", func(k *fakeKernel) {
			k.add(&fakeLink{name: "ens1f1", up: true, mtu: 9000})
		}, map[string]cty.Value{"name": s("ens1f1"), "mtu": n(1500), "state": s("down")},
			[]string{"ens1f1: up → down", "ens1f1: mtu 9000 → 1500"}, []string{"down ens1f1", "mtu ens1f1 1500"}},
		{"vlan created", func(k *fakeKernel) {
			k.add(&fakeLink{name: "bond0", kind: "bond", up: true, mtu: 9000, bond: bondDefaults})
		}, map[string]cty.Value{"name": s("bond0.100"), "vlan": vlanVal("bond0", 100), "state": s("up"), "addresses": strs("198.51.100.10/24")},
			[]string{"bond0.100: create VLAN 100 on bond0", "bond0.100: add address 198.51.100.10/24", "bond0.100: down → up"},
			[]string{"add vlan bond0.100 id 100 parent 1", "addr add bond0.100 198.51.100.10/24", "up bond0.100"}},
		{"vlan made again with another id", func(k *fakeKernel) {
			b := k.add(&fakeLink{name: "bond0", kind: "bond", up: true, bond: bondDefaults})
			k.add(&fakeLink{name: "vlan100", kind: "vlan", parent: b.index, vlanID: 101, up: true, addrs: []string{"198.51.100.10/24"}})
		}, map[string]cty.Value{"name": s("vlan100"), "vlan": vlanVal("bond0", 100), "state": s("up"), "addresses": strs("198.51.100.10/24")},
			[]string{"vlan100: VLAN 101 on bond0 → VLAN 100 on bond0 (made again)"},
			[]string{"del vlan100", "add vlan vlan100 id 100 parent 1", "addr add vlan100 198.51.100.10/24", "up vlan100"}},
		{"auto mtu leaves the kernel alone", func(k *fakeKernel) {
			k.add(&fakeLink{name: "ens1f0", up: false, mtu: 9000})
		}, map[string]cty.Value{"name": s("ens1f0"), "mtu": s("auto"), "state": s("up")},
			[]string{"ens1f0: down → up"}, []string{"up ens1f0"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			k := newFakeKernel()
			c.setup(k)
			m := Interface{root: host.Root(t.TempDir()), open: k.opener()}
			calls, _ := kernelTimeline(t, k, m, runtimeOnly(c.args), c.drift)
			if !slices.Equal(calls, c.calls) {
				t.Errorf("calls:\n  %s\nwant:\n  %s", strings.Join(calls, "\n  "), strings.Join(c.calls, "\n  "))
			}
		})
	}
}

func TestInterfaceErrors(t *testing.T) {
	k := newFakeKernel()
	k.nic("ens1f0", true)
	k.noVLAN = true
	m := Interface{root: host.Root(t.TempDir()), open: k.opener()}
	for _, c := range []struct {
		args  map[string]cty.Value
		apply bool
		want  string
	}{
		{map[string]cty.Value{"name": s("ens9"), "mtu": n(9000)}, false, "no interface ens9"},
		{map[string]cty.Value{"name": s("ens1f0"), "vlan": vlanVal("bond0", 100)}, false, "ens1f0 exists and is a device link, not a VLAN"},
		{map[string]cty.Value{"name": s("ens1f0.5"), "vlan": vlanVal("ens1f0", 5)}, true, "modprobe 8021q"},
		{map[string]cty.Value{"name": s("v7"), "vlan": vlanVal("bond7", 7)}, true, "VLAN parent bond7"},
	} {
		_, err := moduletest.Run(t, m, runtimeOnly(c.args), c.apply)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: err %v, want %q", c.args["name"], err, c.want)
		}
	}
	// A VLAN on a parent an earlier task makes: check reports it with a warning.
	res, err := moduletest.Run(t, m, runtimeOnly(map[string]cty.Value{"name": s("v7"), "vlan": vlanVal("bond7", 7)}), false)
	if err != nil || res.Status != modules.StatusDrift || len(res.Warnings) != 1 || !strings.Contains(res.Warnings[0], "bond7 does not exist (yet)") {
		t.Errorf("check with a missing parent: %v %+v", err, res)
	}
}

// TestInterfacePersistOnly: runtime = false writes the files and never opens netlink.
func TestInterfacePersistOnly(t *testing.T) {
	root := loadFixture(t, "ifupdown-iface-down").root(t)
	opened := false
	m := Interface{root: host.Root(root), open: func() (linkOps, func(), error) { opened = true; return nil, nil, nil }}
	args := map[string]cty.Value{"name": s("ens1f1"), "state": s("down"), "mtu": s("auto"), "runtime": cty.False, "backend": s(backendIfupdown)}
	res, err := moduletest.Run(t, m, args, true)
	if err != nil || res.Status != modules.StatusChanged || opened {
		t.Fatalf("apply: %v %+v opened %v", err, res, opened)
	}
	if d := res.Data.(ifaceResult); len(d.PersistentDrift) != 2 || len(d.RuntimeDrift) != 0 {
		t.Errorf("drift %v / %v", d.PersistentDrift, d.RuntimeDrift)
	}
	if res, err = moduletest.Run(t, m, args, false); err != nil || res.Status != modules.StatusOK {
		t.Fatalf("check after apply: %v %+v", err, res)
	}
}
