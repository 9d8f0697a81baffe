package generic

import (
	"crypto/sha256"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/zclconf/go-cty/cty"

	"github.com/runbook/runbook/modules"
	"github.com/runbook/runbook/modules/moduletest"
)

// fixedClock runs a module at a known time, so that backups have known names.
var fixedClock = moduletest.WithEnv(func(e *modules.Env) {
	e.Now = func() time.Time { return time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC) }
})

// snapshot describes every path under dir: type, mode, owner, times, content and link
// target. Two equal snapshots mean nothing changed.
func snapshot(t testing.TB, dir string) string {
	t.Helper()
	return snapshotOpt(t, dir, true)
}

// snapshotOpt can leave out directory times, which a failed write changes legitimately
// (its temporary file came and went).
func snapshotOpt(t testing.TB, dir string, dirTimes bool) string {
	t.Helper()
	var lines []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		uid, gid, _ := fileOwner(fi)
		l := fmt.Sprintf("%s %v %d:%d", strings.TrimPrefix(p, dir), fi.Mode(), uid, gid)
		if dirTimes || !fi.IsDir() {
			l += fmt.Sprintf(" mtime=%d", fi.ModTime().UnixNano())
		}
		switch {
		case fi.Mode().IsRegular():
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			l += fmt.Sprintf(" sha=%x", sha256.Sum256(b))
		case fi.Mode()&fs.ModeSymlink != 0:
			target, _ := os.Readlink(p)
			l += " -> " + target
		}
		lines = append(lines, l)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(lines)
	return strings.Join(lines, "\n")
}

func s(v string) cty.Value { return cty.StringVal(v) }

type timelineCase struct {
	name   string
	module modules.Module
	setup  func(t *testing.T, dir string)
	args   func(dir string) map[string]cty.Value
	// after checks the directory once the timeline is done.
	after func(t *testing.T, dir string)
	// repeats marks modules that act every time (touch): apply is changed again and
	// check reports drift again.
	repeats bool
	// noDiff marks runs that change the host without a diff to show: a command, a change
	// of mode alone for copy.
	noDiff bool
}

// TestTimelines runs every case through check (drift) → apply (changed) → check (ok) →
// apply (ok), proving on a real directory that check changes nothing and that a second
// apply has nothing left to do. moduletest.Timeline runs the cases that converge with a
// diff; the few it cannot (touch acts every time, commands and copy's mode alone have no
// diff) are stepped through here with the same checks.
func TestTimelines(t *testing.T) {
	writeFile := func(name, content string, mode fs.FileMode) func(*testing.T, string) {
		return func(t *testing.T, dir string) {
			if err := os.WriteFile(filepath.Join(dir, name), []byte(content), mode); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(filepath.Join(dir, name), mode); err != nil {
				t.Fatal(err)
			}
		}
	}
	content := func(name, want string) func(*testing.T, string) {
		return func(t *testing.T, dir string) {
			t.Helper()
			b, err := os.ReadFile(filepath.Join(dir, name))
			if err != nil {
				t.Fatal(err)
			}
			if string(b) != want {
				t.Errorf("%s = %q, want %q", name, b, want)
			}
		}
	}
	modeIs := func(name string, want fs.FileMode) func(*testing.T, string) {
		return func(t *testing.T, dir string) {
			t.Helper()
			fi, err := os.Stat(filepath.Join(dir, name))
			if err != nil {
				t.Fatal(err)
			}
			if got := fi.Mode() & (fs.ModePerm | specialBits); got != want {
				t.Errorf("%s mode = %s, want %s", name, fmtMode(got), fmtMode(want))
			}
		}
	}
	both := func(fs ...func(*testing.T, string)) func(*testing.T, string) {
		return func(t *testing.T, dir string) {
			for _, f := range fs {
				f(t, dir)
			}
		}
	}
	cases := []timelineCase{
		{name: "command creates", noDiff: true, module: Command{},
			args: func(d string) map[string]cty.Value {
				return map[string]cty.Value{"argv": cty.ListVal([]cty.Value{s("touch"), s(d + "/marker")}), "creates": s(d + "/marker")}
			}},
		{name: "command removes", noDiff: true, module: Command{},
			setup: writeFile("junk", "x", 0o644),
			args: func(d string) map[string]cty.Value {
				return map[string]cty.Value{"cmd": s("rm '" + d + "/junk'"), "removes": s(d + "/junk")}
			}},
		{name: "shell unless", noDiff: true, module: Shell{},
			args: func(d string) map[string]cty.Value {
				return map[string]cty.Value{"cmd": s("echo on > state"), "chdir": s(d), "unless": s(`grep -qx on state`)}
			},
			after: content("state", "on\n")},
		{name: "shell creates with glob and env", noDiff: true, module: Shell{},
			args: func(d string) map[string]cty.Value {
				return map[string]cty.Value{"cmd": s(`printf %s "$GREETING" > out.txt`), "chdir": s(d), "creates": s("*.txt"),
					"env": cty.MapVal(map[string]cty.Value{"GREETING": s("hello")})}
			},
			after: content("out.txt", "hello")},
		{name: "file directory with mode", module: File{},
			args: func(d string) map[string]cty.Value {
				return map[string]cty.Value{"path": s(d + "/a/b"), "state": s("directory"), "mode": s("0750")}
			},
			after: modeIs("a/b", 0o750)},
		{name: "file existing directory mode change", module: File{},
			setup: func(t *testing.T, d string) { os.Mkdir(d+"/x", 0o700) },
			args: func(d string) map[string]cty.Value {
				return map[string]cty.Value{"path": s(d + "/x"), "state": s("directory"), "mode": s("2755")}
			},
			after: modeIs("x", 0o755|fs.ModeSetgid)},
		{name: "file empty file", module: File{},
			args: func(d string) map[string]cty.Value {
				return map[string]cty.Value{"path": s(d + "/f"), "mode": s("600")}
			},
			after: both(content("f", ""), modeIs("f", 0o600))},
		{name: "file mode of existing file keeps content", module: File{},
			setup: writeFile("f", "keep me\n", 0o644),
			args: func(d string) map[string]cty.Value {
				return map[string]cty.Value{"path": s(d + "/f"), "state": s("file"), "mode": s("0640")}
			},
			after: both(content("f", "keep me\n"), modeIs("f", 0o640))},
		{name: "file absent removes a tree", module: File{},
			setup: func(t *testing.T, d string) {
				os.MkdirAll(d+"/tree/sub", 0o755)
				os.WriteFile(d+"/tree/sub/f", nil, 0o644)
			},
			args: func(d string) map[string]cty.Value {
				return map[string]cty.Value{"path": s(d + "/tree"), "state": s("absent")}
			},
			after: func(t *testing.T, d string) {
				if _, err := os.Lstat(d + "/tree"); !os.IsNotExist(err) {
					t.Errorf("tree still there: %v", err)
				}
			}},
		{name: "file link", module: File{},
			setup: writeFile("target", "t", 0o644),
			args: func(d string) map[string]cty.Value {
				return map[string]cty.Value{"path": s(d + "/l"), "state": s("link"), "src": s("target")}
			},
			after: func(t *testing.T, d string) {
				if got, _ := os.Readlink(d + "/l"); got != "target" {
					t.Errorf("link -> %q", got)
				}
			}},
		{name: "file link retargeted", module: File{},
			setup: func(t *testing.T, d string) { os.Symlink("old", d+"/l") },
			args: func(d string) map[string]cty.Value {
				return map[string]cty.Value{"path": s(d + "/l"), "state": s("link"), "src": s("/etc/hostname")}
			}},
		{name: "file force replaces a file with a link", module: File{},
			setup: writeFile("l", "stray", 0o644),
			args: func(d string) map[string]cty.Value {
				return map[string]cty.Value{"path": s(d + "/l"), "state": s("link"), "src": s("/etc"), "force": cty.True}
			}},
		{name: "file touch", module: File{}, repeats: true,
			args: func(d string) map[string]cty.Value {
				return map[string]cty.Value{"path": s(d + "/t"), "state": s("touch")}
			}},
		{name: "line replaces last match", module: Line{},
			setup: writeFile("cfg", "# SELINUX=enforcing is the default\nSELINUX=enforcing\nSELINUXTYPE=targeted\nSELINUX=permissive\n", 0o600),
			args: func(d string) map[string]cty.Value {
				return map[string]cty.Value{"path": s(d + "/cfg"), "regexp": s("^SELINUX="), "line": s("SELINUX=disabled")}
			},
			after: both(content("cfg", "# SELINUX=enforcing is the default\nSELINUX=enforcing\nSELINUXTYPE=targeted\nSELINUX=disabled\n"), modeIs("cfg", 0o600))},
		{name: "line appended without final newline", module: Line{},
			setup: writeFile("cfg", "a=1\r\nb=2", 0o644),
			args: func(d string) map[string]cty.Value {
				return map[string]cty.Value{"path": s(d + "/cfg"), "line": s("c=3")}
			},
			after: content("cfg", "a=1\r\nb=2\r\nc=3")},
		{name: "line replaces a last line without newline", module: Line{},
			setup: writeFile("cfg", "a=1\nb=2", 0o644),
			args: func(d string) map[string]cty.Value {
				return map[string]cty.Value{"path": s(d + "/cfg"), "regexp": s("^b="), "line": s("b=3")}
			},
			after: content("cfg", "a=1\nb=3")},
		{name: "line insert_after", module: Line{},
			setup: writeFile("cfg", "[main]\nx=1\n[other]\n[main]\ny=2\n", 0o644),
			args: func(d string) map[string]cty.Value {
				return map[string]cty.Value{"path": s(d + "/cfg"), "line": s("z=3"), "insert_after": s(`^\[main\]$`)}
			},
			after: content("cfg", "[main]\nx=1\n[other]\n[main]\nz=3\ny=2\n")},
		{name: "line insert_before first match", module: Line{},
			setup: writeFile("cfg", "a\nmark\nb\nmark\n", 0o644),
			args: func(d string) map[string]cty.Value {
				return map[string]cty.Value{"path": s(d + "/cfg"), "line": s("new"), "insert_before": s("^mark$")}
			},
			after: content("cfg", "a\nnew\nmark\nb\nmark\n")},
		{name: "line BOF", module: Line{},
			setup: writeFile("cfg", "a\n", 0o644),
			args: func(d string) map[string]cty.Value {
				return map[string]cty.Value{"path": s(d + "/cfg"), "line": s("#!/bin/sh"), "insert_before": s("BOF")}
			},
			after: content("cfg", "#!/bin/sh\na\n")},
		{name: "line EOF when anchor misses", module: Line{},
			setup: writeFile("cfg", "a\n", 0o644),
			args: func(d string) map[string]cty.Value {
				return map[string]cty.Value{"path": s(d + "/cfg"), "line": s("z"), "insert_after": s("^nomatch$")}
			},
			after: content("cfg", "a\nz\n")},
		{name: "line absent removes every match", module: Line{},
			setup: writeFile("cfg", "keep\nx=1\nkeep2\nx=2", 0o644),
			args: func(d string) map[string]cty.Value {
				return map[string]cty.Value{"path": s(d + "/cfg"), "regexp": s("^x="), "state": s("absent")}
			},
			after: content("cfg", "keep\nkeep2\n")},
		{name: "line create with mode and backup", module: Line{},
			args: func(d string) map[string]cty.Value {
				return map[string]cty.Value{"path": s(d + "/new"), "line": s("hello"), "create": cty.True, "mode": s("0640"), "backup": cty.True}
			},
			after: both(content("new", "hello\n"), modeIs("new", 0o640))},
		{name: "line backup keeps the old file", module: Line{},
			setup: writeFile("cfg", "a=1\n", 0o640),
			args: func(d string) map[string]cty.Value {
				return map[string]cty.Value{"path": s(d + "/cfg"), "regexp": s("^a="), "line": s("a=2"), "backup": cty.True}
			},
			after: both(content("cfg", "a=2\n"), content("cfg.20260102T030405Z.bak", "a=1\n"), modeIs("cfg.20260102T030405Z.bak", 0o640))},
		{name: "copy creates", module: Copy{},
			args: func(d string) map[string]cty.Value {
				return map[string]cty.Value{"dest": s(d + "/out"), "content": s("one\ntwo\n")}
			},
			after: both(content("out", "one\ntwo\n"), modeIs("out", 0o644))},
		{name: "copy replaces keeping mode, with backup and validate", module: Copy{},
			setup: writeFile("out", "old\n", 0o600),
			args: func(d string) map[string]cty.Value {
				return map[string]cty.Value{"dest": s(d + "/out"), "content": s("new\n"), "backup": cty.True, "validate": s("grep -q new %s")}
			},
			after: both(content("out", "new\n"), modeIs("out", 0o600), content("out.20260102T030405Z.bak", "old\n"))},
		{name: "copy mode only", noDiff: true, module: Copy{},
			setup: writeFile("out", "same\n", 0o644),
			args: func(d string) map[string]cty.Value {
				return map[string]cty.Value{"dest": s(d + "/out"), "content": s("same\n"), "mode": s("0400")}
			},
			after: modeIs("out", 0o400)},
		{name: "copy through a link", module: Copy{},
			setup: func(t *testing.T, d string) {
				os.WriteFile(d+"/real", []byte("x"), 0o644)
				os.Symlink("real", d+"/alias")
			},
			args: func(d string) map[string]cty.Value {
				return map[string]cty.Value{"dest": s(d + "/alias"), "content": s("y")}
			},
			after: func(t *testing.T, d string) {
				if fi, _ := os.Lstat(d + "/alias"); fi.Mode()&fs.ModeSymlink == 0 {
					t.Error("the link was replaced")
				}
				content("real", "y")(t, d)
			}},
		{name: "template host side", module: Template{},
			args: func(d string) map[string]cty.Value {
				return map[string]cty.Value{"dest": s(d + "/motd"), "content": s("rendered\n")}
			},
			after: content("motd", "rendered\n")},
	}
	if os.Geteuid() == 0 {
		cases = append(cases,
			timelineCase{name: "file owner by id", module: File{},
				setup: writeFile("f", "", 0o644),
				args: func(d string) map[string]cty.Value {
					return map[string]cty.Value{"path": s(d + "/f"), "owner": s("4242"), "group": s("4243")}
				},
				after: func(t *testing.T, d string) {
					fi, _ := os.Stat(d + "/f")
					if uid, gid, _ := fileOwner(fi); uid != 4242 || gid != 4243 {
						t.Errorf("owner = %d:%d", uid, gid)
					}
				}},
			timelineCase{name: "copy owner by name keeps setuid", module: Copy{},
				args: func(d string) map[string]cty.Value {
					return map[string]cty.Value{"dest": s(d + "/bin"), "content": s("#!/bin/sh\n"), "owner": s("nobody"), "group": s("0"), "mode": s("4755")}
				},
				after: modeIs("bin", 0o755|fs.ModeSetuid)},
			timelineCase{name: "link owner", module: File{},
				setup: func(t *testing.T, d string) { os.Symlink("/etc", d+"/l") },
				args: func(d string) map[string]cty.Value {
					return map[string]cty.Value{"path": s(d + "/l"), "state": s("link"), "src": s("/etc"), "owner": s("4242")}
				}},
		)
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			if tc.setup != nil {
				tc.setup(t, dir)
			}
			args := tc.args(dir)
			var res [4]*modules.Result
			if tc.repeats || tc.noDiff {
				res = stepThrough(t, tc, dir, args)
			} else {
				var before string
				res = moduletest.Timeline(t, tc.module, args, fixedClock,
					moduletest.Before(func(t testing.TB, _ string) { before = snapshot(t, dir) }),
					moduletest.Unchanged(func(t testing.TB, step string) {
						if after := snapshot(t, dir); after != before {
							t.Fatalf("%s changed the directory:\nbefore:\n%s\nafter:\n%s", step, before, after)
						}
					}))
			}
			for i, r := range res[:2] {
				if r.Msg == "" {
					t.Errorf("step %d (%s): no message", i+1, r.Status)
				}
			}
			// Check shows the very diff that apply then makes.
			if checked, applied := res[0], res[1]; (checked.Diff == nil) != (applied.Diff == nil) || (checked.Diff != nil && *checked.Diff != *applied.Diff) {
				t.Errorf("check's diff differs from apply's:\ncheck: %+v\napply: %+v", checked.Diff, applied.Diff)
			}
			if tc.after != nil {
				tc.after(t, dir)
			}
		})
	}
}

// stepThrough runs a case's timeline step by step: check (drift), apply (changed), then
// check and apply again, ok or, for a case that repeats, drift and changed once more. A
// check, and an apply with nothing to do, must leave the directory as it was.
func stepThrough(t *testing.T, tc timelineCase, dir string, args map[string]cty.Value) [4]*modules.Result {
	t.Helper()
	want := [4]modules.Status{modules.StatusDrift, modules.StatusChanged, modules.StatusOK, modules.StatusOK}
	if tc.repeats {
		want[2], want[3] = modules.StatusDrift, modules.StatusChanged
	}
	var out [4]*modules.Result
	for i, w := range want {
		apply := i%2 == 1
		before := snapshot(t, dir)
		res, err := moduletest.Run(t, tc.module, args, apply, fixedClock)
		if err != nil {
			t.Fatalf("apply=%v: %v", apply, err)
		}
		if res.Status != w {
			t.Fatalf("apply=%v: status %q, want %q (%s)", apply, res.Status, w, res.Msg)
		}
		if !apply || w == modules.StatusOK {
			if after := snapshot(t, dir); after != before {
				t.Fatalf("apply=%v changed the directory (status %s):\nbefore:\n%s\nafter:\n%s", apply, res.Status, before, after)
			}
		}
		if w != modules.StatusOK && res.Msg == "" {
			t.Errorf("apply=%v: no message", apply)
		}
		out[i] = res
	}
	return out
}
