package transport

import (
	"context"
	"net"
	"strings"
	"sync"
	"testing"
	"time"
)

// stallConn is the controller's end of a TCP connection whose peer vanished with the send
// buffer full: once stalled, a write blocks and a read sees nothing, until the connection
// is closed on this side. That is what a host whose link went down looks like from here.
type stallConn struct {
	net.Conn
	mu      sync.Mutex
	stalled chan struct{} // closed when the peer vanishes
	closed  chan struct{} // closed by Close
	once    sync.Once
}

func newStallConn(c net.Conn) *stallConn {
	return &stallConn{Conn: c, stalled: make(chan struct{}), closed: make(chan struct{})}
}

func (s *stallConn) stall() { s.mu.Lock(); defer s.mu.Unlock(); close(s.stalled) }

func (s *stallConn) isStalled() bool {
	select {
	case <-s.stalled:
		return true
	default:
		return false
	}
}

func (s *stallConn) Write(b []byte) (int, error) {
	if s.isStalled() {
		<-s.closed
		return 0, net.ErrClosed
	}
	return s.Conn.Write(b)
}

func (s *stallConn) Read(b []byte) (int, error) {
	type result struct {
		n   int
		err error
	}
	got := make(chan result, 1)
	go func() {
		n, err := s.Conn.Read(b)
		got <- result{n, err}
	}()
	select {
	case r := <-got:
		if !s.isStalled() {
			return r.n, r.err
		}
	case <-s.stalled:
	}
	<-s.closed // a dead peer: nothing more arrives
	return 0, net.ErrClosed
}

func (s *stallConn) Close() error {
	s.once.Do(func() { close(s.closed) })
	return s.Conn.Close()
}

// TestKeepaliveClosesStalledConnection: a connection whose writes no longer drain and whose
// peer says nothing (the host's link is down) is given up within the keepalive window, with
// a write stuck on it and the SFTP client open, whose close waits for an answer that never
// comes: closing the connection must not wait on the peer. cmd/runbook's
// TestVMManagementLinkCut shows the same on a real guest.
func TestKeepaliveClosesStalledConnection(t *testing.T) {
	srv := startTestServer(t)
	srv.SFTP.Store(true)
	var conn *stallConn
	d := &Dialer{Keepalive: 50 * time.Millisecond, KeepaliveCountMax: 2, NoQuickAck: true,
		NetDial: func(ctx context.Context, network, addr string) (net.Conn, error) {
			var nd net.Dialer
			c, err := nd.DialContext(ctx, network, addr)
			if err != nil {
				return nil, err
			}
			conn = newStallConn(c)
			return conn, nil
		}}
	c := dial(t, d, srv.Target(t))
	ctx := context.Background()
	if _, err := c.sftpClient(ctx); err != nil {
		t.Fatalf("sftp: %v", err)
	}
	conn.stall()
	// A session writing to the host is stuck in the transport's write, holding it.
	runDone := make(chan error, 1)
	go func() {
		_, err := c.Run(ctx, "cat >/dev/null", strings.NewReader(strings.Repeat("x", 1<<20)), nil, nil)
		runDone <- err
	}()
	waitDone := make(chan error, 1)
	go func() { waitDone <- c.Wait() }()
	select {
	case err := <-waitDone:
		if !IsUnreachable(err) || !strings.Contains(err.Error(), "keepalive") {
			t.Errorf("Wait = %v; want an unreachable keepalive error", err)
		}
	case <-time.After(3 * time.Second):
		t.Fatal("a stalled connection was not given up within the keepalive window")
	}
	select {
	case err := <-runDone:
		if !IsUnreachable(err) {
			t.Errorf("the session on the stalled connection ended with %v; want unreachable", err)
		}
	case <-time.After(3 * time.Second):
		t.Fatal("the session on the stalled connection never ended")
	}
	closed := make(chan error, 1)
	go func() { closed <- c.Close() }()
	select {
	case <-closed:
	case <-time.After(time.Second):
		t.Fatal("Close waited on the dead peer")
	}
}
