package transport

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// chunkReader returns one chunk per Read, then io.EOF; with block set it then waits until
// closed instead (a host that goes quiet).
type chunkReader struct {
	chunks [][]byte
	block  bool
	closed chan struct{}
	once   sync.Once
}

func (r *chunkReader) Read(b []byte) (int, error) {
	if len(r.chunks) == 0 {
		if r.block {
			<-r.closed
		}
		return 0, io.EOF
	}
	n := copy(b, r.chunks[0])
	if n < len(r.chunks[0]) {
		r.chunks[0] = r.chunks[0][n:]
	} else {
		r.chunks = r.chunks[1:]
	}
	return n, nil
}

func (r *chunkReader) close() { r.once.Do(func() { close(r.closed) }) }

func TestTTYHandshake(t *testing.T) {
	const secret = "s3cr3t pw"
	su, err := newTTYBecome(Become{Method: "su", Password: secret}, "true")
	if err != nil {
		t.Fatal(err)
	}
	ready, start := string(su.ready)+"\n", string(su.marker)+"\n"
	flood := strings.Repeat("x", 300<<10)
	tests := []struct {
		name     string
		method   string // default su
		password *string
		chunks   []string
		block    bool
		wantSent int    // passwords written
		wantRest string // bytes after the start marker
		wantErr  string
		wantIs   error
	}{
		{name: "prompt", chunks: []string{"motd\n" + ready, "Password: ", start + "out"}, wantSent: 1, wantRest: "out"},
		{name: "no prompt (trusted by PAM)", chunks: []string{ready + start}, wantRest: ""},
		{name: "doas prompt", method: "doas", chunks: []string{ready, "doas (rbsu@lab01) password: ", start}, wantSent: 1},
		{name: "prompt split across reads", chunks: []string{ready + "Pass", "word", ": ", "\n" + start[:5], start[5:] + "x"}, wantSent: 1, wantRest: "x"},
		{name: "ready marker split", chunks: []string{ready[:7], ready[7:] + "Password:", start}, wantSent: 1},
		// a login shell's startup file turned onlcr back on: the marker lines end in \r\n
		{name: "ready marker with CRLF", chunks: []string{strings.TrimSuffix(ready, "\n") + "\r\n" + "Password: ", start + "out"}, wantSent: 1, wantRest: "out"},
		{name: "CRLF split after the CR", chunks: []string{strings.TrimSuffix(ready, "\n") + "\r", "\nPassword: ", strings.TrimSuffix(start, "\n") + "\r", "\nout"}, wantSent: 1, wantRest: "out"},
		{name: "a prompt before the ready marker is not answered", chunks: []string{"Password: ", ready + "Password: ", start}, wantSent: 1},
		{name: "a start marker before the ready marker does not count", chunks: []string{start + ready, "Password: ", start + "r"}, wantSent: 1, wantRest: "r"},
		{name: "not the last thing printed: no prompt", chunks: []string{ready + "Password: and more"},
			wantErr: "su on h did not run the command (exit 7): Password: and more"},
		{name: "wrong password (su)", chunks: []string{ready + "Password: ", "\n", "su: Authentication failure\n"}, wantSent: 1,
			wantErr: "become password rejected by su on h (for user root)", wantIs: ErrBecomePassword},
		{name: "wrong password (doas)", method: "doas", chunks: []string{ready + "doas (u@h) password: ", "\ndoas: Authentication failed\n"}, block: true, wantSent: 1,
			wantErr: "become password rejected by doas on h (for user root)", wantIs: ErrBecomePassword},
		{name: "failure split across reads", chunks: []string{ready + "Password: ", "su: Authenti", "cation failure"}, block: true, wantSent: 1, wantIs: ErrBecomePassword},
		{name: "a second prompt is not answered", chunks: []string{ready + "Password: ", secret + "\nCurrent password: "}, wantSent: 1,
			wantErr: "su on h asked for a password again after it was sent (rejected, or expired): Password: ********\nCurrent password:"},
		{name: "a failure before any prompt is no password error", chunks: []string{ready + "su: Authentication failure\n"},
			wantErr: "su on h did not run the command (exit 7): su: Authentication failure"},
		{name: "no password set", password: new(string), chunks: []string{ready + "Password: "}, wantErr: "su on h asks for a password and no become password is set"},
		{name: "nothing after the ready marker", chunks: []string{ready}, block: true, wantErr: "su on h: neither a password prompt nor the command's start within 100ms"},
		{name: "another kind of prompt", chunks: []string{ready + "Verification code: "}, block: true,
			wantErr: "su on h: neither a password prompt nor the command's start within 100ms; it printed: Verification code:"},
		{name: "nothing after the password", chunks: []string{ready + "Password: "}, block: true, wantSent: 1, wantErr: "su on h: no command start after the password within 100ms; it printed: Password:"},
		{name: "flood", chunks: []string{flood, ready}, wantErr: "su on h wrote more than 256 KiB without starting the command"},
		{name: "flood after the prompt", chunks: []string{ready + "Password: ", flood}, wantSent: 1, wantErr: "wrote more than 256 KiB"},
		{name: "password echoed back is not shown", chunks: []string{ready + "Password: ", secret + "\nsu: something else\n"}, wantSent: 1,
			wantErr: "su on h did not run the command (exit 7): Password: ********\nsu: something else"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := Become{Method: cmpOr(tt.method, "su"), Password: secret}
			if tt.password != nil {
				b.Password = *tt.password
			}
			tb, err := newTTYBecome(b, "true")
			if err != nil {
				t.Fatal(err)
			}
			// The markers of this table's su, so the chunks can name them.
			tb.ready, tb.marker = su.ready, su.marker
			r := &chunkReader{block: tt.block, closed: make(chan struct{})}
			for _, c := range tt.chunks {
				r.chunks = append(r.chunks, []byte(c))
			}
			var w bytes.Buffer
			closed := false
			rest, err := tb.handshake(context.Background(), r, &w, "h", 100*time.Millisecond,
				func() { closed = true; r.close() }, func() int { return 7 })
			r.close()
			if got := strings.Count(w.String(), secret+"\n"); got != tt.wantSent || w.Len() != got*len(secret+"\n") {
				t.Errorf("wrote %q; want the password %d times", w.String(), tt.wantSent)
			}
			if tt.wantErr != "" || tt.wantIs != nil {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v; want %q", err, tt.wantErr)
				}
				if tt.wantIs != nil && !errors.Is(err, tt.wantIs) {
					t.Errorf("err = %v; want errors.Is %v", err, tt.wantIs)
				}
				if strings.Contains(err.Error(), secret) {
					t.Errorf("the error shows the password: %v", err)
				}
				if tt.block && strings.Contains(tt.wantErr, "within") && !closed {
					t.Errorf("the session was not closed on timeout")
				}
				return
			}
			if err != nil || string(rest) != tt.wantRest {
				t.Fatalf("rest %q, err %v; want %q", rest, err, tt.wantRest)
			}
		})
	}
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

func TestNewTTYBecomeRefuses(t *testing.T) {
	tests := []struct {
		b       Become
		wantErr string
	}{
		{Become{Method: "su", Password: "a\nb"}, `the become password contains a line break ('\n'), which su would take as its end`},
		{Become{Method: "doas", Password: "ab\r"}, `the become password contains a line break ('\r'), which doas would take as its end`},
		{Become{Method: "su", Password: "a\x03b"}, "the become password contains a control character (byte 3), which the terminal su reads it from would act on"},
		{Become{Method: "su", Password: "a\x7f"}, "control character (byte 127)"},
		{Become{Method: "su", Password: "\x00"}, "control character (byte 0)"},
		{Become{Method: "su", User: "-c", Password: "x"}, `become user "-c" is not a user name su accepts`},
		{Become{Method: "doas", User: "root;id", Password: "x"}, `become user "root;id" is not a user name doas accepts`},
		{Become{Method: "su", User: "", Password: "only-on-stdin"}, ""},
		{Become{Method: "su", User: "www-data", Password: "pässwort with spaces 'q' $x"}, ""},
		{Become{Method: "doas", User: "machine$", Password: "\ttab"}, "control character (byte 9)"},
	}
	for _, tt := range tests {
		tb, err := newTTYBecome(tt.b, "true")
		if tt.wantErr == "" {
			if err != nil {
				t.Errorf("%q: %v", tt.b.User, err)
			} else if strings.Contains(tb.command, tt.b.Password) {
				t.Errorf("the password is on the command line: %s", tb.command)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
			t.Errorf("%q %q: err = %v; want %q", tt.b.User, tt.b.Password, err, tt.wantErr)
		}
		if err != nil && tt.b.Password != "x" && strings.Contains(err.Error(), tt.b.Password) {
			t.Errorf("the error shows the password: %v", err)
		}
	}
}

func TestDemux(t *testing.T) {
	const end = "\x1erunbook-end-0123\x1e"
	tests := []struct {
		name       string
		chunks     []string
		wantOut    string
		wantErr    string
		stderrSize int
	}{
		{name: "whole", chunks: []string{"out\n" + end + "err\n"}, wantOut: "out\n", wantErr: "err\n"},
		{name: "marker split everywhere", chunks: []string{"out\x1e", "\x1erunbook", "-end-01", "23\x1ee", "rr"}, wantOut: "out\x1e", wantErr: "err"},
		{name: "near miss is data", chunks: []string{"a\x1erunbook-end-0124\x1e", "b" + end}, wantOut: "a\x1erunbook-end-0124\x1eb"},
		{name: "no end marker (killed)", chunks: []string{"out", "\x1erunb"}, wantOut: "out\x1erunb"},
		{name: "stderr bounded", chunks: []string{end, strings.Repeat("e", 100<<10)}, wantErr: strings.Repeat("e", 64<<10)},
		{name: "binary", chunks: []string{"\x00\xff\r\n\x1e\x04", "\x03" + end}, wantOut: "\x00\xff\r\n\x1e\x04\x03"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := &chunkReader{closed: make(chan struct{})}
			for _, c := range tt.chunks {
				r.chunks = append(r.chunks, []byte(c))
			}
			pr, pw := io.Pipe()
			errp := newBoundedPipe(maxPtyStderr)
			go demux(r, []byte(end), pw, errp)
			out, _ := io.ReadAll(pr)
			errb, _ := io.ReadAll(errp)
			if string(out) != tt.wantOut || string(errb) != tt.wantErr {
				t.Errorf("stdout %q stderr %q; want %q %q", out, trunc(errb), tt.wantOut, trunc([]byte(tt.wantErr)))
			}
		})
	}
}

func trunc(b []byte) string {
	if len(b) > 40 {
		return string(b[:40]) + "…"
	}
	return string(b)
}

// A protocol line reaches the reader at once: the demultiplexer holds back only bytes that
// may begin the end marker, and a line's end cannot.
func TestDemuxStreams(t *testing.T) {
	const end = "\x1erunbook-end-0123\x1e"
	hr, hw := io.Pipe()
	pr, pw := io.Pipe()
	errp := newBoundedPipe(maxPtyStderr)
	go demux(hr, []byte(end), pw, errp)
	go func() { _, _ = hw.Write([]byte(`{"id":1}` + "\n")) }() // and then nothing more
	got := make(chan string, 1)
	go func() {
		b := make([]byte, 64)
		n, _ := pr.Read(b)
		got <- string(b[:n])
	}()
	select {
	case s := <-got:
		if s != `{"id":1}`+"\n" {
			t.Errorf("read %q", s)
		}
	case <-time.After(2 * time.Second):
		t.Error("a whole line is held back")
	}
	hw.Close()
}

func TestCheckBecomeMethod(t *testing.T) {
	for _, m := range []string{"sudo", "su", "doas"} {
		if err := CheckBecomeMethod(m); err != nil {
			t.Errorf("%s: %v", m, err)
		}
	}
	for _, m := range []string{"pbrun", "pfexec", "dzdo", "ksu", "machinectl", "runas", "pmrun", "sesu", "enable"} {
		want := `become method "` + m + `" is not supported (runbook supports sudo, su and doas)`
		if err := CheckBecomeMethod(m); err == nil || err.Error() != want {
			t.Errorf("%s: %v; want %q", m, err, want)
		}
	}
	for _, m := range []string{"", "SUDO", "su ", "sudo -i"} {
		if err := CheckBecomeMethod(m); err == nil || !strings.Contains(err.Error(), "unknown become method") {
			t.Errorf("%q: %v; want unknown", m, err)
		}
	}
}

// The command under su sees the login's LC_ALL (su itself runs with LC_ALL=C, so that its
// messages can be read), or none if the login had none. The wrapper runs here with
// stand-ins for su (which runs its -c string, the last argument) and stty (the terminal modes do not matter).
func TestTTYBecomeKeepsLCALL(t *testing.T) {
	bin := t.TempDir()
	for name, body := range map[string]string{"su": "#!/bin/sh\nfor a; do c=$a; done\nexec /bin/sh -c \"$c\"\n", "stty": "#!/bin/sh\nexit 0\n"} {
		if err := os.WriteFile(filepath.Join(bin, name), []byte(body), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	tb, err := newTTYBecome(Become{Method: "su"}, `printf 'LC_ALL=%s' "${LC_ALL-(unset)}"`)
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct{ env, want string }{
		{"LC_ALL=de_DE.UTF-8", "LC_ALL=de_DE.UTF-8"},
		{"LC_ALL=", "LC_ALL="},
		{"", "LC_ALL=(unset)"},
	} {
		cmd := exec.Command("/bin/sh", "-c", tb.command)
		cmd.Env = []string{"PATH=" + bin + ":/usr/bin:/bin"}
		if tt.env != "" {
			cmd.Env = append(cmd.Env, tt.env)
		}
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("%s: %v: %q", tt.env, err, out)
		}
		_, after, _ := bytes.Cut(out, append(append([]byte(nil), tb.marker...), '\n'))
		got, _, _ := bytes.Cut(after, tb.end)
		if string(got) != tt.want {
			t.Errorf("with %q the command saw %q; want %q", tt.env, got, tt.want)
		}
	}
}
