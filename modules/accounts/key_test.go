//go:build linux

package accounts

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/zclconf/go-cty/cty"

	"github.com/runbook/runbook/modules"
	"github.com/runbook/runbook/modules/host"
	"github.com/runbook/runbook/modules/moduletest"
)

// The key's user is played by uid and gid 65534 (alice in the test root's passwd), a
// real unprivileged user who owns their home; bob (65533) is another one.
const (
	aliceID      = 65534
	bobID        = 65533
	rootKeys     = "ssh-ed25519 AAAA-root-only root@host\n"
	shadowSecret = "root:$6$secret-of-root:19000::::::\n"
)

// keyRoot makes a test root: etc/passwd naming alice and bob, etc/shadow (root's, 0600),
// root/.ssh/authorized_keys (root's), and home/alice, alice's own directory. Everything
// up to the root can be entered by anyone, as / and /home can.
func keyRoot(t *testing.T) (string, *machine) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("playing root and another user needs root")
	}
	d, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	passwd := fmt.Sprintf("root:x:0:0:root:/root:/bin/bash\nalice:x:%d:%d::/home/alice:/bin/sh\nbob:x:%d:%d::/home/bob:/bin/sh\n", aliceID, aliceID, bobID, bobID)
	for _, step := range []error{
		os.Chmod(filepath.Dir(d), 0o755), os.Chmod(d, 0o755),
		os.MkdirAll(d+"/etc/ssh/keys", 0o755),
		os.WriteFile(d+"/etc/passwd", []byte(passwd), 0o644),
		os.WriteFile(d+"/etc/shadow", []byte(shadowSecret), 0o600),
		os.MkdirAll(d+"/root/.ssh", 0o700),
		os.WriteFile(d+"/root/.ssh/authorized_keys", []byte(rootKeys), 0o600),
		os.MkdirAll(d+"/home/alice", 0o755), os.Chown(d+"/home/alice", aliceID, aliceID),
	} {
		if step != nil {
			t.Fatal(step)
		}
	}
	return d, &machine{root: host.Root(d), run: host.Func(nil)}
}

// rootFilesSafe fails the test when root's files changed.
func rootFilesSafe(t *testing.T, d string) {
	t.Helper()
	for p, want := range map[string]string{"/etc/shadow": shadowSecret, "/root/.ssh/authorized_keys": rootKeys} {
		b, err := os.ReadFile(d + p)
		fi, serr := os.Stat(d + p)
		if err != nil || serr != nil || string(b) != want || fi.Mode() != 0o600 || fi.Sys().(*syscall.Stat_t).Uid != 0 {
			t.Errorf("%s changed: %q %v %v", p, b, err, serr)
		}
	}
	if ents, _ := os.ReadDir(d + "/root/.ssh"); len(ents) != 1 {
		t.Errorf("root's .ssh holds %d names", len(ents))
	}
}

func owned(t *testing.T, p string, uid int, mode os.FileMode) {
	t.Helper()
	fi, err := os.Lstat(p)
	if err != nil {
		t.Fatal(err)
	}
	if st := fi.Sys().(*syscall.Stat_t); int(st.Uid) != uid || int(st.Gid) != uid || fi.Mode().Perm() != mode {
		t.Errorf("%s: uid %d gid %d mode %v, want %d and %v", p, st.Uid, st.Gid, fi.Mode(), uid, mode)
	}
}

func TestAuthorizedKeyTimeline(t *testing.T) {
	for _, tc := range []struct {
		name    string
		setup   func(t *testing.T, d string)
		args    map[string]cty.Value
		path    string // in the root
		want    string // the file afterwards
		removed []string
	}{
		{name: "no .ssh yet", args: map[string]cty.Value{"user": s("alice"), "key": s(keyA + "\n" + keyB)},
			path: "/home/alice/.ssh/authorized_keys", want: keyA + "\n" + keyB + "\n"},
		{name: "key options", args: map[string]cty.Value{"user": s("alice"), "key": s(keyA), "key_options": s(`from="192.0.2.0/24",no-pty`)},
			path: "/home/alice/.ssh/authorized_keys", want: `from="192.0.2.0/24",no-pty ` + keyA + "\n"},
		{name: "exclusive removes a planted key",
			setup: func(t *testing.T, d string) {
				plant(t, d+"/home/alice/.ssh", "# mine\n"+keyC+"\n"+keyA+"\n")
			},
			args: map[string]cty.Value{"user": s("alice"), "key": s(keyA), "exclusive": cty.True},
			path: "/home/alice/.ssh/authorized_keys", want: "# mine\n" + keyA + "\n", removed: []string{fpC}},
		{name: "absent",
			setup: func(t *testing.T, d string) {
				plant(t, d+"/home/alice/.ssh", keyC+"\n"+keyA+"\n")
			},
			args: map[string]cty.Value{"user": s("alice"), "key": s(keyC), "state": s("absent")},
			path: "/home/alice/.ssh/authorized_keys", want: keyA + "\n", removed: []string{fpC}},
		{name: "a path of its own", args: map[string]cty.Value{"user": s("alice"), "key": s(keyB), "path": s("/etc/ssh/keys/alice")},
			path: "/etc/ssh/keys/alice", want: keyB + "\n"},
		{name: "a path through root's link", setup: func(t *testing.T, d string) {
			if err := os.Symlink("ssh/keys", d+"/etc/keys"); err != nil {
				t.Fatal(err)
			}
		}, args: map[string]cty.Value{"user": s("alice"), "key": s(keyB), "path": s("/etc/keys/alice")},
			path: "/etc/ssh/keys/alice", want: keyB + "\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d, m := keyRoot(t)
			if tc.setup != nil {
				tc.setup(t, d)
			}
			snap := func(testing.TB) string {
				b, _ := os.ReadFile(d + tc.path)
				ents, _ := os.ReadDir(filepath.Dir(d + tc.path))
				return fmt.Sprintf("%q %d", b, len(ents))
			}
			res := moduletest.Timeline(t, AuthorizedKey{test: m}, tc.args, moduletest.Snapshot(snap))
			b, err := os.ReadFile(d + tc.path)
			if err != nil || string(b) != tc.want {
				t.Errorf("%s: %q %v, want %q", tc.path, b, err, tc.want)
			}
			owned(t, d+tc.path, aliceID, 0o600)
			if strings.HasPrefix(tc.path, "/home/") {
				owned(t, filepath.Dir(d+tc.path), aliceID, 0o700)
			}
			data := moduletest.Data(t, AuthorizedKey{test: m}, res[1])
			wantPath := tc.path
			if p, ok := tc.args["path"]; ok {
				wantPath = p.AsString()
			}
			if got := data.GetAttr("path").AsString(); got != wantPath {
				t.Errorf("path %s", got)
			}
			var removed []string
			for _, v := range data.GetAttr("removed").AsValueSlice() {
				removed = append(removed, v.AsString())
			}
			if strings.Join(removed, ",") != strings.Join(tc.removed, ",") {
				t.Errorf("removed %v, want %v", removed, tc.removed)
			}
			rootFilesSafe(t, d)
		})
	}
}

// TestAuthorizedKeyStrictModes: a .ssh that others may write is used, with a warning that
// sshd will ignore it.
func TestAuthorizedKeyStrictModes(t *testing.T) {
	d, m := keyRoot(t)
	plant(t, d+"/home/alice/.ssh", "")
	os.Chmod(d+"/home/alice/.ssh", 0o775)
	res, err := moduletest.Run(t, AuthorizedKey{test: m}, map[string]cty.Value{"user": s("alice"), "key": s(keyA)}, false)
	if err != nil || !strings.Contains(strings.Join(res.Warnings, " "), "/home/alice/.ssh may be written by its group or others (mode 0775)") {
		t.Fatalf("%v %+v", err, res)
	}
	os.Chmod(d+"/home/alice/.ssh", 0o700)
	if res, err = moduletest.Run(t, AuthorizedKey{test: m}, map[string]cty.Value{"user": s("alice"), "key": s(keyA)}, false); err != nil || len(res.Warnings) > 0 {
		t.Fatalf("%v %+v", err, res)
	}
}

// plant makes dir (alice's, 0700) with an authorized_keys of alice's.
func plant(t *testing.T, dir, content string) {
	t.Helper()
	for _, step := range []error{
		os.Mkdir(dir, 0o700), os.Chown(dir, aliceID, aliceID),
		os.WriteFile(dir+"/authorized_keys", []byte(content), 0o600), os.Chown(dir+"/authorized_keys", aliceID, aliceID),
	} {
		if step != nil {
			t.Fatal(step)
		}
	}
}

// TestAuthorizedKeyPlantedLinks: every link or foreign file the user could put in the
// way of root is refused with an error that names it, in check mode as in apply, and
// root's files stay as they were.
func TestAuthorizedKeyPlantedLinks(t *testing.T) {
	symlink := func(target, link string, uid int) func(t *testing.T, d string) {
		return func(t *testing.T, d string) {
			if err := os.Symlink(strings.ReplaceAll(target, "ROOT", d), d+link); err != nil {
				t.Fatal(err)
			}
			if err := os.Lchown(d+link, uid, uid); err != nil {
				t.Fatal(err)
			}
		}
	}
	for _, tc := range []struct {
		name  string
		setup func(t *testing.T, d string)
		args  map[string]cty.Value
		want  string
	}{
		{name: "~/.ssh is a link to root's .ssh", setup: symlink("ROOT/root/.ssh", "/home/alice/.ssh", aliceID),
			want: "/home/alice/.ssh is a symbolic link"},
		{name: "~/.ssh is a relative link to root's .ssh", setup: symlink("../../root/.ssh", "/home/alice/.ssh", aliceID),
			want: "/home/alice/.ssh is a symbolic link"},
		{name: "~/.ssh/authorized_keys is a link to /etc/shadow",
			setup: func(t *testing.T, d string) {
				plant(t, d+"/home/alice/.ssh", "")
				os.Remove(d + "/home/alice/.ssh/authorized_keys")
				symlink("ROOT/etc/shadow", "/home/alice/.ssh/authorized_keys", aliceID)(t, d)
			},
			want: "/home/alice/.ssh/authorized_keys is a symbolic link"},
		{name: "~/.ssh/authorized_keys is a link to root's authorized_keys",
			setup: func(t *testing.T, d string) {
				plant(t, d+"/home/alice/.ssh", "")
				os.Remove(d + "/home/alice/.ssh/authorized_keys")
				symlink("ROOT/root/.ssh/authorized_keys", "/home/alice/.ssh/authorized_keys", aliceID)(t, d)
			},
			want: "/home/alice/.ssh/authorized_keys is a symbolic link"},
		{name: "~/.ssh/authorized_keys is a hard link to /etc/shadow",
			setup: func(t *testing.T, d string) {
				plant(t, d+"/home/alice/.ssh", "")
				os.Remove(d + "/home/alice/.ssh/authorized_keys")
				if err := os.Link(d+"/etc/shadow", d+"/home/alice/.ssh/authorized_keys"); err != nil {
					t.Fatal(err)
				}
			},
			want: "/home/alice/.ssh/authorized_keys has 2 names (a hard link)"},
		{name: "~/.ssh/authorized_keys is a hard link to a file of the user's",
			setup: func(t *testing.T, d string) {
				plant(t, d+"/home/alice/.ssh", keyC+"\n")
				if err := os.Link(d+"/home/alice/.ssh/authorized_keys", d+"/home/alice/other"); err != nil {
					t.Fatal(err)
				}
			},
			want: "has 2 names (a hard link)"},
		{name: "~/.ssh is a link to a directory of the user's own", setup: func(t *testing.T, d string) {
			plant(t, d+"/home/alice/real", "")
			symlink("real", "/home/alice/.ssh", aliceID)(t, d)
		}, want: "/home/alice/.ssh is a symbolic link"},
		{name: "~/.ssh belongs to another user", setup: func(t *testing.T, d string) {
			plant(t, d+"/home/alice/.ssh", "")
			os.Chown(d+"/home/alice/.ssh", bobID, bobID)
		}, want: fmt.Sprintf("/home/alice/.ssh belongs to uid %d", bobID)},
		{name: "the home belongs to another user", setup: func(t *testing.T, d string) {
			os.Chown(d+"/home/alice", bobID, bobID)
		}, want: fmt.Sprintf("/home/alice belongs to uid %d", bobID)},
		{name: "a path's directory is a link of the user's to their own directory", args: map[string]cty.Value{"user": s("alice"), "key": s(keyA), "path": s("/home/alice/keys/authorized_keys")},
			setup: func(t *testing.T, d string) {
				plant(t, d+"/home/alice/real", "")
				symlink("real", "/home/alice/keys", aliceID)(t, d)
			}, want: "/home/alice/keys is a symbolic link owned by uid 65534"},
		{name: "a path's file is a link", args: map[string]cty.Value{"user": s("alice"), "key": s(keyA), "path": s("/etc/ssh/keys/alice")},
			setup: symlink("ROOT/etc/shadow", "/etc/ssh/keys/alice", aliceID), want: "/etc/ssh/keys/alice is a symbolic link"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d, m := keyRoot(t)
			tc.setup(t, d)
			args := tc.args
			if args == nil {
				args = map[string]cty.Value{"user": s("alice"), "key": s(keyA)}
			}
			for _, apply := range []bool{false, true} {
				res, err := moduletest.Run(t, AuthorizedKey{test: m}, args, apply)
				var refused *LinkRefusedError
				if !errors.As(err, &refused) || !strings.Contains(err.Error(), tc.want) {
					t.Errorf("apply=%v: %v (%+v), want a refusal: %s", apply, err, res, tc.want)
				}
				if strings.Contains(told(res, err), "secret-of-root") {
					t.Errorf("root's secret is shown: %s", told(res, err))
				}
			}
			rootFilesSafe(t, d)
		})
	}
}

// TestAuthorizedKeyRace: the user swaps ~/.ssh between a directory and a link to root's
// .ssh as fast as they can while runbook adds a key, many times. Whatever runbook
// reports, root's files never change.
func TestAuthorizedKeyRace(t *testing.T) {
	d, m := keyRoot(t)
	for _, tool := range []string{"setpriv", "perl"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s is not installed", tool)
		}
	}
	id := fmt.Sprint(aliceID)
	script := `my $d = shift; chdir "$d/home/alice" or die; mkdir "real"; while (1) { rename ".ssh", "held" if -d ".ssh" && ! -l ".ssh"; symlink "$d/root/.ssh", ".ssh"; select undef, undef, undef, 0.0002; unlink ".ssh"; rename "held", ".ssh" or mkdir ".ssh"; select undef, undef, undef, 0.0005; }`
	cmd := exec.Command("setpriv", "--reuid="+id, "--regid="+id, "--clear-groups", "perl", "-e", script, d)
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	time.Sleep(50 * time.Millisecond)
	args := map[string]cty.Value{"user": s("alice"), "key": s(keyA), "exclusive": cty.True}
	refused, wrote := 0, 0
	for i := 0; i < 300; i++ {
		res, err := moduletest.Run(t, AuthorizedKey{test: m}, args, true)
		switch {
		case err != nil:
			refused++
		case res.Status == modules.StatusChanged:
			wrote++
		}
		if strings.Contains(told(res, err), "AAAA-root-only") {
			t.Fatalf("root's key is shown: %s", told(res, err))
		}
	}
	rootFilesSafe(t, d)
	t.Logf("300 runs: %d refused, %d wrote", refused, wrote)
}

// TestAuthorizedKeyOwner: a file at a path of its own that root owns (a directory of keys
// that root manages, AuthorizedKeysFile /etc/ssh/keys/%u) stays root's, with its mode, so
// that the user cannot edit the keys root put there; every other file is the user's, 0600.
func TestAuthorizedKeyOwner(t *testing.T) {
	for _, tc := range []struct {
		name      string
		path      string // "" is the default path
		existing  bool
		owner     int
		mode      os.FileMode
		wantOwner int
		wantMode  os.FileMode
	}{
		{name: "root's file at a path of its own", path: "/etc/ssh/keys/alice", existing: true, owner: 0, mode: 0o644, wantOwner: 0, wantMode: 0o644},
		{name: "root's file that others may write", path: "/etc/ssh/keys/alice", existing: true, owner: 0, mode: 0o666, wantOwner: 0, wantMode: 0o644},
		{name: "the user's file at a path of its own", path: "/etc/ssh/keys/alice", existing: true, owner: aliceID, mode: 0o644, wantOwner: aliceID, wantMode: 0o600},
		{name: "a new file at a path of its own", path: "/etc/ssh/keys/alice", wantOwner: aliceID, wantMode: 0o600},
		{name: "root's file in the user's .ssh", existing: true, owner: 0, mode: 0o644, wantOwner: aliceID, wantMode: 0o600},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d, m := keyRoot(t)
			args := map[string]cty.Value{"user": s("alice"), "key": s(keyA)}
			p := "/home/alice/.ssh/authorized_keys"
			if tc.path != "" {
				p = tc.path
				args["path"] = s(tc.path)
			} else {
				plant(t, d+"/home/alice/.ssh", "")
			}
			if tc.existing {
				for _, step := range []error{os.WriteFile(d+p, []byte(keyB+"\n"), tc.mode), os.Chmod(d+p, tc.mode), os.Chown(d+p, tc.owner, tc.owner)} {
					if step != nil {
						t.Fatal(step)
					}
				}
			}
			moduletest.Timeline(t, AuthorizedKey{test: m}, args)
			owned(t, d+p, tc.wantOwner, tc.wantMode)
		})
	}
}

// TestAuthorizedKeyMessage: the message says what changes; a file whose keys are as asked
// but that lacks its last line end is not said to have options or comments updated.
func TestAuthorizedKeyMessage(t *testing.T) {
	for _, tc := range []struct {
		name, file string
		args       map[string]cty.Value
		msg        string
	}{
		{name: "no final line end", file: keyA, args: map[string]cty.Value{"user": s("alice"), "key": s(keyA)}, msg: "line end added at the end of the file"},
		{name: "options", file: keyA + "\n", args: map[string]cty.Value{"user": s("alice"), "key": s("no-pty " + keyA)}, msg: "key options or comments updated"},
		{name: "added", file: keyA + "\n", args: map[string]cty.Value{"user": s("alice"), "key": s(keyB)}, msg: "1 key(s) added"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d, m := keyRoot(t)
			plant(t, d+"/home/alice/.ssh", tc.file)
			res, err := moduletest.Run(t, AuthorizedKey{test: m}, tc.args, false)
			if err != nil || !strings.HasSuffix(res.Msg, ": "+tc.msg) {
				t.Fatalf("%v %+v, want a message ending %q", err, res, tc.msg)
			}
		})
	}
}

// TestAuthorizedKeyDiffBounded: the file is the user's to fill, so the diff shows its
// content only while it is short text; a large or binary file is summarised.
func TestAuthorizedKeyDiffBounded(t *testing.T) {
	for _, tc := range []struct {
		name, file string
		want       string // in the diff's before
	}{
		{name: "short", file: "# mine\n" + keyB + "\n", want: "# mine\n" + keyB + "\n"},
		{name: "large", file: strings.Repeat("# padding padding padding padding\n", 10000) + keyB + "\n", want: "(%d bytes, too large to show)\n"},
		{name: "binary", file: "# \x00\xff\n" + keyB + "\n", want: "(binary content, %d bytes)\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if strings.Contains(tc.want, "%d") {
				tc.want = fmt.Sprintf(tc.want, len(tc.file))
			}
			d, m := keyRoot(t)
			plant(t, d+"/home/alice/.ssh", tc.file)
			res, err := moduletest.Run(t, AuthorizedKey{test: m}, map[string]cty.Value{"user": s("alice"), "key": s(keyA)}, false)
			if err != nil || res.Diff == nil || res.Diff.Before != tc.want || len(res.Diff.After) > maxKeyDiff {
				t.Fatalf("%v: before %.200q (%d bytes), after %d bytes; want before %q", err, res.Diff.Before, len(res.Diff.Before), len(res.Diff.After), tc.want)
			}
		})
	}
}
