//go:build linux

package hostfs

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// other is the uid that plays a local user who is not root: it owns the links planted for
// runbook to find.
const other = 65534

// tree makes a temporary tree: a root-owned 0600 secret, a directory holding it, a
// sticky world-writable directory like /tmp for others to plant links in, home, the other
// user's own directory, and etc, root's own 0755 directory, where root's links are
// followed.
func tree(t *testing.T) string {
	t.Helper()
	d, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	must(t, os.Mkdir(d+"/private", 0o700))
	must(t, os.WriteFile(d+"/private/secret", []byte("the secret\n"), 0o600))
	must(t, os.Mkdir(d+"/pub", 0o777))
	must(t, os.Chmod(d+"/pub", 0o777|fs.ModeSticky))
	must(t, os.Mkdir(d+"/home", 0o755))
	must(t, os.Chown(d+"/home", other, other))
	must(t, os.Mkdir(d+"/etc", 0o755))
	return d
}

// mkdirs makes directories with mode and owner, parents first.
func mkdirs(t *testing.T, d string, mode fs.FileMode, uid int, paths ...string) {
	t.Helper()
	for _, p := range paths {
		must(t, os.Mkdir(d+p, mode))
		must(t, os.Chmod(d+p, mode))
		must(t, os.Chown(d+p, uid, uid))
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// plant makes a link owned by uid.
func plant(t *testing.T, target, link string, uid int) {
	t.Helper()
	must(t, os.Symlink(target, link))
	if uid != os.Geteuid() {
		must(t, os.Lchown(link, uid, uid))
	}
}

func TestResolve(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("planting a link owned by another user needs root")
	}
	me := os.Geteuid()
	tests := []struct {
		name  string
		setup func(t *testing.T, d string)
		path  string // below the tree
		how   How
		// want is the resolved path below the tree; wantErr a part of the error instead.
		want, wantErr string
		dangling      bool // the error is a DanglingLinkError
	}{
		{name: "plain file", path: "/private/secret", how: FollowLast, want: "/private/secret"},
		{name: "missing last component", path: "/pub/new", how: FollowLast, want: "/pub/new"},
		{name: "trusted link, last component", how: FollowLast,
			setup: func(t *testing.T, d string) { plant(t, d+"/private/secret", d+"/etc/l", me) },
			path:  "/etc/l", want: "/private/secret"},
		{name: "a link not followed is the link", how: NoFollow,
			setup: func(t *testing.T, d string) { plant(t, d+"/private/secret", d+"/pub/l", other) },
			path:  "/pub/l", want: "/pub/l"},
		{name: "untrusted link, last component", how: FollowLast,
			setup: func(t *testing.T, d string) { plant(t, d+"/private/secret", d+"/pub/l", other) },
			path:  "/pub/l", wantErr: "/pub/l is a link owned by nobody (uid 65534) to %s/private/secret, owned by root (uid 0): not followed"},
		{name: "link owned by its target's owner", how: FollowLast,
			setup: func(t *testing.T, d string) {
				must(t, os.WriteFile(d+"/pub/theirs", nil, 0o644))
				must(t, os.Chown(d+"/pub/theirs", other, other))
				plant(t, "theirs", d+"/pub/l", other)
			},
			path: "/pub/l", want: "/pub/theirs"},
		{name: "untrusted link, parent component", how: NoFollow,
			setup: func(t *testing.T, d string) { plant(t, d+"/private", d+"/pub/dir", other) },
			path:  "/pub/dir/secret", wantErr: "/pub/dir is a link owned by nobody (uid 65534) to %s/private, owned by root"},
		{name: "trusted link, parent component", how: NoFollow,
			setup: func(t *testing.T, d string) { plant(t, "../private", d+"/etc/dir", me) },
			path:  "/etc/dir/secret", want: "/private/secret"},
		{name: "untrusted link behind a trusted one", how: FollowLast,
			setup: func(t *testing.T, d string) {
				plant(t, d+"/private/secret", d+"/pub/inner", other)
				plant(t, "inner", d+"/pub/outer", me)
			},
			path: "/pub/outer", wantErr: "/pub/inner is a link owned by nobody"},
		{name: "untrusted link in front of a trusted one", how: FollowLast,
			setup: func(t *testing.T, d string) {
				plant(t, d+"/private/secret", d+"/etc/inner", me)
				plant(t, "../etc/inner", d+"/pub/outer", other)
			},
			path: "/pub/outer", wantErr: "/pub/outer is a link owned by nobody (uid 65534) to %s/private/secret"},
		{name: "dotdot in a link target is taken after the link", how: FollowLast,
			setup: func(t *testing.T, d string) {
				must(t, os.MkdirAll(d+"/a/b", 0o755))
				plant(t, d+"/a/b", d+"/etc/b", me)
				plant(t, "b/../../private/secret", d+"/etc/l", me)
			},
			path: "/etc/l", want: "/private/secret"},
		{name: "link loop", how: FollowLast,
			setup: func(t *testing.T, d string) {
				plant(t, "b", d+"/pub/a", me)
				plant(t, "a", d+"/pub/b", me)
			},
			path: "/pub/a", wantErr: "too many levels of symbolic links"},
		{name: "link loop in a parent", how: NoFollow,
			setup: func(t *testing.T, d string) { plant(t, "self", d+"/pub/self", me) },
			path:  "/pub/self/x", wantErr: "too many levels of symbolic links"},
		{name: "dangling link, last component", how: FollowLast, dangling: true,
			setup: func(t *testing.T, d string) { plant(t, "nowhere", d+"/pub/l", other) },
			path:  "/pub/l", wantErr: "/pub/l is a link to nowhere, which does not exist"},
		{name: "dangling link, parent component", how: NoFollow, dangling: true,
			setup: func(t *testing.T, d string) { plant(t, "nowhere", d+"/pub/l", me) },
			path:  "/pub/l/x", wantErr: "/pub/l is a link to nowhere, which does not exist"},
		{name: "missing parent", how: NoFollow, path: "/no/such/file", wantErr: "/no: no such file or directory"},
		{name: "file as a parent", how: NoFollow, path: "/private/secret/x", wantErr: "/private/secret: not a directory"},
		{name: "parents made", how: MakeParents, path: "/pub/x/y/z", want: "/pub/x/y/z"},
		{name: "no parents made through an untrusted link", how: MakeParents, dangling: true,
			setup: func(t *testing.T, d string) { plant(t, d+"/private/made", d+"/pub/l", other) },
			path:  "/pub/l/z", wantErr: "/pub/l is a link to " /* whose target is missing and stays so */},

		// Where a link is matters, not only whose it is: another user may have moved a link
		// of root's there (a link runbook made in their directory, renamed by them).
		{name: "root's link in another user's directory", how: FollowLast,
			setup: func(t *testing.T, d string) { plant(t, d+"/private/secret", d+"/home/l", me) },
			path:  "/home/l", wantErr: "/home/l is a link owned by root (uid 0) to %[1]s/private/secret, in %[1]s/home, which belongs to nobody (uid 65534): not followed"},
		{name: "root's link as a parent in another user's directory", how: NoFollow,
			setup: func(t *testing.T, d string) { plant(t, d+"/private", d+"/home/dir", me) },
			path:  "/home/dir/secret", wantErr: "/home/dir is a link owned by root (uid 0) to %[1]s/private, in %[1]s/home, which belongs to nobody"},
		{name: "root's link in a group-writable directory", how: FollowLast,
			setup: func(t *testing.T, d string) {
				mkdirs(t, d, 0o775, 0, "/shared")
				plant(t, d+"/private/secret", d+"/shared/l", me)
			},
			path: "/shared/l", wantErr: "/shared/l is a link owned by root (uid 0) to %[1]s/private/secret, in %[1]s/shared, which group root (gid 0) may write (mode 0775): not followed"},
		{name: "root's link in a world-writable directory", how: FollowLast,
			setup: func(t *testing.T, d string) {
				mkdirs(t, d, 0o777, 0, "/open")
				plant(t, d+"/private/secret", d+"/open/l", me)
			},
			path: "/open/l", wantErr: "in %[1]s/open, which anyone may write (mode 0777): not followed"},
		// The sticky bit keeps others from renaming a link out of /tmp, not from renaming
		// one of root's in, from a directory of theirs on the same file system.
		{name: "root's link in a sticky world-writable directory", how: FollowLast,
			setup: func(t *testing.T, d string) { plant(t, d+"/private/secret", d+"/pub/l", me) },
			path:  "/pub/l", wantErr: "in %[1]s/pub, which anyone may write (mode 1777): not followed"},
		// A second name of a user's link, put in another user's directory, would lead that
		// user's task to the first user's files.
		{name: "a user's link to their own file, with two names", how: FollowLast,
			setup: func(t *testing.T, d string) {
				must(t, os.WriteFile(d+"/home/theirs", nil, 0o644))
				must(t, os.Chown(d+"/home/theirs", other, other))
				plant(t, "theirs", d+"/home/l", other)
				must(t, os.Link(d+"/home/l", d+"/home/l2")) // link(2) links the link itself
			},
			path: "/home/l2", wantErr: "/home/l2 is a link owned by nobody (uid 65534) to %[1]s/home/theirs, with 2 names (hard links to one link): not followed"},
		// Root's link with two names, both in root's own directory: nobody else could have
		// put either there.
		{name: "root's link with two names in root's directory", how: FollowLast,
			setup: func(t *testing.T, d string) {
				plant(t, d+"/private/secret", d+"/etc/l", me)
				must(t, os.Link(d+"/etc/l", d+"/etc/l2"))
			},
			path: "/etc/l2", want: "/private/secret"},
		{name: "another user's link to their own file, in a directory others may write", how: FollowLast,
			setup: func(t *testing.T, d string) {
				mkdirs(t, d, 0o777, 0, "/open")
				must(t, os.WriteFile(d+"/home/theirs", nil, 0o644))
				must(t, os.Chown(d+"/home/theirs", other, other))
				plant(t, "../home/theirs", d+"/open/l", other)
			},
			path: "/open/l", want: "/home/theirs"},

		// What hosts have, which must keep working.
		{name: "resolv.conf, root's relative link to a file of systemd-resolved's", how: FollowLast,
			setup: func(t *testing.T, d string) {
				mkdirs(t, d, 0o755, 0, "/run", "/run/systemd", "/run/systemd/resolve")
				must(t, os.WriteFile(d+"/run/systemd/resolve/stub-resolv.conf", nil, 0o644))
				must(t, os.Chown(d+"/run/systemd/resolve/stub-resolv.conf", 101, 101))
				plant(t, "../run/systemd/resolve/stub-resolv.conf", d+"/etc/resolv.conf", me)
			},
			path: "/etc/resolv.conf", want: "/run/systemd/resolve/stub-resolv.conf"},
		{name: "an alternatives chain", how: FollowLast,
			setup: func(t *testing.T, d string) {
				mkdirs(t, d, 0o755, 0, "/etc/alternatives", "/usr", "/usr/bin")
				must(t, os.WriteFile(d+"/usr/bin/vim.basic", nil, 0o755))
				plant(t, d+"/usr/bin/vim.basic", d+"/etc/alternatives/editor", me)
				plant(t, "../../etc/alternatives/editor", d+"/usr/bin/editor", me)
			},
			path: "/usr/bin/editor", want: "/usr/bin/vim.basic"},
		{name: "a service user's current release", how: NoFollow,
			setup: func(t *testing.T, d string) {
				mkdirs(t, d, 0o755, 0, "/srv")
				mkdirs(t, d, 0o755, 999, "/srv/app", "/srv/app/releases", "/srv/app/releases/1")
				plant(t, "releases/1", d+"/srv/app/current", 999)
			},
			path: "/srv/app/current/app.conf", want: "/srv/app/releases/1/app.conf"},
		{name: "the system's own links", how: FollowLast, path: "/proc/self/root/etc/hostname", want: "/etc/hostname"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := tree(t)
			if tt.setup != nil {
				tt.setup(t, d)
			}
			p := d + tt.path
			if strings.HasPrefix(tt.path, "/proc/") {
				p, d = tt.path, ""
			}
			r, err := Resolve(p, tt.how)
			if tt.wantErr != "" {
				want := tt.wantErr
				if strings.Contains(want, "%") {
					want = fmt.Sprintf(want, d)
				}
				if err == nil || !strings.Contains(err.Error(), want) {
					t.Fatalf("err = %v, want %q", err, want)
				}
				var dl *DanglingLinkError
				if errors.As(err, &dl) != tt.dangling || errors.Is(err, fs.ErrNotExist) != (tt.dangling || strings.Contains(want, "no such file")) {
					t.Errorf("err %T: dangling %v, not-exist %v", err, errors.As(err, &dl), errors.Is(err, fs.ErrNotExist))
				}
				if _, err := os.Lstat(d + "/private/made"); err == nil {
					t.Error("a directory was made through an untrusted link")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			if got := r.Path(); got != d+tt.want {
				t.Errorf("Path = %s, want %s", got, d+tt.want)
			}
		})
	}
}

// TestSwapAfterResolve replaces what a Ref names with a link to the secret after it was
// resolved, as a user racing runbook between its check and its change would: nothing
// reaches the secret.
func TestSwapAfterResolve(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("the secret is root's and the link another user's: needs root")
	}
	ops := []struct {
		name    string
		op      func(r *Ref, before fs.FileInfo) error
		wantErr string // "" when the op succeeds on the link itself
	}{
		{name: "read", op: func(r *Ref, _ fs.FileInfo) error { _, err := r.ReadFile(); return err }, wantErr: "is a symbolic link, which is not followed"},
		{name: "chmod", op: func(r *Ref, fi fs.FileInfo) error { return r.Chmod(fi, 0o666) }, wantErr: "was replaced while runbook was working on it"},
		{name: "chmod, nothing expected", op: func(r *Ref, _ fs.FileInfo) error { return r.Chmod(nil, 0o666) }, wantErr: "is a symbolic link, which is not followed"},
		{name: "chown", op: func(r *Ref, fi fs.FileInfo) error { return r.Chown(fi, other, other) }, wantErr: "was replaced while runbook was working on it"},
		{name: "backup", op: func(r *Ref, _ fs.FileInfo) error {
			_, err := r.Backup(func(i int) string { return fmt.Sprintf("bak%d", i) })
			return err
		}, wantErr: "is a symbolic link, which is not followed"},
		{name: "write replaces the link", op: func(r *Ref, _ fs.FileInfo) error {
			return r.WriteAtomic([]byte("mine\n"), Options{Mode: 0o644, UID: other, GID: other})
		}},
		{name: "touch sets the link's own times", op: func(r *Ref, _ fs.FileInfo) error { return r.Chtimes(time.Unix(1, 0)) }},
	}
	for _, tt := range ops {
		t.Run(tt.name, func(t *testing.T) {
			d := tree(t)
			must(t, os.WriteFile(d+"/pub/f", []byte("plain\n"), 0o644))
			r, err := Resolve(d+"/pub/f", FollowLast)
			must(t, err)
			defer r.Close()
			before, err := r.Lstat()
			must(t, err)
			secretBefore := describeFile(t, d+"/private/secret")
			// The swap.
			must(t, os.Remove(d+"/pub/f"))
			plant(t, d+"/private/secret", d+"/pub/f", other)
			err = tt.op(r, before)
			if tt.wantErr == "" && err != nil || tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
				t.Fatalf("err = %v, want %q", err, tt.wantErr)
			}
			if got := describeFile(t, d+"/private/secret"); got != secretBefore {
				t.Errorf("the secret changed:\n%s\n%s", secretBefore, got)
			}
		})
	}
}

// describeFile renders a file's content, mode, owner and times.
func describeFile(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	must(t, err)
	fi, err := os.Lstat(p)
	must(t, err)
	st := fi.Sys().(*syscall.Stat_t)
	return fmt.Sprintf("%q %v %d:%d %v", b, fi.Mode(), st.Uid, st.Gid, fi.ModTime())
}

// TestParentSwapAfterResolve moves the directory a Ref holds away and puts a link to the
// secret's directory in its place: the write still lands in the directory that was
// resolved.
func TestParentSwapAfterResolve(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("the secret is root's and the link another user's: needs root")
	}
	d := tree(t)
	must(t, os.Mkdir(d+"/pub/sub", 0o755))
	r, err := Resolve(d+"/pub/sub/secret", NoFollow)
	must(t, err)
	defer r.Close()
	secretBefore := describeFile(t, d+"/private/secret")
	must(t, os.Rename(d+"/pub/sub", d+"/pub/moved"))
	plant(t, d+"/private", d+"/pub/sub", other)
	must(t, r.WriteAtomic([]byte("mine\n"), Options{Mode: 0o644, UID: -1, GID: -1}))
	if got := describeFile(t, d+"/private/secret"); got != secretBefore {
		t.Errorf("the secret changed:\n%s\n%s", secretBefore, got)
	}
	if b, err := os.ReadFile(d + "/pub/moved/secret"); err != nil || string(b) != "mine\n" {
		t.Errorf("the write went elsewhere: %q %v", b, err)
	}
}

// TestBackupNames takes the first free name, and never writes through a link that holds
// one.
func TestBackupNames(t *testing.T) {
	d := t.TempDir()
	must(t, os.WriteFile(d+"/f", []byte("old\n"), 0o640))
	must(t, os.WriteFile(d+"/victim", []byte("victim\n"), 0o600))
	must(t, os.Symlink("victim", d+"/f.bak0"))
	r, err := Resolve(d+"/f", FollowLast)
	must(t, err)
	defer r.Close()
	got, err := r.Backup(func(i int) string { return fmt.Sprintf("f.bak%d", i) })
	must(t, err)
	if got != filepath.Join(r.Dir(), "f.bak1") {
		t.Errorf("backup = %s", got)
	}
	fi, err := os.Lstat(got)
	must(t, err)
	if b, _ := os.ReadFile(got); string(b) != "old\n" || fi.Mode() != 0o640 {
		t.Errorf("backup = %q %v", b, fi.Mode())
	}
	if b, _ := os.ReadFile(d + "/victim"); string(b) != "victim\n" {
		t.Errorf("victim = %q", b)
	}
	ents, _ := os.ReadDir(d)
	for _, e := range ents {
		if strings.Contains(e.Name(), ".runbook-") {
			t.Errorf("left %s", e.Name())
		}
	}
}

// TestRemoveAllKeepsLinkTargets removes a tree holding links without following them.
func TestRemoveAllKeepsLinkTargets(t *testing.T) {
	d := t.TempDir()
	must(t, os.MkdirAll(d+"/keep/inner", 0o755))
	must(t, os.WriteFile(d+"/keep/inner/f", []byte("x"), 0o644))
	must(t, os.MkdirAll(d+"/tree/sub", 0o755))
	must(t, os.Symlink(d+"/keep", d+"/tree/sub/dirlink"))
	must(t, os.Symlink(d+"/keep/inner/f", d+"/tree/filelink"))
	r, err := Resolve(d+"/tree", NoFollow)
	must(t, err)
	defer r.Close()
	must(t, r.RemoveAll())
	if _, err := os.Lstat(d + "/tree"); !os.IsNotExist(err) {
		t.Errorf("tree still there: %v", err)
	}
	if _, err := os.Stat(d + "/keep/inner/f"); err != nil {
		t.Errorf("a link's target went: %v", err)
	}
}

// TestPathFunctions holds WriteAtomic, ReadOptional and Remove, which the system, security
// and network modules use, to the same rule: a planted link is never read through, and a
// write or removal acts on the link itself, never on what it leads to.
func TestPathFunctions(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("planting a link owned by another user needs root")
	}
	tests := []struct {
		name    string
		op      func(d string) error
		wantErr string
		check   func(t *testing.T, d string)
	}{
		{name: "read through a planted link", wantErr: "/pub/l is a link owned by nobody",
			op: func(d string) error {
				b, _, err := ReadOptional(d + "/pub/l")
				if strings.Contains(string(b), "secret") {
					return errors.New("read the secret")
				}
				return err
			}},
		{name: "read below a planted directory link", wantErr: "/pub/dir is a link owned by nobody",
			op: func(d string) error { _, _, err := ReadOptional(d + "/pub/dir/secret"); return err }},
		{name: "write over a planted link replaces the link",
			op: func(d string) error {
				return WriteAtomic(d+"/pub/l", []byte("mine\n"), Options{Mode: 0o644, UID: -1, GID: -1})
			},
			check: func(t *testing.T, d string) {
				if fi, err := os.Lstat(d + "/pub/l"); err != nil || !fi.Mode().IsRegular() {
					t.Errorf("the link is still there: %v", err)
				}
			}},
		{name: "write below a planted directory link", wantErr: "/pub/dir is a link owned by nobody",
			op: func(d string) error {
				return WriteAtomic(d+"/pub/dir/secret", []byte("mine\n"), Options{Mode: 0o644, UID: -1, GID: -1, MkdirAll: true})
			}},
		{name: "remove a planted link removes the link",
			op: func(d string) error { return Remove(d + "/pub/l") },
			check: func(t *testing.T, d string) {
				if _, err := os.Lstat(d + "/pub/l"); !os.IsNotExist(err) {
					t.Errorf("the link is still there: %v", err)
				}
			}},
		{name: "remove below a planted directory link", wantErr: "/pub/dir is a link owned by nobody",
			op: func(d string) error { return Remove(d + "/pub/dir/secret") }},
		{name: "stat through a planted link", wantErr: "/pub/l is a link owned by nobody",
			op: func(d string) error { _, err := Stat(d + "/pub/l"); return err }},
		{name: "lstat of a planted link describes the link",
			op: func(d string) error {
				fi, err := Lstat(d + "/pub/l")
				if err == nil && fi.Mode()&fs.ModeSymlink == 0 {
					err = fmt.Errorf("lstat: %v", fi.Mode())
				}
				return err
			}},
		{name: "stat of nothing",
			op: func(d string) error {
				if fi, err := Stat(d + "/pub/none/x"); fi != nil || err != nil {
					return fmt.Errorf("stat: %v %v", fi, err)
				}
				return nil
			}},
		{name: "list below a planted directory link", wantErr: "/pub/dir is a link owned by nobody",
			op: func(d string) error { _, err := ReadDir(d + "/pub/dir"); return err }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := tree(t)
			plant(t, d+"/private/secret", d+"/pub/l", other)
			plant(t, d+"/private", d+"/pub/dir", other)
			secretBefore := describeFile(t, d+"/private/secret")
			err := tt.op(d)
			if tt.wantErr == "" && err != nil || tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
				t.Fatalf("err = %v, want %q", err, tt.wantErr)
			}
			if got := describeFile(t, d+"/private/secret"); got != secretBefore {
				t.Errorf("the secret changed:\n%s\n%s", secretBefore, got)
			}
			if tt.check != nil {
				tt.check(t, d)
			}
		})
	}
}
