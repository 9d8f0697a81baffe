package network

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/zclconf/go-cty/cty"

	"github.com/runbook/runbook/modules"
	"github.com/runbook/runbook/modules/host"
	"github.com/runbook/runbook/modules/moduletest"
)

func vfVal(kv ...any) cty.Value {
	m := map[string]cty.Value{}
	for i := 0; i < len(kv); i += 2 {
		m[kv[i].(string)] = kv[i+1].(cty.Value)
	}
	return cty.ObjectVal(m)
}

func vfList(vals ...cty.Value) cty.Value { return cty.TupleVal(vals) }

// sriovHost is a fixture PF backed by the fake kernel: writes to sriov_numvfs go through the
// kernel's rule and land in the file.
func sriovHost(t *testing.T, numvfs int) (*fakeKernel, string, *SRIOV, *[]string) {
	t.Helper()
	root := loadFixture(t, "sriov-host").root(t)
	k := newFakeKernel()
	k.nic("ens1f0", true)
	if err := k.setNumVFs("ens1f0", numvfs); err != nil {
		t.Fatal(err)
	}
	num := "/sys/class/net/ens1f0/device/sriov_numvfs"
	if err := os.WriteFile(filepath.Join(root, num), []byte(strconv.Itoa(numvfs)+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	k.calls = nil
	var systemctl []string
	m := &SRIOV{root: host.Root(root), open: k.opener(), settle: 1,
		sysfsWrite: func(p, v string) error {
			if p != num {
				t.Fatalf("write to %s", p)
			}
			x, _ := strconv.Atoi(v)
			if err := k.setNumVFs("ens1f0", x); err != nil {
				return err
			}
			return os.WriteFile(filepath.Join(root, p), []byte(v+"\n"), 0o644)
		},
		run: host.Func(func(_ context.Context, c host.Cmd) (host.Result, error) {
			systemctl = append(systemctl, strings.Join(c.Argv[1:], " "))
			return host.Result{}, nil
		}),
	}
	return k, root, m, &systemctl
}

// TestSRIOV: 4 → 8 VFs goes through 0 (the kernel refuses otherwise), then the listed VFs
// get their settings; the boot unit is written, enabled and read back by value.
func TestSRIOV(t *testing.T) {
	k, root, m, systemctl := sriovHost(t, 4)
	args := map[string]cty.Value{"device": s("ens1f0"), "num_vfs": n(8), "vfs": vfList(
		vfVal("index", n(0), "trust", cty.True, "spoofchk", cty.False),
		vfVal("index", n(7), "mac", s("02:00:00:00:00:07"), "vlan", n(101)))}
	calls, _ := kernelTimeline(t, k, *m, args, []string{
		"ens1f0: num_vfs 4 → 8 (through 0: the existing VFs are removed and made again)",
		"vf 0: trust ? → on", "vf 0: spoofchk ? → off", "vf 7: mac ? → 02:00:00:00:00:07", "vf 7: vlan ? → 101"})
	want := []string{"numvfs ens1f0 0", "numvfs ens1f0 8", "vf ens1f0 0 spoofchk false", "vf ens1f0 0 trust true",
		"vf ens1f0 7 mac 02:00:00:00:00:07", "vf ens1f0 7 vlan 101"}
	if !slices.Equal(calls, want) {
		t.Errorf("calls:\n  %s\nwant:\n  %s", strings.Join(calls, "\n  "), strings.Join(want, "\n  "))
	}
	unit := filepath.Join(root, "etc/systemd/system/runbook-sriov-ens1f0.service")
	got, err := os.ReadFile(unit)
	if err != nil {
		t.Fatal(err)
	}
	golden, _ := os.ReadFile("testdata/sriov-unit.service")
	if string(got) != string(golden) {
		t.Errorf("unit:\n%s\nwant:\n%s", got, golden)
	}
	if target, err := os.Readlink(filepath.Join(root, "etc/systemd/system/multi-user.target.wants/runbook-sriov-ens1f0.service")); err != nil ||
		target != "/etc/systemd/system/runbook-sriov-ens1f0.service" {
		t.Errorf("enable link: %q %v", target, err)
	}
	if !slices.Equal(*systemctl, []string{"daemon-reload"}) {
		t.Errorf("systemctl calls %v", *systemctl)
	}
	res, err := moduletest.Run(t, *m, args, false)
	if err != nil {
		t.Fatal(err)
	}
	if d := res.Data.(sriovResult); d.TotalVFs == nil || *d.TotalVFs != 8 || d.NumVFs == nil || *d.NumVFs != 8 || len(d.VFs) != 8 {
		t.Fatalf("data: %+v", d)
	}
	vf0 := res.Data.(sriovResult).VFs[0]
	if !vf0.Trust || vf0.Spoofchk {
		t.Errorf("vf 0: %+v", vf0)
	}

	// The unit says the same in other words (another ip path, other key order): in sync.
	other := strings.Replace(string(golden), "ExecStart=ip link set dev ens1f0 vf 0 spoofchk off trust on", "ExecStart=/usr/sbin/ip link set dev ens1f0 vf 0 trust on spoofchk off", 1)
	if err := os.WriteFile(unit, []byte(other), 0o644); err != nil {
		t.Fatal(err)
	}
	if res, err = moduletest.Run(t, *m, args, false); err != nil || res.Status != modules.StatusOK {
		t.Errorf("reworded unit: %v %s %v", err, res.Status, res.Data.(sriovResult).PersistentDrift)
	}
	// A VF setting dropped from the task is drift in the unit.
	fewer := with(args, "vfs", vfList(vfVal("index", n(0), "trust", cty.True, "spoofchk", cty.False)))
	res, err = moduletest.Run(t, *m, fewer, false)
	if err != nil || res.Status != modules.StatusDrift ||
		!slices.Equal(res.Data.(sriovResult).PersistentDrift, []string{"runbook-sriov-ens1f0.service: vf 7 mac 02:00:00:00:00:07 vlan 101 → (none)"}) {
		t.Errorf("fewer VFs: %v %v", err, res.Data.(sriovResult).PersistentDrift)
	}
}

func TestSRIOVRefusals(t *testing.T) {
	k, root, m, _ := sriovHost(t, 0)
	_, err := moduletest.Run(t, *m, map[string]cty.Value{"device": s("ens1f0"), "num_vfs": n(16)}, false)
	if err == nil || !strings.Contains(err.Error(), "offers at most 8 VFs (sriov_totalvfs); num_vfs = 16 is more") {
		t.Errorf("too many: %v", err)
	}
	k.nic("eno1", true)
	if err := os.MkdirAll(filepath.Join(root, "sys/class/net/eno1"), 0o755); err != nil {
		t.Fatal(err)
	}
	_, err = moduletest.Run(t, *m, map[string]cty.Value{"device": s("eno1"), "num_vfs": n(2)}, false)
	if err == nil || !strings.Contains(err.Error(), "eno1 has no SR-IOV virtual functions to manage") {
		t.Errorf("not a PF: %v", err)
	}
	_, err = moduletest.Run(t, *m, map[string]cty.Value{"device": s("ens9"), "num_vfs": n(2)}, false)
	if err == nil || !strings.Contains(err.Error(), "no interface ens9") {
		t.Errorf("no such device: %v", err)
	}
	if len(k.calls) > 0 {
		t.Errorf("a refused request changed the kernel: %v", k.calls)
	}
	// A device that does not say how many VFs it has (netdevsim) is trusted with a warning.
	if err := os.Remove(filepath.Join(root, "sys/class/net/ens1f0/device/sriov_totalvfs")); err != nil {
		t.Fatal(err)
	}
	res, err := moduletest.Run(t, *m, map[string]cty.Value{"device": s("ens1f0"), "num_vfs": n(2), "persist": cty.False}, true)
	if err != nil || res.Status != modules.StatusChanged || res.Data.(sriovResult).TotalVFs != nil || len(res.Warnings) != 1 || res.Data.(sriovResult).Unit != "" {
		t.Errorf("without totalvfs: %v %+v", err, res)
	}
}

func TestSystemdEscape(t *testing.T) {
	for in, want := range map[string]string{"ens1f0": "ens1f0", "eth-1": `eth\x2d1`, "a.b": "a.b", ".x": `\x2ex`, "bond0.100": "bond0.100"} {
		if got := systemdEscape(in); got != want {
			t.Errorf("%q: %q, want %q", in, got, want)
		}
	}
}

// TestSRIOVBootOnly: runtime = false never reads the device (its driver may not be loaded
// yet) and writes only the unit.
func TestSRIOVBootOnly(t *testing.T) {
	root := t.TempDir()
	opened := false
	m := SRIOV{root: host.Root(root), open: func() (linkOps, func(), error) { opened = true; return nil, nil, nil }}
	args := map[string]cty.Value{"device": s("ens2f0"), "num_vfs": n(4), "runtime": cty.False}
	res, err := moduletest.Run(t, m, args, true)
	if err != nil || res.Status != modules.StatusChanged || opened || res.Data.(sriovResult).NumVFs != nil {
		t.Fatalf("apply: %v %+v opened %v", err, res, opened)
	}
	if _, err := os.Stat(filepath.Join(root, "etc/systemd/system/runbook-sriov-ens2f0.service")); err != nil {
		t.Fatal(err)
	}
	if res, err = moduletest.Run(t, m, args, false); err != nil || res.Status != modules.StatusOK {
		t.Fatalf("check: %v %+v", err, res)
	}
	if errs := moduletest.Validate(t, SRIOV{}, with(args, "persist", cty.False)); len(errs) != 1 || !strings.Contains(errs[0].Msg, "nothing to manage") {
		t.Errorf("runtime and persist false: %v", errs)
	}
}
