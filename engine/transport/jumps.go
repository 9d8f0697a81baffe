package transport

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"

	"golang.org/x/crypto/ssh"
)

// Jump hosts are shared. A Dialer keeps one authenticated connection per distinct hop
// (the same resolved user, address, port, credentials, host key expectations and the same
// chain before it), however many targets are behind it: each target is a direct-tcpip
// channel on that connection. A hop holds one reference on the hop before it, and every
// Conn holds one on its last hop; the connection is closed when the last reference goes.
// A hop whose connection ended (the bastion restarted, keepalives gave up) is forgotten at
// once, so the next target behind it dials it again; targets whose channels it carried
// see their connections end, as they would without sharing.
//
// Concurrent first dials of a hop make one connection: the others wait for it, and all of
// them get its error if it fails (unless the target that dialled it gave up: then the next
// waiter dials it). A failed dial is not remembered: the next target dials again.
//
// A hop's connection can end before the pool notices (its Wait has not returned yet), or
// stop answering without ending (no keepalives, a vanished bastion). So when opening a
// channel over a hop fails other than by the hop's refusal (an *ssh.OpenChannelError), the
// hop is taken as dead: it is evicted with every hop behind it and closed, and the chain is
// acquired once more (hopFailed). When the open timed out, the hop may only be slow to reach
// the next host (a bastion waits for a target that does not answer): it is then probed
// with a keepalive, and evicted and closed only if that goes unanswered too (probeHop).

// hopPool is a Dialer's shared jump-host connections, by key.
type hopPool struct {
	mu   sync.Mutex
	hops map[string]*sharedHop
}

// sharedHop is one jump-host connection and the targets (or further hops) that use it.
type sharedHop struct {
	key    string
	parent *sharedHop // the hop before this one, referenced while this one lives; guarded by pool.mu

	ready chan struct{} // closed when the dial has finished, successfully or not
	err   error         // the dial's failure; written before ready is closed
	// abandoned: the dial failed because the target dialling it gave up (its context
	// ended), not because of the hop; written before ready is closed
	abandoned bool
	client    *ssh.Client   // written before ready is closed
	dead      chan struct{} // closed when the connection has ended, for whatever reason
	done      chan struct{} // closed when the last reference has gone

	refs    int  // guarded by pool.mu
	probing bool // a probeHop is under way; guarded by pool.mu
	// timeout bounds a probe of this hop: its connect timeout.
	timeout time.Duration
}

// hopKey identifies a hop: its resolved target (less what does not change the connection)
// after the key of the hop before it. Hashed, as the target may hold secrets.
func hopKey(t Target, parent *sharedHop) string {
	type fields Target // no String method: every field is printed
	f := fields(t)
	f.ConnectTimeout = 0
	f.BecomeMethod, f.BecomeUser, f.BecomePassword = "", "", ""
	h := sha256.New()
	if parent != nil {
		h.Write([]byte(parent.key))
	}
	fmt.Fprintf(h, "\x00%#v", f)
	return string(h.Sum(nil))
}

func (d *Dialer) hopPool() *hopPool { return &d.state().hops }

// dialJumps returns a connection to the last of hops (each reached through the one
// before), shared with every other target of this Dialer behind the same chain, and the
// function that gives it back. Every error names the hop that failed.
//
// If a hop turns out dead while the next one is dialled over it (see hopFailed), the chain
// is acquired once more.
func (d *Dialer) dialJumps(ctx context.Context, hops []Target) (*ssh.Client, *sharedHop, func(), error) {
	c, last, err := d.acquireChain(ctx, hops, true)
	if err != nil {
		return nil, nil, nil, err
	}
	var once sync.Once
	return c, last, func() { once.Do(func() { d.releaseHop(last) }) }, nil
}

// acquireChain acquires each hop over the one before; if one was found dead when the next
// was dialled over it (see hopFailed), the chain is acquired once more when again is set.
func (d *Dialer) acquireChain(ctx context.Context, hops []Target, again bool) (*ssh.Client, *sharedHop, error) {
	var cur *sharedHop
	for _, ht := range hops {
		before := cur
		h, err := d.acquireHop(ctx, ht, before)
		if err != nil {
			if again && d.hopFailed(ctx, before, err) {
				return d.acquireChain(ctx, hops, false)
			}
			return nil, nil, fmt.Errorf("jump host %s: %w", ht.Name, err)
		}
		cur = h
	}
	return cur.client, cur, nil
}

// hopFailed is told that opening a channel over h (to the next hop or the target) failed
// with err, and reports whether h was found dead and evicted, so that dialling again (once)
// makes sense. A refusal by the hop (*ssh.OpenChannelError: the next host is not reachable
// from it, or not allowed) says nothing against h, nor does the caller giving up. A timeout
// may only mean the next host is slow: h is probed in the background. Anything else (the
// connection ended, a write failed) means h is dead: it is evicted and closed at once.
func (d *Dialer) hopFailed(ctx context.Context, h *sharedHop, err error) bool {
	var viaErr *viaDialError
	var refused *ssh.OpenChannelError
	if h == nil || !errors.As(err, &viaErr) || errors.As(err, &refused) || ctx.Err() != nil {
		return false
	}
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, os.ErrDeadlineExceeded) {
		d.probeHop(h)
		return false
	}
	d.evictHop(h)
	return true
}

// evictHop forgets h and every hop behind it, so that no target gets them again, and
// closes their connections (targets whose channels they carried see their connections end).
func (d *Dialer) evictHop(h *sharedHop) {
	p := d.hopPool()
	var clients []*ssh.Client
	p.mu.Lock()
	for key, x := range p.hops {
		for a := x; a != nil; a = a.parent {
			if a == h {
				delete(p.hops, key)
				if x.client != nil {
					clients = append(clients, x.client)
				}
				break
			}
		}
	}
	if p.hops[h.key] == h {
		delete(p.hops, h.key)
	}
	if h.client != nil {
		clients = append(clients, h.client)
	}
	p.mu.Unlock()
	for _, c := range clients {
		c.Close()
	}
}

// probeHop sends h a keepalive request and evicts it if no answer comes within its connect
// timeout (one probe at a time per hop). It returns at once.
func (d *Dialer) probeHop(h *sharedHop) {
	p := d.hopPool()
	p.mu.Lock()
	if h.probing || h.client == nil {
		p.mu.Unlock()
		return
	}
	h.probing = true
	p.mu.Unlock()
	go func() {
		defer func() {
			p.mu.Lock()
			h.probing = false
			p.mu.Unlock()
		}()
		answered := make(chan error, 1)
		go func() {
			_, _, err := h.client.SendRequest("keepalive@openssh.com", true, nil)
			answered <- err
		}()
		timer := time.NewTimer(h.timeout)
		defer timer.Stop()
		select {
		case err := <-answered:
			if err == nil {
				return // alive: the next host was only slow
			}
		case <-timer.C:
		case <-h.done:
			return
		}
		d.evictHop(h)
	}()
}

// acquireHop returns the connection to t through parent (nil: directly), dialling it if
// this Dialer has none alive, with a reference for the caller. It takes over the caller's
// reference on parent, whatever the outcome.
func (d *Dialer) acquireHop(ctx context.Context, t Target, parent *sharedHop) (*sharedHop, error) {
	p := d.hopPool()
	key := hopKey(t, parent)
	for {
		p.mu.Lock()
		if p.hops == nil {
			p.hops = map[string]*sharedHop{}
		}
		h := p.hops[key]
		// A hop over an earlier connection of its parent (the parent has been dialled again
		// since) is as dead as that connection.
		if h == nil || h.isDead() || h.parent != parent {
			break // with p.mu held
		}
		h.refs++
		p.mu.Unlock()
		select {
		case <-h.ready:
		case <-ctx.Done():
			d.releaseHop(h)
			d.releaseHop(parent)
			return nil, context.Cause(ctx)
		}
		if h.err == nil {
			// h holds a reference on its own parent (the same hop as the caller's).
			d.releaseHop(parent)
			return h, nil
		}
		d.releaseHop(h)
		if h.abandoned && ctx.Err() == nil {
			// The target that dialled it gave up (its own deadline or cancellation), which
			// says nothing about the hop: dial it again.
			continue
		}
		d.releaseHop(parent)
		return nil, h.err
	}
	h := &sharedHop{key: key, parent: parent, refs: 1, timeout: d.connectTimeout(t),
		ready: make(chan struct{}), dead: make(chan struct{}), done: make(chan struct{})}
	p.hops[key] = h
	p.mu.Unlock()

	var via *ssh.Client
	if parent != nil {
		via = parent.client
	}
	c, _, _, err := d.dialOne(ctx, t, via)
	p.mu.Lock()
	if err != nil {
		h.err, h.abandoned = err, ctx.Err() != nil
		if p.hops[key] == h {
			delete(p.hops, key)
		}
	} else {
		h.client = c
	}
	close(h.ready)
	p.mu.Unlock()
	if err != nil {
		d.releaseHop(h)
		return nil, err
	}
	go func() {
		_ = c.Wait()
		close(h.dead)
		p.mu.Lock()
		if p.hops[key] == h {
			delete(p.hops, key)
		}
		p.mu.Unlock()
	}()
	if d.Keepalive > 0 {
		keepalive(c, d.Keepalive, d.KeepaliveCountMax, h.done, func(error) { c.Close() })
	}
	return h, nil
}

// isDead reports whether h's dial failed or its connection has ended. Called with pool.mu
// held.
func (h *sharedHop) isDead() bool {
	select {
	case <-h.ready:
		if h.err != nil {
			return true
		}
	default:
		return false
	}
	select {
	case <-h.dead:
		return true
	default:
		return false
	}
}

// releaseHop gives back one reference on h; the last one closes its connection and gives
// back h's reference on the hop before it.
func (d *Dialer) releaseHop(h *sharedHop) {
	p := d.hopPool()
	for h != nil {
		p.mu.Lock()
		h.refs--
		if h.refs > 0 {
			p.mu.Unlock()
			return
		}
		if p.hops[h.key] == h {
			delete(p.hops, h.key)
		}
		parent, c := h.parent, h.client
		h.parent = nil
		p.mu.Unlock()
		close(h.done)
		if c != nil {
			c.Close()
		}
		h = parent
	}
}

// openHops is the number of jump-host connections the Dialer holds, for tests.
func (d *Dialer) openHops() int {
	p := d.hopPool()
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.hops)
}
