package main

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/runbook/runbook/internal/labtest"
	"github.com/runbook/runbook/testenv"
	"github.com/runbook/runbook/testenv/testlab"
)

// driftLine matches a drift result line of the human view: the host, then the task's
// name without the duration the view adds to results that took 100 ms or more.
var driftLine = regexp.MustCompile(`(?m)^(lab\d+) +drift +(.*?)( \((\d+m)?\d+(\.\d+)?[mµ]?s\))?(:|$)`)

// TestBigIPRunbookOnSystemdHosts runs the BIG-IP VE hypervisor runbook against hosts with
// real systemd, NetworkManager and firewalld: the first run prepares them, the second
// changes nothing, and after someone re-enables firewalld on one host, check reports drift
// on exactly that task with exit code 4.
func TestBigIPRunbookOnSystemdHosts(t *testing.T) {
	lab := testlab.Start(t, testenv.Options{Tier: testenv.TierSystemd, Hosts: 3})
	runbook := runbookCLI(t, lab)
	// Debian hosts: ifupdown is their legacy network service; the container's kernel has no
	// bonding driver, so the bond is written to the backend's files only.
	args := []string{"exec", "../../runbooks/bigip-ve-kvm", "-i", lab.Inventory, "--var", "network_backend=ifupdown", "--var", "network_runtime=false"}

	// The guide's network-scripts path on Debian hosts is refused before anything changes.
	code, out := runbook("exec", "../../runbooks/bigip-ve-kvm", "-i", lab.Inventory, "--limit", "lab01")
	if code != 2 || !strings.Contains(out, "lab01: network_backend is network-scripts, but Debian GNU/Linux 12 (bookworm) has no legacy network service") ||
		strings.Contains(out, " changed ") {
		t.Fatalf("network-scripts on Debian: exit %d\n%s", code, out)
	}

	// So are a host's data NIC that is not there, a backend the runbook does not know (host
	// vars are not checked like runbook variables), an SR-IOV PF that is also a data NIC, and
	// a data NIC that carries the SSH session (eth0, the lab's management NIC: the facts
	// follow the session from the helper, under sudo, to its local address).
	for _, tc := range []struct{ vars, want string }{
		{`data_nics = ["ens1f0", "ens9f9"]`, "lab01: data NICs ens9f9 are not on the host; it has "},
		{`network_backend = "netplan"`, `lab01: network_backend is "netplan"; it is network-scripts, NetworkManager, ifupdown, systemd-networkd or none`},
		{`sriov_pf = "ens1f1"`, "lab01: sriov_pf ens1f1 is also a data NIC (data_nics: ens1f0, ens1f1): the guide dedicates the bonded NIC to BIG-IP VE, which avoids SR-IOV VFs that appear to function but do not pass traffic"},
		{`data_nics = ["ens1f0", "eth0"]`, "lab01: data NICs eth0 carry the management path (eth0, from the SSH session's local address"},
	} {
		extra := filepath.Join(t.TempDir(), "extra.hcl")
		if err := os.WriteFile(extra, []byte("host \"lab01\" {\n  vars = { "+tc.vars+" }\n}\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		code, out := runbook(append(append([]string{}, args...), "-i", extra, "--limit", "lab01")...)
		if code != 2 || !strings.Contains(out, tc.want) || strings.Contains(out, " changed ") {
			t.Fatalf("%s: exit %d, want exit 2, %q and nothing changed\n%s", tc.vars, code, tc.want, out)
		}
	}

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	// A host name that is not the inventory's alias, which a host without a hostname
	// variable keeps.
	if out, err := lab.Exec(ctx, "lab01", "hostname", "kept-name"); err != nil {
		t.Fatalf("name lab01: %v %s", err, out)
	}
	code, out = runbook(args...)
	if code != 0 || !regexp.MustCompile(`lab01 +changed +hypervisor\.firewalld off`).MatchString(out) {
		t.Fatalf("first run: exit %d\n%s", code, out)
	}
	if !strings.Contains(out, "warning: lab01: no hostname in the inventory (host.vars.hostname): the hostname task is skipped and the host keeps its name kept-name") {
		t.Errorf("first run: no note that lab01 keeps its name\n%s", out)
	}
	// libvirt's kind of NAT rule, added once firewalld is stopped (stopping firewalld
	// flushes every table itself): the filter-only flush leaves it, so the second run finds
	// nothing to change.
	const natRule = "-A POSTROUTING -s 192.168.122.0/24 ! -d 192.168.122.0/24 -j MASQUERADE"
	if out, err := lab.Exec(ctx, "lab01", "sh", "-c", "iptables -t nat "+natRule); err != nil {
		t.Fatalf("add a NAT rule on lab01: %v %s", err, out)
	}
	code, out = runbook(args...)
	if code != 0 || strings.Contains(out, " changed ") || strings.Count(out, " changed=0 ") != 3 {
		t.Fatalf("second run should change nothing: exit %d\n%s", code, out)
	}
	if got, err := lab.Exec(ctx, "lab01", "sh", "-c", "hostname; iptables -t nat -S POSTROUTING | grep -c -- '-s 192.168.122.0/24'"); err != nil ||
		string(got) != "kept-name\n1\n" {
		t.Errorf("lab01's name and NAT rule after the second run: %q %v", got, err)
	}
	for _, h := range []string{"lab01", "lab02"} {
		got, err := lab.Exec(ctx, h, "systemctl", "is-enabled", "firewalld", "NetworkManager")
		if strings.TrimSpace(string(got)) != "disabled\ndisabled" {
			t.Errorf("%s: firewalld, NetworkManager enabled? %q %v", h, got, err)
		}
	}
	if out, err := lab.Exec(ctx, "lab02", "systemctl", "enable", "--now", "firewalld"); err != nil {
		t.Fatalf("re-enable firewalld: %v %s", err, out)
	}
	code, out = runbook(append([]string{"check"}, args[1:]...)...)
	drifts := driftLine.FindAllStringSubmatch(out, -1)
	if code != 4 || len(drifts) != 1 || drifts[0][1] != "lab02" || drifts[0][2] != "hypervisor.firewalld off" {
		t.Fatalf("check: exit %d, drift %v\n%s", code, drifts, out)
	}
	if got, _ := lab.Exec(ctx, "lab02", "systemctl", "is-active", "firewalld"); strings.TrimSpace(string(got)) != "active" {
		t.Errorf("check mode changed the host: firewalld is %q", got)
	}
}

// TestBigIPGuestNICs runs the whole BIG-IP VE runbook on a host with libvirt and a defined
// (stopped) guest: the guest gets the NICs the inventory lists, its first NIC keeps its MAC,
// and a second run changes nothing.
func TestBigIPGuestNICs(t *testing.T) {
	lab := testlab.Start(t, testenv.Options{Tier: testenv.TierSystemd, Hosts: 1, Layers: []string{testenv.LayerLibvirt}})
	runbook := runbookCLI(t, lab)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	const guest = `<domain type='qemu'><name>bigip1</name><memory unit='MiB'>64</memory>
<os><type arch='x86_64'>hvm</type></os><devices>
<interface type='bridge'><mac address='52:54:00:0b:19:01'/><source bridge='br-mgmt'/><model type='virtio'/></interface>
</devices></domain>`
	cmd, err := lab.Command(ctx, "lab01", "sh", "-c", "cat > /tmp/bigip1.xml && virsh -q define /tmp/bigip1.xml")
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdin = strings.NewReader(guest)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("define the guest: %v\n%s", err, out)
	}
	guestInv := filepath.Join(t.TempDir(), "guests.hcl")
	if err := os.WriteFile(guestInv, []byte(`host "lab01" {
  vars = {
    guest_domain = "bigip1"
    guest_nics = [
      { type = "bridge", source = "br-mgmt" },
      { type = "direct", source = "ens1f0", mode = "passthrough" },
      { type = "hostdev", source = "0000:3b:02.1", vlan = 101 },
    ]
  }
}
`), 0o644); err != nil {
		t.Fatal(err)
	}
	args := []string{"exec", "../../runbooks/bigip-ve-kvm", "-i", lab.Inventory, "-i", guestInv, "--var", "network_backend=ifupdown", "--var", "network_runtime=false"}
	if code, out := runbook(args...); code != 0 || !regexp.MustCompile(`(?m)^lab01 +changed +hypervisor\.guest NICs`).MatchString(out) {
		t.Fatalf("first run: exit %d\n%s", code, out)
	}
	xml, err := lab.Exec(ctx, "lab01", "virsh", "-q", "dumpxml", "--inactive", "bigip1")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"52:54:00:0b:19:01", "<source dev='ens1f0' mode='passthrough'/>", "bus='0x3b' slot='0x02' function='0x1'", "<tag id='101'/>"} {
		if !strings.Contains(string(xml), want) {
			t.Errorf("the guest's definition lacks %s:\n%s", want, xml)
		}
	}
	if code, out := runbook(args...); code != 0 || strings.Contains(out, " changed ") {
		t.Fatalf("second run should change nothing: exit %d\n%s", code, out)
	}
}

// TestBigIPOnVM runs the BIG-IP VE runbook on a vm-tier host, whose own kernel has the
// bonding and 802.1Q drivers and a netdevsim PF: the bond really negotiates LACP with the
// lab's partner, the VLAN comes up, two VFs are made and trusted, a second run changes
// nothing, and a slave taken down shows in check as drift on the bond.
func TestBigIPOnVM(t *testing.T) {
	lab := testlab.Start(t, testenv.Options{Tier: testenv.TierVM, Hosts: 1})
	runbook := runbookCLI(t, lab)
	// The vm host has no NetworkManager or network service: its network is the kernel's. Its
	// SR-IOV PF is a netdevsim device.
	pfInv := filepath.Join(t.TempDir(), "sriov.hcl")
	if err := os.WriteFile(pfInv, []byte(`host "lab01" {
  vars = {
    sriov_pf = "`+testenv.VMSriovPF+`"
  }
}
`), 0o644); err != nil {
		t.Fatal(err)
	}
	flags := []string{"-i", lab.Inventory, "-i", pfInv, "--var", "network_backend=none", "--var", "mtu=9000", "--var", `vlans={internal=100}`, "--var", "sriov_numvfs=2"}
	code, out := runbook(append([]string{"exec", "../../runbooks/bigip-ve-kvm", "-v"}, flags...)...)
	for _, want := range []string{`(?m)^lab01 +changed +hypervisor\.bond`, `(?m)^lab01 +ok +hypervisor\.lacp negotiated`, `(?m)^lab01 +changed +hypervisor\.vlans \[internal\]`, `(?m)^lab01 +changed +hypervisor\.sriov vfs`} {
		if !regexp.MustCompile(want).MatchString(out) {
			t.Errorf("first run: no %s", want)
		}
	}
	if code != 0 || t.Failed() {
		t.Fatalf("first run: exit %d\n%s", code, out)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	bonding, err := lab.Exec(ctx, "lab01", "cat", "/proc/net/bonding/bond0")
	if err != nil || !strings.Contains(string(bonding), "IEEE 802.3ad Dynamic link aggregation") || strings.Count(string(bonding), "Slave Interface:") != 2 {
		t.Fatalf("bond0 on the host: %v\n%s", err, bonding)
	}
	vfs, err := lab.Exec(ctx, "lab01", "ip", "link", "show", testenv.VMSriovPF)
	if err != nil || strings.Count(string(vfs), "trust on") != 2 {
		t.Fatalf("the PF's VFs are not both trusted: %v\n%s", err, vfs)
	}
	if code, out := runbook(append([]string{"exec", "../../runbooks/bigip-ve-kvm"}, flags...)...); code != 0 || strings.Contains(out, " changed ") {
		t.Fatalf("second run should change nothing: exit %d\n%s", code, out)
	}
	if out, err := lab.Exec(ctx, "lab01", "ip", "link", "set", "ens1f1", "nomaster"); err != nil {
		t.Fatalf("take a slave out: %v %s", err, out)
	}
	code, out = runbook(append([]string{"check", "../../runbooks/bigip-ve-kvm"}, flags...)...)
	drifts := driftLine.FindAllStringSubmatch(out, -1)
	if code != 4 || len(drifts) != 1 || drifts[0][2] != "hypervisor.bond" || !strings.Contains(out, "ens1f1: enslave to bond0") {
		t.Fatalf("check after a slave left the bond: exit %d, drift %v\n%s", code, drifts, out)
	}
}

// TestBigIPOnVMSystemdLibvirt runs the whole BIG-IP VE runbook on one vm host with the
// systemd userland (the systemd tier's Debian with its own kernel) and the libvirt layer,
// holding a defined, stopped guest bigip1, so every step really applies on one host:
// iptables flushed, SELinux's file, firewalld and NetworkManager stopped and disabled,
// ifupdown's networking on, the hostname, an 802.3ad bond that negotiates with the
// partner, a VLAN, two trusted VFs on the netdevsim PF kept by a unit, and the guest's NICs
// in its libvirt definition (its first NIC keeps its MAC). The second run changes nothing.
// One boot covers what a host without libvirt would and the guest's NICs.
func TestBigIPOnVMSystemdLibvirt(t *testing.T) {
	start := time.Now()
	lab := testlab.Start(t, testenv.Options{Tier: testenv.TierVM, Hosts: 1, VMUserland: testenv.VMUserlandSystemd,
		Layers: []string{testenv.LayerLibvirt}})
	t.Logf("host up in %s", time.Since(start).Round(100*time.Millisecond))
	runbook := runbookCLI(t, lab)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	sh := func(script string) string {
		t.Helper()
		out, err := lab.Exec(ctx, "lab01", "sh", "-c", script)
		if err != nil {
			t.Fatalf("%s: %v\n%s", script, err, out)
		}
		return string(out)
	}
	if s := strings.TrimSpace(sh("timeout 120 systemctl is-system-running --wait || true")); s != "running" && s != "degraded" {
		t.Fatalf("host not booted: %s", s)
	}
	if skip, err := lab.Exec(ctx, "lab01", "cat", "/etc/runbook-lab/sriov-skip"); err == nil {
		t.Skipf("no SR-IOV in this lab: %s", skip)
	}
	t0 := time.Now()
	const guest = `<domain type='qemu'><name>bigip1</name><memory unit='MiB'>64</memory>
<os><type arch='x86_64'>hvm</type></os><devices>
<interface type='bridge'><mac address='52:54:00:0b:19:01'/><source bridge='br-mgmt'/><model type='virtio'/></interface>
</devices></domain>`
	cmd, err := lab.Command(ctx, "lab01", "sh", "-c", "cat > /tmp/bigip1.xml && virsh -q -c qemu:///system define /tmp/bigip1.xml")
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdin = strings.NewReader(guest)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("define the guest: %v\n%s", err, out)
	}
	t.Logf("guest defined in %s", time.Since(t0).Round(100*time.Millisecond))
	inv := filepath.Join(t.TempDir(), "host.hcl")
	if err := os.WriteFile(inv, []byte(`host "lab01" {
  vars = {
    sriov_pf     = "`+testenv.VMSriovPF+`"
    hostname     = "hv1.lab.test"
    guest_domain = "bigip1"
    guest_nics = [
      { type = "bridge", source = "br-mgmt" },
      { type = "direct", source = "ens1f0", mode = "passthrough" },
      { type = "hostdev", source = "0000:3b:02.1", vlan = 101 },
    ]
  }
}
`), 0o644); err != nil {
		t.Fatal(err)
	}
	flags := []string{"-i", lab.Inventory, "-i", inv, "--var", "network_backend=ifupdown", "--var", "mtu=9000", "--var", `vlans={internal=100}`, "--var", "sriov_numvfs=2"}
	t0 = time.Now()
	code, out := runbook(append([]string{"exec", "../../runbooks/bigip-ve-kvm", "-v"}, flags...)...)
	t.Logf("first run: %s\n%s", time.Since(t0).Round(100*time.Millisecond), out)
	for _, want := range []string{
		`(?m)^lab01 +changed +hypervisor\.firewalld off`, `(?m)^lab01 +changed +hypervisor\.NetworkManager off`,
		`(?m)^lab01 +changed +hypervisor\.bond`, `(?m)^lab01 +ok +hypervisor\.lacp negotiated`,
		`(?m)^lab01 +changed +hypervisor\.vlans \[internal\]`, `(?m)^lab01 +changed +hypervisor\.sriov vfs`,
		`(?m)^lab01 +changed +hypervisor\.guest NICs`, `(?m)^lab01 +changed +hypervisor\.selinux`, `(?m)^lab01 +changed +hypervisor\.hostname`,
	} {
		if !regexp.MustCompile(want).MatchString(out) {
			t.Errorf("first run: no %s", want)
		}
	}
	if code != 0 || t.Failed() {
		t.Fatalf("first run: exit %d\n%s", code, out)
	}
	got := sh(`systemctl is-active firewalld NetworkManager networking; systemctl is-enabled firewalld NetworkManager networking
grep -c 'Slave Interface' /proc/net/bonding/bond0; grep -h 'IEEE 802.3ad' /proc/net/bonding/bond0
ip link show ` + testenv.VMSriovPF + ` | grep -c 'trust on'; cat /sys/class/net/bond0.100/mtu
hostname; cat /etc/hostname; grep '^SELINUX=' /etc/selinux/config`)
	want := "inactive\ninactive\nactive\ndisabled\ndisabled\nenabled\n2\nBonding Mode: IEEE 802.3ad Dynamic link aggregation\n2\n9000\n" +
		"hv1.lab.test\nhv1.lab.test\nSELINUX=disabled\n"
	if got != want {
		t.Errorf("host after the first run:\n%s\nwant:\n%s", got, want)
	}
	if files := sh("grep -rl bond0 /etc/network/interfaces /etc/network/interfaces.d || true"); strings.TrimSpace(files) == "" {
		t.Error("the bond is not written for ifupdown")
	}
	xml := sh("virsh -q -c qemu:///system dumpxml --inactive bigip1")
	for _, want := range []string{"52:54:00:0b:19:01", "<source dev='ens1f0' mode='passthrough'/>", "bus='0x3b' slot='0x02' function='0x1'", "<tag id='101'/>"} {
		if !strings.Contains(xml, want) {
			t.Errorf("the guest's definition lacks %s:\n%s", want, xml)
		}
	}
	t0 = time.Now()
	code, out = runbook(append([]string{"exec", "../../runbooks/bigip-ve-kvm"}, flags...)...)
	t.Logf("second run: %s; whole test %s", time.Since(t0).Round(100*time.Millisecond), time.Since(start).Round(100*time.Millisecond))
	if code != 0 || strings.Contains(out, " changed ") {
		t.Fatalf("second run should change nothing: exit %d\n%s", code, out)
	}
}

// runbookCLI prepares the test for CLI runs against lab (the helper, a clean home and
// history; labtest.New) and returns `runbook ARGS...` as exit code and output.
func runbookCLI(t *testing.T, lab *testenv.Lab) func(args ...string) (int, string) {
	r := labtest.New(t, lab)
	return func(args ...string) (int, string) {
		res := r.Run(args...)
		return res.Code, res.Out
	}
}
