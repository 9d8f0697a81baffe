package generic

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os/user"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/runbook/runbook/internal/sh"
	"github.com/runbook/runbook/modules"
	"github.com/runbook/runbook/modules/host"
	"github.com/runbook/runbook/modules/hostfs"
)

// specialBits are the mode bits besides the permissions that a mode string can set.
const specialBits = fs.ModeSetuid | fs.ModeSetgid | fs.ModeSticky

// meta is the wanted metadata of a path; unset parts are left as they are.
type meta struct {
	mode     fs.FileMode
	hasMode  bool
	uid, gid int // -1: unmanaged
	owner    string
	group    string
}

// deref returns what p points to, "" for nil (an optional argument not given).
func deref(p *string) string {
	if p == nil {
		return ""
	}
	return *p
}

// parseMeta reads the mode, owner and group arguments (nil: unmanaged). Names are looked
// up on the host, so a name the host does not know is an error even in check mode: apply
// could not succeed.
func parseMeta(ctx context.Context, mode, owner, group *string) (meta, error) {
	m := meta{uid: -1, gid: -1, owner: deref(owner), group: deref(group)}
	if s := deref(mode); s != "" {
		mode, err := parseMode(s)
		if err != nil {
			return m, err
		}
		m.mode, m.hasMode = mode, true
	}
	if m.owner != "" {
		uid, err := lookupID(ctx, m.owner, "passwd")
		if err != nil {
			return m, err
		}
		m.uid = uid
	}
	if m.group != "" {
		gid, err := lookupID(ctx, m.group, "group")
		if err != nil {
			return m, err
		}
		m.gid = gid
	}
	return m, nil
}

// parseMode turns "0644", "644" or "2755" into an fs.FileMode with Go's special bits.
func parseMode(s string) (fs.FileMode, error) {
	n, err := strconv.ParseUint(s, 8, 32)
	if err != nil || n > 07777 {
		return 0, fmt.Errorf("mode %q is not an octal mode such as \"0644\"", s)
	}
	m := fs.FileMode(n & 0777)
	if n&04000 != 0 {
		m |= fs.ModeSetuid
	}
	if n&02000 != 0 {
		m |= fs.ModeSetgid
	}
	if n&01000 != 0 {
		m |= fs.ModeSticky
	}
	return m, nil
}

// fmtMode renders a mode the way runbooks write it.
func fmtMode(m fs.FileMode) string {
	n := uint32(m.Perm())
	if m&fs.ModeSetuid != 0 {
		n |= 04000
	}
	if m&fs.ModeSetgid != 0 {
		n |= 02000
	}
	if m&fs.ModeSticky != 0 {
		n |= 01000
	}
	return fmt.Sprintf("%04o", n)
}

// lookupID resolves a user (db "passwd") or group (db "group") name or numeric id. The
// pure-Go lookup only reads /etc/passwd and /etc/group (the helper is built without cgo),
// so names from LDAP or SSSD are asked of getent as well.
func lookupID(ctx context.Context, name, db string) (int, error) {
	if n, err := strconv.Atoi(name); err == nil {
		if n < 0 {
			return 0, fmt.Errorf("%s id %d is negative", db, n)
		}
		return n, nil
	}
	var id string
	var err error
	if db == "passwd" {
		var u *user.User
		if u, err = user.Lookup(name); err == nil {
			id = u.Uid
		}
	} else {
		var g *user.Group
		if g, err = user.LookupGroup(name); err == nil {
			id = g.Gid
		}
	}
	if err != nil {
		what := "user"
		if db == "group" {
			what = "group"
		}
		// No user or group name starts with "-" (useradd and groupadd refuse it), and getent
		// would take it for an option: it is not asked.
		var out string
		gerr := fmt.Errorf("%q is not a %s name", name, what)
		if !strings.HasPrefix(name, "-") {
			out, gerr = host.Output(ctx, host.Exec{}, nil, host.Cmd{Argv: []string{"getent", db, name}, Timeout: 10 * time.Second, Data: true})
		}
		fields := strings.Split(strings.TrimSpace(out), ":")
		if gerr != nil || len(fields) < 3 {
			return 0, fmt.Errorf("no %s named %q on this host", what, name)
		}
		id = fields[2]
	}
	n, err := strconv.Atoi(id)
	if err != nil {
		return 0, fmt.Errorf("%s %q has a non-numeric id %q", db, name, id)
	}
	return n, nil
}

func nameOfUID(uid int) string {
	if u, err := user.LookupId(strconv.Itoa(uid)); err == nil {
		return u.Username
	}
	return strconv.Itoa(uid)
}

func nameOfGID(gid int) string {
	if g, err := user.LookupGroupId(strconv.Itoa(gid)); err == nil {
		return g.Name
	}
	return strconv.Itoa(gid)
}

// changes lists how fi differs from m, e.g. "mode 0600 → 0644". For a symbolic link the mode
// is not compared: Linux ignores a link's own permissions.
func (m meta) changes(fi fs.FileInfo) []string {
	var out []string
	if m.hasMode && fi.Mode()&fs.ModeSymlink == 0 {
		if cur := fi.Mode() & (fs.ModePerm | specialBits); cur != m.mode {
			out = append(out, fmt.Sprintf("mode %s → %s", fmtMode(cur), fmtMode(m.mode)))
		}
	}
	uid, gid, ok := fileOwner(fi)
	if ok && m.uid >= 0 && uid != m.uid {
		out = append(out, fmt.Sprintf("owner %s → %s", nameOfUID(uid), nameOfUID(m.uid)))
	}
	if ok && m.gid >= 0 && gid != m.gid {
		out = append(out, fmt.Sprintf("group %s → %s", nameOfGID(gid), nameOfGID(m.gid)))
	}
	return out
}

// apply sets the metadata on what r names (a link's own owner, for a link), which must
// still be what fi describes. Ownership goes first: chown clears the setuid and setgid
// bits, which chmod then sets again.
func (m meta) apply(r *hostfs.Ref, fi fs.FileInfo) error {
	if m.uid >= 0 || m.gid >= 0 {
		if err := r.Chown(fi, m.uid, m.gid); err != nil {
			return err
		}
	}
	if m.hasMode && fi.Mode()&fs.ModeSymlink == 0 {
		if err := r.Chmod(fi, m.mode); err != nil {
			return err
		}
	}
	return nil
}

// describe renders a path's type and metadata as a few lines, the two sides of a diff for
// modules that manage paths rather than content.
func describe(fi fs.FileInfo, target string) string {
	if fi == nil {
		return "state: absent\n"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "state: %s\n", typeName(fi))
	if target != "" {
		fmt.Fprintf(&b, "src: %s\n", target)
	}
	if fi.Mode()&fs.ModeSymlink == 0 {
		fmt.Fprintf(&b, "mode: %s\n", fmtMode(fi.Mode()&(fs.ModePerm|specialBits)))
	}
	if uid, gid, ok := fileOwner(fi); ok {
		fmt.Fprintf(&b, "owner: %s\ngroup: %s\n", nameOfUID(uid), nameOfGID(gid))
	}
	return b.String()
}

func typeName(fi fs.FileInfo) string {
	switch {
	case fi == nil:
		return "absent"
	case fi.Mode().IsRegular():
		return "file"
	case fi.IsDir():
		return "directory"
	case fi.Mode()&fs.ModeSymlink != 0:
		return "link"
	}
	return "other"
}

// resolveFile resolves the file that copy, template and line write. A link in its place is
// followed, as editing the file by hand would follow it, but only when trusted
// (hostfs.Resolve): an untrusted link, or one that leads nowhere, is an error, found before
// anything is read, in check mode too. r is nil when the file's directory does not exist.
func resolveFile(path string) (*hostfs.Ref, error) {
	r, err := hostfs.Resolve(path, hostfs.FollowLast)
	var dangling *hostfs.DanglingLinkError
	switch {
	case errors.As(err, &dangling):
		return nil, err
	case errors.Is(err, fs.ErrNotExist):
		return nil, nil
	}
	return r, err
}

// writeOpts says how writeAtomic creates the file.
type writeOpts struct {
	mode     fs.FileMode
	uid, gid int    // -1: the writer's
	validate string // a command with %s for the path of a copy of the new file; "" for none
}

// writeAtomic replaces the file r names with content atomically (hostfs.Ref.Install);
// with a validate command, a copy of the complete new file is checked by it first (see
// hostfs.Options.Validate). It returns what it put at the name.
func writeAtomic(ctx context.Context, env *modules.Env, r *hostfs.Ref, content []byte, o writeOpts) (fs.FileInfo, error) {
	path := r.Path()
	ho := hostfs.Options{Mode: o.mode, UID: o.uid, GID: o.gid}
	if o.validate != "" {
		ho.Validate = func(copy string) error {
			cmd := strings.ReplaceAll(o.validate, "%s", sh.Quote(copy))
			res, err := host.Exec{Env: env}.Run(ctx, host.Cmd{Argv: []string{"/bin/sh", "-c", cmd}, User: true})
			if err != nil {
				return fmt.Errorf("validate %s: %w", path, err)
			}
			if res.RC != 0 {
				msg := strings.TrimSpace(res.Stderr)
				if msg == "" {
					msg = strings.TrimSpace(res.Stdout)
				}
				return &modules.Failure{Msg: fmt.Sprintf("validate %s: %q exited with %d; %s left unchanged", path, o.validate, res.RC, path), Stderr: msg}
			}
			return nil
		}
	}
	return r.Install(content, ho)
}

// backupFile copies the file r names beside itself, named with the time, keeping mode and
// owner (hostfs.Ref.Backup).
func backupFile(env *modules.Env, r *hostfs.Ref) (string, error) {
	stamp := env.Time().UTC().Format("20060102T150405Z")
	name, err := r.Backup(func(i int) string {
		if i == 0 {
			return r.Name() + "." + stamp + ".bak"
		}
		return fmt.Sprintf("%s.%s-%d.bak", r.Name(), stamp, i)
	})
	if err != nil {
		return "", fmt.Errorf("back up %s: %w", r.Path(), err)
	}
	return name, nil
}

// maxDiff is the largest content shown in a diff; larger files are summarised.
const maxDiff = 256 << 10

// blob is one side of a content diff: the content itself, or for a file that was not read
// whole (too large to show) its size and, when it was hashed, its sha256.
type blob struct {
	b     []byte
	whole bool // b is all of it
	size  int64
	sum   string // hex; "" when not known
}

func bytesBlob(b []byte) blob { return blob{b: b, whole: true, size: int64(len(b)), sum: checksum(b)} }

// contentDiff builds the diff of a file's content. Sensitive, binary or very large
// content is replaced by a one-line summary, so no secret and no megabytes reach the
// controller's output.
func contentDiff(path string, before, after blob, existedBefore, existsAfter, sensitive bool) *modules.Diff {
	d := &modules.Diff{BeforeHeader: path + " (before)", AfterHeader: path + " (after)"}
	if !existedBefore {
		d.BeforeHeader = "/dev/null"
	}
	if !existsAfter {
		d.AfterHeader = "/dev/null"
	}
	show := func(x blob, exists bool) string {
		if !exists {
			return ""
		}
		sum := ""
		if x.sum != "" {
			sum = ", sha256 " + x.sum[:16]
		}
		switch {
		case sensitive:
			return fmt.Sprintf("(sensitive content, %d bytes%s)\n", x.size, sum)
		case !x.whole || x.size > maxDiff:
			return fmt.Sprintf("(%d bytes, too large to show%s)\n", x.size, sum)
		case bytes.IndexByte(x.b, 0) >= 0 || !utf8.Valid(x.b):
			return fmt.Sprintf("(binary content, %d bytes%s)\n", x.size, sum)
		}
		return string(x.b)
	}
	d.Before, d.After = show(before, existedBefore), show(after, existsAfter)
	return d
}

func checksum(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}
