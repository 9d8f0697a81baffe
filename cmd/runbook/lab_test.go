package main

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rogpeppe/go-internal/testscript"

	"github.com/runbook/runbook/engine/helperbin"
	"github.com/runbook/runbook/testenv"
)

// buildHelper compiles the static helper for this machine's architecture into a directory
// that RUNBOOK_HELPER_DIR then names: tests do not depend on `make build`.
func buildHelper(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	out := filepath.Join(dir, helperbin.Name("amd64"))
	cmd := exec.Command("go", "build", "-trimpath", "-ldflags", "-s -w", "-o", out, "../runbook-helper")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH=amd64")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build helper: %v\n%s", err, b)
	}
	return dir
}

// TestLabScripts runs the CLI end to end against real lab hosts (OpenSSH in namespaces):
// exec, check and run, with unreachable hosts, host-key mismatches and failing tasks. It
// needs root; like testlab.Start it skips without it (and fails under CI=true).
func TestLabScripts(t *testing.T) {
	if testing.Short() {
		t.Skip("lab tests are skipped in -short mode")
	}
	if err := testenv.CheckTier(testenv.TierNS); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("CI=true and the lab cannot start: %v", err)
		}
		t.Skipf("skipping: %v", err)
	}
	helpers := buildHelper(t)
	testscript.Run(t, testscript.Params{
		Dir: "testdata/lab",
		// Every script gets a lab of its own (three ns-tier hosts start in about 0.1 s), so
		// scripts that break hosts run in parallel with the others safely.
		Setup: func(env *testscript.Env) error {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			lab, err := testenv.Up(ctx, testenv.Options{Tier: testenv.TierNS, Hosts: 3, Dir: filepath.Join(env.WorkDir, ".lab")})
			if err != nil {
				return err
			}
			env.Defer(func() {
				ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
				defer cancel()
				if err := lab.Down(ctx); err != nil {
					env.T().Log("lab down:", err)
				}
			})
			env.Values["lab"] = lab
			env.Setenv("NO_COLOR", "1")
			env.Setenv("INV", lab.Inventory)
			// The repository, for scripts that run a shipped runbook ($REPO/runbooks/...).
			env.Setenv("REPO", repoRoot())
			env.Setenv("LABDIR", lab.Dir)
			env.Setenv("KNOWN_HOSTS", lab.KnownHosts)
			// The lab key's public half, for scripts that let another account log in.
			pub, err := os.ReadFile(lab.Key + ".pub")
			if err != nil {
				return err
			}
			env.Setenv("LAB_PUBKEY", strings.TrimSpace(string(pub)))
			env.Setenv(helperbin.EnvDir, helpers)
			// A home of the script's own, so no ~/.ssh of the machine's takes part.
			env.Setenv("HOME", env.WorkDir)
			env.Setenv("SSH_AUTH_SOCK", "")
			return nil
		},
		Cmds: map[string]func(ts *testscript.TestScript, neg bool, args []string){
			// lab break HOST stop|drop|slow / lab heal HOST / lab exec HOST CMD... /
			// lab put HOST FILE PATH MODE (the script's FILE to PATH on the host, as root) /
			// lab hold HOST [N] (one unauthenticated connection held until sshd drops N others)
			"lab": func(ts *testscript.TestScript, neg bool, args []string) {
				lab := ts.Value("lab").(*testenv.Lab)
				if len(args) < 2 {
					ts.Fatalf("usage: lab break|heal|exec HOST ...")
				}
				ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
				defer cancel()
				var err error
				switch args[0] {
				case "break":
					err = lab.Break(args[1], testenv.BreakMode(args[2]))
				case "heal":
					err = lab.Heal(args[1])
				case "exec":
					var out []byte
					out, err = lab.Exec(ctx, args[1], args[2:]...)
					ts.Stdout().Write(out)
				case "hold":
					drops := 1
					if len(args) > 2 {
						if drops, err = strconv.Atoi(args[2]); err != nil || drops < 1 {
							ts.Fatalf("usage: lab hold HOST [DROPS]")
						}
					}
					err = labHold(ts, lab, args[1], drops)
				case "put":
					if len(args) != 5 {
						ts.Fatalf("usage: lab put HOST FILE PATH MODE")
					}
					err = labPut(ctx, lab, args[1], ts.MkAbs(args[2]), args[3], args[4])
				default:
					ts.Fatalf("unknown lab command %q", args[0])
				}
				if err != nil && !neg {
					ts.Fatalf("lab %s: %v", strings.Join(args, " "), err)
				}
				if err == nil && neg {
					ts.Fatalf("lab %s: unexpected success", strings.Join(args, " "))
				}
			},
		},
		RequireExplicitExec: true,
	})
}

// labPut copies a local file to path on a lab host with mode, for scripts that need a
// program of their own there (the hosts have their own /tmp, which the script cannot see).
func labPut(ctx context.Context, lab *testenv.Lab, host, file, path, mode string) error {
	f, err := os.Open(file)
	if err != nil {
		return err
	}
	defer f.Close()
	cmd, err := lab.Command(ctx, host, "sh", "-c", `cat > "$1" && chmod "$2" "$1"`, "_", path, mode)
	if err != nil {
		return err
	}
	cmd.Stdin = f
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("put %s on %s: %w: %s", path, host, err, out)
	}
	return nil
}

// labHold opens a TCP connection to host's sshd (through its forwarder) and holds it
// unauthenticated, one of sshd's MaxStartups, until the host's sshd log shows that drops
// more connections were dropped past MaxStartups (or 30 s passed, or the script ended; the
// log must be at LogLevel VERBOSE, which logs every drop). It returns once sshd has sent its
// banner (from then on the connection counts) and the host's sshd log has been emptied (so
// that the script counts only the drops that follow). With `MaxStartups 1` on the host, the next
// connections are dropped until the hold lets go: a deterministic "sshd is busy" for
// connect retries.
func labHold(ts *testscript.TestScript, lab *testenv.Lab, host string, drops int) error {
	port := 0
	for _, h := range lab.Hosts {
		if h.Name == host {
			port = h.Port
		}
	}
	if port == 0 {
		return fmt.Errorf("no lab host %q", host)
	}
	count := func() int {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		out, _ := lab.Exec(ctx, host, "grep", "-c", "past MaxStartups", "/var/log/sshd.log")
		n, err := strconv.Atoi(strings.TrimSpace(string(out)))
		if err != nil {
			return -1
		}
		return n
	}
	// sshd may still count a connection that just ended (the lab's own check that it is up,
	// say) and drop this one: try again for a while. The drops counted start after.
	var c net.Conn
	deadline := time.Now().Add(10 * time.Second)
	for {
		var err error
		c, err = net.DialTimeout("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), 10*time.Second)
		if err != nil {
			return err
		}
		_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
		banner, err := bufio.NewReader(c).ReadString('\n')
		if err == nil && strings.HasPrefix(banner, "SSH-") {
			break
		}
		c.Close()
		if time.Now().After(deadline) {
			return fmt.Errorf("no banner from %s: %q %v", host, banner, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	// The log starts afresh, so that the script counts only the drops that follow.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	out, err := lab.Exec(ctx, host, "sh", "-c", ": > /var/log/sshd.log")
	cancel()
	if err != nil {
		c.Close()
		return fmt.Errorf("empty the sshd log of %s: %v: %s", host, err, out)
	}
	done := make(chan struct{})
	ts.Defer(func() { close(done) })
	go func() {
		defer c.Close()
		deadline := time.Now().Add(30 * time.Second)
		for time.Now().Before(deadline) {
			select {
			case <-done:
				return
			case <-time.After(20 * time.Millisecond):
			}
			if count() >= drops {
				return
			}
		}
	}()
	return nil
}
