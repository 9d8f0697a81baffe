package accounts

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"strings"
)

// keyTypes are the key types OpenSSH's sshd accepts in authorized_keys (sshd(8)), the
// certificate forms included.
var keyTypes = map[string]bool{
	"ssh-ed25519": true, "ssh-rsa": true, "ssh-dss": true,
	"ecdsa-sha2-nistp256": true, "ecdsa-sha2-nistp384": true, "ecdsa-sha2-nistp521": true,
	"sk-ssh-ed25519@openssh.com": true, "sk-ecdsa-sha2-nistp256@openssh.com": true,
	"ssh-ed25519-cert-v01@openssh.com": true, "ssh-rsa-cert-v01@openssh.com": true, "ssh-dss-cert-v01@openssh.com": true,
	"ecdsa-sha2-nistp256-cert-v01@openssh.com": true, "ecdsa-sha2-nistp384-cert-v01@openssh.com": true,
	"ecdsa-sha2-nistp521-cert-v01@openssh.com": true, "sk-ssh-ed25519-cert-v01@openssh.com": true,
	"sk-ecdsa-sha2-nistp256-cert-v01@openssh.com": true,
	"rsa-sha2-256": true, "rsa-sha2-512": true,
	"rsa-sha2-256-cert-v01@openssh.com": true, "rsa-sha2-512-cert-v01@openssh.com": true,
}

// blobTypes are the names sshd also takes for a key whose data names another type: an
// RSA key or certificate under the name of its SHA-2 signature algorithms. A line with
// one of them is that key, for absent and exclusive to find.
var blobTypes = map[string]string{
	"rsa-sha2-256": "ssh-rsa", "rsa-sha2-512": "ssh-rsa",
	"rsa-sha2-256-cert-v01@openssh.com": "ssh-rsa-cert-v01@openssh.com",
	"rsa-sha2-512-cert-v01@openssh.com": "ssh-rsa-cert-v01@openssh.com",
}

// maxKeyLine bounds one line of the key argument (an RSA key of 16384 bits is about 2.8
// KiB in base64). Lines of the file are not bounded but by the file's size: sshd takes a
// key line of any length (a long from= or comment), so a longer one is still a key that
// absent and exclusive must find.
const maxKeyLine = 16 << 10

// authKey is one key line of an authorized_keys file: options, key type, the key as
// base64, and the comment.
type authKey struct {
	Options string // as written, "" when none
	Type    string
	Blob    string // base64
	Comment string
}

// String renders the key as one authorized_keys line.
func (k authKey) String() string {
	s := k.Type + " " + k.Blob
	if k.Options != "" {
		s = k.Options + " " + s
	}
	if k.Comment != "" {
		s += " " + k.Comment
	}
	return s
}

// Fingerprint is the key's SHA256 fingerprint, as ssh-keygen -l prints it.
func (k authKey) Fingerprint() string {
	raw, _ := base64.StdEncoding.DecodeString(k.Blob)
	sum := sha256.Sum256(raw)
	return "SHA256:" + base64.RawStdEncoding.EncodeToString(sum[:])
}

// splitOptions splits a line that starts with options at the first blank outside double
// quotes (sshd's rule: options are comma-separated, and a quoted value may hold blanks and
// \" ). It returns the options and the rest, or an error for an unterminated quote.
func splitOptions(line string) (string, string, error) {
	quoted := false
	for i := 0; i < len(line); i++ {
		switch c := line[i]; {
		case c == '\\' && quoted && i+1 < len(line) && line[i+1] == '"':
			i++
		case c == '"':
			quoted = !quoted
		case (c == ' ' || c == '\t') && !quoted:
			return line[:i], strings.TrimLeft(line[i:], " \t"), nil
		}
	}
	if quoted {
		return "", "", fmt.Errorf("an option's quoted value does not end")
	}
	return line, "", nil
}

// parseKey reads one authorized_keys line (not blank, not a comment).
func parseKey(line string) (authKey, error) {
	if strings.ContainsAny(line, "\n\r\x00") {
		return authKey{}, fmt.Errorf("a key line must be one line")
	}
	line = strings.Trim(line, " \t")
	var k authKey
	rest := line
	if f := strings.Fields(line); len(f) > 0 && !keyTypes[f[0]] {
		opts, r, err := splitOptions(line)
		if err != nil {
			return authKey{}, err
		}
		k.Options, rest = opts, r
	}
	f := strings.Fields(rest)
	if len(f) < 2 {
		return authKey{}, fmt.Errorf("expected [options] TYPE BASE64 [comment]; no key type sshd knows (ssh-ed25519, ssh-rsa, ecdsa-sha2-nistp256, ...) was found")
	}
	if !keyTypes[f[0]] {
		return authKey{}, fmt.Errorf("%q is not a key type sshd knows (ssh-ed25519, ssh-rsa, ecdsa-sha2-nistp256, ...)", clip(f[0]))
	}
	k.Type, k.Blob = f[0], f[1]
	raw, err := base64.StdEncoding.DecodeString(k.Blob)
	if err != nil {
		return authKey{}, fmt.Errorf("the %s key is not valid base64", k.Type)
	}
	// The blob starts with its own type as an SSH string: a key pasted under the wrong
	// type, or cut, does not.
	inner := k.Type
	if t, ok := blobTypes[k.Type]; ok {
		inner = t
	}
	if len(raw) < 4 || int(binary.BigEndian.Uint32(raw)) > len(raw)-4 || string(raw[4:4+binary.BigEndian.Uint32(raw)]) != inner {
		return authKey{}, fmt.Errorf("the %s key's data does not hold a %s key (cut or mislabelled?)", k.Type, k.Type)
	}
	if i := strings.Index(rest, k.Blob); i >= 0 {
		k.Comment = strings.TrimSpace(rest[i+len(k.Blob):])
	}
	return k, nil
}

func clip(s string) string {
	if len(s) > 40 {
		return s[:40] + "…"
	}
	return s
}

// keyFileLine is one line of an authorized_keys file: a key, or (Key nil) a blank line, a
// comment or a line sshd would not take, all kept as they are.
type keyFileLine struct {
	Text string
	Key  *authKey
}

func parseKeyFile(b []byte) []keyFileLine {
	var out []keyFileLine
	text := string(b)
	text = strings.TrimSuffix(text, "\n")
	if text == "" {
		return nil
	}
	for _, l := range strings.Split(text, "\n") {
		kl := keyFileLine{Text: l}
		if t := strings.TrimSpace(l); t != "" && !strings.HasPrefix(t, "#") {
			if k, err := parseKey(strings.TrimSuffix(l, "\r")); err == nil {
				kl.Key = &k
			}
		}
		out = append(out, kl)
	}
	return out
}

func renderKeyFile(lines []keyFileLine) []byte {
	var b strings.Builder
	for _, l := range lines {
		b.WriteString(l.Text)
		b.WriteByte('\n')
	}
	return []byte(b.String())
}

// wantKeys parses the key argument: one key per line, blank lines and comments skipped.
// options (key_options), when not nil, replaces the options of every key; "" removes them.
// Each line as it will be written must read back as the same key with the same options:
// options with a quote left open, a blank outside quotes or a key type in them would make
// a line that sshd takes otherwise, and that the next run would not find and add again.
func wantKeys(text string, options *string) ([]authKey, error) {
	var out []authKey
	for i, l := range strings.Split(text, "\n") {
		l = strings.TrimSpace(strings.TrimSuffix(l, "\r"))
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		if len(l) > maxKeyLine {
			return nil, fmt.Errorf("line %d of key is longer than %d bytes", i+1, maxKeyLine)
		}
		k, err := parseKey(l)
		if err != nil {
			return nil, fmt.Errorf("line %d of key: %w", i+1, err)
		}
		if options != nil {
			k.Options = *options
			if back, err := parseKey(k.String()); err != nil || back != k {
				return nil, fmt.Errorf("key_options %q do not make a key line that reads back as written (one line, comma-separated, blanks only inside double quotes, no key type)", clip(*options))
			}
		}
		out = append(out, k)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("key holds no key line")
	}
	return out, nil
}

// editKeys makes the file hold want (present) or not hold it (absent); exclusive removes
// every other key, and every other line but comments and blank ones. A key is the same key
// when its type and data are; an existing one whose options differ, or whose comment
// differs from a comment given, is replaced in place. It returns the new lines, the
// fingerprints added and removed, and how many other lines exclusive dropped.
func editKeys(lines []keyFileLine, want []authKey, present, exclusive bool) (out []keyFileLine, added, removed []string, dropped int) {
	wanted := map[string]int{}
	for i, k := range want {
		if _, ok := wanted[k.Blob]; !ok {
			wanted[k.Blob] = i
		}
	}
	seen := map[string]bool{}
	for _, l := range lines {
		if l.Key == nil {
			// exclusive keeps comments and blank lines only: a line not read as a key
			// here may be one to sshd.
			if t := strings.TrimSpace(l.Text); present && exclusive && t != "" && !strings.HasPrefix(t, "#") {
				dropped++
				continue
			}
			out = append(out, l)
			continue
		}
		i, isWanted := wanted[l.Key.Blob]
		switch {
		case !present && isWanted, present && exclusive && !isWanted, present && isWanted && seen[l.Key.Blob]:
			removed = append(removed, l.Key.Fingerprint())
			continue
		case present && isWanted:
			seen[l.Key.Blob] = true
			w := want[i]
			if l.Key.Options != w.Options || l.Key.Type != w.Type || (w.Comment != "" && l.Key.Comment != w.Comment) {
				if w.Comment == "" {
					w.Comment = l.Key.Comment
				}
				l = keyFileLine{Text: w.String(), Key: &w}
			}
		}
		out = append(out, l)
	}
	if present {
		for _, k := range want {
			if !seen[k.Blob] {
				seen[k.Blob] = true
				k := k
				out = append(out, keyFileLine{Text: k.String(), Key: &k})
				added = append(added, k.Fingerprint())
			}
		}
	}
	return out, added, removed, dropped
}
