package inventory

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hashicorp/hcl/v2"

	"github.com/runbook/runbook/internal/diagtest"
)

// Every file in testdata/errors is a mistake people make. Each expected diagnostic is a
// marker comment on the offending line, "# ERROR: Summary", or on another line with an
// offset, "# ERROR@-1: Summary" for the line above; "# WARNING: Summary" likewise. The
// test wants exactly the marked diagnostics, on the marked lines.

type marker struct {
	line     int
	severity hcl.DiagnosticSeverity
	summary  string
}

func readMarkers(t *testing.T, src []byte) []marker {
	t.Helper()
	all, err := diagtest.Markers(src)
	if err != nil {
		t.Fatal(err)
	}
	out := make([]marker, len(all))
	for i, m := range all {
		out[i] = marker{line: m.Line, severity: m.Severity, summary: m.Summary}
	}
	return out
}

func TestErrorFixtures(t *testing.T) {
	files, err := filepath.Glob("testdata/errors/*")
	if err != nil || len(files) == 0 {
		t.Fatalf("no error fixtures: %v", err)
	}
	summaries := map[string]bool{}
	for _, name := range files {
		t.Run(filepath.Base(name), func(t *testing.T) {
			src, err := os.ReadFile(name)
			if err != nil {
				t.Fatal(err)
			}
			want := readMarkers(t, src)
			if len(want) == 0 {
				t.Fatal("fixture has no # ERROR markers")
			}
			inv, diags := Load(context.Background(), name)
			if diags.HasErrors() != (inv == nil) {
				t.Errorf("Load returned inventory %v with errors %v", inv != nil, diags.HasErrors())
			}
			matched := make([]bool, len(diags))
			for _, m := range want {
				found := false
				for i, d := range diags {
					if matched[i] || d.Severity != m.severity || d.Summary != m.summary || d.Subject == nil {
						continue
					}
					if d.Subject.Filename == name && d.Subject.Start.Line == m.line {
						matched[i], found = true, true
						summaries[m.summary] = true
						break
					}
				}
				if !found {
					t.Errorf("line %d: want %q; got:\n%s", m.line, m.summary, describe(diags))
				}
			}
			for i, d := range diags {
				if !matched[i] {
					t.Errorf("unexpected diagnostic: %s", describeOne(d))
				}
				checkRange(t, d)
			}
		})
	}
	if len(summaries) < 12 {
		t.Errorf("only %d distinct mistakes covered: %v", len(summaries), summaries)
	}
}

// checkRange holds every diagnostic to a usable position: a file, a line, a column, and an
// end that does not come before the start.
func checkRange(t *testing.T, d *hcl.Diagnostic) {
	t.Helper()
	s := d.Subject
	if s == nil {
		t.Errorf("%q has no position", d.Summary)
		return
	}
	if s.Filename == "" || s.Start.Line < 1 || s.Start.Column < 1 || s.End.Line < s.Start.Line ||
		(s.End.Line == s.Start.Line && s.End.Column < s.Start.Column) || s.End.Byte < s.Start.Byte {
		t.Errorf("%q has a bad range %#v", d.Summary, s)
	}
	if d.Detail == "" {
		t.Errorf("%q has no detail", d.Summary)
	}
}

func describe(diags hcl.Diagnostics) string {
	var b strings.Builder
	for _, d := range diags {
		b.WriteString("  " + describeOne(d) + "\n")
	}
	return b.String()
}

func describeOne(d *hcl.Diagnostic) string {
	sev := "error"
	if d.Severity == hcl.DiagWarning {
		sev = "warning"
	}
	pos := "?"
	if d.Subject != nil {
		pos = fmt.Sprintf("%s:%d:%d", d.Subject.Filename, d.Subject.Start.Line, d.Subject.Start.Column)
	}
	return fmt.Sprintf("%s %s: %s: %s", pos, sev, d.Summary, d.Detail)
}
