package remote

import (
	"fmt"
	"strings"
	"testing"

	"github.com/runbook/runbook/engine/run"
	"github.com/runbook/runbook/engine/transport"
)

// TestConnectionIdentity: the helper an identity runs on. A root login that would become
// root needs no become and shares the login's helper; any other become is its own.
func TestConnectionIdentity(t *testing.T) {
	tests := []struct {
		login string
		id    run.Identity
		want  run.Identity
	}{
		{"op", run.Login, run.Login},
		{"op", run.Identity{Method: "sudo", User: "root"}, run.Identity{Method: "sudo", User: "root"}},
		{"op", run.Identity{Method: "sudo"}, run.Identity{Method: "sudo", User: "root"}},
		{"op", run.Identity{Method: "sudo", User: "op"}, run.Identity{Method: "sudo", User: "op"}},
		{"op", run.Identity{Method: "doas", User: "app"}, run.Identity{Method: "doas", User: "app"}},
		{"op", run.Identity{User: "app"}, run.Login},
		{"root", run.Identity{Method: "sudo", User: "root"}, run.Login},
		{"root", run.Identity{Method: "sudo"}, run.Login},
		{"root", run.Identity{Method: "su", User: "root"}, run.Login},
		{"root", run.Identity{Method: "sudo", User: "app"}, run.Identity{Method: "sudo", User: "app"}},
	}
	for _, tt := range tests {
		x := &Connection{t: transport.Target{Name: "web1", User: tt.login}}
		if got := x.identity(tt.id); got != tt.want {
			t.Errorf("login %s, %+v: got %+v, want %+v", tt.login, tt.id, got, tt.want)
		}
	}
}

// TestConnectionHidesPassword: printing a connection never shows its become password.
func TestConnectionHidesPassword(t *testing.T) {
	x := &Connection{t: transport.Target{Name: "web1", User: "op", Address: "10.0.0.5"}, password: "hunter2-secret"}
	for _, f := range []string{"%v", "%+v", "%#v", "%s"} {
		if s := fmt.Sprintf(f, x); strings.Contains(s, "hunter2") || !strings.Contains(s, "web1") {
			t.Errorf("%s: %q", f, s)
		}
	}
}
