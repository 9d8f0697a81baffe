package main

import (
	"bytes"
	"context"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/runbook/runbook/cmd/runbook/cli"
	"github.com/runbook/runbook/engine/helperbin"
	"github.com/runbook/runbook/testenv"
)

// TestBigIPRunbookOnSystemdHosts runs the BIG-IP VE hypervisor runbook against hosts with
// real systemd, NetworkManager and firewalld: the first run prepares them, the second
// changes nothing, and after someone re-enables firewalld on one host, check reports drift
// on exactly that task with exit code 4.
func TestBigIPRunbookOnSystemdHosts(t *testing.T) {
	lab := testenv.Start(t, testenv.Options{Tier: testenv.TierSystemd, Hosts: 3})
	t.Setenv(helperbin.EnvDir, buildHelper(t))
	t.Setenv("HOME", t.TempDir())
	t.Setenv("SSH_AUTH_SOCK", "")
	state := t.TempDir()
	runbook := func(args ...string) (int, string) {
		var out, errb bytes.Buffer
		code := cli.Run(args, nil, &out, &errb, []string{"NO_COLOR=1", "XDG_STATE_HOME=" + state})
		return code, out.String() + errb.String()
	}
	args := []string{"exec", "../../runbooks/bigip-ve-kvm", "-i", lab.Inventory}

	code, out := runbook(args...)
	if code != 0 || !regexp.MustCompile(`lab01 +changed +firewalld off`).MatchString(out) {
		t.Fatalf("first run: exit %d\n%s", code, out)
	}
	code, out = runbook(args...)
	if code != 0 || strings.Contains(out, " changed ") || strings.Count(out, " changed=0 ") != 3 {
		t.Fatalf("second run should change nothing: exit %d\n%s", code, out)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for _, h := range []string{"lab01", "lab02"} {
		got, err := lab.Exec(ctx, h, "systemctl", "is-enabled", "firewalld", "NetworkManager")
		if strings.TrimSpace(string(got)) != "disabled\ndisabled" {
			t.Errorf("%s: firewalld, NetworkManager enabled? %q %v", h, got, err)
		}
	}
	if out, err := lab.Exec(ctx, "lab02", "systemctl", "enable", "--now", "firewalld"); err != nil {
		t.Fatalf("re-enable firewalld: %v %s", err, out)
	}
	code, out = runbook(append([]string{"check"}, args[1:]...)...)
	drifts := regexp.MustCompile(`(?m)^(lab\d+) +drift +(.*?)(:|$)`).FindAllStringSubmatch(out, -1)
	if code != 4 || len(drifts) != 1 || drifts[0][1] != "lab02" || drifts[0][2] != "firewalld off" {
		t.Fatalf("check: exit %d, drift %v\n%s", code, drifts, out)
	}
	if got, _ := lab.Exec(ctx, "lab02", "systemctl", "is-active", "firewalld"); strings.TrimSpace(string(got)) != "active" {
		t.Errorf("check mode changed the host: firewalld is %q", got)
	}
}
