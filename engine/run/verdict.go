package run

import "github.com/runbook/runbook/engine/config"

// verdict applies the task's changed_when and failed_when to r, the element's result,
// which they read as self: failed_when true fails it (keeping the module's message, or
// saying why), false makes a failure ok; changed_when false makes a change (or drift) ok,
// true makes ok a change, or drift when checking. A failure stays one whatever
// changed_when says, and an expression that cannot be evaluated fails the element.
func (hr *hostRun) verdict(t *config.Task, s config.Scope, r Result, apply bool) Result {
	changed, hasChanged, failed, hasFailed, vdiags := t.Verdict(hr.e.Runbook.EvalContext(withSelf(s, resultValue(r))))
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
	return r
}
