package security

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/zclconf/go-cty/cty"

	"github.com/runbook/runbook/modules"
)

func init() {
	modules.Register(SELinux{})
	modules.Register(Firewall{})
}

// str returns a string argument, "" when null.
func str(args cty.Value, name string) string {
	v := args.GetAttr(name)
	if v.IsNull() {
		return ""
	}
	return v.AsString()
}

func boolArg(args cty.Value, name string) bool {
	v := args.GetAttr(name)
	return !v.IsNull() && v.True()
}

// statusFor returns the status of a run that found a difference.
func statusFor(apply bool) string {
	if apply {
		return modules.StatusChanged
	}
	return modules.StatusDrift
}

// verb picks the message's tense: what was done, or what would be.
func verb(apply bool, done, would string) string {
	if apply {
		return done
	}
	return would
}

// under joins an absolute host path to root, the directory the module treats as "/" (tests
// point it at a fake tree; on a host it is "" or "/").
func under(root, path string) string {
	if root == "" || root == "/" {
		return path
	}
	return filepath.Join(root, path)
}

// readOptional reads a file; a missing file is (nil, false, nil).
func readOptional(path string) ([]byte, bool, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	return b, true, nil
}

// writeAtomic replaces path with content: a temporary file in the same directory is
// written, given mode (and the old file's owner when keep is set), synced and renamed over
// path, then the directory is synced, so readers and a crash see the old file or the new
// one, never a mix.
func writeAtomic(path string, content []byte, mode fs.FileMode, keep fs.FileInfo) error {
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
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
	if _, err := f.Write(content); err != nil {
		return fmt.Errorf("write %s: %w", tmp, err)
	}
	if keep != nil && os.Geteuid() == 0 {
		if st, ok := keep.Sys().(*syscall.Stat_t); ok {
			if err := f.Chown(int(st.Uid), int(st.Gid)); err != nil {
				return fmt.Errorf("set owner of %s: %w", path, err)
			}
		}
	}
	// CreateTemp makes 0600 files; set the mode explicitly, unaffected by umask.
	if err := f.Chmod(mode); err != nil {
		return fmt.Errorf("set mode of %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", tmp, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("close %s: %w", tmp, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	done = true
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync() // some filesystems cannot sync a directory; the rename is done anyway
		d.Close()
	}
	return nil
}

// fileMode is the mode an existing file keeps when rewritten, or def for a new one.
func fileMode(fi fs.FileInfo, def fs.FileMode) fs.FileMode {
	if fi == nil {
		return def
	}
	return fi.Mode() & (fs.ModePerm | fs.ModeSetuid | fs.ModeSetgid | fs.ModeSticky)
}

// section is one part of a diff that covers several things (a file, the runtime state, a
// unit): a title and its before and after text.
type section struct {
	title         string
	before, after string
}

// sectionsDiff joins the sections that differ into one diff; nil when none does. A diff of
// one section is named after it; several are each headed by their title.
func sectionsDiff(name string, secs []section) *modules.Diff {
	var changed []section
	for _, s := range secs {
		if s.before != s.after {
			changed = append(changed, s)
		}
	}
	switch len(changed) {
	case 0:
		return nil
	case 1:
		s := changed[0]
		return &modules.Diff{Before: withNewline(s.before), After: withNewline(s.after), BeforeHeader: s.title + " (before)", AfterHeader: s.title + " (after)"}
	}
	var b, a strings.Builder
	for i, s := range changed {
		if i > 0 {
			b.WriteString("\n")
			a.WriteString("\n")
		}
		fmt.Fprintf(&b, "==> %s <==\n%s", s.title, withNewline(s.before))
		fmt.Fprintf(&a, "==> %s <==\n%s", s.title, withNewline(s.after))
	}
	return &modules.Diff{Before: b.String(), After: a.String(), BeforeHeader: name + " (before)", AfterHeader: name + " (after)"}
}

func withNewline(s string) string {
	if s == "" || strings.HasSuffix(s, "\n") {
		return s
	}
	return s + "\n"
}
