package config

import (
	"fmt"
	"os"
	"sort"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/ext/typeexpr"
	"github.com/hashicorp/hcl/v2/hclparse"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/convert"

	"github.com/runbook/runbook/inventory"
	"github.com/runbook/runbook/inventory/vault"
	"github.com/runbook/runbook/modules"
)

// Inputs are the values given for a runbook's variables from outside it. Later layers win:
// a variable's default, then RUNBOOK_VAR_<name> from the environment, then --var-file files
// in the order given, then --var flags in the order given.
type Inputs struct {
	// Vars are "name=value" pairs from --var.
	Vars []string
	// VarFiles are paths of HCL files of name = value lines. A file encrypted whole with
	// ansible-vault is decrypted with Vault, and every value in it is sensitive.
	VarFiles []string
	// Vault holds the vault passwords; nil has none.
	Vault *vault.Keyring
	// Environ is the process environment (os.Environ()); nil means none.
	Environ []string
	// AllowMissing makes a required variable without a value unknown instead of an error,
	// so `runbook validate` can check a runbook before its values are at hand.
	AllowMissing bool
}

// EnvPrefix marks environment variables that set runbook variables.
const EnvPrefix = "RUNBOOK_VAR_"

var variableSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{
		{Name: "type"},
		{Name: "default"},
		{Name: "description"},
		{Name: "sensitive"},
	},
	Blocks: []hcl.BlockHeaderSchema{{Type: "validation"}},
}

var validationSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{
		{Name: "condition", Required: true},
		{Name: "error_message", Required: true},
	},
}

func (d *decoder) variable(b *hcl.Block) {
	name := b.Labels[0]
	if !d.checkName("variable", name, b.LabelRanges[0]) {
		return
	}
	if first, dup := d.varsSeen[name]; dup {
		d.add(duplicate("variable", name, first, b.LabelRanges[0]))
		return
	}
	d.varsSeen[name] = b.LabelRanges[0]
	v := &Variable{Name: name, Type: cty.DynamicPseudoType, DeclRange: b.DefRange}
	content, diags := b.Body.Content(variableSchema)
	d.add(diags...)
	if a, ok := content.Attributes["type"]; ok {
		ty, defaults, tdiags := typeexpr.TypeConstraintWithDefaults(a.Expr)
		d.add(tdiags...)
		if !tdiags.HasErrors() {
			v.Type, v.TypeDefaults = ty, defaults
		}
	}
	if a, ok := content.Attributes["description"]; ok {
		d.literal(a, cty.String, func(val cty.Value) { v.Description = val.AsString() })
	}
	if a, ok := content.Attributes["sensitive"]; ok {
		d.literal(a, cty.Bool, func(val cty.Value) { v.Sensitive = val.True() })
	}
	if a, ok := content.Attributes["default"]; ok {
		var val cty.Value
		var vdiags hcl.Diagnostics
		if len(a.Expr.Variables()) > 0 {
			// A default refers to nothing (file() is a function, not a variable). Said before
			// evaluating: in JSON syntax a template's error would otherwise point inside it,
			// and without a context "${var.x}" would silently become the default's text.
			vdiags = hcl.Diagnostics{{
				Severity: hcl.DiagError,
				Summary:  "Variables not allowed",
				Subject:  a.Expr.Range().Ptr(),
			}}
		} else {
			val, vdiags = a.Expr.Value(defaultContext(b.DefRange.Filename))
		}
		if vdiags.HasErrors() {
			for _, dg := range vdiags {
				if dg.Summary == "Variables not allowed" {
					dg.Detail = "A variable's default must be a literal value, or file(\"PATH\") (with trimspace or chomp); it cannot refer to other variables or functions of them. Use a local value for derived values."
				}
				// an error about a value file() read could quote it
				dg.Expression, dg.EvalContext = nil, nil
			}
			d.add(vdiags...)
		} else {
			conv, err := convertTo(val, v.Type, v.TypeDefaults)
			if err != nil {
				d.errorf(a.Expr.Range().Ptr(), "Invalid default value for variable",
					"The default does not match the variable's type: %s.", err)
			} else {
				v.Default = conv
			}
		}
	}
	for _, vb := range content.Blocks {
		vc, vdiags := vb.Body.Content(validationSchema)
		d.add(vdiags...)
		if vdiags.HasErrors() {
			continue
		}
		rule := &Validation{Condition: vc.Attributes["condition"].Expr, ErrorMessage: vc.Attributes["error_message"].Expr, DeclRange: vb.DefRange}
		ok := true
		for _, tr := range rule.Condition.Variables() {
			if tr.RootName() != "var" || len(tr) < 2 || attrName(tr[1]) != name {
				d.errorf(tr.SourceRange().Ptr(), "Invalid reference in variable validation",
					"A validation condition may refer only to the variable it validates, var.%s.", name)
				ok = false
			}
		}
		if ok {
			v.Validations = append(v.Validations, rule)
		}
	}
	d.rb.Variables = append(d.rb.Variables, v)
}

// literal evaluates an attribute that must be a constant of type ty.
func (d *decoder) literal(a *hcl.Attribute, ty cty.Type, set func(cty.Value)) {
	val, diags := a.Expr.Value(nil)
	d.add(diags...)
	if diags.HasErrors() {
		return
	}
	conv, err := convert.Convert(val, ty)
	if err != nil || conv.IsNull() {
		d.errorf(a.Expr.Range().Ptr(), "Incorrect attribute value type",
			"%s must be a %s.", a.Name, ty.FriendlyName())
		return
	}
	set(conv)
}

func convertTo(val cty.Value, ty cty.Type, defaults *typeexpr.Defaults) (cty.Value, error) {
	if defaults != nil {
		val = defaults.Apply(val)
	}
	conv, err := convert.Convert(val, ty)
	if err != nil {
		return cty.NilVal, fmt.Errorf("%s", convertErr(err))
	}
	return conv, nil
}

func convertErr(err error) string {
	if pe, ok := err.(cty.PathError); ok && len(pe.Path) > 0 {
		return fmt.Sprintf("%s: %s", formatPath(pe.Path), pe.Error())
	}
	return err.Error()
}

func formatPath(p cty.Path) string {
	var b strings.Builder
	for _, step := range p {
		switch s := step.(type) {
		case cty.GetAttrStep:
			b.WriteString("." + s.Name)
		case cty.IndexStep:
			if s.Key.Type() == cty.String {
				fmt.Fprintf(&b, "[%q]", s.Key.AsString())
			} else if s.Key.Type() == cty.Number {
				fmt.Fprintf(&b, "[%s]", s.Key.AsBigFloat().Text('f', -1))
			}
		}
	}
	return strings.TrimPrefix(b.String(), ".")
}

// inputValue is one value from outside the runbook, with where it came from.
type inputValue struct {
	val cty.Value
	rng hcl.Range
}

// resolveVariables decides every variable's value from defaults and inputs, checks types
// and validation rules, and stores the var object for expressions.
func (d *decoder) resolveVariables() {
	given := map[string]inputValue{}
	declared := func(name string) *Variable { return d.rb.Variable(name) }

	if d.call != nil {
		d.callValues(given)
	}
	// The environment first, so files and flags override it.
	for _, kv := range d.in.Environ {
		if !strings.HasPrefix(kv, EnvPrefix) {
			continue
		}
		name, raw, _ := strings.Cut(strings.TrimPrefix(kv, EnvPrefix), "=")
		v := declared(name)
		if v == nil {
			// Unrelated environment variables must not break runs; a typo shows in validate.
			continue
		}
		rng := hcl.Range{Filename: fmt.Sprintf("<environment %s%s>", EnvPrefix, name)}
		val, diags := parseRawValue(raw, v, rng)
		d.add(diags...)
		if !diags.HasErrors() {
			given[name] = inputValue{val, rng}
		}
	}

	for _, path := range d.in.VarFiles {
		src, err := os.ReadFile(path)
		if err != nil {
			d.errorf(nil, "Cannot read variables file", "%s", err)
			continue
		}
		if IsYAMLFile(path) {
			d.yamlVarFile(path, src, given)
			continue
		}
		encrypted := vault.IsEncrypted(src)
		stored := src
		if encrypted {
			// a file encrypted whole with ansible-vault: its values are secrets
			plain, err := d.in.Vault.Decrypt(src)
			if err != nil {
				detail := fmt.Sprintf("Cannot decrypt this variables file, encrypted with Ansible Vault: %s.", err)
				if d.in.Vault.Len() == 0 || strings.Contains(err.Error(), "which no password was given for") {
					detail += " Give the vault password with --vault-password-file FILE, --vault-id LABEL@SOURCE, --ask-vault-pass or " + vault.PasswordFileEnv + "."
				}
				d.add(&hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Cannot decrypt vault", Detail: detail,
					Subject: &hcl.Range{Filename: path, Start: hcl.Pos{Line: 1, Column: 1}, End: hcl.Pos{Line: 1, Column: 1}}})
				continue
			}
			src = plain
		}
		var f *hcl.File
		var diags hcl.Diagnostics
		if strings.HasSuffix(path, ".json") {
			// HCL's JSON syntax: a JSON object of names and values.
			f, diags = hclparse.NewParser().ParseJSON(src, path)
		} else {
			f, diags = hclparse.NewParser().ParseHCL(src, path)
		}
		if encrypted {
			diags = hideDecrypted(diags)
		}
		d.add(diags...)
		if diags.HasErrors() {
			continue
		}
		// the history's fingerprint of the runbook reads the files as they are on disk
		d.rb.Files[path] = &hcl.File{Body: f.Body, Bytes: stored}
		attrs, diags := f.Body.JustAttributes()
		d.add(diags...)
		for name, a := range attrs {
			if declared(name) == nil {
				d.add(&hcl.Diagnostic{
					Severity: hcl.DiagWarning,
					Summary:  "Value for undeclared variable",
					Detail:   fmt.Sprintf("The runbook declares no variable named %q; this value is ignored.%s", name, suggestVar(d.rb, name)),
					Subject:  a.NameRange.Ptr(),
				})
				continue
			}
			val, vdiags := a.Expr.Value(nil)
			if encrypted {
				vdiags = hideDecrypted(vdiags)
				val = val.Mark(Sensitive)
			}
			d.add(vdiags...)
			if !vdiags.HasErrors() {
				given[name] = inputValue{val, a.Expr.Range()}
			}
		}
	}

	for _, kv := range d.in.Vars {
		name, raw, ok := strings.Cut(kv, "=")
		rng := hcl.Range{Filename: fmt.Sprintf("<value for var.%s>", name)}
		if !ok || name == "" {
			d.errorf(nil, "Invalid --var option", "The value %q is not of the form NAME=VALUE.", kv)
			continue
		}
		v := declared(name)
		if v == nil {
			d.errorf(nil, "Value for undeclared variable",
				"A --var option sets %q, but the runbook declares no such variable.%s", name, suggestVar(d.rb, name))
			continue
		}
		val, diags := parseRawValue(raw, v, rng)
		d.add(diags...)
		if !diags.HasErrors() {
			given[name] = inputValue{val, rng}
		}
	}

	vals := map[string]cty.Value{}
	for _, v := range d.rb.Variables {
		in, ok := given[v.Name]
		var val cty.Value
		switch {
		case ok:
			conv, err := convertTo(in.val, v.Type, v.TypeDefaults)
			if err != nil {
				subject := in.rng.Ptr()
				if in.rng.Start.Line == 0 {
					subject = nil
				}
				d.add(&hcl.Diagnostic{
					Severity: hcl.DiagError,
					Summary:  "Invalid value for variable",
					Detail:   fmt.Sprintf("The value given for var.%s does not match its type %s: %s.", v.Name, typeexpr.TypeString(v.Type), err),
					Subject:  subject,
				})
				val = cty.UnknownVal(v.Type)
			} else {
				val = conv
			}
		case v.Default != cty.NilVal:
			val = v.Default
		case d.in.AllowMissing:
			val = cty.UnknownVal(v.Type)
		case d.call != nil:
			d.add(&hcl.Diagnostic{
				Severity: hcl.DiagError,
				Summary:  "Missing module variable",
				Detail: fmt.Sprintf("The module called as %s needs a value for var.%s (declared at %s, without a default): add %s = VALUE to the call's vars.",
					d.call.name, v.Name, v.DeclRange.String(), v.Name),
				Subject: d.call.rng.Ptr(),
			})
			val = cty.UnknownVal(v.Type)
		default:
			d.add(&hcl.Diagnostic{
				Severity: hcl.DiagError,
				Summary:  "No value for required variable",
				Detail: fmt.Sprintf("var.%s has no default, so it needs a value: --var %s=VALUE, a --var-file, or %s%s in the environment.",
					v.Name, v.Name, EnvPrefix, v.Name),
				Subject: v.DeclRange.Ptr(),
			})
			val = cty.UnknownVal(v.Type)
		}
		if v.Sensitive {
			val = val.Mark(Sensitive)
		}
		vals[v.Name] = val
		d.validateVariable(v, val, in, ok)
	}
	d.rb.setVarValues(vals)
}

func (d *decoder) validateVariable(v *Variable, val cty.Value, in inputValue, given bool) {
	if !val.IsWhollyKnown() {
		return
	}
	ctx := &hcl.EvalContext{
		Variables: map[string]cty.Value{"var": cty.ObjectVal(map[string]cty.Value{v.Name: val})},
		Functions: Functions(),
	}
	for _, rule := range v.Validations {
		res, diags := rule.Condition.Value(ctx)
		d.add(diags...)
		if diags.HasErrors() {
			continue
		}
		res, _ = res.Unmark()
		if conv, err := convert.Convert(res, cty.Bool); err != nil || conv.IsNull() {
			d.errorf(rule.Condition.Range().Ptr(), "Invalid validation condition", "The condition must be true or false.")
			continue
		} else if conv.True() {
			continue
		}
		msgVal, mdiags := rule.ErrorMessage.Value(ctx)
		msg := "The value is not valid."
		if !mdiags.HasErrors() {
			if s, err := convert.Convert(msgVal, cty.String); err == nil && s.IsKnown() && !s.IsNull() {
				if containsSensitive(s) {
					// it shows the sensitive value, in whatever form
					msg = "The value is not valid; the rule's error message is built from the sensitive value, so it is not shown."
				} else {
					s, _ = s.Unmark()
					msg = s.AsString()
				}
			}
		}
		subject := rule.Condition.Range().Ptr()
		if given && in.rng.Start.Line > 0 {
			subject = in.rng.Ptr()
		}
		d.add(&hcl.Diagnostic{
			Severity: hcl.DiagError,
			Summary:  "Invalid value for variable",
			Detail:   fmt.Sprintf("var.%s: %s (validation rule at %s)", v.Name, msg, rule.DeclRange.String()),
			Subject:  subject,
		})
	}
}

// parseRawValue reads a value given as a string on the command line or in the environment:
// a string variable takes it as it is; any other type parses it as an HCL expression, so
// --var 'nics=["ens1f0","ens1f1"]' works. The error quotes the value unless the variable
// is sensitive.
func parseRawValue(raw string, v *Variable, rng hcl.Range) (cty.Value, hcl.Diagnostics) {
	ty := v.Type
	if ty == cty.String || ty == cty.DynamicPseudoType {
		return cty.StringVal(raw), nil
	}
	shown := fmt.Sprintf("%q", raw)
	if v.Sensitive {
		shown = "the value (sensitive, not shown)"
	}
	expr, diags := hclsyntax.ParseExpression([]byte(raw), rng.Filename, hcl.Pos{Line: 1, Column: 1})
	var val cty.Value
	if !diags.HasErrors() {
		val, diags = expr.Value(nil)
	}
	if diags.HasErrors() {
		return cty.NilVal, hcl.Diagnostics{{
			Severity: hcl.DiagError,
			Summary:  "Invalid value for variable",
			Detail: fmt.Sprintf("%s: %s is not a %s. Values of non-string variables are read as HCL, e.g. 9100, true, [\"a\", \"b\"] or {mode = \"802.3ad\"}.",
				strings.Trim(rng.Filename, "<>"), shown, typeexpr.TypeString(ty)),
		}}
	}
	return val, nil
}

func suggestVar(rb *Runbook, name string) string {
	names := make([]string, 0, len(rb.Variables))
	for _, v := range rb.Variables {
		names = append(names, v.Name)
	}
	if s := modules.Suggest(name, names); s != "" {
		return fmt.Sprintf(" Did you mean %q?", s)
	}
	return ""
}

// IsYAMLFile reports whether a --var-file is YAML (.yml or .yaml), read like Ansible's
// group_vars files: inline !vault values and whole encrypted files are decrypted.
func IsYAMLFile(path string) bool {
	return strings.HasSuffix(path, ".yml") || strings.HasSuffix(path, ".yaml")
}

// yamlVarFile takes variable values from a YAML --var-file. Decrypted values, and values
// under names like a secret's, are sensitive, as in the inventory.
func (d *decoder) yamlVarFile(path string, src []byte, given map[string]inputValue) {
	vals, diags := inventory.ReadVarsFile(path, src, d.in.Vault)
	d.add(diags...)
	if diags.HasErrors() {
		return
	}
	d.rb.Files[path] = &hcl.File{Bytes: src}
	rng := hcl.Range{Filename: path, Start: hcl.Pos{Line: 1, Column: 1}, End: hcl.Pos{Line: 1, Column: 1}}
	for _, name := range sortedKeys(vals) {
		if d.rb.Variable(name) == nil {
			d.add(&hcl.Diagnostic{
				Severity: hcl.DiagWarning,
				Summary:  "Value for undeclared variable",
				Detail:   fmt.Sprintf("%s sets %q, but the runbook declares no variable of that name; this value is ignored.%s", path, name, suggestVar(d.rb, name)),
			})
			continue
		}
		v := inventoryValue(name, inventory.CtyValue(vals[name]))
		if plain, marks := v.UnmarkDeep(); len(marks) > 0 {
			// a secret anywhere in it makes the whole value one
			v = plain.Mark(Sensitive)
		}
		given[name] = inputValue{v, rng}
	}
}

// callValues takes a module instance's variable values from its call, reporting the
// names the module does not declare at the call.
func (d *decoder) callValues(given map[string]inputValue) {
	names := make([]string, 0, len(d.call.vals))
	for n := range d.call.vals {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		if d.rb.Variable(n) == nil {
			rng := d.call.keyRng[n]
			d.errorf(rng.Ptr(), "Unknown module variable",
				"The module called as %s declares no variable %q.%s", d.call.name, n, suggestVar(d.rb, n))
			continue
		}
		given[n] = d.call.vals[n]
	}
}

// evalLocals evaluates local values in dependency order, reporting cycles.
func (d *decoder) evalLocals() {
	byName := map[string]*Local{}
	for _, l := range d.rb.Locals {
		byName[l.Name] = l
	}
	vals := map[string]cty.Value{}
	state := map[string]int{} // 0 new, 1 visiting, 2 done
	var visit func(l *Local, from hcl.Range)
	visit = func(l *Local, from hcl.Range) {
		switch state[l.Name] {
		case 1:
			d.errorf(from.Ptr(), "Cycle in local values",
				"local.%s depends on itself through the values it refers to.", l.Name)
			vals[l.Name] = cty.DynamicVal
			return
		case 2:
			return
		}
		state[l.Name] = 1
		ok := true
		for _, tr := range l.Expr.Variables() {
			switch tr.RootName() {
			case "local":
				if len(tr) < 2 {
					continue
				}
				dep := byName[attrName(tr[1])]
				if dep != nil {
					visit(dep, tr.SourceRange())
				}
			case "var":
			default:
				ok = false
			}
		}
		d.checkRefs(l.Expr, scope{})
		if !ok {
			vals[l.Name] = cty.DynamicVal
		} else {
			val, diags := l.Expr.Value(d.globalCtx(vals))
			d.add(diags...)
			if diags.HasErrors() {
				val = cty.DynamicVal
			}
			vals[l.Name] = val
		}
		state[l.Name] = 2
	}
	for _, l := range d.rb.Locals {
		visit(l, l.DeclRange)
	}
	d.rb.setLocalValues(vals)
}

func (d *decoder) globalCtx(locals map[string]cty.Value) *hcl.EvalContext {
	return &hcl.EvalContext{
		Variables: map[string]cty.Value{
			"var":   d.rb.varObject(),
			"local": objectOrEmpty(locals),
		},
		Functions: Functions(),
	}
}

func objectOrEmpty(m map[string]cty.Value) cty.Value {
	if len(m) == 0 {
		return cty.EmptyObjectVal
	}
	return cty.ObjectVal(m)
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// hideDecrypted keeps what diagnostics about the decrypted content of an encrypted
// variables file say out of them: their messages could quote its values. Their file, line
// and column stay.
func hideDecrypted(diags hcl.Diagnostics) hcl.Diagnostics {
	for _, d := range diags {
		d.Summary += " (in an encrypted file)"
		d.Detail = "The message is not shown: this file is encrypted with Ansible Vault, and it could quote its content. Decrypt it with ansible-vault view to see the line named."
		d.Expression, d.EvalContext = nil, nil
	}
	return diags
}
