package system

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/runbook/runbook/modules"
	"github.com/runbook/runbook/modules/host"
	"github.com/runbook/runbook/modules/hostfs"
)

func init() {
	modules.Register[serviceArgs, serviceResult](Service{})
	modules.Register[hostnameArgs, hostnameResult](Hostname{})
	modules.Register[sysctlArgs, sysctlResult](Sysctl{})
	modules.Register[kmodArgs, kmodResult](KernelModule{})
	modules.Register[rebootArgs, rebootResult](Reboot{})
}

// machine is the host a module works on: where its files are and how it runs programs.
// The modules' logic goes through it only, so unit tests can point it at a fixture tree
// and a scripted fake of systemctl (a host.Runner), and prove which programs check mode runs.
type machine struct {
	// root is where the module finds the host's "/"; "" is the real root.
	root host.Root
	// run runs programs and finds them (host.Exec on a host).
	run host.Runner
	// red redacts command lines in errors.
	red *modules.Redactor
	// nodename returns the kernel's hostname (uname); sethostname sets it.
	nodename    func() (string, error)
	sethostname func(name string) error
	// release returns the running kernel's release (uname -r).
	release func() string
	// pid1 says what PID 1 is (its comm) and whether the helper shares its network, mount
	// and UTS namespaces: whether PID 1 is this host's init. bootID is the boot's id.
	pid1   func() (comm string, ours bool)
	bootID string
}

// realMachine is the host the helper runs on.
func realMachine(env *modules.Env) *machine {
	return &machine{
		root: "",
		run:  host.Exec{Env: env},
		red:  env.Redactor(),
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
		pid1:   func() (string, bool) { return host.PID1("net", "mnt", "uts") },
		bootID: modules.BootID(),
	}
}

// systemdPID1 says systemd is this host's init.
func (m *machine) systemdPID1() bool {
	if m.pid1 == nil {
		return false
	}
	comm, ours := m.pid1()
	return ours && comm == "systemd" && dirExists(m.path("/run/systemd/system"))
}

// on is the machine a module runs on: the one a test gave it, or the helper's host.
func on(test *machine, env *modules.Env) *machine {
	if test != nil {
		return test
	}
	return realMachine(env)
}

// path maps an absolute host path into the machine's root.
func (m *machine) path(p string) string { return m.root.Path(p) }

// lookPath finds a program the way run finds it, "" when there is none.
func (m *machine) lookPath(name string) string { return m.run.LookPath(name) }

// systemctl reads and changes units through the machine's runner.
func (m *machine) systemctl() host.Systemctl { return host.Systemctl{R: m.run, Red: m.red} }

// runOK runs a program and turns a non-zero exit into a Failure carrying its stderr.
func (m *machine) runOK(ctx context.Context, argv ...string) (string, error) {
	return host.Output(ctx, m.run, m.red, host.Cmd{Argv: argv})
}

// isTrue reports whether an optional bool argument is set and true.
func isTrue(b *bool) bool { return b != nil && *b }

// orEmpty is an optional string argument, "" when unset.
func orEmpty(s *string) string {
	if s == nil {
		return ""
	}
	return *s
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

// dirExists says p is a directory (links followed: /run/systemd/system is never a user's).
func dirExists(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.IsDir()
}
