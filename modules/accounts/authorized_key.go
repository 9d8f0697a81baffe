package accounts

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"unicode/utf8"

	"github.com/zclconf/go-cty/cty"

	"github.com/runbook/runbook/modules"
	"github.com/runbook/runbook/modules/hostfs"
)

var (
	_ modules.Runner[keyArgs]    = AuthorizedKey{}
	_ modules.Validator[keyArgs] = AuthorizedKey{}
)

// AuthorizedKey adds or removes SSH public keys in a user's authorized_keys.
type AuthorizedKey struct{ test *machine }

type keyArgs struct {
	User       string  `cty:"user"`
	Key        string  `cty:"key"`
	State      string  `cty:"state"`
	Exclusive  bool    `cty:"exclusive"`
	Path       *string `cty:"path"`
	KeyOptions *string `cty:"key_options"`
}

type keyResult struct {
	Path    string   `cty:"path"`
	Added   []string `cty:"added"`
	Removed []string `cty:"removed"`
	Keys    float64  `cty:"keys"`
}

func (AuthorizedKey) Info() modules.Info {
	return modules.Info{
		Name:    "authorized_key",
		Family:  "accounts",
		Summary: "Add or remove SSH public keys in a user's authorized_keys, optionally removing every other key.",
		Description: `key holds one or more public keys, one per line, as ssh-keygen writes them ("ssh-ed25519 AAAA...
comment"), each optionally with sshd options before it (from="10.0.0.0/8",no-agent-forwarding). A key is
the same key when its type and data are: an existing line for it whose options differ (or whose comment
differs from one given) is replaced in place; others are left as they are. key_options, when given,
replaces the options of every key in key. exclusive = true removes every key line not in key, and
every other line but comments and blank lines (a line runbook does not read as a key may be one to
sshd). state = "absent" removes the keys in key.

The file is path, by default ~USER/.ssh/authorized_keys. The user owns that directory, so a task that
runs as root must not be led by it elsewhere: every component the user could have made (the home
directory's .ssh and the file) is refused when it is a symbolic link, the file when it has more than one
name (a hard link), and any of them when another non-root user owns it; the home directory itself must
belong to the user or root. Links above the home (a root-owned /home -> /srv/home) are followed only
as modules/hostfs trusts them. The file is replaced atomically through the directory's descriptor, mode
0600 and owned by the user; a missing .ssh is created 0700, owned by the user (only for the default
path). At a path of its own, a file that root owns stays root's, with its mode less group and
other write: a directory of keys that root manages (AuthorizedKeysFile /etc/ssh/keys/%u; sshd reads
it as the user, so it is usually 0644) is one the user must not be able to edit. Check mode only
reads; the diff is the file before and after (its size alone when larger than 256 KiB or not text:
the user may fill it with anything).`,
		Schema: modules.Schema{
			Args: []modules.Arg{
				{Name: "user", Type: cty.String, Required: true, Pattern: namePattern, PatternHelp: namePatternHelp,
					Doc: "The user whose keys these are; they own the file."},
				{Name: "key", Type: cty.String, Required: true,
					Doc: "One or more public key lines ([options] TYPE BASE64 [comment]); blank lines and # comments are skipped."},
				{Name: "state", Type: cty.String, Default: cty.StringVal("present"), OneOf: []string{"present", "absent"},
					Doc: "present: the keys are in the file; absent: they are not."},
				{Name: "exclusive", Type: cty.Bool, Default: cty.False,
					Doc: `With state = "present": remove every key that is not in key, and every line that is not a key, a comment or blank.`},
				{Name: "path", Type: cty.String,
					Doc: "The authorized_keys file (absolute); its directory must exist. Default: ~USER/.ssh/authorized_keys."},
				{Name: "key_options", Type: cty.String,
					Doc: `sshd options for every key in key, e.g. "from=\"10.0.0.0/8\",no-port-forwarding"; "" removes them.`},
			},
		},
		Returns: []modules.Field{
			{Name: "path", Type: cty.String, Doc: "The authorized_keys file."},
			{Name: "added", Type: cty.List(cty.String), Doc: "SHA256 fingerprints of the keys added."},
			{Name: "removed", Type: cty.List(cty.String), Doc: "SHA256 fingerprints of the keys removed."},
			{Name: "keys", Type: cty.Number, Doc: "How many key lines the file holds after the task."},
		},
		Examples: []modules.Example{
			{Title: "The operator's key, from the management network only", HCL: `task "ops key" {
  authorized_key {
    user        = "ops"
    key         = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDzFxYcgSY7yJ5LM7bmm4SQAf9I5p2XLBM59XiYeY7Vt ops@laptop"
    key_options = "from=\"192.0.2.0/24\""
  }
}`},
			{Title: "Exactly the team's keys and no other (a departed colleague's key goes)", HCL: `task "deploy keys" {
  authorized_key {
    user      = "deploy"
    exclusive = true
    key       = <<-EOT
      ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDzFxYcgSY7yJ5LM7bmm4SQAf9I5p2XLBM59XiYeY7Vt alice
      ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAILBAPP1aTieqIWXRIgwvSPcx1IsPzNjLC4LUAybzGH3e bob
    EOT
  }
}`},
		},
	}
}

func (AuthorizedKey) Validate(a keyArgs) []modules.ArgError {
	var errs []modules.ArgError
	opts := ""
	if a.KeyOptions != nil {
		opts = *a.KeyOptions
		if strings.ContainsAny(opts, "\n\r\x00 \t") && !quotedBlanksOnly(opts) {
			errs = append(errs, modules.ArgError{Arg: "key_options", Msg: "key_options must be one line, with blanks only inside double quotes."})
		}
	}
	if _, err := wantKeys(a.Key, a.KeyOptions); err != nil {
		errs = append(errs, modules.ArgError{Arg: "key", Msg: err.Error() + "."})
	}
	if a.Path != nil && (!strings.HasPrefix(*a.Path, "/") || strings.ContainsAny(*a.Path, "\n\r\x00")) {
		errs = append(errs, modules.ArgError{Arg: "path", Msg: fmt.Sprintf("%q is not an absolute path.", *a.Path)})
	}
	if a.Exclusive && a.State == "absent" {
		errs = append(errs, modules.ArgError{Arg: "exclusive", Msg: `exclusive applies to state = "present" only.`})
	}
	return errs
}

// quotedBlanksOnly reports whether every blank of s is inside double quotes and s is one line.
func quotedBlanksOnly(s string) bool {
	if strings.ContainsAny(s, "\n\r\x00") {
		return false
	}
	o, rest, err := splitOptions(s)
	return err == nil && rest == "" && o == s
}

func (k AuthorizedKey) Run(ctx context.Context, env *modules.Env, a keyArgs, apply bool) (*modules.Result, error) {
	return runKey(on(k.test, env), a, apply)
}

// LinkRefusedError is a component of an authorized_keys path that the user could have
// planted: runbook, as root, does not write through it.
type LinkRefusedError struct {
	Path, Why string
}

func (e *LinkRefusedError) Error() string {
	return fmt.Sprintf("%s %s: refused, as root writing there could be led to another file (remove or fix it first)", e.Path, e.Why)
}

func ownerOf(fi fs.FileInfo) (uid int, nlink uint64) {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return int(st.Uid), uint64(st.Nlink)
	}
	return -1, 0
}

// checkComponent refuses what at a name the user controls could redirect root: a
// symbolic link, another non-root user's file, a hard link (for files), the wrong type.
func checkComponent(path string, fi fs.FileInfo, uid int, dir bool) error {
	switch {
	case fi.Mode()&fs.ModeSymlink != 0:
		return &LinkRefusedError{Path: path, Why: "is a symbolic link"}
	case dir && !fi.IsDir():
		return &LinkRefusedError{Path: path, Why: "is not a directory"}
	case !dir && !fi.Mode().IsRegular():
		return &LinkRefusedError{Path: path, Why: "is not a regular file"}
	}
	owner, nlink := ownerOf(fi)
	if owner != uid && owner != 0 {
		return &LinkRefusedError{Path: path, Why: fmt.Sprintf("belongs to uid %d, neither the key's user (uid %d) nor root", owner, uid)}
	}
	if !dir && nlink > 1 {
		return &LinkRefusedError{Path: path, Why: fmt.Sprintf("has %d names (a hard link)", nlink)}
	}
	return nil
}

func runKey(m *machine, a keyArgs, apply bool) (*modules.Result, error) {
	if err := validName(a.User); err != nil {
		return nil, err
	}
	want, err := wantKeys(a.Key, a.KeyOptions)
	if err != nil {
		return nil, err
	}
	b, err := m.readDB("/etc/passwd")
	if err != nil {
		return nil, err
	}
	pw := findUser(parsePasswd(b), a.User)
	data := &keyResult{Added: []string{}, Removed: []string{}}
	res := &modules.Result{Status: modules.StatusOK, Data: data}
	if pw == nil {
		if a.State == "absent" {
			res.Msg = "user " + a.User + " does not exist: no keys to remove"
			return res, nil
		}
		return nil, fmt.Errorf("user %s does not exist on this host (the user module creates it)", a.User)
	}
	uid, gid := int(pw.UID), int(pw.GID)
	defaultPath := a.Path == nil
	path := filepath.Join(pw.Home, ".ssh", "authorized_keys")
	if !defaultPath {
		path = filepath.Clean(*a.Path)
	}
	data.Path = path
	if defaultPath && !strings.HasPrefix(pw.Home, "/") {
		return nil, fmt.Errorf("user %s has no absolute home directory in /etc/passwd (%q)", a.User, pw.Home)
	}

	// The directory above what the user may control: the home for the default path (its
	// .ssh is the user's), the file's directory otherwise. Links up to it are followed
	// only when hostfs trusts them.
	top := filepath.Dir(path)
	if defaultPath {
		top = pw.Home
	}
	// A link there is followed only when root owns it (a home or key directory moved
	// elsewhere by the administrator): one of the user's own could lead anywhere.
	if fi, err := hostfs.Lstat(m.path(top)); err == nil && fi.Mode()&fs.ModeSymlink != 0 {
		if owner, _ := ownerOf(fi); owner != 0 {
			return nil, &LinkRefusedError{Path: top, Why: fmt.Sprintf("is a symbolic link owned by uid %d, not root", owner)}
		}
	}
	topRef, err := hostfs.Resolve(m.path(top), hostfs.FollowLast)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", top, err)
	}
	defer topRef.Close()
	topFi, err := topRef.Lstat()
	if err != nil {
		return nil, err
	}
	if topFi == nil {
		if defaultPath && a.State == "present" {
			return nil, fmt.Errorf("the home directory %s of %s does not exist", top, a.User)
		}
		if defaultPath {
			res.Msg = fmt.Sprintf("%s does not exist: no keys to remove", path)
			return res, nil
		}
		return nil, fmt.Errorf("the directory %s of %s does not exist", top, path)
	}
	if err := checkComponent(top, topFi, uid, true); err != nil {
		return nil, err
	}
	strict := func(p string, fi fs.FileInfo) {
		if fi.Mode().Perm()&0o022 != 0 {
			res.Warnings = append(res.Warnings, fmt.Sprintf("%s may be written by its group or others (mode %04o): sshd (StrictModes, its default) then ignores the keys", p, fi.Mode().Perm()))
		}
	}
	if defaultPath {
		strict(top, topFi)
	}
	topReal := topRef.Path()

	dirReal := topReal
	var sshRef *hostfs.Ref
	makeDir := false
	if defaultPath {
		dirReal = filepath.Join(topReal, ".ssh")
		sshRef, err = hostfs.Resolve(dirReal, hostfs.NoFollow)
		if err != nil {
			return nil, err
		}
		defer sshRef.Close()
		if sshRef.Dir() != topReal {
			return nil, &LinkRefusedError{Path: top, Why: "changed while runbook resolved it"}
		}
		fi, err := sshRef.Lstat()
		if err != nil {
			return nil, err
		}
		if fi == nil {
			makeDir = true
		} else if err := checkComponent(filepath.Join(top, ".ssh"), fi, uid, true); err != nil {
			return nil, err
		} else {
			strict(filepath.Join(top, ".ssh"), fi)
		}
	}

	var old []byte
	var fileRef *hostfs.Ref
	// The new file is the user's, 0600; at a path of its own, a file root owns stays
	// root's with its mode: root manages the keys there, and the user must not edit them.
	opts := hostfs.Options{Mode: 0o600, UID: uid, GID: gid}
	if !makeDir {
		fileRef, err = hostfs.Resolve(filepath.Join(dirReal, filepath.Base(path)), hostfs.NoFollow)
		if err != nil {
			return nil, err
		}
		defer fileRef.Close()
		if fileRef.Dir() != dirReal {
			return nil, &LinkRefusedError{Path: filepath.Dir(path), Why: "changed while runbook resolved it"}
		}
		fi, err := fileRef.Lstat()
		if err != nil {
			return nil, err
		}
		if fi != nil {
			if err := checkComponent(path, fi, uid, false); err != nil {
				return nil, err
			}
			if owner, _ := ownerOf(fi); !defaultPath && owner == 0 {
				opts.UID, opts.GID = hostfs.KeepOwner(fi)
				opts.Mode = fi.Mode().Perm() &^ 0o022 // never writable by others
			}
			if old, err = fileRef.ReadFile(); err != nil {
				return nil, err
			}
		}
	}

	lines, added, removed, dropped := editKeys(parseKeyFile(old), want, a.State == "present", a.Exclusive)
	content := renderKeyFile(lines)
	if len(lines) == 0 {
		content = nil
	}
	data.Added, data.Removed = append(data.Added, added...), append(data.Removed, removed...)
	for _, l := range lines {
		if l.Key != nil {
			data.Keys++
		}
	}
	if bytes.Equal(old, content) && !(makeDir && a.State == "present") {
		res.Msg = fmt.Sprintf("%s holds the keys as asked (%d key line(s))", path, int(data.Keys))
		return res, nil
	}
	if makeDir && a.State == "absent" {
		res.Msg = fmt.Sprintf("%s does not exist: no keys to remove", path)
		return res, nil
	}
	res.Status = modules.DiffStatus(apply)
	var what []string
	if len(added) > 0 {
		what = append(what, fmt.Sprintf("%d key(s) added", len(added)))
	}
	if len(removed) > 0 {
		what = append(what, fmt.Sprintf("%d key(s) removed", len(removed)))
	}
	if dropped > 0 {
		what = append(what, fmt.Sprintf("%d other line(s) removed (not keys runbook reads, which sshd may)", dropped))
	}
	switch {
	case len(what) > 0:
	case len(old) > 0 && bytes.Equal(append(slices.Clip(old), '\n'), content):
		what = append(what, "line end added at the end of the file")
	default:
		what = append(what, "key options or comments updated")
	}
	res.Msg = modules.Tense(apply, "", "would: ") + path + ": " + strings.Join(what, ", ")
	res.Diff = &modules.Diff{Before: shownKeys(old), After: shownKeys(content), BeforeHeader: path + " (before)", AfterHeader: path + " (after)"}
	if !apply {
		return res, nil
	}
	if makeDir {
		if _, err := sshRef.Mkdir(0o700, uid, gid); err != nil {
			return res, err
		}
		fileRef, err = hostfs.Resolve(filepath.Join(dirReal, filepath.Base(path)), hostfs.NoFollow)
		if err != nil {
			return res, err
		}
		defer fileRef.Close()
		if fileRef.Dir() != dirReal {
			return res, &LinkRefusedError{Path: filepath.Dir(path), Why: "changed while runbook resolved it"}
		}
		if fi, err := fileRef.Lstat(); err != nil || fi != nil {
			return res, errors.Join(err, &LinkRefusedError{Path: path, Why: "appeared in the new directory while runbook made it"})
		}
	}
	if err := fileRef.WriteAtomic(content, opts); err != nil {
		return res, err
	}
	return res, nil
}

// maxKeyDiff is the most of an authorized_keys file a diff shows; the user may fill the
// file with anything, up to what hostfs reads (64 MiB).
const maxKeyDiff = 256 << 10

// shownKeys is one side of the diff: the file's text, or a summary when it is large or
// not text.
func shownKeys(b []byte) string {
	switch {
	case len(b) > maxKeyDiff:
		return fmt.Sprintf("(%d bytes, too large to show)\n", len(b))
	case bytes.IndexByte(b, 0) >= 0 || !utf8.Valid(b):
		return fmt.Sprintf("(binary content, %d bytes)\n", len(b))
	}
	return string(b)
}
