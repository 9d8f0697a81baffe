// Package controller holds the controller halves of modules: the step a module takes on the
// controller before its request goes to a host (copy reads src, template renders), or
// instead of any request (assert checks its conditions). A module's schema and its host half
// stay in modules and its family's package, which the helper links; this package adds to a
// module by its name, so the helper never links it, nor the HCL that rendering templates
// needs.
package controller

import (
	"context"
	"fmt"
	"sync"

	"github.com/hashicorp/hcl/v2"
	"github.com/zclconf/go-cty/cty"

	"github.com/runbook/runbook/modules"
)

// Env is what controller-side module code sees.
type Env struct {
	// Dir is the runbook's directory; relative src paths are resolved against it.
	Dir string
	// EvalContext is the task's per-host evaluation context (var, local, host, facts,
	// task and the functions); templates are rendered in a child of it. May be nil.
	EvalContext *hcl.EvalContext
}

// Runner is the code of a module that runs entirely on the controller and never reaches
// the host, such as assert; the module implements modules.ControllerOnly. check decides
// nothing for it: it runs the same in check mode because it changes nothing.
type Runner func(ctx context.Context, env *Env, args cty.Value) (*modules.Result, error)

// Preparer is the controller-side step of a module that needs one before the host runs it:
// copy reads src on the controller, template renders. It returns the arguments to send to
// the host. Marks (sensitive) on args carry over to what is derived from them.
type Preparer func(ctx context.Context, env *Env, args cty.Value) (cty.Value, error)

var (
	mu        sync.RWMutex
	runners   = map[string]Runner{}
	preparers = map[string]Preparer{}
)

// RegisterRunner makes r the code of the module named module, which then never goes to a
// host. It panics on an empty name, a nil r, or a module that has a controller half
// already: those are programming errors found at start-up.
func RegisterRunner(module string, r Runner) {
	if r == nil {
		panic(fmt.Sprintf("controller: nil Runner for module %q", module))
	}
	register(module, func() { runners[module] = r })
}

// RegisterPreparer makes p the controller-side step of the module named module, run before
// each of its requests to a host. It panics like RegisterRunner.
func RegisterPreparer(module string, p Preparer) {
	if p == nil {
		panic(fmt.Sprintf("controller: nil Preparer for module %q", module))
	}
	register(module, func() { preparers[module] = p })
}

func register(module string, add func()) {
	if module == "" {
		panic("controller: register with an empty module name")
	}
	mu.Lock()
	defer mu.Unlock()
	_, isRunner := runners[module]
	_, isPreparer := preparers[module]
	if isRunner || isPreparer {
		panic(fmt.Sprintf("controller: module %q has a controller half already", module))
	}
	add()
}

// RunnerFor returns the Runner of the module named module, if it runs on the controller.
func RunnerFor(module string) (Runner, bool) {
	mu.RLock()
	defer mu.RUnlock()
	r, ok := runners[module]
	return r, ok
}

// PreparerFor returns the controller-side step of the module named module, if it has one.
func PreparerFor(module string) (Preparer, bool) {
	mu.RLock()
	defer mu.RUnlock()
	p, ok := preparers[module]
	return p, ok
}
