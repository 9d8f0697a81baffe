package transport

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/runbook/runbook/internal/tail"
)

// proxyConn is a ProxyCommand's stdio as a net.Conn.
type proxyConn struct {
	cmd    *exec.Cmd
	r      *os.File // the command's stdout
	w      *os.File // the command's stdin
	stderr *tail.Buffer
	once   sync.Once
}

func startProxyCommand(command string) (net.Conn, error) {
	inR, inW, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	outR, outW, err := os.Pipe()
	if err != nil {
		inR.Close()
		inW.Close()
		return nil, err
	}
	cmd := exec.Command("/bin/sh", "-c", command)
	cmd.Stdin, cmd.Stdout = inR, outW
	errTail := &tail.Buffer{Max: 2048}
	cmd.Stderr = errTail
	// Its own process group, so Close can end the children a shell
	// command line may have started; and a bounded Wait even if one of
	// them keeps stderr open.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.WaitDelay = time.Second
	if err := cmd.Start(); err != nil {
		inR.Close()
		inW.Close()
		outR.Close()
		outW.Close()
		return nil, fmt.Errorf("ProxyCommand: %w", err)
	}
	inR.Close()
	outW.Close()
	return &proxyConn{cmd: cmd, r: outR, w: inW, stderr: errTail}, nil
}

func isProxyConn(c net.Conn) bool {
	_, ok := c.(*proxyConn)
	return ok
}

func (p *proxyConn) Read(b []byte) (int, error)  { return p.r.Read(b) }
func (p *proxyConn) Write(b []byte) (int, error) { return p.w.Write(b) }

func (p *proxyConn) Close() error {
	p.once.Do(func() {
		p.w.Close()
		p.r.Close()
		// Like ssh: hang up the command, and kill it if that is not enough.
		_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGHUP)
		done := make(chan struct{})
		go func() { _ = p.cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(time.Second):
			_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
			<-done
		}
	})
	return nil
}

func (p *proxyConn) LocalAddr() net.Addr  { return proxyAddr{} }
func (p *proxyConn) RemoteAddr() net.Addr { return proxyAddr{} }

func (p *proxyConn) SetDeadline(t time.Time) error {
	if err := p.r.SetDeadline(t); err != nil {
		return err
	}
	return p.w.SetDeadline(t)
}
func (p *proxyConn) SetReadDeadline(t time.Time) error  { return p.r.SetReadDeadline(t) }
func (p *proxyConn) SetWriteDeadline(t time.Time) error { return p.w.SetWriteDeadline(t) }

func (p *proxyConn) stderrTail() string {
	s := strings.TrimSpace(p.stderr.String())
	if s == "" {
		return ""
	}
	return " (ProxyCommand stderr: " + s + ")"
}

type proxyAddr struct{}

func (proxyAddr) Network() string { return "proxycommand" }
func (proxyAddr) String() string  { return "proxycommand:0" } // host:port, as knownhosts parses it
