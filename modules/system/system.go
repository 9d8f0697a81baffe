package system

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/zclconf/go-cty/cty"
	"golang.org/x/sys/unix"

	"github.com/runbook/runbook/modules"
	"github.com/runbook/runbook/modules/hostfs"
)

func init() {
	modules.Register[cty.Value, map[string]any](Service{})
	modules.Register[cty.Value, map[string]any](Hostname{})
	modules.Register[cty.Value, map[string]any](Sysctl{})
	modules.Register[cty.Value, map[string]any](KernelModule{})
}

// machine is the host a module works on: where its files are and how it runs programs.
// The modules' logic goes through it only, so unit tests can point it at a fixture tree
// and a scripted fake of systemctl, and prove which programs check mode runs.
type machine struct {
	// root prefixes every absolute path the module reads or writes; "" is the real root.
	root string
	// run runs a program and returns its exit code and output; err only when it could not
	// run at all or was stopped.
	run func(ctx context.Context, argv ...string) (rc int, stdout, stderr string, err error)
	// lookPath finds a program in PATH, "" when there is none.
	lookPath func(name string) string
	// nodename returns the kernel's hostname (uname); sethostname sets it.
	nodename    func() (string, error)
	sethostname func(name string) error
	// release returns the running kernel's release (uname -r).
	release func() string
}

// realMachine is the host the helper runs on.
func realMachine(env *modules.Env) *machine {
	return &machine{
		root: "",
		run: func(ctx context.Context, argv ...string) (int, string, string, error) {
			// The program is found the way lookPath found it, sbin fallbacks included: the
			// PATH given to the child does not change where exec looks for the child itself.
			if len(argv) > 0 && !strings.Contains(argv[0], "/") {
				if p := findProgram(argv[0]); p != "" {
					argv = append([]string{p}, argv[1:]...)
				}
			}
			return runProgram(ctx, env, argv)
		},
		lookPath: findProgram,
		nodename: func() (string, error) {
			var u unix.Utsname
			if err := unix.Uname(&u); err != nil {
				return "", fmt.Errorf("uname: %w", err)
			}
			return unix.ByteSliceToString(u.Nodename[:]), nil
		},
		sethostname: func(name string) error { return unix.Sethostname([]byte(name)) },
		release: func() string {
			var u unix.Utsname
			if err := unix.Uname(&u); err != nil {
				return ""
			}
			return unix.ByteSliceToString(u.Release[:])
		},
	}
}

// findProgram finds a program in PATH, then in the sbin and bin directories, which are often
// missing from a non-login PATH over SSH; "" when there is none.
func findProgram(name string) string {
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	for _, dir := range []string{"/usr/sbin", "/sbin", "/usr/bin", "/bin"} {
		if fi, err := os.Stat(filepath.Join(dir, name)); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
			return filepath.Join(dir, name)
		}
	}
	return ""
}

// path maps an absolute host path into the machine's root.
func (m *machine) path(p string) string {
	if m.root == "" {
		return p
	}
	return filepath.Join(m.root, p)
}

// runOK runs a program and turns a non-zero exit into a Failure carrying its stderr.
func (m *machine) runOK(ctx context.Context, argv ...string) (string, error) {
	rc, stdout, stderr, err := m.run(ctx, argv...)
	if err != nil {
		return stdout, fmt.Errorf("%s: %w", strings.Join(argv, " "), err)
	}
	if rc != 0 {
		msg := strings.TrimSpace(stderr)
		if msg == "" {
			msg = strings.TrimSpace(stdout)
		}
		return stdout, &modules.Failure{Msg: fmt.Sprintf("%s exited with %d", strings.Join(argv, " "), rc), Stderr: msg}
	}
	return stdout, nil
}

// runProgram runs argv with the output redacted and capped at the Env's limit. The
// program gets its own process group, so a cancelled run also stops what it started.
func runProgram(ctx context.Context, env *modules.Env, argv []string) (rc int, stdout, stderr string, err error) {
	if len(argv) == 0 {
		return -1, "", "", errors.New("empty command")
	}
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	// A stable, C-locale environment: messages parsed or shown do not depend on the
	// login's language, and sbin is on the path.
	cmd.Env = append(os.Environ(), "LC_ALL=C", "SYSTEMD_PAGER=", "SYSTEMD_COLORS=0",
		"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
	out, errb := env.NewCapture(), env.NewCapture()
	cmd.Stdout, cmd.Stderr = out, errb
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error {
		if cmd.Process == nil {
			return nil
		}
		return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	}
	// An init script may leave a daemon holding the output pipes; do not wait for it.
	cmd.WaitDelay = 2 * time.Second
	runErr := cmd.Run()
	stdout, stderr = out.String(), errb.String()
	var exitErr *exec.ExitError
	switch {
	case runErr == nil:
		return 0, stdout, stderr, nil
	case ctx.Err() != nil:
		return -1, stdout, stderr, fmt.Errorf("stopped: %w", context.Cause(ctx))
	case errors.As(runErr, &exitErr) && exitErr.ExitCode() >= 0:
		return exitErr.ExitCode(), stdout, stderr, nil
	case errors.Is(runErr, exec.ErrWaitDelay):
		return cmd.ProcessState.ExitCode(), stdout, stderr, nil
	}
	return -1, stdout, stderr, runErr
}

// str returns a string argument, "" when null.
func str(args cty.Value, name string) string {
	v := args.GetAttr(name)
	if v.IsNull() {
		return ""
	}
	return v.AsString()
}

// optBool returns a bool argument and whether it was given.
func optBool(args cty.Value, name string) (val, set bool) {
	v := args.GetAttr(name)
	if v.IsNull() {
		return false, false
	}
	return v.True(), true
}

func boolArg(args cty.Value, name string) bool {
	v, _ := optBool(args, name)
	return v
}

// writeAtomic replaces path with content atomically (hostfs.Ref.WriteAtomic), making
// missing directories. An existing file keeps its mode and owner (a link's target's, when
// the link is trusted; the link itself is replaced); a new one gets mode. The mode and
// owner are read from the same resolved directory the file is then written in.
func writeAtomic(path string, content []byte, mode fs.FileMode) error {
	r, err := hostfs.Resolve(path, hostfs.MakeParents)
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	defer r.Close()
	uid, gid := -1, -1
	if fi, err := r.Stat(); err == nil && fi != nil {
		mode = fi.Mode().Perm()
		uid, gid = hostfs.KeepOwner(fi)
	}
	return r.WriteAtomic(content, hostfs.Options{Mode: mode, UID: uid, GID: gid})
}

// splitKeep splits text into lines, each without its newline; a final line without a
// newline is kept as it is, and joinKeep puts a newline after every line.
func splitKeep(b []byte) []string {
	s := string(b)
	if s == "" {
		return nil
	}
	s = strings.TrimSuffix(s, "\n")
	return strings.Split(s, "\n")
}

func joinKeep(lines []string) []byte {
	if len(lines) == 0 {
		return nil
	}
	return []byte(strings.Join(lines, "\n") + "\n")
}
