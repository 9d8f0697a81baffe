package transport

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"golang.org/x/crypto/ssh"
)

// Run runs cmd in one session as the login user. stdin may be nil; stdout
// and stderr may be nil (output is discarded). It returns the command's
// exit status (128+n when killed by signal n); err is set only when the
// command's status is unknown: the session could not be opened, the
// connection broke, or ctx ended. On ctx's end the remote process is sent
// SIGKILL, the session closed, and ctx.Err() returned.
func (c *Conn) Run(ctx context.Context, cmd string, stdin io.Reader, stdout, stderr io.Writer) (int, error) {
	if err := ctx.Err(); err != nil {
		return -1, err
	}
	s, err := c.newSession(ctx)
	if err != nil {
		return -1, err
	}
	defer s.Close()
	s.Stdin, s.Stdout, s.Stderr = stdin, stdout, stderr
	if err := s.Start(cmd); err != nil {
		return -1, c.connErr(fmt.Errorf("start command on %s: %w", c.Target.Name, err))
	}
	c.started()
	done := make(chan error, 1)
	go func() { done <- s.Wait() }()
	select {
	case err := <-done:
		return c.exitStatus(err)
	case <-ctx.Done():
		kill(s)
		return -1, ctx.Err()
	}
}

// RunAs is Run under b when b.Method is set. Under su and doas the command runs on a
// terminal, which has no end of input: a command given stdin must read exactly its
// length (head -c N), and its stderr arrives (its last 4 KiB) once it has exited.
func (c *Conn) RunAs(ctx context.Context, b Become, cmd string, stdin io.Reader, stdout, stderr io.Writer) (int, error) {
	if b.Method == "" {
		return c.Run(ctx, cmd, stdin, stdout, stderr)
	}
	s, err := c.StartAs(ctx, b, cmd)
	if err != nil {
		return -1, err
	}
	defer s.Close()
	var wg sync.WaitGroup
	cp := func(w io.Writer, r io.Reader) {
		defer wg.Done()
		if w == nil {
			w = io.Discard
		}
		_, _ = io.Copy(w, r)
	}
	wg.Add(2)
	go cp(stdout, s.Stdout)
	go cp(stderr, s.Stderr)
	// A terminal (su, doas) has no end of input, and closing stdin hangs it up: there the
	// command reads exactly its length, and stdin stays open until the command exits.
	closeIn := !ttyMethods[b.Method]
	go func() {
		if stdin != nil {
			_, _ = io.Copy(s.Stdin, stdin)
		}
		if closeIn {
			s.Stdin.Close()
		}
	}()
	wg.Wait()
	return s.Wait()
}

// sessionOpenTimeout bounds the wait for the server to open a session channel. Keepalives
// find a dead connection; this finds a live server that never answers.
const sessionOpenTimeout = 30 * time.Second

// newSession opens a session channel, waiting no longer than ctx allows or
// sessionOpenTimeout. A channel that opens after the caller gave up is closed.
func (c *Conn) newSession(ctx context.Context) (*ssh.Session, error) {
	if err := c.Err(); err != nil {
		return nil, err
	}
	ch := make(chan sessionResult, 1)
	go func() {
		s, err := c.client.NewSession()
		ch <- sessionResult{s, err}
	}()
	timer := time.NewTimer(sessionOpenTimeout)
	defer timer.Stop()
	var r sessionResult
	select {
	case r = <-ch:
	case <-ctx.Done():
		go closeLate(ch)
		return nil, ctx.Err()
	case <-timer.C:
		go closeLate(ch)
		return nil, c.connErr(fmt.Errorf("open session on %s: no answer within %s", c.Target.Name, sessionOpenTimeout))
	}
	if r.err != nil {
		return nil, c.connErr(fmt.Errorf("open session on %s: %w", c.Target.Name, r.err))
	}
	return r.s, nil
}

type sessionResult struct {
	s   *ssh.Session
	err error
}

// closeLate closes a session that opened after its caller stopped waiting.
func closeLate(ch <-chan sessionResult) {
	if r := <-ch; r.s != nil {
		r.s.Close()
	}
}

// kill signals the remote process and closes the session. OpenSSH delivers
// the signal to the command's process (7.9 and later); closing the channel
// covers servers that ignore it.
func kill(s *ssh.Session) {
	_ = s.Signal(ssh.SIGKILL)
	_ = s.Close()
}

func (c *Conn) exitStatus(err error) (int, error) {
	if err == nil {
		return 0, nil
	}
	var ee *ssh.ExitError
	if errors.As(err, &ee) {
		return ee.ExitStatus(), nil
	}
	var em *ssh.ExitMissingError
	if errors.As(err, &em) {
		if lerr := c.Err(); lerr != nil {
			return -1, lerr
		}
		if c.isDead(200 * time.Millisecond) {
			return -1, unreachable(c.Target.Name, "connection", errors.New("connection lost while the command ran"))
		}
		return -1, fmt.Errorf("%s: the command ended without an exit status", c.Target.Name)
	}
	return -1, c.connErr(err)
}

// Session is a long-lived command (the helper) with its stdio as pipes.
// Read Stdout and Stderr concurrently, or a chatty command stalls once the
// SSH window fills.
type Session struct {
	Stdin  io.WriteCloser
	Stdout io.Reader
	Stderr io.Reader

	c    *Conn
	s    *ssh.Session
	ctx  context.Context
	stop func() bool // stops the ctx watcher

	// On a terminal (su, doas): closed once Stdout and Stderr have all the command wrote,
	// and what Close uses to let go of Stdout.
	demuxed  <-chan struct{}
	closeOut func()

	once    sync.Once
	waitErr error
	code    int
}

// Start starts cmd as the login user. When ctx ends, the remote process is
// sent SIGKILL and the session closed; Wait then returns ctx.Err().
func (c *Conn) Start(ctx context.Context, cmd string) (*Session, error) {
	return c.StartAs(ctx, Become{}, cmd)
}

// StartAs starts cmd under b when b.Method is set. It returns once sudo, su or
// doas has accepted the password (or needed none) and cmd is running. Under su and
// doas cmd runs on a terminal: see RunAs, and Stdin.Close hangs the terminal up.
func (c *Conn) StartAs(ctx context.Context, b Become, cmd string) (*Session, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	timeout := b.PromptTimeout
	if timeout == 0 {
		timeout = c.d.becomePromptTimeout()
	}
	if ttyMethods[b.Method] {
		tb, err := newTTYBecome(b, cmd)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", c.Target.Name, err)
		}
		return c.startTTY(ctx, tb, timeout)
	}
	var bc *becomeCmd
	if b.Method != "" {
		var err error
		if bc, err = newBecome(b, cmd); err != nil {
			return nil, fmt.Errorf("%s: %w", c.Target.Name, err)
		}
		cmd = bc.command
	}
	s, err := c.newSession(ctx)
	if err != nil {
		return nil, err
	}
	ss := &Session{c: c, s: s, ctx: ctx}
	if ss.Stdin, err = s.StdinPipe(); err == nil {
		if ss.Stdout, err = s.StdoutPipe(); err == nil {
			ss.Stderr, err = s.StderrPipe()
		}
	}
	if err != nil {
		s.Close()
		return nil, fmt.Errorf("session pipes on %s: %w", c.Target.Name, err)
	}
	if err := s.Start(cmd); err != nil {
		s.Close()
		return nil, c.connErr(fmt.Errorf("start command on %s: %w", c.Target.Name, err))
	}
	c.started()
	ss.stop = context.AfterFunc(ctx, func() { kill(s) })
	if bc != nil {
		if err := bc.handshake(ctx, ss, c.Target.Name, timeout); err != nil {
			ss.stop()
			kill(s)
			return nil, err
		}
	}
	return ss, nil
}

// Wait waits for the command to exit and returns its status, like Run.
// Read Stdout and Stderr to EOF before calling Wait.
func (s *Session) Wait() (int, error) {
	s.once.Do(func() {
		err := s.s.Wait()
		if s.demuxed != nil {
			// The command's stderr follows its stdout on the terminal: have it all before
			// the status (unless nobody reads Stdout).
			select {
			case <-s.demuxed:
			case <-time.After(time.Second):
			}
		}
		stopped := s.stop()
		if !stopped && s.ctx.Err() != nil {
			s.code, s.waitErr = -1, s.ctx.Err()
			return
		}
		s.code, s.waitErr = s.c.exitStatus(err)
	})
	return s.code, s.waitErr
}

// Signal sends sig to the remote command.
func (s *Session) Signal(sig ssh.Signal) error { return s.s.Signal(sig) }

// Close closes the session: the remote command sees EOF on stdin and its
// output goes nowhere. Use Signal first to end it for certain.
func (s *Session) Close() error {
	s.stop()
	if s.closeOut != nil {
		s.closeOut()
	}
	err := s.s.Close()
	if errors.Is(err, io.EOF) {
		err = nil
	}
	return err
}
