package run

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/runbook/runbook/engine/config"
	"github.com/runbook/runbook/modules"
)

// item runs one element of a task: when, args, then the module (with retries).
func (hr *hostRun) item(ctx context.Context, t *config.Task, s config.Scope, taskSecrets []string) Result {
	start := time.Now()
	r := Result{Task: t.Name, Module: t.Module, Handler: t.IsHandler}
	done := func(st Status, msg string) Result {
		r.Status, r.Msg, r.Duration = st, msg, time.Since(start)
		return r
	}
	rb := hr.e.Runbook
	ectx := rb.EvalContext(s)
	run, diags := t.WhenTrue(ectx)
	if diags.HasErrors() {
		return done(Failed, diagText(diags))
	}
	if !run {
		return done(Skipped, "skipped: when is false")
	}
	m, args, diags := t.Args(ectx)
	if diags.HasErrors() {
		return done(Failed, diagText(diags))
	}
	apply := !hr.e.Options.Check
	if t.CheckMode != nil {
		apply = !*t.CheckMode
	}
	// what ContextSecrets(ectx) returns, without walking the task's scope once more
	scope := append(slices.Clip(taskSecrets), eachSecrets(s.Each)...)
	secrets := append(secretStrings(args), scope...)
	// The host learns only the values its arguments already hold.
	vals := heldIn(args, scope)
	// The helper of the task's identity, started now when it is the first task that needs
	// it: once, outside the attempts, which never start a helper again (a rejected become
	// password is not tried twice) and outside the task's timeout.
	var x Executor
	if _, local := m.(modules.ControllerRunner); !local {
		var err error
		if x, err = hr.executor(ctx, hr.identity(t)); err != nil {
			return done(startStatus(err), err.Error())
		}
		// starting the helper is the connection's time, not the task's
		start = time.Now()
	}
	attempts := t.Retries + 1
	var res *modules.Result
	var err error
	for attempt := 1; attempt <= attempts; attempt++ {
		res, err = hr.runModule(WithSecrets(ctx, vals), x, t, m, args, apply, ectx)
		if ctx.Err() != nil {
			break
		}
		if t.Until != nil && err == nil {
			uctx := rb.EvalContext(config.Scope{Host: s.Host, Groups: s.Groups, Vars: s.Vars, Tasks: s.Tasks, Each: s.Each, Facts: s.Facts,
				Self: resultValue(fromModule(r, res, nil))})
			okUntil, udiags := t.UntilTrue(uctx)
			if udiags.HasErrors() {
				return done(Failed, diagText(udiags))
			}
			if okUntil {
				break
			}
			err = fmt.Errorf("until condition still false after %d attempt(s)", attempt)
		} else if err == nil {
			break
		}
		if attempt < attempts && t.Delay > 0 {
			select {
			case <-ctx.Done():
			case <-time.After(t.Delay):
			}
		}
	}
	if res != nil {
		res.Redact(secrets)
	}
	r = fromModule(r, res, err)
	if ctx.Err() != nil && r.Status == Failed {
		r.Msg = "interrupted: " + r.Msg
	}
	if (t.ChangedWhen != nil || t.FailedWhen != nil) && ctx.Err() == nil {
		vctx := rb.EvalContext(config.Scope{Host: s.Host, Groups: s.Groups, Vars: s.Vars, Tasks: s.Tasks, Each: s.Each, Facts: s.Facts, Self: resultValue(r)})
		changed, hasChanged, failed, hasFailed, vdiags := t.Verdict(vctx)
		switch {
		case vdiags.HasErrors():
			r.Status, r.Msg = Failed, diagText(vdiags)
		case hasFailed && failed:
			r.Status = Failed
			if r.Msg == "" {
				r.Msg = "failed_when is true"
			}
		case hasFailed && !failed && r.Status == Failed:
			r.Status = OK
		}
		if hasChanged && r.Status != Failed {
			switch {
			case !changed && (r.Status == Changed || r.Status == Drift):
				r.Status = OK
			case changed && r.Status == OK:
				r.Status = Changed
				if !apply {
					r.Status = Drift
				}
			}
		}
	}
	r.Duration = time.Since(start)
	if t.Sensitive {
		r.Diff, r.Msg = nil, modules.Redacted
		r.Data = nil
	} else if len(secrets) > 0 {
		redactResult(&r, secrets)
	}
	return r
}
