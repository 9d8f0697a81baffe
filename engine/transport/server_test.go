package transport

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/binary"
	"encoding/pem"
	"errors"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"

	"github.com/pkg/sftp"
	"golang.org/x/crypto/ssh"
)

// testServer is an in-process SSH server on 127.0.0.1 that runs exec
// requests with /bin/sh on this machine, for transport edge cases.
type testServer struct {
	Addr    string
	Port    int
	HostKey ssh.Signer
	// ClientKeyFile is a private key the server accepts (user "tester").
	ClientKeyFile string
	// BinDir is put first on the PATH of commands (the fake sudo lives there).
	BinDir string

	ln     net.Listener
	wg     sync.WaitGroup
	mu     sync.Mutex
	conns  []net.Conn
	freeze atomic.Bool // stop answering anything, as a dead peer would
	Execs  atomic.Int32
	// Forwards counts the direct-tcpip channels served (as a jump host), Keepalives the
	// keepalive requests answered.
	Forwards   atomic.Int32
	Keepalives atomic.Int32
	cmdMu      sync.Mutex
	cmds       []string // every exec'd command line
	authKey    ssh.PublicKey
	// UserCA, set before dialling, makes the server accept only user certificates it
	// signed (for user "tester"), no plain key.
	UserCA ssh.PublicKey
	// SFTP, when set, serves the sftp subsystem (on the machine's own files).
	SFTP atomic.Bool
}

func newKey(t testing.TB) (ssh.Signer, []byte) {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	s, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	blk, err := ssh.MarshalPrivateKey(priv, "")
	if err != nil {
		t.Fatal(err)
	}
	return s, pem.EncodeToMemory(blk)
}

func startTestServer(t testing.TB) *testServer {
	t.Helper()
	dir := t.TempDir()
	hk, _ := newKey(t)
	ck, ckPEM := newKey(t)
	keyFile := filepath.Join(dir, "id_ed25519")
	if err := os.WriteFile(keyFile, ckPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "bin")
	if err := os.Mkdir(bin, 0o755); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &testServer{Addr: "127.0.0.1", Port: ln.Addr().(*net.TCPAddr).Port, HostKey: hk,
		ClientKeyFile: keyFile, BinDir: bin, ln: ln, authKey: ck.PublicKey()}
	cfg := &ssh.ServerConfig{
		PublicKeyCallback: func(md ssh.ConnMetadata, k ssh.PublicKey) (*ssh.Permissions, error) {
			if s.UserCA != nil {
				cc := ssh.CertChecker{IsUserAuthority: func(a ssh.PublicKey) bool { return string(a.Marshal()) == string(s.UserCA.Marshal()) }}
				return cc.Authenticate(md, k)
			}
			if md.User() == "tester" && string(k.Marshal()) == string(s.authKey.Marshal()) {
				return nil, nil
			}
			return nil, errors.New("key not authorized")
		},
	}
	cfg.AddHostKey(hk)
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s.mu.Lock()
			s.conns = append(s.conns, c)
			s.mu.Unlock()
			s.wg.Add(1)
			go func() {
				defer s.wg.Done()
				s.serve(&freezable{Conn: c, frozen: &s.freeze}, cfg)
			}()
		}
	}()
	t.Cleanup(s.Close)
	return s
}

func (s *testServer) Close() {
	s.ln.Close()
	s.freeze.Store(false)
	s.mu.Lock()
	for _, c := range s.conns {
		c.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
}

// Target is a target for this server with strict checking against a
// known_hosts file that has its key.
func (s *testServer) Target(t testing.TB) Target {
	kh := filepath.Join(t.TempDir(), "known_hosts")
	line := "[127.0.0.1]:" + strconv.Itoa(s.Port) + " " + string(ssh.MarshalAuthorizedKey(s.HostKey.PublicKey()))
	if err := os.WriteFile(kh, []byte(line), 0o600); err != nil {
		t.Fatal(err)
	}
	return Target{Name: "test", Address: s.Addr, Port: s.Port, User: "tester", IdentityFile: s.ClientKeyFile,
		IdentitiesOnly: true, KnownHostsFiles: []string{kh}, StrictHostKeyChecking: "yes", IdentityAgent: "none"}
}

// freezable stops reading and writing while frozen: a peer that vanished.
type freezable struct {
	net.Conn
	frozen *atomic.Bool
}

func (f *freezable) Read(b []byte) (int, error) {
	n, err := f.Conn.Read(b)
	for f.frozen.Load() {
		// Swallow: a dead peer neither answers nor acknowledges.
		n, err = f.Conn.Read(b)
		if err != nil {
			return 0, err
		}
	}
	return n, err
}

func (s *testServer) serve(c net.Conn, cfg *ssh.ServerConfig) {
	sc, chans, reqs, err := ssh.NewServerConn(c, cfg)
	if err != nil {
		c.Close()
		return
	}
	defer sc.Close()
	go func() {
		for r := range reqs {
			if r.Type == "keepalive@openssh.com" {
				s.Keepalives.Add(1)
			}
			if r.WantReply {
				_ = r.Reply(r.Type == "keepalive@openssh.com", nil)
			}
		}
	}()
	for nc := range chans {
		if nc.ChannelType() == "direct-tcpip" {
			go s.forward(nc)
			continue
		}
		if nc.ChannelType() != "session" {
			_ = nc.Reject(ssh.UnknownChannelType, "only sessions")
			continue
		}
		ch, creqs, err := nc.Accept()
		if err != nil {
			continue
		}
		go s.session(ch, creqs)
	}
}

func (s *testServer) session(ch ssh.Channel, reqs <-chan *ssh.Request) {
	defer ch.Close()
	var cmd *exec.Cmd
	done := make(chan struct{})
	for r := range reqs {
		switch r.Type {
		case "subsystem":
			var p struct{ Name string }
			if err := ssh.Unmarshal(r.Payload, &p); err != nil || p.Name != "sftp" || !s.SFTP.Load() || cmd != nil {
				_ = r.Reply(false, nil)
				continue
			}
			_ = r.Reply(true, nil)
			srv, err := sftp.NewServer(ch)
			if err != nil {
				return
			}
			go func() { _ = srv.Serve(); ch.Close() }()
		case "exec":
			if cmd != nil {
				_ = r.Reply(false, nil)
				continue
			}
			var p struct{ Command string }
			if err := ssh.Unmarshal(r.Payload, &p); err != nil {
				_ = r.Reply(false, nil)
				continue
			}
			s.Execs.Add(1)
			s.cmdMu.Lock()
			s.cmds = append(s.cmds, p.Command)
			s.cmdMu.Unlock()
			cmd = exec.Command("/bin/sh", "-c", p.Command)
			cmd.Env = append(os.Environ(), "PATH="+s.BinDir+":"+os.Getenv("PATH"))
			cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
			stdin, _ := cmd.StdinPipe()
			cmd.Stdout, cmd.Stderr = ch, ch.Stderr()
			if err := cmd.Start(); err != nil {
				_ = r.Reply(false, nil)
				return
			}
			_ = r.Reply(true, nil)
			go func() { _, _ = io.Copy(stdin, ch); stdin.Close() }()
			go func() {
				err := cmd.Wait()
				status := uint32(0)
				var ee *exec.ExitError
				if errors.As(err, &ee) {
					if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
						status = 128 + uint32(ws.Signal())
					} else {
						status = uint32(ee.ExitCode())
					}
				}
				b := make([]byte, 4)
				binary.BigEndian.PutUint32(b, status)
				_, _ = ch.SendRequest("exit-status", false, b)
				close(done)
				ch.Close()
			}()
		case "signal":
			var p struct{ Signal string }
			if err := ssh.Unmarshal(r.Payload, &p); err == nil && cmd != nil && p.Signal == "KILL" {
				_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			}
			if r.WantReply {
				_ = r.Reply(true, nil)
			}
		default:
			if r.WantReply {
				_ = r.Reply(r.Type == "env", nil)
			}
		}
	}
	// Channel closed by the client: end the command as sshd would (its
	// pipes close; we kill to keep tests tidy).
	if cmd != nil {
		select {
		case <-done:
		default:
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-done
		}
	}
}

// forward serves a direct-tcpip channel (a client using this server as its jump host),
// to loopback addresses only.
func (s *testServer) forward(nc ssh.NewChannel) {
	var p struct {
		Host     string
		Port     uint32
		OrigHost string
		OrigPort uint32
	}
	if err := ssh.Unmarshal(nc.ExtraData(), &p); err != nil || p.Host != "127.0.0.1" {
		_ = nc.Reject(ssh.Prohibited, "loopback only")
		return
	}
	c, err := net.Dial("tcp", net.JoinHostPort(p.Host, strconv.Itoa(int(p.Port))))
	if err != nil {
		_ = nc.Reject(ssh.ConnectionFailed, err.Error())
		return
	}
	ch, reqs, err := nc.Accept()
	if err != nil {
		c.Close()
		return
	}
	s.Forwards.Add(1)
	go ssh.DiscardRequests(reqs)
	go func() { _, _ = io.Copy(c, ch); c.(*net.TCPConn).CloseWrite() }()
	_, _ = io.Copy(ch, c)
	ch.Close()
	c.Close()
}

// Accepted is the number of TCP connections the server has accepted.
func (s *testServer) Accepted() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.conns)
}

// DropConnections closes every connection the server has accepted so far, as a restarted
// host would.
func (s *testServer) DropConnections() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, c := range s.conns {
		c.Close()
	}
}

func (s *testServer) Commands() []string {
	s.cmdMu.Lock()
	defer s.cmdMu.Unlock()
	return append([]string(nil), s.cmds...)
}
