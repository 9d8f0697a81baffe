package config

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclparse"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"

	"github.com/runbook/runbook/engine/diag"
)

// Load reads the runbook at path (a .hcl or .hcl.json file, or a directory of them), resolves its input
// variables from in, and validates everything that can be checked without hosts. The
// returned runbook is usable only when the diagnostics hold no errors.
func Load(path string, in Inputs) (*Runbook, hcl.Diagnostics) {
	info, err := os.Stat(path)
	if err != nil {
		return nil, hcl.Diagnostics{{
			Severity: hcl.DiagError,
			Summary:  "Cannot read runbook",
			Detail:   err.Error(),
		}}
	}
	var names []string
	dir := path
	if info.IsDir() && IsModule(path) {
		return nil, hcl.Diagnostics{{
			Severity: hcl.DiagError,
			Summary:  "Not a runbook",
			Detail:   fmt.Sprintf("%s is a runbook module (tasks and no play): call it from a play with module \"NAME\" { source = \"./...\" }; runbook validate checks it on its own.", path),
		}}
	}
	if info.IsDir() {
		entries, err := os.ReadDir(path)
		if err != nil {
			return nil, hcl.Diagnostics{{Severity: hcl.DiagError, Summary: "Cannot read runbook directory", Detail: err.Error()}}
		}
		for _, e := range entries {
			if !e.IsDir() && IsRunbookFile(e.Name()) && !strings.HasPrefix(e.Name(), ".") {
				names = append(names, filepath.Join(path, e.Name()))
			}
		}
		sort.Strings(names)
		if len(names) == 0 {
			return nil, hcl.Diagnostics{{
				Severity: hcl.DiagError,
				Summary:  "No runbook files",
				Detail:   fmt.Sprintf("The directory %s holds no .hcl or .hcl.json files.", path),
			}}
		}
	} else {
		names = []string{path}
		dir = filepath.Dir(path)
	}
	srcs := make([]Source, 0, len(names))
	for _, n := range names {
		b, err := os.ReadFile(n)
		if err != nil {
			return nil, hcl.Diagnostics{{Severity: hcl.DiagError, Summary: "Cannot read runbook file", Detail: err.Error()}}
		}
		srcs = append(srcs, Source{Name: n, Src: b})
	}
	rb, diags := Parse(srcs, in)
	if rb != nil {
		rb.Path = path
		rb.Dir = dir
	}
	return rb, diags
}

// IsRunbookFile reports whether name is a runbook file by its name: .hcl for HCL's native
// syntax, .hcl.json for its JSON syntax.
func IsRunbookFile(name string) bool {
	return strings.HasSuffix(name, ".hcl") || IsJSONFile(name)
}

// IsJSONFile reports whether name is written in HCL's JSON syntax (it ends in .hcl.json).
func IsJSONFile(name string) bool {
	return strings.HasSuffix(name, ".hcl.json")
}

// Source is one runbook file's name and content.
type Source struct {
	Name string
	Src  []byte
}

// Parse decodes and validates a runbook given as sources. Load is the usual entry point; Parse
// exists for tests and fuzzing.
func Parse(srcs []Source, in Inputs) (*Runbook, hcl.Diagnostics) {
	p := hclparse.NewParser()
	rb := &Runbook{Files: map[string]*hcl.File{}}
	var diags hcl.Diagnostics
	var bodies []hcl.Body
	for _, s := range srcs {
		if !IsRunbookFile(s.Name) {
			diags = append(diags, &hcl.Diagnostic{
				Severity: hcl.DiagError,
				Summary:  "Not a runbook file",
				Detail:   fmt.Sprintf("%s: runbook files are HCL and end in .hcl (native syntax) or .hcl.json (JSON syntax).", s.Name),
			})
			continue
		}
		var f *hcl.File
		var d hcl.Diagnostics
		if IsJSONFile(s.Name) {
			f, d = p.ParseJSON(s.Src, s.Name)
		} else {
			f, d = p.ParseHCL(s.Src, s.Name)
		}
		diags = append(diags, d...)
		if f != nil {
			rb.Files[s.Name] = f
			if !d.HasErrors() {
				bodies = append(bodies, f.Body)
			}
		}
	}
	if diags.HasErrors() {
		// Syntax errors make the block structure unreliable; reporting decode errors on top of
		// them would mostly be noise.
		return rb, diags
	}
	d := newDecoder(rb, in)
	d.parser = p
	for _, body := range bodies {
		d.file(body)
	}
	d.finish()
	return rb, append(diags, hideVarFiles(d.redacted(), in.VarFiles)...)
}

// hideVarFiles marks the diagnostics about variables files so that they are printed
// without the file's lines: those lines are the values of sensitive variables.
func hideVarFiles(diags hcl.Diagnostics, varFiles []string) hcl.Diagnostics {
	for _, d := range diags {
		for _, rng := range []*hcl.Range{d.Subject, d.Context} {
			if rng != nil && slices.Contains(varFiles, rng.Filename) {
				diag.HideSource(d)
			}
		}
	}
	return diags
}

var fileSchema = &hcl.BodySchema{
	Blocks: []hcl.BlockHeaderSchema{
		{Type: "variable", LabelNames: []string{"name"}},
		{Type: "locals"},
		{Type: "play", LabelNames: []string{"name"}},
	},
}

// decoder carries the state of one Parse: the runbook being built and every diagnostic.
type decoder struct {
	rb         *Runbook
	in         Inputs
	diags      hcl.Diagnostics
	playBlocks []*hcl.Block
	localsSeen map[string]hcl.Range
	varsSeen   map[string]hcl.Range
	playsSeen  map[string]hcl.Range
	curPlay    *Play
	// inst is the module instance being decoded (nil for the root), call what its call
	// gives it, and stack the module directories being decoded, outermost first.
	inst   *Instance
	call   *callInput
	stack  []string
	parser *hclparse.Parser
	parsed map[string]*hcl.File
	// calls are the module instances of the play or module being checked; fromModules
	// the diagnostics already passed on from module instances.
	calls       []*Instance
	fromModules map[string]bool
	// factsUsed is set when a checked expression refers to facts; checkPlay resets and
	// reads it around each task and the play's vars.
	factsUsed bool
}

func newDecoder(rb *Runbook, in Inputs) *decoder {
	return &decoder{
		rb:          rb,
		in:          in,
		localsSeen:  map[string]hcl.Range{},
		varsSeen:    map[string]hcl.Range{},
		playsSeen:   map[string]hcl.Range{},
		parser:      hclparse.NewParser(),
		parsed:      map[string]*hcl.File{},
		fromModules: map[string]bool{},
	}
}

func (d *decoder) add(ds ...*hcl.Diagnostic) { d.diags = append(d.diags, ds...) }

// redacted is the decoder's diagnostics with every sensitive string of the variables and
// locals hidden: a message about a value (a duration that does not parse, a module
// argument that is not allowed) must not show a secret.
func (d *decoder) redacted() hcl.Diagnostics {
	var secrets []string
	for _, vals := range []map[string]cty.Value{d.rb.varValues, d.rb.localValues} {
		for _, v := range vals {
			secrets = append(secrets, SensitiveStrings(v)...)
			secrets = append(secrets, sensitiveNames(v)...)
		}
	}
	return redactSecrets(d.diags, secrets)
}

func (d *decoder) errorf(rng *hcl.Range, summary, format string, args ...any) {
	d.add(&hcl.Diagnostic{Severity: hcl.DiagError, Summary: summary, Detail: fmt.Sprintf(format, args...), Subject: rng})
}

func (d *decoder) file(body hcl.Body) {
	content, diags := body.Content(fileSchema)
	d.add(diags...)
	for _, b := range content.Blocks {
		switch b.Type {
		case "variable":
			d.variable(b)
		case "locals":
			d.locals(b)
		case "play":
			// Plays are decoded after every variable and local is known, since their static
			// arguments may refer to them.
			d.playBlocks = append(d.playBlocks, b)
		}
	}
}

// finish runs the steps that need every file: variable values, locals, plays, and the
// cross-references between tasks.
func (d *decoder) finish() {
	d.resolveVariables()
	d.evalLocals()
	for _, b := range d.playBlocks {
		if p := d.play(b); p != nil {
			d.rb.Plays = append(d.rb.Plays, p)
		}
	}
	for _, p := range d.rb.Plays {
		d.checkPlay(p)
	}
}

func (d *decoder) checkName(kind string, name string, rng hcl.Range) bool {
	if !hclsyntax.ValidIdentifier(name) {
		d.errorf(rng.Ptr(), "Invalid "+kind+" name",
			"%q is not a valid %s name: use letters, digits, underscores and dashes, starting with a letter.", name, kind)
		return false
	}
	return true
}

// article is "a KIND" or "an KIND".
func article(kind string) string {
	if kind != "" && strings.ContainsRune("aeiou", rune(kind[0])) {
		return "An " + kind
	}
	return "A " + kind
}

func duplicate(kind, name string, first, second hcl.Range) *hcl.Diagnostic {
	return &hcl.Diagnostic{
		Severity: hcl.DiagError,
		Summary:  "Duplicate " + kind,
		Detail:   fmt.Sprintf("%s named %q was already declared at %s. Names must be unique.", article(kind), name, first.String()),
		Subject:  second.Ptr(),
	}
}

func (d *decoder) locals(b *hcl.Block) {
	attrs, diags := b.Body.JustAttributes()
	d.add(diags...)
	names := make([]string, 0, len(attrs))
	for n := range attrs {
		names = append(names, n)
	}
	// JustAttributes returns a map; source order keeps evaluation and messages stable.
	sort.Slice(names, func(i, j int) bool {
		return attrs[names[i]].Range.Start.Byte < attrs[names[j]].Range.Start.Byte
	})
	for _, n := range names {
		a := attrs[n]
		if first, dup := d.localsSeen[n]; dup {
			d.add(duplicate("local value", n, first, a.NameRange))
			continue
		}
		d.localsSeen[n] = a.NameRange
		d.rb.Locals = append(d.rb.Locals, &Local{Name: n, Expr: a.Expr, DeclRange: a.NameRange})
	}
}
