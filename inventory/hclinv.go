package inventory

import (
	"fmt"
	"math/big"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"
)

// The HCL inventory is runbook's own format: host blocks with connection settings and
// vars, group blocks with hosts, children and vars. It builds the same model as the
// Ansible readers, so precedence, patterns and output are identical across formats.

var hclFileSchema = &hcl.BodySchema{
	Blocks: []hcl.BlockHeaderSchema{
		{Type: "host", LabelNames: []string{"name"}},
		{Type: "group", LabelNames: []string{"name"}},
	},
}

var hclHostSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{
		{Name: "address"}, {Name: "port"}, {Name: "user"}, {Name: "identity_file"}, {Name: "jump"}, {Name: "vars"},
	},
}

var hclGroupSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{{Name: "hosts"}, {Name: "children"}, {Name: "vars"}},
}

// hostSettings maps a host block's connection attributes to the Ansible variables they set.
var hostSettings = []struct{ attr, variable string }{
	{"address", "ansible_host"},
	{"port", "ansible_port"},
	{"user", "ansible_user"},
	{"identity_file", "ansible_ssh_private_key_file"},
	{"jump", "ansible_ssh_common_args"},
}

type hclReader struct {
	m      *model
	diags  hcl.Diagnostics
	hostAt map[string]hcl.Range // where each host block named a host
	group  map[string]hcl.Range // where each group block is
}

func parseHCL(filename string, src []byte, m *model) hcl.Diagnostics {
	file, diags := hclsyntax.ParseConfig(src, filename, hcl.InitialPos)
	if diags.HasErrors() {
		return diags
	}
	content, cdiags := file.Body.Content(hclFileSchema)
	diags = append(diags, cdiags...)
	r := &hclReader{m: m, hostAt: map[string]hcl.Range{}, group: map[string]hcl.Range{}}
	type pendingChild struct {
		parent *gnode
		name   string
		rng    hcl.Range
	}
	var children []pendingChild
	for _, b := range content.Blocks {
		switch b.Type {
		case "host":
			r.hostBlock(b)
		case "group":
			g, kids := r.groupBlock(b)
			if g == nil {
				continue
			}
			for _, k := range kids {
				children = append(children, pendingChild{g, k.name, k.rng})
			}
		}
	}
	// children may name groups declared further down, so they are linked at the end
	for _, c := range children {
		if _, ok := r.group[c.name]; !ok {
			var names []string
			for n := range r.group {
				names = append(names, n)
			}
			r.errorf(c.rng, "Undefined group", "Group %q lists %q as a child, but there is no group block of that name.%s", c.parent.name, c.name, didYouMean(c.name, names))
			continue
		}
		if err := m.addChild(c.parent, m.groups[c.name]); err != nil {
			if ce, ok := err.(*cycleError); ok {
				r.diags = append(r.diags, cycleDiag(c.rng, ce))
			}
		}
	}
	return append(diags, r.diags...)
}

func (r *hclReader) errorf(rng hcl.Range, summary, format string, args ...any) {
	r.diags = append(r.diags, errorf(rng, summary, format, args...))
}

func (r *hclReader) hostBlock(b *hcl.Block) {
	content, diags := b.Body.Content(hclHostSchema)
	r.diags = append(r.diags, diags...)
	label, lrng := b.Labels[0], b.LabelRanges[0]
	if strings.TrimSpace(label) == "" || strings.ContainsAny(label, " \t\r\n") {
		r.errorf(lrng, "Invalid host name", "A host name cannot be empty or contain spaces; got %q.", label)
		return
	}
	names, err := expandHostRange(label, label)
	if !strings.Contains(label, "[") {
		names, err = []string{label}, nil
	}
	if err != nil {
		re := err.(*rangeError)
		r.errorf(lrng, re.summary, "%s", re.detail)
		return
	}
	for _, n := range names {
		if prev, dup := r.hostAt[n]; dup {
			r.diags = append(r.diags, &hcl.Diagnostic{
				Severity: hcl.DiagError, Summary: "Duplicate host",
				Detail:  fmt.Sprintf("Host %q is already defined at %s:%d; merge the two blocks.", n, prev.Filename, prev.Start.Line),
				Subject: b.DefRange.Ptr(), Context: hcl.RangeBetween(b.TypeRange, lrng).Ptr(),
			})
			return
		}
	}
	settings := map[string]any{}
	setAt := map[string]hcl.Range{}
	for _, s := range hostSettings {
		attr, ok := content.Attributes[s.attr]
		if !ok {
			continue
		}
		v, ok := r.hostSetting(attr)
		if !ok {
			continue
		}
		settings[s.variable] = v
		setAt[s.variable] = attr.NameRange
	}
	vars := map[string]any{}
	if attr, ok := content.Attributes["vars"]; ok {
		vars = r.varsAttr(attr)
		for k := range vars {
			if at, clash := setAt[k]; clash {
				r.errorf(at, "Conflicting host settings", "Host %q sets %s both here and in vars; keep one of them.", label, k)
			}
		}
	}
	for _, n := range names {
		r.hostAt[n] = b.DefRange
		h := r.m.addHost(n, nil, -1)
		for k, v := range vars {
			h.vars[k] = deepCopy(v)
		}
		for k, v := range settings {
			h.vars[k] = v
		}
	}
}

func (r *hclReader) hostSetting(attr *hcl.Attribute) (any, bool) {
	v, diags := attr.Expr.Value(nil)
	r.diags = append(r.diags, diags...)
	if diags.HasErrors() {
		return nil, false
	}
	rng := attr.Expr.Range()
	if attr.Name == "port" {
		if v.IsNull() || v.Type() != cty.Number {
			r.errorf(rng, "Invalid port", "port must be a number from 1 to 65535, not %s.", ctyTypeName(v))
			return nil, false
		}
		bf := v.AsBigFloat()
		n, acc := bf.Int64()
		if acc != big.Exact || n < 1 || n > 65535 {
			r.errorf(rng, "Invalid port", "port must be a whole number from 1 to 65535; %s is not.", bf.Text('g', 10))
			return nil, false
		}
		return n, true
	}
	if v.IsNull() || v.Type() != cty.String {
		r.errorf(rng, "Invalid value", "%s must be a string, not %s.", attr.Name, ctyTypeName(v))
		return nil, false
	}
	s := v.AsString()
	if strings.TrimSpace(s) == "" {
		r.errorf(rng, "Invalid value", "%s cannot be empty.", attr.Name)
		return nil, false
	}
	if attr.Name == "jump" {
		if strings.ContainsAny(s, " \t\"'") {
			r.errorf(rng, "Invalid value", "jump is one ProxyJump destination such as \"user@bastion:22\"; it cannot contain spaces or quotes.")
			return nil, false
		}
		return "-o ProxyJump=" + s, true
	}
	return s, true
}

func (r *hclReader) varsAttr(attr *hcl.Attribute) map[string]any {
	v, diags := attr.Expr.Value(nil)
	r.diags = append(r.diags, diags...)
	if diags.HasErrors() {
		return map[string]any{}
	}
	if v.IsNull() || !(v.Type().IsObjectType() || v.Type().IsMapType()) {
		r.errorf(attr.Expr.Range(), "Invalid vars", "vars must be an object such as { ntp = \"pool\" }, not %s.", ctyTypeName(v))
		return map[string]any{}
	}
	out, _ := ctyToGo(v).(map[string]any)
	if out == nil {
		out = map[string]any{}
	}
	return out
}

type hclRef struct {
	name string
	rng  hcl.Range
}

// stringList reads a list of strings, keeping each element's range for diagnostics.
func (r *hclReader) stringList(attr *hcl.Attribute) []hclRef {
	v, diags := attr.Expr.Value(nil)
	r.diags = append(r.diags, diags...)
	if diags.HasErrors() {
		return nil
	}
	if v.IsNull() || !(v.Type().IsTupleType() || v.Type().IsListType() || v.Type().IsSetType()) {
		r.errorf(attr.Expr.Range(), "Invalid "+attr.Name, "%s must be a list of names such as [\"web1\", \"web[02:04]\"], not %s.", attr.Name, ctyTypeName(v))
		return nil
	}
	var elems []hclsyntax.Expression
	if tup, ok := attr.Expr.(*hclsyntax.TupleConsExpr); ok {
		elems = tup.Exprs
	}
	var out []hclRef
	i := 0
	for it := v.ElementIterator(); it.Next(); i++ {
		_, ev := it.Element()
		rng := attr.Expr.Range()
		if i < len(elems) {
			rng = elems[i].Range()
		}
		if ev.IsNull() || ev.Type() != cty.String {
			r.errorf(rng, "Invalid "+attr.Name, "Each entry of %s must be a string, not %s.", attr.Name, ctyTypeName(ev))
			continue
		}
		out = append(out, hclRef{ev.AsString(), rng})
	}
	return out
}

func (r *hclReader) groupBlock(b *hcl.Block) (*gnode, []hclRef) {
	content, diags := b.Body.Content(hclGroupSchema)
	r.diags = append(r.diags, diags...)
	name, lrng := b.Labels[0], b.LabelRanges[0]
	if name == "" || strings.ContainsAny(name, " \t\r\n,:!&[]*?~") {
		r.errorf(lrng, "Invalid group name", "A group name cannot be empty or contain spaces or any of , : ! & [ ] * ? ~, which have a meaning in host patterns; got %q.", name)
		return nil, nil
	}
	if prev, dup := r.group[name]; dup {
		r.diags = append(r.diags, &hcl.Diagnostic{
			Severity: hcl.DiagError, Summary: "Duplicate group",
			Detail:  fmt.Sprintf("Group %q is already defined at %s:%d; merge the two blocks.", name, prev.Filename, prev.Start.Line),
			Subject: b.DefRange.Ptr(), Context: hcl.RangeBetween(b.TypeRange, lrng).Ptr(),
		})
		return nil, nil
	}
	r.group[name] = b.DefRange
	g := r.m.addGroup(name, b.DefRange)
	if attr, ok := content.Attributes["vars"]; ok {
		vars := r.varsAttr(attr)
		for _, k := range sortedKeys(vars) {
			if err := r.m.setGroupVar(g, k, vars[k]); err != nil {
				r.errorf(attr.Expr.Range(), "Invalid group priority", "%s.", err)
			}
		}
	}
	if attr, ok := content.Attributes["hosts"]; ok {
		for _, ref := range r.stringList(attr) {
			if strings.TrimSpace(ref.name) == "" || strings.ContainsAny(ref.name, " \t\r\n") {
				r.errorf(ref.rng, "Invalid host name", "A host name cannot be empty or contain spaces; got %q.", ref.name)
				continue
			}
			names := []string{ref.name}
			if strings.Contains(ref.name, "[") {
				var err error
				names, err = expandHostRange(ref.name, ref.name)
				if err != nil {
					re := err.(*rangeError)
					r.errorf(ref.rng, re.summary, "%s", re.detail)
					continue
				}
			}
			for _, n := range names {
				r.m.addHost(n, g, -1)
			}
		}
	}
	var kids []hclRef
	if attr, ok := content.Attributes["children"]; ok {
		for _, ref := range r.stringList(attr) {
			if ref.name == "all" {
				r.diags = append(r.diags, allAsChildDiag(ref.rng, name))
				continue
			}
			kids = append(kids, ref)
		}
	}
	return g, kids
}

func ctyTypeName(v cty.Value) string {
	if v.IsNull() {
		return "null"
	}
	t := v.Type()
	switch {
	case t == cty.String:
		return "a string"
	case t == cty.Number:
		return "a number"
	case t == cty.Bool:
		return "a bool"
	case t.IsTupleType() || t.IsListType() || t.IsSetType():
		return "a list"
	case t.IsObjectType() || t.IsMapType():
		return "an object"
	}
	return t.FriendlyName()
}

// ctyToGo converts a known cty value to the package's JSON-shaped Go values.
func ctyToGo(v cty.Value) any {
	if v.IsNull() || !v.IsKnown() {
		return nil
	}
	t := v.Type()
	switch {
	case t == cty.String:
		return v.AsString()
	case t == cty.Bool:
		return v.True()
	case t == cty.Number:
		bf := v.AsBigFloat()
		if bf.IsInt() {
			n, _ := bf.Int(nil)
			return bigNumber(n)
		}
		f, _ := bf.Float64()
		return f
	case t.IsObjectType() || t.IsMapType():
		out := map[string]any{}
		for it := v.ElementIterator(); it.Next(); {
			k, e := it.Element()
			out[k.AsString()] = ctyToGo(e)
		}
		return out
	case t.IsTupleType() || t.IsListType() || t.IsSetType():
		out := []any{}
		for it := v.ElementIterator(); it.Next(); {
			_, e := it.Element()
			out = append(out, ctyToGo(e))
		}
		return out
	}
	return nil
}
