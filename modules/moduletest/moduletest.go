// Package moduletest runs modules in tests the way the helper runs them: arguments
// normalised against the schema, decoded into the module's struct, validated, then run;
// and it runs the timeline every module test proves: check (drift) → apply (changed) →
// check (in sync) → apply (no change).
package moduletest

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/zclconf/go-cty/cty"

	"github.com/runbook/runbook/modules"
)

// Option changes how Run and Timeline run a module.
type Option func(*options)

type options struct {
	validate  bool
	env       func(*modules.Env)
	timeout   time.Duration
	unchanged func(t testing.TB, step string)
	snapshot  func(t testing.TB) string
	before    func(t testing.TB, step string)
	sensitive []string
}

// NoValidate skips the Validator, as for values the controller could not check (they came
// from a host's facts): the module must still cope.
func NoValidate() Option { return func(o *options) { o.validate = false } }

// WithEnv lets the test set the Env (a fixed clock, an output limit, secrets).
func WithEnv(f func(*modules.Env)) Option { return func(o *options) { o.env = f } }

// Timeout bounds each run; the default is 30s.
func Timeout(d time.Duration) Option { return func(o *options) { o.timeout = d } }

// Unchanged is called by Timeline after each check, and after the final apply, to fail
// the test if the host changed (compare a snapshot, a fake's calls).
func Unchanged(f func(t testing.TB, step string)) Option {
	return func(o *options) { o.unchanged = f }
}

// Snapshot gives Timeline a description of the host's state (a tree's files, a fake's
// units and calls): it is taken before each run that must not change the host (each check,
// and the final apply) and again after it, and the test fails if the two differ.
func Snapshot(f func(t testing.TB) string) Option {
	return func(o *options) { o.snapshot = f }
}

// Before is called by Timeline before each of its steps, apply included, to snapshot the
// host or reset a fake's record of the programs run, for Unchanged to compare with.
func Before(f func(t testing.TB, step string)) Option {
	return func(o *options) { o.before = f }
}

// Sensitive names arguments that are secret although the schema does not say so, as the
// controller marks those whose values came from sensitive variables: the Env hides them
// and their values, as the helper's would.
func Sensitive(names ...string) Option {
	return func(o *options) { o.sensitive = append(o.sensitive, names...) }
}

func build(opts []Option) options {
	o := options{validate: true, timeout: 30 * time.Second}
	for _, f := range opts {
		f(&o)
	}
	return o
}

// Def returns the registered Def of m's module, bound to m itself (a value with test seams).
func Def(t testing.TB, m modules.Module) *modules.Def {
	t.Helper()
	name := m.Info().Name
	d, ok := modules.Lookup(name)
	if !ok {
		t.Fatalf("module %q is not registered", name)
	}
	return d.With(m)
}

// Run runs m once with args. Arguments the schema rejects fail the test; so do values the
// Validator rejects, unless NoValidate is given.
func Run(t testing.TB, m modules.Module, args map[string]cty.Value, apply bool, opts ...Option) (*modules.Result, error) {
	t.Helper()
	o := build(opts)
	return run(t, Def(t, m), args, apply, o)
}

func run(t testing.TB, d *modules.Def, args map[string]cty.Value, apply bool, o options) (*modules.Result, error) {
	t.Helper()
	a, norm, err := d.Args(objectOf(args))
	if err != nil {
		t.Fatalf("%s: arguments: %v", d.Info().Name, err)
	}
	if o.validate {
		if errs := d.Validate(a); len(errs) > 0 {
			t.Fatalf("%s: invalid arguments: %v", d.Info().Name, errs)
		}
	}
	env := modules.NewEnv(d.Info(), o.sensitive)
	env.SetSecrets(modules.SecretStrings(norm, env.SensitiveArgs()))
	// No transactions (modules/txn) unless the task asks for one (confirm_timeout) or the
	// test's WithEnv does: a real one would arm a rollback that runs this test binary.
	env.ConfirmTimeout = -1
	if o.env != nil {
		o.env(env)
	}
	ctx, cancel := context.WithTimeout(context.Background(), o.timeout)
	defer cancel()
	res, err := d.Run(ctx, env, a, apply)
	if res != nil && res.Data != nil {
		// What the helper would send must encode, and read back as the declared Returns.
		raw, derr := d.Data(res.Data, nil)
		if derr == nil {
			_, derr = modules.DataFromJSON(raw, d.Info().Returns)
		}
		if derr != nil {
			t.Fatalf("%s: %v", d.Info().Name, derr)
		}
	}
	return res, err
}

// Validate returns what the helper would refuse args for: values its schema's OneOf or
// Pattern refuses (Schema.ValueErrors) or that do not decode into the argument struct, else
// what the module's Validator says. Arguments that do not fit the schema at all (an
// unknown name, a missing required one) fail the test.
func Validate(t testing.TB, m modules.Module, args map[string]cty.Value) []modules.ArgError {
	t.Helper()
	d := Def(t, m)
	a, _, err := d.Args(objectOf(args))
	if err != nil {
		var ae modules.ArgError
		if errors.As(err, &ae) {
			// A value the schema's rules refuse (all of them), or one that does not decode
			// into the struct (a null element): the helper refuses either.
			if norm, nerr := d.Info().Schema.Normalize(objectOf(args)); nerr == nil {
				if errs := d.Info().Schema.ValueErrors(norm); len(errs) > 0 {
					return errs
				}
			}
			return []modules.ArgError{ae}
		}
		t.Fatalf("%s: arguments: %v", d.Info().Name, err)
	}
	return d.Validate(a)
}

// Data returns a result's data as the controller sees it: what the helper would send (JSON
// of the declared Returns types), read back as the controller reads it, an object of those
// types. A field of any type comes back as JSON makes it (a number, an object).
func Data(t testing.TB, m modules.Module, res *modules.Result) cty.Value {
	t.Helper()
	if res == nil {
		t.Fatal("no result")
	}
	d := Def(t, m)
	raw, err := d.Data(res.Data, nil)
	if err != nil {
		t.Fatal(err)
	}
	if raw == nil {
		t.Fatal("the result has no data")
	}
	v, err := modules.DataFromJSON(raw, d.Info().Returns)
	if err != nil {
		t.Fatal(err)
	}
	if v == cty.NilVal {
		t.Fatal("the result has no data")
	}
	return v
}

// Timeline runs check, apply, check, apply with args and fails the test unless they report
// drift (with a diff), changed, ok (no diff) and ok (no diff). It returns the four results.
func Timeline(t testing.TB, m modules.Module, args map[string]cty.Value, opts ...Option) [4]*modules.Result {
	t.Helper()
	o := build(opts)
	d := Def(t, m)
	var out [4]*modules.Result
	want := []modules.Status{modules.StatusDrift, modules.StatusChanged, modules.StatusOK, modules.StatusOK}
	steps := []string{"check", "apply", "check after apply", "apply again"}
	for i, step := range steps {
		apply := i%2 == 1
		if o.before != nil {
			o.before(t, step)
		}
		var before string
		if o.snapshot != nil && i != 1 {
			before = o.snapshot(t)
		}
		res, err := run(t, d, args, apply, o)
		if err != nil {
			t.Fatalf("%s: %v", step, err)
		}
		if res == nil {
			t.Fatalf("%s: no result", step)
		}
		if res.Status != want[i] {
			t.Fatalf("%s: status %s (%s), want %s", step, res.Status, res.Msg, want[i])
		}
		switch {
		case i == 0 && (res.Diff == nil || res.Diff.Before == res.Diff.After):
			t.Errorf("%s: drift without a diff: %+v", step, res.Diff)
		case i >= 2 && res.Diff != nil:
			t.Errorf("%s: in sync but shows a diff: %+v", step, res.Diff)
		}
		if o.unchanged != nil && i != 1 {
			o.unchanged(t, step)
		}
		if o.snapshot != nil && i != 1 {
			if after := o.snapshot(t); after != before {
				t.Fatalf("%s changed the host:\n%s\n->\n%s", step, before, after)
			}
		}
		out[i] = res
	}
	return out
}

func objectOf(args map[string]cty.Value) cty.Value {
	if len(args) == 0 {
		return cty.EmptyObjectVal
	}
	return cty.ObjectVal(args)
}
