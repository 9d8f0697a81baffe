package system

import (
	"context"
	"fmt"
	"regexp"
	"slices"
	"strings"

	"github.com/zclconf/go-cty/cty"

	"github.com/runbook/runbook/modules"
	"github.com/runbook/runbook/modules/hostfs"
)

var (
	_ modules.Runner[hostnameArgs]    = Hostname{}
	_ modules.Validator[hostnameArgs] = Hostname{}
)

// Hostname sets the host's name, at runtime and persistently.
type Hostname struct {
	// test is the machine a unit test runs it on; nil: the helper's host.
	test *machine
}

// hostnameArgs are the hostname module's arguments.
type hostnameArgs struct {
	Name        string  `cty:"name"`
	UpdateHosts bool    `cty:"update_hosts"`
	Pretty      *string `cty:"pretty"` // nil: leave it as it is
}

// hostnameResult is what the hostname module returns.
type hostnameResult struct {
	Name               string `cty:"name"`
	Runtime            string `cty:"runtime"`
	Persistent         string `cty:"persistent"`
	PreviousRuntime    string `cty:"previous_runtime"`
	PreviousPersistent string `cty:"previous_persistent"`
	Pretty             string `cty:"pretty"`
}

// hostnamePattern is an RFC 1123 name: dot-separated labels of letters, digits and inner
// dashes. The kernel takes at most 64 bytes (Validate checks the length).
var hostnamePattern = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$`)

// maxHostname is the kernel's limit (HOST_NAME_MAX).
const maxHostname = 64

func (Hostname) Info() modules.Info {
	return modules.Info{
		Name:    "hostname",
		Family:  "system",
		Summary: "Set the host's name: the running kernel's and the one in /etc/hostname.",
		Description: `Sets the static hostname by writing /etc/hostname (atomically; comment lines in it are kept)
and the running one with the sethostname system call, so neither D-Bus nor hostnamectl is needed for
it. The two are read and reported separately: the kernel's (uname's nodename) as runtime, the file's
as persistent; a host whose file was edited but never applied shows drift on runtime only.

With update_hosts = true, /etc/hosts keeps naming the host: every line that named the old name
(runtime or persistent; never localhost) names the new one instead, and when no line names it, the
127.0.1.1 line does (it is added after the 127.0.0.1 line when there is none). A fully qualified name
gets its short name beside it on that line. Other lines and comments are left as they are.

pretty sets the free-form "pretty" hostname with hostnamectl (stored in /etc/machine-info, where it is
read from). A host without hostnamectl gets a warning and keeps its pretty name. Check mode reports
exactly what apply would change and changes nothing.`,
		Schema: modules.Schema{
			Args: []modules.Arg{
				{Name: "name", Type: cty.String, Required: true, Pattern: hostnamePattern,
					PatternHelp: `a hostname: letters, digits and dashes, in dot-separated labels of at most 63 characters, e.g. "kvm01" or "kvm01.example.net"`,
					Doc:         "The hostname, short or fully qualified; at most 64 characters."},
				{Name: "update_hosts", Type: cty.Bool, Default: cty.False,
					Doc: "Keep /etc/hosts naming the host: rename the old name where it appears, or keep a 127.0.1.1 line for it."},
				{Name: "pretty", Type: cty.String,
					Doc: `The pretty hostname (free text, e.g. "KVM host 01, rack 4"), set with hostnamectl; "" removes it. Unset leaves it as it is.`},
			},
		},
		Returns: []modules.Field{
			{Name: "name", Type: cty.String, Doc: "The hostname asked for."},
			{Name: "runtime", Type: cty.String, Doc: "The running kernel's hostname after the task (uname -n)."},
			{Name: "persistent", Type: cty.String, Doc: `The name in /etc/hostname after the task ("" when there is none).`},
			{Name: "previous_runtime", Type: cty.String, Doc: "The running kernel's hostname before the task."},
			{Name: "previous_persistent", Type: cty.String, Doc: "The name in /etc/hostname before the task."},
			{Name: "pretty", Type: cty.String, Doc: "The pretty hostname from /etc/machine-info (\"\" when unset)."},
		},
		Examples: []modules.Example{
			{Title: "Name a host after its inventory name, keeping /etc/hosts in step", HCL: `task "hostname" {
  hostname {
    name         = host.name
    update_hosts = true
  }
}`},
			{Title: "A fully qualified name and a pretty name", HCL: `task "hostname" {
  hostname {
    name   = "kvm01.lab.example.net"
    pretty = "KVM host 01 (rack 4)"
  }
}`},
		},
	}
}

// Validate checks the length, which the pattern does not.
func (Hostname) Validate(args hostnameArgs) []modules.ArgError {
	var errs []modules.ArgError
	if n := args.Name; len(n) > maxHostname {
		errs = append(errs, modules.ArgError{Arg: "name", Msg: fmt.Sprintf("A hostname has at most %d characters; this one has %d.", maxHostname, len(n))})
	}
	if p := orEmpty(args.Pretty); strings.ContainsAny(p, "\n\r") {
		errs = append(errs, modules.ArgError{Arg: "pretty", Msg: "The pretty hostname must be one line."})
	}
	return errs
}

// Run reads the runtime and persistent names (and /etc/hosts, the pretty name) and changes
// what differs when applying.
func (hn Hostname) Run(ctx context.Context, env *modules.Env, args hostnameArgs, apply bool) (*modules.Result, error) {
	return runHostname(ctx, on(hn.test, env), args, apply)
}

func runHostname(ctx context.Context, m *machine, w hostnameArgs, apply bool) (*modules.Result, error) {
	if !hostnamePattern.MatchString(w.Name) || len(w.Name) > maxHostname {
		return nil, fmt.Errorf("%q is not a valid hostname", w.Name)
	}
	runtime, err := m.nodename()
	if err != nil {
		return nil, err
	}
	hostnameFile := m.path("/etc/hostname")
	raw, _, err := hostfs.ReadOptional(hostnameFile)
	if err != nil {
		return nil, fmt.Errorf("read /etc/hostname: %w", err)
	}
	persistent := parseHostnameFile(raw)
	pretty, err := readPretty(m.path("/etc/machine-info"))
	if err != nil {
		return nil, err
	}

	res := &modules.Result{Status: modules.StatusOK}
	var what []string
	before, after := &strings.Builder{}, &strings.Builder{}
	fmt.Fprintf(before, "runtime: %s\npersistent: %s\n", runtime, orNone(persistent))
	fmt.Fprintf(after, "runtime: %s\npersistent: %s\n", w.Name, w.Name)
	if runtime != w.Name {
		what = append(what, fmt.Sprintf("runtime %s → %s", runtime, w.Name))
	}
	if persistent != w.Name {
		what = append(what, fmt.Sprintf("/etc/hostname %s → %s", orNone(persistent), w.Name))
	}

	var hostsOld, hostsNew []byte
	hostsChanged := false
	if w.UpdateHosts {
		hostsOld, _, err = hostfs.ReadOptional(m.path("/etc/hosts"))
		if err != nil {
			return nil, fmt.Errorf("read /etc/hosts: %w", err)
		}
		var changed []lineChange
		hostsNew, changed = updateHosts(hostsOld, []string{runtime, persistent}, w.Name)
		if len(changed) > 0 {
			hostsChanged = true
			what = append(what, fmt.Sprintf("/etc/hosts (%d line(s))", len(changed)))
			for _, c := range changed {
				if c.before != "" {
					fmt.Fprintf(before, "/etc/hosts: %s\n", c.before)
				}
				fmt.Fprintf(after, "/etc/hosts: %s\n", c.after)
			}
		}
	}

	prettyChange := false
	if w.Pretty != nil && *w.Pretty != pretty {
		if m.lookPath("hostnamectl") == "" {
			res.Warnings = append(res.Warnings, fmt.Sprintf("pretty hostname left as %q: this host has no hostnamectl to set it", pretty))
		} else {
			prettyChange = true
			what = append(what, fmt.Sprintf("pretty %q → %q", pretty, *w.Pretty))
			fmt.Fprintf(before, "pretty: %s\n", orNone(pretty))
			fmt.Fprintf(after, "pretty: %s\n", orNone(*w.Pretty))
		}
	}

	data := &hostnameResult{
		Name: w.Name, Runtime: runtime, Persistent: persistent, Pretty: pretty,
		PreviousRuntime: runtime, PreviousPersistent: persistent,
	}
	res.Data = data
	if len(what) == 0 {
		res.Msg = fmt.Sprintf("hostname is %s (runtime and /etc/hostname)", w.Name)
		return res, nil
	}
	res.Status = modules.DiffStatus(apply)
	res.Msg = modules.Tense(apply, "changed: ", "would change: ") + strings.Join(what, "; ")
	res.Diff = &modules.Diff{Before: before.String(), After: after.String(), BeforeHeader: "hostname (before)", AfterHeader: "hostname (after)"}
	if !apply {
		return res, nil
	}

	// /etc/hosts first: once the name changes, it should already resolve (sudo, for one,
	// complains about a hostname it cannot resolve).
	if hostsChanged {
		if err := writeAtomic(m.path("/etc/hosts"), hostsNew, 0o644); err != nil {
			return nil, err
		}
	}
	if persistent != w.Name {
		if err := writeAtomic(hostnameFile, setHostnameFile(raw, w.Name), 0o644); err != nil {
			return nil, err
		}
	}
	if runtime != w.Name {
		if err := m.sethostname(w.Name); err != nil {
			return nil, fmt.Errorf("set the running hostname to %s: %w", w.Name, err)
		}
	}
	if prettyChange {
		if _, err := m.runOK(ctx, "hostnamectl", "set-hostname", "--pretty", "--", *w.Pretty); err != nil {
			return nil, fmt.Errorf("set the pretty hostname: %w", err)
		}
		if got, err := readPretty(m.path("/etc/machine-info")); err == nil {
			data.Pretty = got
		}
	}
	if got, err := m.nodename(); err == nil {
		data.Runtime = got
	}
	data.Persistent = w.Name
	return res, nil
}

func orNone(s string) string {
	if s == "" {
		return "(none)"
	}
	return s
}

// parseHostnameFile returns the name in an /etc/hostname: its first line that is neither
// empty nor a comment.
func parseHostnameFile(b []byte) string {
	for _, l := range strings.Split(string(b), "\n") {
		l = strings.TrimSpace(l)
		if l != "" && !strings.HasPrefix(l, "#") {
			return l
		}
	}
	return ""
}

// setHostnameFile puts name in place of the file's name line, keeping comments.
func setHostnameFile(b []byte, name string) []byte {
	lines := splitKeep(b)
	for i, l := range lines {
		if t := strings.TrimSpace(l); t != "" && !strings.HasPrefix(t, "#") {
			lines[i] = name
			return joinKeep(lines)
		}
	}
	return joinKeep(append(lines, name))
}

// readPretty reads PRETTY_HOSTNAME from /etc/machine-info (an environment-style file with
// shell quoting); "" when unset or when the file does not exist.
func readPretty(path string) (string, error) {
	b, _, err := hostfs.ReadOptional(path)
	if err != nil {
		return "", fmt.Errorf("read %s: %w", path, err)
	}
	return hostfs.ParseEnvFile(string(b))["PRETTY_HOSTNAME"], nil
}

// localNames are never renamed in /etc/hosts: they name loopback, not the host.
var localNames = map[string]bool{"localhost": true, "localhost.localdomain": true, "localhost4": true,
	"localhost4.localdomain4": true, "localhost6": true, "localhost6.localdomain6": true,
	"ip6-localhost": true, "ip6-loopback": true}

// lineChange is one line of /etc/hosts before and after ("" before: a new line).
type lineChange struct{ before, after string }

func shortName(n string) string {
	if i := strings.IndexByte(n, '.'); i > 0 {
		return n[:i]
	}
	return ""
}

// updateHosts makes /etc/hosts name the host as name: every line naming one of the old
// names names name instead (an old short name becomes the new short name), and when no
// line names it then, the 127.0.1.1 line does, added when missing.
func updateHosts(content []byte, old []string, name string) ([]byte, []lineChange) {
	lines := splitKeep(content)
	// Fully qualified old names first: their short forms map to the new short form, which
	// a short old name must not override.
	old = slices.Clone(old)
	slices.SortStableFunc(old, func(a, b string) int {
		return strings.Count(b, ".") - strings.Count(a, ".")
	})
	renames := map[string]string{}
	for _, o := range old {
		if o == "" || o == name || localNames[o] {
			continue
		}
		if _, ok := renames[o]; !ok {
			renames[o] = name
		}
		if oldShort, newShort := shortName(o), shortName(name); oldShort != "" && newShort != "" && oldShort != newShort && !localNames[oldShort] {
			renames[oldShort] = newShort
		}
	}
	var changes []lineChange
	named := false
	for i, l := range lines {
		nl, names := renameHosts(l, renames)
		if nl != l {
			changes = append(changes, lineChange{before: l, after: nl})
			lines[i] = nl
		}
		for _, n := range names {
			if n == name {
				named = true
			}
		}
	}
	if named {
		return joinKeep(lines), changes
	}
	entry := "127.0.1.1\t" + name
	if s := shortName(name); s != "" {
		entry += " " + s
	}
	for i, l := range lines {
		if ip, _ := hostsFields(l); ip == "127.0.1.1" {
			changes = append(changes, lineChange{before: l, after: entry})
			lines[i] = entry
			return joinKeep(lines), changes
		}
	}
	at := len(lines)
	for i, l := range lines {
		if ip, _ := hostsFields(l); ip == "127.0.0.1" {
			at = i + 1
			break
		}
	}
	lines = append(lines[:at], append([]string{entry}, lines[at:]...)...)
	return joinKeep(lines), append(changes, lineChange{after: entry})
}

// hostsFields splits a hosts line into its address and names, without the comment.
func hostsFields(l string) (string, []string) {
	if i := strings.IndexByte(l, '#'); i >= 0 {
		l = l[:i]
	}
	f := strings.Fields(l)
	if len(f) == 0 {
		return "", nil
	}
	return f[0], f[1:]
}

// renameHosts renames the names of one hosts line (not its address or comment), keeping
// its spacing, and returns the line with the names it has after. A rename that repeats a
// name already on the line is dropped with the space before it.
func renameHosts(l string, renames map[string]string) (string, []string) {
	body, comment := l, ""
	if i := strings.IndexByte(l, '#'); i >= 0 {
		body, comment = l[:i], l[i:]
	}
	// Names already on the line that no rename touches.
	kept := map[string]bool{}
	if _, names := hostsFields(body); len(names) > 0 {
		for _, n := range names {
			if _, ok := renames[n]; !ok {
				kept[n] = true
			}
		}
	}
	var b strings.Builder
	var names []string
	field := 0
	for i := 0; i < len(body); {
		j := i
		for j < len(body) && (body[j] == ' ' || body[j] == '\t') {
			j++
		}
		space := body[i:j]
		k := j
		for k < len(body) && body[k] != ' ' && body[k] != '\t' {
			k++
		}
		tok := body[j:k]
		i = k
		if tok != "" && field > 0 {
			n, renamed := renames[tok]
			if renamed {
				tok = n
			}
			if renamed && (kept[tok] || slices.Contains(names, tok)) {
				continue
			}
			names = append(names, tok)
		}
		if tok != "" {
			field++
		}
		b.WriteString(space)
		b.WriteString(tok)
	}
	return b.String() + comment, names
}
