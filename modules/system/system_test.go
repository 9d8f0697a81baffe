package system

import (
	"context"
	"testing"

	"github.com/runbook/runbook/modules"
	"github.com/runbook/runbook/modules/host"
)

// TestRealMachineFindsSbinPrograms: with a PATH that lacks the system directories (as a
// non-login SSH session can have), a program that lookPath finds in its fallbacks also runs.
func TestRealMachineFindsSbinPrograms(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	m := realMachine(&modules.Env{})
	if m.lookPath("true") == "" {
		t.Skip("no true in /usr/bin or /bin")
	}
	res, err := m.run.Run(context.Background(), host.Cmd{Argv: []string{"true"}})
	if rc := res.RC; err != nil || rc != 0 {
		t.Fatalf("run true with PATH lacking its directory: rc %d, %v", res.RC, err)
	}
	if p := m.lookPath("no-such-program-here"); p != "" {
		t.Errorf("lookPath found %q", p)
	}
}
