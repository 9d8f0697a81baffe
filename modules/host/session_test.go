package host

import (
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
)

// procTree builds a fake /proc: processes with a parent, descriptors and TCP tables.
type procTree struct {
	t    *testing.T
	root string
}

func newProcTree(t *testing.T) *procTree { return &procTree{t: t, root: t.TempDir()} }

func (p *procTree) write(rel, data string) {
	p.t.Helper()
	full := filepath.Join(p.root, rel)
	if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
		p.t.Fatal(err)
	}
	if err := os.WriteFile(full, []byte(data), 0o644); err != nil {
		p.t.Fatal(err)
	}
}

func (p *procTree) link(rel, target string) {
	p.t.Helper()
	full := filepath.Join(p.root, rel)
	if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
		p.t.Fatal(err)
	}
	if err := os.Symlink(target, full); err != nil {
		p.t.Fatal(err)
	}
}

// proc adds a process with its parent, network namespace and socket inodes.
func (p *procTree) proc(pid int, comm string, ppid int, netns string, sockets ...int) {
	p.write(fmt.Sprintf("proc/%d/stat", pid), fmt.Sprintf("%d (%s) S %d 1 1 0 -1 4194560 0 0 0\n", pid, comm, ppid))
	p.link(fmt.Sprintf("proc/%d/ns/net", pid), "net:["+netns+"]")
	p.link(fmt.Sprintf("proc/%d/fd/0", pid), "/dev/null")
	p.link(fmt.Sprintf("proc/%d/fd/1", pid), "pipe:[77]")
	for i, s := range sockets {
		p.link(fmt.Sprintf("proc/%d/fd/%d", pid, i+3), fmt.Sprintf("socket:[%d]", s))
	}
	p.write(fmt.Sprintf("proc/%d/net/tcp", pid), tcpHeader)
	p.write(fmt.Sprintf("proc/%d/net/tcp6", pid), tcp6Header)
}

const (
	tcpHeader  = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n"
	tcp6Header = "  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n"
)

// procHex prints an address as /proc/net/tcp does: 32-bit words in the machine's order.
func procHex(ap string) string {
	a := netip.MustParseAddrPort(ap)
	raw := a.Addr().AsSlice()
	var b strings.Builder
	for i := 0; i < len(raw); i += 4 {
		fmt.Fprintf(&b, "%08X", binary.NativeEndian.Uint32(raw[i:]))
	}
	return fmt.Sprintf("%s:%04X", b.String(), a.Port())
}

func tcpLine(local, peer, state string, inode int) string {
	return fmt.Sprintf("   0: %s %s %s 00000000:00000000 00:00000000 00000000     0        0 %d 1 0000000000000000 20 4 1 10 -1\n",
		procHex(local), procHex(peer), state, inode)
}

func TestFindSSHSession(t *testing.T) {
	// helper (100) ← sudo (90) ← sh (80) ← sshd session (70, the socket) ← sshd (1)
	chain := func(t *testing.T) *procTree {
		p := newProcTree(t)
		p.proc(1, "sshd", 0, "1", 5)
		p.proc(70, "sshd: root@notty", 1, "1", 700, 701)
		p.proc(80, "sh", 70, "1")
		p.proc(90, "sudo", 80, "1")
		p.proc(100, "runbook-helper", 90, "1")
		return p
	}
	t.Run("sshd's socket, IPv4", func(t *testing.T) {
		p := chain(t)
		p.write("proc/70/net/tcp", tcpHeader+
			tcpLine("0.0.0.0:22", "0.0.0.0:0", "0A", 5)+ // the listener: not established
			tcpLine("192.0.2.10:22", "192.0.2.1:51234", "01", 700)+
			tcpLine("192.0.2.10:22", "198.51.100.7:40000", "01", 999)) // another process's
		s, err := SessionFinder{Root: Root(p.root), PID: 100, Env: func(string) string { return "" }}.FindSSHSession()
		if err != nil {
			t.Fatal(err)
		}
		want := []SessionConn{{netip.MustParseAddrPort("192.0.2.10:22"), netip.MustParseAddrPort("192.0.2.1:51234")}}
		if fmt.Sprint(s.Conns) != fmt.Sprint(want) || s.Source != "the socket of process 70 (sshd:?root@notty)" || s.OtherNetns {
			t.Errorf("got %+v", s)
		}
	})
	t.Run("IPv6 and a v4-mapped address", func(t *testing.T) {
		p := chain(t)
		p.write("proc/70/net/tcp6", tcp6Header+
			tcpLine("[2001:db8::10]:22", "[2001:db8::1]:40000", "01", 700)+
			tcpLine("[::ffff:192.0.2.10]:22", "[::ffff:192.0.2.1]:40001", "01", 701))
		s, err := SessionFinder{Root: Root(p.root), PID: 100}.FindSSHSession()
		if err != nil {
			t.Fatal(err)
		}
		if got := fmt.Sprint(s.Conns); got != "[{[2001:db8::10]:22 [2001:db8::1]:40000} {192.0.2.10:22 192.0.2.1:40001}]" {
			t.Errorf("got %s", got)
		}
	})
	t.Run("a sudo holding a log-server connection below sshd: both count", func(t *testing.T) {
		p := chain(t)
		p.link("proc/90/fd/3", "socket:[900]")
		table := tcpHeader + tcpLine("192.0.2.10:22", "192.0.2.1:51234", "01", 700) +
			tcpLine("10.9.0.5:40400", "10.9.0.1:514", "01", 900)
		p.write("proc/70/net/tcp", table)
		p.write("proc/90/net/tcp", table)
		s, err := SessionFinder{Root: Root(p.root), PID: 100, Env: func(string) string { return "" }}.FindSSHSession()
		if err != nil {
			t.Fatal(err)
		}
		if got := fmt.Sprint(s.Conns); got != "[{10.9.0.5:40400 10.9.0.1:514} {192.0.2.10:22 192.0.2.1:51234}]" ||
			s.Source != "the sockets of processes 90 (sudo), 70 (sshd:?root@notty)" || s.Lost != "" {
			t.Errorf("got %s %+v", got, s)
		}
	})
	t.Run("no sshd above: the first holder, and Source says so", func(t *testing.T) {
		p := newProcTree(t)
		p.proc(1, "init", 0, "1")
		p.proc(70, "tmux", 1, "1", 700)
		p.proc(80, "sh", 70, "1", 800)
		p.proc(100, "runbook-helper", 80, "1")
		table := tcpHeader + tcpLine("192.0.2.10:22", "192.0.2.1:51234", "01", 700) + tcpLine("192.0.2.10:40000", "192.0.2.7:80", "01", 800)
		p.write("proc/70/net/tcp", table)
		p.write("proc/80/net/tcp", table)
		s, err := SessionFinder{Root: Root(p.root), PID: 100}.FindSSHSession()
		if err != nil || fmt.Sprint(s.Conns) != "[{192.0.2.10:40000 192.0.2.7:80}]" ||
			s.Source != "the socket of process 80 (sh), the first ancestor that holds a TCP connection (no sshd process above)" {
			t.Errorf("got %+v %v", s, err)
		}
	})
	t.Run("more connections than are followed: not located", func(t *testing.T) {
		p := newProcTree(t)
		p.proc(1, "sshd", 0, "1")
		var socks []int
		table := tcpHeader
		for i := 0; i < 17; i++ {
			socks = append(socks, 700+i)
			table += tcpLine("192.0.2.10:22", fmt.Sprintf("192.0.2.1:%d", 50000+i), "01", 700+i)
		}
		p.proc(70, "sshd", 1, "1", socks...)
		p.proc(100, "runbook-helper", 70, "1")
		p.write("proc/70/net/tcp", table)
		s, err := SessionFinder{Root: Root(p.root), PID: 100}.FindSSHSession()
		if err != nil || s.Lost != "more than 16 established TCP connections (70 (sshd))" {
			t.Errorf("got %+v %v", s, err)
		}
	})
	// A session over loopback (a forwarder, a tunnel's endpoint) is followed to the process
	// holding the other end; its connections that leave the host count.
	loop := func(t *testing.T, ownerConns ...string) *procTree {
		p := chain(t)
		p.write("proc/70/net/tcp", tcpHeader)
		p.proc(500, "autossh", 1, "1", 5000, 5001)
		table := tcpHeader + tcpLine("127.0.0.1:22", "127.0.0.1:40000", "01", 700) +
			tcpLine("127.0.0.1:40000", "127.0.0.1:22", "01", 5000)
		for _, c := range ownerConns {
			l, r, _ := strings.Cut(c, ">")
			table += tcpLine(l, r, "01", 5001)
		}
		for _, pid := range []int{70, 100, 500} {
			p.write(fmt.Sprintf("proc/%d/net/tcp", pid), table)
		}
		return p
	}
	t.Run("a loopback peer followed to its process", func(t *testing.T) {
		p := loop(t, "192.0.2.10:40100>198.51.100.1:22")
		s, err := SessionFinder{Root: Root(p.root), PID: 100}.FindSSHSession()
		if err != nil || fmt.Sprint(s.Conns) != "[{127.0.0.1:22 127.0.0.1:40000} {192.0.2.10:40100 198.51.100.1:22}]" || s.Lost != "" ||
			!strings.HasSuffix(s.Source, "; its peer 127.0.0.1:40000 is process 500 (autossh), whose connections count too") {
			t.Errorf("got %+v %v", s, err)
		}
	})
	t.Run("a loopback peer whose process holds nothing else: not located", func(t *testing.T) {
		p := loop(t)
		s, err := SessionFinder{Root: Root(p.root), PID: 100}.FindSSHSession()
		if err != nil || s.Lost != "its peer 127.0.0.1:40000 is process 500 (autossh), which holds no connection that leaves this host" {
			t.Errorf("got %+v %v", s, err)
		}
	})
	t.Run("a loopback peer no process here holds: not located", func(t *testing.T) {
		p := loop(t, "192.0.2.10:40100>198.51.100.1:22")
		os.RemoveAll(filepath.Join(p.root, "proc/500/fd"))
		s, err := SessionFinder{Root: Root(p.root), PID: 100}.FindSSHSession()
		if err != nil || !strings.HasPrefix(s.Lost, "its peer 127.0.0.1:40000 is this host, and the process holding that end was not found (no process readable here holds socket 5000)") {
			t.Errorf("got %+v %v", s, err)
		}
	})
	t.Run("a loopback peer whose end no socket here holds: not located", func(t *testing.T) {
		p := loop(t)
		for _, pid := range []int{70, 100, 500} {
			p.write(fmt.Sprintf("proc/%d/net/tcp", pid), tcpHeader+tcpLine("127.0.0.1:22", "127.0.0.1:40000", "01", 700))
		}
		s, err := SessionFinder{Root: Root(p.root), PID: 100}.FindSSHSession()
		if err != nil || s.Lost != "its peer 127.0.0.1:40000 is this host, and no socket of this namespace holds that end" {
			t.Errorf("got %+v %v", s, err)
		}
	})
	// A forwarder on this host that reaches sshd over another local address (a veth, a
	// bridge): its end is in the table, so it is followed too.
	t.Run("a peer on another local address, followed", func(t *testing.T) {
		p := chain(t)
		p.proc(500, "socat", 1, "1", 5000, 5001)
		table := tcpHeader + tcpLine("10.9.0.1:22", "10.9.0.2:40000", "01", 700) +
			tcpLine("10.9.0.2:40000", "10.9.0.1:22", "01", 5000) + tcpLine("192.0.2.10:2222", "198.51.100.1:50000", "01", 5001)
		for _, pid := range []int{70, 100, 500} {
			p.write(fmt.Sprintf("proc/%d/net/tcp", pid), table)
		}
		s, err := SessionFinder{Root: Root(p.root), PID: 100}.FindSSHSession()
		if err != nil || fmt.Sprint(s.Conns) != "[{10.9.0.1:22 10.9.0.2:40000} {192.0.2.10:2222 198.51.100.1:50000}]" || s.Lost != "" ||
			!strings.HasSuffix(s.Source, "; its peer 10.9.0.2:40000 is process 500 (socat), whose connections count too") {
			t.Errorf("got %+v %v", s, err)
		}
	})
	t.Run("SSH_CONNECTION from this host: not located", func(t *testing.T) {
		p := newProcTree(t)
		p.proc(100, "runbook-helper", 1, "1")
		s, err := SessionFinder{Root: Root(p.root), PID: 100, Env: func(string) string { return "127.0.0.1 40000 127.0.0.1 22" }}.FindSSHSession()
		if err != nil || !strings.Contains(s.Lost, "its peer 127.0.0.1:40000 is this host") {
			t.Errorf("got %+v %v", s, err)
		}
	})
	t.Run("in another network namespace", func(t *testing.T) {
		p := chain(t)
		os.Remove(filepath.Join(p.root, "proc/100/ns/net"))
		p.link("proc/100/ns/net", "net:[2]")
		p.write("proc/70/net/tcp", tcpHeader+tcpLine("192.0.2.10:22", "192.0.2.1:51234", "01", 700))
		s, err := SessionFinder{Root: Root(p.root), PID: 100}.FindSSHSession()
		if err != nil || !s.OtherNetns {
			t.Errorf("got %+v %v", s, err)
		}
	})
	t.Run("nothing in /proc: SSH_CONNECTION", func(t *testing.T) {
		p := chain(t)
		env := func(k string) string {
			if k == "SSH_CONNECTION" {
				return "192.0.2.1 51234 192.0.2.10 22"
			}
			return ""
		}
		s, err := SessionFinder{Root: Root(p.root), PID: 100, Env: env}.FindSSHSession()
		if err != nil || s.Source != "SSH_CONNECTION" || s.Conns[0].Local.String() != "192.0.2.10:22" || s.Conns[0].Peer.String() != "192.0.2.1:51234" {
			t.Errorf("got %+v %v", s, err)
		}
	})
	t.Run("neither", func(t *testing.T) {
		p := chain(t)
		_, err := SessionFinder{Root: Root(p.root), PID: 100, Env: func(string) string { return "" }}.FindSSHSession()
		if err == nil || err.Error() != "no ancestor process holds an established TCP connection, and SSH_CONNECTION is not set" {
			t.Errorf("got %v", err)
		}
	})
	t.Run("a malformed table is an error, not a guess", func(t *testing.T) {
		p := chain(t)
		p.write("proc/70/net/tcp", tcpHeader+"   0: 0A00A8C0:0016 zz:0016 01 0 0 0 0 0 700 1\n")
		_, err := SessionFinder{Root: Root(p.root), PID: 100, Env: func(string) string { return "" }}.FindSSHSession()
		if err == nil || !strings.Contains(err.Error(), `process 70 (sshd:?root@notty): `) || !strings.Contains(err.Error(), `address "zz:0016"`) {
			t.Errorf("got %v", err)
		}
	})
	t.Run("an overlong line is an error", func(t *testing.T) {
		p := chain(t)
		p.write("proc/70/net/tcp", tcpHeader+strings.Repeat("x", 4000)+"\n")
		_, err := SessionFinder{Root: Root(p.root), PID: 100, Env: func(string) string { return "" }}.FindSSHSession()
		if err == nil || !strings.Contains(err.Error(), "token too long") {
			t.Errorf("got %v", err)
		}
	})
	t.Run("a name with parentheses and a loop of parents", func(t *testing.T) {
		p := newProcTree(t)
		p.proc(5, "a) S 7 (x", 6, "1")
		p.proc(6, "b", 5, "1")
		_, err := SessionFinder{Root: Root(p.root), PID: 5, Env: func(string) string { return "" }}.FindSSHSession()
		if err == nil || !strings.Contains(err.Error(), "no ancestor process holds") {
			t.Errorf("got %v", err)
		}
	})
}

func TestParseSSHConnection(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"192.0.2.1 51234 192.0.2.10 22", "192.0.2.10:22 192.0.2.1:51234"},
		{"2001:db8::1 40000 2001:db8::10 2222", "[2001:db8::10]:2222 [2001:db8::1]:40000"},
		{"fe80::1%eth0 40000 fe80::2%eth0 22", "[fe80::2]:22 [fe80::1]:40000"},
		{"192.0.2.1 51234 192.0.2.10", "error"},
		{"192.0.2.1 0 192.0.2.10 22", "error"},
		{"192.0.2.1 x 192.0.2.10 22", "error"},
		{"host 1 192.0.2.10 22", "error"},
	} {
		c2, err := ParseSSHConnection(c.in)
		got := fmt.Sprintf("%s %s", c2.Local, c2.Peer)
		if err != nil {
			got = "error"
		}
		if got != c.want {
			t.Errorf("%q: got %s (%v), want %s", c.in, got, err, c.want)
		}
	}
}

// TestFindSSHSessionHere looks at the real /proc: whatever it finds, it must not fail
// reading it.
func TestFindSSHSessionHere(t *testing.T) {
	s, err := SessionFinder{}.FindSSHSession()
	t.Logf("session: %+v, %v", s, err)
	if err != nil && !strings.Contains(err.Error(), "SSH_CONNECTION") {
		t.Errorf("reading /proc failed: %v", err)
	}
}

// TestFindSSHSessionLoopbackHere follows a real loopback connection through the real
// /proc: a shell holds one end (as sshd would), this test process the other; the finder,
// started from the shell's child, finds the shell's socket, then this process as the
// holder of the peer's end, and, since this process holds no connection that leaves the
// host, says the session cannot be followed.
func TestFindSSHSessionLoopbackHere(t *testing.T) {
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Skipf("no loopback here: %v", err)
	}
	defer ln.Close()
	client, err := net.Dial("tcp4", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	server, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	sf, err := server.(*net.TCPConn).File()
	server.Close()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("sh", "-c", "sleep 60 & echo $!; wait")
	cmd.ExtraFiles = []*os.File{sf}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Skipf("no sh: %v", err)
	}
	sf.Close()
	defer func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	}()
	var child int
	if _, err := fmt.Fscan(out, &child); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = syscall.Kill(child, syscall.SIGKILL) }()
	s, err := SessionFinder{PID: child, Env: func(string) string { return "" }}.FindSSHSession()
	if err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprintf("its peer %s is process %d (", client.LocalAddr(), os.Getpid())
	if !strings.HasPrefix(s.Lost, want) || !strings.HasSuffix(s.Lost, "which holds no connection that leaves this host") ||
		!strings.Contains(s.Source, fmt.Sprintf("process %d (sh)", cmd.Process.Pid)) {
		t.Errorf("got %+v, want Lost to start %q", s, want)
	}
}

// TestFindSSHSessionForwarderNetns: a forwarder on the host, in a network namespace of the
// test's own (unshare -n, which goes with the process): "sshd" (a shell holding the
// accepted end) is reached over 127.0.0.1 by this test's process, which also holds a
// connection over a veth (10.9.0.1 → 10.9.0.2). The finder, on the real /proc, follows the
// loopback peer to the forwarder and takes its veth connection.
func TestFindSSHSessionForwarderNetns(t *testing.T) {
	if os.Getenv("RB_FORWARDER_NETNS") == "1" {
		forwarderInNetns(t)
		return
	}
	if os.Geteuid() != 0 {
		t.Skip("a network namespace needs root")
	}
	unshare, err := exec.LookPath("unshare")
	if err != nil {
		t.Skip("no unshare here")
	}
	cmd := exec.Command(unshare, "-n", os.Args[0], "-test.run=^TestFindSSHSessionForwarderNetns$", "-test.v")
	cmd.Env = append(os.Environ(), "RB_FORWARDER_NETNS=1")
	out, err := cmd.CombinedOutput()
	t.Logf("%s", out)
	if err != nil {
		t.Fatalf("in the namespace: %v", err)
	}
}

func forwarderInNetns(t *testing.T) {
	for _, c := range []string{"link set lo up", "link add rbf0 type veth peer name rbf1", "addr add 10.9.0.1/24 dev rbf0",
		"addr add 10.9.0.2/24 dev rbf1", "link set rbf0 up", "link set rbf1 up"} {
		if out, err := exec.Command("ip", strings.Fields(c)...).CombinedOutput(); err != nil {
			t.Fatalf("ip %s: %v %s", c, err, out)
		}
	}
	sshd, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	up, err := net.Listen("tcp4", "10.9.0.2:0")
	if err != nil {
		t.Fatal(err)
	}
	client, err := net.Dial("tcp4", sshd.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	server, err := sshd.Accept()
	if err != nil {
		t.Fatal(err)
	}
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("10.9.0.1")}}
	out, err := d.Dial("tcp4", up.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	sf, err := server.(*net.TCPConn).File()
	server.Close()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("sh", "-c", "sleep 60 & echo $!; wait")
	cmd.ExtraFiles = []*os.File{sf}
	pipe, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	sf.Close()
	defer func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	}()
	var child int
	if _, err := fmt.Fscan(pipe, &child); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = syscall.Kill(child, syscall.SIGKILL) }()
	s, err := SessionFinder{PID: child, Env: func(string) string { return "" }}.FindSSHSession()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("session: %+v", s)
	veth := SessionConn{Local: netip.MustParseAddrPort(out.LocalAddr().String()), Peer: netip.MustParseAddrPort(out.RemoteAddr().String())}
	if s.Lost != "" || !slices.Contains(s.Conns, veth) ||
		!strings.Contains(s.Source, fmt.Sprintf("; its peer %s is process %d (", client.LocalAddr(), os.Getpid())) {
		t.Errorf("got %+v, want the forwarder's connection %v", s, veth)
	}
}
