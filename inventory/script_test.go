package inventory

import (
	"context"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// pidGone waits up to d for the process pid to be gone (or a zombie: dead, waiting to be
// reaped by whoever adopted it).
func pidGone(pid int, d time.Duration) bool {
	for deadline := time.Now().Add(d); ; {
		stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
		if err != nil {
			return true
		}
		// the state follows the command name in parentheses
		if i := strings.LastIndexByte(string(stat), ')'); i > 0 && strings.HasPrefix(string(stat[i+1:]), " Z") {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// startedPID reads the PID a test script wrote to file, and makes sure the process is
// killed when the test ends, whatever happened.
func startedPID(t *testing.T, file string) int {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatalf("the script did not record its child: %v", err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 1 {
		t.Fatalf("bad pid %q", b)
	}
	t.Cleanup(func() { _ = syscall.Kill(pid, syscall.SIGKILL) })
	return pid
}

// TestScriptStopped: a script that hangs, with a child holding its standard output, is
// stopped at the timeout or when the context ends, and the child goes with it. A script
// that exits but leaves a child holding its output does not keep Load waiting either.
func TestScriptStopped(t *testing.T) {
	const hang = "#!/bin/sh\nsleep 30 &\necho $! > \"$(dirname \"$0\")/pid\"\nwait\n"
	const leave = "#!/bin/sh\nsleep 30 &\necho $! > \"$(dirname \"$0\")/pid\"\necho '{\"g\": [\"h1\"], \"_meta\": {\"hostvars\": {}}}'\n"
	tests := []struct {
		name       string
		script     string
		timeout    time.Duration // LoadOptions.ScriptTimeout
		ctxTimeout time.Duration // 0: none
		summary    string        // "" means Load succeeds
		detail     string
		within     time.Duration
	}{
		{"timeout", hang, time.Second, 0, "Inventory script timed out", "did not finish within 1s", 1*time.Second + scriptWaitDelay},
		{"context", hang, time.Minute, time.Second, "Inventory script failed", "was stopped: context deadline exceeded", 1*time.Second + scriptWaitDelay},
		{"left behind", leave, time.Minute, 0, "", "", scriptWaitDelay},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := writeFiles(t, map[string]string{"inv.sh": tt.script})
			ctx := context.Background()
			if tt.ctxTimeout > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, tt.ctxTimeout)
				defer cancel()
			}
			start := time.Now()
			inv, diags := LoadWith(ctx, LoadOptions{ScriptTimeout: tt.timeout}, filepath.Join(dir, "inv.sh"))
			took := time.Since(start)
			pid := startedPID(t, filepath.Join(dir, "pid"))
			// a second of margin for a loaded machine
			if took > tt.within+time.Second {
				t.Errorf("Load took %s, want at most %s", took, tt.within)
			}
			if !pidGone(pid, 2*time.Second) {
				t.Errorf("the script's child %d is still running", pid)
			}
			if tt.summary == "" {
				if diags.HasErrors() || inv == nil {
					t.Fatalf("diagnostics: %v", diags)
				}
				if _, ok := inv.Host("h1"); !ok {
					t.Error("host h1 missing")
				}
				return
			}
			if !diags.HasErrors() || diags[0].Summary != tt.summary || !strings.Contains(diags[0].Detail, tt.detail) ||
				!strings.Contains(diags[0].Detail, filepath.Join(dir, "inv.sh")+" --list") {
				t.Errorf("diagnostics: %v", diags)
			}
		})
	}
}

// TestScriptOutputLimit: a script that prints too much is stopped with an error naming it
// and the limit, and what it printed past the limit is neither read nor kept.
func TestScriptOutputLimit(t *testing.T) {
	// 200 MB, then a mark that the script got to the end
	const script = "#!/bin/sh\nyes 0123456789abcdefghijklmnopqrstuvwxyz | head -c 200000000\ntouch \"$(dirname \"$0\")/finished\"\n"
	tests := []struct {
		name     string
		limit    int64
		text     string
		maxAlloc uint64
	}{
		// The buffer doubles up to the limit (about twice the limit in all); the rest is
		// the process's own churn meanwhile, which TotalAlloc counts too. The bound is what
		// matters: far below the 200 MB the script writes.
		{"small limit", 1 << 20, "more than 1 MiB", 8 << 20},
		{"default limit", 0, "more than 64 MiB", 192 << 20},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := writeFiles(t, map[string]string{"big.sh": script})
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			_, diags := LoadWith(context.Background(), LoadOptions{outputLimit: tt.limit}, filepath.Join(dir, "big.sh"))
			runtime.ReadMemStats(&after)
			if !diags.HasErrors() || diags[0].Summary != "Inventory script output too large" ||
				!strings.Contains(diags[0].Detail, filepath.Join(dir, "big.sh")+" --list printed "+tt.text) {
				t.Errorf("diagnostics: %v", diags)
			}
			if alloc := after.TotalAlloc - before.TotalAlloc; alloc > tt.maxAlloc {
				t.Errorf("Load allocated %d MiB", alloc>>20)
			}
			if _, err := os.Stat(filepath.Join(dir, "finished")); err == nil {
				t.Error("the script was read to its end")
			}
		})
	}
}

// TestScriptEnvironment: scripts get only the documented variables, and those PassEnvVar
// names.
func TestScriptEnvironment(t *testing.T) {
	const script = "#!/bin/sh\n/bin/cat /proc/$$/environ > \"$(dirname \"$0\")/env\"\necho '{}'\n"
	base := []string{
		"PATH=/usr/bin:/bin", "HOME=/home/op", "USER=op", "LOGNAME=op", "LANG=C.UTF-8", "LANGUAGE=en",
		"LC_ALL=C", "LC_TIME=C", "TZ=UTC", "TMPDIR=/tmp/op",
		"ANSIBLE_CONFIG=/etc/ansible.cfg", "RUNBOOK_INVENTORY_REGION=eu",
		"https_proxy=http://proxy:3128", "NO_PROXY=.lan", "SSL_CERT_FILE=/etc/ca.pem", "REQUESTS_CA_BUNDLE=/etc/ca.pem",
		"RUNBOOK_VAR_token=hunter2", "SSH_AUTH_SOCK=/run/agent", "AWS_SECRET_ACCESS_KEY=k", "AWS_PROFILE=p",
		"OS_CLOUD=c", "SHELL=/bin/bash", "PS1=$ ",
	}
	allowed := base[:16]
	tests := []struct {
		name    string
		environ []string
		want    []string
	}{
		{"documented only", base, allowed},
		{"passenv names and prefixes", append(slices.Clone(base), "RUNBOOK_INVENTORY_PASSENV=AWS_*, OS_CLOUD"),
			append(slices.Clone(allowed), "AWS_SECRET_ACCESS_KEY=k", "AWS_PROFILE=p", "OS_CLOUD=c", "RUNBOOK_INVENTORY_PASSENV=AWS_*, OS_CLOUD")},
		{"passenv everything", append(slices.Clone(base), "RUNBOOK_INVENTORY_PASSENV=*"), append(slices.Clone(base), "RUNBOOK_INVENTORY_PASSENV=*")},
		{"nothing", []string{}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := writeFiles(t, map[string]string{"env.sh": script})
			if _, diags := LoadWith(context.Background(), LoadOptions{Environ: tt.environ}, filepath.Join(dir, "env.sh")); diags.HasErrors() {
				t.Fatal(diags)
			}
			b, err := os.ReadFile(filepath.Join(dir, "env"))
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, kv := range strings.Split(string(b), "\x00") {
				if kv != "" {
					got = append(got, kv)
				}
			}
			slices.Sort(got)
			want := slices.Sorted(slices.Values(tt.want))
			if !slices.Equal(got, want) {
				t.Errorf("the script got\n  %s\nwant\n  %s", strings.Join(got, "\n  "), strings.Join(want, "\n  "))
			}
		})
	}
}

// TestScriptStderrTail: a failing script's error quotes the end of its standard error,
// which is where the reason usually is, and no more than stderrTail bytes of it.
func TestScriptStderrTail(t *testing.T) {
	dir := writeFiles(t, map[string]string{
		"fail.sh": "#!/bin/sh\nyes 'noise line' | head -c 1000000 >&2\necho 'Traceback: the real reason' >&2\nexit 3\n",
	})
	_, diags := Load(context.Background(), filepath.Join(dir, "fail.sh"))
	if !diags.HasErrors() || diags[0].Summary != "Inventory script failed" {
		t.Fatalf("diagnostics: %v", diags)
	}
	d := diags[0].Detail
	if !strings.Contains(d, "exit status 3") || !strings.HasSuffix(d, "Traceback: the real reason") || len(d) > stderrTail+500 {
		t.Errorf("detail (%d bytes): %.300s ... %s", len(d), d, d[max(0, len(d)-100):])
	}
}
