// Package run executes a plan: every selected host at once (bounded by forks), tasks in order
// on each host. A host has one connection, opened before its first play and closed as soon as
// it has no more plays to run; on it, one helper per identity (the login user, or a become
// user) that some task of the host runs as, each started the first time a task needs it.
// Hosts are independent: a failed or unreachable host never stops another.
//
// Where things are: run.go the Engine and a run's connections; batch.go plays, serial
// batches and the linear strategy's barrier; host.go one host in one play (its tasks, its
// handlers, the Observer); once.go run_once; connect.go the Connector, Connection and
// Executor a host runs through, and the helpers' identities; facts.go facts; task.go one
// task, item.go one for_each element of it, retry.go its attempts (retries, until),
// verdict.go changed_when and failed_when; module.go one attempt of a module and its
// result as task["name"] sees it; register.go what later tasks see; result.go results,
// statuses, recaps and exit codes; secrets.go and bug.go what keeps secrets out of results
// and what turns a panic into a reported failure; identity.go who a task runs as.
package run

import (
	"context"
	"sync"
	"time"

	"github.com/zclconf/go-cty/cty"

	"github.com/runbook/runbook/engine/config"
	"github.com/runbook/runbook/engine/plan"
)

// Options tune a run.
type Options struct {
	Forks int
	// Check runs every module in check mode: nothing changes, drift is reported.
	Check bool
	// HostTimeout bounds everything one host does in one play; 0 means no bound.
	HostTimeout time.Duration
	// ForceHandlers runs the notified handlers of a host even when a task failed on it.
	ForceHandlers bool
	// Strategy is the default for plays that set none: config.StrategyFree ("" too) or
	// config.StrategyLinear.
	Strategy string
	// ConfirmTimeout is the time a network change's transaction waits for its confirmation
	// when the task names none (--confirm-timeout): 0 means the module's default (60s),
	// negative means changes run without a transaction.
	ConfirmTimeout time.Duration
	// NoPipelining sends a host each task only after the one before it answered
	// (--no-pipelining; pipeline.go).
	NoPipelining bool
}

// Engine runs plans.
type Engine struct {
	Runbook   *config.Runbook
	Connector Connector
	Observer  Observer
	Options   Options

	mu    sync.Mutex
	conns map[string]Connection // open connections by host
	// last is the index of the last play with tasks that each host takes part in: its
	// connection is closed once that play is done with it.
	last    map[string]int
	closing sync.WaitGroup       // connections being closed
	dead    map[string]bool      // hosts that failed or were unreachable: later plays skip them
	facts   map[string]cty.Value // facts by host, gathered when first needed
	// helpers lists, by host, the identities whose helper runs on its open connection, in
	// the order they started.
	helpers map[string][]Identity
	// recovered holds "HOST ID" of the transactions already reported as rolled back at a
	// helper's start.
	recovered map[string]bool
	recap     *Recap
}

// Run executes the plan and returns its recap. Cancelling ctx stops every host at its next
// task boundary (a running task is cancelled) and returns the recap so far.
func (e *Engine) Run(ctx context.Context, pl *plan.Plan) *Recap {
	start := time.Now()
	e.conns = map[string]Connection{}
	e.last = map[string]int{}
	e.dead = map[string]bool{}
	e.helpers = map[string][]Identity{}
	e.recap = &Recap{Hosts: map[string]*Stats{}}
	defer e.closeAll()
	for i, p := range pl.Plays {
		if len(p.Tasks) == 0 {
			continue // such a play connects to nobody
		}
		for _, h := range p.Hosts {
			e.last[h.Name] = i
		}
	}
	for i, p := range pl.Plays {
		if ctx.Err() != nil {
			break
		}
		if !e.play(ctx, i, p) {
			break
		}
	}
	e.recap.Duration = time.Since(start)
	e.recap.Interrupted = ctx.Err() != nil
	return e.recap
}

// closeHost ends the host's helpers and connection, when it has them, without waiting: each
// Close waits a little for its helpers to exit, and neither the host's fork nor the other
// hosts should wait for that. closeAll waits for every close.
func (e *Engine) closeHost(name string) {
	e.mu.Lock()
	c := e.conns[name]
	delete(e.conns, name)
	delete(e.helpers, name)
	e.mu.Unlock()
	if c == nil {
		return
	}
	e.closing.Add(1)
	go func() {
		defer e.closing.Done()
		_ = c.Close()
	}()
}

// closeAll ends the connections still open (a run cut short leaves some), all at once, and
// waits until every close, these and those begun earlier, is done.
func (e *Engine) closeAll() {
	e.mu.Lock()
	names := make([]string, 0, len(e.conns))
	for name := range e.conns {
		names = append(names, name)
	}
	e.mu.Unlock()
	for _, name := range names {
		e.closeHost(name)
	}
	e.closing.Wait()
}

// doneWith closes the host's connection when play i was the last it takes part in, or
// when the host failed or is unreachable (later plays skip it).
func (e *Engine) doneWith(h string, i int, ok bool) {
	e.mu.Lock()
	last, dead := e.last[h], e.dead[h]
	e.mu.Unlock()
	if !ok || dead || last <= i {
		e.closeHost(h)
	}
}
