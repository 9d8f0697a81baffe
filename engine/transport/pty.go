package transport

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/runbook/runbook/internal/sh"
	"github.com/runbook/runbook/internal/tail"
)

// su and doas read the password from their terminal, not from stdin, so a command under
// them runs on a pseudo-terminal (docs/transport.md, "su and doas"). The session goes
// through three stages on one byte stream, the terminal's output:
//
//  1. the outer shell, as the login user, turns off write access to the terminal for
//     others (mesg n), prints the ready marker and execs su or doas with LC_ALL=C;
//  2. su or doas prompts; the controller answers once, and only a prompt that is the last
//     thing printed after the ready marker;
//  3. the inner shell, as the become user, switches the terminal to a transparent raw mode,
//     drains whatever input is pending, prints the start marker and runs the command with
//     its stdout on the terminal and its stderr into `tail -c 4096`; when the command has
//     exited it prints the end marker, that tail, and exits with the command's status.
//
// The controller's Stdout is the stream between the start and end markers; its Stderr
// is what follows the end marker. A raw terminal has no end of input: commands under su or
// doas must read exactly what they need from stdin (head -c N), and Stdin.Close hangs up
// the terminal.

// ttyMethods are the become methods that need a terminal.
var ttyMethods = map[string]bool{"su": true, "doas": true}

// unsupportedMethods are become methods of Ansible's that runbook refuses by name.
var unsupportedMethods = map[string]bool{
	"pbrun": true, "pfexec": true, "dzdo": true, "ksu": true, "machinectl": true, "runas": true,
	"pmrun": true, "sesu": true, "enable": true,
}

// validBecomeUser is what su and doas get as the user: a plain user name, never something
// their option parsers could take for an option.
var validBecomeUser = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_.@-]*\$?$`)

// ptyStderrTail is how much of a command's stderr the inner shell keeps; maxPtyStderr is
// what the controller accepts after the end marker.
const (
	ptyStderrTail = 4096
	maxPtyStderr  = 64 << 10
	// hangupGrace is how long Stdin.Close lets a command that has exited report its status
	// before it hangs up the terminal.
	hangupGrace = 250 * time.Millisecond
)

type ttyBecome struct {
	method   string
	user     string
	password string
	command  string
	ready    []byte // printed by the outer shell just before it execs su or doas
	marker   []byte // printed by the inner shell once the terminal is raw
	end      []byte // printed by the inner shell after the command's stdout
}

// newTTYBecome wraps cmd for su or doas.
func newTTYBecome(b Become, cmd string) (*ttyBecome, error) {
	if i := strings.IndexFunc(b.Password, func(r rune) bool { return r < 0x20 || r == 0x7f }); i >= 0 {
		if c := b.Password[i]; c == '\n' || c == '\r' {
			return nil, fmt.Errorf("the become password contains a line break (%q), which %s would take as its end; refused before anything was sent", c, b.Method)
		}
		return nil, fmt.Errorf("the become password contains a control character (byte %d), which the terminal %s reads it from would act on instead of passing it; refused before anything was sent", b.Password[i], b.Method)
	}
	user := b.User
	if user == "" {
		user = "root"
	}
	if !validBecomeUser.MatchString(user) {
		return nil, fmt.Errorf("become user %q is not a user name %s accepts", user, b.Method)
	}
	tb := &ttyBecome{
		method:   b.Method,
		user:     user,
		password: b.Password,
		ready:    []byte("runbook-ready-" + randomHex(16)),
		marker:   []byte("runbook-start-" + randomHex(16)),
		end:      []byte("\x1erunbook-end-" + randomHex(16) + "\x1e"),
	}
	// The inner shell, as the become user. stty acts on its stdin, the terminal: raw, no
	// echo, no special characters (-iexten: no ^V or ^O either), 8 bits through unchanged
	// both ways (-opost: no \r added). "min 0 time 0" and cat drain input that is pending
	// (a password su did not read), so it cannot reach the command. Only then the marker.
	// The command's stderr goes into a pipe to tail, which keeps its end in memory; its
	// status is the last line tail sees.
	inner := `stty raw -echo -echonl -iexten -ixon -ixoff -icrnl -inlcr -igncr -istrip cs8 -parenb -opost min 0 time 0 || exit 125; ` +
		`cat >/dev/null; stty min 1 time 0 || exit 125; `
	if b.Method == "su" {
		// The outer shell set LC_ALL=C for su's messages; the command gets the login's
		// LC_ALL back (saved by the outer shell), or none if the login had none.
		inner += `if [ -n "${RUNBOOK_LC_ALL_SET-}" ]; then LC_ALL=$RUNBOOK_LC_ALL; export LC_ALL; else unset LC_ALL; fi; unset RUNBOOK_LC_ALL RUNBOOK_LC_ALL_SET; `
	}
	// setsid: the command has the terminal as stdin and stdout but not as its controlling
	// terminal, so nothing it runs can open /dev/tty to prompt (ssh, git, sudo) and write
	// into the stream or read from it. -w waits when setsid has to fork.
	inner += `s=; setsid -w true 2>/dev/null && s='setsid -w'; ` +
		`printf '%s\n' ` + string(tb.marker) + `; exec 3>&1; ` +
		`e=$( { $s /bin/sh -c ` + sh.Quote(cmd) + ` 2>&1 >&3 3>&-; printf '\n%d' "$?"; } | tail -c ` + fmt.Sprint(ptyStderrTail) + ` ); ` +
		// c is the text after the last line break (the status), e the text before it.
		"c=${e##*\n}; e=${e%\n*}; case $c in ''|*[!0-9]*) c=1;; esac; " +
		`printf '\036%s\036%s' ` + strings.Trim(string(tb.end), "\x1e") + ` "$e"; exit "$c"`
	var become string
	switch b.Method {
	case "su":
		// su hands its -c string to the user's login shell; -s /bin/sh asks for sh instead
		// (su honours it unless the user's shell is not in /etc/shells, nologin say, and the
		// caller is not root: that shell then runs it, or refuses).
		become = `RUNBOOK_LC_ALL=${LC_ALL-}; RUNBOOK_LC_ALL_SET=${LC_ALL+1}; export RUNBOOK_LC_ALL RUNBOOK_LC_ALL_SET; ` +
			`LC_ALL=C exec su -s /bin/sh ` + sh.Quote(user) + ` -c ` + sh.Quote("exec /bin/sh -c "+sh.Quote(inner))
	case "doas":
		become = `LC_ALL=C exec doas -u ` + sh.Quote(user) + ` -- /bin/sh -c ` + sh.Quote(inner)
	}
	outer := `mesg n 2>/dev/null; printf '%s\n' ` + string(tb.ready) + `; ` + become
	tb.command = "exec /bin/sh -c " + sh.Quote(outer)
	return tb, nil
}

// ptyModes: no echo (the password su has not yet read would show), output unchanged.
var ptyModes = ssh.TerminalModes{
	ssh.ECHO: 0, ssh.ECHONL: 0, ssh.OPOST: 0, ssh.ONLCR: 0,
	ssh.TTY_OP_ISPEED: 38400, ssh.TTY_OP_OSPEED: 38400,
}

// Texts of su and doas in the C locale: a prompt ends with "assword:" and maybe a space
// (su: "Password: ", doas: "doas (user@host) password: "); a refusal says
// "Authentication failure" (su) or "Authentication failed" (doas).
var authFailure = []byte("Authentication fail")

func isPrompt(win []byte) bool {
	w := bytes.TrimSuffix(win, []byte(" "))
	return len(w) >= 8 && strings.EqualFold(string(w[len(w)-8:]), "assword:")
}

// handshake reads the terminal's output r until the start marker, answering su's or
// doas' prompt on w. It returns the bytes read after the marker line. closeFn ends the
// session (on timeout).
//
// What it trusts: nothing before the ready marker (the login shell's startup files may
// print anything); after it, a prompt only when it is the last thing on the terminal (su
// then waits for the answer), and only one: the password is sent at most once.
func (tb *ttyBecome) handshake(ctx context.Context, r io.Reader, w io.Writer, host string, timeout time.Duration, closeFn func(), exit func() int) ([]byte, error) {
	timedOut := make(chan struct{})
	var expire sync.Once
	timer := time.AfterFunc(timeout, func() { expire.Do(func() { close(timedOut) }); closeFn() })
	defer timer.Stop()

	// A marker line may end in "\r\n": a login shell's startup file can turn the
	// terminal's onlcr back on before the outer shell prints the ready marker.
	keep := max(len(tb.ready)+2, len(tb.marker)+2, len(authFailure), 16) - 1
	last := &tail.Buffer{Max: becomeTailSize}
	var win []byte
	chunk := make([]byte, 4096)
	total := 0
	ready, sent := false, false
	for {
		n, rerr := r.Read(chunk)
		total += n
		_, _ = last.Write(chunk[:n])
		win = append(win, chunk[:n]...)
		if !ready {
			if i := lineEnd(win, tb.ready); i >= 0 {
				ready = true
				win = win[i:]
				last = &tail.Buffer{Max: becomeTailSize}
				_, _ = last.Write(win)
			}
		}
		if ready {
			if i := lineEnd(win, tb.marker); i >= 0 {
				return append([]byte(nil), win[i:]...), nil
			}
			if sent && bytes.Contains(win, authFailure) {
				return nil, fmt.Errorf("%w by %s on %s (for user %s)", ErrBecomePassword, tb.method, host, tb.user)
			}
			if n > 0 && isPrompt(win) {
				if sent {
					return nil, fmt.Errorf("%s on %s asked for a password again after it was sent (rejected, or expired): %s",
						tb.method, host, tb.scrub(strings.TrimSpace(last.String())))
				}
				if tb.password == "" {
					return nil, fmt.Errorf("%s on %s asks for a password and no become password is set", tb.method, host)
				}
				if _, err := io.WriteString(w, tb.password+"\n"); err != nil {
					return nil, fmt.Errorf("%s on %s: send password: %w", tb.method, host, err)
				}
				sent = true
				win = win[:0]
				timer.Reset(timeout)
			}
		}
		if len(win) > keep {
			win = append(win[:0], win[len(win)-keep:]...)
		}
		if total > maxBecomeOutput && rerr == nil {
			return nil, fmt.Errorf("%s on %s wrote more than %d KiB without starting the command: %s",
				tb.method, host, maxBecomeOutput>>10, tb.scrub(strings.TrimSpace(last.String())))
		}
		if rerr != nil {
			select {
			case <-timedOut:
				what := "neither a password prompt nor the command's start"
				if sent {
					what = "no command start after the password"
				}
				// A prompt of another kind (a one-time code) is worth showing.
				said := ""
				if msg := strings.TrimSpace(last.String()); msg != "" && ready {
					said = "; it printed: " + tb.scrub(msg)
				}
				return nil, fmt.Errorf("%s on %s: %s within %s%s", tb.method, host, what, timeout, said)
			default:
			}
			if err := ctx.Err(); err != nil {
				return nil, err
			}
			msg := tb.scrub(strings.TrimSpace(last.String()))
			if sent && strings.Contains(msg, string(authFailure)) {
				return nil, fmt.Errorf("%w by %s on %s (for user %s)", ErrBecomePassword, tb.method, host, tb.user)
			}
			code := exit()
			if msg == "" {
				msg = "no output"
			}
			return nil, fmt.Errorf("%s on %s did not run the command (exit %d): %s", tb.method, host, code, msg)
		}
	}
}

// lineEnd finds token as a whole line's end in win: followed by "\n" or "\r\n". It returns
// the index just past the line break, or -1 if there is none (yet).
func lineEnd(win, token []byte) int {
	for off := 0; ; {
		i := bytes.Index(win[off:], token)
		if i < 0 {
			return -1
		}
		j := off + i + len(token)
		if j < len(win) && win[j] == '\n' {
			return j + 1
		}
		if j+1 < len(win) && win[j] == '\r' && win[j+1] == '\n' {
			return j + 2
		}
		off += i + 1
	}
}

func (tb *ttyBecome) scrub(s string) string {
	if tb.password == "" {
		return s
	}
	return strings.ReplaceAll(s, tb.password, "********")
}

// demux splits the terminal's output after the start marker: the command's stdout up to
// the end marker goes to stdout (as it comes, holding back only bytes that may begin the
// marker), what follows to stderr (at most maxPtyStderr bytes). Both are closed at the
// end of r.
func demux(r io.Reader, end []byte, stdout *io.PipeWriter, stderr *boundedPipe) {
	defer stderr.Close()
	buf := make([]byte, 32<<10)
	var pend []byte // bytes held back: they may begin the end marker
	for {
		n, err := r.Read(buf)
		data := append(pend, buf[:n]...)
		pend = nil
		if i := bytes.Index(data, end); i >= 0 {
			_, _ = stdout.Write(data[:i])
			stdout.Close()
			_, _ = stderr.Write(data[i+len(end):])
			_, _ = io.Copy(stderr, r)
			return
		}
		h := heldBack(data, end)
		_, _ = stdout.Write(data[:len(data)-h])
		pend = append([]byte(nil), data[len(data)-h:]...)
		if err != nil {
			_, _ = stdout.Write(pend)
			if errors.Is(err, io.EOF) {
				stdout.Close()
			} else {
				stdout.CloseWithError(err)
			}
			return
		}
	}
}

// heldBack is the length of the longest end of data that begins marker.
func heldBack(data, marker []byte) int {
	for k := min(len(data), len(marker)-1); k > 0; k-- {
		if bytes.HasPrefix(marker, data[len(data)-k:]) {
			return k
		}
	}
	return 0
}

// boundedPipe is a reader fed by a writer that never blocks: it keeps at most max bytes
// and drops the rest.
type boundedPipe struct {
	mu     sync.Mutex
	cond   *sync.Cond
	buf    []byte
	max    int
	closed bool
}

func newBoundedPipe(max int) *boundedPipe {
	p := &boundedPipe{max: max}
	p.cond = sync.NewCond(&p.mu)
	return p
}

func (p *boundedPipe) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if room := p.max - len(p.buf); room > 0 {
		p.buf = append(p.buf, b[:min(len(b), room)]...)
	}
	p.cond.Broadcast()
	return len(b), nil
}

func (p *boundedPipe) Read(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for len(p.buf) == 0 && !p.closed {
		p.cond.Wait()
	}
	if len(p.buf) == 0 {
		return 0, io.EOF
	}
	n := copy(b, p.buf)
	p.buf = p.buf[n:]
	p.max -= n // what was read counts against the bound too
	return n, nil
}

func (p *boundedPipe) Close() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.closed = true
	p.cond.Broadcast()
	return nil
}

// ptyStdin is a terminal session's stdin. A raw terminal has no end of input: Close sends
// EOF and, unless the command has ended within hangupGrace, hangs up the terminal, which
// a command reading it sees as its end (and SIGHUP).
type ptyStdin struct {
	io.WriteCloser
	s    *ssh.Session
	done <-chan struct{}
	once sync.Once
}

func (p *ptyStdin) Close() error {
	err := p.WriteCloser.Close()
	p.once.Do(func() {
		go func() {
			select {
			case <-p.done:
			case <-time.After(hangupGrace):
				_ = p.s.Close()
			}
		}()
	})
	return err
}

// startTTY starts cmd under su or doas on a pseudo-terminal and returns once the command
// runs.
func (c *Conn) startTTY(ctx context.Context, tb *ttyBecome, timeout time.Duration) (*Session, error) {
	s, err := c.newSession(ctx)
	if err != nil {
		return nil, err
	}
	ss := &Session{c: c, s: s, ctx: ctx}
	if err := s.RequestPty("dumb", 24, 200, ptyModes); err != nil {
		s.Close()
		return nil, c.connErr(fmt.Errorf("%s on %s: request a terminal: %w", tb.method, c.Target.Name, err))
	}
	stdin, err := s.StdinPipe()
	var out io.Reader
	if err == nil {
		out, err = s.StdoutPipe()
	}
	if err != nil {
		s.Close()
		return nil, fmt.Errorf("session pipes on %s: %w", c.Target.Name, err)
	}
	if err := s.Start(tb.command); err != nil {
		s.Close()
		return nil, c.connErr(fmt.Errorf("start command on %s: %w", c.Target.Name, err))
	}
	c.started()
	ss.stop = context.AfterFunc(ctx, func() { kill(s) })
	exit := func() int { code, _ := ss.Wait(); return code }
	rest, err := tb.handshake(ctx, out, stdin, c.Target.Name, timeout, func() { _ = s.Close() }, exit)
	if err != nil {
		ss.stop()
		kill(s)
		return nil, err
	}
	pr, pw := io.Pipe()
	errp := newBoundedPipe(maxPtyStderr)
	demuxed := make(chan struct{})
	ss.Stdout, ss.Stderr, ss.demuxed = pr, errp, demuxed
	ss.closeOut = func() { _ = pr.CloseWithError(io.ErrClosedPipe) }
	go func() {
		demux(io.MultiReader(bytes.NewReader(rest), out), tb.end, pw, errp)
		close(demuxed)
	}()
	// Wait keeps its result, so waiting here costs callers nothing; Stdin.Close learns
	// from it whether the command has ended.
	done := make(chan struct{})
	go func() { _, _ = ss.Wait(); close(done) }()
	ss.Stdin = &ptyStdin{WriteCloser: stdin, s: s, done: done}
	return ss, nil
}
