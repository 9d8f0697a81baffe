package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"

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
					if _, ok := modDirs[in.abs]; ok {
						modDirs[in.abs] = true
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

// TestBigIPKVMPassesEveryInput: runbooks/bigip-ve-kvm is the bigip-hypervisor module's
// thin root, whose variables are the module's: the same names, types, descriptions and
// defaults, each passed to the call as var.NAME under its own name, so that every input of
// the module can be set with --var and the root's defaults are the module's.
func TestBigIPKVMPassesEveryInput(t *testing.T) {
	root := filepath.Join("..", "..", "runbooks", "bigip-ve-kvm")
	rb, diags := Load(root, Inputs{})
	if len(diags) > 0 {
		t.Fatal(diags)
	}
	if len(rb.Plays) != 1 || len(rb.Plays[0].Instances) != 1 {
		t.Fatalf("want one play with one module call, got %d plays", len(rb.Plays))
	}
	inst := rb.Plays[0].Instances[0]
	if filepath.Base(inst.Dir) != "bigip-hypervisor" {
		t.Fatalf("the call is of %s", inst.Dir)
	}
	rootVars := map[string]*Variable{}
	for _, v := range rb.Variables {
		rootVars[v.Name] = v
	}
	for _, mv := range inst.rb.Variables {
		v := rootVars[mv.Name]
		if v == nil {
			t.Errorf("the module's variable %q is not one of the root's", mv.Name)
			continue
		}
		delete(rootVars, mv.Name)
		if !v.Type.Equals(mv.Type) || v.Description != mv.Description || v.Default.Equals(mv.Default) != cty.True {
			t.Errorf("variable %q: the root's type, description or default differ from the module's:\n%s %q %s\n%s %q %s",
				mv.Name, v.Type.GoString(), v.Description, v.Default.GoString(), mv.Type.GoString(), mv.Description, mv.Default.GoString())
		}
	}
	for n := range rootVars {
		t.Errorf("the root's variable %q is not the module's", n)
	}

	// Each input given as var.NAME, read from the call's vars.
	src, err := os.ReadFile(filepath.Join(root, "main.hcl"))
	if err != nil {
		t.Fatal(err)
	}
	f, diags := hclsyntax.ParseConfig(src, "main.hcl", hcl.InitialPos)
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	passed := map[string]bool{}
	for _, pb := range f.Body.(*hclsyntax.Body).Blocks {
		for _, mb := range pb.Body.Blocks {
			if mb.Type != "module" {
				continue
			}
			pairs, diags := hcl.ExprMap(mb.Body.Attributes["vars"].Expr)
			if diags.HasErrors() {
				t.Fatal(diags)
			}
			for _, kv := range pairs {
				key := hcl.ExprAsKeyword(kv.Key)
				tr, diags := hcl.AbsTraversalForExpr(kv.Value)
				if diags.HasErrors() || len(tr) != 2 || tr.RootName() != "var" || tr[1].(hcl.TraverseAttr).Name != key {
					t.Errorf("the call gives %s as %s, not as var.%s", key, src[kv.Value.Range().Start.Byte:kv.Value.Range().End.Byte], key)
				}
				passed[key] = true
			}
		}
	}
	for _, mv := range inst.rb.Variables {
		if !passed[mv.Name] {
			t.Errorf("the call does not pass %q: --var %s=... would not reach the module", mv.Name, mv.Name)
		}
	}
}
