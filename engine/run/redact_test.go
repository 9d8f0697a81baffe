package run

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/runbook/runbook/engine/plan"
	"github.com/runbook/runbook/modules"
)

// wordsExec answers every command with its argv split into words, one per line, as a
// command that prints its arguments would: the host's output holds a sensitive variable's
// value alone although the task only sent it inside a longer string.
type wordsExec struct{}

func (wordsExec) Run(_ context.Context, c Call, _ bool) (*modules.Result, error) {
	args := c.Args
	var words []string
	for _, v := range args.GetAttr("argv").AsValueSlice() {
		words = append(words, strings.Fields(v.AsString())...)
	}
	out := strings.Join(words, "\n")
	return &modules.Result{Status: modules.StatusChanged, Msg: "printed " + out, Data: wireData("command", map[string]any{"stdout": out})},
		&modules.Failure{Msg: "exited with 1", Stderr: out}
}

func (wordsExec) Facts(context.Context) (map[string]any, error) { return map[string]any{}, nil }

type wordsConnector struct{}

func (wordsConnector) Connect(context.Context, Endpoint) (Connection, error) {
	return single{wordsExec{}}, nil
}

func TestSensitiveValuesInsideLongerStrings(t *testing.T) {
	src := `
variable "token" {
  default   = "hunter2-secret"
  sensitive = true
}
locals {
  url = "https://admin:${var.token}@db.example"
}
play "p" {
  hosts = "kvm"
  task "echo" {
    command {
      argv = ["echo", "token=${var.token} url ${local.url}"]
    }
  }
}
`
	l := newLab(t, src, "a")
	pl, diags := plan.Build(l.rb, l.inv, plan.Options{})
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	rec := &recorder{}
	(&Engine{Runbook: l.rb, Connector: wordsConnector{}, Observer: rec, Options: Options{Forks: 1}}).Run(context.Background(), pl)
	if len(rec.results) == 0 {
		t.Fatal("no results")
	}
	for _, r := range rec.results {
		shown := r.Msg + " " + r.Data.GetAttr("stdout").AsString()
		if strings.Contains(shown, "hunter2") || !strings.Contains(shown, modules.Redacted) {
			t.Errorf("%s: %q", r.Task, shown)
		}
	}
}

// secretsExec records the values the engine hands the executor for the host to redact.
type secretsExec struct{ got *[][]string }

func (x secretsExec) Run(ctx context.Context, _ Call, _ bool) (*modules.Result, error) {
	*x.got = append(*x.got, Secrets(ctx))
	return &modules.Result{Status: modules.StatusChanged}, nil
}
func (secretsExec) Facts(context.Context) (map[string]any, error) { return map[string]any{}, nil }

type secretsConnector struct{ got *[][]string }

func (c secretsConnector) Connect(context.Context, Endpoint) (Connection, error) {
	return single{secretsExec(c)}, nil
}

// TestSecretsSentToTheHost: the host is told the sensitive values that a task's arguments
// hold inside longer strings, so that it redacts them before it cuts its output; it is
// never told one that the task does not send it anyway.
func TestSecretsSentToTheHost(t *testing.T) {
	src := `
variable "token" {
  default   = "hunter2-secret"
  sensitive = true
}
variable "other" {
  default   = "other-host-secret"
  sensitive = true
}
play "p" {
  hosts = "kvm"
  task "uses token" {
    command {
      argv = ["echo", "token=${var.token}"]
    }
  }
  task "uses none" {
    command {
      argv = ["true"]
    }
  }
}
`
	l := newLab(t, src, "a")
	pl, diags := plan.Build(l.rb, l.inv, plan.Options{})
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	var got [][]string
	(&Engine{Runbook: l.rb, Connector: secretsConnector{&got}, Observer: &recorder{}, Options: Options{Forks: 1}}).Run(context.Background(), pl)
	if len(got) != 2 || strings.Join(got[0], ",") != "hunter2-secret" || len(got[1]) != 0 {
		t.Errorf("values sent to the host: %q; want [hunter2-secret] then none", got)
	}
}

// callsExec records the calls the engine makes; it refuses marked arguments, as the wire
// does.
type callsExec struct{ got *[]Call }

func (x callsExec) Run(_ context.Context, c Call, _ bool) (*modules.Result, error) {
	if c.Args.ContainsMarked() {
		return nil, errors.New("marked arguments reached the executor")
	}
	*x.got = append(*x.got, c)
	return &modules.Result{Status: modules.StatusOK}, nil
}

func (callsExec) Facts(context.Context) (map[string]any, error) { return map[string]any{}, nil }

type callsConnector struct{ got *[]Call }

func (c callsConnector) Connect(context.Context, Endpoint) (Connection, error) {
	return single{callsExec(c)}, nil
}

// TestRenderedSecretsAreNamed: content a template renders from a sensitive variable is
// named sensitive although no argument of the task held the secret itself; an argument
// that did stays named.
func TestRenderedSecretsAreNamed(t *testing.T) {
	src := `
variable "token" {
  default   = "hunter2-secret"
  sensitive = true
}
play "p" {
  hosts = "kvm"
  task "rendered" {
    template {
      content = "token = $${upper(var.token)}\n"
      dest    = "/etc/app.conf"
    }
  }
  task "plain" {
    template {
      content = "nothing secret\n"
      dest    = "/etc/plain.conf"
    }
  }
  task "direct" {
    copy {
      content = var.token
      dest    = "/etc/token"
    }
  }
}
`
	l := newLab(t, src, "a")
	pl, diags := plan.Build(l.rb, l.inv, plan.Options{})
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	var calls []Call
	rec := &recorder{}
	(&Engine{Runbook: l.rb, Connector: callsConnector{&calls}, Observer: rec, Options: Options{Forks: 1}}).Run(context.Background(), pl)
	for _, r := range rec.results {
		if r.Status != OK {
			t.Errorf("%s: %s %s", r.Task, r.Status, r.Msg)
		}
	}
	want := map[string][]string{"/etc/app.conf": {"content"}, "/etc/plain.conf": nil, "/etc/token": {"content"}}
	if len(calls) != len(want) {
		t.Fatalf("%d calls, want %d", len(calls), len(want))
	}
	for _, c := range calls {
		dest := c.Args.GetAttr("dest").AsString()
		if !slices.Equal(c.Sensitive, want[dest]) {
			t.Errorf("%s: sensitive %q, want %q", dest, c.Sensitive, want[dest])
		}
	}
}

// TestWarningsRedacted: an assert's warning (warn_only) never shows a sensitive value, and
// a sensitive task's warnings are hidden like its message.
func TestWarningsRedacted(t *testing.T) {
	src := `
variable "token" {
  default   = "hunter2-secret"
  sensitive = true
}
play "p" {
  hosts = "kvm"
  task "warn with a secret" {
    assert {
      that      = [false]
      fail_msg  = "token ${var.token} is old"
      warn_only = true
    }
  }
  task "sensitive task" {
    sensitive = true
    assert {
      that      = [false]
      fail_msg  = "private detail of ${host.name}"
      warn_only = true
    }
  }
}
`
	l := newLab(t, src, "a")
	pl, diags := plan.Build(l.rb, l.inv, plan.Options{})
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	rec := &recorder{}
	(&Engine{Runbook: l.rb, Connector: wordsConnector{}, Observer: rec, Options: Options{Forks: 1}}).Run(context.Background(), pl)
	// A message built from a sensitive value is sensitive as a whole.
	want := map[string]string{"warn with a secret": modules.Redacted, "sensitive task": modules.Redacted}
	if len(rec.results) != 2 {
		t.Fatalf("results: %+v", rec.results)
	}
	for _, r := range rec.results {
		if r.Status != OK || len(r.Warnings) != 1 || r.Warnings[0] != want[r.Task] {
			t.Errorf("%s: %s, warnings %q; want ok with %q", r.Task, r.Status, r.Warnings, want[r.Task])
		}
	}
}
