package inventory

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hashicorp/hcl/v2"
)

// The fuzz targets feed arbitrary text to each reader and to the pattern parser. Nothing
// may panic, every diagnostic must carry a usable position, and whatever parses must
// print as JSON and as a graph. Plain "go test" runs the seeds.

// addFixtureSeeds adds every fixture file whose name passes keep.
func addFixtureSeeds(f *testing.F, keep func(path string) bool) {
	f.Helper()
	_ = filepath.WalkDir("testdata", func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || strings.Contains(path, "golden") || strings.Contains(path, "fuzz") || !keep(path) {
			return nil
		}
		if b, err := os.ReadFile(path); err == nil {
			f.Add(b)
		}
		return nil
	})
}

func checkDiags(t *testing.T, diags hcl.Diagnostics) {
	t.Helper()
	for _, d := range diags {
		if d.Subject == nil {
			t.Fatalf("diagnostic without position: %s: %s", d.Summary, d.Detail)
		}
		s := d.Subject
		if s.Start.Line < 1 || s.Start.Column < 1 || s.End.Byte < s.Start.Byte || s.End.Line < s.Start.Line {
			t.Fatalf("bad range %#v for %s", s, d.Summary)
		}
		if d.Summary == "" || d.Detail == "" {
			t.Fatalf("diagnostic without text: %#v", d)
		}
	}
}

func checkParsed(t *testing.T, inv *Inventory, diags hcl.Diagnostics) {
	t.Helper()
	checkDiags(t, diags)
	if (inv == nil) != diags.HasErrors() {
		t.Fatalf("inventory %v with errors %v", inv != nil, diags.HasErrors())
	}
	if inv == nil {
		return
	}
	list, err := inv.ListJSON()
	if err != nil {
		t.Fatal(err)
	}
	dec := json.NewDecoder(bytes.NewReader(reNonFinite.ReplaceAll(list, []byte(`$1"$2"`))))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		t.Fatalf("ListJSON is not JSON: %v\n%s", err, list)
	}
	var g bytes.Buffer
	if err := inv.Graph(&g, true); err != nil {
		t.Fatal(err)
	}
	for _, h := range inv.Hosts() {
		if _, err := inv.HostJSON(h.Name); err != nil {
			t.Fatal(err)
		}
		_ = h.Connection()
		for _, err := range h.CheckConnection() {
			if _, ok := err.(*ConnError); !ok {
				t.Fatalf("CheckConnection: %T", err)
			}
		}
		_ = CtyValue(h.Vars)
	}
	if _, err := inv.Select("all"); err != nil {
		t.Fatal(err)
	}
}

func FuzzParseINI(f *testing.F) {
	for _, s := range []string{
		"", "h1\n", "[web]\nw[01:03]:2222 a=1 b='x y' c=[1,2]\n[web:vars]\nx = {'a': None}\n[p:children]\nweb\n",
		"[a:children]\nb\n[b:children]\na\n", "[g:vars]\nx=1\n", "h[a:c] x=\"unterminated\n", "[::1]:22\n[x]\n10.0.0.[1:3]\n",
		"[web\n", "[web:child]\n", "h1 x=1e400 y=0x_1f z=b'\\xff'\n", "\ufeff[a]\nb\n", "h\x00 a=\xff\n",
		"[g]\nh[0:999]\n", "[g]\nh[1:3][a:c][01:02]\n", "h1 =5 k=v=w\n",
	} {
		f.Add([]byte(s))
	}
	addFixtureSeeds(f, func(p string) bool {
		return strings.HasSuffix(p, ".ini") || filepath.Base(p) == "hosts" || filepath.Base(p) == "inventory" || strings.HasPrefix(filepath.Base(p), "01-")
	})
	f.Fuzz(func(t *testing.T, src []byte) {
		inv, diags := Parse("fuzz.ini", src)
		checkParsed(t, inv, diags)
	})
}

func FuzzParseYAML(f *testing.F) {
	for _, s := range []string{
		"", "all:\n  hosts:\n    h1:\n", "web:\n  hosts: [a]\n", "a: &a {hosts: {h: {x: *a}}}\n", "a:\n  children:\n    a:\n",
		"plugin: x\n", "- a\n", "g:\n  hosts:\n    h[1:3]:2222: {x: 2001-12-14}\n  vars: {<<: {a: 1}}\n",
		"{\"g\": {\"hosts\": {\"h\": null}}}", "x: !vault |\n  abc\n", "x: !!binary aGVsbG8=\n", "---\na:\n---\nb:\n",
		"g:\n  vars:\n    ansible_group_priority: x\n", "? [a]\n: b\n",
	} {
		f.Add([]byte(s))
	}
	addFixtureSeeds(f, func(p string) bool {
		return strings.HasSuffix(p, ".yml") || strings.HasSuffix(p, ".yaml") || strings.HasSuffix(p, ".json")
	})
	f.Fuzz(func(t *testing.T, src []byte) {
		inv, diags := Parse("fuzz.yml", src)
		checkParsed(t, inv, diags)
		// the same text as a vars file
		vars, vdiags := parseVarsFile("fuzz.yml", src, nil, false)
		checkDiags(t, vdiags)
		_ = pyJSON(vars)
	})
}

func FuzzParseHCL(f *testing.F) {
	for _, s := range []string{
		"", "host \"h\" {\n  port = 22\n}\n", "group \"g\" {\n  hosts = [\"h[1:3]\"]\n  children = [\"g\"]\n}\n",
		"host \"h[01:03]\" { vars = { a = [1, { b = null }] } }\ngroup \"all\" { vars = { x = 1.5 } }\n",
		"host \"a\" {}\nhost \"a\" {}\n", "group \"x\" { vars = { ansible_group_priority = \"high\" } }\n",
		"host \"h\" { port = 1e100 }\n", "host \"h\" { jump = \"a b\" }\n", "group \"g\" { hosts = [for x in [1]: x] }\n",
	} {
		f.Add([]byte(s))
	}
	addFixtureSeeds(f, func(p string) bool { return strings.HasSuffix(p, ".hcl") })
	f.Fuzz(func(t *testing.T, src []byte) {
		inv, diags := Parse("fuzz.hcl", src)
		checkParsed(t, inv, diags)
	})
}

func FuzzParseListJSON(f *testing.F) {
	for _, s := range []string{
		"", "{}", "[]", "null", `{"g": ["h1"]}`, `{"g": {"hosts": ["h"], "vars": {"a": 1}, "children": ["c"]}, "_meta": {"hostvars": {"h": {"x": 1}}}}`,
		`{"g": {"children": ["g"]}}`, `{"_meta": {"hostvars": []}}`, `{"g": {"hosts": [1]}}`, `{"g": {"x": 1}}`, `{"g": {"hosts": ["h"]}, "_meta": {"hostvars": {"h": null}}}`,
		`{"a": {"children": ["b"]}, "b": {"children": ["a"]}}`, `{"g": {"vars": {"ansible_group_priority": "7"}}}`, `{"g": {"hosts": ["h"]}, "_meta": 5}`,
	} {
		f.Add([]byte(s))
	}
	addFixtureSeeds(f, func(p string) bool { return strings.HasSuffix(p, ".json") })
	f.Fuzz(func(t *testing.T, src []byte) {
		m := newModel()
		hostVars := func(h string) (map[string]any, hcl.Diagnostics, bool) { return map[string]any{"from": h}, nil, true }
		diags := parseListJSON(newSrcFile("fuzz --list", src), m, hostVars)
		var inv *Inventory
		if !diags.HasErrors() {
			m.reconcile()
			inv = build(m, newVarFiles(nil))
		}
		checkParsed(t, inv, diags)
	})
}

func FuzzPattern(f *testing.F) {
	for _, s := range []string{
		"all", "*", "", "web:&db:!kvm", "~(web|db)[0-9]+", "~(", "kvm[0]", "kvm[-1]", "kvm[1:]", "kvm[:2]", "kvm[1-3]", "kvm[3:1]",
		"kvm0[!1-3]", "[::1]", "a,,b", "!", "&x", "k?m*", "kvm[", "]", "10.0.0.*:22", "db[0]:web[-1]", "kvm[99999999999999999999]",
	} {
		f.Add(s)
	}
	inv, diags := Parse("patterns.ini", []byte(patternINI))
	if diags.HasErrors() {
		f.Fatal(diags.Error())
	}
	f.Fuzz(func(t *testing.T, pattern string) {
		verr := ValidatePattern(pattern)
		hosts, serr := inv.Select(pattern)
		if (verr == nil) != (serr == nil) {
			t.Fatalf("ValidatePattern %v but Select %v", verr, serr)
		}
		if serr != nil {
			if strings.Contains(serr.Error(), "\n") {
				t.Fatalf("multi-line error %q", serr)
			}
			return
		}
		seen := map[string]bool{}
		for _, h := range hosts {
			if seen[h.Name] {
				t.Fatalf("%q selects %s twice", pattern, h.Name)
			}
			seen[h.Name] = true
		}
		if _, err := inv.Unmatched(pattern); err != nil {
			t.Fatal(err)
		}
	})
}
