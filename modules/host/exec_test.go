package host

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/runbook/runbook/modules"
)

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func envWith(limit int, secrets ...string) *modules.Env {
	env := modules.NewEnv(modules.Info{}, nil)
	env.OutputLimit = limit
	env.SetSecrets(secrets)
	return env
}

func TestExecRun(t *testing.T) {
	t.Setenv("LC_ALL", "")
	os.Unsetenv("LC_ALL")
	const secret = "hunter2-very-secret"
	tests := []struct {
		name    string
		env     *modules.Env
		cmd     Cmd
		rc      int
		stdout  string // exact, unless prefix is set
		prefix  bool
		stderr  string
		wantErr string
	}{
		{name: "exit code and both streams", cmd: Cmd{Argv: []string{"sh", "-c", "echo out; echo err >&2; exit 3"}},
			rc: 3, stdout: "out\n", stderr: "err\n"},
		{name: "stdin", cmd: Cmd{Argv: []string{"cat"}, Stdin: "fed\n"}, stdout: "fed\n"},
		{name: "output over the cap is cut with a note", env: envWith(100),
			cmd:    Cmd{Argv: []string{"sh", "-c", "head -c 1000 /dev/zero | tr '\\0' x"}},
			stdout: strings.Repeat("x", 100) + "\n[output truncated: 900 more bytes not kept]", prefix: true},
		{name: "stderr is capped too", env: envWith(10),
			cmd:    Cmd{Argv: []string{"sh", "-c", "head -c 50 /dev/zero | tr '\\0' y >&2"}},
			stderr: strings.Repeat("y", 10) + "\n[output truncated: 40 more bytes not kept]\n"},
		{name: "data is kept whole and unredacted", env: envWith(10, secret),
			cmd:    Cmd{Argv: []string{"sh", "-c", "head -c 1000 /dev/zero | tr '\\0' x; echo " + secret}, Data: true},
			stdout: strings.Repeat("x", 1000) + secret + "\n"},
		{name: "data over its bound is an error, not a cut", cmd: Cmd{Argv: []string{"sh", "-c", "head -c 1000 /dev/zero"}, Data: true, DataLimit: 999},
			rc: 0, stdout: strings.Repeat("\x00", 999), wantErr: "printed more than 999 bytes"},
		{name: "C locale", cmd: Cmd{Argv: []string{"sh", "-c", "echo $LC_ALL $SYSTEMD_PAGER."}}, stdout: "C .\n"},
		{name: "a user's program keeps the login's locale", cmd: Cmd{Argv: []string{"sh", "-c", "echo ${LC_ALL-unset} $X"}, User: true, Env: []string{"X=y"}}, stdout: "unset y\n"},
		{name: "the command's env wins", cmd: Cmd{Argv: []string{"sh", "-c", "echo $LC_ALL"}, Env: []string{"LC_ALL=de_DE.UTF-8"}}, stdout: "de_DE.UTF-8\n"},
		{name: "sbin on the child's PATH", cmd: Cmd{Argv: []string{"sh", "-c", "case :$PATH: in *:/usr/sbin:*) echo yes;; esac"}}, stdout: "yes\n"},
		{name: "working directory", cmd: Cmd{Argv: []string{"pwd"}, Dir: "/"}, stdout: "/\n"},
		{name: "program not found", cmd: Cmd{Argv: []string{"no-such-program-here"}}, rc: -1, wantErr: "executable file not found"},
		{name: "empty command", cmd: Cmd{}, rc: -1, wantErr: "empty command"},
		{name: "timeout", cmd: Cmd{Argv: []string{"sleep", "30"}, Timeout: 100 * time.Millisecond}, rc: -1, wantErr: "stopped: sleep ran longer than 100ms"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, err := Exec{Env: tt.env}.Run(ctxT(t), tt.cmd)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
			} else if err != nil {
				t.Fatal(err)
			}
			if res.RC != tt.rc {
				t.Errorf("rc = %d, want %d", res.RC, tt.rc)
			}
			if tt.prefix && !strings.HasPrefix(res.Stdout, tt.stdout) || !tt.prefix && tt.stdout != "" && res.Stdout != tt.stdout {
				t.Errorf("stdout = %q, want %q", res.Stdout, tt.stdout)
			}
			if tt.stderr != "" && res.Stderr != tt.stderr {
				t.Errorf("stderr = %q, want %q", res.Stderr, tt.stderr)
			}
		})
	}
}

// TestRedactBeforeCut: a secret that straddles the cap is redacted whole, never cut into a
// prefix that would show.
func TestRedactBeforeCut(t *testing.T) {
	const secret = "hunter2-very-secret"
	for _, at := range []int{0, 5, 95, 99, 100} {
		env := envWith(100, secret)
		script := "printf '%s' \"$1\"; printf '%s' \"$2\"; head -c 200 /dev/zero"
		res, err := Exec{Env: env}.Run(ctxT(t), Cmd{Argv: []string{"sh", "-c", script, "sh", strings.Repeat("a", at), secret}})
		if err != nil {
			t.Fatal(err)
		}
		for _, stream := range []string{res.Stdout} {
			if strings.Contains(stream, "hunt") || strings.Contains(stream, "secret") {
				t.Errorf("secret at %d: a part of it shows: %q", at, stream)
			}
		}
	}
}

// TestDeadlineKillsGroup: when the deadline passes, the program and what it started (a
// grandchild in the background that holds the output pipe) are killed, and Run returns.
func TestDeadlineKillsGroup(t *testing.T) {
	dir := t.TempDir()
	pidFile := filepath.Join(dir, "pid")
	start := time.Now()
	res, err := Exec{}.Run(ctxT(t), Cmd{
		Argv:    []string{"sh", "-c", `sh -c 'sleep 300' & echo $! > "$1"; sleep 300`, "sh", pidFile},
		Timeout: 300 * time.Millisecond,
	})
	if !errors.Is(err, ErrStopped) || !strings.Contains(err.Error(), "stopped: sh ran longer than 300ms") || res.RC != -1 {
		t.Fatalf("rc %d err %v, want stopped", res.RC, err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("Run took %s after a 300ms deadline", d)
	}
	b, err := os.ReadFile(pidFile)
	if err != nil {
		t.Fatal(err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(3 * time.Second)
	for !gone(pid) {
		if time.Now().After(deadline) {
			syscall.Kill(pid, syscall.SIGKILL)
			t.Fatalf("grandchild %d outlived the deadline", pid)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// gone reports whether pid no longer runs (it may linger as a zombie until reaped).
func gone(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return true
	}
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
	return len(f) > 0 && (f[0] == "Z" || f[0] == "X")
}

func TestCancelKillsGroup(t *testing.T) {
	ctx, cancel := context.WithCancelCause(context.Background())
	time.AfterFunc(200*time.Millisecond, func() { cancel(errors.New("the controller went away")) })
	_, err := Exec{}.Run(ctx, Cmd{Argv: []string{"sh", "-c", "sleep 300 & sleep 300"}})
	if err == nil || !strings.Contains(err.Error(), "stopped: the controller went away") {
		t.Fatalf("err = %v", err)
	}
}

func TestLookPath(t *testing.T) {
	dir := t.TempDir()
	fake := filepath.Join(dir, "fakectl")
	os.WriteFile(fake, []byte("#!/bin/sh\necho fake\n"), 0o755)
	os.WriteFile(filepath.Join(dir, "notexec"), []byte("x"), 0o644)
	os.Mkdir(filepath.Join(dir, "adir"), 0o755)
	sh := ""
	for _, d := range []string{"/usr/bin", "/bin"} {
		if executable(d + "/sh") {
			sh = d + "/sh"
			break
		}
	}
	t.Setenv("PATH", t.TempDir()) // a PATH that has nothing: the sbin and bin fallbacks find it
	tests := []struct {
		name string
		r    Exec
		prog string
		want string
	}{
		{"fallback beyond PATH", Exec{}, "sh", sh},
		{"only the given directories", Exec{Dirs: []string{dir}}, "fakectl", fake},
		{"the given directories hide the host's", Exec{Dirs: []string{dir}}, "sh", ""},
		{"not executable", Exec{Dirs: []string{dir}}, "notexec", ""},
		{"a directory", Exec{Dirs: []string{dir}}, "adir", ""},
		{"a path is taken as it is", Exec{Dirs: []string{"/nonexistent"}}, fake, fake},
		{"missing", Exec{}, "no-such-program-here", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.r.LookPath(tt.prog); got != tt.want {
				t.Errorf("LookPath(%q) = %q, want %q", tt.prog, got, tt.want)
			}
		})
	}
	// Run finds a program the way LookPath does.
	res, err := Exec{Dirs: []string{dir}}.Run(ctxT(t), Cmd{Argv: []string{"fakectl"}})
	if err != nil || res.Stdout != "fake\n" {
		t.Errorf("run fakectl: %q %v", res.Stdout, err)
	}
	if _, err := (Exec{Dirs: []string{dir}}).Run(ctxT(t), Cmd{Argv: []string{"sh"}}); !errors.Is(err, exec.ErrNotFound) {
		t.Errorf("err = %v, want ErrNotFound", err)
	}
}

func TestOutput(t *testing.T) {
	const secret = "hunter2-very-secret"
	red := modules.NewRedactor([]string{secret})
	long := strings.Repeat("noise line\n", 2000) + "the real reason\n"
	tests := []struct {
		name    string
		r       Runner
		cmd     Cmd
		out     string
		wantErr string
		stderr  string // the Failure's, when there is one
	}{
		{name: "success", r: Exec{}, cmd: Cmd{Argv: []string{"echo", "hi"}}, out: "hi\n"},
		{name: "non-zero exit is a Failure", r: Exec{}, cmd: Cmd{Argv: []string{"sh", "-c", "echo bad >&2; exit 4"}},
			wantErr: "sh -c echo bad >&2; exit 4 exited with 4", stderr: "bad"},
		{name: "stdout stands in for an empty stderr", r: Exec{}, cmd: Cmd{Argv: []string{"sh", "-c", "echo why; exit 1"}},
			wantErr: "exited with 1", stderr: "why"},
		{name: "the secret in argv is not in the message", r: Exec{}, cmd: Cmd{Argv: []string{"sh", "-c", "exit 2", secret}},
			wantErr: "sh -c exit 2 " + modules.Redacted + " exited with 2"},
		{name: "the tail of stderr", r: Func(func(context.Context, Cmd) (Result, error) {
			return Result{RC: 1, Stderr: long}, nil
		}), cmd: Cmd{Argv: []string{"x"}}, wantErr: "x exited with 1", stderr: "the real reason"},
		{name: "could not run", r: Func(func(context.Context, Cmd) (Result, error) {
			return Result{RC: -1}, errors.New("boom")
		}), cmd: Cmd{Argv: []string{"x", "y"}}, wantErr: "x y: boom"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, err := Output(ctxT(t), tt.r, red, tt.cmd)
			if tt.wantErr == "" {
				if err != nil || out != tt.out {
					t.Fatalf("Output = %q, %v", out, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) || strings.Contains(err.Error(), secret) {
				t.Fatalf("err = %v, want %q", err, tt.wantErr)
			}
			if tt.stderr != "" {
				var f *modules.Failure
				if !errors.As(err, &f) || !strings.HasSuffix(f.Stderr, tt.stderr) || len(f.Stderr) > StderrTail+100 {
					t.Errorf("failure = %#v", err)
				}
			}
		})
	}
}

func TestTail(t *testing.T) {
	tests := []struct {
		in   string
		n    int
		want string
	}{
		{"short", 10, "short"},
		{"line one\nline two\nline three", 14, "[18 earlier bytes not shown]\nline three"},
		{"abcdefghij", 4, "[6 earlier bytes not shown]\nghij"},
		{"aaaaéé", 3, "[6 earlier bytes not shown]\né"},
	}
	for _, tt := range tests {
		if got := Tail(tt.in, tt.n); got != tt.want {
			t.Errorf("Tail(%q, %d) = %q, want %q", tt.in, tt.n, got, tt.want)
		}
	}
}

func TestRoot(t *testing.T) {
	tests := []struct {
		root Root
		in   string
		want string
	}{
		{"", "/etc/hosts", "/etc/hosts"},
		{"/", "/etc/hosts", "/etc/hosts"},
		{"/tmp/t", "/etc/hosts", "/tmp/t/etc/hosts"},
		{"/tmp/t", "/", "/tmp/t"},
		{"/tmp/t", "/../../etc/shadow", "/tmp/t/etc/shadow"},
		{"/tmp/t", "etc/x/../y", "/tmp/t/etc/y"},
	}
	for _, tt := range tests {
		if got := tt.root.Path(tt.in); got != tt.want {
			t.Errorf("Root(%q).Path(%q) = %q, want %q", tt.root, tt.in, got, tt.want)
		}
	}
	if !Root("").Real() || !Root("/").Real() || Root("/tmp/t").Real() {
		t.Error("Real")
	}
}
