package config

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclparse"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"

	"github.com/runbook/runbook/modules"
)

// A runbook module is a directory of runbook files holding variable, locals and output
// blocks, tasks, handlers, blocks and calls of other modules (no plays). A play (or a
// block, or another module) calls it with a module block:
//
//	module "hypervisor" {
//	  source = "../modules/bigip-hypervisor" // relative to the calling file; nothing is fetched
//	  vars   = { mtu = 9100 }
//	  when   = host.vars.role == "hv"
//	}
//
// Each call (and each element of a call's for_each) is an Instance, decoded with its own
// variable values: its tasks are spliced into the play where the call is, as the tasks of
// a Block, named "hypervisor.bond".

// Instance is one instance of a runbook module.
type Instance struct {
	// Name is qualified like its tasks' prefix: "hypervisor", `site["east"]`,
	// "hypervisor.nics".
	Name string
	// Call is the call's name; Key the for_each element's key (cty.NilVal without one).
	Call string
	Key  cty.Value
	// Dir is the module's directory: copy and template sources are relative to it.
	Dir    string
	Parent *Instance
	// Children are the instances this one calls, in order.
	Children  []*Instance
	Outputs   []*Output
	CallRange hcl.Range
	// None marks the stand-in of a call whose for_each has no elements: it has no tasks,
	// and module.NAME is an empty object.
	None bool

	// rb holds the instance's variables and locals, with their values; abs is Dir's
	// absolute path.
	rb  *Runbook
	abs string
}

// Output is a value a runbook module gives its caller: module.NAME.OUTPUT, evaluated per
// host where it is read.
type Output struct {
	Name      string
	Expr      hcl.Expression
	Sensitive bool
	DeclRange hcl.Range
}

var moduleFileSchema = &hcl.BodySchema{
	Blocks: []hcl.BlockHeaderSchema{
		{Type: "variable", LabelNames: []string{"name"}},
		{Type: "locals"},
		{Type: "output", LabelNames: []string{"name"}},
		{Type: "task", LabelNames: []string{"name"}},
		{Type: "handler", LabelNames: []string{"name"}},
		{Type: "block", LabelNames: []string{"name"}},
		{Type: "module", LabelNames: []string{"name"}},
	},
}

var callSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{
		{Name: "source", Required: true},
		{Name: "vars"},
		{Name: "when"},
		{Name: "for_each"},
		{Name: "tags"},
		{Name: "become"},
		{Name: "become_user"},
		{Name: "become_method"},
	},
}

var outputSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{
		{Name: "value", Required: true},
		{Name: "description"},
		{Name: "sensitive"},
	},
}

// callInput is what a call gives one instance: its variable values and the call's range.
type callInput struct {
	// name is the call's name, for messages: the same for every instance, so that a
	// mistake in the call is reported once, not once per for_each element.
	name   string
	vals   map[string]inputValue
	rng    hcl.Range
	keyRng map[string]hcl.Range
	// broken says vars is not an object written out: which variables it gives is unknown.
	broken bool
}

// moduleCall decodes a module block: it loads the module once per instance, checks it
// against its inputs, and splices its tasks, handlers and blocks into bd.
func (d *decoder) moduleCall(bd *body, hb *hcl.Block, parent *Block, section string, ctx *hcl.EvalContext) {
	name := hb.Labels[0]
	if !d.checkName("module", name, hb.LabelRanges[0]) {
		return
	}
	if !d.unique(bd, "module call", name, hb.LabelRanges[0]) {
		return
	}
	content, diags := hb.Body.Content(callSchema)
	d.add(diags...)
	if diags.HasErrors() {
		return
	}
	attrs := content.Attributes
	var dir, absDir string
	if a := attrs["source"]; a != nil {
		v, ok := d.static(a, ctx, cty.String)
		if !ok {
			return
		}
		src := v.AsString()
		if !strings.HasPrefix(src, "./") && !strings.HasPrefix(src, "../") {
			d.errorf(a.Expr.Range().Ptr(), "Invalid module source",
				"source is a directory relative to this file, starting with ./ or ../ (e.g. \"../modules/hypervisor\"); runbook fetches nothing, so %q is not one.", src)
			return
		}
		// relative when the calling file's name is, so messages name module files as
		// the runbook's are named; cycles are found by absolute path
		dir = filepath.Join(filepath.Dir(hb.DefRange.Filename), filepath.FromSlash(src))
		abs, err := filepath.Abs(dir)
		if err != nil {
			abs = dir
		}
		for i, seen := range d.stack {
			if seen == abs {
				chain := append(append([]string{}, d.stack[i:]...), abs)
				if !filepath.IsAbs(hb.DefRange.Filename) {
					// named as the runbook was: relative to where runbook runs
					for j, c := range chain {
						chain[j] = relToWD(c)
					}
				}
				d.errorf(a.Expr.Range().Ptr(), "Module cycle", "These modules call each other in a circle: %s.", strings.Join(chain, " → "))
				return
			}
		}
		if len(d.stack) >= maxModuleDepth {
			d.errorf(a.Expr.Range().Ptr(), "Modules nested too deeply", "Module calls nest at most %d deep.", maxModuleDepth)
			return
		}
		absDir = abs
	}
	var group Block
	d.groupMeta(attrs, ctx, &group.Tags, &group.Become, &group.BecomeUser, &group.BecomeMethod)

	// for_each on a call is the same for every host: it makes one instance per element.
	items := []*Item{nil}
	none := false
	if a := attrs["for_each"]; a != nil {
		var ok bool
		items, ok = d.staticItems(a, ctx)
		if none = ok && len(items) == 0; none {
			// No instance runs, but the module is checked all the same, as an instance
			// whose key is not known, and module.NAME is the call's (empty) object.
			items = []*Item{{Key: cty.UnknownVal(cty.String), Value: cty.DynamicVal}}
		}
	}
	var when hcl.Expression
	if a := attrs["when"]; a != nil {
		when = a.Expr
	}
	files, ok := d.moduleFiles(dir, attrs["source"].Expr.Range())
	if !ok {
		return
	}
	start := len(d.diags)
	defer func() {
		if len(items) > 1 {
			d.mergeInstanceDiags(start, len(items))
		}
	}()
	for _, it := range items {
		inst := &Instance{Name: name, Call: name, Dir: dir, abs: absDir, Parent: d.inst, CallRange: hb.DefRange}
		ictx := ctx
		if it != nil {
			inst.Key = it.Key
			inst.Name = name + "[" + keyAddr(it.Key) + "]"
			ictx = withEach(ctx, it)
		}
		in := d.callInputs(name, attrs["vars"], ictx, hb.DefRange, it != nil)
		blk := &Block{Name: inst.Name, LocalName: inst.Name, Parent: parent, Section: section, Instance: d.inst,
			When: when, Each: it, Module: inst, DeclRange: hb.DefRange, NameRange: hb.LabelRanges[0]}
		cb := d.instance(inst, files, in, bd.play)
		if cb == nil {
			continue
		}
		if none {
			inst.None, inst.Children = true, nil
			bd.instances = append(bd.instances, inst)
			continue
		}
		// The instance's tasks, handlers, blocks and instances take its name as prefix.
		for _, t := range append(append([]*Task{}, cb.tasks...), cb.handlers...) {
			t.Name = inst.Name + "." + t.Name
			for i := range t.DependsOn {
				t.DependsOn[i].Name = inst.Name + "." + t.DependsOn[i].Name
			}
			for i := range t.Notify {
				t.Notify[i].Name = inst.Name + "." + t.Notify[i].Name
			}
			if t.Block == nil {
				t.Block = blk
			}
			t.Play = bd.play
		}
		for _, b := range cb.blocks {
			b.Name = inst.Name + "." + b.Name
			if b.Parent == nil {
				b.Parent = blk
			}
		}
		var qualify func(*Instance)
		qualify = func(i *Instance) {
			for _, c := range i.Children {
				c.Name = inst.Name + "." + c.Name
				qualify(c)
			}
		}
		qualify(inst)
		inherit(cb.tasks, &group)
		inherit(cb.handlers, &group)
		// A module's task whose qualified name is taken is reported in the module's file,
		// with the call that gave it that name.
		n := len(d.diags)
		for _, t := range append(append([]*Task{}, cb.tasks...), cb.handlers...) {
			d.addTask(bd, t)
		}
		for _, diag := range d.diags[n:] {
			diag.Detail = strings.TrimSpace(diag.Detail) + fmt.Sprintf(" (module %q, called at %s)", inst.Call, inst.CallRange.String())
		}
		bd.blocks = append(append(bd.blocks, cb.blocks...), blk)
		bd.instances = append(bd.instances, inst)
	}
}

// mergeInstanceDiags gives once the diagnostics at a call that several of its for_each
// instances gave (from d.diags[start:]), naming the instances, or none when all n of them
// gave it: a name the module does not declare is one mistake, not one per element.
func (d *decoder) mergeInstanceDiags(start, n int) {
	type group struct {
		first *hcl.Diagnostic
		base  string
		names []string
	}
	groups := map[string]*group{}
	kept := d.diags[:start]
	for _, diag := range d.diags[start:] {
		base, name, tagged := cutInstance(diag.Detail)
		if !tagged || diag.Subject == nil {
			kept = append(kept, diag)
			continue
		}
		key := diag.Summary + "\x00" + base + "\x00" + diag.Subject.String()
		if g := groups[key]; g != nil {
			g.names = append(g.names, name)
			continue
		}
		groups[key] = &group{first: diag, base: base, names: []string{name}}
		kept = append(kept, diag)
	}
	for _, g := range groups {
		switch {
		case len(g.names) == n:
			g.first.Detail = g.base
		case len(g.names) > 1:
			g.first.Detail = g.base + " (for " + strings.Join(g.names, ", ") + ")"
		}
	}
	d.diags = kept
}

// cutInstance splits the " (for NAME)" that names the instance a diagnostic at a call is
// about off its detail.
func cutInstance(detail string) (base, name string, ok bool) {
	i := strings.LastIndex(detail, " (for ")
	if i < 0 || !strings.HasSuffix(detail, ")") {
		return detail, "", false
	}
	return detail[:i], detail[i+len(" (for ") : len(detail)-1], true
}

// relToWD names an absolute path relative to the working directory when it is below it.
func relToWD(abs string) string {
	wd, err := os.Getwd()
	if err != nil {
		return abs
	}
	if r, err := filepath.Rel(wd, abs); err == nil && !strings.HasPrefix(r, "..") {
		return r
	}
	return abs
}

// maxModuleDepth bounds how deeply module calls nest.
const maxModuleDepth = 16

// keyAddr writes a for_each key as it appears in an instance's address: "east" quoted, 0 bare.
func keyAddr(k cty.Value) string {
	k, _ = k.Unmark()
	if k.Type() == cty.String && k.IsKnown() {
		return fmt.Sprintf("%q", k.AsString())
	}
	return keyText(k)
}

func keyText(k cty.Value) string {
	if !k.IsKnown() {
		return "*" // an instance of a for_each not known yet
	}
	if k.Type() == cty.Number {
		return k.AsBigFloat().Text('f', -1)
	}
	if k.Type() == cty.String {
		return k.AsString()
	}
	return k.GoString()
}

func withEach(ctx *hcl.EvalContext, it *Item) *hcl.EvalContext {
	c := &hcl.EvalContext{Variables: map[string]cty.Value{}, Functions: ctx.Functions}
	for k, v := range ctx.Variables {
		c.Variables[k] = v
	}
	c.Variables["each"] = cty.ObjectVal(map[string]cty.Value{"key": it.Key, "value": it.Value})
	return c
}

// staticItems evaluates a call's for_each, which may use var.* and local.* only; it
// reports whether it could.
func (d *decoder) staticItems(a *hcl.Attribute, ctx *hcl.EvalContext) ([]*Item, bool) {
	if !d.staticRoots(a.Expr, "A module call's for_each", "var", "local") {
		return nil, false
	}
	if v, diags := a.Expr.Value(ctx); !diags.HasErrors() && !v.IsWhollyKnown() {
		// Not known yet (validate, before the variables have values): the module is
		// checked once, as an instance whose key is not known.
		return []*Item{{Key: cty.UnknownVal(cty.String), Value: cty.DynamicVal}}, true
	}
	items, diags := forEachItems(a.Expr, ctx)
	d.add(diags...)
	if diags.HasErrors() {
		return nil, false
	}
	out := make([]*Item, len(items))
	for i := range items {
		if items[i].Hidden() {
			d.errorf(a.Expr.Range().Ptr(), "Invalid for_each", "The keys of a module call's for_each name its instances in output and history, so they cannot be sensitive.")
			return nil, false
		}
		out[i] = &items[i]
	}
	return out, true
}

// staticRoots reports references to anything but roots in expr, which are evaluated once
// for every host.
func (d *decoder) staticRoots(expr hcl.Expression, what string, roots ...string) bool {
	ok := true
	for _, tr := range expr.Variables() {
		if !containsString(roots, tr.RootName()) {
			d.errorf(tr.SourceRange().Ptr(), "Invalid reference",
				"%s is evaluated once, for every host alike, so it may refer only to %s, not to %s. Values that differ per host reach a module through host.vars.",
				what, strings.Join(roots, ".*, ")+".*", tr.RootName())
			ok = false
		}
	}
	return ok && d.checkRefs(expr, scope{each: containsString(roots, "each")})
}

// callInputs evaluates a call's vars: an object written out, name = value. each is the
// element of the call's own for_each (withEach says there is one); the each of an enclosing
// block is per host, so vars cannot see it.
func (d *decoder) callInputs(callName string, a *hcl.Attribute, ctx *hcl.EvalContext, callRange hcl.Range, withEach bool) *callInput {
	in := &callInput{name: callName, vals: map[string]inputValue{}, rng: callRange, keyRng: map[string]hcl.Range{}}
	if a == nil {
		return in
	}
	pairs, diags := hcl.ExprMap(a.Expr)
	if diags.HasErrors() {
		d.errorf(a.Expr.Range().Ptr(), "Invalid module vars", "vars is an object written out, name = value, e.g. { mtu = 9100 }.")
		in.broken = true
		return in
	}
	for _, kv := range pairs {
		key := hcl.ExprAsKeyword(kv.Key)
		if key == "" {
			v, kd := kv.Key.Value(nil)
			if kd.HasErrors() || v.Type() != cty.String || !v.IsKnown() {
				d.errorf(kv.Key.Range().Ptr(), "Invalid module vars", "A variable's name must be a literal name.")
				continue
			}
			key = v.AsString()
		}
		if _, dup := in.vals[key]; dup {
			d.errorf(kv.Key.Range().Ptr(), "Duplicate module var", "vars sets %q twice.", key)
			continue
		}
		in.keyRng[key] = kv.Key.Range()
		// A value that cannot be had is given all the same, unknown: the error at it is
		// the one to fix, not a missing variable.
		in.vals[key] = inputValue{cty.DynamicVal, kv.Value.Range()}
		roots := []string{"var", "local"}
		if withEach {
			roots = append(roots, "each")
		}
		if !d.staticRoots(kv.Value, "A value in a module call's vars", roots...) {
			continue
		}
		v, vd := kv.Value.Value(ctx)
		d.add(vd...)
		if vd.HasErrors() {
			continue
		}
		in.vals[key] = inputValue{v, kv.Value.Range()}
	}
	return in
}

// moduleFiles reads a module directory's runbook files.
func (d *decoder) moduleFiles(dir string, srcRange hcl.Range) ([]*hcl.File, bool) {
	if dir == "" {
		return nil, false
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		d.errorf(srcRange.Ptr(), "Cannot read module", "%s", err)
		return nil, false
	}
	var names []string
	for _, e := range entries {
		if !e.IsDir() && IsRunbookFile(e.Name()) && !strings.HasPrefix(e.Name(), ".") {
			names = append(names, filepath.Join(dir, e.Name()))
		}
	}
	sort.Strings(names)
	if len(names) == 0 {
		d.errorf(srcRange.Ptr(), "Empty module", "The directory %s holds no .hcl or .hcl.json files.", dir)
		return nil, false
	}
	var files []*hcl.File
	ok := true
	for _, n := range names {
		if f := d.parsed[n]; f != nil {
			files = append(files, f)
			continue
		}
		src, err := os.ReadFile(n)
		if err != nil {
			d.errorf(srcRange.Ptr(), "Cannot read module", "%s", err)
			return nil, false
		}
		var f *hcl.File
		var diags hcl.Diagnostics
		if IsJSONFile(n) {
			f, diags = d.parser.ParseJSON(src, n)
		} else {
			f, diags = d.parser.ParseHCL(src, n)
		}
		d.add(diags...)
		if f != nil {
			d.rb.Files[n] = f
		}
		if diags.HasErrors() || f == nil {
			ok = false
			continue
		}
		d.parsed[n] = f
		files = append(files, f)
	}
	return files, ok
}

// instance decodes one instance of a module with its own decoder and returns what it
// holds, checked; its diagnostics are passed on with the call that brought them in.
func (d *decoder) instance(inst *Instance, files []*hcl.File, in *callInput, play *Play) *body {
	sub := &Runbook{Path: inst.Dir, Dir: inst.Dir, Files: d.rb.Files}
	inst.rb = sub
	// A call's vars are written in the runbook: one it does not give is missing even when
	// the root's inputs may be (validate), unless the vars could not be read at all.
	c := newDecoder(sub, Inputs{AllowMissing: in.broken})
	c.parser, c.parsed, c.inst, c.call = d.parser, d.parsed, inst, in
	c.stack = append(append([]string{}, d.stack...), inst.abs)
	pseudo := &Play{Name: play.Name, Vars: map[string]hcl.Expression{}}
	var blocks hcl.Blocks
	for _, f := range files {
		content, diags := f.Body.Content(moduleFileSchema)
		c.add(diags...)
		for _, b := range content.Blocks {
			switch b.Type {
			case "variable":
				c.variable(b)
			case "locals":
				c.locals(b)
			case "output":
				c.output(b)
			default:
				blocks = append(blocks, b)
			}
		}
	}
	c.resolveVariables()
	c.evalLocals()
	bd := newBody(pseudo)
	c.items(bd, blocks, nil, SectionMain, c.globalCtx(sub.localValues))
	pseudo.Tasks, pseudo.Handlers, pseudo.Blocks, pseudo.Instances = bd.tasks, bd.handlers, bd.blocks, bd.instances
	c.checkPlay(pseudo)
	c.checkOutputs(pseudo)
	inst.Children = bd.instances
	bd.tasks = pseudo.Order()
	for _, diag := range c.redacted() {
		if inst.Key != cty.NilVal && diag.Subject != nil && diag.Subject.Filename == inst.CallRange.Filename &&
			!strings.Contains(diag.Detail, inst.Name) {
			// at the call: say which of its instances
			diag.Detail = strings.TrimSpace(diag.Detail) + " (for " + inst.Name + ")"
		}
		d.addFromModule(diag, inst)
	}
	return bd
}

// addFromModule passes on a diagnostic of a module instance, saying which call brought
// the module in; a diagnostic already given for another instance of the same call is
// given once.
func (d *decoder) addFromModule(diag *hcl.Diagnostic, inst *Instance) {
	key := diag.Summary + "\x00" + diag.Detail
	if diag.Subject != nil {
		key += "\x00" + diag.Subject.String()
	}
	if d.fromModules[key] {
		return
	}
	d.fromModules[key] = true
	if diag.Subject != nil && diag.Subject.Filename != inst.CallRange.Filename || diag.Subject == nil {
		if !strings.Contains(diag.Detail, "(module ") {
			diag.Detail = strings.TrimSpace(diag.Detail) + fmt.Sprintf(" (module %q, called at %s)", inst.Call, inst.CallRange.String())
		}
	}
	d.add(diag)
}

func (d *decoder) output(b *hcl.Block) {
	name := b.Labels[0]
	if !d.checkName("output", name, b.LabelRanges[0]) {
		return
	}
	for _, o := range d.rb.Outputs {
		if o.Name == name {
			d.add(duplicate("output", name, o.DeclRange, b.LabelRanges[0]))
			return
		}
	}
	content, diags := b.Body.Content(outputSchema)
	d.add(diags...)
	if diags.HasErrors() {
		return
	}
	o := &Output{Name: name, Expr: content.Attributes["value"].Expr, DeclRange: b.LabelRanges[0]}
	if a := content.Attributes["sensitive"]; a != nil {
		if v, ok := d.static(a, d.globalCtx(nil), cty.Bool); ok {
			o.Sensitive = v.True()
		}
	}
	d.rb.Outputs = append(d.rb.Outputs, o)
	if d.inst != nil {
		d.inst.Outputs = append(d.inst.Outputs, o)
	}
}

// checkOutputs checks every output's references: it may read every task of the module.
func (d *decoder) checkOutputs(p *Play) {
	all := map[string]bool{}
	for _, t := range p.Tasks {
		all[t.Name] = true
	}
	for _, o := range d.rb.Outputs {
		d.checkRefs(o.Expr, scope{host: true, tasks: all, where: "an output"})
	}
}

// checkModuleRef reports whether module.NAME.OUTPUT names a call of this module or play and
// one of its outputs.
func (d *decoder) checkModuleRef(tr hcl.Traversal) bool {
	if len(tr) < 2 {
		d.errorf(tr.SourceRange().Ptr(), "Invalid reference", "module must be followed by a call's name, e.g. module.hypervisor.OUTPUT.")
		return false
	}
	name := attrName(tr[1])
	var calls []*Instance
	var names []string
	for _, i := range d.calls {
		names = append(names, i.Call)
		if i.Call == name {
			calls = append(calls, i)
		}
	}
	if len(calls) == 0 {
		detail := fmt.Sprintf("This runbook calls no module named %q here.", name)
		if s := modules.Suggest(name, names); s != "" {
			detail += fmt.Sprintf(" Did you mean %q?", s)
		}
		d.errorf(tr[:2].SourceRange().Ptr(), "Reference to undeclared module call", "%s", detail)
		return false
	}
	rest := tr[2:]
	if calls[0].Key != cty.NilVal {
		if len(rest) == 0 {
			return true
		}
		// A call with for_each is an object of its instances by key.
		inst, ok := d.instanceByKey(calls, tr, rest[0])
		if !ok {
			return false
		}
		calls, rest = []*Instance{inst}, rest[1:]
	}
	if len(rest) == 0 {
		return true
	}
	out := attrName(rest[0])
	for _, o := range calls[0].Outputs {
		if o.Name == out {
			return true
		}
	}
	var outs []string
	for _, o := range calls[0].Outputs {
		outs = append(outs, o.Name)
	}
	detail := fmt.Sprintf("The module called %q has no output named %q.", name, out)
	if len(outs) > 0 {
		detail += fmt.Sprintf(" Its outputs: %s.", strings.Join(outs, ", "))
	}
	d.errorf(tr.SourceRange().Ptr(), "Reference to undeclared output", "%s", detail)
	return false
}

// instanceByKey finds the instance of a call with for_each that step names:
// module.NAME["key"], module.NAME[0] or module.NAME.key.
func (d *decoder) instanceByKey(calls []*Instance, tr hcl.Traversal, step hcl.Traverser) (*Instance, bool) {
	key, named := "", false
	switch s := step.(type) {
	case hcl.TraverseAttr:
		key, named = s.Name, true
	case hcl.TraverseIndex:
		if k, _ := s.Key.Unmark(); k.IsKnown() && !k.IsNull() && (k.Type() == cty.String || k.Type() == cty.Number) {
			key, named = keyText(k), true
		}
	}
	if calls[0].None {
		d.errorf(tr.SourceRange().Ptr(), "Reference to undeclared module instance", "The module call %q has no instances: its for_each is empty.", calls[0].Call)
		return nil, false
	}
	var keys []string
	for _, c := range calls {
		k, _ := c.Key.Unmark()
		if !k.IsKnown() || named && keyText(k) == key {
			return c, true
		}
		keys = append(keys, "["+keyAddr(k)+"]")
	}
	call := calls[0].Call
	detail := fmt.Sprintf("The module call %q has no instance [%q]; its instances: %s.", call, key, strings.Join(keys, ", "))
	if _, attr := step.(hcl.TraverseAttr); attr {
		// module.NAME.OUTPUT, forgetting that the call has for_each
		detail = fmt.Sprintf("The module call %q has for_each, so module.%s is an object of its instances by key, e.g. module.%s%s.%s; its instances: %s.",
			call, call, call, keys[0], key, strings.Join(keys, ", "))
	}
	d.errorf(tr.SourceRange().Ptr(), "Reference to undeclared module instance", "%s", detail)
	return nil, false
}

// moduleValues evaluates the outputs of the module instances a scope can see (module.NAME),
// for one host: an output whose tasks have not run on the host is unknown.
func (rb *Runbook) moduleValues(children []*Instance, s Scope) cty.Value {
	calls := map[string]map[string]cty.Value{}
	single := map[string]cty.Value{}
	for _, c := range children {
		if c.None {
			if calls[c.Call] == nil {
				calls[c.Call] = map[string]cty.Value{}
			}
			continue
		}
		cs := s
		cs.Instance, cs.Each, cs.Self = c, nil, cty.NilVal
		ctx := rb.EvalContext(cs)
		outs := map[string]cty.Value{}
		for _, o := range c.Outputs {
			v, diags := o.Expr.Value(ctx)
			if diags.HasErrors() {
				v = cty.DynamicVal
			}
			if o.Sensitive {
				v = v.Mark(Sensitive)
			}
			outs[o.Name] = v
		}
		if c.Key == cty.NilVal {
			single[c.Call] = objectOrEmpty(outs)
			continue
		}
		if calls[c.Call] == nil {
			calls[c.Call] = map[string]cty.Value{}
		}
		k, _ := c.Key.Unmark()
		calls[c.Call][keyText(k)] = objectOrEmpty(outs)
	}
	for n, m := range calls {
		single[n] = objectOrEmpty(m)
	}
	return objectOrEmpty(single)
}

// IsModule reports whether path is a directory holding a runbook module rather than a
// runbook: its files have tasks, handlers, blocks, module calls or outputs at the top,
// and no play.
func IsModule(path string) bool {
	info, err := os.Stat(path)
	if err != nil || !info.IsDir() {
		return false
	}
	entries, err := os.ReadDir(path)
	if err != nil {
		return false
	}
	moduleish := false
	p := hclparse.NewParser()
	for _, e := range entries {
		if e.IsDir() || !IsRunbookFile(e.Name()) || strings.HasPrefix(e.Name(), ".") {
			continue
		}
		src, err := os.ReadFile(filepath.Join(path, e.Name()))
		if err != nil {
			return false
		}
		var f *hcl.File
		if IsJSONFile(e.Name()) {
			f, _ = p.ParseJSON(src, e.Name())
		} else {
			f, _ = p.ParseHCL(src, e.Name())
		}
		if f == nil {
			continue
		}
		content, _, _ := f.Body.PartialContent(moduleFileSchema)
		plays, _, _ := f.Body.PartialContent(&hcl.BodySchema{Blocks: []hcl.BlockHeaderSchema{{Type: "play", LabelNames: []string{"name"}}}})
		if len(plays.Blocks) > 0 {
			return false
		}
		for _, b := range content.Blocks {
			switch b.Type {
			case "task", "handler", "block", "module", "output":
				moduleish = true
			}
		}
	}
	return moduleish
}

// LoadModule checks a runbook module on its own, as runbook validate does: it is called
// from a play of every host, with the values of its variables unknown unless in.AllowMissing
// is false. The returned runbook holds that play.
func LoadModule(dir string, in Inputs) (*Runbook, hcl.Diagnostics) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, hcl.Diagnostics{{Severity: hcl.DiagError, Summary: "Cannot read module", Detail: err.Error()}}
	}
	name := filepath.Join(filepath.Dir(abs), ".runbook-module-check.hcl")
	src := fmt.Sprintf("play \"module %s\" {\n  hosts = \"all\"\n  module \"%s\" {\n    source = %q\n  }\n}\n",
		filepath.Base(abs), moduleCallName(filepath.Base(abs)), "./"+filepath.Base(abs))
	rb, diags := Parse([]Source{{Name: name, Src: []byte(src)}}, Inputs{AllowMissing: in.AllowMissing, Vault: in.Vault})
	if rb != nil {
		rb.Path, rb.Dir = dir, abs
		delete(rb.Files, name)
	}
	return rb, diags
}

// moduleCallName makes a valid call name from a directory's name.
func moduleCallName(base string) string {
	var b strings.Builder
	for i, r := range base {
		ok := r == '_' || r == '-' || ('a' <= r && r <= 'z') || ('A' <= r && r <= 'Z') || ('0' <= r && r <= '9' && i > 0)
		if !ok {
			r = '_'
		}
		if i == 0 && !('a' <= r && r <= 'z' || 'A' <= r && r <= 'Z') {
			b.WriteString("m")
		}
		b.WriteRune(r)
	}
	return b.String()
}

// CalledModules lists the directories of the runbook modules that the runbook (or module)
// at path calls, directly or through other modules, reading only the source of each module
// block: runbook fmt formats them with the runbook, even when it does not decode.
func CalledModules(path string) []string {
	seen := map[string]bool{}
	var out []string
	var visit func(path string)
	visit = func(path string) {
		files := []string{path}
		if info, err := os.Stat(path); err != nil {
			return
		} else if info.IsDir() {
			files = nil
			entries, _ := os.ReadDir(path)
			for _, e := range entries {
				if !e.IsDir() && strings.HasSuffix(e.Name(), ".hcl") && !strings.HasPrefix(e.Name(), ".") {
					files = append(files, filepath.Join(path, e.Name()))
				}
			}
		}
		for _, name := range files {
			src, err := os.ReadFile(name)
			if err != nil {
				continue
			}
			f, _ := hclsyntax.ParseConfig(src, name, hcl.InitialPos)
			if f == nil {
				continue
			}
			body, ok := f.Body.(*hclsyntax.Body)
			if !ok {
				continue
			}
			for _, src := range moduleSources(body) {
				if !strings.HasPrefix(src, "./") && !strings.HasPrefix(src, "../") {
					continue
				}
				dir, err := filepath.Abs(filepath.Join(filepath.Dir(name), filepath.FromSlash(src)))
				if err != nil || seen[dir] || len(seen) > 1000 {
					continue
				}
				seen[dir] = true
				out = append(out, dir)
				visit(dir)
			}
		}
	}
	visit(path)
	return out
}

// moduleSources returns the literal sources of the module blocks anywhere in body.
func moduleSources(body *hclsyntax.Body) []string {
	var out []string
	for _, b := range body.Blocks {
		if b.Type == "module" {
			if a, ok := b.Body.Attributes["source"]; ok {
				if v, diags := a.Expr.Value(nil); !diags.HasErrors() && v.Type() == cty.String && v.IsKnown() && !v.IsNull() {
					out = append(out, v.AsString())
				}
			}
			continue
		}
		out = append(out, moduleSources(b.Body)...)
	}
	return out
}
