package controller

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"

	"github.com/runbook/runbook/modules"
	"github.com/runbook/runbook/modules/generic"
)

// The controller halves of the generic modules (modules/generic): copy and template write
// on the host what is read or rendered here; assert never reaches a host.
func init() {
	RegisterPreparer("copy", prepareCopy)
	RegisterPreparer("template", prepareTemplate)
	RegisterRunner("assert", runAssert)
}

// argsOf decodes a module's arguments into its argument struct through the module's Def,
// as the helper decodes them: every argument present or defaulted, each of its declared
// type. v must hold no marks.
func argsOf[A any](module string, v cty.Value) (A, error) {
	var zero A
	d, ok := modules.Lookup(module)
	if !ok {
		return zero, fmt.Errorf("module %q is not registered", module)
	}
	a, _, err := d.Args(v)
	if err != nil {
		return zero, fmt.Errorf("%s: %w", module, err)
	}
	typed, ok := a.(A)
	if !ok {
		return zero, fmt.Errorf("%s: arguments decode to %T, not %T", module, a, zero)
	}
	return typed, nil
}

// prepareCopy reads src on the controller and hands the host its content.
func prepareCopy(_ context.Context, env *Env, args cty.Value) (cty.Value, error) {
	plain, pvm := args.UnmarkDeepWithPaths()
	a, err := argsOf[generic.CopyArgs]("copy", plain)
	if err != nil {
		return cty.NilVal, err
	}
	if a.Src == nil {
		return args, nil
	}
	b, err := os.ReadFile(controllerPath(env, *a.Src))
	if err != nil {
		return cty.NilVal, fmt.Errorf("copy src: %w", err)
	}
	return setAttrs(args, map[string]cty.Value{
		"content": cty.StringVal(string(b)).MarkWithPaths(marksUnder(pvm, "src")),
		"src":     cty.NullVal(cty.String),
	}), nil
}

// prepareTemplate renders the template for one host. The template sees the task's evaluation
// context (var, local, host, facts, task and functions) plus vars by name. A sensitive
// input makes the rendered content sensitive.
func prepareTemplate(_ context.Context, env *Env, args cty.Value) (cty.Value, error) {
	plain, pvm := args.UnmarkDeepWithPaths()
	a, err := argsOf[generic.TemplateArgs]("template", plain)
	if err != nil {
		return cty.NilVal, err
	}
	var text, name string
	switch {
	case a.Src != nil:
		name = controllerPath(env, *a.Src)
		b, err := os.ReadFile(name)
		if err != nil {
			return cty.NilVal, fmt.Errorf("template src: %w", err)
		}
		text = string(b)
	case a.Content != nil:
		name = "<content>"
		text = *a.Content
	default:
		return cty.NilVal, errors.New("template: neither src nor content is set")
	}
	expr, err := parsedTemplates.parse(name, text)
	if err != nil {
		return cty.NilVal, err
	}
	var ectx *hcl.EvalContext
	if env != nil && env.EvalContext != nil {
		ectx = env.EvalContext.NewChild()
	} else {
		ectx = &hcl.EvalContext{}
	}
	ectx.Variables = map[string]cty.Value{}
	if !a.Vars.IsNull() {
		if !(a.Vars.Type().IsObjectType() || a.Vars.Type().IsMapType()) {
			return cty.NilVal, errors.New("template: vars must be an object")
		}
		// Put the marks back so that a sensitive var marks the output.
		vars, marks := a.Vars.MarkWithPaths(marksUnder(pvm, "vars")).Unmark()
		for it := vars.ElementIterator(); it.Next(); {
			k, v := it.Element()
			ectx.Variables[k.AsString()] = v.WithMarks(marks)
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
	// Marks on src or content (the template text itself) carry over as well.
	content := cty.StringVal(rendered).WithMarks(outMarks).MarkWithPaths(marksUnder(pvm, "src", "content"))
	return setAttrs(args, map[string]cty.Value{
		"content": content,
		"src":     cty.NullVal(cty.String),
		"vars":    cty.NullVal(cty.DynamicPseudoType),
	}), nil
}

// runAssert checks the conditions; it never touches the host.
func runAssert(_ context.Context, _ *Env, args cty.Value) (*modules.Result, error) {
	plain, _ := args.UnmarkDeep()
	// A condition not known yet (check mode, before a value it reads is known) cannot fail
	// the host now: it is taken as holding, and the result is unknown unless another
	// condition is false.
	unknown := false
	known, err := cty.Transform(plain, func(_ cty.Path, v cty.Value) (cty.Value, error) {
		if !v.IsKnown() && v.Type() == cty.Bool {
			unknown = true
			return cty.True, nil
		}
		return v, nil
	})
	if err != nil {
		return nil, err
	}
	a, err := argsOf[generic.AssertArgs]("assert", known)
	if err != nil {
		return nil, err
	}
	for i, c := range a.That {
		if c == nil || !*c {
			msg := fmt.Sprintf("condition %d of %d is false", i+1, len(a.That))
			if a.WarnOnly {
				// Advice: the host is not failed; the warning is what the recap, the
				// history and the report show, fail_msg alone when there is one.
				if a.FailMsg != nil {
					msg = *a.FailMsg
				}
				return &modules.Result{Status: modules.StatusOK, Msg: msg, Warnings: []string{msg}}, nil
			}
			if a.FailMsg != nil {
				msg = *a.FailMsg + " (" + msg + ")"
			}
			return nil, errors.New(msg)
		}
	}
	if unknown {
		return &modules.Result{Status: modules.StatusUnknown, Msg: "a condition depends on a value known only after apply"}, nil
	}
	msg := "all conditions hold"
	if a.SuccessMsg != nil {
		msg = *a.SuccessMsg
	}
	return &modules.Result{Status: modules.StatusOK, Msg: msg}, nil
}

// marksUnder returns the marks found under the named attributes, with paths relative to
// the attribute; the marks at the attribute itself have an empty path.
func marksUnder(pvm []cty.PathValueMarks, names ...string) []cty.PathValueMarks {
	var out []cty.PathValueMarks
	for _, pm := range pvm {
		if len(pm.Path) == 0 {
			continue
		}
		if s, ok := pm.Path[0].(cty.GetAttrStep); ok && slices.Contains(names, s.Name) {
			out = append(out, cty.PathValueMarks{Path: pm.Path[1:], Marks: pm.Marks})
		}
	}
	return out
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

// templateCache holds parsed templates by name and text, so that a task rendering one
// template for a thousand hosts parses it once; a parsed template is only read when it is
// evaluated, by any number of hosts at once. It holds at most maxTemplates, of at most
// maxTemplateBytes of text in all, and a text that does not fit is parsed each time
// (content that differs per host never fills it with more).
type templateCache struct {
	mu    sync.Mutex
	m     map[templateKey]hclsyntax.Expression
	bytes int
}

type templateKey struct{ name, text string }

const (
	maxTemplates     = 256
	maxTemplateBytes = 4 << 20
)

var parsedTemplates templateCache

func (c *templateCache) parse(name, text string) (hclsyntax.Expression, error) {
	k := templateKey{name, text}
	c.mu.Lock()
	expr, ok := c.m[k]
	c.mu.Unlock()
	if ok {
		return expr, nil
	}
	expr, diags := hclsyntax.ParseTemplate([]byte(text), name, hcl.InitialPos)
	if diags.HasErrors() {
		return nil, fmt.Errorf("template: %s", diags.Error())
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil {
		c.m = map[templateKey]hclsyntax.Expression{}
	}
	if _, ok := c.m[k]; !ok && len(c.m) < maxTemplates && c.bytes+len(text) <= maxTemplateBytes {
		c.m[k] = expr
		c.bytes += len(text)
	}
	return expr, nil
}
