package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/zclconf/go-cty/cty"

	"github.com/runbook/runbook/engine/protocol"
	"github.com/runbook/runbook/modules"
)

func TestVersionAndUsage(t *testing.T) {
	tests := []struct {
		args     []string
		wantCode int
		wantOut  string
		wantErr  string
	}{
		{[]string{"--version"}, 0, "runbook-helper protocol 1 build ", ""},
		{[]string{"--bogus"}, 2, "", "flag provided but not defined: -bogus"},
		{[]string{"extra"}, 2, "", `unexpected argument "extra"`},
		{[]string{"-h"}, 0, "", "usage: runbook-helper"},
	}
	for _, tt := range tests {
		var out, errb bytes.Buffer
		code := run(context.Background(), tt.args, strings.NewReader(""), &out, &errb)
		if code != tt.wantCode || !strings.Contains(out.String(), tt.wantOut) || !strings.Contains(errb.String(), tt.wantErr) {
			t.Errorf("%v: code %d, stdout %q, stderr %q", tt.args, code, out.String(), errb.String())
		}
	}
}

// TestServeInProcess checks that run serves the protocol and ends cleanly on EOF.
func TestServeInProcess(t *testing.T) {
	var out, errb bytes.Buffer
	code := run(context.Background(), nil, strings.NewReader(`{"id":1,"op":"ping"}`+"\n"), &out, &errb)
	if code != 0 || !strings.Contains(out.String(), `"type":"hello"`) || !strings.Contains(out.String(), `{"id":1,"status":"ok","msg":"pong"`) {
		t.Errorf("code %d, stdout %q, stderr %q", code, out.String(), errb.String())
	}
}

// helper is the built binary and a protocol client talking to it as a subprocess.
type helper struct {
	cmd     *exec.Cmd
	client  *protocol.Client
	stdin   io.WriteCloser
	stderr  *bytes.Buffer
	exited  chan struct{} // closed when the process has exited; exitErr is then set
	exitErr error
}

var (
	buildOnce sync.Once
	builtBin  string
	buildErr  error
	buildDir  string
)

func TestMain(m *testing.M) {
	code := m.Run()
	if buildDir != "" {
		os.RemoveAll(buildDir)
	}
	os.Exit(code)
}

// buildHelper builds the helper as it ships (static, stripped) once per test run; linking
// takes seconds, so the end-to-end tests share one binary.
func buildHelper(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("builds the helper; skipped with -short")
	}
	buildOnce.Do(func() {
		gobin := filepath.Join(runtime.GOROOT(), "bin", "go")
		if _, err := os.Stat(gobin); err != nil {
			if gobin, err = exec.LookPath("go"); err != nil {
				buildErr = err
				return
			}
		}
		if buildDir, buildErr = os.MkdirTemp("", "runbook-helper-test-"); buildErr != nil {
			return
		}
		bin := filepath.Join(buildDir, "runbook-helper")
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		build := exec.CommandContext(ctx, gobin, "build", "-trimpath", "-ldflags", "-s -w", "-o", bin, ".")
		build.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := build.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("%v\n%s", err, out)
			return
		}
		builtBin = bin
	})
	if buildErr != nil {
		t.Fatalf("build helper: %v", buildErr)
	}
	return builtBin
}

func startHelper(t *testing.T, bin string) *helper {
	t.Helper()
	cmd := exec.Command(bin)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	h := &helper{cmd: cmd, stdin: stdin, stderr: &bytes.Buffer{}, exited: make(chan struct{})}
	cmd.Stderr = h.stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		select {
		case <-h.exited:
		case <-time.After(5 * time.Second):
		}
	})
	go func() { h.exitErr = cmd.Wait(); close(h.exited) }()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	h.client, err = protocol.NewClient(ctx, stdout, stdin)
	if err != nil {
		t.Fatalf("hello: %v (stderr: %s)", err, h.stderr)
	}
	return h
}

func (h *helper) call(t *testing.T, req *protocol.Request) *protocol.Response {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := h.client.Call(ctx, req)
	if err != nil {
		t.Fatalf("%s %s: %v", req.Op, req.Module, err)
	}
	return resp
}

func TestHelperEndToEnd(t *testing.T) {
	bin := buildHelper(t)
	h := startHelper(t, bin)

	hello := h.client.Hello()
	b, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(b)
	if hello.Build != hex.EncodeToString(sum[:]) {
		t.Errorf("build %q is not the binary's sha256", hello.Build)
	}
	if hello.Protocol != protocol.Version || hello.OS != "linux" || hello.UID != os.Geteuid() {
		t.Errorf("hello = %+v", hello)
	}
	for _, m := range []string{"command", "copy", "file", "line", "shell", "template", "service", "bond", "vm_nic", "facts"} {
		if !slices.Contains(hello.Modules, m) {
			t.Errorf("the helper does not offer %s: %v", m, hello.Modules)
		}
	}

	// A file module timeline, the way the engine will drive it.
	dir := t.TempDir()
	args := cty.ObjectVal(map[string]cty.Value{"path": cty.StringVal(dir + "/etc/app"), "state": cty.StringVal("directory"), "mode": cty.StringVal("0750")})
	for i, step := range []struct {
		op   string
		want modules.Status
	}{
		{protocol.OpCheck, "drift"}, {protocol.OpApply, "changed"}, {protocol.OpCheck, "ok"}, {protocol.OpApply, "ok"},
	} {
		r := h.call(t, &protocol.Request{Op: step.op, Module: "file", Args: args})
		if r.Status != step.want {
			t.Fatalf("step %d (%s): status %q, want %q (%+v)", i, step.op, r.Status, step.want, r.Error)
		}
		if i == 0 {
			if _, err := os.Stat(dir + "/etc/app"); err == nil {
				t.Fatal("check created the directory")
			}
		}
	}
	if fi, err := os.Stat(dir + "/etc/app"); err != nil || fi.Mode().Perm() != 0o750 || !fi.IsDir() {
		t.Fatalf("directory: %v %v", fi, err)
	}

	// A command, with registered values converted by the module's declared types.
	r := h.call(t, &protocol.Request{Op: protocol.OpApply, Module: "command", Args: cty.ObjectVal(map[string]cty.Value{
		"argv":  cty.ListVal([]cty.Value{cty.StringVal("sh"), cty.StringVal("-c"), cty.StringVal("echo hi; cat >&2; exit 3")}),
		"stdin": cty.StringVal("secret-input"), "ok_codes": cty.ListVal([]cty.Value{cty.NumberIntVal(3)}),
	})})
	m, _ := modules.Lookup("command")
	var fields []modules.Field
	fields = append(fields, m.Info().Returns...)
	data, err := r.DataValue(fields)
	if err != nil || r.Status != "changed" {
		t.Fatalf("command: %+v %v", r, err)
	}
	if data.GetAttr("stdout").AsString() != "hi\n" || !data.GetAttr("rc").RawEquals(cty.NumberIntVal(3)) {
		t.Errorf("command data = %#v", data)
	}
	// stdin is sensitive in the schema: what the command echoed of it is hidden.
	if got := data.GetAttr("stderr").AsString(); got != modules.Redacted {
		t.Errorf("stderr = %q, want it redacted", got)
	}

	// A failing command: an error response with stderr, and the helper goes on.
	r = h.call(t, &protocol.Request{Op: protocol.OpApply, Module: "shell", Args: cty.ObjectVal(map[string]cty.Value{"cmd": cty.StringVal("echo nope >&2; exit 1")})})
	if r.Status != protocol.StatusFailed || r.Error == nil || r.Error.Stderr != "nope\n" {
		t.Errorf("failing shell = %+v %+v", r, r.Error)
	}

	// An unknown module is an error response.
	r = h.call(t, &protocol.Request{Op: protocol.OpCheck, Module: "fiel", Args: cty.EmptyObjectVal})
	if r.Status != protocol.StatusFailed || !strings.Contains(r.Error.Msg, `unknown module "fiel"; did you mean "file"?`) {
		t.Errorf("unknown module = %+v %+v", r, r.Error)
	}

	// A malformed line gets an error response (id 0: none could be read) and the helper
	// keeps serving.
	if _, err := io.WriteString(h.stdin, "{not json\n"); err != nil {
		t.Fatal(err)
	}
	select {
	case r := <-h.client.Orphans():
		if r.ID != 0 || r.Status != protocol.StatusFailed || !strings.Contains(r.Error.Msg, "malformed request") {
			t.Errorf("malformed line = %+v %+v", r, r.Error)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no answer to a malformed line")
	}
	if r := h.call(t, &protocol.Request{Op: protocol.OpPing}); r.Status != "ok" {
		t.Errorf("ping = %+v", r)
	}

	// The controller goes away: the helper exits 0, promptly.
	start := time.Now()
	h.stdin.Close()
	select {
	case <-h.exited:
		if err := h.exitErr; err != nil {
			t.Errorf("helper exit: %v (stderr: %s)", err, h.stderr)
		}
		if d := time.Since(start); d > 2*time.Second {
			t.Errorf("helper took %s to exit", d)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("helper did not exit after stdin closed")
	}
}

// TestHelperStopsRunningCommandOnEOF: when the controller disappears mid-task, the task's
// command is killed rather than left running on the host.
func TestHelperStopsRunningCommandOnEOF(t *testing.T) {
	bin := buildHelper(t)
	h := startHelper(t, bin)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_, _ = h.client.Call(ctx, &protocol.Request{Op: protocol.OpApply, Module: "shell", Args: cty.ObjectVal(map[string]cty.Value{"cmd": cty.StringVal("sleep 60")})})
	}()
	time.Sleep(200 * time.Millisecond)
	start := time.Now()
	h.stdin.Close()
	select {
	case <-h.exited:
		if err := h.exitErr; err != nil {
			t.Errorf("helper exit: %v", err)
		}
		if d := time.Since(start); d > 3*time.Second {
			t.Errorf("helper took %s to exit", d)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("helper did not exit")
	}
}

func TestCheckVerified(t *testing.T) {
	sha := strings.Repeat("ab", 32)
	tests := []struct {
		name, v, exe, want string
	}{
		{"verified", sha, "/var/lib/runbook/helper/" + sha, sha},
		{"unset", "", "/var/lib/runbook/helper/" + sha, ""},
		{"other file", sha, "/usr/local/bin/runbook-helper", ""},
		{"not hex", strings.Repeat("zz", 32), "/x/" + strings.Repeat("zz", 32), ""},
		{"short", "abc", "/x/abc", ""},
		{"upper case", strings.ToUpper(sha), "/x/" + strings.ToUpper(sha), ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := checkVerified(tt.v, tt.exe); got != tt.want {
				t.Errorf("checkVerified(%q, %q) = %q, want %q", tt.v, tt.exe, got, tt.want)
			}
		})
	}
}

func TestVerifiedHow(t *testing.T) {
	sha := strings.Repeat("ab", 32)
	tests := []struct {
		name, how, build, want string
	}{
		{"hashed with a stamp", "hash 1:2:3:81ed:0:4.000000001:5.000000001", sha, "hash 1:2:3:81ed:0:4.000000001:5.000000001"},
		{"stamp", "stamp", sha, "stamp"},
		{"unverified build", "stamp", "", ""},
		{"newline", "hash 1\nx", sha, ""},
		{"too long", "hash " + strings.Repeat("1", 300), sha, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv(EnvHow, tt.how)
			if got := verifiedHow(tt.build); got != tt.want {
				t.Errorf("verifiedHow(%q) with %q = %q, want %q", tt.build, tt.how, got, tt.want)
			}
			if v, ok := os.LookupEnv(EnvHow); ok {
				t.Errorf("%s is still set (%q): commands would inherit it", EnvHow, v)
			}
		})
	}
}
