package transport

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/runbook/runbook/internal/sh"
)

// Become is privilege escalation for one command.
type Become struct {
	Method   string // "sudo"; "" runs as the login user
	User     string // empty: root
	Password string // sent on stdin when sudo prompts; never in argv, logs or errors
	// PromptTimeout bounds the wait for sudo's prompt or the command's
	// start. 0: the Dialer's BecomePromptTimeout (default 10 s).
	PromptTimeout time.Duration
}

func (d *Dialer) becomePromptTimeout() time.Duration {
	if d != nil && d.BecomePromptTimeout > 0 {
		return d.BecomePromptTimeout
	}
	return 10 * time.Second
}

type becomeCmd struct {
	command  string
	prompt   []byte // sudo's prompt, unique per command
	marker   []byte // printed on stderr once sudo runs the command
	password string
	user     string
}

// newBecome wraps cmd for sudo. sudo reads the password from stdin (-S)
// after printing our unique prompt on stderr; the wrapped shell prints a
// unique marker on stderr before running cmd, so the controller knows when
// sudo is done and cmd's stdin begins. -H sets HOME to the target user's.
func newBecome(b Become, cmd string) (*becomeCmd, error) {
	switch b.Method {
	case "sudo":
	case "su":
		return nil, errors.New(`become method "su" is not supported: su reads the password from a terminal, not stdin; use sudo`)
	default:
		return nil, fmt.Errorf("unknown become method %q (want sudo)", b.Method)
	}
	user := b.User
	if user == "" {
		user = "root"
	}
	id := randomHex(8)
	bc := &becomeCmd{
		prompt:   []byte("[runbook-sudo-" + id + "]"),
		marker:   []byte("runbook-become-" + id),
		password: b.Password,
		user:     user,
	}
	inner := "echo " + string(bc.marker) + " >&2; " + cmd
	bc.command = "sudo -H -S -p " + sh.Quote(string(bc.prompt)) + " -u " + sh.Quote(user) +
		" -- /bin/sh -c " + sh.Quote(inner)
	return bc, nil
}

// handshake reads the session's stderr until sudo's prompt (then writes the
// password) or the marker (then cmd runs and s.Stderr is left at the byte
// after the marker line). A second prompt means the password was wrong.
func (bc *becomeCmd) handshake(ctx context.Context, s *Session, host string, timeout time.Duration) error {
	timedOut := make(chan struct{})
	timer := time.AfterFunc(timeout, func() { close(timedOut); _ = s.s.Close() })
	defer timer.Stop()

	var buf []byte
	chunk := make([]byte, 4096)
	sent := false
	for {
		n, rerr := s.Stderr.Read(chunk)
		buf = append(buf, chunk[:n]...)
		if i := bytes.Index(buf, bc.marker); i >= 0 && bytes.IndexByte(buf[i:], '\n') >= 0 {
			rest := buf[i+len(bc.marker):]
			rest = rest[bytes.IndexByte(rest, '\n')+1:]
			s.Stderr = io.MultiReader(bytes.NewReader(append([]byte(nil), rest...)), s.Stderr)
			return nil
		}
		if i := bytes.Index(buf, bc.prompt); i >= 0 {
			if sent {
				return fmt.Errorf("%w by sudo on %s (for user %s)", ErrBecomePassword, host, bc.user)
			}
			if bc.password == "" {
				return fmt.Errorf("sudo on %s asks for a password and no become password is set", host)
			}
			if _, err := io.WriteString(s.Stdin, bc.password+"\n"); err != nil {
				return fmt.Errorf("sudo on %s: send password: %w", host, err)
			}
			sent = true
			buf = buf[i+len(bc.prompt):]
			timer.Reset(timeout)
		}
		if rerr != nil {
			select {
			case <-timedOut:
				what := "its password prompt or the command's start"
				if sent {
					what = "the command's start after the password"
				}
				return fmt.Errorf("sudo on %s: no %s within %s", host, what, timeout)
			default:
			}
			if err := ctx.Err(); err != nil {
				return err
			}
			msg := bc.scrub(strings.TrimSpace(string(buf)))
			if sent && strings.Contains(msg, "incorrect password") {
				return fmt.Errorf("%w by sudo on %s (for user %s)", ErrBecomePassword, host, bc.user)
			}
			code, _ := s.Wait()
			if msg == "" {
				msg = "no output"
			}
			return fmt.Errorf("sudo on %s did not run the command (exit %d): %s", host, code, msg)
		}
	}
}

// scrub removes the password from text that goes into an error, should a
// misbehaving sudo or shell echo it.
func (bc *becomeCmd) scrub(s string) string {
	if bc.password == "" {
		return s
	}
	return strings.ReplaceAll(s, bc.password, "********")
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
