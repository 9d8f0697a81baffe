package transport

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/pkg/sftp"
	"golang.org/x/crypto/ssh"

	"github.com/runbook/runbook/internal/turns"
)

// Dialer opens connections. The zero value is usable: no agent, no
// keepalives, a 30 s connect timeout.
type Dialer struct {
	// Agent enables ssh-agent ($SSH_AUTH_SOCK or the target's IdentityAgent).
	Agent bool
	// Keepalive is the interval of keepalive@openssh.com requests; a
	// connection that leaves KeepaliveCountMax of them unanswered is closed
	// (like ServerAliveInterval/ServerAliveCountMax). 0: no keepalives.
	Keepalive         time.Duration
	KeepaliveCountMax int // 0: 3
	// ConnectTimeout applies to targets that set none (dial + handshake +
	// auth, per hop). 0: 30 s.
	ConnectTimeout time.Duration
	// ConnectTries is how many times a connection that fails before authentication
	// completed (reset, closed, timed out by the network) is tried, all within the connect
	// timeout, with a jittered backoff between tries. 0: 3.
	ConnectTries int
	// MaxStartups is how many connection setups (TCP connect, key exchange and
	// authentication of one hop) run at once across the Dialer's dials; 0: no limit. A dial
	// waits for its turn before its connect timeout starts, and a setup that lasts beyond
	// startupHold (5 s) gives its turn to the next (a host that accepts and never answers holds
	// no one back for long). Many setups at once all finish late when what does their work
	// (the hosts' CPUs, a controller's, or a lab's shared by both) is saturated; the limit
	// makes them finish in turn, each within its timeout.
	MaxStartups int
	// retryBase is the first backoff (doubled for each further try); 0: 250 ms. For tests.
	retryBase time.Duration
	// ResolveJump resolves a ProxyJump hop ("host" with user and port from
	// the jump spec already in partial) into a full target. nil: ResolveTarget
	// with SSHConfig.
	ResolveJump func(name string, partial Target) (Target, error)
	// SSHConfig is the -F file used to resolve ProxyJump hops; "" means the
	// default files.
	SSHConfig string
	// BecomePromptTimeout bounds the wait for the become method's (sudo's, su's, doas') prompt or the command's
	// start. 0: 10 s.
	BecomePromptTimeout time.Duration
	// NetDial opens the TCP connection of a direct (first) hop; nil:
	// net.Dialer.
	NetDial func(ctx context.Context, network, addr string) (net.Conn, error)
	// NoQuickAck turns off the TCP_QUICKACK workaround for OpenSSH's slow
	// first session (see quickack.go); for benchmarks.
	NoQuickAck bool
	// Warn receives the transport's warnings about the controller's own files (a
	// known_hosts line that cannot be read), each once for the Dialer's life; nil: standard
	// error.
	Warn func(msg string)
	// Passphrase, when set, is asked for the passphrase of an encrypted key file that
	// the agent does not hold (on a terminal: the CLI prompts). It is called at most once
	// per file for the Dialer's life, however many hosts use the key.
	Passphrase func(path string) ([]byte, error)

	// st is what the Dialer remembers between dials, made on first use; it goes away with
	// the Dialer. A pointer, so that copying a Dialer copies no lock.
	st *dialerState
}

// dialerState is a Dialer's memory: decrypted key files, the warnings already given, the
// jump-host connections its targets share, and the connection setups in progress.
type dialerState struct {
	keys   keyStore
	warned warnedSet
	hops   hopPool // shared jump-host connections (jumps.go)
	// startups are the setups in progress under MaxStartups; one that lasts startupHold
	// goes on without its turn.
	startups turns.Turns
}

// startupHold is how long a connection setup keeps its turn under Dialer.MaxStartups.
const startupHold = 5 * time.Second

// dialerStateMu guards the creation of Dialer.st.
var dialerStateMu sync.Mutex

func (d *Dialer) state() *dialerState {
	dialerStateMu.Lock()
	defer dialerStateMu.Unlock()
	if d.st == nil {
		d.st = &dialerState{keys: keyStore{done: map[string]keyResult{}}, warned: warnedSet{given: map[string]bool{}},
			startups: turns.Turns{Hold: startupHold}}
	}
	return d.st
}

// keyResult is the outcome of decrypting one key file.
type keyResult struct {
	signer ssh.Signer
	err    error
}

// keyStore holds one Dialer's decrypted key files by path.
type keyStore struct {
	mu   sync.Mutex
	done map[string]keyResult
}

func (d *Dialer) keys() *keyStore { return &d.state().keys }

// Conn is one authenticated SSH connection to a target. Its methods are
// safe for concurrent use.
type Conn struct {
	Target Target
	// HostKey is the SHA256 fingerprint of the key the host presented (the last hop's,
	// through jump hosts), as known_hosts accepted it.
	HostKey string
	client  *ssh.Client
	release func() // gives back the shared jump hosts, after client is closed
	d       *Dialer

	mu      sync.Mutex
	sftp    *sftp.Client
	qa      *quickAckConn // until the first command starts
	lostErr error         // set when keepalives declared the connection dead
	closed  bool
	done    chan struct{} // closed by Close
	dead    chan struct{} // closed when the SSH connection has ended, for whatever reason
}

func (d *Dialer) connectTimeout(t Target) time.Duration {
	if t.ConnectTimeout > 0 {
		return t.ConnectTimeout
	}
	if d.ConnectTimeout > 0 {
		return d.ConnectTimeout
	}
	return 30 * time.Second
}

// Dial connects to t, verifies its host key and authenticates. Every error
// it returns satisfies IsUnreachable. A target or jump host whose address or user is unfit
// to name a host (see checkTarget) is refused before anything is dialled.
func (d *Dialer) Dial(ctx context.Context, t Target) (*Conn, error) {
	name := t.Name
	if name == "" {
		name = t.address()
	}
	if err := checkTarget(t); err != nil {
		return nil, unreachable(name, "dial", err)
	}
	var via *ssh.Client
	release := func() {}
	if t.ProxyJump != "" && !strings.EqualFold(t.ProxyJump, "none") {
		resolved, err := d.jumpChain(t.ProxyJump, nil)
		if err != nil {
			return nil, unreachable(name, "proxy", err)
		}
		t.ProxyCommand = ""
		for again := true; ; again = false {
			var last *sharedHop
			via, last, release, err = d.dialJumps(ctx, resolved)
			if err != nil {
				return nil, &UnreachableError{Host: name, Op: "proxy", Err: err}
			}
			c, nc, hostKey, err := d.dialOne(ctx, t, via)
			if err != nil {
				release()
				if again && d.hopFailed(ctx, last, err) {
					continue // the last hop was dead: acquire the chain once more
				}
				return nil, err
			}
			return d.newConn(t, c, nc, hostKey, release), nil
		}
	}
	c, nc, hostKey, err := d.dialOne(ctx, t, via)
	if err != nil {
		release()
		return nil, err
	}
	return d.newConn(t, c, nc, hostKey, release), nil
}

// newConn wraps an authenticated connection to t.
func (d *Dialer) newConn(t Target, c *ssh.Client, nc net.Conn, hostKey string, release func()) *Conn {
	conn := &Conn{Target: t, HostKey: hostKey, client: c, release: release, d: d, done: make(chan struct{}), dead: make(chan struct{})}
	conn.qa, _ = nc.(*quickAckConn)
	go func() {
		_ = c.Wait()
		close(conn.dead)
	}()
	if d.Keepalive > 0 {
		keepalive(c, d.Keepalive, d.KeepaliveCountMax, conn.done, conn.lost)
	}
	return conn
}

func (d *Dialer) resolveJump(h Target) (Target, error) {
	if d.ResolveJump != nil {
		return d.ResolveJump(h.Name, h)
	}
	return ResolveTarget(h.Name, h, d.SSHConfig)
}

// maxJumpDepth bounds how many times a first hop's own ProxyJump may lead to another.
const maxJumpDepth = 8

// jumpChain resolves a ProxyJump list into the hops to dial, in order. ssh reaches the
// first hop of a chain with `ssh -W next:port hop`, which reads that hop's own ssh_config:
// so the first hop's own ProxyJump is honoured (its hops are dialled before it, resolved the
// same way) and so is its ProxyCommand. A later hop's own ProxyJump or ProxyCommand is not:
// ssh passes it the chain before it on the command line, which overrides them. seen are
// the first hops whose ProxyJump led here, to refuse a loop (ssh would loop until it ran
// out of resources).
func (d *Dialer) jumpChain(spec string, seen []string) ([]Target, error) {
	hops, err := parseJumps(spec)
	if err != nil {
		return nil, err
	}
	var out []Target
	for i, h := range hops {
		ht, err := d.resolveJump(h)
		if err != nil {
			return nil, fmt.Errorf("jump host %s: %w", h.Name, err)
		}
		if ht.Name == "" {
			ht.Name = h.Name
		}
		own := ht.ProxyJump
		ht.ProxyJump = ""
		if i > 0 {
			ht.ProxyCommand = ""
		} else if own != "" && !strings.EqualFold(own, "none") {
			path := append(append([]string(nil), seen...), ht.Name)
			for _, s := range seen {
				if s == ht.Name {
					return nil, fmt.Errorf("jump host %s: ProxyJump loop (%s)%s", ht.Name, strings.Join(path, " → "), d.proxyJumpWhere(h))
				}
			}
			if len(seen) >= maxJumpDepth {
				return nil, fmt.Errorf("jump host %s: more than %d jump hosts in front of one another (%s)%s", ht.Name, maxJumpDepth, strings.Join(path, " → "), d.proxyJumpWhere(h))
			}
			before, err := d.jumpChain(own, path)
			if err != nil {
				return nil, err
			}
			ht.ProxyCommand = ""
			out = append(out, before...)
		}
		out = append(out, ht)
	}
	return out, nil
}

// proxyJumpWhere is ", ProxyJump at FILE:LINE" for hop h's own ProxyJump in ssh_config, for
// an error message ("" if it is not from there).
func (d *Dialer) proxyJumpWhere(h Target) string {
	if d.ResolveJump != nil {
		return ""
	}
	files, err := configSources(d.SSHConfig)
	if err != nil {
		return ""
	}
	opts, err := evaluateConfig(files, cmp.Or(h.Address, h.Name), h.User)
	if err != nil {
		return ""
	}
	if v, ok := opts.get("proxy"); ok && v.kw == "proxyjump" {
		return ", ProxyJump at " + v.where
	}
	return ""
}

// parseJumps parses a ProxyJump list: [user@]host[:port] or ssh:// URIs.
func parseJumps(s string) ([]Target, error) {
	var out []Target
	for _, hop := range strings.Split(s, ",") {
		hop = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(hop), "ssh://"))
		if hop == "" {
			return nil, fmt.Errorf("ProxyJump %q: empty hop", s)
		}
		var t Target
		if i := strings.LastIndex(hop, "@"); i >= 0 {
			t.User, hop = hop[:i], hop[i+1:]
		}
		host, port := hop, ""
		if h, p, err := net.SplitHostPort(hop); err == nil {
			host, port = h, p
		} else if strings.Count(hop, ":") == 1 {
			return nil, fmt.Errorf("ProxyJump hop %q: %v", hop, err)
		}
		if port != "" {
			n, err := strconv.Atoi(port)
			if err != nil || n < 1 || n > 65535 {
				return nil, fmt.Errorf("ProxyJump hop %q: bad port", hop)
			}
			t.Port = n
		}
		t.Name = host
		out = append(out, t)
	}
	return out, nil
}

// dialOne connects to one hop: over via if set, else through t's
// ProxyCommand or TCP. The whole of it (dial, handshake, auth) is bounded by
// ctx and the connect timeout.
func (d *Dialer) dialOne(ctx context.Context, t Target, via *ssh.Client) (_ *ssh.Client, _ net.Conn, hostKey string, err error) {
	name := t.Name
	if name == "" {
		name = t.address()
	}
	// Every hop is checked here, however it was resolved (Dialer.ResolveJump may be anyone's).
	if err := checkTarget(t); err != nil {
		return nil, nil, "", unreachable(name, "dial", err)
	}
	// Credentials first: a passphrase prompt waits for a person, and that wait must not count
	// against this host's (or, as every host waits for the one prompt, any host's) timeout.
	cr := d.loadCredentials(t)
	defer cr.close()
	leave, err := d.state().startups.Enter(ctx, d.MaxStartups)
	if err != nil {
		return nil, nil, "", unreachable(name, "dial", err)
	}
	defer leave()
	ctx, cancel := context.WithTimeout(ctx, d.connectTimeout(t))
	defer cancel()

	// A key accept-new has just recorded was verified by nothing: the password is not sent
	// over that connection (passwordMethods).
	hostKeyCB, algos, err := hostKeyCheck(t, d.warnOnce, func() { cr.firstContact = true })
	if err != nil {
		return nil, nil, "", unreachable(name, "host key", err)
	}
	var hkErr error
	hostKeyWrap := func(h string, r net.Addr, k ssh.PublicKey) error {
		hkErr = hostKeyCB(h, r, k)
		hostKey = ssh.FingerprintSHA256(k)
		return hkErr
	}
	cfg := &ssh.ClientConfig{
		User:              t.User,
		HostKeyAlgorithms: algos,
		Timeout:           d.connectTimeout(t),
	}
	cfg.Auth = []ssh.AuthMethod{ssh.PublicKeys(cr.signers...)}

	// Failures before authentication completed (a reset, an EOF, a timeout of the network's
	// own: sshd's MaxStartups, a busy host) are tried again within the connect timeout, which
	// bounds all the tries together; nothing has run yet. Not once the password was sent,
	// though: each try would be one more login attempt with it. A host key or authentication
	// failure is not transient, and is not tried again; neither is a refused connection.
	tries := d.connectTries()
	for try := 1; ; try++ {
		hkErr = nil
		// the password methods keep what became of the password, per connection
		cfg.Auth = append(cfg.Auth[:1:1], passwordMethods(t, cr)...)
		// Each try but the last has its share of the time left (at least minTryShare)
		// until the host key is seen: a host that accepts and then says nothing must not
		// use up the tries after it. From the key exchange on, only the connect timeout
		// counts (a slow login is no reason to start over, and a password may be on its way).
		tryCtx, cancelTry := context.WithCancelCause(ctx)
		var capTimer *time.Timer
		if left := tries - try + 1; left > 1 && via == nil { // over a jump host nothing is tried again
			if dl, ok := ctx.Deadline(); ok {
				share := max(time.Until(dl)/time.Duration(left), minTryShare)
				capTimer = time.AfterFunc(share, func() { cancelTry(errTryShare) })
			}
		}
		cfg.HostKeyCallback = func(h string, r net.Addr, k ssh.PublicKey) error {
			if capTimer != nil {
				capTimer.Stop()
			}
			return hostKeyWrap(h, r, k)
		}
		c, nc, err := d.tryOne(tryCtx, t, via, cfg, cr, &hkErr)
		if capTimer != nil {
			capTimer.Stop()
		}
		capped := errors.Is(context.Cause(tryCtx), errTryShare) && ctx.Err() == nil
		cancelTry(nil)
		if err == nil {
			return c, nc, hostKey, nil
		}
		var viaErr *viaDialError
		if try >= tries || !(retryable(err) || capped) || hkErr != nil || errors.As(err, &viaErr) {
			return nil, nil, "", withTries(err, try)
		}
		if cr.pw.asked || cr.pw.extra {
			// The password (or an answer to the host's prompt) went out on this connection:
			// another try would be another login attempt with it, and hosts lock accounts
			// after a few.
			var u *UnreachableError
			if errors.As(err, &u) {
				u.Err = fmt.Errorf("%w (not tried again: the password was already sent on this connection, and another try would be another login attempt)", u.Err)
			}
			return nil, nil, "", withTries(err, try)
		}
		wait := d.backoff(try)
		if dl, ok := ctx.Deadline(); ok && time.Until(dl) < wait+minTry {
			return nil, nil, "", withTries(err, try)
		}
		select {
		case <-time.After(wait):
		case <-ctx.Done():
			return nil, nil, "", withTries(err, try)
		}
	}
}

// minTry is the least time worth a try of its own.
const minTry = 100 * time.Millisecond

// minTryShare is the least time a try that is not the last one gets to reach the key
// exchange before the next one starts.
const minTryShare = 2 * time.Second

// errTryShare ends a try that did not reach the key exchange within its share of the
// connect timeout; it is tried again.
var errTryShare = fmt.Errorf("no key exchange within this try's share of the connect timeout: %w", os.ErrDeadlineExceeded)

// connectTries is how many times a connection failing before authentication is tried.
func (d *Dialer) connectTries() int {
	if d.ConnectTries > 0 {
		return d.ConnectTries
	}
	return 3
}

// backoff is the wait before try+1: exponential from the Dialer's base (250 ms), jittered
// between half and all of it so that hosts refused together do not come back together.
func (d *Dialer) backoff(try int) time.Duration {
	base := d.retryBase
	if base <= 0 {
		base = 250 * time.Millisecond
	}
	b := base << (try - 1)
	return b/2 + rand.N(b/2+1)
}

// retryable reports whether a failure before authentication may be transient: the
// connection was reset, closed or timed out. A refused connection (nothing listens), a
// refused channel on a jump host, a host key or authentication failure are not.
func retryable(err error) bool {
	var ae *AuthError
	var hk *HostKeyError
	if errors.As(err, &ae) || errors.As(err, &hk) {
		return false
	}
	var ne net.Error
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.ECONNABORTED) ||
		errors.Is(err, syscall.EPIPE) || errors.Is(err, syscall.ETIMEDOUT) ||
		errors.Is(err, os.ErrDeadlineExceeded) || errors.Is(err, context.DeadlineExceeded) ||
		(errors.As(err, &ne) && ne.Timeout())
}

// viaDialError is a jump host's failure to open the channel to the next hop.
type viaDialError struct{ err error }

func (e *viaDialError) Error() string { return e.err.Error() }
func (e *viaDialError) Unwrap() error { return e.err }

// withTries notes on err how many tries it took, when more than one.
func withTries(err error, tries int) error {
	var u *UnreachableError
	if tries > 1 && errors.As(err, &u) {
		u.Tries = tries
	}
	return err
}

// tryOne is one try at connecting to t: dial (over via, through t's ProxyCommand, or TCP),
// handshake, authentication, bounded by ctx (what is left of the connect timeout).
func (d *Dialer) tryOne(ctx context.Context, t Target, via *ssh.Client, cfg *ssh.ClientConfig, cr *credentials, hkErr *error) (*ssh.Client, net.Conn, error) {
	name := t.Name
	if name == "" {
		name = t.address()
	}
	addr := t.hostPort()
	var nc net.Conn
	var err error
	switch {
	case via != nil:
		if nc, err = via.DialContext(ctx, "tcp", addr); err != nil {
			// The jump host refused the channel, or its connection is gone: trying again
			// over the same connection would not help.
			err = &viaDialError{err}
		}
	case t.ProxyCommand != "":
		nc, err = startProxyCommand(t.ProxyCommand)
	case d.NetDial != nil:
		nc, err = d.NetDial(ctx, "tcp", addr)
	default:
		var nd net.Dialer
		nc, err = nd.DialContext(ctx, "tcp", addr)
	}
	if err == nil && !d.NoQuickAck && via == nil {
		nc = withQuickAck(nc)
	}
	if err != nil {
		return nil, nil, unreachable(name, "dial", fmt.Errorf("%s: %w", addr, err))
	}
	// The handshake honours ctx: a deadline for the timeout, and a close on
	// cancel.
	if dl, ok := ctx.Deadline(); ok {
		_ = nc.SetDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() { nc.Close() })
	sc, chans, reqs, err := ssh.NewClientConn(nc, addr, cfg)
	if !stop() || ctx.Err() != nil {
		if err == nil {
			sc.Close()
		}
		nc.Close()
		return nil, nil, unreachable(name, "handshake", fmt.Errorf("%s: %w", addr, context.Cause(ctx)))
	}
	if err != nil {
		nc.Close()
		switch {
		case *hkErr != nil:
			return nil, nil, unreachable(name, "host key", *hkErr)
		case cr.pw.withheld:
			return nil, nil, unreachable(name, "auth", &AuthError{User: t.User, Host: fmt.Sprintf("%s (%s)", name, addr), Tried: cr.tried, Notes: cr.authNotes()})
		case strings.Contains(err.Error(), "unable to authenticate"):
			return nil, nil, unreachable(name, "auth", &AuthError{User: t.User, Host: fmt.Sprintf("%s (%s)", name, addr), Tried: cr.tried, Notes: cr.authNotes()})
		case isProxyConn(nc):
			return nil, nil, unreachable(name, "handshake", fmt.Errorf("%s: %w%s", addr, err, nc.(*proxyConn).stderrTail()))
		default:
			return nil, nil, unreachable(name, "handshake", fmt.Errorf("%s: %w", addr, err))
		}
	}
	_ = nc.SetDeadline(time.Time{})
	return ssh.NewClient(sc, chans, reqs), nc, nil
}

// keepalive sends keepalive@openssh.com on c every interval and calls lost when a reply
// is missing for countMax intervals (like OpenSSH's ServerAliveInterval and
// ServerAliveCountMax), or when the request fails. One request is outstanding at a time.
// It stops when done is closed. It runs on timers: between requests no goroutine waits,
// which at a thousand connections is a thousand goroutines' stacks fewer.
func keepalive(c *ssh.Client, interval time.Duration, countMax int, done <-chan struct{}, lost func(error)) {
	if countMax <= 0 {
		countMax = 3
	}
	closed := func() bool {
		select {
		case <-done:
			return true
		default:
			return false
		}
	}
	var tick func()
	tick = func() {
		if closed() {
			return
		}
		// The request's answer and its time limit race; the first settles it.
		var settled atomic.Bool
		limit := time.AfterFunc(time.Duration(countMax)*interval, func() {
			if settled.CompareAndSwap(false, true) && !closed() {
				lost(fmt.Errorf("no answer to keepalive for %s (%d × %s)", time.Duration(countMax)*interval, countMax, interval))
			}
		})
		_, _, err := c.SendRequest("keepalive@openssh.com", true, nil)
		if !settled.CompareAndSwap(false, true) {
			return // the limit passed first, and said so
		}
		limit.Stop()
		switch {
		case closed():
		case err != nil:
			lost(fmt.Errorf("connection lost: %w", err))
		default:
			time.AfterFunc(interval, tick)
		}
	}
	time.AfterFunc(interval, tick)
}

func (c *Conn) lost(err error) {
	c.mu.Lock()
	if c.lostErr == nil {
		c.lostErr = unreachable(c.Target.Name, "connection", err)
	}
	c.mu.Unlock()
	c.closeAll()
}

// Err is the reason the connection was closed by a failed keepalive, or nil.
func (c *Conn) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lostErr
}

// Close closes the SFTP client and the connection, and gives back its jump hosts: a jump
// host's connection is closed with the last target using it.
func (c *Conn) Close() error {
	return c.closeAll()
}

func (c *Conn) closeAll() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	close(c.done)
	s := c.sftp
	c.sftp = nil
	c.mu.Unlock()
	// The transport first: closing it closes the socket and never waits on the peer. The
	// SFTP client's close waits for its reader, which ends only when the peer answers the
	// channel's close or the socket closes; and on a dead connection a write can be stuck in
	// the socket (the link went down with the send buffer full), holding the transport's
	// write lock that the close's own message needs. Either way, closing SFTP first waited on
	// a dead peer for ever (the lab's vm-tier cut test saw the first).
	err := c.client.Close()
	if s != nil {
		s.Close() // its channel is gone with the transport: this returns at once
	}
	c.release()
	if errors.Is(err, net.ErrClosed) {
		err = nil
	}
	return err
}

// Wait blocks until the connection is closed (by Close, the server or a
// failed keepalive) and returns the reason.
func (c *Conn) Wait() error {
	err := c.client.Wait()
	if lerr := c.Err(); lerr != nil {
		return lerr
	}
	return err
}

// connErr turns an error from a session on a dead connection into an
// unreachable error, so a host that vanishes mid-run is reported as such.
func (c *Conn) connErr(err error) error {
	if err == nil {
		return nil
	}
	if lerr := c.Err(); lerr != nil {
		return lerr
	}
	if errors.Is(err, net.ErrClosed) || errors.Is(err, io.EOF) || c.isDead(0) {
		return unreachable(c.Target.Name, "connection", err)
	}
	return err
}

// isDead reports whether the SSH connection has ended, waiting up to wait
// for it: a channel can see the end of a broken connection a moment before
// the connection itself reports it.
func (c *Conn) isDead(wait time.Duration) bool {
	select {
	case <-c.dead:
		return true
	default:
	}
	if wait <= 0 {
		return false
	}
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-c.dead:
		return true
	case <-t.C:
		return false
	}
}

// started notes that a command started: sshd has set TCP_NODELAY, so the
// quick acknowledgements can stop.
func (c *Conn) started() {
	if c.qa != nil {
		c.qa.setupDone()
	}
}
