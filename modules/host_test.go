package modules

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/zclconf/go-cty/cty"
)

func TestNormalize(t *testing.T) {
	s := Schema{Args: []Arg{
		{Name: "path", Type: cty.String, Required: true},
		{Name: "force", Type: cty.Bool, Default: cty.False},
		{Name: "codes", Type: cty.List(cty.Number)},
		{Name: "vars", Type: cty.DynamicPseudoType},
	}}
	tests := []struct {
		name    string
		in      cty.Value
		want    cty.Value
		wantErr string
	}{
		{"defaults and nulls", cty.ObjectVal(map[string]cty.Value{"path": cty.StringVal("/x")}),
			cty.ObjectVal(map[string]cty.Value{"path": cty.StringVal("/x"), "force": cty.False, "codes": cty.NullVal(cty.List(cty.Number)), "vars": cty.NullVal(cty.DynamicPseudoType)}), ""},
		{"conversion", cty.ObjectVal(map[string]cty.Value{"path": cty.StringVal("/x"), "force": cty.StringVal("true"),
			"codes": cty.TupleVal([]cty.Value{cty.NumberIntVal(0), cty.StringVal("2")}), "vars": cty.ObjectVal(map[string]cty.Value{"a": cty.True})}),
			cty.ObjectVal(map[string]cty.Value{"path": cty.StringVal("/x"), "force": cty.True,
				"codes": cty.ListVal([]cty.Value{cty.NumberIntVal(0), cty.NumberIntVal(2)}), "vars": cty.ObjectVal(map[string]cty.Value{"a": cty.True})}), ""},
		{"map in", cty.MapVal(map[string]cty.Value{"path": cty.StringVal("/x")}),
			cty.ObjectVal(map[string]cty.Value{"path": cty.StringVal("/x"), "force": cty.False, "codes": cty.NullVal(cty.List(cty.Number)), "vars": cty.NullVal(cty.DynamicPseudoType)}), ""},
		{"missing required", cty.EmptyObjectVal, cty.NilVal, `"path" is required`},
		{"unknown arg", cty.ObjectVal(map[string]cty.Value{"path": cty.StringVal("/x"), "pth": cty.True}), cty.NilVal, `unsupported argument "pth"`},
		{"wrong type", cty.ObjectVal(map[string]cty.Value{"path": cty.StringVal("/x"), "force": cty.StringVal("maybe")}), cty.NilVal, `"force"`},
		{"not an object", cty.StringVal("x"), cty.NilVal, "must be an object"},
		{"unknown value", cty.ObjectVal(map[string]cty.Value{"path": cty.UnknownVal(cty.String)}), cty.NilVal, "unknown values"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := s.Normalize(tt.in)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !got.RawEquals(tt.want) {
				t.Errorf("got %#v\nwant %#v", got, tt.want)
			}
		})
	}
}

func TestRedact(t *testing.T) {
	args := cty.ObjectVal(map[string]cty.Value{
		"stdin": cty.StringVal("hunter22").Mark("sensitive"),
		"env":   cty.MapVal(map[string]cty.Value{"TOKEN": cty.StringVal("s3cr3t-token")}),
		"short": cty.StringVal("ab"),
		"cmd":   cty.StringVal("cat"),
	})
	secrets := SecretStrings(args, []string{"stdin", "env", "short", "missing"})
	if len(secrets) != 3 {
		t.Fatalf("secrets = %q", secrets)
	}
	r := &Result{
		Msg:      "got hunter22",
		Warnings: []string{"token s3cr3t-token"},
		Diff:     &Diff{Before: "hunter22\n", After: "x", BeforeHeader: "a", AfterHeader: "b"},
		Data:     map[string]any{"stdout": "hunter22 ab", "rc": 0, "list": []any{"s3cr3t-token"}},
	}
	r.Redact(secrets)
	d := NewDef[cty.Value, map[string]any](testModule{info: Info{Name: "redact_test"}})
	raw, err := d.Data(r.Data, NewRedactor(secrets))
	if err != nil {
		t.Fatal(err)
	}
	var data map[string]any
	if err := json.Unmarshal(raw, &data); err != nil {
		t.Fatal(err)
	}
	r.Data = data
	for _, s := range []string{r.Msg, r.Warnings[0], r.Diff.Before, r.Data.(map[string]any)["stdout"].(string), r.Data.(map[string]any)["list"].([]any)[0].(string)} {
		if strings.Contains(s, "hunter22") || strings.Contains(s, "s3cr3t") || !strings.Contains(s, Redacted) {
			t.Errorf("not redacted: %q", s)
		}
	}
	if !strings.HasSuffix(r.Data.(map[string]any)["stdout"].(string), " ab") {
		t.Errorf("short secret should be left alone: %q", r.Data.(map[string]any)["stdout"])
	}
}

// TestRedactExecutorData: data as an executor returns it (a cty object converted from what
// the helper sent) has every secret hidden too, at any depth; other values stay as they are.
func TestRedactExecutorData(t *testing.T) {
	r := &Result{Data: cty.ObjectVal(map[string]cty.Value{
		"stdout": cty.StringVal("token s3cr3t-token"),
		"lines":  cty.ListVal([]cty.Value{cty.StringVal("s3cr3t-token"), cty.StringVal("plain")}),
		"rc":     cty.Zero,
		"none":   cty.NullVal(cty.String),
	})}
	r.Redact([]string{"s3cr3t-token"})
	want := cty.ObjectVal(map[string]cty.Value{
		"stdout": cty.StringVal("token " + Redacted),
		"lines":  cty.ListVal([]cty.Value{cty.StringVal(Redacted), cty.StringVal("plain")}),
		"rc":     cty.Zero,
		"none":   cty.NullVal(cty.String),
	})
	if got, ok := r.Data.(cty.Value); !ok || !got.RawEquals(want) {
		t.Errorf("data = %#v\nwant   %#v", r.Data, want)
	}
}

func TestNewEnvSensitive(t *testing.T) {
	info := Info{Schema: Schema{Args: []Arg{{Name: "a", Type: cty.String, Sensitive: true}, {Name: "b", Type: cty.String}}}}
	env := NewEnv(info, []string{"c"})
	if !env.Sensitive("a") || env.Sensitive("b") || !env.Sensitive("c") {
		t.Errorf("sensitive = %v", env.SensitiveArgs())
	}
	var nilEnv *Env
	if nilEnv.Limit() != DefaultOutputLimit || nilEnv.Log() == nil || nilEnv.Sensitive("a") {
		t.Error("nil Env must be usable")
	}
}

func TestDiffStatusAndTense(t *testing.T) {
	tests := []struct {
		apply  bool
		status Status
		msg    string
	}{
		{true, StatusChanged, "stopped"},
		{false, StatusDrift, "would stop"},
	}
	for _, tt := range tests {
		if got := DiffStatus(tt.apply); got != tt.status {
			t.Errorf("DiffStatus(%v) = %q, want %q", tt.apply, got, tt.status)
		}
		if got := Tense(tt.apply, "stopped", "would stop"); got != tt.msg {
			t.Errorf("Tense(%v) = %q, want %q", tt.apply, got, tt.msg)
		}
	}
}
