package modules

import (
	"strings"
	"testing"

	"github.com/zclconf/go-cty/cty"
)

type testModule struct {
	info Info
	errs []ArgError
}

func (m testModule) Info() Info { return m.info }

func (m testModule) Validate(cty.Value) []ArgError { return m.errs }

// aArgs are the arguments of the schema {a: string}.
type aArgs struct {
	A *string `cty:"a"`
}

type noData struct{}

type openModule struct{ infoOnly }

func (openModule) OpenData() {}

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
			Register[aArgs, noData](infoOnly{info: tt.info})
		})
	}
	// What ships holds to the typed contract; NewDef (tests' own registries) does not.
	for _, tt := range []struct {
		name     string
		register func()
		want     string
	}{
		{"arguments read as one value", func() { Register[cty.Value, noData](infoOnly{info: Info{Name: "untyped_args", Schema: ok}}) }, "arguments must decode into a struct"},
		{"results as a map", func() { Register[aArgs, map[string]any](infoOnly{info: Info{Name: "map_results", Schema: ok}}) }, "results must be a struct"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			defer func() {
				r := recover()
				if r == nil || !strings.Contains(r.(string), tt.want) {
					t.Fatalf("panic = %v, want one containing %q", r, tt.want)
				}
			}()
			tt.register()
		})
	}
	t.Run("open data may be a map", func(t *testing.T) {
		Register[aArgs, map[string]any](openModule{infoOnly{info: Info{Name: "open_data_test", Schema: ok}}})
	})
	t.Run("duplicate", func(t *testing.T) {
		Register[aArgs, noData](infoOnly{info: Info{Name: "dup_test", Schema: ok}})
		defer func() {
			if r := recover(); r == nil || !strings.Contains(r.(string), "registered twice") {
				t.Fatalf("panic = %v", r)
			}
		}()
		Register[aArgs, noData](infoOnly{info: Info{Name: "dup_test", Schema: ok}})
	})
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
