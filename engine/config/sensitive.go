package config

import (
	"github.com/hashicorp/hcl/v2"
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
	_ = cty.Walk(v, func(_ cty.Path, x cty.Value) (bool, error) {
		if !x.HasMark(Sensitive) {
			return true, nil
		}
		_ = cty.Walk(x, func(p cty.Path, y cty.Value) (bool, error) {
			if len(p) > 0 {
				if step, ok := p[len(p)-1].(cty.IndexStep); ok {
					if k, _ := step.Key.Unmark(); k.IsKnown() && !k.IsNull() && k.Type() == cty.String {
						out = append(out, k.AsString())
					}
				}
			}
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

// inventoryValue is an inventory variable's value as host.vars holds it: marked Sensitive
// when it is a password (inventory.SecretVar: ansible_password, ansible_become_pass, ...),
// so that it is hidden like a sensitive variable wherever it could show.
func inventoryValue(name string, v cty.Value) cty.Value {
	if inventory.SecretVar(name) {
		return v.Mark(Sensitive)
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

// sensitiveNames returns the attribute names of the objects inside marked values in v. An
// object whose names are data (a variable without a type whose default is `{ "KEY" = ...
// }`) may have an error quote one, so diagnostics hide them too; results do not (see
// SensitiveStrings).
func sensitiveNames(v cty.Value) []string {
	var out []string
	_ = cty.Walk(v, func(_ cty.Path, x cty.Value) (bool, error) {
		if !x.HasMark(Sensitive) {
			return true, nil
		}
		_ = cty.Walk(x, func(p cty.Path, _ cty.Value) (bool, error) {
			if len(p) > 0 {
				if step, ok := p[len(p)-1].(cty.GetAttrStep); ok {
					out = append(out, step.Name)
				}
			}
			return true, nil
		})
		return false, nil
	})
	return out
}

// redact hides every sensitive string of ctx, and the attribute names of sensitive objects,
// in the text of diags. An error about a value (a duplicate key of a for expression, an
// argument that is not one of the allowed values, a function that cannot parse its input)
// may quote it, and these messages reach the terminal, the history and reports.
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

func redactSecrets(diags hcl.Diagnostics, secrets []string) hcl.Diagnostics {
	rep := modules.NewRedactor(secrets)
	if rep == nil {
		return diags
	}
	out := make(hcl.Diagnostics, len(diags))
	for i, d := range diags {
		c := *d
		c.Summary, c.Detail = rep.Redact(d.Summary), rep.Redact(d.Detail)
		out[i] = &c
	}
	return out
}
