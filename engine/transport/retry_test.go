package transport

import (
	"context"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// flakyFront is a TCP front for a test server that fails its first connections as an
// overloaded sshd does (a reset, or a close before the banner), then forwards to the server.
type flakyFront struct {
	Port     int
	ln       net.Listener
	fail     int32
	how      string // "reset", "eof" or "silent" (accepted, then nothing said)
	accepted atomic.Int32
	wg       sync.WaitGroup
	mu       sync.Mutex
	held     []net.Conn // the silent ones
}

func startFlakyFront(t *testing.T, srv *testServer, fail int, how string) *flakyFront {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &flakyFront{Port: ln.Addr().(*net.TCPAddr).Port, ln: ln, fail: int32(fail), how: how}
	f.wg.Add(1)
	go func() {
		defer f.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			if f.accepted.Add(1) <= f.fail {
				if f.how == "silent" {
					f.mu.Lock()
					f.held = append(f.held, c)
					f.mu.Unlock()
					continue
				}
				if f.how == "reset" {
					_ = c.(*net.TCPConn).SetLinger(0)
				}
				c.Close()
				continue
			}
			f.wg.Add(1)
			go func() {
				defer f.wg.Done()
				defer c.Close()
				up, err := net.Dial("tcp", "127.0.0.1:"+strconv.Itoa(srv.Port))
				if err != nil {
					return
				}
				defer up.Close()
				go func() { _, _ = io.Copy(up, c); up.(*net.TCPConn).CloseWrite() }()
				_, _ = io.Copy(c, up)
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		f.mu.Lock()
		defer f.mu.Unlock()
		for _, c := range f.held {
			c.Close()
		}
	})
	return f
}

// target is srv's target dialled through the front (the known_hosts entry names the
// front's port).
func (f *flakyFront) target(t *testing.T, srv *testServer) Target {
	tg := srv.Target(t)
	kh := filepath.Join(t.TempDir(), "known_hosts")
	b, err := os.ReadFile(tg.KnownHostsFiles[0])
	if err != nil {
		t.Fatal(err)
	}
	line := strings.Replace(string(b), "]:"+strconv.Itoa(srv.Port)+" ", "]:"+strconv.Itoa(f.Port)+" ", 1)
	if err := os.WriteFile(kh, []byte(line), 0o600); err != nil {
		t.Fatal(err)
	}
	tg.Port, tg.KnownHostsFiles = f.Port, []string{kh}
	return tg
}

func TestConnectRetries(t *testing.T) {
	srv := startTestServer(t)
	tests := []struct {
		name      string
		fail      int
		how       string
		tries     int // Dialer.ConnectTries
		change    func(*Target)
		wantConns int32  // connections the front saw
		wantErr   string // "": success
	}{
		{name: "two resets, then served", fail: 2, how: "reset", wantConns: 3},
		{name: "two closes before the banner, then served", fail: 2, how: "eof", wantConns: 3},
		{name: "three resets: out of tries", fail: 3, how: "reset", wantConns: 3, wantErr: "(after 3 tries)"},
		// (EOF, or a reset if the client's version line reached the front before its close)
		{name: "one try only", fail: 1, how: "eof", tries: 1, wantConns: 1, wantErr: "handshake"},
		{name: "five tries", fail: 4, how: "eof", tries: 5, wantConns: 5},
		{name: "host key mismatch is not retried", fail: 0, wantConns: 1, wantErr: "host key",
			change: func(tg *Target) {
				kh := filepath.Join(t.TempDir(), "known_hosts")
				other, _ := newKey(t)
				line := "[127.0.0.1]:" + strconv.Itoa(tg.Port) + " " + khKey(other.PublicKey())
				if err := os.WriteFile(kh, []byte(line+"\n"), 0o600); err != nil {
					t.Fatal(err)
				}
				tg.KnownHostsFiles = []string{kh}
			}},
		{name: "auth failure is not retried", fail: 0, wantConns: 1, wantErr: "authentication",
			change: func(tg *Target) { tg.User = "nobody" }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := startFlakyFront(t, srv, tt.fail, tt.how)
			tg := f.target(t, srv)
			tg.ConnectTimeout = 10 * time.Second
			if tt.change != nil {
				tt.change(&tg)
			}
			d := &Dialer{ConnectTries: tt.tries, retryBase: 10 * time.Millisecond}
			execs := srv.Execs.Load()
			c, err := d.Dial(context.Background(), tg)
			if got := f.accepted.Load(); got != tt.wantConns {
				t.Errorf("%d connections; want %d", got, tt.wantConns)
			}
			if tt.wantErr != "" {
				if err == nil || !IsUnreachable(err) || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v; want unreachable with %q", err, tt.wantErr)
				}
				if tt.tries == 1 && strings.Contains(err.Error(), "tries") {
					t.Errorf("err = %v; a single try reports no try count", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			runOK(t, c, "echo once", "once\n")
			if got := srv.Execs.Load() - execs; got != 1 {
				t.Errorf("%d commands ran; want 1", got)
			}
		})
	}
}

// The tries share the connect timeout: a host that keeps resetting is given up on within it,
// not after tries × timeout.
func TestConnectRetriesWithinTimeout(t *testing.T) {
	srv := startTestServer(t)
	f := startFlakyFront(t, srv, 1000, "reset")
	tg := f.target(t, srv)
	tg.ConnectTimeout = 400 * time.Millisecond
	start := time.Now()
	_, err := (&Dialer{ConnectTries: 100, retryBase: 100 * time.Millisecond}).Dial(context.Background(), tg)
	if err == nil || !IsUnreachable(err) {
		t.Fatalf("err = %v; want unreachable", err)
	}
	if el := time.Since(start); el > 600*time.Millisecond {
		t.Errorf("gave up after %s; want within the 400ms connect timeout", el)
	}
	if n := f.accepted.Load(); n < 2 || n > 5 {
		t.Errorf("%d tries in 400ms with a 100ms backoff", n)
	}
	t.Log(err)
}

// A try that hangs before the key exchange (a host that accepts and says nothing) does not
// use up the connect timeout: each try has its share of what is left (at least 2 s) until
// the host key is seen, so the next try still has time.
func TestConnectRetryAfterSilentTry(t *testing.T) {
	srv := startTestServer(t)
	f := startFlakyFront(t, srv, 1, "silent")
	tg := f.target(t, srv)
	tg.ConnectTimeout = 6 * time.Second
	start := time.Now()
	c, err := (&Dialer{ConnectTries: 3}).Dial(context.Background(), tg)
	if err != nil {
		t.Fatalf("Dial after a silent first try: %v", err)
	}
	c.Close()
	if el := time.Since(start); el > 5*time.Second {
		t.Errorf("took %s; want the first try given up after about 2s", el)
	}
	if n := f.accepted.Load(); n != 2 {
		t.Errorf("%d tries; want 2", n)
	}
}
