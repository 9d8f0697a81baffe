package run

import (
	"context"
	"strings"

	"github.com/zclconf/go-cty/cty"

	"github.com/runbook/runbook/engine/config"
	"github.com/runbook/runbook/engine/plan"
	"github.com/runbook/runbook/inventory"
)

// Observer receives a run's events as they happen; views implement it. Calls for one host
// come in order; calls for different hosts may come concurrently.
type Observer interface {
	HostStarted(host string)
	TaskDone(r Result)
	HostDone(host string, s Stats)
}

// hostRun is the state of one host in one play.
type hostRun struct {
	stage  string // what the host is doing outside a task, for a bug report
	e      *Engine
	p      *plan.Play
	b      *batchRun
	h      *inventory.Host
	conn   Connection
	become HostBecome // what the host's inventory says about become
	// startFailed is set when a helper could not start: that was reported as the host's
	// "connect" step, and the host is unreachable.
	startFailed bool
	vars        cty.Value
	results     map[string]cty.Value
	statuses    map[string]Status // per task: its overall status
	notified    map[string]bool
	stats       *Stats
	// each is the element of the innermost block with for_each being run, and eachLabel
	// how results show it (the elements of nested blocks joined by "/").
	each      *config.Item
	eachLabel string
	// failures are this host's failed results since the outermost block with a rescue
	// began: a rescue that succeeds takes them out of the host's count.
	failures []Result
	// delivering is the result being handed to the observer, counted already: when the
	// observer panics on it, the failure that reports the bug takes its place in the count.
	delivering *Result
}

// host runs a play's tasks on one host; it returns false when the host failed or was
// unreachable.
func (e *Engine) host(ctx context.Context, p *plan.Play, h *inventory.Host, b *batchRun) bool {
	e.mu.Lock()
	stats := e.recap.Hosts[h.Name]
	if stats == nil {
		stats = &Stats{}
		e.recap.Hosts[h.Name] = stats
	}
	dead := e.dead[h.Name]
	e.mu.Unlock()
	if dead {
		return false
	}
	if e.Options.HostTimeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, e.Options.HostTimeout)
		defer cancel()
	}
	hr := &hostRun{e: e, p: p, h: h, b: b, stats: stats, results: map[string]cty.Value{},
		statuses: map[string]Status{}, notified: map[string]bool{}}
	ok := hr.guardedRun(ctx)
	hr.hostDone()
	return ok
}

// guardedRun is run with a net under it: a panic on this host's path (a bug, in runbook
// or in a view) fails the host with a message to report, and the run goes on with the
// other hosts.
func (hr *hostRun) guardedRun(ctx context.Context) (ok bool) {
	defer func() {
		if p := recover(); p != nil {
			ok = false
			hr.markDead()
			hr.reportBug(Result{Task: hr.stage}, p, hr.hostSecrets)
		}
	}()
	hr.stage = "start"
	if hr.e.Observer != nil {
		hr.e.Observer.HostStarted(hr.h.Name)
	}
	return hr.run(ctx)
}

// hostDone tells the observer the host is done. A panic there (a bug in a view) is
// dropped: there is nothing left to show for the host, and the run must go on.
func (hr *hostRun) hostDone() {
	defer func() { _ = recover() }()
	if hr.e.Observer == nil {
		return
	}
	hr.e.mu.Lock()
	s := *hr.stats
	hr.e.mu.Unlock()
	hr.e.Observer.HostDone(hr.h.Name, s)
}

func (hr *hostRun) report(r Result) {
	r.Host, r.Play = hr.h.Name, hr.p.Play.Name
	hr.count(r, 1)
	if r.Status == Failed {
		hr.failures = append(hr.failures, r)
	}
	if hr.e.Observer != nil {
		hr.delivering = &r
		hr.e.Observer.TaskDone(r)
		hr.delivering = nil
	}
}

// count adds r to the host's stats (n = 1) or takes it out again (n = -1).
func (hr *hostRun) count(r Result, n int) {
	hr.e.mu.Lock()
	defer hr.e.mu.Unlock()
	hr.stats.add(r.Status, n)
	if len(r.Warnings) > 0 {
		hr.stats.Warnings += n
	}
	if r.RebootRequired && n > 0 {
		hr.stats.RebootRequired = true
	}
}

func (hr *hostRun) run(ctx context.Context) bool {
	hr.stage = "play vars"
	if len(hr.p.Tasks) == 0 {
		if hr.p.Play.VarsUseFacts {
			return true // nothing to run, and no reason to connect for the vars' facts
		}
		_, diags := hr.e.Runbook.HostVars(hr.p.Play, hr.h.Name, hr.h.Groups, inventory.CtyValue(hr.h.Vars))
		if diags.HasErrors() {
			hr.report(Result{Task: "play vars", Status: Failed, Msg: diagText(diags)})
			return false
		}
		return true
	}
	hr.stage = "become"
	hb, err := InventoryBecome(hr.h)
	if err != nil {
		hr.report(Result{Task: "become", Status: Failed, Msg: strings.TrimPrefix(err.Error(), "host "+hr.h.Name+": ")})
		return false
	}
	hr.become = hb
	// Play vars that use facts need the host first; others are evaluated before connecting,
	// so a bad expression costs no connection.
	connect := func() bool {
		hr.stage = "connect"
		defer hr.slot()()
		c, err := hr.connection(ctx)
		if err != nil {
			if ctx.Err() != nil {
				// the run was cancelled (or the host's time is up) while connecting
				hr.report(Result{Task: "connect", Status: Failed, Msg: hr.interrupted(err).Error()})
				return false
			}
			hr.connectFailed(err)
			return false
		}
		hr.conn = c
		return true
	}
	facts := cty.NilVal
	if hr.p.Play.VarsUseFacts {
		if !connect() {
			return false
		}
		hr.stage = "gather facts"
		if st, msg := hr.ensureFacts(ctx, nil); st != OK {
			if !hr.startFailed {
				hr.report(Result{Task: "gather facts", Status: st, Msg: msg})
			}
			if st == Unreachable {
				hr.markDead()
			}
			return false
		}
		facts = hr.facts()
	}
	hr.stage = "play vars"
	vars, diags := hr.e.Runbook.HostVarsFacts(hr.p.Play, hr.h.Name, hr.h.Groups, inventory.CtyValue(hr.h.Vars), facts)
	if diags.HasErrors() {
		hr.report(Result{Task: "play vars", Status: Failed, Msg: diagText(diags)})
		return false
	}
	hr.vars = vars
	if hr.conn == nil && !connect() {
		return false
	}
	f, soft := hr.seq(ctx, hr.p.Tasks, nil, true)
	switch f {
	case flowFailed:
		// The host stops here; handlers do not run on a host that failed, as their
		// trigger may be half done, unless --force-handlers says they must.
		if hr.e.Options.ForceHandlers {
			hr.handlers(ctx)
		}
		return false
	case flowStop:
		return false
	}
	ok := !soft
	if !hr.handlers(ctx) {
		ok = false
	}
	return ok
}

// handlers runs the play's notified handlers, in the order the play lists them; it returns
// false when one failed. When the host becomes unreachable, the rest do not run.
func (hr *hostRun) handlers(ctx context.Context) bool {
	ok := true
	for _, h := range hr.p.Play.Handlers {
		if !hr.notified[h.Name] || ctx.Err() != nil {
			continue
		}
		hr.stage = "handler " + h.Name
		switch hr.taskInSlot(ctx, h) {
		case Failed:
			ok = false
		case Unreachable:
			// the connection is gone, or the handler's helper could not start
			hr.markDead()
			return false
		}
	}
	return ok
}

// taskInSlot runs one task holding a fork under the linear strategy, and gives the fork
// back however the task ends: a panic that leaves it taken would stop the batch's other
// hosts for good.
func (hr *hostRun) taskInSlot(ctx context.Context, t *config.Task) Status {
	defer hr.slot()()
	return hr.task(ctx, t)
}

// slot takes a fork for one step under the linear strategy; it returns the release.
func (hr *hostRun) slot() func() {
	if hr.b == nil || hr.b.slot == nil {
		return func() {}
	}
	return hr.b.slot()
}

func (hr *hostRun) markDead() {
	hr.e.mu.Lock()
	hr.e.dead[hr.h.Name] = true
	hr.e.mu.Unlock()
}
