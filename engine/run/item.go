package run

import (
	"context"
	"slices"
	"time"

	"github.com/runbook/runbook/engine/config"
	"github.com/runbook/runbook/engine/controller"
	"github.com/runbook/runbook/modules"
	"github.com/zclconf/go-cty/cty"
)

// item runs one element of a task: when, args, the helper of its identity, the module
// (attempts: retries and until), then changed_when and failed_when (verdict).
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
	if _, local := controller.RunnerFor(t.Module); !local {
		var err error
		if x, err = hr.executor(ctx, hr.identity(t)); err != nil {
			return done(startStatus(err), err.Error())
		}
		// starting the helper is the connection's time, not the task's
		start = time.Now()
	}
	res, err, udiags := hr.attempts(WithSecrets(ctx, vals), x, t, m, args, apply, ectx, s, r)
	if udiags.HasErrors() {
		return done(Failed, diagText(udiags))
	}
	if res != nil {
		res.Redact(secrets)
	}
	r = fromModule(r, res, err)
	if ctx.Err() != nil && r.Status == Failed {
		r.Msg = "interrupted: " + r.Msg
	}
	if (t.ChangedWhen != nil || t.FailedWhen != nil) && ctx.Err() == nil {
		r = hr.verdict(t, s, r, apply)
	}
	r.Duration = time.Since(start)
	if t.Sensitive {
		r.Diff, r.Msg = nil, modules.Redacted
		r.Data = cty.NilVal
		if len(r.Warnings) > 0 {
			// A warning says what the message would (an assert's warn_only repeats it).
			r.Warnings = []string{modules.Redacted}
		}
		if r.Transaction != nil {
			// Its id and how it ended stay; what it restored is the task's business.
			r.Transaction = &modules.Transaction{ID: r.Transaction.ID, State: r.Transaction.State, Module: r.Transaction.Module,
				Armed: r.Transaction.Armed, Verified: r.Transaction.Verified}
		}
	} else if len(secrets) > 0 {
		redactResult(&r, secrets)
	}
	return r
}
