package testenv

import (
	"bufio"
	"context"
	"encoding/json"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// fakeQMP serves one QMP connection on a Unix socket: it sends greeting, then answers each
// command with answer(command) (lines, sent as they are), and records the commands.
func fakeQMP(t *testing.T, greeting string, answer func(cmd string) []string) (sock string, got func() []string) {
	t.Helper()
	sock = filepath.Join(t.TempDir(), "qmp.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	cmds := make(chan []string, 1)
	go func() {
		var seen []string
		defer func() { cmds <- seen }()
		c, err := l.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := c.Write([]byte(greeting + "\n")); err != nil {
			return
		}
		sc := bufio.NewScanner(c)
		for sc.Scan() {
			var m struct{ Execute string }
			if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
				return
			}
			seen = append(seen, m.Execute)
			for _, line := range answer(m.Execute) {
				if _, err := c.Write([]byte(line + "\n")); err != nil {
					return
				}
			}
		}
	}()
	return sock, func() []string {
		select {
		case s := <-cmds:
			return s
		case <-time.After(5 * time.Second):
			return nil
		}
	}
}

const qmpGreeting = `{"QMP": {"version": {"qemu": {"micro": 0, "minor": 2, "major": 7}}, "capabilities": []}}`

func TestVMQMP(t *testing.T) {
	ok := func(string) []string { return []string{`{"return": {}}`} }
	for _, tc := range []struct {
		name     string
		greeting string
		answer   func(cmd string) []string
		cmds     []string
		want     string   // error substring; "" for success
		sent     []string // what QEMU must have been asked
	}{
		{"stop", qmpGreeting, ok, []string{"stop"}, "", []string{"qmp_capabilities", "stop"}},
		{"events before the answer", qmpGreeting, func(cmd string) []string {
			if cmd == "stop" {
				return []string{`{"timestamp": {"seconds": 1, "microseconds": 2}, "event": "STOP"}`, `{"return": {}}`}
			}
			return []string{`{"return": {}}`}
		}, []string{"stop"}, "", []string{"qmp_capabilities", "stop"}},
		{"an error", qmpGreeting, func(cmd string) []string {
			if cmd == "cont" {
				return []string{`{"error": {"class": "GenericError", "desc": "Resetting the Virtual Machine is required"}}`}
			}
			return []string{`{"return": {}}`}
		}, []string{"cont"}, "QMP cont: GenericError: Resetting the Virtual Machine is required", []string{"qmp_capabilities", "cont"}},
		{"not QMP", "SSH-2.0-OpenSSH_9.2", ok, []string{"stop"}, "QMP greeting: not QMP", nil},
		{"an answer that is neither", qmpGreeting, func(string) []string { return []string{`{"id": 1}`} },
			[]string{"stop"}, "QMP qmp_capabilities: an answer with neither return nor error", []string{"qmp_capabilities"}},
		{"a line without end", qmpGreeting, func(string) []string { return []string{strings.Repeat("x", qmpMaxLine+10)} },
			[]string{"stop"}, "longer than 64 KiB", []string{"qmp_capabilities"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sock, sent := fakeQMP(t, tc.greeting, tc.answer)
			err := vmQMP(context.Background(), sock, tc.cmds...)
			if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
				t.Fatalf("vmQMP = %v, want %q", err, tc.want)
			}
			if tc.sent != nil {
				if got := sent(); strings.Join(got, " ") != strings.Join(tc.sent, " ") {
					t.Errorf("QEMU was asked %q, want %q", got, tc.sent)
				}
			}
		})
	}
	// A QEMU that never answers does not hold the caller beyond its context.
	sock, _ := fakeQMP(t, qmpGreeting, func(string) []string { return nil })
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	if err := vmQMP(ctx, sock, "stop"); err == nil || time.Since(start) > 3*time.Second {
		t.Errorf("a silent QEMU: %v after %s", err, time.Since(start))
	}
	if err := vmQMP(context.Background(), "", "stop"); err == nil || !strings.Contains(err.Error(), "no QMP socket") {
		t.Errorf("no socket: %v", err)
	}
}

// TestVMQMPSocket: the socket is in the host's directory, and none is made where its path
// could not be one.
func TestVMQMPSocket(t *testing.T) {
	st := vmTestState(1, "10.201.7.0/24")
	h := st.Hosts[0]
	if got, want := vmQMPSocket(st, h), filepath.Join(st.hostDir(h), "qmp.sock"); got != want {
		t.Errorf("socket %q, want %q", got, want)
	}
	if args := vmQMPArgs(st, h); strings.Join(args, " ") != "-qmp unix:"+vmQMPSocket(st, h)+",server=on,wait=off" {
		t.Errorf("QEMU args %q", args)
	}
	for _, dir := range []string{"/tmp/" + strings.Repeat("d", 100), "/tmp/a,b"} {
		st.Dir = dir
		if s, args := vmQMPSocket(st, h), vmQMPArgs(st, h); s != "" || args != nil {
			t.Errorf("lab dir %q: socket %q, args %q", dir, s, args)
		}
	}
}
