package config

import (
	"strings"
	"testing"

	"github.com/zclconf/go-cty/cty"

	"github.com/runbook/runbook/modules"
)

// TestArgsMemo decodes tasks' arguments for host after host: each host gets exactly what a
// decode of its own would give, whether the arguments read only what every host shares
// (decoded once) or something of the host's (decoded again), marks and errors included.
func TestArgsMemo(t *testing.T) {
	const src = `
locals {
  dir = "/etc/app"
}
play "p" {
  hosts = "all"
  task "shared" {
    file {
      path  = local.dir
      state = "directory"
    }
  }
  task "per host" {
    command {
      argv = ["echo", host.name, try(host.vars.secret, "none")]
    }
  }
  task "a result" {
    command {
      cmd = "echo ${task["shared"].rc}"
    }
  }
}
`
	rb, diags := Parse([]Source{{Name: "m.hcl", Src: []byte(src)}}, Inputs{})
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	p := rb.Plays[0]
	hostCtx := func(name string, vars cty.Value, tasks map[string]cty.Value) Scope {
		return Scope{Host: name, Groups: []string{"all"}, Vars: vars, Tasks: tasks}
	}
	plain := cty.ObjectVal(map[string]cty.Value{"secret": cty.StringVal("x")})
	marked := cty.ObjectVal(map[string]cty.Value{"secret": cty.StringVal("x").Mark(Sensitive)})
	rc := func(n int64) map[string]cty.Value {
		return map[string]cty.Value{"shared": cty.ObjectVal(map[string]cty.Value{"rc": cty.NumberIntVal(n)})}
	}
	for _, tc := range []struct {
		task, host string
		vars       cty.Value
		tasks      map[string]cty.Value
		want       string // the arguments' GoString holds it
		marked     bool
		wantErr    string
	}{
		{"shared", "web1", cty.EmptyObjectVal, nil, `"/etc/app"`, false, ""},
		{"shared", "web2", cty.EmptyObjectVal, nil, `"/etc/app"`, false, ""},
		{"per host", "web1", plain, nil, `"web1"`, false, ""},
		{"per host", "web2", plain, nil, `"web2"`, false, ""},
		// the same raw values, but one is sensitive: not the last host's arguments
		{"per host", "web2", marked, nil, `"web2"`, true, ""},
		{"per host", "web2", plain, nil, `"web2"`, false, ""},
		{"a result", "web1", cty.EmptyObjectVal, rc(0), `"echo 0"`, false, ""},
		{"a result", "web2", cty.EmptyObjectVal, rc(1), `"echo 1"`, false, ""},
		// a host without the result: its error, not the last host's arguments
		{"a result", "web3", cty.EmptyObjectVal, map[string]cty.Value{}, "", false, "Invalid index"},
		{"a result", "web4", cty.EmptyObjectVal, rc(1), `"echo 1"`, false, ""},
	} {
		ctx := rb.EvalContext(hostCtx(tc.host, tc.vars, tc.tasks))
		_, args, diags := p.Task(tc.task).Args(ctx)
		if tc.wantErr != "" {
			if !diags.HasErrors() || !strings.Contains(diags.Error(), tc.wantErr) {
				t.Errorf("%s on %s: diagnostics %v, want an error naming %q", tc.task, tc.host, diags, tc.wantErr)
			}
			continue
		}
		if diags.HasErrors() {
			t.Fatalf("%s on %s: %v", tc.task, tc.host, diags)
		}
		// What a fresh decode gives, with no memory of other hosts.
		fresh, fd := decodeModule(mustModule(t, p.Task(tc.task).Module), p.Task(tc.task).Body, ctx, p.Task(tc.task).ModuleRange)
		if fd.HasErrors() || !args.RawEquals(fresh) {
			t.Errorf("%s on %s: got %#v, a decode of its own gives %#v (%v)", tc.task, tc.host, args, fresh, fd)
		}
		if !strings.Contains(args.GoString(), tc.want) {
			t.Errorf("%s on %s: arguments %#v, want %s in them", tc.task, tc.host, args, tc.want)
		}
		if got := args.ContainsMarked(); got != tc.marked {
			t.Errorf("%s on %s: marked = %v, want %v", tc.task, tc.host, got, tc.marked)
		}
	}
	// The shared task kept one decode for every host: the second host's value is the first's.
	m := p.Task("shared").args
	if m == nil || m.keys == nil {
		t.Fatal("the shared task's arguments were not kept")
	}
}

func mustModule(t *testing.T, name string) *modules.Def {
	t.Helper()
	m, ok := modules.Lookup(name)
	if !ok {
		t.Fatalf("no module %q", name)
	}
	return m
}
