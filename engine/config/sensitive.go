package config

import (
	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"

	"github.com/runbook/runbook/modules"
)

// SensitiveStrings returns every string in v that carries the Sensitive mark, itself or
// through a collection that holds it.
func SensitiveStrings(v cty.Value) []string {
	var out []string
	_ = cty.Walk(v, func(_ cty.Path, x cty.Value) (bool, error) {
		if !x.HasMark(Sensitive) {
			return true, nil
		}
		_ = cty.Walk(x, func(_ cty.Path, y cty.Value) (bool, error) {
			y, _ = y.Unmark()
			if y.IsKnown() && !y.IsNull() && y.Type() == cty.String {
				out = append(out, y.AsString())
			}
			return true, nil
		})
		return false, nil
	})
	return out
}

// ContextSecrets returns the sensitive strings that the values of ctx (and its parents)
// hold: what an expression evaluated in ctx could reveal. The results of earlier tasks
// are left out: their text was redacted before it was recorded, and where they are marked
// (the results of a for_each over sensitive keys) the mark guards their attribute names,
// while their strings are statuses and messages that must stay readable.
func ContextSecrets(ctx *hcl.EvalContext) []string {
	var out []string
	for c := ctx; c != nil; c = c.Parent() {
		for name, v := range c.Variables {
			if name != "task" {
				out = append(out, SensitiveStrings(v)...)
			}
		}
	}
	return out
}

// hiddenDetail replaces the detail of an error about a sensitive value.
const hiddenDetail = "(the value is sensitive and not shown)"

// redact hides secrets in diags, whose messages reach the terminal, the history and
// reports; see redactSecrets. ctx is where the expressions were evaluated.
func redact(diags hcl.Diagnostics, ctx *hcl.EvalContext) hcl.Diagnostics {
	if len(diags) == 0 {
		return diags
	}
	return redactSecrets(diags, ContextSecrets(ctx))
}

// redactSecrets hides secrets in the text of diags. An error about a value (a function
// that cannot parse its input, a duplicate key of a for expression, an argument outside a
// module's allowed values) may quote it, and a value computed from a secret
// (upper(var.token), a part that split cut off, a regular expression built from it) is
// no longer the secret's text: so a diagnostic about an expression that works on a
// sensitive value loses its detail, whatever the detail says. In every other diagnostic
// the sensitive strings (secrets) are replaced. Summaries name what is wrong, never a
// value, and keep their text.
func redactSecrets(diags hcl.Diagnostics, secrets []string) hcl.Diagnostics {
	if len(diags) == 0 {
		return diags
	}
	rep := modules.NewRedactor(secrets)
	out := make(hcl.Diagnostics, len(diags))
	for i, d := range diags {
		c := *d
		if aboutSensitive(d) {
			c.Detail = hiddenDetail
		}
		if rep != nil {
			c.Summary, c.Detail = rep.Redact(c.Summary), rep.Redact(c.Detail)
		}
		out[i] = &c
	}
	return out
}

// aboutSensitive reports whether d is about an expression that works on a sensitive value:
// its value is marked, or so is a value it refers to. A reference that cannot be followed
// to its end counts when the part that can be followed is marked itself: an object whose
// attribute names are secrets may be named in the error.
func aboutSensitive(d *hcl.Diagnostic) bool {
	if d.Expression == nil || d.EvalContext == nil {
		return false
	}
	for _, tr := range d.Expression.Variables() {
		v, diags := tr.TraverseAbs(d.EvalContext)
		if !diags.HasErrors() {
			if containsSensitive(v) {
				return true
			}
			continue
		}
		for n := len(tr) - 1; n > 0; n-- {
			if v, diags := tr[:n].TraverseAbs(d.EvalContext); !diags.HasErrors() {
				if v.HasMark(Sensitive) {
					return true
				}
				break
			}
		}
	}
	v, _ := d.Expression.Value(d.EvalContext)
	return containsSensitive(v)
}

// containsSensitive reports whether v or anything in it carries the Sensitive mark.
func containsSensitive(v cty.Value) bool {
	if v == cty.NilVal || !v.ContainsMarked() {
		return false
	}
	_, marks := v.UnmarkDeepWithPaths()
	for _, pm := range marks {
		if _, ok := pm.Marks[Sensitive]; ok {
			return true
		}
	}
	return false
}

// withArgExprs gives each diagnostic of a module's body that names no expression (a rule
// of the module: an allowed value, a pattern) the argument whose expression is its
// subject, evaluated in ctx, so that redactSecrets can tell whether it is about a
// sensitive value.
func withArgExprs(diags hcl.Diagnostics, body hcl.Body, ctx *hcl.EvalContext) hcl.Diagnostics {
	sb, ok := body.(*hclsyntax.Body)
	if !ok || !diags.HasErrors() {
		return diags
	}
	exprs := map[hcl.Range]hcl.Expression{}
	var collect func(b *hclsyntax.Body)
	collect = func(b *hclsyntax.Body) {
		for _, a := range b.Attributes {
			exprs[a.Expr.Range()] = a.Expr
		}
		for _, blk := range b.Blocks {
			collect(blk.Body)
		}
	}
	collect(sb)
	for _, d := range diags {
		if d.Expression != nil || d.Subject == nil {
			continue
		}
		if e, ok := exprs[*d.Subject]; ok {
			d.Expression, d.EvalContext = e, ctx
		}
	}
	return diags
}
