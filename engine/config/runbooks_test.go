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
// directory is one, and runbooks/modules, where every directory is a runbook module. They
// must load without a single diagnostic, and every module must be called by one of them
// (a module is checked only through a call, with the values it gets).
func TestRunbooks(t *testing.T) {
	root := filepath.Join("..", "..", "runbooks")
	entries, err := os.ReadDir(root)
	if err != nil {
		t.Fatal(err)
	}
	var paths []string
	modDirs := map[string]bool{}
	for _, e := range entries {
		p := filepath.Join(root, e.Name())
		if e.Name() == "modules" {
			mods, err := os.ReadDir(p)
			if err != nil {
				t.Fatal(err)
			}
			for _, m := range mods {
				if m.IsDir() {
					abs, err := filepath.Abs(filepath.Join(p, m.Name()))
					if err != nil {
						t.Fatal(err)
					}
					modDirs[abs] = false
				}
			}
			continue
		}
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
			var called func([]*Instance)
			called = func(insts []*Instance) {
				for _, in := range insts {
					if _, ok := modDirs[in.Dir]; ok {
						modDirs[in.Dir] = true
					}
					called(in.Children)
				}
			}
			for _, pl := range rb.Plays {
				called(pl.Instances)
			}
		})
	}
	for dir, ok := range modDirs {
		if !ok {
			t.Errorf("no runbook in %s calls the module %s", root, dir)
		}
	}
}
