package run

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/runbook/runbook/engine/config"
	"github.com/runbook/runbook/engine/plan"
	"github.com/runbook/runbook/inventory"
	"github.com/runbook/runbook/modules"
)

// scriptedExec answers command tasks from their argv: argv[0] names the task's counter,
// and argv[1+i] is what attempt i+1 returns (the last repeats): "ok", "changed" or "drift",
// or "fail", with ":rc=N" for the registered rc.
type scriptedExec struct {
	mu    sync.Mutex
	calls map[string]int
}

func (x *scriptedExec) Run(_ context.Context, c Call, apply bool) (*modules.Result, error) {
	module, args := c.Module, c.Args
	if args.ContainsMarked() {
		return nil, fmt.Errorf("%s: the executor got marked arguments", module)
	}
	var argv []string
	for _, v := range args.GetAttr("argv").AsValueSlice() {
		argv = append(argv, v.AsString())
	}
	x.mu.Lock()
	i := x.calls[argv[0]]
	x.calls[argv[0]]++
	x.mu.Unlock()
	step := argv[1+min(i, len(argv)-2)]
	st, rc, _ := strings.Cut(step, ":rc=")
	res := &modules.Result{Status: modules.Status(st)}
	if rc != "" {
		n, _ := strconv.Atoi(rc)
		res.Data = wireData("command", map[string]any{"rc": n})
	}
	if st == "fail" {
		res.Status = modules.StatusChanged
		return res, &modules.Failure{Msg: "exited with " + rc}
	}
	return res, nil
}

type scriptedConnector struct{ x *scriptedExec }

func (c scriptedConnector) Connect(context.Context, Endpoint) (Connection, error) {
	return single{c.x}, nil
}

// TestAttemptsAndVerdicts: retries and until (an element's attempts), then changed_when
// and failed_when (its verdict), in exec and check mode.
func TestAttemptsAndVerdicts(t *testing.T) {
	tests := []struct {
		name     string
		settings string // the task's attributes
		script   string // argv after the counter's name
		check    bool
		status   Status
		msg      string // in the result's message; "" for any
		attempts int
	}{
		{"no retries", ``, `"changed"`, false, Changed, "", 1},
		{"until holds at the third attempt", `retries = 5
    until = self.rc == 0`, `"changed:rc=1", "changed:rc=1", "ok:rc=0"`, false, OK, "", 3},
		{"until never holds", `retries = 2
    until = self.rc == 0`, `"ok:rc=1"`, false, Failed, "until condition still false after 3 attempt(s)", 3},
		{"until that cannot be evaluated stops at once", `retries = 4
    until = self.nosuch == 0`, `"ok:rc=1"`, false, Failed, "nosuch", 1},
		{"until after a failure retries", `retries = 3
    until = self.rc == 0`, `"fail:rc=2", "ok:rc=0"`, false, OK, "", 2},
		{"retries without until end at the first success", `retries = 3`, `"fail:rc=1", "fail:rc=1", "changed:rc=0", "fail:rc=9"`, false, Changed, "", 3},
		{"retries without until that all fail", `retries = 1`, `"fail:rc=1"`, false, Failed, "exited with 1", 2},
		{"failed_when true fails a success", `failed_when = self.rc == 0`, `"ok:rc=0"`, false, Failed, "failed_when is true", 1},
		{"failed_when false makes a failure ok", `failed_when = false`, `"fail:rc=1"`, false, OK, "", 1},
		{"failed_when keeps the module's message", `failed_when = true`, `"fail:rc=3"`, false, Failed, "exited with 3", 1},
		{"changed_when false makes a change ok", `changed_when = false`, `"changed:rc=0"`, false, OK, "", 1},
		{"changed_when false makes drift ok", `changed_when = false`, `"drift"`, true, OK, "", 1},
		{"changed_when true makes ok a change", `changed_when = self.rc == 0`, `"ok:rc=0"`, false, Changed, "", 1},
		{"changed_when true makes ok drift when checking", `changed_when = true`, `"ok:rc=0"`, true, Drift, "", 1},
		{"changed_when leaves a failure failed", `changed_when = true`, `"fail:rc=1"`, false, Failed, "exited with 1", 1},
		{"a verdict that cannot be evaluated fails", `changed_when = self.nosuch`, `"ok:rc=0"`, false, Failed, "nosuch", 1},
		{"both: failed_when decides first", `failed_when = false
    changed_when = false`, `"fail:rc=1"`, false, OK, "", 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := `
play "p" {
  hosts = "all"
  task "t" {
    ` + tt.settings + `
    command {
      argv = ["t", ` + tt.script + `]
    }
  }
}
`
			rb, diags := config.Parse([]config.Source{{Name: "t.hcl", Src: []byte(src)}}, config.Inputs{})
			if diags.HasErrors() {
				t.Fatal(diags)
			}
			inv, idiags := inventory.Parse("inv.hcl", []byte("host \"web1\" {\n  address = \"127.0.0.1\"\n}\n"))
			if idiags.HasErrors() {
				t.Fatal(idiags)
			}
			pl, diags := plan.Build(rb, inv, plan.Options{})
			if diags.HasErrors() {
				t.Fatal(diags)
			}
			x := &scriptedExec{calls: map[string]int{}}
			rec := &recorder{}
			e := &Engine{Runbook: rb, Connector: scriptedConnector{x}, Observer: rec, Options: Options{Forks: 1, Check: tt.check}}
			e.Run(context.Background(), pl)
			if len(rec.results) != 1 {
				t.Fatalf("results %v, want one", rec.lines())
			}
			r := rec.results[0]
			if r.Status != tt.status || !strings.Contains(r.Msg, tt.msg) {
				t.Errorf("%s %q, want %s with %q", r.Status, r.Msg, tt.status, tt.msg)
			}
			if got := x.calls["t"]; got != tt.attempts {
				t.Errorf("%d attempts, want %d", got, tt.attempts)
			}
		})
	}
}
