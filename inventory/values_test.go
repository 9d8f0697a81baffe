package inventory

import (
	"encoding/json"
	"math"
	"reflect"
	"testing"
)

func TestPyLiteral(t *testing.T) {
	tests := []struct {
		in   string
		want any
		ok   bool
	}{
		{"42", int64(42), true},
		{"-7", int64(-7), true},
		{"+3", int64(3), true},
		{"- 3", int64(-3), true},
		{"-(3)", int64(-3), true},
		{"--1", nil, false},
		{"0x1F", int64(31), true},
		{"0o17", int64(15), true},
		{"0b101", int64(5), true},
		{"1_000", int64(1000), true},
		{"1__0", nil, false},
		{"007", nil, false},
		{"00", int64(0), true},
		{"3.14", 3.14, true},
		{"1e3", 1000.0, true},
		{".5", 0.5, true},
		{"5.", 5.0, true},
		{"1e400", math.Inf(1), true},
		{"12345678901234567890", json.Number("12345678901234567890"), true},
		{"1j", nil, false},
		{"1+2j", nil, false},
		{"True", true, true},
		{"False", false, true},
		{"None", nil, true},
		{"true", nil, false},
		{"-True", int64(-1), true},
		{"'a'", "a", true},
		{`"a\tb"`, "a\tb", true},
		{`'\x41\u00e9\N{DASH}'`, nil, false},
		{`'\x41\u00e9'`, "Aé", true},
		{`r'\n'`, `\n`, true},
		{`b'x'`, "x", true},
		{`'a' "b"`, "ab", true},
		{`'a' b'b'`, nil, false},
		{`'''tri'ple'''`, "tri'ple", true},
		{`f'x'`, nil, false},
		{"'unterminated", nil, false},
		{"[1, 'two', [3.0]]", []any{int64(1), "two", []any{3.0}}, true},
		{"[1,]", []any{int64(1)}, true},
		{"[,]", nil, false},
		{"(1, 2)", []any{int64(1), int64(2)}, true},
		{"(1,)", []any{int64(1)}, true},
		{"(1)", int64(1), true},
		{"()", []any{}, true},
		{"{1, 2}", []any{int64(1), int64(2)}, true},
		{"set()", []any{}, true},
		{"{'a': {1: None, True: 2.5}}", map[string]any{"a": map[string]any{"1": nil, "true": 2.5}}, true},
		{"{}", map[string]any{}, true},
		{"{'a':}", nil, false},
		{"1 # comment", int64(1), true},
		{"[1, # comment\n 2]", []any{int64(1), int64(2)}, true},
		{"foo", nil, false},
		{"foo # c", nil, false},
		{"1 + 2", nil, false},
		{"x.y", nil, false},
		{"", nil, false},
		{"   1", int64(1), true},
		{"[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[", nil, false},
	}
	for _, tt := range tests {
		got, ok := pyLiteral(tt.in)
		if ok != tt.ok || (ok && !reflect.DeepEqual(got, tt.want)) {
			t.Errorf("pyLiteral(%q) = %#v, %v; want %#v, %v", tt.in, got, ok, tt.want, tt.ok)
		}
	}
}

func TestShlexSplit(t *testing.T) {
	tests := []struct {
		in   string
		want []string
		err  bool
	}{
		{`h1 a=1 b="two words"`, []string{"h1", "a=1", "b=two words"}, false},
		{`a=x#c b=2`, []string{"a=x"}, false},
		{`a="#not" b='#no'`, []string{"a=#not", "b=#no"}, false},
		{`a=esc\ aped`, []string{"a=esc aped"}, false},
		{`a="say \"hi\" \n"`, []string{`a=say "hi" \n`}, false},
		{`a='back\slash'`, []string{`a=back\slash`}, false},
		{`a=""`, []string{"a="}, false},
		{`""`, []string{""}, false},
		{`a="open`, nil, true},
		{`a\`, nil, true},
		{`  # only a comment`, nil, false},
	}
	for _, tt := range tests {
		toks, err := shlexSplit(tt.in)
		if (err != nil) != tt.err {
			t.Errorf("shlexSplit(%q) error %v", tt.in, err)
			continue
		}
		var got []string
		for _, tk := range toks {
			got = append(got, tk.text)
			if tk.start < 0 || tk.end > len(tt.in) || tk.start > tk.end {
				t.Errorf("shlexSplit(%q): bad token range %d-%d", tt.in, tk.start, tk.end)
			}
		}
		if !reflect.DeepEqual(got, tt.want) {
			t.Errorf("shlexSplit(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestYAML11Scalars(t *testing.T) {
	tests := []struct {
		in   string
		want any
	}{
		{"yes", true}, {"No", false}, {"ON", true}, {"off", false}, {"y", "y"}, {"TRUE", true},
		{"~", nil}, {"null", nil}, {"", nil}, {"NULL", nil}, {"nil", "nil"},
		{"017", int64(15)}, {"-010", int64(-8)}, {"09", "09"}, {"0x1F", int64(31)}, {"0b101", int64(5)},
		{"1_000", int64(1000)}, {"1:30", int64(90)}, {"-1:30", int64(-90)}, {"190:20:30", int64(685230)},
		{"1e3", "1e3"}, {"1.0e+3", 1000.0}, {"1.5", 1.5}, {".5", 0.5}, {"1:30.5", 90.5},
		{".inf", math.Inf(1)}, {"-.Inf", math.Inf(-1)},
		{"2001-12-14", "2001-12-14"}, {"2001-1-1", "2001-1-1"},
		{"2001-12-14T21:59:43.10-05:00", "2001-12-14T21:59:43.100000-05:00"},
		{"2001-12-14 21:59:43 Z", "2001-12-14T21:59:43+00:00"},
		{"2001-12-14t21:59:43.0", "2001-12-14T21:59:43"},
		{"99999999999999999999", json.Number("99999999999999999999")},
	}
	for _, tt := range tests {
		got, _ := yaml11Plain(tt.in)
		if !reflect.DeepEqual(got, tt.want) {
			t.Errorf("yaml11Plain(%q) = %#v, want %#v", tt.in, got, tt.want)
		}
	}
	if v, _ := yaml11Plain(".nan"); !math.IsNaN(v.(float64)) {
		t.Errorf(".nan = %v", v)
	}
	if v, tag := yaml11Plain("2001-02-30"); v != nil || tag != "!!timestamp" {
		t.Errorf("an impossible date = %v, %s", v, tag)
	}
}

func TestYAMLValues(t *testing.T) {
	src := `
plain: 017
quoted: "017"
single: 'yes'
unsafe: !unsafe '{{ x }}'
vault: !vault |
  $ANSIBLE_VAULT;1.1;AES256
  6162
str: !!str 12
int: !!int "12"
base: &b {a: 1, b: 2}
merged:
  <<: *b
  b: 3
multi:
  <<: [{x: 1}, {x: 2, y: 2}]
keys: {1: a, true: b, null: c, 1.5: d}
`
	doc, diags := parseYAMLDoc("v.yml", []byte(src))
	if diags.HasErrors() {
		t.Fatal(diags.Error())
	}
	v, diags := doc.value(doc.root)
	if diags.HasErrors() {
		t.Fatal(diags.Error())
	}
	want := map[string]any{
		"plain":  int64(15),
		"quoted": "017",
		"single": "yes",
		"unsafe": "{{ x }}",
		"vault":  map[string]any{"__ansible_vault": "$ANSIBLE_VAULT;1.1;AES256\n6162\n"},
		"str":    "12",
		"int":    int64(12),
		"base":   map[string]any{"a": int64(1), "b": int64(2)},
		"merged": map[string]any{"a": int64(1), "b": int64(3)},
		"multi":  map[string]any{"x": int64(1), "y": int64(2)},
		"keys":   map[string]any{"1": "a", "true": "b", "null": "c", "1.5": "d"},
	}
	if !reflect.DeepEqual(v, want) {
		t.Errorf("got %#v\nwant %#v", v, want)
	}
	// a JSON file is read as JSON, where 1e3 is a number
	doc, _ = parseYAMLDoc("v.json", []byte(`{"a": 1e3, "b": "x", "c": [true, null, 2]}`))
	v, _ = doc.value(doc.root)
	if want := map[string]any{"a": 1000.0, "b": "x", "c": []any{true, nil, int64(2)}}; !reflect.DeepEqual(v, want) {
		t.Errorf("JSON: got %#v", v)
	}
	// alias bombs are refused, not expanded
	bomb := "a: &a [x, x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]\nc: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]\nd: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]\ne: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d, *d]\nf: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e, *e]\ng: [*f, *f, *f, *f, *f, *f, *f, *f, *f, *f]\n"
	doc, diags = parseYAMLDoc("bomb.yml", []byte(bomb))
	if diags.HasErrors() {
		t.Fatal(diags.Error())
	}
	if _, diags := doc.value(doc.root); !diags.HasErrors() {
		t.Error("an alias bomb was expanded")
	}
}

func TestPyFormatting(t *testing.T) {
	floats := map[float64]string{
		1000: "1000.0", 0.5: "0.5", 1e16: "1e+16", 1.5e-5: "1.5e-05", 1e-4: "0.0001", 123456789012345678: "1.2345678901234568e+17",
		3.14: "3.14", 1e22: "1e+22", math.Inf(-1): "-inf", 9999999999999998: "9999999999999998.0",
	}
	for f, want := range floats {
		if got := pyFloatRepr(f); got != want {
			t.Errorf("pyFloatRepr(%v) = %q, want %q", f, got, want)
		}
	}
	if got := pyFloatRepr(math.Copysign(0, -1)); got != "-0.0" {
		t.Errorf("pyFloatRepr(-0) = %q", got)
	}
	reprs := []struct {
		v    any
		want string
	}{
		{"it's", `"it's"`},
		{`it's "x"`, `'it\'s "x"'`},
		{"tab\t\x01é\u00a0", `'tab\t\x01é\xa0'`},
		{[]any{int64(1), "a", nil, true, 2.5}, `[1, 'a', None, True, 2.5]`},
		{map[string]any{"b": []any{}, "a": map[string]any{}}, `{'a': {}, 'b': []}`},
	}
	for _, tt := range reprs {
		if got := pyRepr(tt.v); got != tt.want {
			t.Errorf("pyRepr(%#v) = %s, want %s", tt.v, got, tt.want)
		}
	}
	if got := string(pyJSON(map[string]any{"a": []any{math.NaN(), "<&>\n"}, "b": map[string]any{}})); got != "{\n    \"a\": [\n        NaN,\n        \"<&>\\n\"\n    ],\n    \"b\": {}\n}" {
		t.Errorf("pyJSON = %s", got)
	}
}
