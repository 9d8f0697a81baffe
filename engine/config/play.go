package config

import (
	"fmt"
	"math"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/convert"

	"github.com/runbook/runbook/inventory"
	"github.com/runbook/runbook/modules"
)

var playSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{
		{Name: "hosts", Required: true},
		{Name: "become"},
		{Name: "become_user"},
		{Name: "become_method"},
		{Name: "serial"},
		{Name: "max_fail_percentage"},
		{Name: "forks"},
		{Name: "strategy"},
		{Name: "vars"},
	},
	Blocks: []hcl.BlockHeaderSchema{
		{Type: "task", LabelNames: []string{"name"}},
		{Type: "handler", LabelNames: []string{"name"}},
		{Type: "block", LabelNames: []string{"name"}},
		{Type: "module", LabelNames: []string{"name"}},
	},
}

// taskMeta are the meta-arguments of a task; everything else in a task is its module block.
var taskMeta = []hcl.AttributeSchema{
	{Name: "when"},
	{Name: "for_each"},
	{Name: "depends_on"},
	{Name: "notify"},
	{Name: "tags"},
	{Name: "become"},
	{Name: "become_user"},
	{Name: "become_method"},
	{Name: "timeout"},
	{Name: "retries"},
	{Name: "delay"},
	{Name: "until"},
	{Name: "changed_when"},
	{Name: "failed_when"},
	{Name: "on_failure"},
	{Name: "check_mode"},
	{Name: "sensitive"},
	{Name: "run_once"},
}

// Strategies: how the hosts of a batch move through a play's tasks.
const (
	// StrategyFree lets every host run its tasks as fast as it can (the default).
	StrategyFree = "free"
	// StrategyLinear has every host of a batch finish task i before any starts task i+1.
	StrategyLinear = "linear"
)

// OnFailure values.
const (
	OnFailureStopHost = "stop_host"
	OnFailureContinue = "continue"
)

func (d *decoder) play(b *hcl.Block) *Play {
	name := b.Labels[0]
	if name == "" {
		d.errorf(b.LabelRanges[0].Ptr(), "Invalid play name", "A play needs a non-empty name.")
	}
	if first, dup := d.playsSeen[name]; dup {
		d.add(duplicate("play", name, first, b.LabelRanges[0]))
	}
	d.playsSeen[name] = b.LabelRanges[0]
	p := &Play{Name: name, DeclRange: b.DefRange, Vars: map[string]hcl.Expression{}}
	content, diags := b.Body.Content(playSchema)
	d.add(diags...)
	ctx := d.globalCtx(d.rb.localValues)

	if a, ok := content.Attributes["hosts"]; ok {
		p.HostsRange = a.Expr.Range()
		if v, ok := d.static(a, ctx, cty.String); ok {
			p.Hosts = v.AsString()
			if strings.TrimSpace(p.Hosts) == "" {
				d.errorf(a.Expr.Range().Ptr(), "Invalid host pattern", `hosts must name at least one host or group, e.g. "all".`)
			} else if err := ValidatePattern(p.Hosts); err != nil {
				d.errorf(a.Expr.Range().Ptr(), "Invalid host pattern", "%s", err)
			}
		}
	}
	if a, ok := content.Attributes["become"]; ok {
		if v, ok := d.static(a, ctx, cty.Bool); ok {
			b := v.True()
			p.Become = &b
		}
	}
	if a, ok := content.Attributes["become_user"]; ok {
		if v, ok := d.static(a, ctx, cty.String); ok {
			p.BecomeUser = v.AsString()
		}
	}
	if a, ok := content.Attributes["become_method"]; ok {
		p.BecomeMethod = d.becomeMethod(a, ctx)
	}
	if a, ok := content.Attributes["serial"]; ok {
		p.Serial = d.serial(a, ctx)
	}
	if a, ok := content.Attributes["max_fail_percentage"]; ok {
		if v, ok := d.static(a, ctx, cty.Number); ok {
			f, _ := v.AsBigFloat().Float64()
			if f < 0 || f > 100 {
				d.errorf(a.Expr.Range().Ptr(), "Invalid max_fail_percentage", "max_fail_percentage must be between 0 and 100, not %g.", f)
			} else {
				p.MaxFailPercentage = &f
			}
		}
	}
	if a, ok := content.Attributes["forks"]; ok {
		if v, ok := d.static(a, ctx, cty.Number); ok {
			n, acc := v.AsBigFloat().Int64()
			if acc != 0 || n < 1 || n > math.MaxInt32 {
				d.errorf(a.Expr.Range().Ptr(), "Invalid forks", "forks must be a whole number of at least 1.")
			} else {
				p.Forks = int(n)
			}
		}
	}
	if a, ok := content.Attributes["strategy"]; ok {
		if v, ok := d.static(a, ctx, cty.String); ok {
			switch st := v.AsString(); st {
			case StrategyFree, StrategyLinear:
				p.Strategy = st
			default:
				d.errorf(a.Expr.Range().Ptr(), "Invalid strategy", "strategy is %q or %q, not %q.", StrategyFree, StrategyLinear, st)
			}
		}
	}
	if a, ok := content.Attributes["vars"]; ok {
		d.playVars(p, a)
	}

	bd := newBody(p)
	d.items(bd, content.Blocks, nil, SectionMain, ctx)
	p.Tasks, p.Handlers, p.Blocks, p.Instances = bd.tasks, bd.handlers, bd.blocks, bd.instances
	return p
}

// playVars keeps a play's vars as expressions: they are evaluated per host.
func (d *decoder) playVars(p *Play, a *hcl.Attribute) {
	pairs, diags := hcl.ExprMap(a.Expr)
	if diags.HasErrors() {
		d.errorf(a.Expr.Range().Ptr(), "Invalid play vars", "vars must be an object of names and values, e.g. { bond_mtu = 9100 }.")
		return
	}
	for _, kv := range pairs {
		name := hcl.ExprAsKeyword(kv.Key)
		if name == "" {
			v, kd := kv.Key.Value(nil)
			if kd.HasErrors() || v.Type() != cty.String {
				d.errorf(kv.Key.Range().Ptr(), "Invalid play vars", "A var's name must be a literal name.")
				continue
			}
			name = v.AsString()
		}
		if _, dup := p.Vars[name]; dup {
			d.errorf(kv.Key.Range().Ptr(), "Duplicate play var", "vars sets %q twice.", name)
			continue
		}
		p.Vars[name] = kv.Value
		p.VarsOrder = append(p.VarsOrder, name)
	}
}

// serial accepts a number, a percentage string, or a list of them.
func (d *decoder) serial(a *hcl.Attribute, ctx *hcl.EvalContext) []Batch {
	val, diags := a.Expr.Value(ctx)
	d.add(diags...)
	if diags.HasErrors() || !val.IsWhollyKnown() {
		return nil
	}
	val, _ = val.UnmarkDeep()
	items := []cty.Value{val}
	if val.Type().IsTupleType() || val.Type().IsListType() {
		items = val.AsValueSlice()
		if len(items) == 0 {
			d.errorf(a.Expr.Range().Ptr(), "Invalid serial", "serial needs at least one batch size.")
			return nil
		}
	}
	var out []Batch
	for _, it := range items {
		b, err := parseBatch(it)
		if err != nil {
			d.errorf(a.Expr.Range().Ptr(), "Invalid serial", "%s", err)
			return nil
		}
		out = append(out, b)
	}
	return out
}

func parseBatch(v cty.Value) (Batch, error) {
	switch {
	case v.IsNull():
		return Batch{}, fmt.Errorf("a batch size cannot be null")
	case v.Type() == cty.Number:
		n, acc := v.AsBigFloat().Int64()
		if acc != 0 || n < 1 {
			return Batch{}, fmt.Errorf("a batch size must be a whole number of at least 1")
		}
		return Batch{Count: int(n)}, nil
	case v.Type() == cty.String:
		s := strings.TrimSpace(v.AsString())
		if pct, ok := strings.CutSuffix(s, "%"); ok {
			f, err := strconv.ParseFloat(pct, 64)
			if err != nil || f <= 0 || f > 100 {
				return Batch{}, fmt.Errorf("%q is not a percentage between 0 and 100", s)
			}
			return Batch{Percent: f}, nil
		}
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			return Batch{}, fmt.Errorf("%q is neither a host count nor a percentage such as \"25%%\"", s)
		}
		return Batch{Count: n}, nil
	}
	return Batch{}, fmt.Errorf("a batch size is a number or a percentage string, not %s", v.Type().FriendlyName())
}

// static evaluates a meta-argument that must be the same for every host: it may use var.*,
// local.* and functions, but nothing about hosts.
// becomeMethod decodes a become_method: one of inventory.BecomeMethods, else an error at
// its value.
func (d *decoder) becomeMethod(a *hcl.Attribute, ctx *hcl.EvalContext) string {
	v, ok := d.static(a, ctx, cty.String)
	if !ok {
		return ""
	}
	m := v.AsString()
	if slices.Contains(inventory.BecomeMethods, m) {
		return m
	}
	d.errorf(a.Expr.Range().Ptr(), "Unsupported become method",
		"become_method is one of %s, not %q: runbook becomes another user with these only.", strings.Join(quoteAll(inventory.BecomeMethods), ", "), m)
	return ""
}

func quoteAll(list []string) []string {
	out := make([]string, len(list))
	for i, s := range list {
		out[i] = fmt.Sprintf("%q", s)
	}
	return out
}

func (d *decoder) static(a *hcl.Attribute, ctx *hcl.EvalContext, ty cty.Type) (cty.Value, bool) {
	for _, tr := range a.Expr.Variables() {
		switch root := tr.RootName(); root {
		case "var", "local":
		default:
			d.errorf(tr.SourceRange().Ptr(), "Invalid reference",
				"%s is the same for every host, so it may refer only to var.* and local.*, not to %s.", a.Name, root)
			return cty.NilVal, false
		}
	}
	if !d.checkRefs(a.Expr, scope{}) {
		return cty.NilVal, false
	}
	val, diags := a.Expr.Value(ctx)
	d.add(diags...)
	if diags.HasErrors() || !val.IsWhollyKnown() {
		return cty.NilVal, false
	}
	// The same for every host, and used by runbook itself (names, durations, counts):
	// the marks of a sensitive value go, its text is kept out of messages by Parse.
	val, _ = val.UnmarkDeep()
	conv, err := convert.Convert(val, ty)
	if err != nil {
		d.errorf(a.Expr.Range().Ptr(), "Incorrect attribute value type",
			"%s must be a %s, not %s.", a.Name, friendly(ty), friendly(val.Type()))
		return cty.NilVal, false
	}
	if conv.IsNull() {
		d.errorf(a.Expr.Range().Ptr(), "Incorrect attribute value type", "%s cannot be null.", a.Name)
		return cty.NilVal, false
	}
	return conv, true
}

func friendly(t cty.Type) string {
	switch {
	case t.IsTupleType():
		return "list"
	case t.IsObjectType():
		return "object"
	}
	return modules.TypeName(t)
}

func (d *decoder) task(p *Play, b *hcl.Block, ctx *hcl.EvalContext) *Task {
	t := &Task{
		Name:      b.Labels[0],
		IsHandler: b.Type == "handler",
		Play:      p,
		DeclRange: b.DefRange,
		NameRange: b.LabelRanges[0],
		OnFailure: OnFailureStopHost,
		args:      &argsMemo{},
		refs:      &refsMemo{},
	}
	if strings.TrimSpace(t.Name) == "" {
		d.errorf(t.NameRange.Ptr(), "Invalid "+t.Kind()+" name", "A %s needs a non-empty name.", t.Kind())
	}
	schema := &hcl.BodySchema{Attributes: taskMeta}
	// The module block is whichever block the task has. Listing every block type present in
	// the schema leaves unknown attributes to hcl (with its "did you mean" hints) while this
	// code reports unknown modules itself, with the module registry's names as hints.
	if sb, ok := b.Body.(*hclsyntax.Body); ok {
		seen := map[string]bool{}
		for _, blk := range sb.Blocks {
			if !seen[blk.Type] {
				seen[blk.Type] = true
				// Accept labels here so that a labelled module block gets this package's
				// message, which says what to write instead.
				labels := make([]string, len(blk.Labels))
				for i := range labels {
					labels[i] = fmt.Sprintf("label%d", i)
				}
				schema.Blocks = append(schema.Blocks, hcl.BlockHeaderSchema{Type: blk.Type, LabelNames: labels})
			}
		}
	} else {
		// JSON syntax: a property is an attribute or a block only by the schema, so every
		// property that is not a task argument names the task's module block.
		schema.Blocks = append(schema.Blocks, otherProperties(b.Body, schema)...)
	}
	content, diags := b.Body.Content(schema)
	d.add(diags...)

	for _, mb := range content.Blocks {
		if _, ok := modules.Lookup(mb.Type); !ok {
			detail := fmt.Sprintf("runbook has no module named %q.", mb.Type)
			if s := modules.Suggest(mb.Type, modules.Names()); s != "" {
				detail += fmt.Sprintf(" Did you mean %q?", s)
			} else {
				detail += " Run `runbook modules` to list the modules."
			}
			d.errorf(mb.TypeRange.Ptr(), "Unknown module", "%s", detail)
			continue
		}
		if len(mb.Labels) > 0 {
			d.errorf(mb.LabelRanges[0].Ptr(), "Unexpected label", "A module block takes no label: write %s { ... }.", mb.Type)
		}
		if t.Body != nil {
			d.errorf(mb.TypeRange.Ptr(), "More than one module in a task",
				"This %s already runs the %s module (at %s); a %s runs exactly one module. Split it into two.",
				t.Kind(), t.Module, t.ModuleRange.String(), t.Kind())
			continue
		}
		t.Module, t.Body, t.ModuleRange = mb.Type, mb.Body, mb.TypeRange
	}
	if t.Body == nil && len(content.Blocks) == 0 {
		d.errorf(t.DeclRange.Ptr(), "Missing module block",
			"A %s runs one module, written as a block inside it, e.g. command { cmd = \"uptime\" }. Run `runbook modules` to list them.", t.Kind())
	}

	attrs := content.Attributes
	if a, ok := attrs["when"]; ok {
		t.When = a.Expr
	}
	if a, ok := attrs["for_each"]; ok {
		t.ForEach = a.Expr
	}
	if a, ok := attrs["until"]; ok {
		t.Until = a.Expr
	}
	if a, ok := attrs["changed_when"]; ok {
		t.ChangedWhen = a.Expr
	}
	if a, ok := attrs["failed_when"]; ok {
		t.FailedWhen = a.Expr
	}
	if a, ok := attrs["depends_on"]; ok {
		if t.IsHandler {
			d.errorf(a.NameRange.Ptr(), "Unsupported argument", "Handlers run in the order they were notified; depends_on is for tasks.")
		} else {
			t.DependsOn = d.refList(a, ctx)
		}
	}
	if a, ok := attrs["notify"]; ok {
		t.Notify = d.refList(a, ctx)
	}
	if a, ok := attrs["tags"]; ok {
		for _, r := range d.refList(a, ctx) {
			t.Tags = append(t.Tags, r.Name)
		}
	}
	if a, ok := attrs["become"]; ok {
		if v, ok := d.static(a, ctx, cty.Bool); ok {
			b := v.True()
			t.Become = &b
		}
	}
	if a, ok := attrs["become_user"]; ok {
		if v, ok := d.static(a, ctx, cty.String); ok {
			t.BecomeUser = v.AsString()
		}
	}
	if a, ok := attrs["become_method"]; ok {
		t.BecomeMethod = d.becomeMethod(a, ctx)
	}
	if a, ok := attrs["timeout"]; ok {
		t.Timeout = d.duration(a, ctx)
	}
	if a, ok := attrs["delay"]; ok {
		t.Delay = d.duration(a, ctx)
	}
	if a, ok := attrs["retries"]; ok {
		if v, ok := d.static(a, ctx, cty.Number); ok {
			n, acc := v.AsBigFloat().Int64()
			if acc != 0 || n < 0 || n > 1000 {
				d.errorf(a.Expr.Range().Ptr(), "Invalid retries", "retries must be a whole number from 0 to 1000.")
			} else {
				t.Retries = int(n)
			}
		}
	}
	if a, ok := attrs["on_failure"]; ok {
		if v, ok := d.static(a, ctx, cty.String); ok {
			switch s := v.AsString(); s {
			case OnFailureStopHost, OnFailureContinue:
				t.OnFailure = s
			default:
				d.errorf(a.Expr.Range().Ptr(), "Invalid on_failure", "on_failure is %q or %q, not %q.", OnFailureStopHost, OnFailureContinue, s)
			}
		}
	}
	if a, ok := attrs["check_mode"]; ok {
		if v, ok := d.static(a, ctx, cty.Bool); ok {
			b := v.True()
			t.CheckMode = &b
		}
	}
	if a, ok := attrs["sensitive"]; ok {
		if v, ok := d.static(a, ctx, cty.Bool); ok {
			t.Sensitive = v.True()
		}
	}
	if a, ok := attrs["run_once"]; ok {
		if v, ok := d.static(a, ctx, cty.Bool); ok {
			t.RunOnce = v.True()
			if t.RunOnce && t.IsHandler {
				d.errorf(a.Expr.Range().Ptr(), "Invalid run_once", "run_once is for tasks; a handler runs once per notified host.")
			}
		}
	}
	if t.Until != nil && t.Retries == 0 {
		d.add(&hcl.Diagnostic{
			Severity: hcl.DiagWarning,
			Summary:  "until without retries",
			Detail:   "until is checked once and never retried unless retries is set.",
			Subject:  attrs["until"].NameRange.Ptr(),
		})
	}
	return t
}

// otherProperties lists, as unlabelled blocks, the properties of a body in a syntax other
// than the native one (JSON) that schema does not name. JSON cannot tell a block from an
// attribute; the names are found by reading what remains as attributes.
func otherProperties(body hcl.Body, schema *hcl.BodySchema) []hcl.BlockHeaderSchema {
	_, rest, _ := body.PartialContent(schema)
	attrs, _ := rest.JustAttributes()
	names := make([]string, 0, len(attrs))
	for n := range attrs {
		names = append(names, n)
	}
	sort.Strings(names)
	out := make([]hcl.BlockHeaderSchema, 0, len(names))
	for _, n := range names {
		out = append(out, hcl.BlockHeaderSchema{Type: n})
	}
	return out
}

// refList reads a list of names (depends_on, notify, tags), keeping each element's range.
func (d *decoder) refList(a *hcl.Attribute, ctx *hcl.EvalContext) []Ref {
	exprs, diags := hcl.ExprList(a.Expr)
	if diags.HasErrors() {
		// Not a literal list: it may still evaluate to one.
		if v, ok := d.static(a, ctx, cty.List(cty.String)); ok {
			var out []Ref
			for _, e := range v.AsValueSlice() {
				out = append(out, Ref{Name: e.AsString(), Range: a.Expr.Range()})
			}
			return out
		}
		return nil
	}
	var out []Ref
	for _, e := range exprs {
		// A bare name (native syntax only: in JSON every name is a string, and a string is
		// also a traversal).
		if te, ok := e.(*hclsyntax.ScopeTraversalExpr); ok && len(te.Traversal) == 1 {
			tr := te.Traversal
			d.errorf(e.Range().Ptr(), "Invalid reference", "%s lists names as strings: write %q.", a.Name, tr.RootName())
			continue
		}
		if !d.checkRefs(e, scope{}) {
			continue
		}
		v, vdiags := e.Value(ctx)
		d.add(vdiags...)
		if vdiags.HasErrors() || !v.IsWhollyKnown() {
			continue
		}
		v, _ = v.Unmark()
		s, err := convert.Convert(v, cty.String)
		if err != nil || s.IsNull() {
			d.errorf(e.Range().Ptr(), "Incorrect attribute value type", "Each element of %s must be a string.", a.Name)
			continue
		}
		out = append(out, Ref{Name: s.AsString(), Range: e.Range()})
	}
	return out
}

func (d *decoder) duration(a *hcl.Attribute, ctx *hcl.EvalContext) time.Duration {
	v, ok := d.static(a, ctx, cty.String)
	if !ok {
		return 0
	}
	dur, err := time.ParseDuration(v.AsString())
	if err != nil || dur < 0 {
		d.errorf(a.Expr.Range().Ptr(), "Invalid duration",
			"%s must be a duration such as \"30s\", \"5m\" or \"1h30m\"; %q is not one.", a.Name, v.AsString())
		return 0
	}
	return dur
}
