package transport

import (
	"cmp"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// Target is one host to connect to, after inventory and ssh_config are merged.
type Target struct {
	Name    string // inventory name, for display; the alias ssh_config Host patterns match and %n
	Address string // host name or IP to dial; empty: Name
	Port    int    // 0: 22
	User    string // empty: the local user

	IdentityFile   string   // the inventory's key; tried before IdentityFiles
	IdentityFiles  []string // from ssh_config; empty with no IdentityFile: ~/.ssh/id_{ed25519,ecdsa,rsa}
	IdentitiesOnly bool     // use only the keys named here, also from the agent
	IdentityAgent  string   // agent socket; "none" disables the agent; empty: $SSH_AUTH_SOCK

	CertificateFiles []string // user certificates (CertificateFile); <key>-cert.pub is also tried
	// BatchMode: never ask for anything (a key's passphrase); runbook never asks for
	// passwords in any case.
	BatchMode bool

	ProxyJump string // "[user@]host[:port][,…]"; "none" or empty: direct
	// ProxyCommand is run with sh -c; its stdio is the connection. Given to ResolveTarget,
	// it is as written (with %-tokens); ResolveTarget returns it expanded.
	ProxyCommand string

	KnownHostsFiles []string // verified in order; accept-new writes to the first
	// StrictHostKeyChecking: "yes" (default), "accept-new" or "no". "no"
	// accepts any key and is honoured only when set explicitly.
	StrictHostKeyChecking string
	// HostKeyAlias is the name looked up in (and recorded to) known_hosts instead of the
	// address and port.
	HostKeyAlias   string
	ConnectTimeout time.Duration // 0: the Dialer's default

	// Password is the login password (the inventory's ansible_password), tried with the
	// password and keyboard-interactive methods after the keys; never logged, never in argv
	// or errors.
	Password string

	BecomeMethod   string // "sudo", "su", "doas" or "" (no become)
	BecomeUser     string // empty: root
	BecomePassword string // never logged, never in argv or errors
}

func (t Target) port() int {
	if t.Port == 0 {
		return 22
	}
	return t.Port
}

func (t Target) address() string {
	if t.Address == "" {
		return t.Name
	}
	return t.Address
}

// hostPort is the address dialled and looked up in known_hosts.
func (t Target) hostPort() string {
	return joinHostPort(t.address(), t.port())
}

func joinHostPort(host string, port int) string {
	if strings.Contains(host, ":") && !strings.HasPrefix(host, "[") {
		return "[" + host + "]:" + strconv.Itoa(port)
	}
	return host + ":" + strconv.Itoa(port)
}

// Become returns the target's become settings.
func (t Target) Become() Become {
	return Become{Method: t.BecomeMethod, User: t.BecomeUser, Password: t.BecomePassword}
}

// String never includes the passwords.
func (t Target) String() string {
	return fmt.Sprintf("%s (%s@%s)", t.Name, t.User, t.hostPort())
}

// GoString keeps %#v from printing the passwords.
func (t Target) GoString() string {
	t.BecomePassword = strings.Repeat("*", min(len(t.BecomePassword), 1)*8)
	t.Password = strings.Repeat("*", min(len(t.Password), 1)*8)
	type plain Target
	return fmt.Sprintf("%#v", plain(t))
}

// ResolveTarget merges the OpenSSH client configuration into inv: every
// field inv sets wins, the rest comes from ssh_config (matched against name,
// as `ssh name` would) and then from OpenSSH's defaults.
//
// sshConfigPath is the -F file; empty reads ~/.ssh/config (if it exists) and
// then /etc/ssh/ssh_config, first value wins, as ssh does. "none" reads no
// configuration.
//
// An address or user unfit to name a host (a *NameError: see checkTarget), and a name,
// address or user that a %-token would put into a file name or a ProxyCommand although it
// does not fit there (an *UnsafeTokenError), are refused: inventories may be generated from
// data others control.
func ResolveTarget(name string, inv Target, sshConfigPath string) (Target, error) {
	files, err := configSources(sshConfigPath)
	if err != nil {
		return Target{}, err
	}
	// As Ansible with OpenSSH: Ansible runs `ssh ADDRESS` when the inventory gives an
	// address (ansible_host), else `ssh NAME`; ssh_config is evaluated for what ssh is given:
	// Host and Match host/originalhost patterns match it, %n is it, and a HostName in a block
	// that matches it applies. The inventory's user and port are given as -o options, before
	// any file.
	sshName := cmp.Or(inv.Address, name)
	opts, err := evaluateConfig(files, sshName, inv.User)
	if err != nil {
		return Target{}, fmt.Errorf("%s: %w", name, err)
	}
	var errs []error
	str := opts.str
	// Options whose effect runbook cannot give are refused rather than ignored: each would
	// change where the connection goes or which host keys count.
	for _, r := range refusedOptions {
		if v, ok := opts.get(r.kw); ok && !r.harmless(v.arg()) {
			errs = append(errs, fmt.Errorf("%s: ssh config %s: %s %s is not supported: %s", name, v.where, r.name, v.rest, r.why))
		}
	}

	t := inv
	t.Name = name
	local := localUser()
	home := homeDir()

	// HostName takes %h (what ssh was given) and %%.
	t.Address = expander{host: sshName}.text(str("HostName"), "h")
	if t.Address == "" {
		t.Address = sshName
	}
	// As ssh: a host name is used in lower case (in known_hosts, tokens and the dial); an
	// address, or a value refused below, as written.
	if _, err := netip.ParseAddr(t.Address); err != nil && hostProblem(t.Address) == "" {
		t.Address = strings.ToLower(t.Address)
	}
	if t.Port == 0 {
		if v := str("Port"); v != "" {
			p, err := strconv.Atoi(v)
			if err != nil || p < 1 || p > 65535 {
				errs = append(errs, fmt.Errorf("ssh_config Port %q for %s: not a port number", v, name))
			}
			t.Port = p
		}
	}
	if t.Port == 0 {
		t.Port = 22
	}
	if t.User == "" {
		t.User = str("User")
	}
	if t.User == "" {
		t.User = local
	}

	if t.HostKeyAlias == "" {
		t.HostKeyAlias = str("hostkeyalias")
	}
	exp := newExpander(home, local, t.Address, sshName, t.Port, t.User, t.HostKeyAlias)

	if t.ProxyJump == "" && t.ProxyCommand == "" {
		// Whichever of ProxyJump and ProxyCommand was obtained first; "none" for either
		// means a direct connection.
		if v, ok := opts.get("proxy"); ok {
			if v.kw == "proxyjump" {
				// As ssh 9.2's parse_jump: the text after the keyword, up to a '#'.
				val, _, _ := strings.Cut(v.rest, "#")
				val = strings.TrimSpace(val)
				if strings.ContainsAny(val, " \t\"'\\") {
					errs = append(errs, fmt.Errorf("%s: ssh config %s: ProxyJump %q: hops are separated by commas, without spaces or quotes", name, v.where, val))
				}
				t.ProxyJump = val
			} else {
				// ssh runs the command as written after the keyword, comments and all.
				t.ProxyCommand = strings.TrimSpace(v.rest)
			}
		}
	}
	if strings.EqualFold(t.ProxyJump, "none") {
		t.ProxyJump = ""
	}
	if strings.EqualFold(t.ProxyCommand, "none") {
		t.ProxyCommand = ""
	}
	// The command is expanded where it is used, whoever wrote it (ssh_config or the
	// inventory's ssh arguments); a ProxyJump replaces it.
	var unsafe *UnsafeTokenError
	if t.ProxyJump == "" && t.ProxyCommand != "" {
		cmd, err := exp.command("ProxyCommand", t.ProxyCommand)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", name, err))
			errors.As(err, &unsafe)
		}
		t.ProxyCommand = cmd
	}
	// The address and user go into known_hosts, file names and commands: nothing more is
	// worked out for a host whose values are unfit. A value the ProxyCommand already
	// refused is reported once, by the ProxyCommand.
	if err := checkTarget(t); err != nil {
		var ne *NameError
		if !errors.As(err, &ne) || unsafe == nil || unsafe.Value != ne.Value {
			errs = append(errs, fmt.Errorf("%s: %w", name, err))
		}
		return Target{}, errors.Join(errs...)
	}
	// ProxyJump takes %h %n %p %r and %% (ssh_config(5)); the values passed checkTarget just
	// above, so none adds a hop or a port, and each hop is checked again when dialled.
	t.ProxyJump = exp.text(t.ProxyJump, "hnpr")
	path := func(option, f string) string {
		p, err := exp.path(option, f)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", name, err))
		}
		return p
	}

	if strings.EqualFold(t.IdentityFile, "none") {
		// ssh would read -o IdentityFile=none as "no key file"; from an inventory
		// (ansible_ssh_private_key_file) it is more likely a mistake than a wish for no keys.
		errs = append(errs, fmt.Errorf("%s: the inventory's key file is %q: remove ansible_ssh_private_key_file to use ssh_config's keys, the agent or the default ones, or give IdentityFile none in ssh_config for no key files", name, t.IdentityFile))
	} else if t.IdentityFile != "" {
		t.IdentityFile = path("IdentityFile", t.IdentityFile)
	}
	if len(t.IdentityFiles) == 0 {
		for _, f := range opts.lists["identityfile"] {
			if strings.EqualFold(f.arg(), "none") {
				// No key file, and not the default ones either (auth.go skips it).
				t.IdentityFiles = appendUnique(t.IdentityFiles, "none")
				continue
			}
			t.IdentityFiles = appendUnique(t.IdentityFiles, path("IdentityFile", f.arg()))
		}
	}
	if len(t.CertificateFiles) == 0 {
		for _, f := range opts.lists["certificatefile"] {
			if strings.EqualFold(f.arg(), "none") {
				continue
			}
			t.CertificateFiles = appendUnique(t.CertificateFiles, path("CertificateFile", f.arg()))
		}
	} else {
		for i, f := range t.CertificateFiles {
			t.CertificateFiles[i] = path("CertificateFile", f)
		}
	}
	if !inv.BatchMode {
		if v := str("batchmode"); v != "" {
			b, ok := flag(v)
			if !ok {
				errs = append(errs, fmt.Errorf("ssh_config BatchMode %q for %s: want yes or no", v, name))
			}
			t.BatchMode = b
		}
	}
	if !inv.IdentitiesOnly {
		t.IdentitiesOnly = yes(str("IdentitiesOnly"))
	}
	if t.IdentityAgent == "" {
		if v := str("IdentityAgent"); v != "" && v != "SSH_AUTH_SOCK" {
			if strings.HasPrefix(v, "$") {
				v = os.Getenv(strings.Trim(v[1:], "{}"))
			} else if !strings.EqualFold(v, "none") {
				v = path("IdentityAgent", v)
			}
			t.IdentityAgent = v
		}
	}

	if len(t.KnownHostsFiles) == 0 {
		var files []string
		if v, ok := opts.get("userknownhostsfile"); ok {
			if !strings.EqualFold(v.arg(), "none") {
				for _, f := range v.args {
					files = append(files, path("UserKnownHostsFile", f))
				}
			}
		} else {
			files = []string{filepath.Join(home, ".ssh", "known_hosts")}
		}
		if v, ok := opts.get("globalknownhostsfile"); ok {
			if !strings.EqualFold(v.arg(), "none") {
				for _, f := range v.args {
					files = append(files, path("GlobalKnownHostsFile", f))
				}
			}
		} else {
			files = append(files, "/etc/ssh/ssh_known_hosts")
		}
		t.KnownHostsFiles = files
	} else {
		files := make([]string, len(t.KnownHostsFiles))
		for i, f := range t.KnownHostsFiles {
			files[i] = path("UserKnownHostsFile", f)
		}
		t.KnownHostsFiles = files
	}

	if t.StrictHostKeyChecking == "" {
		t.StrictHostKeyChecking = str("StrictHostKeyChecking")
	}
	shk, err := normalizeStrict(t.StrictHostKeyChecking)
	if err != nil {
		errs = append(errs, fmt.Errorf("%s: %w", name, err))
	}
	t.StrictHostKeyChecking = shk

	if t.ConnectTimeout == 0 {
		if v := str("ConnectTimeout"); v != "" && !strings.EqualFold(v, "none") {
			d, err := sshDuration(v)
			if err != nil {
				errs = append(errs, fmt.Errorf("ssh_config ConnectTimeout %q for %s: %v", v, name, err))
			}
			t.ConnectTimeout = d
		}
	}
	if t.BecomeMethod != "" && t.BecomeUser == "" {
		t.BecomeUser = "root"
	}
	if err := errors.Join(errs...); err != nil {
		return Target{}, err
	}
	return t, nil
}

// normalizeStrict maps the StrictHostKeyChecking spellings OpenSSH accepts
// to "yes", "accept-new" or "no". "ask" means "yes" here: there is nobody to ask.
func normalizeStrict(v string) (string, error) {
	switch strings.ToLower(v) {
	case "", "yes", "ask", "true":
		return "yes", nil
	case "accept-new":
		return "accept-new", nil
	case "no", "off", "false":
		return "no", nil
	}
	return "", fmt.Errorf("StrictHostKeyChecking %q: want yes, accept-new or no", v)
}

func yes(v string) bool {
	switch strings.ToLower(v) {
	case "yes", "true":
		return true
	}
	return false
}

func appendUnique(list []string, s string) []string {
	for _, x := range list {
		if x == s {
			return list
		}
	}
	return append(list, s)
}

// configSources are the files ResolveTarget reads: the -F file (which must exist), or
// ~/.ssh/config and /etc/ssh/ssh_config where they exist; "none": no file.
func configSources(path string) ([]configSource, error) {
	switch {
	case strings.EqualFold(path, "none"):
		return nil, nil
	case path != "":
		if _, err := os.Stat(path); err != nil {
			return nil, fmt.Errorf("ssh config: %w", err)
		}
		return []configSource{{path: path, user: true, explicit: true}}, nil
	}
	return []configSource{
		{path: filepath.Join(homeDir(), ".ssh", "config"), user: true, checkPerm: true},
		{path: "/etc/ssh/ssh_config"},
	}, nil
}

// refusedOptions are the ssh_config options whose effect runbook cannot give and that would
// change where a connection goes or which host keys are accepted: set for a host (to
// anything but harmless values), they are an error, not silently ignored.
var refusedOptions = []struct {
	kw, name string
	harmless func(string) bool
	why      string
}{
	{"canonicalizehostname", "CanonicalizeHostname", isNo, "runbook does not canonicalize host names; set it to no for these hosts or give the full name as HostName"},
	{"knownhostscommand", "KnownHostsCommand", isNone, "runbook does not run commands to find host keys; list them in a known_hosts file"},
	{"revokedhostkeys", "RevokedHostKeys", isNone, "mark revoked keys with @revoked lines in a known_hosts file instead"},
	{"bindaddress", "BindAddress", func(string) bool { return false }, "runbook does not choose the local address"},
	{"bindinterface", "BindInterface", func(string) bool { return false }, "runbook does not choose the local interface"},
	{"proxyusefdpass", "ProxyUseFdpass", isNo, "runbook talks to a ProxyCommand over its standard input and output"},
	{"refuseconnection", "RefuseConnection", isNo, "ssh_config says not to connect to this host"},
}

func isNo(v string) bool {
	b, ok := flag(v)
	return ok && !b
}

func isNone(v string) bool { return strings.EqualFold(v, "none") }

// flag reads an ssh_config yes/no value.
func flag(v string) (value, ok bool) {
	switch strings.ToLower(v) {
	case "yes", "true":
		return true, true
	case "no", "false":
		return false, true
	}
	return false, false
}

// sshDuration reads an ssh_config time: whole seconds, or a sequence of numbers each with
// a unit s, m, h, d or w (as sshd_config(5) TIME FORMATS).
func sshDuration(v string) (time.Duration, error) {
	bad := errors.New("want a time such as 10, 30s or 1m30s")
	var total time.Duration
	for s := v; s != ""; {
		i := 0
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
		}
		if i == 0 || i > 9 {
			return 0, bad
		}
		n, _ := strconv.Atoi(s[:i])
		unit := time.Second
		s = s[i:]
		if s != "" {
			switch s[0] {
			case 's', 'S':
			case 'm', 'M':
				unit = time.Minute
			case 'h', 'H':
				unit = time.Hour
			case 'd', 'D':
				unit = 24 * time.Hour
			case 'w', 'W':
				unit = 7 * 24 * time.Hour
			default:
				return 0, bad
			}
			s = s[1:]
		} else if i != len(v) {
			return 0, bad // a bare number only on its own
		}
		total += time.Duration(n) * unit
		if total > 365*24*time.Hour {
			return 0, errors.New("longer than a year")
		}
	}
	return total, nil
}

func homeDir() string {
	if h, err := os.UserHomeDir(); err == nil {
		return h
	}
	if u, err := user.Current(); err == nil {
		return u.HomeDir
	}
	return "/"
}

func localUser() string {
	if u, err := user.Current(); err == nil {
		return u.Username
	}
	return os.Getenv("USER")
}
