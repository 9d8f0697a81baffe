package generic

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/runbook/runbook/modules"
	"github.com/runbook/runbook/modules/hostfs"
)

var _ modules.Runner[fileArgs] = File{}

// fileArgs are file's arguments.
type fileArgs struct {
	Path  string  `cty:"path"`
	State string  `cty:"state"`
	Src   *string `cty:"src"`
	Force bool    `cty:"force"`
	Mode  *string `cty:"mode"`
	Owner *string `cty:"owner"`
	Group *string `cty:"group"`
}

// fileResult is what file registers: the path as it was before the task.
type fileResult struct {
	Exists bool   `cty:"exists"`
	Type   string `cty:"type"`
}

// Run brings path to the wanted state. Symbolic links are followed for "file", "touch" and
// "directory" (the target's metadata is managed, as chmod would), never for "link" and
// "absent" (the link itself is managed or removed). A link is followed only when trusted
// (hostfs.Resolve); an untrusted one is an error for the states that would follow it.
func (File) Run(ctx context.Context, env *modules.Env, args fileArgs, apply bool) (*modules.Result, error) {
	path := filepath.Clean(args.Path)
	state, src, force := args.State, deref(args.Src), args.Force
	want, err := parseMeta(ctx, args.Mode, args.Owner, args.Group)
	if err != nil {
		return nil, err
	}
	// ref names the path itself; nil while its directory does not exist. obj is what the
	// task manages: ref, or what a link at ref leads to for the states that follow it.
	ref, err := hostfs.Resolve(path, hostfs.NoFollow)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		ref = nil
	case err != nil:
		return nil, err
	}
	obj := ref
	defer func() {
		obj.Close()
		ref.Close()
	}()
	var before fs.FileInfo
	if ref != nil {
		if before, err = ref.Lstat(); err != nil {
			return nil, fmt.Errorf("inspect %s: %w", path, err)
		}
	}
	res := &modules.Result{Status: modules.StatusOK, Data: fileResult{Exists: before != nil, Type: typeName(before)}}
	isLink := before != nil && before.Mode()&fs.ModeSymlink != 0
	beforeTarget := ""
	if isLink {
		beforeTarget, _ = ref.Readlink()
	}
	follow := state != "link" && state != "absent"
	objFI := before // what obj is; a link to nothing stays the link
	if follow && isLink {
		t, err := ref.Follow()
		var dangling *hostfs.DanglingLinkError
		switch {
		case errors.As(err, &dangling):
		case err != nil:
			return nil, err
		default:
			obj = t
			if objFI, err = t.Lstat(); err != nil {
				return nil, fmt.Errorf("inspect %s: %w", t.Path(), err)
			}
		}
	}
	// Diffs show what the module manages: the link itself for "link" and "absent", what
	// the path resolves to otherwise.
	beforeDesc := view(ref, follow)

	var what []string    // what was (or would be) done, for Msg
	creating := false    // path is (or would be) made anew, so its current metadata says nothing
	var made fs.FileInfo // what apply made at the path, with the wanted mode and owner already
	switch state {
	case "absent":
		if before == nil {
			res.Msg = path + " is absent"
			return res, nil
		}
		what = append(what, modules.Tense(apply, "removed ", "would remove ")+typeName(before)+" "+path)
		if apply {
			if err := ref.RemoveAll(); err != nil {
				return nil, err
			}
		}
		res.Status = modules.DiffStatus(apply)
		res.Msg = strings.Join(what, "; ")
		res.Diff = &modules.Diff{Before: beforeDesc, After: describe(nil, ""), BeforeHeader: path + " (before)", AfterHeader: path + " (after)"}
		return res, nil

	case "link":
		if isLink && beforeTarget == src {
			break // the right link: only its owner may differ
		}
		if before != nil && !isLink {
			if !force {
				return nil, fmt.Errorf("%s is a %s, not a link; set force = true to replace it", path, typeName(before))
			}
			if err := replaceable(path, ref, before); err != nil {
				return nil, err
			}
		}
		creating = true
		if before == nil {
			what = append(what, modules.Tense(apply, "created", "would create")+" link "+path+" → "+src)
		} else {
			what = append(what, modules.Tense(apply, "replaced", "would replace")+" "+typeName(before)+" "+path+" with a link to "+src)
		}
		if w := targetWarning(path, src); w != "" {
			res.Warnings = append(res.Warnings, w)
		}
		if apply {
			if ref, err = resolveAgain(ref, path, hostfs.NoFollow); err != nil {
				return nil, err
			}
			if before != nil && before.IsDir() {
				// rename cannot replace a directory with a link; replaceable checked it is empty.
				if err := ref.Remove(); err != nil {
					return nil, err
				}
			}
			if made, err = ref.Symlink(src, want.uid, want.gid); err != nil {
				return nil, err
			}
		}

	case "directory":
		fi, at := objFI, obj
		if obj != ref && (fi == nil || !fi.IsDir()) {
			fi, at = before, ref // a link to a directory is a directory here, as for mkdir -p; to anything else it is a link
		}
		switch {
		case fi != nil && fi.IsDir():
		case fi != nil && !force:
			return nil, fmt.Errorf("%s is a %s, not a directory; set force = true to replace it", path, typeName(fi))
		default:
			if fi != nil {
				if err := replaceable(path, at, fi); err != nil {
					return nil, err
				}
			}
			creating = true
			what = append(what, modules.Tense(apply, "created", "would create")+" directory "+path)
			if apply {
				if ref, err = resolveAgain(ref, path, hostfs.MakeParents); err != nil {
					return nil, err
				}
				if fi != nil {
					if err := ref.Remove(); err != nil {
						return nil, fmt.Errorf("replace %s: %w", path, err)
					}
				}
				mode := fs.FileMode(0o755)
				if want.hasMode {
					mode = want.mode
				}
				if made, err = ref.Mkdir(mode, want.uid, want.gid); err != nil {
					return nil, err
				}
			}
		}

	case "file", "touch":
		if isLink && obj == ref && !force {
			return nil, fmt.Errorf("%s is a link to %s, which does not exist; set force = true to replace the link with a file", path, beforeTarget)
		}
		switch fi := objFI; {
		case fi != nil && fi.Mode().IsRegular():
			if state == "touch" {
				what = append(what, modules.Tense(apply, "touched", "would touch")+" "+path)
				if apply {
					if err := obj.Chtimes(env.Time()); err != nil {
						return nil, err
					}
				}
			}
		case fi != nil && !force:
			return nil, fmt.Errorf("%s is a %s, not a file; set force = true to replace it", path, typeName(fi))
		default:
			if fi != nil {
				if err := replaceable(path, obj, fi); err != nil {
					return nil, err
				}
			}
			creating = true
			what = append(what, modules.Tense(apply, "created", "would create")+" empty file "+path)
			if apply {
				if ref, err = resolveAgain(ref, path, hostfs.NoFollow); err != nil {
					return nil, err
				}
				if fi != nil {
					if err := ref.Remove(); err != nil {
						return nil, fmt.Errorf("replace %s: %w", path, err)
					}
				}
				mode := fs.FileMode(0o644)
				if want.hasMode {
					mode = want.mode
				}
				if made, err = writeAtomic(ctx, env, ref, nil, writeOpts{mode: mode, uid: want.uid, gid: want.gid}); err != nil {
					return nil, err
				}
			}
		}
	}

	// Metadata: of the path itself for links, of what it resolves to otherwise, as the
	// check above found them; the changes act only on that very file (hostfs.Ref.Chown,
	// Chmod). What apply just made has its mode and owner already; in check mode a path
	// that does not exist yet has no metadata to compare, creating it already counts as
	// the difference.
	link := state == "link"
	at, cur := obj, objFI
	switch {
	case creating:
		at, cur = ref, made
	case link:
		at, cur = ref, before
	}
	if link && want.hasMode {
		res.Warnings = append(res.Warnings, "mode is ignored for links: Linux does not use a link's own permissions")
	}
	if cur != nil {
		if ch := want.changes(cur); len(ch) > 0 {
			what = append(what, modules.Tense(apply, "set ", "would set ")+strings.Join(ch, ", "))
			if apply {
				if err := want.apply(at, cur); err != nil {
					return nil, err
				}
			}
		}
	}
	if len(what) == 0 {
		res.Msg = path + " is as wanted"
		return res, nil
	}
	res.Status = modules.DiffStatus(apply)
	res.Msg = strings.Join(what, "; ")
	var after string
	if apply {
		after = view(ref, follow)
	} else {
		var curFI fs.FileInfo
		if !creating {
			curFI = objFI
		}
		after = predict(state, src, want, curFI)
	}
	res.Diff = &modules.Diff{Before: beforeDesc, After: after, BeforeHeader: path + " (before)", AfterHeader: path + " (after)"}
	return res, nil
}

// resolveAgain returns r, or when the path's directory did not exist at the check (r is
// nil), resolves it now: an error says why it still cannot be reached, or that something
// is at the path now, which the check did not see.
func resolveAgain(r *hostfs.Ref, path string, how hostfs.How) (*hostfs.Ref, error) {
	if r != nil {
		return r, nil
	}
	r, err := hostfs.Resolve(path, how)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	switch fi, err := r.Lstat(); {
	case err != nil:
		r.Close()
		return nil, fmt.Errorf("inspect %s: %w", path, err)
	case fi != nil:
		r.Close()
		return nil, fmt.Errorf("%s appeared while runbook was working on it; nothing was changed", path)
	}
	return r, nil
}

// replaceable refuses to replace a directory that has something in it: force is meant for
// a stray file or link, and removing a tree by accident cannot be undone. r names the
// directory fi describes.
func replaceable(path string, r *hostfs.Ref, fi fs.FileInfo) error {
	if !fi.IsDir() {
		return nil
	}
	entries, err := r.ReadDirNames()
	if err != nil {
		return fmt.Errorf("inspect %s: %w", path, err)
	}
	if len(entries) > 0 {
		return fmt.Errorf("%s is a directory with %d entries; remove it first (state = \"absent\") if it should go", path, len(entries))
	}
	return nil
}

// targetWarning says when a link at path to src would lead nowhere (yet), or nowhere
// runbook may follow it: the target is looked up through hostfs, as a read would.
func targetWarning(path, src string) string {
	target := src
	if !filepath.IsAbs(src) {
		target = filepath.Join(filepath.Dir(path), src)
	}
	fi, err := hostfs.Stat(target)
	switch {
	case err != nil:
		return fmt.Sprintf("the link's target %s cannot be reached: %v", src, err)
	case fi == nil:
		return fmt.Sprintf("the link's target %s does not exist (yet)", src)
	}
	return ""
}

// view describes what r names as a diff side, following a link when follow is set and the
// link leads somewhere it may be followed to.
func view(r *hostfs.Ref, follow bool) string {
	var fi fs.FileInfo
	if r != nil {
		fi, _ = r.Lstat()
	}
	if fi != nil && fi.Mode()&fs.ModeSymlink != 0 {
		if follow {
			if t, err := r.Stat(); err == nil && t != nil {
				return describe(t, "")
			}
		}
		target, _ := r.Readlink()
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
