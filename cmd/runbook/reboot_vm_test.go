package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/runbook/runbook/testenv"
	"github.com/runbook/runbook/testenv/testlab"
)

// TestBigIPRebootPersists proves the BIG-IP VE runbook's persistent configuration by booting
// from it: on two vm hosts with the systemd userland (Debian's kernel: a real bond with an
// LACP partner, netdevsim VFs), one written for ifupdown and one for systemd-networkd, the
// runbook runs, the reboot module reboots both (the guest really reboots; its disk is kept),
// and `runbook check` then finds no drift: the bond negotiated LACP again at MTU 9100, its
// VLAN is back, the VFs exist and are trusted, the hostname, firewalld and SELinux settings
// held, all from what the runbook wrote.
func TestBigIPRebootPersists(t *testing.T) {
	start := time.Now()
	lab := testlab.Start(t, testenv.Options{Tier: testenv.TierVM, Hosts: 2, VMUserland: testenv.VMUserlandSystemd})
	t.Logf("hosts up in %s", time.Since(start).Round(100*time.Millisecond))
	runbook := runbookCLI(t, lab)
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	sh := func(host, script string) string {
		t.Helper()
		out, err := lab.Exec(ctx, host, "sh", "-c", script)
		if err != nil {
			t.Fatalf("%s: %s: %v\n%s", host, script, err, out)
		}
		return string(out)
	}
	hosts := []struct{ name, backend string }{{"lab01", "ifupdown"}, {"lab02", "systemd-networkd"}}
	for _, h := range hosts {
		if s := strings.TrimSpace(sh(h.name, "timeout 120 systemctl is-system-running --wait || true")); s != "running" && s != "degraded" {
			t.Fatalf("%s not booted: %s", h.name, s)
		}
		if why, err := lab.Exec(ctx, h.name, "cat", "/etc/runbook-lab/sriov-skip"); err == nil {
			if os.Getenv("CI") == "true" {
				t.Fatalf("%s has no SR-IOV, which CI needs: %s", h.name, why)
			}
			t.Skipf("no SR-IOV in this lab: %s", why)
		}
	}
	var inv strings.Builder
	for i, h := range hosts {
		fmt.Fprintf(&inv, "host %q {\n  vars = {\n    sriov_pf        = %q\n    hostname        = \"hv%d.lab.test\"\n    network_backend = %q\n  }\n}\n",
			h.name, testenv.VMSriovPF, i+1, h.backend)
	}
	invFile := filepath.Join(t.TempDir(), "hosts.hcl")
	if err := os.WriteFile(invFile, []byte(inv.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	// The guide's values: MTU 9100 (the runbook's default) on the bond, its slaves and VLAN.
	flags := []string{"-i", lab.Inventory, "-i", invFile, "--var", `vlans={internal=100}`, "--var", "sriov_numvfs=2"}
	t0 := time.Now()
	code, out := runbook(append([]string{"exec", "../../runbooks/bigip-ve-kvm"}, flags...)...)
	t.Logf("the runbook: %s\n%s", time.Since(t0).Round(100*time.Millisecond), out)
	if code != 0 || strings.Count(out, " failed=0 ") != 2 {
		t.Fatalf("the runbook: exit %d\n%s", code, out)
	}
	for _, h := range hosts {
		if !regexp.MustCompile(`(?m)^` + h.name + ` +changed +hypervisor\.bond`).MatchString(out) {
			t.Errorf("%s: the bond was not made\n%s", h.name, out)
		}
	}
	state := func(host string) string {
		return sh(host, `grep -c 'Slave Interface' /proc/net/bonding/bond0; grep -h 'IEEE 802.3ad' /proc/net/bonding/bond0
cat /sys/class/net/bond0/mtu /sys/class/net/bond0.100/mtu
ip link show `+testenv.VMSriovPF+` | grep -c 'trust on'; hostname; systemctl is-enabled firewalld; grep '^SELINUX=' /etc/selinux/config`)
	}
	const want = "2\nBonding Mode: IEEE 802.3ad Dynamic link aggregation\n9100\n9100\n2\n%s\ndisabled\nSELINUX=disabled\n"
	for i, h := range hosts {
		if got := state(h.name); got != fmt.Sprintf(want, fmt.Sprintf("hv%d.lab.test", i+1)) {
			t.Errorf("%s after the runbook:\n%s", h.name, got)
		}
	}
	before := map[string]string{}
	for _, h := range hosts {
		before[h.name] = strings.TrimSpace(sh(h.name, "cat /proc/sys/kernel/random/boot_id"))
	}

	// The reboot module, ad hoc, on both hosts at once; the JSON view gives its data.
	t0 = time.Now()
	code, out = runbook("run", "-i", lab.Inventory, "-o", "json", "all", "reboot", "msg=runbook reboot test", "reboot_timeout=10m",
		"test_command=systemctl is-system-running --wait >/dev/null; ip link show bond0 >/dev/null")
	t.Logf("reboot: %s", time.Since(t0).Round(100*time.Millisecond))
	if code != 0 {
		t.Fatalf("reboot: exit %d\n%s", code, out)
	}
	rebooted := 0
	for _, line := range strings.Split(out, "\n") {
		var ev struct {
			Host, Status string
			Data         map[string]any
		}
		if json.Unmarshal([]byte(line), &ev) != nil || ev.Data == nil || ev.Data["rebooted"] != true {
			continue
		}
		if ev.Status != "changed" || ev.Data["boot_id_before"] != before[ev.Host] || ev.Data["boot_id"] == before[ev.Host] || ev.Data["how"] != "systemd" {
			t.Errorf("%s: reboot result %s %v (boot id before: %s)", ev.Host, ev.Status, ev.Data, before[ev.Host])
		}
		rebooted++
	}
	if rebooted != 2 {
		t.Fatalf("reboot: %d hosts say they rebooted, want 2\n%s", rebooted, out)
	}
	for _, h := range hosts {
		if now := strings.TrimSpace(sh(h.name, "cat /proc/sys/kernel/random/boot_id")); now == before[h.name] {
			t.Fatalf("%s: the boot id did not change", h.name)
		}
	}

	// Every setting came back from what the runbook wrote: check finds no drift (exit 0);
	// its "hypervisor.lacp negotiated" task reads the bond until the partner is in the aggregator.
	t0 = time.Now()
	code, out = runbook(append([]string{"check", "../../runbooks/bigip-ve-kvm"}, flags...)...)
	t.Logf("check after the reboot: %s\n%s", time.Since(t0).Round(100*time.Millisecond), out)
	if code != 0 || strings.Contains(out, " drift ") {
		t.Fatalf("check after the reboot: exit %d\n%s", code, out)
	}
	for i, h := range hosts {
		if got := state(h.name); got != fmt.Sprintf(want, fmt.Sprintf("hv%d.lab.test", i+1)) {
			t.Errorf("%s after the reboot:\n%s", h.name, got)
		}
		if got := sh(h.name, "grep -h 'Partner Mac Address' /proc/net/bonding/bond0 | sort -u"); strings.Contains(got, "00:00:00:00:00:00") || got == "" {
			t.Errorf("%s: LACP has no partner after the reboot:\n%s", h.name, got)
		}
	}
	t.Logf("whole test %s", time.Since(start).Round(100*time.Millisecond))
}
