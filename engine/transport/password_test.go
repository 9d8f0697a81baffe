package transport

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
)

// passwordServer accepts one login method: "password", or "keyboard-interactive" asking
// the questions of each round in turn (a round of none is a message only); with
// a "-drop" suffix it drops the first connection once the password was sent, as a host that
// resets it before authentication completes. It records the passwords and the non-empty
// answers it was sent.
func passwordServer(t *testing.T, method string, rounds [][]string) (Target, func() []string) {
	t.Helper()
	hk, _ := newKey(t)
	var (
		mu      sync.Mutex
		got     []string
		conns   = map[string]net.Conn{}
		dropped bool
	)
	record := func(a string) {
		mu.Lock()
		defer mu.Unlock()
		got = append(got, a)
	}
	dropAuth := strings.HasSuffix(method, "-dropauth") // drop at the first login request instead
	method = strings.TrimSuffix(method, "-dropauth")
	drop := dropAuth || strings.HasSuffix(method, "-drop")
	method = strings.TrimSuffix(method, "-drop")
	// dropNow closes the connection the first time it is asked (and says whether it did).
	dropNow := func(md ssh.ConnMetadata) bool {
		mu.Lock()
		defer mu.Unlock()
		c, first := conns[md.RemoteAddr().String()], drop && !dropped
		dropped = dropped || first
		if first {
			c.Close()
		}
		return first
	}
	cfg := &ssh.ServerConfig{}
	const want = "c0rrect h0rse"
	switch method {
	case "password":
		cfg.PasswordCallback = func(md ssh.ConnMetadata, pw []byte) (*ssh.Permissions, error) {
			record(string(pw))
			if dropNow(md) {
				return nil, errors.New("dropped")
			}
			if md.User() == "op" && string(pw) == want {
				return nil, nil
			}
			return nil, errors.New("wrong")
		}
	case "keyboard-interactive":
		cfg.KeyboardInteractiveCallback = func(md ssh.ConnMetadata, ask ssh.KeyboardInteractiveChallenge) (*ssh.Permissions, error) {
			ok := true
			for _, qs := range rounds {
				echos := make([]bool, len(qs))
				ans, err := ask("", "", qs, echos)
				if err != nil {
					return nil, err
				}
				for _, a := range ans {
					if a != "" {
						record(a)
					}
					ok = ok && a == want
				}
			}
			if dropNow(md) {
				return nil, errors.New("dropped")
			}
			if ok && len(rounds) > 0 {
				return nil, nil
			}
			return nil, errors.New("wrong")
		}
	}
	if method == "none" {
		cfg.PublicKeyCallback = func(ssh.ConnMetadata, ssh.PublicKey) (*ssh.Permissions, error) {
			return nil, errors.New("no key is authorized")
		}
	}
	if dropAuth {
		// After the key exchange, at the client's first login request: before any password.
		cfg.BannerCallback = func(md ssh.ConnMetadata) string {
			dropNow(md)
			return ""
		}
	}
	cfg.AddHostKey(hk)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns[c.RemoteAddr().String()] = c
			mu.Unlock()
			go func() {
				defer c.Close()
				sc, chans, reqs, err := ssh.NewServerConn(c, cfg)
				if err != nil {
					return
				}
				defer sc.Close()
				go ssh.DiscardRequests(reqs)
				for nc := range chans {
					_ = nc.Reject(ssh.Prohibited, "no sessions here")
				}
			}()
		}
	}()
	port := ln.Addr().(*net.TCPAddr).Port
	kh := filepath.Join(t.TempDir(), "known_hosts")
	line := "[127.0.0.1]:" + strconv.Itoa(port) + " " + string(ssh.MarshalAuthorizedKey(hk.PublicKey()))
	if err := os.WriteFile(kh, []byte(line), 0o600); err != nil {
		t.Fatal(err)
	}
	return Target{Name: "pw", Address: "127.0.0.1", Port: port, User: "op", IdentitiesOnly: true,
			IdentityFile: filepath.Join(t.TempDir(), "none"), KnownHostsFiles: []string{kh},
			StrictHostKeyChecking: "yes", IdentityAgent: "none"}, func() []string {
			mu.Lock()
			defer mu.Unlock()
			return append([]string(nil), got...)
		}
}

// A target's password logs in with the password method and with keyboard-interactive
// (sshd with PAM), after the keys; a wrong one, or a host that asks for more than the
// password, is an authentication error that says so and never shows the password.
func TestPasswordLogin(t *testing.T) {
	const right, wrong = "c0rrect h0rse", "wr0ng-s3cret"
	tests := []struct {
		name     string
		method   string
		rounds   [][]string
		password string
		strict   string // StrictHostKeyChecking; "": yes
		fresh    bool   // known_hosts starts empty: first contact
		err      string // "" : logged in
		sent     int    // answers the server got
	}{
		{name: "password", method: "password", password: right, sent: 1},
		{name: "password wrong", method: "password", password: wrong, err: "the inventory's password (ansible_password) was refused", sent: 1},
		{name: "no password", method: "password", err: "no usable keys"},
		{name: "kbd", method: "keyboard-interactive", rounds: [][]string{{"Password: "}}, password: right, sent: 1},
		{name: "kbd with a message first", method: "keyboard-interactive", rounds: [][]string{{}, {"Password: "}}, password: right, sent: 1},
		{name: "kbd wrong", method: "keyboard-interactive", rounds: [][]string{{"Password: "}}, password: wrong, err: "was refused", sent: 1},
		{name: "kbd one-time code", method: "keyboard-interactive", rounds: [][]string{{"Password: "}, {"Verification code: "}}, password: right,
			err: "asks for more than the inventory's password", sent: 1},
		{name: "kbd two questions", method: "keyboard-interactive", rounds: [][]string{{"Password: ", "Code: "}}, password: right,
			err: "asks for more than the inventory's password"},
		{name: "publickey only", method: "none", password: right, err: "accepts no password login"},
		// a host whose key is not verified does not get the password
		{name: "host key not checked", method: "password", password: right, strict: "no", err: "was not sent: StrictHostKeyChecking is no"},
		{name: "host key not checked (off)", method: "keyboard-interactive", rounds: [][]string{{"Password: "}}, password: right, strict: "off", err: "was not sent"},
		{name: "accept-new", method: "password", password: right, strict: "accept-new", sent: 1},
		// accept-new's first contact records a key nothing verified: no password goes to it
		{name: "accept-new first contact", method: "password", password: right, strict: "accept-new", fresh: true,
			err: "first contact with the host"},
		// first contact, then a reset before the login: the retry finds the key the first
		// try recorded, which is no verification either
		{name: "accept-new first contact, reset, retry", method: "password-dropauth", password: right, strict: "accept-new", fresh: true,
			err: "first contact with the host"},
		{name: "accept-new first contact kbd", method: "keyboard-interactive", rounds: [][]string{{"Password: "}}, password: right, strict: "accept-new", fresh: true,
			err: "connect once with a key"},
		// a connection reset once the password was sent is not tried again: a second try
		// would be a second login attempt with it (account lockouts)
		{name: "kbd reset after the password", method: "keyboard-interactive-drop", rounds: [][]string{{"Password: "}}, password: right,
			err: "not tried again: the password was already sent", sent: 1},
		{name: "password reset after the password", method: "password-drop", password: right,
			err: "not tried again: the password was already sent", sent: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tg, got := passwordServer(t, tt.method, tt.rounds)
			tg.Password = tt.password
			if tt.strict != "" {
				tg.StrictHostKeyChecking = tt.strict
			}
			if tt.fresh {
				if err := os.WriteFile(tg.KnownHostsFiles[0], nil, 0o600); err != nil {
					t.Fatal(err)
				}
			}
			d := &Dialer{ConnectTimeout: 10 * time.Second}
			c, err := d.Dial(context.Background(), tg)
			if c != nil {
				c.Close()
			}
			switch {
			case tt.err == "" && err != nil:
				t.Fatalf("Dial: %v", err)
			case tt.err != "" && (err == nil || !strings.Contains(err.Error(), tt.err)):
				t.Fatalf("Dial: %v, want an error with %q", err, tt.err)
			}
			if err != nil {
				var ae *AuthError
				if !IsUnreachable(err) || (!errors.As(err, &ae) && !strings.HasSuffix(tt.method, "-drop")) {
					t.Errorf("%T is not an unreachable *AuthError", err)
				}
				if s := fmt.Sprintf("%v %+v %#v", err, err, err); strings.Contains(s, "s3cret") || strings.Contains(s, "h0rse") {
					t.Errorf("the error shows the password: %s", s)
				}
			}
			if n := len(got()); n != tt.sent {
				t.Errorf("the server got %d answers, want %d", n, tt.sent)
			}
			if tt.fresh {
				// the key was recorded all the same: the next connection verifies it
				if b, _ := os.ReadFile(tg.KnownHostsFiles[0]); len(b) == 0 {
					t.Error("accept-new did not record the key")
				}
			}
		})
	}
}
