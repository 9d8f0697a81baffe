package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/runbook/runbook/cmd/runbook/cli"
	"github.com/runbook/runbook/internal/labtest"
	"github.com/runbook/runbook/testenv"
	"github.com/runbook/runbook/testenv/testlab"
)

// The controller's default keepalives (the CLI's --keepalive, 15 s, and transport's
// KeepaliveCountMax, 3): a host is given up when a keepalive has gone unanswered for
// 3 × 15 s, and the first keepalive after a cut is sent at most one interval later. So a
// host that vanishes is reported unreachable at most 60 s after it did.
const (
	cutKeepaliveWindow = 3*15*time.Second + 15*time.Second
	// cutMargin covers what follows the verdict: closing the connection, reporting the
	// host, the run's end (and the emulated CPU's slowness).
	cutMargin = 10 * time.Second
)

// stampedOutput records when each line of a run's output arrived.
type stampedOutput struct {
	mu    sync.Mutex
	start time.Time
	buf   bytes.Buffer
	part  []byte
	lines []stampedLine
}

type stampedLine struct {
	at   time.Time
	text string
}

func (w *stampedOutput) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	now := time.Now()
	w.buf.Write(p)
	w.part = append(w.part, p...)
	for {
		i := bytes.IndexByte(w.part, '\n')
		if i < 0 {
			break
		}
		w.lines = append(w.lines, stampedLine{now, string(w.part[:i])})
		w.part = w.part[i+1:]
	}
	return len(p), nil
}

// first is when the first line matching re arrived.
func (w *stampedOutput) first(re string) (time.Time, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	rx := regexp.MustCompile(re)
	for _, l := range w.lines {
		if rx.MatchString(l.text) {
			return l.at, true
		}
	}
	return time.Time{}, false
}

func (w *stampedOutput) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.String()
}

// cutRun is one CLI run in progress.
type cutRun struct {
	out  *stampedOutput
	code chan int
}

// startCut starts `runbook ARGS...` in-process with default flags (labtest.New's
// environment), its output stamped line by line.
func startCut(args ...string) *cutRun {
	r := &cutRun{out: &stampedOutput{start: time.Now()}, code: make(chan int, 1)}
	env := []string{"NO_COLOR=1"}
	for _, k := range []string{"HOME", "XDG_STATE_HOME", "RUNBOOK_HISTORY"} {
		if v, ok := os.LookupEnv(k); ok {
			env = append(env, k+"="+v)
		}
	}
	go func() { r.code <- cli.Run(args, nil, r.out, r.out, env) }()
	return r
}

// wait returns the run's exit code, or fails the test with the output so far and every
// goroutine's stack when the run has not ended by the deadline: a run that hangs.
func (r *cutRun) wait(t *testing.T, deadline time.Time) int {
	t.Helper()
	select {
	case code := <-r.code:
		return code
	case <-time.After(time.Until(deadline)):
		buf := make([]byte, 1<<20)
		buf = buf[:runtime.Stack(buf, true)]
		t.Fatalf("the run did not end %s after it started\noutput so far:\n%s\ngoroutines:\n%s",
			time.Since(r.out.start).Round(time.Second), r.out, buf)
		return -1
	}
}

// TestVMManagementLinkCut: a host whose management link goes away in the middle of a run
// is reported unreachable within the default keepalive window, the run ends (exit code 3),
// and the other host finishes its work: when a task takes the link down itself, when the
// link is cut from outside, and when the guest is frozen (QEMU's "stop"). After each, the
// lab heals the host and a following run reaches it. Default flags throughout.
func TestVMManagementLinkCut(t *testing.T) {
	lab := testlab.Start(t, testenv.Options{Tier: testenv.TierVM, Hosts: 2})
	labtest.New(t, lab)
	dir := t.TempDir()
	write := func(name, text string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	// lab01 takes its management NIC down; lab02 a data NIC, then goes on. The
	// management-path guard would refuse lab01's change, and a transaction would bring the
	// link back by itself (TestVMTransactions): this test is about what follows when the
	// change is made anyway, without one.
	linkDown := write("link_down.hcl", `play "p" {
  hosts = "all"
  task "link down" {
    interface {
      name               = host.name == "lab01" ? "eth0" : "ens1f0"
      state              = "down"
      backend            = "none"
      on_management_path = "allow"
      confirm_timeout    = "0"
    }
  }
  task "after" {
    command {
      argv = ["true"]
    }
  }
}
`)
	sleep := write("sleep.hcl", `play "p" {
  hosts = "all"
  task "wait" {
    command {
      argv = ["sleep", "30"]
    }
  }
}
`)
	ping := write("ping.hcl", `play "p" {
  hosts = "all"
  task "ping" {
    command {
      argv = ["true"]
    }
  }
}
`)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()

	// reachable heals lab01 and proves that a following run reaches both hosts.
	reachable := func(t *testing.T) {
		t.Helper()
		if err := lab.Heal("lab01"); err != nil {
			t.Fatalf("heal: %v", err)
		}
		r := startCut("exec", ping, "-i", lab.Inventory)
		code := r.wait(t, time.Now().Add(2*time.Minute))
		out := r.out.String()
		if code != 0 || !regexp.MustCompile(`(?m)^lab01 +changed +ping`).MatchString(out) || !regexp.MustCompile(`(?m)^lab02 +changed +ping`).MatchString(out) {
			t.Fatalf("the run after healing lab01: exit %d\n%s", code, out)
		}
	}
	// verdict checks a run that lost lab01: its exit code, lab01 unreachable, no later task on
	// it, lab02's results; it returns when lab01's unreachable line came.
	verdict := func(t *testing.T, r *cutRun, code int, task string, lab02 ...string) time.Time {
		t.Helper()
		out := r.out.String()
		at, ok := r.out.first(`^lab01 +unreachable +` + regexp.QuoteMeta(task))
		if code != 3 || !ok || !strings.Contains(out, "exit code 3") {
			t.Fatalf("want lab01 unreachable on %q and exit code 3, got exit %d\n%s", task, code, out)
		}
		for _, re := range lab02 {
			if !regexp.MustCompile(`(?m)` + re).MatchString(out) {
				t.Errorf("lab02 did not finish normally: no %s\n%s", re, out)
			}
		}
		return at
	}
	// started waits until lab01 runs `sleep 30` (the task is under way on the host).
	started := func(t *testing.T, r *cutRun) {
		t.Helper()
		for deadline := time.Now().Add(time.Minute); ; {
			// busybox's ps; the guest has no pgrep.
			if _, err := lab.Exec(ctx, "lab01", "sh", "-c", `ps -o pid,args | grep -qE "^ *[0-9]+ ([^ ]*/)?sleep 30$"`); err == nil {
				return
			}
			select {
			case code := <-r.code:
				t.Fatalf("the run ended (exit %d) before lab01 ran its task\n%s", code, r.out)
			default:
			}
			if time.Now().After(deadline) {
				t.Fatalf("lab01 did not start its task within a minute\n%s", r.out)
			}
			time.Sleep(200 * time.Millisecond)
		}
	}

	// fresh makes lab01 upload the helper again in the next run, through SFTP: a connection
	// with an SFTP client open is the one whose close once waited on the dead peer for ever
	// (the SFTP client's close waits for the peer to answer), so every cut below meets it.
	fresh := func(t *testing.T) {
		t.Helper()
		if out, err := lab.Exec(ctx, "lab01", "rm", "-rf", "/var/lib/runbook/helper", "/root/.cache/runbook"); err != nil {
			t.Fatalf("remove the helper on lab01: %v %s", err, out)
		}
	}

	t.Run("task takes the link down", func(t *testing.T) {
		fresh(t)
		r := startCut("exec", linkDown, "-i", lab.Inventory)
		code := r.wait(t, r.out.start.Add(cutKeepaliveWindow+cutMargin+time.Minute))
		at := verdict(t, r, code, "link down", `^lab02 +changed +link down`, `^lab02 +changed +after`)
		// The cut is lab01's apply, at about the time lab02 reports the same task.
		cut, ok := r.out.first(`^lab02 +changed +link down`)
		if !ok {
			cut = r.out.start
		}
		d := at.Sub(cut)
		t.Logf("lab01 unreachable %s after lab02 applied the same task (%s after the run started); the run took %s",
			d.Round(100*time.Millisecond), at.Sub(r.out.start).Round(100*time.Millisecond), time.Since(r.out.start).Round(100*time.Millisecond))
		if d > cutKeepaliveWindow+cutMargin {
			t.Errorf("lab01 was reported unreachable %s after the cut; the keepalive window is %s", d, cutKeepaliveWindow)
		}
		reachable(t)
	})

	for _, mode := range []testenv.BreakMode{testenv.BreakDrop, testenv.BreakFreeze} {
		t.Run(fmt.Sprintf("break %s during a task", mode), func(t *testing.T) {
			fresh(t)
			r := startCut("exec", sleep, "-i", lab.Inventory)
			started(t, r)
			time.Sleep(2 * time.Second)
			if err := lab.Break("lab01", mode); err != nil {
				t.Fatalf("break: %v", err)
			}
			cut := time.Now()
			code := r.wait(t, cut.Add(cutKeepaliveWindow+cutMargin+30*time.Second))
			at := verdict(t, r, code, "wait", `^lab02 +changed +wait`)
			d := at.Sub(cut)
			t.Logf("lab01 unreachable %s after the %s; the run took %s", d.Round(100*time.Millisecond), mode, time.Since(r.out.start).Round(100*time.Millisecond))
			if d > cutKeepaliveWindow+cutMargin {
				t.Errorf("lab01 was reported unreachable %s after the %s; the keepalive window is %s", d, mode, cutKeepaliveWindow)
			}
			reachable(t)
		})
	}
}
