package run

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/zclconf/go-cty/cty"

	"github.com/runbook/runbook/engine/config"
	"github.com/runbook/runbook/engine/plan"
	"github.com/runbook/runbook/inventory"
	"github.com/runbook/runbook/modules"
)

// bootHost stands in for a host that reboots: an apply of "reboot" answers (or loses its
// answer with the connection) and takes the host down; it is unreachable for down connects,
// then answers with the next boot id. Its shell fails failTests times first.
type bootHost struct {
	mu        sync.Mutex
	boot      int  // the boot number; the boot id is made of it
	noBootID  bool // the helper gives none
	down      int  // connects to fail after the reboot
	never     bool // the host never comes back
	same      bool // the host comes back on the same boot (it never rebooted)
	dropReply bool // the reboot's answer is lost with the connection
	failTests int
	connects  int
	ran       []string // "task on connection N"
	rebooting bool
	// testSensitive is what the last test_command run said is secret.
	testSensitive []string
}

func (h *bootHost) id() string {
	if h.noBootID {
		return ""
	}
	return fmt.Sprintf("00000000-0000-0000-0000-%012d", h.boot)
}

type bootConnector struct{ h *bootHost }

func (c bootConnector) Connect(context.Context, Endpoint) (Connection, error) {
	h := c.h
	h.mu.Lock()
	defer h.mu.Unlock()
	h.connects++
	if h.rebooting {
		if h.never || h.down > 0 {
			h.down--
			return nil, errors.New("dial tcp 127.0.0.1:22: connect: connection refused")
		}
		h.rebooting = false
		if !h.same {
			h.boot++
		}
	}
	return &bootConn{h: h, n: h.connects, boot: h.boot}, nil
}

type bootConn struct {
	h    *bootHost
	n    int
	boot int
}

func (c *bootConn) Executor(context.Context, Identity) (Executor, error) { return bootExec{c}, nil }
func (c *bootConn) Close() error                                         { return nil }

type bootExec struct{ c *bootConn }

func (x bootExec) BootID() string {
	x.c.h.mu.Lock()
	defer x.c.h.mu.Unlock()
	return x.c.h.id()
}

func (x bootExec) Run(_ context.Context, call Call, apply bool) (*modules.Result, error) {
	h := x.c.h
	h.mu.Lock()
	defer h.mu.Unlock()
	if x.c.boot != h.boot || (h.rebooting && !h.same) {
		return nil, fmt.Errorf("%w: connection %d: the host went away", ErrUnreachable, x.c.n)
	}
	switch call.Module {
	case "reboot":
		h.ran = append(h.ran, fmt.Sprintf("reboot on %d", x.c.n))
		if !apply {
			return &modules.Result{Status: modules.StatusDrift, Msg: "would reboot"}, nil
		}
		h.rebooting = true
		if h.dropReply {
			return nil, fmt.Errorf("%w: connection %d lost", ErrUnreachable, x.c.n)
		}
		data := cty.ObjectVal(map[string]cty.Value{"rebooted": cty.False, "elapsed": cty.NumberIntVal(0),
			"boot_id_before": cty.StringVal(h.id()), "boot_id": cty.StringVal(""), "how": cty.StringVal("systemd")})
		return &modules.Result{Status: modules.StatusChanged, Msg: "changed: the host reboots in 2s", Data: data}, nil
	case "shell":
		h.ran = append(h.ran, fmt.Sprintf("test %s on %d", call.Args.GetAttr("cmd").AsString(), x.c.n))
		h.testSensitive = call.Sensitive
		if h.failTests > 0 {
			h.failTests--
			return nil, &modules.Failure{Msg: "exit 1"}
		}
		return &modules.Result{Status: modules.StatusChanged}, nil
	default:
		h.ran = append(h.ran, fmt.Sprintf("%s on %d", call.Module, x.c.n))
		return &modules.Result{Status: modules.StatusOK}, nil
	}
}

func runBootHost(t *testing.T, h *bootHost, check bool, timeout string) *recorder {
	t.Helper()
	return runBootSrc(t, h, check, fmt.Sprintf(`play "p" {
  hosts = "all"
  task "reboot" {
    reboot {
      reboot_timeout = %q
      test_command   = "systemctl is-system-running"
    }
  }
  task "then" {
    command {
      cmd = "true"
    }
  }
}
`, timeout))
}

func runBootSrc(t *testing.T, h *bootHost, check bool, src string) *recorder {
	t.Helper()
	rb, diags := config.Parse([]config.Source{{Name: "t.hcl", Src: []byte(src)}}, config.Inputs{})
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	iv, idiags := inventory.Parse("inv.hcl", []byte("host \"kvm01\" {\n  address = \"127.0.0.1\"\n}\n"))
	if idiags.HasErrors() {
		t.Fatal(idiags)
	}
	pl, pdiags := plan.Build(rb, iv, plan.Options{})
	if pdiags.HasErrors() {
		t.Fatal(pdiags)
	}
	rec := &recorder{}
	e := &Engine{Runbook: rb, Connector: bootConnector{h}, Observer: rec, Options: Options{Forks: 1, Check: check}}
	e.Run(context.Background(), pl)
	return rec
}

func TestRebootWaitsForAnotherBoot(t *testing.T) {
	oldPoll, oldLeast := rebootPoll, rebootLeast
	rebootPoll, rebootLeast = 10*time.Millisecond, 0
	t.Cleanup(func() { rebootPoll, rebootLeast = oldPoll, oldLeast })
	tests := []struct {
		name       string
		host       *bootHost
		check      bool
		timeout    string
		wantStatus []Status // of reboot, then (when it runs)
		wantMsg    string
		wantRan    string
	}{
		{name: "back after three refused connects: the next task runs on the new connection",
			host: &bootHost{down: 3}, wantStatus: []Status{Changed, OK}, wantMsg: "changed: rebooted, back after",
			wantRan: "reboot on 1,test systemctl is-system-running on 5,command on 5"},
		{name: "the reboot's answer is lost with the connection: expected",
			host: &bootHost{down: 1, dropReply: true}, wantStatus: []Status{Changed, OK}, wantMsg: "rebooted",
			wantRan: "reboot on 1,test systemctl is-system-running on 3,command on 3"},
		{name: "test_command fails twice, then succeeds",
			host: &bootHost{failTests: 2}, wantStatus: []Status{Changed, OK}, wantMsg: "rebooted",
			wantRan: "reboot on 1,test systemctl is-system-running on 2,test systemctl is-system-running on 2,test systemctl is-system-running on 2,command on 2"},
		{name: "check mode: would reboot, nothing else",
			host: &bootHost{}, check: true, wantStatus: []Status{Drift, OK}, wantMsg: "would reboot", wantRan: "reboot on 1,command on 1"},
		{name: "a helper without a boot id: failed before the host is asked",
			host: &bootHost{noBootID: true}, wantStatus: []Status{Failed}, wantMsg: "gives no boot id", wantRan: ""},
		{name: "never back: unreachable after reboot_timeout",
			host: &bootHost{never: true}, timeout: "10s", wantStatus: []Status{Unreachable}, wantMsg: "did not come back within 10s of its reboot (last attempt: dial tcp",
			wantRan: "reboot on 1"},
		{name: "back on the same boot (it never rebooted): unreachable after reboot_timeout",
			host: &bootHost{same: true}, timeout: "10s", wantStatus: []Status{Unreachable}, wantMsg: "still runs the boot it had before",
			wantRan: "reboot on 1"},
		{name: "back, but test_command never succeeds: failed",
			host: &bootHost{failTests: 1 << 30}, timeout: "10s", wantStatus: []Status{Failed}, wantMsg: "came back (another boot id) after",
			wantRan: "reboot on 1,test systemctl is-system-running on 2"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			timeout := tt.timeout
			if timeout == "" {
				timeout = "1m"
			}
			rec := runBootHost(t, tt.host, tt.check, timeout)
			var got []Status
			for _, r := range rec.results {
				got = append(got, r.Status)
			}
			if fmt.Sprint(got) != fmt.Sprint(tt.wantStatus) {
				t.Fatalf("statuses %v, want %v; results %+v", got, tt.wantStatus, rec.results)
			}
			if tt.wantStatus[0] != Drift && strings.Contains(rec.results[0].Msg, "reboots in") {
				t.Errorf("message %q still says the reboot was only asked for", rec.results[0].Msg)
			}
			if !strings.Contains(rec.results[0].Msg, tt.wantMsg) {
				t.Errorf("message %q, want it to hold %q", rec.results[0].Msg, tt.wantMsg)
			}
			ran := strings.Join(tt.host.ran, ",")
			if tt.host.failTests > 1000 {
				// however many times the test ran in 10 s: once at least, on connection 2
				ran = strings.Join(compactRuns(tt.host.ran), ",")
			}
			if ran != tt.wantRan {
				t.Errorf("ran %q, want %q", ran, tt.wantRan)
			}
			if tt.wantStatus[0] == Changed {
				d := rec.results[0].Data
				if d.GetAttr("rebooted") != cty.True || d.GetAttr("boot_id").AsString() == d.GetAttr("boot_id_before").AsString() {
					t.Errorf("data %#v: want rebooted and another boot id", d)
				}
			}
		})
	}
}

// compactRuns drops repeats of a line.
func compactRuns(lines []string) []string {
	var out []string
	for _, l := range lines {
		if len(out) == 0 || out[len(out)-1] != l {
			out = append(out, l)
		}
	}
	return out
}

// A test_command that holds a secret is run as a sensitive shell command.
func TestRebootSecretTestCommand(t *testing.T) {
	oldPoll, oldLeast := rebootPoll, rebootLeast
	rebootPoll, rebootLeast = 10*time.Millisecond, 0
	t.Cleanup(func() { rebootPoll, rebootLeast = oldPoll, oldLeast })
	h := &bootHost{}
	rec := runBootSrc(t, h, false, `variable "token" {
  type      = string
  default   = "s3cr3t"
  sensitive = true
}
play "p" {
  hosts = "all"
  task "reboot" {
    reboot {
      test_command = "curl -fsH 'Authorization: ${var.token}' http://127.0.0.1:8080/health"
    }
  }
}
`)
	if len(rec.results) != 1 || rec.results[0].Status != Changed {
		t.Fatalf("results %+v", rec.results)
	}
	if fmt.Sprint(h.testSensitive) != "[cmd]" {
		t.Errorf("the test_command ran with sensitive %v, want [cmd]", h.testSensitive)
	}
}
