//go:build linux

package hostfs

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// needRoot skips a test that plays root and another user.
func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("the files are root's and another user's: needs root")
	}
}

// TestHardLinks holds a file with several names to the rule of checkNames: a file of
// root's that another user linked into their own directory (the kernel lets them while
// fs.protected_hardlinks is 0) is neither read nor backed up, chowned or chmodded through
// that name; files whose owner or directory's owner linked them are.
func TestHardLinks(t *testing.T) {
	needRoot(t)
	ops := []struct {
		name string
		op   func(r *Ref) error
	}{
		{"read", func(r *Ref) error { _, err := r.ReadFile(); return err }},
		{"sum", func(r *Ref) error { _, _, err := r.Sum(); return err }},
		{"backup", func(r *Ref) error {
			_, err := r.Backup(func(i int) string { return fmt.Sprintf("bak%d", i) })
			return err
		}},
		{"chown", func(r *Ref) error { fi, _ := r.Lstat(); return r.Chown(fi, other, other) }},
		{"chmod", func(r *Ref) error { fi, _ := r.Lstat(); return r.Chmod(fi, 0o644) }},
	}
	cases := []struct {
		name    string
		setup   func(t *testing.T, d string)
		path    string
		wantErr string
	}{
		{name: "root's file linked into another user's directory", path: "/home/x",
			setup:   func(t *testing.T, d string) { must(t, os.Link(d+"/private/secret", d+"/home/x")) },
			wantErr: "/home/x has 2 names (hard links) and belongs to root (uid 0), while its directory belongs to nobody (uid 65534): not read or changed"},
		{name: "root's file linked in root's directory", path: "/private/again",
			setup: func(t *testing.T, d string) { must(t, os.Link(d+"/private/secret", d+"/private/again")) }},
		{name: "a user's file linked in their own directory", path: "/home/b",
			setup: func(t *testing.T, d string) {
				must(t, os.WriteFile(d+"/home/a", []byte("theirs\n"), 0o600))
				must(t, os.Chown(d+"/home/a", other, other))
				must(t, os.Link(d+"/home/a", d+"/home/b"))
			}},
	}
	for _, c := range cases {
		for _, op := range ops {
			t.Run(c.name+", "+op.name, func(t *testing.T) {
				d := tree(t)
				c.setup(t, d)
				before := describeFile(t, d+"/private/secret")
				r, err := Resolve(d+c.path, FollowLast)
				must(t, err)
				defer r.Close()
				err = op.op(r)
				if c.wantErr == "" {
					must(t, err)
					return
				}
				var hl *HardLinkError
				if err == nil || !strings.Contains(err.Error(), d+c.wantErr) || !errors.As(err, &hl) {
					t.Fatalf("err = %v, want %q", err, c.wantErr)
				}
				if after := describeFile(t, d+"/private/secret"); after != before {
					t.Errorf("the secret changed:\n%s\n%s", before, after)
				}
				if m, _ := filepath.Glob(d + "/home/bak*"); len(m) > 0 {
					t.Errorf("backed up: %v", m)
				}
			})
		}
	}
}

// allocated returns how many bytes f allocates.
func allocated(f func()) uint64 {
	var a, b runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&a)
	f()
	runtime.ReadMemStats(&b)
	return b.TotalAlloc - a.TotalAlloc
}

// sparse makes a file of size bytes that takes no room on disk.
func sparse(t *testing.T, p string, size int64) {
	t.Helper()
	f, err := os.Create(p)
	must(t, err)
	must(t, f.Truncate(size))
	must(t, f.Close())
}

// TestLargeFiles reads a file only within MaxRead, and never reads a whole file into
// memory to hash or back it up: another user's sparse file of any size costs nothing.
func TestLargeFiles(t *testing.T) {
	tests := []struct {
		name     string
		size     int64
		op       func(r *Ref) error
		wantErr  string
		maxAlloc uint64
	}{
		{name: "read, over the limit", size: 256 << 20, wantErr: "is 268435456 bytes, more than the 64 MiB that runbook reads of a file into memory",
			op: func(r *Ref) error { _, err := r.ReadFile(); return err }, maxAlloc: 1 << 20},
		{name: "read, within it", size: 1 << 20,
			op: func(r *Ref) error { _, err := r.ReadFile(); return err }, maxAlloc: 8 << 20},
		{name: "sum", size: 256 << 20,
			op: func(r *Ref) error {
				sum, size, err := r.Sum()
				if err == nil && (size != 256<<20 || len(sum) != 64) {
					err = fmt.Errorf("sum %s size %d", sum, size)
				}
				return err
			}, maxAlloc: 1 << 20},
		{name: "backup", size: 32 << 20,
			op: func(r *Ref) error {
				p, err := r.Backup(func(i int) string { return fmt.Sprintf("bak%d", i) })
				if fi, serr := os.Stat(p); err == nil && (serr != nil || fi.Size() != 32<<20) {
					err = fmt.Errorf("backup %v %v", fi, serr)
				}
				return err
			}, maxAlloc: 4 << 20},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := t.TempDir()
			sparse(t, d+"/big", tt.size)
			r, err := Resolve(d+"/big", FollowLast)
			must(t, err)
			defer r.Close()
			var opErr error
			n := allocated(func() { opErr = tt.op(r) })
			if tt.wantErr == "" && opErr != nil || tt.wantErr != "" && (opErr == nil || !strings.Contains(opErr.Error(), tt.wantErr)) {
				t.Fatalf("err = %v, want %q", opErr, tt.wantErr)
			}
			if n > tt.maxAlloc {
				t.Errorf("allocated %d MiB, want at most %d", n>>20, tt.maxAlloc>>20)
			}
		})
	}
}

// TestChmodDoesNotOpen changes a mode through a descriptor that never opens what is at the
// name: a device or FIFO swapped in is not opened as root (inotify sees no open), and a
// socket, which cannot be opened at all, gets its mode too.
func TestChmodDoesNotOpen(t *testing.T) {
	tests := []struct {
		name    string
		make    func(t *testing.T, p string)
		wantErr string
	}{
		{name: "regular file", make: func(t *testing.T, p string) { must(t, os.WriteFile(p, nil, 0o600)) }},
		{name: "directory", make: func(t *testing.T, p string) { must(t, os.Mkdir(p, 0o700)) }},
		{name: "FIFO", make: func(t *testing.T, p string) { must(t, unix.Mkfifo(p, 0o600)) }},
		{name: "socket", make: func(t *testing.T, p string) {
			l, err := net.Listen("unix", p)
			must(t, err)
			t.Cleanup(func() { l.Close() })
		}},
		{name: "link", make: func(t *testing.T, p string) { must(t, os.Symlink("/etc/hostname", p)) }, wantErr: "is a symbolic link, which is not followed"},
	}
	for _, tt := range tests {
		for _, fallback := range []bool{false, true} {
			name := tt.name
			if fallback {
				name += ", through /proc/self/fd"
			}
			t.Run(name, func(t *testing.T) {
				if fallback {
					chmodFD = func(fd int, mode fs.FileMode) error { return chmodProc(fd, unixMode(mode)) }
					t.Cleanup(func() { chmodFD = chmodAt })
				}
				p := filepath.Join(t.TempDir(), "x")
				tt.make(t, p)
				in, err := unix.InotifyInit1(unix.IN_NONBLOCK | unix.IN_CLOEXEC)
				must(t, err)
				defer unix.Close(in)
				if tt.wantErr == "" {
					_, err = unix.InotifyAddWatch(in, p, unix.IN_OPEN)
					must(t, err)
				}
				r, err := Resolve(p, NoFollow)
				must(t, err)
				defer r.Close()
				fi, err := r.Lstat()
				must(t, err)
				err = r.Chmod(fi, 0o640|fs.ModeSetgid)
				if tt.wantErr != "" {
					if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
						t.Fatalf("err = %v, want %q", err, tt.wantErr)
					}
					return
				}
				must(t, err)
				after, err := os.Lstat(p)
				must(t, err)
				if after.Mode()&(fs.ModePerm|fs.ModeSetgid) != 0o640|fs.ModeSetgid {
					t.Errorf("mode %v", after.Mode())
				}
				if n, _ := unix.Read(in, make([]byte, 4096)); n > 0 {
					t.Errorf("%s was opened", p)
				}
			})
		}
	}
}
