package transport

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/kevinburke/ssh_config"
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

	ProxyJump string // "[user@]host[:port][,…]"; "none" or empty: direct
	// ProxyCommand is run with sh -c; its stdio is the connection. Given to ResolveTarget,
	// it is as written (with %-tokens); ResolveTarget returns it expanded.
	ProxyCommand string

	KnownHostsFiles []string // verified in order; accept-new writes to the first
	// StrictHostKeyChecking: "yes" (default), "accept-new" or "no". "no"
	// accepts any key and is honoured only when set explicitly.
	StrictHostKeyChecking string
	ConnectTimeout        time.Duration // 0: the Dialer's default

	// Password is the login password (the inventory's ansible_password), tried with the
	// password and keyboard-interactive methods after the keys; never logged, never in argv
	// or errors.
	Password string

	BecomeMethod   string // "sudo" or ""
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
	cfgs, err := loadConfigs(sshConfigPath)
	if err != nil {
		return Target{}, err
	}
	get := func(key string) (string, error) {
		for _, c := range cfgs {
			v, err := c.cfg.Get(name, key)
			if err != nil {
				return "", fmt.Errorf("%s: %s: %w", c.path, key, err)
			}
			if v != "" {
				return v, nil
			}
		}
		return "", nil
	}
	getAll := func(key string) ([]string, error) {
		var all []string
		for _, c := range cfgs {
			v, err := c.cfg.GetAll(name, key)
			if err != nil {
				return nil, fmt.Errorf("%s: %s: %w", c.path, key, err)
			}
			all = append(all, v...)
		}
		return all, nil
	}
	var errs []error
	str := func(key string) string {
		v, err := get(key)
		if err != nil {
			errs = append(errs, err)
		}
		return v
	}

	t := inv
	t.Name = name
	local := localUser()
	home := homeDir()

	if t.Address == "" {
		// HostName takes %h (the name looked up) and %%.
		t.Address = expander{host: name}.text(str("HostName"), "h")
	}
	if t.Address == "" {
		t.Address = name
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

	exp := expander{home: home, local: local, host: t.Address, alias: name, port: t.Port, user: t.User}

	// OpenSSH uses whichever of ProxyJump and ProxyCommand comes first; we
	// cannot see the order across keys, so ProxyJump wins when both are set.
	if t.ProxyJump == "" && t.ProxyCommand == "" {
		t.ProxyJump = str("ProxyJump")
		if strings.EqualFold(t.ProxyJump, "none") {
			t.ProxyJump = ""
		} else if t.ProxyJump == "" {
			t.ProxyCommand = str("ProxyCommand")
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
	path := func(option, f string) string {
		p, err := exp.path(option, f)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", name, err))
		}
		return p
	}

	if t.IdentityFile != "" {
		t.IdentityFile = path("IdentityFile", t.IdentityFile)
	}
	if len(t.IdentityFiles) == 0 {
		files, err := getAll("IdentityFile")
		if err != nil {
			errs = append(errs, err)
		}
		for _, f := range files {
			if strings.EqualFold(f, "none") {
				continue
			}
			t.IdentityFiles = appendUnique(t.IdentityFiles, path("IdentityFile", f))
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
		if v := str("UserKnownHostsFile"); v != "" {
			if !strings.EqualFold(v, "none") {
				for _, f := range strings.Fields(v) {
					files = append(files, path("UserKnownHostsFile", f))
				}
			}
		} else {
			files = []string{filepath.Join(home, ".ssh", "known_hosts")}
		}
		if v := str("GlobalKnownHostsFile"); v != "" {
			if !strings.EqualFold(v, "none") {
				for _, f := range strings.Fields(v) {
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
			n, err := strconv.Atoi(v)
			if err != nil || n < 0 {
				errs = append(errs, fmt.Errorf("ssh_config ConnectTimeout %q for %s: want whole seconds", v, name))
			}
			t.ConnectTimeout = time.Duration(n) * time.Second
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

type configFile struct {
	path string
	cfg  *ssh_config.Config
}

func loadConfigs(path string) ([]configFile, error) {
	var paths []string
	explicit := path != ""
	switch {
	case strings.EqualFold(path, "none"):
		return nil, nil
	case explicit:
		paths = []string{path}
	default:
		paths = []string{filepath.Join(homeDir(), ".ssh", "config"), "/etc/ssh/ssh_config"}
	}
	var out []configFile
	for _, p := range paths {
		cfg, err := parsedConfig(p)
		if err != nil {
			if !explicit && errors.Is(err, fs.ErrNotExist) {
				continue
			}
			return nil, err
		}
		out = append(out, configFile{path: p, cfg: cfg})
	}
	return out, nil
}

// parsedConfigs keeps each ssh_config file parsed once while it is unchanged (same size,
// mtime and inode): a run resolves every host against the same files. A parsed Config is
// only read afterwards.
var parsedConfigs struct {
	sync.Mutex
	m map[string]parsedEntry
}

type parsedEntry struct {
	size, ino int64
	mtime     time.Time
	cfg       *ssh_config.Config
}

func parsedConfig(p string) (*ssh_config.Config, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, fmt.Errorf("ssh config: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("ssh config: %w", err)
	}
	var ino int64
	if sys, ok := st.Sys().(*syscall.Stat_t); ok {
		ino = int64(sys.Ino)
	}
	parsedConfigs.Lock()
	e, ok := parsedConfigs.m[p]
	parsedConfigs.Unlock()
	if ok && e.size == st.Size() && e.ino == ino && e.mtime.Equal(st.ModTime()) {
		return e.cfg, nil
	}
	cfg, err := ssh_config.Decode(f)
	if err != nil {
		return nil, fmt.Errorf("ssh config %s: %w", p, err)
	}
	parsedConfigs.Lock()
	if parsedConfigs.m == nil {
		parsedConfigs.m = map[string]parsedEntry{}
	}
	parsedConfigs.m[p] = parsedEntry{size: st.Size(), ino: ino, mtime: st.ModTime(), cfg: cfg}
	parsedConfigs.Unlock()
	return cfg, nil
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
