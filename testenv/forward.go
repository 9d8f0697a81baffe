package testenv

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// impairFile, in a host's directory, holds the extra one-way latency (in
// milliseconds) the forwarder adds to that host's traffic when the kernel has
// no netem qdisc to do it on the link.
const impairFile = "impair"

// impairGenFile, in the lab directory, changes whenever an impair file does.
const impairGenFile = "impair.gen"

// fwdTarget is one host behind the forwarder.
type fwdTarget struct {
	name   string
	addr   string // mgmt_ip:22, reachable only from the hub namespace
	ln     net.Listener
	impair string // path of the host's impair file
	delay  atomic.Int64
}

// forwarder accepts on 127.0.0.1 and connects to hosts from the hub namespace.
type forwarder struct {
	hubFD     int
	targets   []*fwdTarget
	impairGen string // path of the lab's impairGenFile
	log       *log.Logger
	wg        sync.WaitGroup
}

func newForwarder(st *State, lns []net.Listener, logger *log.Logger) (*forwarder, error) {
	if len(lns) != len(st.Hosts) {
		return nil, fmt.Errorf("forwarder: %d listeners for %d hosts", len(lns), len(st.Hosts))
	}
	fd, err := unix.Open(netnsPath(st.HubNS), unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("forwarder: open hub namespace: %w", err)
	}
	f := &forwarder{hubFD: fd, log: logger, impairGen: filepath.Join(st.Dir, impairGenFile)}
	for i, h := range st.Hosts {
		f.targets = append(f.targets, &fwdTarget{
			name:   h.Name,
			addr:   net.JoinHostPort(h.MgmtIP, "22"),
			ln:     lns[i],
			impair: filepath.Join(st.hostDir(h), impairFile),
		})
	}
	return f, nil
}

// serve runs until ctx ends, then closes listeners and open connections and
// waits for every goroutine it started.
func (f *forwarder) serve(ctx context.Context) {
	for _, t := range f.targets {
		f.wg.Add(1)
		go func() {
			defer f.wg.Done()
			f.accept(ctx, t)
		}()
	}
	f.wg.Add(1)
	go func() {
		defer f.wg.Done()
		f.pollImpair(ctx)
	}()
	<-ctx.Done()
	for _, t := range f.targets {
		t.ln.Close()
	}
	f.wg.Wait()
	unix.Close(f.hubFD)
}

func (f *forwarder) accept(ctx context.Context, t *fwdTarget) {
	for {
		c, err := t.ln.Accept()
		if err != nil {
			if ctx.Err() == nil && !errors.Is(err, net.ErrClosed) {
				f.log.Printf("%s: accept: %v", t.name, err)
			}
			return
		}
		f.wg.Add(1)
		go func() {
			defer f.wg.Done()
			f.handle(ctx, t, c)
		}()
	}
}

func (f *forwarder) handle(ctx context.Context, t *fwdTarget, c net.Conn) {
	defer c.Close()
	dctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	up, err := f.dial(dctx, t.addr)
	cancel()
	if err != nil {
		f.log.Printf("%s: dial %s: %v", t.name, t.addr, err)
		return
	}
	defer up.Close()
	stop := context.AfterFunc(ctx, func() { c.Close(); up.Close() })
	defer stop()
	done := make(chan struct{})
	go func() {
		t.pipe(up, c)
		close(done)
	}()
	t.pipe(c, up)
	<-done
}

// dial connects to addr from the hub namespace. The socket is created on a
// thread switched into the hub's netns (a socket stays in the namespace it was
// created in), then the thread is switched back.
func (f *forwarder) dial(ctx context.Context, addr string) (net.Conn, error) {
	runtime.LockOSThread()
	self, err := unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		runtime.UnlockOSThread()
		return nil, fmt.Errorf("open own netns: %w", err)
	}
	defer unix.Close(self)
	if err := unix.Setns(f.hubFD, unix.CLONE_NEWNET); err != nil {
		runtime.UnlockOSThread()
		return nil, fmt.Errorf("enter hub netns: %w", err)
	}
	var d net.Dialer
	conn, derr := d.DialContext(ctx, "tcp4", addr)
	if err := unix.Setns(self, unix.CLONE_NEWNET); err != nil {
		// The thread is stuck in the hub namespace: leave it locked so the Go
		// runtime destroys it when this goroutine exits instead of reusing it.
		if conn != nil {
			conn.Close()
		}
		return nil, fmt.Errorf("leave hub netns: %w", err)
	}
	runtime.UnlockOSThread()
	return conn, derr
}

// pollImpair follows the hosts' impair files (written by Break, possibly from
// another process such as `testenv break`). It reads only the lab's
// impairGenFile every tick, and the hosts' files when that has changed, so a
// lab of a thousand hosts costs one read a tick, not a thousand.
func (f *forwarder) pollImpair(ctx context.Context) {
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	last, first := "", true
	for {
		gen, _ := os.ReadFile(f.impairGen)
		if first || string(gen) != last {
			for _, t := range f.targets {
				var d time.Duration
				if b, err := os.ReadFile(t.impair); err == nil {
					if ms, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil {
						d = time.Duration(ms) * time.Millisecond
					}
				}
				t.delay.Store(int64(d))
			}
			last, first = string(gen), false
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// bumpImpairGen tells the forwarder that an impair file changed.
func bumpImpairGen(st *State) error {
	return writeFile(filepath.Join(st.Dir, impairGenFile), []byte(strconv.FormatInt(time.Now().UnixNano(), 10)+"\n"), 0o644)
}

type chunk struct {
	b  []byte
	at time.Time
}

// pipeBufSize is the read buffer of one direction of a relayed connection.
// A lab of a thousand hosts under a controller with --forks 1000 has 2,000
// of them at once, so they are pooled and not larger than an SSH packet
// needs (OpenSSH sends at most 32 KiB of payload a packet; a packet read in
// two pieces costs nothing).
const pipeBufSize = 16 << 10

var pipeBufs = sync.Pool{New: func() any { b := make([]byte, pipeBufSize); return &b }}

// pipe copies src to dst. While the host is not slowed, each read is written
// at once from one pooled buffer: no copy, no goroutine, no queue. Once a
// delay is set (Break slow), the connection switches, for the rest of its
// life so that bytes stay in order, to a queue: each chunk is held until it is
// `delay` old, which adds latency without cutting throughput (chunks queue,
// not serialise).
func (t *fwdTarget) pipe(dst, src net.Conn) {
	bp := pipeBufs.Get().(*[]byte)
	defer pipeBufs.Put(bp)
	buf := *bp
	var ch chan chunk
	var done chan struct{}
	for {
		n, err := src.Read(buf)
		if n > 0 {
			if ch == nil && t.delay.Load() == 0 {
				if _, werr := dst.Write(buf[:n]); werr != nil {
					src.Close() // as delayed does: the peer is gone
					break
				}
			} else {
				if ch == nil {
					ch, done = make(chan chunk, 64), make(chan struct{})
					go t.delayed(dst, src, ch, done)
				}
				ch <- chunk{append([]byte(nil), buf[:n]...), time.Now()}
			}
		}
		if err != nil {
			break
		}
	}
	if ch != nil {
		close(ch)
		<-done
	}
	if tc, ok := dst.(*net.TCPConn); ok {
		_ = tc.CloseWrite()
	}
}

// delayed writes the queued chunks to dst, each once it is `delay` old. On a
// write error it closes src, which stops pipe's reads, and drains the queue.
func (t *fwdTarget) delayed(dst, src net.Conn, ch chan chunk, done chan struct{}) {
	defer close(done)
	for c := range ch {
		if d := time.Duration(t.delay.Load()); d > 0 {
			time.Sleep(time.Until(c.at.Add(d)))
		}
		if _, err := dst.Write(c.b); err != nil {
			src.Close()
			for range ch {
			}
			return
		}
	}
}

// listenLoopback opens one 127.0.0.1 listener per host on kernel-chosen ports,
// which cannot clash with another lab or anything else on the machine.
func listenLoopback(n int) ([]net.Listener, error) {
	var lns []net.Listener
	for i := 0; i < n; i++ {
		ln, err := net.Listen("tcp4", "127.0.0.1:0")
		if err != nil {
			for _, l := range lns {
				l.Close()
			}
			return nil, fmt.Errorf("listen on 127.0.0.1: %w", err)
		}
		lns = append(lns, ln)
	}
	return lns, nil
}

// readBanner reads an SSH server's identification line from addr (a
// 127.0.0.1 forwarder port), proving the whole path up to sshd works.
func readBanner(ctx context.Context, dial func(context.Context, string) (net.Conn, error), addr string) error {
	dctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	c, err := dial(dctx, addr)
	if err != nil {
		return err
	}
	defer c.Close()
	deadline, _ := dctx.Deadline()
	_ = c.SetDeadline(deadline)
	buf := make([]byte, 64)
	n, err := io.ReadAtLeast(c, buf, 8)
	if err != nil {
		return fmt.Errorf("read ssh banner from %s: %w", addr, err)
	}
	if !strings.HasPrefix(string(buf[:n]), "SSH-2.0-") {
		return fmt.Errorf("%s: not an ssh server: %q", addr, buf[:n])
	}
	return nil
}

func dialLoopback(ctx context.Context, addr string) (net.Conn, error) {
	var d net.Dialer
	return d.DialContext(ctx, "tcp4", addr)
}
