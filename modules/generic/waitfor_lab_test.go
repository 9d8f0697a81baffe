package generic_test

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/runbook/runbook/internal/labtest"
	"github.com/runbook/runbook/testenv"
	"github.com/runbook/runbook/testenv/testlab"
)

// TestWaitForOnLabHost runs wait_for through the real CLI against an ns-tier lab host: a
// port that a background process on the host opens after two seconds and closes two
// seconds later, a log file that a background process writes after two seconds and
// removes later, in check mode and apply; a wait that runs out fails (exit 2) saying what
// it waited for; and a task timeout shorter than wait_for's ends the wait with wait_for's
// own message, not the engine's bare one. Every background process is started in a
// session of its own and killed by its recorded id at the end.
func TestWaitForOnLabHost(t *testing.T) {
	lab := testlab.Start(t, testenv.Options{Tier: testenv.TierNS, Hosts: 1})
	r := labtest.New(t, lab)
	sh := func(cmd string) string {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		out, err := lab.Exec(ctx, "lab01", "sh", "-c", cmd)
		if err != nil {
			t.Fatalf("lab01: %s: %v\n%s", cmd, err, out)
		}
		return string(out)
	}
	if _, err := lab.Exec(context.Background(), "lab01", "sh", "-c", "command -v perl"); err != nil {
		t.Fatal("the lab host has no perl (this machine's), which the test's listener is")
	}
	// bg starts script in the background in a session of its own, returns its leader's
	// id, and kills that session by it when the test ends.
	bg := func(script string) string {
		t.Helper()
		pid := strings.TrimSpace(sh("setsid sh -c '" + script + "' </dev/null >/dev/null 2>&1 & echo $!"))
		if _, err := strconv.Atoi(pid); err != nil {
			t.Fatalf("background pid %q", pid)
		}
		t.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			_, _ = lab.Exec(ctx, "lab01", "sh", "-c", "kill -- -"+pid+" 2>/dev/null; true")
		})
		return pid
	}
	// result runs wait_for with JSON output and returns its exit code and result line.
	result := func(args ...string) (int, map[string]any, string) {
		t.Helper()
		res := r.Module("lab01", "wait_for", append(args, "-o", "json")...)
		for line := range strings.SplitSeq(res.Out, "\n") {
			var v map[string]any
			if json.Unmarshal([]byte(line), &v) == nil && v["type"] == "result" {
				return res.Code, v, res.Out
			}
		}
		t.Fatalf("no result line in:\n%s", res.Out)
		return 0, nil, ""
	}
	elapsed := func(v map[string]any) float64 {
		data, _ := v["data"].(map[string]any)
		e, _ := data["elapsed"].(float64)
		return e
	}

	// A port a process opens two seconds from now, and closes two seconds after that.
	const listener = `sleep 2; exec perl -MIO::Socket::INET -e "my \$s = IO::Socket::INET->new(LocalAddr => q(127.0.0.1), LocalPort => 18080, Listen => 5, ReuseAddr => 1) or die; while (my \$c = \$s->accept) { close \$c }"`
	pid := bg(listener) // sh execs perl: the same process
	code, v, out := result("port=18080", "timeout=30", "sleep=0.2")
	if code != 0 || v["status"] != "ok" || elapsed(v) < 1 || elapsed(v) > 10 {
		t.Fatalf("wait for the port to open: exit %d\n%s", code, out)
	}
	if !regexp.MustCompile(`"msg":"waited [0-9.]+s for port 18080 on 127\.0\.0\.1 to open"`).MatchString(out) {
		t.Errorf("message:\n%s", out)
	}
	// Check mode waits the same way and reports ok: the port is open now.
	if code, v, out := result("port=18080", "timeout=5", "--check"); code != 0 || v["status"] != "ok" {
		t.Errorf("check mode: exit %d\n%s", code, out)
	}
	bg("sleep 2; kill " + pid)
	code, v, out = result("port=18080", "state=stopped", "timeout=30", "sleep=0.2", "--check")
	if code != 0 || v["status"] != "ok" || elapsed(v) < 1 {
		t.Fatalf("wait for the port to close, in check mode: exit %d\n%s", code, out)
	}

	// A log line written two seconds from now; the file removed two seconds later.
	sh("mkdir -p /tmp/wf && rm -f /tmp/wf/app.log && echo starting > /tmp/wf/app.log")
	bg(`sleep 2; echo "server ready on port 8443" >> /tmp/wf/app.log; sleep 2; rm /tmp/wf/app.log`)
	code, v, out = result("path=/tmp/wf/app.log", "search_regex=^server ready on port ([0-9]+)$", "timeout=30", "sleep=0.2")
	data, _ := v["data"].(map[string]any)
	if code != 0 || v["status"] != "ok" || data["match"] != "server ready on port 8443" || len(data["match_groups"].([]any)) != 1 ||
		data["match_groups"].([]any)[0] != "8443" || elapsed(v) < 1 {
		t.Fatalf("wait for the log line: exit %d\n%s", code, out)
	}
	code, v, out = result("path=/tmp/wf/app.log", "state=absent", "timeout=30", "sleep=0.2")
	if code != 0 || v["status"] != "ok" || elapsed(v) < 1 {
		t.Fatalf("wait for the file to go: exit %d\n%s", code, out)
	}
	if got := sh("test -e /tmp/wf/app.log && echo present || echo absent"); got != "absent\n" {
		t.Errorf("the file: %s", got)
	}

	// Time running out: wait_for's own timeout, then a shorter task timeout.
	start := time.Now()
	res := r.Module("lab01", "wait_for", "port=18081", "timeout=1", "sleep=0.2")
	if res.Code != 2 || !res.Matches(`timed out after 1(\.[0-9])?s waiting for port 18081 on 127\.0\.0\.1 to open \(last seen: dial tcp 127\.0\.0\.1:18081: connect: connection refused\)`) {
		t.Errorf("a wait that runs out: exit %d\n%s", res.Code, res.Out)
	}
	if took := time.Since(start); took > 20*time.Second {
		t.Errorf("a one-second wait took %s", took)
	}
	dir := t.TempDir()
	rb := filepath.Join(dir, "wait.hcl")
	if err := os.WriteFile(rb, []byte(`play "wait" {
  hosts = "all"
  task "never there" {
    timeout = "3s"
    wait_for {
      path    = "/tmp/wf/never"
      timeout = 300
    }
  }
}
`), 0o644); err != nil {
		t.Fatal(err)
	}
	start = time.Now()
	res = r.Run("exec", rb, "-i", lab.Inventory)
	if res.Code != 2 || !res.Matches(`stopped after 2\.[0-9]s, at the task's timeout \(or the host's; before wait_for's timeout of 300s\), waiting for /tmp/wf/never to exist \(last seen: absent\)`) {
		t.Errorf("a task timeout shorter than wait_for's: exit %d\n%s", res.Code, res.Out)
	}
	if took := time.Since(start); took > 20*time.Second {
		t.Errorf("a three-second task took %s", took)
	}
	t.Logf("a task timeout shorter than wait_for's:\n%s", res.Out)
	if regexp.MustCompile(`lab01 +changed`).MatchString(res.Out) {
		t.Errorf("wait_for reported a change:\n%s", res.Out)
	}
}
