package remote

import (
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/runbook/runbook/engine/transport"
	"github.com/runbook/runbook/inventory"
)

func TestTargetFromInventory(t *testing.T) {
	tests := []struct {
		args string
		want transport.Target
		err  bool
	}{
		{args: "-o UserKnownHostsFile=/lab/known_hosts -o StrictHostKeyChecking=yes",
			want: transport.Target{KnownHostsFiles: []string{"/lab/known_hosts"}, StrictHostKeyChecking: "yes"}},
		{args: "-o ProxyJump=bastion -o ConnectTimeout=5", want: transport.Target{ProxyJump: "bastion", ConnectTimeout: 5 * time.Second}},
		{args: "-J jump1,jump2", want: transport.Target{ProxyJump: "jump1,jump2"}},
		{args: "-oIdentitiesOnly=yes -o \"UserKnownHostsFile /a /b\"", want: transport.Target{IdentitiesOnly: true, KnownHostsFiles: []string{"/a", "/b"}}},
		{args: "-o 'ProxyCommand=nc -X 5 -x proxy:1080 %h %p'", want: transport.Target{ProxyCommand: "nc -X 5 -x proxy:1080 %h %p"}},
		{args: "-o ProxyCommand='ssh -W %h:%p bastion'", want: transport.Target{ProxyJump: "bastion"}},
		{args: "-o ConnectTimeout=soon", err: true},
	}
	for _, tt := range tests {
		inv, diags := inventory.Parse("inv.ini", []byte("h ansible_ssh_common_args=\""+strings.ReplaceAll(tt.args, `"`, `\"`)+"\"\n"))
		if diags.HasErrors() {
			t.Fatalf("%q: %v", tt.args, diags)
		}
		h, _ := inv.Host("h")
		got := transport.Target{ProxyJump: h.Connection().ProxyJump}
		err := applySSHOptions(&got, h.SSHOptions())
		if (err != nil) != tt.err {
			t.Errorf("%q: err = %v", tt.args, err)
			continue
		}
		if !tt.err && !reflect.DeepEqual(got, tt.want) {
			t.Errorf("%q: got %+v, want %+v", tt.args, got, tt.want)
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

func TestParseProbe(t *testing.T) {
	tests := []struct {
		text    string
		want    probe
		ok, err bool
	}{
		{text: "runbook-probe\tx86_64\t0\t/root\n", want: probe{arch: "amd64", uid: 0, home: "/root"}, ok: true},
		{text: "motd noise\nrunbook-probe\taarch64\t1000\t/home/op\r\n", want: probe{arch: "arm64", uid: 1000, home: "/home/op"}, ok: true},
		{text: "runbook-probe\tppc64le\t0\t/root\n", ok: true, err: true},
		{text: "runbook-probe\tx86_64\tnobody\t/\n"},
		{text: "sha256sum: not found\n"},
	}
	for _, tt := range tests {
		got, ok, err := parseProbe(tt.text)
		if ok != tt.ok || (err != nil) != tt.err || (ok && !tt.err && got != tt.want) {
			t.Errorf("parseProbe(%q) = %+v, %v, %v", tt.text, got, ok, err)
		}
	}
	// The probe line the fast start script and the probe session print parses.
	out, err := exec.Command("sh", "-c", probeLine).Output()
	if err != nil {
		t.Fatal(err)
	}
	if _, ok, err := parseProbe(string(out)); !ok || err != nil {
		t.Errorf("probe line %q: ok=%v err=%v", out, ok, err)
	}
}
