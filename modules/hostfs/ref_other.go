//go:build !linux

package hostfs

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"
)

// Modules run on Linux hosts only; elsewhere the controller writes its own files (reports,
// metrics, formatted runbooks) with the path-based functions below, as the operator's own
// user in the operator's own directories, and a Ref is never made.

var errNotLinux = errors.New("host file operations need Linux")

// Ref is a resolved path; Resolve makes one on Linux only.
type Ref struct{}

func Resolve(string, How) (*Ref, error)                       { return nil, errNotLinux }
func (*Ref) Close() error                                     { return nil }
func (*Ref) Path() string                                     { return "" }
func (*Ref) Dir() string                                      { return "" }
func (*Ref) Name() string                                     { return "" }
func (*Ref) Lstat() (fs.FileInfo, error)                      { return nil, errNotLinux }
func (*Ref) Stat() (fs.FileInfo, error)                       { return nil, errNotLinux }
func (*Ref) Follow() (*Ref, error)                            { return nil, errNotLinux }
func (*Ref) ReadFile() ([]byte, error)                        { return nil, errNotLinux }
func (*Ref) ReadDirNames() ([]string, error)                  { return nil, errNotLinux }
func (*Ref) Readlink() (string, error)                        { return "", errNotLinux }
func (*Ref) ReadDir() ([]fs.DirEntry, error)                  { return nil, errNotLinux }
func (*Ref) Sum() (string, int64, error)                      { return "", 0, errNotLinux }
func (*Ref) WriteAtomic([]byte, Options) error                { return errNotLinux }
func (*Ref) Install([]byte, Options) (fs.FileInfo, error)     { return nil, errNotLinux }
func (*Ref) Backup(func(int) string) (string, error)          { return "", errNotLinux }
func (*Ref) Chown(fs.FileInfo, int, int) error                { return errNotLinux }
func (*Ref) Chmod(fs.FileInfo, fs.FileMode) error             { return errNotLinux }
func (*Ref) Chtimes(time.Time) error                          { return errNotLinux }
func (*Ref) Mkdir(fs.FileMode, int, int) (fs.FileInfo, error) { return nil, errNotLinux }
func (*Ref) Symlink(string, int, int) (fs.FileInfo, error)    { return nil, errNotLinux }
func (*Ref) Remove() error                                    { return errNotLinux }
func (*Ref) RemoveAll() error                                 { return errNotLinux }

// WriteAtomic replaces path with content: a temporary file in the same directory is
// written, given its mode and owner, synced, validated and renamed over path, and the
// directory is synced.
func WriteAtomic(path string, content []byte, o Options) error {
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	if o.MkdirAll {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return fmt.Errorf("create %s: %w", dir, err)
		}
	}
	f, err := os.CreateTemp(dir, "."+base+".runbook-*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	tmp := f.Name()
	done := false
	defer func() {
		if !done {
			f.Close()
			os.Remove(tmp)
		}
	}()
	if err := fill(f, path, bytes.NewReader(content), o); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("close %s: %w", tmp, err)
	}
	if o.Validate != nil {
		if err := o.Validate(tmp); err != nil {
			return err
		}
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	done = true
	syncDir(dir)
	return nil
}

// Remove removes path (a missing file is fine) and syncs its directory.
func Remove(path string) error {
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("remove %s: %w", path, err)
	}
	syncDir(filepath.Dir(path))
	return nil
}

func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		d.Close()
	}
}

// MaxRead is the most of a file that ReadOptional reads into memory on Linux.
const MaxRead = 64 << 20

// Stat describes path, nil when nothing is there.
func Stat(path string) (fs.FileInfo, error) { return optional(os.Stat(path)) }

// Lstat is Stat that describes a link at path itself.
func Lstat(path string) (fs.FileInfo, error) { return optional(os.Lstat(path)) }

func optional(fi fs.FileInfo, err error) (fs.FileInfo, error) {
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	return fi, err
}

// ReadDir lists the directory path, sorted by name.
func ReadDir(path string) ([]fs.DirEntry, error) { return os.ReadDir(path) }

// ReadOptional reads a file that may be missing: ok is false (and err nil) when it is.
func ReadOptional(path string) (b []byte, ok bool, err error) {
	b, err = os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	return b, true, nil
}
