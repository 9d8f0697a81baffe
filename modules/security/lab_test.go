package security_test

import (
	"context"
	"encoding/json"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/runbook/runbook/internal/labtest"
	"github.com/runbook/runbook/testenv"
)

// labHost is the one host of a systemd-tier lab, with helpers to run commands on it.
type labHost struct {
	t   *testing.T
	lab *testenv.Lab
	r   *labtest.Runner
}

func startLab(t *testing.T) *labHost {
	lab := testenv.Start(t, testenv.Options{Tier: testenv.TierSystemd, Hosts: 1})
	return &labHost{t: t, lab: lab, r: labtest.New(t, lab)}
}

// sh runs a shell command on lab01 and returns its output; a failure fails the test.
func (h *labHost) sh(cmd string) string {
	h.t.Helper()
	out, err := h.try(cmd)
	if err != nil {
		h.t.Fatalf("lab01: %s: %v\n%s", cmd, err, out)
	}
	return out
}

func (h *labHost) try(cmd string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := h.lab.Exec(ctx, "lab01", "sh", "-c", cmd)
	return string(out), err
}

// result runs the module with JSON output and returns the one result line.
func (h *labHost) result(module string, args ...string) (int, map[string]any) {
	h.t.Helper()
	res := h.r.Module("lab01", module, append(args, "-o", "json")...)
	for line := range strings.SplitSeq(res.Out, "\n") {
		var v map[string]any
		if json.Unmarshal([]byte(line), &v) == nil && v["type"] == "result" {
			return res.Code, v
		}
	}
	h.t.Fatalf("no result line in:\n%s", res.Out)
	return 0, nil
}

const labSELinuxConfig = `# SELinux settings of this lab host.
# SELINUX= enforcing, permissive or disabled.
SELINUX=enforcing
# SELINUXTYPE= the policy.
SELINUXTYPE=default

# SETLOCALDEFS= local definitions.
SETLOCALDEFS=0
`

// TestSELinuxOnLabHost: a Debian host whose kernel runs no SELinux. Only the file is
// managed: check → apply → check → apply for disabled and then permissive, comments kept,
// no reboot reported (the kernel would not run SELinux after one either), runtime "not
// available"; bad arguments fail before the host is touched.
func TestSELinuxOnLabHost(t *testing.T) {
	h := startLab(t)
	if _, err := h.try("test -e /sys/fs/selinux/enforce"); err == nil {
		t.Fatal("this lab host runs SELinux; the test expects a kernel without it")
	}
	h.sh("cat > /etc/selinux/config <<'EOF'\n" + labSELinuxConfig + "EOF\nchmod 0640 /etc/selinux/config")
	snap := func() string { return h.sh("stat -c '%a %U:%G %s' /etc/selinux/config; cat /etc/selinux/config") }

	for _, bad := range [][]string{{"state=enforced"}, {"state=disabled", "bogus=1"}, {"policy=targeted"}, {"state=disabled", "config=etc/selinux/config"}} {
		before := snap()
		if res := h.r.Module("lab01", "selinux", bad...); res.Code != 1 {
			t.Errorf("selinux %v: exit %d, want 1\n%s", bad, res.Code, res.Out)
		}
		if after := snap(); after != before {
			t.Fatalf("a rejected task changed the host:\n%s\n->\n%s", before, after)
		}
	}

	want := labSELinuxConfig
	for _, state := range []string{"disabled", "permissive"} {
		res := h.r.Timeline("lab01", "selinux", []string{"state=" + state}, snap)
		if !strings.Contains(res[0].Out, "-SELINUX=") || !strings.Contains(res[0].Out, "+SELINUX="+state) || !strings.Contains(res[0].Out, "+++ selinux (after; runtime: not available)") {
			t.Errorf("check diff for %s:\n%s", state, res[0].Out)
		}
		if strings.Contains(res[1].Out, "reboot required") {
			t.Errorf("a kernel without SELinux needs no reboot:\n%s", res[1].Out)
		}
		want = regexp.MustCompile(`(?m)^SELINUX=.*$`).ReplaceAllString(want, "SELINUX="+state)
		if got := h.sh("cat /etc/selinux/config"); got != want {
			t.Errorf("config after %s:\n%s\nwant:\n%s", state, got, want)
		}
		if got := h.sh("stat -c %a /etc/selinux/config"); got != "640\n" {
			t.Errorf("mode %q, want 640", got)
		}
		code, v := h.result("selinux", "state="+state)
		data, _ := v["data"].(map[string]any)
		if code != 0 || v["status"] != "ok" || data["runtime"] != "not available" || data["persistent"] != state ||
			data["reboot_required"] != false || data["policy"] != "default" || v["reboot_required"] != nil {
			t.Errorf("result after %s: exit %d %v", state, code, v)
		}
	}
	// The host's own tools agree: SELinux is off in the kernel, the file says permissive.
	if out, _ := h.try("sestatus"); !strings.Contains(out, "disabled") {
		t.Errorf("sestatus: %s", out)
	}
}
