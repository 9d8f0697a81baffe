package transport

import (
	"net"
	"sync/atomic"
	"syscall"

	"golang.org/x/sys/unix"
)

// quickAckConn works around a stall of the first session on a new
// connection to OpenSSH. Until its first session starts, sshd leaves Nagle's
// algorithm on (it sets TCP_NODELAY only when a session's command starts), so
// it holds a small packet back until the previous one is acknowledged, while
// Linux delays our acknowledgement by up to 40 ms: each early round trip
// (the hostkeys-00 notice after auth, the channel open confirmation) waits
// for the delayed-ACK timer. With TCP_QUICKACK set again after every read
// during setup, we acknowledge at once and the server never waits.
type quickAckConn struct {
	net.Conn
	raw   syscall.RawConn
	setup atomic.Bool
}

// withQuickAck wraps c when it is a TCP socket on which TCP_QUICKACK can be
// set; otherwise it returns c as it is.
func withQuickAck(c net.Conn) net.Conn {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return c
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return c
	}
	q := &quickAckConn{Conn: c, raw: raw}
	if !q.quickAck() {
		return c
	}
	q.setup.Store(true)
	return q
}

func (q *quickAckConn) quickAck() bool {
	var serr error
	err := q.raw.Control(func(fd uintptr) {
		serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_TCP, unix.TCP_QUICKACK, 1)
	})
	return err == nil && serr == nil
}

func (q *quickAckConn) Read(b []byte) (int, error) {
	n, err := q.Conn.Read(b)
	if q.setup.Load() {
		q.quickAck()
	}
	return n, err
}

// setupDone ends the quick acknowledgements: sshd has TCP_NODELAY now.
func (q *quickAckConn) setupDone() { q.setup.Store(false) }
