package run

import (
	"context"
	"fmt"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/zclconf/go-cty/cty"

	"github.com/runbook/runbook/engine/config"
	"github.com/runbook/runbook/modules"
)

// attempts runs the module of one element (r names it) until it succeeds, or, with until,
// until that holds: at most retries+1 times, waiting delay between attempts, and no more
// once ctx ends. It returns the last attempt's result and error; an until that stays
// false is that error. udiags are the errors of an until that could not be evaluated: the
// element fails with them, and no attempt follows.
func (hr *hostRun) attempts(ctx context.Context, x Executor, t *config.Task, m modules.Module, args cty.Value, apply bool, ectx *hcl.EvalContext,
	s config.Scope, r Result) (res *modules.Result, err error, udiags hcl.Diagnostics) {
	attempts := t.Retries + 1
	conn := hr.conn
	for attempt := 1; attempt <= attempts; attempt++ {
		if x != nil && hr.conn != conn {
			// A transaction's confirmation moved the host to a new connection (confirm.go):
			// the next attempt runs there, on the helper the confirmation started.
			conn = hr.conn
			if x, err = hr.executor(ctx, hr.identity(t)); err != nil {
				return res, err, nil
			}
		}
		res, err = hr.runModule(ctx, x, t, m, args, apply, ectx)
		if ctx.Err() != nil {
			break
		}
		if t.Until != nil && err == nil {
			ok, diags := t.UntilTrue(hr.e.Runbook.EvalContext(withSelf(s, resultValue(fromModule(r, res, nil)))))
			if diags.HasErrors() {
				return res, err, diags
			}
			if ok {
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
	return res, err, nil
}

// withSelf is scope s with self, the result an until, changed_when or failed_when reads.
func withSelf(s config.Scope, self cty.Value) config.Scope {
	s.Self = self
	return s
}
