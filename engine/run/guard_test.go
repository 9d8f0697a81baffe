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

// panickyObserver is a view with a bug: it panics on the first result of task whose
// message starts with prefix, or when host "a" starts or is done.
type panickyObserver struct {
	recorder
	task, prefix    string
	onStart, onDone bool
	once            sync.Once
}

func (o *panickyObserver) HostStarted(h string) {
	if o.onStart && h == "a" {
		panic("boom in the view")
	}
}

func (o *panickyObserver) TaskDone(r Result) {
	if r.Task == o.task && strings.HasPrefix(r.Msg, o.prefix) {
		o.once.Do(func() { panic("boom in the view") })
	}
	o.recorder.TaskDone(r)
}

func (o *panickyObserver) HostDone(h string, _ Stats) {
	if o.onDone && h == "a" {
		panic("boom in the view")
	}
}

// TestPanicIsATaskFailure: a panic on one host's path (in evaluation, a module, the
// connector, a view) fails that task on that host with a message to report, the other
// hosts go on, and the run ends with a recap that counts each result once. A fork taken
// for the task is given back.
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
		forks    int              // 0: 2
		connect  bool             // the connector panics on host a
		view     *panickyObserver // the view, which panics somewhere
		// F is the host that fails, O the other, when it depends on timing
		want []string
		msg  string // the message of the failed result that reports the bug; "": none does
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
		{name: "view", strategy: "free", argv: "one", view: &panickyObserver{task: "one"},
			want: []string{"F one failed", "O one changed", "O two changed"},
			msg:  bug + `boom in the view at run\.\(\*panickyObserver\)\.TaskDone\.func1 \(run/guard_test\.go:\d+\)$`},
		// the host that waited for the run_once task fails it; the one fork it held is
		// free for the other host's next task
		{name: "view, run_once waiter, one fork", strategy: "linear", runOnce: true, argv: "one", forks: 1,
			view: &panickyObserver{task: "one", prefix: "run_once: ran on"},
			want: []string{"F one failed", "O one changed", "O two changed"},
			msg:  bug + "boom in the view"},
		{name: "view, host started", strategy: "free", argv: "one", view: &panickyObserver{onStart: true},
			want: []string{"a start failed", "b one changed", "b two changed"},
			msg:  bug + `boom in the view at run\.\(\*panickyObserver\)\.HostStarted`},
		// nothing is left to show for the host: the run goes on
		{name: "view, host done", strategy: "free", argv: "one", view: &panickyObserver{onDone: true},
			want: []string{"a one changed", "a two changed", "b one changed", "b two changed"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := newLab(t, fmt.Sprintf(src, tt.strategy, tt.runOnce, tt.argv), "a", "b")
			l.conn.panics = map[string]bool{"a": tt.connect}
			pl, diags := plan.Build(l.rb, l.inv, plan.Options{})
			if diags.HasErrors() {
				t.Fatal(diags)
			}
			obs := tt.view
			if obs == nil {
				obs = &panickyObserver{task: "none"}
			}
			forks := tt.forks
			if forks == 0 {
				forks = 2
			}
			e := &Engine{Runbook: l.rb, Connector: l.conn, Observer: obs, Options: Options{Forks: forks}}
			done := make(chan *Recap)
			go func() { done <- e.Run(context.Background(), pl) }()
			var recap *Recap
			select {
			case recap = <-done:
			case <-time.After(10 * time.Second):
				t.Fatalf("the run did not end; results so far: %v", obs.lines())
			}
			failing, other := "a", "b"
			for _, r := range obs.results {
				if r.Host == "b" && r.Status == Failed {
					failing, other = "b", "a"
				}
			}
			var want []string
			for _, w := range tt.want {
				w = strings.Replace(w, "F ", failing+" ", 1)
				want = append(want, strings.Replace(w, "O ", other+" ", 1))
			}
			eq(t, obs.lines(), want)
			reported := 0
			for _, r := range obs.results {
				if tt.msg != "" && r.Status == Failed && regexp.MustCompile(tt.msg).MatchString(r.Msg) {
					reported++
				}
			}
			if wantReported := min(len(tt.msg), 1); reported != wantReported {
				t.Errorf("%d results report the bug as %q, want %d:\n%+v", reported, tt.msg, wantReported, obs.results)
			}
			// every result shown is counted once, and nothing else is
			for host, st := range recap.Hosts {
				shown := 0
				for _, r := range obs.results {
					if r.Host == host {
						shown++
					}
				}
				if n := st.OK + st.Changed + st.Drift + st.Unknown + st.Skipped + st.Failed + st.Unreachable; n != shown {
					t.Errorf("host %s: %d results counted (%+v), %d shown", host, n, *st, shown)
				}
			}
			if wantCode := map[bool]int{true: ExitFailed, false: ExitOK}[tt.msg != ""]; recap.ExitCode() != wantCode {
				t.Errorf("exit %d, want %d", recap.ExitCode(), wantCode)
			}
		})
	}
}

// TestPanicInForEach: a panic in one element of a for_each task fails that element; the
// task's result keeps the for_each shape, with the elements that ran, as after any other
// failure, so later tasks can read it; and, as after any other failure, its handlers are
// not notified.
func TestPanicInForEach(t *testing.T) {
	const src = `
play "p" {
  hosts = "kvm"
  task "one" {
    for_each   = ["x", "%s"]
    on_failure = "continue"
    notify     = ["h"]
    command {
      argv = [each.value]
    }
  }
  task "after" {
    when = length(keys(task.one.results)) == 2 && task.one.status == "failed" && task.one.results["1"].failed
    command {
      argv = ["after"]
    }
  }
  handler "h" {
    command {
      argv = ["handler"]
    }
  }
}`
	for _, second := range []string{"false", "panic"} {
		t.Run(second, func(t *testing.T) {
			l := newLab(t, fmt.Sprintf(src, second), "a")
			recap, rec := l.run(false, plan.Options{})
			eq(t, rec.lines(), []string{"a one[0] changed", "a one[1] failed", "a after changed"})
			if recap.ExitCode() != ExitFailed {
				t.Errorf("exit %d", recap.ExitCode())
			}
		})
	}
}

// TestPanicMessageRedacted: a panic's message may quote a value; the bug report hides the
// sensitive values in scope, on a host's path outside a task as in a task.
func TestPanicMessageRedacted(t *testing.T) {
	const src = `
variable "token" {
  type      = string
  sensitive = true
  default   = "` + secretUser + `"
}
play "p" {
  hosts = "kvm"
  task "one" {
    command {
      argv = ["one"]
    }
  }
}`
	l := newLab(t, src, "a")
	l.conn.panics = map[string]bool{"a": true}
	l.conn.panicMsg = "boom with " + secretUser
	_, rec := l.run(false, plan.Options{})
	eq(t, rec.lines(), []string{"a connect failed"})
	if len(rec.results) != 1 || strings.Contains(rec.results[0].Msg, "very-secret") ||
		!strings.Contains(rec.results[0].Msg, "boom with (sensitive value)") {
		t.Errorf("results: %+v", rec.results)
	}
}
