package main

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// codeSpan is a `code span` in Markdown.
var codeSpan = regexp.MustCompile("`([^`\n]+)`")

// repoPath is a path inside the repository as the docs write it: a package directory or a
// file in one.
var repoPath = regexp.MustCompile(`^(cmd|engine|modules|inventory|internal|testenv|bench|docs|runbooks)(/[\w.-]+)*$`)

// goFile is a Go file named alone, such as `persist.go`; testName a test function.
var (
	goFile   = regexp.MustCompile(`^[\w-]+\.go$`)
	testName = regexp.MustCompile(`^Test[A-Z]\w*$`)
)

// qualified is a Go name qualified by its package's name, such as `host.Exec` or
// `Task.Args`.
var qualified = regexp.MustCompile(`^([A-Za-z]\w*)\.([A-Z]\w*)$`)

// external are the packages from outside the repository that the page names.
var external = map[string]bool{"hcl": true, "cty": true}

// TestArchitectureDoc keeps docs/architecture.md true: every repository path it names
// exists, every Go file named alone (`persist.go`) is a file of the repository, every test
// named is a test function, and every name written as pkg.Name (or Type.Method) is declared
// in a package of that name (or on a type of that name).
func TestArchitectureDoc(t *testing.T) {
	src, err := os.ReadFile(filepath.Join(repoRoot(), "docs", "architecture.md"))
	if err != nil {
		t.Fatal(err)
	}
	decls := packageDecls(t)
	paths, names := checkDoc(string(src), decls, func(p string) bool {
		_, err := os.Stat(filepath.Join(repoRoot(), p))
		return err == nil
	})
	for _, e := range append(paths, names...) {
		t.Error(e)
	}
	// The page must actually name things, or the check would pass on any text.
	if n := len(codeSpan.FindAllString(string(src), -1)); n < 40 {
		t.Errorf("docs/architecture.md has only %d code spans; the check would prove little", n)
	}
}

// checkDoc returns what the page names that does not exist: paths, and qualified names.
func checkDoc(src string, decls map[string]map[string]bool, exists func(string) bool) (badPaths, badNames []string) {
	for _, m := range codeSpan.FindAllStringSubmatch(src, -1) {
		span := strings.TrimSuffix(m[1], "/")
		switch {
		case repoPath.MatchString(span):
			if !exists(span) {
				badPaths = append(badPaths, "docs/architecture.md names "+span+", which does not exist")
			}
		case goFile.MatchString(span) || testName.MatchString(span):
			if !decls[""][span] {
				badNames = append(badNames, "docs/architecture.md names "+span+", which no file of the repository is or declares")
			}
		case qualified.MatchString(span):
			q := qualified.FindStringSubmatch(span)
			pkg, name := q[1], q[2]
			if external[pkg] {
				continue
			}
			if d, ok := decls[pkg]; ok && !d[name] {
				badNames = append(badNames, "docs/architecture.md names "+span+": package "+pkg+" declares no "+name)
			} else if !ok && !anyDeclares(decls, pkg, name) {
				badNames = append(badNames, "docs/architecture.md names "+span+": no package "+pkg+" and no type "+pkg)
			}
		}
	}
	return badPaths, badNames
}

// anyDeclares reports whether some package declares a type typ with a method name (the
// doc writes methods as Type.Method).
func anyDeclares(decls map[string]map[string]bool, typ, name string) bool {
	for _, d := range decls {
		if d[typ+"."+name] {
			return true
		}
	}
	return false
}

// packageDecls parses the repository's non-test Go files: for each package name, its
// exported top-level names and methods (as "Type.Method", with the type's name as written,
// so `Task.Args` is found though the doc's "Task" is lower-cased by nobody).
func packageDecls(t *testing.T) map[string]map[string]bool {
	decls := map[string]map[string]bool{}
	fset := token.NewFileSet()
	root := repoRoot()
	err := filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && p != root {
			// Not the repository's code: hidden directories, test data, build output (bin/
			// holds bench-compare's copy of an older tree) and any nested Go module.
			if strings.HasPrefix(d.Name(), ".") || d.Name() == "testdata" || d.Name() == "bin" {
				return filepath.SkipDir
			}
			if _, err := os.Stat(filepath.Join(p, "go.mod")); err == nil {
				return filepath.SkipDir
			}
		}
		if d.IsDir() || !strings.HasSuffix(p, ".go") {
			return nil
		}
		// The "" package holds every Go file's name and every test function's name.
		if decls[""] == nil {
			decls[""] = map[string]bool{}
		}
		decls[""][d.Name()] = true
		if strings.HasSuffix(p, "_test.go") {
			f, err := parser.ParseFile(fset, p, nil, parser.SkipObjectResolution)
			if err != nil {
				return err
			}
			for _, decl := range f.Decls {
				if fn, ok := decl.(*ast.FuncDecl); ok && fn.Recv == nil && testName.MatchString(fn.Name.Name) {
					decls[""][fn.Name.Name] = true
				}
			}
			return nil
		}
		f, err := parser.ParseFile(fset, p, nil, parser.SkipObjectResolution)
		if err != nil {
			return err
		}
		set := decls[f.Name.Name]
		if set == nil {
			set = map[string]bool{}
			decls[f.Name.Name] = set
		}
		for _, decl := range f.Decls {
			switch d := decl.(type) {
			case *ast.FuncDecl:
				if d.Recv != nil && len(d.Recv.List) == 1 {
					set[recvName(d.Recv.List[0].Type)+"."+d.Name.Name] = true
				} else {
					set[d.Name.Name] = true
				}
			case *ast.GenDecl:
				for _, s := range d.Specs {
					switch s := s.(type) {
					case *ast.TypeSpec:
						set[s.Name.Name] = true
					case *ast.ValueSpec:
						for _, n := range s.Names {
							set[n.Name] = true
						}
					}
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return decls
}

func recvName(e ast.Expr) string {
	switch x := e.(type) {
	case *ast.StarExpr:
		return recvName(x.X)
	case *ast.IndexExpr:
		return recvName(x.X)
	case *ast.IndexListExpr:
		return recvName(x.X)
	case *ast.Ident:
		return x.Name
	}
	return ""
}

func TestCheckDoc(t *testing.T) {
	decls := map[string]map[string]bool{
		"host":   {"Exec": true},
		"config": {"Task": true, "Task.Args": true},
		"":       {"persist.go": true, "TestThere": true},
	}
	exists := func(p string) bool { return p == "engine/run" || p == "modules/host" }
	tests := []struct {
		doc             string
		paths, badNames int
	}{
		{"`engine/run` and `modules/host/` and `host.Exec`", 0, 0},
		{"`engine/gone`", 1, 0},
		{"`host.Gone`", 0, 1},
		{"`Task.Args`", 0, 0},
		{"`Task.Gone`", 0, 1},
		{"`nopkg.Name`", 0, 1},
		{"`a plain span` and `ok` and `--flag`", 0, 0},
		{"`persist.go` and `TestThere`", 0, 0},
		{"`gone.go`", 0, 1},
		{"`TestGone`", 0, 1},
	}
	for _, tt := range tests {
		p, n := checkDoc(tt.doc, decls, exists)
		if len(p) != tt.paths || len(n) != tt.badNames {
			t.Errorf("%s: paths %q, names %q; want %d and %d", tt.doc, p, n, tt.paths, tt.badNames)
		}
	}
}
