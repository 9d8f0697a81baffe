package generic

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"strings"

	"github.com/zclconf/go-cty/cty"

	"github.com/runbook/runbook/modules"
	"github.com/runbook/runbook/modules/hostfs"
)

var (
	_ modules.Runner[CopyArgs]     = Copy{}
	_ modules.Runner[TemplateArgs] = Template{}
	_ modules.ControllerOnly       = Assert{}
)

// CopyArgs are copy's arguments. The controller reads src (engine/controller) and sends
// its content instead.
type CopyArgs struct {
	Dest     string  `cty:"dest"`
	Content  *string `cty:"content"`
	Src      *string `cty:"src"`
	Backup   bool    `cty:"backup"`
	Validate *string `cty:"validate"`
	Mode     *string `cty:"mode"`
	Owner    *string `cty:"owner"`
	Group    *string `cty:"group"`
}

// TemplateArgs are template's arguments. The controller renders src or content with vars
// (engine/controller) and sends the result as content, without src and vars.
type TemplateArgs struct {
	Dest    string  `cty:"dest"`
	Src     *string `cty:"src"`
	Content *string `cty:"content"`
	// Vars is an object (or map) of any values, checked by Validate.
	Vars     cty.Value `cty:"vars"`
	Backup   bool      `cty:"backup"`
	Validate *string   `cty:"validate"`
	Mode     *string   `cty:"mode"`
	Owner    *string   `cty:"owner"`
	Group    *string   `cty:"group"`
}

// writeResult is what copy and template register.
type writeResult struct {
	Checksum string `cty:"checksum"`
	// BackupFile is the backup's path, "" when none was made.
	BackupFile string `cty:"backup_file"`
}

// Run writes content to dest when it differs, and sets mode and owner.
func (Copy) Run(ctx context.Context, env *modules.Env, args CopyArgs, apply bool) (*modules.Result, error) {
	if args.Content == nil {
		return nil, errors.New("copy: src must be read on the controller and sent as content")
	}
	return writeContent(ctx, env, args, apply)
}

// Run writes the content the controller rendered; it is copy's code.
func (Template) Run(ctx context.Context, env *modules.Env, args TemplateArgs, apply bool) (*modules.Result, error) {
	if args.Content == nil {
		return nil, errors.New("template: the template must be rendered on the controller and sent as content")
	}
	return writeContent(ctx, env, CopyArgs{Dest: args.Dest, Content: args.Content, Backup: args.Backup,
		Validate: args.Validate, Mode: args.Mode, Owner: args.Owner, Group: args.Group}, apply)
}

// writeContent is the host side of copy and template: args.Content is set.
func writeContent(ctx context.Context, env *modules.Env, args CopyArgs, apply bool) (*modules.Result, error) {
	asked := filepath.Clean(args.Dest)
	r, err := resolveFile(asked)
	if err != nil {
		return nil, err
	}
	if r == nil {
		return nil, fmt.Errorf("directory %s does not exist; create it first (file module, state = \"directory\")", filepath.Dir(asked))
	}
	defer r.Close()
	dest := r.Path()
	want, err := parseMeta(ctx, args.Mode, args.Owner, args.Group)
	if err != nil {
		return nil, err
	}
	content := []byte(*args.Content)
	sum := checksum(content)
	data := writeResult{Checksum: sum}
	res := &modules.Result{Status: modules.StatusOK, Data: data}
	if dest != asked {
		res.Warnings = append(res.Warnings, fmt.Sprintf("%s is a link; writing its target %s", asked, dest))
	}
	fi, err := r.Lstat()
	if err != nil {
		return nil, fmt.Errorf("inspect %s: %w", dest, err)
	}
	exists := fi != nil
	if exists && !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%s is a %s, not a regular file", dest, typeName(fi))
	}
	old, err := readOld(r, fi, int64(len(content)))
	if err != nil {
		return nil, err
	}
	contentChanged := !exists || old.sum != sum
	var what []string
	if contentChanged {
		if exists {
			what = append(what, modules.Tense(apply, "wrote new content", "would write new content"))
		} else {
			what = append(what, modules.Tense(apply, "created the file", "would create the file"))
		}
		res.Diff = contentDiff(dest, old, bytesBlob(content), exists, true, env.Sensitive("content"))
	}
	if exists {
		if ch := want.changes(fi); len(ch) > 0 {
			what = append(what, modules.Tense(apply, "set ", "would set ")+strings.Join(ch, ", "))
		}
	}
	if len(what) == 0 {
		res.Msg = dest + " is as wanted"
		return res, nil
	}
	res.Status = modules.DiffStatus(apply)
	res.Msg = dest + ": " + strings.Join(what, "; ")
	if !apply {
		return res, nil
	}
	if contentChanged {
		if exists && args.Backup {
			if data.BackupFile, err = backupFile(env, r); err != nil {
				return nil, err
			}
			res.Data = data
		}
		o := keepOpts(fi, want)
		o.validate = deref(args.Validate)
		if _, err := writeAtomic(ctx, env, r, content, o); err != nil {
			return nil, err
		}
		return res, nil
	}
	if err := want.apply(r, fi); err != nil {
		return nil, err
	}
	return res, nil
}

// readOld reads what the file r names holds now, as far as comparing it with new content
// of size n and showing it in a diff need: the bytes when they are few enough to show,
// else the sha256, read as a stream, when the sizes are equal, else (the content differs
// anyway) only the size. fi is nil when there is no file.
func readOld(r *hostfs.Ref, fi fs.FileInfo, n int64) (blob, error) {
	switch {
	case fi == nil:
		return blob{}, nil
	case fi.Size() <= maxDiff:
		b, err := r.ReadFile()
		if err != nil {
			return blob{}, err
		}
		return bytesBlob(b), nil
	case fi.Size() == n:
		sum, size, err := r.Sum()
		return blob{size: size, sum: sum}, err
	}
	return blob{size: fi.Size()}, nil
}
