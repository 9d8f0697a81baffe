package testenv

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// sshHost runs a command on a lab host with OpenSSH's own client, strict
// host-key checking and only the lab's files: the lab must satisfy the real
// client, not just ours.
func sshHost(t testing.TB, lab *Lab, h Host, timeout time.Duration, command string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "ssh", "-F", "none",
		"-o", "UserKnownHostsFile="+lab.KnownHosts, "-o", "StrictHostKeyChecking=yes",
		"-o", "BatchMode=yes", "-o", "ConnectTimeout=5", "-i", lab.Key,
		"-p", strconv.Itoa(h.Port), "root@127.0.0.1", command)
	var out, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &stderr
	cmd.WaitDelay = time.Second
	err := cmd.Run()
	if err != nil {
		return out.String(), fmt.Errorf("ssh %s %q: %w: %s", h.Name, command, err, strings.TrimSpace(stderr.String()))
	}
	return out.String(), nil
}

func requireSSHClient(t testing.TB) {
	t.Helper()
	if _, err := exec.LookPath("ssh"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("CI=true but OpenSSH's ssh client is missing")
		}
		t.Skip("OpenSSH client not installed")
	}
}

// TestLab brings up three hosts per tier and checks what every lab host
// promises, then that teardown leaves nothing behind.
func TestLab(t *testing.T) {
	requireSSHClient(t)
	for _, tc := range []struct {
		tier TierName
		// extra checks the tier's own promises on one host.
		extra func(t *testing.T, lab *Lab, h Host)
	}{
		{tier: TierNS, extra: func(t *testing.T, lab *Lab, h Host) {
			// /var, /root, /tmp and /run are private too.
			for _, d := range []string{"/var", "/root", "/tmp", "/run"} {
				probe := filepath.Join(d, "rb-lab-probe")
				if _, err := lab.Exec(context.Background(), h.Name, "touch", probe); err != nil {
					t.Fatal(err)
				}
				if exists(probe) {
					t.Errorf("%s written in %s is visible on the machine", probe, h.Name)
				}
			}
		}},
		{tier: TierSystemd, extra: func(t *testing.T, lab *Lab, h Host) {
			out, err := sshHost(t, lab, h, 30*time.Second, "systemctl is-active NetworkManager firewalld")
			if err != nil {
				t.Fatal(err)
			}
			if out != "active\nactive\n" {
				t.Errorf("systemctl is-active NetworkManager firewalld = %q, want active twice", out)
			}
		}},
	} {
		t.Run(string(tc.tier), func(t *testing.T) {
			lab := Start(t, Options{Tier: tc.tier, Hosts: 3})
			machineHost, _ := os.Hostname()
			probe := "/etc/rb-lab-probe-" + lab.st.ID

			t.Run("ssh", func(t *testing.T) {
				for _, h := range lab.Hosts {
					out, err := sshHost(t, lab, h, 30*time.Second, "hostname")
					if err != nil {
						t.Fatal(err)
					}
					if got := strings.TrimSpace(out); got != h.Name {
						t.Errorf("hostname over ssh = %q, want %q", got, h.Name)
					}
				}
				if got, _ := os.Hostname(); got != machineHost {
					t.Errorf("machine hostname changed to %q", got)
				}
			})
			t.Run("private etc", func(t *testing.T) {
				a, b := lab.Hosts[0], lab.Hosts[1]
				if _, err := sshHost(t, lab, a, 30*time.Second, "echo x > "+probe); err != nil {
					t.Fatal(err)
				}
				if _, err := lab.Exec(context.Background(), a.Name, "test", "-e", probe); err != nil {
					t.Fatalf("probe not in %s itself: %v", a.Name, err)
				}
				if _, err := lab.Exec(context.Background(), b.Name, "test", "-e", probe); err == nil {
					t.Errorf("%s written in %s is visible in %s", probe, a.Name, b.Name)
				}
				if exists(probe) {
					t.Errorf("%s written in %s is visible on the machine", probe, a.Name)
				}
				// Each host has its own host key.
				keys := map[string]bool{}
				for _, h := range lab.Hosts {
					out, err := lab.Exec(context.Background(), h.Name, "cat", "/etc/ssh/ssh_host_ed25519_key.pub")
					if err != nil {
						t.Fatal(err)
					}
					keys[strings.Fields(string(out))[1]] = true
				}
				if len(keys) != len(lab.Hosts) {
					t.Errorf("%d distinct host keys for %d hosts", len(keys), len(lab.Hosts))
				}
			})
			t.Run("data nics", func(t *testing.T) {
				for _, h := range lab.Hosts {
					for i, nic := range []string{"ens1f0", "ens1f1"} {
						mtu := strconv.Itoa(9000 - i)
						if _, err := lab.Exec(context.Background(), h.Name, "ip", "link", "set", "dev", nic, "mtu", mtu); err != nil {
							t.Fatal(err)
						}
						out, err := lab.Exec(context.Background(), h.Name, "cat", "/sys/class/net/"+nic+"/mtu")
						if err != nil {
							t.Fatal(err)
						}
						if got := strings.TrimSpace(string(out)); got != mtu {
							t.Errorf("%s %s mtu = %s, want %s", h.Name, nic, got, mtu)
						}
					}
				}
			})
			t.Run("tier", func(t *testing.T) { tc.extra(t, lab, lab.Hosts[0]) })
			t.Run("guard route", func(t *testing.T) {
				out, err := exec.Command("ip", "-4", "route", "show", "type", "unreachable", lab.Subnet()).Output()
				if err != nil || !strings.Contains(string(out), lab.Subnet()) {
					t.Errorf("no unreachable route for %s in the root namespace (%v)", lab.Subnet(), err)
				}
				// No lab address on any interface of the machine.
				out, _ = exec.Command("ip", "-4", "-o", "addr").Output()
				for _, h := range lab.Hosts {
					if strings.Contains(string(out), h.MgmtIP+"/") {
						t.Errorf("lab address %s is on a root namespace interface", h.MgmtIP)
					}
				}
			})
			t.Run("client files", func(t *testing.T) {
				for _, f := range []string{lab.Inventory, lab.InventoryINI, lab.SSHConfig, lab.KnownHosts} {
					b, err := os.ReadFile(f)
					if err != nil {
						t.Fatal(err)
					}
					for _, h := range lab.Hosts {
						if !strings.Contains(string(b), strconv.Itoa(h.Port)) {
							t.Errorf("%s lacks %s's port %d", filepath.Base(f), h.Name, h.Port)
						}
					}
				}
			})

			procs := lab.Processes()
			if len(procs) < len(lab.Hosts) {
				t.Fatalf("only %d lab processes recorded for %d hosts", len(procs), len(lab.Hosts))
			}
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			start := time.Now()
			if err := lab.Down(ctx); err != nil {
				t.Fatal(err)
			}
			t.Logf("down in %s", time.Since(start).Round(time.Millisecond))
			if left := lab.Leftovers(procs); len(left) > 0 {
				t.Errorf("teardown left:\n%s", strings.Join(left, "\n"))
			}
		})
	}
}

// TestBreakHeal checks each fault through the real ssh client.
func TestBreakHeal(t *testing.T) {
	requireSSHClient(t)
	lab := Start(t, Options{Tier: TierNS, Hosts: 2})
	h, other := lab.Hosts[0], lab.Hosts[1]
	timed := func(timeout time.Duration) (time.Duration, error) {
		start := time.Now()
		_, err := sshHost(t, lab, h, timeout, "true")
		return time.Since(start), err
	}
	base, err := timed(10 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		mode BreakMode
		// wait bounds the ssh attempt made while broken; check judges it.
		wait  time.Duration
		check func(d time.Duration, err error) string
	}{
		{BreakStop, 5 * time.Second, func(d time.Duration, err error) string {
			if err == nil {
				return "ssh worked with sshd stopped"
			}
			return ""
		}},
		{BreakDrop, 2 * time.Second, func(d time.Duration, err error) string {
			if err == nil {
				return "ssh worked over a cut link"
			}
			return ""
		}},
		{BreakSlow, 8 * time.Second, func(d time.Duration, err error) string {
			// An ssh login takes several round trips; each is at least 2x150 ms.
			if err != nil {
				return "ssh failed on a slow link: " + err.Error()
			}
			if d < base+600*time.Millisecond {
				return fmt.Sprintf("ssh took %s on a slow link (%s healthy)", d, base)
			}
			return ""
		}},
	} {
		t.Run(string(tc.mode), func(t *testing.T) {
			if err := lab.Break(h.Name, tc.mode); err != nil {
				t.Fatal(err)
			}
			if msg := tc.check(timed(tc.wait)); msg != "" {
				t.Error(msg)
			}
			// The other host is unaffected. The bound is generous: CI runs other
			// packages' tests (and their labs) on the same two cores meanwhile.
			if _, err := sshHost(t, lab, other, 30*time.Second, "true"); err != nil {
				t.Errorf("other host broken too: %v", err)
			}
			if err := lab.Heal(h.Name); err != nil {
				t.Fatal(err)
			}
			if _, err := timed(10 * time.Second); err != nil {
				t.Errorf("after heal: %v", err)
			}
		})
	}
	// Only a VM can be frozen; the others say so and stay as they are.
	if err := lab.Break(h.Name, BreakFreeze); err == nil || !strings.Contains(err.Error(), "the ns tier cannot freeze a host (the vm tier can)") {
		t.Errorf("break freeze on the ns tier: %v", err)
	}
	if _, err := timed(10 * time.Second); err != nil {
		t.Errorf("after a refused freeze: %v", err)
	}
}

// TestParallelLabs starts labs at once, as parallel test packages do, and
// checks they share no name, subnet or port.
func TestParallelLabs(t *testing.T) {
	const n = 3
	labs := make([]*Lab, n)
	var wg sync.WaitGroup
	for i := range labs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			labs[i] = Start(t, Options{Tier: TierNS, Hosts: 2})
		}()
	}
	wg.Wait()
	if t.Failed() || t.Skipped() {
		return
	}
	seen := map[string]string{}
	for _, l := range labs {
		keys := []string{"prefix " + l.Prefix(), "subnet " + l.Subnet()}
		for _, h := range l.Hosts {
			keys = append(keys, fmt.Sprintf("port %d", h.Port), "ip "+h.MgmtIP)
		}
		for _, k := range keys {
			if d, dup := seen[k]; dup {
				t.Errorf("%s used by both %s and %s", k, d, l.Dir)
			}
			seen[k] = l.Dir
		}
	}
}

// Crash simulation: the test binary re-runs itself as a child that brings a
// lab up and exits without tearing it down.
const crashEnv = "RUNBOOK_LAB_CRASH_DIR"

func TestCrashHelper(t *testing.T) {
	dir := os.Getenv(crashEnv)
	if dir == "" {
		t.Skip("helper for TestCrashRecovery")
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := Up(ctx, Options{Tier: TierNS, Hosts: 2, Dir: dir}); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(3)
	}
	os.Exit(0) // "crash": no Down
}

func crashLab(t *testing.T, dir string) *Lab {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashHelper$", "-test.count=1")
	cmd.Env = append(os.Environ(), crashEnv+"="+dir)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("crashing child: %v\n%s", err, out)
	}
	lab, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !lab.st.Hosts[0].Main.Alive() {
		t.Fatal("crashed lab's hosts are not running")
	}
	return lab
}

// TestCrashRecovery: a lab whose owner died is cleaned up by the next Down of
// its directory, by the next Up in it, and, if its directory is gone too, by
// the next lab that allocates.
func TestCrashRecovery(t *testing.T) {
	if testing.Short() {
		t.Skip("lab tests do not run with -short")
	}
	if err := CheckTier(TierNS); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal(err)
		}
		t.Skip(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	check := func(t *testing.T, lab *Lab, procs []Proc) {
		t.Helper()
		if left := lab.Leftovers(procs); len(left) > 0 {
			t.Errorf("crashed lab left:\n%s", strings.Join(left, "\n"))
		}
	}
	t.Run("down", func(t *testing.T) {
		dir := t.TempDir()
		crashed := crashLab(t, dir)
		procs := crashed.Processes()
		if err := Down(ctx, dir, nil); err != nil {
			t.Fatal(err)
		}
		check(t, crashed, procs)
	})
	t.Run("up in same dir", func(t *testing.T) {
		dir := t.TempDir()
		crashed := crashLab(t, dir)
		procs := crashed.Processes()
		lab := Start(t, Options{Tier: TierNS, Hosts: 1, Dir: dir})
		for _, p := range procs {
			if p.Alive() {
				t.Errorf("process %d of the crashed lab survived", p.PID)
			}
		}
		if lab.st.ID == crashed.st.ID {
			t.Error("Up reused the crashed lab")
		}
	})
	t.Run("dir removed", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "lab")
		crashed := crashLab(t, dir)
		procs := crashed.Processes()
		if err := os.RemoveAll(dir); err != nil {
			t.Fatal(err)
		}
		// Any allocation sweeps stale registry records. The new lab may get
		// the same slot (and names), so check after it is down again.
		lab, err := Up(ctx, Options{Tier: TierNS, Hosts: 1, Dir: t.TempDir()})
		if err != nil {
			t.Fatal(err)
		}
		if err := lab.Down(ctx); err != nil {
			t.Fatal(err)
		}
		check(t, crashed, procs)
	})
}

// BenchmarkUpDown50 times a 50-host ns-tier lab coming up and going down.
func BenchmarkUpDown50(b *testing.B) {
	if testing.Short() {
		b.Skip("lab benchmarks do not run with -short")
	}
	if err := CheckTier(TierNS); err != nil {
		if os.Getenv("CI") == "true" {
			b.Fatal(err)
		}
		b.Skip(err)
	}
	var up, down time.Duration
	for i := 0; i < b.N; i++ {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		start := time.Now()
		lab, err := Up(ctx, Options{Tier: TierNS, Hosts: 50, Dir: b.TempDir()})
		if err != nil {
			cancel()
			b.Fatal(err)
		}
		up += time.Since(start)
		start = time.Now()
		if err := lab.Down(ctx); err != nil {
			cancel()
			b.Fatal(err)
		}
		down += time.Since(start)
		cancel()
	}
	b.ReportMetric(up.Seconds()/float64(b.N), "s-up/op")
	b.ReportMetric(down.Seconds()/float64(b.N), "s-down/op")
}

// TestLibvirtLayer brings up a host with the libvirt layer, defines a domain
// there (type qemu: lab hosts have no KVM), which needs libvirt's daemon
// running with its QEMU driver, and starts it paused (QEMU runs, the guest
// uses no CPU), which needs the layer's cgroup setting.
func TestLibvirtLayer(t *testing.T) {
	lab := Start(t, Options{Tier: TierSystemd, Hosts: 1, Layers: []string{LayerLibvirt}})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd, err := lab.Command(ctx, "lab01", "sh", "-c",
		`cat > /tmp/probe.xml && v="virsh -q -c qemu:///system" && $v define /tmp/probe.xml >/dev/null &&
$v domstate layerprobe && $v start --paused layerprobe >/dev/null && $v domstate layerprobe && $v destroy layerprobe >/dev/null`)
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdin = strings.NewReader(`<domain type='qemu'>
  <name>layerprobe</name>
  <memory unit='MiB'>64</memory>
  <os><type arch='x86_64'>hvm</type></os>
</domain>`)
	out, err := cmd.CombinedOutput()
	if got := strings.Fields(string(out)); err != nil || strings.Join(got, " ") != "shut off paused" {
		t.Fatalf("define and start a domain: want states shut off, paused; got %v\n%s", err, out)
	}
}
