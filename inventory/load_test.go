package inventory

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestParseDetectsFormat(t *testing.T) {
	tests := []struct {
		name, src string
		hosts     []string
	}{
		{"hosts", "[web]\nw1\nw2:2222\n", []string{"w1", "w2"}},
		{"hosts", "web:\n  hosts:\n    w1:\n", []string{"w1"}},
		{"hosts", "host \"h1\" {\n  port = 22\n}\n", []string{"h1"}},
		{"hosts", "", nil},
		{"hosts", "# just a comment\n", nil},
		{"hosts", "w1\nw2\n", []string{"w1", "w2"}},
		{"hosts", "[web]\r\nw1 a=1\r\n[web:vars]\r\nx = 2\r\n", []string{"w1"}},
		{"hosts", "\ufeff[web]\nw1\n", []string{"w1"}},
		{"hosts", "{\"web\": {\"hosts\": {\"j1\": null}}}", []string{"j1"}},
		// Ansible falls back to INI when a .yml file is not a YAML mapping
		{"inv.yml", "w1 a=1\nw2\n", []string{"w1", "w2"}},
		{"inv.yaml", "", nil},
		{"inv.json", "{\"all\": {\"hosts\": {\"j1\": {}}}}", []string{"j1"}},
		{"inv.ini", "all:\n", nil},
	}
	for _, tt := range tests {
		inv, diags := Parse(tt.name, []byte(tt.src))
		if tt.name == "inv.ini" {
			// YAML-looking text in an .ini file is read as INI, where "all:" is a bad host
			if !diags.HasErrors() {
				t.Errorf("%q as INI: no error", tt.src)
			}
			continue
		}
		if diags.HasErrors() {
			t.Errorf("Parse(%s, %q): %s", tt.name, tt.src, diags.Error())
			continue
		}
		var got []string
		for _, h := range inv.Hosts() {
			got = append(got, h.Name)
		}
		if !reflect.DeepEqual(got, tt.hosts) {
			t.Errorf("Parse(%s, %q) hosts = %v, want %v", tt.name, tt.src, got, tt.hosts)
		}
	}
}

func writeFiles(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, content := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		mode := os.FileMode(0o644)
		if strings.HasPrefix(content, "#!") {
			mode = 0o755
		}
		if err := os.WriteFile(p, []byte(content), mode); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestVarsFileErrors(t *testing.T) {
	dir := writeFiles(t, map[string]string{
		"hosts":                 "[web]\nw1\n[db]\nd1\n",
		"group_vars/web.yml":    "ok: 1\nbad: [unclosed\n",
		"group_vars/db.yml":     "- a list\n- not a mapping\n",
		"group_vars/all.yml":    "",
		"host_vars/w1/x.yml":    "a: !!python/object:os.system x\n",
		"group_vars/unused.yml": "this: {is: [broken\n",
	})
	_, diags := Load(context.Background(), filepath.Join(dir, "hosts"))
	want := map[string]string{
		"group_vars/web.yml": "Invalid YAML",
		"group_vars/db.yml":  "Invalid vars file",
		"host_vars/w1/x.yml": "Unsupported YAML tag",
	}
	got := map[string]string{}
	for _, d := range diags {
		rel, _ := filepath.Rel(dir, d.Subject.Filename)
		got[rel] = d.Summary
		if d.Subject.Start.Line < 1 {
			t.Errorf("%s: no line", d.Summary)
		}
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("diagnostics %v, want %v", got, want)
	}
}

func TestLoadSources(t *testing.T) {
	dir := writeFiles(t, map[string]string{
		"a/hosts.yml":          "web:\n  hosts:\n    w1:\n",
		"a/group_vars/web.yml": "from: a\n",
		"b/hosts.hcl":          "group \"web\" {\n  hosts = [\"w2\"]\n  vars = { inline = true }\n}\n",
		"b/group_vars/web":     "from: b\n",
	})
	inv, diags := Load(context.Background(), filepath.Join(dir, "a/hosts.yml"), filepath.Join(dir, "b/hosts.hcl"), "extra1, extra2:2222,")
	if diags.HasErrors() {
		t.Fatal(diags.Error())
	}
	var names []string
	for _, h := range inv.Hosts() {
		names = append(names, h.Name)
	}
	if !reflect.DeepEqual(names, []string{"w1", "w2", "extra1", "extra2"}) {
		t.Errorf("hosts %v", names)
	}
	w1, _ := inv.Host("w1")
	if w1.Vars["from"] != "b" || w1.Vars["inline"] != true {
		t.Errorf("w1 vars %v", w1.Vars)
	}
	e2, _ := inv.Host("extra2")
	if e2.Connection().Port != 2222 || !reflect.DeepEqual(e2.Groups, []string{"all", "ungrouped"}) {
		t.Errorf("extra2 %+v", e2)
	}

	_, diags = Load(context.Background(), filepath.Join(dir, "missing.ini"))
	if !diags.HasErrors() || diags[0].Summary != "Inventory not found" {
		t.Errorf("missing source: %v", diags)
	}
	if _, diags := Load(context.Background()); !diags.HasErrors() {
		t.Error("no source accepted")
	}
}

func TestScriptHostFailure(t *testing.T) {
	dir := writeFiles(t, map[string]string{
		"inv.sh": "#!/bin/sh\nif [ \"$1\" = --list ]; then echo '{\"g\": [\"h1\"]}'; else echo 'not json {' ; fi\n",
	})
	_, diags := Load(context.Background(), filepath.Join(dir, "inv.sh"))
	if !diags.HasErrors() || diags[0].Subject.Filename != filepath.Join(dir, "inv.sh") || !strings.Contains(diags[0].Detail, "--host h1") {
		t.Errorf("diagnostics %v", diags)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, diags = Load(ctx, filepath.Join(dir, "inv.sh"))
	if !diags.HasErrors() {
		t.Error("a cancelled context still ran the script")
	}
}

func TestWarningsKeepInventory(t *testing.T) {
	inv, diags := Parse("inv.yml", []byte("web:\n  hosts:\n    w1:\n  host:\n    w2:\n"))
	if inv == nil || diags.HasErrors() || len(diags) != 1 || diags[0].Summary != "Unexpected key" {
		t.Fatalf("inv %v, diags %v", inv, diags)
	}
}

func TestGraphOfDiamonds(t *testing.T) {
	// each level doubles the paths to the bottom: printed like Ansible it would never end
	var b strings.Builder
	for i := 0; i < 30; i++ {
		fmt.Fprintf(&b, "[l%d:children]\na%d\nb%d\n[a%d:children]\nl%d\n[b%d:children]\nl%d\n", i, i, i, i, i+1, i, i+1)
	}
	b.WriteString("[l30]\nh1\n")
	inv, diags := Parse("diamonds.ini", []byte(b.String()))
	if diags.HasErrors() {
		t.Fatal(diags.Error())
	}
	if err := inv.Graph(io.Discard, false); err == nil {
		t.Error("an exponential graph was printed")
	}
	if _, err := inv.ListJSON(); err != nil {
		t.Error(err)
	}
	h, _ := inv.Host("h1")
	if len(h.Groups) != 92 {
		t.Errorf("h1 is in %d groups", len(h.Groups))
	}
}

func TestYAMLGroupBomb(t *testing.T) {
	// every level names the level below eight times through an alias
	src := "a: &a {hosts: {h1: {x: 1}}}\n"
	prev := "a"
	for _, l := range []string{"b", "c", "d", "e", "f", "g"} {
		var kids []string
		for i := 1; i <= 8; i++ {
			kids = append(kids, fmt.Sprintf("%s%d: *%s", prev, i, prev))
		}
		src += fmt.Sprintf("%s: &%s {children: {%s}}\n", l, l, strings.Join(kids, ", "))
		prev = l
	}
	inv, diags := Parse("bomb.yml", []byte(src))
	if inv != nil || len(diags) != 1 || diags[0].Summary != "YAML too deep" {
		t.Errorf("inventory %v, diagnostics %v", inv != nil, diags)
	}
}
