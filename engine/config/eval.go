package config

import (
	"fmt"
	"sort"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hcldec"
	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/convert"

	"github.com/runbook/runbook/modules"
)

// Scope is what per-host expressions see at one point of a run.
type Scope struct {
	Host   string
	Groups []string
	// Vars are the host's variables: inventory vars, with the play's vars merged over them.
	Vars cty.Value
	// Facts are the host's facts; cty.NilVal when none were gathered.
	Facts cty.Value
	// Tasks maps the names of tasks that already ran on the host to their results.
	Tasks map[string]cty.Value
	// Each is the current for_each element, when there is one.
	Each *Item
	// Self is the current attempt's result, for until.
	Self cty.Value
	// Instance is the runbook module instance whose task or block is evaluated (nil: the
	// root): var, local, task and module are then the instance's. Play is the play, whose
	// module calls the root's module.NAME reads.
	Instance *Instance
	Play     *Play
}

// Item is one element of a for_each collection. When the collection is sensitive, its
// marks are on Key and Value, and on everything computed from them.
type Item struct {
	Key   cty.Value
	Value cty.Value
}

// Hidden reports whether the item's key is marked, so that it must not be shown, not
// even as the item's label.
func (it Item) Hidden() bool { return it.Key.IsMarked() }

// EvalContext builds the context for evaluating expressions in s.
func (rb *Runbook) EvalContext(s Scope) *hcl.EvalContext {
	vals := rb
	if s.Instance != nil && s.Instance.rb != nil {
		vals = s.Instance.rb
	}
	ctx := &hcl.EvalContext{
		Variables: map[string]cty.Value{
			"var":   vals.varObject(),
			"local": vals.localObject(),
		},
		Functions: Functions(),
	}
	groups := make([]cty.Value, 0, len(s.Groups))
	for _, g := range s.Groups {
		groups = append(groups, cty.StringVal(g))
	}
	groupList := cty.ListValEmpty(cty.String)
	if len(groups) > 0 {
		groupList = cty.ListVal(groups)
	}
	vars := s.Vars
	if vars == cty.NilVal || vars.IsNull() {
		vars = cty.EmptyObjectVal
	}
	ctx.Variables["host"] = cty.ObjectVal(map[string]cty.Value{
		"name":   cty.StringVal(s.Host),
		"vars":   vars,
		"groups": groupList,
	})
	if s.Facts != cty.NilVal {
		ctx.Variables["facts"] = s.Facts
	} else {
		ctx.Variables["facts"] = cty.EmptyObjectVal
	}
	ctx.Variables["task"] = objectOrEmpty(instanceTasks(s.Tasks, s.Instance))
	children := []*Instance(nil)
	if s.Instance != nil {
		children = s.Instance.Children
	} else if s.Play != nil {
		children = s.Play.Instances
	}
	if len(children) > 0 {
		ctx.Variables["module"] = rb.moduleValues(children, s)
	}
	if s.Each != nil {
		ctx.Variables["each"] = cty.ObjectVal(map[string]cty.Value{"key": s.Each.Key, "value": s.Each.Value})
	}
	if s.Self != cty.NilVal {
		ctx.Variables["self"] = s.Self
	}
	return ctx
}

// instanceTasks is what task[...] holds in an instance: the results of its tasks, under
// their names in the module (the root sees every task under its qualified name).
func instanceTasks(results map[string]cty.Value, inst *Instance) map[string]cty.Value {
	if inst == nil {
		return results
	}
	prefix := inst.Name + "."
	out := map[string]cty.Value{}
	for n, v := range results {
		if local, ok := strings.CutPrefix(n, prefix); ok {
			out[local] = v
		}
	}
	return out
}

// HostVars merges the play's vars, evaluated for one host, over its inventory vars.
func (rb *Runbook) HostVars(p *Play, host string, groups []string, inventoryVars cty.Value) (cty.Value, hcl.Diagnostics) {
	return rb.HostVarsFacts(p, host, groups, inventoryVars, cty.NilVal)
}

// HostVarsFacts is HostVars for plays whose vars refer to the host's facts.
func (rb *Runbook) HostVarsFacts(p *Play, host string, groups []string, inventoryVars, facts cty.Value) (cty.Value, hcl.Diagnostics) {
	merged := map[string]cty.Value{}
	if inventoryVars != cty.NilVal && !inventoryVars.IsNull() && inventoryVars.CanIterateElements() {
		for it := inventoryVars.ElementIterator(); it.Next(); {
			k, v := it.Element()
			merged[k.AsString()] = inventoryValue(k.AsString(), v)
		}
	}
	if len(p.Vars) == 0 {
		return objectOrEmpty(merged), nil
	}
	// Play vars see the inventory's vars, not each other: the order they are written in
	// then does not matter.
	ctx := rb.EvalContext(Scope{Host: host, Groups: groups, Vars: objectOrEmpty(merged), Facts: facts})
	var diags hcl.Diagnostics
	for _, name := range p.VarsOrder {
		v, d := p.Vars[name].Value(ctx)
		diags = append(diags, d...)
		if !d.HasErrors() {
			merged[name] = v
		}
	}
	return objectOrEmpty(merged), redact(diags, ctx)
}

// WhenTrue evaluates a task's condition; a task without one always runs.
func (t *Task) WhenTrue(ctx *hcl.EvalContext) (bool, hcl.Diagnostics) {
	if t.When == nil {
		return true, nil
	}
	b, diags := evalBool(t.When, ctx, "when")
	return b, redact(diags, ctx)
}

// UntilTrue evaluates a task's until condition with self set.
func (t *Task) UntilTrue(ctx *hcl.EvalContext) (bool, hcl.Diagnostics) {
	if t.Until == nil {
		return true, nil
	}
	b, diags := evalBool(t.Until, ctx, "until")
	return b, redact(diags, ctx)
}

// Verdict applies changed_when and failed_when to a result; ctx must have self set. It
// returns whether each expression exists and its value.
func (t *Task) Verdict(ctx *hcl.EvalContext) (changed, hasChanged, failed, hasFailed bool, diags hcl.Diagnostics) {
	if t.ChangedWhen != nil {
		hasChanged = true
		var d hcl.Diagnostics
		changed, d = evalBool(t.ChangedWhen, ctx, "changed_when")
		diags = append(diags, d...)
	}
	if t.FailedWhen != nil {
		hasFailed = true
		var d hcl.Diagnostics
		failed, d = evalBool(t.FailedWhen, ctx, "failed_when")
		diags = append(diags, d...)
	}
	diags = redact(diags, ctx)
	return
}

func evalBool(expr hcl.Expression, ctx *hcl.EvalContext, name string) (bool, hcl.Diagnostics) {
	v, diags := expr.Value(ctx)
	if diags.HasErrors() {
		return false, diags
	}
	v, _ = v.UnmarkDeep()
	b, err := convert.Convert(v, cty.Bool)
	if err != nil || b.IsNull() || !b.IsKnown() {
		return false, hcl.Diagnostics{{
			Severity: hcl.DiagError,
			Summary:  "Invalid " + name,
			Detail:   fmt.Sprintf("%s must be true or false for this host, not %s.", name, friendly(v.Type())) + jsonHint(expr, v),
			Subject:  expr.Range().Ptr(),
		}}
	}
	return b.True(), nil
}

// Items evaluates a task's for_each for one host: its elements in a stable order (list
// order; map and set elements sorted by key). A task without for_each has no items. A
// sensitive collection is iterated without its marks, which go onto every key and value.
func (t *Task) Items(ctx *hcl.EvalContext) ([]Item, hcl.Diagnostics) {
	return forEachItems(t.ForEach, ctx)
}

func forEachItems(expr hcl.Expression, ctx *hcl.EvalContext) ([]Item, hcl.Diagnostics) {
	if expr == nil {
		return nil, nil
	}
	v, diags := expr.Value(ctx)
	if diags.HasErrors() {
		return nil, redact(diags, ctx)
	}
	bad := func(msg string) hcl.Diagnostics {
		return hcl.Diagnostics{{Severity: hcl.DiagError, Summary: "Invalid for_each", Detail: msg, Subject: expr.Range().Ptr()}}
	}
	if v.IsNull() || !v.IsWhollyKnown() {
		return nil, bad("for_each must be a known list, set or map for this host.")
	}
	v, marks := v.Unmark()
	ty := v.Type()
	var items []Item
	add := func(k, e cty.Value) {
		items = append(items, Item{Key: k.WithMarks(marks), Value: e.WithMarks(marks)})
	}
	switch {
	case ty.IsListType() || ty.IsTupleType():
		i := 0
		for it := v.ElementIterator(); it.Next(); i++ {
			_, e := it.Element()
			add(cty.NumberIntVal(int64(i)), e)
		}
	case ty.IsSetType():
		for it := v.ElementIterator(); it.Next(); {
			_, e := it.Element()
			add(e, e)
		}
	case ty.IsMapType() || ty.IsObjectType():
		for it := v.ElementIterator(); it.Next(); {
			k, e := it.Element()
			add(k, e)
		}
	default:
		return nil, bad(fmt.Sprintf("for_each needs a list, set or map, not %s.", friendly(ty)))
	}
	sort.SliceStable(items, func(i, j int) bool {
		a, _ := items[i].Key.Unmark()
		b, _ := items[j].Key.Unmark()
		if a.Type() == cty.String && b.Type() == cty.String {
			return a.AsString() < b.AsString()
		}
		return false
	})
	return items, nil
}

// Args decodes the task's module arguments for one host.
func (t *Task) Args(ctx *hcl.EvalContext) (modules.Module, cty.Value, hcl.Diagnostics) {
	m, ok := modules.Lookup(t.Module)
	if !ok {
		return nil, cty.NilVal, hcl.Diagnostics{{Severity: hcl.DiagError, Summary: "Unknown module", Detail: t.Module, Subject: t.ModuleRange.Ptr()}}
	}
	v, diags := t.args.decode(m, t.Body, ctx, t.ModuleRange)
	diags = redact(withArgExprs(diags, t.Body, ctx), ctx)
	if !diags.HasErrors() && !v.IsWhollyKnown() {
		detail := "An argument depends on a value that is not known for this host (for example a result of a task that only checked)."
		for _, tr := range hcldec.Variables(t.Body, moduleSpec(m.Info().Schema)) {
			if tr.RootName() == "module" {
				// an output is unknown when it cannot be evaluated on the host
				detail = "An argument depends on a value that is not known for this host: a result of a task that only checked, or a module output that could not be evaluated here (its tasks did not run on this host, were skipped, or its value fails on their results)."
				break
			}
		}
		diags = append(diags, &hcl.Diagnostic{
			Severity: hcl.DiagError,
			Summary:  "Unknown module argument",
			Detail:   detail,
			Subject:  t.ModuleRange.Ptr(),
		})
	}
	return m, v, diags
}

// jsonHint explains, for an expression of a file in JSON syntax that gave a string where
// another type was wanted, that JSON writes an expression in a string as an interpolation:
// "host.vars.x == 1" is that text, "${host.vars.x == 1}" is the comparison.
func jsonHint(expr hcl.Expression, v cty.Value) string {
	if !IsJSONFile(expr.Range().Filename) || v.Type() != cty.String || !v.IsKnown() || v.IsNull() || len(expr.Variables()) > 0 {
		return ""
	}
	return fmt.Sprintf(" In JSON syntax a string is text; an expression is written in ${ }, e.g. %q.", "${"+v.AsString()+"}")
}

// TaskRefs lists the tasks whose results t's when, for_each and module arguments read
// (task["name"]); dynamic is set when one is read by a name that is not written out, or
// when they read module outputs (which may read any task), so that any task may be read.
// The names are the task's own: the caller does not change them.
func (t *Task) TaskRefs() (names []string, dynamic bool) {
	if t.refs == nil {
		return t.taskRefs()
	}
	t.refs.once.Do(func() { t.refs.names, t.refs.dynamic = t.taskRefs() })
	return t.refs.names, t.refs.dynamic
}

func (t *Task) taskRefs() (names []string, dynamic bool) {
	var trs []hcl.Traversal
	for _, e := range []hcl.Expression{t.When, t.ForEach} {
		if e != nil {
			trs = append(trs, e.Variables()...)
		}
	}
	if m, ok := modules.Lookup(t.Module); ok && t.Body != nil {
		trs = append(trs, hcldec.Variables(t.Body, moduleSpec(m.Info().Schema))...)
	}
	for _, tr := range trs {
		switch tr.RootName() {
		case "module":
			dynamic = true
		case "task":
			if len(tr) < 2 || attrName(tr[1]) == "" {
				dynamic = true
				continue
			}
			names = append(names, attrName(tr[1]))
		}
	}
	return names, dynamic
}

// ConstantChangedWhen reports whether t's changed_when, if any, reads nothing (such as
// changed_when = false): its value is the same for every result, and it cannot fail.
func (t *Task) ConstantChangedWhen() bool {
	if t.ChangedWhen == nil {
		return true
	}
	if len(t.ChangedWhen.Variables()) > 0 {
		return false
	}
	_, diags := evalBool(t.ChangedWhen, &hcl.EvalContext{Functions: Functions()}, "changed_when")
	return !diags.HasErrors()
}
