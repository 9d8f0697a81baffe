package transport

import (
	"context"
	"crypto/sha256"
	"fmt"
	"sync"

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

	refs int // guarded by pool.mu
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
func (d *Dialer) dialJumps(ctx context.Context, hops []Target) (*ssh.Client, func(), error) {
	var cur *sharedHop
	for _, ht := range hops {
		h, err := d.acquireHop(ctx, ht, cur)
		if err != nil {
			return nil, nil, fmt.Errorf("jump host %s: %w", ht.Name, err)
		}
		cur = h
	}
	var once sync.Once
	return cur.client, func() { once.Do(func() { d.releaseHop(cur) }) }, nil
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
		if h == nil || h.isDead() {
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
	h := &sharedHop{key: key, parent: parent, refs: 1,
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
		go keepalive(c, d.Keepalive, d.KeepaliveCountMax, h.done, func(error) { c.Close() })
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
