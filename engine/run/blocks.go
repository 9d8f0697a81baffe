package run

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/zclconf/go-cty/cty"

	"github.com/runbook/runbook/engine/config"
)

// flow says how a host goes on after a task or a block.
type flow int

const (
	flowOn     flow = iota // on to the next task
	flowFailed             // a task failed: the host stops, unless a block's rescue takes it
	flowStop               // unreachable or interrupted: nothing more runs on the host
)

// scope is what a task or block of inst sees on this host now.
func (hr *hostRun) scope(inst *config.Instance) config.Scope {
	return config.Scope{Host: hr.h.Name, Groups: hr.h.Groups, Vars: hr.vars, Tasks: hr.results, Facts: hr.facts(),
		Each: hr.each, Instance: inst, Play: hr.p.Play}
}

// seq runs tasks in order: a play's (top), or one section of a block, whose tasks are those
// under parent. Consecutive tasks in one block directly under parent run as that block. soft
// says a task failed with on_failure = "continue". Under the linear strategy the hosts of a
// batch wait for each other between the play's top-level steps, a block being one step.
func (hr *hostRun) seq(ctx context.Context, tasks []*config.Task, parent *config.Block, top bool) (f flow, soft bool) {
	for i, step := 0, 0; i < len(tasks); step++ {
		if ctx.Err() != nil {
			return flowStop, soft
		}
		if top && hr.b.step != nil && step > 0 {
			hr.b.step.wait()
			if ctx.Err() != nil {
				return flowStop, soft
			}
		}
		t := tasks[i]
		if b := t.Under(parent); b != nil {
			j := i + 1
			for j < len(tasks) && tasks[j].Under(parent) == b {
				j++
			}
			bf, bsoft := hr.block(ctx, b, tasks[i:j])
			soft = soft || bsoft
			i = j
			if bf != flowOn {
				return bf, soft
			}
			continue
		}
		if run := hr.pipelineRun(tasks, i, parent); run != nil {
			n, pf, psoft := hr.pipeline(ctx, run)
			i += n
			soft = soft || psoft
			if pf != flowOn {
				return pf, soft
			}
			continue
		}
		i++
		hr.stage = t.Name
		st := hr.taskInSlot(ctx, t)
		hr.statuses[t.Name] = st
		switch st {
		case Failed:
			if t.OnFailure != config.OnFailureContinue {
				return flowFailed, soft
			}
			soft = true
		case Unreachable:
			// The connection is gone: later plays skip this host rather than reuse it.
			hr.markDead()
			return flowStop, soft
		}
	}
	return flowOn, soft
}

// block runs one block (tasks are its selected tasks, in order) on this host: its when
// once, then per for_each element its tasks, its rescue tasks when one of them failed,
// and its always tasks.
func (hr *hostRun) block(ctx context.Context, b *config.Block, tasks []*config.Task) (flow, bool) {
	hr.stage = blockName(b)
	fail := func(msg string) (flow, bool) {
		hr.report(Result{Task: b.Name, Module: b.Kind(), Item: hr.eachLabel, Status: Failed, Msg: msg})
		return flowFailed, false
	}
	if b.UsesFacts {
		if st, msg := hr.ensureFacts(ctx, tasks[0]); st != OK {
			if !hr.startFailed && st == Unreachable {
				// lost while gathering: said here, as a task's result would say it (a
				// helper that could not start was reported as the host's connect step)
				hr.report(Result{Task: b.Name, Module: b.Kind(), Item: hr.eachLabel, Status: Unreachable, Msg: msg})
			}
			if hr.startFailed || st == Unreachable {
				hr.markDead()
				return flowStop, false
			}
			return fail(msg)
		}
	}
	s := hr.scope(b.Instance)
	if b.Each != nil {
		s.Each = b.Each
	}
	ectx := hr.e.Runbook.EvalContext(s)
	run, diags := b.WhenTrue(ectx)
	if diags.HasErrors() {
		return fail(diagText(diags))
	}
	if !run {
		hr.skipAll(tasks, fmt.Sprintf("skipped: the when of %s is false", blockName(b)), b.ForEach != nil)
		return flowOn, false
	}
	var items []*config.Item
	if b.ForEach == nil {
		items = []*config.Item{nil}
	} else {
		its, diags := b.Items(ectx)
		if diags.HasErrors() {
			return fail(diagText(diags))
		}
		for i := range its {
			items = append(items, &its[i])
		}
		if len(items) == 0 {
			hr.skipAll(tasks, fmt.Sprintf("skipped: the for_each of %s has no elements", blockName(b)), true)
			return flowOn, false
		}
	}
	var main, rescue, always []*config.Task
	for _, t := range tasks {
		switch t.SectionIn(b) {
		case config.SectionRescue:
			rescue = append(rescue, t)
		case config.SectionAlways:
			always = append(always, t)
		default:
			main = append(main, t)
		}
	}
	loop := newBlockLoop(b.ForEach != nil)
	f, soft := flowOn, false
	for i, it := range items {
		savedEach, savedLabel := hr.each, hr.eachLabel
		if it != nil {
			hr.each, hr.eachLabel = it, joinLabel(savedLabel, itemLabel(*it, i, false))
		}
		// a soft failure of an element stays with the host whatever the next ones do
		var esoft bool
		f, esoft = hr.blockOnce(ctx, main, rescue, always, b)
		soft = soft || esoft
		loop.collect(hr, tasks, it)
		hr.each, hr.eachLabel = savedEach, savedLabel
		if f != flowOn {
			break
		}
	}
	loop.finish(hr, tasks)
	return f, soft
}

// blockOnce runs a block's sections once (for one for_each element).
func (hr *hostRun) blockOnce(ctx context.Context, main, rescue, always []*config.Task, b *config.Block) (flow, bool) {
	mark := len(hr.failures)
	f, soft := hr.seq(ctx, main, b, false)
	if f == flowFailed && len(rescue) > 0 {
		end := len(hr.failures)
		rf, rsoft := hr.seq(ctx, rescue, b, false)
		if rf == flowOn {
			// Rescued: the failures of the block's tasks no longer count against the host
			// (those of rescue tasks that failed with on_failure = "continue" still do),
			// and the block's result says so (in the output and the history).
			failed := hr.rescued(mark, end)
			hr.report(Result{Task: b.Name, Module: b.Kind(), Item: hr.eachLabel, Status: OK,
				Msg: fmt.Sprintf("rescued: %s failed, and the rescue tasks succeeded", quoteList(failed))})
			f, soft = flowOn, rsoft
		} else {
			f, soft = rf, soft || rsoft
		}
	}
	if len(always) > 0 && f != flowStop && ctx.Err() == nil {
		af, asoft := hr.seq(ctx, always, b, false)
		soft = soft || asoft
		if af > f {
			f = af
		}
	}
	return f, soft
}

// rescued takes the failures reported from mark to end out of the host's count, and counts
// the rescue; it returns the names of the tasks that failed.
func (hr *hostRun) rescued(mark, end int) []string {
	var names []string
	for _, r := range hr.failures[mark:end] {
		hr.count(r, -1)
		if !slices.Contains(names, r.Task) {
			names = append(names, r.Task)
		}
	}
	hr.failures = append(hr.failures[:mark], hr.failures[end:]...)
	hr.e.mu.Lock()
	hr.stats.Rescued++
	hr.e.mu.Unlock()
	return names
}

// quoteList writes names as "a", "b".
func quoteList(names []string) string {
	q := make([]string, len(names))
	for i, n := range names {
		q[i] = fmt.Sprintf("%q", n)
	}
	return strings.Join(q, ", ")
}

// skipAll reports every task of a block that does not run on this host, and gives each the
// result later tasks see for a skipped task: that of a task whose when is false, or for a
// block with for_each (loop), that of a task whose for_each has no elements.
func (hr *hostRun) skipAll(tasks []*config.Task, msg string, loop bool) {
	for _, t := range tasks {
		r := Result{Task: t.Name, Module: t.Module, Item: hr.eachLabel, Status: Skipped, Msg: msg}
		hr.report(r)
		hr.statuses[t.Name] = Skipped
		hr.results[t.Name] = resultValue(r)
		if loop {
			hr.results[t.Name] = cty.ObjectVal(map[string]cty.Value{
				"results": cty.EmptyObjectVal,
				"changed": cty.False,
				"status":  cty.StringVal(string(Skipped)),
			})
		}
	}
}

// blockLoop gathers the results of a block's tasks over its for_each elements: during an
// element task["x"] is that element's result; after the block it is, as for a task with
// for_each, an object of results by key, changed and status.
type blockLoop struct {
	on       bool
	results  map[string]map[string]cty.Value
	statuses map[string]Status
	hidden   bool
}

func newBlockLoop(on bool) *blockLoop {
	return &blockLoop{on: on, results: map[string]map[string]cty.Value{}, statuses: map[string]Status{}}
}

func (l *blockLoop) collect(hr *hostRun, tasks []*config.Task, it *config.Item) {
	if !l.on || it == nil {
		return
	}
	key := keyString(it.Key)
	l.hidden = l.hidden || it.Hidden()
	for _, t := range tasks {
		st, ran := hr.statuses[t.Name]
		if !ran {
			continue
		}
		l.statuses[t.Name] = worse(l.statuses[t.Name], st)
		if v, ok := hr.results[t.Name]; ok {
			if l.results[t.Name] == nil {
				l.results[t.Name] = map[string]cty.Value{}
			}
			l.results[t.Name][key] = v
			delete(hr.results, t.Name)
		}
	}
}

func (l *blockLoop) finish(hr *hostRun, tasks []*config.Task) {
	if !l.on {
		return
	}
	for _, t := range tasks {
		st, ran := l.statuses[t.Name]
		if !ran {
			continue
		}
		hr.statuses[t.Name] = st
		results := objectOrEmpty(l.results[t.Name])
		if l.hidden {
			results = results.Mark(config.Sensitive)
		}
		hr.results[t.Name] = cty.ObjectVal(map[string]cty.Value{
			"results": results,
			"changed": cty.BoolVal(st == Changed),
			"status":  cty.StringVal(string(st)),
		})
	}
}

// blockName names a block for messages: block "vlans", module call hypervisor, module
// call site["east"] (an instance's name has its own quotes).
func blockName(b *config.Block) string {
	if b.Module != nil {
		return "module call " + b.Name
	}
	return fmt.Sprintf("block %q", b.Name)
}

// joinLabel joins the labels of nested for_each elements.
func joinLabel(outer, inner string) string {
	switch {
	case outer == "":
		return inner
	case inner == "":
		return outer
	}
	return outer + "/" + inner
}
