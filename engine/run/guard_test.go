package run

import (
	"context"
	"fmt"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/runbook/runbook/engine/plan"
)

const secretUser = "alice-very-secret"

// TestSensitiveForEach: a task may iterate over a sensitive set, or over a for expression
// keyed by it. The run goes on, no result shows the secret (its label says which element
// it is by position), and later tasks can use the per-item results.
func TestSensitiveForEach(t *testing.T) {
	l := newLab(t, `
variable "users" {
  type      = set(string)
  sensitive = true
  default   = ["`+secretUser+`", "bobby-very-secret"]
}
play "p" {
  hosts = "kvm"
  task "users" {
    for_each = var.users
    command {
      argv = ["useradd", each.value]
    }
  }
  task "keys" {
    for_each = { for u in var.users : u => "${u}.pub" }
    command {
      argv = ["install-key", each.key, each.value]
    }
  }
  task "failing" {
    for_each    = var.users
    on_failure  = "continue"
    command {
      argv = ["false", each.value]
    }
  }
  task "after" {
    for_each = var.users
    when     = task.users.results[each.key].changed
    command {
      argv = ["after"]
    }
  }
}`, "a", "b")
	recap, rec := l.run(false, plan.Options{})
	eq(t, rec.lines(), []string{
		"a users[(sensitive value #1)] changed", "a users[(sensitive value #2)] changed",
		"a keys[(sensitive value #1)] changed", "a keys[(sensitive value #2)] changed",
		"a failing[(sensitive value #1)] failed", "a failing[(sensitive value #2)] failed",
		"a after[(sensitive value #1)] changed", "a after[(sensitive value #2)] changed",
		"b users[(sensitive value #1)] changed", "b users[(sensitive value #2)] changed",
		"b keys[(sensitive value #1)] changed", "b keys[(sensitive value #2)] changed",
		"b failing[(sensitive value #1)] failed", "b failing[(sensitive value #2)] failed",
		"b after[(sensitive value #1)] changed", "b after[(sensitive value #2)] changed",
	})
	for _, r := range rec.results {
		if s := fmt.Sprintf("%+v", r); strings.Contains(s, "very-secret") {
			t.Errorf("a result shows the secret: %s", s)
		}
	}
	if recap.ExitCode() != ExitFailed {
		t.Errorf("exit %d", recap.ExitCode())
	}
	// the hosts got the real values
	calls := strings.Join(l.conn.hosts["a"].calls, "\n")
	if !strings.Contains(calls, "apply command useradd") || !strings.Contains(calls, "apply command install-key") {
		t.Errorf("calls on a: %s", calls)
	}
}

// panickyObserver panics on the first result of one task: a bug in a view.
type panickyObserver struct {
	recorder
	task string
	once sync.Once
}

func (o *panickyObserver) TaskDone(r Result) {
	if r.Task == o.task {
		o.once.Do(func() { panic("boom in the view") })
	}
	o.recorder.TaskDone(r)
}

// TestPanicIsATaskFailure: a panic on one host's path (in evaluation, a module, the
// connector, a view) fails that task on that host with a message to report, the other
// hosts go on, and the run ends with a recap.
func TestPanicIsATaskFailure(t *testing.T) {
	const src = `
play "p" {
  hosts    = "kvm"
  strategy = "%s"
  task "one" {
    run_once = %v
    command {
      argv = ["%s"]
    }
  }
  task "two" {
    command {
      argv = ["two"]
    }
  }
}`
	bug := regexp.QuoteMeta("internal error (a bug in runbook; please report it): ")
	tests := []struct {
		name     string
		strategy string
		runOnce  bool
		argv     string
		connect  bool   // the connector panics on host a
		view     string // the view panics on this task's first result
		want     []string
		msg      string // the message of the failed result that reports the bug
	}{
		{name: "executor", strategy: "free", argv: "panic-on-a",
			want: []string{"a one failed", "b one changed", "b two changed"},
			msg:  bug + `boom in the executor at run\.fakeExec\.Run \(run/run_test\.go:\d+\)$`},
		{name: "executor, linear", strategy: "linear", argv: "panic-on-a",
			want: []string{"a one failed", "b one changed", "b two changed"},
			msg:  bug + "boom in the executor"},
		// whichever host runs it reports the bug, the other that the task failed there
		{name: "run_once", strategy: "free", runOnce: true, argv: "panic",
			want: []string{"a one failed", "b one failed"},
			msg:  bug + "boom in the executor"},
		{name: "connector", strategy: "free", argv: "one", connect: true,
			want: []string{"a connect failed", "b one changed", "b two changed"},
			msg:  bug + `boom in the connector at run\.\(\*fakeConnector\)\.Connect \(run/run_test\.go:\d+\)$`},
		// the first host to finish "one" fails it (the result the view choked on is
		// lost), the other goes on
		{name: "view", strategy: "free", argv: "one", view: "one",
			msg: bug + `boom in the view at run\.\(\*panickyObserver\)\.TaskDone\.func1 \(run/guard_test\.go:\d+\)$`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := newLab(t, fmt.Sprintf(src, tt.strategy, tt.runOnce, tt.argv), "a", "b")
			l.conn.panics = map[string]bool{"a": tt.connect}
			pl, diags := plan.Build(l.rb, l.inv, plan.Options{})
			if diags.HasErrors() {
				t.Fatal(diags)
			}
			obs := &panickyObserver{task: tt.view}
			e := &Engine{Runbook: l.rb, Connector: l.conn, Observer: obs, Options: Options{Forks: 2}}
			done := make(chan *Recap)
			go func() { done <- e.Run(context.Background(), pl) }()
			var recap *Recap
			select {
			case recap = <-done:
			case <-time.After(10 * time.Second):
				t.Fatal("the run did not end")
			}
			want := tt.want
			if tt.view != "" {
				first, other := "a", "b"
				for _, r := range obs.results {
					if r.Host == "b" && r.Status == Failed {
						first, other = "b", "a"
					}
				}
				want = []string{first + " one failed", other + " one changed", other + " two changed"}
			}
			eq(t, obs.lines(), want)
			reported := 0
			for _, r := range obs.results {
				if r.Status == Failed && regexp.MustCompile(tt.msg).MatchString(r.Msg) {
					reported++
				}
			}
			if reported != 1 {
				t.Errorf("%d results report the bug as %q:\n%+v", reported, tt.msg, obs.results)
			}
			if recap.ExitCode() != ExitFailed {
				t.Errorf("exit %d", recap.ExitCode())
			}
		})
	}
}
