package transport

import (
	"bytes"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"

	"github.com/runbook/runbook/internal/sh"
)

// credentials are the signers offered to one host, and what we tried and
// could not use, for the error message.
type credentials struct {
	signers []ssh.Signer
	tried   []string
	notes   []string
	agent   net.Conn
	pw      passwordState
	// firstContact: in this dial, accept-new recorded the host's key (known_hosts knew
	// nothing about the host), so nothing verified it; a later try of the same dial is
	// verified only against that record, and counts as first contact too.
	firstContact bool
}

func (c *credentials) close() {
	if c.agent != nil {
		c.agent.Close()
	}
}

// loadCredentials collects agent keys and key files for t. Agent keys come
// first (they need no passphrase); with IdentitiesOnly only agent keys that
// match one of t's key files are used.
func (d *Dialer) loadCredentials(t Target) *credentials {
	cr := &credentials{}
	files := t.IdentityFiles
	if t.IdentityFile != "" {
		files = append([]string{t.IdentityFile}, files...)
	}
	explicit := len(files) > 0
	if !explicit {
		home := homeDir()
		for _, n := range []string{"id_ed25519", "id_ecdsa", "id_rsa"} {
			files = append(files, filepath.Join(home, ".ssh", n))
		}
	}

	// Public halves of the key files, to pick agent keys under IdentitiesOnly
	// and to skip an encrypted file whose key the agent holds.
	type fileKey struct {
		path   string
		raw    []byte
		signer ssh.Signer
		pub    ssh.PublicKey
		err    error
	}
	var keys []fileKey
	for i, f := range files {
		if f == "none" && (i > 0 || t.IdentityFile == "") {
			// ssh_config's IdentityFile none: no key files, not even the defaults. (The
			// inventory's key file is a file, whatever its name: ResolveTarget refuses
			// "none" there.)
			continue
		}
		b, err := readKeyFile(f)
		if err != nil {
			// Like ssh: a missing default or ssh_config key is skipped quietly.
			if f == t.IdentityFile || !errors.Is(err, fs.ErrNotExist) {
				cr.notes = append(cr.notes, fmt.Sprintf("identity file %s: %v", f, unwrapPathErr(err)))
			}
			continue
		}
		fk := fileKey{path: f, raw: b}
		fk.signer, fk.err = ssh.ParsePrivateKey(b)
		if fk.signer != nil {
			fk.pub = fk.signer.PublicKey()
		} else if pb, err := readKeyFile(f + ".pub"); err == nil {
			fk.pub, _, _, _, _ = ssh.ParseAuthorizedKey(pb)
		}
		keys = append(keys, fk)
	}

	certs := loadCertificates(t, files, cr)

	agentSock := os.Getenv("SSH_AUTH_SOCK")
	if t.IdentityAgent != "" {
		agentSock = t.IdentityAgent
	}
	var agentKeys []ssh.PublicKey
	if d.Agent && agentSock != "" && !strings.EqualFold(agentSock, "none") {
		conn, err := net.Dial("unix", agentSock)
		if err != nil {
			cr.notes = append(cr.notes, fmt.Sprintf("ssh-agent at %s: %v", agentSock, unwrapPathErr(err)))
		} else {
			ac := agent.NewClient(conn)
			signers, err := ac.Signers()
			if err != nil {
				conn.Close()
				cr.notes = append(cr.notes, fmt.Sprintf("ssh-agent at %s: %v", agentSock, err))
			} else {
				n := 0
				for _, s := range signers {
					if t.IdentitiesOnly && explicit && !matchesAny(s.PublicKey(), keys, func(k fileKey) ssh.PublicKey { return k.pub }) &&
						!matchesAny(s.PublicKey(), certs, func(c userCert) ssh.PublicKey { return c.cert.Key }) {
						continue
					}
					cr.signers = append(cr.signers, s)
					agentKeys = append(agentKeys, s.PublicKey())
					n++
				}
				cr.agent = conn
				if n > 0 {
					cr.tried = append(cr.tried, fmt.Sprintf("ssh-agent (%d %s)", n, map[bool]string{true: "key", false: "keys"}[n == 1]))
				} else {
					cr.notes = append(cr.notes, "ssh-agent has no usable keys")
				}
			}
		}
	}

	for _, k := range keys {
		switch {
		case k.signer != nil:
			cr.signers = append(cr.signers, k.signer)
			cr.tried = append(cr.tried, "key "+k.path)
		case isPassphraseMissing(k.err):
			if k.pub != nil && containsKey(agentKeys, k.pub) {
				continue // the agent offers it already
			}
			if d.Passphrase != nil && !t.BatchMode {
				signer, err := d.decrypt(k.path, k.raw)
				if err == nil {
					cr.signers = append(cr.signers, signer)
					cr.tried = append(cr.tried, "key "+k.path)
					continue
				}
				cr.notes = append(cr.notes, fmt.Sprintf("identity file %s: %v", k.path, err))
				continue
			}
			how := "run on a terminal to be asked for it"
			if t.BatchMode {
				how = "turn BatchMode off and run on a terminal to be asked for it"
			}
			cr.notes = append(cr.notes, fmt.Sprintf("identity file %s is encrypted with a passphrase: add it to ssh-agent (ssh-add %s), %s, or use an unencrypted key", k.path, sh.Quote(k.path), how))
		default:
			cr.notes = append(cr.notes, fmt.Sprintf("identity file %s: %v", k.path, k.err))
		}
	}
	cr.signers = withCertificates(cr, certs)
	return cr
}

// maxKeyFileSize bounds a key or certificate file (an RSA key of 16384 bits is 13 KiB).
const maxKeyFileSize = 1 << 20

// readKeyFile reads a key or certificate file, which must be a regular file of at most
// maxKeyFileSize bytes: the name may come from an inventory, and /dev/zero or a FIFO must
// neither fill memory nor block the dial. A FIFO is opened without blocking.
func readKeyFile(path string) ([]byte, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !st.Mode().IsRegular() {
		return nil, errors.New("not a regular file")
	}
	if st.Size() > maxKeyFileSize {
		return nil, fmt.Errorf("larger than %d KiB, not a key", maxKeyFileSize>>10)
	}
	b, err := io.ReadAll(io.LimitReader(f, maxKeyFileSize+1))
	if err != nil {
		return nil, err
	}
	if len(b) > maxKeyFileSize {
		return nil, fmt.Errorf("larger than %d KiB, not a key", maxKeyFileSize>>10)
	}
	return b, nil
}

// userCert is a user certificate from a CertificateFile or a <key>-cert.pub file.
type userCert struct {
	path string
	cert *ssh.Certificate
}

// loadCertificates reads t's CertificateFiles and, as ssh does, the <key>-cert.pub next to
// each key file (a missing one quietly). A file that is not a user certificate, or a
// CertificateFile that cannot be read, is a note for the error message.
func loadCertificates(t Target, keyFiles []string, cr *credentials) []userCert {
	var out []userCert
	try := func(path string, implicit bool) {
		b, err := readKeyFile(path)
		if err != nil {
			if !implicit || !errors.Is(err, fs.ErrNotExist) {
				cr.notes = append(cr.notes, fmt.Sprintf("certificate file %s: %v", path, unwrapPathErr(err)))
			}
			return
		}
		pub, _, _, _, err := ssh.ParseAuthorizedKey(b)
		cert, ok := pub.(*ssh.Certificate)
		switch {
		case err != nil:
			cr.notes = append(cr.notes, fmt.Sprintf("certificate file %s: %v", path, err))
		case !ok || cert.CertType != ssh.UserCert:
			cr.notes = append(cr.notes, fmt.Sprintf("certificate file %s: not a user certificate", path))
		default:
			out = append(out, userCert{path: path, cert: cert})
		}
	}
	for _, f := range t.CertificateFiles {
		try(f, false)
	}
	for _, f := range keyFiles {
		if f != "none" {
			try(f+"-cert.pub", true)
		}
	}
	return out
}

// withCertificates puts, before each key that a certificate is for, that key with the
// certificate; the key is still offered alone after it, as ssh does. A certificate for no
// key offered is a note.
func withCertificates(cr *credentials, certs []userCert) []ssh.Signer {
	if len(certs) == 0 {
		return cr.signers
	}
	used := make([]bool, len(certs))
	var out []ssh.Signer
	for _, s := range cr.signers {
		for i, c := range certs {
			if !bytes.Equal(c.cert.Key.Marshal(), s.PublicKey().Marshal()) {
				continue
			}
			cs, err := ssh.NewCertSigner(c.cert, s)
			if err != nil {
				cr.notes = append(cr.notes, fmt.Sprintf("certificate file %s: %v", c.path, err))
				continue
			}
			used[i] = true
			out = append(out, cs)
			cr.tried = append(cr.tried, "certificate "+c.path)
		}
		out = append(out, s)
	}
	for i, c := range certs {
		if !used[i] {
			cr.notes = append(cr.notes, fmt.Sprintf("certificate file %s: no key offered is the certificate's (%s)", c.path, ssh.FingerprintSHA256(c.cert.Key)))
		}
	}
	return out
}

// passphraseTries is how many times a key file's passphrase is asked for before it counts
// as wrong, as ssh does.
const passphraseTries = 3

// decrypt asks for a key file's passphrase (once per file, with passphraseTries tries;
// concurrent hosts wait for the one prompt) and parses the key with it.
func (d *Dialer) decrypt(path string, raw []byte) (ssh.Signer, error) {
	ks := d.keys()
	ks.mu.Lock()
	defer ks.mu.Unlock()
	if r, ok := ks.done[path]; ok {
		return r.signer, r.err
	}
	var r keyResult
	for try := 1; try <= passphraseTries; try++ {
		pass, err := d.Passphrase(path)
		if err != nil {
			r.err = fmt.Errorf("encrypted, and its passphrase could not be read: %w", err)
			break
		}
		r.signer, err = ssh.ParsePrivateKeyWithPassphrase(raw, pass)
		clear(pass)
		if errors.Is(err, x509.IncorrectPasswordError) || (err != nil && strings.Contains(err.Error(), "decryption password incorrect")) {
			r.err = fmt.Errorf("wrong passphrase (%d tries)", try)
			continue
		}
		r.err = err
		break
	}
	ks.done[path] = r
	return r.signer, r.err
}

func isPassphraseMissing(err error) bool {
	var pm *ssh.PassphraseMissingError
	return errors.As(err, &pm)
}

func matchesAny[T any](pub ssh.PublicKey, list []T, get func(T) ssh.PublicKey) bool {
	for _, x := range list {
		if p := get(x); p != nil && bytes.Equal(p.Marshal(), pub.Marshal()) {
			return true
		}
	}
	return false
}

func containsKey(list []ssh.PublicKey, pub ssh.PublicKey) bool {
	return matchesAny(pub, list, func(k ssh.PublicKey) ssh.PublicKey { return k })
}

func unwrapPathErr(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	var oe *net.OpError
	if errors.As(err, &oe) && oe.Err != nil {
		return oe.Err
	}
	return err
}

// passwordState is what became of a target's password during one dial, for the error
// message: whether the host asked for it at all.
type passwordState struct {
	set   bool // the target has a password
	held  bool // not offered: the host key is not verified (StrictHostKeyChecking no)
	asked bool // the host took it (password) or asked for it (keyboard-interactive)
	extra bool // keyboard-interactive asked for more than one password
	// withheld: the host asked for the password on a connection whose key nothing
	// verified (credentials.firstContact), and it was not sent.
	withheld bool
}

// errPasswordWithheld ends a handshake in which an unverified host asked for the password:
// neither method may answer it (an empty answer would count as a failed login).
var errPasswordWithheld = errors.New("password withheld from a host whose key was not verified")

// passwordMethods returns the password and keyboard-interactive methods that log in with
// t.Password, to try after the keys (nil without a password). Keyboard-interactive (what
// sshd offers with PAM) gets the password as the answer to its one hidden prompt, once; a
// host that asks anything else (a visible prompt, a second round after the password: a
// one-time code) gets empty answers, and the login fails. The password goes only to the host
// whose key was verified: ssh checks the host key before any authentication, and under
// StrictHostKeyChecking no (nothing verified) there are no password methods. Each
// connection (a try after a reset before authentication is another) needs its own.
func passwordMethods(t Target, cr *credentials) []ssh.AuthMethod {
	cr.pw = passwordState{}
	if t.Password == "" {
		return nil
	}
	cr.pw.set = true
	// Under StrictHostKeyChecking no any host key is accepted, so the password would go to
	// whoever answers at the address: it is held back (OpenSSH, too, keeps passwords from a
	// host whose key changed). accept-new verifies every key but the first: on the
	// dial where it records a new host's key (credentials.firstContact, set by the host key
	// check before authentication starts, and kept for the later tries of the dial: their
	// key was "verified" against what the first try recorded), the methods refuse to answer.
	if mode, err := normalizeStrict(t.StrictHostKeyChecking); err != nil || mode == "no" {
		cr.pw.held = true
		return nil
	}
	password := ssh.PasswordCallback(func() (string, error) {
		if cr.firstContact {
			cr.pw.withheld = true
			return "", errPasswordWithheld
		}
		cr.pw.asked = true
		return t.Password, nil
	})
	answered := false
	kbd := ssh.KeyboardInteractive(func(_, _ string, questions []string, echos []bool) ([]string, error) {
		if len(questions) == 0 {
			return nil, nil // a message only (a banner, PAM's info text)
		}
		if cr.firstContact {
			cr.pw.withheld = true
			return nil, errPasswordWithheld
		}
		if answered || len(questions) != 1 || echos[0] {
			// Empty answers fail this method (an error here would end the whole handshake,
			// and the message that says why with it).
			cr.pw.extra = true
			return make([]string, len(questions)), nil
		}
		answered, cr.pw.asked = true, true
		return []string{t.Password}, nil
	})
	return []ssh.AuthMethod{password, kbd}
}

// authNotes are the notes of a failed login: why some keys could not be used, and what
// became of the password. The password itself never appears.
func (c *credentials) authNotes() []string {
	notes := c.notes
	switch {
	case !c.pw.set:
	case c.pw.held:
		notes = append(notes, "the inventory's password was not sent: StrictHostKeyChecking is no, so the host's key was not verified (record the host's key in known_hosts and use yes)")
	case c.pw.withheld:
		notes = append(notes, "the inventory's password was not sent: this was the first contact with the host, whose key StrictHostKeyChecking=accept-new has just recorded without verifying it; connect once with a key, or record the key in known_hosts after checking its fingerprint")
	case c.pw.extra:
		notes = append(notes, "the host asks for more than the inventory's password (a one-time code?); runbook answers the password prompt only")
	case c.pw.asked:
		notes = append(notes, "the inventory's password (ansible_password) was refused")
	default:
		notes = append(notes, "the host accepts no password login (password and keyboard-interactive not offered), so the inventory's password was not used")
	}
	return notes
}
