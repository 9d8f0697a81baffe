package generic

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/zclconf/go-cty/cty"

	"github.com/runbook/runbook/modules"
)

var _ modules.Runner = File{}

// Run brings path to the wanted state. Symbolic links are followed for "file" and
// "directory" (the target's metadata is managed, as chmod would), never for "link" and
// "absent" (the link itself is managed or removed).
func (File) Run(ctx context.Context, env *modules.Env, args cty.Value, apply bool) (*modules.Result, error) {
	path := filepath.Clean(str(args, "path"))
	state := str(args, "state")
	force := boolArg(args, "force")
	want, err := parseMeta(ctx, args)
	if err != nil {
		return nil, err
	}
	before, err := lstat(path)
	if err != nil {
		return nil, fmt.Errorf("inspect %s: %w", path, err)
	}
	res := &modules.Result{Status: modules.StatusOK, Data: map[string]any{"exists": before != nil, "type": typeName(before)}}
	beforeTarget := ""
	if before != nil && before.Mode()&fs.ModeSymlink != 0 {
		beforeTarget, _ = os.Readlink(path)
	}
	// Diffs show what the module manages: the link itself for "link" and "absent", what
	// the path resolves to otherwise.
	follow := state != "link" && state != "absent"
	beforeDesc := view(path, follow)

	var what []string // what was (or would be) done, for Msg
	creating := false // path is (or would be) made anew, so its current metadata says nothing
	switch state {
	case "absent":
		if before == nil {
			res.Msg = path + " is absent"
			return res, nil
		}
		what = append(what, modules.Tense(apply, "removed ", "would remove ")+typeName(before)+" "+path)
		if apply {
			if err := os.RemoveAll(path); err != nil {
				return nil, fmt.Errorf("remove %s: %w", path, err)
			}
		}
		res.Status = modules.DiffStatus(apply)
		res.Msg = strings.Join(what, "; ")
		res.Diff = &modules.Diff{Before: beforeDesc, After: describe(nil, ""), BeforeHeader: path + " (before)", AfterHeader: path + " (after)"}
		return res, nil

	case "link":
		src := str(args, "src")
		if before != nil && before.Mode()&fs.ModeSymlink != 0 && beforeTarget == src {
			break // the right link: only its owner may differ
		}
		if before != nil && before.Mode()&fs.ModeSymlink == 0 {
			if !force {
				return nil, fmt.Errorf("%s is a %s, not a link; set force = true to replace it", path, typeName(before))
			}
			if err := replaceable(path, before); err != nil {
				return nil, err
			}
		}
		creating = true
		if before == nil {
			what = append(what, modules.Tense(apply, "created", "would create")+" link "+path+" → "+src)
		} else {
			what = append(what, modules.Tense(apply, "replaced", "would replace")+" "+typeName(before)+" "+path+" with a link to "+src)
		}
		if _, err := os.Stat(resolveLink(path, src)); err != nil {
			res.Warnings = append(res.Warnings, fmt.Sprintf("the link's target %s does not exist (yet)", src))
		}
		if apply {
			if err := makeLink(path, src, before); err != nil {
				return nil, err
			}
		}

	case "directory":
		fi := before
		if fi != nil && fi.Mode()&fs.ModeSymlink != 0 {
			if t, err := os.Stat(path); err == nil && t.IsDir() {
				fi = t // a link to a directory is a directory here, as for mkdir -p
			}
		}
		switch {
		case fi != nil && fi.IsDir():
		case fi != nil && !force:
			return nil, fmt.Errorf("%s is a %s, not a directory; set force = true to replace it", path, typeName(fi))
		default:
			if fi != nil {
				if err := replaceable(path, fi); err != nil {
					return nil, err
				}
			}
			creating = true
			what = append(what, modules.Tense(apply, "created", "would create")+" directory "+path)
			if apply {
				if fi != nil {
					if err := os.Remove(path); err != nil {
						return nil, fmt.Errorf("replace %s: %w", path, err)
					}
				}
				if err := os.MkdirAll(path, 0o755); err != nil {
					return nil, fmt.Errorf("create directory %s: %w", path, err)
				}
				if !want.hasMode {
					// MkdirAll's mode goes through the umask; new directories get 0755.
					if err := os.Chmod(path, 0o755); err != nil {
						return nil, fmt.Errorf("set mode of %s: %w", path, err)
					}
				}
			}
		}

	case "file", "touch":
		fi := before
		if fi != nil && fi.Mode()&fs.ModeSymlink != 0 {
			t, err := os.Stat(path)
			switch {
			case err == nil:
				fi = t
			case !force:
				return nil, fmt.Errorf("%s is a link to %s, which does not exist; set force = true to replace the link with a file", path, beforeTarget)
			}
		}
		switch {
		case fi != nil && fi.Mode().IsRegular():
			if state == "touch" {
				what = append(what, modules.Tense(apply, "touched", "would touch")+" "+path)
				if apply {
					now := env.Time()
					if err := os.Chtimes(path, now, now); err != nil {
						return nil, fmt.Errorf("touch %s: %w", path, err)
					}
				}
			}
		case fi != nil && !force:
			return nil, fmt.Errorf("%s is a %s, not a file; set force = true to replace it", path, typeName(fi))
		default:
			if fi != nil {
				if err := replaceable(path, fi); err != nil {
					return nil, err
				}
			}
			creating = true
			what = append(what, modules.Tense(apply, "created", "would create")+" empty file "+path)
			if apply {
				if fi != nil {
					if err := os.Remove(path); err != nil {
						return nil, fmt.Errorf("replace %s: %w", path, err)
					}
				}
				mode := fs.FileMode(0o644)
				if want.hasMode {
					mode = want.mode
				}
				if err := writeAtomic(ctx, env, path, nil, writeOpts{mode: mode, uid: want.uid, gid: want.gid}); err != nil {
					return nil, err
				}
			}
		}
	}

	// Metadata: of the path itself for links, of what it resolves to otherwise. In check
	// mode a path that does not exist yet has no metadata to compare; creating it already
	// counts as the difference.
	link := state == "link"
	var cur fs.FileInfo
	if link {
		cur, err = os.Lstat(path)
	} else {
		cur, err = os.Stat(path)
	}
	if link && want.hasMode {
		res.Warnings = append(res.Warnings, "mode is ignored for links: Linux does not use a link's own permissions")
	}
	switch {
	case err == nil && (!creating || apply):
		if ch := want.changes(cur); len(ch) > 0 {
			what = append(what, modules.Tense(apply, "set ", "would set ")+strings.Join(ch, ", "))
			if apply {
				if err := want.apply(path, link); err != nil {
					return nil, err
				}
			}
		}
	case err != nil && !errors.Is(err, fs.ErrNotExist):
		return nil, fmt.Errorf("inspect %s: %w", path, err)
	}
	if len(what) == 0 {
		res.Msg = path + " is as wanted"
		return res, nil
	}
	res.Status = modules.DiffStatus(apply)
	res.Msg = strings.Join(what, "; ")
	var after string
	if apply {
		after = view(path, follow)
	} else {
		var curFI fs.FileInfo
		if !creating {
			curFI, _ = os.Stat(path)
			if !follow {
				curFI, _ = os.Lstat(path)
			}
		}
		after = predict(state, str(args, "src"), want, curFI)
	}
	res.Diff = &modules.Diff{Before: beforeDesc, After: after, BeforeHeader: path + " (before)", AfterHeader: path + " (after)"}
	return res, nil
}

// replaceable refuses to replace a directory that has something in it: force is meant for
// a stray file or link, and removing a tree by accident cannot be undone.
func replaceable(path string, fi fs.FileInfo) error {
	if !fi.IsDir() {
		return nil
	}
	entries, err := os.ReadDir(path)
	if err != nil {
		return fmt.Errorf("inspect %s: %w", path, err)
	}
	if len(entries) > 0 {
		return fmt.Errorf("%s is a directory with %d entries; remove it first (state = \"absent\") if it should go", path, len(entries))
	}
	return nil
}

// makeLink points path at src atomically: a link under a temporary name is renamed over
// path, so path never disappears in between.
func makeLink(path, src string, before fs.FileInfo) error {
	if before != nil && before.IsDir() {
		// rename cannot replace a directory with a link; replaceable checked it is empty.
		if err := os.Remove(path); err != nil {
			return fmt.Errorf("replace %s: %w", path, err)
		}
	}
	tmp := filepath.Join(filepath.Dir(path), fmt.Sprintf(".%s.runbook-%d", filepath.Base(path), time.Now().UnixNano()))
	if err := os.Symlink(src, tmp); err != nil {
		return fmt.Errorf("create link %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("create link %s: %w", path, err)
	}
	return nil
}

// resolveLink returns where a link at path with target src points.
func resolveLink(path, src string) string {
	if filepath.IsAbs(src) {
		return src
	}
	return filepath.Join(filepath.Dir(path), src)
}

// view describes path as a diff side, following a link when follow is set and the link
// leads somewhere.
func view(path string, follow bool) string {
	fi, _ := lstat(path)
	if fi != nil && fi.Mode()&fs.ModeSymlink != 0 {
		if t, err := os.Stat(path); follow && err == nil {
			return describe(t, "")
		}
		target, _ := os.Readlink(path)
		return describe(fi, target)
	}
	return describe(fi, "")
}

// predict describes what apply would leave at the path, in describe's format, so that a
// check shows the same diff that apply will. cur is the current path when it is kept (nil
// when it would be created anew).
func predict(state, src string, want meta, cur fs.FileInfo) string {
	if state == "absent" {
		return describe(nil, "")
	}
	typ := state
	if typ == "touch" {
		typ = "file"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "state: %s\n", typ)
	if typ == "link" {
		fmt.Fprintf(&b, "src: %s\n", src)
	} else {
		mode := fs.FileMode(0o644)
		if typ == "directory" {
			mode = 0o755
		}
		if cur != nil {
			mode = cur.Mode() & (fs.ModePerm | specialBits)
		}
		if want.hasMode {
			mode = want.mode
		}
		fmt.Fprintf(&b, "mode: %s\n", fmtMode(mode))
	}
	uid, gid := os.Geteuid(), os.Getegid()
	if cur != nil {
		if u, g, ok := fileOwner(cur); ok {
			uid, gid = u, g
		}
	}
	if want.uid >= 0 {
		uid = want.uid
	}
	if want.gid >= 0 {
		gid = want.gid
	}
	fmt.Fprintf(&b, "owner: %s\ngroup: %s\n", nameOfUID(uid), nameOfGID(gid))
	return b.String()
}
