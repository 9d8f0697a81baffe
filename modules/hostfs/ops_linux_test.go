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
	"syscall"
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

// temps lists the temporary files runbook left in dir.
func temps(t *testing.T, dir string) []string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(dir, ".*.runbook-*"))
	must(t, err)
	return m
}

// TestValidate checks what a validate command is handed: a copy of the new file in a
// directory of its own that only root may enter, never a path in the destination's
// directory (which another user may write, and where the temporary file could be renamed
// and a link put in its place); and that the file renamed into place is the one written,
// holding exactly the content, whatever happened to it meanwhile.
func TestValidate(t *testing.T) {
	needRoot(t)
	tests := []struct {
		name string
		// tmpdir makes the directory TMPDIR names; nil keeps the default.
		tmpdir func(t *testing.T, d string) string
		// validate is the command; dir is the destination's directory.
		validate func(t *testing.T, dir, copy string) error
		wantErr  string // "" for success, which installs "new\n"
	}{
		{name: "a private copy, with the file's name, mode and owner",
			validate: func(t *testing.T, dir, copy string) error {
				if filepath.Dir(copy) == dir || filepath.Base(copy) != "f" {
					t.Errorf("validate got %s", copy)
				}
				fi, err := os.Lstat(copy)
				must(t, err)
				st := fi.Sys().(*syscall.Stat_t)
				if b, _ := os.ReadFile(copy); string(b) != "new\n" || fi.Mode() != 0o640 || st.Uid != other || st.Gid != other {
					t.Errorf("copy: %q %v %d:%d", b, fi.Mode(), st.Uid, st.Gid)
				}
				di, err := os.Lstat(filepath.Dir(copy))
				must(t, err)
				if di.Mode() != fs.ModeDir|0o700 || di.Sys().(*syscall.Stat_t).Uid != 0 {
					t.Errorf("its directory: %v uid %d", di.Mode(), di.Sys().(*syscall.Stat_t).Uid)
				}
				return nil
			}},
		{name: "what the command reads is what is installed",
			validate: func(t *testing.T, dir, copy string) error {
				// Another file at the temporary name while the command reads, the temporary
				// file back before the command ends.
				tmps := temps(t, dir)
				for i, tmp := range tmps {
					must(t, os.Rename(tmp, fmt.Sprintf("%s/held%d", dir, i)))
					must(t, os.WriteFile(tmp, []byte("passes\n"), 0o640))
				}
				b, err := os.ReadFile(copy)
				for i, tmp := range tmps {
					must(t, os.Rename(fmt.Sprintf("%s/held%d", dir, i), tmp))
				}
				if err != nil || string(b) != "new\n" {
					return fmt.Errorf("the command read %q (%v), not the content installed", b, err)
				}
				return nil
			}},
		{name: "a refusal leaves the file as it was", wantErr: "refused",
			validate: func(*testing.T, string, string) error { return errors.New("refused") }},
		{name: "the temporary file replaced while the command runs",
			wantErr: "was replaced while the new content was validated",
			validate: func(t *testing.T, dir, _ string) error {
				for _, tmp := range temps(t, dir) {
					must(t, os.Rename(tmp, dir+"/moved"))
					must(t, os.WriteFile(tmp, []byte("new\n"), 0o640))
				}
				return nil
			}},
		{name: "the temporary file written by its new owner while the command runs",
			wantErr: "its content changed after runbook wrote it",
			validate: func(t *testing.T, dir, _ string) error {
				for _, tmp := range temps(t, dir) {
					f, err := os.OpenFile(tmp, os.O_WRONLY, 0)
					must(t, err)
					_, err = f.WriteAt([]byte("owned\n"), 0)
					must(t, err)
					f.Close()
				}
				return nil
			}},
		{name: "a temporary directory others may write", wantErr: "may be written by others (mode 0777, not sticky)",
			tmpdir: func(t *testing.T, d string) string {
				mkdirs(t, d, 0o777, 0, "/open")
				return d + "/open"
			}},
		{name: "a relative TMPDIR is not taken from the command's working directory",
			tmpdir: func(t *testing.T, d string) string { return "tmp" },
			validate: func(t *testing.T, _, copy string) error {
				if !strings.HasPrefix(copy, "/tmp/runbook-") {
					t.Errorf("validate got %s, want a private directory under /tmp", copy)
				}
				return nil
			}},
		{name: "a temporary directory of another user's", wantErr: "/home belongs to nobody (uid 65534)",
			tmpdir: func(t *testing.T, d string) string { return d + "/home" }},
		{name: "a temporary directory behind a link of another user's", wantErr: "/pub/tmp is a link owned by nobody",
			tmpdir: func(t *testing.T, d string) string {
				plant(t, d+"/private", d+"/pub/tmp", other)
				return d + "/pub/tmp"
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := tree(t)
			dir := d + "/home"
			if tt.tmpdir != nil {
				t.Setenv("TMPDIR", tt.tmpdir(t, d))
			}
			var copy string
			err := WriteAtomic(dir+"/f", []byte("new\n"), Options{Mode: 0o640, UID: other, GID: other, Validate: func(c string) error {
				copy = c
				if tt.validate == nil {
					return nil
				}
				return tt.validate(t, dir, c)
			}})
			if tt.wantErr == "" && err != nil || tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
				t.Fatalf("err = %v, want %q", err, tt.wantErr)
			}
			b, rerr := os.ReadFile(dir + "/f")
			switch {
			case tt.wantErr == "" && string(b) != "new\n":
				t.Errorf("f = %q %v", b, rerr)
			case tt.wantErr != "" && !os.IsNotExist(rerr):
				t.Errorf("f was written: %q %v", b, rerr)
			}
			if left := temps(t, dir); len(left) > 0 {
				t.Errorf("left %v", left)
			}
			if copy != "" {
				if _, err := os.Lstat(filepath.Dir(copy)); !os.IsNotExist(err) {
					t.Errorf("the private directory %s is still there: %v", filepath.Dir(copy), err)
				}
			}
		})
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
		// The sticky bit keeps others from removing a name, not from adding one.
		{name: "root's file linked into a sticky world-writable directory", path: "/pub/x",
			setup:   func(t *testing.T, d string) { must(t, os.Link(d+"/private/secret", d+"/pub/x")) },
			wantErr: "/pub/x has 2 names (hard links), and its directory may be written by others (mode 1777): not read or changed"},
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

// TestBackupMode keeps a backup's permissions and owner but never its setuid, setgid or
// sticky bits: a copy of a program is not one to run.
func TestBackupMode(t *testing.T) {
	tests := []struct {
		mode, want fs.FileMode
	}{
		{0o640, 0o640},
		{0o755 | fs.ModeSetuid, 0o755},
		{0o2750 | fs.ModeSetgid, 0o750},
		{0o644 | fs.ModeSticky, 0o644},
	}
	for _, tt := range tests {
		t.Run(tt.mode.String(), func(t *testing.T) {
			d := t.TempDir()
			must(t, os.WriteFile(d+"/f", []byte("old\n"), 0o600))
			must(t, os.Chmod(d+"/f", tt.mode))
			r, err := Resolve(d+"/f", FollowLast)
			must(t, err)
			defer r.Close()
			p, err := r.Backup(func(i int) string { return fmt.Sprintf("f.bak%d", i) })
			must(t, err)
			fi, err := os.Lstat(p)
			must(t, err)
			if b, _ := os.ReadFile(p); string(b) != "old\n" || fi.Mode() != tt.want {
				t.Errorf("backup %q %v, want %v", b, fi.Mode(), tt.want)
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

// TestMadeIsChecked makes directories and links and gives them their mode and owner
// through a descriptor of what was made; something else at the name instead (another
// user's, as it would be after a swap) is refused and left as it is.
func TestMadeIsChecked(t *testing.T) {
	needRoot(t)
	tests := []struct {
		name string
		op   func(r *Ref) (fs.FileInfo, error)
		want fs.FileMode
	}{
		{"directory", func(r *Ref) (fs.FileInfo, error) { return r.Mkdir(0o775|fs.ModeSetgid, other, 4) }, fs.ModeDir | fs.ModeSetgid | 0o775},
		{"link", func(r *Ref) (fs.FileInfo, error) { return r.Symlink("/etc/hostname", other, 4) }, fs.ModeSymlink | 0o777},
		{"file", func(r *Ref) (fs.FileInfo, error) {
			return r.Install(nil, Options{Mode: 0o775 | fs.ModeSetgid, UID: other, GID: 4})
		}, fs.ModeSetgid | 0o775},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := tree(t)
			r, err := Resolve(d+"/home/new", NoFollow)
			must(t, err)
			defer r.Close()
			fi, err := tt.op(r)
			must(t, err)
			st := fi.Sys().(*syscall.Stat_t)
			if fi.Mode() != tt.want || st.Uid != other || st.Gid != 4 {
				t.Errorf("made %v %d:%d, want %v %d:4", fi.Mode(), st.Uid, st.Gid, tt.want, other)
			}
			now, err := os.Lstat(d + "/home/new")
			must(t, err)
			if !os.SameFile(fi, now) {
				t.Error("what it returned is not what is at the name")
			}
		})
	}
	// What a rename right after the mkdir leaves, in a directory others may write without
	// the sticky bit: another directory of root's in its place.
	for _, c := range []struct {
		name  string
		setup func(t *testing.T, p string)
	}{
		{"root's directory of another mode", func(t *testing.T, p string) { must(t, os.Mkdir(p, 0o755)) }},
		{"root's 0700 directory that is not empty", func(t *testing.T, p string) {
			must(t, os.Mkdir(p, 0o700))
			must(t, os.WriteFile(p+"/x", nil, 0o600))
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			d := tree(t)
			r, err := Resolve(d+"/etc/new", NoFollow)
			must(t, err)
			defer r.Close()
			c.setup(t, d+"/etc/new")
			f, err := os.Open(d + "/etc/new")
			must(t, err)
			defer f.Close()
			if _, err := r.made(f, fs.ModeDir); err == nil || !strings.Contains(err.Error(), "was replaced right after runbook made it") {
				t.Errorf("err = %v", err)
			}
		})
	}
	t.Run("another user's file in the directory's place", func(t *testing.T) {
		d := tree(t)
		r, err := Resolve(d+"/home/new", NoFollow)
		must(t, err)
		defer r.Close()
		// What a swap right after the mkdir leaves: the other user's own file.
		mustMade := func(f *os.File) error { _, err := r.made(f, fs.ModeDir); return err }
		must(t, os.WriteFile(d+"/home/new", nil, 0o755))
		must(t, os.Chown(d+"/home/new", other, other))
		f, err := os.Open(d + "/home/new")
		must(t, err)
		defer f.Close()
		if err := mustMade(f); err == nil || !strings.Contains(err.Error(), "was replaced right after runbook made it") {
			t.Errorf("err = %v", err)
		}
	})
}

// TestRaceMessages says what happened when a component changes between two steps of a
// resolution: a link that is no longer one is not reported as a missing directory.
func TestRaceMessages(t *testing.T) {
	tests := []struct {
		name  string
		setup func(t *testing.T, d string)
	}{
		{"the link became a directory", func(t *testing.T, d string) { must(t, os.Mkdir(d+"/x", 0o755)) }},
		{"the link became a file", func(t *testing.T, d string) { must(t, os.WriteFile(d+"/x", nil, 0o644)) }},
		{"the link went", func(*testing.T, string) {}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, err := filepath.EvalSymlinks(t.TempDir())
			must(t, err)
			tt.setup(t, d)
			dir, err := unix.Open(d, dirFlags, 0)
			must(t, err)
			defer unix.Close(dir)
			// follow is called on a name that was a link when the walk looked at it.
			var st unix.Stat_t
			st.Nlink = 1
			w := walker{}
			_, err = w.follow(dir, d, "x", &st)
			want := d + "/x was replaced or removed while runbook resolved it"
			if err == nil || !strings.Contains(err.Error(), want) || errors.Is(err, fs.ErrNotExist) {
				t.Errorf("err = %v, want %q (and not a missing file)", err, want)
			}
		})
	}
}

// TestRemoveAllDepth removes a deep tree and refuses one deeper than maxDepth instead of
// holding a directory open per level without end.
func TestRemoveAllDepth(t *testing.T) {
	tests := []struct {
		depth   int
		wantErr string
	}{
		{depth: maxDepth},
		{depth: maxDepth + 2, wantErr: fmt.Sprintf("is more than %d directories deep", maxDepth)},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprint(tt.depth), func(t *testing.T) {
			d := t.TempDir()
			dir, err := unix.Open(d, unix.O_RDONLY|unix.O_DIRECTORY, 0)
			must(t, err)
			for i := 0; i < tt.depth; i++ {
				must(t, unix.Mkdirat(dir, "d", 0o755))
				nd, err := unix.Openat(dir, "d", unix.O_RDONLY|unix.O_DIRECTORY, 0)
				must(t, err)
				unix.Close(dir)
				dir = nd
			}
			unix.Close(dir)
			r, err := Resolve(d+"/d", NoFollow)
			must(t, err)
			defer r.Close()
			err = r.RemoveAll()
			if tt.wantErr == "" && err != nil || tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
				t.Fatalf("err = %v, want %q", err, tt.wantErr)
			}
			if _, err := os.Lstat(d + "/d"); tt.wantErr == "" && !os.IsNotExist(err) {
				t.Errorf("still there: %v", err)
			}
		})
	}
}
