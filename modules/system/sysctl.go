package system

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"syscall"

	"github.com/zclconf/go-cty/cty"
	"golang.org/x/sys/unix"

	"github.com/runbook/runbook/modules"
	"github.com/runbook/runbook/modules/hostfs"
)

var (
	_ modules.Runner[sysctlArgs]    = Sysctl{}
	_ modules.Validator[sysctlArgs] = Sysctl{}
)

// Sysctl sets a kernel parameter at runtime and in a sysctl.d drop-in.
type Sysctl struct {
	// test is the machine a unit test runs it on; nil: the helper's host.
	test *machine
}

// sysctlArgs are the sysctl module's arguments.
type sysctlArgs struct {
	Name    string  `cty:"name"`
	Value   *string `cty:"value"`
	State   string  `cty:"state"`
	File    string  `cty:"file"`
	Runtime bool    `cty:"runtime"`
}

// sysctlResult is what the sysctl module returns.
type sysctlResult struct {
	Name            string `cty:"name"`
	Value           string `cty:"value"`
	RuntimeValue    string `cty:"runtime_value"`
	PersistentValue string `cty:"persistent_value"`
	RuntimeDrift    bool   `cty:"runtime_drift"`
	PersistentDrift bool   `cty:"persistent_drift"`
	File            string `cty:"file"`
}

var sysctlNamePattern = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_.:@/+-]*$`)

const defaultSysctlFile = "/etc/sysctl.d/90-runbook.conf"

func (Sysctl) Info() modules.Info {
	return modules.Info{
		Name:    "sysctl",
		Family:  "system",
		Summary: "Set a kernel parameter (sysctl): in /proc/sys now and in a sysctl.d file for boot.",
		Description: `The name is written with dots (net.ipv4.ip_forward) or slashes (net/ipv4/ip_forward); use
slashes when a part holds a dot itself, as a VLAN interface does (net/ipv4/conf/eth0.100/forwarding).
Values are compared with their whitespace normalised, so "4096 87380 6291456" matches the kernel's
tab-separated "4096	87380	6291456".

Two things are managed and reported apart (runtime_drift and persistent_drift): the running kernel's
value in /proc/sys (with runtime = true, the default), and a "name = value" line in file (default
/etc/sysctl.d/90-runbook.conf). The file is edited in place: the first line setting the key is
replaced, later duplicates in the same file are removed, comments and other lines stay, and the file
is rewritten atomically (created, with its directory, when missing). After a runtime write the value
is read back: a value the kernel refuses or rewrites is an error, not a silent drift.

state = "absent" removes the key's lines from file and leaves the running value alone (there is no
"unset"). A key that does not exist under /proc/sys is an error, unless runtime = false (a key that
appears only once its kernel module is loaded, e.g. net.bridge.*): then only the file is managed,
with a warning. A warning also names any later sysctl.d file, or /etc/sysctl.conf, that sets the key
to another value and would win at boot. Inside a container most of /proc/sys is read-only except the
container's own network namespace (net.*): writing elsewhere fails with a message that says so.`,
		Schema: modules.Schema{
			Args: []modules.Arg{
				{Name: "name", Type: cty.String, Required: true, Pattern: sysctlNamePattern,
					PatternHelp: `a sysctl key such as "net.ipv4.ip_forward" or "net/ipv4/conf/eth0.100/forwarding"`,
					Doc:         "The key, with dots or slashes."},
				{Name: "value", Type: cty.String, Doc: `The value, as a string ("1", "4096 87380 6291456"). Required for state = "present".`},
				{Name: "state", Type: cty.String, Default: cty.StringVal("present"), OneOf: []string{"present", "absent"},
					Doc: `"present": set the value; "absent": remove the key from file (the running value stays).`},
				{Name: "file", Type: cty.String, Default: cty.StringVal(defaultSysctlFile),
					Doc: "The sysctl.d file that holds the setting for boot."},
				{Name: "runtime", Type: cty.Bool, Default: cty.True,
					Doc: "Also set the running kernel's value (/proc/sys). false manages the file only."},
			},
		},
		Returns: []modules.Field{
			{Name: "name", Type: cty.String, Doc: `The key as written in file, e.g. "net.ipv4.ip_forward".`},
			{Name: "value", Type: cty.String, Doc: "The wanted value, whitespace normalised (\"\" for state = \"absent\")."},
			{Name: "runtime_value", Type: cty.String, Doc: "The running kernel's value after the task (\"\" when the key does not exist)."},
			{Name: "persistent_value", Type: cty.String, Doc: "The value file sets after the task (\"\" when it does not set the key)."},
			{Name: "runtime_drift", Type: cty.Bool, Doc: "Whether the running value differed from the wanted one before the task."},
			{Name: "persistent_drift", Type: cty.Bool, Doc: "Whether file differed from what is wanted before the task."},
			{Name: "file", Type: cty.String, Doc: "The file managed."},
		},
		Examples: []modules.Example{
			{Title: "Forward IPv4 packets, now and at boot", HCL: `task "ip forwarding" {
  sysctl {
    name  = "net.ipv4.ip_forward"
    value = "1"
  }
}`},
			{Title: "TCP receive buffers for fast links, in a file of their own", HCL: `task "tcp buffers" {
  sysctl {
    name  = "net.ipv4.tcp_rmem"
    value = "4096 87380 6291456"
    file  = "/etc/sysctl.d/60-tcp.conf"
  }
}`},
			{Title: "Bridge netfilter off at boot; the key exists only once br_netfilter is loaded", HCL: `task "bridge netfilter" {
  sysctl {
    name    = "net.bridge.bridge-nf-call-iptables"
    value   = "0"
    runtime = false
  }
}`},
		},
	}
}

// Validate checks value against state, and the file's path.
func (Sysctl) Validate(args sysctlArgs) []modules.ArgError {
	var errs []modules.ArgError
	v := args.Value
	switch args.State {
	case "present":
		if v == nil {
			errs = append(errs, modules.ArgError{Arg: "value", Msg: `state = "present" needs value.`})
		} else if strings.TrimSpace(*v) == "" {
			errs = append(errs, modules.ArgError{Arg: "value", Msg: "value is empty."})
		}
	case "absent":
		if v != nil {
			errs = append(errs, modules.ArgError{Arg: "value", Msg: `value is not used with state = "absent".`})
		}
	}
	if v != nil && strings.ContainsAny(*v, "\n\r") {
		errs = append(errs, modules.ArgError{Arg: "value", Msg: "value must be one line."})
	}
	if f := args.File; !strings.HasPrefix(f, "/") || strings.HasSuffix(f, "/") {
		errs = append(errs, modules.ArgError{Arg: "file", Msg: "file must be an absolute path to a file."})
	}
	if n := args.Name; strings.Contains(n, "..") || strings.Contains(n, "//") || strings.HasSuffix(n, "/") || strings.HasSuffix(n, ".") {
		errs = append(errs, modules.ArgError{Arg: "name", Msg: fmt.Sprintf("%q is not a sysctl key.", n)})
	}
	return errs
}

// sysctlPath turns a key into its path under /proc/sys: dots separate the parts unless the
// key is written with slashes, in which case dots belong to the parts.
func sysctlPath(name string) string {
	if strings.Contains(name, "/") {
		return strings.Trim(name, "/")
	}
	return strings.ReplaceAll(name, ".", "/")
}

// sysctlName is the key as a file writes it: dotted, unless a part holds a dot.
func sysctlName(name string) string {
	p := sysctlPath(name)
	for _, part := range strings.Split(p, "/") {
		if strings.Contains(part, ".") {
			return p
		}
	}
	return strings.ReplaceAll(p, "/", ".")
}

// normValue joins a value's words with single spaces.
func normValue(v string) string { return strings.Join(strings.Fields(v), " ") }

// Run compares the running value and the file with what is wanted and fixes either when
// applying.
func (sc Sysctl) Run(ctx context.Context, env *modules.Env, args sysctlArgs, apply bool) (*modules.Result, error) {
	return runSysctl(ctx, on(sc.test, env), args, apply)
}

func runSysctl(_ context.Context, m *machine, w sysctlArgs, apply bool) (*modules.Result, error) {
	value, present := normValue(orEmpty(w.Value)), w.State != "absent"
	if present && value == "" {
		return nil, errors.New(`sysctl: state = "present" needs a value`)
	}
	key := sysctlName(w.Name)
	procPath := "/proc/sys/" + sysctlPath(w.Name)
	res := &modules.Result{Status: modules.StatusOK}

	// Runtime.
	managed := w.Runtime && present
	runtimeValue := ""
	b, err := os.ReadFile(m.path(procPath))
	switch {
	case errors.Is(err, fs.ErrNotExist):
		if managed {
			return nil, fmt.Errorf("no sysctl key %s on this host (no %s); set runtime = false to write only the file, e.g. for a key whose kernel module is not loaded yet", key, procPath)
		}
		if present {
			res.Warnings = append(res.Warnings, fmt.Sprintf("%s does not exist on the running kernel (no %s); only %s is managed", key, procPath, w.File))
		}
	case errors.Is(err, syscall.EISDIR):
		return nil, fmt.Errorf("%s is a group of sysctl keys (%s is a directory), not a key", key, procPath)
	case err != nil && managed:
		return nil, fmt.Errorf("read %s: %w", procPath, explainProcErr(err))
	case err != nil:
		res.Warnings = append(res.Warnings, fmt.Sprintf("cannot read %s: %v", procPath, err))
	default:
		runtimeValue = normValue(string(b))
	}
	runtimeDrift := managed && runtimeValue != value

	// Persistent.
	old, existed, err := hostfs.ReadOptional(m.path(w.File))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", w.File, err)
	}
	persistentBefore, _ := sysctlFileValue(old, w.Name)
	content, persistentDrift := editSysctlFile(old, w.Name, key, value, present)
	persistentAfter := ""
	if present {
		persistentAfter = value
	}

	if present {
		res.Warnings = append(res.Warnings, sysctlOverrides(m, w.File, w.Name, value)...)
	}
	data := &sysctlResult{
		Name: key, Value: persistentAfter, RuntimeValue: runtimeValue, PersistentValue: persistentBefore,
		RuntimeDrift: runtimeDrift, PersistentDrift: persistentDrift, File: w.File,
	}
	res.Data = data
	var what []string
	if runtimeDrift {
		what = append(what, fmt.Sprintf("runtime %s → %s", orNone(runtimeValue), value))
	}
	if persistentDrift {
		what = append(what, fmt.Sprintf("%s: %s → %s", w.File, orNone(persistentBefore), orNone(persistentAfter)))
	}
	if len(what) == 0 {
		switch {
		case !present:
			res.Msg = fmt.Sprintf("%s is not set in %s", key, w.File)
		case w.Runtime:
			res.Msg = fmt.Sprintf("%s = %s (runtime and %s)", key, value, w.File)
		default:
			res.Msg = fmt.Sprintf("%s = %s in %s", key, value, w.File)
		}
		data.PersistentValue = persistentAfter
		return res, nil
	}
	if runtimeDrift && !apply {
		// access(2) sees a read-only /proc/sys, so check mode predicts that failure.
		if err := unix.Access(m.path(procPath), unix.W_OK); err != nil {
			return nil, fmt.Errorf("cannot set %s at runtime: %s: %w", key, procPath, explainProcErr(err))
		}
	}
	res.Status = modules.DiffStatus(apply)
	res.Msg = key + ": " + modules.Tense(apply, "", "would change ") + strings.Join(what, "; ")
	describe := func(rt, pv string) string {
		s := ""
		if managed {
			s += "runtime: " + orNone(rt) + "\n"
		}
		return s + "persistent (" + w.File + "): " + orNone(pv) + "\n"
	}
	afterRuntime := runtimeValue
	if runtimeDrift {
		afterRuntime = value
	}
	res.Diff = &modules.Diff{Before: describe(runtimeValue, persistentBefore), After: describe(afterRuntime, persistentAfter),
		BeforeHeader: key + " (before)", AfterHeader: key + " (after)"}
	if !apply {
		return res, nil
	}

	// The running value first: a value the kernel refuses leaves the file as it was.
	if runtimeDrift {
		if err := writeSysctl(m.path(procPath), value); err != nil {
			return nil, fmt.Errorf("set %s at runtime: %w", key, explainProcErr(err))
		}
		b, err := os.ReadFile(m.path(procPath))
		if err != nil {
			return nil, fmt.Errorf("read %s back: %w", procPath, err)
		}
		got := normValue(string(b))
		data.RuntimeValue = got
		if got != value {
			return res, fmt.Errorf("the kernel keeps %s = %s after %s was written (a value out of range, or one it rounds)", key, orNone(got), value)
		}
	}
	if persistentDrift {
		if len(content) == 0 && existed {
			if err := hostfs.Remove(m.path(w.File)); err != nil {
				return nil, err
			}
		} else if len(content) > 0 {
			if err := writeAtomic(m.path(w.File), content, 0o644); err != nil {
				return nil, err
			}
		}
	}
	data.PersistentValue = persistentAfter
	return res, nil
}

// writeSysctl writes a value the way sysctl(8) does: one write to the opened file.
func writeSysctl(path, value string) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_TRUNC, 0)
	if err != nil {
		return err
	}
	if _, err := f.Write([]byte(value + "\n")); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func explainProcErr(err error) error {
	switch {
	case errors.Is(err, syscall.EROFS):
		return fmt.Errorf("%w (/proc/sys is read-only here, as in most containers, where only the container's own network keys, net.*, are writable)", err)
	case errors.Is(err, syscall.EINVAL):
		return fmt.Errorf("%w (the kernel refuses this value)", err)
	case errors.Is(err, syscall.EPERM), errors.Is(err, syscall.EACCES):
		return fmt.Errorf("%w (this key needs more privilege than the helper has, or belongs to the host outside this namespace)", err)
	}
	return err
}

// sysctlLine is a parsed line of a sysctl.d file: key and value, or ok false for comments,
// blank lines and lines without "=".
func sysctlLine(l string) (key, value string, ok bool) {
	t := strings.TrimSpace(l)
	if t == "" || t[0] == '#' || t[0] == ';' {
		return "", "", false
	}
	t = strings.TrimPrefix(t, "-") // systemd-sysctl: ignore a failure to set it
	k, v, found := strings.Cut(t, "=")
	if !found {
		return "", "", false
	}
	return strings.TrimSpace(k), strings.TrimSpace(v), true
}

// sysctlFileValue is the value a file gives name (its last line for the key wins, as when
// the kernel is set from it), and whether it sets it at all.
func sysctlFileValue(content []byte, name string) (string, bool) {
	path := sysctlPath(name)
	val, found := "", false
	for _, l := range splitKeep(content) {
		if k, v, ok := sysctlLine(l); ok && sysctlPath(k) == path {
			val, found = normValue(v), true
		}
	}
	return val, found
}

// editSysctlFile returns the file with "key = value" in place of the first line setting
// the key and without any later one (present), or without any line for it (absent).
func editSysctlFile(content []byte, name, key, value string, present bool) ([]byte, bool) {
	path := sysctlPath(name)
	lines := splitKeep(content)
	out := make([]string, 0, len(lines)+1)
	placed := false
	want := key + " = " + value
	for _, l := range lines {
		k, v, ok := sysctlLine(l)
		if !ok || sysctlPath(k) != path {
			out = append(out, l)
			continue
		}
		if present && !placed {
			placed = true
			if normValue(v) == value {
				out = append(out, l) // already right: keep its spelling and spacing
			} else {
				prefix := ""
				if strings.HasPrefix(strings.TrimSpace(l), "-") {
					prefix = "-"
				}
				out = append(out, prefix+want)
			}
		}
	}
	if present && !placed {
		out = append(out, want)
	}
	newContent := joinKeep(out)
	if len(out) == len(lines) && strings.Join(out, "\n") == strings.Join(lines, "\n") {
		return content, false
	}
	return newContent, true
}

// sysctlDirs are read at boot, in this order of precedence for files of the same name;
// all their files are then applied sorted by name (systemd-sysctl, sysctl --system).
var sysctlDirs = []string{"/etc/sysctl.d", "/run/sysctl.d", "/usr/local/lib/sysctl.d", "/usr/lib/sysctl.d", "/lib/sysctl.d"}

// sysctlOverrides warns when file is not what sets name at boot: a file that is not read
// then, a file of the same name in a directory read first, or a file read after it that
// sets the key to another value.
func sysctlOverrides(m *machine, file, name, value string) []string {
	if file == "/etc/sysctl.conf" {
		return nil // read last by sysctl --system
	}
	if !slices.Contains(sysctlDirs, filepath.Dir(file)) || !strings.HasSuffix(file, ".conf") {
		return []string{fmt.Sprintf("%s is not read at boot: only *.conf files in %s, and /etc/sysctl.conf, are", file, strings.Join(sysctlDirs, ", "))}
	}
	// Effective files by name: the first directory that has a name wins.
	byName := map[string]string{}
	for _, d := range sysctlDirs {
		ents, err := os.ReadDir(m.path(d))
		if err != nil {
			continue
		}
		for _, e := range ents {
			if _, ok := byName[e.Name()]; !ok && strings.HasSuffix(e.Name(), ".conf") && !e.IsDir() {
				byName[e.Name()] = filepath.Join(d, e.Name())
			}
		}
	}
	base := filepath.Base(file)
	if cur, ok := byName[base]; ok && cur != file {
		return []string{fmt.Sprintf("%s is never read at boot: %s has the same name in a directory read first", file, cur)}
	}
	var later []string
	for n, f := range byName {
		if n > base {
			later = append(later, f)
		}
	}
	sort.Slice(later, func(i, j int) bool { return filepath.Base(later[i]) < filepath.Base(later[j]) })
	later = append(later, "/etc/sysctl.conf")
	var out []string
	seen := map[string]bool{}
	for _, f := range later {
		real := m.path(f)
		if r, err := hostfs.Resolve(real, hostfs.FollowLast); err == nil {
			real = r.Path()
			r.Close()
		}
		if seen[real] {
			continue // Debian's 99-sysctl.conf is a link to /etc/sysctl.conf
		}
		seen[real] = true
		b, _, err := hostfs.ReadOptional(m.path(f))
		if err != nil {
			continue
		}
		if v, ok := sysctlFileValue(b, name); ok && v != value {
			out = append(out, fmt.Sprintf("%s sets %s = %s and is read after %s: at boot its value wins", f, sysctlName(name), v, file))
		}
	}
	return out
}
