package network

import (
	"context"
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

// bondWants builds the persistent wants of a bond task from its arguments.
func bondWants(t *testing.T, args map[string]cty.Value) []ifWant {
	t.Helper()
	a, _, err := moduletest.Def(t, Bond{}).Args(cty.ObjectVal(args))
	if err != nil {
		t.Fatal(err)
	}
	spec, errs := parseBond(a.(bondArgs))
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	return spec.wants()
}

func ifaceWants(t *testing.T, args map[string]cty.Value) []ifWant {
	t.Helper()
	a, _, err := moduletest.Def(t, Interface{}).Args(cty.ObjectVal(args))
	if err != nil {
		t.Fatal(err)
	}
	spec, errs := parseIface(a.(ifaceArgs))
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	return []ifWant{spec.want()}
}

var lacpBond = map[string]cty.Value{
	"name": s("bond0"), "mode": s("802.3ad"), "slaves": strs("ens1f0", "ens1f1"), "miimon": n(100),
	"lacp_rate": s("fast"), "xmit_hash_policy": s("layer3+4"), "mtu": n(9100),
}

func with(base map[string]cty.Value, kv ...any) map[string]cty.Value {
	out := map[string]cty.Value{}
	for k, v := range base {
		out[k] = v
	}
	for i := 0; i < len(kv); i += 2 {
		out[kv[i].(string)] = kv[i+1].(cty.Value)
	}
	return out
}

// TestPersistGolden runs every backend's writer on fixture trees: what the plan writes is
// the golden "want/" files, the drift it reports is what the files lack, and once written
// the files read back as in sync (a second plan finds nothing to do).
func TestPersistGolden(t *testing.T) {
	vlanArgs := map[string]cty.Value{"name": s("bond0.100"), "vlan": cty.ObjectVal(map[string]cty.Value{"parent": s("bond0"), "id": n(100)}),
		"mtu": n(9000), "state": s("up"), "addresses": strs("198.51.100.10/24", "2001:db8:100::10/64")}
	cases := []struct {
		fixture, backend string
		wants            func(t *testing.T) []ifWant
		drift            []string // every line the first plan reports
	}{
		{"nm-bond-new", backendNM, func(t *testing.T) []ifWant { return bondWants(t, lacpBond) }, []string{
			"bond0: not configured", "ens1f0: not configured", "ens1f1: not configured"}},
		{"nm-bond-existing", backendNM, func(t *testing.T) []ifWant { return bondWants(t, lacpBond) }, []string{
			"bond0: lacp_rate slow → fast", "bond0: slaves ens1f0, ens1f2 → ens1f0, ens1f1",
			"ens1f0: file mode 0644 → 0600 (NetworkManager ignores a keyfile others can read)",
			"ens1f1: master (none) → bond0", "ens1f1: mtu auto → 9100"}},
		{"nm-semantic", backendNM, func(t *testing.T) []ifWant {
			return bondWants(t, with(lacpBond, "mode", n(4), "lacp_rate", n(1), "mtu", n(1500)))
		}, nil},
		{"nm-vlan", backendNM, func(t *testing.T) []ifWant { return ifaceWants(t, vlanArgs) }, []string{"bond0.100: not configured"}},
		{"nm-iface-on-bond", backendNM, func(t *testing.T) []ifWant {
			return ifaceWants(t, map[string]cty.Value{"name": s("bond0"), "mtu": n(9000), "state": s("up")})
		}, []string{"bond0: mtu auto → 9000"}},
		{"ifcfg-bond-new", backendIfcfg, func(t *testing.T) []ifWant { return bondWants(t, lacpBond) }, []string{
			"bond0: not configured", "ens1f0: not configured", "ens1f1: not configured"}},
		{"ifcfg-bond-existing", backendIfcfg, func(t *testing.T) []ifWant {
			return bondWants(t, with(lacpBond, "addresses", strs("192.0.2.10/24")))
		}, []string{
			"bond0: mtu 1500 → 9100", "bond0: addresses (none) → 192.0.2.10/24", "bond0: lacp_rate slow → fast",
			"bond0: slaves ens1f1 → ens1f0, ens1f1", "ens1f0: master (none) → bond0", "ens1f0: mtu auto → 9100", "ens1f1: mtu 1500 → 9100"}},
		{"ifcfg-semantic", backendIfcfg, func(t *testing.T) []ifWant { return bondWants(t, lacpBond) }, nil},
		{"ifcfg-vlan", backendIfcfg, func(t *testing.T) []ifWant { return ifaceWants(t, vlanArgs) }, []string{"bond0.100: not configured"}},
		{"networkd-bond-new", backendNetworkd, func(t *testing.T) []ifWant { return bondWants(t, lacpBond) }, []string{
			// The catch-all file applies to the ports until runbook's own sort before it.
			"bond0: not configured", "ens1f0: master (none) → bond0", "ens1f0: mtu auto → 9100",
			"ens1f1: master (none) → bond0", "ens1f1: mtu auto → 9100"}},
		{"networkd-semantic", backendNetworkd, func(t *testing.T) []ifWant {
			return bondWants(t, with(lacpBond, "mode", s("4")))
		}, nil},
		{"networkd-primary", backendNetworkd, func(t *testing.T) []ifWant {
			return bondWants(t, map[string]cty.Value{"name": s("bond1"), "mode": s("active-backup"), "slaves": strs("eno1", "eno2"),
				"primary": s("eno2"), "miimon": n(100), "addresses": strs("192.0.2.10/24")})
		}, []string{
			"bond1: addressing dhcp → static", "bond1: addresses (none) → 192.0.2.10/24", "bond1: primary eno1 → eno2",
			"eno1: primary slave of bond1 yes → no", "eno2: primary slave of bond1 no → yes"}},
		{"networkd-vlan", backendNetworkd, func(t *testing.T) []ifWant { return ifaceWants(t, vlanArgs) }, []string{"bond0.100: not configured"}},
		{"ifupdown-bond-new", backendIfupdown, func(t *testing.T) []ifWant { return bondWants(t, lacpBond) }, []string{"bond0: not configured"}},
		{"ifupdown-bond-existing", backendIfupdown, func(t *testing.T) []ifWant {
			return bondWants(t, with(lacpBond, "addresses", strs("192.0.2.10/24", "192.0.2.11/24", "2001:db8::10/64")))
		}, []string{
			"bond0: mtu auto → 9100", "bond0: addresses 192.0.2.10/24 → 192.0.2.10/24, 192.0.2.11/24, 2001:db8::10/64",
			"bond0: lacp_rate (unset) → fast", "bond0: slaves ens1f0 → ens1f0, ens1f1",
			"ens1f1: mtu auto → 9100", "ens1f1: addressing inet dhcp → static"}},
		{"ifupdown-semantic", backendIfupdown, func(t *testing.T) []ifWant { return bondWants(t, lacpBond) }, nil},
		{"ifupdown-bond-slave-left", backendIfupdown, func(t *testing.T) []ifWant { return bondWants(t, lacpBond) }, []string{
			"ens1f2: bond-master bond0 → none (not a slave of bond0 any more)"}},
		{"ifupdown-vlan", backendIfupdown, func(t *testing.T) []ifWant { return ifaceWants(t, vlanArgs) }, []string{"bond0.100: not configured"}},
		{"ifupdown-iface-down", backendIfupdown, func(t *testing.T) []ifWant {
			return ifaceWants(t, map[string]cty.Value{"name": s("ens1f1"), "state": s("down"), "mtu": s("auto")})
		}, []string{"ens1f1: mtu 9000 → auto", "ens1f1: start at boot yes → no"}},
	}
	for _, tc := range cases {
		t.Run(tc.fixture, func(t *testing.T) {
			fx := loadFixture(t, tc.fixture)
			root := fx.root(t)
			ctx := context.Background()
			f := &fileTree{host.Root(root)}
			plan, err := planPersist(ctx, f, tc.backend, tc.wants(t))
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(plan.drift, tc.drift) {
				t.Errorf("drift:\n  %s\nwant:\n  %s", strings.Join(plan.drift, "\n  "), strings.Join(tc.drift, "\n  "))
			}
			got := map[string]string{}
			for _, x := range plan.ws.changes() {
				if x.removed {
					got[x.path] = "(removed)\n"
				} else {
					got[x.path] = x.cur
				}
			}
			if *update {
				fx.setWant(t, got)
			} else if want := fx.want(); !mapsEqual(got, want) {
				for _, p := range sortedKeys(merge(got, want)) {
					if got[p] != want[p] {
						t.Errorf("%s:\n--- got\n%s--- want\n%s", p, got[p], want[p])
					}
				}
			}
			if err := plan.ws.apply(); err != nil {
				t.Fatal(err)
			}
			if tc.backend == backendNM {
				for p := range got {
					if fi, err := os.Stat(filepath.Join(root, p)); err == nil && fi.Mode().Perm() != 0o600 {
						t.Errorf("%s: mode %v, want 0600", p, fi.Mode().Perm())
					}
				}
			}
			again, err := planPersist(ctx, f, tc.backend, tc.wants(t))
			if err != nil {
				t.Fatal(err)
			}
			if len(again.drift) > 0 || len(again.ws.changes()) > 0 {
				t.Errorf("after writing, the files still differ: %q (%d changes)", again.drift, len(again.ws.changes()))
			}
		})
	}
}

func mapsEqual(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

func merge(a, b map[string]string) map[string]string {
	out := map[string]string{}
	for k, v := range a {
		out[k] = v
	}
	for k, v := range b {
		out[k] = v
	}
	return out
}

var _ = modules.StatusOK

// TestChooseBackend: "auto" follows the facts module's network.backend.
func TestChooseBackend(t *testing.T) {
	cases := []struct {
		files map[string]string
		want  string
		warn  bool
		err   string
	}{
		{map[string]string{"run/systemd/units/invocation:NetworkManager.service": "x"}, backendNM, false, ""},
		{map[string]string{"run/systemd/units/invocation:systemd-networkd.service": "x"}, backendNetworkd, false, ""},
		{map[string]string{"etc/network/interfaces": "auto eth0\niface eth0 inet dhcp\n", "run/network/ifstate": "eth0=eth0\n"}, backendIfupdown, false, ""},
		{map[string]string{"etc/netplan/50-cloud-init.yaml": "network:\n  version: 2\n  ethernets:\n    eth0:\n      dhcp4: true\n"}, backendNetworkd, true, ""},
		{map[string]string{"etc/netplan/01.yaml": "network:\n  renderer: NetworkManager\n  ethernets:\n    eth0: {}\n"}, backendNM, true, ""},
		{map[string]string{"etc/hostname": "x\n"}, "", false, errUnknownBackendText},
	}
	for i, c := range cases {
		root := t.TempDir()
		for p, content := range c.files {
			full := filepath.Join(root, p)
			if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(full, []byte(content), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		got, warns, err := chooseBackend(context.Background(), root, backendAuto)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("case %d: err %v", i, err)
			}
			continue
		}
		if err != nil || got != c.want || (len(warns) > 0) != c.warn {
			t.Errorf("case %d: %q %q %v, want %q", i, got, warns, err, c.want)
		}
	}
	if got, _, _ := chooseBackend(context.Background(), t.TempDir(), backendIfcfg); got != backendIfcfg {
		t.Errorf("an explicit backend is kept: %q", got)
	}
}
