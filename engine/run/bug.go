package run

import (
	"fmt"
	"path/filepath"
	"runtime"
	"strings"

	"github.com/zclconf/go-cty/cty"

	"github.com/runbook/runbook/engine/config"
	"github.com/runbook/runbook/inventory"
)

// hostSecrets returns the sensitive strings in scope on the host's path outside a task:
// the runbook's variables and locals, and the host's variables.
func (hr *hostRun) hostSecrets() []string {
	vars := hr.vars
	if vars == cty.NilVal {
		vars = config.InventoryVars(inventory.CtyValue(hr.h.Vars))
	}
	return config.ContextSecrets(hr.e.Runbook.EvalContext(config.Scope{Host: hr.h.Name, Groups: hr.h.Groups, Vars: vars, Facts: hr.facts()}))
}

// reportBug reports r as failed with the internal error that p (a recovered panic) is,
// hiding the secrets that scope returns, and returns what it reported. When the panic
// came from the observer, on a result that was counted already, the failure replaces
// that result in the count. A panic while reporting (in an observer) is dropped: the
// result cannot be shown, but the run must go on.
func (hr *hostRun) reportBug(r Result, p any, scope func() []string) (reported Result) {
	defer func() {
		// counted, not shown
		hr.delivering = nil
		_ = recover()
	}()
	site := panicSite()
	r.Status, r.Msg = Failed, internalError(p, site)
	var secrets []string
	func() {
		defer func() {
			if recover() != nil {
				// the secrets are unknown, and the panic's own words might hold one
				r.Msg = internalError("(its message is not shown)", site)
			}
		}()
		secrets = scope()
	}()
	redactResult(&r, secrets)
	if d := hr.delivering; d != nil {
		hr.count(*d, -1)
		hr.delivering = nil
	}
	reported = r
	hr.report(r)
	return r
}

// internalError is the message for a recovered panic: what it said and where, for a bug
// report.
func internalError(p any, site string) string {
	return fmt.Sprintf("internal error (a bug in runbook; please report it): %v at %s", p, site)
}

// panicSite names the innermost function of runbook's own on the panicking stack, and the
// function that panicked when that is another (a library's).
func panicSite() string {
	pcs := make([]uintptr, 64)
	frames := runtime.CallersFrames(pcs[:runtime.Callers(1, pcs)])
	inPanic, site := false, ""
	for {
		f, more := frames.Next()
		switch {
		case f.Function == "runtime.gopanic":
			inPanic = true
		case !inPanic || strings.HasPrefix(f.Function, "runtime."):
		case strings.HasPrefix(f.Function, "github.com/runbook/runbook/"):
			at := fmt.Sprintf("%s (%s:%d)", shortName(f.Function), shortFile(f.File), f.Line)
			if site != "" {
				at += " in " + site
			}
			return at
		case site == "":
			site = shortName(f.Function)
		}
		if !more {
			break
		}
	}
	if site == "" {
		return "an unknown place"
	}
	return site
}

// shortName drops a function's package path: "config.(*Task).Items".
func shortName(fn string) string {
	return fn[strings.LastIndexByte(fn, '/')+1:]
}

// shortFile keeps a file's directory and name: "config/eval.go".
func shortFile(path string) string {
	dir, file := filepath.Split(path)
	return filepath.Join(filepath.Base(dir), file)
}
