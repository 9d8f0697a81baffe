package transport

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// fakeSudo behaves like `sudo -S` with SUDO_PROMPT (or -p PROMPT): it prompts on
// stderr, reads a password line from stdin, says "Sorry, try again." up to three times,
// then runs the command. Its password is in sudo.password next to it (empty: NOPASSWD;
// HANG: never prompts). A mode in sudo.mode changes how it prompts: "flood" writes 20 MB
// to stderr first, "split" writes the prompt in two parts a moment apart.
const fakeSudo = `#!/bin/sh
prompt=${SUDO_PROMPT:-Password:}
mode=$(cat "$(dirname "$0")/sudo.mode" 2>/dev/null)
while [ $# -gt 0 ]; do
  case "$1" in
    -p) prompt=$2; shift 2;;
    -u) shift 2;;
    -H|-S) shift;;
    --) shift; break;;
    *) break;;
  esac
done
want=$(cat "$(dirname "$0")/sudo.password")
if [ "$want" = HANG ]; then exec sleep 30; fi
if [ -n "$want" ]; then
  n=0
  [ "$mode" = flood ] && head -c 20000000 /dev/zero | tr '\0' x >&2
  while :; do
    if [ "$mode" = split ]; then
      head=${prompt%??????}
      printf '%s' "$head" >&2; sleep 0.2; printf '%s' "${prompt#"$head"}" >&2
    else
      printf '%s' "$prompt" >&2
    fi
    IFS= read -r pw || { echo "sudo: no password was provided" >&2; exit 1; }
    [ "$pw" = "$want" ] && break
    n=$((n+1))
    if [ $n -ge 3 ]; then echo "sudo: 3 incorrect password attempts" >&2; exit 1; fi
    echo "Sorry, try again." >&2
  done
fi
exec "$@"
`

func TestBecomeSudo(t *testing.T) {
	srv := startTestServer(t)
	if err := os.WriteFile(filepath.Join(srv.BinDir, "sudo"), []byte(fakeSudo), 0o755); err != nil {
		t.Fatal(err)
	}
	c := dial(t, &Dialer{}, srv.Target(t))
	const secret = "s3cr3t 'quoted' $x"
	tests := []struct {
		name       string
		sudoPW     string // what the fake sudo wants
		mode       string // how it prompts (fakeSudo)
		become     Become
		wantOut    string
		wantErr    string
		wantErrIs  error
		maxLatency time.Duration
	}{
		{name: "password", sudoPW: secret, become: Become{Method: "sudo", Password: secret}, wantOut: "input\n"},
		{name: "nopasswd", sudoPW: "", become: Become{Method: "sudo"}, wantOut: "input\n"},
		{name: "nopasswd with a password set", sudoPW: "", become: Become{Method: "sudo", Password: secret}, wantOut: "input\n"},
		{name: "wrong password", sudoPW: "other", become: Become{Method: "sudo", Password: secret},
			wantErr: "become password rejected by sudo on test", wantErrIs: ErrBecomePassword},
		{name: "no password set", sudoPW: "other", become: Become{Method: "sudo"}, wantErr: "asks for a password and no become password is set"},
		{name: "prompt timeout", sudoPW: "HANG", become: Become{Method: "sudo", Password: secret, PromptTimeout: 300 * time.Millisecond},
			wantErr: "no its password prompt or the command's start within 300ms", maxLatency: 2 * time.Second},
		{name: "prompt split across reads", sudoPW: secret, mode: "split", become: Become{Method: "sudo", Password: secret}, wantOut: "input\n"},
		{name: "20 MB before the prompt", sudoPW: secret, mode: "flood", become: Become{Method: "sudo", Password: secret},
			wantErr: "wrote more than 256 KiB to stderr without starting the command", maxLatency: 5 * time.Second},
		{name: "pbrun", become: Become{Method: "pbrun", Password: secret}, wantErr: `become method "pbrun" is not supported (runbook supports sudo, su and doas)`},
		{name: "unknown", become: Become{Method: "sudoo", Password: secret}, wantErr: `unknown become method "sudoo" (want sudo, su or doas)`},
		// su needs a terminal; a server that refuses one says so.
		{name: "su without a terminal", become: Become{Method: "su", Password: secret}, wantErr: `su on test: request a terminal`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := os.WriteFile(filepath.Join(srv.BinDir, "sudo.password"), []byte(tt.sudoPW), 0o600); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(srv.BinDir, "sudo.mode"), []byte(tt.mode), 0o600); err != nil {
				t.Fatal(err)
			}
			var out, errb bytes.Buffer
			start := time.Now()
			code, err := c.RunAs(context.Background(), tt.become, "cat; echo done >&2", strings.NewReader("input\n"), &out, &errb)
			if tt.maxLatency > 0 && time.Since(start) > tt.maxLatency {
				t.Errorf("took %s", time.Since(start))
			}
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v; want %q", err, tt.wantErr)
				}
				if tt.wantErrIs != nil && !errors.Is(err, tt.wantErrIs) {
					t.Errorf("err = %v; want errors.Is %v", err, tt.wantErrIs)
				}
				if strings.Contains(err.Error(), secret) {
					t.Errorf("error shows the password: %v", err)
				}
				if IsUnreachable(err) {
					t.Errorf("a become failure is a task failure, not unreachable: %v", err)
				}
				return
			}
			if err != nil || code != 0 {
				t.Fatalf("RunAs = %d, %v (stderr %q)", code, err, errb.String())
			}
			if out.String() != tt.wantOut || errb.String() != "done\n" {
				t.Errorf("stdout %q stderr %q; want %q and %q", out.String(), errb.String(), tt.wantOut, "done\n")
			}
		})
	}
	for _, cmd := range srv.Commands() {
		if strings.Contains(cmd, "s3cr3t") {
			t.Errorf("password on a command line: %q", cmd)
		}
		// The prompt travels on stdin only: a local user who reads the process list cannot
		// print a prompt the controller would answer.
		if strings.Contains(cmd, "runbook-sudo-") || strings.Contains(cmd, " -p ") {
			t.Errorf("sudo's prompt on a command line: %q", cmd)
		}
	}
	// The connection survives all of the above.
	if code, err := c.Run(context.Background(), "true", nil, nil, nil); err != nil || code != 0 {
		t.Errorf("run afterwards: %d %v", code, err)
	}
}

// A become password with a line break is refused before anything reaches the host: sudo
// would take the part before the break and pass the rest to the command's stdin.
func TestBecomePasswordLineBreak(t *testing.T) {
	srv := startTestServer(t)
	if err := os.WriteFile(filepath.Join(srv.BinDir, "sudo"), []byte(fakeSudo), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(srv.BinDir, "sudo.password"), []byte("first"), 0o600); err != nil {
		t.Fatal(err)
	}
	c := dial(t, &Dialer{}, srv.Target(t))
	for _, pw := range []string{"first\nrm -rf /tmp/x", "first\r", "\nsecond"} {
		before := srv.Execs.Load()
		var out bytes.Buffer
		_, err := c.RunAs(context.Background(), Become{Method: "sudo", Password: pw}, "cat", strings.NewReader("input\n"), &out, nil)
		if err == nil || !strings.Contains(err.Error(), "test: the become password contains a line break") {
			t.Errorf("%q: err = %v; want a refusal naming the host", pw, err)
		}
		if err != nil && (strings.Contains(err.Error(), "first") || strings.Contains(err.Error(), "second")) {
			t.Errorf("the error shows the password: %v", err)
		}
		if n := srv.Execs.Load(); n != before {
			t.Errorf("%q: %d commands ran", pw, n-before)
		}
	}
}

// The prompt timer may fire while the handshake is about to answer a prompt; answering
// re-arms it, and its second firing must not close the timeout channel again (a panic that
// would take the whole controller down).
func TestBecomeTimerFiresTwice(t *testing.T) {
	srv := startTestServer(t)
	c := dial(t, &Dialer{}, srv.Target(t))
	sess, err := c.client.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	defer sess.Close()
	bc, err := newBecome(Become{Method: "sudo", Password: "pw"}, "true")
	if err != nil {
		t.Fatal(err)
	}
	const timeout = 50 * time.Millisecond
	// stderr gives sudo's prompt only after the timer has fired, then nothing until it has
	// fired again.
	stderr := &slowReader{delay: 3 * timeout, chunks: [][]byte{bc.prompt}}
	s := &Session{Stdin: nopWriteCloser{}, Stderr: stderr, s: sess, c: c}
	err = bc.handshake(context.Background(), s, "test", timeout)
	if err == nil || !strings.Contains(err.Error(), "no the command's start after the password within 50ms") {
		t.Errorf("err = %v; want a timeout after the password", err)
	}
	time.Sleep(2 * timeout) // a late third firing, had there been one
}

// slowReader returns each chunk after delay, then io.EOF after delay.
type slowReader struct {
	delay  time.Duration
	chunks [][]byte
}

func (r *slowReader) Read(b []byte) (int, error) {
	time.Sleep(r.delay)
	if len(r.chunks) == 0 {
		return 0, io.EOF
	}
	n := copy(b, r.chunks[0])
	r.chunks = r.chunks[1:]
	return n, nil
}

type nopWriteCloser struct{}

func (nopWriteCloser) Write(b []byte) (int, error) { return len(b), nil }
func (nopWriteCloser) Close() error                { return nil }
