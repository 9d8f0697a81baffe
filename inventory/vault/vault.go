// Package vault reads values encrypted with Ansible Vault (`ansible-vault encrypt` and
// `encrypt_string`): the envelope formats 1.1 and 1.2 (1.2 names a vault id) with the
// AES256 cipher. It only decrypts; runbook never writes vaults.
//
// An envelope is a header line, "$ANSIBLE_VAULT;1.1;AES256" or
// "$ANSIBLE_VAULT;1.2;AES256;LABEL", then hex text in lines. That text decodes to three
// lines of hex: a 32-byte salt, an HMAC-SHA256 and the ciphertext. PBKDF2-HMAC-SHA256
// (10000 iterations) turns the password and salt into 80 bytes: the AES-256 key, the HMAC
// key and the CTR mode's initial counter block. The HMAC of the ciphertext is checked, in
// constant time, before anything is decrypted; the plaintext carries PKCS#7 padding.
package vault

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"

	"golang.org/x/crypto/pbkdf2"
)

// Header is how every vault envelope starts.
const Header = "$ANSIBLE_VAULT"

// DefaultID is the label of a password given without one (Ansible's "default").
const DefaultID = "default"

const (
	iterations = 10000
	keyLen     = 32
	saltLen    = 32
	// maxEnvelope bounds what is decoded: an inventory file is bounded well below it.
	maxEnvelope = 64 << 20
)

// Errors of Decrypt. None of them, nor any error of this package, holds a password or
// plaintext.
var (
	// ErrNoPassword: no password was given for the envelope's vault id (nor any other).
	ErrNoPassword = errors.New("no vault password was given")
	// ErrMismatch: no password given yields the envelope's HMAC: a wrong password, or an
	// envelope that was altered.
	ErrMismatch = errors.New("no vault password given decrypts it (a wrong password, or the encrypted text was altered)")
)

// Envelope is a parsed vault envelope.
type Envelope struct {
	Version string // "1.1" or "1.2"
	Cipher  string // "AES256"
	ID      string // the vault id of a 1.2 envelope, "" for 1.1
	salt    []byte
	mac     []byte
	ct      []byte
}

// IsEncrypted reports whether data is a vault envelope (leading blank space allowed, as
// in an indented YAML block).
func IsEncrypted(data []byte) bool {
	return bytes.HasPrefix(bytes.TrimLeft(data, " \t\r\n"), []byte(Header+";"))
}

// Parse reads an envelope. Its errors say what is malformed, never quoting the text.
func Parse(data []byte) (*Envelope, error) {
	if len(data) > maxEnvelope {
		return nil, fmt.Errorf("the vault text is larger than %d MiB", maxEnvelope>>20)
	}
	text := strings.TrimSpace(string(data))
	header, body, _ := strings.Cut(text, "\n")
	header = strings.TrimSpace(header)
	fields := strings.Split(header, ";")
	if len(fields) < 3 || fields[0] != Header {
		return nil, errors.New("the vault text does not start with a $ANSIBLE_VAULT;VERSION;CIPHER header")
	}
	e := &Envelope{Version: strings.TrimSpace(fields[1]), Cipher: strings.TrimSpace(fields[2])}
	switch e.Version {
	case "1.1":
		if len(fields) != 3 {
			return nil, errors.New("a vault 1.1 header has three fields")
		}
	case "1.2":
		if len(fields) != 4 || strings.TrimSpace(fields[3]) == "" {
			return nil, errors.New("a vault 1.2 header names its vault id: $ANSIBLE_VAULT;1.2;AES256;ID")
		}
		e.ID = strings.TrimSpace(fields[3])
	default:
		return nil, fmt.Errorf("vault format %q is not supported (1.1 and 1.2 are)", e.Version)
	}
	if e.Cipher != "AES256" {
		return nil, fmt.Errorf("the vault cipher %q is not supported (AES256 is)", e.Cipher)
	}
	outer, err := hex.DecodeString(strings.Join(strings.Fields(body), ""))
	if err != nil || len(outer) == 0 {
		return nil, errors.New("the vault text is not valid hex")
	}
	parts := strings.Split(strings.TrimRight(string(outer), "\n"), "\n")
	if len(parts) != 3 {
		return nil, errors.New("the vault text does not hold a salt, an HMAC and a ciphertext")
	}
	if e.salt, err = hex.DecodeString(parts[0]); err != nil || len(e.salt) == 0 {
		return nil, errors.New("the vault salt is not valid hex")
	}
	if e.mac, err = hex.DecodeString(parts[1]); err != nil || len(e.mac) != sha256.Size {
		return nil, errors.New("the vault HMAC is not a hex SHA-256")
	}
	if e.ct, err = hex.DecodeString(parts[2]); err != nil || len(e.ct) == 0 || len(e.ct)%aes.BlockSize != 0 {
		return nil, errors.New("the vault ciphertext is not whole AES blocks of hex")
	}
	return e, nil
}

// open decrypts e with one password: an error when the HMAC does not match (checked
// before decrypting) or the padding is not PKCS#7.
func (e *Envelope) open(password []byte) ([]byte, error) {
	dk := pbkdf2.Key(password, e.salt, iterations, 2*keyLen+aes.BlockSize, sha256.New)
	aesKey, macKey, iv := dk[:keyLen], dk[keyLen:2*keyLen], dk[2*keyLen:]
	m := hmac.New(sha256.New, macKey)
	m.Write(e.ct)
	if !hmac.Equal(m.Sum(nil), e.mac) {
		return nil, ErrMismatch
	}
	block, err := aes.NewCipher(aesKey)
	if err != nil {
		return nil, err
	}
	out := make([]byte, len(e.ct))
	cipher.NewCTR(block, iv).XORKeyStream(out, e.ct)
	n := int(out[len(out)-1])
	if n == 0 || n > aes.BlockSize || n > len(out) {
		return nil, errors.New("the decrypted vault text has invalid padding")
	}
	for _, b := range out[len(out)-n:] {
		if int(b) != n {
			return nil, errors.New("the decrypted vault text has invalid padding")
		}
	}
	return out[:len(out)-n], nil
}

// Secret is one vault password and the vault id it is given for.
type Secret struct {
	ID       string
	Password []byte
}

// Keyring is the vault passwords of a run, in the order they were given. The nil
// Keyring has none.
type Keyring struct {
	secrets []Secret
}

// NewKeyring returns a Keyring of the secrets (their passwords are not copied).
func NewKeyring(secrets ...Secret) *Keyring {
	return &Keyring{secrets: secrets}
}

// Add adds a secret after those already there.
func (k *Keyring) Add(s Secret) { k.secrets = append(k.secrets, s) }

// Len is how many passwords k holds.
func (k *Keyring) Len() int {
	if k == nil {
		return 0
	}
	return len(k.secrets)
}

// IDs are the vault ids k has passwords for, in order.
func (k *Keyring) IDs() []string {
	if k == nil {
		return nil
	}
	out := make([]string, len(k.secrets))
	for i, s := range k.secrets {
		out[i] = s.ID
	}
	return out
}

// Decrypt opens a vault envelope. A 1.2 envelope tries the passwords given for its vault
// id first, then the others, as Ansible does; a 1.1 envelope tries every password in
// order. The error is ErrNoPassword when k has none, ErrMismatch when none fits (wrapped
// with the vault id), or a format error from Parse.
func (k *Keyring) Decrypt(data []byte) ([]byte, error) {
	e, err := Parse(data)
	if err != nil {
		return nil, err
	}
	return k.Open(e)
}

// Open is Decrypt for a parsed envelope.
func (k *Keyring) Open(e *Envelope) ([]byte, error) {
	if k.Len() == 0 {
		if e.ID != "" {
			return nil, fmt.Errorf("%w (the value is encrypted for vault id %q)", ErrNoPassword, e.ID)
		}
		return nil, ErrNoPassword
	}
	order := make([]Secret, 0, len(k.secrets))
	if e.ID != "" {
		for _, s := range k.secrets {
			if s.ID == e.ID {
				order = append(order, s)
			}
		}
	}
	for _, s := range k.secrets {
		if e.ID == "" || s.ID != e.ID {
			order = append(order, s)
		}
	}
	var last error
	for _, s := range order {
		out, err := e.open(s.Password)
		if err == nil {
			return out, nil
		}
		last = err
	}
	if errors.Is(last, ErrMismatch) {
		if e.ID != "" && !contains(k.IDs(), e.ID) {
			return nil, fmt.Errorf("%w; the value is encrypted for vault id %q, which no password was given for (given: %s)", ErrMismatch, e.ID, strings.Join(k.IDs(), ", "))
		}
		return nil, ErrMismatch
	}
	return nil, last
}

func contains(l []string, s string) bool {
	for _, x := range l {
		if x == s {
			return true
		}
	}
	return false
}
