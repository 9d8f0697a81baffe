package remote

import (
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/runbook/runbook/engine/transport"
)

func TestApplySSHArgs(t *testing.T) {
	tests := []struct {
		in   string
		want transport.Target
		err  bool
	}{
		{in: "-o UserKnownHostsFile=/lab/known_hosts -o StrictHostKeyChecking=yes",
			want: transport.Target{KnownHostsFiles: []string{"/lab/known_hosts"}, StrictHostKeyChecking: "yes"}},
		{in: "-o ProxyJump=bastion -o ConnectTimeout=5", want: transport.Target{ProxyJump: "bastion", ConnectTimeout: 5 * time.Second}},
		{in: "-J jump1,jump2", want: transport.Target{ProxyJump: "jump1,jump2"}},
		{in: "-oIdentitiesOnly=yes -o UserKnownHostsFile '/a /b'", want: transport.Target{IdentitiesOnly: true, KnownHostsFiles: []string{"/a", "/b"}}},
		{in: `-o "UserKnownHostsFile=/x y"`, want: transport.Target{KnownHostsFiles: []string{"/x", "y"}}},
		{in: "-o 'ProxyJump=a", err: true},
		{in: "-o StrictHostKeyChecking accept-new", want: transport.Target{StrictHostKeyChecking: "accept-new"}},
		{in: "-o ConnectTimeout=soon", err: true},
		{in: "-o", err: true},
	}
	for _, tt := range tests {
		var got transport.Target
		err := applySSHArgs(&got, tt.in)
		if (err != nil) != tt.err {
			t.Errorf("%q: err = %v", tt.in, err)
			continue
		}
		if !tt.err && !reflect.DeepEqual(got, tt.want) {
			t.Errorf("%q: got %+v, want %+v", tt.in, got, tt.want)
		}
	}
}

// TestStartScript runs the start script with sh: it must exec a helper whose hash matches
// and refuse (exit 97) one that is missing or altered.
func TestStartScript(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "helper")
	os.WriteFile(p, []byte("#!/bin/sh\necho started\n"), 0o755)
	sum, err := exec.Command("sha256sum", p).Output()
	if err != nil {
		t.Skip("no sha256sum:", err)
	}
	sha := string(sum[:64])
	out, err := exec.Command("sh", "-c", startScript(p, sha)).Output()
	if err != nil || string(out) != "started\n" {
		t.Fatalf("good helper: %q %v", out, err)
	}
	for name, setup := range map[string]func(){
		"altered": func() { os.WriteFile(p, []byte("#!/bin/sh\necho evil\n"), 0o755) },
		"missing": func() { os.Remove(p) },
	} {
		setup()
		err := exec.Command("sh", "-c", startScript(p, sha)).Run()
		if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != exitHelperMissing {
			t.Errorf("%s helper: err = %v, want exit %d", name, err, exitHelperMissing)
		}
	}
}

func TestHelperDirs(t *testing.T) {
	if got := helperDirs(probe{uid: 0, home: "/root"}); got[0] != "/var/lib/runbook/helper" || got[1] != "/root/.cache/runbook/helper" {
		t.Errorf("root: %v", got)
	}
	if got := helperDirs(probe{uid: 1000, home: "/home/op"}); len(got) != 1 || got[0] != "/home/op/.cache/runbook/helper" {
		t.Errorf("user: %v", got)
	}
	if got := helperDirs(probe{uid: 1000, home: "/"}); got[0] != "/tmp/runbook-1000/.cache/runbook/helper" {
		t.Errorf("no home: %v", got)
	}
}
