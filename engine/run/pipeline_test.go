package run

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/runbook/runbook/engine/plan"
	"github.com/runbook/runbook/modules"
)

// chains is a fake helper's pipelines: the requests of a chain run one after the other in
// the order they were sent, none after a failure that was not tolerated.
type chains struct {
	mu   sync.Mutex
	m    map[string]*fakeChain
	log  *globalLog // "send X" as a request is sent, "flush N" as N queued ones are
	sent int
	// queue makes the executors Queuers; held are their queued calls by helper, flushes
	// the flushes that sent any.
	queue   bool
	held    map[string][]*heldCall
	flushes int
}

// executor is x as a host with these chains gives it: x itself without chains, else a
// Pipeliner, or a Queuer with queue.
func (q *chains) executor(x fakeExec) Executor {
	switch {
	case q == nil:
		return x
	case q.queue:
		return queueExec{pipeExec{fakeExec: x, q: q}}
	}
	return pipeExec{fakeExec: x, q: q}
}

// queueExec is pipeExec with Queue and Flush (a Queuer): queued calls are started, in
// order, by the next Flush or by a wait for any of them.
type queueExec struct{ pipeExec }

type heldCall struct {
	ctx   context.Context
	c     Call
	apply bool
	wait  func() (*modules.Result, error)
	err   error
	sent  chan struct{}
}

func (x queueExec) key() string { return x.h.name + "/" + x.id.String() }

func (x queueExec) Queue(ctx context.Context, c Call, apply bool) (func() (*modules.Result, error), error) {
	h := &heldCall{ctx: ctx, c: c, apply: apply, sent: make(chan struct{})}
	x.q.mu.Lock()
	if x.q.held == nil {
		x.q.held = map[string][]*heldCall{}
	}
	x.q.held[x.key()] = append(x.q.held[x.key()], h)
	x.q.mu.Unlock()
	return func() (*modules.Result, error) {
		_ = x.Flush(ctx)
		<-h.sent
		if h.err != nil {
			return nil, h.err
		}
		return h.wait()
	}, nil
}

func (x queueExec) Flush(context.Context) error {
	x.q.mu.Lock()
	held := x.q.held[x.key()]
	delete(x.q.held, x.key())
	if len(held) > 0 {
		x.q.flushes++
	}
	x.q.mu.Unlock()
	if len(held) > 0 && x.q.log != nil {
		x.q.log.add(fmt.Sprintf("%s flush %d", x.h.name, len(held)))
	}
	for _, h := range held {
		h.wait, h.err = x.pipeExec.Start(h.ctx, h.c, h.apply)
		close(h.sent)
	}
	return nil
}

type fakeChain struct {
	last   chan struct{}
	failed bool
}

// pipeExec is fakeExec with Start (a Pipeliner).
type pipeExec struct {
	fakeExec
	q *chains
}

func (x pipeExec) Start(ctx context.Context, c Call, apply bool) (func() (*modules.Result, error), error) {
	x.q.mu.Lock()
	ch := x.q.m[c.Chain]
	if ch == nil {
		ch = &fakeChain{}
		x.q.m[c.Chain] = ch
	}
	prev, done := ch.last, make(chan struct{})
	ch.last = done
	x.q.sent++
	x.q.mu.Unlock()
	if x.q.log != nil {
		x.q.log.add(x.h.name + " send " + callName(c))
	}
	type out struct {
		res *modules.Result
		err error
	}
	resc := make(chan out, 1)
	go func() {
		defer close(done)
		if prev != nil {
			<-prev
		}
		x.q.mu.Lock()
		failed := ch.failed
		x.q.mu.Unlock()
		if failed {
			resc <- out{nil, ErrNotRun}
			return
		}
		res, err := x.fakeExec.Run(ctx, c, apply)
		if err != nil && !c.Tolerated {
			x.q.mu.Lock()
			ch.failed = true
			x.q.mu.Unlock()
		}
		resc <- out{res, err}
	}()
	return func() (*modules.Result, error) { o := <-resc; return o.res, o.err }, nil
}

func callName(c Call) string {
	if c.Module == "command" {
		return c.Args.GetAttr("argv").AsValueSlice()[0].AsString()
	}
	return c.Module
}

// logger adds "host done TASK STATUS" to a globalLog as results come.
type logger struct {
	recorder
	log *globalLog
}

func (l *logger) TaskDone(r Result) {
	l.recorder.TaskDone(r)
	l.log.add(r.Host + " done " + r.Task + " " + string(r.Status))
}

// TestPipeliningSameOutcome runs runbooks with and without pipelining on fake hosts whose
// helper runs chains: the results, their order per host, and what ran on each host, in
// which order, are the same.
func TestPipeliningSameOutcome(t *testing.T) {
	cmd := func(name, extra string) string {
		return fmt.Sprintf("  task %q {\n%s    command {\n      argv = [%q]\n    }\n  }\n", name, extra, name)
	}
	play := func(body ...string) string {
		return "play \"p\" {\n  hosts = \"kvm\"\n" + strings.Join(body, "") + "}\n" + `variable "token" {
  default   = "hunter2-secret"
  sensitive = true
}
`
	}
	tests := []struct {
		name, runbook string
	}{
		{"dirs and handlers", dirsRunbook},
		{"failures", failRunbook},
		{"a failure in the middle", play(cmd("one", ""), cmd("two", ""), cmd("false", ""), cmd("four", ""), cmd("five", ""))},
		{"a tolerated failure", play(cmd("one", ""), cmd("false", "    on_failure = \"continue\"\n"), cmd("three", ""))},
		{"when false in the middle", play(cmd("one", ""), cmd("two", "    when = host.name == \"b\"\n"), cmd("three", ""))},
		{"when reads an earlier result", play(cmd("one", ""), cmd("two", "    when = task[\"one\"].rc == 0\n"), cmd("three", ""))},
		{"changed_when reads the result", play(cmd("one", "    changed_when = self.rc != 0\n"), cmd("two", ""), cmd("false", "    changed_when = false\n"), cmd("four", ""))},
		{"failed_when turns a failure", play(cmd("one", ""), cmd("false", "    failed_when = false\n"), cmd("three", ""))},
		{"when fails to evaluate", play(cmd("one", ""), cmd("two", "    when = host.vars.nope\n"), cmd("three", ""))},
		{"unreachable in the middle", play(cmd("one", ""), cmd("drop-on-a", ""), cmd("three", ""))},
		{"a block with rescue", play(cmd("one", ""), `  block "b" {
`+cmd("two", "")+cmd("false", "")+cmd("four", "")+`    rescue {
`+cmd("fix", "")+cmd("fix2", "")+`    }
    always {
`+cmd("log", "")+`    }
  }
`, cmd("after", ""))},
		{"secrets", play(cmd("one", ""), "  task \"s\" {\n    command {\n      argv = [\"echo\", var.token]\n    }\n  }\n", cmd("three", ""))},
		{"sensitive and check_mode", play(cmd("one", "    sensitive = true\n"), cmd("two", "    check_mode = true\n"), cmd("three", ""))},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out [3]string
			for i, mode := range []string{"unpiped", "piped", "queued"} {
				piped := mode != "unpiped"
				l := newLab(t, tt.runbook, "a", "b")
				q := &chains{m: map[string]*fakeChain{}, queue: mode == "queued"}
				for _, h := range l.conn.hosts {
					h.pipes = q
				}
				pl, diags := plan.Build(l.rb, l.inv, plan.Options{})
				if diags.HasErrors() {
					t.Fatal(diags)
				}
				rec := &recorder{}
				e := &Engine{Runbook: l.rb, Connector: l.conn, Observer: rec, Options: Options{Forks: 4, NoPipelining: !piped}}
				recap := e.Run(context.Background(), pl)
				var b strings.Builder
				for _, h := range []string{"a", "b"} {
					fmt.Fprintf(&b, "%s ran %v calls %v\n", h, l.conn.hosts[h].ran, l.conn.hosts[h].calls)
					for _, r := range rec.results {
						if r.Host == h {
							fmt.Fprintf(&b, "  %s[%s] %s %q\n", r.Task, r.Item, r.Status, r.Msg)
						}
					}
					fmt.Fprintf(&b, "  %+v\n", *recap.Hosts[h])
				}
				fmt.Fprintf(&b, "exit %d\n", recap.ExitCode())
				out[i] = b.String()
				if piped && q.sent == 0 && tt.name != "when reads an earlier result" {
					t.Errorf("nothing was pipelined")
				}
				if mode == "queued" && q.flushes == 0 && tt.name != "when reads an earlier result" {
					t.Errorf("nothing was queued")
				}
				if strings.Contains(out[i], "hunter2") {
					t.Errorf("a secret shows:\n%s", out[i])
				}
			}
			for i, mode := range []string{"piped", "queued"} {
				if out[0] != out[i+1] {
					t.Errorf("without pipelining:\n%s\n%s:\n%s", out[0], mode, out[i+1])
				}
			}
		})
	}
}

// TestPipelineSendsAhead: a run of tasks that read no earlier result goes to the host
// before the first answers; a task that reads one waits for it; after a failure the rest
// neither run nor show.
func TestPipelineSendsAhead(t *testing.T) {
	const rb = `
play "p" {
  hosts = "kvm"
  task "one" {
    command { argv = ["one"] }
  }
  task "two" {
    command { argv = ["two"] }
  }
  task "three" {
    command { argv = ["three"] }
  }
  task "reads two" {
    when = task["two"].rc == 0
    command { argv = ["four"] }
  }
  task "five" {
    command { argv = ["false"] }
  }
  task "six" {
    command { argv = ["six"] }
  }
}
`
	for _, queue := range []bool{false, true} {
		t.Run(fmt.Sprint("queue=", queue), func(t *testing.T) {
			l := newLab(t, rb, "a")
			log := &globalLog{}
			q := &chains{m: map[string]*fakeChain{}, log: log, queue: queue}
			l.conn.hosts["a"].pipes = q
			pl, _ := plan.Build(l.rb, l.inv, plan.Options{})
			e := &Engine{Runbook: l.rb, Connector: l.conn, Observer: &logger{log: log}, Options: Options{Forks: 1}}
			recap := e.Run(context.Background(), pl)
			got := strings.Join(log.events, "\n")
			events := []string{
				"a send one", "a send two", "a send three",
				"a done one changed", "a done two changed", "a done three changed",
				"a send four", "a send false", "a send six",
				"a done reads two changed", "a done five failed",
			}
			if queue {
				// Each run of tasks leaves in one flush, before its first answer.
				events = append(append(append([]string{"a flush 3"}, events[:6]...), "a flush 3"), events[6:]...)
			}
			if want := strings.Join(events, "\n"); got != want {
				t.Errorf("events:\n%s\nwant:\n%s", got, want)
			}
			if ran := strings.Join(l.conn.hosts["a"].ran, ","); strings.Contains(ran, "six") {
				t.Errorf("six ran after five failed: %s", ran)
			}
			if recap.ExitCode() != ExitFailed {
				t.Errorf("exit %d", recap.ExitCode())
			}
		})
	}
}
