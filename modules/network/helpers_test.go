package network

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rogpeppe/go-internal/txtar"
	"github.com/zclconf/go-cty/cty"
)

var update = flag.Bool("update", false, "rewrite the golden sections of testdata/*.txtar")

// fixture is a txtar case: "in/PATH" files make the host tree, "want/PATH" files are what
// the plan should write ("(removed)" for a file it removes).
type fixture struct {
	path string
	arch *txtar.Archive
}

func loadFixture(t *testing.T, name string) *fixture {
	t.Helper()
	p := filepath.Join("testdata", name+".txtar")
	a, err := txtar.ParseFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return &fixture{path: p, arch: a}
}

// root writes the "in/" files into a temporary directory and returns it.
func (f *fixture) root(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	for _, file := range f.arch.Files {
		rel, ok := strings.CutPrefix(file.Name, "in/")
		if !ok {
			continue
		}
		mode := os.FileMode(0o644)
		// A "#mode 0600" first line sets the file's mode (and is not part of it).
		data := file.Data
		if m, rest, ok := strings.Cut(string(data), "\n"); ok && strings.HasPrefix(m, "#mode ") {
			var perm uint32
			for _, c := range strings.TrimPrefix(m, "#mode ") {
				perm = perm*8 + uint32(c-'0')
			}
			mode, data = os.FileMode(perm), []byte(rest)
		}
		full := filepath.Join(dir, rel)
		if strings.HasSuffix(rel, "/") {
			if err := os.MkdirAll(full, 0o755); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, data, mode); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// want returns the expected written files by host path.
func (f *fixture) want() map[string]string {
	out := map[string]string{}
	for _, file := range f.arch.Files {
		if rel, ok := strings.CutPrefix(file.Name, "want/"); ok {
			out["/"+rel] = string(file.Data)
		}
	}
	return out
}

// setWant replaces the "want/" files (for -update).
func (f *fixture) setWant(t *testing.T, got map[string]string) {
	t.Helper()
	var files []txtar.File
	for _, file := range f.arch.Files {
		if !strings.HasPrefix(file.Name, "want/") {
			files = append(files, file)
		}
	}
	for _, p := range sortedKeys(got) {
		files = append(files, txtar.File{Name: "want" + p, Data: []byte(got[p])})
	}
	f.arch.Files = files
	if err := os.WriteFile(f.path, txtar.Format(f.arch), 0o644); err != nil {
		t.Fatal(err)
	}
}

func s(v string) cty.Value { return cty.StringVal(v) }

func n(v int) cty.Value { return cty.NumberIntVal(int64(v)) }

func strs(vs ...string) cty.Value {
	if len(vs) == 0 {
		return cty.ListValEmpty(cty.String)
	}
	out := make([]cty.Value, len(vs))
	for i, v := range vs {
		out[i] = cty.StringVal(v)
	}
	return cty.ListVal(out)
}
