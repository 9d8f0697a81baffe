//go:build linux

package generic

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/zclconf/go-cty/cty"

	"github.com/runbook/runbook/modules"
	"github.com/runbook/runbook/modules/moduletest"
)

// The attacks below are played by a real unprivileged process: uid and gid 65534 with no
// other groups, a local user of a managed host who owns a directory (home) that runbook,
// as root, is told to manage files in.
const (
	attackerUID = 65534
	rootSecret  = "root-only-secret-3f9a"
)

// attackTree makes d/private/secret (root's, 0600, in a 0700 directory) and d/home, the
// attacker's own directory; d and its parent can be entered by anyone.
func attackTree(t *testing.T) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("playing root and another user needs root")
	}
	d, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	for _, step := range []error{
		os.Chmod(filepath.Dir(d), 0o755),
		os.Chmod(d, 0o755),
		os.Mkdir(d+"/private", 0o700),
		os.WriteFile(d+"/private/secret", []byte(rootSecret+"\n"), 0o600),
		os.Mkdir(d+"/home", 0o755),
		os.Chown(d+"/home", attackerUID, attackerUID),
	} {
		if step != nil {
			t.Fatal(step)
		}
	}
	return d
}

// asAttacker runs argv as the attacker, with d as the last argument.
func asAttacker(t *testing.T, d string, argv ...string) *exec.Cmd {
	t.Helper()
	for _, tool := range []string{"setpriv", argv[0]} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s is not installed", tool)
		}
	}
	id := fmt.Sprint(attackerUID)
	args := append([]string{"--reuid=" + id, "--regid=" + id, "--clear-groups"}, argv...)
	return exec.Command("setpriv", append(args, d)...)
}

// attacker starts a perl loop as the attacker, its working directory d/home, for the rest
// of the test.
func attacker(t *testing.T, d, script string) {
	t.Helper()
	cmd := asAttacker(t, d, "perl", "-e", `my $d = shift; chdir "$d/home" or die; `+script)
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	time.Sleep(50 * time.Millisecond)
}

// secretSafe checks that root's secret is as it was.
func secretSafe(t *testing.T, d string) bool {
	t.Helper()
	b, err := os.ReadFile(d + "/private/secret")
	fi, serr := os.Stat(d + "/private/secret")
	if err != nil || serr != nil || string(b) != rootSecret+"\n" || fi.Mode() != 0o600 || fi.Sys().(*syscall.Stat_t).Uid != 0 {
		t.Errorf("the secret changed: %q %v %v %v", b, fi.Mode(), err, serr)
		return false
	}
	return true
}

// told is everything a run tells the operator: the error (with a failure's stderr), the
// message, the warnings and the diff.
func told(res *modules.Result, err error) string {
	var b strings.Builder
	if err != nil {
		b.WriteString(err.Error())
		var f *modules.Failure
		if errors.As(err, &f) {
			b.WriteString(" " + f.Stderr)
		}
	}
	if res != nil {
		b.WriteString(" " + res.Msg + " " + strings.Join(res.Warnings, " "))
		if res.Diff != nil {
			b.WriteString(" " + res.Diff.Before + res.Diff.After)
		}
	}
	return b.String()
}

// TestRacingUser runs modules many times while the attacker races them. Each case fails
// on the first run that breaks what it checks; the secret must stay as it was and out of
// every output.
func TestRacingUser(t *testing.T) {
	type attempt func(t *testing.T, d string) (*modules.Result, error)
	tests := []struct {
		name   string
		setup  func(t *testing.T, d string)
		script string // perl, looping for ever in d/home
		tries  int
		run    attempt
		// breach says what went wrong after a run, "" when nothing did.
		breach func(t *testing.T, d string, res *modules.Result, err error) string
	}{
		{
			// The validate command is handed a path; in the attacker's directory, the
			// attacker renames the temporary file away and puts a link to the secret at
			// its name, and the command's stderr (quoting the file) reaches the result.
			name:   "validate reads what the attacker puts at its path",
			script: `my $n = 0; while (1) { opendir D, "."; for (readdir D) { next unless /\.runbook-/; next if -l $_; if (rename $_, "moved" . $n++) { symlink "$d/private/secret", $_ } } closedir D }`,
			tries:  50,
			run: func(t *testing.T, d string) (*modules.Result, error) {
				return moduletest.Run(t, Copy{}, map[string]cty.Value{"dest": s(d + "/home/cfg"), "content": s("Port 22\n"),
					"validate": s(`awk '{print "%s line " NR ": Bad configuration option: " $1 > "/dev/stderr"} END {exit 1}' %s`)}, true)
			},
			breach: func(t *testing.T, d string, res *modules.Result, err error) string {
				if strings.Contains(told(res, err), rootSecret) {
					return "the validate command read the secret: " + told(res, err)
				}
				return ""
			},
		},
		{
			// The attacker swaps a file that passes the command in for the temporary
			// file while the command runs, and the temporary file back after: the
			// content the command refused is installed.
			name:   "validate checks other content than what is installed",
			script: `while (1) { opendir D, "."; for (readdir D) { next unless /^\.cfg\.runbook-/ && -s $_; if (rename $_, "held") { open F, ">", $_; print F "Port 22\n"; close F; select undef, undef, undef, 0.001; rename "held", $_ } } closedir D }`,
			tries:  50,
			run: func(t *testing.T, d string) (*modules.Result, error) {
				return moduletest.Run(t, Copy{}, map[string]cty.Value{"dest": s(d + "/home/cfg"), "content": s("Bogus yes\n"),
					"validate": s(`grep -q '^Port ' %s`)}, true)
			},
			breach: func(t *testing.T, d string, res *modules.Result, err error) string {
				if b, rerr := os.ReadFile(d + "/home/cfg"); rerr == nil {
					return fmt.Sprintf("content the command refused was installed: %q (err %v)", b, err)
				}
				return ""
			},
		},
		{
			// Right after file makes the directory, the attacker removes it and puts
			// a program of theirs there, which got the task's group and setgid mode.
			name:   "the new directory swapped for the attacker's program",
			script: `while (1) { if (rmdir "new") { open F, ">", "new"; print F "#!/bin/sh\nid\n"; close F; chmod 0755, "new" } }`,
			tries:  400,
			run: func(t *testing.T, d string) (*modules.Result, error) {
				return moduletest.Run(t, File{}, map[string]cty.Value{"path": s(d + "/home/new"), "state": s("directory"), "mode": s("2775"), "group": s("4")}, true)
			},
			breach: setgidProgram,
		},
		{
			// The same for a new empty file: the attacker removes it and puts their own
			// program at the name before the mode and group are set.
			name:   "the new file swapped for the attacker's program",
			script: `while (1) { if (-f "new" && !-o "new" && unlink "new") { open F, ">", "new"; print F "#!/bin/sh\nid\n"; close F; chmod 0755, "new" } }`,
			tries:  400,
			run: func(t *testing.T, d string) (*modules.Result, error) {
				return moduletest.Run(t, File{}, map[string]cty.Value{"path": s(d + "/home/new"), "state": s("file"), "mode": s("2775"), "group": s("4")}, true)
			},
			breach: setgidProgram,
		},
		{
			// Files and directories swapped for links to root's files and back, under
			// every module that reads, writes or changes them.
			name: "files and directories swapped for links",
			setup: func(t *testing.T, d string) {
				for _, step := range []error{
					os.WriteFile(d+"/home/f", []byte("mine\n"), 0o644),
					os.Chown(d+"/home/f", attackerUID, attackerUID),
					os.Mkdir(d+"/home/sub", 0o755),
					os.Chown(d+"/home/sub", attackerUID, attackerUID),
					os.WriteFile(d+"/home/sub/secret", []byte("mine\n"), 0o644),
				} {
					if step != nil {
						t.Fatal(step)
					}
				}
			},
			script: `while (1) { rename "f", "f.real"; symlink "$d/private/secret", "f"; unlink "f"; rename "f.real", "f"; rename "sub", "sub.real"; symlink "$d/private", "sub"; unlink "sub"; rename "sub.real", "sub" }`,
			tries:  150,
			run: func(t *testing.T, d string) (*modules.Result, error) {
				var out []string
				var errs []error
				for _, c := range []struct {
					m    modules.Module
					args map[string]cty.Value
				}{
					{Line{}, map[string]cty.Value{"path": s(d + "/home/f"), "line": s("added"), "state": s("absent")}},
					{Line{}, map[string]cty.Value{"path": s(d + "/home/sub/secret"), "line": s("added")}},
					{Copy{}, map[string]cty.Value{"dest": s(d + "/home/sub/secret"), "content": s("mine\n"), "mode": s("0644")}},
					{Copy{}, map[string]cty.Value{"dest": s(d + "/home/f"), "content": s("mine\n"), "backup": cty.True}},
					{File{}, map[string]cty.Value{"path": s(d + "/home/f"), "mode": s("0644")}},
					{File{}, map[string]cty.Value{"path": s(d + "/home/sub/secret"), "mode": s("0644"), "owner": s("65534")}},
				} {
					for _, apply := range []bool{false, true} {
						res, err := moduletest.Run(t, c.m, c.args, apply)
						out = append(out, told(res, err))
						errs = append(errs, err)
					}
				}
				return &modules.Result{Msg: strings.Join(out, "\n")}, nil
			},
			breach: func(t *testing.T, d string, res *modules.Result, err error) string {
				if strings.Contains(res.Msg, rootSecret) {
					return "the secret came back: " + res.Msg
				}
				return ""
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := attackTree(t)
			if tt.setup != nil {
				tt.setup(t, d)
			}
			attacker(t, d, tt.script)
			for i := 0; i < tt.tries; i++ {
				res, err := tt.run(t, d)
				if why := tt.breach(t, d, res, err); why != "" {
					t.Fatalf("run %d: %s", i+1, why)
				}
				if !secretSafe(t, d) {
					t.FailNow()
				}
			}
		})
	}
}

// setgidProgram is a breach when the run made d/home/new and a program of the attacker's
// is there now with the setgid bit, which runs with the task's group; it removes
// d/home/new for the next run. (A program the attacker put there before the run gets
// the mode and group, as the task says: that is no race.)
func setgidProgram(t *testing.T, d string, res *modules.Result, _ error) string {
	p := d + "/home/new"
	defer os.RemoveAll(p)
	if res == nil || res.Data.(fileResult).Exists {
		return ""
	}
	fi, err := os.Lstat(p)
	if err == nil && fi.Mode().IsRegular() && fi.Mode()&os.ModeSetgid != 0 && fi.Sys().(*syscall.Stat_t).Uid == attackerUID {
		return fmt.Sprintf("%s is the attacker's program, mode %v, group %d", p, fi.Mode(), fi.Sys().(*syscall.Stat_t).Gid)
	}
	return ""
}

// TestMovedLink makes runbook create a link in the attacker's directory, to a file of
// root's; the attacker renames it to a name a later task writes or edits there. The
// link is root's, yet it is not followed there: its directory is the attacker's.
func TestMovedLink(t *testing.T) {
	tests := []struct {
		name  string
		m     modules.Module
		args  func(p string) map[string]cty.Value
		apply bool
	}{
		{"line, check", Line{}, func(p string) map[string]cty.Value {
			return map[string]cty.Value{"path": s(p), "line": s("User-agent: *")}
		}, false},
		{"line", Line{}, func(p string) map[string]cty.Value {
			return map[string]cty.Value{"path": s(p), "line": s("User-agent: *")}
		}, true},
		{"copy, check", Copy{}, func(p string) map[string]cty.Value {
			return map[string]cty.Value{"dest": s(p), "content": s("User-agent: *\n")}
		}, false},
		{"copy", Copy{}, func(p string) map[string]cty.Value {
			return map[string]cty.Value{"dest": s(p), "content": s("User-agent: *\n"), "backup": cty.True}
		}, true},
		{"file mode", File{}, func(p string) map[string]cty.Value {
			return map[string]cty.Value{"path": s(p), "mode": s("0644"), "owner": s("65534")}
		}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := attackTree(t)
			if _, err := moduletest.Run(t, File{}, map[string]cty.Value{"path": s(d + "/home/config.yml"), "state": s("link"), "src": s(d + "/private/secret")}, true); err != nil {
				t.Fatal(err)
			}
			mv := asAttacker(t, d+"/home/robots.txt", "mv", d+"/home/config.yml")
			if out, err := mv.CombinedOutput(); err != nil {
				t.Fatalf("mv: %v %s", err, out)
			}
			res, err := moduletest.Run(t, tt.m, tt.args(d+"/home/robots.txt"), tt.apply)
			want := d + "/home/robots.txt is a link owned by root (uid 0) to " + d + "/private/secret, in " + d + "/home, which belongs to nobody (uid 65534): not followed"
			if err == nil || !strings.Contains(err.Error(), want) {
				t.Errorf("err = %v, want %q", err, want)
			}
			if strings.Contains(told(res, err), rootSecret) {
				t.Errorf("the secret came back: %s", told(res, err))
			}
			secretSafe(t, d)
		})
	}
}

// TestHardLinkedFiles links root's secret into the attacker's directory, as the attacker
// can while fs.protected_hardlinks is 0 (root makes the link here: this machine may have
// the protection on). No module reads it into a diff, backs it up, or changes its owner
// or mode; each fails naming the file and both owners. A hard link to a link of root's is
// not followed either.
func TestHardLinkedFiles(t *testing.T) {
	tests := []struct {
		name  string
		link  func(t *testing.T, d string) // makes d/home/x
		m     modules.Module
		args  func(p string) map[string]cty.Value
		apply bool
		want  string // in the error, after the tree's path
	}{
		{name: "line, check", m: Line{}, want: "/home/x has 2 names (hard links) and belongs to root (uid 0), while its directory belongs to nobody (uid 65534)",
			args: func(p string) map[string]cty.Value { return map[string]cty.Value{"path": s(p), "line": s("x")} }},
		{name: "copy, check", m: Copy{}, want: "/home/x has 2 names",
			args: func(p string) map[string]cty.Value { return map[string]cty.Value{"dest": s(p), "content": s("x\n")} }},
		{name: "copy with a backup", m: Copy{}, apply: true, want: "/home/x has 2 names",
			args: func(p string) map[string]cty.Value {
				return map[string]cty.Value{"dest": s(p), "content": s("x\n"), "backup": cty.True}
			}},
		{name: "file mode and owner", m: File{}, apply: true, want: "/home/x has 2 names",
			args: func(p string) map[string]cty.Value {
				return map[string]cty.Value{"path": s(p), "mode": s("0644"), "owner": s("65534")}
			}},
		{name: "a hard link to root's link, line", m: Line{}, want: "/home/x is a link owned by root (uid 0) to %s/private/secret, in %s/home, which belongs to nobody (uid 65534): not followed",
			link: func(t *testing.T, d string) {
				if err := os.Symlink(d+"/private/secret", d+"/rootlink"); err != nil {
					t.Fatal(err)
				}
				if err := os.Link(d+"/rootlink", d+"/home/x"); err != nil {
					t.Fatal(err)
				}
			},
			args: func(p string) map[string]cty.Value { return map[string]cty.Value{"path": s(p), "line": s("x")} }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := attackTree(t)
			if tt.link != nil {
				tt.link(t, d)
			} else if err := os.Link(d+"/private/secret", d+"/home/x"); err != nil {
				t.Fatal(err)
			}
			before := snapshotOpt(t, d, false)
			res, err := moduletest.Run(t, tt.m, tt.args(d+"/home/x"), tt.apply)
			want := d + strings.ReplaceAll(tt.want, "%s", d)
			if err == nil || !strings.Contains(err.Error(), want) {
				t.Errorf("err = %v, want %q", err, want)
			}
			if strings.Contains(told(res, err), rootSecret) {
				t.Errorf("the secret came back: %s", told(res, err))
			}
			if after := snapshotOpt(t, d, false); after != before || !secretSafe(t, d) {
				t.Errorf("the tree changed:\n%s\n---\n%s", before, after)
			}
		})
	}
}

// TestLargeFiles gives line and copy another user's huge sparse file: line, which must
// hold the file to edit it, refuses it with the limit; copy compares by size and sha256
// read as a stream, and its diff summarises. Neither takes memory for it.
func TestLargeFiles(t *testing.T) {
	const huge = 256 << 20
	tests := []struct {
		name     string
		size     int64
		m        modules.Module
		args     func(p string) map[string]cty.Value
		wantErr  string
		want     string // the diff's before side
		wantStat modules.Status
	}{
		{name: "line", size: huge, m: Line{}, wantErr: "is 268435456 bytes, more than the 64 MiB that runbook reads of a file into memory",
			args: func(p string) map[string]cty.Value {
				return map[string]cty.Value{"path": s(p), "line": s("export X=1")}
			}},
		{name: "copy, another size", size: huge, m: Copy{}, want: "(268435456 bytes, too large to show)\n", wantStat: modules.StatusDrift,
			args: func(p string) map[string]cty.Value {
				return map[string]cty.Value{"dest": s(p), "content": s("small\n")}
			}},
		{name: "copy, the same size", size: 1 << 20, m: Copy{}, want: "(1048576 bytes, too large to show, sha256 30e14955ebf1352", wantStat: modules.StatusDrift,
			args: func(p string) map[string]cty.Value {
				return map[string]cty.Value{"dest": s(p), "content": s(strings.Repeat("x", 1<<20))}
			}},
		{name: "copy, the same content", size: 1 << 20, m: Copy{}, wantStat: modules.StatusOK,
			args: func(p string) map[string]cty.Value {
				return map[string]cty.Value{"dest": s(p), "content": s(strings.Repeat("\x00", 1<<20))}
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := attackTree(t)
			p := d + "/home/big"
			f, err := os.Create(p)
			if err != nil {
				t.Fatal(err)
			}
			if err := errors.Join(f.Truncate(tt.size), f.Close(), os.Chown(p, attackerUID, attackerUID)); err != nil {
				t.Fatal(err)
			}
			args := tt.args(p)
			var a, b runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&a)
			res, err := moduletest.Run(t, tt.m, args, false)
			runtime.ReadMemStats(&b)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
			} else if err != nil {
				t.Fatal(err)
			}
			if res != nil && (res.Status != tt.wantStat || tt.want != "" && (res.Diff == nil || !strings.HasPrefix(res.Diff.Before, tt.want))) {
				t.Errorf("status %s, diff %+v; want %s, %q", res.Status, res.Diff, tt.wantStat, tt.want)
			}
			if n := b.TotalAlloc - a.TotalAlloc; n > 16<<20 {
				t.Errorf("allocated %d MiB", n>>20)
			}
		})
	}
}

// TestLinkWarnings says so when line or copy writes through a link, and when a link that
// file makes leads nowhere runbook may follow.
func TestLinkWarnings(t *testing.T) {
	tests := []struct {
		name string
		m    modules.Module
		args func(d string) map[string]cty.Value
		want string // a warning, after the tree's path
	}{
		{"line", Line{}, func(d string) map[string]cty.Value {
			return map[string]cty.Value{"path": s(d + "/link"), "line": s("x")}
		}, "/link is a link; editing its target %s/file"},
		{"copy", Copy{}, func(d string) map[string]cty.Value {
			return map[string]cty.Value{"dest": s(d + "/link"), "content": s("x\n")}
		}, "/link is a link; writing its target %s/file"},
		{"file link through another user's link", File{}, func(d string) map[string]cty.Value {
			return map[string]cty.Value{"path": s(d + "/new"), "state": s("link"), "src": s(d + "/home/theirs/secret")}
		}, "the link's target %s/home/theirs/secret cannot be reached: %s/home/theirs is a link owned by nobody"},
		{"file link to nothing yet", File{}, func(d string) map[string]cty.Value {
			return map[string]cty.Value{"path": s(d + "/new"), "state": s("link"), "src": s("nothing")}
		}, "the link's target nothing does not exist (yet)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := attackTree(t)
			for _, err := range []error{
				os.WriteFile(d+"/file", []byte("a\n"), 0o644),
				os.Symlink("file", d+"/link"),
				os.Symlink(d+"/private", d+"/home/theirs"),
				os.Lchown(d+"/home/theirs", attackerUID, attackerUID),
			} {
				if err != nil {
					t.Fatal(err)
				}
			}
			res, err := moduletest.Run(t, tt.m, tt.args(d), false)
			if err != nil {
				t.Fatal(err)
			}
			want := strings.ReplaceAll(tt.want, "%s", d)
			if !strings.HasPrefix(want, "the") {
				want = d + want
			}
			if !strings.Contains(strings.Join(res.Warnings, "\n"), want) {
				t.Errorf("warnings %q, want %q", res.Warnings, want)
			}
		})
	}
}
