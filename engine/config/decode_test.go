package config

import (
	"strings"
	"testing"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"

	"github.com/runbook/runbook/modules"
)

// decodeTestModule is a module with a fixed schema whose Validate returns errs.
type decodeTestModule struct {
	info modules.Info
	errs []modules.ArgError
}

func (m decodeTestModule) Info() modules.Info { return m.info }

func (m decodeTestModule) Validate(cty.Value) []modules.ArgError { return m.errs }

func TestDecode(t *testing.T) {
	schema := modules.Schema{
		Args: []modules.Arg{
			{Name: "path", Type: cty.String, Required: true},
			{Name: "state", Type: cty.String, Default: cty.StringVal("present"), OneOf: []string{"present", "absent"}},
			{Name: "content", Type: cty.String},
			{Name: "src", Type: cty.String},
			{Name: "after", Type: cty.String},
			{Name: "before", Type: cty.String},
			{Name: "owner", Type: cty.String},
			{Name: "group", Type: cty.String},
			{Name: "mtu", Type: cty.Number},
		},
		ExactlyOneOf: [][]string{{"content", "src"}},
		AtMostOneOf:  [][]string{{"after", "before"}},
		RequiredWith: map[string][]string{"group": {"owner"}},
	}
	m := decodeTestModule{info: modules.Info{Name: "t", Schema: schema}}
	tests := []struct {
		name  string
		src   string
		ctx   map[string]cty.Value
		want  []string // summaries, in order
		check func(t *testing.T, v cty.Value)
	}{
		{name: "ok with default", src: `path = "/a"
content = "x"`, check: func(t *testing.T, v cty.Value) {
			if v.GetAttr("state").AsString() != "present" {
				t.Errorf("state = %#v", v.GetAttr("state"))
			}
		}},
		{name: "unknown argument", src: "path = \"/a\"\ncontent = \"x\"\nowner_name = \"root\"", want: []string{"Unsupported argument"}},
		{name: "missing required", src: `content = "x"`, want: []string{"Missing required argument"}},
		{name: "wrong type", src: "path = \"/a\"\ncontent = \"x\"\nmtu = \"jumbo\"", want: []string{"Incorrect attribute value type"}},
		{name: "not one of", src: "path = \"/a\"\ncontent = \"x\"\nstate = \"gone\"", want: []string{`Invalid value for "state"`}},
		{name: "none of exactly one", src: `path = "/a"`, want: []string{"Missing required argument"}},
		{name: "two of exactly one", src: "path = \"/a\"\ncontent = \"x\"\nsrc = \"y\"", want: []string{"Conflicting arguments"}},
		{name: "null counts as absent", src: "path = \"/a\"\ncontent = \"x\"\nsrc = null"},
		{name: "at most one", src: "path = \"/a\"\ncontent = \"x\"\nafter = \"a\"\nbefore = \"b\"", want: []string{"Conflicting arguments"}},
		{name: "required with", src: "path = \"/a\"\ncontent = \"x\"\ngroup = \"wheel\"", want: []string{"Missing required argument"}},
		{name: "unknown values pass", src: "path = v\ncontent = v\nstate = v", ctx: map[string]cty.Value{"v": cty.UnknownVal(cty.String)}},
		{name: "unknown may satisfy exactly one", src: "path = \"/a\"\ncontent = v", ctx: map[string]cty.Value{"v": cty.DynamicVal}},
		{name: "marked values are checked", src: "path = \"/a\"\ncontent = \"x\"\nstate = v", ctx: map[string]cty.Value{"v": cty.StringVal("gone").Mark("sensitive")}, want: []string{`Invalid value for "state"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, diags := hclsyntax.ParseConfig([]byte(tt.src), "t.hcl", hcl.InitialPos)
			if diags.HasErrors() {
				t.Fatal(diags)
			}
			v, diags := decodeModule(modules.NewDef[cty.Value, map[string]any](m), f.Body, &hcl.EvalContext{Variables: tt.ctx}, hcl.Range{Filename: "t.hcl"})
			var got []string
			for _, d := range diags {
				got = append(got, d.Summary)
				if d.Subject == nil {
					t.Errorf("%s: no source range", d.Summary)
				}
			}
			if strings.Join(got, "|") != strings.Join(tt.want, "|") {
				t.Fatalf("diagnostics = %q, want %q (%v)", got, tt.want, diags)
			}
			if tt.check != nil {
				tt.check(t, v)
			}
		})
	}
}

func TestValidatorErrorsPointAtArgument(t *testing.T) {
	m := decodeTestModule{
		info: modules.Info{Name: "v", Schema: modules.Schema{Args: []modules.Arg{{Name: "a", Type: cty.String}}}},
		errs: []modules.ArgError{{Arg: "a", Msg: "bad a"}, {Msg: "bad block"}},
	}
	f, _ := hclsyntax.ParseConfig([]byte("\n\na = \"x\""), "t.hcl", hcl.InitialPos)
	block := hcl.Range{Filename: "t.hcl", Start: hcl.Pos{Line: 1, Column: 1}, End: hcl.Pos{Line: 1, Column: 2}}
	_, diags := decodeModule(modules.NewDef[cty.Value, map[string]any](m), f.Body, nil, block)
	if len(diags) != 2 {
		t.Fatalf("diags = %v", diags)
	}
	if diags[0].Subject.Start.Line != 3 || diags[0].Summary != `Invalid value for "a"` {
		t.Errorf("first = %s at %v", diags[0].Summary, diags[0].Subject)
	}
	if diags[1].Subject.Start.Line != 1 {
		t.Errorf("second at %v, want the block", diags[1].Subject)
	}
}
