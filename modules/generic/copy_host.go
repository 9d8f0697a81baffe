package generic

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"

	"github.com/runbook/runbook/modules"
	"github.com/runbook/runbook/modules/hostfs"
)

var (
	_ modules.Runner[cty.Value] = Copy{}
	_ modules.Preparer          = Copy{}
	_ modules.Runner[cty.Value] = Template{}
	_ modules.Preparer          = Template{}
	_ modules.ControllerRunner  = Assert{}
)

// Run writes content to dest when it differs, and sets mode and owner.
func (Copy) Run(ctx context.Context, env *modules.Env, args cty.Value, apply bool) (*modules.Result, error) {
	if args.GetAttr("content").IsNull() {
		return nil, errors.New("copy: src must be read on the controller and sent as content")
	}
	return writeContent(ctx, env, args, apply)
}

// Prepare reads src on the controller and hands the host its content.
func (Copy) Prepare(_ context.Context, env *modules.ControllerEnv, args cty.Value) (cty.Value, error) {
	src := args.GetAttr("src")
	if src.IsNull() {
		return args, nil
	}
	plain, marks := src.Unmark()
	b, err := os.ReadFile(controllerPath(env, plain.AsString()))
	if err != nil {
		return cty.NilVal, fmt.Errorf("copy src: %w", err)
	}
	return setAttrs(args, map[string]cty.Value{
		"content": cty.StringVal(string(b)).WithMarks(marks),
		"src":     cty.NullVal(cty.String),
	}), nil
}

// Run writes the content the controller rendered; it is copy's code.
func (Template) Run(ctx context.Context, env *modules.Env, args cty.Value, apply bool) (*modules.Result, error) {
	if args.GetAttr("content").IsNull() {
		return nil, errors.New("template: the template must be rendered on the controller and sent as content")
	}
	return writeContent(ctx, env, args, apply)
}

// Prepare renders the template for one host. The template sees the task's evaluation
// context (var, local, host, facts, task and functions) plus vars by name. A sensitive
// input makes the rendered content sensitive.
func (Template) Prepare(_ context.Context, env *modules.ControllerEnv, args cty.Value) (cty.Value, error) {
	plain, pvm := args.UnmarkDeepWithPaths()
	var text, name string
	if src := plain.GetAttr("src"); !src.IsNull() {
		name = controllerPath(env, src.AsString())
		b, err := os.ReadFile(name)
		if err != nil {
			return cty.NilVal, fmt.Errorf("template src: %w", err)
		}
		text = string(b)
	} else {
		name = "<content>"
		text = plain.GetAttr("content").AsString()
	}
	expr, diags := hclsyntax.ParseTemplate([]byte(text), name, hcl.InitialPos)
	if diags.HasErrors() {
		return cty.NilVal, fmt.Errorf("template: %s", diags.Error())
	}
	var ectx *hcl.EvalContext
	if env != nil && env.EvalContext != nil {
		ectx = env.EvalContext.NewChild()
	} else {
		ectx = &hcl.EvalContext{}
	}
	ectx.Variables = map[string]cty.Value{}
	if vars := args.GetAttr("vars"); !vars.IsNull() {
		// Keep marks here so a sensitive var marks the output.
		for it := vars.ElementIterator(); it.Next(); {
			k, v := it.Element()
			k, _ = k.Unmark()
			ectx.Variables[k.AsString()] = v
		}
	}
	out, diags := expr.Value(ectx)
	if diags.HasErrors() {
		return cty.NilVal, fmt.Errorf("template: %s", diags.Error())
	}
	out, outMarks := out.Unmark()
	if out.IsNull() || !out.IsKnown() {
		return cty.NilVal, errors.New("template: rendered to no value")
	}
	rendered, err := convertToString(out)
	if err != nil {
		return cty.NilVal, fmt.Errorf("template: %w", err)
	}
	content := cty.StringVal(rendered).WithMarks(outMarks)
	// Marks on src or content (the template text itself) carry over as well.
	for _, pm := range pvm {
		if len(pm.Path) > 0 {
			if s, ok := pm.Path[0].(cty.GetAttrStep); ok && (s.Name == "src" || s.Name == "content") {
				content = content.WithMarks(pm.Marks)
			}
		}
	}
	return setAttrs(args, map[string]cty.Value{
		"content": content,
		"src":     cty.NullVal(cty.String),
		"vars":    cty.NullVal(cty.DynamicPseudoType),
	}), nil
}

// RunOnController checks the conditions; it never touches the host.
func (Assert) RunOnController(_ context.Context, _ *modules.ControllerEnv, args cty.Value) (*modules.Result, error) {
	that, _ := args.GetAttr("that").Unmark()
	failMsg, _ := args.GetAttr("fail_msg").Unmark()
	okMsg, _ := args.GetAttr("success_msg").Unmark()
	if that.IsNull() {
		return nil, errors.New("assert: that is null")
	}
	unknown := false
	for i, c := range that.AsValueSlice() {
		c, _ = c.Unmark()
		switch {
		case !c.IsKnown():
			unknown = true // check mode before the value can be known
		case c.IsNull() || c.False():
			msg := fmt.Sprintf("condition %d of %d is false", i+1, that.LengthInt())
			if !failMsg.IsNull() {
				msg = failMsg.AsString() + " (" + msg + ")"
			}
			return nil, errors.New(msg)
		}
	}
	if unknown {
		return &modules.Result{Status: modules.StatusUnknown, Msg: "a condition depends on a value known only after apply"}, nil
	}
	msg := "all conditions hold"
	if !okMsg.IsNull() {
		msg = okMsg.AsString()
	}
	return &modules.Result{Status: modules.StatusOK, Msg: msg}, nil
}

func convertToString(v cty.Value) (string, error) {
	if v.Type() == cty.String {
		return v.AsString(), nil
	}
	if v.Type().IsPrimitiveType() {
		return v.GoString(), nil
	}
	return "", fmt.Errorf("rendered to %s, not text", v.Type().FriendlyName())
}

func controllerPath(env *modules.ControllerEnv, p string) string {
	if filepath.IsAbs(p) || env == nil || env.Dir == "" {
		return p
	}
	return filepath.Join(env.Dir, p)
}

// setAttrs returns obj with some attributes replaced, keeping the rest (and their marks).
func setAttrs(obj cty.Value, set map[string]cty.Value) cty.Value {
	obj, marks := obj.Unmark()
	attrs := map[string]cty.Value{}
	for it := obj.ElementIterator(); it.Next(); {
		k, v := it.Element()
		attrs[k.AsString()] = v
	}
	for k, v := range set {
		attrs[k] = v
	}
	return cty.ObjectVal(attrs).WithMarks(marks)
}

// writeContent is the host side of copy and template.
func writeContent(ctx context.Context, env *modules.Env, args cty.Value, apply bool) (*modules.Result, error) {
	asked := filepath.Clean(str(args, "dest"))
	r, err := resolveFile(asked)
	if err != nil {
		return nil, err
	}
	if r == nil {
		return nil, fmt.Errorf("directory %s does not exist; create it first (file module, state = \"directory\")", filepath.Dir(asked))
	}
	defer r.Close()
	dest := r.Path()
	want, err := parseMeta(ctx, args)
	if err != nil {
		return nil, err
	}
	content := []byte(str(args, "content"))
	sum := checksum(content)
	res := &modules.Result{Status: modules.StatusOK, Data: map[string]any{"checksum": sum, "backup_file": ""}}
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
		if exists && boolArg(args, "backup") {
			name, err := backupFile(env, r)
			if err != nil {
				return nil, err
			}
			res.Data.(map[string]any)["backup_file"] = name
		}
		o := keepOpts(fi, want)
		o.validate = str(args, "validate")
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
