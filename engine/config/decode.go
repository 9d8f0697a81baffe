package config

import (
	"fmt"
	"sort"
	"strings"
	"sync"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hcldec"
	"github.com/zclconf/go-cty/cty"

	"github.com/runbook/runbook/modules"
)

// moduleSpec returns the hcldec spec that decodes a module body into an object value with
// one attribute per argument.
func moduleSpec(s modules.Schema) hcldec.Spec {
	obj := hcldec.ObjectSpec{}
	for _, a := range s.Args {
		var spec hcldec.Spec = &hcldec.AttrSpec{Name: a.Name, Type: a.Type, Required: a.Required}
		if a.Default != cty.NilVal {
			spec = &hcldec.DefaultSpec{Primary: spec, Default: &hcldec.LiteralSpec{Value: a.Default}}
		}
		obj[a.Name] = spec
	}
	return obj
}

// moduleSpecs are a module's decoding spec and the body schema it implies, made once per
// module: a run decodes every task's arguments once per host.
type moduleSpecs struct {
	spec    hcldec.Spec
	implied *hcl.BodySchema
}

var specCache sync.Map // *modules.Def → *moduleSpecs

func specsOf(m *modules.Def) *moduleSpecs {
	if s, ok := specCache.Load(m); ok {
		return s.(*moduleSpecs)
	}
	spec := moduleSpec(m.Info().Schema)
	s, _ := specCache.LoadOrStore(m, &moduleSpecs{spec: spec, implied: hcldec.ImpliedSchema(spec)})
	return s.(*moduleSpecs)
}

// decodeModule decodes a module body against the module's schema in ctx and checks every rule the
// schema declares. blockRange is the module block's header, used for problems that belong to
// no single argument. Rules are checked only on known values, so decoding with placeholder
// (unknown) host values reports exactly the problems that hold for every host.
func decodeModule(m *modules.Def, body hcl.Body, ctx *hcl.EvalContext, blockRange hcl.Range) (cty.Value, hcl.Diagnostics) {
	info := m.Info()
	schema := info.Schema
	specs := specsOf(m)
	val, diags := hcldec.Decode(body, specs.spec, ctx)
	if diags.HasErrors() {
		return val, diags
	}
	// Rules look at values, not at their marks (a sensitive value is still checked); the
	// marks stay on the returned value.
	plain, _ := val.UnmarkDeep()
	content, _, _ := body.PartialContent(specs.implied)
	attrs := content.Attributes
	exprRange := func(name string) hcl.Range {
		if a, ok := attrs[name]; ok {
			return a.Expr.Range()
		}
		return blockRange
	}
	nameRange := func(name string) hcl.Range {
		if a, ok := attrs[name]; ok {
			return a.NameRange
		}
		return blockRange
	}
	// given reports whether an argument is set to a non-null value (or might be).
	given := func(name string) (set, known bool) {
		if _, ok := attrs[name]; !ok {
			return false, true
		}
		v := plain.GetAttr(name)
		if !v.IsKnown() {
			return true, false
		}
		return !v.IsNull(), true
	}

	for _, e := range schema.ValueErrors(plain) {
		diags = append(diags, &hcl.Diagnostic{
			Severity: hcl.DiagError,
			Summary:  fmt.Sprintf("Invalid value for %q", e.Arg),
			Detail:   e.Msg,
			Subject:  exprRange(e.Arg).Ptr(),
		})
	}

	for _, set := range schema.ExactlyOneOf {
		var present []string
		unknown := false
		for _, n := range set {
			isSet, known := given(n)
			if !known {
				unknown = true
			}
			if isSet {
				present = append(present, n)
			}
		}
		switch {
		case len(present) == 0 && !unknown:
			diags = append(diags, &hcl.Diagnostic{
				Severity: hcl.DiagError,
				Summary:  "Missing required argument",
				Detail:   fmt.Sprintf("The %s module needs exactly one of: %s.", info.Name, strings.Join(set, ", ")),
				Subject:  blockRange.Ptr(),
			})
		case len(present) > 1:
			diags = append(diags, conflict(info.Name, present, nameRange))
		}
	}
	for _, set := range schema.AtMostOneOf {
		var present []string
		for _, n := range set {
			if isSet, _ := given(n); isSet {
				present = append(present, n)
			}
		}
		if len(present) > 1 {
			diags = append(diags, conflict(info.Name, present, nameRange))
		}
	}
	withKeys := make([]string, 0, len(schema.RequiredWith))
	for k := range schema.RequiredWith {
		withKeys = append(withKeys, k)
	}
	sort.Strings(withKeys)
	for _, k := range withKeys {
		if isSet, _ := given(k); !isSet {
			continue
		}
		for _, need := range schema.RequiredWith[k] {
			if isSet, known := given(need); !isSet && known {
				diags = append(diags, &hcl.Diagnostic{
					Severity: hcl.DiagError,
					Summary:  "Missing required argument",
					Detail:   fmt.Sprintf("%q is needed when %q is set.", need, k),
					Subject:  nameRange(k).Ptr(),
				})
			}
		}
	}

	if !diags.HasErrors() && plain.IsWhollyKnown() {
		for _, e := range m.ValidateValue(plain) {
			rng := blockRange
			if e.Arg != "" {
				rng = exprRange(e.Arg)
			}
			summary := "Invalid module arguments"
			if e.Arg != "" {
				summary = fmt.Sprintf("Invalid value for %q", e.Arg)
			}
			diags = append(diags, &hcl.Diagnostic{
				Severity: hcl.DiagError,
				Summary:  summary,
				Detail:   e.Msg,
				Subject:  rng.Ptr(),
			})
		}
	}
	return val, diags
}

func conflict(module string, present []string, nameRange func(string) hcl.Range) *hcl.Diagnostic {
	return &hcl.Diagnostic{
		Severity: hcl.DiagError,
		Summary:  "Conflicting arguments",
		Detail:   fmt.Sprintf("The %s module takes only one of %s; remove all but one.", module, strings.Join(quoteAll(present), " and ")),
		Subject:  nameRange(present[1]).Ptr(),
	}
}
