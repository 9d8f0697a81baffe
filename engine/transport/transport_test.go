package transport

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"
	"golang.org/x/crypto/ssh/knownhosts"
)

func dial(t *testing.T, d *Dialer, tg Target) *Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := d.Dial(ctx, tg)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func TestRunBasics(t *testing.T) {
	srv := startTestServer(t)
	c := dial(t, &Dialer{}, srv.Target(t))
	tests := []struct {
		cmd, stdin, stdout, stderr string
		code                       int
	}{
		{cmd: "echo hello", stdout: "hello\n"},
		{cmd: "cat", stdin: "piped\n", stdout: "piped\n"},
		{cmd: "echo oops >&2; exit 3", stderr: "oops\n", code: 3},
		{cmd: "kill -9 $$", code: 128 + 9},
	}
	for _, tt := range tests {
		t.Run(tt.cmd, func(t *testing.T) {
			var out, errb bytes.Buffer
			code, err := c.Run(context.Background(), tt.cmd, strings.NewReader(tt.stdin), &out, &errb)
			if err != nil {
				t.Fatal(err)
			}
			if code != tt.code || out.String() != tt.stdout || errb.String() != tt.stderr {
				t.Errorf("got code %d stdout %q stderr %q; want %d %q %q", code, out.String(), errb.String(), tt.code, tt.stdout, tt.stderr)
			}
		})
	}
}

func TestHostKey(t *testing.T) {
	srv := startTestServer(t)
	other, _ := newKey(t)
	hostPort := "[127.0.0.1]:" + strconv.Itoa(srv.Port)
	entry := func(hosts string, k ssh.PublicKey) string {
		return hosts + " " + string(ssh.MarshalAuthorizedKey(k))
	}
	fp := ssh.FingerprintSHA256(srv.HostKey.PublicKey())
	tests := []struct {
		name       string
		knownHosts string // "" : no file
		strict     string
		wantErr    []string // substrings; nil: success
	}{
		{name: "known", knownHosts: entry(hostPort, srv.HostKey.PublicKey()), strict: "yes"},
		{name: "hashed entry", knownHosts: entry(knownhosts.HashHostname(hostPort), srv.HostKey.PublicKey()), strict: "yes"},
		{name: "mismatch", knownHosts: "# comment\n" + entry(hostPort, other.PublicKey()), strict: "yes",
			wantErr: []string{"CHANGED", fp, "known_hosts:2", ssh.FingerprintSHA256(other.PublicKey()), "ssh-keygen -R"}},
		{name: "mismatch not fixed by accept-new", knownHosts: entry(hostPort, other.PublicKey()), strict: "accept-new",
			wantErr: []string{"CHANGED", fp}},
		{name: "unknown", knownHosts: entry("[127.0.0.1]:1", srv.HostKey.PublicKey()), strict: "yes",
			wantErr: []string{"unknown host key", fp, "ssh-keyscan -p " + strconv.Itoa(srv.Port) + " 127.0.0.1 >>", "accept-new"}},
		{name: "unknown, no file", strict: "yes", wantErr: []string{"unknown host key", fp}},
		{name: "revoked", knownHosts: "@revoked * " + string(ssh.MarshalAuthorizedKey(srv.HostKey.PublicKey())), strict: "yes",
			wantErr: []string{"revoked", fp}},
		{name: "no checking when asked", knownHosts: entry(hostPort, other.PublicKey()), strict: "no"},
		// Lines that cannot be read are skipped; the host's own entry still verifies it.
		{name: "unreadable lines of others", strict: "yes", knownHosts: "a.example " + xmssKey() + "\n" +
			"b.example " + truncated(other.PublicKey()) + "\n|1|bad!|bad! " + khKey(other.PublicKey()) + "\n" +
			hostPort + " " + xmssKey() + "\n" + entry(hostPort, srv.HostKey.PublicKey())},
		// The host's own entry cannot be read: refused, not accepted as new.
		{name: "own entry unreadable", strict: "accept-new", knownHosts: entry(hostPort, srv.HostKey.PublicKey())[:60] + "\n",
			wantErr: []string{"cannot be verified", fp, "known_hosts:1 cannot be read", "fix or remove"}},
		{name: "own hashed entry unreadable", strict: "accept-new", knownHosts: knownhosts.HashHostname(hostPort) + " " + truncated(srv.HostKey.PublicKey()),
			wantErr: []string{"cannot be verified", "known_hosts:1 cannot be read"}},
		{name: "own entry of an unknown type", strict: "accept-new", knownHosts: hostPort + " " + xmssKey(),
			wantErr: []string{"cannot be verified", `"ssh-xmss@openssh.com" is not supported`}},
		// A line whose host cannot be read may be this host's: not accepted as new either.
		{name: "a line of unknown host", strict: "accept-new", knownHosts: "|1|bad!|bad! " + khKey(srv.HostKey.PublicKey()) + "\n",
			wantErr: []string{"unknown host key", fp, "known_hosts:1 cannot be read and may be its entry"}},
		{name: "a @revoked line that may name the key", strict: "yes", knownHosts: "@revoked * " + truncated(srv.HostKey.PublicKey()) + "\n" + entry(hostPort, srv.HostKey.PublicKey()),
			wantErr: []string{"cannot be verified", "@revoked line", "known_hosts:1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tg := srv.Target(t)
			tg.KnownHostsFiles = []string{filepath.Join(t.TempDir(), "known_hosts")}
			if tt.knownHosts != "" {
				if err := os.WriteFile(tg.KnownHostsFiles[0], []byte(tt.knownHosts), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			tg.StrictHostKeyChecking = tt.strict
			c, err := (&Dialer{}).Dial(context.Background(), tg)
			if tt.wantErr == nil {
				if err != nil {
					t.Fatalf("dial: %v", err)
				}
				c.Close()
				return
			}
			if err == nil {
				c.Close()
				t.Fatal("dial succeeded; want refusal")
			}
			if b, _ := os.ReadFile(tg.KnownHostsFiles[0]); string(b) != tt.knownHosts {
				t.Errorf("a refused host changed known_hosts to %q", b)
			}
			if !IsUnreachable(err) {
				t.Errorf("IsUnreachable(%v) = false", err)
			}
			var hk *HostKeyError
			if !errors.As(err, &hk) {
				t.Errorf("error %T is not a *HostKeyError", err)
			}
			for _, w := range tt.wantErr {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
}

func TestAcceptNew(t *testing.T) {
	srv := startTestServer(t)
	tg := srv.Target(t)
	kh := filepath.Join(t.TempDir(), "sub", "known_hosts")
	tg.KnownHostsFiles = []string{kh}
	tg.StrictHostKeyChecking = "accept-new"
	c := dial(t, &Dialer{}, tg)
	c.Close()
	b, err := os.ReadFile(kh)
	if err != nil {
		t.Fatal(err)
	}
	if want := "[127.0.0.1]:" + strconv.Itoa(srv.Port) + " ssh-ed25519 "; !strings.HasPrefix(string(b), want) || strings.Count(string(b), "\n") != 1 {
		t.Fatalf("known_hosts = %q; want one line starting %q", b, want)
	}
	// Now it is known: strict checking passes, and accept-new adds nothing.
	for _, mode := range []string{"yes", "accept-new"} {
		tg.StrictHostKeyChecking = mode
		dial(t, &Dialer{}, tg).Close()
	}
	if b2, _ := os.ReadFile(kh); !bytes.Equal(b, b2) {
		t.Errorf("known_hosts changed on a known host: %q", b2)
	}
}

// HostKeyAlias: known_hosts is searched for the alias instead of the address and port, and
// accept-new records the key under it.
func TestHostKeyAlias(t *testing.T) {
	srv := startTestServer(t)
	other, _ := newKey(t)
	line := func(host string, k ssh.PublicKey) string { return host + " " + string(ssh.MarshalAuthorizedKey(k)) }
	hostPort := "[127.0.0.1]:" + strconv.Itoa(srv.Port)
	tests := []struct {
		name, alias, knownHosts, strict string
		wantErr                         string
		wantFile                        string // known_hosts afterwards; "": unchanged
	}{
		{name: "alias known", alias: "db-cluster", knownHosts: line("db-cluster", srv.HostKey.PublicKey()), strict: "yes"},
		{name: "only the address known", alias: "db-cluster", knownHosts: line(hostPort, srv.HostKey.PublicKey()), strict: "yes", wantErr: "unknown host key"},
		{name: "alias with another key", alias: "db-cluster", knownHosts: line("db-cluster", other.PublicKey()) + line(hostPort, srv.HostKey.PublicKey()), strict: "yes", wantErr: "CHANGED"},
		{name: "accept-new records the alias (in lower case, as ssh)", alias: "Db-Cluster", strict: "accept-new", wantFile: "db-cluster ssh-ed25519 "},
		{name: "alias unfit for known_hosts", alias: "a\n* x", strict: "accept-new", wantErr: "HostKeyAlias"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tg := srv.Target(t)
			tg.HostKeyAlias = tt.alias
			tg.KnownHostsFiles = []string{filepath.Join(t.TempDir(), "known_hosts")}
			tg.StrictHostKeyChecking = tt.strict
			if err := os.WriteFile(tg.KnownHostsFiles[0], []byte(tt.knownHosts), 0o600); err != nil {
				t.Fatal(err)
			}
			c, err := (&Dialer{}).Dial(context.Background(), tg)
			if err == nil {
				c.Close()
			}
			if tt.wantErr == "" && err != nil {
				t.Fatalf("dial: %v", err)
			}
			if tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
				t.Fatalf("dial: %v; want an error mentioning %q", err, tt.wantErr)
			}
			b, _ := os.ReadFile(tg.KnownHostsFiles[0])
			if tt.wantFile == "" && string(b) != tt.knownHosts || tt.wantFile != "" && !strings.HasPrefix(string(b), tt.wantFile) {
				t.Errorf("known_hosts = %q", b)
			}
		})
	}
}

// accept-new records hosts under the lower-case name OpenSSH looks them up by.
func TestAcceptNewLowerCase(t *testing.T) {
	srv := startTestServer(t)
	tg := srv.Target(t)
	tg.Address = "LOCALHOST"
	tg.KnownHostsFiles = []string{filepath.Join(t.TempDir(), "known_hosts")}
	tg.StrictHostKeyChecking = "accept-new"
	dial(t, &Dialer{}, tg).Close()
	b, err := os.ReadFile(tg.KnownHostsFiles[0])
	if want := "[localhost]:" + strconv.Itoa(srv.Port) + " ssh-ed25519 "; err != nil || !strings.HasPrefix(string(b), want) {
		t.Fatalf("known_hosts = %q, %v; want a line starting %q", b, err, want)
	}
	tg.StrictHostKeyChecking = "yes"
	tg.Address = "localhost"
	dial(t, &Dialer{}, tg).Close()
}

// The reviewer's attack on known_hosts, end to end: Go's resolver dials an IPv6 literal
// whatever its zone says, so an address from a generated inventory that carries a newline
// and a "*" line in its zone reaches the server. Under accept-new it must not write
// anything, and the host is refused before it is dialled, whether the target went through
// ResolveTarget or not, and as a jump host too.
func TestHostileAddressKnownHosts(t *testing.T) {
	srv := startTestServer(t)
	attacker, _ := newKey(t)
	hostile := "::ffff:127.0.0.1%x\n* " + khKey(attacker.PublicKey()) + "\n#"
	kh := filepath.Join(t.TempDir(), "known_hosts")
	base := srv.Target(t)
	base.KnownHostsFiles, base.StrictHostKeyChecking = []string{kh}, "accept-new"

	direct := base
	direct.Name, direct.Address = "evil", hostile
	jumped := base
	jumped.Name, jumped.ProxyJump = "inner", "jump"
	d := &Dialer{ResolveJump: func(name string, partial Target) (Target, error) {
		hop := base
		hop.Name, hop.Address = name, hostile
		return hop, nil
	}}
	tests := []struct {
		name    string
		dial    func() error
		wantErr []string
	}{
		{"resolved", func() error {
			_, err := ResolveTarget("evil", direct, "none")
			return err
		}, []string{"evil: ", `contains the control character '\n'`}},
		{"dialled", func() error {
			c, err := (&Dialer{}).Dial(context.Background(), direct)
			if err == nil {
				c.Close()
			}
			return err
		}, []string{"evil: dial: address", `contains the control character '\n'`}},
		{"as a jump host", func() error {
			c, err := d.Dial(context.Background(), jumped)
			if err == nil {
				c.Close()
			}
			return err
		}, []string{"inner: proxy: jump host jump", `contains the control character '\n'`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.dial()
			if err == nil {
				t.Error("not refused")
			}
			for _, w := range tt.wantErr {
				if err != nil && !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
			if b, err := os.ReadFile(kh); err == nil {
				t.Fatalf("known_hosts written: %q", b)
			}
		})
	}
	if n := srv.Execs.Load(); n != 0 {
		t.Errorf("%d commands ran", n)
	}
}

// The reviewer's attack on file names, end to end: a host value expanded by %h or %n into
// UserKnownHostsFile must not lead accept-new to create or append to a file outside the
// directory the operator named.
func TestHostileValueFileNames(t *testing.T) {
	srv := startTestServer(t)
	home := t.TempDir()
	t.Setenv("HOME", home)
	cfg := filepath.Join(home, "config")
	if err := os.WriteFile(cfg, []byte("Host by-address\n  UserKnownHostsFile ~/.ssh/known_hosts.d/%h\n"+
		"Host *\n  UserKnownHostsFile ~/.ssh/kh.d/%n\n  StrictHostKeyChecking accept-new\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	inv := Target{Port: srv.Port, User: "tester", IdentityFile: srv.ClientKeyFile, IdentitiesOnly: true, IdentityAgent: "none"}
	tests := []struct {
		name, address string
		want          string
	}{
		{"by-address", "::ffff:127.0.0.1%/../../../../pwned-by-address", `contains '/'`},
		// (With an address, %n is the address, as in Ansible's `ssh ADDRESS`: a hostile name
		// reaches no file name. Without one, the name is the address, and is refused.)
		{"../../pwned-by-name", "", `address "../../pwned-by-name" contains '/'`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := inv
			in.Address = tt.address
			tg, err := ResolveTarget(tt.name, in, cfg)
			if err == nil {
				// Not refused: see what the dial does with the files.
				if c, err := (&Dialer{}).Dial(context.Background(), tg); err == nil {
					c.Close()
				}
				t.Errorf("not refused; known_hosts files %q", tg.KnownHostsFiles)
			} else if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q does not mention %q", err, tt.want)
			}
		})
	}
	_ = filepath.WalkDir(filepath.Dir(home), func(p string, de fs.DirEntry, err error) error {
		if err == nil && strings.Contains(de.Name(), "pwned") {
			t.Errorf("%s was created", p)
		}
		return nil
	})
}

// Commands suggested in errors are quoted for a shell, whatever host and file they name.
func TestSuggestedCommandsQuoted(t *testing.T) {
	ks, _ := newKey(t)
	other, _ := newKey(t)
	const host, file = "it's;$(id)", "/tmp/my known_hosts"
	words := func(t *testing.T, cmd string) []string {
		t.Helper()
		w, err := shellWords(cmd)
		if err != nil {
			t.Fatalf("%q: %v", cmd, err)
		}
		return w
	}
	t.Run("ssh-keyscan", func(t *testing.T) {
		cmd, target, ok := strings.Cut(keyscanCommand(host+":2222", file), " >> ")
		if !ok {
			t.Fatalf("no >> in %q", cmd)
		}
		if got, want := words(t, cmd), []string{"ssh-keyscan", "-p", "2222", host}; !reflect.DeepEqual(got, want) {
			t.Errorf("%q reads as %q; want %q", cmd, got, want)
		}
		if got := words(t, target); !reflect.DeepEqual(got, []string{file}) {
			t.Errorf("%q reads as %q", target, got)
		}
	})
	t.Run("ssh-keygen", func(t *testing.T) {
		err := mismatch(host+":22", ks.PublicKey(), []knownhosts.KnownKey{{Key: other.PublicKey(), Filename: file, Line: 1}})
		_, cmd, ok := strings.Cut(err.Error(), "remove the old entry: ")
		if !ok {
			t.Fatalf("no command in %q", err)
		}
		if got, want := words(t, cmd), []string{"ssh-keygen", "-R", host, "-f", file}; !reflect.DeepEqual(got, want) {
			t.Errorf("%q reads as %q; want %q", cmd, got, want)
		}
	})
	t.Run("unknown host", func(t *testing.T) {
		check, _, err := hostKeyCheck(Target{KnownHostsFiles: []string{file}, StrictHostKeyChecking: "yes"}, func(string, string) {}, nil)
		if err != nil {
			t.Fatal(err)
		}
		err = check("UPPER.example:2222", &net.TCPAddr{}, ks.PublicKey())
		if !strings.Contains(fmt.Sprint(err), "ssh-keyscan -p 2222 upper.example >> '/tmp/my known_hosts'") {
			t.Errorf("%v", err)
		}
	})
}

func TestAuthFailure(t *testing.T) {
	srv := startTestServer(t)
	dir := t.TempDir()
	_, wrongPEM := newKey(t)
	wrong := filepath.Join(dir, "wrong")
	if err := os.WriteFile(wrong, wrongPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	// An encrypted key: the error must say so and name the file.
	enc := filepath.Join(dir, "encrypted")
	{
		priv, err := ssh.ParseRawPrivateKey(wrongPEM)
		if err != nil {
			t.Fatal(err)
		}
		blk, err := ssh.MarshalPrivateKeyWithPassphrase(priv, "", []byte("secret"))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(enc, pem.EncodeToMemory(blk), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	huge := filepath.Join(dir, "huge")
	if err := os.WriteFile(huge, bytes.Repeat([]byte("A"), 2<<20), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		user    string
		key     string
		wantErr []string
	}{
		{name: "wrong key", user: "tester", key: wrong, wantErr: []string{`"tester"`, "test (127.0.0.1:", "key " + wrong}},
		{name: "wrong user", user: "nobody", key: srv.ClientKeyFile, wantErr: []string{`"nobody"`, "key " + srv.ClientKeyFile}},
		{name: "encrypted key", user: "tester", key: enc, wantErr: []string{enc + " is encrypted", "ssh-add " + enc}},
		{name: "missing key", user: "tester", key: filepath.Join(dir, "nope"), wantErr: []string{"identity file " + filepath.Join(dir, "nope"), "no such file"}},
		// An inventory may name anything: neither a FIFO (which would block) nor a huge file
		// (or /dev/zero, which would fill memory) is read.
		{name: "FIFO", user: "tester", key: fifo, wantErr: []string{"identity file " + fifo + ": not a regular file"}},
		{name: "device", user: "tester", key: "/dev/zero", wantErr: []string{"identity file /dev/zero: not a regular file"}},
		{name: "huge file", user: "tester", key: huge, wantErr: []string{"identity file " + huge + ": larger than 1024 KiB"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tg := srv.Target(t)
			tg.User, tg.IdentityFile = tt.user, tt.key
			_, err := (&Dialer{Agent: true}).Dial(context.Background(), tg)
			if err == nil {
				t.Fatal("dial succeeded")
			}
			var ae *AuthError
			if !errors.As(err, &ae) || !IsUnreachable(err) {
				t.Errorf("error %v: want an unreachable *AuthError", err)
			}
			for _, w := range tt.wantErr {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
}

func TestDialUnreachable(t *testing.T) {
	// A port nobody listens on: connection refused, quickly.
	srv := startTestServer(t)
	tg := srv.Target(t)
	srv.Close()
	start := time.Now()
	_, err := (&Dialer{}).Dial(context.Background(), tg)
	if err == nil || !IsUnreachable(err) {
		t.Fatalf("err = %v; want unreachable", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("took %s", d)
	}
}

func TestConnectTimeout(t *testing.T) {
	// A listener that accepts and never speaks: the handshake must time out.
	srv := startTestServer(t)
	srv.freeze.Store(true)
	tg := srv.Target(t)
	tg.ConnectTimeout = 300 * time.Millisecond
	start := time.Now()
	_, err := (&Dialer{}).Dial(context.Background(), tg)
	if err == nil || !IsUnreachable(err) {
		t.Fatalf("err = %v; want unreachable", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("timeout took %s", d)
	}
}

// TestKeepaliveKeepsLiveConnection: a peer that answers keeps the connection, keepalive
// after keepalive, one at a time; the connection's close ends them, and no goroutine
// waits between two.
func TestKeepaliveKeepsLiveConnection(t *testing.T) {
	srv := startTestServer(t)
	before := runtime.NumGoroutine()
	c := dial(t, &Dialer{Keepalive: 20 * time.Millisecond, KeepaliveCountMax: 2}, srv.Target(t))
	time.Sleep(400 * time.Millisecond)
	if err := c.Err(); err != nil {
		t.Fatalf("a live connection was lost: %v", err)
	}
	if code, err := c.Run(context.Background(), "true", nil, nil, nil); err != nil || code != 0 {
		t.Fatalf("run: %d %v", code, err)
	}
	if n := srv.Keepalives.Load(); n < 5 || n > 21 {
		t.Errorf("%d keepalives in 400 ms at 20 ms", n)
	}
	c.Close()
	n := srv.Keepalives.Load()
	time.Sleep(100 * time.Millisecond)
	if m := srv.Keepalives.Load(); m != n {
		t.Errorf("%d keepalives after the connection closed", m-n)
	}
	// The client's own goroutines are gone (the server's serve the closed connection a
	// moment longer).
	settle := func(want int) int {
		deadline := time.Now().Add(2 * time.Second)
		for runtime.NumGoroutine() > want && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
		return runtime.NumGoroutine()
	}
	if n := settle(before + 2); n > before+2 {
		t.Errorf("%d goroutines after the close, %d before the dial", n, before)
	}
	// Between two keepalives no goroutine waits: a connection with keepalives has as many
	// as one without.
	count := func(d *Dialer) int {
		base := settle(before)
		c := dial(t, d, srv.Target(t))
		defer c.Close()
		time.Sleep(50 * time.Millisecond)
		return runtime.NumGoroutine() - base
	}
	if with, without := count(&Dialer{Keepalive: time.Hour}), count(&Dialer{}); with > without {
		t.Errorf("a connection with keepalives has %d goroutines, one without %d", with, without)
	}
}

func TestKeepaliveClosesDeadConnection(t *testing.T) {
	srv := startTestServer(t)
	c := dial(t, &Dialer{Keepalive: 50 * time.Millisecond, KeepaliveCountMax: 2}, srv.Target(t))
	if code, err := c.Run(context.Background(), "true", nil, nil, nil); err != nil || code != 0 {
		t.Fatalf("run: %d %v", code, err)
	}
	srv.freeze.Store(true)
	done := make(chan error, 1)
	go func() { done <- c.Wait() }()
	select {
	case err := <-done:
		if !IsUnreachable(err) || !strings.Contains(err.Error(), "keepalive") {
			t.Errorf("Wait = %v; want an unreachable keepalive error", err)
		}
	case <-time.After(3 * time.Second):
		t.Fatal("dead connection not closed by keepalives")
	}
	if _, err := c.Run(context.Background(), "true", nil, nil, nil); !IsUnreachable(err) {
		t.Errorf("run on a dead connection: %v; want unreachable", err)
	}
}

func TestRunCancelKillsSession(t *testing.T) {
	srv := startTestServer(t)
	c := dial(t, &Dialer{}, srv.Target(t))
	pidFile := filepath.Join(t.TempDir(), "pid")
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	code, err := c.Run(ctx, "echo $$ > "+pidFile+"; exec sleep 30", nil, nil, nil)
	if !errors.Is(err, context.DeadlineExceeded) || code != -1 {
		t.Fatalf("Run = %d, %v; want -1, deadline exceeded", code, err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("cancel took %s", d)
	}
	b, err := os.ReadFile(pidFile)
	if err != nil {
		t.Fatal(err)
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	deadline := time.Now().Add(2 * time.Second)
	for syscall.Kill(pid, 0) == nil {
		if time.Now().After(deadline) {
			t.Fatalf("remote process %d still runs after cancel", pid)
		}
		time.Sleep(10 * time.Millisecond)
	}
	// The connection is still usable.
	if code, err := c.Run(context.Background(), "true", nil, nil, nil); err != nil || code != 0 {
		t.Errorf("run after cancel: %d %v", code, err)
	}
}

func TestStartSession(t *testing.T) {
	srv := startTestServer(t)
	c := dial(t, &Dialer{}, srv.Target(t))
	s, err := c.Start(context.Background(), "while read l; do echo got $l; done")
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	go func() {
		for i := range 3 {
			_, _ = s.Stdin.Write([]byte(strconv.Itoa(i) + "\n"))
		}
		s.Stdin.Close()
	}()
	var out bytes.Buffer
	if _, err := out.ReadFrom(s.Stdout); err != nil {
		t.Fatal(err)
	}
	if code, err := s.Wait(); err != nil || code != 0 {
		t.Fatalf("wait: %d %v", code, err)
	}
	if out.String() != "got 0\ngot 1\ngot 2\n" {
		t.Errorf("stdout %q", out.String())
	}
}

func TestUploadInProcess(t *testing.T) {
	// The in-process server has no SFTP subsystem: Upload must fail with
	// an error naming the host, not hang.
	srv := startTestServer(t)
	c := dial(t, &Dialer{}, srv.Target(t))
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err := c.Upload(ctx, strings.NewReader("x"), "/tmp/x", 0o644)
	if err == nil || !strings.Contains(err.Error(), "sftp") {
		t.Errorf("Upload = %v; want an sftp error", err)
	}
}

func TestProxyCommand(t *testing.T) {
	srv := startTestServer(t)
	tests := []struct {
		name    string
		command string
		wantErr string
	}{
		{name: "ok", command: proxyCommand(t, "127.0.0.1:"+strconv.Itoa(srv.Port))},
		{name: "fails", command: "echo no route to nowhere >&2; exit 1", wantErr: "no route to nowhere"},
		{name: "hangs", command: "exec sleep 30", wantErr: "deadline exceeded|i/o timeout"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tg := srv.Target(t)
			tg.ProxyCommand = tt.command
			// Short only where the timeout is the point: under parallel test load a working
			// proxy can take longer than half a second to start.
			tg.ConnectTimeout = 10 * time.Second
			if tt.name == "hangs" {
				tg.ConnectTimeout = 500 * time.Millisecond
			}
			start := time.Now()
			c, err := (&Dialer{}).Dial(context.Background(), tg)
			if d := time.Since(start); tt.name == "hangs" && d > 3*time.Second {
				t.Errorf("Dial took %s", d)
			}
			if tt.wantErr != "" {
				if err == nil || !IsUnreachable(err) || !regexp.MustCompile(tt.wantErr).MatchString(err.Error()) {
					t.Fatalf("err = %v; want unreachable, %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			var out bytes.Buffer
			if code, err := c.Run(context.Background(), "echo via proxy", nil, &out, nil); err != nil || code != 0 || out.String() != "via proxy\n" {
				t.Errorf("Run = %d %v %q", code, err, out.String())
			}
		})
	}
}

func TestAgentAuth(t *testing.T) {
	srv := startTestServer(t)
	priv, err := ssh.ParseRawPrivateKey(mustRead(t, srv.ClientKeyFile))
	if err != nil {
		t.Fatal(err)
	}
	_, otherPEM := newKey(t)
	other, _ := ssh.ParseRawPrivateKey(otherPEM)
	keyring := agent.NewKeyring()
	for _, k := range []any{other, priv} {
		if err := keyring.Add(agent.AddedKey{PrivateKey: k}); err != nil {
			t.Fatal(err)
		}
	}
	sock := filepath.Join(t.TempDir(), "agent.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { _ = agent.ServeAgent(keyring, c); c.Close() }()
		}
	}()
	// Only the agent: no key files (HOME has none).
	t.Setenv("HOME", t.TempDir())
	t.Setenv("SSH_AUTH_SOCK", "")
	tests := []struct {
		name    string
		mod     func(*Target)
		d       Dialer
		wantErr string
	}{
		{name: "IdentityAgent", d: Dialer{Agent: true}, mod: func(tg *Target) { tg.IdentityAgent = sock }},
		{name: "SSH_AUTH_SOCK", d: Dialer{Agent: true}, mod: func(tg *Target) { t.Setenv("SSH_AUTH_SOCK", sock) }},
		{name: "agent off", d: Dialer{}, mod: func(tg *Target) { tg.IdentityAgent = sock }, wantErr: "no usable keys"},
		{name: "IdentitiesOnly picks the agent key matching the file", d: Dialer{Agent: true}, mod: func(tg *Target) {
			tg.IdentityAgent = sock
			tg.IdentityFile = srv.ClientKeyFile
		}},
		{name: "agent socket missing", d: Dialer{Agent: true}, mod: func(tg *Target) { tg.IdentityAgent = sock + ".gone" },
			wantErr: "ssh-agent at " + sock + ".gone"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tg := srv.Target(t)
			tg.IdentityFile, tg.IdentityAgent, tg.IdentitiesOnly = "", "", false
			tt.mod(&tg)
			if tg.IdentityFile != "" {
				tg.IdentitiesOnly = true
			}
			c, err := tt.d.Dial(context.Background(), tg)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v; want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			c.Close()
		})
	}
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestConnectionLostDuringRun(t *testing.T) {
	srv := startTestServer(t)
	c := dial(t, &Dialer{}, srv.Target(t))
	go func() {
		time.Sleep(200 * time.Millisecond)
		srv.Close() // the server goes away mid-command
	}()
	code, err := c.Run(context.Background(), "sleep 5", nil, nil, nil)
	if !IsUnreachable(err) || code != -1 {
		t.Fatalf("Run = %d, %v; want -1 and an unreachable error", code, err)
	}
	if _, err := c.Run(context.Background(), "true", nil, nil, nil); !IsUnreachable(err) {
		t.Errorf("Run afterwards: %v; want unreachable", err)
	}
}

func TestJumpHostErrors(t *testing.T) {
	srv := startTestServer(t)
	tests := []struct {
		name    string
		jump    string
		resolve func(string, Target) (Target, error)
		wantErr []string
	}{
		{name: "jump host key unknown", jump: "bastion", resolve: func(name string, p Target) (Target, error) {
			tg := srv.Target(t)
			tg.Name, tg.KnownHostsFiles = name, nil
			return tg, nil
		}, wantErr: []string{"target: proxy: jump host bastion", "unknown host key"}},
		{name: "jump host down", jump: "bastion", resolve: func(name string, p Target) (Target, error) {
			return Target{Name: name, Address: "127.0.0.1", Port: 1, User: "x", StrictHostKeyChecking: "yes"}, nil
		}, wantErr: []string{"jump host bastion", "connection refused"}},
		{name: "bad spec", jump: "a,,b", wantErr: []string{"empty hop"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tg := srv.Target(t)
			tg.Name, tg.ProxyJump = "target", tt.jump
			_, err := (&Dialer{ResolveJump: tt.resolve}).Dial(context.Background(), tg)
			if err == nil || !IsUnreachable(err) {
				t.Fatalf("err = %v; want unreachable", err)
			}
			for _, w := range tt.wantErr {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
}

// TestEncryptedKeyPassphrase: with a Passphrase callback an encrypted key is decrypted
// (asked once however many connections use it); a wrong passphrase is a clear error.
func TestEncryptedKeyPassphrase(t *testing.T) {
	srv := startTestServer(t)
	enc := encryptedKeyFile(t, srv, "open sesame")
	tests := []struct {
		name    string
		answers []string // one per prompt; the last repeats
		wantErr string
		asked   int
	}{
		{name: "right passphrase", answers: []string{"open sesame"}, asked: 1},
		{name: "a typo, then right", answers: []string{"open sesam", "open sesame"}, asked: 2},
		{name: "wrong passphrase", answers: []string{"nope"}, wantErr: enc + ": wrong passphrase (3 tries)", asked: 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			asked := 0
			d := &Dialer{Passphrase: func(path string) ([]byte, error) {
				asked++
				if path != enc {
					t.Errorf("asked for %s, want %s", path, enc)
				}
				return []byte(tt.answers[min(asked, len(tt.answers))-1]), nil
			}}
			for i := 0; i < 2; i++ {
				tg := srv.Target(t)
				tg.IdentityFile = enc
				c, err := d.Dial(context.Background(), tg)
				if tt.wantErr == "" {
					if err != nil {
						t.Fatalf("dial %d: %v", i, err)
					}
					c.Close()
					continue
				}
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("dial %d: error %v, want %q", i, err, tt.wantErr)
				}
			}
			if asked != tt.asked {
				t.Errorf("passphrase asked %d times, want %d (for both connections)", asked, tt.asked)
			}
		})
	}
}

// What a Dialer remembers (decrypted keys, warnings given) goes away with it: a program that
// makes a Dialer per host must not keep them all.
func TestDialerStateIsCollected(t *testing.T) {
	collected := make(chan struct{})
	func() {
		d := &Dialer{Warn: func(string) {}}
		d.warnOnce("k", "a warning")
		_ = d.keys()
		runtime.SetFinalizer(d, func(*Dialer) { close(collected) })
	}()
	deadline := time.After(5 * time.Second)
	for {
		runtime.GC()
		select {
		case <-collected:
			return
		case <-deadline:
			t.Fatal("a Dialer no longer used was not collected: something still holds it")
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// User certificates: CertificateFile, and the <key>-cert.pub ssh also reads, are offered
// with their key to a server that accepts only certificates.
func TestCertificateAuth(t *testing.T) {
	srv := startTestServer(t)
	ca, _ := newKey(t)
	srv.UserCA = ca.PublicKey()
	key, keyPEM := newKey(t)
	otherKey, _ := newKey(t)
	certFor := func(k ssh.PublicKey, principal string) []byte {
		c := &ssh.Certificate{Key: k, CertType: ssh.UserCert, KeyId: "test", ValidPrincipals: []string{principal}, ValidBefore: ssh.CertTimeInfinity}
		if err := c.SignCert(rand.Reader, ca); err != nil {
			t.Fatal(err)
		}
		return ssh.MarshalAuthorizedKey(c)
	}
	tests := []struct {
		name     string
		files    map[string][]byte // in a temporary directory; "key" is the identity file
		certFile string            // CertificateFile, in that directory
		wantErr  []string
	}{
		{name: "key-cert.pub next to the key", files: map[string][]byte{"key": keyPEM, "key-cert.pub": certFor(key.PublicKey(), "tester")}},
		{name: "CertificateFile", files: map[string][]byte{"key": keyPEM, "c.pub": certFor(key.PublicKey(), "tester")}, certFile: "c.pub"},
		{name: "no certificate", files: map[string][]byte{"key": keyPEM}, wantErr: []string{"key "}},
		{name: "certificate for another key", files: map[string][]byte{"key": keyPEM, "c.pub": certFor(otherKey.PublicKey(), "tester")}, certFile: "c.pub",
			wantErr: []string{"c.pub: no key offered is the certificate's"}},
		{name: "not a certificate", files: map[string][]byte{"key": keyPEM, "c.pub": ssh.MarshalAuthorizedKey(key.PublicKey())}, certFile: "c.pub",
			wantErr: []string{"c.pub: not a user certificate"}},
		{name: "missing CertificateFile", files: map[string][]byte{"key": keyPEM}, certFile: "nope.pub", wantErr: []string{"nope.pub: no such file"}},
		{name: "wrong principal", files: map[string][]byte{"key": keyPEM, "key-cert.pub": certFor(key.PublicKey(), "someone")}, wantErr: []string{"certificate"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			for n, b := range tt.files {
				if err := os.WriteFile(filepath.Join(dir, n), b, 0o600); err != nil {
					t.Fatal(err)
				}
			}
			tg := srv.Target(t)
			tg.IdentityFile = filepath.Join(dir, "key")
			if tt.certFile != "" {
				tg.CertificateFiles = []string{filepath.Join(dir, tt.certFile)}
			}
			c, err := (&Dialer{}).Dial(context.Background(), tg)
			if tt.wantErr == nil {
				if err != nil {
					t.Fatalf("dial: %v", err)
				}
				c.Close()
				return
			}
			if err == nil {
				c.Close()
				t.Fatal("dial succeeded; want an authentication failure")
			}
			for _, w := range tt.wantErr {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
}

// BatchMode: an encrypted key's passphrase is not asked for; the error says why.
func TestBatchModeNoPassphrasePrompt(t *testing.T) {
	srv := startTestServer(t)
	enc := encryptedKeyFile(t, srv, "sesame")
	for _, batch := range []bool{false, true} {
		asked := 0
		d := &Dialer{Passphrase: func(string) ([]byte, error) { asked++; return []byte("sesame"), nil }}
		tg := srv.Target(t)
		tg.IdentityFile = enc
		tg.BatchMode = batch
		c, err := d.Dial(context.Background(), tg)
		if !batch {
			if err != nil || asked != 1 {
				t.Fatalf("without BatchMode: dial err %v, asked %d times; want success after one prompt", err, asked)
			}
			c.Close()
			continue
		}
		if err == nil {
			c.Close()
			t.Fatal("BatchMode: dial succeeded; want the encrypted key unused")
		}
		if asked != 0 || !strings.Contains(err.Error(), "BatchMode") {
			t.Errorf("BatchMode: asked %d times, error %q; want no prompt and an error naming BatchMode", asked, err)
		}
	}
}

// encryptedKeyFile writes the test server's client key encrypted with passphrase and
// returns its path.
func encryptedKeyFile(t *testing.T, srv *testServer, passphrase string) string {
	t.Helper()
	raw, err := os.ReadFile(srv.ClientKeyFile)
	if err != nil {
		t.Fatal(err)
	}
	priv, err := ssh.ParseRawPrivateKey(raw)
	if err != nil {
		t.Fatal(err)
	}
	blk, err := ssh.MarshalPrivateKeyWithPassphrase(priv, "", []byte(passphrase))
	if err != nil {
		t.Fatal(err)
	}
	enc := filepath.Join(t.TempDir(), "id_enc")
	if err := os.WriteFile(enc, pem.EncodeToMemory(blk), 0o600); err != nil {
		t.Fatal(err)
	}
	return enc
}
