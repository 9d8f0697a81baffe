package config

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/hashicorp/hcl/v2"
	"github.com/zclconf/go-cty/cty"

	"github.com/runbook/runbook/internal/diagtest"
)

// writeTree writes files (path → content, paths with slashes) under a new temporary
// directory and returns it.
func writeTree(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, src := range files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// loadTree writes files and loads root (a file or directory among them).
func loadTree(t *testing.T, files map[string]string, root string, in Inputs) (*Runbook, hcl.Diagnostics, string) {
	t.Helper()
	dir := writeTree(t, files)
	rb, diags := Load(filepath.Join(dir, filepath.FromSlash(root)), in)
	return rb, diags, dir
}

// mustLoad loads a tree that must have no errors.
func mustLoad(t *testing.T, files map[string]string, root string) *Runbook {
	t.Helper()
	rb, diags, _ := loadTree(t, files, root, Inputs{})
	if diags.HasErrors() {
		t.Fatalf("load: %s", diags.Error())
	}
	return rb
}

// located is a diagnostic as "FILE:LINE Summary", its file relative to dir.
func located(d *hcl.Diagnostic, dir string) string {
	at := "-"
	if d.Subject != nil {
		rel, err := filepath.Rel(dir, d.Subject.Filename)
		if err != nil || strings.HasPrefix(rel, "..") {
			rel = d.Subject.Filename
		}
		at = fmt.Sprintf("%s:%d", filepath.ToSlash(rel), d.Subject.Start.Line)
	}
	return at + " " + d.Summary
}

// treeErrors checks that loading a tree gives exactly the errors its files' markers name
// ("# ERROR: Summary" on the line, as in testdata/errors) plus extra (for JSON files, which
// have no comments), each at its file and line.
func treeErrors(t *testing.T, diags hcl.Diagnostics, dir string, files map[string]string, extra []string) {
	t.Helper()
	var want []string
	for name, src := range files {
		ms, err := diagtest.Markers([]byte(src))
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range ms {
			if m.Severity == hcl.DiagError {
				want = append(want, fmt.Sprintf("%s:%d %s", name, m.Line, m.Summary))
			}
		}
	}
	want = append(want, extra...)
	var got []string
	for _, d := range diags {
		if d.Severity == hcl.DiagError {
			got = append(got, located(d, dir))
		}
	}
	sort.Strings(got)
	sort.Strings(want)
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		var all []string
		for _, d := range diags {
			all = append(all, located(d, dir)+": "+d.Detail)
		}
		t.Errorf("errors:\n  %s\nwant:\n  %s\nall diagnostics:\n  %s", strings.Join(got, "\n  "), strings.Join(want, "\n  "), strings.Join(all, "\n  "))
	}
}

// detailOf returns the detail of the error located at "FILE:LINE Summary", with dir taken
// out of the file names it mentions.
func detailOf(diags hcl.Diagnostics, dir, at string) (string, bool) {
	for _, d := range diags {
		if d.Severity == hcl.DiagError && located(d, dir) == at {
			return strings.ReplaceAll(d.Detail, dir+string(filepath.Separator), ""), true
		}
	}
	return "", false
}

const webModule = `variable "port" {
  type = number
}

variable "name" {
  type    = string
  default = "web"
}

task "hello" {
  notify = ["bye"]
  command {
    cmd = "echo ${var.name}:${var.port}"
  }
}

task "again" {
  depends_on = ["hello"]
  command {
    cmd = "echo ${task["hello"].stdout}"
  }
}

block "grp" {
  task "inside" {
    command {
      cmd = "true"
    }
  }
}

module "inner" {
  source = "../inner"
  vars   = { label = var.name }
}

handler "bye" {
  command {
    cmd = "echo bye"
  }
}

output "said" {
  value = task["hello"].stdout
}

output "port" {
  value = var.port
}
`

const innerModule = `variable "label" {
  type = string
}

task "x" {
  command {
    cmd = "echo ${var.label}"
  }
}
`

// TestModuleQualifiedNames: a module's tasks, handlers, blocks and nested calls take the
// call's name as prefix; depends_on and notify inside the module name its own tasks.
func TestModuleQualifiedNames(t *testing.T) {
	rb := mustLoad(t, map[string]string{
		"mods/web/main.hcl":   webModule,
		"mods/inner/main.hcl": innerModule,
		"site.hcl": `play "p" {
  hosts = "all"
  task "first" {
    command {
      cmd = "true"
    }
  }
  module "web" {
    source = "./mods/web"
    vars   = { port = 80 }
    tags   = ["web"]
    become = true
  }
  task "last" {
    command {
      cmd = "echo ${module.web.said} ${task["web.hello"].stdout}"
    }
  }
}
`}, "site.hcl")
	p := rb.Plays[0]
	var names, locals []string
	for _, task := range p.Order() {
		names = append(names, task.Name)
		locals = append(locals, task.LocalName)
	}
	eq := func(what string, got, want []string) {
		t.Helper()
		if strings.Join(got, ",") != strings.Join(want, ",") {
			t.Errorf("%s: got %q, want %q", what, got, want)
		}
	}
	eq("tasks", names, []string{"first", "web.hello", "web.again", "web.inside", "web.inner.x", "last"})
	eq("local names", locals, []string{"first", "hello", "again", "inside", "x", "last"})
	eq("handlers", taskNames(p.Handlers), []string{"web.bye"})
	again := p.Task("web.again")
	if again.DependsOn[0].Name != "web.hello" {
		t.Errorf("depends_on: %q", again.DependsOn[0].Name)
	}
	if n := p.Task("web.hello").Notify[0].Name; n != "web.bye" {
		t.Errorf("notify: %q", n)
	}
	var blocks []string
	for _, b := range p.Blocks {
		blocks = append(blocks, b.Kind()+" "+b.Name)
	}
	sort.Strings(blocks)
	eq("blocks", blocks, []string{"block web.grp", "module web", "module web.inner"})
	// the call's tags and become reach every task of the module, nested ones too
	for _, n := range []string{"web.hello", "web.inside", "web.inner.x"} {
		task := p.Task(n)
		if len(task.Tags) != 1 || task.Tags[0] != "web" || task.Become == nil || !*task.Become {
			t.Errorf("%s: tags %q become %v", n, task.Tags, task.Become)
		}
	}
	if len(p.Instances) != 1 || p.Instances[0].Name != "web" || len(p.Instances[0].Children) != 1 || p.Instances[0].Children[0].Name != "web.inner" {
		t.Errorf("instances: %+v", p.Instances)
	}
	if p.Task("web.inner.x").Instance.Name != "web.inner" || p.Task("first").Instance != nil {
		t.Error("tasks do not point at their instances")
	}
	// the block inside the module sits in the call's block
	if b := p.Task("web.inside").Block; b.Name != "web.grp" || b.Parent == nil || b.Parent.Module == nil || b.Parent.Name != "web" {
		t.Errorf("web.inside's block: %+v", b)
	}
}

// TestModuleForEachInstances: for_each on a call makes one instance per element, named by
// its key, with its own variable values.
func TestModuleForEachInstances(t *testing.T) {
	rb := mustLoad(t, map[string]string{
		"mods/web/main.hcl":   webModule,
		"mods/inner/main.hcl": innerModule,
		"site.hcl": `variable "sites" {
  default = { east = 81, west = 82 }
}
play "p" {
  hosts = "all"
  module "sites" {
    source   = "./mods/web"
    for_each = var.sites
    vars     = { port = each.value, name = each.key }
    when     = each.key != "none"
  }
  module "list" {
    source   = "./mods/inner"
    for_each = ["a", "b"]
    vars     = { label = each.value }
  }
}
`}, "site.hcl")
	p := rb.Plays[0]
	var names []string
	for _, task := range p.Order() {
		names = append(names, task.Name)
	}
	want := []string{`sites["east"].hello`, `sites["east"].again`, `sites["east"].inside`, `sites["east"].inner.x`,
		`sites["west"].hello`, `sites["west"].again`, `sites["west"].inside`, `sites["west"].inner.x`,
		`list[0].x`, `list[1].x`}
	if strings.Join(names, ",") != strings.Join(want, ",") {
		t.Errorf("tasks:\n  %q\nwant\n  %q", names, want)
	}
	for _, inst := range p.Instances {
		ctx := rb.EvalContext(Scope{Host: "h", Instance: inst, Play: p})
		v := ctx.Variables["var"]
		switch inst.Name {
		case `sites["east"]`, `sites["west"]`:
			key := inst.Key.AsString()
			if got := v.GetAttr("name").AsString(); got != key {
				t.Errorf("%s: var.name = %q", inst.Name, got)
			}
			port, _ := v.GetAttr("port").AsBigFloat().Int64()
			if wantPort := map[string]int64{"east": 81, "west": 82}[key]; port != wantPort {
				t.Errorf("%s: var.port = %d, want %d", inst.Name, port, wantPort)
			}
			if got := inst.Children[0].Name; got != inst.Name+".inner" {
				t.Errorf("nested instance %q", got)
			}
		case "list[0]", "list[1]":
			if got, want := v.GetAttr("label").AsString(), map[string]string{"list[0]": "a", "list[1]": "b"}[inst.Name]; got != want {
				t.Errorf("%s: var.label = %q, want %q", inst.Name, got, want)
			}
		default:
			t.Errorf("unexpected instance %q", inst.Name)
		}
	}
	// the call's when sees the instance's each
	for _, b := range p.Blocks {
		if b.Module != nil && b.Module.Call == "sites" {
			ok, diags := b.WhenTrue(rb.EvalContext(Scope{Host: "h", Each: b.Each, Play: p}))
			if diags.HasErrors() || !ok {
				t.Errorf("%s: when = %v %s", b.Name, ok, diags.Error())
			}
		}
	}
}

// TestModuleVarTypes: the values a call gives are converted to the module's variable types
// and its validation rules apply, the errors at the value in the call.
func TestModuleVarTypes(t *testing.T) {
	mod := `variable "mtu" {
  type = number
  validation {
    condition     = var.mtu >= 1280
    error_message = "mtu is at least 1280."
  }
}
variable "nics" {
  type    = list(string)
  default = []
}
variable "bond" {
  type = object({
    name = string
    mode = optional(string, "802.3ad")
  })
  default = { name = "bond0" }
}
task "t" {
  command {
    cmd = "echo ${var.mtu} ${join(",", var.nics)} ${var.bond.mode}"
  }
}
`
	rb := mustLoad(t, map[string]string{"m/main.hcl": mod, "site.hcl": `play "p" {
  hosts = "all"
  module "ok" {
    source = "./m"
    vars   = { mtu = "9100", nics = ["a", "b"], bond = { name = "b1" } }
  }
}
`}, "site.hcl")
	v := rb.EvalContext(Scope{Host: "h", Instance: rb.Plays[0].Instances[0]}).Variables["var"]
	if !v.GetAttr("mtu").RawEquals(cty.NumberIntVal(9100)) || v.GetAttr("bond").GetAttr("mode").AsString() != "802.3ad" ||
		v.GetAttr("nics").LengthInt() != 2 {
		t.Errorf("var = %#v", v)
	}

	files := map[string]string{"m/main.hcl": mod, "site.hcl": `play "p" {
  hosts = "all"
  module "small" {
    source = "./m"
    vars   = {
      mtu = 1000 # ERROR: Invalid value for variable
    }
  }
  module "word" {
    source = "./m"
    vars = {
      mtu  = "big" # ERROR: Invalid value for variable
      nics = "eth0" # ERROR: Invalid value for variable
    }
  }
}
`}
	_, diags, dir := loadTree(t, files, "site.hcl", Inputs{})
	treeErrors(t, diags, dir, files, nil)
	if d, _ := detailOf(diags, dir, "site.hcl:6 Invalid value for variable"); !strings.Contains(d, "mtu is at least 1280.") {
		t.Errorf("validation message: %q", d)
	}
}

// TestModuleCallErrors: every mistake in a call or a module is reported once, at its file and
// line; those inside a module's files name the call that brought the module in.
func TestModuleCallErrors(t *testing.T) {
	okModule := `variable "port" {
  type = number
}
task "t" {
  command {
    cmd = "echo ${var.port}"
  }
}
output "port" {
  value = var.port
}
`
	tests := []struct {
		name  string
		files map[string]string
		in    Inputs
		extra []string // errors in files without comments (JSON)
		// details: "FILE:LINE Summary" → what its detail says
		details map[string]string
	}{
		{
			name: "call arguments",
			files: map[string]string{"m/main.hcl": okModule, "site.hcl": `play "p" {
  hosts = "all"
  module "per_host_vars" {
    source = "./m"
    vars   = { port = host.vars.port } # ERROR: Invalid reference
  }
  module "per_host_each" {
    source   = "./m"
    for_each = facts.nics # ERROR: Invalid reference
    vars     = { port = 1 }
  }
  module "vars_not_object" {
    source = "./m"
    vars   = var.all # ERROR: Invalid module vars
  }
  module "twice" {
    source = "./m"
    vars   = {
      port = 1
      port = 2 # ERROR: Duplicate module var
    }
  }
  module "bad_when" {
    source = "./m"
    vars   = { port = 1 }
    when   = "yes" # ERROR: Invalid when
  }
  module "unknown_arg" {
    source = "./m"
    vars   = { port = 1 }
    retries = 3 # ERROR: Unsupported argument
  }
}
variable "all" {
  default = { port = 1 }
}
`},
		},
		{
			name: "unknown and missing vars at the call",
			files: map[string]string{"m/main.hcl": okModule, "site.hcl": `play "p" {
  hosts = "all"
  module "a" { # ERROR: Missing module variable
    source = "./m"
    vars   = {
      prot = 80 # ERROR: Unknown module variable
    }
  }
}
`},
			details: map[string]string{
				"site.hcl:3 Missing module variable": `needs a value for var.port (declared at m/main.hcl:1`,
				"site.hcl:6 Unknown module variable": `declares no variable "prot". Did you mean "port"?`,
			},
		},
		{
			// validate loads with AllowMissing: the root's variables may lack values, a
			// call's vars are written in the runbook and may not
			name: "missing var when values may be missing",
			in:   Inputs{AllowMissing: true},
			files: map[string]string{"m/main.hcl": okModule, "site.hcl": `play "p" {
  hosts = "all"
  module "a" { # ERROR: Missing module variable
    source = "./m"
  }
}
`},
		},
		{
			name: "unknown var in each instance is given once",
			files: map[string]string{"m/main.hcl": okModule, "site.hcl": `play "p" {
  hosts = "all"
  module "a" {
    source   = "./m"
    for_each = ["x", "y", "z"]
    vars     = {
      port = 1
      nope = 2 # ERROR: Unknown module variable
    }
  }
}
`},
		},
		{
			name: "a wrong value for some instances names them",
			files: map[string]string{"m/main.hcl": okModule, "site.hcl": `play "p" {
  hosts = "all"
  module "s" {
    source   = "./m"
    for_each = { a = 1, b = "x", c = "y" }
    vars     = {
      port = each.value # ERROR: Invalid value for variable
    }
  }
}
`},
			details: map[string]string{
				"site.hcl:7 Invalid value for variable": `a number is required. (for s["b"], s["c"])`,
			},
		},
		{
			name: "source",
			files: map[string]string{"m/main.hcl": okModule, "empty/README": "no runbook here\n", "site.hcl": `play "p" {
  hosts = "all"
  module "abs" {
    source = "/etc" # ERROR: Invalid module source
  }
  module "bare" {
    source = "m" # ERROR: Invalid module source
  }
  module "url" {
    source = "git::https://example.com/m" # ERROR: Invalid module source
  }
  module "missing" {
    source = "./nope" # ERROR: Cannot read module
  }
  module "empty" {
    source = "./empty" # ERROR: Empty module
  }
  module "file" {
    source = "./site.hcl" # ERROR: Cannot read module
  }
  module "per_host" {
    source = "./m${host.name}" # ERROR: Invalid reference
  }
  module "no_source" { # ERROR: Missing required argument
  }
}
`},
		},
		{
			name: "cycle",
			files: map[string]string{
				"a/main.hcl": `module "b" {
  source = "../b"
}
`,
				"b/main.hcl": `module "a" {
  source = "../a" # ERROR: Module cycle
}
`,
				"self/main.hcl": `module "me" {
  source = "./" # ERROR: Module cycle
}
`,
				"site.hcl": `play "p" {
  hosts = "all"
  module "a" {
    source = "./a"
  }
  module "self" {
    source = "./self"
  }
}
`},
			details: map[string]string{
				"b/main.hcl:2 Module cycle":    `(module "b", called at a/main.hcl:1,1-11)`,
				"self/main.hcl:2 Module cycle": `(module "self", called at site.hcl:6,3-16)`,
			},
		},
		{
			name: "duplicate names",
			files: map[string]string{"m/main.hcl": okModule + `block "g" {
  task "u" {
    command {
      cmd = "true"
    }
  }
}
block "g" { # ERROR: Duplicate block
  task "v" {
    command {
      cmd = "true"
    }
  }
}
`, "site.hcl": `play "p" {
  hosts = "all"
  task "a.t" {
    command {
      cmd = "true"
    }
  }
  module "a" {
    source = "./m"
    vars   = { port = 1 }
  }
  module "a" { # ERROR: Duplicate module call
    source = "./m"
    vars   = { port = 2 }
  }
  block "b" {
    task "x" {
      command {
        cmd = "true"
      }
    }
  }
  block "b" { # ERROR: Duplicate block
    task "y" {
      command {
        cmd = "true"
      }
    }
  }
  block "c" {
    task "x" { # ERROR: Duplicate task
      command {
        cmd = "true"
      }
    }
  }
}
`},
			extra: []string{"m/main.hcl:4 Duplicate task"},
			details: map[string]string{
				"m/main.hcl:4 Duplicate task": `A task named "a.t" was already declared at site.hcl:3,8-13. Names must be unique. (module "a", called at site.hcl:8,3-13)`,
			},
		},
		{
			name: "outputs",
			files: map[string]string{"m/main.hcl": okModule + `output "bad" {
  value = task["nope"].stdout # ERROR: Reference to undeclared task
}
output "port" { # ERROR: Duplicate output
  value = 1
}
`, "site.hcl": `play "p" {
  hosts = "all"
  module "a" {
    source = "./m"
    vars   = { port = 1 }
  }
  module "each" {
    source   = "./m"
    for_each = { x = 1 }
    vars     = { port = each.value }
  }
  task "use" {
    command {
      cmd = "echo ${module.a.port} ${module.each["x"].port} ${module.each.x.port}"
    }
  }
  task "bad call" {
    command {
      cmd = "echo ${module.b.port}" # ERROR: Reference to undeclared module call
    }
  }
  task "bad output" {
    command {
      cmd = "echo ${module.a.prot}" # ERROR: Reference to undeclared output
    }
  }
  task "bad key" {
    command {
      cmd = "echo ${module.each["y"].port}" # ERROR: Reference to undeclared module instance
    }
  }
  task "no key" {
    command {
      cmd = "echo ${module.each.port}" # ERROR: Reference to undeclared module instance
    }
  }
  task "list keys" {
    command {
      cmd = "echo ${module.list[1].port} ${module.list["0"].port} ${module.list[2].port}" # ERROR: Reference to undeclared module instance
    }
  }
  module "list" {
    source   = "./m"
    for_each = [1, 2]
    vars     = { port = each.value }
  }
}
`},
			details: map[string]string{
				"site.hcl:29 Reference to undeclared module instance": `The module call "each" has no instance ["y"]; its instances: ["x"].`,
				"site.hcl:34 Reference to undeclared module instance": `module.each["x"].port`,
				"site.hcl:39 Reference to undeclared module instance": `its instances: [0], [1]`,
				"m/main.hcl:13 Reference to undeclared task":          `This module has no task named "nope". A module sees the results of its own tasks only`,
				"site.hcl:24 Reference to undeclared output":          `Its outputs: port`,
			},
		},
		{
			name: "a module's own mistakes carry the call",
			files: map[string]string{"m/main.hcl": `variable "x" {
  type = string
}
task "t" {
  servce { # ERROR: Unknown module
  }
}
task "u" {
  command {
    cmd = "${var.y}" # ERROR: Reference to undeclared input variable
  }
}
task "v" {
  command {
    cmd = "${host.name}${each.key}" # ERROR: Invalid reference
  }
}
`, "site.hcl": `play "p" {
  hosts = "all"
  module "m" {
    source = "./m"
    vars   = { x = "1" }
  }
}
`},
			details: map[string]string{
				"m/main.hcl:5 Unknown module": `(module "m", called at site.hcl:3,3-13)`,
			},
		},
		{
			name: "module files hold no plays",
			files: map[string]string{"m/main.hcl": `play "p" { # ERROR: Unsupported block type
  hosts = "all"
}
`, "site.hcl": `play "p" {
  hosts = "all"
  module "m" {
    source = "./m"
  }
}
`},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, diags, dir := loadTree(t, tt.files, "site.hcl", tt.in)
			treeErrors(t, diags, dir, tt.files, tt.extra)
			for at, want := range tt.details {
				got, ok := detailOf(diags, dir, at)
				if !ok {
					t.Errorf("no error %s", at)
				} else if !strings.Contains(got, want) {
					t.Errorf("%s: detail %q does not say %q", at, got, want)
				}
			}
		})
	}
}

const jsonModule = `{
  "variable": {
    "port": {"type": "number"}
  },
  "task": {
    "hello": {
      "notify": ["bye"],
      "command": {"cmd": "echo ${var.port}"}
    }
  },
  "block": {
    "grp": {
      "for_each": "${[var.port, 2]}",
      "task": {"inside": {"command": {"cmd": "echo ${each.value}"}}},
      "rescue": {"task": {"fix": {"command": {"cmd": "true"}}}}
    }
  },
  "handler": {
    "bye": {"command": {"cmd": "true"}}
  },
  "output": {
    "said": {"value": "${task[\"hello\"].stdout}"}
  }
}
`

// TestModuleJSONSyntax: module files, blocks and calls in HCL's JSON syntax decode like
// native ones, and their mistakes are located in the JSON.
func TestModuleJSONSyntax(t *testing.T) {
	rb := mustLoad(t, map[string]string{
		"mods/jw/main.hcl.json": jsonModule,
		"site.hcl.json": `{
  "play": {
    "p": {
      "hosts": "all",
      "block": {
        "loop": {
          "for_each": "${[\"a\", \"b\"]}",
          "when": "${host.name != \"x\"}",
          "tags": ["loop"],
          "task": {"t1": {"command": {"cmd": "echo ${each.value}"}}},
          "module": {
            "inloop": {"source": "./mods/jw", "vars": {"port": 1}}
          },
          "rescue": {"task": {"r1": {"command": {"cmd": "true"}}}},
          "always": {"task": {"a1": {"command": {"cmd": "true"}}}}
        }
      },
      "module": {
        "web": {
          "source": "./mods/jw",
          "for_each": {"east": 81, "west": 82},
          "vars": {"port": "${each.value}"},
          "when": "${each.key != \"none\"}"
        }
      },
      "task": {
        "last": {"command": {"cmd": "echo ${module.web[\"east\"].said} ${task[\"web[\\\"west\\\"].hello\"].stdout}"}}
      }
    }
  }
}
`}, "site.hcl.json")
	p := rb.Plays[0]
	var got []string
	for _, task := range p.Order() {
		s := task.Name
		if task.Block != nil {
			s += " in " + task.Block.Name
			if task.Section != "" {
				s += " " + task.Section
			}
		}
		got = append(got, s)
	}
	want := []string{
		"t1 in loop", "inloop.hello in inloop", "inloop.inside in inloop.grp", "inloop.fix in inloop.grp rescue",
		"r1 in loop rescue", "a1 in loop always",
		`web["east"].hello in web["east"]`, `web["east"].inside in web["east"].grp`, `web["east"].fix in web["east"].grp rescue`,
		`web["west"].hello in web["west"]`, `web["west"].inside in web["west"].grp`, `web["west"].fix in web["west"].grp rescue`,
		"last",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("tasks:\n  %s\nwant:\n  %s", strings.Join(got, "\n  "), strings.Join(want, "\n  "))
	}
	if h := taskNames(p.Handlers); strings.Join(h, ",") != `inloop.bye,web["east"].bye,web["west"].bye` {
		t.Errorf("handlers %q", h)
	}
	if tags := p.Task("inloop.inside").Tags; len(tags) != 1 || tags[0] != "loop" {
		t.Errorf("tags of a module task in a block: %q", tags)
	}

	// mistakes, in JSON files (which have no comments for markers)
	files := map[string]string{
		"mods/bad/main.hcl.json": `{
  "variable": {"port": {"type": "number"}},
  "task": {
    "t": {
      "command": {"cmd": "echo ${var.prot}"}
    }
  },
  "output": {
    "o": {"value": "${each.key}"}
  }
}
`,
		"site.hcl.json": `{
  "play": {
    "p": {
      "hosts": "all",
      "module": {
        "m": {
          "source": "./mods/bad",
          "vars": {
            "port": "${host.name}",
            "nope": 1
          }
        }
      },
      "block": {
        "b": {
          "task": {
            "t": {"command": {"cmd": "echo ${each.value}"}}
          }
        }
      }
    }
  }
}
`}
	_, diags, dir := loadTree(t, files, "site.hcl.json", Inputs{})
	treeErrors(t, diags, dir, files, []string{
		"mods/bad/main.hcl.json:5 Reference to undeclared input variable",
		"mods/bad/main.hcl.json:9 Invalid reference",
		"site.hcl.json:9 Invalid reference",
		"site.hcl.json:10 Unknown module variable",
		"site.hcl.json:17 Invalid reference",
	})
	if d, _ := detailOf(diags, dir, "mods/bad/main.hcl.json:5 Reference to undeclared input variable"); !strings.Contains(d, `(module "m", called at site.hcl.json:6,`) {
		t.Errorf("no call in %q", d)
	}
}

// TestModulePathsAsGiven: a runbook named by a relative path names its modules' files
// relative too, as the user would write them, in diagnostics and in Files.
func TestModulePathsAsGiven(t *testing.T) {
	dir := writeTree(t, map[string]string{
		"mods/web/main.hcl": `task "t" {
  command {
    cmd = "${var.nope}"
  }
}
`,
		"site.hcl": `play "p" {
  hosts = "all"
  module "web" {
    source = "./mods/web"
  }
}
`})
	t.Chdir(dir)
	rb, diags := Load("site.hcl", Inputs{})
	if len(diags) != 1 || diags[0].Subject == nil || diags[0].Subject.Filename != filepath.Join("mods", "web", "main.hcl") {
		t.Fatalf("diagnostics: %v", diags)
	}
	if !strings.Contains(diags[0].Detail, "called at site.hcl:3,") {
		t.Errorf("detail %q", diags[0].Detail)
	}
	if _, ok := rb.Files[filepath.Join("mods", "web", "main.hcl")]; !ok {
		t.Errorf("files: %v", rb.Files)
	}
}

// TestModuleForEachNotKnown: validate checks a runbook before its variables have values;
// a call whose for_each is such a variable is checked once, with each not known, and
// references to its instances are accepted.
func TestModuleForEachNotKnown(t *testing.T) {
	files := map[string]string{
		"m/main.hcl": `variable "x" {
  type = number
}
task "t" {
  command {
    cmd = "echo ${var.x} ${var.y}" # ERROR: Reference to undeclared input variable
  }
}
output "o" {
  value = var.x
}
`,
		"site.hcl": `variable "sites" {
  type = map(number)
}
play "p" {
  hosts = "all"
  module "s" {
    source   = "./m"
    for_each = var.sites
    vars     = { x = each.value }
    when     = each.key != "a"
  }
  task "use" {
    command {
      cmd = "echo ${module.s["east"].o} ${module.s.west.o} ${module.s["a"].p}" # ERROR: Reference to undeclared output
    }
  }
}
`}
	rb, diags, dir := loadTree(t, files, "site.hcl", Inputs{AllowMissing: true})
	treeErrors(t, diags, dir, files, nil)
	if rb.Plays[0].Task("s[*].t") == nil {
		t.Errorf("tasks: %q", taskNames(rb.Plays[0].Tasks))
	}
}

// TestModuleVarSensitive: a sensitive value passed to a module stays sensitive inside it,
// whether or not the module's variable says so, through type conversion and defaults.
func TestModuleVarSensitive(t *testing.T) {
	rb := mustLoad(t, map[string]string{
		"m/main.hcl": `variable "token" {
  type = string
}
variable "cfg" {
  type = object({
    key  = string
    port = optional(number, 1)
  })
}
variable "n" {
  type = number
}
task "t" {
  command {
    cmd = "echo ${var.token} ${var.cfg.key} ${var.n}"
  }
}
output "o" {
  value = var.token
}
`,
		"site.hcl": `variable "secret" {
  default   = "hunter2"
  sensitive = true
}
variable "num" {
  default   = "42"
  sensitive = true
}
play "p" {
  hosts = "all"
  module "m" {
    source = "./m"
    vars   = { token = var.secret, cfg = { key = var.secret }, n = var.num }
  }
}
`}, "site.hcl")
	inst := rb.Plays[0].Instances[0]
	v := rb.EvalContext(Scope{Host: "h", Instance: inst}).Variables["var"]
	for _, p := range []cty.Value{v.GetAttr("token"), v.GetAttr("cfg").GetAttr("key"), v.GetAttr("n")} {
		if !p.HasMark(Sensitive) {
			t.Errorf("%#v lost its mark in the module", p)
		}
	}
	if secrets := ContextSecrets(rb.EvalContext(Scope{Host: "h", Instance: inst})); len(secrets) == 0 {
		t.Error("the module's context holds no secrets to redact")
	}
}

// TestModuleDepth: module calls nest at most maxModuleDepth deep; the call one level too
// deep is refused at its source, in the file that makes it.
func TestModuleDepth(t *testing.T) {
	files := map[string]string{"site.hcl": `play "p" {
  hosts = "all"
  module "m" {
    source = "./m0"
  }
}
`}
	for i := 0; i <= maxModuleDepth; i++ {
		files[fmt.Sprintf("m%d/main.hcl", i)] = fmt.Sprintf(`task "t" {
  command {
    cmd = "true"
  }
}
module "m" {
  source = "../m%d"
}
`, i+1)
	}
	files[fmt.Sprintf("m%d/main.hcl", maxModuleDepth+1)] = `task "t" {
  command {
    cmd = "true"
  }
}
`
	_, diags, dir := loadTree(t, files, "site.hcl", Inputs{})
	want := fmt.Sprintf("m%d/main.hcl:7 Modules nested too deeply", maxModuleDepth-1)
	treeErrors(t, diags, dir, files, []string{want})
}

// TestModuleFileDefault: file() in a module variable's default reads beside the module's
// file, not beside the root.
func TestModuleFileDefault(t *testing.T) {
	rb := mustLoad(t, map[string]string{
		"m/key.txt": "from the module\n",
		"key.txt":   "from the root\n",
		"m/main.hcl": `variable "key" {
  type      = string
  default   = trimspace(file("key.txt"))
  sensitive = true
}
task "t" {
  command {
    cmd = "echo ${var.key}"
  }
}
`,
		"site.hcl": `play "p" {
  hosts = "all"
  module "m" {
    source = "./m"
  }
}
`}, "site.hcl")
	v := rb.EvalContext(Scope{Host: "h", Instance: rb.Plays[0].Instances[0]}).Variables["var"].GetAttr("key")
	if !v.HasMark(Sensitive) {
		t.Error("not sensitive")
	}
	if v, _ := v.Unmark(); v.AsString() != "from the module" {
		t.Errorf("var.key = %q", v.AsString())
	}
}

// TestModuleForEachEmpty: a call whose for_each has no elements runs nothing, but its
// module is still checked, module.NAME is an empty object (for expressions over it are
// valid), and a reference to one of its instances says there is none.
func TestModuleForEachEmpty(t *testing.T) {
	files := map[string]string{
		"m/main.hcl": `variable "x" {
  type = number
}
task "t" {
  command {
    cmd = "echo ${var.x} ${var.y}" # ERROR: Reference to undeclared input variable
  }
}
output "o" {
  value = var.x
}
`,
		"site.hcl": `variable "sites" {
  default = {}
}
play "p" {
  hosts = "all"
  module "s" {
    source   = "./m"
    for_each = var.sites
    vars     = { x = each.value }
  }
  task "all" {
    command {
      cmd = "echo ${join(",", [for k, v in module.s : v.o])}"
    }
  }
  task "one" {
    command {
      cmd = "echo ${module.s["east"].o}" # ERROR: Reference to undeclared module instance
    }
  }
}
`}
	rb, diags, dir := loadTree(t, files, "site.hcl", Inputs{})
	treeErrors(t, diags, dir, files, nil)
	if d, _ := detailOf(diags, dir, "site.hcl:18 Reference to undeclared module instance"); !strings.Contains(d, `The module call "s" has no instances: its for_each is empty.`) {
		t.Errorf("detail %q", d)
	}
	if names := taskNames(rb.Plays[0].Tasks); strings.Join(names, ",") != "all,one" {
		t.Errorf("tasks %q", names)
	}
	v := rb.EvalContext(Scope{Host: "h", Play: rb.Plays[0]}).Variables["module"]
	if !v.GetAttr("s").RawEquals(cty.EmptyObjectVal) {
		t.Errorf("module = %#v", v)
	}
}
