package run

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"slices"

	"github.com/zclconf/go-cty/cty"

	"github.com/runbook/runbook/engine/config"
	"github.com/runbook/runbook/engine/controller"
	"github.com/runbook/runbook/modules"
)

// Pipelining. Each task costs a round trip to the host: across a WAN that, not the work,
// is most of a run. So a host is sent the longest run of its next tasks whose when and
// arguments can be worked out before the earlier ones answer (none reads the result of a
// task of the run), all to the same helper, as one chain (protocol.Request.Chain): the
// helper runs them in order and, once one fails, none after it. The engine then takes the
// answers in order and handles each as it would have without pipelining: changed_when,
// the result, register, notify, the host's stop. A task whose outcome the engine decides
// after the answer, in a way that could stop the host (failed_when, a changed_when that
// reads the result, until and retries) ends its run; tasks that need more than one
// request (for_each, run_once, transactions, reboots), run on the controller, or wait for
// another task (depends_on, a timeout of their own) are not pipelined. So a host runs the
// same tasks, with the same results, in the same order as without pipelining.

// maxPipeline bounds how many tasks a host is sent ahead of their answers (the helper runs
// at most 16 requests at once).
const maxPipeline = 12

// pipelinable says whether t may be sent before the task before it answers.
func pipelinable(t *config.Task) bool {
	if t.IsHandler || t.ForEach != nil || t.RunOnce || t.Retries > 0 || t.Until != nil || t.Timeout > 0 || len(t.DependsOn) > 0 {
		return false
	}
	if _, local := controller.RunnerFor(t.Module); local {
		return false
	}
	info, ok := modules.InfoOf(t.Module)
	if !ok || info.Reboots {
		return false
	}
	if _, txn := info.Schema.Arg("confirm_timeout"); txn {
		return false
	}
	return true
}

// endsRun says whether nothing may be sent after t before t answers: its outcome is
// decided from its result by an expression that could fail the task.
func endsRun(t *config.Task) bool {
	return t.FailedWhen != nil || !t.ConstantChangedWhen()
}

// pipelineRun returns the tasks from tasks[i] on that go to the host as one pipeline, or
// nil when fewer than two would.
func (hr *hostRun) pipelineRun(tasks []*config.Task, i int, parent *config.Block) []*config.Task {
	if hr.e.Options.NoPipelining || (hr.b != nil && hr.b.step != nil) {
		return nil
	}
	first := tasks[i]
	if !pipelinable(first) || endsRun(first) {
		return nil
	}
	id := hr.identity(first)
	run := []*config.Task{first}
	sent := map[string]bool{first.Name: true}
	for j := i + 1; j < len(tasks) && len(run) < maxPipeline; j++ {
		t := tasks[j]
		if t.Under(parent) != nil || !pipelinable(t) || hr.identity(t) != id {
			break
		}
		if t.UsesFacts && hr.facts() == cty.NilVal {
			// gathering them now would race the tasks before it
			break
		}
		names, dynamic := t.TaskRefs()
		if dynamic {
			break
		}
		reads := false
		for _, n := range names {
			if t.Instance != nil {
				n = t.Instance.Name + "." + n
			}
			reads = reads || sent[n]
		}
		if reads {
			break
		}
		run = append(run, t)
		sent[t.Name] = true
		if endsRun(t) {
			break
		}
	}
	if len(run) < 2 {
		return nil
	}
	return run
}

// pipelined is one task of a pipeline: its scope, what prepareItem made of it, and either
// its result already (it did not go to the host) or the wait for its answer.
type pipelined struct {
	t     *config.Task
	s     config.Scope
	p     *preparedItem
	r     Result // when p is nil
	wait  func() (*modules.Result, error)
	err   error // the call could not be made
	label string
}

// pipeline runs tasks (a pipelineRun) on this host: it prepares and sends each in turn, then
// takes their answers in order. It returns how many of them it ran (the rest, when one
// could not be sent, are the caller's) and how the host goes on, as seq does for a task.
func (hr *hostRun) pipeline(ctx context.Context, tasks []*config.Task) (n int, f flow, soft bool) {
	var cur *config.Task
	defer func() {
		if p := recover(); p != nil {
			r := Result{Task: cur.Name, Module: cur.Module, Item: hr.eachLabel}
			r = hr.reportBug(r, p, hr.hostSecrets)
			r.Status = Failed
			hr.statuses[cur.Name] = Failed
			n, f = len(tasks), flowFailed
		}
	}()
	chain := newChain()
	var sent []*pipelined
	// The executors holding queued requests (Queuer), sent when the run is prepared or
	// before anything else talks to a host.
	var held []Queuer
	flush := func() {
		for _, q := range held {
			_ = q.Flush(ctx) // a failed write ends the conversation: the waits say so
		}
		held = held[:0]
	}
	defer flush()
	for _, t := range tasks {
		cur = t
		if ctx.Err() != nil {
			break
		}
		pd := &pipelined{t: t, label: hr.eachLabel}
		sent = append(sent, pd)
		if t.UsesFacts {
			flush()
			if st, msg := hr.ensureFacts(ctx, t); st != OK {
				pd.r = Result{Task: t.Name, Module: t.Module, Status: st, Msg: msg}
				break
			}
		}
		pd.s = hr.scope(t.Instance)
		ectx := hr.e.Runbook.EvalContext(pd.s)
		secrets := hr.e.Runbook.ScopeSecrets(pd.s, ectx)
		p, r, ok := hr.prepareItem(ctx, t, pd.s, ectx, secrets)
		if !ok {
			pd.r = r
			if r.Status == Skipped {
				continue
			}
			break // it failed here: nothing after it may be sent
		}
		pd.p = p
		px, ok := p.x.(Pipeliner)
		if !ok {
			// an executor that cannot send ahead: this one runs now, before the next is sent
			flush()
			res, err, _ := hr.attempts(WithSecrets(ctx, p.vals), p.x, t, p.m, p.args, p.apply, p.ectx, pd.s, p.r)
			pd.wait = func() (*modules.Result, error) { return res, err }
			if err != nil && t.OnFailure != config.OnFailureContinue {
				break // as a chain would stop here
			}
			continue
		}
		plain, sensitive := config.SplitSensitive(p.args)
		call, err := hr.hostCall(ctx, t, hr.controllerEnv(t, p.ectx), p.args, plain, sensitive)
		if err != nil {
			pd.err = err
			break
		}
		call.Chain, call.Tolerated = chain, t.OnFailure == config.OnFailureContinue
		if q, ok := px.(Queuer); ok {
			if !slices.Contains(held, q) {
				held = append(held, q)
			}
			pd.wait, pd.err = q.Queue(WithSecrets(ctx, p.vals), call, p.apply)
		} else {
			pd.wait, pd.err = px.Start(WithSecrets(ctx, p.vals), call, p.apply)
		}
		if pd.err != nil {
			break
		}
	}
	flush()
	if len(sent) == 0 {
		return 0, flowStop, soft // interrupted before the first
	}
	// The answers, in order. A host that stops here leaves the later answers unread: the
	// helper did not run those tasks (their chain stopped), or ran them under a task that
	// failed by the engine's verdict only (see endsRun), which cannot happen.
	for _, pd := range sent {
		cur = pd.t
		hr.stage = pd.t.Name
		r := pd.r
		if pd.p != nil {
			res, err := (*modules.Result)(nil), pd.err
			if pd.wait != nil && err == nil {
				res, err = pd.wait()
			}
			if errors.Is(err, ErrNotRun) {
				// only after a failure, which ended the pipeline before this answer
				err = errors.New("internal: the host did not run this task, as one before it failed")
			}
			r = hr.finishItem(ctx, pd.t, pd.s, pd.p, res, err, nil)
		}
		r.Item = pd.label
		st := hr.commit(pd.t, r)
		switch {
		case hr.startFailed || st == Unreachable:
			hr.markDead()
			return len(sent), flowStop, soft
		case st == Failed && pd.t.OnFailure != config.OnFailureContinue:
			return len(sent), flowFailed, soft
		case st == Failed:
			soft = true
		}
		if ctx.Err() != nil {
			return len(sent), flowStop, soft
		}
	}
	return len(sent), flowOn, soft
}

// commit makes r the result of its task (a single element): reported, registered, its
// handlers notified, as runTask does.
func (hr *hostRun) commit(t *config.Task, r Result) Status {
	out := &taskOutcome{single: true, overall: Skipped, perItem: map[string]cty.Value{}}
	if !hr.startFailed {
		hr.report(r)
	}
	out.add(r)
	st := hr.finishTask(t, out)
	hr.statuses[t.Name] = st
	return st
}

// newChain names one pipeline.
func newChain() string {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
