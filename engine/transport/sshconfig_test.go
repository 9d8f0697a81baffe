package transport

import (
	"bufio"
	"bytes"
	"cmp"
	"crypto/sha1"
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

	names := []string{"web1", "web2", "web3", "Web4", "db-1", "db-2", "db-3", "app", "app-old", "app-x", "other", "plain"}
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
