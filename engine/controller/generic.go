package controller

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"

	"github.com/runbook/runbook/modules"
)

// The controller halves of the generic modules (modules/generic): copy and template write
// on the host what is read or rendered here; assert never reaches a host.
func init() {
	RegisterPreparer("copy", prepareCopy)
	RegisterPreparer("template", prepareTemplate)
	RegisterRunner("assert", runAssert)
}

// prepareCopy reads src on the controller and hands the host its content.
func prepareCopy(_ context.Context, env *Env, args cty.Value) (cty.Value, error) {
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

// prepareTemplate renders the template for one host. The template sees the task's evaluation
// context (var, local, host, facts, task and functions) plus vars by name. A sensitive
// input makes the rendered content sensitive.
func prepareTemplate(_ context.Context, env *Env, args cty.Value) (cty.Value, error) {
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

// runAssert checks the conditions; it never touches the host.
func runAssert(_ context.Context, _ *Env, args cty.Value) (*modules.Result, error) {
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

func controllerPath(env *Env, p string) string {
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
