package remote

import (
	"bytes"
	"compress/gzip"
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
	"github.com/runbook/runbook/internal/sh"
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
		{args: "-o HostName=10.9.9.9 -o IdentityAgent=none", want: transport.Target{Address: "10.9.9.9", IdentityAgent: "none"}},
		// the first value of an option wins, as ssh reads its command line
		{args: "-o StrictHostKeyChecking=accept-new -o StrictHostKeyChecking=no", want: transport.Target{StrictHostKeyChecking: "accept-new"}},
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
		if err != nil && strings.Contains(err.Error(), "soon") {
			t.Errorf("%q: the error shows the value: %v", tt.args, err)
		}
		if !tt.err && !reflect.DeepEqual(got, tt.want) {
			t.Errorf("%q: got %+v, want %+v", tt.args, got, tt.want)
		}
	}
}

// shell is a POSIX shell the scripts are run with, and the PATH it gets.
type shell struct{ name, bin, path string }

// shells are the shells the scripts are tested with: dash (Debian's sh) and bash with this
// machine's tools, and busybox's ash with nothing but busybox's applets (its stat, mkdir,
// sha256sum...), as on the smallest hosts. busybox is one of the packages the tests need
// (scripts/install-deps.sh); without it, CI fails and a local run skips that shell.
func shells(t *testing.T) []shell {
	out := []shell{{"dash", "sh", os.Getenv("PATH")}, {"bash", "bash", os.Getenv("PATH")}}
	bb, err := exec.LookPath("busybox")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("CI=true and busybox is not installed: %v", err)
		}
		t.Logf("busybox is not installed: the scripts are not tried with its shell")
		return out
	}
	dir := traversable(t, t.TempDir())
	for _, applet := range []string{"sh", "stat", "mkdir", "mv", "chmod", "rm", "cat", "head", "sha256sum", "id", "uname", "printf", "find"} {
		if err := os.Symlink(bb, filepath.Join(dir, applet)); err != nil {
			t.Fatal(err)
		}
	}
	return append(out, shell{"busybox", filepath.Join(dir, "sh"), dir})
}

// runScript runs script with sh as uid and gid u (the test runs as root), in env, with
// stdin; it returns stdout, stderr and the exit code. A user other than root needs the
// test's directories opened to it (traversable).
func runScript(t *testing.T, sl shell, script string, u int, stdin string, env ...string) (string, string, int) {
	t.Helper()
	cmd := exec.Command(sl.bin, "-c", script)
	cmd.Env = append([]string{"PATH=" + sl.path, "HOSTTYPE=x86_64"}, env...)
	if u != 0 {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(u), Gid: uint32(u)}}
	}
	cmd.Stdin = strings.NewReader(stdin)
	var out, errb strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return out.String(), errb.String(), code
}

// traversable opens a test's temporary directory, and the directory the test package made
// for it, to other users (0755, still root's), so that a script run as another user can
// reach what the test puts there.
func traversable(t *testing.T, dir string) string {
	t.Helper()
	for _, d := range []string{dir, filepath.Dir(dir)} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// TestStartScript runs the start script: it must exec a helper whose hash matches and
// refuse (exit 97) one that is missing, altered or a symbolic link, with and without reading
// the file's identity for the stamp store.
func TestStartScript(t *testing.T) {
	for _, shell := range shells(t) {
		for _, stamp := range []bool{false, true} {
			dir := t.TempDir()
			p := filepath.Join(dir, "helper")
			body := []byte("#!/bin/sh\necho started $RUNBOOK_HELPER_HOW\n")
			os.WriteFile(p, body, 0o755)
			sha := fileSHA(t, p)
			if err := os.Rename(p, filepath.Join(dir, sha)); err != nil {
				t.Fatal(err)
			}
			p = filepath.Join(dir, sha)
			out, errs, code := runScript(t, shell, startScript(dir, sha, stamp, ""), 0, "")
			how, st := parseVerified(strings.TrimPrefix(strings.TrimSpace(out), "started "))
			// busybox's stat has no nanosecond times: its identity is no usable stamp.
			if code != 0 || how != "hash" || (st != "") != stamp || (stamp && validStamp(st) == (shell.name == "busybox")) {
				t.Fatalf("%s stamp=%v: good helper: %q %q exit %d", shell.name, stamp, out, errs, code)
			}
			for _, tc := range []struct {
				name  string
				setup func()
			}{
				{"altered", func() { os.WriteFile(p, []byte("#!/bin/sh\necho evil\n"), 0o755) }},
				{"a link to a good copy", func() {
					os.WriteFile(p+".real", body, 0o755)
					os.Remove(p)
					os.Symlink(p+".real", p)
				}},
				{"missing", func() { os.Remove(p) }},
			} {
				tc.setup()
				if out, errs, code := runScript(t, shell, startScript(dir, sha, stamp, ""), 0, ""); code != exitHelperMissing {
					t.Errorf("%s stamp=%v: %s helper: %q %q exit %d, want exit %d", shell.name, stamp, tc.name, out, errs, code, exitHelperMissing)
				}
			}
		}
	}
}

// TestCheckFunc runs the place check of every start and install against directories with
// the owners and modes an attacker with a local account could leave, as the user 4242.
func TestCheckFunc(t *testing.T) {
	const u = 4242
	tests := []struct {
		name string
		// the directory tree under a root-owned 0755 base: each level's owner and mode,
		// outermost first; the last level is the helper directory
		levels []struct {
			uid  int
			mode os.FileMode
		}
		file    os.FileMode // the helper file's mode; 0: no file
		fileUID int
		want    string // "" for a pass, else a part of the message
	}{
		{name: "private home cache", levels: lv(u, 0o755, u, 0o700), file: 0o755, fileUID: u},
		{name: "root-owned tree", levels: lv(0, 0o755, 0, 0o755), file: 0o755, fileUID: 0},
		{name: "the user's dir under a sticky /tmp", levels: lv(0, 0o1777, u, 0o700), file: 0o700, fileUID: u},
		{name: "planted by another user", levels: lv(0, 0o1777, 1001, 0o777), want: "belongs to uid 1001, not to root or to uid 4242"},
		{name: "another user's dir", levels: lv(1001, 0o755, u, 0o700), want: "belongs to uid 1001"},
		{name: "group-writable helper dir", levels: lv(u, 0o755, u, 0o770), want: "is writable by users other than its owner (mode 770)"},
		{name: "world-writable parent without sticky bit", levels: lv(0, 0o777, u, 0o700), want: "(mode 777)"},
		{name: "sticky but not root's", levels: lv(1001, 0o1777, u, 0o700), want: "belongs to uid 1001"},
		{name: "a sticky helper dir itself", levels: lv(u, 0o755, 0, 0o1777), want: "(mode 1777)"},
		{name: "group-writable file", levels: lv(u, 0o755, u, 0o700), file: 0o775, fileUID: u, want: "(mode 775)"},
		{name: "another user's file", levels: lv(u, 0o755, u, 0o700), file: 0o755, fileUID: 1001, want: "belongs to uid 1001"},
	}
	for _, shell := range shells(t) {
		for _, tt := range tests {
			base := filepath.Join(traversable(t, t.TempDir()), "base")
			os.Mkdir(base, 0o755)
			dir := base
			for i, l := range tt.levels {
				dir = filepath.Join(dir, "d"+strconv.Itoa(i))
				if err := os.Mkdir(dir, 0o700); err != nil {
					t.Fatal(err)
				}
				syscall.Chmod(dir, uint32(l.mode)) // os.Chmod would not take 0o1000 as the sticky bit
				os.Chown(dir, l.uid, -1)
			}
			args := sh.Quote(dir)
			if tt.file != 0 {
				f := filepath.Join(dir, "helper")
				os.WriteFile(f, nil, 0o600)
				syscall.Chmod(f, uint32(tt.file))
				os.Chown(f, tt.fileUID, -1)
				args += " " + sh.Quote(f)
			}
			out, errs, code := runScript(t, shell, uidVar+checkFunc+"; ck "+args+"; echo passed", u, "")
			switch {
			case tt.want == "" && (code != 0 || out != "passed\n"):
				t.Errorf("%s: %s: %q %q exit %d, want a pass", shell.name, tt.name, out, errs, code)
			case tt.want != "" && (code != exitUnsafe || !strings.Contains(errs, tt.want) || out != ""):
				t.Errorf("%s: %s: %q %q exit %d, want exit %d saying %q", shell.name, tt.name, out, errs, code, exitUnsafe, tt.want)
			}
		}
	}
}

// lv makes the levels of a TestCheckFunc case from uid, mode pairs.
func lv(pairs ...any) []struct {
	uid  int
	mode os.FileMode
} {
	var out []struct {
		uid  int
		mode os.FileMode
	}
	for i := 0; i < len(pairs); i += 2 {
		out = append(out, struct {
			uid  int
			mode os.FileMode
		}{pairs[i].(int), os.FileMode(pairs[i+1].(int))})
	}
	return out
}

// TestStreamScript stores a helper the way a push under become does, from stdin, and checks what it
// refuses: a directory another user could change, a link planted at the temporary name,
// content whose hash is not the build's.
func TestStreamScript(t *testing.T) {
	body := "#!/bin/sh\necho started\n"
	sha := fmt.Sprintf("%x", sha256.Sum256([]byte(body)))
	for _, shell := range shells(t) {
		home := t.TempDir()
		dir := filepath.Join(home, ".cache", "runbook", "helper")
		_, errs, code := runScript(t, shell, streamScript(dir, sha, "tag1", len(body), false), 0, body)
		if code != 0 {
			t.Fatalf("%s: install: exit %d %q", shell.name, code, errs)
		}
		fi, err := os.Stat(filepath.Join(dir, sha))
		if err != nil || fi.Mode().Perm() != 0o755 {
			t.Fatalf("%s: installed helper: %v %v", shell.name, fi, err)
		}
		for _, d := range []string{filepath.Join(home, ".cache"), dir} {
			if fi, err := os.Stat(d); err != nil || fi.Mode().Perm() != 0o700 {
				t.Errorf("%s: new directory %s: %v %v, want mode 0700", shell.name, d, fi, err)
			}
		}
		if out, errs, code := runScript(t, shell, startScript(dir, sha, false, ""), 0, ""); code != 0 || out != "started\n" {
			t.Errorf("%s: start after install: %q %q exit %d", shell.name, out, errs, code)
		}

		// What an upload cut off two hours ago left is removed by the next push; an upload
		// under way (a fresh temporary file) is not.
		stale, fresh := filepath.Join(dir, "."+sha[:16]+".old.tmp"), filepath.Join(dir, "."+sha[:16]+".busy.tmp")
		os.WriteFile(stale, []byte("half"), 0o600)
		os.WriteFile(fresh, []byte("half"), 0o600)
		old := time.Now().Add(-2 * time.Hour)
		os.Chtimes(stale, old, old)
		if _, errs, code := runScript(t, shell, streamScript(dir, sha, "tag0", len(body), false), 0, body); code != 0 {
			t.Fatalf("%s: second install: exit %d %q", shell.name, code, errs)
		}
		if _, err := os.Lstat(stale); err == nil {
			t.Errorf("%s: a stale temporary file stayed", shell.name)
		}
		if _, err := os.Lstat(fresh); err != nil {
			t.Errorf("%s: a fresh temporary file was removed: %v", shell.name, err)
		}
		os.Remove(fresh)

		// A link planted at the temporary name is not written through.
		victim := filepath.Join(home, "victim")
		os.WriteFile(victim, []byte("keep"), 0o600)
		tmp := filepath.Join(dir, "."+sha[:16]+".tag2.tmp")
		os.Remove(filepath.Join(dir, sha))
		os.Symlink(victim, tmp)
		runScript(t, shell, streamScript(dir, sha, "tag2", len(body), false), 0, body)
		if b, _ := os.ReadFile(victim); string(b) != "keep" {
			t.Errorf("%s: the upload wrote through a planted link: victim holds %q", shell.name, b)
		}

		// Another content than the build's is never stored.
		os.Remove(filepath.Join(dir, sha))
		_, errs, code = runScript(t, shell, streamScript(dir, sha, "tag3", len(body), false), 0, "#!/bin/sh\necho evil\n")
		if code == 0 || !strings.Contains(errs, "is not the helper's") {
			t.Errorf("%s: altered upload: exit %d %q", shell.name, code, errs)
		}
		if ents, _ := os.ReadDir(dir); len(ents) > 1 { // the planted link may stay
			t.Errorf("%s: altered upload left %v", shell.name, ents)
		}

		// In a sticky directory such as /tmp, the user's own new directory is fine...
		sticky := filepath.Join(traversable(t, t.TempDir()), "tmp")
		os.Mkdir(sticky, 0o700)
		syscall.Chmod(sticky, 0o1777)
		mine := filepath.Join(sticky, "runbook-4242", ".cache/runbook/helper")
		if _, errs, code := runScript(t, shell, streamScript(mine, sha, "tag4", len(body), false), 4242, body); code != 0 {
			t.Errorf("%s: new directory in a sticky one: exit %d %q", shell.name, code, errs)
		}
		// ...but one another user made there first is refused, and nothing is made in it.
		other := filepath.Join(sticky, "runbook-4243")
		os.Mkdir(other, 0o777)
		os.Chmod(other, 0o777)
		os.Chown(other, 1001, 1001)
		_, errs, code = runScript(t, shell, streamScript(filepath.Join(other, ".cache/runbook/helper"), sha, "tag5", len(body), false), 4243, body)
		if code != exitUnsafe || !strings.Contains(errs, other+" belongs to uid 1001") {
			t.Errorf("%s: planted directory: exit %d %q", shell.name, code, errs)
		}
		if ents, _ := os.ReadDir(other); len(ents) != 0 {
			t.Errorf("%s: the install made %v in a directory another user owns", shell.name, ents)
		}
	}
}

// TestStreamScriptReadsItsLength: under su and doas the helper goes over a terminal's
// input, which never ends; the push reads the helper's length and stops, whatever follows.
func TestStreamScriptReadsItsLength(t *testing.T) {
	body := "#!/bin/sh\necho started\n"
	sha := fmt.Sprintf("%x", sha256.Sum256([]byte(body)))
	for _, shell := range shells(t) {
		dir := filepath.Join(t.TempDir(), "helper")
		r, w, err := os.Pipe()
		if err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(shell.bin, "-c", streamScript(dir, sha, "tagL", len(body), false))
		cmd.Env = []string{"PATH=" + shell.path}
		cmd.Stdin = r
		var errb strings.Builder
		cmd.Stderr = &errb
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		r.Close()
		// The helper, then what a terminal may hold after it; the input stays open.
		if _, err := w.WriteString(body + "more input\n"); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("%s: %v %q", shell.name, err, errb.String())
			}
		case <-time.After(10 * time.Second):
			t.Errorf("%s: the push still waits for the end of its input", shell.name)
			w.Close()
			<-done
		}
		w.Close()
		if b, err := os.ReadFile(filepath.Join(dir, sha)); err != nil || string(b) != body {
			t.Errorf("%s: stored %q %v", shell.name, b, err)
		}
	}
}

// TestUploadScripts runs the two scripts around an SFTP upload (no become): the first
// prepares and checks the directory and prints its physical path, the second checks it
// again and keeps the uploaded file only when its hash is the build's.
func TestUploadScripts(t *testing.T) {
	body := "#!/bin/sh\necho started\n"
	sha := fmt.Sprintf("%x", sha256.Sum256([]byte(body)))
	for _, shell := range shells(t) {
		home := t.TempDir()
		os.Symlink(home, home+".link")
		dir := filepath.Join(home+".link", ".cache", "runbook", "helper")
		out, errs, code := runScript(t, shell, placeScript(dir)+`printf '%s\n' "$d"`, 0, "")
		phys := strings.TrimSuffix(out, "\n")
		if code != 0 || phys != filepath.Join(home, ".cache", "runbook", "helper") {
			t.Fatalf("%s: place: %q %q exit %d", shell.name, out, errs, code)
		}
		for _, tc := range []struct {
			name, content string
			link          bool
			want          int
		}{
			{name: "altered upload", content: "#!/bin/sh\necho evil\n", want: 1},
			{name: "a link at the name", content: body, link: true, want: 1},
			{name: "good upload", content: body},
		} {
			tmp := filepath.Join(phys, tmpName(sha, "tag"))
			if tc.link {
				os.WriteFile(tmp+".real", []byte(tc.content), 0o600)
				os.Symlink(tmp+".real", tmp)
			} else {
				os.WriteFile(tmp, []byte(tc.content), 0o600)
			}
			_, errs, code := runScript(t, shell, keepUploadScript(phys, sha, "tag", false, false), 0, "")
			_, serr := os.Lstat(filepath.Join(phys, sha))
			if code != tc.want || (serr == nil) != (tc.want == 0) {
				t.Errorf("%s: %s: exit %d %q, stored: %v", shell.name, tc.name, code, errs, serr == nil)
			}
			if _, err := os.Lstat(tmp); err == nil {
				t.Errorf("%s: %s: the temporary name is left", shell.name, tc.name)
			}
		}
		// The directory made writable by others between the two steps: refused.
		os.Chmod(phys, 0o777)
		os.WriteFile(filepath.Join(phys, tmpName(sha, "tag")), []byte(body), 0o600)
		if _, errs, code := runScript(t, shell, keepUploadScript(phys, sha, "tag", false, false), 0, ""); code != exitUnsafe {
			t.Errorf("%s: a directory opened up during the upload: exit %d %q", shell.name, code, errs)
		}
	}
}

// TestCompressedPush stores a helper sent compressed, both ways a push goes (stdin under
// become, an upload over SFTP), and checks that what is kept is what was inflated and hashed:
// a compressed upload of other content, or one that is not gzip at all, is refused and
// leaves no file; a link planted at the name the upload inflates into is not written through.
func TestCompressedPush(t *testing.T) {
	body := "#!/bin/sh\necho started\n" + strings.Repeat("# padding\n", 200)
	sha := fmt.Sprintf("%x", sha256.Sum256([]byte(body)))
	gz := func(s string) string {
		var b bytes.Buffer
		w := gzip.NewWriter(&b)
		w.Write([]byte(s))
		w.Close()
		return b.String()
	}
	tested := 0
	for _, shell := range shells(t) {
		if _, _, code := runScript(t, shell, probeLine+` | grep -q 'gz$'`, 0, ""); code != 0 {
			// the probe says this shell's host cannot inflate: it is sent the helper as it is
			continue
		}
		tested++
		home := t.TempDir()
		dir := filepath.Join(home, ".cache", "runbook", "helper")
		z := gz(body)
		if _, errs, code := runScript(t, shell, streamScript(dir, sha, "s1", len(z), true), 0, z); code != 0 {
			t.Fatalf("%s: stream: exit %d %q", shell.name, code, errs)
		}
		if got := fileSHA(t, filepath.Join(dir, sha)); got != sha {
			t.Fatalf("%s: stored %s, want %s", shell.name, got, sha)
		}
		os.Remove(filepath.Join(dir, sha))
		evil := gz("#!/bin/sh\necho evil\n")
		if _, _, code := runScript(t, shell, streamScript(dir, sha, "s2", len(evil), true), 0, evil); code == 0 {
			t.Errorf("%s: stream: compressed other content was kept", shell.name)
		}

		phys := dir
		for _, tc := range []struct {
			name, upload string
			plant        bool
			want         int
		}{
			{name: "other content", upload: evil, want: 1},
			{name: "not gzip", upload: body, want: 1},
			{name: "a link at the inflated name", upload: z, plant: true, want: 1},
			{name: "good", upload: z},
		} {
			up := filepath.Join(phys, tmpName(sha, "u.gz"))
			out := filepath.Join(phys, tmpName(sha, "u"))
			os.WriteFile(up, []byte(tc.upload), 0o600)
			victim := filepath.Join(home, "victim")
			if tc.plant {
				os.WriteFile(victim, []byte("keep"), 0o600)
				// the script removes a leftover at its own name first, so plant it in a
				// race-free way it cannot remove: a directory
				os.Mkdir(out, 0o700)
			}
			_, errs, code := runScript(t, shell, keepUploadScript(phys, sha, "u", true, false), 0, "")
			_, serr := os.Lstat(filepath.Join(phys, sha))
			if code != tc.want || (serr == nil) != (tc.want == 0) {
				t.Errorf("%s: %s: exit %d %q, stored: %v", shell.name, tc.name, code, errs, serr == nil)
			}
			if _, err := os.Lstat(up); err == nil {
				t.Errorf("%s: %s: the compressed upload is left", shell.name, tc.name)
			}
			if b, _ := os.ReadFile(victim); tc.plant && string(b) != "keep" {
				t.Errorf("%s: %s: wrote through", shell.name, tc.name)
			}
			os.Remove(out)
			os.Remove(filepath.Join(phys, sha))
		}
	}
	if tested == 0 {
		t.Fatal("no shell with gzip to test with")
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
		cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + home, "HOSTTYPE=x86_64"}
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
	// A symbolic link at the helper's path is not followed, even to a good copy: the start
	// reports the helper missing, and a push replaces the link with the file.
	real := filepath.Join(home, "real-helper")
	if err := os.Rename(p, real); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(real, p); err != nil {
		t.Fatal(err)
	}
	if out, code = start(true, sha, stamp); code != exitHelperMissing {
		t.Errorf("through a link: %q exit %d, want exit %d", out, code, exitHelperMissing)
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
	tests := []struct {
		pr   probe
		want []string
	}{
		{probe{uid: 0, home: "/root"}, []string{"/var/lib/runbook/helper", "/root/.cache/runbook/helper"}},
		{probe{uid: 1000, home: "/home/op"}, []string{"/home/op/.cache/runbook/helper", "/tmp/runbook-1000/.cache/runbook/helper"}},
		{probe{uid: 1000, home: "/"}, []string{"/tmp/runbook-1000/.cache/runbook/helper"}},
		{probe{uid: 1000, home: ""}, []string{"/tmp/runbook-1000/.cache/runbook/helper"}},
		{probe{uid: 33, home: "var/www"}, []string{"/tmp/runbook-33/.cache/runbook/helper"}},
	}
	for _, tt := range tests {
		if got := helperDirs(tt.pr); !reflect.DeepEqual(got, tt.want) {
			t.Errorf("%+v: %q, want %q", tt.pr, got, tt.want)
		}
	}
}

func TestParseProbe(t *testing.T) {
	tests := []struct {
		text    string
		want    probe
		ok, err bool
	}{
		{text: "runbook-probe\tx86_64\t0\t/root\n", want: probe{arch: "amd64", uid: 0, home: "/root"}, ok: true},
		{text: "runbook-probe\tx86_64\t0\t/root\tgz\n", want: probe{arch: "amd64", uid: 0, home: "/root", gunzip: true}, ok: true},
		{text: "runbook-probe\tx86_64\t0\t/root\t\n", want: probe{arch: "amd64", uid: 0, home: "/root"}, ok: true},
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
	if pr, ok, err := parseProbe(string(out)); !ok || err != nil || !pr.gunzip {
		t.Errorf("probe line %q: ok=%v err=%v gunzip=%v (this machine has gzip)", out, ok, err, pr.gunzip)
	}
}

// The connector refuses a host whose connection variables runbook cannot honour (for
// callers other than the CLI, which checks every host first), and gives the transport the
// inventory's login password.
func TestTargetRefusesAndPassword(t *testing.T) {
	c := &Connector{SSHConfig: "none"}
	inv, diags := inventory.Parse("inv.ini", []byte("win ansible_connection=winrm ansible_password=s3cr3t-w\nok ansible_host=127.0.0.1 ansible_password=s3cr3t-ok\n"))
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	win, _ := inv.Host("win")
	if _, err := c.Target(win); err == nil || !strings.Contains(err.Error(), `host win: ansible_connection="winrm" is not supported`) || strings.Contains(err.Error(), "s3cr3t") {
		t.Errorf("Target(win): %v", err)
	}
	ok, _ := inv.Host("ok")
	tg, err := c.Target(ok)
	if err != nil || tg.Password != "s3cr3t-ok" {
		t.Errorf("Target(ok) = %#v, %v", tg, err)
	}
}

// Where the inventory's ssh arguments send a host, through Connector.Target with an
// ssh_config that gives every host a jump host: ProxyJump=none (or ProxyCommand=none) in
// the inventory connects directly, as ssh does; a ProxyCommand that runs ssh with more than
// a jump host needs is run as written, not cut down to the jump host.
func TestTargetProxyFromInventory(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "ssh_config")
	if err := os.WriteFile(cfg, []byte("Host web1\n  ProxyJump b\n  UserKnownHostsFile /dev/null\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c := &Connector{SSHConfig: cfg}
	tests := []struct {
		args             string
		jump, proxy, err string
	}{
		{args: "", jump: "b"},
		{args: "-o ProxyJump=none", jump: "", proxy: ""},
		{args: "-J none", jump: "", proxy: ""},
		{args: "-o ProxyCommand=none", jump: "", proxy: ""},
		{args: "-J other", jump: "other"},
		{args: "-o 'ProxyCommand=ssh -p2222 -W %h:%p bastion'", jump: "bastion:2222"},
		{args: "-o 'ProxyCommand=ssh -J outer -W %h:%p inner'", proxy: "ssh -J outer -W web1:22 inner"},
		{args: "-o 'ProxyCommand=ssh -W 10.9.9.9:22 bastion'", proxy: "ssh -W 10.9.9.9:22 bastion"},
		{args: "-o 'ProxyCommand=ssh -i /keys/b -o UserKnownHostsFile=/keys/kh -W %h:%p bastion'",
			proxy: "ssh -i /keys/b -o UserKnownHostsFile=/keys/kh -W web1:22 bastion"},
	}
	for _, tt := range tests {
		inv, diags := inventory.Parse("inv.ini", []byte("web1 ansible_ssh_common_args=\""+tt.args+"\"\n"))
		if diags.HasErrors() {
			t.Fatalf("%q: %v", tt.args, diags)
		}
		h, _ := inv.Host("web1")
		tg, err := c.Target(h)
		if err != nil {
			t.Errorf("%q: %v", tt.args, err)
			continue
		}
		if tg.ProxyJump != tt.jump || tg.ProxyCommand != tt.proxy {
			t.Errorf("%q: ProxyJump %q, ProxyCommand %q; want %q, %q", tt.args, tg.ProxyJump, tg.ProxyCommand, tt.jump, tt.proxy)
		}
	}
}

// TestBecomeMethodsRun: every become method the inventory and the language accept
// (inventory.BecomeMethods, and each name ansible_become_method may give) is one the
// transport runs.
func TestBecomeMethodsRun(t *testing.T) {
	for _, m := range inventory.BecomeMethods {
		if err := transport.CheckBecomeMethod(m); err != nil {
			t.Errorf("become_method %q is accepted but the transport refuses it: %v", m, err)
		}
	}
	for _, v := range []string{"sudo", "su", "doas", "ansible.builtin.sudo", "ansible.builtin.su", "community.general.doas"} {
		h := &inventory.Host{Name: "h", Vars: map[string]any{"ansible_become_method": v}}
		if errs := h.CheckConnection(); len(errs) > 0 {
			t.Fatalf("ansible_become_method=%s: %v", v, errs)
		}
		if m := h.Connection().BecomeMethod; transport.CheckBecomeMethod(m) != nil {
			t.Errorf("ansible_become_method=%s reads as %q, which the transport refuses", v, m)
		}
	}
}

// TestStoredStamp: the store step reports the identity of the file it verified and kept,
// and the first start, given that identity, starts the file without hashing it again; a
// file altered since, or another identity, is hashed (and an altered one refused).
func TestStoredStamp(t *testing.T) {
	body := "#!/bin/sh\necho started $RUNBOOK_HELPER_HOW\n"
	sha := fmt.Sprintf("%x", sha256.Sum256([]byte(body)))
	for _, shell := range shells(t) {
		home := t.TempDir()
		dir := filepath.Join(home, ".cache", "runbook", "helper")
		out, errs, code := runScript(t, shell, placeScript(dir)+`printf '%s\n' "$d"`, 0, "")
		if code != 0 {
			t.Fatalf("%s: place: %q %q exit %d", shell.name, out, errs, code)
		}
		phys := strings.TrimSuffix(out, "\n")
		store := func(stamp bool) string {
			os.WriteFile(filepath.Join(phys, tmpName(sha, "tag")), []byte(body), 0o600)
			out, errs, code := runScript(t, shell, keepUploadScript(phys, sha, "tag", false, stamp), 0, "")
			if code != 0 {
				t.Fatalf("%s: keep: %q %q exit %d", shell.name, out, errs, code)
			}
			return out
		}
		if out := store(false); out != "" {
			t.Errorf("%s: a store without stamps printed %q", shell.name, out)
		}
		stored := storedStamp(store(true))
		if shell.name == "busybox" {
			// its stat has no nanosecond times: no usable stamp, and every start hashes
			if stored != "" {
				t.Errorf("busybox: a stamp without nanoseconds: %q", stored)
			}
			continue
		}
		if stored == "" {
			t.Fatalf("%s: no stamp from the store step", shell.name)
		}
		start := func(expect string) (string, int) {
			out, _, code := runScript(t, shell, startScript(phys, sha, true, expect), 0, "")
			return strings.TrimPrefix(strings.TrimSpace(out), "started "), code
		}
		// The start after the store: the same file, not hashed again.
		if how, code := start(stored); code != 0 || how != "stamp" {
			t.Errorf("%s: the start after the store: %q exit %d, want stamp", shell.name, how, code)
		}
		// What a start that hashes reads as the identity is what the store step reported.
		if how, code := start(""); code != 0 || how != "hash "+stored {
			t.Errorf("%s: a start without a stamp: %q exit %d, want hash %s", shell.name, how, code, stored)
		}
		if how, code := start(strings.Replace(stored, ":", "9:", 1)); code != 0 || how != "hash "+stored {
			t.Errorf("%s: another identity: %q exit %d, want a hash", shell.name, how, code)
		}
		// Altered in place since: its identity changed, so it is hashed, and refused.
		time.Sleep(10 * time.Millisecond)
		os.WriteFile(filepath.Join(phys, sha), []byte("#!/bin/sh\necho evil\n"), 0o755)
		if how, code := start(stored); code != exitHelperMissing {
			t.Errorf("%s: an altered file with the stored stamp: %q exit %d, want exit %d", shell.name, how, code, exitHelperMissing)
		}
	}
}
