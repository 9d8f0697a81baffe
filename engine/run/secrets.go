package run

import (
	"context"
	"slices"

	"github.com/runbook/runbook/modules"
)

type secretsKey struct{}

// WithSecrets returns ctx carrying the values of sensitive variables that a task's
// arguments may hold inside longer strings. An Executor sends them along with the task, so
// that the host redacts them too (before it shortens anything), not only the values of the
// arguments that are marked sensitive as a whole.
func WithSecrets(ctx context.Context, vals []string) context.Context {
	if len(vals) == 0 {
		return ctx
	}
	return context.WithValue(ctx, secretsKey{}, vals)
}

// Secrets returns the values WithSecrets put in ctx.
func Secrets(ctx context.Context) []string {
	vals, _ := ctx.Value(secretsKey{}).([]string)
	return vals
}

func redactResult(r *Result, secrets []string) {
	rep := modules.NewRedactor(secrets)
	r.Msg = rep.Redact(r.Msg)
	if r.Transaction != nil {
		t := *r.Transaction
		t.Restored, t.Verification = slices.Clone(t.Restored), slices.Clone(t.Verification)
		t.Redact(rep)
		r.Transaction = &t
	}
}
