package modules

import (
	"context"
	"encoding/json"
	"regexp"
	"strings"
	"testing"

	"github.com/zclconf/go-cty/cty"
)

type typedArgs struct {
	Name    string            `cty:"name"`
	Count   int               `cty:"count"`
	Persist bool              `cty:"persist"`
	MTU     *string           `cty:"mtu"`
	Slaves  []string          `cty:"slaves"`
	Env     map[string]string `cty:"env"`
	Any     cty.Value         `cty:"any"`
	State   string            `cty:"state"`
}

type typedData struct {
	Files []string  `cty:"files"`
	RC    *int      `cty:"rc"`
	Extra cty.Value `cty:"extra"`
}

type typedModule struct {
	info Info
	got  *typedArgs
}

func (m typedModule) Info() Info { return m.info }

func (m typedModule) Validate(a typedArgs) []ArgError {
	if a.Count > 10 {
		return []ArgError{{Arg: "count", Msg: "too many"}}
	}
	return nil
}

func (m typedModule) Run(_ context.Context, _ *Env, a typedArgs, apply bool) (*Result, error) {
	*m.got = a
	rc := 3
	return &Result{Status: StatusOK, Data: typedData{Files: []string{"/etc/x " + a.Name}, RC: &rc, Extra: cty.StringVal("s3cr3t-x")}}, nil
}

var typedSchema = Schema{Args: []Arg{
	{Name: "name", Type: cty.String, Required: true},
	{Name: "count", Type: cty.Number, Default: cty.NumberIntVal(2)},
	{Name: "persist", Type: cty.Bool, Default: cty.True},
	{Name: "mtu", Type: cty.String, Pattern: regexp.MustCompile(`^[0-9]+$`), PatternHelp: "a number"},
	{Name: "slaves", Type: cty.List(cty.String)},
	{Name: "env", Type: cty.Map(cty.String)},
	{Name: "any", Type: cty.DynamicPseudoType},
	{Name: "state", Type: cty.String, Default: cty.StringVal("up"), OneOf: []string{"up", "down"}},
}}

var typedReturns = []Field{
	{Name: "files", Type: cty.List(cty.String)},
	{Name: "rc", Type: cty.Number},
	{Name: "extra", Type: cty.DynamicPseudoType},
}

func TestTypedArgs(t *testing.T) {
	var got typedArgs
	d := NewDef[typedArgs, typedData](typedModule{info: Info{Name: "typed", Schema: typedSchema, Returns: typedReturns}, got: &got})
	tests := []struct {
		name    string
		args    map[string]cty.Value
		wantErr string
		check   func(t *testing.T, a typedArgs)
	}{
		{"defaults fill what is absent", map[string]cty.Value{"name": cty.StringVal("bond0")}, "", func(t *testing.T, a typedArgs) {
			if a.Name != "bond0" || a.Count != 2 || !a.Persist || a.MTU != nil || a.Slaves != nil || !a.Any.IsNull() {
				t.Errorf("%+v", a)
			}
		}},
		{"given values win, converted", map[string]cty.Value{"name": cty.StringVal("b"), "count": cty.StringVal("5"), "persist": cty.False, "mtu": cty.NumberIntVal(9100), "slaves": cty.TupleVal([]cty.Value{cty.StringVal("a")})}, "", func(t *testing.T, a typedArgs) {
			if a.Count != 5 || a.Persist || a.MTU == nil || *a.MTU != "9100" || len(a.Slaves) != 1 {
				t.Errorf("%+v", a)
			}
		}},
		{"a fraction for a whole number", map[string]cty.Value{"name": cty.StringVal("b"), "count": cty.NumberFloatVal(1.5)}, `count: value must be a whole number within the range this argument takes`, nil},
		// gocty quotes the Go type's limits, hundreds of digits: the message keeps the sense.
		{"a number out of range", map[string]cty.Value{"name": cty.StringVal("b"), "count": cty.MustParseNumberVal("1e400")}, `count: value must be a whole number within the range this argument takes`, nil},
		{"unknown argument", map[string]cty.Value{"name": cty.StringVal("b"), "nmae": cty.StringVal("x")}, `unsupported argument "nmae"`, nil},
		{"missing required", map[string]cty.Value{}, `"name" is required`, nil},
		// The helper holds values to the schema's own rules as the controller does: a caller
		// that skipped the controller's checks gets the same message.
		{"a value OneOf refuses", map[string]cty.Value{"name": cty.StringVal("b"), "state": cty.StringVal("dwon")}, `state: "dwon" is not a valid state; expected one of: up, down. Did you mean "down"?`, nil},
		{"a value the pattern refuses", map[string]cty.Value{"name": cty.StringVal("b"), "mtu": cty.StringVal("9x")}, `mtu: "9x" is not valid here: expected a number`, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, _, err := d.Args(cty.ObjectVal(tt.args))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tt.check(t, a.(typedArgs))
		})
	}

	a, _, _ := d.Args(cty.ObjectVal(map[string]cty.Value{"name": cty.StringVal("x"), "count": cty.NumberIntVal(11)}))
	if errs := d.Validate(a); len(errs) != 1 || errs[0].Arg != "count" {
		t.Errorf("Validate = %v", errs)
	}
	v := cty.ObjectVal(map[string]cty.Value{"name": cty.StringVal("x"), "count": cty.NumberIntVal(11), "persist": cty.True,
		"mtu": cty.NullVal(cty.String), "slaves": cty.NullVal(cty.List(cty.String)), "env": cty.NullVal(cty.Map(cty.String)), "any": cty.NullVal(cty.DynamicPseudoType),
		"state": cty.StringVal("up")})
	if errs := d.ValidateValue(v); len(errs) != 1 {
		t.Errorf("ValidateValue = %v", errs)
	}
	if errs := d.ValidateValue(cty.UnknownVal(v.Type())); errs != nil {
		t.Errorf("ValidateValue of unknown = %v, want nothing (checked on the host)", errs)
	}

	a, _, _ = d.Args(cty.ObjectVal(map[string]cty.Value{"name": cty.StringVal("x")}))
	res, err := d.Run(context.Background(), nil, a, false)
	if err != nil || got.Name != "x" {
		t.Fatalf("Run: %v %+v", err, got)
	}
	raw, err := d.Data(res.Data, NewRedactor([]string{"s3cr3t-x"}))
	if err != nil {
		t.Fatal(err)
	}
	var data map[string]any
	if err := json.Unmarshal(raw, &data); err != nil {
		t.Fatal(err)
	}
	if data["rc"] != float64(3) || data["files"].([]any)[0] != "/etc/x x" || data["extra"] != Redacted {
		t.Errorf("data = %s", raw)
	}
	back, err := DataFromJSON(raw, typedReturns)
	if err != nil || !back.GetAttr("rc").RawEquals(cty.NumberIntVal(3)) {
		t.Errorf("DataFromJSON = %#v, %v", back, err)
	}
	if _, err := d.Data(map[string]any{"rc": 1}, nil); err == nil {
		t.Error("data of another type than the declared result struct was accepted")
	}
}

// infoOnly is a module with nothing but its Info.
type infoOnly struct{ info Info }

func (m infoOnly) Info() Info { return m.info }

func TestRegisterChecksStructs(t *testing.T) {
	type noTag struct {
		Name string
	}
	type wrongType struct {
		Name  string `cty:"name"`
		Count string `cty:"count"`
	}
	type notNullable struct {
		Name  string `cty:"name"`
		Count int    `cty:"count"`
	}
	type extra struct {
		Name  string `cty:"name"`
		Count *int   `cty:"count"`
		More  string `cty:"more"`
	}
	type good struct {
		Name  string `cty:"name"`
		Count *int   `cty:"count"`
	}
	type badResult struct {
		RC string `cty:"rc"`
	}
	schema := Schema{Args: []Arg{{Name: "name", Type: cty.String, Required: true}, {Name: "count", Type: cty.Number}}}
	info := Info{Name: "s", Schema: schema, Returns: []Field{{Name: "rc", Type: cty.Number}}}
	type rc struct {
		RC *int `cty:"rc"`
	}
	tests := []struct {
		name string
		f    func()
		want string
	}{
		{"a field missing", func() { NewDef[noTag, rc](infoOnly{info: info}) }, `no field tagged cty:"name"`},
		{"a field of another type", func() { NewDef[wrongType, rc](infoOnly{info: info}) }, "holds string, declared number"},
		{"an optional argument without a pointer", func() { NewDef[notNullable, rc](infoOnly{info: info}) }, "cannot hold null"},
		{"a field the schema lacks", func() { NewDef[extra, rc](infoOnly{info: info}) }, "more match no declared argument"},
		{"a result of another type", func() { NewDef[good, badResult](infoOnly{info: info}) }, `field RC (result "rc")`},
		// testModule's Validate takes a cty.Value: it would never run for good's module.
		{"a Validate of another argument type", func() { NewDef[good, rc](testModule{info: info}) }, "Validate is not Validate(modules.good)"},
		{"an optional attribute of a nested object without a pointer", func() { NewDef[nestedPlain, rc](infoOnly{info: nestedInfo}) }, `field VFs[].MAC (attribute "mac") cannot hold null`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			defer func() {
				r := recover()
				if r == nil || !strings.Contains(r.(string), tt.want) {
					t.Fatalf("panic = %v, want one containing %q", r, tt.want)
				}
			}()
			tt.f()
		})
	}
	NewDef[good, rc](infoOnly{info: info})                // agrees: no panic
	NewDef[nestedPointer, rc](infoOnly{info: nestedInfo}) // agrees: no panic
}

// A list of objects whose "mac" a task may leave out.
var nestedInfo = Info{Name: "n", Returns: []Field{{Name: "rc", Type: cty.Number}}, Schema: Schema{Args: []Arg{
	{Name: "vfs", Type: cty.List(cty.ObjectWithOptionalAttrs(map[string]cty.Type{"index": cty.Number, "mac": cty.String}, []string{"mac"})), Required: true},
}}}

type nestedPlain struct {
	VFs []struct {
		Index int    `cty:"index"`
		MAC   string `cty:"mac"`
	} `cty:"vfs"`
}

type nestedPointer struct {
	VFs []struct {
		Index int     `cty:"index"`
		MAC   *string `cty:"mac"`
	} `cty:"vfs"`
}

// TestValueOfUnsetAnyField: a cty.Value result field left unset is null of its declared
// type, like a nil pointer field, never the invalid zero cty.Value.
func TestValueOfUnsetAnyField(t *testing.T) {
	var got typedArgs
	d := NewDef[typedArgs, typedData](typedModule{info: Info{Name: "typed", Schema: typedSchema, Returns: typedReturns}, got: &got})
	v, err := d.Value(typedData{Files: []string{"a"}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	extra := v.GetAttr("extra")
	if extra.RawEquals(cty.NilVal) || !extra.IsNull() {
		t.Errorf("extra = %#v, want a null", extra)
	}
	if !v.GetAttr("rc").IsNull() || v.GetAttr("files").LengthInt() != 1 {
		t.Errorf("value = %#v", v)
	}
}
