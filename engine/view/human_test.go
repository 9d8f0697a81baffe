package view

import (
	"bytes"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/runbook/runbook/engine/run"
)

func TestHuman(t *testing.T) {
	const diff = `kvm01 changed     selinux config (120ms) [reboot required]
    --- /etc/selinux/config (before)
    +++ /etc/selinux/config (after)
     # c
    -SELINUX=enforcing
    +SELINUX=disabled
     SELINUXTYPE=targeted
`
	const recap = `
RECAP
  kvm01  ok=1 changed=1 drift=0 failed=0 unreachable=0 skipped=1 reboot_required
  kvm02  ok=0 changed=0 drift=0 failed=1 unreachable=0 skipped=0 warnings=1
  kvm03  ok=0 changed=0 drift=0 failed=0 unreachable=1 skipped=0

finished: 3 hosts in 1.5s, exit code 2
`
	const failures = `kvm02 failed      uptime: command exited 1: boom
    warning: uptime is not installed
kvm03 unreachable connect: connection refused
`
	tests := []struct {
		name           string
		verbose, quiet bool
		want           string
	}{
		{name: "verbose: every result", verbose: true,
			want: diff + "kvm01 ok          uptime\n" + failures + "kvm01 skipped     dirs [b]: skipped: when is false\n" + recap},
		{name: "default: what matters", want: diff + failures + recap},
		{name: "quiet: failures only", quiet: true, want: failures + recap},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var b bytes.Buffer
			h := &Human{W: &b, Verbose: tt.verbose, Quiet: tt.quiet, Diff: true}
			if err := feed(h); err != nil {
				t.Fatal(err)
			}
			if b.String() != tt.want {
				t.Errorf("got:\n%s\nwant:\n%s", b.String(), tt.want)
			}
		})
	}
}

// TestHumanAtScale: past RecapHostsAll hosts, hosts with nothing to report are summed up
// in the recap; with Verbose every host is listed.
func TestHumanAtScale(t *testing.T) {
	recap := &run.Recap{Hosts: map[string]*run.Stats{}}
	for i := 0; i < 25; i++ {
		recap.Hosts[fmt.Sprintf("kvm%02d", i)] = &run.Stats{OK: 8, Skipped: 1}
	}
	recap.Hosts["kvm07"].Changed = 1
	recap.Hosts["kvm09"].Failed = 1
	// A host whose only news is a warning is listed too.
	recap.Hosts["kvm11"].Warnings = 1
	for _, verbose := range []bool{false, true} {
		var b bytes.Buffer
		(&Human{W: &b, Verbose: verbose}).Finish(recap)
		lines := strings.Count(b.String(), " ok=")
		if verbose {
			if lines != 25 {
				t.Errorf("verbose recap lists %d hosts, want 25:\n%s", lines, b.String())
			}
			continue
		}
		if lines != 3 || !strings.Contains(b.String(), "kvm11  ok=8 changed=0 drift=0 failed=0 unreachable=0 skipped=1 warnings=1") ||
			!strings.Contains(b.String(), "  22 more hosts with nothing to report (ok=176 skipped=22 in all; -v lists them)") {
			t.Errorf("recap:\n%s", b.String())
		}
	}
}

// TestHumanLive: on a terminal a progress line shows hosts done, counts and the host
// waiting longest; results and the recap replace it cleanly.
func TestHumanLive(t *testing.T) {
	var b syncBuffer
	h := &Human{W: &b, Live: true, Total: 3}
	h.HostStarted("kvm01")
	h.HostStarted("kvm02")
	h.TaskDone(run.Result{Host: "kvm02", Task: "uptime", Status: run.OK})
	h.HostDone("kvm02", run.Stats{OK: 1})
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(b.String(), "waiting longest") && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	out := b.String()
	for _, want := range []string{"[1/3 hosts done] ok=1", "waiting longest: kvm01 "} {
		if !strings.Contains(out, want) {
			t.Errorf("live line lacks %q:\n%q", want, out)
		}
	}
	// A second play: each host starts and finishes again, and still counts once.
	h.HostDone("kvm01", run.Stats{})
	h.HostStarted("kvm02")
	h.HostDone("kvm02", run.Stats{})
	h.HostStarted("kvm01")
	h.mu.Lock()
	h.draw()
	h.mu.Unlock()
	if out := b.String(); !strings.Contains(out[strings.LastIndex(out, "\r"):], "[1/3 hosts done]") {
		t.Errorf("after a second play's start and end, the live line should count hosts, not plays:\n%q", out)
	}
	h.TaskDone(run.Result{Host: "kvm01", Task: "flush", Status: run.Changed})
	h.Finish(&run.Recap{Hosts: map[string]*run.Stats{"kvm01": {Changed: 1}, "kvm02": {OK: 1}}})
	out = b.String()
	if !strings.Contains(out, "\r\033[Kkvm01 changed     flush") || !strings.Contains(out, "\nRECAP\n") {
		t.Errorf("result and recap do not replace the live line:\n%q", out)
	}
	if strings.HasSuffix(strings.TrimRight(out, "\n"), "hosts done]") {
		t.Errorf("live line left at the end:\n%q", out)
	}
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestHumanHold: a prompt run under Hold finds the live line cleared, and the line is not
// redrawn over it while the prompt waits.
func TestHumanHold(t *testing.T) {
	var b syncBuffer
	h := &Human{W: &b, Live: true, Total: 2}
	h.HostStarted("kvm01")
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(b.String(), "hosts done]") && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	h.Hold(func() {
		out := b.String()
		if !strings.HasSuffix(out, "\r\033[K") {
			t.Errorf("the live line was not cleared for the prompt: %q", out)
		}
		time.Sleep(600 * time.Millisecond) // more than two redraw periods
		if after := b.String(); after != out {
			t.Errorf("the live line was redrawn during the prompt: %q", after[len(out):])
		}
	})
	h.Finish(&run.Recap{Hosts: map[string]*run.Stats{"kvm01": {}}})
}
