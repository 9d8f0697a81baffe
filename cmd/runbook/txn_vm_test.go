package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/runbook/runbook/internal/labtest"
	"github.com/runbook/runbook/testenv"
	"github.com/runbook/runbook/testenv/testlab"
)

// TestVMTransactions proves the network transactions (docs/network-safety.md) on a vm-tier
// host of each userland: busybox, where a detached watchdog is armed, and systemd, where a
// transient systemd timer is. The controller reaches the guest's eth0 through the lab
// bridge; the lab's control channel (lab.Exec) stays up for the test to look.
func TestVMTransactions(t *testing.T) {
	for _, userland := range []string{testenv.VMUserlandBusybox, testenv.VMUserlandSystemd} {
		t.Run(userland, func(t *testing.T) { vmTransactions(t, userland) })
	}
}

func vmTransactions(t *testing.T, userland string) {
	lab := testlab.Start(t, testenv.Options{Tier: testenv.TierVM, Hosts: 1, VMUserland: userland})
	r := labtest.New(t, lab)
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	sh := func(script string) string {
		t.Helper()
		out, err := lab.Exec(ctx, "lab01", "sh", "-c", script)
		if err != nil {
			t.Fatalf("%s: %v\n%s", script, err, out)
		}
		return string(out)
	}
	if userland == testenv.VMUserlandSystemd {
		if s := strings.TrimSpace(sh("timeout 120 systemctl is-system-running --wait || true")); s != "running" && s != "degraded" {
			t.Fatalf("host not booted: %s", s)
		}
	}
	dir := t.TempDir()
	write := func(name, text string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	// The running state the tests compare, read through netlink by ip(8), and the bytes of
	// the file the persistent half writes. busybox's ip has no JSON: its text is compared.
	const conf = "/etc/network/interfaces"
	state := func() string {
		// The kernel's own local-table routes come back in another order after a link
		// went down and up, and offload flags (rt_trap) come and go: they are left out.
		return sh(`ip -o link show | sed 's/ qlen [0-9]*//'; ip -o addr show; ip route show table all | grep -v ' table local ' | sed 's/ rt_trap//' | sort; ` +
			`if [ -e ` + conf + ` ]; then sha256sum ` + conf + `; else echo no ` + conf + `; fi`)
	}
	outcome := func(id string) string {
		return sh("cat /var/lib/runbook/transactions/" + id + ".outcome")
	}
	outcomes := func() string {
		return sh("cat /var/lib/runbook/transactions/*.outcome 2>/dev/null; echo")
	}
	wantArmed := "watchdog"
	if userland == testenv.VMUserlandSystemd {
		wantArmed = "systemd"
	}

	// The guard refuses an apply that would cut the session: eth0 down, its
	// address replaced, eth0 enslaved into a bond. Nothing changes, no transaction begins.
	t.Run("the guard refuses; nothing changes", func(t *testing.T) {
		before := state()
		for _, c := range [][]string{
			{"interface", "name=eth0", "state=down", "backend=none"},
			{"interface", "name=eth0", `addresses=["10.201.0.99/24"]`, "exclusive=true", "backend=none"},
			{"bond", "name=bond9", "mode=active-backup", `slaves=["eth0"]`, "backend=none"},
		} {
			res := r.Module("lab01", c[0], c[1:]...)
			if res.Code != 2 || !strings.Contains(res.Out, "refused: the change would touch the interfaces this SSH session runs over") {
				t.Fatalf("%v: exit %d\n%s", c, res.Code, res.Out)
			}
		}
		if after := state(); after != before {
			t.Fatalf("the host changed:\nbefore:\n%s\nafter:\n%s", before, after)
		}
		if out := sh("ls /var/lib/runbook/transactions 2>/dev/null | grep -c journal || true"); strings.TrimSpace(out) != "0" {
			t.Errorf("a transaction began: %s", out)
		}
	})

	// The change cuts the session: eth0 goes down and its MTU and file change. Nothing
	// confirms it, so the host restores eth0, its routes and the file by itself within 20 s;
	// the controller reaches the host again and reports the task failed, rolled back.
	t.Run("allowed, it cuts the session and rolls back by itself", func(t *testing.T) {
		// The systemd guest's file configures eth0 (the lab's); the busybox guest has none.
		sh("mkdir -p /etc/network && [ -e " + conf + " ] || printf 'auto lo\\niface lo inet loopback\\n' > " + conf)
		before := state()
		cut := write("cut.hcl", `play "p" {
  hosts = "all"
  task "eth0 down" {
    interface {
      name               = "eth0"
      state              = "down"
      mtu                = 1400
      backend            = "ifupdown"
      on_management_path = "allow"
      confirm_timeout    = "20s"
    }
  }
}
`)
		start := time.Now()
		res := r.Run("exec", cut, "-i", lab.Inventory)
		took := time.Since(start)
		// The text view says "rolled back" (the recap counts it as failed) with what was
		// restored under it, one line each.
		if res.Code != 2 || !regexp.MustCompile(`(?m)^lab01 rolled back eth0 down .*: rolled back \(no confirmation came before the deadline\)`).MatchString(res.Out) ||
			!regexp.MustCompile(`(?m)^    verified: equal to the state before the change$`).MatchString(res.Out) ||
			!regexp.MustCompile(`(?m)^    restored: .*eth0: down → up`).MatchString(res.Out) ||
			!regexp.MustCompile(`(?m)^    restored: .*`+regexp.QuoteMeta(conf)+`: written back`).MatchString(res.Out) ||
			!regexp.MustCompile(`(?m)^  lab01 .* failed=1 `).MatchString(res.Out) {
			t.Fatalf("exit %d after %s\n%s", res.Code, took, res.Out)
		}
		if o := outcomes(); !strings.Contains(o, `"state":"rolled_back"`) || !strings.Contains(o, `"armed":"`+wantArmed+`"`) {
			t.Errorf("not rolled back, armed by the %s:\n%s", wantArmed, o)
		}
		// Reported once the host rolled back (20 s) and was reached again, well before the
		// deadline's grace ran out.
		if took < 20*time.Second || took > 20*time.Second+45*time.Second {
			t.Errorf("the run took %s", took)
		}
		if after := state(); after != before {
			t.Fatalf("not restored:\nbefore:\n%s\nafter:\n%s", before, after)
		}
		if j := sh("ls /var/lib/runbook/transactions | grep -c journal || true"); strings.TrimSpace(j) != "0" {
			t.Errorf("a journal is left: %s", sh("ls -la /var/lib/runbook/transactions"))
		}
		// A following run reaches the host, and a check of the state before finds no drift.
		check := write("check.hcl", `play "p" {
  hosts = "all"
  task "eth0 as it was" {
    interface {
      name    = "eth0"
      state   = "up"
      mtu     = 1500
      backend = "none"
    }
  }
}
`)
		if res := r.Run("check", check, "-i", lab.Inventory, "-v"); res.Code != 0 || !regexp.MustCompile(`(?m)^lab01 +ok +eth0 as it was`).MatchString(res.Out) {
			t.Fatalf("check after the rollback: exit %d\n%s", res.Code, res.Out)
		}
	})

	// A change that keeps the path: an 802.3ad bond of the data NICs (the lab's partner
	// answers LACP) with jumbo frames. It is confirmed over a new connection and stays after
	// its deadline has passed.
	t.Run("a change that keeps the path is confirmed and stays", func(t *testing.T) {
		keep := write("keep.hcl", `play "p" {
  hosts = "all"
  task "data bond" {
    bond {
      name            = "bond0"
      mode            = "802.3ad"
      slaves          = ["ens1f0", "ens1f1"]
      mtu             = 9100
      backend         = "none"
      confirm_timeout = "15s"
    }
  }
}
`)
		sh("rm -f /var/lib/runbook/transactions/*.outcome")
		res := r.Run("exec", keep, "-i", lab.Inventory)
		if res.Code != 0 || strings.Count(res.Out, "(confirmed over a new connection)") != 1 {
			t.Fatalf("exit %d\n%s", res.Code, res.Out)
		}
		time.Sleep(17 * time.Second) // past the deadline: nothing rolls back
		if got := sh("cat /sys/class/net/bond0/mtu /sys/class/net/ens1f0/mtu /sys/class/net/ens1f1/mtu /sys/class/net/bond0/bonding/slaves"); got != "9100\n9100\n9100\nens1f0 ens1f1\n" {
			t.Fatalf("after the deadline: %q", got)
		}
		if o := outcomes(); strings.Count(o, `"state":"confirmed"`) != 1 || strings.Contains(o, "rolled_back") {
			t.Errorf("outcomes after the deadline:\n%s", o)
		}
		sh("ip link del bond0 && ip link set ens1f0 up && ip link set ens1f1 up") // for the tests below
	})

	// The controller is killed (SIGKILL) once the journal is on the host, before it can
	// confirm: the host rolls the change back by itself.
	t.Run("the controller is killed after the apply", func(t *testing.T) {
		before := sh("cat /sys/class/net/ens1f1/mtu")
		change := write("kill.hcl", `play "p" {
  hosts = "all"
  task "ens1f1 mtu" {
    interface {
      name            = "ens1f1"
      mtu             = 4000
      backend         = "none"
      confirm_timeout = "15s"
    }
  }
}
`)
		journal := killAfterJournal(t, ctx, lab, change)
		for i := 0; i < 10 && sh("cat /sys/class/net/ens1f1/mtu") != "4000\n"; i++ {
			time.Sleep(500 * time.Millisecond) // the helper finishes the apply on its own
		}
		if got := sh("cat /sys/class/net/ens1f1/mtu"); got != "4000\n" {
			t.Fatalf("the change was not made (mtu %q)", got)
		}
		id := strings.TrimSuffix(filepath.Base(journal), ".journal")
		deadline := time.Now().Add(60 * time.Second)
		for time.Now().Before(deadline) && sh("[ -e "+journal+" ] && echo pending || echo done") == "pending\n" {
			time.Sleep(time.Second)
		}
		if got := sh("cat /sys/class/net/ens1f1/mtu"); got != before {
			t.Fatalf("ens1f1's mtu is %q, want %q back", got, before)
		}
		if o := outcome(id); !strings.Contains(o, `"state":"rolled_back"`) || !strings.Contains(o, `"verified":true`) {
			t.Fatalf("outcome %s", o)
		}
	})

	if userland != testenv.VMUserlandSystemd {
		return // the busybox guest's root is its initramfs: nothing survives a reboot
	}
	// A transaction is pending (its controller killed, its deadline far) when the host is
	// reset: the boot unit restores the file before the network comes up, so the host
	// comes back with the state from before the change.
	t.Run("rebooted with a transaction pending, it comes back as before", func(t *testing.T) {
		look := func() string {
			// The files; the running MTU before is not what a boot makes (the tests above
			// changed it at run time), so it is checked on its own after the reboot.
			return sh("sha256sum " + conf + "; ls /etc/network/interfaces.d/ 2>/dev/null; true")
		}
		before := look()
		change := write("reboot.hcl", `play "p" {
  hosts = "all"
  task "ens1f0 jumbo" {
    interface {
      name            = "ens1f0"
      mtu             = 9000
      state           = "up"
      backend         = "ifupdown"
      confirm_timeout = "10m"
    }
  }
}
`)
		journal := killAfterJournal(t, ctx, lab, change)
		id := strings.TrimSuffix(filepath.Base(journal), ".journal")
		// ifupdown's backend writes the stanza in interfaces.d and sources it.
		files := "cat " + conf + " /etc/network/interfaces.d/* 2>/dev/null; true"
		for i := 0; i < 20 && !strings.Contains(sh(files), "mtu 9000"); i++ {
			time.Sleep(500 * time.Millisecond)
		}
		if !strings.Contains(sh(files), "mtu 9000") {
			t.Fatalf("the change did not reach the files:\n%s", sh(files))
		}
		sh("test -L /etc/systemd/system/sysinit.target.wants/runbook-txn-boot.service")
		if err := lab.Reboot("lab01"); err != nil {
			t.Fatal(err)
		}
		if s := strings.TrimSpace(sh("timeout 180 systemctl is-system-running --wait || true")); s != "running" && s != "degraded" {
			t.Fatalf("host not booted: %s", s)
		}
		if after := look(); after != before {
			t.Fatalf("after the reboot:\n%s\nbefore the change:\n%s\n%s", after, before, sh(files+"; journalctl -b -u runbook-txn-boot.service --no-pager | tail -20"))
		}
		// Without the rollback, ifupdown would have brought ens1f0 up with the changed file's
		// MTU.
		if got := sh("cat /sys/class/net/ens1f0/mtu"); got != "1500\n" {
			t.Errorf("ens1f0's MTU after the reboot is %q, not the default 1500", got)
		}
		if o := outcome(id); !strings.Contains(o, `"state":"rolled_back"`) || !strings.Contains(o, "rolled back at boot") ||
			!strings.Contains(o, "/etc/network/interfaces.d/ens1f0: removed (made by the transaction)") || !strings.Contains(o, `"verified":true`) {
			t.Fatalf("outcome %s", o)
		}
		if out := sh("ls /etc/systemd/system/sysinit.target.wants/ /var/lib/runbook/transactions/"); strings.Contains(out, "runbook-txn-boot") || strings.Contains(out, ".journal") {
			t.Errorf("left after the boot's rollback:\n%s", out)
		}
	})
}

// killAfterJournal runs the CLI (a process of its own) on runbook and kills it (SIGKILL) as
// soon as a transaction's journal is on lab01, before it can confirm; it returns the
// journal's path. A watcher on the guest says when over the control channel.
func killAfterJournal(t *testing.T, ctx context.Context, lab *testenv.Lab, runbook string) string {
	t.Helper()
	bin := runbookBinary(t)
	watch, err := lab.Command(ctx, "lab01", "sh", "-c",
		`i=0; while [ $i -lt 1200 ]; do for j in /var/lib/runbook/transactions/*.journal; do [ -e "$j" ] && { echo "$j"; exit 0; }; done; i=$((i+1)); sleep 0.05; done; exit 1`)
	if err != nil {
		t.Fatal(err)
	}
	wout, err := watch.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := watch.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = watch.Process.Kill(); _ = watch.Wait() }()
	time.Sleep(500 * time.Millisecond) // the watcher runs
	ctl := exec.Command(bin, "exec", runbook, "-i", lab.Inventory)
	ctl.Env = append(os.Environ(), "NO_COLOR=1")
	var cout strings.Builder
	ctl.Stdout, ctl.Stderr = &cout, &cout
	if err := ctl.Start(); err != nil {
		t.Fatal(err)
	}
	line := make([]byte, 200)
	n, _ := wout.Read(line)
	_ = ctl.Process.Signal(syscall.SIGKILL)
	_ = ctl.Wait()
	journal := strings.TrimSpace(string(line[:n]))
	if !strings.HasSuffix(journal, ".journal") {
		t.Fatalf("no journal seen (%q); controller output:\n%s", journal, cout.String())
	}
	if strings.Contains(cout.String(), "confirmed") {
		t.Fatalf("the controller confirmed before it was killed:\n%s", cout.String())
	}
	return journal
}

// runbookBinary is the CLI as a program of its own, for tests that must kill it: this test
// binary, which TestMain (testscript) sets up in $PATH as "runbook".
func runbookBinary(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("runbook")
	if err != nil {
		t.Fatal(err)
	}
	self, _ := os.Executable()
	if real, err := filepath.EvalSymlinks(p); err != nil || !sameFile(real, self) {
		t.Fatalf("runbook in $PATH is %s, not this test binary %s", p, self)
	}
	return p
}

func sameFile(a, b string) bool {
	fa, err1 := os.Stat(a)
	fb, err2 := os.Stat(b)
	return err1 == nil && err2 == nil && os.SameFile(fa, fb)
}
