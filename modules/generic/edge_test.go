package generic

import (
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/zclconf/go-cty/cty"

	"github.com/runbook/runbook/modules"
	"github.com/runbook/runbook/modules/hostfs"
	"github.com/runbook/runbook/modules/moduletest"
)

// TestErrors covers runs that must fail, and fail without touching anything.
func TestErrors(t *testing.T) {
	tests := []struct {
		name    string
		module  modules.Module
		setup   func(t *testing.T, dir string)
		args    func(dir string) map[string]cty.Value
		apply   bool
		raw     bool // skip Validate, as for values known only per host
		wantErr string
	}{
		{name: "line on a missing file without create", module: Line{}, apply: true,
			args: func(d string) map[string]cty.Value {
				return map[string]cty.Value{"path": s(d + "/nope"), "line": s("x")}
			}, wantErr: "does not exist; set create = true"},
		{name: "line bad regexp at run time", module: Line{}, raw: true, setup: func(t *testing.T, d string) { os.WriteFile(d+"/f", nil, 0o644) },
			args: func(d string) map[string]cty.Value {
				// Validate would catch a literal; a value that came from a variable reaches the host.
				return map[string]cty.Value{"path": s(d + "/f"), "line": s("x"), "insert_after": s("([")}
			}, wantErr: "insert_after: not a valid regular expression"},
		{name: "line on a directory", module: Line{}, setup: func(t *testing.T, d string) { os.Mkdir(d+"/dir", 0o755) },
			args: func(d string) map[string]cty.Value {
				return map[string]cty.Value{"path": s(d + "/dir"), "line": s("x")}
			}, wantErr: "is a directory, not a regular file"},
		{name: "line through a dangling link", module: Line{}, setup: func(t *testing.T, d string) { os.Symlink("missing", d+"/l") },
			args: func(d string) map[string]cty.Value {
				return map[string]cty.Value{"path": s(d + "/l"), "line": s("x"), "create": cty.True}
			}, wantErr: "is a link to missing, which does not exist"},
		{name: "copy into a missing directory", module: Copy{}, apply: true,
			args: func(d string) map[string]cty.Value {
				return map[string]cty.Value{"dest": s(d + "/no/such/file"), "content": s("x")}
			}, wantErr: "does not exist; create it first"},
		{name: "copy validate fails, dest untouched", module: Copy{}, apply: true,
			setup: func(t *testing.T, d string) { os.WriteFile(d+"/f", []byte("old"), 0o644) },
			args: func(d string) map[string]cty.Value {
				return map[string]cty.Value{"dest": s(d + "/f"), "content": s("bad"), "validate": s("grep -q good %s")}
			}, wantErr: "exited with 1; " /* dir path follows */},
		{name: "copy to a directory", module: Copy{}, setup: func(t *testing.T, d string) { os.Mkdir(d+"/dir", 0o755) },
			args: func(d string) map[string]cty.Value {
				return map[string]cty.Value{"dest": s(d + "/dir"), "content": s("x")}
			}, wantErr: "is a directory, not a regular file"},
		{name: "copy src not resolved", module: Copy{},
			args: func(d string) map[string]cty.Value {
				return map[string]cty.Value{"dest": s(d + "/f"), "src": s("files/f")}
			}, wantErr: "src must be read on the controller"},
		{name: "file over a directory without force", module: File{}, setup: func(t *testing.T, d string) { os.Mkdir(d+"/dir", 0o755) },
			args: func(d string) map[string]cty.Value {
				return map[string]cty.Value{"path": s(d + "/dir"), "state": s("file")}
			}, wantErr: "is a directory, not a file; set force = true"},
		{name: "force never removes a full directory", module: File{}, apply: true,
			setup: func(t *testing.T, d string) { os.Mkdir(d+"/dir", 0o755); os.WriteFile(d+"/dir/precious", nil, 0o644) },
			args: func(d string) map[string]cty.Value {
				return map[string]cty.Value{"path": s(d + "/dir"), "state": s("link"), "src": s("/etc"), "force": cty.True}
			}, wantErr: "is a directory with 1 entries"},
		{name: "link over a file without force", module: File{}, setup: func(t *testing.T, d string) { os.WriteFile(d+"/f", nil, 0o644) },
			args: func(d string) map[string]cty.Value {
				return map[string]cty.Value{"path": s(d + "/f"), "state": s("link"), "src": s("/etc")}
			}, wantErr: "is a file, not a link; set force = true"},
		{name: "file through a dangling link", module: File{}, setup: func(t *testing.T, d string) { os.Symlink("missing", d+"/l") },
			args: func(d string) map[string]cty.Value {
				return map[string]cty.Value{"path": s(d + "/l")}
			}, wantErr: "which does not exist; set force = true"},
		{name: "unknown owner", module: File{}, setup: func(t *testing.T, d string) { os.WriteFile(d+"/f", nil, 0o644) },
			args: func(d string) map[string]cty.Value {
				return map[string]cty.Value{"path": s(d + "/f"), "owner": s("no-such-user-here")}
			}, wantErr: `no user named "no-such-user-here"`},
		{name: "unknown group", module: File{}, setup: func(t *testing.T, d string) { os.WriteFile(d+"/f", nil, 0o644) },
			args: func(d string) map[string]cty.Value {
				return map[string]cty.Value{"path": s(d + "/f"), "group": s("no-such-group-here")}
			}, wantErr: `no group named "no-such-group-here"`},
		{name: "command not found", module: Command{}, apply: true,
			args: func(d string) map[string]cty.Value {
				return map[string]cty.Value{"argv": cty.ListVal([]cty.Value{s("/no/such/program")})}
			}, wantErr: "no such file or directory"},
		{name: "command with an unterminated quote", module: Command{},
			args: func(d string) map[string]cty.Value {
				return map[string]cty.Value{"cmd": s(`echo "oops`)}
			}, wantErr: "unterminated double quote"},
		{name: "command exit code not accepted", module: Shell{}, apply: true,
			args: func(d string) map[string]cty.Value {
				return map[string]cty.Value{"cmd": s("echo bad >&2; exit 3")}
			}, wantErr: "exited with 3 (accepted: [0])"},
		{name: "null in argv", module: Command{}, apply: true,
			args: func(d string) map[string]cty.Value {
				return map[string]cty.Value{"argv": cty.ListVal([]cty.Value{s("echo"), cty.NullVal(cty.String)})}
			}, wantErr: "argv[1] is null"},
		{name: "null in env", module: Shell{}, apply: true,
			args: func(d string) map[string]cty.Value {
				return map[string]cty.Value{"cmd": s("true"), "env": cty.MapVal(map[string]cty.Value{"A": cty.NullVal(cty.String)})}
			}, wantErr: `env "A" is null`},
		{name: "fractional ok_code", module: Shell{}, apply: true,
			args: func(d string) map[string]cty.Value {
				return map[string]cty.Value{"cmd": s("true"), "ok_codes": cty.ListVal([]cty.Value{cty.NumberFloatVal(0.5)})}
			}, wantErr: "0.5 is not a whole number"},
		{name: "unless in a missing directory", module: Shell{},
			args: func(d string) map[string]cty.Value {
				return map[string]cty.Value{"cmd": s("true"), "unless": s("true"), "chdir": s(d + "/nope")}
			}, wantErr: "unless:"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			if tt.setup != nil {
				tt.setup(t, dir)
			}
			before := snapshotOpt(t, dir, false)
			var opts []moduletest.Option
			if tt.raw {
				opts = append(opts, moduletest.NoValidate())
			}
			_, err := moduletest.Run(t, tt.module, tt.args(dir), tt.apply, opts...)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("err = %v, want %q", err, tt.wantErr)
			}
			if after := snapshotOpt(t, dir, false); after != before {
				t.Errorf("a failed run changed the directory:\n%s\n---\n%s", before, after)
			}
		})
	}
}

func TestCommandResults(t *testing.T) {
	res, err := moduletest.Run(t, Command{}, map[string]cty.Value{"cmd": s(`sh -c 'cat; echo "to err $0" >&2; exit 4' "a b"`),
		"stdin": s("from stdin\n"), "ok_codes": cty.ListVal([]cty.Value{cty.Zero, cty.NumberIntVal(4)})}, true,
		// stdin is sensitive, so the helper would hide it where the program prints it back;
		// here the output must show it arrived.
		moduletest.WithEnv(func(e *modules.Env) { e.SetSecrets(nil) }))
	if err != nil {
		t.Fatal(err)
	}
	if d := res.Data.(commandResult); res.Status != modules.StatusChanged || rcOf(d) != 4 || d.Stdout != "from stdin\n" || d.Stderr != "to err a b\n" {
		t.Errorf("result = %+v %v", res, res.Data)
	}

	// A failure still registers rc and output and carries stderr for the report.
	res, err = moduletest.Run(t, Shell{}, map[string]cty.Value{"cmd": s("echo out; echo why >&2; exit 2")}, true)
	var f *modules.Failure
	if !errors.As(err, &f) || f.Stderr != "why\n" || res == nil || rcOf(res.Data.(commandResult)) != 2 || res.Data.(commandResult).Stdout != "out\n" {
		t.Errorf("err = %v, result = %+v", err, res)
	}

	// Check mode never runs the command, and says what it would run.
	dir := t.TempDir()
	res, err = moduletest.Run(t, Shell{}, map[string]cty.Value{"cmd": s("touch " + dir + "/ran")}, false)
	if err != nil || res.Status != modules.StatusDrift || !strings.Contains(res.Msg, "would run: /bin/sh -c") {
		t.Errorf("check = %+v, %v", res, err)
	}
	if _, err := os.Stat(dir + "/ran"); err == nil {
		t.Error("check mode ran the command")
	}
	// ...and a guard that says there is nothing to do is ok in both modes.
	res, _ = moduletest.Run(t, Command{}, map[string]cty.Value{"cmd": s("false"), "unless": s("true")}, false)
	if res.Status != modules.StatusOK || res.Data.(commandResult).SkippedBy != "unless" {
		t.Errorf("unless = %+v", res)
	}
}

// rcOf is a command's exit code, -1 when it has none.
func rcOf(d commandResult) int {
	if d.RC == nil {
		return -1
	}
	return *d.RC
}

func TestCommandOutputCapped(t *testing.T) {
	res, err := moduletest.Run(t, Shell{}, map[string]cty.Value{"cmd": s("head -c 5000 /dev/zero | tr '\\0' x")}, true,
		moduletest.WithEnv(func(e *modules.Env) { e.OutputLimit = 1000 }))
	if err != nil {
		t.Fatal(err)
	}
	out := res.Data.(commandResult).Stdout
	if !strings.HasPrefix(out, strings.Repeat("x", 1000)+"\n[output truncated: 4000 more bytes") {
		t.Errorf("stdout = %q…", out[:min(len(out), 1100)])
	}
}

func TestCommandTimeoutKillsChildren(t *testing.T) {
	// The background sleep keeps stdout open: without killing the process group, the run
	// would wait for it.
	start := time.Now()
	_, err := moduletest.Run(t, Shell{}, map[string]cty.Value{"cmd": s("sleep 30 & sleep 30")}, true, moduletest.Timeout(200*time.Millisecond))
	if err == nil || !strings.Contains(err.Error(), "stopped") {
		t.Errorf("err = %v", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("took %s", d)
	}
}

func TestSensitiveContentNeverShown(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(dir+"/secret", []byte("old-password\n"), 0o600)
	args := map[string]cty.Value{"dest": s(dir + "/secret"), "content": s("new-password\n")}
	for _, apply := range []bool{false, true} {
		// content came from a sensitive variable
		res, err := moduletest.Run(t, Copy{}, args, apply, moduletest.Sensitive("content"))
		if err != nil {
			t.Fatal(err)
		}
		all := res.Msg + res.Diff.Before + res.Diff.After + strings.Join(res.Warnings, "")
		if strings.Contains(all, "password") || !strings.Contains(res.Diff.After, "(sensitive content, 13 bytes, sha256 ") {
			t.Errorf("apply=%v shows a secret: %+v %+v", apply, res, res.Diff)
		}
	}
}

func TestBinaryAndLargeDiffs(t *testing.T) {
	d := contentDiff("/f", bytesBlob([]byte("a\x00b")), bytesBlob([]byte(strings.Repeat("y", maxDiff+1))), true, true, false)
	if !strings.HasPrefix(d.Before, "(binary content, 3 bytes") || !strings.HasPrefix(d.After, "(262145 bytes, too large to show") {
		t.Errorf("diff = %+v", d)
	}
	d = contentDiff("/f", blob{}, bytesBlob([]byte("x\n")), false, true, false)
	if d.BeforeHeader != "/dev/null" || d.After != "x\n" {
		t.Errorf("diff = %+v", d)
	}
}

func TestOwnerNeedsRoot(t *testing.T) {
	if os.Geteuid() == 0 {
		t.Skip("needs a user that cannot chown; running as root")
	}
	dir := t.TempDir()
	os.WriteFile(dir+"/f", nil, 0o644)
	res, err := moduletest.Run(t, File{}, map[string]cty.Value{"path": s(dir + "/f"), "owner": s("0")}, false)
	if err != nil || res.Status != modules.StatusDrift {
		t.Fatalf("check = %+v, %v", res, err)
	}
	if _, err := moduletest.Run(t, File{}, map[string]cty.Value{"path": s(dir + "/f"), "owner": s("0")}, true); err == nil || !strings.Contains(err.Error(), "operation not permitted") {
		t.Fatalf("apply err = %v", err)
	}
}

func TestSplitWords(t *testing.T) {
	tests := []struct {
		in   string
		want []string
		err  string
	}{
		{"cat /proc/loadavg", []string{"cat", "/proc/loadavg"}, ""},
		{`  a   'b c'  "d \"e\" $f" g\ h ''`, []string{"a", "b c", `d "e" $f`, "g h", ""}, ""},
		{`it's`, nil, "unterminated single quote"},
		{`x"y`, nil, "unterminated double quote"},
		{`a"b"'c'd`, []string{"abcd"}, ""},
		{"", nil, ""},
	}
	for _, tt := range tests {
		got, err := splitWords(tt.in)
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("%q: err = %v", tt.in, err)
			}
			continue
		}
		if err != nil || strings.Join(got, "|") != strings.Join(tt.want, "|") || len(got) != len(tt.want) {
			t.Errorf("%q = %q, %v; want %q", tt.in, got, err, tt.want)
		}
	}
}

// FuzzLines checks that splitting a file into lines and joining them gives back every
// byte, and that adding a line that is already there changes nothing.
func FuzzLines(f *testing.F) {
	for _, s := range []string{"", "a", "a\n", "a\r\nb", "\n\n", "x=1\r\n\ry\n", "\xff\x00\n"} {
		f.Add([]byte(s), "a")
		f.Add([]byte(s), "")
	}
	f.Fuzz(func(t *testing.T, b []byte, line string) {
		lines := hostfs.SplitLines(b)
		if got := hostfs.JoinLines(lines); string(got) != string(b) {
			t.Fatalf("round trip %q -> %q", b, got)
		}
		if strings.ContainsAny(line, "\r\n") {
			return
		}
		once, _ := ensureLine(lines, line, nil, nil, nil, false, false)
		// The second run reads the file the first one wrote.
		twice, msg := ensureLine(hostfs.SplitLines(hostfs.JoinLines(once)), line, nil, nil, nil, false, false)
		if string(hostfs.JoinLines(once)) != string(hostfs.JoinLines(twice)) || msg != "line already present" {
			t.Fatalf("not idempotent: %q -> %q -> %q (%s)", b, hostfs.JoinLines(once), hostfs.JoinLines(twice), msg)
		}
		removed, _ := removeLines(hostfs.SplitLines(hostfs.JoinLines(twice)), &line, nil)
		for _, l := range removed {
			if l.Text == line {
				t.Fatalf("absent left %q in %q", line, hostfs.JoinLines(removed))
			}
		}
	})
}
