package testenv

import (
	"fmt"
	"io"
	"os"
	"path"
	"sort"
	"strings"
	"syscall"
)

// cpioTree is an initramfs being assembled in memory: the kernel unpacks a
// "newc" cpio archive into its root filesystem at boot. Entries are keyed by
// absolute path; parents are added as directories when written.
type cpioTree struct {
	entries map[string]*cpioEntry
}

type cpioEntry struct {
	mode uint32 // file type and permission bits (syscall.S_IF*)
	data []byte // file content or symlink target
	src  string // file content from this host path when data is nil
	rdev [2]uint32
}

func newCpioTree() *cpioTree { return &cpioTree{entries: map[string]*cpioEntry{}} }

func cleanArchivePath(p string) (string, error) {
	c := path.Clean("/" + p)
	if c == "/" || strings.Contains(p, "\x00") {
		return "", fmt.Errorf("initramfs: bad path %q", p)
	}
	return c, nil
}

func (t *cpioTree) add(p string, e *cpioEntry) error {
	c, err := cleanArchivePath(p)
	if err != nil {
		return err
	}
	if old, ok := t.entries[c]; ok && old.mode&syscall.S_IFMT == syscall.S_IFDIR && e.mode&syscall.S_IFMT == syscall.S_IFDIR {
		old.mode = e.mode
		return nil
	}
	t.entries[c] = e
	return nil
}

// Dir adds a directory.
func (t *cpioTree) Dir(p string, perm uint32) error {
	return t.add(p, &cpioEntry{mode: syscall.S_IFDIR | perm})
}

// File adds a regular file with the given content.
func (t *cpioTree) File(p string, data []byte, perm uint32) error {
	return t.add(p, &cpioEntry{mode: syscall.S_IFREG | perm, data: append([]byte{}, data...)})
}

// CopyFile adds a regular file whose content is read from src (following
// symlinks) when the archive is written.
func (t *cpioTree) CopyFile(p, src string) error {
	st, err := os.Stat(src)
	if err != nil {
		return fmt.Errorf("initramfs: %w", err)
	}
	if !st.Mode().IsRegular() {
		return fmt.Errorf("initramfs: %s is not a regular file", src)
	}
	return t.add(p, &cpioEntry{mode: syscall.S_IFREG | uint32(st.Mode().Perm()), src: src})
}

// Symlink adds a symbolic link to target.
func (t *cpioTree) Symlink(p, target string) error {
	return t.add(p, &cpioEntry{mode: syscall.S_IFLNK | 0o777, data: []byte(target)})
}

// CharDev adds a character device node.
func (t *cpioTree) CharDev(p string, perm, major, minor uint32) error {
	return t.add(p, &cpioEntry{mode: syscall.S_IFCHR | perm, rdev: [2]uint32{major, minor}})
}

// Has reports whether p is in the tree.
func (t *cpioTree) Has(p string) bool {
	c, err := cleanArchivePath(p)
	return err == nil && t.entries[c] != nil
}

// WriteTo writes the tree as a newc archive: every missing parent directory
// (mode 0755) first, entries sorted by path so parents precede children,
// owner root, mtime 0, so equal trees give equal bytes.
func (t *cpioTree) WriteTo(w io.Writer) (int64, error) {
	for p := range t.entries {
		for d := path.Dir(p); d != "/"; d = path.Dir(d) {
			if _, ok := t.entries[d]; !ok {
				t.entries[d] = &cpioEntry{mode: syscall.S_IFDIR | 0o755}
			}
		}
	}
	paths := make([]string, 0, len(t.entries))
	for p := range t.entries {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	cw := &cpioWriter{w: w}
	for i, p := range paths {
		e := t.entries[p]
		data := e.data
		if e.src != "" {
			b, err := os.ReadFile(e.src)
			if err != nil {
				return cw.n, fmt.Errorf("initramfs: %w", err)
			}
			data = b
		}
		nlink := uint32(1)
		if e.mode&syscall.S_IFMT == syscall.S_IFDIR {
			nlink = 2
		}
		if err := cw.entry(strings.TrimPrefix(p, "/"), uint32(i+1), e.mode, nlink, e.rdev, data); err != nil {
			return cw.n, err
		}
	}
	if err := cw.entry("TRAILER!!!", 0, 0, 1, [2]uint32{}, nil); err != nil {
		return cw.n, err
	}
	return cw.n, nil
}

// cpioWriter writes newc ("070701") records.
type cpioWriter struct {
	w io.Writer
	n int64
}

func (c *cpioWriter) write(b []byte) error {
	n, err := c.w.Write(b)
	c.n += int64(n)
	return err
}

func (c *cpioWriter) pad() error {
	if r := c.n % 4; r != 0 {
		return c.write(make([]byte, 4-r))
	}
	return nil
}

func (c *cpioWriter) entry(name string, ino, mode, nlink uint32, rdev [2]uint32, data []byte) error {
	// magic, ino, mode, uid, gid, nlink, mtime, filesize, devmajor, devminor,
	// rdevmajor, rdevminor, namesize (with the NUL), check.
	hdr := fmt.Sprintf("070701%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X",
		ino, mode, 0, 0, nlink, 0, len(data), 0, 0, rdev[0], rdev[1], len(name)+1, 0)
	if err := c.write([]byte(hdr + name + "\x00")); err != nil {
		return err
	}
	if err := c.pad(); err != nil {
		return err
	}
	if err := c.write(data); err != nil {
		return err
	}
	return c.pad()
}
