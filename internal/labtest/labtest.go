// Package labtest runs the runbook CLI against lab hosts from Go tests: it builds the
// static helper once per test binary, points the controller at it, and gives every call a
// clean home (no ~/.ssh, no agent of the machine's), so module tests go through the real
// path: SSH, the helper's hash check, the protocol, the module on the host.
package labtest

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/runbook/runbook/cmd/runbook/cli"
	"github.com/runbook/runbook/engine/helperbin"
	"github.com/runbook/runbook/testenv"
)

var (
	buildOnce sync.Once
	helperDir string
	buildErr  error
)

// Root returns the repository's root directory (where go.mod is).
func Root() string {
	dir, _ := os.Getwd()
	for d := dir; d != "/"; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			return d
		}
	}
	return dir
}

// Helpers builds the helper for linux/amd64 once per test binary and returns the
// directory that RUNBOOK_HELPER_DIR must name. The directory is one per checkout and test
// package (under the temporary directory, mode 0700), rebuilt by each run and reused by
// the next, so runs leave no directory behind them; the binary is built beside it and
// renamed into place, so a run of the same package next to this one sees a whole file.
func Helpers(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		sum := sha256.Sum256([]byte(Root() + "\x00" + filepath.Base(os.Args[0])))
		dir := filepath.Join(os.TempDir(), "runbook-labtest-helper-"+hex.EncodeToString(sum[:8]))
		if err := os.MkdirAll(dir, 0o700); err != nil {
			buildErr = err
			return
		}
		out := filepath.Join(dir, helperbin.Name("amd64"))
		tmp, err := os.CreateTemp(dir, ".build-*")
		if err != nil {
			buildErr = err
			return
		}
		tmp.Close()
		defer os.Remove(tmp.Name())
		cmd := exec.Command("go", "build", "-trimpath", "-ldflags", "-s -w", "-o", tmp.Name(), "./cmd/runbook-helper")
		cmd.Dir = Root()
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH=amd64")
		if b, err := cmd.CombinedOutput(); err != nil {
			buildErr = err
			helperDir = string(b)
			return
		}
		if err := os.Rename(tmp.Name(), out); err != nil {
			buildErr = err
			return
		}
		helperDir = dir
	})
	if buildErr != nil {
		t.Fatalf("build helper: %v\n%s", buildErr, helperDir)
	}
	return helperDir
}

// Result is one CLI run: its exit code and its stdout and stderr together.
type Result struct {
	Code int
	Out  string
}

// Matches reports whether the output matches the regular expression (multi-line mode).
func (r Result) Matches(re string) bool { return regexp.MustCompile("(?m)" + re).MatchString(r.Out) }

// Runner runs the CLI against one lab.
type Runner struct {
	t   testing.TB
	Lab *testenv.Lab
}

// New prepares the environment (helper dir, a temporary HOME, no ssh agent) for CLI runs
// against lab. It uses t.Setenv, so the test must not be parallel.
func New(t testing.TB, lab *testenv.Lab) *Runner {
	t.Helper()
	t.Setenv(helperbin.EnvDir, Helpers(t))
	t.Setenv("HOME", t.TempDir())
	t.Setenv("XDG_STATE_HOME", t.TempDir())
	t.Setenv("SSH_AUTH_SOCK", "")
	return &Runner{t: t, Lab: lab}
}

// Run runs `runbook ARGS...` in-process, without colour, and returns its exit code and output.
func (r *Runner) Run(args ...string) Result {
	r.t.Helper()
	return r.RunTee(nil, args...)
}

// RunTee is Run that also writes the standard output to tee as it comes (nil: nowhere).
func (r *Runner) RunTee(tee io.Writer, args ...string) Result {
	r.t.Helper()
	var out, errb bytes.Buffer
	var stdout io.Writer = &out
	if tee != nil {
		stdout = io.MultiWriter(&out, tee)
	}
	env := []string{"NO_COLOR=1"}
	for _, k := range []string{"HOME", "XDG_STATE_HOME", "RUNBOOK_HISTORY"} {
		if v, ok := os.LookupEnv(k); ok {
			env = append(env, k+"="+v)
		}
	}
	code := cli.Run(args, nil, stdout, &errb, env)
	return Result{Code: code, Out: out.String() + errb.String()}
}

// Module runs one module ad hoc on the hosts matching pattern: `runbook run -i INV
// PATTERN MODULE ARGS... EXTRA...`. Put flags such as --check or --diff in args after the
// key=value pairs.
func (r *Runner) Module(pattern, module string, args ...string) Result {
	r.t.Helper()
	return r.Run(append([]string{"run", "-i", r.Lab.Inventory, pattern, module}, args...)...)
}

// Timeline proves a module's idempotence on one host through the real CLI: check reports
// drift (exit 4) and changes nothing that before/after snapshots can see, apply reports
// changed, check is then in sync (exit 0), and apply again reports no change. snap, when
// not nil, describes the host's relevant state (files, unit states) as a string; it must
// be equal before and after the first check. It returns the four results.
func (r *Runner) Timeline(host, module string, args []string, snap func() string) [4]Result {
	r.t.Helper()
	var res [4]Result
	var before string
	if snap != nil {
		before = snap()
	}
	res[0] = r.Module(host, module, append(append([]string{}, args...), "--check", "--diff")...)
	if res[0].Code != 4 || !res[0].Matches(`^`+regexp.QuoteMeta(host)+` +drift +`) {
		r.t.Fatalf("check before apply: want drift and exit 4, got exit %d\n%s", res[0].Code, res[0].Out)
	}
	if snap != nil {
		if after := snap(); after != before {
			r.t.Fatalf("check mode changed the host:\nbefore:\n%s\nafter:\n%s", before, after)
		}
	}
	res[1] = r.Module(host, module, append(append([]string{}, args...), "--diff")...)
	if res[1].Code != 0 || !res[1].Matches(`^`+regexp.QuoteMeta(host)+` +changed +`) {
		r.t.Fatalf("apply: want changed and exit 0, got exit %d\n%s", res[1].Code, res[1].Out)
	}
	res[2] = r.Module(host, module, append(append([]string{}, args...), "--check")...)
	if res[2].Code != 0 || res[2].Matches(` drift `) {
		r.t.Fatalf("check after apply: want in sync and exit 0, got exit %d\n%s", res[2].Code, res[2].Out)
	}
	res[3] = r.Module(host, module, args...)
	if res[3].Code != 0 || strings.Contains(res[3].Out, " changed ") || !res[3].Matches(`changed=0`) {
		r.t.Fatalf("apply again: want no change and exit 0, got exit %d\n%s", res[3].Code, res[3].Out)
	}
	return res
}
