package config

import (
	"sync"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hcldec"
	"github.com/zclconf/go-cty/cty"

	"github.com/runbook/runbook/modules"
)

// argsMemo spares decoding a task's module arguments once per host when they come out the
// same on every host. The decoded value depends only on the body, the module's schema and
// the values of the variables the body refers to (every function available to a task is
// pure: file() reads files only while the runbook loads): so when each of those values is
// equal, marks included, to the last decode's, so is the result. A run of a thousand hosts
// whose tasks read only var, local or constants decodes each task once; a task that reads
// host.name decodes per host, as before, at the cost of reading its variables. Only decodes
// without diagnostics are kept (callers add to a diagnostic's text).
type argsMemo struct {
	once sync.Once
	trs  []hcl.Traversal // what the body refers to

	mu   sync.Mutex
	keys []cty.Value // the values of trs at the last decode; nil: none kept
	val  cty.Value
}

func (a *argsMemo) decode(m *modules.Def, body hcl.Body, ctx *hcl.EvalContext, blockRange hcl.Range) (cty.Value, hcl.Diagnostics) {
	if a == nil {
		return decodeModule(m, body, ctx, blockRange)
	}
	a.once.Do(func() { a.trs = hcldec.Variables(body, specsOf(m).spec) })
	keys := make([]cty.Value, len(a.trs))
	for i, tr := range a.trs {
		v, diags := tr.TraverseAbs(ctx)
		if diags.HasErrors() {
			// Not known here (it will be an error of the decode): nothing to compare.
			return decodeModule(m, body, ctx, blockRange)
		}
		keys[i] = v
	}
	a.mu.Lock()
	if a.keys != nil && sameValues(a.keys, keys) {
		v := a.val
		a.mu.Unlock()
		return v, nil
	}
	a.mu.Unlock()
	v, diags := decodeModule(m, body, ctx, blockRange)
	if !diags.HasErrors() && len(diags) == 0 {
		a.mu.Lock()
		a.keys, a.val = keys, v
		a.mu.Unlock()
	}
	return v, diags
}

// sameValues reports whether a and b hold equal values, marks and unknowns included.
func sameValues(a, b []cty.Value) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !a[i].RawEquals(b[i]) {
			return false
		}
	}
	return true
}
