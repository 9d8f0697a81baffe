package controller

import (
	"context"
	"strings"
	"testing"

	"github.com/zclconf/go-cty/cty"

	"github.com/runbook/runbook/modules"
	_ "github.com/runbook/runbook/modules/standard"
)

func testRunner(context.Context, *Env, cty.Value) (*modules.Result, error) {
	return &modules.Result{Status: modules.StatusOK}, nil
}

func testPreparer(_ context.Context, _ *Env, args cty.Value) (cty.Value, error) { return args, nil }

func TestRegisterPanics(t *testing.T) {
	// forget removes what a case registered, so the package's registry stays as init left it.
	forget := func(name string) {
		mu.Lock()
		defer mu.Unlock()
		delete(runners, name)
		delete(preparers, name)
	}
	tests := []struct {
		name     string
		register func()
		want     string // "" when registering must work
	}{
		{"runner", func() { RegisterRunner("t_runner", testRunner) }, ""},
		{"preparer", func() { RegisterPreparer("t_preparer", testPreparer) }, ""},
		{"empty name", func() { RegisterRunner("", testRunner) }, "empty module name"},
		{"nil runner", func() { RegisterRunner("t_nil", nil) }, "nil Runner"},
		{"nil preparer", func() { RegisterPreparer("t_nil", nil) }, "nil Preparer"},
		{"runner twice", func() { RegisterRunner("t_twice", testRunner); RegisterRunner("t_twice", testRunner) }, "has a controller half already"},
		{"preparer twice", func() { RegisterPreparer("t_twice", testPreparer); RegisterPreparer("t_twice", testPreparer) }, "has a controller half already"},
		{"preparer and runner", func() { RegisterPreparer("t_both", testPreparer); RegisterRunner("t_both", testRunner) }, "has a controller half already"},
		{"a module's half replaced", func() { RegisterPreparer("copy", testPreparer) }, `"copy" has a controller half already`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			defer forget("t_runner")
			defer forget("t_preparer")
			defer forget("t_twice")
			defer forget("t_both")
			defer func() {
				r := recover()
				switch {
				case tt.want == "" && r != nil:
					t.Fatalf("panic %v", r)
				case tt.want != "" && (r == nil || !strings.Contains(r.(string), tt.want)):
					t.Fatalf("panic = %v, want one containing %q", r, tt.want)
				}
			}()
			tt.register()
		})
	}
	if _, ok := RunnerFor("t_runner"); ok {
		t.Error("the test's registrations were not forgotten")
	}
	if _, ok := PreparerFor("copy"); !ok {
		t.Error("copy lost its controller half")
	}
}

func TestLookup(t *testing.T) {
	tests := []struct {
		module           string
		runner, preparer bool
	}{
		{"assert", true, false},
		{"copy", false, true},
		{"template", false, true},
		{"command", false, false},
		{"no_such_module", false, false},
	}
	for _, tt := range tests {
		_, r := RunnerFor(tt.module)
		_, p := PreparerFor(tt.module)
		if r != tt.runner || p != tt.preparer {
			t.Errorf("%s: runner %v, preparer %v; want %v, %v", tt.module, r, p, tt.runner, tt.preparer)
		}
	}
}

// TestHalvesMatchModules holds the two registries to each other: a controller half belongs
// to a registered module; a module the controller runs is marked so (modules.ControllerOnly,
// which a helper reads to refuse it) and has no host half; a module that is prepared here has
// one; and every module marked controller-only has its code here.
func TestHalvesMatchModules(t *testing.T) {
	mu.RLock()
	defer mu.RUnlock()
	for name := range runners {
		m, ok := modules.Lookup(name)
		if !ok {
			t.Errorf("a controller Runner for %q, which is no module", name)
			continue
		}
		if _, ok := m.Module().(modules.ControllerOnly); !ok {
			t.Errorf("%s runs on the controller but is not modules.ControllerOnly: a helper would not know to refuse it", name)
		}
		if m.RunsOnHost() {
			t.Errorf("%s runs on the controller and has host-side code too", name)
		}
	}
	for name := range preparers {
		m, ok := modules.Lookup(name)
		if !ok {
			t.Errorf("a Preparer for %q, which is no module", name)
			continue
		}
		if !m.RunsOnHost() {
			t.Errorf("%s is prepared on the controller but has no host-side code to send it to", name)
		}
	}
	for _, name := range modules.Names() {
		m, _ := modules.Lookup(name)
		if _, ok := m.Module().(modules.ControllerOnly); ok {
			if _, ok := runners[name]; !ok {
				t.Errorf("%s is modules.ControllerOnly but has no controller Runner", name)
			}
		}
	}
	if len(runners) == 0 || len(preparers) == 0 {
		t.Errorf("%d runners, %d preparers: the generic modules' halves are missing", len(runners), len(preparers))
	}
}
