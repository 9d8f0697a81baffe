package run

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/zclconf/go-cty/cty"

	"github.com/runbook/runbook/engine/config"
)

// runTask runs one task (all its for_each elements) on this host. A panic in it (a bug,
// in evaluation, anywhere on the task's path, or in a view) becomes the task's failure on
// this host, recorded like any other failure.
func (hr *hostRun) runTask(ctx context.Context, t *config.Task) (status Status) {
	base := Result{Task: t.Name, Module: t.Module, Handler: t.IsHandler}
	out := &taskOutcome{single: t.ForEach == nil, overall: Skipped, perItem: map[string]cty.Value{}}
	// secrets are the sensitive strings in scope for every element: computed once, as
	// walking the facts for each element would cost as much as the element itself
	var secrets []string
	scoped := false
	defer func() {
		if p := recover(); p != nil {
			r := base
			scope := hr.hostSecrets
			if scoped {
				scope = func() []string { return append(slices.Clip(secrets), eachSecrets(out.cur)...) }
			}
			if out.cur != nil {
				r.Item = out.curLabel
			}
			r = hr.reportBug(r, p, scope)
			r.Status = Failed
			out.add(r)
			status = hr.finishTask(t, out)
		}
	}()
	for _, dep := range t.DependsOn {
		if st := hr.statuses[dep.Name]; st == Failed || st == Unreachable || (st == Skipped && hr.results[dep.Name] == cty.NilVal) {
			r := base
			r.Status, r.Msg = Skipped, fmt.Sprintf("skipped: depends on %q, which did not succeed", dep.Name)
			hr.report(r)
			return Skipped
		}
	}
	if t.UsesFacts {
		if st, msg := hr.ensureFacts(ctx, t); st != OK {
			if hr.startFailed {
				return Unreachable
			}
			r := base
			r.Status, r.Msg = st, msg
			hr.report(r)
			return st
		}
	}
	scope := config.Scope{Host: hr.h.Name, Groups: hr.h.Groups, Vars: hr.vars, Tasks: hr.results, Facts: hr.facts()}
	ectx := hr.e.Runbook.EvalContext(scope)
	secrets, scoped = config.ContextSecrets(ectx), true
	items, diags := t.Items(ectx)
	if diags.HasErrors() {
		r := base
		r.Status, r.Msg = Failed, diagText(diags)
		hr.report(r)
		return Failed
	}
	if out.single {
		items = []config.Item{{}}
	}
	for i, it := range items {
		s := scope
		if !out.single {
			s.Each = &it
			out.hidden = out.hidden || it.Hidden()
		}
		out.cur, out.curLabel = &it, itemLabel(it, i, out.single)
		r := hr.item(ctx, t, s, secrets)
		r.Item = out.curLabel
		if hr.startFailed {
			// reported as the host's connect step; the host stops
			out.add(r)
			return hr.finishTask(t, out)
		}
		hr.report(r)
		out.add(r)
		if r.Status == Failed && t.OnFailure != config.OnFailureContinue {
			break
		}
	}
	return hr.finishTask(t, out)
}

// taskOutcome gathers one task's results on one host, element by element.
type taskOutcome struct {
	single  bool // no for_each
	overall Status
	last    cty.Value            // the last element's result
	perItem map[string]cty.Value // the results by for_each key
	hidden  bool                 // some key is sensitive
	// cur is the element being run, and curLabel how results show it
	cur      *config.Item
	curLabel string
}

// add records the result of the current element.
func (o *taskOutcome) add(r Result) {
	o.overall = worse(o.overall, r.Status)
	o.last = resultValue(r)
	if !o.single && o.cur != nil {
		o.perItem[keyString(o.cur.Key)] = o.last
	}
	o.cur, o.curLabel = nil, ""
}

// finishTask makes the task's outcome what later tasks see as task.NAME, notifies its
// handlers when it changed something, and returns its status.
func (hr *hostRun) finishTask(t *config.Task, o *taskOutcome) Status {
	if o.single {
		hr.results[t.Name] = o.last
	} else {
		results := objectOrEmpty(o.perItem)
		if o.hidden {
			// its attribute names are the sensitive keys
			results = results.Mark(config.Sensitive)
		}
		hr.results[t.Name] = cty.ObjectVal(map[string]cty.Value{
			"results": results,
			"changed": cty.BoolVal(o.overall == Changed),
			"status":  cty.StringVal(string(o.overall)),
		})
	}
	if o.overall == Changed || (hr.e.Options.Check && o.overall == Drift) {
		for _, n := range t.Notify {
			hr.notified[n.Name] = true
		}
	}
	return o.overall
}

// eachSecrets returns the sensitive strings of a for_each element.
func eachSecrets(it *config.Item) []string {
	if it == nil || it.Key == cty.NilVal {
		return nil
	}
	return append(config.SensitiveStrings(it.Key), config.SensitiveStrings(it.Value)...)
}

// itemLabel is how results show a for_each element: its key, or for a sensitive key
// its position, "(sensitive value #2)".
func itemLabel(it config.Item, i int, single bool) string {
	switch {
	case single:
		return ""
	case it.Hidden():
		return fmt.Sprintf("(sensitive value #%d)", i+1)
	}
	return keyString(it.Key)
}

func keyString(k cty.Value) string {
	k, _ = k.Unmark()
	switch {
	case k.IsNull() || !k.IsKnown():
		return ""
	case k.Type() == cty.String:
		return k.AsString()
	case k.Type() == cty.Number:
		return k.AsBigFloat().Text('f', -1)
	}
	return fmt.Sprintf("%#v", k)
}

func objectOrEmpty(m map[string]cty.Value) cty.Value {
	if len(m) == 0 {
		return cty.EmptyObjectVal
	}
	return cty.ObjectVal(m)
}

func diagText(diags hcl.Diagnostics) string {
	var parts []string
	for _, d := range diags {
		if d.Severity != hcl.DiagError {
			continue
		}
		s := d.Summary
		if d.Detail != "" {
			s += ": " + d.Detail
		}
		if d.Subject != nil {
			s += " (" + d.Subject.String() + ")"
		}
		parts = append(parts, s)
	}
	return strings.Join(parts, "; ")
}
