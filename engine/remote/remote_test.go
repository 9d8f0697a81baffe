package remote

import (
	"crypto/sha256"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"syscall"
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
		// what ssh itself refuses is an error, not options quietly dropped
		{args: "-o 'ProxyCommand=nc -X 5 -x proxy:1080 %h %p", err: true},
		{args: "-o UserKnownHostsFile=/lab/known_hosts -o", err: true},
	}
	for _, tt := range tests {
		inv, diags := inventory.Parse("inv.ini", []byte("h ansible_ssh_common_args=\""+strings.ReplaceAll(tt.args, `"`, `\"`)+"\"\n"))
		if diags.HasErrors() {
			t.Fatalf("%q: %v", tt.args, diags)
		}
		h, _ := inv.Host("h")
		got := transport.Target{ProxyJump: h.Connection().ProxyJump}
		opts, err := h.SSHOptions()
		if err == nil {
			err = applySSHOptions(&got, opts)
		}
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
// and refuse (exit 97) one that is missing or altered, with and without reading the file's
// identity for the stamp store.
func TestStartScript(t *testing.T) {
	for _, stamp := range []bool{false, true} {
		dir := t.TempDir()
		p := filepath.Join(dir, "helper")
		os.WriteFile(p, []byte("#!/bin/sh\necho started $RUNBOOK_HELPER_HOW\n"), 0o755)
		sha := fileSHA(t, p)
		out, err := exec.Command("sh", "-c", startScript(p, sha, stamp)).Output()
		how, st := parseVerified(strings.TrimPrefix(strings.TrimSpace(string(out)), "started "))
		if err != nil || how != "hash" || (st != "") != stamp || (stamp && !validStamp(st)) {
			t.Fatalf("stamp=%v: good helper: %q %v", stamp, out, err)
		}
		for name, setup := range map[string]func(){
			"altered": func() { os.WriteFile(p, []byte("#!/bin/sh\necho evil\n"), 0o755) },
			"missing": func() { os.Remove(p) },
		} {
			setup()
			err := exec.Command("sh", "-c", startScript(p, sha, stamp)).Run()
			if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != exitHelperMissing {
				t.Errorf("stamp=%v: %s helper: err = %v, want exit %d", stamp, name, err, exitHelperMissing)
			}
		}
	}
}

func fileSHA(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("%x", sha256.Sum256(b))
}

// TestFastStartScriptStamps runs the fast start script with sh as a user whose helper lives
// in $HOME/.cache: the first start hashes and reports the file's identity; a start that is
// told that identity skips the hash; a file changed since (even with its size and mtime put
// back) is hashed again and refused.
func TestFastStartScriptStamps(t *testing.T) {
	home := t.TempDir()
	dir := filepath.Join(home, ".cache", "runbook", "helper")
	os.MkdirAll(dir, 0o700)
	body := "#!/bin/sh\necho started $RUNBOOK_HELPER_HOW\n"
	tmp := filepath.Join(home, "h")
	os.WriteFile(tmp, []byte(body), 0o755)
	sha := fileSHA(t, tmp)
	p := filepath.Join(dir, sha)
	if err := os.Rename(tmp, p); err != nil {
		t.Fatal(err)
	}
	other := strings.Repeat("b", 64)
	builds := []archBuild{{"x86_64|amd64", sha}, {"aarch64|arm64", other}}
	start := func(stamp bool, build, expect string) (string, int) {
		script, known := fastStartScriptFor(builds, stamp, build, expect)
		if !known[sha] || !known[other] {
			t.Fatalf("known = %v", known)
		}
		cmd := exec.Command("sh", "-c", script)
		// dash does not set these itself; the script reads them as bash would set them.
		cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + home, "EUID=1000", "HOSTTYPE=x86_64"}
		out, err := cmd.Output()
		if ee, ok := err.(*exec.ExitError); ok {
			return string(out), ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		return strings.TrimSpace(strings.TrimPrefix(string(out), "started ")), 0
	}
	if out, code := start(false, "", ""); code != 0 || out != "hash" {
		t.Fatalf("no stamps: %q exit %d", out, code)
	}
	out, code := start(true, "", "")
	how, stamp := parseVerified(out)
	if code != 0 || how != "hash" || !validStamp(stamp) {
		t.Fatalf("first start: %q exit %d", out, code)
	}
	tests := []struct {
		name          string
		build, expect string
		want          string
	}{
		{"same file", sha, stamp, "stamp"},
		{"stamp of another build", other, stamp, "hash " + stamp},
		{"another stamp", sha, strings.Replace(stamp, ":", "9:", 1), "hash " + stamp},
		{"no stamp", sha, "", "hash " + stamp},
	}
	for _, tt := range tests {
		if out, code := start(true, tt.build, tt.expect); code != 0 || out != tt.want {
			t.Errorf("%s: %q exit %d, want %q", tt.name, out, code, tt.want)
		}
	}
	// Reached through a symbolic link, the identity is the file's, not the link's (a link
	// retargeted to another file then shows another inode).
	real := filepath.Join(home, "real-helper")
	if err := os.Rename(p, real); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(real, p); err != nil {
		t.Fatal(err)
	}
	out, code = start(true, "", "")
	_, linkStamp := parseVerified(out)
	var rs syscall.Stat_t
	if err := syscall.Stat(real, &rs); err != nil {
		t.Fatal(err)
	}
	if f := strings.Split(linkStamp, ":"); code != 0 || len(f) < 4 || f[1] != strconv.FormatUint(rs.Ino, 10) || f[3] != "81ed" {
		t.Errorf("through a link: %q exit %d, want the identity of inode %d", out, code, rs.Ino)
	}
	os.Remove(p)
	if err := os.Rename(real, p); err != nil {
		t.Fatal(err)
	}
	out, code = start(true, "", "")
	how, stamp = parseVerified(out)
	if code != 0 || how != "hash" || !validStamp(stamp) {
		t.Fatalf("after the link: %q exit %d", out, code)
	}

	// Alter the file in place: same size, mtime put back. Only its ctime tells.
	st, _ := os.Stat(p)
	evil := strings.Replace(body, "started", "evilish", 1)
	if err := os.WriteFile(p, []byte(evil), 0o755); err != nil {
		t.Fatal(err)
	}
	os.Chtimes(p, st.ModTime(), st.ModTime())
	if out, code := start(true, sha, stamp); code != exitHelperMissing {
		t.Errorf("altered file with the old stamp: %q exit %d, want exit %d", out, code, exitHelperMissing)
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
