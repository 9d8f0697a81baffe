package testenv

import (
	"context"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestCheckVMUserland(t *testing.T) {
	for _, c := range []struct {
		tier     TierName
		userland string
		layers   []string
		ok       bool
	}{
		{TierVM, "", nil, true},
		{TierNS, "", nil, true},
		{TierVM, VMUserlandBusybox, nil, true},
		{TierVM, VMUserlandSystemd, nil, true},
		{TierSystemd, VMUserlandSystemd, nil, false},
		{TierVM, VMUserlandSystemd, []string{LayerLibvirt}, true},
		{TierVM, VMUserlandSystemd, []string{"nope"}, false},
		{TierVM, VMUserlandSystemd, []string{LayerLibvirt, LayerLibvirt}, false},
		{TierVM, VMUserlandBusybox, []string{LayerLibvirt}, false},
		{TierVM, "", []string{LayerLibvirt}, false},
		{TierVM, "alpine", nil, false},
	} {
		if err := checkVMUserland(c.tier, c.userland, c.layers); (err == nil) != c.ok {
			t.Errorf("checkVMUserland(%s, %q, %v) = %v, want ok %v", c.tier, c.userland, c.layers, err, c.ok)
		}
	}
}

func TestVMSystemdQemuArgs(t *testing.T) {
	st := vmTestState(1, "10.99.0.0/24")
	a := &vmAssets{Kernel: "/k", Initrd: "/i"}
	base := vmQemuArgs(a, "/lab/hosts/lab01", vmNICs(st, st.Hosts[0]))
	if got := vmSystemdQemuArgs(st, base); strings.Join(got, " ") != strings.Join(base, " ") {
		t.Errorf("busybox guest's args changed:\n%q", got)
	}
	st.VMUserland, st.VMRootImage = VMUserlandSystemd, "/cache/root.ext4"
	got := strings.Join(vmSystemdQemuArgs(st, base), " ")
	for _, want := range []string{
		" -m 512 ",
		"rdinit=/etc/runbook-lab/systemd-init",
		"-drive file=/cache/root.ext4,format=raw,if=none,id=root,snapshot=on",
		"-device virtio-blk-pci,drive=root",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("systemd guest's args lack %q:\n%s", want, got)
		}
	}
	st.Layers = []string{LayerLibvirt}
	if got := strings.Join(vmSystemdQemuArgs(st, base), " "); !strings.Contains(got, " -m 640 ") {
		t.Errorf("systemd guest with layers: memory not 640 MiB:\n%s", got)
	}
	if env := strings.Join(vmQemuEnv(st, "/lab/hosts/lab01"), " "); !strings.Contains(env, "TMPDIR=/lab/hosts/lab01") {
		t.Errorf("snapshot not in the host's directory: %s", env)
	}
}

// TestVMSystemdLab boots one vm host whose root is the systemd tier's base
// tree: systemd reaches running (or degraded), NetworkManager and firewalld
// run, the data NICs bond with the LACP partner, the SR-IOV PF is there,
// and Break stop / Heal go through systemctl while the control channel
// stays.
func TestVMSystemdLab(t *testing.T) {
	requireSSHClient(t)
	start := time.Now()
	lab := Start(t, Options{Tier: TierVM, Hosts: 1, VMUserland: VMUserlandSystemd})
	t.Logf("lab up (boot to both sshds) in %s", time.Since(start).Round(100*time.Millisecond))
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	h := lab.Hosts[0]
	sh := func(t *testing.T, script string) string {
		t.Helper()
		out, err := lab.Exec(ctx, h.Name, "sh", "-ec", script)
		if err != nil {
			t.Fatalf("%s: %v\n%s", script, err, out)
		}
		return string(out)
	}

	t.Run("systemd", func(t *testing.T) {
		state, _ := lab.Exec(ctx, h.Name, "timeout", "120", "systemctl", "is-system-running", "--wait")
		t.Logf("system %s %s after start", strings.TrimSpace(string(state)), time.Since(start).Round(100*time.Millisecond))
		if s := strings.TrimSpace(string(state)); s != "running" && s != "degraded" {
			t.Errorf("is-system-running = %q", s)
		}
		if failed := sh(t, "systemctl --failed --no-legend --plain"); strings.TrimSpace(failed) != "" {
			t.Logf("failed units:\n%s\n%s", failed, sh(t, "journalctl -b --no-pager -n 30 -u firewalld.service || true"))
		}
		out := sh(t, "systemctl is-active NetworkManager.service firewalld.service ssh.service networking.service; readlink /proc/1/exe; uname -r; cat /etc/hostname")
		want := "active\nactive\nactive\nactive\n/usr/lib/systemd/systemd\n"
		if !strings.HasPrefix(out, want) || !strings.HasSuffix(out, h.Name+"\n") {
			t.Errorf("units/init/hostname:\n%s\nwant prefix:\n%s", out, want)
		}
		if out, err := sshHost(t, lab, h, time.Minute, "systemctl is-active ssh.service; ip -4 -o addr show dev eth0"); err != nil || !strings.Contains(out, " "+h.MgmtIP+"/") {
			t.Errorf("ssh over the management link: %q %v", out, err)
		}
	})

	t.Run("bond lacp vlan", func(t *testing.T) {
		sh(t, `
ip link add bond0 type bond mode 802.3ad miimon 100 lacp_rate fast
for n in ens1f0 ens1f1; do ip link set "$n" down; ip link set "$n" master bond0; done
ip link set bond0 mtu 9000 up
ip addr add 192.0.2.1/24 dev bond0
ip link add link bond0 name bond0.100 type vlan id 100
ip link set bond0.100 up
ip addr add 198.51.100.1/24 dev bond0.100`)
		var last error
		deadline := time.Now().Add(45 * time.Second)
		for {
			if last = parseBonding(sh(t, "cat /proc/net/bonding/bond0")).aggregated("ens1f0", "ens1f1"); last == nil || time.Now().After(deadline) {
				break
			}
			time.Sleep(time.Second)
		}
		if last != nil {
			t.Fatalf("LACP did not aggregate: %v\n%s", last, sh(t, "cat /proc/net/bonding/bond0"))
		}
		// The base tree has no ping: a refused TCP connection proves the
		// partner answered, untagged and on the VLAN.
		for _, addr := range []string{VMPartnerAddr, VMPartnerVLANAddr} {
			out, err := lab.Exec(ctx, h.Name, "bash", "-c", "timeout 10 bash -c 'echo > /dev/tcp/"+addr+"/9' 2>&1; true")
			if err != nil || !strings.Contains(string(out), "Connection refused") {
				t.Errorf("TCP to the partner's %s: %q %v", addr, out, err)
			}
		}
	})

	t.Run("sriov pf", func(t *testing.T) {
		if skip, err := lab.Exec(ctx, h.Name, "cat", "/etc/runbook-lab/sriov-skip"); err == nil {
			t.Skipf("no SR-IOV in this lab: %s", skip)
		}
		if got := strings.TrimSpace(sh(t, "cat /sys/class/net/"+VMSriovPF+"/device/sriov_totalvfs")); got != "4" {
			t.Errorf("%s sriov_totalvfs = %q", VMSriovPF, got)
		}
	})

	t.Run("break stop", func(t *testing.T) {
		if err := lab.Break(h.Name, BreakStop); err != nil {
			t.Fatal(err)
		}
		if _, err := sshHost(t, lab, h, 20*time.Second, "true"); err == nil {
			t.Error("ssh works with sshd stopped")
		}
		if out, err := lab.Exec(ctx, h.Name, "systemctl", "is-active", "ssh.service"); string(out) != "inactive\n" {
			t.Errorf("during break: ssh.service %q %v", out, err)
		}
		if err := lab.Heal(h.Name); err != nil {
			t.Fatal(err)
		}
		if _, err := sshHost(t, lab, h, time.Minute, "true"); err != nil {
			t.Errorf("ssh after heal: %v", err)
		}
	})

	seen := map[int]bool{}
	for _, p := range lab.Processes() {
		if seen[p.PID] {
			continue
		}
		seen[p.PID] = true
		if comm, _ := os.ReadFile("/proc/" + strconv.Itoa(p.PID) + "/comm"); strings.HasPrefix(string(comm), "qemu-system") {
			t.Logf("VM process %d RSS %d MiB", p.PID, vmRSS(p.PID)>>20)
		}
	}
}

// TestVMSystemdLibvirt boots one vm host with the systemd userland and the
// libvirt layer: libvirt's daemon (libvirtd, started at boot and by its socket) comes up
// with its QEMU driver, defines a domain of type qemu (the guest has no
// KVM) and starts it paused, which runs a QEMU inside the guest, in a
// scope under machine.slice as on a real host (the guest's libvirt has no
// container-only cgroup setting).
func TestVMSystemdLibvirt(t *testing.T) {
	requireSSHClient(t)
	start := time.Now()
	lab := Start(t, Options{Tier: TierVM, Hosts: 1, VMUserland: VMUserlandSystemd, Layers: []string{LayerLibvirt}})
	t.Logf("lab up (boot to both sshds) in %s", time.Since(start).Round(100*time.Millisecond))
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	h := lab.Hosts[0]
	state, _ := lab.Exec(ctx, h.Name, "timeout", "120", "systemctl", "is-system-running", "--wait")
	t.Logf("system %s %s after start", strings.TrimSpace(string(state)), time.Since(start).Round(100*time.Millisecond))
	if s := strings.TrimSpace(string(state)); s != "running" && s != "degraded" {
		failed, _ := lab.Exec(ctx, h.Name, "systemctl", "--failed", "--no-legend", "--plain")
		t.Errorf("is-system-running = %q; failed units:\n%s", s, failed)
	}
	defStart := time.Now()
	cmd, err := lab.Command(ctx, h.Name, "sh", "-c",
		`cat > /tmp/probe.xml && v="virsh -q -c qemu:///system" && $v define /tmp/probe.xml >/dev/null &&
$v domstate layerprobe && $v start --paused layerprobe >/dev/null && $v domstate layerprobe &&
cat /proc/$(cat /run/libvirt/qemu/layerprobe.pid)/cgroup && $v destroy layerprobe >/dev/null`)
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdin = strings.NewReader(`<domain type='qemu'>
  <name>layerprobe</name>
  <memory unit='MiB'>32</memory>
  <os><type arch='x86_64'>hvm</type></os>
</domain>`)
	out, err := cmd.CombinedOutput()
	got := strings.Fields(string(out))
	if err != nil || len(got) != 4 || strings.Join(got[:3], " ") != "shut off paused" || !strings.HasPrefix(got[3], "0::/machine.slice/") {
		j, _ := lab.Exec(ctx, h.Name, "sh", "-c", "journalctl -b --no-pager -n 40 -u 'libvirtd*' -u 'virtqemud*'; free -m")
		t.Fatalf("define and start a domain: want states shut off, paused and QEMU under machine.slice; got %v\n%s\n%s", err, out, j)
	}
	t.Logf("define, start paused, destroy: %s", time.Since(defStart).Round(100*time.Millisecond))
	if out, err := lab.Exec(ctx, h.Name, "sh", "-c", "free -m | sed -n 2p"); err == nil {
		t.Logf("guest memory (MiB total used free ...): %s", strings.Join(strings.Fields(string(out)), " "))
	}
}
