package diag

import (
	"fmt"
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

// A diagnostic in a runbook file in JSON syntax names the variable, play, task, handler,
// block, module call or output it is in, as one in native syntax does, whichever way the blocks are written (an object
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
      "handler": {"reload": {"service": {"name": "MARK7"}}},
      "block": {"vlans": {
        "for_each": "MARK9",
        "task": {"one": {"command": {"cmd": "MARK10"}}},
        "rescue": {"task": {"fix": {"command": {"cmd": "MARK11"}}}},
        "module": {"nics": {"source": "MARK12"}}
      }}
    }
  },
  "output": {"said": {"value": "MARK13"}},
  "MARK8": 1
}`
	f, diags := hclparse.NewParser().ParseJSON([]byte(src), "site.hcl.json")
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	want := map[string]string{
		"MARK1":  `, in variable "motd"`,
		"MARK2":  `, in locals`,
		"MARK3":  `, in play "web"`,
		"MARK4":  `, in task "first"`,
		"MARK5":  `, in task "second"`,
		"MARK6":  `, in task "second"`,
		"MARK7":  `, in handler "reload"`,
		"MARK8":  ``,
		"MARK9":  `, in block "vlans"`,
		"MARK10": `, in task "one"`,
		"MARK11": `, in task "fix"`,
		"MARK12": `, in module "nics"`,
		"MARK13": `, in output "said"`,
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

// A JSON runbook written on one line is quoted as an excerpt around the range, with the
// range still underlined under its text; lines of ordinary length are quoted whole.
func TestLongLineExcerpt(t *testing.T) {
	var b strings.Builder
	b.WriteString(`{"play": {"p": {"hosts": "all", "task": [`)
	for i := 0; i < 200; i++ {
		fmt.Fprintf(&b, `{"t%d": {"command": {"cmd": "true"}}},`, i)
	}
	b.WriteString(`{"bad": {"command": {"cmdd": "x"}}}]}}}`)
	src := b.String()
	f, diags := hclparse.NewParser().ParseJSON([]byte(src), "one.hcl.json")
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	off := strings.Index(src, `"cmdd"`)
	rng := hcl.Range{Filename: "one.hcl.json",
		Start: hcl.Pos{Line: 1, Column: off + 1, Byte: off},
		End:   hcl.Pos{Line: 1, Column: off + 7, Byte: off + 6}}
	var out strings.Builder
	(&Printer{Files: map[string]*hcl.File{"one.hcl.json": f}}).Text(&out, hcl.Diagnostics{{
		Severity: hcl.DiagError, Summary: "Unsupported argument", Subject: &rng,
	}})
	lines := strings.Split(out.String(), "\n")
	var quoted, under string
	for i, l := range lines {
		if strings.HasPrefix(l, "  1: ") {
			quoted, under = l, lines[i+1]
		}
	}
	if quoted == "" || len([]rune(quoted)) > excerptLen+10 || !strings.HasPrefix(quoted, "  1: …") {
		t.Fatalf("quoted line %q\n%s", quoted, out.String())
	}
	col := strings.Index(under, "^")
	if col < 0 || !strings.HasPrefix(string([]rune(quoted)[len([]rune(under[:col])):]), `"cmdd"`) || strings.Count(under, "^") != 6 {
		t.Errorf("underline does not mark \"cmdd\":\n%s\n%s", quoted, under)
	}

	// Short lines are unchanged.
	if got, from, to := excerpt("abc", 2, 3); got != "abc" || from != 2 || to != 3 {
		t.Errorf("excerpt of a short line: %q %d %d", got, from, to)
	}
	// A range at the start and one running past the excerpt stay inside it.
	long := strings.Repeat("x", 1000)
	if got, from, to := excerpt(long, 1, 1001); !strings.HasSuffix(got, "…") || from != 1 || to != excerptLen+1 {
		t.Errorf("excerpt at the start: %d runes, %d %d", len([]rune(got)), from, to)
	}
	if got, from, to := excerpt(long, 1000, 1001); !strings.HasPrefix(got, "…") || to-from != 1 || from < 1 || to > len([]rune(got))+1 {
		t.Errorf("excerpt at the end: %q %d %d", got, from, to)
	}
}
