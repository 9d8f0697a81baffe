package run

import (
	"context"
	"errors"
	"slices"
	"strings"

	"github.com/zclconf/go-cty/cty"

	"github.com/runbook/runbook/engine/config"
	"github.com/runbook/runbook/inventory"
)

// FactGatherer is implemented by executors that can report the host's facts (the helper's
// facts op). Facts are gathered once per host and run, when an expression first needs them.
type FactGatherer interface {
	Facts(ctx context.Context) (map[string]any, error)
}

// facts returns the host's facts gathered so far, or cty.NilVal.
func (hr *hostRun) facts() cty.Value {
	hr.e.mu.Lock()
	defer hr.e.mu.Unlock()
	if v, ok := hr.e.facts[hr.h.Name]; ok {
		return v
	}
	return cty.NilVal
}

// ensureFacts gathers the host's facts unless that was done already (facts are gathered
// once per host and run, by the helper factsIdentity picks for task t, nil for the play's
// vars). It returns OK, or the status and message of the failure; when the helper could not
// start, that was reported already (startFailed).
func (hr *hostRun) ensureFacts(ctx context.Context, t *config.Task) (Status, string) {
	if hr.facts() != cty.NilVal {
		return OK, ""
	}
	x, err := hr.executor(ctx, hr.factsIdentity(t))
	if err != nil {
		return startStatus(err), err.Error()
	}
	g, ok := x.(FactGatherer)
	if !ok {
		return Failed, "this connection cannot gather facts"
	}
	data, err := g.Facts(ctx)
	if err != nil {
		if errors.Is(err, ErrUnreachable) {
			return Unreachable, strings.TrimPrefix(err.Error(), hr.h.Name+": ")
		}
		return Failed, "gathering facts: " + err.Error()
	}
	// Plain values, never marked: config.ScopeSecrets does not look for secrets in them.
	m := map[string]cty.Value{}
	for k, v := range data {
		m[k] = inventory.CtyValue(v)
	}
	hr.e.mu.Lock()
	if hr.e.facts == nil {
		hr.e.facts = map[string]cty.Value{}
	}
	hr.e.facts[hr.h.Name] = cty.ObjectVal(m)
	hr.e.mu.Unlock()
	return OK, ""
}

// factsIdentity is the identity whose helper gathers the host's facts for task t (nil: for
// the play's vars): a helper already running on the host, the task's own identity when it
// is one of them, else the play's, else the first started; when none runs yet, the play's
// identity (the login user's when the play does not become). The task's own identity is
// never started just for facts: its when, which may be what needs them, may skip it, and
// a task that is skipped starts no helper.
func (hr *hostRun) factsIdentity(t *config.Task) Identity {
	play := EffectiveIdentity(nil, hr.p.Play, hr.become)
	hr.e.mu.Lock()
	running := hr.e.helpers[hr.h.Name]
	hr.e.mu.Unlock()
	if t != nil && slices.Contains(running, hr.identity(t)) {
		return hr.identity(t)
	}
	if len(running) == 0 || slices.Contains(running, play) {
		return play
	}
	return running[0]
}
