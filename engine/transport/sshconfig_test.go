package transport

import (
	"bufio"
	"bytes"
	"cmp"
	"crypto/sha1"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"
)

// copyFixture copies testdata/DIR to a temporary directory and fills in its placeholders:
// @HOMEREL@ is ~/ and enough ../ to reach / from any home directory, @DIR@ the copy's path
// without its leading /, @ABS@ the copy's path.
func copyFixture(t *testing.T, dir string) string {
	t.Helper()
	dst := t.TempDir()
	err := filepath.WalkDir(filepath.Join("testdata", dir), func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(filepath.Join("testdata", dir), p)
		out := filepath.Join(dst, rel)
		if d.IsDir() {
			return os.MkdirAll(out, 0o755)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		b = bytes.ReplaceAll(b, []byte("@HOMEREL@"), []byte("~/"+strings.Repeat("../", 24)))
		b = bytes.ReplaceAll(b, []byte("@DIR@"), []byte(strings.TrimPrefix(dst, "/")))
		b = bytes.ReplaceAll(b, []byte("@ABS@"), []byte(dst))
		return os.WriteFile(out, b, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
	return dst
}

// sshG runs OpenSSH's own resolution of name (ssh -G) and returns its options, each
// keyword with all its values.
func sshG(t *testing.T, ssh, cfg, name string) map[string][]string {
	t.Helper()
	cmd := exec.Command(ssh, "-G", "-F", cfg, name)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("ssh -G -F %s %s: %v\n%s", cfg, name, err, stderr.Bytes())
	}
	m := map[string][]string{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		k, v, _ := strings.Cut(sc.Text(), " ")
		m[k] = append(m[k], v)
	}
	return m
}

// TestSSHConfigAgreesWithOpenSSH resolves names against ssh_config fixtures with
// ResolveTarget and with OpenSSH's `ssh -G`, and compares where each goes and how: host
// name, port, user, identity and certificate files, ProxyJump/ProxyCommand, known_hosts
// files, StrictHostKeyChecking, HostKeyAlias and ConnectTimeout. The fixtures exercise Host
// patterns with negation, Match host/user/originalhost/all/final, Include (relative to the
// home directory, and globs, nested under Match), tokens, and HostName with %h.
//
// ssh -G leaves tokens in file names and commands as written (OpenSSH 9.2) and expands ~
// with the passwd entry's home directory; the test expands them with ssh's own host name,
// port and user, as ssh would when connecting, and with the test's $HOME.
func TestSSHConfigAgreesWithOpenSSH(t *testing.T) {
	ssh, err := exec.LookPath("ssh")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("OpenSSH's ssh is needed to check ssh_config resolution: %v", err)
		}
		t.Skipf("no ssh: %v", err)
	}
	home := t.TempDir()
	t.Setenv("HOME", home)
	pw, err := user.Current()
	if err != nil {
		t.Fatal(err)
	}
	local := localUser()
	fqdn, _ := os.Hostname()
	dir := copyFixture(t, "sshg")
	cfg := filepath.Join(dir, "config")

	names := []string{"web1", "web2", "web3", "Web4", "db-1", "db-2", "db-3", "app", "app-old", "app-x", "other", "plain", "dotted", "neg", "quoted"}
	for _, name := range names {
		t.Run(name, func(t *testing.T) {
			g := sshG(t, ssh, cfg, name)
			one := func(k string) string {
				if v := g[k]; len(v) > 0 {
					return v[0]
				}
				return ""
			}
			host, port, ruser := one("hostname"), one("port"), one("user")
			alias := cmp.Or(one("hostkeyalias"), name)
			// What ssh would do with a value when connecting: ~ and tokens.
			expand := func(s string, tokens string) string {
				if s == "~" || strings.HasPrefix(s, "~/") {
					s = home + s[1:]
				} else if strings.HasPrefix(s, pw.HomeDir+"/") {
					s = home + s[len(pw.HomeDir):] // ssh -G expanded ~ with the passwd home
				}
				var b strings.Builder
				for i := 0; i < len(s); i++ {
					if s[i] != '%' || i+1 == len(s) || strings.IndexByte(tokens+"%", s[i+1]) < 0 {
						b.WriteByte(s[i])
						continue
					}
					i++
					switch s[i] {
					case '%':
						b.WriteByte('%')
					case 'h':
						b.WriteString(host)
					case 'p':
						b.WriteString(port)
					case 'r':
						b.WriteString(ruser)
					case 'n':
						b.WriteString(name)
					case 'u':
						b.WriteString(local)
					case 'd':
						b.WriteString(home)
					case 'i':
						b.WriteString(strconv.Itoa(os.Getuid()))
					case 'l':
						b.WriteString(fqdn)
					case 'L':
						b.WriteString(strings.Split(fqdn, ".")[0])
					case 'k':
						b.WriteString(alias)
					case 'C': // ssh_config(5): hash of %l%h%p%r
						fmt.Fprintf(&b, "%x", sha1.Sum([]byte(fqdn+host+port+ruser)))
					}
				}
				return b.String()
			}
			files := func(k string) []string {
				var out []string
				for _, v := range g[k] {
					for _, f := range strings.Fields(v) {
						if strings.EqualFold(f, "none") {
							continue
						}
						out = append(out, expand(f, pathTokens))
					}
				}
				return out
			}

			got, err := ResolveTarget(name, Target{}, cfg)
			if err != nil {
				t.Fatalf("ResolveTarget: %v", err)
			}

			want := map[string]string{
				"hostname": host, "port": port, "user": ruser, "hostkeyalias": one("hostkeyalias"),
				"proxyjump": one("proxyjump"), "proxycommand": expand(one("proxycommand"), "hnpr"),
			}
			gotm := map[string]string{
				"hostname": strings.ToLower(got.Address), "port": strconv.Itoa(got.Port), "user": got.User, "hostkeyalias": got.HostKeyAlias,
				"proxyjump": got.ProxyJump, "proxycommand": got.ProxyCommand,
			}
			for k := range want {
				if want[k] != gotm[k] {
					t.Errorf("%s: ssh -G says %q, ResolveTarget %q", k, want[k], gotm[k])
				}
			}

			// IdentityFile: ssh lists its defaults when none is configured; so does
			// ResolveTarget, by leaving the list empty (auth.go tries the defaults).
			var wantIDs []string
			for _, f := range g["identityfile"] {
				wantIDs = append(wantIDs, expand(f, pathTokens)) // "none" stays: no default keys
			}
			if defaults := !strings.Contains(strings.Join(g["identityfile"], " "), "%") && len(g["identityfile"]) > 1 &&
				strings.HasPrefix(g["identityfile"][0], "~/.ssh/id_rsa"); defaults {
				wantIDs = nil
			}
			if !reflect.DeepEqual(wantIDs, got.IdentityFiles) {
				t.Errorf("identityfile: ssh -G says %q, ResolveTarget %q", wantIDs, got.IdentityFiles)
			}
			if w := files("certificatefile"); !reflect.DeepEqual(w, got.CertificateFiles) {
				t.Errorf("certificatefile: ssh -G says %q, ResolveTarget %q", w, got.CertificateFiles)
			}

			// known_hosts: runbook reads the user's files and then the global ones; it
			// does not read OpenSSH's legacy known_hosts2 files.
			var wantKH []string
			for _, f := range append(files("userknownhostsfile"), files("globalknownhostsfile")...) {
				if !strings.HasSuffix(f, "known_hosts2") {
					wantKH = append(wantKH, f)
				}
			}
			if !reflect.DeepEqual(wantKH, got.KnownHostsFiles) {
				t.Errorf("userknownhostsfile: ssh -G says %q, ResolveTarget %q", wantKH, got.KnownHostsFiles)
			}

			shk := map[string]string{"true": "yes", "ask": "yes", "false": "no", "accept-new": "accept-new"}[one("stricthostkeychecking")]
			if shk != got.StrictHostKeyChecking {
				t.Errorf("stricthostkeychecking: ssh -G says %q (%s), ResolveTarget %q", shk, one("stricthostkeychecking"), got.StrictHostKeyChecking)
			}
			var ct time.Duration
			if v := one("connecttimeout"); v != "none" {
				n, err := strconv.Atoi(v)
				if err != nil {
					t.Fatalf("ssh -G connecttimeout %q", v)
				}
				ct = time.Duration(n) * time.Second
			}
			if ct != got.ConnectTimeout {
				t.Errorf("connecttimeout: ssh -G says %v, ResolveTarget %v", ct, got.ConnectTimeout)
			}
		})
	}
}

// TestSSHConfigEvaluation covers what ssh -G cannot be asked about, or what runbook refuses
// where ssh would do something runbook does not (Match exec, options it cannot honour).
func TestSSHConfigEvaluation(t *testing.T) {
	home := t.TempDir()
	t.Setenv("HOME", home)
	t.Setenv("RB_UNSET_FOR_TEST", "")
	os.Unsetenv("RB_UNSET_FOR_TEST")
	if err := os.MkdirAll(filepath.Join(home, ".ssh"), 0o700); err != nil {
		t.Fatal(err)
	}
	write := func(p, s string, mode os.FileMode) {
		if err := os.WriteFile(p, []byte(s), mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
	}
	write(filepath.Join(home, ".ssh", "inc.conf"), "Host a\n  HostName included.example\n", 0o644)
	if err := os.MkdirAll(filepath.Join(home, ".ssh", "d", "a-dir"), 0o700); err != nil {
		t.Fatal(err)
	}
	write(filepath.Join(home, ".ssh", "d", "b.conf"), "Host a\n  HostName from-d.example\n", 0o644)
	write(filepath.Join(home, ".ssh", "d", ".b.conf.swp"), "Host b\n  HostName leftover.example\n", 0o644)
	write(filepath.Join(home, ".ssh", "loop.conf"), "Include loop.conf\n", 0o644)
	if err := os.MkdirAll(filepath.Join(home, ".ssh", "wide"), 0o700); err != nil {
		t.Fatal(err)
	}
	for i := range 1025 {
		write(filepath.Join(home, ".ssh", "wide", fmt.Sprintf("%04d.conf", i)), "", 0o644)
	}
	write(filepath.Join(home, ".ssh", "writable.conf"), "Host *\n  User w\n", 0o666)

	tests := []struct {
		name, config, host string
		inv                Target
		check              func(Target) string // "" if fine
		wantErr            []string
	}{
		{name: "Match exec refused, with file and line", config: "Host *\n  Port 22\nMatch exec \"test -e /x\"\n  User x\n", host: "a",
			wantErr: []string{"config:3", "Match exec", "does not run commands"}},
		{name: "Match exec after a failed criterion is not run", config: "Match host nomatch exec \"false\"\n  User x\n", host: "a",
			check: func(g Target) string { return want(g.User, localUser()) }},
		{name: "unknown Match criterion", config: "Match tagged prod\n  User x\n", host: "a", wantErr: []string{"config:1", `"tagged" is not supported`}},
		{name: "Match all with others", config: "Match all host a\n", host: "a", wantErr: []string{"Match all cannot be combined"}},
		{name: "unknown option", config: "Host zz\n  Frobnicate yes\n", host: "a", wantErr: []string{"config:2", `unknown option "frobnicate"`}},
		{name: "IgnoreUnknown", config: "IgnoreUnknown Frob*,UseKeychain\nFrobnicate yes\nUseKeychain yes\n", host: "a",
			check: func(g Target) string { return want(g.Address, "a") }},
		{name: "relative Include is in ~/.ssh", config: "Include inc.conf\n", host: "a",
			check: func(g Target) string { return want(g.Address, "included.example") }},
		{name: "Include under a Host that does not apply", config: "Host b\n  Include inc.conf\n", host: "a",
			check: func(g Target) string { return want(g.Address, "a") }},
		{name: "Include glob matching a directory", config: "Include d/*\n", host: "a",
			check: func(g Target) string { return want(g.Address, "from-d.example") }},
		{name: "Include fan-out bounded", config: "Include wide/*\n", host: "a", wantErr: []string{"config:1", "more than 1024 included files"}},
		{name: "Include glob skips dotfiles", config: "Include d/*\n", host: "b",
			check: func(g Target) string { return want(g.Address, "b") }},
		{name: "Include loop", config: "Include loop.conf\n", host: "a", wantErr: []string{"nested Include"}},
		{name: "included file writable by others", config: "Include writable.conf\n", host: "a", wantErr: []string{"writable.conf", "bad owner or permissions"}},
		{name: "CanonicalizeHostname refused", config: "Host a\n  CanonicalizeHostname yes\n", host: "a",
			wantErr: []string{"config:2", "CanonicalizeHostname yes is not supported"}},
		{name: "CanonicalizeHostname elsewhere", config: "Host b\n  CanonicalizeHostname yes\nHost *\n  CanonicalizeHostname no\n", host: "a",
			check: func(g Target) string { return want(g.Address, "a") }},
		{name: "RefuseConnection", config: "Match originalhost a\n  RefuseConnection yes\n", host: "a", wantErr: []string{"config:2", "RefuseConnection yes is not supported: ssh_config says not to connect"}},
		{name: "KnownHostsCommand refused", config: "KnownHostsCommand /bin/x %H\n", host: "a", wantErr: []string{"KnownHostsCommand"}},
		{name: "CheckHostIP ignored", config: "CheckHostIP yes\n", host: "a", check: func(g Target) string { return want(g.Address, "a") }},
		{name: "Match user sees the inventory's user", config: "Match user admin\n  Port 2200\n", host: "a", inv: Target{User: "admin"},
			check: func(g Target) string { return want(strconv.Itoa(g.Port), "2200") }},
		{name: "Match host sees the inventory's address", config: "Match host 10.9.*\n  User net\n", host: "a", inv: Target{Address: "10.9.9.9"},
			check: func(g Target) string { return want(g.Address+" "+g.User, "10.9.9.9 net") }},
		{name: "the inventory's address beats HostName", config: "Host a\n  HostName 10.1.1.1\n", host: "a", inv: Target{Address: "192.0.2.7"},
			check: func(g Target) string { return want(g.Address, "192.0.2.7") }},
		{name: "ProxyCommand obtained before ProxyJump wins", config: "Host a\n  ProxyCommand nc %h %p\nHost *\n  ProxyJump j\n", host: "a",
			check: func(g Target) string { return want(g.ProxyCommand+"|"+g.ProxyJump, "nc a 22|") }},
		{name: "unset environment variable", config: "IdentityFile ${RB_UNSET_FOR_TEST}/k\n", host: "a", wantErr: []string{`"RB_UNSET_FOR_TEST" is not set`}},
		{name: "ConnectTimeout with units", config: "ConnectTimeout 1m30s\n", host: "a", check: func(g Target) string { return want(g.ConnectTimeout.String(), "1m30s") }},
		{name: "BatchMode", config: "BatchMode yes\n", host: "a", check: func(g Target) string { return want(strconv.FormatBool(g.BatchMode), "true") }},
		{name: "bad BatchMode", config: "BatchMode maybe\n", host: "a", wantErr: []string{"BatchMode"}},
		// A ProxyJump hop reaches ResolveTarget as dial.go's parseJumps leaves it: the alias
		// as the name, no address, the hop's own user and port if written.
		{name: "a ProxyJump hop named by alias", config: "Host bastion\n  HostName 10.0.0.1\n  Port 22\n  User ops\n", host: "bastion", inv: Target{User: "admin", Port: 2200},
			check: func(g Target) string {
				return want(g.Address+" "+strconv.Itoa(g.Port)+" "+g.User, "10.0.0.1 2200 admin")
			}},
		{name: "tokens in ProxyJump", config: "Host a\n  HostName 10.0.0.9\n  ProxyJump jump-%n,ops@gw-%h:%p\n", host: "a",
			check: func(g Target) string { return want(g.ProxyJump, "jump-a,ops@gw-10.0.0.9:22") }},
		{name: "unterminated quote", config: "Host \"a\n", host: "a", wantErr: []string{"config:1", "unterminated quote"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := filepath.Join(t.TempDir(), "config")
			write(cfg, tt.config, 0o644)
			got, err := ResolveTarget(tt.host, tt.inv, cfg)
			if tt.wantErr != nil {
				if err == nil {
					t.Fatalf("ResolveTarget = %+v; want an error", got)
				}
				for _, w := range tt.wantErr {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("error %q does not mention %q", err, w)
					}
				}
				return
			}
			if err != nil {
				t.Fatalf("ResolveTarget: %v", err)
			}
			if msg := tt.check(got); msg != "" {
				t.Error(msg)
			}
		})
	}
}

func want(got, want string) string {
	if got != want {
		return fmt.Sprintf("got %q, want %q", got, want)
	}
	return ""
}

// FuzzSSHConfig: any ssh_config text resolves to a target or an error, never a panic, and
// a resolved target's values passed the name rules.
func FuzzSSHConfig(f *testing.F) {
	for _, s := range []string{
		"Host a\n  HostName %h.x\n  Port 2200\n",
		"Match host a,!b user \"x y\" originalhost a final\n  User u\nMatch all\n  ProxyJump j\n",
		"Host=a\nHostName = b\nInclude nothing/*.conf\nIdentityFile ~/%C/%k\n",
		"Match exec \"true\"\nMatch !all\nHost \"unterminated\n",
		"ConnectTimeout 1w2d3h4m5s\nBatchMode yes\nCertificateFile ${HOME}/c\n",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, conf string) {
		t.Setenv("HOME", "/nonexistent-home")
		cfg := filepath.Join(t.TempDir(), "config")
		if err := os.WriteFile(cfg, []byte(conf), 0o600); err != nil {
			t.Fatal(err)
		}
		got, err := ResolveTarget("a", Target{}, cfg)
		if err != nil {
			return
		}
		if err := checkTarget(got); err != nil {
			t.Fatalf("resolved %+v, which checkTarget refuses: %v", got, err)
		}
	})
}

// TestSSHConfigRefusedLikeOpenSSH: lines OpenSSH's ssh -G refuses are errors for
// ResolveTarget too, naming the file and line, not values taken in part.
func TestSSHConfigRefusedLikeOpenSSH(t *testing.T) {
	ssh, err := exec.LookPath("ssh")
	if err != nil {
		t.Skipf("no ssh: %v", err)
	}
	t.Setenv("HOME", t.TempDir())
	tests := []struct{ name, config, want string }{
		{"HostName with two words", "Host a\n  HostName a b\n", "config:2"},
		{"Port with two", "Host *\n  Port 22 23\n", "config:2"},
		{"IdentityFile with two", "IdentityFile /k/a /k/b\n", "config:1"},
		{"CertificateFile with two", "Host b\n  CertificateFile /c/a b\n", "config:2"}, // even where it does not apply
		{"unterminated quote", "Host a\n  User 'x\n", "config:2"},
		{"User with two", "User a b # c\n", "config:1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := filepath.Join(t.TempDir(), "config")
			if err := os.WriteFile(cfg, []byte(tt.config), 0o600); err != nil {
				t.Fatal(err)
			}
			if out, err := exec.Command(ssh, "-G", "-F", cfg, "a").CombinedOutput(); err == nil {
				t.Fatalf("ssh -G accepts it:\n%s", out)
			}
			_, err := ResolveTarget("a", Target{}, cfg)
			var ce *ConfigError
			if !errors.As(err, &ce) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("ResolveTarget: %v; want a ConfigError at %s", err, tt.want)
			}
		})
	}
}

// TestSSHConfigAddressAsAnsible states the rule for a host whose inventory entry gives an
// address (ansible_host): Ansible runs `ssh ADDRESS`, so ssh_config's Host and Match
// host/originalhost patterns see the address, not the inventory name, %n is the address,
// and a HostName in a block that matches the address applies. Without an address, the
// name is what ssh is given. Compared with ssh -G over testdata/sshg/address.conf.
func TestSSHConfigAddressAsAnsible(t *testing.T) {
	ssh, err := exec.LookPath("ssh")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("OpenSSH's ssh is needed: %v", err)
		}
		t.Skipf("no ssh: %v", err)
	}
	t.Setenv("HOME", t.TempDir())
	cfg := filepath.Join(copyFixture(t, "sshg"), "address.conf")
	tests := []struct{ name, address string }{
		{"web1", "10.0.1.5"}, // Host web1 does not apply; Host 10.0.* and Match originalhost do
		{"web1", "10.0.2.5"}, // a HostName in the address's block applies
		{"web1", ""},         // no address: ssh web1
		{"db", "192.0.2.9"},
	}
	for _, tt := range tests {
		t.Run(tt.name+"@"+tt.address, func(t *testing.T) {
			arg := cmp.Or(tt.address, tt.name)
			g := sshG(t, ssh, cfg, arg)
			one := func(k string) string {
				if v := g[k]; len(v) > 0 {
					return v[0]
				}
				return ""
			}
			host, port := one("hostname"), one("port")
			pc := strings.NewReplacer("%n", arg, "%h", host, "%p", port).Replace(one("proxycommand"))
			got, err := ResolveTarget(tt.name, Target{Address: tt.address}, cfg)
			if err != nil {
				t.Fatalf("ResolveTarget: %v", err)
			}
			if w, g := host+" "+port+" "+one("user")+" "+pc, fmt.Sprintf("%s %d %s %s", got.Address, got.Port, got.User, got.ProxyCommand); w != g {
				t.Errorf("ssh -G %s says %q; ResolveTarget(%s, address %q) %q", arg, w, tt.name, tt.address, g)
			}
		})
	}
}

// ~/.ssh/config writable by others is refused, as ssh refuses it ("Bad owner or
// permissions"); the same file named with -F is read, as ssh reads it.
func TestUserSSHConfigPermissions(t *testing.T) {
	home := t.TempDir()
	t.Setenv("HOME", home)
	if err := os.MkdirAll(filepath.Join(home, ".ssh"), 0o700); err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(home, ".ssh", "config")
	if err := os.WriteFile(cfg, []byte("Host a\n  HostName b.example\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(cfg, 0o664); err != nil {
		t.Fatal(err)
	}
	_, err := ResolveTarget("a", Target{}, "")
	if err == nil || !strings.Contains(err.Error(), "bad owner or permissions") || !strings.Contains(err.Error(), cfg) {
		t.Errorf("ResolveTarget with a group-writable ~/.ssh/config: %v; want bad owner or permissions", err)
	}
	if got, err := ResolveTarget("a", Target{}, cfg); err != nil || got.Address != "b.example" {
		t.Errorf("the same file with -F: %+v, %v", got, err)
	}
	if err := os.Chmod(cfg, 0o644); err != nil {
		t.Fatal(err)
	}
	if got, err := ResolveTarget("a", Target{}, ""); err != nil || got.Address != "b.example" {
		t.Errorf("~/.ssh/config 0644: %+v, %v", got, err)
	}
}
