package config

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hashicorp/hcl/v2"
	"github.com/zclconf/go-cty/cty"

	_ "github.com/runbook/runbook/modules/standard"
)

// FuzzParse feeds arbitrary bytes to the runbook loader: whatever the input, it must return
// diagnostics, never panic.
func FuzzParse(f *testing.F) {
	seeds, _ := filepath.Glob("testdata/errors/*.hcl")
	more, _ := filepath.Glob("../../runbooks/*/*.hcl")
	examples, _ := filepath.Glob("../../runbooks/examples/*.hcl")
	for _, name := range append(append(seeds, more...), examples...) {
		if b, err := os.ReadFile(name); err == nil {
			f.Add(b)
		}
	}
	f.Add([]byte(`play "x" { hosts = "all" task "t" { command { cmd = "true" } } }`))
	f.Add([]byte(`variable "v" { type = map(object({a=optional(string, "x")})) default = {} }`))
	f.Add([]byte(`locals { a = local.a }`))
	f.Add([]byte("play \"\" {\n hosts = \"a:&b:!c\"\n serial = [1, \"10%\"]\n}"))
	f.Fuzz(func(t *testing.T, src []byte) {
		rb, diags := Parse([]Source{{Name: "fuzz.hcl", Src: src}}, Inputs{AllowMissing: true})
		if rb == nil && !diags.HasErrors() {
			t.Fatal("no runbook and no error")
		}
	})
}

// fuzzSecrets are two values for the sensitive inputs: an output that shows (a part of)
// the first is a leak only if, run again with the second, it shows the second (the value
// came from the input, not from text the fuzzer wrote into an expression). They are
// random text, so that no message shows four bytes of one by chance, with separators for
// expressions to split them at.
var fuzzSecrets = [2]string{"Zq7x-Kx9w-Pm3j", "Wp4v-Rm2b-Tn8c"}

// fuzzShapes are the sensitive variable's type and its value (as --var gives it) for the
// secret S.
var fuzzShapes = []struct{ ty, raw string }{
	{"string", "S"},
	{"list(string)", `["S", "b"]`},
	{"set(string)", `["S", "b"]`},
	{"map(string)", `{"S" = "v", k = "S"}`},
	{"object({a = string, b = list(string)})", `{a = "S", b = ["S"]}`},
	{"list(number)", `[1, 2]`},
}

// FuzzEvalMarked evaluates for_each, when, changed_when, until and module arguments (a
// file module's path, and its state, which has allowed values), as a
// run does for one host, with sensitive values in the variables, the host's vars and
// earlier results. Whatever the expressions, evaluation must not panic, and nothing it
// returns may show a sensitive value without its mark: no item key or value, no
// argument, no error message.
func FuzzEvalMarked(f *testing.F) {
	seeds := []struct {
		shape                     uint8
		forEach, when, arg, state string
	}{
		{2, "var.s", `each.value != "b"`, "each.value", ""},
		{1, "var.s", "each.key > 0", `"${each.value}-x"`, ""},
		{3, "var.s", "each.value == \"v\"", "each.key", ""},
		{2, "{ for u in var.s : u => upper(u) }", "true", "each.key", ""},
		{1, "{ for u in var.s : u => u... }", "length(each.value) > 0", "join(\",\", each.value)", ""},
		{4, "var.s.b", "contains(var.s.b, each.value)", "format(\"%s\", each.value)", ""},
		{0, "[var.s, \"plain\"]", "each.value != \"\"", "each.value", ""},
		{0, "", "var.s == \"x\"", "var.s", ""},
		{3, "", `length(keys({ for k, v in var.s : v => k... })) > 0`, "jsonencode(var.s)", ""},
		{1, "", `length(keys({ for u in concat(var.s, host.vars.more) : u => 1 })) > 0`, `"/tmp/x"`, ""},
		{0, "toset(host.vars.more)", "true", "each.key", ""},
		{0, "task.prev.results", "each.value.changed", "each.key", ""},
		{5, "var.s", "each.value > 1", "tostring(each.value)", ""},
		{0, "", "true", "tostring(parseint(var.s, 10))", ""},
		{2, "{ for i, u in tolist(var.s) : i => u }", "true", "each.value", ""},
		{3, "var.s", "true", "regex_replace(each.key, \"[a-z]\", \"_\")", ""},
		{0, "{ (var.s) = 1, k = var.s }", "true", "each.key", ""},
		{2, "var.s", "true", "each.value", "each.value"},
		{0, "", "true", `"/tmp/x"`, "var.s"},
		{3, "", "true", `"/tmp/x"`, "host.vars.more[0]"},
		// values computed from the secret, which redacting its text cannot hide
		{0, "", "tonumber(upper(var.s)) > 0", `"/tmp/x"`, ""},
		{0, "", "true", `tostring(tonumber(split("-", var.s)[1]))`, ""},
		{0, "", `regex("(${lower(var.s)}", "x") == ""`, `"/tmp/x"`, ""},
		{1, "{ for u in var.s : upper(u) => 1 }", "true", "each.key", "lower(each.key)"},
		{0, "", "length({ for u in [var.s, var.s] : upper(u) => 1 }) > 0", `"/tmp/x"`, ""},
		{0, "", "true", `"/tmp/x"`, `replace(var.s, "-", "")`},
	}
	for _, s := range seeds {
		f.Add(s.shape, s.forEach, s.when, s.arg, s.state)
	}
	f.Fuzz(func(t *testing.T, shape uint8, forEach, when, arg, state string) {
		// a first run; a second only to confirm a suspected leak
		leak := evalMarked(shape, forEach, when, arg, state, fuzzSecrets[0])
		if leak != "" && evalMarked(shape, forEach, when, arg, state, fuzzSecrets[1]) != "" {
			t.Fatalf("a sensitive value shows unmarked: %s", leak)
		}
	})
}

// evalMarked evaluates one fuzz case with secret as the sensitive value; it returns where
// the secret showed without its mark, or "".
func evalMarked(shapeN uint8, forEach, when, arg, state, secret string) string {
	shape := fuzzShapes[int(shapeN)%len(fuzzShapes)]
	var task strings.Builder
	if forEach != "" {
		fmt.Fprintf(&task, "    for_each = %s\n", forEach)
	}
	if when != "" {
		fmt.Fprintf(&task, "    when = %s\n    changed_when = %s\n    until = %s\n    retries = 1\n", when, when, when)
	}
	if arg == "" {
		arg = `"x"`
	}
	if state != "" {
		// an argument with allowed values, whose error quotes the value
		state = "\n      state = " + state
	}
	fmt.Fprintf(&task, "    file {\n      path = %s%s\n    }", arg, state)
	src := fmt.Sprintf("variable \"s\" {\n  type      = %s\n  sensitive = true\n}\n", shape.ty) + sensitivePlay(task.String())
	in := Inputs{Vars: []string{"s=" + strings.ReplaceAll(shape.raw, "S", secret)}}
	if shape.ty == "string" {
		in.Vars = []string{"s=" + secret}
	}
	rb, diags := Parse([]Source{{Name: "fuzz.hcl", Src: []byte(src)}}, in)
	if where := shownIn(diags, secret); where != "" {
		return "loading: " + where
	}
	if diags.HasErrors() {
		return ""
	}
	tk := rb.Plays[0].Task("t")
	if tk == nil {
		return ""
	}
	scope := sensitiveScope(secret)
	items, diags := tk.Items(rb.EvalContext(scope))
	if where := shownIn(diags, secret); where != "" {
		return "for_each: " + where
	}
	if tk.ForEach == nil {
		items = []Item{{}}
	}
	for _, it := range items {
		s := scope
		if tk.ForEach != nil {
			it := it
			s.Each = &it
			if unmarkedSecret(it.Key, secret) || unmarkedSecret(it.Value, secret) {
				return fmt.Sprintf("each = %#v", it)
			}
		}
		ctx := rb.EvalContext(s)
		_, d := tk.WhenTrue(ctx)
		if where := shownIn(d, secret); where != "" {
			return "when: " + where
		}
		_, args, d := tk.Args(ctx)
		if where := shownIn(d, secret); where != "" {
			return "arguments: " + where
		}
		if args != cty.NilVal && unmarkedSecret(args, secret) {
			return fmt.Sprintf("arguments = %#v", args)
		}
		s.Self = cty.ObjectVal(map[string]cty.Value{"status": cty.StringVal("ok"), "msg": cty.StringVal(secret).Mark(Sensitive)})
		_, _, _, _, d = tk.Verdict(rb.EvalContext(s))
		if where := shownIn(d, secret); where != "" {
			return "changed_when: " + where
		}
		_, d = tk.UntilTrue(rb.EvalContext(s))
		if where := shownIn(d, secret); where != "" {
			return "until: " + where
		}
	}
	return ""
}

// shownIn returns the first diagnostic whose text holds secret, or a part of it in any
// case (a value computed from it: upper(var.s), split("-", var.s)[1]), or "".
func shownIn(diags hcl.Diagnostics, secret string) string {
	for _, d := range diags {
		if showsPart(d.Summary+" "+d.Detail, secret) != "" {
			return d.Error()
		}
	}
	return ""
}

// unmarkedSecret reports whether v holds secret, or a part of it in any case, in a
// string or in a key of a map or object, that no mark covers.
func unmarkedSecret(v cty.Value, secret string) bool {
	if v == cty.NilVal || v.IsMarked() || !v.IsKnown() || v.IsNull() {
		return false
	}
	ty := v.Type()
	switch {
	case ty == cty.String:
		return showsPart(v.AsString(), secret) != ""
	case ty.IsMapType() || ty.IsObjectType():
		for it := v.ElementIterator(); it.Next(); {
			k, e := it.Element()
			if showsPart(k.AsString(), secret) != "" || unmarkedSecret(e, secret) {
				return true
			}
		}
	case ty.IsListType() || ty.IsTupleType() || ty.IsSetType():
		for it := v.ElementIterator(); it.Next(); {
			if _, e := it.Element(); unmarkedSecret(e, secret) {
				return true
			}
		}
	}
	return false
}
