package run

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/zclconf/go-cty/cty"

	"github.com/runbook/runbook/engine/config"
	"github.com/runbook/runbook/engine/controller"
	"github.com/runbook/runbook/modules"
	"github.com/runbook/runbook/modules/txn"
)

// runModule runs one attempt. The marks on args say which arguments are secret; they are
// turned into names once, just before the executor, and what goes to the host is plain
// values beside those names. A controller half that prepares the arguments (copy reads
// src, template renders) gets them marked, and what it derives from a secret (rendered
// content) comes back marked, so the split after it sees every secret.
func (hr *hostRun) runModule(ctx context.Context, x Executor, t *config.Task, m modules.Module, args cty.Value, apply bool, ectx *hcl.EvalContext) (*modules.Result, error) {
	plain, sensitive := config.SplitSensitive(args)
	// A transaction's confirmation is the host's time, not the task's: its own deadline
	// bounds it (confirm.go), and the run's end stops it.
	outer := ctx
	if t.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, t.Timeout)
		defer cancel()
	}
	cenv := hr.controllerEnv(t, ectx)
	if runOnController, ok := controller.RunnerFor(t.Module); ok {
		res, err := runOnController(ctx, cenv, plain)
		if res != nil && res.Data != nil {
			// Data as an executor returns it (a cty object of Returns), so that the
			// redaction that follows sees into it as it does into a host's.
			data, derr := dataValue(t.Module, res.Data)
			if derr != nil {
				return nil, derr
			}
			res.Data = data
		}
		return res, err
	}
	call, err := hr.hostCall(ctx, t, cenv, args, plain, sensitive)
	if err != nil {
		return nil, err
	}
	plain = call.Args
	window := time.Duration(0)
	if apply {
		if window = transactionWindow(t.Module, plain, hr.e.Options.ConfirmTimeout); window > 0 {
			call.Txn = txn.NewID()
		}
	}
	before := ""
	if apply && reboots(t.Module) {
		// The engine can tell the host came back only by another boot id.
		if before = bootIDOf(x); before == "" {
			return nil, fmt.Errorf("the helper on this host gives no boot id (/proc/sys/kernel/random/boot_id): runbook could not tell when it is back, so it does not reboot it")
		}
	}
	sent := time.Now()
	res, err := x.Run(ctx, call, apply)
	switch {
	case before != "" && outer.Err() == nil && (err == nil || errors.Is(err, ErrUnreachable)):
		// The connection's end is expected: the host is rebooting. A lost answer is too (the
		// reboot may beat it); a host that never left shows its old boot id and keeps the
		// task waiting until reboot_timeout.
		res, err = hr.rebooted(outer, hr.identity(t), plain, call.Sensitive, before, res, sent)
	case apply && err == nil && res != nil && res.Transaction != nil && res.Transaction.State == modules.TxnPending:
		res, err = hr.confirm(outer, hr.identity(t), res)
	case call.Txn != "" && errors.Is(err, ErrUnreachable) && outer.Err() == nil:
		// The answer was lost with the connection: the change may have cut it. Reach the
		// host again and have it roll back what the apply began; it never stays unseen.
		res, err = hr.lost(outer, hr.identity(t), call.Txn, sent.Add(window), res, err)
	}
	if err != nil && ctx.Err() != nil && t.Timeout > 0 && errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return res, fmt.Errorf("timed out after %s", t.Timeout)
	}
	return res, err
}

// union is the sorted names of a and b, each once.
// hostCall is the call a module that runs on the host is sent: its arguments as plain
// values beside the names of the sensitive ones, after its controller half (copy reads
// src, template renders) prepared them.
func (hr *hostRun) hostCall(ctx context.Context, t *config.Task, cenv *controller.Env, args, plain cty.Value, sensitive []string) (Call, error) {
	if prepare, ok := controller.PreparerFor(t.Module); ok {
		prepared, err := prepare(ctx, cenv, args)
		if err != nil {
			return Call{}, err
		}
		preparedPlain, more := config.SplitSensitive(prepared)
		sensitive = preparedSensitive(union(sensitive, more), plain, preparedPlain)
		plain = preparedPlain
	}
	return Call{Module: t.Module, Args: plain, Sensitive: sensitive, ConfirmTimeout: hr.e.Options.ConfirmTimeout, Task: t}, nil
}

// controllerEnv is what a task's controller half works with.
func (hr *hostRun) controllerEnv(t *config.Task, ectx *hcl.EvalContext) *controller.Env {
	dir := hr.e.Runbook.Dir
	if t.Instance != nil {
		dir = t.Instance.Dir // a module's copy and template sources are its own
	}
	return &controller.Env{Dir: dir, EvalContext: ectx}
}

func union(a, b []string) []string {
	if len(b) == 0 {
		return a
	}
	out := slices.Concat(a, b)
	slices.Sort(out)
	return slices.Compact(out)
}

// preparedSensitive adds "content" to the sensitive names when preparing made it (read src,
// rendered a template) rather than passed it on, and some input argument was secret: it may
// hold any secret its inputs held, whether or not the preparer carried the mark over.
func preparedSensitive(names []string, orig, prepared cty.Value) []string {
	if prepared.IsNull() || !prepared.Type().IsObjectType() || !prepared.Type().HasAttribute("content") || slices.Contains(names, "content") {
		return names
	}
	if len(names) == 0 {
		return names // no input was secret, so neither is what was made of them
	}
	if orig.Type().IsObjectType() && orig.Type().HasAttribute("content") && orig.GetAttr("content").RawEquals(prepared.GetAttr("content")) {
		return names
	}
	return append(slices.Clone(names), "content")
}

func fromModule(r Result, res *modules.Result, err error) Result {
	if res != nil {
		r.Diff, r.Msg, r.Warnings, r.RebootRequired = res.Diff, res.Msg, res.Warnings, res.RebootRequired
		r.Transaction = res.Transaction
		data, derr := dataValue(r.Module, res.Data)
		if derr != nil && err == nil {
			err = derr
		}
		r.Data = data
		r.Status = OK
		if res.Status.FromModule() {
			r.Status = res.Status
		}
	}
	if err != nil {
		r.Status = Failed
		if errors.Is(err, ErrUnreachable) {
			r.Status = Unreachable
		}
		msg := err.Error()
		var f *modules.Failure
		if errors.As(err, &f) && f.Stderr != "" {
			msg += ": " + strings.TrimSpace(f.Stderr)
		}
		if r.Msg != "" && r.Msg != msg {
			msg = r.Msg + ": " + msg
		}
		r.Msg = msg
	}
	return r
}

// dataValue is a module's registered data as an object of its declared Returns types: the
// executor already converted what came over the protocol; what a module run on the
// controller returned is converted here.
func dataValue(module string, data any) (cty.Value, error) {
	switch d := data.(type) {
	case nil:
		return cty.NilVal, nil
	case cty.Value:
		return d, nil
	}
	def, ok := modules.Lookup(module)
	if !ok {
		return cty.NilVal, fmt.Errorf("data of unknown module %q", module)
	}
	return def.Value(data, nil)
}

// resultValue is what task["name"] shows later: the module's registered data plus status.
// Every field the module declares is there: one it did not report (the task was skipped,
// or check mode could not know it, e.g. a command's rc when the command did not run) is
// null, so a later when that tests it reads null instead of failing.
func resultValue(r Result) cty.Value {
	m := map[string]cty.Value{}
	if info, ok := modules.InfoOf(r.Module); ok && r.Module != "" {
		for _, f := range info.Returns {
			ty := f.Type
			if ty == cty.NilType {
				ty = cty.DynamicPseudoType
			}
			m[f.Name] = cty.NullVal(ty)
		}
	}
	if r.Data != cty.NilVal && !r.Data.IsNull() && r.Data.Type().IsObjectType() {
		for k, v := range r.Data.AsValueMap() {
			m[k] = v
		}
	}
	m["status"] = cty.StringVal(string(r.Status))
	m["changed"] = cty.BoolVal(r.Status == Changed)
	m["failed"] = cty.BoolVal(r.Status == Failed)
	m["skipped"] = cty.BoolVal(r.Status == Skipped)
	m["msg"] = cty.StringVal(r.Msg)
	return cty.ObjectVal(m)
}

// secretStrings collects every string in args that carries the sensitive mark.
func secretStrings(args cty.Value) []string {
	out := config.SensitiveStrings(args)
	sort.Strings(out)
	return out
}

// heldIn returns the values that some string of args holds: the sensitive values a task
// may have put inside a longer string ("echo ${var.token}"), which the host may print back
// alone. Values the arguments do not hold are never sent to the host.
func heldIn(args cty.Value, vals []string) []string {
	var strs []string
	_ = cty.Walk(args, func(_ cty.Path, x cty.Value) (bool, error) {
		x, _ = x.Unmark()
		if x.IsKnown() && !x.IsNull() && x.Type() == cty.String {
			strs = append(strs, x.AsString())
		}
		return true, nil
	})
	var out []string
	for _, v := range vals {
		for _, s := range strs {
			if v != "" && strings.Contains(s, v) {
				out = append(out, v)
				break
			}
		}
	}
	return out
}
