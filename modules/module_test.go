package modules

import (
	"strings"
	"testing"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"
)

type testModule struct {
	info Info
	errs []ArgError
}

func (m testModule) Info() Info { return m.info }

func (m testModule) Validate(cty.Value) []ArgError { return m.errs }

func TestRegisterPanics(t *testing.T) {
	ok := Schema{Args: []Arg{{Name: "a", Type: cty.String}}}
	tests := []struct {
		name string
		info Info
		want string
	}{
		{"empty name", Info{Schema: ok}, "empty module name"},
		{"bad name", Info{Name: "Bad-Name", Schema: ok}, "invalid module name"},
		{"untyped arg", Info{Name: "m1", Schema: Schema{Args: []Arg{{Name: "a"}}}}, "has no type"},
		{"duplicate arg", Info{Name: "m2", Schema: Schema{Args: []Arg{{Name: "a", Type: cty.String}, {Name: "a", Type: cty.String}}}}, "declared twice"},
		{"required with default", Info{Name: "m3", Schema: Schema{Args: []Arg{{Name: "a", Type: cty.String, Required: true, Default: cty.StringVal("x")}}}}, "required and has a default"},
		{"oneof on number", Info{Name: "m4", Schema: Schema{Args: []Arg{{Name: "a", Type: cty.Number, OneOf: []string{"x"}}}}}, "OneOf needs a string"},
		{"constraint on unknown arg", Info{Name: "m5", Schema: Schema{Args: []Arg{{Name: "a", Type: cty.String}}, ExactlyOneOf: [][]string{{"a", "b"}}}}, `unknown argument "b"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			defer func() {
				r := recover()
				if r == nil || !strings.Contains(r.(string), tt.want) {
					t.Fatalf("panic = %v, want one containing %q", r, tt.want)
				}
			}()
			Register[cty.Value, map[string]any](testModule{info: tt.info})
		})
	}
	t.Run("duplicate", func(t *testing.T) {
		Register[cty.Value, map[string]any](testModule{info: Info{Name: "dup_test", Schema: ok}})
		defer func() {
			if r := recover(); r == nil || !strings.Contains(r.(string), "registered twice") {
				t.Fatalf("panic = %v", r)
			}
		}()
		Register[cty.Value, map[string]any](testModule{info: Info{Name: "dup_test", Schema: ok}})
	})
}

func TestDecode(t *testing.T) {
	schema := Schema{
		Args: []Arg{
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
	m := testModule{info: Info{Name: "t", Schema: schema}}
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
			v, diags := Decode(NewDef[cty.Value, map[string]any](m), f.Body, &hcl.EvalContext{Variables: tt.ctx}, hcl.Range{Filename: "t.hcl"})
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
	m := testModule{
		info: Info{Name: "v", Schema: Schema{Args: []Arg{{Name: "a", Type: cty.String}}}},
		errs: []ArgError{{Arg: "a", Msg: "bad a"}, {Msg: "bad block"}},
	}
	f, _ := hclsyntax.ParseConfig([]byte("\n\na = \"x\""), "t.hcl", hcl.InitialPos)
	block := hcl.Range{Filename: "t.hcl", Start: hcl.Pos{Line: 1, Column: 1}, End: hcl.Pos{Line: 1, Column: 2}}
	_, diags := Decode(NewDef[cty.Value, map[string]any](m), f.Body, nil, block)
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

func TestTypeName(t *testing.T) {
	tests := map[string]cty.Type{
		"string":                     cty.String,
		"list(number)":               cty.List(cty.Number),
		"map(list(string))":          cty.Map(cty.List(cty.String)),
		"any":                        cty.DynamicPseudoType,
		"object({a=bool, b=string})": cty.Object(map[string]cty.Type{"b": cty.String, "a": cty.Bool}),
	}
	for want, ty := range tests {
		if got := TypeName(ty); got != want {
			t.Errorf("TypeName = %q, want %q", got, want)
		}
	}
}
