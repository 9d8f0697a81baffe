package host

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/runbook/runbook/modules"
)

// ErrStopped is in the error of a program that was stopped: its deadline passed, or the
// run it belonged to was cancelled.
var ErrStopped = errors.New("stopped")

// Cmd is one program to run on the host.
type Cmd struct {
	// Argv is the program and its arguments. A program named without a slash is found by
	// the Runner's LookPath, sbin directories included.
	Argv []string
	// Dir is the working directory; "" is the helper's.
	Dir string
	// Env holds "NAME=value" entries added to the helper's environment, after the
	// toolkit's own (LC_ALL=C and the rest, see Exec): an entry here wins.
	Env []string
	// User says the program is the user's (command, shell, a validate command): it gets
	// the helper's environment and Env as they are, in the login's locale, without the
	// toolkit's LC_ALL=C, PATH and systemd settings. Every other rule holds.
	User bool
	// Stdin is written to the program's standard input; "" gives it none.
	Stdin string
	// Timeout bounds the run besides ctx; 0 leaves only ctx.
	Timeout time.Duration
	// Data says stdout is data the module parses (a ruleset, an XML document, systemctl
	// show): it is kept whole and not redacted, up to DataLimit bytes; more is an error,
	// never a cut. Without Data, stdout is output to show: redacted, then cut at the Env's
	// limit with a note, like stderr always is.
	Data bool
	// DataLimit overrides MaxData for this command (tests); 0 is MaxData.
	DataLimit int
}

// MaxData bounds the stdout of a Cmd with Data set: big enough for any ruleset or domain
// definition a host has, small enough that a runaway program cannot eat the helper's memory.
const MaxData = 64 << 20

// Result is what a program did.
type Result struct {
	// RC is the exit code; -1 when the program did not exit on its own (killed, not run).
	RC int
	// Stdout and Stderr are its output; see Cmd.Data.
	Stdout, Stderr string
}

// Runner runs programs on the host. Exec is the real one; unit tests give the modules a
// fake (Func, or a simulator of their own) through this interface and nothing else.
type Runner interface {
	// Run runs c until it exits or ctx (or c.Timeout) ends. err is set only when the
	// program could not run or was stopped; a non-zero exit is Result.RC.
	Run(ctx context.Context, c Cmd) (Result, error)
	// LookPath finds a program the way Run finds it; "" when there is none.
	LookPath(name string) string
}

// Func is a Runner made of a function, for tests: LookPath finds every program by its name.
type Func func(ctx context.Context, c Cmd) (Result, error)

// Run calls f.
func (f Func) Run(ctx context.Context, c Cmd) (Result, error) { return f(ctx, c) }

// LookPath returns name.
func (f Func) LookPath(name string) string { return name }

// SbinDirs are searched after PATH: a non-login PATH over SSH often lacks the sbin
// directories where systemctl's, iptables' and modprobe's kin live.
var SbinDirs = []string{"/usr/local/sbin", "/usr/sbin", "/sbin", "/usr/bin", "/bin"}

// waitDelay is how long Run waits for the output pipes after the program exits or is
// killed: a daemon the program started (an init script's) may hold them open for ever.
const waitDelay = 2 * time.Second

// Exec runs programs for real. The zero Exec is usable (no redaction, the default cap).
//
// Every program runs with these rules: its own process group, all of which is killed
// when ctx or Cmd.Timeout ends (a shell's children die with it); LC_ALL=C, so messages
// that are parsed or shown do not depend on the login's language; no systemd pager or
// colours; PATH with the sbin directories appended; stdout and stderr bounded while the
// program runs (see Cmd.Data), secrets redacted before output is cut.
type Exec struct {
	// Env gives the output limit (Env.Limit) and the secrets (Env.Redactor); nil: defaults.
	Env *modules.Env
	// Dirs, when set, are the only directories LookPath searches (tests point it at a
	// directory of fake programs); else PATH, then SbinDirs.
	Dirs []string
}

// LookPath finds a program: a name with a slash is taken as it is when executable.
func (e Exec) LookPath(name string) string {
	if strings.Contains(name, "/") {
		if executable(name) {
			return name
		}
		return ""
	}
	return lookIn(e.Dirs, name)
}

// LookPath finds a program in PATH, then SbinDirs; "" when there is none.
func LookPath(name string) string { return lookIn(nil, name) }

func lookIn(dirs []string, name string) string {
	if name == "" {
		return ""
	}
	if len(dirs) == 0 {
		if p, err := exec.LookPath(name); err == nil && filepath.IsAbs(p) {
			return p
		}
		dirs = SbinDirs
	}
	for _, d := range dirs {
		if p := filepath.Join(d, name); executable(p) {
			return p
		}
	}
	return ""
}

func executable(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0
}

// baseEnv is what every program gets on top of the helper's environment.
func baseEnv() []string {
	env := os.Environ()
	path := os.Getenv("PATH")
	have := map[string]bool{}
	for _, d := range filepath.SplitList(path) {
		have[d] = true
	}
	for _, d := range SbinDirs {
		if !have[d] {
			if path != "" {
				path += string(filepath.ListSeparator)
			}
			path += d
		}
	}
	return append(env, "LC_ALL=C", "SYSTEMD_PAGER=", "SYSTEMD_COLORS=0", "PATH="+path)
}

// Run runs c; see Runner.
func (e Exec) Run(ctx context.Context, c Cmd) (Result, error) {
	if len(c.Argv) == 0 || c.Argv[0] == "" {
		return Result{RC: -1}, errors.New("empty command")
	}
	prog := c.Argv[0]
	if !strings.Contains(prog, "/") {
		p := e.LookPath(prog)
		if p == "" {
			return Result{RC: -1}, fmt.Errorf("%s: %w", prog, exec.ErrNotFound)
		}
		prog = p
	}
	if c.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeoutCause(ctx, c.Timeout, fmt.Errorf("%s ran longer than %s", filepath.Base(prog), c.Timeout))
		defer cancel()
	}
	cmd := exec.CommandContext(ctx, prog, c.Argv[1:]...)
	cmd.Dir = c.Dir
	if c.User {
		cmd.Env = append(os.Environ(), c.Env...)
	} else {
		cmd.Env = append(baseEnv(), c.Env...)
	}
	if c.Stdin != "" {
		cmd.Stdin = strings.NewReader(c.Stdin)
	}
	errb := e.Env.NewCapture()
	var out interface {
		Write([]byte) (int, error)
		String() string
	}
	var data *dataBuffer
	if c.Data {
		limit := c.DataLimit
		if limit <= 0 {
			limit = MaxData
		}
		data = &dataBuffer{limit: limit}
		out = data
	} else {
		out = e.Env.NewCapture()
	}
	cmd.Stdout, cmd.Stderr = out, errb
	ownProcessGroup(cmd)
	cmd.WaitDelay = waitDelay
	runErr := cmd.Run()
	res := Result{RC: -1, Stdout: out.String(), Stderr: errb.String()}
	var exitErr *exec.ExitError
	switch {
	case runErr == nil:
		res.RC = 0
	case ctx.Err() != nil:
		// The cause says why (a timeout, the controller gone) better than "canceled".
		return res, fmt.Errorf("%w: %w", ErrStopped, context.Cause(ctx))
	case errors.As(runErr, &exitErr):
		if res.RC = exitErr.ExitCode(); res.RC < 0 {
			return res, fmt.Errorf("%s: %w", c.Argv[0], runErr)
		}
	case errors.Is(runErr, exec.ErrWaitDelay):
		res.RC = cmd.ProcessState.ExitCode()
	default:
		return res, fmt.Errorf("run %s: %w", c.Argv[0], runErr)
	}
	if data != nil && data.over {
		return res, fmt.Errorf("%s printed more than %d bytes, more than a module reads", c.Argv[0], data.limit)
	}
	return res, nil
}

// dataBuffer keeps stdout that is parsed: all of it up to limit, and notes when there was
// more (the program is not stopped: it must not die of a full pipe).
type dataBuffer struct {
	buf   bytes.Buffer
	limit int
	over  bool
}

func (d *dataBuffer) Write(p []byte) (int, error) {
	n := len(p)
	if room := d.limit - d.buf.Len(); n > room {
		d.over = true
		p = p[:max(room, 0)]
	}
	d.buf.Write(p)
	return n, nil
}

func (d *dataBuffer) String() string { return d.buf.String() }

// StderrTail bounds the stderr a Failure carries: the end of it, where programs say what
// went wrong.
const StderrTail = 8 << 10

// Output runs c with r and returns its stdout. It is an error when the program could not
// run or was stopped, and a *modules.Failure when it exits non-zero: the message names the
// command (redacted) and its exit code, Stderr holds the tail of its stderr (of stdout
// when stderr is empty).
func Output(ctx context.Context, r Runner, red *modules.Redactor, c Cmd) (string, error) {
	res, err := r.Run(ctx, c)
	line := red.Redact(strings.Join(c.Argv, " "))
	if err != nil {
		return res.Stdout, fmt.Errorf("%s: %w", line, err)
	}
	if res.RC != 0 {
		msg := strings.TrimSpace(res.Stderr)
		if msg == "" && !c.Data {
			msg = strings.TrimSpace(res.Stdout)
		}
		return res.Stdout, &modules.Failure{Msg: fmt.Sprintf("%s exited with %d", line, res.RC), Stderr: Tail(msg, StderrTail)}
	}
	return res.Stdout, nil
}

// Tail returns the last n bytes of s (whole lines where it can), marked when cut.
func Tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	t := s[len(s)-n:]
	if i := strings.IndexByte(t, '\n'); i >= 0 && i < len(t)-1 {
		t = t[i+1:]
	}
	for len(t) > 0 && !utf8.RuneStart(t[0]) {
		t = t[1:]
	}
	return fmt.Sprintf("[%d earlier bytes not shown]\n%s", len(s)-len(t), t)
}
