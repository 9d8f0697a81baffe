package config

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/hashicorp/hcl/v2"
	"github.com/zclconf/go-cty/cty"

	"github.com/runbook/runbook/engine/diag"
	"github.com/runbook/runbook/inventory"
	"github.com/runbook/runbook/inventory/vault"
)

// secret is random text with separators: the leak checks look for any four bytes of it,
// which no message holds by chance.
const secret = "hunter2-Vq8x-sEc7rT"

// sensitiveRunbook declares sensitive variables of several shapes around one task whose
// meta-arguments and module body the tests fill in.
func sensitiveRunbook(task string) string {
	return `
variable "users" {
  type      = set(string)
  sensitive = true
  default   = ["alice", "` + secret + `"]
}
variable "list" {
  type      = list(string)
  sensitive = true
  default   = ["` + secret + `", "b"]
}
variable "map" {
  type      = map(string)
  sensitive = true
  default   = { "` + secret + `" = "v", k = "` + secret + `" }
}
variable "token" {
  type      = string
  sensitive = true
  default   = "` + secret + `"
}
` + sensitivePlay(task)
}

// sensitivePlay is a play of a task "prev" and a task "t" with the given body.
func sensitivePlay(task string) string {
	return `play "p" {
  hosts = "all"
  task "prev" {
    command {
      cmd = "true"
    }
  }
  task "t" {
` + task + `
  }
}
`
}

// sensitiveScope is a host's scope holding secret as the engine gives sensitive values:
// in a host var and as the key of an earlier task's per-item results.
func sensitiveScope(secret string) Scope {
	vars := cty.ObjectVal(map[string]cty.Value{
		"more":  cty.TupleVal([]cty.Value{cty.StringVal(secret)}).Mark(Sensitive),
		"plain": cty.StringVal("p"),
	})
	tasks := map[string]cty.Value{"prev": cty.ObjectVal(map[string]cty.Value{
		"results": cty.ObjectVal(map[string]cty.Value{secret: cty.ObjectVal(map[string]cty.Value{"changed": cty.True})}).Mark(Sensitive),
		"status":  cty.StringVal("changed"),
	})}
	return Scope{Host: "h1", Groups: []string{"all"}, Vars: vars, Tasks: tasks}
}

func leaks(v cty.Value) bool { return unmarkedSecret(v, secret) }

func diagsShow(diags hcl.Diagnostics) bool { return shownIn(diags, secret) != "" }

// TestSensitiveEvaluation: a sensitive collection can be iterated (for_each, for
// expressions), compared (when, changed_when, failed_when, until) and passed as
// arguments. Every key, value and argument computed from it stays marked, and no error
// message shows it.
func TestSensitiveEvaluation(t *testing.T) {
	tests := []struct {
		name  string
		task  string
		items int  // -1: no for_each
		fail  bool // evaluation fails for the host (with a message that hides the secret)
	}{
		{"for_each over a sensitive set", `for_each = var.users
command { argv = ["useradd", each.value, each.key] }`, 2, false},
		{"for_each over a sensitive list", `for_each = var.list
command { argv = ["echo", each.value, tostring(each.key)] }`, 2, false},
		{"for_each over a sensitive map", `for_each = var.map
command { argv = ["echo", each.key, each.value] }`, 2, false},
		{"for expression with a sensitive key", `for_each = { for u in var.users : u => upper(u) }
command { argv = ["echo", each.key, each.value] }`, 2, false},
		{"for expression grouping by a sensitive key", `for_each = { for u in var.list : u => u... }
command { argv = concat(["echo", each.key], each.value) }`, 2, false},
		{"object built with a sensitive key", `for_each = { (var.token) = "x", plain = var.token }
command { argv = ["echo", each.key, each.value] }`, 2, false},
		{"tuple holding one sensitive element", `for_each = [var.token, "plain"]
command { argv = ["echo", each.value] }`, 2, false},
		{"earlier results keyed by a sensitive key", `for_each = task.prev.results
when = each.value.changed
command { argv = ["echo", each.key] }`, 1, false},
		{"host values that are sensitive", `for_each = toset(host.vars.more)
command { argv = ["echo", each.key] }`, 1, false},
		{"when, changed_when, failed_when and until on sensitive values", `when = contains(var.users, "alice") && length(keys({ for u in var.list : u => 1 })) == 2
changed_when = self.status != var.token
failed_when = contains(keys(var.map), var.token) == false
until = var.token != ""
retries = 1
command { argv = ["echo", jsonencode(var.map), "${var.token}-suffix"] }`, -1, false},
		{"a duplicate sensitive key for this host", `when = length(keys({ for u in concat(var.list, host.vars.more) : u => 1 })) > 0
command { cmd = "true" }`, -1, true},
		{"an argument that is not an allowed value", `file {
  path  = "/tmp/x"
  state = host.vars.more[0]
}`, -1, true},
		{"a function that cannot read a sensitive value", `command { argv = [tostring(parseint(host.vars.more[0], 10))] }`, -1, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rb, diags := Parse([]Source{{Name: "s.hcl", Src: []byte(sensitiveRunbook(tt.task))}}, Inputs{})
			if diags.HasErrors() {
				t.Fatal(diags)
			}
			if diagsShow(diags) {
				t.Errorf("load diagnostics show the secret: %v", diags)
			}
			task := rb.Plays[0].Task("t")
			scope := sensitiveScope(secret)
			items, diags := task.Items(rb.EvalContext(scope))
			if diags.HasErrors() {
				t.Fatal(diags)
			}
			if tt.items < 0 {
				items = []Item{{}}
			} else if len(items) != tt.items {
				t.Fatalf("%d items, want %d", len(items), tt.items)
			}
			var failed hcl.Diagnostics
			for _, it := range items {
				s := scope
				if tt.items >= 0 {
					it := it
					s.Each = &it
					if leaks(it.Key) || leaks(it.Value) {
						t.Errorf("item %#v shows the secret unmarked", it)
					}
				}
				ctx := rb.EvalContext(s)
				_, d := task.WhenTrue(ctx)
				failed = append(failed, d...)
				_, args, d := task.Args(ctx)
				failed = append(failed, d...)
				if !d.HasErrors() && leaks(args) {
					t.Errorf("arguments %#v show the secret unmarked", args)
				}
				s.Self = cty.ObjectVal(map[string]cty.Value{"status": cty.StringVal("ok")})
				_, _, _, _, d = task.Verdict(rb.EvalContext(s))
				failed = append(failed, d...)
				_, d = task.UntilTrue(rb.EvalContext(s))
				failed = append(failed, d...)
			}
			if failed.HasErrors() != tt.fail {
				t.Errorf("failed %v, want %v: %v", failed.HasErrors(), tt.fail, failed)
			}
			if diagsShow(failed) {
				t.Errorf("diagnostics show the secret: %v", failed)
			}
		})
	}
}

// TestSensitiveKeysAreHidden: an item whose key came from a sensitive value says so.
func TestSensitiveKeysAreHidden(t *testing.T) {
	rb, diags := Parse([]Source{{Name: "s.hcl", Src: []byte(sensitiveRunbook(`for_each = var.users
command { argv = ["echo", each.value] }`))}}, Inputs{})
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	items, diags := rb.Plays[0].Task("t").Items(rb.EvalContext(Scope{Host: "h1"}))
	if diags.HasErrors() || len(items) != 2 {
		t.Fatal(items, diags)
	}
	for _, it := range items {
		if !it.Hidden() || !it.Value.HasMark(Sensitive) {
			t.Errorf("item %#v is not hidden", it)
		}
	}
	plain, _ := Parse([]Source{{Name: "p.hcl", Src: []byte(`play "p" {
  hosts = "all"
  task "t" {
    for_each = ["a"]
    command { argv = ["echo", each.value] }
  }
}`)}}, Inputs{})
	items, _ = plain.Plays[0].Task("t").Items(plain.EvalContext(Scope{Host: "h1"}))
	if len(items) != 1 || items[0].Hidden() {
		t.Errorf("a plain item is hidden: %#v", items)
	}
}

// TestSensitiveStaticArguments: meta-arguments that are the same for every host may use a
// sensitive value without crashing the loader, and their errors do not show it.
func TestSensitiveStaticArguments(t *testing.T) {
	tests := []struct {
		name string
		task string
		err  string // "" means no error
	}{
		{"tags from a sensitive list", `tags = concat([var.token], [])
command { cmd = "true" }`, ""},
		{"notify from a sensitive list", `notify = tolist([var.token])
command { cmd = "true" }`, "Reference to undeclared handler"},
		{"a duration that is a secret", `timeout = var.token
command { cmd = "true" }`, "Invalid duration"},
		{"an argument checked at load", `file {
  path  = "/tmp/x"
  state = var.token
}`, `Invalid value for "state"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, diags := Parse([]Source{{Name: "s.hcl", Src: []byte(sensitiveRunbook(tt.task))}}, Inputs{})
			if tt.err == "" && diags.HasErrors() || tt.err != "" && (!diags.HasErrors() || diags[0].Summary != tt.err) {
				t.Errorf("diagnostics %v, want %q", diags, tt.err)
			}
			if diagsShow(diags) {
				t.Errorf("diagnostics show the secret: %v", diags)
			}
		})
	}
	// serial takes numbers, which redaction cannot hide; it must not crash either
	_, diags := Parse([]Source{{Name: "s.hcl", Src: []byte(`
variable "n" {
  type      = number
  sensitive = true
  default   = 2
}
play "p" {
  hosts  = "all"
  serial = [var.n, "50%"]
  task "t" {
    command { cmd = "true" }
  }
}`)}}, Inputs{})
	if diags.HasErrors() {
		t.Error(diags)
	}
}

// TestSensitiveValueNotQuoted: a sensitive variable's value that does not parse is not
// quoted in the error.
func TestSensitiveValueNotQuoted(t *testing.T) {
	src := `
variable "ids" {
  type      = list(number)
  sensitive = true
}`
	for _, in := range []Inputs{
		{Vars: []string{"ids=[" + secret}},
		{Environ: []string{EnvPrefix + "ids=[" + secret}},
	} {
		_, diags := Parse([]Source{{Name: "s.hcl", Src: []byte(src)}}, in)
		if !diags.HasErrors() || diagsShow(diags) {
			t.Errorf("diagnostics %v", diags)
		}
	}
}

// showsPart returns a part of secret (four bytes or more, in any case) that text shows,
// or "": a value computed from a secret is seldom the secret itself.
func showsPart(text, secret string) string {
	text, secret = strings.ToLower(text), strings.ToLower(secret)
	for i := 0; i+4 <= len(secret); i++ {
		if w := secret[i : i+4]; strings.Contains(text, w) {
			return w
		}
	}
	return ""
}

// TestSensitiveDerivedNotShown: an error about a value computed from a sensitive value
// (another case, a part, a regular expression built from it, a duplicate key) shows no
// part of it, when the runbook loads as when a host evaluates it; an error about plain
// values keeps its detail.
func TestSensitiveDerivedNotShown(t *testing.T) {
	const token = "Zq7x-Kx9w-Pm3j"
	tests := []struct {
		name    string
		task    string
		rule    string // a validation block for var.token
		atLoad  bool   // the error comes when the runbook loads, else when a host evaluates
		summary string
		shown   string // "": the detail is hidden; else a text it keeps
	}{
		{"another case", `when = tonumber(upper(var.token)) > 0`, "", true, "Invalid function argument", ""},
		{"a part", `when = tonumber(split("-", var.token)[1]) > 0`, "", true, "Invalid function argument", ""},
		{"a replacement", `when = tonumber(replace(var.token, "-", " ")) > 0`, "", true, "Invalid function argument", ""},
		{"a duplicate key", `when = length({ for u in [var.token, var.token] : upper(u) => 1 }) > 0`, "", true, "Duplicate object key", ""},
		{"a regular expression", `when = regex("(${upper(var.token)}", "x") == ""`, "", true, "Invalid function argument", ""},
		{"an argument outside the allowed values", "file {\n  path = \"/tmp/x\"\n  state = upper(var.token)\n}", "", true, `Invalid value for "state"`, ""},
		{"for a host: another case", `when = tonumber(upper("${var.token}${host.name}")) > 0`, "", false, "Invalid function argument", ""},
		{"for a host: a part", `command { argv = ["x", tostring(tonumber(split("-", "${var.token}${host.name}")[1]))] }`, "", false, "Invalid function argument", ""},
		{"for a host: an argument outside the allowed values", "file {\n  path = \"/tmp/x\"\n  state = lower(\"${var.token}${host.name}\")\n}", "", false, `Invalid value for "state"`, ""},
		{"a validation message built from the value", "", `validation {
    condition     = var.token == "x"
    error_message = "not ${upper(var.token)}"
  }`, true, "Invalid value for variable", "the rule's error message is built from the sensitive value"},
		{"a validation message of its own", "", `validation {
    condition     = var.token == "x"
    error_message = "Not x."
  }`, true, "Invalid value for variable", "Not x."},
		{"a plain value", `when = tonumber(upper(local.plain)) > 0`, "", true, "Invalid function argument", "ABC-DEF"},
		{"a misspelt variable", `when = var.tokn == ""`, "", true, "Reference to undeclared input variable", `Did you mean "token"?`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			task := tt.task
			if !strings.Contains(task, "command {") && !strings.Contains(task, "file {") {
				task += "\ncommand { cmd = \"true\" }"
			}
			src := `variable "token" {
  type      = string
  sensitive = true
  default   = "` + token + `"
  ` + tt.rule + `
}
locals {
  plain = "abc-def"
}
` + sensitivePlay(task)
			rb, diags := Parse([]Source{{Name: "s.hcl", Src: []byte(src)}}, Inputs{})
			if !tt.atLoad {
				if diags.HasErrors() {
					t.Fatal(diags)
				}
				ctx := rb.EvalContext(Scope{Host: "h1", Groups: []string{"all"}})
				tk := rb.Plays[0].Task("t")
				_, diags = tk.WhenTrue(ctx)
				_, _, d := tk.Args(ctx)
				diags = append(diags, d...)
			}
			if !diags.HasErrors() || diags[0].Summary != tt.summary {
				t.Fatalf("diagnostics %v, want %q", diags, tt.summary)
			}
			if w := showsPart(diags.Error(), token); w != "" {
				t.Errorf("the diagnostics show %q: %v", w, diags)
			}
			if detail := diags[0].Detail; tt.shown == "" && detail != "(the value is sensitive and not shown)" || tt.shown != "" && !strings.Contains(detail, tt.shown) {
				t.Errorf("detail %q, want %q", detail, tt.shown)
			}
		})
	}
}

// TestSensitiveStrings: the keys of maps inside a marked value are secrets like its
// strings; outside the mark they are not; the attribute names of objects are
// sensitiveNames' (for diagnostics only).
func TestSensitiveStrings(t *testing.T) {
	s := cty.StringVal
	tests := []struct {
		name string
		v    cty.Value
		want []string
	}{
		{"a marked string", s("tok-1").Mark(Sensitive), []string{"tok-1"}},
		{"the keys of a marked map", cty.MapVal(map[string]cty.Value{"key-1": s("v")}).Mark(Sensitive), []string{"key-1", "v"}},
		{"the attribute names of a marked object are not", cty.ObjectVal(map[string]cty.Value{"key-1": cty.True}).Mark(Sensitive), nil},
		{"nested inside a marked value", cty.ListVal([]cty.Value{cty.MapVal(map[string]cty.Value{"key-1": cty.ObjectVal(map[string]cty.Value{"key-2": s("v")})})}).Mark(Sensitive),
			[]string{"key-1", "v"}},
		{"a marked set", cty.SetVal([]cty.Value{s("tok-1")}).Mark(Sensitive), []string{"tok-1"}},
		{"keys outside the mark are not secrets", cty.ObjectVal(map[string]cty.Value{"plain": cty.MapVal(map[string]cty.Value{"key-1": s("tok-1").Mark(Sensitive)})}),
			[]string{"tok-1"}},
		{"nothing marked", cty.MapVal(map[string]cty.Value{"key-1": s("v")}), nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := SensitiveStrings(tt.v)
			slices.Sort(got)
			got = slices.Compact(got)
			if !slices.Equal(got, tt.want) {
				t.Errorf("SensitiveStrings = %q, want %q", got, tt.want)
			}
		})
	}
}

// TestSensitiveKeysInErrors: an error about a key of a sensitive map or object (here one
// that is not a number) does not quote it, whether loading evaluates the argument or the
// run does, per host.
func TestSensitiveKeysInErrors(t *testing.T) {
	const key = "hunter3-tokenkey"
	decls := map[string]string{
		"map":        `type = map(string)` + "\n" + `default = { "` + key + `" = "svc-a" }`,
		"object":     `default = { "` + key + `" = "svc-a" }`,
		"nested map": `type = map(map(string))` + "\n" + `default = { a = { "` + key + `" = "svc-a" } }`,
	}
	for name, decl := range decls {
		for _, perHost := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/per host=%v", name, perHost), func(t *testing.T) {
				expr := `keys(var.tokens)[0]`
				if name == "nested map" {
					expr = `keys(var.tokens.a)[0]`
				}
				if perHost {
					expr = `host.name == "h1" ? ` + expr + ` : "1"`
				}
				src := "variable \"tokens\" {\n  sensitive = true\n  " + decl + "\n}\n" +
					sensitivePlay(`command { argv = [tostring(tonumber(`+expr+`))] }`)
				rb, diags := Parse([]Source{{Name: "s.hcl", Src: []byte(src)}}, Inputs{})
				if perHost {
					if diags.HasErrors() {
						t.Fatal(diags)
					}
					_, _, diags = rb.Plays[0].Task("t").Args(rb.EvalContext(Scope{Host: "h1"}))
				}
				if !diags.HasErrors() {
					t.Fatal("the argument evaluated")
				}
				if shown := shownIn(diags, key); shown != "" {
					t.Errorf("a diagnostic shows the key: %s", shown)
				}
			})
		}
	}
}

// TestVarFileLinesNotShown: a diagnostic about a --var-file names the file, line and
// column, but its lines, which hold the values of sensitive variables, are not printed,
// whether the printer has the file parsed or reads it from disk.
func TestVarFileLinesNotShown(t *testing.T) {
	src := `
variable "token" {
  type      = string
  sensitive = true
}
variable "port" {
  type      = number
  sensitive = true
}
` + sensitivePlay(`command { cmd = "true" }`)
	tests := []struct {
		name, vars, want string
	}{
		{"a syntax error", `token = "` + secret + `\q"`, "line 1, column"},
		{"a value of the wrong type", "token = \"x\"\nport = \"" + secret + `"`, "line 2, column 8"},
		{"an undeclared variable", "token = \"x\"\ntokne = \"" + secret + `"`, "line 2, column 1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "secrets.rbvars")
			if err := os.WriteFile(path, []byte(tt.vars), 0o600); err != nil {
				t.Fatal(err)
			}
			rb, diags := Parse([]Source{{Name: "s.hcl", Src: []byte(src)}}, Inputs{VarFiles: []string{path}})
			if len(diags) == 0 {
				t.Fatal("no diagnostics")
			}
			for _, files := range []map[string]*hcl.File{rb.Files, nil} {
				var b strings.Builder
				(&diag.Printer{Files: files}).Text(&b, diags)
				if out := b.String(); strings.Contains(out, "hunter2") || !strings.Contains(out, path+" "+tt.want) {
					t.Errorf("printed:\n%s", out)
				}
			}
		})
	}
}

// TestInventoryPasswords: the passwords an inventory gives (ansible_password,
// ansible_become_pass, ...) are sensitive in host.vars, and in the play vars made from
// them; an error that quotes one hides it. Other inventory variables are not.
func TestInventoryPasswords(t *testing.T) {
	src := sensitivePlay(`command { argv = [tostring(tonumber(host.vars.ansible_become_pass))] }`)
	src = strings.Replace(src, `hosts = "all"`, `hosts = "all"
  vars = {
    login = "${host.vars.ansible_user}:${host.vars.ansible_password}"
  }`, 1)
	rb, diags := Parse([]Source{{Name: "s.hcl", Src: []byte(src)}}, Inputs{})
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	inv := cty.ObjectVal(map[string]cty.Value{
		"ansible_user":        cty.StringVal("deploy"),
		"ansible_password":    cty.StringVal(secret),
		"ansible_become_pass": cty.StringVal(secret + "-become"),
		"ansible_ssh_pass":    cty.StringVal(secret + "-ssh"),
		"motd":                cty.StringVal("hello"),
	})
	vars, diags := rb.HostVars(rb.Plays[0], "h1", []string{"all"}, inv)
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	for name, marked := range map[string]bool{"ansible_password": true, "ansible_become_pass": true, "ansible_ssh_pass": true,
		"login": true, "ansible_user": false, "motd": false} {
		if vars.GetAttr(name).HasMark(Sensitive) != marked {
			t.Errorf("host.vars.%s marked: %v, want %v", name, !marked, marked)
		}
	}
	_, _, diags = rb.Plays[0].Task("t").Args(rb.EvalContext(Scope{Host: "h1", Groups: []string{"all"}, Vars: vars}))
	if !diags.HasErrors() {
		t.Fatal("the argument evaluated")
	}
	if shown := shownIn(diags, secret); shown != "" {
		t.Errorf("a diagnostic shows the password: %s", shown)
	}
}

// TestInventorySecretsAtAnyDepth: a value under a key named like a secret is marked
// sensitive wherever it is in host.vars, as `runbook inventory` redacts it; its neighbours
// are not.
func TestInventorySecretsAtAnyDepth(t *testing.T) {
	rb, diags := Parse([]Source{{Name: "s.hcl", Src: []byte(`
play "p" {
  hosts = "all"
  task "t" {
    command {
      argv = ["true"]
    }
  }
}`)}}, Inputs{})
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	inv := inventory.CtyValue(map[string]any{
		"ansible_become_password": "top",
		"mysql":                   map[string]any{"root_password": "hunter22", "port": int64(3306), "user": "root"},
		"apps": []any{
			map[string]any{"name": "a", "api_token": "tok-1", "creds": map[string]any{"db_pass": "deep"}},
			"plain",
		},
		"unset_password": nil,
		// a private key is a secret whatever its name; a boolean named like a secret is not
		"tls":                         map[string]any{"material": "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\n-----END OPENSSH PRIVATE KEY-----\n"},
		"ssh_password_authentication": false,
	})
	vars, diags := rb.HostVars(rb.Plays[0], "h1", []string{"all"}, inv)
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	tests := []struct {
		path      cty.Path
		sensitive bool
	}{
		{cty.GetAttrPath("ansible_become_password"), true},
		{cty.GetAttrPath("mysql").GetAttr("root_password"), true},
		{cty.GetAttrPath("mysql").GetAttr("port"), false},
		{cty.GetAttrPath("mysql").GetAttr("user"), false},
		{cty.GetAttrPath("apps").IndexInt(0).GetAttr("api_token"), true},
		{cty.GetAttrPath("apps").IndexInt(0).GetAttr("name"), false},
		{cty.GetAttrPath("apps").IndexInt(0).GetAttr("creds").GetAttr("db_pass"), true},
		{cty.GetAttrPath("apps").IndexInt(1), false},
		{cty.GetAttrPath("unset_password"), false},
		{cty.GetAttrPath("tls").GetAttr("material"), true},
		{cty.GetAttrPath("ssh_password_authentication"), false},
	}
	for _, tt := range tests {
		v, err := tt.path.Apply(vars)
		if err != nil {
			t.Errorf("%#v: %v", tt.path, err)
			continue
		}
		if got := v.HasMark(Sensitive); got != tt.sensitive {
			t.Errorf("%#v: sensitive %v, want %v", tt.path, got, tt.sensitive)
		}
	}
	got := strings.Join(ContextSecrets(rb.EvalContext(Scope{Host: "h1", Vars: vars})), ",")
	for _, s := range []string{"top", "hunter22", "tok-1", "deep"} {
		if !strings.Contains(got, s) {
			t.Errorf("the secrets in scope %q miss %q", got, s)
		}
	}
	// the same rule for a host's vars outside a play (InventoryVars)
	if v := InventoryVars(inv).GetAttr("mysql").GetAttr("root_password"); !v.HasMark(Sensitive) {
		t.Error("InventoryVars: mysql.root_password is not marked")
	}
}

func TestSplitSensitive(t *testing.T) {
	s := func(v string) cty.Value { return cty.StringVal(v) }
	tests := []struct {
		name string
		args cty.Value
		want []string
	}{
		{"no marks", cty.ObjectVal(map[string]cty.Value{"a": s("x")}), nil},
		{"top-level", cty.ObjectVal(map[string]cty.Value{"a": s("x"), "b": s("y").Mark(Sensitive)}), []string{"b"}},
		{"deep in a map", cty.ObjectVal(map[string]cty.Value{
			"env": cty.MapVal(map[string]cty.Value{"K": s("v").Mark(Sensitive)}),
			"l":   cty.ListVal([]cty.Value{s("1"), s("2").Mark(Sensitive)}),
			"p":   s("plain"),
		}), []string{"env", "l"}},
		{"whole object", cty.ObjectVal(map[string]cty.Value{"a": s("x"), "b": s("y")}).Mark(Sensitive), []string{"a", "b"}},
		{"map of args", cty.MapVal(map[string]cty.Value{"k": s("v").Mark(Sensitive), "j": s("w")}), []string{"k"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			plain, names := SplitSensitive(tt.args)
			if plain.ContainsMarked() {
				t.Errorf("plain value still carries marks: %#v", plain)
			}
			want, _ := tt.args.UnmarkDeep()
			if !plain.RawEquals(want) {
				t.Errorf("plain = %#v, want %#v", plain, want)
			}
			if !slices.Equal(names, tt.want) {
				t.Errorf("names = %q, want %q", names, tt.want)
			}
		})
	}
}

// TestInventoryVaultValues: values decrypted from Ansible Vault are marked sensitive in
// host.vars whatever their names (motd, greeting), in a list too; plain values beside
// them are not.
func TestInventoryVaultValues(t *testing.T) {
	keys := vault.NewKeyring(vault.Secret{ID: vault.DefaultID, Password: []byte("pw-one")}, vault.Secret{ID: "prod", Password: []byte("pw-prod")})
	inv, idiags := inventory.LoadWith(context.Background(), inventory.LoadOptions{Vault: keys}, "../../inventory/testdata/vault/hosts.yml")
	if idiags.HasErrors() {
		t.Fatal(idiags)
	}
	h, _ := inv.Host("w1")
	rb, diags := Parse([]Source{{Name: "s.hcl", Src: []byte(`
play "p" {
  hosts = "all"
  vars = {
    banner = "welcome: ${host.vars.motd}"
  }
  task "t" {
    command {
      argv = ["true"]
    }
  }
}`)}}, Inputs{})
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	vars, diags := rb.HostVars(rb.Plays[0], "w1", h.Groups, inventory.CtyValue(h.Vars))
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	for path, want := range map[string]bool{"motd": true, "greeting": true, "db_conn": true, "host_note": true, "banner": true, "plain": false} {
		if got := vars.GetAttr(path).HasMark(Sensitive); got != want {
			t.Errorf("host.vars.%s marked %v, want %v", path, got, want)
		}
	}
	if !vars.GetAttr("nested").Index(cty.NumberIntVal(0)).HasMark(Sensitive) {
		t.Error("host.vars.nested[0] is not marked")
	}
	if got := SensitiveStrings(vars); !slices.Contains(got, "Motd-v12-secret") || slices.Contains(got, "hello") {
		t.Errorf("sensitive strings %q", got)
	}
}

// TestVarFileVault: a --var-file encrypted whole with ansible-vault (testdata/vault, made
// with `ansible-vault encrypt --vault-password-file` and the password pw-one) is decrypted,
// and its values are sensitive though the variables are not declared so. A wrong or
// missing password, or an error in the decrypted text, is an error at the file that shows
// none of its content.
func TestVarFileVault(t *testing.T) {
	src := []byte(`
variable "conn" {}
variable "port" {
  type = number
}
play "p" {
  hosts = "all"
  task "t" {
    command {
      argv = ["true"]
    }
  }
}`)
	pw := vault.NewKeyring(vault.Secret{ID: vault.DefaultID, Password: []byte("pw-one")})
	rb, diags := Parse([]Source{{Name: "s.hcl", Src: src}}, Inputs{VarFiles: []string{"testdata/vault/vars.hcl"}, Vault: pw})
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	conn := rb.varValues["conn"]
	if !conn.HasMark(Sensitive) || !rb.varValues["port"].HasMark(Sensitive) {
		t.Fatalf("values not marked: %#v", rb.varValues)
	}
	if v, _ := conn.Unmark(); v.AsString() != "Varfile-vault-s3cret" {
		t.Fatalf("conn = %#v", v)
	}
	if f := rb.Files["testdata/vault/vars.hcl"]; f == nil || strings.Contains(string(f.Bytes), "Varfile") {
		t.Error("the runbook's files hold the decrypted text")
	}
	for _, tt := range []struct {
		name, file string
		keys       *vault.Keyring
		want       string
	}{
		{"no password", "testdata/vault/vars.hcl", nil, "no vault password was given"},
		{"wrong password", "testdata/vault/vars.hcl", vault.NewKeyring(vault.Secret{ID: vault.DefaultID, Password: []byte("pw-two")}), "a wrong password"},
		{"syntax error inside", "testdata/vault/bad.hcl", pw, "(in an encrypted file)"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, diags := Parse([]Source{{Name: "s.hcl", Src: src}}, Inputs{VarFiles: []string{tt.file}, Vault: tt.keys})
			if !diags.HasErrors() {
				t.Fatal("no error")
			}
			text := diags.Error()
			if !strings.Contains(text, tt.want) || !strings.Contains(text, tt.file+":") {
				t.Errorf("error %q: want %q at %s", text, tt.want, tt.file)
			}
			if strings.Contains(text, "Varfile") || strings.Contains(text, "pw-") {
				t.Errorf("error shows a secret: %s", text)
			}
		})
	}
}

// TestScopeSecrets: ScopeSecrets finds what ContextSecrets finds in the same scope, with
// var's and local's secrets worked out once: sensitive variables, a local made from one,
// inventory secrets, a sensitive for_each element; not the facts, which are never marked.
func TestScopeSecrets(t *testing.T) {
	src := sensitiveRunbook(`command { argv = ["true"] }`) + `
locals {
  derived = "${var.token}-local"
  plain   = "open"
}
`
	rb, diags := Parse([]Source{{Name: "s.hcl", Src: []byte(src)}}, Inputs{})
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	inv := inventory.CtyValue(map[string]any{"db_password": "inv-" + secret, "port": int64(22)})
	vars, diags := rb.HostVars(rb.Plays[0], "h1", []string{"all"}, inv)
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	facts := inventory.CtyValue(map[string]any{"hostname": "h1", "nics": []any{map[string]any{"name": "eth0"}}})
	each := &Item{Key: cty.StringVal("k").Mark(Sensitive), Value: cty.StringVal("each-" + secret).Mark(Sensitive)}
	for _, c := range []struct {
		name  string
		scope Scope
		want  []string // among the secrets
	}{
		{"no host values", Scope{Host: "h1"}, []string{secret, secret + "-local"}},
		{"host vars and facts", Scope{Host: "h1", Vars: vars, Facts: facts}, []string{secret, "inv-" + secret}},
		{"a sensitive element", Scope{Host: "h1", Vars: vars, Facts: facts, Each: each}, []string{"each-" + secret, "k"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			ctx := rb.EvalContext(c.scope)
			got, want := rb.ScopeSecrets(c.scope, ctx), ContextSecrets(ctx)
			slices.Sort(got)
			slices.Sort(want)
			if !slices.Equal(got, want) {
				t.Errorf("ScopeSecrets %q\nContextSecrets %q", got, want)
			}
			for _, w := range c.want {
				if !slices.Contains(got, w) {
					t.Errorf("%q is not among the secrets %q", w, got)
				}
			}
			if slices.Contains(got, "open") || slices.Contains(got, "h1") {
				t.Errorf("plain values among the secrets: %q", got)
			}
		})
	}
}
