package testenv

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestVMLab boots two micro-VMs and checks what the vm tier promises: a
// kernel of their own with bonding and 802.1Q, data NICs whose bond really
// negotiates LACP with the partner and carries jumbo frames and a VLAN,
// modprobe that finds the shipped modules, a control channel that survives
// Break (stop), and a teardown that leaves nothing behind.
func TestVMLab(t *testing.T) {
	requireSSHClient(t)
	lab := Start(t, Options{Tier: TierVM, Hosts: 2})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	a, b := lab.Hosts[0], lab.Hosts[1]
	exec1 := func(t *testing.T, host string, argv ...string) string {
		t.Helper()
		out, err := lab.Exec(ctx, host, argv...)
		if err != nil {
			t.Fatal(err)
		}
		return string(out)
	}
	sh := func(t *testing.T, host, script string) string {
		t.Helper()
		return exec1(t, host, "sh", "-ec", script)
	}

	t.Run("own kernel", func(t *testing.T) {
		var uts unix.Utsname
		if err := unix.Uname(&uts); err != nil {
			t.Fatal(err)
		}
		machine := unix.ByteSliceToString(uts.Release[:])
		for _, h := range lab.Hosts {
			out, err := sshHost(t, lab, h, time.Minute, `hostname; uname -r; . /etc/os-release; echo "$ID $VARIANT_ID"`)
			if err != nil {
				t.Fatal(err)
			}
			f := strings.Split(strings.TrimSpace(out), "\n")
			if len(f) != 3 || f[0] != h.Name || f[1] == machine || f[2] != "debian runbook-lab-vm" {
				t.Errorf("%s says %q (machine kernel %s)", h.Name, out, machine)
			}
		}
	})

	t.Run("nics", func(t *testing.T) {
		links := exec1(t, a.Name, "ip", "-d", "-o", "link", "show")
		for _, nic := range []string{"eth0", "ens1f0", "ens1f1"} {
			if !strings.Contains(links, ": "+nic+":") {
				t.Errorf("no %s in:\n%s", nic, links)
			}
		}
		for _, hidden := range []string{"swp0", "swp1", "labctl0", "bond0"} {
			if strings.Contains(links, ": "+hidden+":") {
				t.Errorf("%s is visible in the host's namespace:\n%s", hidden, links)
			}
		}
		if got := strings.TrimSpace(exec1(t, a.Name, "cat", "/sys/class/net/ens1f0/speed", "/sys/class/net/ens1f1/duplex")); got != "10000\nfull" {
			t.Errorf("data NIC speed/duplex = %q", got)
		}
		if addr := exec1(t, a.Name, "ip", "-4", "-o", "addr", "show", "dev", "eth0"); !strings.Contains(addr, " "+a.MgmtIP+"/") {
			t.Errorf("eth0 lacks %s: %s", a.MgmtIP, addr)
		}
		// The management network is the lab's: the hosts see each other.
		exec1(t, a.Name, "ping", "-c", "1", "-W", "5", b.MgmtIP)
	})

	t.Run("bond lacp vlan", func(t *testing.T) {
		sh(t, a.Name, `
ip link add bond0 type bond mode 802.3ad miimon 100 lacp_rate fast
for n in ens1f0 ens1f1; do ip link set "$n" down; ip link set "$n" master bond0; done
ip link set bond0 mtu 9000 up
ip addr add 192.0.2.1/24 dev bond0
ip link add link bond0 name bond0.100 type vlan id 100
ip link set bond0.100 up
ip addr add 198.51.100.1/24 dev bond0.100`)
		var st bondState
		var last error
		deadline := time.Now().Add(45 * time.Second)
		for {
			st = parseBonding(exec1(t, a.Name, "cat", "/proc/net/bonding/bond0"))
			if last = st.aggregated("ens1f0", "ens1f1"); last == nil || time.Now().After(deadline) {
				break
			}
			time.Sleep(time.Second)
		}
		if last != nil {
			t.Fatalf("LACP did not aggregate: %v\n%s", last, exec1(t, a.Name, "cat", "/proc/net/bonding/bond0"))
		}
		// sysfs agrees, and the partner is the switch side of this VM.
		sys := sh(t, a.Name, `cd /sys/class/net/bond0/bonding; cat ad_partner_mac ad_num_ports mode lacp_rate`)
		partner := strings.TrimSpace(sh(t, a.Name, `ip netns exec switch cat /sys/class/net/`+VMPartnerBond+`/address`))
		if want := partner + "\n2\n802.3ad 4\nfast 1\n"; sys != want {
			t.Errorf("bonding sysfs = %q, want %q", sys, want)
		}
		// Jumbo frames cross the bond unfragmented in both directions, and
		// the VLAN carries tagged traffic to the partner's VLAN interface.
		exec1(t, a.Name, "ping", "-c", "2", "-W", "5", "-s", "8000", VMPartnerAddr)
		exec1(t, a.Name, "ping", "-c", "2", "-W", "5", VMPartnerVLANAddr)
		if d := exec1(t, a.Name, "ip", "-d", "link", "show", "bond0.100"); !strings.Contains(d, "vlan protocol 802.1Q id 100") {
			t.Errorf("bond0.100 is not an 802.1Q VLAN:\n%s", d)
		}
		if mtu := strings.TrimSpace(sh(t, a.Name, `cat /sys/class/net/ens1f0/mtu /sys/class/net/ens1f1/mtu`)); mtu != "9000\n9000" {
			t.Errorf("slave MTUs = %q, want 9000", mtu)
		}
		// The other VM is untouched: its NICs are its own.
		if out := exec1(t, b.Name, "ip", "-o", "link", "show"); strings.Contains(out, "bond0") {
			t.Errorf("%s has a bond0 made in %s:\n%s", b.Name, a.Name, out)
		}
	})

	t.Run("modules", func(t *testing.T) {
		// modprobe applies the lab's options (no dummy0 made at load), and the
		// kernel's own module requests find bridge through modules.alias.
		out := sh(t, b.Name, `modprobe --dry-run macvlan >/dev/null; modprobe dummy; ip link add rbtest0 type bridge
lsmod | awk '{print $1}' | grep -x -e dummy -e bridge | sort; ls /sys/class/net`)
		if !strings.HasPrefix(out, "bridge\ndummy\n") || strings.Contains(out, "dummy0") {
			t.Errorf("after modprobe dummy and a bridge link:\n%s", out)
		}
	})

	t.Run("break stop", func(t *testing.T) {
		if err := lab.Break(b.Name, BreakStop); err != nil {
			t.Fatal(err)
		}
		if _, err := sshHost(t, lab, b, 20*time.Second, "true"); err == nil {
			t.Error("ssh works with sshd stopped")
		}
		// The control channel does not depend on the host's sshd.
		if out, err := lab.Exec(ctx, b.Name, "sh", "-c", "test -e /run/sshd.pid && echo running || echo stopped"); err != nil || string(out) != "stopped\n" {
			t.Errorf("exec during break: %q %v", out, err)
		}
		if err := lab.Heal(b.Name); err != nil {
			t.Fatal(err)
		}
		if _, err := sshHost(t, lab, b, time.Minute, "true"); err != nil {
			t.Errorf("ssh after heal: %v", err)
		}
	})

	procs := lab.Processes()
	var qemus int
	seen := map[int]bool{}
	for _, p := range procs {
		if seen[p.PID] {
			continue
		}
		seen[p.PID] = true
		if comm, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", p.PID)); strings.HasPrefix(string(comm), "qemu-system") {
			qemus++
			if rss := vmRSS(p.PID); rss > 0 {
				t.Logf("VM process %d RSS %d MiB", p.PID, rss>>20)
			}
		}
	}
	if qemus != len(lab.Hosts) {
		t.Errorf("%d QEMU processes for %d hosts", qemus, len(lab.Hosts))
	}
	dctx, dcancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer dcancel()
	if err := lab.Down(dctx); err != nil {
		t.Fatal(err)
	}
	if left := lab.Leftovers(procs); len(left) > 0 {
		t.Errorf("teardown left:\n%s", strings.Join(left, "\n"))
	}
}

// vmRSS is a process's resident memory in bytes (0 if unknown).
func vmRSS(pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return kb << 10
		}
	}
	return 0
}
