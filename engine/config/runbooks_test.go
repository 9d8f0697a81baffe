package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/runbook/runbook/engine/diag"
)

// TestRunbooks validates every runbook shipped in runbooks/: each directory of
// runbooks/ is one runbook, except runbooks/examples, where every .hcl file and every
// directory is one. They must load without a single diagnostic.
func TestRunbooks(t *testing.T) {
	root := filepath.Join("..", "..", "runbooks")
	entries, err := os.ReadDir(root)
	if err != nil {
		t.Fatal(err)
	}
	var paths []string
	for _, e := range entries {
		p := filepath.Join(root, e.Name())
		if e.Name() != "examples" {
			if e.IsDir() {
				paths = append(paths, p)
			}
			continue
		}
		examples, err := os.ReadDir(p)
		if err != nil {
			t.Fatal(err)
		}
		for _, x := range examples {
			if x.IsDir() || strings.HasSuffix(x.Name(), ".hcl") {
				paths = append(paths, filepath.Join(p, x.Name()))
			}
		}
	}
	if len(paths) < 2 {
		t.Fatalf("found only %v", paths)
	}
	for _, p := range paths {
		t.Run(strings.TrimPrefix(p, root+"/"), func(t *testing.T) {
			rb, diags := Load(p, Inputs{AllowMissing: true})
			if len(diags) > 0 {
				var b strings.Builder
				(&diag.Printer{Files: rb.Files}).Text(&b, diags)
				t.Fatalf("diagnostics:\n%s", b.String())
			}
			if len(rb.Plays) == 0 {
				t.Fatal("no plays")
			}
		})
	}
}
