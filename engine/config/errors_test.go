package config

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"testing"

	"github.com/hashicorp/hcl/v2"

	"github.com/runbook/runbook/internal/diagtest"
	_ "github.com/runbook/runbook/modules/standard"
)

type marker struct {
	line    int
	summary string
}

// markers splits a fixture's markers by severity.
func markers(t *testing.T, src []byte) (errs, warns []marker) {
	t.Helper()
	all, err := diagtest.Markers(src)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range all {
		if m.Severity == hcl.DiagError {
			errs = append(errs, marker{m.Line, m.Summary})
		} else {
			warns = append(warns, marker{m.Line, m.Summary})
		}
	}
	return errs, warns
}

// TestErrorFixtures checks that every mistake in testdata/errors is reported, on the line
// its marker names, with the summary it names — and that nothing else is reported.
func TestErrorFixtures(t *testing.T) {
	files, err := filepath.Glob("testdata/errors/*.hcl")
	if err != nil || len(files) == 0 {
		t.Fatalf("no fixtures: %v", err)
	}
	distinct := map[string]bool{}
	for _, name := range files {
		t.Run(filepath.Base(name), func(t *testing.T) {
			src, err := os.ReadFile(name)
			if err != nil {
				t.Fatal(err)
			}
			wantErrs, wantWarns := markers(t, src)
			if len(wantErrs) == 0 {
				t.Fatal("fixture has no # ERROR markers")
			}
			_, diags := Parse([]Source{{Name: name, Src: src}}, Inputs{AllowMissing: true})
			match(t, diags, hcl.DiagError, wantErrs)
			match(t, diags, hcl.DiagWarning, wantWarns)
			for _, m := range wantErrs {
				distinct[m.summary+"@"+name+fmt.Sprint(m.line)] = true
			}
		})
	}
	if len(distinct) < 30 {
		t.Errorf("only %d distinct mistakes in the fixtures; keep at least 30", len(distinct))
	}
}

func match(t *testing.T, diags hcl.Diagnostics, sev hcl.DiagnosticSeverity, want []marker) {
	t.Helper()
	type got struct {
		line    int
		summary string
		detail  string
	}
	var gots []got
	for _, d := range diags {
		if d.Severity != sev {
			continue
		}
		line := 0
		if d.Subject != nil {
			line = d.Subject.Start.Line
		}
		gots = append(gots, got{line, d.Summary, d.Detail})
	}
	used := make([]bool, len(gots))
	for _, w := range want {
		found := false
		for i, g := range gots {
			if !used[i] && g.line == w.line && g.summary == w.summary {
				used[i], found = true, true
				break
			}
		}
		if !found {
			t.Errorf("line %d: want %q; diagnostics on that line: %v", w.line, w.summary, onLine(diags, w.line))
		}
	}
	var extra []string
	for i, g := range gots {
		if !used[i] {
			extra = append(extra, fmt.Sprintf("line %d: %s: %s", g.line, g.summary, g.detail))
		}
	}
	sort.Strings(extra)
	for _, e := range extra {
		t.Errorf("unexpected diagnostic: %s", e)
	}
}

func onLine(diags hcl.Diagnostics, line int) []string {
	var out []string
	for _, d := range diags {
		if d.Subject != nil && d.Subject.Start.Line == line {
			out = append(out, d.Summary)
		}
	}
	return out
}
