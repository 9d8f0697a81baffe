//go:build linux

package generic

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/zclconf/go-cty/cty"

	"github.com/runbook/runbook/engine/protocol"
	"github.com/runbook/runbook/modules"
	"github.com/runbook/runbook/modules/moduletest"
)

// listener is a real TCP listener on 127.0.0.1 that accepts and holds connections.
type listener struct {
	ln    net.Listener
	mu    sync.Mutex
	conns []net.Conn
	done  chan struct{}
}

func listen(t *testing.T, addr string) *listener {
	t.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	l := &listener{ln: ln, done: make(chan struct{})}
	go func() {
		defer close(l.done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			l.mu.Lock()
			l.conns = append(l.conns, c)
			l.mu.Unlock()
		}
	}()
	t.Cleanup(l.close)
	return l
}

func (l *listener) port() int { return l.ln.Addr().(*net.TCPAddr).Port }

// close stops listening and closes every connection it accepted.
func (l *listener) close() {
	l.ln.Close()
	<-l.done
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, c := range l.conns {
		c.Close()
	}
	l.conns = nil
}

// freePort is a port nothing listens on (the kernel chose it a moment ago).
func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	return p
}

// after runs f after d in the background; the test waits for it before it ends.
func after(t *testing.T, d time.Duration, f func()) {
	var wg sync.WaitGroup
	wg.Add(1)
	timer := time.AfterFunc(d, func() { defer wg.Done(); f() })
	t.Cleanup(func() {
		if timer.Stop() {
			wg.Done()
		}
		wg.Wait()
	})
}

func num(f float64) cty.Value { return cty.NumberFloatVal(f) }

// TestWaitFor is the table of conditions, each against real listeners on 127.0.0.1 and
// files in a temporary directory that change while the module waits: the status is ok
// and never changed, in check mode too; the time it took is registered; the failures
// name what was waited for and what was seen last.
func TestWaitFor(t *testing.T) {
	type env struct {
		dir  string
		port int
	}
	tests := []struct {
		name  string
		setup func(t *testing.T, e *env) // starts listeners, writes files, schedules changes
		args  func(e env) map[string]cty.Value
		// ctxTimeout, when set, is the task's timeout (the request's deadline).
		ctxTimeout time.Duration
		// wantErr is a substring of the failure, "" for ok.
		wantErr    string
		minElapsed float64
		maxElapsed float64
		wantMsg    string
		wantMatch  *string
		wantGroups []string
	}{
		{name: "port open already",
			setup: func(t *testing.T, e *env) { e.port = listen(t, "127.0.0.1:0").port() },
			args: func(e env) map[string]cty.Value {
				return map[string]cty.Value{"port": num(float64(e.port)), "timeout": num(2)}
			},
			maxElapsed: 0.5, wantMsg: "s for port PORT on 127.0.0.1 to open"},
		{name: "port opens after 300ms",
			setup: func(t *testing.T, e *env) {
				e.port = freePort(t)
				after(t, 300*time.Millisecond, func() { listen(t, "127.0.0.1:"+strconv.Itoa(e.port)) })
			},
			args: func(e env) map[string]cty.Value {
				return map[string]cty.Value{"port": num(float64(e.port)), "timeout": num(5), "sleep": num(0.05)}
			},
			minElapsed: 0.3, maxElapsed: 2},
		{name: "port never opens",
			setup: func(t *testing.T, e *env) { e.port = freePort(t) },
			args: func(e env) map[string]cty.Value {
				return map[string]cty.Value{"port": num(float64(e.port)), "timeout": num(0.5), "sleep": num(0.1)}
			},
			wantErr: "timed out after 0.5s waiting for port PORT on 127.0.0.1 to open (last seen: dial tcp 127.0.0.1:PORT: connect: connection refused)", minElapsed: 0.5, maxElapsed: 1.5},
		{name: "port closes after 300ms",
			setup: func(t *testing.T, e *env) {
				l := listen(t, "127.0.0.1:0")
				e.port = l.port()
				after(t, 300*time.Millisecond, l.close)
			},
			args: func(e env) map[string]cty.Value {
				return map[string]cty.Value{"port": num(float64(e.port)), "state": s("stopped"), "timeout": num(5), "sleep": num(0.05)}
			},
			minElapsed: 0.3, maxElapsed: 2, wantMsg: "s for port PORT on 127.0.0.1 to close"},
		{name: "port stays open",
			setup: func(t *testing.T, e *env) { e.port = listen(t, "127.0.0.1:0").port() },
			args: func(e env) map[string]cty.Value {
				return map[string]cty.Value{"port": num(float64(e.port)), "state": s("stopped"), "timeout": num(0.4), "sleep": num(0.1)}
			},
			wantErr: "to close (last seen: a connection was accepted)", minElapsed: 0.4},
		{name: "drained when the last connection closes",
			setup: func(t *testing.T, e *env) {
				l := listen(t, "127.0.0.1:0")
				e.port = l.port()
				c, err := net.Dial("tcp", l.ln.Addr().String())
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { c.Close() })
				after(t, 400*time.Millisecond, func() { c.Close(); l.close() })
			},
			args: func(e env) map[string]cty.Value {
				return map[string]cty.Value{"port": num(float64(e.port)), "state": s("drained"), "timeout": num(5), "sleep": num(0.05)}
			},
			minElapsed: 0.4, maxElapsed: 2, wantMsg: "on 127.0.0.1 to drain"},
		{name: "not drained while a connection stays, on any address",
			setup: func(t *testing.T, e *env) {
				l := listen(t, "127.0.0.1:0")
				e.port = l.port()
				c, err := net.Dial("tcp", l.ln.Addr().String())
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { c.Close() })
			},
			args: func(e env) map[string]cty.Value {
				return map[string]cty.Value{"port": num(float64(e.port)), "state": s("drained"), "host": s("0.0.0.0"), "timeout": num(0.4), "sleep": num(0.1)}
			},
			wantErr: "waiting for port PORT on any address to drain (last seen: 1 established connection)"},
		{name: "a connection on another address does not count",
			setup: func(t *testing.T, e *env) {
				l := listen(t, "127.0.0.1:0")
				e.port = l.port()
				c, err := net.Dial("tcp", l.ln.Addr().String())
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { c.Close() })
			},
			args: func(e env) map[string]cty.Value {
				return map[string]cty.Value{"port": num(float64(e.port)), "state": s("drained"), "host": s("127.0.0.2"), "timeout": num(1)}
			},
			maxElapsed: 0.5},
		{name: "path appears after 300ms",
			setup: func(t *testing.T, e *env) {
				after(t, 300*time.Millisecond, func() { os.WriteFile(e.dir+"/ready", nil, 0o644) })
			},
			args: func(e env) map[string]cty.Value {
				return map[string]cty.Value{"path": s(e.dir + "/ready"), "timeout": num(5), "sleep": num(0.05)}
			},
			minElapsed: 0.3, maxElapsed: 2, wantMsg: "/ready to exist"},
		{name: "a directory counts as present",
			setup: func(t *testing.T, e *env) { os.Mkdir(e.dir+"/d", 0o755) },
			args: func(e env) map[string]cty.Value {
				return map[string]cty.Value{"path": s(e.dir + "/d"), "state": s("present"), "timeout": num(1)}
			},
			maxElapsed: 0.5},
		{name: "path goes after 300ms",
			setup: func(t *testing.T, e *env) {
				os.WriteFile(e.dir+"/lock", nil, 0o644)
				after(t, 300*time.Millisecond, func() { os.Remove(e.dir + "/lock") })
			},
			args: func(e env) map[string]cty.Value {
				return map[string]cty.Value{"path": s(e.dir + "/lock"), "state": s("absent"), "timeout": num(5), "sleep": num(0.05)}
			},
			minElapsed: 0.3, maxElapsed: 2},
		{name: "a link to nothing is absent",
			setup: func(t *testing.T, e *env) { os.Symlink(e.dir+"/nothing", e.dir+"/dangling") },
			args: func(e env) map[string]cty.Value {
				return map[string]cty.Value{"path": s(e.dir + "/dangling"), "state": s("absent"), "timeout": num(1)}
			},
			maxElapsed: 0.5},
		{name: "path under a missing directory never appears",
			args: func(e env) map[string]cty.Value {
				return map[string]cty.Value{"path": s(e.dir + "/no/such/file"), "timeout": num(0.3), "sleep": num(0.1)}
			},
			wantErr: "/no/such/file to exist (last seen: absent)"},
		{name: "regexp matches once the line is written",
			setup: func(t *testing.T, e *env) {
				os.WriteFile(e.dir+"/app.log", []byte("starting\n"), 0o644)
				after(t, 300*time.Millisecond, func() {
					os.WriteFile(e.dir+"/app.log", []byte("starting\nlistening on port 8443\ndone\n"), 0o644)
				})
			},
			args: func(e env) map[string]cty.Value {
				return map[string]cty.Value{"path": s(e.dir + "/app.log"), "search_regex": s(`^listening on port ([0-9]+)( tls)?$`), "timeout": num(5), "sleep": num(0.05)}
			},
			minElapsed: 0.3, maxElapsed: 2, wantMatch: ptr("listening on port 8443"), wantGroups: []string{"8443", ""},
			wantMsg: `app.log to match "^listening on port ([0-9]+)( tls)?$"`},
		{name: "regexp never matches",
			setup: func(t *testing.T, e *env) { os.WriteFile(e.dir+"/app.log", []byte("starting\n"), 0o644) },
			args: func(e env) map[string]cty.Value {
				return map[string]cty.Value{"path": s(e.dir + "/app.log"), "search_regex": s("ready"), "timeout": num(0.3), "sleep": num(0.1)}
			},
			wantErr: `to match "ready" (last seen: 9 bytes, no match)`},
		{name: "only the first 8 MiB are searched",
			setup: func(t *testing.T, e *env) {
				os.WriteFile(e.dir+"/big.log", append(make([]byte, maxSearch), "ready\n"...), 0o644)
			},
			args: func(e env) map[string]cty.Value {
				return map[string]cty.Value{"path": s(e.dir + "/big.log"), "search_regex": s("ready"), "timeout": num(0.3), "sleep": num(0.1)}
			},
			wantErr: "(last seen: no match in its first 8 MiB, which is all that is read)"},
		{name: "a directory is not searched: it fails at once",
			setup: func(t *testing.T, e *env) { os.Mkdir(e.dir+"/d", 0o755) },
			args: func(e env) map[string]cty.Value {
				return map[string]cty.Value{"path": s(e.dir + "/d"), "search_regex": s("x"), "timeout": num(5)}
			},
			wantErr: "/d is a directory, not a file that search_regex can read", maxElapsed: 0.5},
		{name: "delay comes first",
			setup: func(t *testing.T, e *env) { os.WriteFile(e.dir+"/ready", nil, 0o644) },
			args: func(e env) map[string]cty.Value {
				return map[string]cty.Value{"path": s(e.dir + "/ready"), "delay": num(0.3), "timeout": num(5)}
			},
			minElapsed: 0.3, maxElapsed: 1},
		{name: "msg leads the failure",
			args: func(e env) map[string]cty.Value {
				return map[string]cty.Value{"path": s(e.dir + "/never"), "timeout": num(0.2), "msg": s("the app did not start")}
			},
			wantErr: "the app did not start: timed out after 0."},
		{name: "the task's shorter timeout ends the wait, saying so",
			ctxTimeout: 700 * time.Millisecond,
			args: func(e env) map[string]cty.Value {
				return map[string]cty.Value{"path": s(e.dir + "/never"), "timeout": num(300), "sleep": num(0.1)}
			},
			wantErr: "at the task's timeout (or the host's; before wait_for's timeout of 300s), waiting for", minElapsed: 0.5, maxElapsed: 0.7},
	}
	for _, tt := range tests {
		for _, apply := range []bool{false, true} {
			mode := "check"
			if apply {
				mode = "apply"
			}
			t.Run(tt.name+"/"+mode, func(t *testing.T) {
				e := env{dir: t.TempDir()}
				if tt.setup != nil {
					tt.setup(t, &e)
				}
				var opts []moduletest.Option
				if tt.ctxTimeout > 0 {
					opts = append(opts, moduletest.Timeout(tt.ctxTimeout))
				}
				start := time.Now()
				res, err := moduletest.Run(t, WaitFor{}, tt.args(e), apply, opts...)
				took := time.Since(start).Seconds()
				if tt.maxElapsed > 0 && took > tt.maxElapsed {
					t.Errorf("took %.2fs, want at most %.2fs", took, tt.maxElapsed)
				}
				if took < tt.minElapsed {
					t.Errorf("took %.2fs, want at least %.2fs", took, tt.minElapsed)
				}
				if tt.wantErr != "" {
					want := strings.ReplaceAll(tt.wantErr, "PORT", strconv.Itoa(e.port))
					if err == nil || !strings.Contains(err.Error(), want) {
						t.Fatalf("err = %v, want %q", err, want)
					}
					if res != nil && res.Status != modules.StatusOK {
						t.Errorf("a failed wait reports %s", res.Status)
					}
					return
				}
				if err != nil {
					t.Fatal(err)
				}
				if res.Status != modules.StatusOK || res.Diff != nil {
					t.Fatalf("status %s, diff %v: wait_for is ok or failed, never changed", res.Status, res.Diff)
				}
				if want := strings.ReplaceAll(tt.wantMsg, "PORT", strconv.Itoa(e.port)); !strings.HasPrefix(res.Msg, "waited ") || !strings.Contains(res.Msg, want) {
					t.Errorf("msg %q, want \"waited …\" with %q in it", res.Msg, want)
				}
				data := moduletest.Data(t, WaitFor{}, res)
				elapsed, _ := data.GetAttr("elapsed").AsBigFloat().Float64()
				if elapsed < tt.minElapsed || elapsed > took {
					t.Errorf("elapsed %v, want between %v and %v", elapsed, tt.minElapsed, took)
				}
				match := data.GetAttr("match")
				switch {
				case tt.wantMatch == nil && !match.IsNull():
					t.Errorf("match %#v, want null", match)
				case tt.wantMatch != nil && (match.IsNull() || match.AsString() != *tt.wantMatch):
					t.Errorf("match %#v, want %q", match, *tt.wantMatch)
				}
				if tt.wantGroups != nil {
					var got []string
					for _, g := range data.GetAttr("match_groups").AsValueSlice() {
						got = append(got, g.AsString())
					}
					if strings.Join(got, "|") != strings.Join(tt.wantGroups, "|") || len(got) != len(tt.wantGroups) {
						t.Errorf("match_groups %q, want %q", got, tt.wantGroups)
					}
				}
			})
		}
	}
}

func ptr[T any](v T) *T { return &v }

// TestWaitForRedactsTheMatch: a match that holds a secret the request carries shows it
// redacted; one that holds only part of a secret (which redaction of the match alone
// could not recognise) is redacted whole, and so is such a group.
func TestWaitForRedactsTheMatch(t *testing.T) {
	const secret = "hunter2-s3cret"
	dir := t.TempDir()
	if err := os.WriteFile(dir+"/conf", []byte("user=admin\npassword="+secret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	withSecret := moduletest.WithEnv(func(env *modules.Env) { env.SetSecrets([]string{secret}) })
	for _, tt := range []struct {
		re, match string
		groups    []string
	}{
		{`password=(\S+)`, "password=" + modules.Redacted, []string{modules.Redacted}},
		{`password=(hunter)`, modules.Redacted, []string{modules.Redacted}},
		{`(user)=(\w+)`, "user=admin", []string{"user", "admin"}},
	} {
		res, err := moduletest.Run(t, WaitFor{}, map[string]cty.Value{"path": s(dir + "/conf"), "search_regex": s(tt.re), "timeout": num(1)}, true, withSecret)
		if err != nil {
			t.Fatal(err)
		}
		d := res.Data.(*waitForResult)
		if *d.Match != tt.match || strings.Join(d.MatchGroups, "|") != strings.Join(tt.groups, "|") {
			t.Errorf("%s: match %q groups %q, want %q %q", tt.re, *d.Match, d.MatchGroups, tt.match, tt.groups)
		}
		if strings.Contains(*d.Match+strings.Join(d.MatchGroups, ""), "hunter") {
			t.Errorf("%s: the secret shows: %q %q", tt.re, *d.Match, d.MatchGroups)
		}
	}
}

// TestWaitForUntrustedLink: a link another user planted in a sticky world-writable
// directory, leading to root's file, fails the wait at once (check and apply) and
// nothing of the file comes back.
func TestWaitForUntrustedLink(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("planting a link owned by another user needs root")
	}
	d, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	for _, step := range []error{
		os.Mkdir(d+"/private", 0o700),
		os.WriteFile(d+"/private/secret", []byte("root-only ready\n"), 0o600),
		os.Mkdir(d+"/pub", 0o777),
		os.Chmod(d+"/pub", 0o777|os.ModeSticky),
		os.Symlink(d+"/private/secret", d+"/pub/app.log"),
		os.Lchown(d+"/pub/app.log", 65534, 65534),
	} {
		if step != nil {
			t.Fatal(step)
		}
	}
	for _, args := range []map[string]cty.Value{
		{"path": s(d + "/pub/app.log"), "search_regex": s("ready"), "timeout": num(5)},
		{"path": s(d + "/pub/app.log"), "timeout": num(5)},
	} {
		for _, apply := range []bool{false, true} {
			start := time.Now()
			res, err := moduletest.Run(t, WaitFor{}, args, apply)
			if err == nil || !strings.Contains(err.Error(), "is a link owned by nobody") || time.Since(start) > time.Second {
				t.Fatalf("err = %v after %s", err, time.Since(start))
			}
			if res != nil || strings.Contains(err.Error(), "root-only") || strings.Contains(err.Error(), "fatal") {
				t.Errorf("the planted link's target leaked: %v %v", res, err)
			}
		}
	}
}

// TestWaitForValidate: bad arguments are refused before anything runs, each naming its
// argument.
func TestWaitForValidate(t *testing.T) {
	for _, tt := range []struct {
		args map[string]cty.Value
		arg  string
		want string
	}{
		{map[string]cty.Value{"port": num(0)}, "port", "from 1 to 65535"},
		{map[string]cty.Value{"port": num(70000)}, "port", "from 1 to 65535"},
		{map[string]cty.Value{"port": num(80.5)}, "port", "whole number"},
		{map[string]cty.Value{"port": num(80), "state": s("present")}, "state", "is for a path"},
		{map[string]cty.Value{"path": s("/x"), "state": s("drained")}, "state", "is for a port"},
		{map[string]cty.Value{"path": s("x")}, "path", "absolute"},
		{map[string]cty.Value{"path": s("/x"), "search_regex": s("(")}, "search_regex", "Not a valid regular expression"},
		{map[string]cty.Value{"path": s("/x"), "search_regex": s("a"), "state": s("absent")}, "search_regex", "waits for a match"},
		{map[string]cty.Value{"port": num(80), "host": s("")}, "host", "address or a host name"},
		{map[string]cty.Value{"port": num(80), "host": s("a b")}, "host", "address or a host name"},
		{map[string]cty.Value{"port": num(80), "host": s("localhost"), "state": s("drained")}, "host", `"0.0.0.0" for all`},
		{map[string]cty.Value{"port": num(80), "timeout": num(0)}, "timeout", "more than 0 and at most 3000"},
		{map[string]cty.Value{"port": num(80), "timeout": num(3001)}, "timeout", "more than 0 and at most 3000"},
		{map[string]cty.Value{"port": num(80), "timeout": num(10), "delay": num(10)}, "delay", "less than timeout"},
		{map[string]cty.Value{"port": num(80), "delay": num(-1)}, "delay", "at least 0"},
		{map[string]cty.Value{"port": num(80), "sleep": num(0.001)}, "sleep", "at least 0.05"},
		{map[string]cty.Value{"port": num(80), "connect_timeout": num(0)}, "connect_timeout", "at least 0.05"},
		{map[string]cty.Value{"port": num(80), "host": s("db.example"), "timeout": num(60), "delay": num(5), "sleep": num(0.5)}, "", ""},
		{map[string]cty.Value{"port": num(443), "host": s("::"), "state": s("drained")}, "", ""},
		{map[string]cty.Value{"path": s("/var/log/x"), "search_regex": s("^ok$")}, "", ""},
	} {
		errs := moduletest.Validate(t, WaitFor{}, tt.args)
		if tt.want == "" {
			if len(errs) > 0 {
				t.Errorf("%v: %v", tt.args, errs)
			}
			continue
		}
		if len(errs) != 1 || errs[0].Arg != tt.arg || !strings.Contains(errs[0].Msg, tt.want) {
			t.Errorf("%v: errors %v, want one on %s saying %q", tt.args, errs, tt.arg, tt.want)
		}
	}
}

// TestWaitForTimeoutFitsTheProtocol: the longest wait ends well before the helper cuts a
// request that came without a deadline, so the answer says what was waited for.
func TestWaitForTimeoutFitsTheProtocol(t *testing.T) {
	if longest := time.Duration(maxWaitTimeout) * time.Second; longest > protocol.DefaultTimeout-5*time.Minute {
		t.Errorf("wait_for may wait %s, the helper cuts a request without a deadline after %s", longest, protocol.DefaultTimeout)
	}
	d, ok := modules.Lookup("wait_for")
	if !ok {
		t.Fatal("wait_for is not registered")
	}
	if a, _ := d.Info().Schema.Arg("timeout"); a.Default.AsBigFloat().String() != "300" {
		t.Errorf("timeout defaults to %v, want 300", a.Default)
	}
}

// TestCountEstablished reads /proc/net/tcp and tcp6 tables: established connections on the
// port and address count, listeners, other states and other ports do not; a line it cannot
// read is an error, not a connection fewer.
func TestCountEstablished(t *testing.T) {
	const tcp4 = `  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1 0000000000000000 100 0 0 10 0
   1: 0100007F:1F90 0100007F:D431 01 00000000:00000000 00:00000000 00000000     0        0 2 1 0000000000000000 20 4 30 10 -1
   2: 0100007F:D431 0100007F:1F90 01 00000000:00000000 00:00000000 00000000     0        0 3 1 0000000000000000 20 4 30 10 -1
   3: 0F02000A:1F90 0102000A:C350 01 00000000:00000000 00:00000000 00000000     0        0 4 1 0000000000000000 20 4 30 10 -1
   4: 0100007F:1F90 0100007F:D432 06 00000000:00000000 00:00000000 00000000     0        0 0 3 0000000000000000
`
	const tcp6 = `  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0000000000000000FFFF00000100007F:1F90 0000000000000000FFFF00000100007F:E000 01 00000000:00000000 00:00000000 00000000     0        0 5 1 0000000000000000 20 4 30 10 -1
   1: 00000000000000000000000001000000:1F90 00000000000000000000000001000000:E001 01 00000000:00000000 00:00000000 00000000     0        0 6 1 0000000000000000 20 4 30 10 -1
`
	dir := t.TempDir()
	os.WriteFile(dir+"/tcp", []byte(tcp4), 0o444)
	os.WriteFile(dir+"/tcp6", []byte(tcp6), 0o444)
	for _, tt := range []struct {
		host string
		port int
		want int
	}{
		{"127.0.0.1", 8080, 2}, // one IPv4, one IPv4-mapped IPv6
		{"10.0.2.15", 8080, 1},
		{"0.0.0.0", 8080, 4},
		{"::1", 8080, 1},
		{"127.0.0.1", 54321, 1},
		{"127.0.0.1", 9090, 0},
	} {
		n, err := establishedOn(context.Background(), dir, netip.MustParseAddr(tt.host), tt.port)
		if err != nil || n != tt.want {
			t.Errorf("%s:%d: %d %v, want %d", tt.host, tt.port, n, err, tt.want)
		}
	}
	// Without IPv6 there is no tcp6; without tcp there is nothing to say the port is drained.
	os.Remove(dir + "/tcp6")
	if n, err := establishedOn(context.Background(), dir, netip.MustParseAddr("0.0.0.0"), 8080); err != nil || n != 2 {
		t.Errorf("without tcp6: %d %v", n, err)
	}
	if _, err := establishedOn(context.Background(), t.TempDir(), netip.MustParseAddr("0.0.0.0"), 8080); !errors.As(err, new(fatalError)) {
		t.Errorf("without tcp: %v", err)
	}
	os.WriteFile(dir+"/tcp6", []byte(tcp6+"   2: zz:1F90 00:0 01\n"), 0o444)
	if _, err := establishedOn(context.Background(), dir, netip.MustParseAddr("0.0.0.0"), 8080); err == nil || !strings.Contains(err.Error(), `tcp6: line 4: bad address "zz:1F90"`) {
		t.Errorf("a bad line: %v", err)
	}
	os.WriteFile(dir+"/tcp6", []byte(tcp6+"   2: "+strings.Repeat("0", 5000)+"\n"), 0o444)
	if _, err := establishedOn(context.Background(), dir, netip.MustParseAddr("0.0.0.0"), 8080); err == nil {
		t.Error("a line past the bound was read")
	}
}
