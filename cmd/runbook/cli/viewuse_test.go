package cli

import (
	"go/ast"
	"go/parser"
	"go/token"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestCLINamesNoConcreteView: the commands build their view with view.New and use it only
// through view.View, so that a new output format is a change to engine/view alone. Naming a
// concrete view (to build it, or to type-assert to it) brings back the switch on formats.
func TestCLINamesNoConcreteView(t *testing.T) {
	concrete := map[string]bool{"Human": true, "JSON": true, "JUnit": true, "Drift": true}
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	checked := 0
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, name, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		local := ""
		for _, imp := range f.Imports {
			if p, _ := strconv.Unquote(imp.Path.Value); p == "github.com/runbook/runbook/engine/view" {
				local = "view"
				if imp.Name != nil {
					local = imp.Name.Name
				}
			}
		}
		if local == "" {
			continue
		}
		checked++
		ast.Inspect(f, func(n ast.Node) bool {
			sel, ok := n.(*ast.SelectorExpr)
			if !ok {
				return true
			}
			if x, ok := sel.X.(*ast.Ident); ok && x.Name == local && concrete[sel.Sel.Name] {
				t.Errorf("%s: names %s.%s: build views with view.New and use them through view.View", fset.Position(sel.Pos()), local, sel.Sel.Name)
			}
			return true
		})
	}
	if checked == 0 {
		t.Fatal("no file of the package imports engine/view: the test checks nothing")
	}
}
