package transport

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha1"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

// The known_hosts reader. x/crypto's knownhosts.New refuses a whole file for one line it
// cannot read (a key type it does not know, a truncated key, a malformed hashed name), which
// would make every host in the file unreachable. OpenSSH skips such lines; so does this
// reader, keeping each one so that a host whose own entry is among them fails closed
// instead of looking unknown. A line it can read means what it means to OpenSSH (a host is
// looked up by the same lower-case name, its patterns and hashed names match as OpenSSH's
// do: see parseHostField), except that a @revoked line counts for every host, whatever its
// host field says, as it does for x/crypto. Errors are x/crypto's types, so the policy in
// hostkey.go reads them as it would x/crypto's.

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

// hostMatcher is the host field of a line: patterns, or one hashed name. It is asked about
// a host's lookup name (lookupName).
type hostMatcher interface {
	match(name string) bool
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

// parseHostField reads a host field: a hashed name (|1|salt|hash) or a comma-separated list
// of patterns, as OpenSSH reads them: each pattern, '!' for negation aside, is text with the
// wildcards * and ?, compared in lower case with the whole of a host's lookup name
// (lookupName), brackets and port included. So "*" matches "[b.example]:2200" too,
// "[*.example]:*" matches "[a.example]:2222", and "[h]:22" matches nothing, since a host on
// port 22 is looked up as "h". Only a hashed name can be malformed.
func parseHostField(s string) (hostMatcher, error) {
	if strings.HasPrefix(s, "|") {
		parts := strings.Split(s, "|")
		if len(parts) != 4 || parts[1] != "1" {
			return nil, errors.New("malformed hashed host name (want |1|salt|hash)")
		}
		salt, err1 := base64.StdEncoding.DecodeString(parts[2])
		_, err2 := base64.StdEncoding.DecodeString(parts[3])
		if err1 != nil || err2 != nil {
			return nil, errors.New("malformed hashed host name (its salt or hash is not valid base64)")
		}
		if len(salt) != sha1.Size {
			return nil, fmt.Errorf("malformed hashed host name (its salt is %d bytes, not %d)", len(salt), sha1.Size)
		}
		return hashedHost{salt: salt, text: s}, nil
	}
	var ps patternList
	for _, p := range strings.Split(s, ",") {
		var hp hostPattern
		if strings.HasPrefix(p, "!") {
			hp.negate, p = true, p[1:]
		}
		hp.pattern = lowerASCII(p)
		// OpenSSH gives up on a list at a pattern too long for its buffer: from there on,
		// nothing matches.
		hp.tooLong = len(p) >= maxPatternLen
		ps = append(ps, hp)
	}
	return ps, nil
}

// maxPatternLen is the length from which OpenSSH's matcher treats a pattern list as
// matching nothing.
const maxPatternLen = 1023

type hostPattern struct {
	negate  bool
	pattern string // lower case; may have * and ? wildcards
	tooLong bool
}

type patternList []hostPattern

// match: some pattern matches and no negated one does. An empty pattern matches only an
// empty name, so never a host.
func (ps patternList) match(name string) bool {
	matched := false
	for _, p := range ps {
		if p.tooLong {
			return false
		}
		if !wildcardMatch(p.pattern, name) {
			continue
		}
		if p.negate {
			return false
		}
		matched = true
	}
	return matched
}

// plain returns the one pattern of a list that has a single pattern, not negated and without
// wildcards; ok is false for any other list.
func (ps patternList) plain() (string, bool) {
	if len(ps) != 1 || ps[0].negate || ps[0].tooLong || strings.ContainsAny(ps[0].pattern, "*?") {
		return "", false
	}
	return ps[0].pattern, true
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

// hashedHost is a hashed name: HMAC-SHA1 of the lookup name under salt, written as
// |1|base64(salt)|base64(hash).
type hashedHost struct {
	salt []byte
	text string // as written
}

// match compares the name's hash written out with the field as written, as OpenSSH does.
func (h hashedHost) match(name string) bool {
	mac := hmac.New(sha1.New, h.salt)
	mac.Write([]byte(name))
	want := "|1|" + base64.StdEncoding.EncodeToString(h.salt) + "|" + base64.StdEncoding.EncodeToString(mac.Sum(nil))
	return hmac.Equal([]byte(want), []byte(h.text))
}

// lookupName is the name a host is known by in known_hosts, as OpenSSH looks it up and
// records it: the host in lower case (an IP address in its canonical form), written
// [host]:port when the port is not 22.
func lookupName(host, port string) string {
	host = canonicalHost(host)
	if n, err := strconv.Atoi(port); err == nil && (n == 0 || n == 22) {
		return host
	}
	return "[" + host + "]:" + port
}

// lookupNameOf is lookupName of a "host:port" address; ok is false if it is not one.
func lookupNameOf(address string) (string, bool) {
	host, port, err := net.SplitHostPort(address)
	if err != nil {
		return "", false
	}
	return lookupName(host, port), true
}

// canonicalHost is host as OpenSSH names it: an IP address in its canonical form, any other
// name in lower case.
func canonicalHost(host string) string {
	if a, err := netip.ParseAddr(host); err == nil {
		return a.String()
	}
	return lowerASCII(host)
}

// lowerASCII lowers A-Z only, as OpenSSH's C-locale tolower does.
func lowerASCII(s string) string {
	b := []byte(s)
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}

// keysFor returns the readable host keys (not CAs) of the host known as name (lookupName).
func (db *knownHostsDB) keysFor(name string) []knownhosts.KnownKey {
	var out []knownhosts.KnownKey
	for _, e := range db.entries {
		if !e.ca && e.hosts.match(name) {
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

// revocation refuses a key that a @revoked line names (*knownhosts.RevokedError), or that
// an unreadable @revoked line may name (*UnreadableEntryError): one of the key's type, or of
// no type it shows. A @revoked line counts for any host, whatever its host field says.
// types are further key types the line would also be about (a certificate's own).
func (db *knownHostsDB) revocation(key ssh.PublicKey, types ...string) error {
	if r, ok := db.revoked[string(key.Marshal())]; ok {
		return &knownhosts.RevokedError{Revoked: r}
	}
	for _, b := range db.broken {
		if b.marker == "@revoked" && (b.keyType == "" || b.keyType == key.Type() || slices.Contains(types, b.keyType)) {
			return &UnreadableEntryError{Where: b.where(), Reason: b.reason, Revoked: true}
		}
	}
	return nil
}

// check verifies a plain host key, with x/crypto's errors: *knownhosts.RevokedError, or a
// *knownhosts.KeyError listing the host's known keys (none: the host is unknown). A host
// with a line of its own that cannot be read gets an *UnreadableEntryError instead of an
// unknown-host error, and so does any key an unreadable @revoked line may name.
func (db *knownHostsDB) check(address string, remote net.Addr, key ssh.PublicKey) error {
	if err := db.revocation(key); err != nil {
		return err
	}
	hp := address
	if hp == "" {
		hp = remote.String()
	}
	name, ok := lookupNameOf(hp)
	if !ok {
		return fmt.Errorf("known_hosts: %q is not host:port", hp)
	}
	kerr := &knownhosts.KeyError{}
	for _, e := range db.entries {
		if e.ca || !e.hosts.match(name) {
			continue
		}
		kerr.Want = append(kerr.Want, e.key)
		if bytes.Equal(e.key.Key.Marshal(), key.Marshal()) {
			return nil
		}
	}
	if len(kerr.Want) == 0 {
		for _, b := range db.broken {
			if b.marker != "@revoked" && b.hosts != nil && b.hosts.match(name) {
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
	name, ok := lookupNameOf(address)
	if !ok {
		return false
	}
	for _, e := range db.entries {
		if e.ca && e.hosts.match(name) && bytes.Equal(e.key.Key.Marshal(), ca.Marshal()) {
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

// callback verifies host keys and host certificates, as knownhosts.New's callback does. A
// certificate is first held to the same @revoked rules as a plain key, for both its key and
// the CA's that signed it: CertChecker only asks whether a key is revoked, not whether an
// unreadable line may revoke it.
func (db *knownHostsDB) callback() ssh.HostKeyCallback {
	c := &ssh.CertChecker{IsHostAuthority: db.isHostAuthority, IsRevoked: db.isRevoked, HostKeyFallback: db.check}
	return func(address string, remote net.Addr, key ssh.PublicKey) error {
		cert, ok := key.(*ssh.Certificate)
		if !ok {
			return c.CheckHostKey(address, remote, key)
		}
		if err := db.revocation(cert.Key, cert.Type()); err != nil {
			return err
		}
		if err := db.revocation(cert.SignatureKey); err != nil {
			return err
		}
		// The principals are compared with the host as OpenSSH names it: in lower case.
		if host, port, err := net.SplitHostPort(address); err == nil {
			address = net.JoinHostPort(canonicalHost(host), port)
		}
		return c.CheckHostKey(address, remote, key)
	}
}
