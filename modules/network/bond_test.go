package network

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/vishvananda/netlink"
	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/gocty"

	"github.com/runbook/runbook/modules"
	"github.com/runbook/runbook/modules/host"
	"github.com/runbook/runbook/modules/moduletest"
)

// kernelTimeline runs moduletest.Timeline with m working on k: the first check must leave
// the kernel as it was and report wantDrift (nil: any) as its runtime drift, and neither
// check after apply nor the second apply may call the kernel. It returns the calls the
// apply made, and the four results.
func kernelTimeline(t *testing.T, k *fakeKernel, m modules.Module, args map[string]cty.Value, wantDrift []string) ([]string, [4]*modules.Result) {
	t.Helper()
	before := k.state()
	k.runs = nil
	res := moduletest.Timeline(t, m, args, moduletest.Unchanged(func(t testing.TB, step string) {
		t.Helper()
		if n := len(k.runs); n > 0 && n != 2 && len(k.runs[n-1]) > 0 {
			t.Fatalf("%s called the kernel: %v", step, k.runs[n-1])
		}
		if len(k.runs) == 1 && k.state() != before {
			t.Fatalf("%s changed the kernel", step)
		}
	}))
	if got := stringsOf(t, moduletest.Data(t, m, res[0]).GetAttr("runtime_drift")); wantDrift != nil && !slices.Equal(got, wantDrift) {
		t.Errorf("runtime drift:\n  %s\nwant:\n  %s", strings.Join(got, "\n  "), strings.Join(wantDrift, "\n  "))
	}
	if v := moduletest.Data(t, m, res[2]).GetAttr("runtime_drift"); v.IsNull() || v.LengthInt() != 0 {
		t.Errorf("in sync, runtime_drift is %#v, want an empty list", v)
	}
	if len(k.runs) != 4 {
		t.Fatalf("%d runs opened the kernel, want 4", len(k.runs))
	}
	return k.runs[1], res
}

// stringsOf reads a list of strings from result data.
func stringsOf(t testing.TB, v cty.Value) []string {
	t.Helper()
	var out []string
	if err := gocty.FromCtyValue(v, &out); err != nil {
		t.Fatal(err)
	}
	return out
}

func runtimeOnly(args map[string]cty.Value) map[string]cty.Value {
	return with(args, "backend", s("none"))
}

// TestBondRuntime drives the bond module against the fake kernel from several starting
// points: the calls apply makes must respect the kernel's rules (the fake refuses what the
// kernel refuses) and come in the order the rules need.
func TestBondRuntime(t *testing.T) {
	cases := []struct {
		name  string
		setup func(k *fakeKernel)
		args  map[string]cty.Value
		drift []string
		calls []string
	}{
		{"create", func(k *fakeKernel) {
			k.nic("ens1f0", true)
			k.nic("ens1f1", false)
		}, lacpBond, []string{
			"bond0: create (mode 802.3ad)", "bond0: mtu 9100", "ens1f0: enslave to bond0", "ens1f1: enslave to bond0", "bond0: down → up",
			"ens1f0: mtu 1500 → 9100", "ens1f1: mtu 1500 → 9100",
		}, []string{"add bond bond0", "mtu bond0 9100", "down ens1f0", "enslave ens1f0 bond0", "enslave ens1f1 bond0", "up bond0"}},

		{"mode change releases the slaves", func(k *fakeKernel) {
			b := k.add(&fakeLink{name: "bond0", kind: "bond", up: true, bond: bondDefaults})
			k.add(&fakeLink{name: "ens1f0", up: true, master: b.index})
			k.add(&fakeLink{name: "ens1f1", up: true, master: b.index})
		}, lacpBond, []string{
			"bond0: mode balance-rr → 802.3ad", "bond0: miimon 0 → 100", "bond0: lacp_rate slow → fast", "bond0: xmit_hash_policy layer2 → layer3+4",
			"bond0: mtu 1500 → 9100", "ens1f0: mtu 1500 → 9100", "ens1f1: mtu 1500 → 9100",
		}, []string{"release ens1f0", "release ens1f1", "down bond0", "modify bond0 mode=4 lacp_rate=1 xmit_hash_policy=1 miimon=100",
			"mtu bond0 9100", "enslave ens1f0 bond0", "enslave ens1f1 bond0", "up bond0"}},

		{"lacp_rate needs the bond down, not the slaves out", func(k *fakeKernel) {
			b := k.add(&fakeLink{name: "bond0", kind: "bond", up: true, mtu: 9100, bond: netlink.Bond{Mode: netlink.BOND_MODE_802_3AD, Miimon: 100, XmitHashPolicy: 1}})
			k.add(&fakeLink{name: "ens1f0", up: true, master: b.index, mtu: 9100})
			k.add(&fakeLink{name: "ens1f1", up: true, master: b.index, mtu: 9100})
		}, lacpBond, []string{"bond0: lacp_rate slow → fast"}, []string{"down bond0", "modify bond0 lacp_rate=1", "up bond0"}},

		{"a slave moves from another bond, an extra one leaves", func(k *fakeKernel) {
			b := k.add(&fakeLink{name: "bond0", kind: "bond", up: true, mtu: 9100, bond: netlink.Bond{Mode: netlink.BOND_MODE_802_3AD, Miimon: 100, XmitHashPolicy: 1, LacpRate: 1}})
			other := k.add(&fakeLink{name: "bond1", kind: "bond", up: true, bond: bondDefaults})
			k.add(&fakeLink{name: "ens1f0", up: true, master: b.index, mtu: 9100})
			k.add(&fakeLink{name: "ens1f2", up: true, master: b.index, mtu: 9100})
			k.add(&fakeLink{name: "ens1f1", up: true, master: other.index})
		}, lacpBond, []string{"ens1f2: release from bond0", "ens1f1: master bond1 → bond0", "ens1f1: mtu 1500 → 9100"},
			[]string{"release ens1f2", "release ens1f1", "enslave ens1f1 bond0"}},

		{"a slave set down is brought up", func(k *fakeKernel) {
			b := k.add(&fakeLink{name: "bond0", kind: "bond", up: true, mtu: 9100, bond: netlink.Bond{Mode: netlink.BOND_MODE_802_3AD, Miimon: 100, XmitHashPolicy: 1, LacpRate: 1}})
			k.add(&fakeLink{name: "ens1f0", up: true, master: b.index, mtu: 9100})
			k.add(&fakeLink{name: "ens1f1", up: false, master: b.index, mtu: 9100})
		}, lacpBond, []string{"ens1f1: down → up"}, []string{"up ens1f1"}},

		{"active-backup: primary once enslaved, addresses added", func(k *fakeKernel) {
			k.nic("eno1", false)
			k.nic("eno2", false)
		}, map[string]cty.Value{"name": s("bond1"), "mode": n(1), "slaves": strs("eno1", "eno2"), "primary": s("eno2"), "miimon": n(100),
			"addresses": strs("192.0.2.10/24"), "mtu": s("auto")}, nil,
			[]string{"add bond bond1", "enslave eno1 bond1", "enslave eno2 bond1", "modify bond1 primary=2", "up bond1", "addr add bond1 192.0.2.10/24"}},

		{"mtu 1500 where 1500 runs is no change", func(k *fakeKernel) {
			b := k.add(&fakeLink{name: "bond0", kind: "bond", up: false, bond: netlink.Bond{Mode: netlink.BOND_MODE_802_3AD, Miimon: 100, XmitHashPolicy: 1, LacpRate: 1}})
			k.add(&fakeLink{name: "ens1f0", up: true, master: b.index})
			k.add(&fakeLink{name: "ens1f1", up: true, master: b.index})
		}, with(lacpBond, "mtu", n(1500)), []string{"bond0: down → up"}, []string{"up bond0"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			k := newFakeKernel()
			c.setup(k)
			m := Bond{root: host.Root(t.TempDir()), open: k.opener()}
			calls, res := kernelTimeline(t, k, m, runtimeOnly(c.args), c.drift)
			if !slices.Equal(calls, c.calls) {
				t.Errorf("calls:\n  %s\nwant:\n  %s", strings.Join(calls, "\n  "), strings.Join(c.calls, "\n  "))
			}
			// What check mode predicts is what apply leaves.
			if res[0].Diff.After != res[1].Diff.After {
				t.Errorf("check predicted\n%s\napply left\n%s", res[0].Diff.After, res[1].Diff.After)
			}
		})
	}
}

func TestBondRuntimeErrors(t *testing.T) {
	cases := []struct {
		name  string
		setup func(k *fakeKernel)
		args  map[string]cty.Value
		apply bool
		want  string
	}{
		{"missing slave", func(k *fakeKernel) { k.nic("ens1f0", true) }, lacpBond, false, "slave ens1f1: no such interface"},
		{"name taken", func(k *fakeKernel) { k.nic("bond0", true); k.nic("ens1f0", true); k.nic("ens1f1", true) }, lacpBond, false,
			"bond0 exists and is a device link, not a bond"},
		{"no bonding driver", func(k *fakeKernel) { k.noBonding = true; k.nic("ens1f0", true); k.nic("ens1f1", true) }, lacpBond, true,
			"modprobe bonding"},
		{"slave is a bond", func(k *fakeKernel) {
			k.nic("ens1f0", true)
			k.add(&fakeLink{name: "ens1f1", kind: "bond", bond: bondDefaults})
		}, lacpBond, false, "slave ens1f1 is a bond itself"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			k := newFakeKernel()
			c.setup(k)
			_, err := moduletest.Run(t, Bond{root: host.Root(t.TempDir()), open: k.opener()}, runtimeOnly(c.args), c.apply)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err %v, want %q", err, c.want)
			}
		})
	}
}

// TestBondCheckChangesNothing: with persistence on, check mode leaves the kernel and every
// file as they were, and reports runtime and persistent drift apart; apply writes the
// keyfiles 0600; LACP data comes from the host's sysfs and /proc.
func TestBondCheckChangesNothing(t *testing.T) {
	k := newFakeKernel()
	k.nic("ens1f0", true)
	k.nic("ens1f1", true)
	root := loadFixture(t, "nm-bond-existing").root(t)
	snapshot := func() string {
		var b strings.Builder
		_ = filepath.Walk(root, func(p string, fi os.FileInfo, err error) error {
			if err == nil && !fi.IsDir() {
				data, _ := os.ReadFile(p)
				b.WriteString(p + " " + fi.Mode().String() + "\n" + string(data))
			}
			return nil
		})
		return b.String()
	}
	before := snapshot()
	m := Bond{root: host.Root(root), open: k.opener()}
	args := with(lacpBond, "backend", s(backendNM))
	res, err := moduletest.Run(t, m, args, false)
	if err != nil {
		t.Fatal(err)
	}
	if snapshot() != before || len(k.calls) > 0 {
		t.Fatalf("check changed the host: calls %v", k.calls)
	}
	d := res.Data.(bondResult)
	if res.Status != modules.StatusDrift || len(d.RuntimeDrift) == 0 || len(d.PersistentDrift) != 5 {
		t.Fatalf("check: %s runtime %v persistent %v", res.Status, d.RuntimeDrift, d.PersistentDrift)
	}
	if d.Backend != backendNM || len(d.Files) != 4 {
		t.Errorf("backend %v files %v", d.Backend, d.Files)
	}
	for _, want := range []string{"# runtime:", "bond0: absent", "lacp_rate=slow", "lacp_rate=fast", "bond0-port-ens1f2.nmconnection: (absent)"} {
		if !strings.Contains(res.Diff.Before+res.Diff.After, want) {
			t.Errorf("diff lacks %q:\n%s\n---\n%s", want, res.Diff.Before, res.Diff.After)
		}
	}
	if !strings.HasPrefix(res.Msg, "would change bond bond0: runtime: ") || !strings.Contains(res.Msg, "| NetworkManager: ") {
		t.Errorf("msg %q", res.Msg)
	}

	// The host's LACP state, as sysfs and /proc show it once the bond runs.
	lacp := loadFixture(t, "lacp-ok").root(t)
	if err := os.Rename(filepath.Join(lacp, "sys"), filepath.Join(root, "sys")); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(filepath.Join(lacp, "proc"), filepath.Join(root, "proc")); err != nil {
		t.Fatal(err)
	}
	if res, err = moduletest.Run(t, m, args, true); err != nil || res.Status != modules.StatusChanged {
		t.Fatalf("apply: %v %v", err, res)
	}
	res, err = moduletest.Run(t, m, args, false)
	if err != nil || res.Status != modules.StatusOK {
		t.Fatalf("check after apply: %v %+v", err, res)
	}
	d = res.Data.(bondResult)
	if !d.LACPOK || d.Mode != "802.3ad" || d.MTU == nil || *d.MTU != 9100 ||
		!strings.Contains(res.Msg, "LACP negotiated") || len(res.Warnings) > 0 {
		t.Errorf("in sync: %q lacp_ok %v mode %v mtu %v warnings %q", res.Msg, d.LACPOK, d.Mode, d.MTU, res.Warnings)
	}
	if got := moduletest.Data(t, m, res).GetAttr("lacp").GetAttr("slaves").GetAttr("ens1f1").GetAttr("partner_mac"); !got.RawEquals(cty.StringVal("00:1c:73:aa:bb:cc")) {
		t.Errorf("lacp.slaves.ens1f1.partner_mac = %#v", got)
	}
	// A split aggregation is reported, not "fixed".
	split := loadFixture(t, "lacp-split").root(t)
	if err := os.RemoveAll(filepath.Join(root, "sys")); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(filepath.Join(split, "sys"), filepath.Join(root, "sys")); err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(filepath.Join(root, "proc")); err != nil {
		t.Fatal(err)
	}
	res, err = moduletest.Run(t, m, args, false)
	if err != nil || res.Status != modules.StatusOK || res.Data.(bondResult).LACPOK || len(res.Warnings) != 1 ||
		!strings.Contains(res.Warnings[0], "ens1f1 in aggregator 2") {
		t.Errorf("split: %v %s lacp_ok %v warnings %q", err, res.Status, res.Data.(bondResult).LACPOK, res.Warnings)
	}
}
