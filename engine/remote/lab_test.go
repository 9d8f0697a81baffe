package remote_test

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/zclconf/go-cty/cty"

	"github.com/runbook/runbook/engine/helperbin"
	"github.com/runbook/runbook/engine/remote"
	"github.com/runbook/runbook/engine/run"
	"github.com/runbook/runbook/engine/transport"
	"github.com/runbook/runbook/internal/labtest"
	"github.com/runbook/runbook/internal/sh"
	"github.com/runbook/runbook/inventory"
	"github.com/runbook/runbook/testenv"
	"github.com/runbook/runbook/testenv/testlab"
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
	lab := testlab.Start(t, testenv.Options{Tier: testenv.TierNS, Hosts: 1})
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
		x, err := c.Connect(ctx, run.Endpoint{Host: h})
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

// TestLabBecomeTTY starts the real helper under su and doas (and sudo, to compare) on a
// host that has none (su asks for root's password, doas and sudo for the login user's):
// the helper is pushed over the terminal, started, and runs a module as root; a second
// start finds it in place; a wrong password is refused.
func TestLabBecomeTTY(t *testing.T) {
	if testing.Short() {
		t.Skip("lab tests are skipped in -short mode")
	}
	lab := testlab.Start(t, testenv.Options{Tier: testenv.TierNS, Hosts: 1})
	t.Setenv(helperbin.EnvDir, labtest.Helpers(t))
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	host := lab.Hosts[0].Name
	pub, err := os.ReadFile(lab.Key + ".pub")
	if err != nil {
		t.Fatal(err)
	}
	const rootPW, loginPW = "r00t 'pw' $HOME", "l0gin pw"
	setup := `set -e
useradd -m -d /tmp/rbsu -s /bin/sh rbsu
echo ` + sh.Quote("rbsu:"+loginPW) + ` | chpasswd
echo ` + sh.Quote("root:"+rootPW) + ` | chpasswd
install -d -m 700 -o rbsu /tmp/rbsu/.ssh
echo "$1" > /tmp/rbsu/.ssh/authorized_keys
chown rbsu /tmp/rbsu/.ssh/authorized_keys
printf 'permit rbsu as root\n' > /etc/doas.conf; chmod 600 /etc/doas.conf
echo 'rbsu ALL=(ALL:ALL) ALL' > /etc/sudoers.d/rbsu; chmod 440 /etc/sudoers.d/rbsu
rm -rf /var/lib/runbook
`
	if out, err := lab.Exec(ctx, host, "sh", "-c", setup, "_", strings.TrimSpace(string(pub))); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	// sudo too: its push reads the helper's length as well.
	for _, tt := range []struct{ method, password string }{{"su", rootPW}, {"doas", loginPW}, {"sudo", loginPW}} {
		t.Run(tt.method, func(t *testing.T) {
			if _, err := exec.LookPath(tt.method); err != nil {
				if os.Getenv("CI") == "true" {
					t.Fatalf("CI=true and %v (scripts/install-deps.sh installs it)", err)
				}
				t.Skipf("%s is not installed on this machine (the ns tier shares its binaries)", tt.method)
			}
			if _, err := lab.Exec(ctx, host, "rm", "-rf", "/var/lib/runbook"); err != nil {
				t.Fatal(err)
			}
			tg, err := transport.ResolveTarget(host, transport.Target{User: "rbsu"}, lab.SSHConfig)
			if err != nil {
				t.Fatal(err)
			}
			tg.BecomeMethod, tg.BecomePassword = tt.method, tt.password
			c := &remote.Connector{SSHConfig: lab.SSHConfig}
			start := func(tg transport.Target) (*remote.Executor, error) {
				conn, err := (&transport.Dialer{SSHConfig: lab.SSHConfig}).Dial(ctx, tg)
				if err != nil {
					t.Fatal(err)
				}
				x, err := c.StartOn(ctx, conn, tg)
				if err != nil {
					conn.Close()
				}
				return x, err
			}
			// The separate probe, which a start falls back on.
			conn, err := (&transport.Dialer{SSHConfig: lab.SSHConfig}).Dial(ctx, tg)
			if err != nil {
				t.Fatal(err)
			}
			arch, uid, home, err := c.ProbeOn(ctx, conn, tg.Become())
			conn.Close()
			if err != nil || arch != "amd64" || uid != 0 || home != "/root" {
				t.Errorf("probe under %s: %q %d %q %v", tt.method, arch, uid, home, err)
			}
			for i, wantPushed := range []int{1, 1} {
				began := time.Now()
				x, err := start(tg)
				if err != nil {
					t.Fatalf("start %d: %v", i+1, err)
				}
				t.Logf("start %d: %s", i+1, time.Since(began).Round(time.Millisecond))
				res, err := x.Run(ctx, run.Call{Module: "command", Args: cty.ObjectVal(map[string]cty.Value{"cmd": cty.StringVal("id -u")})}, true)
				if err != nil {
					t.Fatalf("command: %v", err)
				}
				if got := res.Data.(cty.Value).GetAttr("stdout").AsString(); strings.TrimSpace(got) != "0" {
					t.Errorf("id -u under %s: %q (%v)", tt.method, got, res.Data)
				}
				began = time.Now()
				x.Close()
				if el := time.Since(began); el > 2*time.Second {
					t.Errorf("closing the helper took %s", el)
				}
				if pushed, _ := c.Stats.Counts(); pushed != wantPushed {
					t.Errorf("start %d: %d pushes, want %d", i+1, pushed, wantPushed)
				}
			}
			// It went where root's helper goes.
			if out, err := lab.Exec(ctx, host, "sh", "-c", "stat -c %U /var/lib/runbook/helper/*"); err != nil || strings.TrimSpace(string(out)) != "root" {
				t.Errorf("root's helper: %q %v", out, err)
			}

			tg.BecomePassword = "wrong"
			x, err := start(tg)
			if err == nil {
				x.Close()
				t.Fatal("started with a wrong password")
			}
			if !errors.Is(err, transport.ErrBecomePassword) || strings.Contains(err.Error(), "wrong") {
				t.Errorf("wrong password: %v", err)
			}
		})
	}
}
