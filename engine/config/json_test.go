package config

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"

	"github.com/runbook/runbook/engine/diag"
)

// nativeToJSON converts a runbook file from HCL's native syntax to its JSON syntax: blocks
// become (arrays of) objects keyed by their labels, literals stay literals, strings are
// templates with "${" and "%{" escaped, and every other expression is written as a string
// holding one interpolation of its native source. A variable's type is a string holding
// the type expression, as the JSON syntax writes it.
func nativeToJSON(src []byte, name string) ([]byte, error) {
	f, diags := hclsyntax.ParseConfig(src, name, hcl.InitialPos)
	if diags.HasErrors() {
		return nil, diags
	}
	c := converter{src: src}
	var buf bytes.Buffer
	c.body(&buf, f.Body.(*hclsyntax.Body), "")
	var out bytes.Buffer
	if err := json.Indent(&out, buf.Bytes(), "", "  "); err != nil {
		return nil, fmt.Errorf("%s: %w\n%s", name, err, buf.String())
	}
	return out.Bytes(), nil
}

type converter struct{ src []byte }

func (c converter) text(r hcl.Range) string { return string(c.src[r.Start.Byte:r.End.Byte]) }

func jstr(s string) string {
	b, err := json.Marshal(s)
	if err != nil {
		panic(err)
	}
	return string(b)
}

func (c converter) body(w *bytes.Buffer, b *hclsyntax.Body, blockType string) {
	w.WriteString("{")
	first := true
	sep := func() {
		if !first {
			w.WriteString(",")
		}
		first = false
	}
	attrs := make([]*hclsyntax.Attribute, 0, len(b.Attributes))
	for _, a := range b.Attributes {
		attrs = append(attrs, a)
	}
	sort.Slice(attrs, func(i, j int) bool { return attrs[i].SrcRange.Start.Byte < attrs[j].SrcRange.Start.Byte })
	for _, a := range attrs {
		sep()
		w.WriteString(jstr(a.Name) + ":")
		if blockType == "variable" && a.Name == "type" {
			w.WriteString(jstr(c.text(a.Expr.Range())))
			continue
		}
		c.expr(w, a.Expr)
	}
	var types []string
	byType := map[string][]*hclsyntax.Block{}
	for _, blk := range b.Blocks {
		if _, ok := byType[blk.Type]; !ok {
			types = append(types, blk.Type)
		}
		byType[blk.Type] = append(byType[blk.Type], blk)
	}
	for _, ty := range types {
		sep()
		w.WriteString(jstr(ty) + ":[")
		for i, blk := range byType[ty] {
			if i > 0 {
				w.WriteString(",")
			}
			for _, l := range blk.Labels {
				w.WriteString("{" + jstr(l) + ":")
			}
			c.body(w, blk.Body, blk.Type)
			w.WriteString(strings.Repeat("}", len(blk.Labels)))
		}
		w.WriteString("]")
	}
	w.WriteString("}")
}

// escapeTemplate keeps literal text literal in a JSON string, which is a template.
func escapeTemplate(s string) string {
	s = strings.ReplaceAll(s, "${", "$${")
	return strings.ReplaceAll(s, "%{", "%%{")
}

func (c converter) expr(w *bytes.Buffer, e hclsyntax.Expression) {
	switch e := e.(type) {
	case *hclsyntax.LiteralValueExpr:
		w.WriteString(literalJSON(e.Val))
		return
	case *hclsyntax.TemplateExpr:
		if strings.Contains(c.text(e.SrcRange), "%{") {
			break // directives: kept as one interpolation of the native template
		}
		var s strings.Builder
		for _, p := range e.Parts {
			if lit, ok := p.(*hclsyntax.LiteralValueExpr); ok && lit.Val.Type() == cty.String {
				s.WriteString(escapeTemplate(lit.Val.AsString()))
				continue
			}
			s.WriteString("${" + c.text(p.Range()) + "}")
		}
		w.WriteString(jstr(s.String()))
		return
	case *hclsyntax.TemplateWrapExpr:
		w.WriteString(jstr("${" + c.text(e.Wrapped.Range()) + "}"))
		return
	case *hclsyntax.TupleConsExpr:
		w.WriteString("[")
		for i, x := range e.Exprs {
			if i > 0 {
				w.WriteString(",")
			}
			c.expr(w, x)
		}
		w.WriteString("]")
		return
	case *hclsyntax.ObjectConsExpr:
		w.WriteString("{")
		for i, it := range e.Items {
			if i > 0 {
				w.WriteString(",")
			}
			key := it.KeyExpr.(*hclsyntax.ObjectConsKeyExpr)
			if kw := hcl.ExprAsKeyword(key.Wrapped); kw != "" && !key.ForceNonLiteral {
				w.WriteString(jstr(kw))
			} else if v, d := key.Wrapped.Value(nil); !d.HasErrors() && v.Type() == cty.String {
				w.WriteString(jstr(escapeTemplate(v.AsString())))
			} else {
				w.WriteString(jstr("${" + c.text(key.Wrapped.Range()) + "}"))
			}
			w.WriteString(":")
			c.expr(w, it.ValueExpr)
		}
		w.WriteString("}")
		return
	}
	w.WriteString(jstr("${" + c.text(e.Range()) + "}"))
}

func literalJSON(v cty.Value) string {
	switch {
	case v.IsNull():
		return "null"
	case v.Type() == cty.Bool:
		return fmt.Sprint(v.True())
	case v.Type() == cty.Number:
		return v.AsBigFloat().Text('f', -1)
	case v.Type() == cty.String:
		return jstr(escapeTemplate(v.AsString()))
	}
	panic("unexpected literal " + v.GoString())
}

// exampleRunbooks lists runbooks/examples/* and the other runbook directories of
// runbooks/ (bigip-ve-kvm, bigip-ve-sites), whose modules are under runbooks/modules.
func exampleRunbooks(t *testing.T) []string {
	t.Helper()
	root := filepath.Join("..", "..", "runbooks")
	top, err := os.ReadDir(root)
	if err != nil {
		t.Fatal(err)
	}
	var paths []string
	for _, e := range top {
		if e.IsDir() && e.Name() != "examples" && e.Name() != "modules" {
			paths = append(paths, filepath.Join(root, e.Name()))
		}
	}
	entries, err := os.ReadDir(filepath.Join(root, "examples"))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if e.IsDir() || strings.HasSuffix(e.Name(), ".hcl") {
			paths = append(paths, filepath.Join(root, "examples", e.Name()))
		}
	}
	return paths
}

// convertModules writes a JSON copy of every runbook module under runbooks/modules into
// dir/modules, so that a root copied into dir finds ../modules/NAME as the original does.
func convertModules(t *testing.T, dir string) {
	t.Helper()
	src := filepath.Join("..", "..", "runbooks", "modules")
	entries, err := os.ReadDir(src)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(dir, "modules"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if e.IsDir() {
			convertRunbook(t, filepath.Join(src, e.Name()), filepath.Join(dir, "modules"))
		}
	}
}

// convertRunbook writes a JSON copy of the runbook at path into dir: every .hcl file as
// .hcl.json, every other file (templates) as it is. It returns the copy's path.
func convertRunbook(t *testing.T, path, dir string) string {
	t.Helper()
	info, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	one := func(src, dst string) string {
		b, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		if strings.HasSuffix(src, ".hcl") {
			if b, err = nativeToJSON(b, src); err != nil {
				t.Fatal(err)
			}
			dst += ".json"
		}
		if err := os.WriteFile(dst, b, 0o644); err != nil {
			t.Fatal(err)
		}
		return dst
	}
	if !info.IsDir() {
		return one(path, filepath.Join(dir, filepath.Base(path)))
	}
	out := filepath.Join(dir, filepath.Base(path))
	if err := os.Mkdir(out, 0o755); err != nil {
		t.Fatal(err)
	}
	entries, err := os.ReadDir(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if !e.IsDir() {
			one(filepath.Join(path, e.Name()), filepath.Join(out, e.Name()))
		} else {
			// a runbook module the runbook calls
			convertRunbook(t, filepath.Join(path, e.Name()), out)
		}
	}
	return out
}

// fixtureHost is a host of the fixed inventory the plans are evaluated against.
type fixtureHost struct {
	name   string
	groups []string
	vars   cty.Value
	facts  cty.Value
}

func fixtureHosts() []fixtureHost {
	nic := func(master string, width int) cty.Value {
		return cty.ObjectVal(map[string]cty.Value{
			"master": cty.StringVal(master),
			"pcie":   cty.ObjectVal(map[string]cty.Value{"width": cty.NumberIntVal(int64(width)), "generation": cty.NumberIntVal(3)}),
		})
	}
	facts := cty.ObjectVal(map[string]cty.Value{
		"hostname": cty.StringVal("hv1"),
		"os": cty.ObjectVal(map[string]cty.Value{
			"family": cty.StringVal("redhat"), "id": cty.StringVal("rocky"), "pretty_name": cty.StringVal("Rocky Linux 8"),
		}),
		"network": cty.ObjectVal(map[string]cty.Value{"network_scripts_available": cty.True}),
		"management": cty.ObjectVal(map[string]cty.Value{
			"how": cty.StringVal("route"), "nics": cty.ListVal([]cty.Value{cty.StringVal("eno1")}),
		}),
		"nics": cty.ObjectVal(map[string]cty.Value{
			"eno1": nic("", 4), "ens1f0": nic("bond0", 8), "ens1f1": nic("bond0", 8), "ens2f0": nic("", 16),
		}),
		"pcie_devices": cty.TupleVal([]cty.Value{cty.ObjectVal(map[string]cty.Value{
			"address":               cty.StringVal("0000:3b:00.0"),
			"ports":                 cty.ListVal([]cty.Value{cty.StringVal("ens2f0")}),
			"oversubscribed":        cty.True,
			"port_speed_total_gbps": cty.NumberIntVal(200),
			"slot_bandwidth_gbps":   cty.NumberIntVal(126),
		})}),
	})
	return []fixtureHost{
		{
			name:   "hv1",
			groups: []string{"all", "hypervisors", "web", "db", "east"}, // east: a site of bigip-ve-sites
			vars: cty.ObjectVal(map[string]cty.Value{
				"data_nics":       cty.ListVal([]cty.Value{cty.StringVal("ens1f0"), cty.StringVal("ens1f1")}),
				"hostname":        cty.StringVal("hv1.example.net"),
				"network_backend": cty.StringVal("ifupdown"),
				"sriov_pf":        cty.StringVal("ens2f0"),
				"guest_domain":    cty.StringVal("bigip1"),
				"jumbo_frames":    cty.True,
				"guest_nics": cty.TupleVal([]cty.Value{
					cty.ObjectVal(map[string]cty.Value{"type": cty.StringVal("bridge"), "source": cty.StringVal("br-mgmt")}),
					cty.ObjectVal(map[string]cty.Value{"type": cty.StringVal("hostdev"), "source": cty.StringVal("0000:3b:02.1"), "vlan": cty.NumberIntVal(101)}),
				}),
			}),
			facts: facts,
		},
		{name: "bare", groups: []string{"all", "west"}, vars: cty.EmptyObjectVal, facts: cty.NilVal},
	}
}

// planDump renders what a runbook plans: its variables and locals, its plays and their
// tasks with every meta-argument, and, for each host of the fixed inventory, each task's
// condition, items and module arguments as evaluated for that host. Ranges are left out:
// they are what differs between the two syntaxes. evaluated counts the module argument
// values computed without error.
func planDump(t *testing.T, rb *Runbook) (dump string, evaluated int) {
	t.Helper()
	var b strings.Builder
	p := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }
	diags := func(ds hcl.Diagnostics) string {
		var s []string
		for _, d := range ds {
			// A detail may name a range (try lists where each expression failed).
			s = append(s, d.Summary+": "+atRange.ReplaceAllString(d.Detail, "(at …)"))
		}
		// The syntaxes decode a body's attributes in different orders.
		sort.Strings(s)
		return strings.Join(s, "; ")
	}
	for _, v := range rb.Variables {
		def := "required"
		if v.Default != cty.NilVal {
			def = v.Default.GoString()
		}
		p("variable %s type=%s default=%s sensitive=%v validations=%d %q", v.Name, v.Type.GoString(), def, v.Sensitive, len(v.Validations), v.Description)
	}
	names := make([]string, 0, len(rb.localValues))
	for n := range rb.localValues {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		p("local %s = %s", n, rb.localValues[n].GoString())
	}
	self := cty.ObjectVal(map[string]cty.Value{
		"rc": cty.NumberIntVal(0), "stdout": cty.StringVal("ok\n"), "changed": cty.True, "failed": cty.False,
	})
	for _, pl := range rb.Plays {
		p("play %q hosts=%q become=%s user=%q method=%q serial=%v maxfail=%s forks=%d strategy=%q vars=%v usesfacts=%v",
			pl.Name, pl.Hosts, boolp(pl.Become), pl.BecomeUser, pl.BecomeMethod, pl.Serial, floatp(pl.MaxFailPercentage),
			pl.Forks, pl.Strategy, pl.VarsOrder, pl.VarsUseFacts)
		var order []string
		for _, t := range pl.Order() {
			order = append(order, t.Name)
		}
		p("  order %q", order)
		dumpInstances(p, pl.Instances)
		for _, t := range append(append([]*Task{}, pl.Tasks...), pl.Handlers...) {
			inst := ""
			if t.Instance != nil {
				inst = t.Instance.Name + " in " + filepath.Base(t.Instance.Dir)
			}
			var blocks []string
			for b := t.Block; b != nil; b = b.Parent {
				blocks = append(blocks, fmt.Sprintf("%s %q section=%q when=%v for_each=%v each=%v facts=%v", b.Kind(), b.Name, b.Section, b.When != nil, b.ForEach != nil, b.Each != nil, b.UsesFacts))
			}
			p("  %s %q local=%q instance=%q section=%q blocks=%q", t.Kind(), t.Name, t.LocalName, inst, t.Section, blocks)
			p("  %s %q module=%s when=%v for_each=%v until=%v changed_when=%v failed_when=%v depends_on=%v notify=%v tags=%q become=%s user=%q method=%q timeout=%v retries=%d delay=%v on_failure=%s check_mode=%s sensitive=%v run_once=%v facts=%v",
				t.Kind(), t.Name, t.Module, t.When != nil, t.ForEach != nil, t.Until != nil, t.ChangedWhen != nil, t.FailedWhen != nil,
				refNames(t.DependsOn), refNames(t.Notify), t.Tags, boolp(t.Become), t.BecomeUser, t.BecomeMethod,
				t.Timeout, t.Retries, t.Delay, t.OnFailure, boolp(t.CheckMode), t.Sensitive, t.RunOnce, t.UsesFacts)
		}
		for _, h := range fixtureHosts() {
			vars, vd := rb.HostVarsFacts(pl, h.name, h.groups, h.vars, h.facts)
			p("  host %s vars=%s %s", h.name, vars.GoString(), diags(vd))
			// The when of each module call and block, where the host reaches it (the
			// results of the tasks before it are not needed by the runbooks compared).
			for _, b := range pl.Blocks {
				sc := Scope{Host: h.name, Groups: h.groups, Vars: vars, Facts: h.facts, Instance: b.Instance, Play: pl, Each: b.Each}
				when, wd := b.WhenTrue(rb.EvalContext(sc))
				p("    %s %s when=%v %s for_each=%v", b.Kind(), b.Name, when, diags(wd), b.ForEach != nil)
			}
			results := map[string]cty.Value{}
			for _, t := range append(append([]*Task{}, pl.Order()...), pl.Handlers...) {
				sc := Scope{Host: h.name, Groups: h.groups, Vars: vars, Facts: h.facts, Tasks: results, Instance: t.Instance, Play: pl}
				// the blocks around the task, outermost first: their when, and the first
				// element of their for_each as each
				var chain []*Block
				for b := t.Block; b != nil; b = b.Parent {
					chain = append([]*Block{b}, chain...)
				}
				for _, b := range chain {
					bs := sc
					bs.Instance = b.Instance
					if b.Each != nil {
						bs.Each = b.Each
					}
					bctx := rb.EvalContext(bs)
					when, wd := b.WhenTrue(bctx)
					items, id := b.Items(bctx)
					p("    %s %s when=%v %s items=%d %s", b.Kind(), b.Name, when, diags(wd), len(items), diags(id))
					if len(items) > 0 {
						sc.Each = &items[0]
					}
				}
				ctx := rb.EvalContext(sc)
				when, wd := t.WhenTrue(ctx)
				items, id := t.Items(ctx)
				p("    %s when=%v %s items=%d %s", t.Name, when, diags(wd), len(items), diags(id))
				eval := func(label string, sc Scope) {
					ctx := rb.EvalContext(sc)
					_, args, ad := t.Args(ctx)
					if !ad.HasErrors() {
						evaluated++
					}
					sc.Self = self
					vctx := rb.EvalContext(sc)
					ch, hch, fl, hfl, verd := t.Verdict(vctx)
					until, ud := t.UntilTrue(vctx)
					p("      %s args=%s %s verdict=%v,%v,%v,%v %s until=%v %s", label, args.GoString(), diags(ad), ch, hch, fl, hfl, diags(verd), until, diags(ud))
				}
				if t.ForEach == nil {
					label := "once"
					if sc.Each != nil {
						label = "in element " + sc.Each.Key.GoString()
					}
					eval(label, sc)
				}
				for _, it := range items {
					sc := sc
					sc.Each = &it
					eval("item "+it.Key.GoString()+"="+it.Value.GoString(), sc)
				}
				results[t.Name] = cty.ObjectVal(map[string]cty.Value{
					"changed": cty.True, "failed": cty.False, "rc": cty.NumberIntVal(0),
					"stdout": cty.StringVal("out"), "stdout_lines": cty.ListVal([]cty.Value{cty.StringVal("out")}),
				})
			}
		}
	}
	return b.String(), evaluated
}

// dumpInstances renders the runbook module instances of a play, nested: each one's name,
// module directory, blocks' meta-arguments, variable values, locals and outputs.
func dumpInstances(p func(string, ...any), insts []*Instance) {
	for _, in := range insts {
		p("  instance %s call=%s key=%s dir=%s outputs=%d", in.Name, in.Call, in.Key.GoString(), filepath.Base(in.Dir), len(in.Outputs))
		for _, v := range in.rb.Variables {
			p("    variable %s type=%s sensitive=%v validations=%d = %s", v.Name, v.Type.GoString(), v.Sensitive, len(v.Validations), in.rb.varValues[v.Name].GoString())
		}
		names := make([]string, 0, len(in.rb.localValues))
		for n := range in.rb.localValues {
			names = append(names, n)
		}
		sort.Strings(names)
		for _, n := range names {
			p("    local %s = %s", n, in.rb.localValues[n].GoString())
		}
		for _, o := range in.Outputs {
			p("    output %s sensitive=%v", o.Name, o.Sensitive)
		}
		dumpInstances(p, in.Children)
	}
}

var atRange = regexp.MustCompile(`\(at [^)]*\)`)

func boolp(b *bool) string {
	if b == nil {
		return "unset"
	}
	return fmt.Sprint(*b)
}

func floatp(f *float64) string {
	if f == nil {
		return "unset"
	}
	return fmt.Sprint(*f)
}

func refNames(rs []Ref) []string {
	var out []string
	for _, r := range rs {
		out = append(out, r.Name)
	}
	return out
}

// TestJSONRoundTrip converts every example runbook to HCL's JSON syntax and checks that
// the copy loads without a diagnostic to the same plan: the same variables, locals, plays,
// tasks and meta-arguments, and the same conditions, items and module arguments for each
// host of a fixed inventory with facts.
func TestJSONRoundTrip(t *testing.T) {
	for _, path := range exampleRunbooks(t) {
		t.Run(filepath.Base(path), func(t *testing.T) {
			in := Inputs{AllowMissing: true}
			native, diags := Load(path, in)
			if len(diags) > 0 {
				t.Fatalf("native: %s", diags)
			}
			tmp := t.TempDir()
			convertModules(t, tmp)
			jpath := convertRunbook(t, path, tmp)
			js, diags := Load(jpath, in)
			if len(diags) > 0 {
				var b strings.Builder
				(&diag.Printer{Files: js.Files}).Text(&b, diags)
				t.Fatalf("JSON copy:\n%s", b.String())
			}
			for name := range js.Files {
				if !IsJSONFile(name) {
					t.Errorf("the copy loaded %s, which is not JSON", name)
				}
			}
			want, n := planDump(t, native)
			got, _ := planDump(t, js)
			if n == 0 {
				t.Fatalf("no module arguments evaluated without error: the comparison is empty\n%s", want)
			}
			if got != want {
				t.Errorf("the JSON copy plans differently:\n%s", firstDifference(want, got))
			}
			t.Logf("%d module argument values compared", n)
		})
	}
}

// firstDifference shows the first line where two dumps differ, with the line before it.
func firstDifference(want, got string) string {
	w, g := strings.Split(want, "\n"), strings.Split(got, "\n")
	for i := 0; i < len(w) || i < len(g); i++ {
		var wl, gl string
		if i < len(w) {
			wl = w[i]
		}
		if i < len(g) {
			gl = g[i]
		}
		if wl != gl {
			prev := ""
			if i > 0 {
				prev = w[i-1]
			}
			return fmt.Sprintf("after: %s\nnative: %s\nJSON:   %s", prev, wl, gl)
		}
	}
	return ""
}

// TestJSONErrors: mistakes in a runbook file in JSON syntax are reported like those in
// native syntax, located in the JSON (line and column of the key or value at fault).
func TestJSONErrors(t *testing.T) {
	task := func(body string) string {
		return `{"play": {"p": {"hosts": "all", "task": {"t": ` + body + `}}}}`
	}
	tests := []struct {
		name, src, summary, detail string
		at                         string // the text the subject starts at
	}{
		{"unknown module", task(`{"comand": {"cmd": "true"}}`), "Unknown module", `Did you mean "command"?`, `"comand"`},
		{"unknown argument", task(`{"command": {"cmd": "true", "cmdd": 1}}`), "Extraneous JSON object property", `"cmdd"`, `"cmdd"`},
		{"two modules", task(`{"command": {"cmd": "true"}, "shell": {"cmd": "x"}}`), "More than one module in a task", "", `"shell"`},
		{"no module", task(`{"tags": ["x"]}`), "Missing module block", "", `{"tags"`},
		{"module given as a string", task(`{"command": "uptime"}`), "Incorrect JSON value type", "", `"uptime"`},
		{"undeclared task", task(`{"depends_on": ["nope"], "command": {"cmd": "true"}}`), "Reference to undeclared task", `"nope"`, `"nope"`},
		{"unknown variable", task(`{"command": {"cmd": "${foo.bar}"}}`), "Unknown variable", `"foo"`, `foo.bar`},
		{"bad expression", task(`{"command": {"cmd": "${1 +}"}}`), "Invalid expression", "", `}"}`},
		{"bad value", task(`{"file": {"path": "/x", "state": "dir"}}`), `Invalid value for "state"`, `"directory"`, `"dir"`},
		{"condition written as text", task(`{"when": "host.vars.x == 1", "command": {"cmd": "true"}}`), "Invalid when", `"${host.vars.x == 1}"`, `"host.vars`},
		{"for_each written as text", task(`{"for_each": "var.list", "command": {"cmd": "true"}}`), "Invalid for_each", `"${var.list}"`, `"var.list"`},
		{"handler with depends_on", `{"play": {"p": {"hosts": "all", "handler": {"h": {"depends_on": ["x"], "command": {"cmd": "true"}}}}}}`, "Unsupported argument", "depends_on is for tasks", `"depends_on"`},
		{"default refers to a variable", `{"variable": {"v": {"default": "${var.w}"}}}`, "Variables not allowed", "must be a literal", `"${var.w}"`},
		{"unclosed object", `{"play": {"p": {"hosts": "all"}}`, "Unclosed object", "", `{"play"`},
		{"play without hosts", `{"play": {"p": {"task": {"t": {"command": {"cmd": "true"}}} } } }`, "Missing required argument", `"hosts"`, `} }`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, diags := Parse([]Source{{Name: "site.hcl.json", Src: []byte(tt.src)}}, Inputs{AllowMissing: true})
			var d *hcl.Diagnostic
			for _, x := range diags {
				if x.Severity == hcl.DiagError && x.Summary == tt.summary {
					d = x
					break
				}
			}
			if d == nil {
				t.Fatalf("no %q in %v", tt.summary, diags)
			}
			if !strings.Contains(d.Detail, tt.detail) {
				t.Errorf("detail %q, want it to hold %q", d.Detail, tt.detail)
			}
			if d.Subject == nil || d.Subject.Filename != "site.hcl.json" || d.Subject.Start.Line != 1 ||
				d.Subject.Start.Column != d.Subject.Start.Byte+1 || !strings.HasPrefix(tt.src[d.Subject.Start.Byte:], tt.at) {
				t.Errorf("subject %v, want it at %s (first at column %d)", d.Subject, tt.at, strings.Index(tt.src, tt.at)+1)
			}
		})
	}
}

// A file that is neither .hcl nor .hcl.json is refused by name, and so is JSON in a .hcl
// file (as a syntax error of the native syntax).
func TestJSONFileNames(t *testing.T) {
	src := []byte(`{"play": {"p": {"hosts": "all", "task": {"t": {"command": {"cmd": "true"}}}}}}`)
	if rb, diags := Parse([]Source{{Name: "site.hcl.json", Src: src}}, Inputs{}); diags.HasErrors() || len(rb.Plays) != 1 || rb.Plays[0].Tasks[0].Module != "command" {
		t.Fatalf("site.hcl.json: %v", diags)
	}
	if _, diags := Parse([]Source{{Name: "site.json", Src: src}}, Inputs{}); !diags.HasErrors() || diags[0].Summary != "Not a runbook file" || !strings.Contains(diags[0].Detail, ".hcl.json") {
		t.Errorf("site.json: %v", diags)
	}
	if _, diags := Parse([]Source{{Name: "site.hcl", Src: src}}, Inputs{}); !diags.HasErrors() {
		t.Error("JSON in a .hcl file loaded")
	}
}

// An error about a module argument computed from a sensitive value hides its detail in a
// JSON module body as in a native one: the late, per-host decode finds the argument's
// expression in either syntax.
func TestJSONSensitiveArgumentNotShown(t *testing.T) {
	const token = "Zq7x-Kx9w-Pm3j"
	src := `{
  "variable": {"token": {"type": "string", "sensitive": true, "default": "` + token + `"}},
  "play": {"p": {"hosts": "all", "task": {"t": {
    "file": {"path": "/tmp/x", "state": "${lower(\"${var.token}${host.name}\")}"}
  }}}}
}`
	rb, diags := Parse([]Source{{Name: "s.hcl.json", Src: []byte(src)}}, Inputs{})
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	_, _, diags = rb.Plays[0].Task("t").Args(rb.EvalContext(Scope{Host: "h1", Groups: []string{"all"}}))
	if !diags.HasErrors() || diags[0].Summary != `Invalid value for "state"` {
		t.Fatalf("diagnostics %v", diags)
	}
	if w := showsPart(diags.Error(), token); w != "" {
		t.Errorf("the diagnostics show %q: %v", w, diags)
	}
	if diags[0].Detail != "(the value is sensitive and not shown)" {
		t.Errorf("detail %q", diags[0].Detail)
	}
	if s := diags[0].Subject; s == nil || s.Filename != "s.hcl.json" || s.Start.Line != 4 {
		t.Errorf("subject %v, want s.hcl.json line 4", s)
	}
}

var fence = regexp.MustCompile("(?s)```(hcl|json)\n(.*?)```")

// TestDocsJSONExamples loads every ```json example in docs/*.md that is a runbook (an
// object with a "play" property) as a .hcl.json file; one that follows a ```hcl runbook must plan like
// it, since the docs show it as the same runbook.
func TestDocsJSONExamples(t *testing.T) {
	docs, _ := filepath.Glob(filepath.Join("..", "..", "docs", "*.md"))
	n := 0
	for _, doc := range docs {
		src, err := os.ReadFile(doc)
		if err != nil {
			t.Fatal(err)
		}
		var prev []byte // the previous fence, if it is an hcl runbook
		for i, m := range fence.FindAllSubmatch(src, -1) {
			isPlay := regexp.MustCompile(`(?m)^play "`).Match(m[2])
			if string(m[1]) == "hcl" {
				prev = nil
				if isPlay {
					prev = m[2]
				}
				continue
			}
			var top map[string]json.RawMessage
			if json.Unmarshal(m[2], &top) != nil || top["play"] == nil {
				prev = nil
				continue
			}
			n++
			name := fmt.Sprintf("%s#%d.hcl.json", filepath.Base(doc), i)
			js, diags := Parse([]Source{{Name: name, Src: m[2]}}, Inputs{AllowMissing: true})
			if len(diags) > 0 {
				var b strings.Builder
				(&diag.Printer{Files: js.Files}).Text(&b, diags)
				t.Errorf("%s:\n%s", name, b.String())
				continue
			}
			if prev != nil {
				native, diags := Parse([]Source{{Name: name + ".hcl", Src: prev}}, Inputs{AllowMissing: true})
				if len(diags) > 0 {
					t.Fatalf("%s.hcl: %v", name, diags)
				}
				want, _ := planDump(t, native)
				got, _ := planDump(t, js)
				if got != want {
					t.Errorf("%s plans unlike the hcl example before it:\n%s", name, firstDifference(want, got))
				}
			}
			prev = nil
		}
	}
	if n < 1 {
		t.Errorf("found no JSON runbook example in docs/")
	}
}

// FuzzParseJSON feeds arbitrary bytes to the loader as a runbook file in JSON syntax, and
// prints the diagnostics as the CLI does (which walks the JSON for their context): neither
// may panic.
func FuzzParseJSON(f *testing.F) {
	for _, path := range []string{
		"../../runbooks/bigip-ve-kvm/main.hcl",
		"../../runbooks/bigip-ve-sites/main.hcl",
		"../../runbooks/modules/bigip-hypervisor/main.hcl",
		"../../runbooks/examples/for_each.hcl",
		"../../runbooks/examples/handlers.hcl",
		"../../runbooks/examples/variables.hcl",
	} {
		src, err := os.ReadFile(path)
		if err != nil {
			f.Fatal(err)
		}
		js, err := nativeToJSON(src, path)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(js)
	}
	f.Add([]byte(`{"play": {"p": {"hosts": "all", "task": {"t": {"command": {"cmd": "${1 +}"}}}}}}`))
	f.Add([]byte(`{"play": {"p": {"hosts": "all", "task": [{"t": {"when": "x", "command": "y", "shell": {}}}]}}}`))
	f.Add([]byte(`{"variable": {"v": {"type": "map(object({a=optional(string)}))", "default": "${var.v}"}}}`))
	f.Add([]byte(`{"play": {"p": {"hosts": "all", "task": {"t": {"depends_on": "${[\"a\"]}", "command": {}}}}`))
	f.Fuzz(func(t *testing.T, src []byte) {
		rb, diags := Parse([]Source{{Name: "fuzz.hcl.json", Src: src}}, Inputs{AllowMissing: true})
		if rb == nil && !diags.HasErrors() {
			t.Fatal("no runbook and no error")
		}
		var b strings.Builder
		(&diag.Printer{Files: rb.Files}).Text(&b, diags)
	})
}

// A variables file in JSON syntax (its name ends in .json) gives values like an HCL one,
// and a diagnostic about it names the place without quoting its lines, which hold the
// values of sensitive variables.
func TestJSONVarFile(t *testing.T) {
	src := `
variable "token" {
  type      = string
  sensitive = true
}
variable "port" {
  type      = number
  sensitive = true
}
` + sensitivePlay(`command { cmd = "true" }`)
	path := filepath.Join(t.TempDir(), "secrets.json")
	if err := os.WriteFile(path, []byte(`{"token": "`+secret+`", "port": 2222}`), 0o600); err != nil {
		t.Fatal(err)
	}
	rb, diags := Parse([]Source{{Name: "s.hcl", Src: []byte(src)}}, Inputs{VarFiles: []string{path}})
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	if v := rb.varValues["token"]; !v.HasMark(Sensitive) {
		t.Errorf("token %#v is not sensitive", v)
	} else if v, _ := v.Unmark(); v.AsString() != secret {
		t.Errorf("token %#v", v)
	}
	tests := []struct {
		name, vars, want string
	}{
		{"a syntax error", `{"token": "` + secret + `\q"}`, "line 1, column"},
		{"a value of the wrong type", "{\"token\": \"x\",\n\"port\": \"" + secret + `"}`, "line 2, column 9"},
		{"an undeclared variable", "{\"token\": \"x\",\n\"tokne\": \"" + secret + `"}`, "line 2, column 1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := os.WriteFile(path, []byte(tt.vars), 0o600); err != nil {
				t.Fatal(err)
			}
			rb, diags := Parse([]Source{{Name: "s.hcl", Src: []byte(src)}}, Inputs{VarFiles: []string{path}})
			if len(diags) == 0 {
				t.Fatal("no diagnostics")
			}
			var b strings.Builder
			(&diag.Printer{Files: rb.Files}).Text(&b, diags)
			if out := b.String(); strings.Contains(out, "hunter2") || !strings.Contains(out, path+" "+tt.want) {
				t.Errorf("printed:\n%s", out)
			}
		})
	}
}

// Tasks run in the order written, whether a play's tasks are properties of one object or
// an array of objects.
func TestJSONTaskOrder(t *testing.T) {
	for _, tasks := range []string{
		`{"zeta": {"command": {"cmd": "1"}}, "alpha": {"command": {"cmd": "2"}}, "mid": {"command": {"cmd": "3"}}}`,
		`[{"zeta": {"command": {"cmd": "1"}}}, {"alpha": {"command": {"cmd": "2"}}}, {"mid": {"command": {"cmd": "3"}}}]`,
	} {
		src := `{"play": {"p": {"hosts": "all", "task": ` + tasks + `}}}`
		rb, diags := Parse([]Source{{Name: "o.hcl.json", Src: []byte(src)}}, Inputs{})
		if diags.HasErrors() {
			t.Fatal(diags)
		}
		var names []string
		for _, tk := range rb.Plays[0].Order() {
			names = append(names, tk.Name)
		}
		if strings.Join(names, " ") != "zeta alpha mid" {
			t.Errorf("%s: order %v", tasks, names)
		}
	}
}

// A "//" property is a comment at every level: the file, a play, a task, a module body.
func TestJSONComments(t *testing.T) {
	src := `{"//": "file", "play": {"p": {"//": "play", "hosts": "all", "task": {"t": {"//": "task",
	  "command": {"//": "module body", "cmd": "true"}}}}}}`
	rb, diags := Parse([]Source{{Name: "c.hcl.json", Src: []byte(src)}}, Inputs{})
	if len(diags) > 0 {
		t.Fatal(diags)
	}
	tk := rb.Plays[0].Task("t")
	_, args, diags := tk.Args(rb.EvalContext(Scope{Host: "h1", Groups: []string{"all"}}))
	if diags.HasErrors() || tk.Module != "command" || args.GetAttr("cmd").AsString() != "true" {
		t.Errorf("module %q, args %#v, diagnostics %v", tk.Module, args, diags)
	}
}
