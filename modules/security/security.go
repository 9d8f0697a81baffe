package security

import (
	"fmt"
	"io/fs"
	"strings"

	"github.com/runbook/runbook/modules"
	"github.com/runbook/runbook/modules/hostfs"
)

func init() {
	modules.Register[seArgs, seResult](SELinux{})
	modules.Register[fwArgs, fwResult](Firewall{})
}

// writeAtomic replaces path with content atomically (hostfs.WriteAtomic), making missing
// directories, with mode and, when keep is set, the old file's owner.
func writeAtomic(path string, content []byte, mode fs.FileMode, keep fs.FileInfo) error {
	uid, gid := hostfs.KeepOwner(keep)
	return hostfs.WriteAtomic(path, content, hostfs.Options{Mode: mode, UID: uid, GID: gid, MkdirAll: true})
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
