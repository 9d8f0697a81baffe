package config

import (
	"slices"
	"sort"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"

	"github.com/runbook/runbook/inventory"
	"github.com/runbook/runbook/modules"
)

// SensitiveStrings returns every string in v that carries the Sensitive mark, itself or
// through a collection that holds it: the strings, and the keys of maps inside a marked
// value. A key is data as much as a value is, and an error about it quotes it:
// `keys(var.tokens)` passed to tonumber. An object's attribute names are its shape (user,
// host, password) and are left to sensitiveNames: hiding such words in every result in
// scope would hide half of each message.
func SensitiveStrings(v cty.Value) []string {
	var out []string
	walkSensitive(v, func(last cty.PathStep, y cty.Value) {
		if step, ok := last.(cty.IndexStep); ok {
			if k, _ := step.Key.Unmark(); k.IsKnown() && !k.IsNull() && k.Type() == cty.String {
				out = append(out, k.AsString())
			}
		}
		y, _ = y.Unmark()
		if y.IsKnown() && !y.IsNull() && y.Type() == cty.String {
			out = append(out, y.AsString())
		}
	})
	return out
}

// SplitSensitive separates a task's module arguments (an object) into plain values and the
// names of the arguments that hold a marked value anywhere inside them: the names the
// helper is told never to show. It is computed once per attempt; what travels on from here
// carries no marks.
func SplitSensitive(args cty.Value) (cty.Value, []string) {
	plain, pvm := args.UnmarkDeepWithPaths()
	if len(pvm) == 0 {
		return plain, nil
	}
	names := map[string]bool{}
	for _, pm := range pvm {
		if len(pm.Path) == 0 {
			// The whole object is marked: every argument is sensitive.
			if plain.Type().IsObjectType() {
				for n := range plain.Type().AttributeTypes() {
					names[n] = true
				}
			}
			continue
		}
		switch s := pm.Path[0].(type) {
		case cty.GetAttrStep:
			names[s.Name] = true
		case cty.IndexStep:
			if s.Key.Type() == cty.String {
				names[s.Key.AsString()] = true
			}
		}
	}
	out := make([]string, 0, len(names))
	for n := range names {
		out = append(out, n)
	}
	sort.Strings(out)
	return plain, out
}

// walkSensitive calls fn for every value inside (and including) each marked value in v,
// with the last step of its path there (nil for the marked value itself).
func walkSensitive(v cty.Value, fn func(last cty.PathStep, y cty.Value)) {
	_ = cty.Walk(v, func(_ cty.Path, x cty.Value) (bool, error) {
		if !x.HasMark(Sensitive) {
			return true, nil
		}
		_ = cty.Walk(x, func(p cty.Path, y cty.Value) (bool, error) {
			var last cty.PathStep
			if len(p) > 0 {
				last = p[len(p)-1]
			}
			fn(last, y)
			return true, nil
		})
		return false, nil
	})
}

// InventoryVars is a host's inventory variables (an object, as inventory.CtyValue makes
// them) as host.vars holds them: every value that is a secret (inventorySecret), at any
// depth, is marked Sensitive, so that it is hidden like a sensitive variable wherever it
// could show. It is the rule `runbook inventory` redacts by (inventory.Redact).
func InventoryVars(vars cty.Value) cty.Value {
	if vars == cty.NilVal || vars.IsNull() || !vars.IsKnown() || !vars.CanIterateElements() {
		return vars
	}
	return markInventorySecrets(vars, 0)
}

// inventoryValue is an inventory variable's value, named name, as host.vars holds it.
func inventoryValue(name string, v cty.Value) cty.Value {
	if inventorySecret(name, v) {
		return v.Mark(Sensitive)
	}
	return markInventorySecrets(v, 0)
}

// inventorySecret says whether the inventory value v, found under the key name ("" for a
// list's element), is a secret, by the rules `runbook inventory` hides values by
// (inventory.Secret): the key is named like one (ansible_password, mysql.root_password, ...)
// and v is not a boolean, or v is a string that holds a private key, whatever its name. A
// null is nothing to hide.
func inventorySecret(name string, v cty.Value) bool {
	if v.IsNull() || !v.IsKnown() {
		return false
	}
	if v.Type() == cty.String {
		if inventory.SecretValue(v.AsString()) {
			return true
		}
	}
	return name != "" && v.Type() != cty.Bool && inventory.SecretVar(name)
}

// markInventorySecrets marks the secrets inside v, a value from the inventory: the elements
// of its mappings and lists, at any depth (bounded as inventory.CtyValue bounds it).
func markInventorySecrets(v cty.Value, depth int) cty.Value {
	if depth > 1000 || !v.IsKnown() || v.IsNull() || v.IsMarked() {
		return v
	}
	ty := v.Type()
	switch {
	case ty.IsObjectType():
		attrs := make(map[string]cty.Value, len(ty.AttributeTypes()))
		for name := range ty.AttributeTypes() {
			e := v.GetAttr(name)
			if inventorySecret(name, e) {
				attrs[name] = e.Mark(Sensitive)
			} else {
				attrs[name] = markInventorySecrets(e, depth+1)
			}
		}
		return cty.ObjectVal(attrs)
	case ty.IsMapType() && v.LengthInt() > 0:
		m := make(map[string]cty.Value, v.LengthInt())
		for it := v.ElementIterator(); it.Next(); {
			k, e := it.Element()
			if inventorySecret(k.AsString(), e) {
				m[k.AsString()] = e.Mark(Sensitive)
			} else {
				m[k.AsString()] = markInventorySecrets(e, depth+1)
			}
		}
		return cty.MapVal(m)
	case (ty.IsTupleType() || ty.IsListType()) && v.LengthInt() > 0:
		l := make([]cty.Value, 0, v.LengthInt())
		for it := v.ElementIterator(); it.Next(); {
			_, e := it.Element()
			if inventorySecret("", e) {
				e = e.Mark(Sensitive)
			} else {
				e = markInventorySecrets(e, depth+1)
			}
			l = append(l, e)
		}
		if ty.IsListType() {
			return cty.ListVal(l)
		}
		return cty.TupleVal(l)
	}
	return v
}

// ContextSecrets returns the sensitive strings that the values of ctx (and its parents)
// hold: what an expression evaluated in ctx could reveal. The results of earlier tasks
// are left out: their text was redacted before it was recorded, and where they are marked
// (the results of a for_each over sensitive keys) the mark guards their attribute names,
// the keys, which the sensitive values they came from give anyway, while the names and
// strings inside are statuses and messages ("changed", "stdout") that must stay readable.
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

// ScopeSecrets is ContextSecrets(ctx) for ctx = rb.EvalContext(s), worked out with less
// walking, as every task on every host asks for it: var's and local's secrets were worked
// out when their values were set, and the facts, the host's own answer (never marked, as
// the engine keeps them), hold none.
func (rb *Runbook) ScopeSecrets(s Scope, ctx *hcl.EvalContext) []string {
	vals := rb
	if s.Instance != nil && s.Instance.rb != nil {
		vals = s.Instance.rb
	}
	if ctx.Parent() != nil || vals.varObj == cty.NilVal || vals.localObj == cty.NilVal || s.Facts.IsMarked() {
		return ContextSecrets(ctx)
	}
	out := slices.Concat(vals.varSecrets, vals.localSecrets)
	for name, v := range ctx.Variables {
		switch name {
		case "task", "var", "local", "facts":
		default:
			out = append(out, SensitiveStrings(v)...)
		}
	}
	return out
}

// sensitiveNames returns the attribute names of the objects inside marked values in v. An
// object whose names are data (a variable without a type whose default is `{ "KEY" = ...
// }`) may have an error quote one, so diagnostics hide them too; results do not (see
// SensitiveStrings).
func sensitiveNames(v cty.Value) []string {
	var out []string
	walkSensitive(v, func(last cty.PathStep, _ cty.Value) {
		if step, ok := last.(cty.GetAttrStep); ok {
			out = append(out, step.Name)
		}
	})
	return out
}

// hiddenDetail replaces the detail of an error about a sensitive value.
const hiddenDetail = "(the value is sensitive and not shown)"

// redact hides secrets in diags, whose messages reach the terminal, the history and
// reports; see redactSecrets. ctx is where the expressions were evaluated. Its secrets are
// the sensitive strings in scope and the attribute names of sensitive objects.
func redact(diags hcl.Diagnostics, ctx *hcl.EvalContext) hcl.Diagnostics {
	if len(diags) == 0 {
		return diags
	}
	secrets := ContextSecrets(ctx)
	for c := ctx; c != nil; c = c.Parent() {
		for name, v := range c.Variables {
			if name != "task" {
				secrets = append(secrets, sensitiveNames(v)...)
			}
		}
	}
	return redactSecrets(diags, secrets)
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
	if !diags.HasErrors() {
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
	if sb, ok := body.(*hclsyntax.Body); ok {
		collect(sb)
	} else {
		// JSON syntax: a module body holds only arguments, so every property is one.
		attrs, _ := body.JustAttributes()
		for _, a := range attrs {
			exprs[a.Expr.Range()] = a.Expr
		}
	}
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
