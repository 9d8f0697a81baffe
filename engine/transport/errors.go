package transport

import (
	"errors"
	"fmt"
	"strings"
)

// UnreachableError marks a failure to reach or log in to a host: the engine
// reports the host as unreachable, not as a failed task.
type UnreachableError struct {
	Host string // the target's name
	Op   string // "dial", "handshake", "host key", "auth", "proxy", "connection"
	Err  error
	// Tries is how many times the connection was tried (when more than once: failures
	// before authentication are tried again, see Dialer.ConnectTries).
	Tries int
}

func (e *UnreachableError) Error() string {
	if e.Tries > 1 {
		return fmt.Sprintf("%s: %s: %v (after %d tries)", e.Host, e.Op, e.Err, e.Tries)
	}
	return fmt.Sprintf("%s: %s: %v", e.Host, e.Op, e.Err)
}

func (e *UnreachableError) Unwrap() error { return e.Err }

// IsUnreachable reports whether err means the host could not be reached,
// verified or logged in to (as opposed to a command failing on it).
func IsUnreachable(err error) bool {
	var u *UnreachableError
	return errors.As(err, &u)
}

func unreachable(host, op string, err error) error {
	var u *UnreachableError
	if errors.As(err, &u) {
		return err
	}
	return &UnreachableError{Host: host, Op: op, Err: err}
}

// AuthError says who we tried to log in as, where, and with what.
type AuthError struct {
	User, Host string
	Tried      []string // auth sources offered, e.g. "agent (2 keys)", "key /root/.ssh/id_ed25519"
	Notes      []string // why some sources could not be used (an encrypted key, an agent that did not answer)
	Err        error
}

func (e *AuthError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "authentication as %q on %s failed", e.User, e.Host)
	if len(e.Tried) == 0 {
		b.WriteString(": no usable keys (no agent keys, no readable key files)")
	} else {
		fmt.Fprintf(&b, "; tried publickey with %s", strings.Join(e.Tried, ", "))
	}
	for _, n := range e.Notes {
		b.WriteString("; ")
		b.WriteString(n)
	}
	if e.Err != nil {
		fmt.Fprintf(&b, " (%v)", e.Err)
	}
	return b.String()
}

func (e *AuthError) Unwrap() error { return e.Err }

// HostKeyError is a refused host key: unknown, changed, revoked, or unverifiable because
// the host's own known_hosts entry cannot be read.
type HostKeyError struct {
	Host        string // host as looked up in known_hosts, e.g. "[127.0.0.1]:2201"
	Kind        string // "unknown", "mismatch", "revoked", "unreadable"
	Fingerprint string // SHA256 fingerprint of the key the server offered
	KeyType     string
	Detail      string // where the known key is, and how to fix it
}

func (e *HostKeyError) Error() string {
	switch e.Kind {
	case "mismatch":
		return fmt.Sprintf("host key for %s has CHANGED: the server offered %s %s; %s", e.Host, e.KeyType, e.Fingerprint, e.Detail)
	case "revoked":
		return fmt.Sprintf("host key %s %s of %s is revoked in %s", e.KeyType, e.Fingerprint, e.Host, e.Detail)
	case "unreadable":
		return fmt.Sprintf("host key %s %s of %s cannot be verified: %s", e.KeyType, e.Fingerprint, e.Host, e.Detail)
	default:
		return fmt.Sprintf("unknown host key for %s: %s %s; %s", e.Host, e.KeyType, e.Fingerprint, e.Detail)
	}
}

// ErrBecomePassword is returned (wrapped) when sudo, su or doas rejects the become
// password.
var ErrBecomePassword = errors.New("become password rejected")
