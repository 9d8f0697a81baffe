package config

import (
	"fmt"
	"sort"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hcldec"
	"github.com/zclconf/go-cty/cty"

	"github.com/runbook/runbook/inventory"
	"github.com/runbook/runbook/modules"
)

type mark string

// Sensitive marks values that must never be shown: sensitive variables and values derived
// from them carry it through every expression.
const Sensitive = mark("sensitive")

// Roots every expression may use, and what each one is.
var rootDocs = map[string]string{
	"var":    "the input variables",
	"local":  "the local values",
	"host":   "the current host (host.name, host.vars, host.groups)",
	"facts":  "the facts gathered from the current host",
	"task":   "the results of earlier tasks (task[\"name\"])",
	"each":   "the current for_each element (each.key, each.value)",
	"module": "the outputs of the runbook modules called here (module.NAME.OUTPUT)",
	"self":   "the result of this task's current attempt (in until, changed_when and failed_when)",
}

// scope says which roots an expression may use.
type scope struct {
	host  bool            // host and facts
	tasks map[string]bool // task names visible through task[...]; nil: task is not allowed
	each  bool
	self  bool
	// where names the kind of expression, for messages ("when", "play vars").
	where string
}

func attrName(t hcl.Traverser) string {
	switch s := t.(type) {
	case hcl.TraverseAttr:
		return s.Name
	case hcl.TraverseIndex:
		if s.Key.Type() == cty.String && s.Key.IsKnown() && !s.Key.IsNull() {
			return s.Key.AsString()
		}
	}
	return ""
}

// checkRefs reports references that cannot resolve in sc, each at its own range; it
// returns false when it found one.
func (d *decoder) checkRefs(expr hcl.Expression, sc scope) bool {
	return d.checkTraversals(expr.Variables(), sc)
}

func (d *decoder) checkTraversals(trs []hcl.Traversal, sc scope) bool {
	ok := true
	for _, tr := range trs {
		if !d.checkTraversal(tr, sc) {
			ok = false
		}
	}
	return ok
}

func (d *decoder) checkTraversal(tr hcl.Traversal, sc scope) bool {
	root := tr.RootName()
	rng := tr.SourceRange()
	allowed := map[string]bool{"var": true, "local": true, "host": sc.host, "facts": sc.host,
		"task": sc.tasks != nil, "each": sc.each, "self": sc.self, "module": sc.tasks != nil && len(d.calls) > 0}
	if !allowed[root] {
		if _, known := rootDocs[root]; known {
			where := sc.where
			if where == "" {
				where = "this argument"
			}
			d.errorf(rng.Ptr(), "Invalid reference", "%s cannot be used in %s: it is %s.%s", root, where, rootDocs[root], rootHint(root))
			return false
		}
		var names []string
		for n, ok := range allowed {
			if ok {
				names = append(names, n)
			}
		}
		sort.Strings(names)
		detail := fmt.Sprintf("There is no variable named %q. Expressions can use: %s.", root, strings.Join(names, ", "))
		if s := modules.Suggest(root, names); s != "" {
			detail = fmt.Sprintf("There is no variable named %q. Did you mean %q?", root, s)
		}
		d.errorf(rng.Ptr(), "Unknown variable", "%s", detail)
		return false
	}
	if root == "facts" {
		d.factsUsed = true
	}
	if root == "module" {
		return d.checkModuleRef(tr)
	}
	if len(tr) < 2 {
		switch root {
		case "var", "local", "task", "each":
			d.errorf(rng.Ptr(), "Invalid reference", "%s must be followed by a name, e.g. %s.example.", root, root)
			return false
		}
		return true
	}
	name := attrName(tr[1])
	switch root {
	case "var":
		if name == "" {
			return true
		}
		if d.rb.Variable(name) == nil {
			d.errorf(tr[:2].SourceRange().Ptr(), "Reference to undeclared input variable",
				"No variable named %q is declared; add a variable %q block.%s", name, name, suggestVar(d.rb, name))
			return false
		}
	case "local":
		if name == "" {
			return true
		}
		if _, ok := d.localsSeen[name]; !ok {
			detail := fmt.Sprintf("No local value named %q is declared in a locals block.", name)
			if s := modules.Suggest(name, sortedKeys(d.localsSeen)); s != "" {
				detail += fmt.Sprintf(" Did you mean %q?", s)
			}
			d.errorf(tr[:2].SourceRange().Ptr(), "Reference to undeclared local value", "%s", detail)
			return false
		}
	case "each":
		if name != "key" && name != "value" {
			d.errorf(tr[:2].SourceRange().Ptr(), "Invalid reference", "each has only each.key and each.value.")
			return false
		}
	case "task":
		if name == "" {
			return true
		}
		if !sc.tasks[name] {
			d.taskRefError(tr[:2].SourceRange(), name, sc)
			return false
		}
	case "host":
		switch name {
		case "name", "vars", "groups", "":
		default:
			d.errorf(tr[:2].SourceRange().Ptr(), "Invalid reference", "host has name, vars and groups; inventory variables are under host.vars, e.g. host.vars.%s.", name)
			return false
		}
	}
	return true
}

func rootHint(root string) string {
	switch root {
	case "each":
		return " each exists only where there is a for_each: in a task with for_each, in a block with for_each (its tasks, and the when and for_each of blocks inside it), and in a module call with for_each (its vars and when)."
	case "self":
		return " self exists only in until."
	case "host", "facts":
		return " Values that differ per host belong in tasks, play vars or when."
	}
	return ""
}

// taskRefError explains why a task reference does not resolve: no such task, or one that does
// not run before this expression.
func (d *decoder) taskRefError(rng hcl.Range, name string, sc scope) {
	if d.curPlay != nil && d.curPlay.Task(name) != nil {
		d.errorf(rng.Ptr(), "Reference to a task that has not run yet",
			"task %q does not run before this point, so its result is not available here. Move it earlier or add it to depends_on.", name)
		return
	}
	var names []string
	if d.curPlay != nil {
		for _, t := range d.curPlay.Tasks {
			names = append(names, t.Name)
		}
	}
	detail := fmt.Sprintf("This %s has no task named %q.", d.unit(), name)
	if d.inst != nil {
		detail += " A module sees the results of its own tasks only (those of a module it calls as \"CALL.TASK\"); values from its caller come in through its variables."
	}
	if s := modules.Suggest(name, names); s != "" {
		detail += fmt.Sprintf(" Did you mean %q?", s)
	}
	d.errorf(rng.Ptr(), "Reference to undeclared task", "%s", detail)
}

// unit says what the tasks being checked belong to, for messages: a play or a module.
func (d *decoder) unit() string {
	if d.inst != nil {
		return "module"
	}
	return "play"
}

// checkPlay checks everything that relates tasks to each other and decodes every module body
// with placeholder host values.
func (d *decoder) checkPlay(p *Play) {
	d.curPlay = p
	d.calls = p.Instances
	defer func() { d.curPlay = nil }()

	for _, t := range p.Tasks {
		if t.Instance != d.inst {
			continue // checked where its module was decoded
		}
		for _, r := range t.DependsOn {
			dep := p.Task(r.Name)
			switch {
			case r.Name == t.Name:
				d.errorf(r.Range.Ptr(), "Invalid dependency", "task %q cannot depend on itself.", t.Name)
			case dep != nil && (dep.Block != t.Block || dep.Section != t.Section):
				d.errorf(r.Range.Ptr(), "Invalid dependency",
					"task %q is not in the same block as %q; depends_on orders tasks within one block (or at the play's top level), since a block runs as a whole.", r.Name, t.Name)
			case p.Task(r.Name) == nil:
				detail := fmt.Sprintf("depends_on names %q, but this %s has no task of that name.", r.Name, d.unit())
				if p.Handler(r.Name) != nil {
					detail = fmt.Sprintf("%q is a handler; handlers run when notified, so tasks cannot depend on them.", r.Name)
				} else if s := modules.Suggest(r.Name, taskNames(p.Tasks)); s != "" {
					detail += fmt.Sprintf(" Did you mean %q?", s)
				}
				d.errorf(r.Range.Ptr(), "Reference to undeclared task", "%s", detail)
			}
		}
	}
	for _, t := range append(append([]*Task{}, p.Tasks...), p.Handlers...) {
		if t.Instance != d.inst {
			continue
		}
		for _, r := range t.Notify {
			if p.Handler(r.Name) != nil {
				continue
			}
			detail := fmt.Sprintf("notify names %q, but this %s has no handler of that name.", r.Name, d.unit())
			if p.Task(r.Name) != nil {
				detail = fmt.Sprintf("%q is a task; notify names handlers (handler blocks).", r.Name)
			} else if s := modules.Suggest(r.Name, taskNames(p.Handlers)); s != "" {
				detail += fmt.Sprintf(" Did you mean %q?", s)
			}
			d.errorf(r.Range.Ptr(), "Reference to undeclared handler", "%s", detail)
		}
	}

	order, ok := d.order(p)
	if !ok {
		// With a cycle there is no order to check task references against; every task
		// may see every other, which still catches names that do not exist.
		order = p.Tasks
	}
	pos := map[string]int{}
	for i, t := range order {
		pos[t.Name] = i
	}

	hostCtx := scope{host: true, where: "play vars"}
	d.factsUsed = false
	for _, name := range p.VarsOrder {
		d.checkRefs(p.Vars[name], hostCtx)
	}
	p.VarsUseFacts = d.factsUsed

	check := func(t *Task, visible map[string]bool) {
		d.factsUsed = false
		defer func() { t.UsesFacts = d.factsUsed }()
		sc := scope{host: true, tasks: visible, each: t.InEach()}
		if t.ForEach != nil {
			sc.where = "for_each"
			d.checkPlaceholder(t.ForEach, sc, "for_each", func(v cty.Value) string {
				if v.IsNull() {
					return "for_each cannot be null."
				}
				ty := v.Type()
				if ty.IsListType() || ty.IsSetType() || ty.IsTupleType() || ty.IsMapType() || ty.IsObjectType() {
					return ""
				}
				return fmt.Sprintf("for_each needs a list, set or map, not %s.", friendly(ty)) + jsonHint(t.ForEach, v)
			})
			sc.each = true
		}
		if t.When != nil {
			sc.where = "when"
			d.checkPlaceholder(t.When, sc, "when", func(v cty.Value) string {
				if v.Type() != cty.Bool {
					return fmt.Sprintf("when must be true or false, not %s.", friendly(v.Type())) + jsonHint(t.When, v)
				}
				return ""
			})
		}
		for name, e := range map[string]hcl.Expression{"until": t.Until, "changed_when": t.ChangedWhen, "failed_when": t.FailedWhen} {
			if e != nil {
				us := sc
				us.self, us.where = true, name
				d.checkRefs(e, us)
			}
		}
		if t.Body == nil {
			return
		}
		m, _ := modules.Lookup(t.Module)
		sc.where = "module arguments"
		if !d.checkTraversals(hcldec.Variables(t.Body, moduleSpec(m.Info().Schema)), sc) {
			return
		}
		ctx := d.placeholderCtx(sc)
		_, diags := decodeModule(m, t.Body, ctx, t.ModuleRange)
		d.add(withArgExprs(diags, t.Body, ctx)...)
	}
	visibleAt := func(at int, self string) map[string]bool {
		visible := map[string]bool{}
		for name, i := range pos {
			if i < at || !ok {
				visible[name] = name != self
			}
		}
		return visible
	}
	blockChecked := map[*Block]bool{}
	for i, t := range order {
		// A block's when and for_each are checked where its first task comes, seeing the
		// tasks before it.
		var opened []*Block
		for b := t.Block; b != nil && !blockChecked[b]; b = b.Parent {
			blockChecked[b] = true
			opened = append(opened, b)
		}
		for j := len(opened) - 1; j >= 0; j-- {
			if b := opened[j]; b.Instance == d.inst {
				d.checkBlock(b, visibleAt(i, ""))
			}
		}
		if t.Instance != d.inst {
			continue
		}
		check(t, visibleAt(pos[t.Name], t.Name))
	}
	all := map[string]bool{}
	for _, t := range p.Tasks {
		all[t.Name] = true
	}
	for _, h := range p.Handlers {
		if h.Instance == d.inst {
			check(h, all)
		}
	}
	p.order = order
}

// checkBlock checks a block's when and for_each, or a module call's when.
func (d *decoder) checkBlock(b *Block, visible map[string]bool) {
	outer := false
	for p := b.Parent; p != nil && p.Module == nil; p = p.Parent {
		outer = outer || p.ForEach != nil
	}
	sc := scope{host: true, tasks: visible, each: outer || b.Each != nil}
	d.factsUsed = false
	if b.ForEach != nil {
		sc.where = "a block's for_each"
		d.checkPlaceholder(b.ForEach, sc, "for_each", func(v cty.Value) string {
			if v.IsNull() {
				return "for_each cannot be null."
			}
			ty := v.Type()
			if ty.IsListType() || ty.IsSetType() || ty.IsTupleType() || ty.IsMapType() || ty.IsObjectType() {
				return ""
			}
			return fmt.Sprintf("for_each needs a list, set or map, not %s.", friendly(ty)) + jsonHint(b.ForEach, v)
		})
	}
	if b.When != nil {
		sc.where = "a " + b.Kind() + "'s when"
		if b.ForEach != nil && !sc.each {
			sc.where += " (evaluated once, before the block's for_each)"
		}
		d.checkPlaceholder(b.When, sc, "when", func(v cty.Value) string {
			if v.Type() != cty.Bool {
				return fmt.Sprintf("when must be true or false, not %s.", friendly(v.Type())) + jsonHint(b.When, v)
			}
			return ""
		})
	}
	b.UsesFacts = d.factsUsed
}

// checkPlaceholder evaluates expr with placeholder values and applies a type rule when the
// result is known without any host (e.g. a literal when = "yes").
func (d *decoder) checkPlaceholder(expr hcl.Expression, sc scope, name string, rule func(cty.Value) string) {
	if !d.checkRefs(expr, sc) {
		return
	}
	v, diags := expr.Value(d.placeholderCtx(sc))
	if diags.HasErrors() {
		d.add(diags...)
		return
	}
	v, _ = v.Unmark()
	if v.IsKnown() && v.IsNull() {
		// a literal null has no type, but is wrong for every host
		d.errorf(expr.Range().Ptr(), "Invalid "+name, "%s cannot be null.", name)
		return
	}
	if v.Type() == cty.DynamicPseudoType {
		return
	}
	if msg := rule(v); msg != "" {
		d.errorf(expr.Range().Ptr(), "Invalid "+name, "%s", msg)
	}
}

// placeholderCtx is an evaluation context with every per-host value unknown: decoding with it
// finds the problems that hold for all hosts.
func (d *decoder) placeholderCtx(sc scope) *hcl.EvalContext {
	ctx := d.globalCtx(d.rb.localValues)
	if sc.host {
		ctx.Variables["host"] = cty.ObjectVal(map[string]cty.Value{
			"name":   cty.UnknownVal(cty.String),
			"vars":   cty.DynamicVal,
			"groups": cty.UnknownVal(cty.List(cty.String)),
		})
		ctx.Variables["facts"] = cty.DynamicVal
	}
	if sc.tasks != nil {
		tasks := map[string]cty.Value{}
		for n, ok := range sc.tasks {
			if ok {
				tasks[n] = cty.DynamicVal
			}
		}
		ctx.Variables["task"] = objectOrEmpty(tasks)
		if len(d.calls) > 0 {
			ctx.Variables["module"] = cty.DynamicVal
		}
	}
	if sc.each {
		ctx.Variables["each"] = cty.ObjectVal(map[string]cty.Value{"key": cty.DynamicVal, "value": cty.DynamicVal})
	}
	if sc.self {
		ctx.Variables["self"] = cty.DynamicVal
	}
	return ctx
}

func taskNames(ts []*Task) []string {
	out := make([]string, len(ts))
	for i, t := range ts {
		out[i] = t.Name
	}
	return out
}

// order sorts a play's tasks for execution: file order, except that a task runs after every
// task it depends on. It reports each dependency cycle once.
func (d *decoder) order(p *Play) ([]*Task, bool) {
	state := map[string]int{}
	var out []*Task
	ok := true
	var visit func(t *Task, path []string) bool
	visit = func(t *Task, path []string) bool {
		switch state[t.Name] {
		case 1:
			return false
		case 2:
			return true
		}
		state[t.Name] = 1
		for _, r := range t.DependsOn {
			dep := p.Task(r.Name)
			if dep == nil || dep == t {
				continue
			}
			if state[dep.Name] == 1 {
				cycle := append(append([]string{}, path...), t.Name, dep.Name)
				start := 0
				for i, n := range cycle {
					if n == dep.Name {
						start = i
						break
					}
				}
				d.errorf(r.Range.Ptr(), "Dependency cycle",
					"These tasks depend on each other in a circle: %s.", quoteJoin(cycle[start:], " → "))
				ok = false
				continue
			}
			if !visit(dep, append(path, t.Name)) {
				ok = false
			}
		}
		state[t.Name] = 2
		out = append(out, t)
		return true
	}
	for _, t := range p.Tasks {
		if state[t.Name] == 0 {
			visit(t, nil)
		}
	}
	return out, ok
}

func quoteJoin(ss []string, sep string) string {
	q := make([]string, len(ss))
	for i, s := range ss {
		q[i] = fmt.Sprintf("%q", s)
	}
	return strings.Join(q, sep)
}

// ValidatePattern checks a host pattern's syntax; which hosts it matches depends on the
// inventory.
func ValidatePattern(pattern string) error {
	return inventory.ValidatePattern(pattern)
}
