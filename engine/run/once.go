package run

import (
	"context"
	"fmt"

	"github.com/zclconf/go-cty/cty"

	"github.com/runbook/runbook/engine/config"
)

// onceRun is one run_once task of a batch: the first host to reach it runs it, the others
// wait for its result.
type onceRun struct {
	done   chan struct{}
	host   string
	status Status
	result cty.Value
}

// claim returns the task's onceRun and whether the caller is the host that runs it.
func (b *batchRun) claim(task, host string) (*onceRun, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if o, ok := b.once[task]; ok {
		return o, false
	}
	o := &onceRun{done: make(chan struct{}), host: host}
	b.once[task] = o
	return o, true
}

// release gives up a claim so that the next host to ask runs the task.
func (b *batchRun) release(task string, o *onceRun) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.once[task] == o {
		delete(b.once, task)
	}
}

// task runs one task (all its for_each elements) and returns its overall status.
func (hr *hostRun) task(ctx context.Context, t *config.Task) Status {
	if !t.RunOnce || t.IsHandler || hr.b == nil {
		return hr.runTask(ctx, t)
	}
	var o *onceRun
	r := Result{Task: t.Name, Module: t.Module, Item: hr.eachLabel}
	// in a block with for_each, once per element
	key := t.Name + "\x00" + hr.eachLabel
	for {
		var mine bool
		o, mine = hr.b.claim(key, hr.h.Name)
		if mine {
			// the hosts waiting for the result are let go however this ends
			defer close(o.done)
			st := hr.runTask(ctx, t)
			o.status, o.result = st, hr.results[t.Name]
			if st == Unreachable {
				// The host dropped off, so the task did not fail: another host of the
				// batch takes it over.
				hr.b.release(key, o)
			}
			return st
		}
		// Another host of the batch runs it; this one takes its result.
		select {
		case <-o.done:
		case <-ctx.Done():
			r.Status, r.Msg = Failed, "cancelled while waiting for the run_once task on "+o.host
			hr.report(r)
			return Failed
		}
		if o.status != Unreachable {
			break
		}
	}
	switch o.status {
	case Failed, Unreachable:
		r.Status, r.Msg = Failed, fmt.Sprintf("run_once: the task failed on %s", o.host)
	case Skipped:
		r.Status, r.Msg = Skipped, fmt.Sprintf("run_once: skipped on %s", o.host)
	default:
		r.Status, r.Msg = OK, fmt.Sprintf("run_once: ran on %s (%s)", o.host, o.status)
	}
	if o.result != cty.NilVal {
		hr.results[t.Name] = o.result
	}
	hr.report(r)
	return r.Status
}
