//go:build linux

package hostfs

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

const (
	// dirFlags open a directory only to resolve names in it: no read permission needed.
	dirFlags = unix.O_PATH | unix.O_DIRECTORY | unix.O_CLOEXEC
	// readFlags open the content of what Resolve named, never through a link. O_NONBLOCK
	// keeps a FIFO put there from blocking the open; its type is checked after.
	readFlags = unix.O_RDONLY | unix.O_NOFOLLOW | unix.O_NONBLOCK | unix.O_NOCTTY | unix.O_CLOEXEC
	// pathFlags open the name itself, whatever it is, without opening its content: a
	// device or FIFO put there is not opened, a link is not followed.
	pathFlags = unix.O_PATH | unix.O_NOFOLLOW | unix.O_CLOEXEC
)

// MaxRead is the most of a file that ReadFile (and so ReadOptional) reads into memory:
// 64 MiB, what one message of the helper's protocol carries. A larger file is an error
// that says so, instead of memory that another user's sparse file could fill.
const MaxRead = 64 << 20

// maxDepth bounds how deep RemoveAll goes: each level holds a directory open.
const maxDepth = 256

// Ref is a path resolved to its parent directory, held open, and a name in it. Every
// operation goes through the directory's descriptor and none follows a link in the name,
// so nothing resolves the path again between a check and a change: a link or directory
// swapped in after Resolve cannot redirect a read or a write.
type Ref struct {
	dir     int    // the parent directory, opened with O_PATH
	dirPath string // its resolved path, for messages
	name    string // the last component; "." when the path is a directory itself ("/")
}

// Resolve walks path from "/" (or the working directory, for a relative path) one
// component at a time, holding each directory open, and follows the links it meets only
// when trusted (see trusted): a link in a parent directory always, a link in the last
// component with FollowLast. A missing last component is fine (Lstat says nil); a missing
// parent is an error that errors.Is fs.ErrNotExist, unless how is MakeParents. The path is
// cleaned first, so ".." in it is taken lexically; in a link's target it is not.
func Resolve(path string, how How) (*Ref, error) {
	w := walker{mkdir: how == MakeParents}
	return w.walk(unix.AT_FDCWD, ".", filepath.Clean(path), how == FollowLast)
}

// walker carries the state of one resolution across the links it follows.
type walker struct {
	links int  // links followed so far
	mkdir bool // create missing parent directories
}

// changed is the error for a component that stopped being what the walk found a moment
// before (a link gone or turned into a directory, a directory turned into a link): it is
// not a missing file, and says so rather than that a directory does not exist.
func changed(p string) error {
	return fmt.Errorf("%s was replaced or removed while runbook resolved it; nothing was done", p)
}

// walk resolves p, relative to the directory dir (path dirPath) unless p is absolute.
func (w *walker) walk(dir int, dirPath, p string, followLast bool) (*Ref, error) {
	start := "."
	if strings.HasPrefix(p, "/") {
		start, dirPath = "/", "/"
	}
	cur, err := unix.Openat(dir, start, dirFlags, 0)
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: dirPath, Err: err}
	}
	curPath := dirPath
	var comps []string
	for _, c := range strings.Split(p, "/") {
		if c != "" {
			comps = append(comps, c)
		}
	}
	if len(comps) == 0 {
		return &Ref{dir: cur, dirPath: curPath, name: "."}, nil
	}
	fail := func(err error) (*Ref, error) {
		unix.Close(cur)
		return nil, err
	}
	for i, c := range comps {
		last := i == len(comps)-1
		if c == "." || c == ".." {
			if c == ".." {
				nd, err := unix.Openat(cur, "..", dirFlags, 0)
				if err != nil {
					return fail(&fs.PathError{Op: "open", Path: filepath.Join(curPath, ".."), Err: err})
				}
				unix.Close(cur)
				cur, curPath = nd, filepath.Join(curPath, "..")
			}
			if last {
				return &Ref{dir: cur, dirPath: curPath, name: "."}, nil
			}
			continue
		}
		if last && !followLast {
			return &Ref{dir: cur, dirPath: curPath, name: c}, nil
		}
		p := filepath.Join(curPath, c)
		var st unix.Stat_t
		err := unix.Fstatat(cur, c, &st, unix.AT_SYMLINK_NOFOLLOW)
		if err == unix.ENOENT && last {
			return &Ref{dir: cur, dirPath: curPath, name: c}, nil
		}
		if err == unix.ENOENT && w.mkdir {
			if err := unix.Mkdirat(cur, c, 0o755); err != nil && err != unix.EEXIST {
				return fail(&fs.PathError{Op: "mkdir", Path: p, Err: err})
			}
			if err = unix.Fstatat(cur, c, &st, unix.AT_SYMLINK_NOFOLLOW); err == unix.ENOENT {
				return fail(changed(p))
			}
		}
		if err != nil {
			return fail(&fs.PathError{Op: "lstat", Path: p, Err: err})
		}
		if st.Mode&unix.S_IFMT == unix.S_IFLNK {
			next, err := w.follow(cur, curPath, c, &st)
			if err != nil {
				return fail(err)
			}
			if last {
				unix.Close(cur)
				return next, nil
			}
			np := next.Path()
			nd, err := unix.Openat(next.dir, next.name, dirFlags|unix.O_NOFOLLOW, 0)
			next.Close()
			switch {
			case err == unix.ELOOP || err == unix.ENOENT:
				return fail(changed(np))
			case err != nil:
				return fail(&fs.PathError{Op: "open", Path: np, Err: err})
			}
			unix.Close(cur)
			cur, curPath = nd, np
			continue
		}
		if last {
			return &Ref{dir: cur, dirPath: curPath, name: c}, nil
		}
		if st.Mode&unix.S_IFMT != unix.S_IFDIR {
			return fail(&fs.PathError{Op: "open", Path: p, Err: unix.ENOTDIR})
		}
		// O_NOFOLLOW: a directory swapped for a link since the fstatat is not entered.
		nd, err := unix.Openat(cur, c, dirFlags|unix.O_NOFOLLOW, 0)
		switch {
		case err == unix.ELOOP || err == unix.ENOTDIR || err == unix.ENOENT:
			return fail(changed(p))
		case err != nil:
			return fail(&fs.PathError{Op: "open", Path: p, Err: err})
		}
		unix.Close(cur)
		cur, curPath = nd, p
	}
	panic("unreachable")
}

// follow resolves the link name in dir, which link describes, to what it leads to, and
// refuses it unless trusted. No directory is created on the way: the link's target is
// not known to be trusted before it is resolved.
func (w *walker) follow(dir int, dirPath, name string, link *unix.Stat_t) (*Ref, error) {
	lp := filepath.Join(dirPath, name)
	if w.links++; w.links > maxLinks {
		return nil, &fs.PathError{Op: "resolve", Path: lp, Err: unix.ELOOP}
	}
	target, err := readlinkat(dir, name)
	if err == unix.EINVAL || err == unix.ENOENT {
		return nil, changed(lp) // no longer a link
	}
	if err != nil {
		return nil, &fs.PathError{Op: "readlink", Path: lp, Err: err}
	}
	mkdir := w.mkdir
	w.mkdir = false
	ref, err := w.walk(dir, dirPath, target, true)
	w.mkdir = mkdir
	if err != nil {
		var untrusted *UntrustedLinkError
		if !errors.As(err, &untrusted) && errors.Is(err, fs.ErrNotExist) {
			return nil, &DanglingLinkError{Link: lp, Target: target}
		}
		return nil, err
	}
	var st, ds unix.Stat_t
	if err := unix.Fstatat(ref.dir, ref.name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		ref.Close()
		if err == unix.ENOENT {
			return nil, &DanglingLinkError{Link: lp, Target: target}
		}
		return nil, &fs.PathError{Op: "lstat", Path: ref.Path(), Err: err}
	}
	if err := unix.Fstat(dir, &ds); err != nil {
		ref.Close()
		return nil, &fs.PathError{Op: "stat", Path: dirPath, Err: err}
	}
	facts := linkFacts{linkUID: link.Uid, names: uint64(link.Nlink), dirUID: ds.Uid, dirMode: ds.Mode & 0o7777, targetUID: st.Uid}
	if why, ok := trusted(facts); !ok {
		p := ref.Path()
		ref.Close()
		return nil, &UntrustedLinkError{Link: lp, Target: p, LinkUID: int(link.Uid), TargetUID: int(st.Uid),
			Names: int(link.Nlink), Dir: dirPath, DirUID: int(ds.Uid), DirGID: int(ds.Gid), DirMode: facts.dirMode, reason: why}
	}
	return ref, nil
}

func readlinkat(dir int, name string) (string, error) {
	for size := 256; ; size *= 2 {
		buf := make([]byte, size)
		n, err := unix.Readlinkat(dir, name, buf)
		if err != nil {
			return "", err
		}
		if n < size {
			return string(buf[:n]), nil
		}
	}
}

// Close releases the directory.
func (r *Ref) Close() error {
	if r == nil || r.dir < 0 {
		return nil
	}
	err := unix.Close(r.dir)
	r.dir = -1
	return err
}

// Path is the resolved path: the parent directory's real path and the name.
func (r *Ref) Path() string {
	if r.name == "." {
		return r.dirPath
	}
	return filepath.Join(r.dirPath, r.name)
}

// Dir is the resolved path of the parent directory.
func (r *Ref) Dir() string { return r.dirPath }

// Name is the last component.
func (r *Ref) Name() string { return r.name }

// Lstat describes the name itself (a link is not followed); nil, without an error, when
// nothing is there.
func (r *Ref) Lstat() (fs.FileInfo, error) {
	f, err := r.openPath("lstat")
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return f.Stat()
}

// openPath opens the name itself with O_PATH: a descriptor that names it, through which
// its owner and mode can be changed, without opening its content or following a link.
func (r *Ref) openPath(op string) (*os.File, error) {
	fd, err := unix.Openat(r.dir, r.name, pathFlags, 0)
	if err != nil {
		return nil, &fs.PathError{Op: op, Path: r.Path(), Err: err}
	}
	return os.NewFile(uintptr(fd), r.Path()), nil
}

// Follow returns a Ref to what a link at the name leads to, when the link is trusted, as
// Resolve with FollowLast would; for anything else (nothing included) a Ref to the name
// itself. Close it as well.
func (r *Ref) Follow() (*Ref, error) {
	var st unix.Stat_t
	err := unix.Fstatat(r.dir, r.name, &st, unix.AT_SYMLINK_NOFOLLOW)
	if err == nil && st.Mode&unix.S_IFMT == unix.S_IFLNK {
		w := walker{}
		return w.follow(r.dir, r.dirPath, r.name, &st)
	}
	if err != nil && err != unix.ENOENT {
		return nil, &fs.PathError{Op: "lstat", Path: r.Path(), Err: err}
	}
	d, err := unix.Openat(r.dir, ".", dirFlags, 0)
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: r.dirPath, Err: err}
	}
	return &Ref{dir: d, dirPath: r.dirPath, name: r.name}, nil
}

// Stat is Lstat that follows a link in the name, when trusted, to describe its target.
func (r *Ref) Stat() (fs.FileInfo, error) {
	t, err := r.Follow()
	if err != nil {
		return nil, err
	}
	defer t.Close()
	return t.Lstat()
}

// open opens the name itself, never through a link.
func (r *Ref) open(flags int) (*os.File, error) {
	fd, err := unix.Openat(r.dir, r.name, flags|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err == unix.ELOOP {
		return nil, r.isLink()
	}
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: r.Path(), Err: err}
	}
	return os.NewFile(uintptr(fd), r.Path()), nil
}

// isLink is the error for a link found where runbook acts on the name itself.
func (r *Ref) isLink() error {
	return fmt.Errorf("open %s: it is a symbolic link, which is not followed here (was it just put there?)", r.Path())
}

// checkNames refuses a regular file with more than one name unless it belongs to the owner
// of the directory it was found in and nobody else may write that directory (HardLinkError):
// it is read, backed up, chowned or chmodded only when its owner, or the directory's, put
// it there.
func (r *Ref) checkNames(fi fs.FileInfo) error {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok || !fi.Mode().IsRegular() || st.Nlink <= 1 {
		return nil
	}
	var ds unix.Stat_t
	if err := unix.Fstat(r.dir, &ds); err != nil {
		return &fs.PathError{Op: "stat", Path: r.dirPath, Err: err}
	}
	// Whoever may write the directory may have put the name there, sticky or not (the
	// sticky bit stops removing names, not adding them).
	if ds.Uid == st.Uid && ds.Mode&modeGroupOtherWrite == 0 {
		return nil
	}
	return &HardLinkError{Path: r.Path(), UID: int(st.Uid), Names: int(st.Nlink), DirUID: int(ds.Uid), DirMode: ds.Mode & 0o7777}
}

// openRegular opens a regular file for reading; anything else is an error, and so is a
// file with several names that checkNames refuses.
func (r *Ref) openRegular() (*os.File, fs.FileInfo, error) {
	f, err := r.open(readFlags)
	if err != nil {
		return nil, nil, err
	}
	fi, err := f.Stat()
	if err == nil && !fi.Mode().IsRegular() {
		err = fmt.Errorf("%s is not a regular file", r.Path())
	}
	if err == nil {
		err = r.checkNames(fi)
	}
	if err != nil {
		f.Close()
		return nil, nil, err
	}
	return f, fi, nil
}

// ReadFile reads the regular file at the name: at most MaxRead bytes, a larger file is
// an error.
func (r *Ref) ReadFile() ([]byte, error) {
	f, fi, err := r.openRegular()
	if err != nil {
		return nil, err
	}
	defer f.Close()
	tooLarge := func(size string) error {
		return fmt.Errorf("%s is %s, more than the %d MiB that runbook reads of a file into memory", r.Path(), size, MaxRead>>20)
	}
	if fi.Size() > MaxRead {
		return nil, tooLarge(fmt.Sprintf("%d bytes", fi.Size()))
	}
	// The limit holds for a file that grows, or whose size says nothing (/proc), too.
	b, err := io.ReadAll(io.LimitReader(f, MaxRead+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", r.Path(), err)
	}
	if len(b) > MaxRead {
		return nil, tooLarge("larger")
	}
	return b, nil
}

// Sum returns the sha256 (hex) and the size of the regular file at the name, read as a
// stream, so a file of any size costs no memory.
func (r *Ref) Sum() (sum string, size int64, err error) {
	f, _, err := r.openRegular()
	if err != nil {
		return "", 0, err
	}
	defer f.Close()
	h := sha256.New()
	if size, err = io.Copy(h, f); err != nil {
		return "", 0, fmt.Errorf("read %s: %w", r.Path(), err)
	}
	return fmt.Sprintf("%x", h.Sum(nil)), size, nil
}

// ReadDirNames lists the directory at the name.
func (r *Ref) ReadDirNames() ([]string, error) {
	f, err := r.open(unix.O_RDONLY | unix.O_DIRECTORY)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return f.Readdirnames(-1)
}

// ReadDir lists the directory at the name, sorted by name.
func (r *Ref) ReadDir() ([]fs.DirEntry, error) {
	f, err := r.open(unix.O_RDONLY | unix.O_DIRECTORY)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	ents, err := f.ReadDir(-1)
	if err != nil {
		return nil, fmt.Errorf("read directory %s: %w", r.Path(), err)
	}
	slices.SortFunc(ents, func(a, b fs.DirEntry) int { return strings.Compare(a.Name(), b.Name()) })
	return ents, nil
}

// Readlink returns the target of the link at the name.
func (r *Ref) Readlink() (string, error) {
	t, err := readlinkat(r.dir, r.name)
	if err != nil {
		return "", &fs.PathError{Op: "readlink", Path: r.Path(), Err: err}
	}
	return t, nil
}

// createTemp creates a new file beside the name, exclusively and never through a link,
// so that nothing put there first is written to.
func (r *Ref) createTemp() (string, *os.File, error) {
	for range 100 {
		name := fmt.Sprintf(".%s.runbook-%d", r.name, rand.Uint64())
		fd, err := unix.Openat(r.dir, name, unix.O_RDWR|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
		if err == unix.EEXIST {
			continue
		}
		if err != nil {
			return "", nil, &fs.PathError{Op: "create", Path: filepath.Join(r.dirPath, name), Err: err}
		}
		return name, os.NewFile(uintptr(fd), filepath.Join(r.dirPath, name)), nil
	}
	return "", nil, fmt.Errorf("create a temporary file in %s: every name tried exists", r.dirPath)
}

// sameAt says whether name in the directory is still the file f.
func (r *Ref) sameAt(name string, f *os.File) bool {
	var a, b unix.Stat_t
	return unix.Fstatat(r.dir, name, &a, unix.AT_SYMLINK_NOFOLLOW) == nil &&
		unix.Fstat(int(f.Fd()), &b) == nil && a.Dev == b.Dev && a.Ino == b.Ino
}

// holds says whether f holds exactly content, read back through its descriptor.
func holds(f *os.File, content []byte) (bool, error) {
	fi, err := f.Stat()
	if err != nil || fi.Size() != int64(len(content)) {
		return false, err
	}
	h := sha256.New()
	if _, err := io.Copy(h, io.NewSectionReader(f, 0, fi.Size()+1)); err != nil {
		return false, err
	}
	want := sha256.Sum256(content)
	return bytes.Equal(h.Sum(nil), want[:]), nil
}

// WriteAtomic is Install without what it installed.
func (r *Ref) WriteAtomic(content []byte, o Options) error {
	_, err := r.Install(content, o)
	return err
}

// Install replaces the name with content so that readers see the old file or the new one,
// never a mix, and a crash leaves one of them: a temporary file in the same directory is
// created exclusively, written, given its owner and mode, synced, validated (see
// Options.Validate), read back through its descriptor, and renamed over the name (a link
// there is replaced, not followed); then the directory is synced. The read back makes sure
// the file holds content and nothing else: once it is given to another user, that user
// could write it before its mode is set. Install returns what it put at the name, for the
// changes that follow to check that they act on it.
func (r *Ref) Install(content []byte, o Options) (fs.FileInfo, error) {
	path := r.Path()
	tmp, f, err := r.createTemp()
	if err != nil {
		return nil, fmt.Errorf("write %s: %w", path, err)
	}
	closed, renamed := false, false
	defer func() {
		if !closed {
			f.Close()
		}
		if !renamed {
			unix.Unlinkat(r.dir, tmp, 0)
		}
	}()
	if err := fill(f, path, bytes.NewReader(content), o); err != nil {
		return nil, err
	}
	if o.Validate != nil {
		if err := r.validate(content, o); err != nil {
			return nil, err
		}
		if !r.sameAt(tmp, f) {
			return nil, fmt.Errorf("write %s: %s was replaced while the new content was validated; %s left unchanged", path, f.Name(), path)
		}
	}
	if ok, err := holds(f, content); err != nil || !ok {
		if err == nil {
			err = errors.New("its content changed after runbook wrote it")
		}
		return nil, fmt.Errorf("write %s: %s: %w; %s left unchanged", path, f.Name(), err, path)
	}
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	closed = true
	if err := f.Close(); err != nil {
		return nil, fmt.Errorf("close %s: %w", f.Name(), err)
	}
	if err := renameat(r.dir, tmp, r.name); err != nil {
		return nil, fmt.Errorf("write %s: %w", path, err)
	}
	renamed = true
	r.syncDir()
	return fi, nil
}

func renameat(dir int, from, to string) error { return unix.Renameat(dir, from, dir, to) }

// validate writes content, with o's owner and mode, under the name into a directory of its
// own that only the user runbook runs as may enter (newScratch), and runs o.Validate on
// that path: nobody else can rename, replace or change the file the command reads, and
// the command is never handed a path in a directory another user may write.
func (r *Ref) validate(content []byte, o Options) error {
	s, err := newScratch()
	if err != nil {
		return fmt.Errorf("validate %s: %w", r.Path(), err)
	}
	defer s.remove()
	name := r.name
	p := filepath.Join(s.path(), name)
	fd, err := unix.Openat(s.dir, name, unix.O_RDWR|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return fmt.Errorf("validate %s: %w", r.Path(), &fs.PathError{Op: "create", Path: p, Err: err})
	}
	f := os.NewFile(uintptr(fd), p)
	err = fill(f, p, bytes.NewReader(content), o)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("validate %s: %w", r.Path(), err)
	}
	return o.Validate(p)
}

// scratch is a new directory that only the user runbook runs as may enter, made in the
// temporary directory (TMPDIR, else /tmp) for a file that a command reads by path.
type scratch struct {
	parent     int // the temporary directory, held open
	parentPath string
	name       string
	dir        int // the scratch directory, held open
}

func (s *scratch) path() string { return filepath.Join(s.parentPath, s.name) }

// remove removes the directory and what is in it, and releases both descriptors.
func (s *scratch) remove() {
	_ = removeAt(s.parent, s.parentPath, s.name, 0)
	unix.Close(s.dir)
	unix.Close(s.parent)
}

// newScratch makes a scratch directory. The temporary directory is resolved to its
// physical path, then every directory from "/" down to it must belong to root or to the
// user runbook runs as and be writable by nobody else, unless sticky (as /tmp is): then
// nobody else can rename the new directory or anything on the way to it, so the path
// handed to a command leads to it and nowhere else. The new directory is made mode 0700
// under a random name, exclusively, and checked to be runbook's own.
func newScratch() (*scratch, error) {
	tmp := os.TempDir()
	if !filepath.IsAbs(tmp) {
		tmp = "/tmp" // a relative TMPDIR would be taken from the command's working directory
	}
	base, err := Resolve(tmp, FollowLast)
	if err != nil {
		return nil, fmt.Errorf("temporary directory: %w", err)
	}
	basePath := base.Path()
	base.Close()
	parent, err := openPrivateChain(basePath)
	if err != nil {
		return nil, err
	}
	for range 100 {
		name := fmt.Sprintf("runbook-%d", rand.Uint64())
		err := unix.Mkdirat(parent, name, 0o700)
		if err == unix.EEXIST {
			continue
		}
		if err != nil {
			unix.Close(parent)
			return nil, &fs.PathError{Op: "create directory", Path: filepath.Join(basePath, name), Err: err}
		}
		p := filepath.Join(basePath, name)
		fd, err := unix.Openat(parent, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if err != nil {
			unix.Close(parent)
			return nil, changed(p)
		}
		var st unix.Stat_t
		if err := unix.Fstat(fd, &st); err != nil || st.Uid != uint32(os.Geteuid()) || st.Mode&0o077 != 0 {
			unix.Close(fd)
			unix.Close(parent)
			return nil, changed(p)
		}
		return &scratch{parent: parent, parentPath: basePath, name: name, dir: fd}, nil
	}
	unix.Close(parent)
	return nil, fmt.Errorf("create a directory in %s: every name tried exists", basePath)
}

// openPrivateChain opens the directory at the physical path p, checking it and every
// directory above it as newScratch describes, without following any link.
func openPrivateChain(p string) (int, error) {
	me := uint32(os.Geteuid())
	cur, err := unix.Open("/", dirFlags, 0)
	if err != nil {
		return -1, &fs.PathError{Op: "open", Path: "/", Err: err}
	}
	curPath := "/"
	for _, c := range append([]string{""}, strings.Split(strings.TrimPrefix(filepath.Clean(p), "/"), "/")...) {
		if c != "" {
			nd, err := unix.Openat(cur, c, dirFlags|unix.O_NOFOLLOW, 0)
			unix.Close(cur)
			curPath = filepath.Join(curPath, c)
			if err != nil {
				return -1, &fs.PathError{Op: "open", Path: curPath, Err: err}
			}
			cur = nd
		}
		var st unix.Stat_t
		if err := unix.Fstat(cur, &st); err != nil {
			unix.Close(cur)
			return -1, &fs.PathError{Op: "stat", Path: curPath, Err: err}
		}
		var why string
		switch {
		case st.Uid != 0 && st.Uid != me:
			why = "belongs to " + userName(int(st.Uid))
		case st.Mode&modeGroupOtherWrite != 0 && st.Mode&modeSticky == 0:
			why = fmt.Sprintf("may be written by others (mode %04o, not sticky)", st.Mode&0o7777)
		}
		if why != "" {
			unix.Close(cur)
			return -1, fmt.Errorf("%s %s: a command is handed a file only in a place that nobody but root and the user runbook runs as can change (set TMPDIR to one)", curPath, why)
		}
	}
	return cur, nil
}

// Backup copies the regular file at the name beside it, keeping its permissions (not the
// setuid, setgid and sticky bits: a copy is no program to run) and, as root, its owner,
// under the first of name(0), name(1), ... that does not exist yet. The content goes from
// descriptor to descriptor, never whole into memory. The copy is complete before it gets
// its name, and the name is taken exclusively (a hard link, which never replaces
// anything). It returns the backup's path.
func (r *Ref) Backup(name func(i int) string) (string, error) {
	src, fi, err := r.openRegular()
	if err != nil {
		return "", err
	}
	defer src.Close()
	tmp, f, err := r.createTemp()
	if err != nil {
		return "", err
	}
	defer func() {
		f.Close()
		unix.Unlinkat(r.dir, tmp, 0)
	}()
	uid, gid := KeepOwner(fi)
	o := Options{Mode: fi.Mode().Perm(), UID: uid, GID: gid}
	if err := fill(f, f.Name(), src, o); err != nil {
		return "", err
	}
	for i := range 1000 {
		n := name(i)
		err := unix.Linkat(r.dir, tmp, r.dir, n, 0)
		if err == unix.EEXIST {
			continue
		}
		if err != nil {
			return "", &fs.PathError{Op: "link", Path: filepath.Join(r.dirPath, n), Err: err}
		}
		r.syncDir()
		return filepath.Join(r.dirPath, n), nil
	}
	return "", fmt.Errorf("back up %s: every name tried exists", r.Path())
}

// Chown sets the owner of the name itself (a link's own, for a link), acting on a
// descriptor of it: expect, when given, must still describe it (the same file, of the same
// type), or nothing is changed. A regular file that checkNames refuses is not changed.
func (r *Ref) Chown(expect fs.FileInfo, uid, gid int) error {
	f, err := r.openPath("set owner of")
	if err != nil {
		return err
	}
	defer f.Close()
	if _, err := r.same(expect, f); err != nil {
		return err
	}
	if err := unix.Fchownat(int(f.Fd()), "", uid, gid, unix.AT_EMPTY_PATH); err != nil {
		return &fs.PathError{Op: "set owner of", Path: r.Path(), Err: err}
	}
	return nil
}

// Chmod sets the mode of what is at the name, acting on a descriptor of it that does not
// open its content (a device or FIFO put there is not opened); expect as for Chown. Links
// have no mode of their own: a link at the name is an error.
func (r *Ref) Chmod(expect fs.FileInfo, mode fs.FileMode) error {
	f, err := r.openPath("set mode of")
	if err != nil {
		return err
	}
	defer f.Close()
	fi, err := r.same(expect, f)
	if err != nil {
		return err
	}
	if fi.Mode()&fs.ModeSymlink != 0 {
		return r.isLink()
	}
	if err := chmodFD(int(f.Fd()), mode); err != nil {
		return &fs.PathError{Op: "set mode of", Path: r.Path(), Err: err}
	}
	return nil
}

// chmodFD sets the mode of what the O_PATH descriptor fd names (a variable, so that tests
// can take the older kernels' way).
var chmodFD = chmodAt

// chmodAt sets the mode of what the O_PATH descriptor fd names: with fchmodat2 (Linux
// 6.6), else through its /proc/self/fd link, which leads to that very file.
func chmodAt(fd int, mode fs.FileMode) error {
	m := unixMode(mode)
	err := unix.Fchmodat(fd, "", m, unix.AT_EMPTY_PATH)
	// EPERM too: a system call filter written before fchmodat2 may refuse it so. The
	// fallback acts on the same descriptor.
	if err == unix.EOPNOTSUPP || err == unix.ENOSYS || err == unix.EPERM {
		err = chmodProc(fd, m)
	}
	return err
}

func chmodProc(fd int, m uint32) error {
	return unix.Fchmodat(unix.AT_FDCWD, fmt.Sprintf("/proc/self/fd/%d", fd), m, 0)
}

// unixMode turns an fs.FileMode's permissions and special bits into chmod's.
func unixMode(mode fs.FileMode) uint32 {
	m := uint32(mode.Perm())
	if mode&fs.ModeSetuid != 0 {
		m |= unix.S_ISUID
	}
	if mode&fs.ModeSetgid != 0 {
		m |= unix.S_ISGID
	}
	if mode&fs.ModeSticky != 0 {
		m |= unix.S_ISVTX
	}
	return m
}

// same describes what f names, and checks that it is what expect (when given) describes
// and that checkNames lets it be changed.
func (r *Ref) same(expect fs.FileInfo, f *os.File) (fs.FileInfo, error) {
	cur, err := f.Stat()
	if err != nil {
		return nil, err
	}
	// The type too: a file removed and a link made in its place can get its inode number.
	if expect != nil && (!os.SameFile(expect, cur) || expect.Mode().Type() != cur.Mode().Type()) {
		return nil, fmt.Errorf("%s was replaced while runbook was working on it; nothing was changed", r.Path())
	}
	if err := r.checkNames(cur); err != nil {
		return nil, err
	}
	return cur, nil
}

// Chtimes sets the access and modification times of the name itself.
func (r *Ref) Chtimes(t time.Time) error {
	ts := unix.NsecToTimespec(t.UnixNano())
	if err := unix.UtimesNanoAt(r.dir, r.name, []unix.Timespec{ts, ts}, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return &fs.PathError{Op: "touch", Path: r.Path(), Err: err}
	}
	return nil
}

// made checks that what f names is what runbook just made at the name: of type typ and
// owned by the user runbook runs as, which nobody else can make; a directory also still
// empty and mode 0700, as made. In a directory others may write (without the sticky bit),
// one of them could rename another directory of root's to the name in between; it would
// have to be empty and 0700 to pass for the new one.
func (r *Ref) made(f *os.File, typ fs.FileMode) (fs.FileInfo, error) {
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	replaced := fmt.Errorf("%s was replaced right after runbook made it; nothing was changed", r.Path())
	if uid, ok := fileUID(fi); fi.Mode().Type() != typ || !ok || uid != os.Geteuid() {
		return nil, replaced
	}
	if typ == fs.ModeDir {
		if fi.Mode().Perm() != 0o700 || fi.Mode()&(fs.ModeSetuid|fs.ModeSetgid|fs.ModeSticky) != 0 {
			return nil, replaced
		}
		if names, _ := f.Readdirnames(1); len(names) > 0 {
			return nil, replaced
		}
	}
	return fi, nil
}

func fileUID(fi fs.FileInfo) (int, bool) {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return 0, false
	}
	return int(st.Uid), true
}

// Mkdir creates a directory at the name and gives it exactly mode (the umask aside) and,
// when uid or gid is not -1, that owner. It is made 0700, opened (never through a link),
// checked to be the directory runbook made, and changed through that descriptor, so
// nothing swapped in meanwhile gets the mode or owner. It returns what it made.
func (r *Ref) Mkdir(mode fs.FileMode, uid, gid int) (fs.FileInfo, error) {
	if err := unix.Mkdirat(r.dir, r.name, 0o700); err != nil {
		return nil, &fs.PathError{Op: "create directory", Path: r.Path(), Err: err}
	}
	r.syncDir()
	fd, err := unix.Openat(r.dir, r.name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, changed(r.Path())
	}
	f := os.NewFile(uintptr(fd), r.Path())
	defer f.Close()
	if _, err := r.made(f, fs.ModeDir); err != nil {
		return nil, err
	}
	if uid >= 0 || gid >= 0 {
		if err := f.Chown(uid, gid); err != nil {
			return nil, fmt.Errorf("set owner of %s: %w", r.Path(), err)
		}
	}
	if err := f.Chmod(mode); err != nil {
		return nil, fmt.Errorf("set mode of %s: %w", r.Path(), err)
	}
	return f.Stat()
}

// Symlink makes the name a link to target atomically: a link under a temporary name is
// made, given the owner uid and gid (-1 keeps runbook's), and renamed over it, so the
// name never disappears in between. It returns the link it made.
func (r *Ref) Symlink(target string, uid, gid int) (fs.FileInfo, error) {
	for range 100 {
		tmp := fmt.Sprintf(".%s.runbook-%d", r.name, rand.Uint64())
		err := unix.Symlinkat(target, r.dir, tmp)
		if err == unix.EEXIST {
			continue
		}
		if err != nil {
			return nil, &fs.PathError{Op: "create link", Path: r.Path(), Err: err}
		}
		fi, err := r.ownLink(tmp, target, uid, gid)
		if err == nil {
			err = renameat(r.dir, tmp, r.name)
		}
		if err != nil {
			unix.Unlinkat(r.dir, tmp, 0)
			return nil, fmt.Errorf("create link %s: %w", r.Path(), err)
		}
		r.syncDir()
		return fi, nil
	}
	return nil, fmt.Errorf("create link %s: every temporary name tried exists", r.Path())
}

// ownLink gives the link runbook just made under tmp its owner, through a descriptor of
// the link checked to be that one: runbook's, and leading to target.
func (r *Ref) ownLink(tmp, target string, uid, gid int) (fs.FileInfo, error) {
	t := &Ref{dir: r.dir, dirPath: r.dirPath, name: tmp}
	f, err := t.openPath("open")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if _, err := t.made(f, fs.ModeSymlink); err != nil {
		return nil, err
	}
	buf := make([]byte, len(target)+1)
	if n, err := unix.Readlinkat(int(f.Fd()), "", buf); err != nil || string(buf[:n]) != target {
		return nil, fmt.Errorf("%s was replaced right after runbook made it; nothing was changed", r.Path())
	}
	if uid >= 0 || gid >= 0 {
		if err := unix.Fchownat(int(f.Fd()), "", uid, gid, unix.AT_EMPTY_PATH); err != nil {
			return nil, &fs.PathError{Op: "set owner of", Path: r.Path(), Err: err}
		}
	}
	return f.Stat()
}

// Remove removes the file, link or empty directory at the name; nothing there is fine.
func (r *Ref) Remove() error {
	err := unix.Unlinkat(r.dir, r.name, 0)
	if err == unix.EISDIR {
		err = unix.Unlinkat(r.dir, r.name, unix.AT_REMOVEDIR)
	}
	if err != nil && err != unix.ENOENT {
		return &fs.PathError{Op: "remove", Path: r.Path(), Err: err}
	}
	r.syncDir()
	return nil
}

// RemoveAll removes the name and, for a directory, everything in it; links in the tree
// are removed, never followed. A tree deeper than maxDepth (256) directories is an error,
// as each level holds one directory open.
func (r *Ref) RemoveAll() error {
	if err := removeAt(r.dir, r.dirPath, r.name, 0); err != nil {
		return err
	}
	r.syncDir()
	return nil
}

func removeAt(dir int, dirPath, name string, depth int) error {
	p := filepath.Join(dirPath, name)
	err := unix.Unlinkat(dir, name, 0)
	if err == nil || err == unix.ENOENT {
		return nil
	}
	if err != unix.EISDIR {
		return &fs.PathError{Op: "remove", Path: p, Err: err}
	}
	if depth >= maxDepth {
		return fmt.Errorf("remove %s: it is more than %d directories deep; remove the deepest part first", p, maxDepth)
	}
	fd, err := unix.Openat(dir, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return &fs.PathError{Op: "open", Path: p, Err: err}
	}
	d := os.NewFile(uintptr(fd), p)
	defer d.Close()
	for {
		names, err := d.Readdirnames(1024)
		for _, n := range names {
			if err := removeAt(fd, p, n, depth+1); err != nil {
				return err
			}
		}
		if err == io.EOF || len(names) == 0 {
			break
		}
		if err != nil {
			return &fs.PathError{Op: "read directory", Path: p, Err: err}
		}
	}
	if err := unix.Unlinkat(dir, name, unix.AT_REMOVEDIR); err != nil && err != unix.ENOENT {
		return &fs.PathError{Op: "remove", Path: p, Err: err}
	}
	return nil
}

// syncDir syncs the parent directory, so that a rename or removal in it survives a crash.
// Some filesystems cannot sync a directory; the change is made anyway, so errors are
// ignored.
func (r *Ref) syncDir() {
	fd, err := unix.Openat(r.dir, ".", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err == nil {
		_ = unix.Fsync(fd)
		unix.Close(fd)
	}
}

// WriteAtomic replaces path with content (Ref.WriteAtomic); a link at path is replaced,
// links in its parent directories are followed only when trusted. With o.MkdirAll,
// missing directories are made.
func WriteAtomic(path string, content []byte, o Options) error {
	how := NoFollow
	if o.MkdirAll {
		how = MakeParents
	}
	r, err := Resolve(path, how)
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	defer r.Close()
	return r.WriteAtomic(content, o)
}

// Remove removes path (a missing file is fine; a link is removed, not followed) and syncs
// its directory.
func Remove(path string) error {
	r, err := Resolve(path, NoFollow)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("remove %s: %w", path, err)
	}
	defer r.Close()
	return r.Remove()
}

// ReadOptional reads a file that may be missing: ok is false (and err nil) when it is. A
// link is followed only when trusted; one that leads nowhere counts as missing.
func ReadOptional(path string) (b []byte, ok bool, err error) {
	r, err := Resolve(path, FollowLast)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	defer r.Close()
	b, err = r.ReadFile()
	if errors.Is(err, fs.ErrNotExist) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	return b, true, nil
}

// Stat describes what path names, following links (in the last component too) only when
// trusted; nil, without an error, when nothing is there, a link that leads nowhere
// included.
func Stat(path string) (fs.FileInfo, error) { return stat(path, FollowLast) }

// Lstat is Stat that describes a link in the last component itself.
func Lstat(path string) (fs.FileInfo, error) { return stat(path, NoFollow) }

func stat(path string, how How) (fs.FileInfo, error) {
	r, err := Resolve(path, how)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer r.Close()
	return r.Lstat()
}

// ReadDir lists the directory path, sorted by name; links are followed only when trusted.
func ReadDir(path string) ([]fs.DirEntry, error) {
	r, err := Resolve(path, FollowLast)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	return r.ReadDir()
}
