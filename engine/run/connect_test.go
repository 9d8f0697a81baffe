package run

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/runbook/runbook/engine/plan"
)

// endpointConnector records the endpoints the engine connects to.
type endpointConnector struct {
	*fakeConnector
	mu  sync.Mutex
	got []Endpoint
}

func (c *endpointConnector) Connect(ctx context.Context, to Endpoint) (Connection, error) {
	c.mu.Lock()
	c.got = append(c.got, to)
	c.mu.Unlock()
	return c.fakeConnector.Connect(ctx, to)
}

// TestConnectorGetsTheResolvedEndpoint: the connector is given the host and what its
// inventory says about become, read once by the engine (the password included, for the
// helpers that become), whatever the tasks run as; printing the endpoint never shows the
// password.
func TestConnectorGetsTheResolvedEndpoint(t *testing.T) {
	const pw = "Pw-s3cr3t-9"
	yes := true
	tests := []struct {
		name string
		vars map[string]any
		want string // fmtBecome of the endpoint's become
	}{
		{"nothing set", nil, fmtBecome(HostBecome{})},
		{"password only", map[string]any{"ansible_become_password": pw}, fmtBecome(HostBecome{Password: pw})},
		{"su with its own password", map[string]any{"ansible_become": "yes", "ansible_become_method": "su", "ansible_become_user": "app", "ansible_su_pass": pw},
			fmtBecome(HostBecome{Become: &yes, User: "app", Method: "su", Password: pw})},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := newLab(t, `
play "p" {
  hosts = "web1"
  task "t" {
    command { argv = ["true"] }
  }
}
`, "web1")
			h, _ := l.inv.Host("web1")
			h.Vars = tt.vars
			c := &endpointConnector{fakeConnector: l.conn}
			pl, diags := plan.Build(l.rb, l.inv, plan.Options{})
			if diags.HasErrors() {
				t.Fatal(diags)
			}
			rec := &recorder{}
			e := &Engine{Runbook: l.rb, Connector: c, Observer: rec, Options: Options{Forks: 1}}
			if r := e.Run(context.Background(), pl); r.ExitCode() != ExitOK {
				t.Fatalf("exit %d: %v", r.ExitCode(), rec.lines())
			}
			if len(c.got) != 1 {
				t.Fatalf("%d connects, want 1", len(c.got))
			}
			to := c.got[0]
			if to.Host != h {
				t.Errorf("connected to %v, want the inventory's host %s", to.Host, h.Name)
			}
			if got := fmtBecome(to.Become); got != tt.want {
				t.Errorf("become %s, want %s", got, tt.want)
			}
			for _, format := range []string{"%v", "%+v", "%#v", "%s"} {
				if s := fmt.Sprintf(format, to); strings.Contains(s, pw) || !strings.Contains(s, "web1") {
					t.Errorf("%s: %s, want the host's name and not the password", format, s)
				}
			}
		})
	}
}
