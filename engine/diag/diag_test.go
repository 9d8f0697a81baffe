package diag

import (
	"strings"
	"testing"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclparse"
)

// A diagnostic marked by HideSource names its place but never quotes the file's lines;
// another keeps its snippet. A mark put twice, or over another Extra, is one mark.
func TestHideSource(t *testing.T) {
	f, diags := hclparse.NewParser().ParseHCL([]byte("token = \"hunter2-very-secret\"\n"), "secrets.rbvars")
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	rng := hcl.Range{Filename: "secrets.rbvars", Start: hcl.Pos{Line: 1, Column: 9, Byte: 8}, End: hcl.Pos{Line: 1, Column: 30, Byte: 29}}
	type other struct{}
	tests := []struct {
		name  string
		mark  func(*hcl.Diagnostic)
		shown bool
	}{
		{"not marked", func(*hcl.Diagnostic) {}, true},
		{"marked", HideSource, false},
		{"marked twice over another Extra", func(d *hcl.Diagnostic) { d.Extra = other{}; HideSource(d); HideSource(d) }, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Invalid value", Subject: rng.Ptr()}
			tt.mark(d)
			var b strings.Builder
			(&Printer{Files: map[string]*hcl.File{"secrets.rbvars": f}}).Text(&b, hcl.Diagnostics{d})
			out := b.String()
			if strings.Contains(out, "hunter2") != tt.shown {
				t.Errorf("printed:\n%s", out)
			}
			if !tt.shown && !strings.Contains(out, "on secrets.rbvars line 1, column 9 ") {
				t.Errorf("the place is not named:\n%s", out)
			}
			if _, ok := hcl.DiagnosticExtra[other](d); tt.name == "marked twice over another Extra" && !ok {
				t.Error("the Extra that was there is lost")
			}
		})
	}
}

// A diagnostic in a runbook file in JSON syntax names the variable, play, task or handler
// it is in, as one in native syntax does, whichever way the blocks are written (an object
// of labels or an array of them).
func TestJSONContext(t *testing.T) {
	src := `{
  "variable": {"motd": {"type": "string", "default": "MARK1"}},
  "locals": {"x": "MARK2"},
  "play": {
    "web": {
      "hosts": "MARK3",
      "task": [
        {"first": {"command": {"cmd": "MARK4"}}},
        {"second": {"when": true, "command": {"argv": ["a", "MARK5"], "MARK6": 1}}}
      ],
      "handler": {"reload": {"service": {"name": "MARK7"}}}
    }
  },
  "MARK8": 1
}`
	f, diags := hclparse.NewParser().ParseJSON([]byte(src), "site.hcl.json")
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	want := map[string]string{
		"MARK1": `, in variable "motd"`,
		"MARK2": `, in locals`,
		"MARK3": `, in play "web"`,
		"MARK4": `, in task "first"`,
		"MARK5": `, in task "second"`,
		"MARK6": `, in task "second"`,
		"MARK7": `, in handler "reload"`,
		"MARK8": ``,
	}
	p := &Printer{Files: map[string]*hcl.File{"site.hcl.json": f}}
	for mark, w := range want {
		off := strings.Index(src, `"`+mark+`"`)
		if got := p.context(hcl.Range{Filename: "site.hcl.json", Start: hcl.Pos{Byte: off}}); got != w {
			t.Errorf("%s: context %q, want %q", mark, got, w)
		}
	}
	// Input that is not JSON (a truncated file) has no context and no panic.
	if got := jsonContext([]byte(`{"play": {"web": `), 15); got != `, in play "web"` && got != "" {
		t.Errorf("truncated: %q", got)
	}
}
