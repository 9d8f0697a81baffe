package transport

import (
	"bytes"
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// jumpDialer is a Dialer whose ProxyJump hops are the given test servers by name.
func jumpDialer(t *testing.T, d *Dialer, hops map[string]*testServer) *Dialer {
	t.Helper()
	targets := map[string]Target{}
	for name, s := range hops {
		tg := s.Target(t)
		tg.Name = name
		targets[name] = tg
	}
	d.ResolveJump = func(name string, partial Target) (Target, error) {
		tg, ok := targets[name]
		if !ok {
			return Target{}, errors.New("no such test hop")
		}
		return tg, nil
	}
	return d
}

// behind is srv's target reached through the ProxyJump chain jump.
func behind(t *testing.T, srv *testServer, name, jump string) Target {
	tg := srv.Target(t)
	tg.Name, tg.ProxyJump = name, jump
	return tg
}

func runOK(t *testing.T, c *Conn, cmd, want string) {
	t.Helper()
	var out bytes.Buffer
	if code, err := c.Run(context.Background(), cmd, nil, &out, nil); err != nil || code != 0 || out.String() != want {
		t.Fatalf("%s on %s: %d %v %q; want %q", cmd, c.Target.Name, code, err, out.String(), want)
	}
}

// waitFor polls cond for up to 5 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Many targets behind one bastion, dialled at once: the bastion sees one connection, which
// carries every target as a channel, lives while any target does, and is closed with the
// last.
func TestJumpHostShared(t *testing.T) {
	bastion, target := startTestServer(t), startTestServer(t)
	d := jumpDialer(t, &Dialer{}, map[string]*testServer{"bastion": bastion})
	const n = 20
	conns := make([]*Conn, n)
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := d.Dial(context.Background(), behind(t, target, "t"+strconv.Itoa(i), "bastion"))
			if err != nil {
				errs <- err
				return
			}
			conns[i] = c
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if got := bastion.Accepted(); got != 1 {
		t.Errorf("the bastion accepted %d connections for %d targets; want 1", got, n)
	}
	if got := bastion.Forwards.Load(); got != n {
		t.Errorf("the bastion forwarded %d channels; want %d", got, n)
	}
	if got := target.Accepted(); got != n {
		t.Errorf("the targets' server accepted %d connections; want %d", got, n)
	}
	for _, c := range conns[:n-1] {
		runOK(t, c, "echo hi", "hi\n")
		c.Close()
	}
	if got := d.openHops(); got != 1 {
		t.Fatalf("%d hops open while a target still uses the bastion; want 1", got)
	}
	runOK(t, conns[n-1], "echo last", "last\n")
	conns[n-1].Close()
	if got := d.openHops(); got != 0 {
		t.Fatalf("%d hops open after the last target closed; want 0", got)
	}
	// The bastion's connection is gone: its server sees the end of it.
	c := dial(t, d, behind(t, target, "again", "bastion"))
	runOK(t, c, "echo again", "again\n")
	if got := bastion.Accepted(); got != 2 {
		t.Errorf("the bastion accepted %d connections; want 2 (one more after the first was closed)", got)
	}
}

// A chain a,b: one connection to a, one to b (through a), both shared by every target.
func TestJumpChainShared(t *testing.T) {
	a, b, target := startTestServer(t), startTestServer(t), startTestServer(t)
	d := jumpDialer(t, &Dialer{}, map[string]*testServer{"a": a, "b": b})
	var conns []*Conn
	for i := range 3 {
		c := dial(t, d, behind(t, target, "t"+strconv.Itoa(i), "a,b"))
		runOK(t, c, "echo chain", "chain\n")
		conns = append(conns, c)
	}
	// b alone is a different chain (a direct connection to b) from a,b.
	direct := dial(t, d, behind(t, target, "direct", "b"))
	runOK(t, direct, "echo direct", "direct\n")
	if a.Accepted() != 1 || a.Forwards.Load() != 1 {
		t.Errorf("a: %d connections, %d forwards; want 1 and 1 (to b)", a.Accepted(), a.Forwards.Load())
	}
	if b.Accepted() != 2 || b.Forwards.Load() != 4 {
		t.Errorf("b: %d connections, %d forwards; want 2 (through a, and direct) and 4", b.Accepted(), b.Forwards.Load())
	}
	if got := d.openHops(); got != 3 {
		t.Errorf("%d hops open; want 3 (a, a→b, b)", got)
	}
	direct.Close()
	for _, c := range conns {
		c.Close()
	}
	if got := d.openHops(); got != 0 {
		t.Errorf("%d hops open after every target closed; want 0", got)
	}
}

// A bastion that drops its connections (restarted, say): the targets through it lose theirs
// and are unreachable, and the next target dials the bastion again instead of failing on
// the dead connection.
func TestJumpHostReconnects(t *testing.T) {
	bastion, target := startTestServer(t), startTestServer(t)
	d := jumpDialer(t, &Dialer{}, map[string]*testServer{"bastion": bastion})
	c1 := dial(t, d, behind(t, target, "t1", "bastion"))
	runOK(t, c1, "echo one", "one\n")
	bastion.DropConnections()
	if err := c1.Wait(); err == nil {
		t.Fatal("Wait = nil after the bastion dropped the connection")
	}
	if _, err := c1.Run(context.Background(), "true", nil, nil, nil); !IsUnreachable(err) {
		t.Errorf("run through a dropped bastion: %v; want unreachable", err)
	}
	waitFor(t, "the dead hop to be forgotten", func() bool { return d.openHops() == 0 })
	c2 := dial(t, d, behind(t, target, "t2", "bastion"))
	runOK(t, c2, "echo two", "two\n")
	if got := bastion.Accepted(); got != 2 {
		t.Errorf("the bastion accepted %d connections; want 2", got)
	}
	c1.Close() // the old Conn's release must not touch the new hop
	runOK(t, c2, "echo still", "still\n")
	c2.Close()
	if got := d.openHops(); got != 0 {
		t.Errorf("%d hops open; want 0", got)
	}
}

// A shared hop that stops answering is closed by keepalives and forgotten, so later targets
// do not wait on it.
func TestJumpHostKeepalive(t *testing.T) {
	bastion, target := startTestServer(t), startTestServer(t)
	d := jumpDialer(t, &Dialer{Keepalive: 50 * time.Millisecond, KeepaliveCountMax: 2}, map[string]*testServer{"bastion": bastion})
	c := dial(t, d, behind(t, target, "t1", "bastion"))
	runOK(t, c, "echo one", "one\n")
	if d.openHops() != 1 {
		t.Fatal("no open hop")
	}
	bastion.freeze.Store(true)
	waitFor(t, "keepalives to close the silent bastion", func() bool { return d.openHops() == 0 })
	bastion.freeze.Store(false)
	c2 := dial(t, d, behind(t, target, "t2", "bastion"))
	runOK(t, c2, "echo two", "two\n")
}

// Concurrent first dials of a hop make one connection; when it fails, every waiter gets that
// failure, and the next dial tries again.
func TestJumpHostSingleDial(t *testing.T) {
	bastion, target := startTestServer(t), startTestServer(t)
	good := bastion.Target(t)
	good.Name = "bastion"
	bad := good
	bad.KnownHostsFiles = []string{filepath.Join(t.TempDir(), "empty_known_hosts")}
	if err := os.WriteFile(bad.KnownHostsFiles[0], nil, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name    string
		hop     Target
		wantErr string
	}{
		{"host key refused", bad, "unknown host key"},
		{"ok", good, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			const n = 10
			var netDials atomic.Int32
			gate := make(chan struct{})
			d := &Dialer{ResolveJump: func(string, Target) (Target, error) { return tt.hop, nil }}
			d.NetDial = func(ctx context.Context, network, addr string) (net.Conn, error) {
				netDials.Add(1)
				<-gate
				var nd net.Dialer
				return nd.DialContext(ctx, network, addr)
			}
			// Hold the first dial until every target waits for the hop (or, if each dialled
			// its own, until all have dialled).
			go func() {
				defer close(gate)
				deadline := time.Now().Add(3 * time.Second)
				for time.Now().Before(deadline) {
					if waiting(d) >= n || netDials.Load() >= n {
						return
					}
					time.Sleep(5 * time.Millisecond)
				}
			}()
			var wg sync.WaitGroup
			errs := make([]error, n)
			for i := range n {
				wg.Add(1)
				go func() {
					defer wg.Done()
					c, err := d.Dial(context.Background(), behind(t, target, "t"+strconv.Itoa(i), "bastion"))
					if err == nil {
						if code, rerr := c.Run(context.Background(), "true", nil, nil, nil); rerr != nil || code != 0 {
							err = errors.Join(rerr, errors.New("exit "+strconv.Itoa(code)))
						}
						c.Close()
					}
					errs[i] = err
				}()
			}
			wg.Wait()
			if got := netDials.Load(); got != 1 {
				t.Errorf("%d targets dialled the bastion; want 1 dial shared by all", got)
			}
			for i, err := range errs {
				if tt.wantErr == "" && err != nil {
					t.Errorf("target %d: %v", i, err)
				}
				if tt.wantErr != "" && (err == nil || !IsUnreachable(err) || !strings.Contains(err.Error(), tt.wantErr) ||
					!strings.Contains(err.Error(), "jump host bastion")) {
					t.Errorf("target %d: %v; want an unreachable jump host error with %q", i, err, tt.wantErr)
				}
			}
			if got := d.openHops(); got != 0 {
				t.Errorf("%d hops open after every target closed; want 0", got)
			}
			// A failed dial is not remembered: the next dial tries again (and, the gate
			// being open, gets through or fails on its own).
			before := netDials.Load()
			_, _ = d.Dial(context.Background(), behind(t, target, "later", "bastion"))
			if netDials.Load() != before+1 {
				t.Errorf("a later dial did not dial the bastion again")
			}
		})
	}
}

// waiting is the number of references on d's hops (the dialer's and its waiters').
func waiting(d *Dialer) int {
	p := d.hopPool()
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for _, h := range p.hops {
		n += h.refs
	}
	return n
}

// The hop key: what makes a hop distinct makes a new connection; what does not, does not.
func TestHopKey(t *testing.T) {
	base := Target{Name: "bastion", Address: "10.0.0.1", Port: 22, User: "ops", IdentityFile: "/k",
		KnownHostsFiles: []string{"/kh"}, StrictHostKeyChecking: "yes"}
	parent := &sharedHop{key: hopKey(Target{Name: "outer", Address: "10.0.0.9"}, nil)}
	other := &sharedHop{key: hopKey(Target{Name: "outer2", Address: "10.0.0.8"}, nil)}
	tests := []struct {
		name   string
		change func(*Target)
		parent *sharedHop
		same   bool
	}{
		{"identical", func(*Target) {}, nil, true},
		{"connect timeout", func(t *Target) { t.ConnectTimeout = time.Second }, nil, true},
		{"become", func(t *Target) { t.BecomeMethod, t.BecomePassword = "sudo", "pw" }, nil, true},
		{"user", func(t *Target) { t.User = "root" }, nil, false},
		{"address", func(t *Target) { t.Address = "10.0.0.2" }, nil, false},
		{"port", func(t *Target) { t.Port = 2222 }, nil, false},
		{"known hosts", func(t *Target) { t.KnownHostsFiles = []string{"/other"} }, nil, false},
		{"strict checking", func(t *Target) { t.StrictHostKeyChecking = "accept-new" }, nil, false},
		{"key", func(t *Target) { t.IdentityFile = "/k2" }, nil, false},
		{"proxy command", func(t *Target) { t.ProxyCommand = "nc x 22" }, nil, false},
		{"behind a hop", func(*Target) {}, parent, false},
	}
	k0 := hopKey(base, nil)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tg := base
			tg.KnownHostsFiles = append([]string(nil), base.KnownHostsFiles...)
			tt.change(&tg)
			k := hopKey(tg, tt.parent)
			if (k == k0) != tt.same {
				t.Errorf("same key = %v; want %v", k == k0, tt.same)
			}
			if tt.parent != nil && k == hopKey(tg, other) {
				t.Error("the same hop behind two different hops has one key")
			}
		})
	}
}

// A target's ProxyCommand belongs to it alone: closing its Conn ends the command and
// whatever the command started (its process group).
func TestProxyCommandEndsWithConn(t *testing.T) {
	srv := startTestServer(t)
	pidFile := filepath.Join(t.TempDir(), "pid")
	tg := srv.Target(t)
	tg.ConnectTimeout = 10 * time.Second
	tg.ProxyCommand = "sleep 300 & echo $! > " + pidFile + "; " + proxyCommand(t, "127.0.0.1:"+strconv.Itoa(srv.Port))
	c := dial(t, &Dialer{}, tg)
	runOK(t, c, "echo via", "via\n")
	b, err := os.ReadFile(pidFile)
	if err != nil {
		t.Fatal(err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = syscall.Kill(pid, syscall.SIGKILL) })
	if !running(pid) {
		t.Fatal("the ProxyCommand's child is not running while the connection is open")
	}
	c.Close()
	waitFor(t, "the ProxyCommand's child to end", func() bool { return !running(pid) })
}

// running reports whether pid is a live process (not gone, not a zombie).
func running(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i >= 0 && i+2 < len(s) && s[i+2] != 'Z'
}

// A target that gives up while another dials the hop it waits for leaves the hop to the
// others, and its reference goes with it.
func TestJumpHostWaiterGivesUp(t *testing.T) {
	bastion, target := startTestServer(t), startTestServer(t)
	gate := make(chan struct{})
	d := jumpDialer(t, &Dialer{}, map[string]*testServer{"bastion": bastion})
	d.NetDial = func(ctx context.Context, network, addr string) (net.Conn, error) {
		<-gate
		var nd net.Dialer
		return nd.DialContext(ctx, network, addr)
	}
	first := make(chan error, 1)
	var c1 *Conn
	go func() {
		var err error
		c1, err = d.Dial(context.Background(), behind(t, target, "first", "bastion"))
		first <- err
	}()
	waitFor(t, "the first dial to start", func() bool { return waiting(d) == 1 })
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if _, err := d.Dial(ctx, behind(t, target, "impatient", "bastion")); err == nil || !IsUnreachable(err) ||
		!errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("the impatient target: %v; want unreachable, deadline exceeded", err)
	}
	if got := waiting(d); got != 1 {
		t.Errorf("%d references on the hop after the impatient target gave up; want 1", got)
	}
	close(gate)
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	runOK(t, c1, "echo first", "first\n")
	c1.Close()
	if got := d.openHops(); got != 0 {
		t.Errorf("%d hops open; want 0", got)
	}
	if got := bastion.Accepted(); got != 1 {
		t.Errorf("the bastion accepted %d connections; want 1", got)
	}
}

// The target dialling a hop gives up (its own deadline): the targets waiting for the hop
// are not failed with that, one of them dials the hop again.
func TestJumpHostDiallerGivesUp(t *testing.T) {
	bastion, target := startTestServer(t), startTestServer(t)
	gate := make(chan struct{})
	var netDials atomic.Int32
	d := jumpDialer(t, &Dialer{}, map[string]*testServer{"bastion": bastion})
	d.NetDial = func(ctx context.Context, network, addr string) (net.Conn, error) {
		netDials.Add(1)
		select {
		case <-gate:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		var nd net.Dialer
		return nd.DialContext(ctx, network, addr)
	}
	ctx, cancel := context.WithCancel(context.Background())
	first := make(chan error, 1)
	go func() {
		_, err := d.Dial(ctx, behind(t, target, "first", "bastion"))
		first <- err
	}()
	waitFor(t, "the first dial to start", func() bool { return netDials.Load() == 1 })
	patient := make(chan error, 1)
	var c2 *Conn
	go func() {
		var err error
		c2, err = d.Dial(context.Background(), behind(t, target, "patient", "bastion"))
		patient <- err
	}()
	waitFor(t, "the second target to wait for the hop", func() bool { return waiting(d) == 2 })
	cancel()
	if err := <-first; !errors.Is(err, context.Canceled) {
		t.Fatalf("the first target: %v; want canceled", err)
	}
	close(gate)
	if err := <-patient; err != nil {
		t.Fatalf("the waiting target failed with the first one's cancellation: %v", err)
	}
	runOK(t, c2, "echo patient", "patient\n")
	if got := netDials.Load(); got != 2 {
		t.Errorf("%d dials of the bastion; want 2", got)
	}
	c2.Close()
	if got := d.openHops(); got != 0 {
		t.Errorf("%d hops open; want 0", got)
	}
}

// A target dialled right after its bastion dropped every connection, before the pool saw
// the hop end, gets a working connection: the dead hop is evicted and dialled again, not
// handed out. Repeated, as the window is short.
func TestJumpHostDroppedThenDialled(t *testing.T) {
	bastion, target := startTestServer(t), startTestServer(t)
	d := jumpDialer(t, &Dialer{ConnectTimeout: 5 * time.Second}, map[string]*testServer{"bastion": bastion})
	for i := range 30 {
		c1 := dial(t, d, behind(t, target, "t1", "bastion"))
		bastion.DropConnections()
		c2, err := d.Dial(context.Background(), behind(t, target, "t2", "bastion"))
		if err != nil {
			t.Fatalf("round %d: dial right after the bastion dropped: %v", i, err)
		}
		runOK(t, c2, "echo two", "two\n")
		c1.Close()
		c2.Close()
		waitFor(t, "every hop closed", func() bool { return d.openHops() == 0 })
	}
}

// Without keepalives, a bastion that stops answering is found out by the first target that
// times out over it: the hop is probed, then evicted and closed, and later targets dial a
// new connection instead of waiting on the dead one.
func TestJumpHostDeadWithoutKeepalive(t *testing.T) {
	bastion, target := startTestServer(t), startTestServer(t)
	// The hop's connect timeout (1 s) bounds the probe; t2's own (300 ms) its dial.
	d := jumpDialer(t, &Dialer{ConnectTimeout: time.Second}, map[string]*testServer{"bastion": bastion})
	c1 := dial(t, d, behind(t, target, "t1", "bastion"))
	runOK(t, c1, "echo one", "one\n")
	bastion.freeze.Store(true)
	t2 := behind(t, target, "t2", "bastion")
	t2.ConnectTimeout = 300 * time.Millisecond
	if _, err := d.Dial(context.Background(), t2); err == nil {
		t.Fatal("dial over a silent bastion succeeded")
	}
	waitFor(t, "the silent hop to be evicted", func() bool { return d.openHops() == 0 })
	if err := c1.Wait(); err == nil {
		t.Error("the connection over the evicted hop did not end")
	}
	bastion.freeze.Store(false)
	c3 := dial(t, d, behind(t, target, "t3", "bastion"))
	runOK(t, c3, "echo three", "three\n")
	if got := bastion.Accepted(); got != 2 {
		t.Errorf("the bastion accepted %d connections; want 2", got)
	}
	c1.Close()
	c3.Close()
}

// The same through a chain: when the first hop drops, neither it nor the hop behind it
// (keyed by the first hop's key, which the new connection to it shares) is handed out again.
func TestJumpChainDroppedThenDialled(t *testing.T) {
	a, b, target := startTestServer(t), startTestServer(t), startTestServer(t)
	d := jumpDialer(t, &Dialer{ConnectTimeout: 5 * time.Second}, map[string]*testServer{"a": a, "b": b})
	for i := range 30 {
		c1 := dial(t, d, behind(t, target, "t1", "a,b"))
		a.DropConnections()
		c2, err := d.Dial(context.Background(), behind(t, target, "t2", "a,b"))
		if err != nil {
			t.Fatalf("round %d: dial right after the first hop dropped: %v", i, err)
		}
		runOK(t, c2, "echo two", "two\n")
		c1.Close()
		c2.Close()
		waitFor(t, "every hop closed", func() bool { return d.openHops() == 0 })
	}
}

// A first hop's own ProxyJump is honoured, as ssh's `ssh -W next hop` reads the hop's own
// ssh_config: its hops come before it. A later hop's own ProxyJump is not (ssh -J overrides
// it). A loop is refused with the hops named.
func TestJumpHostOwnProxyJump(t *testing.T) {
	x, a, b, target := startTestServer(t), startTestServer(t), startTestServer(t), startTestServer(t)
	d := jumpDialer(t, &Dialer{}, map[string]*testServer{"x": x, "a": a, "b": b})
	resolve := d.ResolveJump
	own := map[string]string{"a": "x", "b": "x"}
	d.ResolveJump = func(name string, partial Target) (Target, error) {
		tg, err := resolve(name, partial)
		tg.ProxyJump = own[name]
		return tg, err
	}
	c := dial(t, d, behind(t, target, "t1", "a"))
	runOK(t, c, "echo one", "one\n")
	c.Close()
	if x.Accepted() != 1 || x.Forwards.Load() != 1 || a.Accepted() != 1 {
		t.Errorf("x: %d connections, %d forwards; a: %d connections; want 1, 1 (to a), 1", x.Accepted(), x.Forwards.Load(), a.Accepted())
	}
	// b is a later hop: its own ProxyJump (x) is not used.
	c = dial(t, d, behind(t, target, "t2", "a,b"))
	runOK(t, c, "echo two", "two\n")
	c.Close()
	if x.Accepted() != 2 || x.Forwards.Load() != 2 || b.Accepted() != 1 || a.Forwards.Load() != 2 {
		t.Errorf("x: %d connections, %d forwards; b: %d connections; a: %d forwards; want 2, 2, 1, 2 (to t1, to b)", x.Accepted(), x.Forwards.Load(), b.Accepted(), a.Forwards.Load())
	}

	own = map[string]string{"a": "b", "b": "a"}
	_, err := d.Dial(context.Background(), behind(t, target, "t3", "a"))
	if err == nil || !strings.Contains(err.Error(), "ProxyJump loop (a → b → a)") {
		t.Errorf("Dial with a ProxyJump loop: %v", err)
	}
}

// From ssh_config, the loop error names the file and line of the ProxyJump that closes it.
func TestJumpHostProxyJumpLoopWhere(t *testing.T) {
	t.Setenv("HOME", t.TempDir())
	cfg := filepath.Join(t.TempDir(), "config")
	if err := os.WriteFile(cfg, []byte("Host a\n  ProxyJump b\nHost b\n  ProxyJump a\nHost *\n  HostName 127.0.0.1\n  Port 1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	d := &Dialer{SSHConfig: cfg, ConnectTimeout: time.Second}
	_, err := d.Dial(context.Background(), Target{Name: "t", Address: "127.0.0.1", Port: 1, ProxyJump: "a"})
	for _, w := range []string{"ProxyJump loop (a → b → a)", "ProxyJump at " + cfg + ":2"} {
		if err == nil || !strings.Contains(err.Error(), w) {
			t.Errorf("Dial: %v; want %q", err, w)
		}
	}
}
