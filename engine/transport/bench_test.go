package transport

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/runbook/runbook/testenv"
	"github.com/runbook/runbook/testenv/testlab"
)

// The benchmarks run against a lab host (real OpenSSH 9.x sshd reached
// through the lab's loopback forwarder); they skip like the lab tests.
//
//	go test -run '^$' -bench . -benchtime 200x ./engine/transport

func benchLab(b *testing.B) (*testenv.Lab, Target) {
	lab := testlab.Start(b, testenv.Options{Tier: testenv.TierNS, Hosts: 1})
	return lab, labTarget(b, lab, 0)
}

func benchDial(b *testing.B, d *Dialer, tg Target) *Conn {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := d.Dial(ctx, tg)
	if err != nil {
		b.Fatal(err)
	}
	return c
}

// BenchmarkConnect: TCP connect, key exchange, host key check, publickey
// auth, then close; through the lab's forwarder and directly.
func BenchmarkConnect(b *testing.B) {
	lab, tg := benchLab(b)
	direct, hubDial := directTarget(b, lab, tg)
	for _, bc := range []struct {
		name string
		tg   Target
		d    *Dialer
	}{
		{"forwarder", tg, &Dialer{}},
		{"direct", direct, &Dialer{NetDial: hubDial}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			for b.Loop() {
				benchDial(b, bc.d, bc.tg).Close()
			}
		})
	}
}

// directTarget is lab host tg reached at its management address from the
// lab's hub namespace, with no forwarder in between.
func directTarget(b *testing.B, lab *testenv.Lab, tg Target) (Target, func(context.Context, string, string) (net.Conn, error)) {
	direct := tg
	direct.Address, direct.Port = lab.Hosts[0].MgmtIP, 22
	kh := filepath.Join(b.TempDir(), "known_hosts")
	if err := os.WriteFile(kh, []byte(direct.Address+" "+knownHostsKey(b, lab, 0)+"\n"), 0o600); err != nil {
		b.Fatal(err)
	}
	direct.KnownHostsFiles = []string{kh}
	return direct, netnsDialer(b, "/run/netns/"+lab.Prefix()+"-hub")
}

// BenchmarkSession: one exec session ("true") on an open connection
// (direct, no forwarder).
func BenchmarkSession(b *testing.B) {
	lab, tg := benchLab(b)
	direct, hubDial := directTarget(b, lab, tg)
	c := benchDial(b, &Dialer{NetDial: hubDial}, direct)
	defer c.Close()
	ctx := context.Background()
	if _, err := c.Run(ctx, "true", nil, nil, nil); err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if code, err := c.Run(ctx, "true", nil, nil, nil); err != nil || code != 0 {
			b.Fatal(code, err)
		}
	}
}

// BenchmarkFirstSession times the first and the second session on fresh
// connections (the dial is not timed), with and without the TCP_QUICKACK
// workaround, both through the lab's loopback forwarder and directly from
// the lab's hub namespace to the host's sshd (as a controller on a real
// network talks to a server: the client socket is sshd's TCP peer).
func BenchmarkFirstSession(b *testing.B) {
	lab, tg := benchLab(b)
	direct, hubDial := directTarget(b, lab, tg)
	for _, bc := range []struct {
		name string
		tg   Target
		d    *Dialer
	}{
		{"forwarder/plain", tg, &Dialer{NoQuickAck: true}},
		{"forwarder/quickack", tg, &Dialer{}},
		{"direct/plain", direct, &Dialer{NoQuickAck: true, NetDial: hubDial}},
		{"direct/quickack", direct, &Dialer{NetDial: hubDial}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			ctx := context.Background()
			var first, second time.Duration
			n := 0
			for b.Loop() {
				c := benchDial(b, bc.d, bc.tg)
				start := time.Now()
				if _, err := c.Run(ctx, "true", nil, nil, nil); err != nil {
					b.Fatal(err)
				}
				first += time.Since(start)
				start = time.Now()
				if _, err := c.Run(ctx, "true", nil, nil, nil); err != nil {
					b.Fatal(err)
				}
				second += time.Since(start)
				n++
				c.Close()
			}
			b.ReportMetric(float64(first.Microseconds())/float64(n)/1000, "ms/first")
			b.ReportMetric(float64(second.Microseconds())/float64(n)/1000, "ms/second")
		})
	}
}

// netnsDialer dials TCP from inside the network namespace at path (the
// socket stays in it), like the lab's forwarder.
func netnsDialer(b *testing.B, path string) func(ctx context.Context, network, addr string) (net.Conn, error) {
	ns, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { unix.Close(ns) })
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		runtime.LockOSThread()
		self, err := unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			runtime.UnlockOSThread()
			return nil, err
		}
		defer unix.Close(self)
		if err := unix.Setns(ns, unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread()
			return nil, err
		}
		var d net.Dialer
		c, derr := d.DialContext(ctx, network, addr)
		if err := unix.Setns(self, unix.CLONE_NEWNET); err != nil {
			// Leave the thread locked: the runtime discards it.
			if c != nil {
				c.Close()
			}
			return nil, err
		}
		runtime.UnlockOSThread()
		return c, derr
	}
}
