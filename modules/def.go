package modules

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"regexp"
	"sort"
	"strings"

	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/convert"
	"github.com/zclconf/go-cty/cty/gocty"
	ctyjson "github.com/zclconf/go-cty/cty/json"
)

// Runner is the host-side code of a module whose arguments are the struct A. Check and
// apply are one code path: Run reads the current state, compares it with args, returns
// early when they agree, and changes the host only when apply is true. With apply false it
// must not change anything and reports StatusDrift (or StatusUnknown) where apply would act.
//
// args arrive complete: every argument absent from the task holds its default (Info's
// Schema states it, nowhere else) or nil, and Validate has accepted them.
//
// A failed run returns an error; it may return a Result as well, whose Data is still
// registered (a command's rc and output when its exit code is not accepted).
type Runner[A any] interface {
	Run(ctx context.Context, env *Env, args A, apply bool) (*Result, error)
}

// Validator is implemented by modules whose arguments have constraints that the schema
// cannot express. It runs on the controller when the task's values are all known (before
// any host is touched), and on the host before Run.
type Validator[A any] interface {
	Validate(args A) []ArgError
}

// Def is a registered module: its Info, and the code that turns arguments into the module's
// argument struct, checks them and runs the module. The registry builds one per module at
// Register, for the struct types the module declares; everything after works on the erased
// form, so the helper and the controller share one way in.
type Def struct {
	module Module
	info   Info
	// args and results are the module's argument and result struct types.
	args, results reflect.Type
	// argsType is the object type the schema decodes to; dataType the one Returns declares.
	argsType, dataType cty.Type
	validate           func(any) []ArgError
	run                func(context.Context, *Env, any, bool) (*Result, error)
	// bind makes the Def of another value of the module's type (tests give seams).
	bind func(Module) *Def
}

// Register adds a module whose arguments decode into the struct A (fields tagged
// `cty:"name"`, one per argument of the schema) and whose Result.Data is an R (fields
// tagged `cty:"name"`, one per entry of Returns). It panics on an empty, malformed or
// duplicate name, a schema that contradicts itself, or structs that disagree with the
// schema: those are programming errors found at start-up.
//
// A module with host-side code implements Runner[A]; one whose arguments have rules the
// schema cannot state implements Validator[A].
func Register[A, R any](m Module) {
	d := NewDef[A, R](m)
	if err := shipped(d.args, d.results, m); err != nil {
		panic(fmt.Sprintf("modules: %s: %v", d.info.Name, err))
	}
	if d.info.Reboots {
		for _, a := range []string{"reboot_timeout", "post_reboot_delay", "test_command"} {
			if _, ok := d.info.Schema.Arg(a); !ok {
				panic(fmt.Sprintf("modules: %s reboots the host but takes no %s argument", d.info.Name, a))
			}
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if _, dup := registry[d.info.Name]; dup {
		panic(fmt.Sprintf("modules: module %q registered twice", d.info.Name))
	}
	registry[d.info.Name] = d
}

// OpenData is implemented by a module whose data is open-ended: nested maps whose keys the
// host decides (facts: a host's NICs, its mounts). Only such a module registers
// map[string]any as its result type; its Returns still document every top-level key.
type OpenData interface {
	Module
	OpenData()
}

// shipped holds a registered module to the typed contract: arguments decode into a struct,
// never into a bare cty.Value read by name, and results are a struct unless the module's
// data is open-ended (OpenData).
func shipped(args, results reflect.Type, m Module) error {
	if args.Kind() != reflect.Struct || args == ctyValueType {
		return fmt.Errorf("arguments must decode into a struct with cty tags, not %s", args)
	}
	if results.Kind() == reflect.Map {
		if _, open := m.(OpenData); !open {
			return fmt.Errorf("results must be a struct with cty tags, not %s (only an OpenData module returns a map)", results)
		}
	}
	return nil
}

// NewDef builds the Def that Register adds, without adding it (tests build registries of
// their own, whose probe modules may read their arguments as one cty.Value). It panics
// where Register does, except on those two test conveniences: a cty.Value for arguments
// and a map for results.
func NewDef[A, R any](m Module) *Def {
	info := m.Info()
	if info.Name == "" {
		panic("modules: Register with an empty module name")
	}
	if !validName.MatchString(info.Name) {
		panic(fmt.Sprintf("modules: invalid module name %q", info.Name))
	}
	d := &Def{module: m, info: info, args: reflect.TypeFor[A](), results: reflect.TypeFor[R]()}
	if err := info.Schema.check(); err != nil {
		panic(fmt.Sprintf("modules: %s: %v", info.Name, err))
	}
	d.argsType = info.Schema.ObjectType()
	d.dataType = fieldsType(info.Returns)
	if err := checkArgsStruct(d.args, info.Schema); err != nil {
		panic(fmt.Sprintf("modules: %s: arguments %s: %v", info.Name, d.args, err))
	}
	if err := checkResultStruct(d.results, info.Returns); err != nil {
		panic(fmt.Sprintf("modules: %s: results %s: %v", info.Name, d.results, err))
	}
	if v, ok := m.(Validator[A]); ok {
		d.validate = func(a any) []ArgError { return v.Validate(a.(A)) }
	} else if _, has := reflect.TypeOf(m).MethodByName("Validate"); has {
		// A Validate of another signature would be skipped without a word.
		panic(fmt.Sprintf("modules: %s: Validate is not Validate(%s) []ArgError", info.Name, d.args))
	}
	if r, ok := m.(Runner[A]); ok {
		d.run = func(ctx context.Context, env *Env, a any, apply bool) (*Result, error) {
			return r.Run(ctx, env, a.(A), apply)
		}
	} else if _, has := reflect.TypeOf(m).MethodByName("Run"); has {
		panic(fmt.Sprintf("modules: %s: Run is not Run(context.Context, *Env, %s, bool) (*Result, error)", info.Name, d.args))
	}
	d.bind = func(m Module) *Def { return NewDef[A, R](m) }
	return d
}

// With returns the Def of m, another value of this module's type (one a test built with
// its own seams, such as a root directory or a fake kernel), with the same argument and
// result structs. It panics if m is of another type.
func (d *Def) With(m Module) *Def {
	if reflect.TypeOf(m) != reflect.TypeOf(d.module) {
		panic(fmt.Sprintf("modules: %s: With(%T), want %T", d.info.Name, m, d.module))
	}
	return d.bind(m)
}

// Info returns the module's Info as it was at registration.
func (d *Def) Info() Info { return d.info }

// Module returns the registered module value, for capabilities outside the host contract.
func (d *Def) Module() Module { return d.module }

// RunsOnHost reports whether the module has host-side code.
func (d *Def) RunsOnHost() bool { return d.run != nil }

// Args turns arguments (an object value, such as one received over the wire) into the
// module's argument struct: every argument present (absent ones take their default or
// null) and converted to its declared type. An attribute the schema does not know is an
// error, and so is a value its argument's OneOf or Pattern refuses (Schema.ValueErrors). It
// also returns the normalised object value, which names the arguments' strings
// for redaction.
func (d *Def) Args(v cty.Value) (any, cty.Value, error) {
	norm, err := d.info.Schema.Normalize(v)
	if err != nil {
		return nil, cty.NilVal, err
	}
	if errs := d.info.Schema.ValueErrors(norm); len(errs) > 0 {
		return nil, cty.NilVal, errs[0]
	}
	a, err := d.decode(norm)
	if err != nil {
		return nil, cty.NilVal, err
	}
	return a, norm, nil
}

// decode converts a normalised object into the argument struct.
func (d *Def) decode(norm cty.Value) (any, error) {
	if d.args == ctyValueType {
		return norm, nil
	}
	p := reflect.New(d.args)
	if err := gocty.FromCtyValue(norm, p.Interface()); err != nil {
		return nil, argPathError(err)
	}
	return p.Elem().Interface(), nil
}

// Validate checks decoded arguments with the module's Validator, if it has one.
func (d *Def) Validate(args any) []ArgError {
	if d.validate == nil {
		return nil
	}
	return d.validate(args)
}

// ValidateValue checks an object holding every argument (as the controller decodes a task
// body, defaults applied) once its values are all known: it converts it to the argument
// struct and runs the Validator. Values not known yet (a host's fact) are checked on the
// host instead.
func (d *Def) ValidateValue(v cty.Value) []ArgError {
	v, _ = v.UnmarkDeep()
	if !v.IsWhollyKnown() || v.IsNull() {
		return nil
	}
	a, err := d.decode(v)
	if err != nil {
		var ae ArgError
		if errors.As(err, &ae) {
			return []ArgError{ae}
		}
		return []ArgError{{Msg: err.Error()}}
	}
	return d.Validate(a)
}

// Run runs the module's host-side code on decoded arguments.
func (d *Def) Run(ctx context.Context, env *Env, args any, apply bool) (*Result, error) {
	if d.run == nil {
		return nil, fmt.Errorf("module %s has no host-side code", d.info.Name)
	}
	return d.run(ctx, env, args, apply)
}

// Value converts a Result's Data into a cty object with one attribute per declared Returns
// field, each of its declared type (absent ones null), with every secret red hides replaced
// in its strings. Data must be the module's result struct (or a pointer to it); nil gives
// cty.NilVal.
func (d *Def) Value(data any, red *Redactor) (cty.Value, error) {
	if data == nil {
		return cty.NilVal, nil
	}
	rv := reflect.ValueOf(data)
	if rv.Kind() == reflect.Pointer {
		if rv.IsNil() {
			return cty.NilVal, nil
		}
		rv = rv.Elem()
	}
	if rv.Type() != d.results {
		return cty.NilVal, fmt.Errorf("%s returned data of type %s, not %s", d.info.Name, rv.Type(), d.results)
	}
	var v cty.Value
	if d.results.Kind() == reflect.Map {
		// A module whose data is open-ended returns a plain map (facts).
		raw, err := json.Marshal(rv.Interface())
		if err != nil {
			return cty.NilVal, fmt.Errorf("%s: data: %w", d.info.Name, err)
		}
		if v, err = DataFromJSON(raw, d.info.Returns); err != nil {
			return cty.NilVal, fmt.Errorf("%s: %w", d.info.Name, err)
		}
	} else {
		var err error
		if v, err = gocty.ToCtyValue(nullFilled(rv, d.dataType).Interface(), d.dataType); err != nil {
			return cty.NilVal, fmt.Errorf("%s: data: %w", d.info.Name, err)
		}
	}
	return redactValue(red, v)
}

// nullFilled returns rv, a result struct, with each cty.Value field left unset (the zero
// cty.NilVal, which is no value at all) set to null of the attribute's declared type, as a
// pointer field left nil is.
func nullFilled(rv reflect.Value, ty cty.Type) reflect.Value {
	var cp reflect.Value
	for i := 0; i < rv.NumField(); i++ {
		f := rv.Type().Field(i)
		tag, ok := f.Tag.Lookup("cty")
		if !ok || f.Type != ctyValueType || !rv.Field(i).Interface().(cty.Value).RawEquals(cty.NilVal) {
			continue
		}
		if !cp.IsValid() {
			cp = reflect.New(rv.Type()).Elem()
			cp.Set(rv)
		}
		cp.Field(i).Set(reflect.ValueOf(cty.NullVal(ty.AttributeType(tag))))
	}
	if cp.IsValid() {
		return cp
	}
	return rv
}

// Data renders a Result's Data for the wire: Value as a JSON object.
func (d *Def) Data(data any, red *Redactor) (json.RawMessage, error) {
	v, err := d.Value(data, red)
	if err != nil || v == cty.NilVal || v.IsNull() {
		return nil, err
	}
	return ctyjson.SimpleJSONValue{Value: v}.MarshalJSON()
}

// DataFromJSON converts a JSON object of registered values into an object with one
// attribute per field, each of its declared type (absent ones null); a field of any type
// takes the type its JSON implies. With no fields, every member is taken that way.
func DataFromJSON(raw json.RawMessage, fields []Field) (cty.Value, error) {
	obj := map[string]json.RawMessage{}
	if len(raw) > 0 && string(raw) != "null" {
		if err := json.Unmarshal(raw, &obj); err != nil {
			return cty.NilVal, fmt.Errorf("data: %w", err)
		}
	}
	if fields == nil {
		for k := range obj {
			fields = append(fields, Field{Name: k, Type: cty.DynamicPseudoType})
		}
	}
	out := make(map[string]cty.Value, len(fields))
	for _, f := range fields {
		t := f.Type
		if t == cty.NilType {
			t = cty.DynamicPseudoType
		}
		raw, ok := obj[f.Name]
		if !ok || string(raw) == "null" {
			out[f.Name] = cty.NullVal(t)
			continue
		}
		if t == cty.DynamicPseudoType {
			it, err := ctyjson.ImpliedType(raw)
			if err != nil {
				return cty.NilVal, fmt.Errorf("data %q: %w", f.Name, err)
			}
			t = it
		}
		v, err := ctyjson.Unmarshal(raw, t)
		if err != nil {
			return cty.NilVal, fmt.Errorf("data %q: %w", f.Name, err)
		}
		out[f.Name] = v
	}
	return cty.ObjectVal(out), nil
}

// fieldsType is the object type of a list of result fields.
func fieldsType(fields []Field) cty.Type {
	attrs := make(map[string]cty.Type, len(fields))
	for _, f := range fields {
		t := f.Type
		if t == cty.NilType {
			t = cty.DynamicPseudoType
		}
		attrs[f.Name] = t
	}
	return cty.Object(attrs)
}

var ctyValueType = reflect.TypeFor[cty.Value]()

// structFields maps each cty tag of the struct t to its field.
func structFields(t reflect.Type) (map[string]reflect.StructField, error) {
	if t.Kind() != reflect.Struct {
		return nil, fmt.Errorf("must be a struct, not %s", t.Kind())
	}
	out := map[string]reflect.StructField{}
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		tag, ok := f.Tag.Lookup("cty")
		if !ok {
			continue
		}
		if !f.IsExported() {
			return nil, fmt.Errorf("field %s is tagged but not exported", f.Name)
		}
		if _, dup := out[tag]; dup {
			return nil, fmt.Errorf("tag %q used twice", tag)
		}
		out[tag] = f
	}
	return out, nil
}

// checkArgsStruct holds the argument struct to the schema: one tagged field per argument
// and none more, each able to hold the argument's type, and able to hold null where the
// argument may be absent without a default.
func checkArgsStruct(t reflect.Type, s Schema) error {
	if t == ctyValueType {
		// Not converted yet: the module reads the normalised object itself.
		return nil
	}
	fields, err := structFields(t)
	if err != nil {
		return err
	}
	for _, a := range s.Args {
		f, ok := fields[a.Name]
		if !ok {
			return fmt.Errorf("no field tagged cty:%q for argument %q", a.Name, a.Name)
		}
		delete(fields, a.Name)
		if err := holds(f.Type, a.Type); err != nil {
			return fmt.Errorf("field %s (argument %q): %v", f.Name, a.Name, err)
		}
		if err := optionalNullable(f.Type, a.Type, f.Name); err != nil {
			return fmt.Errorf("argument %q: %v", a.Name, err)
		}
		if !a.Required && a.Default == cty.NilVal && !nullable(f.Type) {
			return fmt.Errorf("field %s (argument %q) cannot hold null, but the argument may be absent and has no default: make it a pointer", f.Name, a.Name)
		}
		if a.Default != cty.NilVal {
			dv, err := convert.Convert(a.Default, a.Type)
			if err == nil {
				err = gocty.FromCtyValue(dv, reflect.New(f.Type).Interface())
			}
			if err != nil {
				return fmt.Errorf("argument %q: default %#v does not fit field %s: %v", a.Name, a.Default, f.Name, err)
			}
		}
	}
	return unclaimed(fields, "argument")
}

// checkResultStruct holds the result struct to Returns the same way. A module that
// declares no Returns (facts, whose data is open-ended) may use map[string]any.
func checkResultStruct(t reflect.Type, returns []Field) error {
	if t.Kind() == reflect.Map && t.Key().Kind() == reflect.String {
		return nil
	}
	fields, err := structFields(t)
	if err != nil {
		return err
	}
	for _, r := range returns {
		f, ok := fields[r.Name]
		if !ok {
			return fmt.Errorf("no field tagged cty:%q for result %q", r.Name, r.Name)
		}
		delete(fields, r.Name)
		if err := holds(f.Type, r.Type); err != nil {
			return fmt.Errorf("field %s (result %q): %v", f.Name, r.Name, err)
		}
	}
	return unclaimed(fields, "result")
}

func unclaimed(fields map[string]reflect.StructField, what string) error {
	if len(fields) == 0 {
		return nil
	}
	names := make([]string, 0, len(fields))
	for n := range fields {
		names = append(names, n)
	}
	sort.Strings(names)
	return fmt.Errorf("tagged field(s) %s match no declared %s", strings.Join(names, ", "), what)
}

// holds reports whether a Go field of type ft can hold values of the cty type want,
// exactly: a cty.Value field holds anything; otherwise the type the field implies must be
// want (a slice holds a set too).
func holds(ft reflect.Type, want cty.Type) error {
	base := ft
	for base.Kind() == reflect.Pointer {
		base = base.Elem()
	}
	if base == ctyValueType {
		return nil
	}
	if want == cty.DynamicPseudoType {
		return errors.New("an argument of any type needs a cty.Value field")
	}
	got, err := gocty.ImpliedType(reflect.Zero(ft).Interface())
	if err != nil {
		return err
	}
	if want.IsSetType() && got.IsListType() {
		got = cty.Set(got.ElementType())
	}
	if !got.Equals(want) && !nestedHolds(got, want) {
		return fmt.Errorf("holds %s, declared %s", TypeName(got), TypeName(want))
	}
	return nil
}

// nestedHolds accepts implied types that differ from want only where a field is a
// cty.Value (implied: any).
func nestedHolds(got, want cty.Type) bool {
	switch {
	case got == cty.DynamicPseudoType:
		return true
	case got.IsListType() && want.IsListType(), got.IsMapType() && want.IsMapType():
		return nestedHolds(got.ElementType(), want.ElementType())
	case got.IsListType() && want.IsSetType():
		return nestedHolds(got.ElementType(), want.ElementType())
	case got.IsObjectType() && want.IsObjectType():
		ga, wa := got.AttributeTypes(), want.AttributeTypes()
		if len(ga) != len(wa) {
			return false
		}
		for n, t := range wa {
			g, ok := ga[n]
			if !ok || !nestedHolds(g, t) {
				return false
			}
		}
		return true
	}
	return got.Equals(want)
}

// optionalNullable checks, at any depth of the type ct (lists, sets, maps and objects), that
// each optional attribute of an object (one a task may leave out) decodes into a field that
// can hold null: else a task that leaves it out would fail on the host, not at start-up.
func optionalNullable(ft reflect.Type, ct cty.Type, where string) error {
	for ft.Kind() == reflect.Pointer {
		ft = ft.Elem()
	}
	if ft == ctyValueType {
		return nil
	}
	switch {
	case ct.IsListType() || ct.IsSetType():
		if ft.Kind() == reflect.Slice {
			return optionalNullable(ft.Elem(), ct.ElementType(), where+"[]")
		}
	case ct.IsMapType():
		if ft.Kind() == reflect.Map {
			return optionalNullable(ft.Elem(), ct.ElementType(), where+"[]")
		}
	case ct.IsObjectType():
		fields, err := structFields(ft)
		if err != nil {
			return nil // holds has said what is wrong with it
		}
		names := make([]string, 0, len(ct.AttributeTypes()))
		for n := range ct.AttributeTypes() {
			names = append(names, n)
		}
		sort.Strings(names)
		for _, n := range names {
			f, ok := fields[n]
			if !ok {
				continue
			}
			if ct.AttributeOptional(n) && !nullable(f.Type) {
				return fmt.Errorf("field %s.%s (attribute %q) cannot hold null, but the attribute may be left out: make it a pointer", where, f.Name, n)
			}
			if err := optionalNullable(f.Type, ct.AttributeType(n), where+"."+f.Name); err != nil {
				return err
			}
		}
	}
	return nil
}

func nullable(t reflect.Type) bool {
	switch t.Kind() {
	case reflect.Pointer, reflect.Slice, reflect.Map:
		return true
	}
	return t == ctyValueType
}

// argPathError turns a gocty error into an ArgError naming the top-level argument.
// machineRange is the range of a Go number type that gocty's messages quote ("value must be
// a whole number, between -9223372036854775808 and 9223372036854775807"): the limits of
// int64 or float64, up to hundreds of digits long, which say nothing to someone writing a
// task.
var machineRange = regexp.MustCompile(`,? between -?[0-9]{15,}(\.[0-9]+)? and [0-9]{15,}(\.[0-9]+)?( inclusive)?`)

func argPathError(err error) error {
	var pe cty.PathError
	if errors.As(err, &pe) && len(pe.Path) > 0 {
		if s, ok := pe.Path[0].(cty.GetAttrStep); ok {
			msg := machineRange.ReplaceAllString(pe.Error(), " within the range this argument takes")
			if len(pe.Path) > 1 {
				msg = fmt.Sprintf("%s: %s", formatPath(pe.Path[1:]), msg)
			}
			return ArgError{Arg: s.Name, Msg: msg}
		}
	}
	return err
}

func formatPath(p cty.Path) string {
	var b strings.Builder
	for _, s := range p {
		switch s := s.(type) {
		case cty.GetAttrStep:
			b.WriteString("." + s.Name)
		case cty.IndexStep:
			if s.Key.Type() == cty.Number {
				b.WriteString("[" + s.Key.AsBigFloat().Text('f', -1) + "]")
			} else if s.Key.Type() == cty.String {
				b.WriteString(fmt.Sprintf("[%q]", s.Key.AsString()))
			}
		}
	}
	return strings.TrimPrefix(b.String(), ".")
}
