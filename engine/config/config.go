// Package config reads runbooks: it parses HCL files, decodes every block, and validates the
// whole runbook before any host is touched. Every problem is reported as an hcl.Diagnostic
// with the narrowest source range that fits, and decoding goes on after an error so that one
// run reports everything.
//
// Task bodies are split in two (as Terraform does for resources): meta-arguments (when, tags,
// notify, ...) are decoded here, while the module block's body is kept and decoded per host
// later, against the module's own schema, with that host's values in scope.
package config

import (
	"sync"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/ext/typeexpr"
	"github.com/zclconf/go-cty/cty"
)

// Runbook is a decoded runbook: one file or a directory of .hcl files.
type Runbook struct {
	// Path is what the user named: a file or a directory.
	Path string
	// Dir is where relative paths in the runbook (copy/template src) are resolved.
	Dir string
	// Files maps file names to their source, for rendering diagnostics.
	Files map[string]*hcl.File

	Variables []*Variable
	Locals    []*Local
	Plays     []*Play
	// Outputs are a runbook module's output blocks (modules.go); a root has none.
	Outputs []*Output

	// Values computed while loading: every variable's value and every local's.
	varValues   map[string]cty.Value
	localValues map[string]cty.Value
	// varObj and localObj are the two as the objects var and local, made once when they are
	// set (setVarValues, setLocalValues): every evaluation on every host reads them.
	varObj, localObj cty.Value
	// varSecrets and localSecrets are their SensitiveStrings, worked out then too.
	varSecrets, localSecrets []string
}

func (rb *Runbook) setVarValues(vals map[string]cty.Value) {
	rb.varValues, rb.varObj = vals, objectOrEmpty(vals)
	rb.varSecrets = SensitiveStrings(rb.varObj)
}

func (rb *Runbook) setLocalValues(vals map[string]cty.Value) {
	rb.localValues, rb.localObj = vals, objectOrEmpty(vals)
	rb.localSecrets = SensitiveStrings(rb.localObj)
}

// varObject is var as an object.
func (rb *Runbook) varObject() cty.Value {
	if rb.varObj == cty.NilVal {
		return objectOrEmpty(rb.varValues)
	}
	return rb.varObj
}

// localObject is local as an object.
func (rb *Runbook) localObject() cty.Value {
	if rb.localObj == cty.NilVal {
		return objectOrEmpty(rb.localValues)
	}
	return rb.localObj
}

// Variable is an input variable declared with a variable block.
type Variable struct {
	Name        string
	Description string
	Type        cty.Type
	// TypeDefaults fills optional object attributes, as in Terraform's optional().
	TypeDefaults *typeexpr.Defaults
	Default      cty.Value // cty.NilVal when the variable is required
	Sensitive    bool
	Validations  []*Validation
	DeclRange    hcl.Range
}

// Validation is a variable's validation rule.
type Validation struct {
	Condition    hcl.Expression
	ErrorMessage hcl.Expression
	DeclRange    hcl.Range
}

// Local is one named value of a locals block.
type Local struct {
	Name      string
	Expr      hcl.Expression
	DeclRange hcl.Range
}

// Play runs tasks against the hosts its pattern selects.
type Play struct {
	Name string
	// Hosts is an inventory pattern (all, a group, host globs, a:b, a:&b, a:!b, ~regex).
	Hosts      string
	HostsRange hcl.Range
	// Become is the play's become; nil when the play does not set it (the inventory's
	// ansible_become then decides).
	Become *bool
	// BecomeUser is the play's become_user; "" when unset.
	BecomeUser string
	// BecomeMethod is the play's become_method (sudo, su or doas); "" when unset (the
	// inventory's ansible_become_method then decides, else sudo).
	BecomeMethod string
	// Serial is the rolling batch plan; empty means one batch of every host.
	Serial            []Batch
	MaxFailPercentage *float64
	Forks             int
	// Strategy is StrategyFree or StrategyLinear; "" means the run's default.
	Strategy string
	// Vars are evaluated per host and merged over the inventory's host vars.
	Vars      map[string]hcl.Expression
	VarsOrder []string
	// VarsUseFacts says a play var refers to facts: the engine gathers them before it
	// evaluates the vars.
	VarsUseFacts bool
	Tasks        []*Task
	Handlers     []*Task
	// Blocks are the play's blocks and module call blocks, nested ones too; Instances
	// the module instances it calls directly.
	Blocks    []*Block
	Instances []*Instance
	DeclRange hcl.Range

	order []*Task
}

// Order returns the play's tasks in execution order: file order, except that a task runs
// after the tasks it depends on.
func (p *Play) Order() []*Task {
	if p.order == nil {
		return p.Tasks
	}
	return p.order
}

// Batch is one step of a serial plan: a host count or a percentage of the play's hosts.
type Batch struct {
	Count   int
	Percent float64 // used when Count == 0
}

// Task is a task or a handler: one module invocation plus meta-arguments.
type Task struct {
	Name      string
	IsHandler bool
	Play      *Play

	// Instance is the runbook module instance the task belongs to (modules.go); nil for a
	// task written in the root runbook. Its var.*, local.*, task[...] and module.* are the
	// instance's.
	Instance *Instance
	// LocalName is the task's name inside its instance ("bond"); Name is qualified by the
	// module calls that brought it in ("hypervisor.bond"). They are equal in the root.
	LocalName string
	// Block is the innermost block the task is in (blocks.go); nil at a play's top level.
	// Section says which part of it: SectionMain, SectionRescue or SectionAlways.
	Block   *Block
	Section string

	// Module is the module's name; Body its block's body, decoded per host at run time.
	Module      string
	Body        hcl.Body
	ModuleRange hcl.Range

	When    hcl.Expression // nil: always
	ForEach hcl.Expression // nil: once
	Until   hcl.Expression // nil: no retry condition
	// ChangedWhen and FailedWhen override the module's verdict, evaluated with self set to
	// the result (changed_when = false for read-only probes).
	ChangedWhen hcl.Expression
	FailedWhen  hcl.Expression

	DependsOn  []Ref
	Notify     []Ref
	Tags       []string
	Become     *bool  // nil: the play's (then the inventory's)
	BecomeUser string // "": the play's (then the inventory's, then root)
	// BecomeMethod: "": the play's (then the inventory's, then sudo)
	BecomeMethod string
	Timeout      time.Duration
	Retries      int
	Delay        time.Duration
	OnFailure    string // "stop_host" (default) or "continue"
	CheckMode    *bool  // nil: follow the run; false: run for real even in check mode; true: always check
	Sensitive    bool
	// RunOnce runs the task on one host of each batch (the first to reach it); the other
	// hosts of the batch take its result as their own.
	RunOnce bool
	// UsesFacts says an expression of the task refers to facts, so the engine gathers the
	// host's facts (once) before evaluating it.
	UsesFacts bool

	DeclRange hcl.Range
	NameRange hcl.Range

	// args remembers the last arguments decoded (Args), for the next host that gives the
	// same values to the same expressions; nil: none.
	args *argsMemo
	// refs holds TaskRefs' answer, the same for every host; nil: worked out each time.
	refs *refsMemo
}

// refsMemo is a task's TaskRefs, worked out once.
type refsMemo struct {
	once    sync.Once
	names   []string
	dynamic bool
}

// Ref is a reference to a task or handler by name, with where it was written.
type Ref struct {
	Name  string
	Range hcl.Range
}

// Kind says "task" or "handler", for messages.
func (t *Task) Kind() string {
	if t.IsHandler {
		return "handler"
	}
	return "task"
}

// Task returns a play's task by name.
func (p *Play) Task(name string) *Task {
	for _, t := range p.Tasks {
		if t.Name == name {
			return t
		}
	}
	return nil
}

// Handler returns a play's handler by name.
func (p *Play) Handler(name string) *Task {
	for _, t := range p.Handlers {
		if t.Name == name {
			return t
		}
	}
	return nil
}

// Variable returns a declared variable by name.
func (r *Runbook) Variable(name string) *Variable {
	for _, v := range r.Variables {
		if v.Name == name {
			return v
		}
	}
	return nil
}
