package remote_test

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/runbook/runbook/engine/helperbin"
	"github.com/runbook/runbook/engine/remote"
	"github.com/runbook/runbook/engine/run"
	"github.com/runbook/runbook/engine/transport"
	"github.com/runbook/runbook/internal/labtest"
	"github.com/runbook/runbook/inventory"
	"github.com/runbook/runbook/testenv"
)

// stallShell is the login shell of the lab's user "slow": it runs commands with sh, except
// that it stalls (as on a hung NFS home) the step of a start that /tmp/stall names: "push"
// (the directory's preparation before an upload), "hash" (the start script's hash of the
// helper) or "probe" (the separate probe; the start script then finds nothing). The stalled
// command's pid goes to /tmp/stall.pids, for the test to end it.
const stallShell = `#!/bin/sh
stall() { echo $$ >> /tmp/stall.pids; exec sleep 60; }
w=$(cat /tmp/stall 2>/dev/null)
case "$w:$2" in
push:*'mkdir -p'*) stall;;
hash:*'openssl dgst'*) case "$2" in *'mkdir -p'*) ;; *) stall;; esac;;
probe:*HOSTTYPE*) exit 97;;
probe:*'"$(uname -m)"'*) stall;;
esac
exec /bin/sh "$@"
`

// TestLabStepBounds: every step of a start waits on the host for a bounded time, even when
// the host's context has no deadline (--host-timeout defaults to none). A host whose home
// hangs fails with an error that names the step, within its bound.
func TestLabStepBounds(t *testing.T) {
	if testing.Short() {
		t.Skip("lab tests are skipped in -short mode")
	}
	lab := testenv.Start(t, testenv.Options{Tier: testenv.TierNS, Hosts: 1})
	t.Setenv(helperbin.EnvDir, labtest.Helpers(t))
	ctx := context.Background()
	host := lab.Hosts[0].Name
	pub, err := os.ReadFile(lab.Key + ".pub")
	if err != nil {
		t.Fatal(err)
	}
	setup := `cat > /tmp/stall-shell <<'EOF'
` + stallShell + `EOF
chmod 755 /tmp/stall-shell && useradd -m -d /tmp/slow -s /tmp/stall-shell slow && install -d -m 700 -o slow /tmp/slow/.ssh && echo "$1" > /tmp/slow/.ssh/authorized_keys && chown slow /tmp/slow/.ssh/authorized_keys`
	if out, err := lab.Exec(ctx, host, "sh", "-c", setup, "_", strings.TrimSpace(string(pub))); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	t.Cleanup(func() {
		_, _ = lab.Exec(context.Background(), host, "sh", "-c", `[ -f /tmp/stall.pids ] && kill $(cat /tmp/stall.pids) 2>/dev/null; true`)
	})
	inv, diags := inventory.Load(ctx, lab.Inventory)
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	h, _ := inv.Host(host)
	h.Vars["ansible_user"] = "slow"

	const bound = 1500 * time.Millisecond
	tests := []struct {
		stall string
		want  string
	}{
		{"push", "push helper to " + host + ": not stored in /tmp/slow/.cache/runbook/helper within 1.5s"},
		{"", ""}, // installs the helper, for the hash to stall on
		{"hash", "wait for the helper's hello: context deadline exceeded"},
		{"probe", "probe " + host + ": no answer within 1.5s"},
	}
	for _, tt := range tests {
		if _, err := lab.Exec(ctx, host, "sh", "-c", `printf %s "$1" > /tmp/stall`, "_", tt.stall); err != nil {
			t.Fatal(err)
		}
		c := &remote.Connector{Dialer: &transport.Dialer{SSHConfig: lab.SSHConfig}, SSHConfig: lab.SSHConfig,
			ProbeTimeout: bound, PushTimeout: bound, StartTimeout: bound}
		start := time.Now()
		x, err := c.Connect(ctx, h)
		if err != nil {
			t.Fatalf("stall %s: connect: %v", tt.stall, err)
		}
		_, err = x.Executor(ctx, run.Login)
		took := time.Since(start)
		x.Close()
		if tt.want == "" {
			if err != nil {
				t.Fatalf("no stall: %v", err)
			}
			continue
		}
		if err == nil {
			t.Errorf("stall %s: started", tt.stall)
			continue
		}
		if !strings.Contains(err.Error(), tt.want) {
			t.Errorf("stall %s: %v, want %q", tt.stall, err, tt.want)
		}
		// The bound, plus the connection and the other steps; far from the stall's minute.
		if took > bound+10*time.Second {
			t.Errorf("stall %s: Connect took %s", tt.stall, took)
		}
	}
}
