//go:build linux

package generic

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/zclconf/go-cty/cty"

	"github.com/runbook/runbook/modules"
	"github.com/runbook/runbook/modules/moduletest"
)

// TestUntrustedLinks plants, in a sticky world-writable directory, a link owned by another
// user to a root 0600 secret (in the last component or a parent one), and runs each
// file-writing module at it in check mode and apply: every run fails naming the link and
// its owner, and neither the secret nor anything about its content comes back.
func TestUntrustedLinks(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("planting a link owned by another user needs root")
	}
	const secret = "root-only-secret-3f9a"
	setup := func(t *testing.T) string {
		d, err := filepath.EvalSymlinks(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		for _, step := range []error{
			os.Mkdir(d+"/private", 0o700),
			os.WriteFile(d+"/private/secret", []byte(secret+"\n"), 0o600),
			os.Mkdir(d+"/pub", 0o777),
			os.Chmod(d+"/pub", 0o777|os.ModeSticky),
			os.Symlink(d+"/private/secret", d+"/pub/link"),
			os.Lchown(d+"/pub/link", 65534, 65534),
			os.Symlink(d+"/private", d+"/pub/dirlink"),
			os.Lchown(d+"/pub/dirlink", 65534, 65534),
		} {
			if step != nil {
				t.Fatal(step)
			}
		}
		return d
	}
	tests := []struct {
		name   string
		module modules.Module
		args   func(d string) map[string]cty.Value
		link   string // the link the error names
	}{
		{name: "copy", module: Copy{}, link: "/pub/link",
			args: func(d string) map[string]cty.Value {
				return map[string]cty.Value{"dest": s(d + "/pub/link"), "content": s("owned\n"), "owner": s("65534"), "backup": cty.True}
			}},
		{name: "copy through a parent link", module: Copy{}, link: "/pub/dirlink",
			args: func(d string) map[string]cty.Value {
				return map[string]cty.Value{"dest": s(d + "/pub/dirlink/secret"), "content": s("owned\n")}
			}},
		{name: "template", module: Template{}, link: "/pub/link",
			args: func(d string) map[string]cty.Value {
				return map[string]cty.Value{"dest": s(d + "/pub/link"), "content": s("owned\n")}
			}},
		{name: "line", module: Line{}, link: "/pub/link",
			args: func(d string) map[string]cty.Value {
				return map[string]cty.Value{"path": s(d + "/pub/link"), "line": s("owned")}
			}},
		{name: "line absent", module: Line{}, link: "/pub/link",
			args: func(d string) map[string]cty.Value {
				return map[string]cty.Value{"path": s(d + "/pub/link"), "regexp": s("."), "state": s("absent")}
			}},
		{name: "file mode", module: File{}, link: "/pub/link",
			args: func(d string) map[string]cty.Value {
				return map[string]cty.Value{"path": s(d + "/pub/link"), "mode": s("0666")}
			}},
		{name: "file owner", module: File{}, link: "/pub/link",
			args: func(d string) map[string]cty.Value {
				return map[string]cty.Value{"path": s(d + "/pub/link"), "owner": s("65534")}
			}},
		{name: "file touch", module: File{}, link: "/pub/link",
			args: func(d string) map[string]cty.Value {
				return map[string]cty.Value{"path": s(d + "/pub/link"), "state": s("touch")}
			}},
		{name: "file directory through a link", module: File{}, link: "/pub/dirlink",
			args: func(d string) map[string]cty.Value {
				return map[string]cty.Value{"path": s(d + "/pub/dirlink"), "state": s("directory"), "mode": s("0777")}
			}},
		{name: "file absent under a parent link", module: File{}, link: "/pub/dirlink",
			args: func(d string) map[string]cty.Value {
				return map[string]cty.Value{"path": s(d + "/pub/dirlink/secret"), "state": s("absent")}
			}},
	}
	for _, tt := range tests {
		for _, apply := range []bool{false, true} {
			name := tt.name + map[bool]string{false: " check", true: " apply"}[apply]
			t.Run(name, func(t *testing.T) {
				d := setup(t)
				before := snapshot(t, d)
				res, err := moduletest.Run(t, tt.module, tt.args(d), apply)
				if err == nil {
					t.Fatalf("no error: %+v", res)
				}
				if want := d + tt.link + " is a link owned by nobody (uid 65534) to " + d + "/private"; !strings.Contains(err.Error(), want) {
					t.Errorf("err = %v, want %q", err, want)
				}
				if !strings.Contains(err.Error(), "owned by root (uid 0)") {
					t.Errorf("err = %v, want the target's owner", err)
				}
				if strings.Contains(err.Error(), secret) || res != nil && res.Diff != nil && strings.Contains(res.Diff.Before+res.Diff.After, secret) {
					t.Errorf("the secret came back: %v %+v", err, res)
				}
				if after := snapshot(t, d); after != before {
					t.Errorf("the tree changed:\n%s\n---\n%s", before, after)
				}
			})
		}
	}

	// What acts on the link itself, not through it, still works: the secret stays as it is.
	t.Run("file absent removes the link itself", func(t *testing.T) {
		d := setup(t)
		if _, err := moduletest.Run(t, File{}, map[string]cty.Value{"path": s(d + "/pub/link"), "state": s("absent")}, true); err != nil {
			t.Fatal(err)
		}
		if _, err := os.Lstat(d + "/pub/link"); !os.IsNotExist(err) {
			t.Errorf("link still there: %v", err)
		}
		if b, err := os.ReadFile(d + "/private/secret"); err != nil || string(b) != secret+"\n" {
			t.Errorf("secret = %q %v", b, err)
		}
	})
	t.Run("file link retargets the link itself", func(t *testing.T) {
		d := setup(t)
		if _, err := moduletest.Run(t, File{}, map[string]cty.Value{"path": s(d + "/pub/link"), "state": s("link"), "src": s("/etc/hostname"), "owner": s("0")}, true); err != nil {
			t.Fatal(err)
		}
		if got, _ := os.Readlink(d + "/pub/link"); got != "/etc/hostname" {
			t.Errorf("link -> %q", got)
		}
		fi, _ := os.Lstat(d + "/private/secret")
		if uid, _, _ := fileOwner(fi); uid != 0 || fi.Mode().Perm() != 0o600 {
			t.Errorf("secret is %d %v", uid, fi.Mode())
		}
	})
}

// TestLookupIDRefusesOptionLikeNames: a name that getent would read as an option is no
// user or group, and getent is not run with it.
func TestLookupIDRefusesOptionLikeNames(t *testing.T) {
	for _, tt := range []struct{ name, db, want string }{
		{"-s", "passwd", `no user named "-s" on this host`},
		{"--help", "group", `no group named "--help" on this host`},
		{"root", "passwd", ""},
		{"0", "group", ""},
	} {
		_, err := lookupID(context.Background(), tt.name, tt.db)
		if tt.want == "" && err != nil || tt.want != "" && (err == nil || err.Error() != tt.want) {
			t.Errorf("%s %q: %v, want %q", tt.db, tt.name, err, tt.want)
		}
	}
}
