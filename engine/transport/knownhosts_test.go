package transport

import (
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

// khKey returns a key's known_hosts form: "type base64".
func khKey(k ssh.PublicKey) string {
	return strings.TrimSpace(string(ssh.MarshalAuthorizedKey(k)))
}

// truncated cuts a key's base64 short, as a copy and paste gone wrong does.
func truncated(k ssh.PublicKey) string {
	s := khKey(k)
	return s[:len(s)-20]
}

// xmssKey is a line's "type base64" for a key type x/crypto does not know.
func xmssKey() string {
	blob := ssh.Marshal(struct {
		Name, Params string
		Pub          []byte
	}{"ssh-xmss@openssh.com", "XMSS_SHA2-256_W16_H10", make([]byte, 68)})
	return "ssh-xmss@openssh.com " + base64.StdEncoding.EncodeToString(blob)
}

func TestKnownHostsReader(t *testing.T) {
	k1s, _ := newKey(t)
	k2s, _ := newKey(t)
	k1, k2 := k1s.PublicKey(), k2s.PublicKey()
	hashedD := knownhosts.HashHostname("d.example")
	content := strings.Join([]string{
		"# comment",
		"",
		"a.example " + xmssKey(),              // 3: unknown key type; a.example has a good line too
		"b.example " + truncated(k1),          // 4: b.example's only line
		"|1|bad!salt|bad!hash " + khKey(k1),   // 5: malformed hashed name: whose?
		"garbage",                             // 6
		"a.example " + khKey(k1) + " comment", // 7
		"c.example,[c.example]:2222 " + khKey(k2),                   // 8
		hashedD + " " + truncated(k2),                               // 9: d.example's hashed line, key unreadable
		"@bogus x.example " + khKey(k1),                             // 10: unknown marker
		"  \tw*.example,!wx.example " + khKey(k2) + "\r",            // 11: patterns, CRLF
		"f.example ssh-ed25519 " + strings.Fields(khKey(k1))[1][:9], // 12: undecodable base64
		"g.example ssh-rsa " + strings.Fields(khKey(k1))[1],         // 13: type says rsa, key is ed25519
		"[h.example ssh-ed25519 " + strings.Fields(khKey(k1))[1],    // 14: broken bracket pattern
	}, "\n")
	db := &knownHostsDB{revoked: map[string]knownhosts.KnownKey{}}
	db.add("kh", []byte(content))

	var got []string
	for _, b := range db.broken {
		got = append(got, b.where()+": "+b.reason)
	}
	want := []string{
		`kh:3: key type "ssh-xmss@openssh.com" is not supported`,
		"kh:4: ssh-ed25519 key cannot be parsed, perhaps truncated: ssh: short read",
		"kh:5: malformed hashed host name (its salt or hash is not valid base64)",
		"kh:6: no key",
		"kh:9: ssh-ed25519 key cannot be parsed, perhaps truncated: ssh: short read",
		`kh:10: unknown marker "@bogus"`,
		"kh:12: ssh-ed25519 key is not valid base64, perhaps truncated",
		`kh:13: the key is of type ssh-ed25519, the line says "ssh-rsa"`,
		`kh:14: host pattern "[h.example": want [host]:port`,
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("unreadable lines:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if u := db.unattributed(); !reflect.DeepEqual(u, []string{"kh:5", "kh:10", "kh:14"}) {
		t.Errorf("unattributed = %q", u)
	}

	tests := []struct {
		host string
		key  ssh.PublicKey
		want string // "ok", "unknown", "mismatch kh:N", "unreadable kh:N"
	}{
		{"a.example:22", k1, "ok"}, // the xmss line is skipped
		{"a.example:22", k2, "mismatch kh:7"},
		{"b.example:22", k1, "unreadable kh:4"}, // its own line is broken: fail closed
		{"d.example:22", k2, "unreadable kh:9"}, // the hashed name matches, the key is broken
		{"garbage:22", k1, "unreadable kh:6"},
		{"c.example:22", k2, "ok"},
		{"c.example:2222", k2, "ok"},
		{"c.example:2200", k2, "unknown"},
		{"wa.example:22", k2, "ok"},
		{"w.example:22", k2, "ok"}, // * matches nothing too, as in OpenSSH
		{"wx.example:22", k2, "unknown"},
		{"f.example:22", k1, "unreadable kh:12"},
		{"g.example:22", k1, "unreadable kh:13"},
		{"nobody.example:22", k1, "unknown"},
	}
	for _, tt := range tests {
		if got := describeCheck(db.check(tt.host, nil, tt.key)); got != tt.want {
			t.Errorf("%s: %s; want %s", tt.host, got, tt.want)
		}
	}
}

func TestKnownHostsRevoked(t *testing.T) {
	k1s, _ := newKey(t)
	k2s, _ := newKey(t)
	k1, k2, k3 := k1s.PublicKey(), k2s.PublicKey(), rsaKey(t)
	tests := []struct {
		name, content string
		host          string
		key           ssh.PublicKey
		want          string
	}{
		{"revoked wins over an entry", "@revoked * " + khKey(k1) + "\nh " + khKey(k1), "h:22", k1, "revoked kh:1"},
		{"revoked for any host, as before", "@revoked nothere " + khKey(k1) + "\nh " + khKey(k1), "h:22", k1, "revoked kh:1"},
		{"revoked with a broken host field", "@revoked [x " + khKey(k1) + "\nh " + khKey(k1), "h:22", k1, "revoked kh:1"},
		{"other keys are fine", "@revoked * " + khKey(k1) + "\nh " + khKey(k2), "h:22", k2, "ok"},
		{"a broken @revoked of the key's type fails closed", "@revoked * " + truncated(k1) + "\nh " + khKey(k1), "h:22", k1, "unreadable-revoked kh:1"},
		{"for any host, as a readable one", "@revoked other " + truncated(k1) + "\nh " + khKey(k1), "h:22", k1, "unreadable-revoked kh:1"},
		{"a broken @revoked of another key type does not", "@revoked * " + truncated(k1) + "\nh " + khKey(k3), "h:22", k3, "ok"},
		{"a @revoked of a type never accepted does not", "@revoked * " + xmssKey() + "\nh " + khKey(k1), "h:22", k1, "ok"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			db := &knownHostsDB{revoked: map[string]knownhosts.KnownKey{}}
			db.add("kh", []byte(tt.content))
			if got := describeCheck(db.check(tt.host, nil, tt.key)); got != tt.want {
				t.Errorf("%s; want %s", got, tt.want)
			}
		})
	}
}

func rsaKey(t *testing.T) ssh.PublicKey {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	pk, err := ssh.NewPublicKey(&k.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	return pk
}

// describeCheck names the outcome of knownHostsDB.check for tables.
func describeCheck(err error) string {
	var (
		rerr *knownhosts.RevokedError
		uerr *UnreadableEntryError
		kerr *knownhosts.KeyError
	)
	switch {
	case err == nil:
		return "ok"
	case errors.As(err, &rerr):
		return fmt.Sprintf("revoked %s:%d", rerr.Revoked.Filename, rerr.Revoked.Line)
	case errors.As(err, &uerr) && uerr.Revoked:
		return "unreadable-revoked " + uerr.Where
	case errors.As(err, &uerr):
		return "unreadable " + uerr.Where
	case errors.As(err, &kerr) && len(kerr.Want) == 0:
		return "unknown"
	case errors.As(err, &kerr):
		var w []string
		for _, k := range kerr.Want {
			w = append(w, fmt.Sprintf("%s:%d", k.Filename, k.Line))
		}
		return "mismatch " + strings.Join(w, ",")
	}
	return "error " + err.Error()
}

func TestWildcardMatch(t *testing.T) {
	tests := []struct {
		pat, s string
		want   bool
	}{
		{"*", "", true}, {"*", "abc", true}, {"a*", "a", true}, {"a*c", "abbc", true}, {"a*c", "abbd", false},
		{"?", "", false}, {"a?c", "abc", true}, {"*.example", "x.example", true}, {"*.example", "example", false},
		{"a*b*c", "aXbYbZc", true}, {"", "", true}, {"", "a", false},
		{strings.Repeat("*a", 40) + "b", strings.Repeat("a", 5000), false}, // no exponential backtracking
	}
	for _, tt := range tests {
		if got := wildcardMatch(tt.pat, tt.s); got != tt.want {
			t.Errorf("wildcardMatch(%q, %q) = %v", tt.pat, tt.s, got)
		}
	}
}

// FuzzKnownHosts feeds arbitrary files to the reader. Nothing may panic; each unreadable
// line is reported once with its own line number; and wherever x/crypto's knownhosts
// reads the whole file, the reader finds no unreadable line and answers every lookup as
// x/crypto does.
func FuzzKnownHosts(f *testing.F) {
	k1s, _ := newKey(f)
	k2s, _ := newKey(f)
	k1, k2 := k1s.PublicKey(), k2s.PublicKey()
	for _, s := range []string{
		"h " + khKey(k1),
		"[h]:2222,h2 " + khKey(k1) + "\n@revoked * " + khKey(k2),
		knownhosts.HashHostname("h") + " " + khKey(k2),
		"h " + xmssKey() + "\nh " + truncated(k1) + "\n|1|x|y " + khKey(k1),
		"@cert-authority *.example " + khKey(k2) + "\n!a,b " + khKey(k1),
		"# c\n\n  \t\n h\t" + khKey(k1) + " c\r\n",
	} {
		f.Add([]byte(s))
	}
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, data []byte) {
		db := &knownHostsDB{revoked: map[string]knownhosts.KnownKey{}}
		db.add("kh", data)
		lines := strings.Count(string(data), "\n") + 1
		last := 0
		for _, b := range db.broken {
			if b.file != "kh" || b.line <= last || b.line > lines || b.reason == "" {
				t.Fatalf("bad report %+v after line %d of %d", b, last, lines)
			}
			last = b.line
		}
		_ = db.unattributed()

		// Hosts to look up: every plain pattern's host and port.
		type hp struct{ host, port string }
		var probes []hp
		for _, e := range db.entries {
			if ps, ok := e.hosts.(patternList); ok {
				for _, p := range ps {
					probes = append(probes, hp{p.host, p.port})
				}
			}
		}
		keys := []ssh.PublicKey{k1, k2}
		for _, e := range db.entries {
			keys = append(keys, e.key.Key)
		}
		for _, p := range probes {
			for _, k := range keys {
				_ = db.check(net.JoinHostPort(p.host, p.port), nil, k)
				_ = db.isHostAuthority(k, net.JoinHostPort(p.host, p.port))
			}
		}

		// x/crypto as the reference, where its quirks do not apply: a trailing * that
		// matches nothing, \r inside a line, and its exponential matcher.
		if strings.ContainsAny(string(data), "*\r") || len(data) > 4096 {
			return
		}
		path := filepath.Join(dir, "kh")
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		ref, err := knownhosts.New(path)
		if err != nil {
			return
		}
		if len(db.broken) > 0 {
			t.Fatalf("x/crypto reads the file, the reader finds %+v", db.broken)
		}
		mine := db.callback()
		for _, p := range probes {
			for _, k := range keys {
				addr := net.JoinHostPort(p.host, p.port)
				a, b := describeCheck(ref(addr, &net.TCPAddr{}, k)), describeCheck(mine(addr, &net.TCPAddr{}, k))
				if strings.ReplaceAll(a, path, "kh") != b {
					t.Fatalf("%s %s: x/crypto %s, reader %s", addr, k.Type(), a, b)
				}
			}
		}
	})
}

// Each unreadable line is warned about once for a Dialer's life (a run has one), however
// many hosts the file serves and even after the file changes.
func TestKnownHostsWarnOnce(t *testing.T) {
	srv := startTestServer(t)
	other, _ := newKey(t)
	tg := srv.Target(t)
	good, err := os.ReadFile(tg.KnownHostsFiles[0])
	if err != nil {
		t.Fatal(err)
	}
	bad := "a.example " + xmssKey() + "\nb.example " + truncated(other.PublicKey()) + "\n|1|bad!|bad! " + khKey(other.PublicKey()) + "\n"
	if err := os.WriteFile(tg.KnownHostsFiles[0], append([]byte(bad), good...), 0o600); err != nil {
		t.Fatal(err)
	}
	var got []string
	d := &Dialer{Warn: func(msg string) { got = append(got, msg) }}
	want := []string{
		tg.KnownHostsFiles[0] + `:1 skipped: key type "ssh-xmss@openssh.com" is not supported`,
		tg.KnownHostsFiles[0] + ":2 skipped: ssh-ed25519 key cannot be parsed",
		tg.KnownHostsFiles[0] + ":3 skipped: malformed hashed host name",
	}
	check := func(when string) {
		t.Helper()
		if len(got) != len(want) {
			t.Fatalf("%s: warnings %q; want one for each of lines 1-3", when, got)
		}
		for i := range want {
			if !strings.Contains(got[i], want[i]) {
				t.Errorf("%s: warning %q; want %q", when, got[i], want[i])
			}
		}
	}
	for range 3 {
		dial(t, d, tg).Close()
	}
	check("three dials")
	f, err := os.OpenFile(tg.KnownHostsFiles[0], os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString("# an edit\n")
	f.Close()
	dial(t, d, tg).Close()
	check("after an edit")
	got = nil
	dial(t, &Dialer{Warn: d.Warn}, tg).Close()
	check("a new run")
}
