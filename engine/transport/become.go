package transport

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/runbook/runbook/internal/sh"
	"github.com/runbook/runbook/internal/tail"
)

// Become is privilege escalation for one command.
type Become struct {
	Method   string // "sudo", "su" or "doas"; "" runs as the login user
	User     string // empty: root
	Password string // sent when sudo, su or doas prompts; never in argv, logs or errors
	// PromptTimeout bounds the wait for the prompt or the command's
	// start. 0: the Dialer's BecomePromptTimeout (default 10 s).
	PromptTimeout time.Duration
}

// CheckBecomeMethod returns nil for the become methods runbook implements (sudo, su, doas)
// and an error naming method otherwise: Ansible's other methods (pbrun, pfexec, dzdo, ksu,
// machinectl, runas, …) are refused by name, anything else ("" too) as unknown. Callers
// that read a method from an inventory can check it before connecting.
func CheckBecomeMethod(method string) error {
	switch {
	case method == "sudo" || ttyMethods[method]:
		return nil
	case unsupportedMethods[method]:
		return fmt.Errorf("become method %q is not supported (runbook supports sudo, su and doas)", method)
	default:
		return fmt.Errorf("unknown become method %q (want sudo, su or doas)", method)
	}
}

func (d *Dialer) becomePromptTimeout() time.Duration {
	if d != nil && d.BecomePromptTimeout > 0 {
		return d.BecomePromptTimeout
	}
	return 10 * time.Second
}

type becomeCmd struct {
	command  string
	prompt   []byte // sudo's prompt, unique per command and never on a command line
	marker   []byte // printed on stderr once sudo runs the command
	password string
	user     string
}

// newBecome wraps cmd for sudo. sudo reads the password from stdin (-S) after printing our
// prompt on stderr; the wrapped shell prints a marker line on stderr before running cmd, so
// the controller knows when sudo is done and cmd's stdin begins. -H sets HOME to the target
// user's.
//
// The prompt is a fresh random token that never appears in argv, where any local user could
// read it: the first line the controller writes on stdin carries it, a shell reads that line
// and hands it to sudo in SUDO_PROMPT (sudo's environment is readable only by root). A
// process that merely watches the host's process list therefore cannot print a prompt the
// controller would answer. The outer /bin/sh makes the wrapper independent of the login
// shell's syntax.
func newBecome(b Become, cmd string) (*becomeCmd, error) {
	if err := CheckBecomeMethod(b.Method); err != nil {
		return nil, err
	}
	if b.Method != "sudo" {
		return nil, fmt.Errorf("internal error: become method %q needs a terminal", b.Method)
	}
	// sudo -S reads the password up to a line break; whatever follows would reach the
	// command's stdin (the helper's protocol stream, or a pushed file) instead.
	if i := strings.IndexAny(b.Password, "\r\n"); i >= 0 {
		return nil, fmt.Errorf("the become password contains a line break (%q), which sudo would take as its end, passing the rest to the command; refused before anything was sent", b.Password[i])
	}
	user := b.User
	if user == "" {
		user = "root"
	}
	bc := &becomeCmd{
		prompt:   []byte("[runbook-sudo-" + randomHex(16) + "]"),
		marker:   []byte("runbook-become-" + randomHex(8)),
		password: b.Password,
		user:     user,
	}
	inner := "echo " + string(bc.marker) + " >&2; " + cmd
	outer := `IFS= read -r p || exit 1; SUDO_PROMPT=$p; export SUDO_PROMPT; exec sudo -H -S -u ` + sh.Quote(user) +
		" -- /bin/sh -c " + sh.Quote(inner)
	bc.command = "exec /bin/sh -c " + sh.Quote(outer)
	return bc, nil
}

// Bounds of the handshake: what sudo (with PAM and a lecture) may print before the
// command starts, and how much of it an error message quotes.
const (
	maxBecomeOutput = 256 << 10
	becomeTailSize  = 4 << 10
)

// handshake sends the prompt token, then reads the session's stderr until sudo's prompt
// (then writes the password) or the marker line (then cmd runs and s.Stderr is left at the
// byte after the marker line). A second prompt means the password was wrong.
//
// It holds only a window of the stream (the bytes that may start a token split across two
// reads) and a short tail for error messages, so each byte is searched a bounded number of
// times and a host that floods stderr costs no memory; after maxBecomeOutput bytes without
// the command's start it gives up.
func (bc *becomeCmd) handshake(ctx context.Context, s *Session, host string, timeout time.Duration) error {
	timedOut := make(chan struct{})
	var expire sync.Once // Reset re-arms a timer that may have fired already
	timer := time.AfterFunc(timeout, func() { expire.Do(func() { close(timedOut) }); _ = s.s.Close() })
	defer timer.Stop()

	if _, err := s.Stdin.Write(append(append([]byte(nil), bc.prompt...), '\n')); err != nil {
		return fmt.Errorf("sudo on %s: send the prompt: %w", host, err)
	}
	markerLine := append(append([]byte(nil), bc.marker...), '\n')
	keep := max(len(bc.prompt), len(markerLine)) - 1
	last := &tail.Buffer{Max: becomeTailSize}
	var win []byte
	chunk := make([]byte, 4096)
	total := 0
	sent := false
	for {
		n, rerr := s.Stderr.Read(chunk)
		total += n
		_, _ = last.Write(chunk[:n])
		win = append(win, chunk[:n]...)
		for {
			mi := bytes.Index(win, markerLine)
			pi := bytes.Index(win, bc.prompt)
			if mi >= 0 && (pi < 0 || mi < pi) {
				rest := append([]byte(nil), win[mi+len(markerLine):]...)
				s.Stderr = io.MultiReader(bytes.NewReader(rest), s.Stderr)
				return nil
			}
			if pi < 0 {
				break
			}
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
			win = win[pi+len(bc.prompt):]
			timer.Reset(timeout)
		}
		if len(win) > keep {
			win = append(win[:0], win[len(win)-keep:]...)
		}
		if total > maxBecomeOutput && rerr == nil {
			return fmt.Errorf("sudo on %s wrote more than %d KiB to stderr without starting the command: %s",
				host, maxBecomeOutput>>10, bc.scrub(strings.TrimSpace(last.String())))
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
			msg := bc.scrub(strings.TrimSpace(last.String()))
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
