package transport

import (
	"io"
	"net"
	"os"
	"testing"

	"github.com/runbook/runbook/internal/sh"
)

// TestMain doubles as a ProxyCommand: with RUNBOOK_TEST_PROXY=host:port the
// test binary connects there and copies stdin/stdout to the socket, like
// `nc host port`, so ProxyCommand tests need no nc on the machine.
func TestMain(m *testing.M) {
	if addr := os.Getenv("RUNBOOK_TEST_PROXY"); addr != "" {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			os.Stderr.WriteString("proxy: " + err.Error() + "\n")
			os.Exit(1)
		}
		go func() { _, _ = io.Copy(c, os.Stdin); c.(*net.TCPConn).CloseWrite() }()
		_, _ = io.Copy(os.Stdout, c)
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// proxyCommand returns a ProxyCommand that connects to addr.
func proxyCommand(t testing.TB, addr string) string {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	return "RUNBOOK_TEST_PROXY=" + sh.Quote(addr) + " exec " + sh.Quote(exe)
}
