package inventory

import (
	"context"
	"os"
	"os/exec"
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

// readPID reads the PID a test script wrote to file.
func readPID(t *testing.T, file string) int {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatalf("the script did not record the process: %v", err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 1 {
		t.Fatalf("bad pid %q", b)
	}
	return pid
}

// startedPID reads the PID a test script wrote to file, and makes sure the process is
// killed when the test ends, whatever happened.
func startedPID(t *testing.T, file string) int {
	t.Helper()
	pid := readPID(t, file)
	t.Cleanup(func() { _ = syscall.Kill(pid, syscall.SIGKILL) })
	return pid
}

// TestScriptStopped: a script that hangs, with a child holding its standard output, is
// stopped at the timeout or when the context ends, and the child goes with it. Whatever
// the script's exit, the processes it leaves in its group are killed at once, whether they
// hold its output or not; only one that left the group (setsid) outlives it.
func TestScriptStopped(t *testing.T) {
	const (
		hang = "#!/bin/sh\nsleep 30 &\necho $! > \"$(dirname \"$0\")/pid\"\nwait\n"
		// a child that holds the output, and one with output of its own
		leave   = "#!/bin/sh\nsleep 30 &\necho $! > \"$(dirname \"$0\")/pid\"\necho '{\"g\": [\"h1\"], \"_meta\": {\"hostvars\": {}}}'\n"
		quiet   = "#!/bin/sh\nsleep 30 >/dev/null 2>&1 &\necho $! > \"$(dirname \"$0\")/pid\"\necho '{\"g\": [\"h1\"], \"_meta\": {\"hostvars\": {}}}'\n"
		failing = "#!/bin/sh\nsleep 30 &\necho $! > \"$(dirname \"$0\")/pid\"\necho oops >&2\nexit 1\n"
		// a process that left the group and still holds the output
		// the script itself moves to another group (its parent's) and hangs
		moved   = "#!/bin/sh\necho $$ > \"$(dirname \"$0\")/pid\"\nexec perl -e 'setpgrp(0, getpgrp(getppid())); sleep 30'\n"
		escaped = "#!/bin/sh\nsetsid sh -c 'echo $$ > \"$(dirname \"$0\")/pid\"; exec sleep 30' \"$0\" &\nwhile [ ! -s \"$(dirname \"$0\")/pid\" ]; do sleep 0.01; done\necho '{\"g\": [\"h1\"], \"_meta\": {\"hostvars\": {}}}'\n"
	)
	tests := []struct {
		name       string
		script     string
		timeout    time.Duration // LoadOptions.ScriptTimeout
		ctxTimeout time.Duration // 0: none
		summary    string        // "" means Load succeeds
		detail     string
		within     time.Duration
		survives   bool // the child outlives the run
	}{
		{"timeout", hang, time.Second, 0, "Inventory script timed out", "did not finish within 1s, so it was killed with every process still in its process group", 1*time.Second + scriptWaitDelay, false},
		{"context", hang, time.Minute, time.Second, "Inventory script failed", "was stopped: context deadline exceeded", 1*time.Second + scriptWaitDelay, false},
		{"left behind", leave, time.Minute, 0, "", "", 0, false},
		{"left behind, quiet", quiet, time.Minute, 0, "", "", 0, false},
		{"left behind by a failure", failing, time.Minute, 0, "Inventory script failed", "failed: exit status 1", 0, false},
		{"moved out of its group", moved, time.Second, 0, "Inventory script timed out", "did not finish within 1s", 1*time.Second + scriptWaitDelay, false},
		{"escaped", escaped, time.Minute, 0, "", "", scriptWaitDelay, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := exec.LookPath("perl"); err != nil && tt.script == moved {
				t.Skip("no perl")
			}
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
			if gone := pidGone(pid, 2*time.Second); gone == tt.survives {
				t.Errorf("the script's child %d: gone %v, want %v", pid, gone, !tt.survives)
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

// TestScriptGroupNotReused: the group of a script that has exited is killed while its
// leader is still unreaped, never after: by then its ID may belong to an unrelated process
// group. The test makes the kernel hand the script's PID to a new process group as soon as
// the script is reaped (root only: it sets ns_last_pid), while a process that left the
// script's group keeps Load waiting; that group must survive Load.
func TestScriptGroupNotReused(t *testing.T) {
	const lastPID = "/proc/sys/kernel/ns_last_pid"
	if os.Geteuid() != 0 {
		t.Skip("needs root, to set " + lastPID)
	}
	if f, err := os.OpenFile(lastPID, os.O_WRONLY, 0); err != nil {
		t.Skipf("cannot set the next PID: %v", err)
	} else {
		f.Close()
	}
	const script = "#!/bin/sh\nd=$(dirname \"$0\")\necho $$ > \"$d/script.tmp\" && mv \"$d/script.tmp\" \"$d/script\"\n" +
		"setsid sh -c 'echo $$ > \"$1/escaped\"; exec sleep 30' sh \"$d\" &\n" +
		"while [ ! -s \"$d/escaped\" ]; do sleep 0.01; done\necho '{\"g\": [\"h1\"], \"_meta\": {\"hostvars\": {}}}'\n"
	// Once the script is reaped, the next process forked gets its PID and makes it the ID
	// of a group of its own.
	const taker = `d=$1; i=0
while [ ! -s "$d/script" ]; do i=$((i+1)); [ $i -lt 2000 ] || exit 1; sleep 0.005; done; p=$(cat "$d/script")
while [ -e /proc/$p ]; do i=$((i+1)); [ $i -lt 4000 ] || exit 1; sleep 0.005; done
echo $((p-1)) > ` + lastPID + `
setsid sleep 30 &
echo $! > "$d/victim"
`
	for try := 0; try < 5; try++ {
		dir := writeFiles(t, map[string]string{"inv.sh": script})
		tk := exec.Command("sh", "-c", taker, "sh", dir)
		if err := tk.Start(); err != nil {
			t.Fatal(err)
		}
		_, diags := LoadWith(context.Background(), LoadOptions{}, filepath.Join(dir, "inv.sh"))
		if err := tk.Wait(); err != nil {
			t.Fatalf("the PID taker: %v", err)
		}
		if diags.HasErrors() {
			t.Fatal(diags)
		}
		startedPID(t, filepath.Join(dir, "escaped"))
		victim := startedPID(t, filepath.Join(dir, "victim"))
		// long gone: not to be killed at the end, its PID is another process's
		scriptPID := readPID(t, filepath.Join(dir, "script"))
		if victim != scriptPID {
			continue // another process took the PID first
		}
		t.Logf("try %d: the script was %d, the new group %d", try+1, scriptPID, victim)
		if pidGone(victim, time.Second) {
			t.Fatalf("process group %d, started after the script with its PID was reaped, was killed", victim)
		}
		return
	}
	t.Skip("the script's PID went to other processes each time")
}

// TestScriptHostRunsStop: once the timeout is past, or the context ends, during the --host
// runs, one error says so and no other host's run starts.
func TestScriptHostRunsStop(t *testing.T) {
	const script = `#!/bin/sh
if [ "$1" = --list ]; then
  printf '{"g": ['; i=0; while [ $i -lt 100 ]; do [ $i -gt 0 ] && printf ','; printf '"h%d"' $i; i=$((i+1)); done; echo ']}'
  exit 0
fi
echo "$2" >> "$(dirname "$0")/ran"
sleep 0.1
echo '{}'
`
	tests := []struct {
		name       string
		timeout    time.Duration
		ctxTimeout time.Duration
		summary    string
	}{
		{"timeout", time.Second, 0, "Inventory script timed out"},
		{"context", time.Minute, time.Second, "Inventory script failed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := writeFiles(t, map[string]string{"inv.sh": script})
			ctx := context.Background()
			if tt.ctxTimeout > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, tt.ctxTimeout)
				defer cancel()
			}
			_, diags := LoadWith(ctx, LoadOptions{ScriptTimeout: tt.timeout}, filepath.Join(dir, "inv.sh"))
			if len(diags) != 1 || diags[0].Summary != tt.summary || !strings.Contains(diags[0].Detail, "--host h") {
				t.Errorf("%d diagnostics, want 1 (%s): %v", len(diags), tt.summary, diags)
			}
			ran, _ := os.ReadFile(filepath.Join(dir, "ran"))
			if n := strings.Count(string(ran), "\n"); n >= 100 {
				t.Errorf("all %d --host runs were started", n)
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
		"ANSIBLE_CONFIG=/etc/ansible.cfg", "ANSIBLE_HOME=/home/op/.ansible", "RUNBOOK_INVENTORY_REGION=eu",
		"https_proxy=http://proxy:3128", "NO_PROXY=.lan", "SSL_CERT_FILE=/etc/ca.pem", "REQUESTS_CA_BUNDLE=/etc/ca.pem",
		"RUNBOOK_VAR_token=hunter2", "SSH_AUTH_SOCK=/run/agent", "AWS_SECRET_ACCESS_KEY=k", "AWS_PROFILE=p",
		"OS_CLOUD=c", "SHELL=/bin/bash", "PS1=$ ",
		// Ansible's settings pass by name; those that hold passwords do not
		"ANSIBLE_BECOME_PASS=b", "ANSIBLE_NET_PASSWORD=n", "ANSIBLE_SUDO_PASS=s", "ANSIBLE_GALAXY_TOKEN=g",
	}
	allowed := base[:17]
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
// which is where the reason usually is, and no more than stderrTail bytes of it. It says
// how to pass a variable the script may be missing.
func TestScriptStderrTail(t *testing.T) {
	dir := writeFiles(t, map[string]string{
		"fail.sh": "#!/bin/sh\nyes 'noise line' | head -c 1000000 >&2\necho 'Traceback: the real reason' >&2\nexit 3\n",
	})
	_, diags := Load(context.Background(), filepath.Join(dir, "fail.sh"))
	if !diags.HasErrors() || diags[0].Summary != "Inventory script failed" {
		t.Fatalf("diagnostics: %v", diags)
	}
	d := diags[0].Detail
	if !strings.Contains(d, "exit status 3. The script gets only part of runbook's environment; name the other variables it needs in RUNBOOK_INVENTORY_PASSENV.") || !strings.HasSuffix(d, "Traceback: the real reason") || len(d) > stderrTail+500 {
		t.Errorf("detail (%d bytes): %.300s ... %s", len(d), d, d[max(0, len(d)-100):])
	}
}
