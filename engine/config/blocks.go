package config

import (
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/zclconf/go-cty/cty"
)

// Sections of a block: its tasks, the tasks that run when one of them failed on a host,
// and the tasks that run either way.
const (
	SectionMain   = ""
	SectionRescue = "rescue"
	SectionAlways = "always"
)

// Block groups tasks: its when, for_each, become and tags apply to every task inside;
// for_each repeats the whole group per element on each host; its rescue tasks run on a
// host where one of its tasks failed, and its always tasks run either way. A runbook
// module call is a block too (Module is then set): its tasks are the module's.
//
// Blocks are not steps of their own: a play's tasks stay one list in execution order
// (Play.Order), each task pointing at its innermost block, and the engine runs a block
// where its first task comes.
type Block struct {
	// Name is qualified like a task's ("hypervisor.vlans"); LocalName is as written.
	Name      string
	LocalName string
	// Parent is the enclosing block, nil at a play's top level; Section is the part of
	// Parent this block is in.
	Parent  *Block
	Section string
	// Instance is the module instance whose scope the block's expressions are evaluated
	// in: the one it is written in (for a module call, the caller's).
	Instance *Instance

	When    hcl.Expression // nil: always; evaluated once per host, before for_each
	ForEach hcl.Expression // nil: once; a list, set or map per host
	// Each is the element of a module call's for_each that made this instance; the call's
	// when sees it as each. nil for other blocks.
	Each *Item
	// Module is the module instance a call block runs; nil for a block block.
	Module *Instance

	// UsesFacts says when or for_each refers to facts.
	UsesFacts bool

	Tags         []string
	Become       *bool
	BecomeUser   string
	BecomeMethod string

	DeclRange hcl.Range
	NameRange hcl.Range
}

// Kind says "block" or "module", for messages.
func (b *Block) Kind() string {
	if b.Module != nil {
		return "module"
	}
	return "block"
}

// Under returns the block directly inside parent that holds t (nil for the play's top
// level), or nil when t is directly in parent.
func (t *Task) Under(parent *Block) *Block {
	for b := t.Block; b != nil; b = b.Parent {
		if b.Parent == parent {
			return b
		}
	}
	return nil
}

// SectionIn says which section of b holds t: t's own section when t is directly in b,
// else that of the block inside b that holds it.
func (t *Task) SectionIn(b *Block) string {
	if t.Block == b {
		return t.Section
	}
	if c := t.Under(b); c != nil {
		return c.Section
	}
	return SectionMain
}

// InEach reports whether t is inside a block with for_each of its own instance, so that
// each refers to that block's element (or to the task's own for_each).
func (t *Task) InEach() bool {
	for b := t.Block; b != nil && b.Module == nil; b = b.Parent {
		if b.ForEach != nil {
			return true
		}
	}
	return false
}

var blockSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{
		{Name: "when"},
		{Name: "for_each"},
		{Name: "tags"},
		{Name: "become"},
		{Name: "become_user"},
		{Name: "become_method"},
	},
	Blocks: []hcl.BlockHeaderSchema{
		{Type: "task", LabelNames: []string{"name"}},
		{Type: "block", LabelNames: []string{"name"}},
		{Type: "module", LabelNames: []string{"name"}},
		{Type: "rescue"},
		{Type: "always"},
	},
}

var sectionSchema = &hcl.BodySchema{
	Blocks: []hcl.BlockHeaderSchema{
		{Type: "task", LabelNames: []string{"name"}},
		{Type: "block", LabelNames: []string{"name"}},
		{Type: "module", LabelNames: []string{"name"}},
	},
}

// body collects what a play or a runbook module holds: tasks in file order (the tasks of
// blocks and module calls in place), handlers, blocks and module instances.
type body struct {
	play      *Play
	tasks     []*Task
	handlers  []*Task
	blocks    []*Block
	instances []*Instance
	seen      map[string]map[string]hcl.Range // kind → name → first declaration
}

func newBody(p *Play) *body {
	return &body{play: p, seen: map[string]map[string]hcl.Range{}}
}

// unique reports whether name is new among kind's names, reporting a duplicate otherwise.
func (d *decoder) unique(bd *body, kind, name string, rng hcl.Range) bool {
	m := bd.seen[kind]
	if m == nil {
		m = map[string]hcl.Range{}
		bd.seen[kind] = m
	}
	if first, dup := m[name]; dup {
		d.add(duplicate(kind, name, first, rng))
		return false
	}
	m[name] = rng
	return true
}

// items decodes task, handler, block and module blocks into bd, in file order, inside
// parent's section.
func (d *decoder) items(bd *body, blocks hcl.Blocks, parent *Block, section string, ctx *hcl.EvalContext) {
	for _, b := range blocks {
		switch b.Type {
		case "task", "handler":
			t := d.task(bd.play, b, ctx)
			if t == nil {
				continue
			}
			t.Instance, t.LocalName = d.inst, t.Name
			t.Block, t.Section = parent, section
			d.addTask(bd, t)
		case "block":
			d.block(bd, b, parent, section, ctx)
		case "module":
			d.moduleCall(bd, b, parent, section, ctx)
		}
	}
}

func (d *decoder) addTask(bd *body, t *Task) {
	if !d.unique(bd, t.Kind(), t.Name, t.NameRange) {
		return
	}
	if t.IsHandler {
		bd.handlers = append(bd.handlers, t)
	} else {
		bd.tasks = append(bd.tasks, t)
	}
}

func (d *decoder) block(bd *body, hb *hcl.Block, parent *Block, section string, ctx *hcl.EvalContext) {
	name := hb.Labels[0]
	blk := &Block{Name: name, LocalName: name, Parent: parent, Section: section, Instance: d.inst,
		DeclRange: hb.DefRange, NameRange: hb.LabelRanges[0]}
	if strings.TrimSpace(name) == "" {
		d.errorf(hb.LabelRanges[0].Ptr(), "Invalid block name", "A block needs a non-empty name.")
	}
	d.unique(bd, "block", name, hb.LabelRanges[0])
	content, diags := hb.Body.Content(blockSchema)
	d.add(diags...)
	attrs := content.Attributes
	if a, ok := attrs["when"]; ok {
		blk.When = a.Expr
	}
	if a, ok := attrs["for_each"]; ok {
		blk.ForEach = a.Expr
	}
	d.groupMeta(attrs, ctx, &blk.Tags, &blk.Become, &blk.BecomeUser, &blk.BecomeMethod)

	first := len(bd.tasks)
	var main hcl.Blocks
	var sections [2]*hcl.Block // rescue, always
	for _, b := range content.Blocks {
		switch b.Type {
		case "rescue", "always":
			i := 0
			if b.Type == "always" {
				i = 1
			}
			if prev := sections[i]; prev != nil {
				d.add(duplicate(b.Type+" section", name, prev.DefRange, b.DefRange))
				continue
			}
			sections[i] = b
		default:
			main = append(main, b)
		}
	}
	d.items(bd, main, blk, SectionMain, ctx)
	if len(bd.tasks) == first && len(main) == 0 {
		d.errorf(hb.DefRange.Ptr(), "Empty block", "A block holds at least one task, block or module call; its rescue and always sections run after them.")
	}
	for i, sec := range []string{SectionRescue, SectionAlways} {
		sb := sections[i]
		if sb == nil {
			continue
		}
		sc, diags := sb.Body.Content(sectionSchema)
		d.add(diags...)
		d.items(bd, sc.Blocks, blk, sec, ctx)
	}
	inherit(bd.tasks[first:], blk)
	bd.blocks = append(bd.blocks, blk)
}

// groupMeta decodes the meta-arguments a block or a module call passes to its tasks.
func (d *decoder) groupMeta(attrs hcl.Attributes, ctx *hcl.EvalContext, tags *[]string, become **bool, user, method *string) {
	if a, ok := attrs["tags"]; ok {
		for _, r := range d.refList(a, ctx) {
			*tags = append(*tags, r.Name)
		}
	}
	if a, ok := attrs["become"]; ok {
		if v, ok := d.static(a, ctx, cty.Bool); ok {
			b := v.True()
			*become = &b
		}
	}
	if a, ok := attrs["become_user"]; ok {
		if v, ok := d.static(a, ctx, cty.String); ok {
			*user = v.AsString()
		}
	}
	if a, ok := attrs["become_method"]; ok {
		*method = d.becomeMethod(a, ctx)
	}
}

// inherit gives tasks a group's tags (added to theirs) and become settings (where a task,
// or a block nearer to it, sets none).
func inherit(tasks []*Task, g *Block) {
	for _, t := range tasks {
		for _, tag := range g.Tags {
			if !containsString(t.Tags, tag) {
				t.Tags = append(t.Tags, tag)
			}
		}
		if t.Become == nil {
			t.Become = g.Become
		}
		if t.BecomeUser == "" {
			t.BecomeUser = g.BecomeUser
		}
		if t.BecomeMethod == "" {
			t.BecomeMethod = g.BecomeMethod
		}
	}
}

func containsString(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// WhenTrue evaluates a block's condition for one host; a block without one always runs.
func (b *Block) WhenTrue(ctx *hcl.EvalContext) (bool, hcl.Diagnostics) {
	if b.When == nil {
		return true, nil
	}
	v, diags := evalBool(b.When, ctx, "when")
	return v, redact(diags, ctx)
}

// Items evaluates a block's for_each for one host, like a task's.
func (b *Block) Items(ctx *hcl.EvalContext) ([]Item, hcl.Diagnostics) {
	return forEachItems(b.ForEach, ctx)
}
