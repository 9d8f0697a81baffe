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
	base := Result{Task: t.Name, Module: t.Module, Handler: t.IsHandler, Item: hr.eachLabel}
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
	scope := hr.scope(t.Instance)
	ectx := hr.e.Runbook.EvalContext(scope)
	secrets, scoped = hr.e.Runbook.ScopeSecrets(scope, ectx), true
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
		out.cur, out.curLabel = &it, joinLabel(hr.eachLabel, itemLabel(it, i, out.single))
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

// eachSecrets returns the sensitive strings of a for_each element.
func eachSecrets(it *config.Item) []string {
	if it == nil || it.Key == cty.NilVal {
		return nil
	}
	return append(config.SensitiveStrings(it.Key), config.SensitiveStrings(it.Value)...)
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
