package run

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/runbook/runbook/engine/config"
	"github.com/runbook/runbook/engine/plan"
	"github.com/runbook/runbook/inventory"
)

func TestInventoryBecome(t *testing.T) {
	yes, no := true, false
	tests := []struct {
		vars map[string]any
		want HostBecome
		err  string // in the error, with the host's name
	}{
		{vars: nil, want: HostBecome{}},
		{vars: map[string]any{"ansible_become": true}, want: HostBecome{Become: &yes}},
		{vars: map[string]any{"ansible_become": "yes"}, want: HostBecome{Become: &yes}},
		{vars: map[string]any{"ansible_become": "True"}, want: HostBecome{Become: &yes}},
		{vars: map[string]any{"ansible_become": " on "}, want: HostBecome{Become: &yes}},
		{vars: map[string]any{"ansible_become": int64(1)}, want: HostBecome{Become: &yes}},
		{vars: map[string]any{"ansible_become": "no"}, want: HostBecome{Become: &no}},
		{vars: map[string]any{"ansible_become": "false"}, want: HostBecome{Become: &no}},
		{vars: map[string]any{"ansible_become": float64(0)}, want: HostBecome{Become: &no}},
		{vars: map[string]any{"ansible_become": false}, want: HostBecome{Become: &no}},
		{vars: map[string]any{"ansible_become": nil}, want: HostBecome{}},
		{vars: map[string]any{"ansible_become": "maybe"}, err: `ansible_become="maybe" is not a boolean`},
		{vars: map[string]any{"ansible_become": int64(2)}, err: `ansible_become="2" is not a boolean`},
		{vars: map[string]any{"ansible_become": []any{"yes"}}, err: `is not a boolean`},
		{vars: map[string]any{"ansible_become_user": "postgres", "ansible_become_method": "sudo"},
			want: HostBecome{User: "postgres", Method: "sudo"}},
		{vars: map[string]any{"ansible_become_method": "su"}, want: HostBecome{Method: "su"}},
		{vars: map[string]any{"ansible_become_user": []any{"root"}}, err: "ansible_become_user is a list, not a string"},
		// a number reads as its text, as in Ansible
		{vars: map[string]any{"ansible_become_user": int64(1000)}, want: HostBecome{User: "1000"}},
		// the method's own names are read after the common ones
		{vars: map[string]any{"ansible_become_method": "su", "ansible_become_password": "a", "ansible_su_pass": "b"},
			want: HostBecome{Method: "su", Password: "b"}},
		{vars: map[string]any{"ansible_become_user": " root"}, err: `ansible_become_user " root" has spaces around the name`},
		{vars: map[string]any{"ansible_become_method": true}, err: `ansible_become_method="True" is not supported`},
		{vars: map[string]any{"ansible_become_method": "pbrun"}, err: `ansible_become_method="pbrun" is not supported`},
		{vars: map[string]any{"ansible_become_password": "s3cret"}, want: HostBecome{Password: "s3cret"}},
		{vars: map[string]any{"ansible_become_pass": "s3cret"}, want: HostBecome{Password: "s3cret"}},
		{vars: map[string]any{"ansible_become_password": "a", "ansible_become_pass": "b"}, want: HostBecome{Password: "b"}},
		// the last one set wins, even when it is empty (as Ansible reads them)
		{vars: map[string]any{"ansible_become_password": "a", "ansible_become_pass": ""}, want: HostBecome{Password: ""}},
		// a password of the wrong kind is refused without being shown; a number is its text
		{vars: map[string]any{"ansible_become_password": map[string]any{"p": "123456"}}, err: "ansible_become_password is a mapping, not a string"},
		{vars: map[string]any{"ansible_become_password": int64(123456)}, want: HostBecome{Password: "123456"}},
	}
	for _, tt := range tests {
		h := &inventory.Host{Name: "web1", Vars: tt.vars}
		got, err := InventoryBecome(h)
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) || !strings.Contains(err.Error(), "web1") {
				t.Errorf("%v: error %v, want one naming web1 with %q", tt.vars, err, tt.err)
			}
			if err != nil && strings.Contains(err.Error(), "123456") {
				t.Errorf("%v: the error shows the password: %v", tt.vars, err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%v: %v", tt.vars, err)
			continue
		}
		if fmtBecome(got) != fmtBecome(tt.want) {
			t.Errorf("%v: got %s, want %s", tt.vars, fmtBecome(got), fmtBecome(tt.want))
		}
	}
}

func fmtBecome(hb HostBecome) string {
	b := "unset"
	if hb.Become != nil {
		b = map[bool]string{true: "true", false: "false"}[*hb.Become]
	}
	return "become=" + b + " user=" + hb.User + " method=" + hb.Method + " password=" + hb.Password
}

func TestEffectiveIdentity(t *testing.T) {
	yes, no := true, false
	root, app := Identity{"sudo", "root"}, Identity{"sudo", "app"}
	tests := []struct {
		name string
		task *config.Task
		play *config.Play
		inv  HostBecome
		want Identity
	}{
		{"nothing set", &config.Task{}, &config.Play{}, HostBecome{}, Login},
		{"play become", &config.Task{}, &config.Play{Become: &yes}, HostBecome{}, root},
		{"task become", &config.Task{Become: &yes}, &config.Play{}, HostBecome{}, root},
		{"task off beats play", &config.Task{Become: &no}, &config.Play{Become: &yes}, HostBecome{}, Login},
		{"task on beats play off", &config.Task{Become: &yes}, &config.Play{Become: &no}, HostBecome{}, root},
		{"inventory become", &config.Task{}, &config.Play{}, HostBecome{Become: &yes}, root},
		{"play off beats inventory", &config.Task{}, &config.Play{Become: &no}, HostBecome{Become: &yes}, Login},
		{"task off beats inventory", &config.Task{Become: &no}, &config.Play{}, HostBecome{Become: &yes}, Login},
		{"play on beats inventory off", &config.Task{}, &config.Play{Become: &yes}, HostBecome{Become: &no}, root},
		{"become_user alone does not become", &config.Task{BecomeUser: "app"}, &config.Play{BecomeUser: "app"}, HostBecome{User: "app"}, Login},
		{"task user", &config.Task{BecomeUser: "app"}, &config.Play{Become: &yes}, HostBecome{}, app},
		{"play user", &config.Task{}, &config.Play{Become: &yes, BecomeUser: "app"}, HostBecome{}, app},
		{"task user beats play user", &config.Task{BecomeUser: "root"}, &config.Play{Become: &yes, BecomeUser: "app"}, HostBecome{}, root},
		{"play user beats inventory user", &config.Task{}, &config.Play{Become: &yes, BecomeUser: "app"}, HostBecome{User: "db"}, app},
		{"inventory user", &config.Task{Become: &yes}, &config.Play{}, HostBecome{User: "db"}, Identity{"sudo", "db"}},
		{"inventory method", &config.Task{Become: &yes}, &config.Play{}, HostBecome{Method: "doas"}, Identity{"doas", "root"}},
		{"play method beats inventory method", &config.Task{Become: &yes}, &config.Play{BecomeMethod: "su"}, HostBecome{Method: "doas"}, Identity{"su", "root"}},
		{"task method beats play method", &config.Task{Become: &yes, BecomeMethod: "doas"}, &config.Play{BecomeMethod: "su"}, HostBecome{Method: "sudo"}, Identity{"doas", "root"}},
		{"a method alone does not become", &config.Task{BecomeMethod: "su"}, &config.Play{BecomeMethod: "su"}, HostBecome{Method: "su"}, Login},
		{"the play's method for its own", nil, &config.Play{Become: &yes, BecomeMethod: "su"}, HostBecome{}, Identity{"su", "root"}},
		{"the play's own (facts, vars)", nil, &config.Play{Become: &yes, BecomeUser: "app"}, HostBecome{}, app},
		{"the play's own, from the inventory", nil, &config.Play{}, HostBecome{Become: &yes, User: "db"}, Identity{"sudo", "db"}},
	}
	for _, tt := range tests {
		if got := EffectiveIdentity(tt.task, tt.play, tt.inv); got != tt.want {
			t.Errorf("%s: got %v, want %v", tt.name, got, tt.want)
		}
	}
}

// identityRunbook has tasks and handlers with and without become; each command's argv[0]
// names it, so the fake host's record says which identity ran what.
const identityRunbook = `
play "p1" {
  hosts = "kvm"
  task "plain" {
    command {
      argv = ["plain"]
    }
  }
  task "become" {
    become = true
    command {
      argv = ["become"]
    }
  }
  task "app" {
    become      = true
    become_user = "app"
    command {
      argv = ["app"]
    }
  }
  task "user only" {
    become_user = "app"
    command {
      argv = ["useronly"]
    }
  }
  task "off" {
    become = false
    command {
      argv = ["off"]
    }
  }
  task "never" {
    when        = false
    become      = true
    become_user = "never"
    command {
      argv = ["never"]
    }
  }
}

play "p2" {
  hosts  = "kvm"
  become = true
  task "inherit" {
    notify = ["h plain", "h off", "h app"]
    command {
      argv = ["inherit"]
    }
  }
  task "off" {
    become = false
    command {
      argv = ["off2"]
    }
  }
  handler "h plain" {
    command {
      argv = ["h-plain"]
    }
  }
  handler "h off" {
    become = false
    command {
      argv = ["h-off"]
    }
  }
  handler "h app" {
    become_user = "app"
    command {
      argv = ["h-app"]
    }
  }
}

play "p3" {
  hosts       = "kvm"
  become      = false
  become_user = "ops"
  task "p3" {
    command {
      argv = ["p3"]
    }
  }
  task "p3 on" {
    become = true
    command {
      argv = ["p3-on"]
    }
  }
}
`

// TestIdentities: every task and handler runs as its own effective identity (task over play
// over inventory), whatever identity ran before it on the host; each identity's helper is
// started once, the first time a task that runs needs it, on the host's one connection.
func TestIdentities(t *testing.T) {
	const (
		login = "the login user"
		root  = "root (sudo)"
		app   = "app (sudo)"
		ops   = "ops (sudo)"
	)
	tests := []struct {
		name   string
		vars   map[string]any
		ran    []string // "argv[0] as identity", in order
		starts []string // identities whose helper started, in order
	}{
		{
			name: "no inventory become",
			ran: []string{"plain as " + login, "become as " + root, "app as " + app, "useronly as " + login, "off as " + login,
				"inherit as " + root, "off2 as " + login, "h-plain as " + root, "h-off as " + login, "h-app as " + app,
				"p3 as " + login, "p3-on as " + ops},
			starts: []string{login, root, app, ops},
		},
		{
			name: "inventory become, user and method",
			vars: map[string]any{"ansible_become": "yes", "ansible_become_user": "admin", "ansible_become_method": "doas"},
			ran: []string{"plain as admin (doas)", "become as admin (doas)", "app as app (doas)", "useronly as app (doas)", "off as " + login,
				"inherit as admin (doas)", "off2 as " + login, "h-plain as admin (doas)", "h-off as " + login, "h-app as app (doas)",
				"p3 as " + login, "p3-on as ops (doas)"},
			starts: []string{"admin (doas)", "app (doas)", login, "ops (doas)"},
		},
		{
			name: "inventory become off, another default user",
			vars: map[string]any{"ansible_become": false, "ansible_become_user": "admin"},
			ran: []string{"plain as " + login, "become as admin (sudo)", "app as " + app, "useronly as " + login, "off as " + login,
				"inherit as admin (sudo)", "off2 as " + login, "h-plain as admin (sudo)", "h-off as " + login, "h-app as " + app,
				"p3 as " + login, "p3-on as " + ops},
			starts: []string{login, "admin (sudo)", app, ops},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := newLab(t, identityRunbook, "a", "b")
			for _, name := range []string{"a", "b"} {
				h, _ := l.inv.Host(name)
				for k, v := range tt.vars {
					h.Vars[k] = v
				}
			}
			recap, rec := l.run(false, plan.Options{})
			if recap.ExitCode() != ExitOK {
				t.Fatalf("exit %d: %v", recap.ExitCode(), rec.lines())
			}
			for _, name := range []string{"a", "b"} {
				fh := l.conn.hosts[name]
				if got, want := strings.Join(fh.ran, "\n"), strings.Join(tt.ran, "\n"); got != want {
					t.Errorf("%s ran:\n  %s\nwant:\n  %s", name, strings.ReplaceAll(got, "\n", "\n  "), strings.ReplaceAll(want, "\n", "\n  "))
				}
				var starts []string
				for _, id := range fh.starts {
					starts = append(starts, id.String())
				}
				if got, want := strings.Join(starts, ", "), strings.Join(tt.starts, ", "); got != want {
					t.Errorf("%s started helpers for %s, want %s", name, got, want)
				}
				if fh.connects != 1 || fh.closes != 1 {
					t.Errorf("%s: %d connections opened and %d closed, want one for the whole run", name, fh.connects, fh.closes)
				}
			}
		})
	}
}

// TestIdentityErrors: an inventory become value that is not one fails the host before it
// connects, naming the variable; a helper that cannot start makes the host unreachable at
// the task that needs it, reported as its connect step, and nothing more runs there.
func TestIdentityErrors(t *testing.T) {
	l := newLab(t, identityRunbook, "a", "b", "c")
	ha, _ := l.inv.Host("a")
	ha.Vars["ansible_become"] = "maybe"
	l.conn.hosts["b"].startFails = map[string]bool{"app (sudo)": true}
	recap, rec := l.run(false, plan.Options{})
	eq(t, rec.lines(), []string{
		"a become failed",
		"b plain changed", "b become changed", "b connect unreachable",
		"c plain changed", "c become changed", "c app changed", "c user only changed", "c off changed", "c never skipped",
		"c inherit changed", "c off changed", "c h plain changed", "c h off changed", "c h app changed",
		"c p3 changed", "c p3 on changed",
	})
	for _, r := range rec.results {
		switch r.Host {
		case "a":
			if !strings.Contains(r.Msg, `ansible_become="maybe" is not a boolean`) {
				t.Errorf("a: %q", r.Msg)
			}
		case "b":
			if r.Task == "connect" && !strings.Contains(r.Msg, "become password rejected by sudo (for user app)") {
				t.Errorf("b: %q", r.Msg)
			}
		}
	}
	if recap.Hosts["a"].Failed != 1 || recap.Hosts["b"].Unreachable != 1 {
		t.Errorf("a %+v, b %+v", recap.Hosts["a"], recap.Hosts["b"])
	}
	if fa := l.conn.hosts["a"]; fa.connects != 0 {
		t.Errorf("a was connected to %d times", fa.connects)
	}
	if fb := l.conn.hosts["b"]; strings.Join(fb.ran, ",") != "plain as the login user,become as root (sudo)" || fb.closes != 1 {
		t.Errorf("b ran %q, closed %d times", fb.ran, fb.closes)
	}
}

// TestFactsIdentity: facts are gathered once per host by a helper that runs already (the
// task's own identity when it is one, else the play's, else the first started), else by the
// play's identity; a task's own identity never starts only for facts, so a become task whose
// when is false starts no helper, even where its helper could not start.
func TestFactsIdentity(t *testing.T) {
	tests := []struct {
		name, runbook string
		startFails    string   // an identity whose helper cannot start
		ran           string   // what ran, in order
		starts        string   // the helpers started, in order
		lines         []string // the results, when they matter
	}{
		{name: "play vars", runbook: `
play "p" {
  hosts  = "kvm"
  become = true
  vars   = { os = facts.os.id }
  task "t" {
    become = false
    command {
      argv = ["t"]
    }
  }
}`, ran: "facts as root (sudo),t as the login user", starts: "root (sudo),the login user"},
		{name: "a task's when, no helper yet: the play's identity", runbook: `
play "p" {
  hosts = "kvm"
  task "t" {
    become = true
    when   = facts.os.id == "debian"
    command {
      argv = ["t"]
    }
  }
}`, ran: "facts as the login user,t as root (sudo)", starts: "the login user,root (sudo)"},
		{name: "a skipped become task starts no helper, even one that cannot start", runbook: `
play "p" {
  hosts = "kvm"
  task "rhel only" {
    become = true
    when   = facts.os.id == "rhel"
    command {
      argv = ["rhel"]
    }
  }
  task "after" {
    command {
      argv = ["after"]
    }
  }
}`, startFails: "root (sudo)", ran: "facts as the login user,after as the login user", starts: "the login user",
			lines: []string{"a after changed", "a rhel only skipped"}},
		{name: "a running helper gathers them", runbook: `
play "p" {
  hosts = "kvm"
  task "first" {
    become = true
    command {
      argv = ["first"]
    }
  }
  task "skipped" {
    become = false
    when   = facts.os.id == "rhel"
    command {
      argv = ["skipped"]
    }
  }
}`, ran: "first as root (sudo),facts as root (sudo)", starts: "root (sudo)"},
		{name: "the task's own when it runs", runbook: `
play "p" {
  hosts = "kvm"
  task "first" {
    command {
      argv = ["first"]
    }
  }
  task "second" {
    become = true
    command {
      argv = ["second"]
    }
  }
  task "third" {
    become = true
    when   = facts.os.id == "debian"
    command {
      argv = ["third"]
    }
  }
}`, ran: "first as the login user,second as root (sudo),facts as root (sudo),third as root (sudo)", starts: "the login user,root (sudo)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := newLab(t, tt.runbook, "a")
			fh := l.conn.hosts["a"]
			if tt.startFails != "" {
				fh.startFails = map[string]bool{tt.startFails: true}
			}
			_, rec := l.run(false, plan.Options{})
			if got := strings.Join(fh.ran, ","); got != tt.ran {
				t.Errorf("ran %q, want %q", got, tt.ran)
			}
			var starts []string
			for _, id := range fh.starts {
				starts = append(starts, id.String())
			}
			if got := strings.Join(starts, ","); got != tt.starts {
				t.Errorf("started helpers for %q, want %q", got, tt.starts)
			}
			if tt.lines != nil {
				eq(t, rec.lines(), tt.lines)
			}
		})
	}
}

// TestCancelWhileHelperStarts: a run cancelled while a helper starts (or the connection
// opens) reports the step as interrupted (failed), not as an unreachable host.
func TestCancelWhileHelperStarts(t *testing.T) {
	for _, tt := range []struct{ name, runbook, task string }{
		{"the connection", `
play "p" {
  hosts = "kvm"
  task "t" {
    command {
      argv = ["t"]
    }
  }
}`, "connect"},
		{"a task's helper", `
play "p" {
  hosts = "kvm"
  task "t" {
    become = true
    command {
      argv = ["t"]
    }
  }
}`, "t"},
		{"facts for the play's vars", `
play "p" {
  hosts  = "kvm"
  become = true
  vars   = { os = facts.os.id }
  task "t" {
    command {
      argv = ["t"]
    }
  }
}`, "gather facts"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			l := newLab(t, tt.runbook, "a")
			fh := l.conn.hosts["a"]
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			blocked := make(chan struct{})
			if tt.task == "connect" {
				l.conn.blocks = map[string]chan struct{}{"a": blocked}
			} else {
				fh.startBlocks = map[string]chan struct{}{"root (sudo)": blocked}
			}
			go func() {
				<-blocked
				cancel()
			}()
			pl, diags := plan.Build(l.rb, l.inv, plan.Options{})
			if diags.HasErrors() {
				t.Fatal(diags)
			}
			rec := &recorder{}
			recap := (&Engine{Runbook: l.rb, Connector: l.conn, Observer: rec, Options: Options{Forks: 4}}).Run(ctx, pl)
			eq(t, rec.lines(), []string{"a " + tt.task + " failed"})
			for _, r := range rec.results {
				if !strings.HasPrefix(r.Msg, "interrupted: ") || strings.Contains(r.Msg, "a: ") {
					t.Errorf("%s: message %q, want one that starts with interrupted: and does not repeat the host", r.Task, r.Msg)
				}
			}
			if !recap.Interrupted || recap.Hosts["a"].Unreachable != 0 {
				t.Errorf("interrupted %v, a %+v", recap.Interrupted, recap.Hosts["a"])
			}
		})
	}
}

// TestConnectionClosedWhenDone: a host's connection is closed as soon as it has no more
// plays to run (or failed), while other hosts still run theirs; every connection is closed
// by the time Run returns.
func TestConnectionClosedWhenDone(t *testing.T) {
	l := newLab(t, `
play "all" {
  hosts = "kvm"
  task "t" {
    command {
      argv = [host.name == "c" ? "false" : "true"]
    }
  }
}
play "b and c" {
  hosts = "b:c"
  task "check" {
    command {
      argv = ["check"]
    }
  }
}
play "later" {
  hosts = "b"
  task "later" {
    command {
      argv = ["true"]
    }
  }
}
`, "a", "b", "c")
	closed := func(name string) bool {
		h := l.conn.hosts[name]
		h.mu.Lock()
		defer h.mu.Unlock()
		return h.closes > 0
	}
	var aClosed, cClosed, bOpen bool
	l.conn.hosts["b"].hooks = map[string]func(){"check": func() {
		// the closes run on their own: give them a moment
		for end := time.Now().Add(5 * time.Second); time.Now().Before(end) && !(closed("a") && closed("c")); {
			time.Sleep(5 * time.Millisecond)
		}
		aClosed, cClosed, bOpen = closed("a"), closed("c"), !closed("b")
	}}
	pl, diags := plan.Build(l.rb, l.inv, plan.Options{})
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	(&Engine{Runbook: l.rb, Connector: l.conn, Observer: &recorder{}, Options: Options{Forks: 4}}).Run(context.Background(), pl)
	if !aClosed {
		t.Error("a, done after the first play, was still connected while b ran its second")
	}
	if !cClosed {
		t.Error("c, failed in the first play, was still connected while b ran its second")
	}
	if !bOpen {
		t.Error("b's connection was closed before its last play")
	}
	for _, name := range []string{"a", "b", "c"} {
		if h := l.conn.hosts[name]; h.connects != 1 || h.closes != 1 {
			t.Errorf("%s: %d connections opened, %d closed; want 1 and 1", name, h.connects, h.closes)
		}
	}
}

// TestHostBecomeHidesPassword: however a HostBecome is formatted, its password does not
// show; that one is set does.
func TestHostBecomeHidesPassword(t *testing.T) {
	yes := true
	hb := HostBecome{Become: &yes, User: "app", Method: "su", Password: "Pw-s3cr3t-9"}
	for _, format := range []string{"%v", "%+v", "%#v", "%s", "%q"} {
		got := fmt.Sprintf(format, hb)
		if strings.Contains(got, "s3cr3t") {
			t.Errorf("%s shows the password: %s", format, got)
		}
		if !strings.Contains(got, "app") || !strings.Contains(got, "sensitive") {
			t.Errorf("%s: %s, want the user and that a password is set", format, got)
		}
	}
	if got := fmt.Sprintf("%v", &hb); strings.Contains(got, "s3cr3t") {
		t.Errorf("a pointer shows the password: %s", got)
	}
	if got := fmt.Sprint(HostBecome{}); strings.Contains(got, "sensitive") {
		t.Errorf("no password set: %s", got)
	}
}
