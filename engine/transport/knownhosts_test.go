package transport

import (
	"bytes"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strconv"
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
		"[h.example ssh-ed25519 " + strings.Fields(khKey(k1))[1],    // 14: a pattern that matches no host, as in OpenSSH
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
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("unreadable lines:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if u := db.unattributed(); !reflect.DeepEqual(u, []string{"kh:5", "kh:10"}) {
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
		{"h.example:22", k1, "unknown"},
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

func rsaKey(t *testing.T) ssh.PublicKey { return rsaSigner(t).PublicKey() }

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

// TestKnownHostsOpenSSHMatching: a line means to the reader what it means to OpenSSH, where
// x/crypto's knownhosts (which the reader once followed) differs. OpenSSH looks a host up
// as "host", or "[host]:port" off port 22, in lower case, and matches every pattern of a
// line against that whole string.
func TestKnownHostsOpenSSHMatching(t *testing.T) {
	k1s, _ := newKey(t)
	k1 := k1s.PublicKey()
	key := " " + khKey(k1)
	salt := make([]byte, 20)
	hashed := func(name string) string {
		mac := hmac.New(sha1.New, salt)
		mac.Write([]byte(name))
		return "|1|" + base64.StdEncoding.EncodeToString(salt) + "|" + base64.StdEncoding.EncodeToString(mac.Sum(nil))
	}
	tests := []struct {
		name, line, host, want string
	}{
		{"* matches a host on another port", "*" + key, "b.other.org:2200", "ok"},
		{"* matches an IPv6 host on another port", "*" + key, "[::1]:2200", "ok"},
		{"a wildcard port", "[*.example.com]:*" + key, "a.example.com:2222", "ok"},
		{"a wildcard port, not for port 22", "[*.example.com]:*" + key, "a.example.com:22", "unknown"},
		{"[host]:22 is not how port 22 is looked up", "[h3]:22" + key, "h3:22", "unknown"},
		{"patterns in lower case", "HOST.example.org" + key, "host.example.org:22", "ok"},
		{"hosts in lower case", "host.example.org" + key, "HOST.Example.ORG:22", "ok"},
		{"hosts in lower case, with a port", "[host.example.org]:2222" + key, "Host.example.org:2222", "ok"},
		{"hashed: the lower-case name", hashed("host.example.org") + key, "HOST.example.org:22", "ok"},
		{"hashed: never an upper-case name", hashed("HOST.example.org") + key, "HOST.example.org:22", "unknown"},
		{"hashed: with its port", hashed("[h]:2222") + key, "h:2222", "ok"},
		{"IPv6 in its canonical form", "::1" + key, "[0:0::1]:22", "ok"},
		{"IPv6 in lower case", "[fe80::a]:2222" + key, "[FE80::A]:2222", "ok"},
		{"a lone ! is a pattern that matches nothing", "!,h" + key, "h:22", "ok"},
		{"negation", "*,!h" + key, "h:22", "unknown"},
		{"a negated wildcard port", "*,![h]:*" + key, "h:2222", "unknown"},
		{"a pattern too long for OpenSSH ends the list", "h," + strings.Repeat("x", 1023) + key, "h:22", "unknown"},
		{"a pattern just short enough", "h," + strings.Repeat("x", 1022) + key, "h:22", "ok"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			db := &knownHostsDB{revoked: map[string]knownhosts.KnownKey{}}
			db.add("kh", []byte(tt.line))
			if len(db.broken) > 0 {
				t.Fatalf("unreadable: %+v", db.broken)
			}
			if got := describeCheck(db.check(tt.host, nil, k1)); !strings.HasPrefix(got, tt.want) {
				t.Errorf("%s: %s; want %s", tt.host, got, tt.want)
			}
		})
	}
}

// A hashed name is read as OpenSSH reads it: a salt of any other length than SHA-1's is a
// malformed line, not a name that some host may match.
func TestKnownHostsHashedSalt(t *testing.T) {
	k1s, _ := newKey(t)
	db := &knownHostsDB{revoked: map[string]knownhosts.KnownKey{}}
	db.add("kh", []byte("|1|"+base64.StdEncoding.EncodeToString(make([]byte, 10))+"|"+base64.StdEncoding.EncodeToString(make([]byte, 20))+" "+khKey(k1s.PublicKey())))
	if len(db.broken) != 1 || !strings.Contains(db.broken[0].reason, "salt is 10 bytes, not 20") {
		t.Errorf("unreadable: %+v", db.broken)
	}
}

// Host certificates are held to the @revoked rules of plain keys: a @revoked line, readable
// or not, refuses the certificate's key and the key of the CA that signed it.
func TestKnownHostsCertificates(t *testing.T) {
	hostS, _ := newKey(t)
	otherS, _ := newKey(t)
	caS := rsaSigner(t)
	host, ca := hostS.PublicKey(), caS.PublicKey()
	cert := &ssh.Certificate{Key: host, CertType: ssh.HostCert, ValidPrincipals: []string{"h"}, ValidBefore: ssh.CertTimeInfinity}
	if err := cert.SignCert(rand.Reader, caS); err != nil {
		t.Fatal(err)
	}
	authority := "@cert-authority * " + khKey(ca) + "\n"
	tests := []struct {
		name, content, want string
	}{
		{"signed by a known CA", authority, "ok"},
		{"by no known CA", "@cert-authority * " + khKey(rsaSigner(t).PublicKey()), "error"},
		{"the host key revoked", authority + "@revoked * " + khKey(host), "revoked kh:2"},
		{"the CA revoked", authority + "@revoked * " + khKey(ca), "revoked kh:2"},
		{"an unreadable @revoked of the host key's type", authority + "@revoked * " + truncated(host), "unreadable-revoked kh:2"},
		{"an unreadable @revoked of the CA's type", authority + "@revoked * " + truncated(ca), "unreadable-revoked kh:2"},
		{"an unreadable @revoked of no type", authority + "@revoked *", "unreadable-revoked kh:2"},
		{"an unreadable @revoked of the certificate's type", authority + "@revoked * " + cert.Type() + " AAAA", "unreadable-revoked kh:2"},
		{"an unreadable @revoked of another type", authority + "@revoked * " + xmssKey(), "ok"},
		{"another key revoked", authority + "@revoked * " + khKey(otherS.PublicKey()), "ok"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			db := &knownHostsDB{revoked: map[string]knownhosts.KnownKey{}}
			db.add("kh", []byte(tt.content))
			if got := describeCheck(db.callback()("h:22", &net.TCPAddr{}, cert)); !strings.HasPrefix(got, tt.want) {
				t.Errorf("%s; want %s", got, tt.want)
			}
			if got := describeCheck(db.callback()("H:22", &net.TCPAddr{}, cert)); !strings.HasPrefix(got, tt.want) {
				t.Errorf("host H: %s; want %s", got, tt.want)
			}
		})
	}
}

// rsaSigner is a small RSA key, to tell key types apart.
func rsaSigner(t *testing.T) ssh.Signer {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	s, err := ssh.NewSignerFromKey(k)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// The line accept-new writes is the host's lower-case lookup name and its key, and nothing
// else: a name that would read back as anything else (a list, a pattern, a negation, a
// marker, a comment, a second line, a hashed name) is refused, however it got there.
func TestKnownHostsLine(t *testing.T) {
	ks, _ := newKey(t)
	k := ks.PublicKey()
	for _, tt := range []struct{ hostname, want string }{
		{"web1:22", "web1 " + khKey(k) + "\n"},
		{"Web1.Example.COM:2222", "[web1.example.com]:2222 " + khKey(k) + "\n"},
		{"[::1]:22", "::1 " + khKey(k) + "\n"},
		{"[FE80::1%eth0]:2200", "[fe80::1%eth0]:2200 " + khKey(k) + "\n"},
		{"a,*:22", "refused"},
		{"*:22", "refused"},
		{"h?:22", "refused"},
		{"!h:22", "refused"},
		{"[::ffff:127.0.0.1%x\n* " + khKey(k) + "\n#]:22", "refused"},
		{"a\rb:22", "refused"},
		{"a b:22", "refused"},
		{"a\tb:22", "refused"},
		{"#a:22", "refused"},
		{"@revoked:22", "refused"},
		{"@cert-authority:22", "refused"},
		{"|1|" + base64.StdEncoding.EncodeToString(make([]byte, 20)) + "|" + base64.StdEncoding.EncodeToString(make([]byte, 20)) + ":22", "refused"},
		{"nohostport", "refused"},
	} {
		got, err := knownHostsLine(tt.hostname, k)
		if err != nil {
			got = "refused"
			if !strings.Contains(err.Error(), "not recording the key of") && tt.hostname != "nohostport" {
				t.Errorf("%q: error %v does not name the host", tt.hostname, err)
			}
		}
		if got != tt.want {
			t.Errorf("knownHostsLine(%q) = %q, %v; want %q", tt.hostname, got, err, tt.want)
		}
	}
	// Refused before any file is touched.
	kh := filepath.Join(t.TempDir(), "sub", "known_hosts")
	if _, err := acceptNew([]string{kh}, "*:22", &net.TCPAddr{}, k); err == nil {
		t.Error("acceptNew recorded a key for *")
	}
	if _, err := os.Stat(filepath.Dir(kh)); err == nil {
		t.Error("a refused accept-new created the known_hosts directory")
	}
}

// FuzzKnownHosts feeds arbitrary files to the reader. Nothing may panic; each unreadable
// line is reported once with its own line number; and wherever refKnownHosts, an independent
// reading of OpenSSH's rules, reads the whole file, the reader finds no unreadable line and
// answers every lookup as the reference does.
func FuzzKnownHosts(f *testing.F) {
	k1s, _ := newKey(f)
	k2s, _ := newKey(f)
	k1, k2 := k1s.PublicKey(), k2s.PublicKey()
	for _, s := range []string{
		"h " + khKey(k1),
		"[h]:2222,h2 " + khKey(k1) + "\n@revoked * " + khKey(k2),
		knownhosts.HashHostname("h") + " " + khKey(k2) + "\n" + knownhosts.HashHostname("H") + " " + khKey(k1),
		knownhosts.HashHostname("[h]:2222") + " " + khKey(k2),
		"h " + xmssKey() + "\nh " + truncated(k1) + "\n|1|x|y " + khKey(k1),
		"@cert-authority *.example " + khKey(k2) + "\n!a,b " + khKey(k1),
		"# c\n\n  \t\n h\t" + khKey(k1) + " c\r\n",
		"* " + khKey(k1) + "\n[*.Example]:2* " + khKey(k2) + "\n[H]:22 " + khKey(k2),
		"!,h,!x* " + khKey(k1) + "\n::1,[FE80::1]:2200 " + khKey(k2),
	} {
		f.Add([]byte(s))
	}
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

		// Hosts to look up: what each pattern would match, in both cases, on port 22 and
		// on another; and a few fixed ones for the hashed names.
		type hp struct{ host, port string }
		probes := []hp{{"h", "22"}, {"H", "22"}, {"h", "2222"}, {"::1", "22"}, {"fe80::1", "2200"}}
		for _, e := range db.entries {
			ps, ok := e.hosts.(patternList)
			if !ok {
				continue
			}
			for _, p := range ps {
				v := strings.NewReplacer("*", "x", "?", "y").Replace(p.pattern)
				if m := bracketed.FindStringSubmatch(v); m != nil {
					probes = append(probes, hp{m[1], m[2]}, hp{strings.ToUpper(m[1]), m[2]})
				} else {
					probes = append(probes, hp{v, "22"}, hp{strings.ToUpper(v), "22"}, hp{v, "2200"})
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

		// The reference, where its simplifications hold: no \r, and a size its quadratic
		// matcher answers quickly.
		if strings.ContainsRune(string(data), '\r') || len(data) > 2048 {
			return
		}
		ref, ok := refKnownHosts(data)
		if ok != (len(db.broken) == 0) {
			t.Fatalf("the reference reads the file: %v; the reader finds unreadable lines %+v", ok, db.broken)
		}
		if !ok {
			return
		}
		mine := db.callback()
		for _, p := range probes {
			addr := net.JoinHostPort(p.host, p.port)
			if h, port, err := net.SplitHostPort(addr); err != nil || h != p.host || port != p.port {
				continue
			}
			for _, k := range keys {
				if a, b := ref.check(p.host, p.port, k), describeCheck(mine(addr, &net.TCPAddr{}, k)); a != b {
					t.Fatalf("%s %s: reference %s, reader %s", addr, k.Type(), a, b)
				}
				if a, b := ref.isAuthority(p.host, p.port, k), db.isHostAuthority(k, addr); a != b {
					t.Fatalf("%s %s as a CA: reference %v, reader %v", addr, k.Type(), a, b)
				}
			}
		}
	})
}

var bracketed = regexp.MustCompile(`^\[(.*)\]:([0-9]+)$`)

// refKnownHosts reads known_hosts content by OpenSSH's rules (hostfile.c, match.c), written
// apart from the reader, as the fuzz test's reference: ok is false if any line is not
// [marker] host-field key-type base64-key [comment] with a key of that type and, for a
// hashed host field, |1|salt|hash with a 20-byte salt. Like the reader (and x/crypto), it
// takes a @revoked line for every host.
func refKnownHosts(data []byte) (refDB, bool) {
	var db refDB
	for n, line := range strings.Split(string(data), "\n") {
		line = strings.Trim(line, " \t")
		if line == "" || line[0] == '#' {
			continue
		}
		f := strings.FieldsFunc(line, func(r rune) bool { return r == ' ' || r == '\t' })
		l := refLine{n: n + 1}
		if f[0] == "@revoked" || f[0] == "@cert-authority" {
			l.marker, f = f[0], f[1:]
		} else if f[0][0] == '@' {
			return db, false
		}
		if len(f) < 3 {
			return db, false
		}
		l.hosts = f[0]
		blob, err := base64.StdEncoding.DecodeString(f[2])
		if err != nil {
			return db, false
		}
		if l.key, err = ssh.ParsePublicKey(blob); err != nil || l.key.Type() != f[1] {
			return db, false
		}
		// A @revoked line is about every host: its host field is not read.
		if strings.HasPrefix(l.hosts, "|") && l.marker != "@revoked" {
			parts := strings.Split(l.hosts, "|")
			if len(parts) != 4 || parts[1] != "1" {
				return db, false
			}
			salt, err1 := base64.StdEncoding.DecodeString(parts[2])
			_, err2 := base64.StdEncoding.DecodeString(parts[3])
			if err1 != nil || err2 != nil || len(salt) != 20 {
				return db, false
			}
		}
		db = append(db, l)
	}
	return db, true
}

type refLine struct {
	n      int
	marker string
	hosts  string
	key    ssh.PublicKey
}

type refDB []refLine

// name is what OpenSSH looks host up by.
func refName(host, port string) string {
	if a, err := netip.ParseAddr(host); err == nil {
		host = a.String()
	}
	host = refLower(host)
	if n, _ := strconv.Atoi(port); n != 22 && n != 0 {
		host = "[" + host + "]:" + port
	}
	return host
}

// matches is OpenSSH's answer for one host field: a hashed name, or patterns of which some
// matches and no negated one does, the list ending (unmatched) at a pattern of 1023 bytes.
func (l refLine) matches(name string) bool {
	if strings.HasPrefix(l.hosts, "|") {
		parts := strings.Split(l.hosts, "|")
		salt, _ := base64.StdEncoding.DecodeString(parts[2])
		mac := hmac.New(sha1.New, salt)
		mac.Write([]byte(name))
		return l.hosts == "|1|"+parts[2]+"|"+base64.StdEncoding.EncodeToString(mac.Sum(nil)) &&
			base64.StdEncoding.EncodeToString(salt) == parts[2]
	}
	got := false
	for _, p := range strings.Split(l.hosts, ",") {
		neg := strings.HasPrefix(p, "!")
		if neg {
			p = p[1:]
		}
		if len(p) >= 1023 {
			return false
		}
		if refWildcard(refLower(p), name) {
			if neg {
				return false
			}
			got = true
		}
	}
	return got
}

// refLower is C's tolower byte by byte: A-Z only, any other byte as it is.
func refLower(s string) string {
	b := []byte(s)
	for i := range b {
		if b[i] >= 'A' && b[i] <= 'Z' {
			b[i] += 'a' - 'A'
		}
	}
	return string(b)
}

// refWildcard: does s match p, where * is any run of bytes and ? any one byte?
// Row by row: prev[j] says whether the pattern so far matches s[:j].
func refWildcard(p, s string) bool {
	prev := make([]bool, len(s)+1)
	prev[0] = true
	for i := 0; i < len(p); i++ {
		cur := make([]bool, len(s)+1)
		cur[0] = prev[0] && p[i] == '*'
		for j := 1; j <= len(s); j++ {
			switch p[i] {
			case '*':
				cur[j] = prev[j] || cur[j-1]
			case '?':
				cur[j] = prev[j-1]
			default:
				cur[j] = prev[j-1] && p[i] == s[j-1]
			}
		}
		prev = cur
	}
	return prev[len(s)]
}

// check answers as describeCheck names the reader's answers.
func (db refDB) check(host, port string, k ssh.PublicKey) string {
	revoked := 0
	for _, l := range db {
		if l.marker == "@revoked" && bytes.Equal(l.key.Marshal(), k.Marshal()) {
			revoked = l.n // the last such line, as the reader keeps it
		}
	}
	if revoked > 0 {
		return fmt.Sprintf("revoked kh:%d", revoked)
	}
	name := refName(host, port)
	var want []string
	for _, l := range db {
		if l.marker != "" || !l.matches(name) {
			continue
		}
		if bytes.Equal(l.key.Marshal(), k.Marshal()) {
			return "ok"
		}
		want = append(want, fmt.Sprintf("kh:%d", l.n))
	}
	if len(want) == 0 {
		return "unknown"
	}
	return "mismatch " + strings.Join(want, ",")
}

func (db refDB) isAuthority(host, port string, k ssh.PublicKey) bool {
	name := refName(host, port)
	for _, l := range db {
		if l.marker == "@cert-authority" && l.matches(name) && bytes.Equal(l.key.Marshal(), k.Marshal()) {
			return true
		}
	}
	return false
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

// The cache of read files sees a file replaced by another of the same size and mtime (an
// edit within the clock's resolution, or a restored copy): by its inode.
func TestKnownHostsCacheSeesReplacement(t *testing.T) {
	k1s, _ := newKey(t)
	k2s, _ := newKey(t)
	kh := filepath.Join(t.TempDir(), "known_hosts")
	write := func(name string, k ssh.PublicKey) {
		if err := os.WriteFile(name, []byte("h "+khKey(k)+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(kh, k1s.PublicKey())
	st, err := os.Stat(kh)
	if err != nil {
		t.Fatal(err)
	}
	load := func() string {
		t.Helper()
		db, err := loadKnownHosts([]string{kh}, func(string, string) {})
		if err != nil {
			t.Fatal(err)
		}
		return describeCheck(db.check("h:22", nil, k2s.PublicKey()))
	}
	if got := load(); got != "mismatch "+kh+":1" {
		t.Fatalf("before: %s", got)
	}
	write(kh+".new", k2s.PublicKey())
	if err := os.Chtimes(kh+".new", st.ModTime(), st.ModTime()); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(kh+".new", kh); err != nil {
		t.Fatal(err)
	}
	if st2, _ := os.Stat(kh); st2.Size() != st.Size() || !st2.ModTime().Equal(st.ModTime()) {
		t.Fatal("the replacement differs in size or mtime; the test needs them equal")
	}
	if got := load(); got != "ok" {
		t.Errorf("after the replacement: %s; want ok (the cache served the old file)", got)
	}
}
