package controller

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/hashicorp/hcl/v2"
	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/function"
	"github.com/zclconf/go-cty/cty/function/stdlib"

	"github.com/runbook/runbook/modules"
	"github.com/runbook/runbook/modules/generic"
)

func s(v string) cty.Value { return cty.StringVal(v) }

func TestTemplatePrepare(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "motd.tpl"), []byte("%{ for n in nics ~}\n${n}: ${upper(host)}\n%{ endfor ~}\n"), 0o644)
	env := &Env{Dir: dir, EvalContext: &hcl.EvalContext{
		Variables: map[string]cty.Value{"host": s("web1")},
		Functions: map[string]function.Function{"upper": stdlib.UpperFunc},
	}}
	tests := []struct {
		name      string
		args      map[string]cty.Value
		want      string
		sensitive bool
		wantErr   string
	}{
		{"inline with vars", map[string]cty.Value{"content": s("This is ${name}.\n"), "vars": cty.ObjectVal(map[string]cty.Value{"name": s("web1")})}, "This is web1.\n", false, ""},
		{"file with context and functions", map[string]cty.Value{"src": s("motd.tpl"), "vars": cty.ObjectVal(map[string]cty.Value{"nics": cty.TupleVal([]cty.Value{s("eth0"), s("eth1")})})},
			"eth0: WEB1\neth1: WEB1\n", false, ""},
		{"sensitive var marks the output", map[string]cty.Value{"content": s("pw=${pw}\n"), "vars": cty.ObjectVal(map[string]cty.Value{"pw": s("x").Mark("sensitive")})}, "pw=x\n", true, ""},
		{"an unused sensitive var does not", map[string]cty.Value{"content": s("fixed\n"), "vars": cty.ObjectVal(map[string]cty.Value{"pw": s("x").Mark("sensitive")})}, "fixed\n", false, ""},
		{"sensitive template text marks the output", map[string]cty.Value{"content": s("pw=x\n").Mark("sensitive")}, "pw=x\n", true, ""},
		{"a map of vars", map[string]cty.Value{"content": s("${a}${b}"), "vars": cty.MapVal(map[string]cty.Value{"a": s("1"), "b": s("2")})}, "12", false, ""},
		{"undefined name", map[string]cty.Value{"content": s("${nope}")}, "", false, "Unknown variable"},
		{"syntax error", map[string]cty.Value{"content": s("%{ if }")}, "", false, "template:"},
		{"missing file", map[string]cty.Value{"src": s("nope.tpl")}, "", false, "nope.tpl"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.args["dest"] = s("/etc/motd")
			args, err := generic.Template{}.Info().Schema.Normalize(cty.ObjectVal(tt.args))
			if err != nil {
				t.Fatal(err)
			}
			out, err := prepareTemplate(context.Background(), env, args)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			content := out.GetAttr("content")
			if content.IsMarked() != tt.sensitive {
				t.Errorf("marked = %v", content.IsMarked())
			}
			content, _ = content.Unmark()
			if content.AsString() != tt.want || !out.GetAttr("src").IsNull() || !out.GetAttr("vars").IsNull() {
				t.Errorf("prepared = %#v", out)
			}
			// What the controller sends is what the host accepts.
			plain, _ := out.UnmarkDeep()
			if _, err := (generic.Template{}).Info().Schema.Normalize(plain); err != nil {
				t.Error(err)
			}
		})
	}
}

// TestTemplateParsedOnce renders one template for many hosts: it is parsed once, each host
// still gets its own rendering, a template file changed between hosts is parsed anew, and a
// full cache still renders.
func TestTemplateParsedOnce(t *testing.T) {
	dir := t.TempDir()
	tpl := filepath.Join(dir, "motd.tpl")
	os.WriteFile(tpl, []byte("host ${host}\n"), 0o644)
	parsedTemplates.mu.Lock()
	parsedTemplates.m, parsedTemplates.bytes = nil, 0
	parsedTemplates.mu.Unlock()
	render := func(host string) string {
		t.Helper()
		env := &Env{Dir: dir, EvalContext: &hcl.EvalContext{Variables: map[string]cty.Value{"host": s(host)}}}
		args, err := generic.Template{}.Info().Schema.Normalize(cty.ObjectVal(map[string]cty.Value{"src": s("motd.tpl"), "dest": s("/etc/motd")}))
		if err != nil {
			t.Fatal(err)
		}
		out, err := prepareTemplate(context.Background(), env, args)
		if err != nil {
			t.Fatal(err)
		}
		return out.GetAttr("content").AsString()
	}
	cached := func() int {
		parsedTemplates.mu.Lock()
		defer parsedTemplates.mu.Unlock()
		return len(parsedTemplates.m)
	}
	for _, h := range []string{"web1", "web2", "web3"} {
		if got, want := render(h), "host "+h+"\n"; got != want {
			t.Errorf("rendered %q for %s, want %q", got, h, want)
		}
	}
	if n := cached(); n != 1 {
		t.Errorf("%d parsed templates kept after three hosts, want 1", n)
	}
	os.WriteFile(tpl, []byte("changed ${host}\n"), 0o644)
	if got := render("web4"); got != "changed web4\n" {
		t.Errorf("after the file changed: %q", got)
	}
	// A text larger than the cache's byte budget is rendered and not kept.
	os.WriteFile(tpl, []byte("big ${host}\n"+strings.Repeat("#", maxTemplateBytes)), 0o644)
	if got := render("web6"); !strings.HasPrefix(got, "big web6\n") {
		t.Errorf("a large template: %.20q", got)
	}
	if n := cached(); n != 2 {
		t.Errorf("%d parsed templates kept after a large one, want 2 (it is not kept)", n)
	}
	parsedTemplates.mu.Lock()
	for i := len(parsedTemplates.m); i < maxTemplates; i++ {
		parsedTemplates.m[templateKey{"filler", strconv.Itoa(i)}] = nil
	}
	parsedTemplates.mu.Unlock()
	os.WriteFile(tpl, []byte("full ${host}\n"), 0o644)
	if got := render("web5"); got != "full web5\n" {
		t.Errorf("with the cache full: %q", got)
	}
	if n := cached(); n != maxTemplates {
		t.Errorf("the cache grew past its bound: %d", n)
	}
	parsedTemplates.mu.Lock()
	parsedTemplates.m, parsedTemplates.bytes = nil, 0
	parsedTemplates.mu.Unlock()
}

func TestCopyPrepare(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "ifcfg"), []byte("DEVICE=bond0\n"), 0o644)
	args, _ := generic.Copy{}.Info().Schema.Normalize(cty.ObjectVal(map[string]cty.Value{"dest": s("/x"), "src": s("ifcfg")}))
	out, err := prepareCopy(context.Background(), &Env{Dir: dir}, args)
	if err != nil || out.GetAttr("content").AsString() != "DEVICE=bond0\n" || !out.GetAttr("src").IsNull() {
		t.Fatalf("prepared = %#v, %v", out, err)
	}
	if _, err := prepareCopy(context.Background(), &Env{Dir: dir},
		setAttrs(args, map[string]cty.Value{"src": s("missing")})); err == nil {
		t.Error("a missing src must fail")
	}
	// A sensitive src makes the content read from it sensitive.
	out, err = prepareCopy(context.Background(), &Env{Dir: dir}, setAttrs(args, map[string]cty.Value{"src": s("ifcfg").Mark("sensitive")}))
	if err != nil || !out.GetAttr("content").IsMarked() {
		t.Errorf("prepared = %#v, %v", out, err)
	}
	// Content given inline goes on as it is.
	inline := setAttrs(args, map[string]cty.Value{"src": cty.NullVal(cty.String), "content": s("x")})
	if out, err = prepareCopy(context.Background(), &Env{Dir: dir}, inline); err != nil || !out.RawEquals(inline) {
		t.Errorf("prepared = %#v, %v", out, err)
	}
}

func TestAssert(t *testing.T) {
	list := func(vs ...cty.Value) cty.Value { return cty.ListVal(vs) }
	tests := []struct {
		name       string
		args       map[string]cty.Value
		wantStatus modules.Status
		wantErr    string
		wantWarn   string
	}{
		{"all true", map[string]cty.Value{"that": list(cty.True, cty.True), "success_msg": s("fine")}, modules.StatusOK, "", ""},
		{"one false", map[string]cty.Value{"that": list(cty.True, cty.False)}, "", "condition 2 of 2 is false", ""},
		{"fail_msg", map[string]cty.Value{"that": list(cty.False), "fail_msg": s("MTU is wrong")}, "", "MTU is wrong (condition 1 of 1 is false)", ""},
		{"unknown in check", map[string]cty.Value{"that": list(cty.UnknownVal(cty.Bool))}, modules.StatusUnknown, "", ""},
		{"marked", map[string]cty.Value{"that": list(cty.True.Mark("sensitive"))}, modules.StatusOK, "", ""},
		{"false beats unknown", map[string]cty.Value{"that": list(cty.UnknownVal(cty.Bool), cty.False)}, "", "condition 2 of 2 is false", ""},
		{"null is false", map[string]cty.Value{"that": list(cty.True, cty.NullVal(cty.Bool))}, "", "condition 2 of 2 is false", ""},
		{"warn_only false", map[string]cty.Value{"that": list(cty.True, cty.False), "fail_msg": s("slot too narrow"), "warn_only": cty.True},
			modules.StatusOK, "", "slot too narrow"},
		{"warn_only true", map[string]cty.Value{"that": list(cty.True), "warn_only": cty.True}, modules.StatusOK, "", ""},
		{"warn_only off", map[string]cty.Value{"that": list(cty.False), "warn_only": cty.False}, "", "condition 1 of 1 is false", ""},
		{"warn_only, false beats unknown", map[string]cty.Value{"that": list(cty.UnknownVal(cty.Bool), cty.False), "warn_only": cty.True},
			modules.StatusOK, "", "condition 2 of 2 is false"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := map[string]cty.Value{"fail_msg": cty.NullVal(cty.String), "success_msg": cty.NullVal(cty.String), "warn_only": cty.False}
			for k, v := range tt.args {
				args[k] = v
			}
			res, err := runAssert(context.Background(), nil, cty.ObjectVal(args))
			if tt.wantErr != "" {
				if err == nil || err.Error() != tt.wantErr {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || res.Status != tt.wantStatus {
				t.Fatalf("result = %+v, %v", res, err)
			}
			if got := strings.Join(res.Warnings, "; "); got != tt.wantWarn {
				t.Errorf("warnings = %q, want %q", got, tt.wantWarn)
			}
		})
	}
}
