package run

import (
	"context"
	"slices"
	"time"

	"github.com/hashicorp/hcl/v2"

	"github.com/runbook/runbook/engine/config"
	"github.com/runbook/runbook/engine/controller"
	"github.com/runbook/runbook/modules"
	"github.com/zclconf/go-cty/cty"
)

// item runs one element of a task: when, args, the helper of its identity, the module
// (attempts: retries and until), then changed_when and failed_when (verdict).
func (hr *hostRun) item(ctx context.Context, t *config.Task, s config.Scope, taskSecrets []string) Result {
	p, r, ok := hr.prepareItem(ctx, t, s, nil, taskSecrets)
	if !ok {
		return r
	}
	res, err, udiags := hr.attempts(WithSecrets(ctx, p.vals), p.x, t, p.m, p.args, p.apply, p.ectx, s, p.r)
	return hr.finishItem(ctx, t, s, p, res, err, udiags)
}

// preparedItem is one element of a task ready to run: what prepareItem worked out.
type preparedItem struct {
	start   time.Time
	r       Result
	ectx    *hcl.EvalContext
	m       modules.Module
	args    cty.Value
	apply   bool
	secrets []string // every secret the result must not show
	vals    []string // the secrets the host learns (those its arguments hold)
	x       Executor // nil for a module that runs on the controller
}

// prepareItem evaluates an element's when and arguments and starts the helper of its
// identity. When the element is not to run (when is false, an error) it returns its
// result and false. ectx is s's evaluation context when the caller has made it, else nil.
func (hr *hostRun) prepareItem(ctx context.Context, t *config.Task, s config.Scope, ectx *hcl.EvalContext, taskSecrets []string) (*preparedItem, Result, bool) {
	p := &preparedItem{start: time.Now(), r: Result{Task: t.Name, Module: t.Module, Handler: t.IsHandler}}
	done := func(st Status, msg string) (*preparedItem, Result, bool) {
		r := p.r
		r.Status, r.Msg, r.Duration = st, msg, time.Since(p.start)
		return nil, r, false
	}
	p.ectx = ectx
	if p.ectx == nil {
		p.ectx = hr.e.Runbook.EvalContext(s)
	}
	run, diags := t.WhenTrue(p.ectx)
	if diags.HasErrors() {
		return done(Failed, diagText(diags))
	}
	if !run {
		return done(Skipped, "skipped: when is false")
	}
	p.m, p.args, diags = t.Args(p.ectx)
	if diags.HasErrors() {
		return done(Failed, diagText(diags))
	}
	p.apply = !hr.e.Options.Check
	if t.CheckMode != nil {
		p.apply = !*t.CheckMode
	}
	// what ContextSecrets(ectx) returns, without walking the task's scope once more
	scope := append(slices.Clip(taskSecrets), eachSecrets(s.Each)...)
	p.secrets = append(secretStrings(p.args), scope...)
	// The host learns only the values its arguments already hold.
	p.vals = heldIn(p.args, scope)
	// The helper of the task's identity, started now when it is the first task that needs
	// it: once, outside the attempts, which never start a helper again (a rejected become
	// password is not tried twice) and outside the task's timeout.
	if _, local := controller.RunnerFor(t.Module); !local {
		var err error
		if p.x, err = hr.executor(ctx, hr.identity(t)); err != nil {
			return done(startStatus(err), err.Error())
		}
		// starting the helper is the connection's time, not the task's
		p.start = time.Now()
	}
	return p, Result{}, true
}

// finishItem makes the result of an element that ran: the module's result, then
// changed_when and failed_when, then what a sensitive task hides and every secret
// redacted.
func (hr *hostRun) finishItem(ctx context.Context, t *config.Task, s config.Scope, p *preparedItem, res *modules.Result, err error, udiags hcl.Diagnostics) Result {
	r := p.r
	secrets, apply := p.secrets, p.apply
	if udiags.HasErrors() {
		r.Status, r.Msg, r.Duration = Failed, diagText(udiags), time.Since(p.start)
		return r
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
	r.Duration = time.Since(p.start)
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
