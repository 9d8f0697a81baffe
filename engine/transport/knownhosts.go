package transport

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha1"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

// The known_hosts reader. x/crypto's knownhosts.New refuses a whole file for one line it
// cannot read (a key type it does not know, a truncated key, a malformed hashed name), which
// would make every host in the file unreachable. OpenSSH skips such lines; so does this
// reader, keeping each one so that a host whose own entry is among them fails closed
// instead of looking unknown. It keeps x/crypto's meaning of every line it can read
// (patterns, hashed names, @cert-authority, @revoked for any host) and its error types,
// so the policy in hostkey.go is the same for both.

// knownHostsDB is the readable content of some known_hosts files, and what could not be read.
type knownHostsDB struct {
	revoked map[string]knownhosts.KnownKey // by the key's wire form
	entries []khEntry
	broken  []khBroken
}

// khEntry is a host key or a @cert-authority line.
type khEntry struct {
	ca    bool
	hosts hostMatcher
	key   knownhosts.KnownKey
}

// khBroken is a line that could not be read.
type khBroken struct {
	file    string
	line    int
	reason  string
	marker  string      // "@revoked", "@cert-authority" or ""
	hosts   hostMatcher // nil: the host field itself cannot be read
	keyType string      // as written; "" if missing
}

func (b khBroken) where() string { return fmt.Sprintf("%s:%d", b.file, b.line) }

// hostMatcher is the host field of a line: patterns, or one hashed name.
type hostMatcher interface {
	match(host, port string) bool
}

// readKnownHosts reads files in order. Only a file that cannot be read at all is an error.
func readKnownHosts(files []string) (*knownHostsDB, error) {
	db := &knownHostsDB{revoked: map[string]knownhosts.KnownKey{}}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, fmt.Errorf("read known_hosts: %w", err)
		}
		db.add(f, b)
	}
	return db, nil
}

// add reads the lines of one file's content.
func (db *knownHostsDB) add(file string, content []byte) {
	for n, line := range bytes.Split(content, []byte("\n")) {
		line = bytes.Trim(line, " \t\r")
		if len(line) == 0 || line[0] == '#' {
			continue
		}
		if b := db.addLine(file, n+1, string(line)); b != nil {
			db.broken = append(db.broken, *b)
		}
	}
}

// addLine reads one line: [marker] hosts keytype base64-key [comment].
func (db *knownHostsDB) addLine(file string, n int, line string) *khBroken {
	f := strings.FieldsFunc(line, func(r rune) bool { return r == ' ' || r == '\t' || r == '\r' })
	bad := &khBroken{file: file, line: n}
	if strings.HasPrefix(f[0], "@") {
		bad.marker = f[0]
		if f[0] != "@cert-authority" && f[0] != "@revoked" {
			bad.reason = fmt.Sprintf("unknown marker %q", f[0])
			return bad
		}
		f = f[1:]
	}
	if len(f) == 0 {
		bad.reason = "no host names"
		return bad
	}
	hosts, herr := parseHostField(f[0])
	bad.hosts = hosts
	key, kerr := parseKey(f[1:])
	if len(f) > 1 {
		bad.keyType = f[1]
	}
	switch {
	case kerr == nil && bad.marker == "@revoked":
		// For any host, whatever the host field says, as x/crypto reads it.
		db.revoked[string(key.Marshal())] = knownhosts.KnownKey{Key: key, Filename: file, Line: n}
		return nil
	case herr != nil:
		bad.reason = herr.Error()
		return bad
	case kerr != nil:
		bad.reason = kerr.Error()
		return bad
	}
	db.entries = append(db.entries, khEntry{ca: bad.marker == "@cert-authority", hosts: hosts,
		key: knownhosts.KnownKey{Key: key, Filename: file, Line: n}})
	return nil
}

// parseKey reads the key type and base64 key fields of a line.
func parseKey(f []string) (ssh.PublicKey, error) {
	if len(f) < 2 {
		return nil, errors.New("no key")
	}
	var key ssh.PublicKey
	blob, derr := base64.StdEncoding.DecodeString(f[1])
	err := derr
	if err == nil {
		key, err = ssh.ParsePublicKey(blob)
	}
	switch {
	case err != nil && !supportedKeyTypes[f[0]]:
		return nil, fmt.Errorf("key type %q is not supported", f[0])
	case derr != nil:
		return nil, fmt.Errorf("%s key is not valid base64, perhaps truncated", f[0])
	case err != nil:
		return nil, fmt.Errorf("%s key cannot be parsed, perhaps truncated: %v", f[0], err)
	case key.Type() != f[0]:
		return nil, fmt.Errorf("the key is of type %s, the line says %q", key.Type(), f[0])
	}
	return key, nil
}

// supportedKeyTypes are the key types a known_hosts line can have that x/crypto parses.
var supportedKeyTypes = map[string]bool{
	ssh.KeyAlgoRSA: true, ssh.KeyAlgoDSA: true, ssh.KeyAlgoED25519: true,
	ssh.KeyAlgoECDSA256: true, ssh.KeyAlgoECDSA384: true, ssh.KeyAlgoECDSA521: true,
	ssh.KeyAlgoSKED25519: true, ssh.KeyAlgoSKECDSA256: true,
}

// parseHostField reads a comma-separated pattern list or a hashed name (|1|salt|hash).
func parseHostField(s string) (hostMatcher, error) {
	if strings.HasPrefix(s, "|") {
		parts := strings.Split(s, "|")
		if len(parts) != 4 || parts[1] != "1" {
			return nil, errors.New("malformed hashed host name (want |1|salt|hash)")
		}
		salt, err1 := base64.StdEncoding.DecodeString(parts[2])
		hash, err2 := base64.StdEncoding.DecodeString(parts[3])
		if err1 != nil || err2 != nil {
			return nil, errors.New("malformed hashed host name (its salt or hash is not valid base64)")
		}
		return hashedHost{salt: salt, hash: hash}, nil
	}
	var ps patternList
	for _, p := range strings.Split(s, ",") {
		if p == "" {
			continue
		}
		var hp hostPattern
		if p[0] == '!' {
			hp.negate, p = true, p[1:]
			if p == "" {
				return nil, errors.New("a host pattern is a lone '!'")
			}
		}
		h, port, err := net.SplitHostPort(p)
		switch {
		case err == nil:
			hp.host, hp.port = h, port
		case p[0] == '[':
			return nil, fmt.Errorf("host pattern %q: want [host]:port", p)
		default:
			hp.host, hp.port = p, "22"
		}
		ps = append(ps, hp)
	}
	return ps, nil
}

type hostPattern struct {
	negate     bool
	host, port string // host may have * and ? wildcards
}

type patternList []hostPattern

// match: some pattern matches and no negated one does.
func (ps patternList) match(host, port string) bool {
	matched := false
	for _, p := range ps {
		if p.port != port || !wildcardMatch(p.host, host) {
			continue
		}
		if p.negate {
			return false
		}
		matched = true
	}
	return matched
}

// wildcardMatch matches s against a pattern of literal bytes, * (any run) and ? (any byte).
// It backtracks only to the last *, so it takes at most len(pat)·len(s) steps.
func wildcardMatch(pat, s string) bool {
	p, i := 0, 0
	star, mark := -1, 0
	for i < len(s) {
		switch {
		case p < len(pat) && (pat[p] == '?' || pat[p] == s[i]):
			p++
			i++
		case p < len(pat) && pat[p] == '*':
			star, mark = p, i
			p++
		case star >= 0:
			p = star + 1
			mark++
			i = mark
		default:
			return false
		}
	}
	for p < len(pat) && pat[p] == '*' {
		p++
	}
	return p == len(pat)
}

type hashedHost struct{ salt, hash []byte }

// match compares the hash of the name as known_hosts writes it: host, or [host]:port off
// port 22.
func (h hashedHost) match(host, port string) bool {
	mac := hmac.New(sha1.New, h.salt)
	mac.Write([]byte(knownhosts.Normalize(net.JoinHostPort(host, port))))
	return hmac.Equal(mac.Sum(nil), h.hash)
}

// keysFor returns the readable host keys (not CAs) of host:port.
func (db *knownHostsDB) keysFor(host, port string) []knownhosts.KnownKey {
	var out []knownhosts.KnownKey
	for _, e := range db.entries {
		if !e.ca && e.hosts.match(host, port) {
			out = append(out, e.key)
		}
	}
	return out
}

// UnreadableEntryError refuses a host whose key no readable line verifies while a line
// that cannot be read is that host's entry, or is a @revoked line that may name the key:
// the line might hold (or revoke) the very key offered, so the host is neither accepted as
// new nor reported as unknown.
type UnreadableEntryError struct {
	Where   string // file:line
	Reason  string
	Revoked bool
}

func (e *UnreadableEntryError) Error() string {
	if e.Revoked {
		return fmt.Sprintf("the @revoked line %s cannot be read (%s), and it may revoke this key; fix or remove that line", e.Where, e.Reason)
	}
	return fmt.Sprintf("its known_hosts entry %s cannot be read: %s; fix or remove that line", e.Where, e.Reason)
}

// check verifies a plain host key, with x/crypto's errors: *knownhosts.RevokedError, or a
// *knownhosts.KeyError listing the host's known keys (none: the host is unknown). A host
// with a line of its own that cannot be read gets an *UnreadableEntryError instead of an
// unknown-host error, and so does any key an unreadable @revoked line may name.
func (db *knownHostsDB) check(address string, remote net.Addr, key ssh.PublicKey) error {
	if r, ok := db.revoked[string(key.Marshal())]; ok {
		return &knownhosts.RevokedError{Revoked: r}
	}
	hp := address
	if hp == "" {
		hp = remote.String()
	}
	host, port, err := net.SplitHostPort(hp)
	if err != nil {
		return fmt.Errorf("known_hosts: %s: %v", hp, err)
	}
	for _, b := range db.broken {
		// A @revoked line counts for any host, read or not; only its key type may show
		// that it cannot be about this key.
		if b.marker == "@revoked" && (b.keyType == "" || b.keyType == key.Type()) {
			return &UnreadableEntryError{Where: b.where(), Reason: b.reason, Revoked: true}
		}
	}
	kerr := &knownhosts.KeyError{}
	for _, e := range db.entries {
		if e.ca || !e.hosts.match(host, port) {
			continue
		}
		kerr.Want = append(kerr.Want, e.key)
		if bytes.Equal(e.key.Key.Marshal(), key.Marshal()) {
			return nil
		}
	}
	if len(kerr.Want) == 0 {
		for _, b := range db.broken {
			if b.marker != "@revoked" && b.hosts != nil && b.hosts.match(host, port) {
				return &UnreadableEntryError{Where: b.where(), Reason: b.reason}
			}
		}
	}
	return kerr
}

// unattributed lists the unreadable lines whose host field cannot be read: any host's
// entry may be among them.
func (db *knownHostsDB) unattributed() []string {
	var out []string
	for _, b := range db.broken {
		if b.hosts == nil && b.marker != "@revoked" {
			out = append(out, b.where())
		}
	}
	return out
}

// isHostAuthority and isRevoked serve ssh.CertChecker for host certificates.
func (db *knownHostsDB) isHostAuthority(ca ssh.PublicKey, address string) bool {
	host, port, err := net.SplitHostPort(address)
	if err != nil {
		return false
	}
	for _, e := range db.entries {
		if e.ca && e.hosts.match(host, port) && bytes.Equal(e.key.Key.Marshal(), ca.Marshal()) {
			return true
		}
	}
	return false
}

func (db *knownHostsDB) isRevoked(cert *ssh.Certificate) bool {
	_, k := db.revoked[string(cert.Key.Marshal())]
	_, ca := db.revoked[string(cert.SignatureKey.Marshal())]
	return k || ca
}

// callback verifies host keys and host certificates, as knownhosts.New's callback does.
func (db *knownHostsDB) callback() ssh.HostKeyCallback {
	c := &ssh.CertChecker{IsHostAuthority: db.isHostAuthority, IsRevoked: db.isRevoked, HostKeyFallback: db.check}
	return c.CheckHostKey
}
