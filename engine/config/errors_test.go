package config

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/hashicorp/hcl/v2"

	_ "github.com/runbook/runbook/modules/standard"
)

// marker is an expected diagnostic: "# ERROR: summary" on the offending line, or
// "# ERROR@-1: summary" when the offending line is the one above.
type marker struct {
	line    int
	summary string
}

var markerRE = regexp.MustCompile(`#\s*(ERROR|WARNING)(@[-+]\d+)?:\s*(.+?)\s*$`)

// Markers reads the expected diagnostics of a fixture; it is shared with other packages' tests
// through a copy of the convention, not of the code.
func markers(t *testing.T, src []byte) (errs, warns []marker) {
	t.Helper()
	for i, line := range strings.Split(string(src), "\n") {
		m := markerRE.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		n := i + 1
		if m[2] != "" {
			off, err := strconv.Atoi(m[2][1:])
			if err != nil {
				t.Fatalf("bad marker offset %q", m[2])
			}
			n += off
		}
		mk := marker{line: n, summary: m[3]}
		if m[1] == "ERROR" {
			errs = append(errs, mk)
		} else {
			warns = append(warns, mk)
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
