// Package modules holds the module registry and the schema language modules use to declare
// their arguments. A module registers itself from its package's init function; the controller
// uses the schema to validate task bodies before any host is touched, and the helper runs the
// module's host-side code.
package modules

import (
	"fmt"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"

	"github.com/zclconf/go-cty/cty"
)

// Module is what every module implements: it describes itself. Host-side capabilities
// (check, apply, facts) are separate small interfaces found by type assertion, so a module's
// schema can exist before its host-side code does.
type Module interface {
	Info() Info
}

// ArgError is a problem with one argument; Arg names it so the caller can point at its
// source range ("" means the module block as a whole).
type ArgError struct {
	Arg string
	Msg string
}

func (e ArgError) Error() string {
	if e.Arg == "" {
		return e.Msg
	}
	return e.Arg + ": " + e.Msg
}

// Info describes a module: its name, documentation and argument schema.
type Info struct {
	// Name is the block type used in runbooks, e.g. "command" or "bond".
	Name string
	// Family groups modules in listings: "generic", "system", "network".
	Family string
	// Summary is one line; Description may be several paragraphs.
	Summary     string
	Description string
	Schema      Schema
	// Returns lists the values a task using this module registers (task.<name>.<field>).
	Returns []Field
	// Examples are task bodies (the module block and its task) shown by `runbook modules NAME`;
	// every example is validated by the test suite.
	Examples []Example
	// Reboots says the module's apply restarts the host: the connection's end is expected,
	// and the engine waits for the host to come back with another boot id, runs the
	// module's test_command there and goes on with the next task over the new connection
	// (engine/run/reboot.go). Such a module takes reboot_timeout, post_reboot_delay and
	// test_command.
	Reboots bool
}

// Field documents one registered result value.
type Field struct {
	Name string
	Type cty.Type
	Doc  string
}

// Example is a runnable snippet: a complete task block.
type Example struct {
	Title string
	HCL   string
}

// Schema declares a module's arguments and the rules between them.
type Schema struct {
	Args []Arg
	// ExactlyOneOf lists sets of arguments of which exactly one must be given.
	ExactlyOneOf [][]string
	// AtMostOneOf lists sets of arguments that exclude each other.
	AtMostOneOf [][]string
	// RequiredWith maps an argument to the arguments that must be given with it. Rules that
	// depend on values (src only when state = "link") belong in a Validator.
	RequiredWith map[string][]string
}

// Arg is one module argument.
type Arg struct {
	Name     string
	Type     cty.Type
	Required bool
	// Default is used when the argument is absent; cty.NilVal means "no default" (null).
	Default cty.Value
	// OneOf restricts a string argument to these values.
	OneOf []string
	// Pattern restricts a string argument to values matching this regular expression;
	// PatternHelp says in words what is expected.
	Pattern     *regexp.Regexp
	PatternHelp string
	// Sensitive values are redacted in every output.
	Sensitive bool
	Doc       string
}

// Arg looks an argument up by name.
func (s Schema) Arg(name string) (Arg, bool) {
	for _, a := range s.Args {
		if a.Name == name {
			return a, true
		}
	}
	return Arg{}, false
}

// TypeName renders a cty type the way runbook's docs write it.
func TypeName(t cty.Type) string {
	switch {
	case t == cty.DynamicPseudoType:
		return "any"
	case t == cty.String:
		return "string"
	case t == cty.Number:
		return "number"
	case t == cty.Bool:
		return "bool"
	case t.IsListType():
		return "list(" + TypeName(t.ElementType()) + ")"
	case t.IsSetType():
		return "set(" + TypeName(t.ElementType()) + ")"
	case t.IsMapType():
		return "map(" + TypeName(t.ElementType()) + ")"
	case t.IsObjectType():
		names := make([]string, 0, len(t.AttributeTypes()))
		for n, at := range t.AttributeTypes() {
			names = append(names, n+"="+TypeName(at))
		}
		sort.Strings(names)
		return "object({" + strings.Join(names, ", ") + "})"
	}
	return t.FriendlyName()
}

var (
	mu       sync.RWMutex
	registry = map[string]*Def{}
)

var validName = regexp.MustCompile(`^[a-z][a-z0-9_]*$`)

// InfoOf returns the Info of the module registered under name, as it was at registration,
// without building it again (for hot paths such as registering every task's result).
func InfoOf(name string) (Info, bool) {
	d, ok := Lookup(name)
	if !ok {
		return Info{}, false
	}
	return d.info, true
}

// Lookup returns the module registered under name.
func Lookup(name string) (*Def, bool) {
	mu.RLock()
	defer mu.RUnlock()
	d, ok := registry[name]
	return d, ok
}

// Names returns every registered module name, sorted.
func Names() []string {
	mu.RLock()
	defer mu.RUnlock()
	names := make([]string, 0, len(registry))
	for n := range registry {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// All returns the Info of every registered module, sorted by name.
func All() []Info {
	names := Names()
	out := make([]Info, 0, len(names))
	for _, n := range names {
		d, _ := Lookup(n)
		out = append(out, d.info)
	}
	return out
}

// ValueErrors checks the rules each string argument's own value must meet (OneOf, Pattern)
// on the known, non-null attributes of v, an object of arguments. It is the one statement
// of those rules: the controller reports its errors as diagnostics at the argument's
// expression, and the helper checks them again before a module runs (Def.Args), as it
// trusts no caller.
func (s Schema) ValueErrors(v cty.Value) []ArgError {
	v, _ = v.UnmarkDeep()
	if v.IsNull() || !v.IsKnown() || !v.Type().IsObjectType() {
		return nil
	}
	var errs []ArgError
	for _, a := range s.Args {
		if a.Type != cty.String || !v.Type().HasAttribute(a.Name) {
			continue
		}
		x := v.GetAttr(a.Name)
		if !x.IsKnown() || x.IsNull() {
			continue
		}
		str := x.AsString()
		if len(a.OneOf) > 0 && !slices.Contains(a.OneOf, str) {
			msg := fmt.Sprintf("%q is not a valid %s; expected one of: %s.", str, a.Name, strings.Join(a.OneOf, ", "))
			if sug := Suggest(str, a.OneOf); sug != "" {
				msg += fmt.Sprintf(" Did you mean %q?", sug)
			}
			errs = append(errs, ArgError{Arg: a.Name, Msg: msg})
		}
		if a.Pattern != nil && !a.Pattern.MatchString(str) {
			help := a.PatternHelp
			if help == "" {
				help = "a value matching " + a.Pattern.String()
			}
			errs = append(errs, ArgError{Arg: a.Name, Msg: fmt.Sprintf("%q is not valid here: expected %s.", str, help)})
		}
	}
	return errs
}

func (s Schema) check() error {
	seen := map[string]bool{}
	for _, a := range s.Args {
		if a.Name == "" || !validName.MatchString(a.Name) {
			return fmt.Errorf("invalid argument name %q", a.Name)
		}
		if seen[a.Name] {
			return fmt.Errorf("argument %q declared twice", a.Name)
		}
		seen[a.Name] = true
		if a.Type == cty.NilType {
			return fmt.Errorf("argument %q has no type", a.Name)
		}
		if a.Required && a.Default != cty.NilVal {
			return fmt.Errorf("argument %q is required and has a default", a.Name)
		}
		if len(a.OneOf) > 0 && a.Type != cty.String {
			return fmt.Errorf("argument %q: OneOf needs a string type", a.Name)
		}
	}
	for _, set := range append(append([][]string{}, s.ExactlyOneOf...), s.AtMostOneOf...) {
		for _, n := range set {
			if !seen[n] {
				return fmt.Errorf("constraint names unknown argument %q", n)
			}
		}
	}
	for k, vs := range s.RequiredWith {
		for _, n := range append([]string{k}, vs...) {
			if !seen[n] {
				return fmt.Errorf("RequiredWith names unknown argument %q", n)
			}
		}
	}
	return nil
}
