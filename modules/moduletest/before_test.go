package moduletest_test

import (
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/zclconf/go-cty/cty"

	"github.com/runbook/runbook/modules"
	"github.com/runbook/runbook/modules/moduletest"
)

// flag is a module whose state is one bool: off until an apply sets it to value.
type flag struct{ state *bool }

type flagArgs struct {
	Value bool `cty:"value"`
}

type flagResult struct {
	Value bool `cty:"value"`
}

func (flag) Info() modules.Info {
	return modules.Info{Name: "moduletest_flag", Family: "test", Summary: "A flag for moduletest's own tests.",
		Schema:  modules.Schema{Args: []modules.Arg{{Name: "value", Type: cty.Bool, Required: true, Doc: "The value."}}},
		Returns: []modules.Field{{Name: "value", Type: cty.Bool, Doc: "The value after the run."}}}
}

func (f flag) Run(_ context.Context, _ *modules.Env, a flagArgs, apply bool) (*modules.Result, error) {
	if *f.state == a.Value {
		return &modules.Result{Status: modules.StatusOK, Data: flagResult{*f.state}}, nil
	}
	res := &modules.Result{Status: modules.DiffStatus(apply), Diff: &modules.Diff{Before: "off\n", After: "on\n"}}
	if apply {
		*f.state = a.Value
	}
	res.Data = flagResult{*f.state}
	return res, nil
}

func init() { modules.Register[flagArgs, flagResult](flag{}) }

// TestTimelineHooks: Before runs before every step, apply included; Unchanged after each
// check and after the final apply; each sees the host as its step leaves or finds it.
func TestTimelineHooks(t *testing.T) {
	state := false
	var got []string
	record := func(what string) func(testing.TB, string) {
		return func(_ testing.TB, step string) {
			got = append(got, what+" "+step+" "+map[bool]string{true: "on", false: "off"}[state])
		}
	}
	res := moduletest.Timeline(t, flag{&state}, map[string]cty.Value{"value": cty.True},
		moduletest.Before(record("before")), moduletest.Unchanged(record("unchanged")))
	want := []string{
		"before check off", "unchanged check off",
		"before apply off",
		"before check after apply on", "unchanged check after apply on",
		"before apply again on", "unchanged apply again on",
	}
	if !slices.Equal(got, want) {
		t.Errorf("hooks ran:\n  %s\nwant:\n  %s", strings.Join(got, "\n  "), strings.Join(want, "\n  "))
	}
	if !res[1].Data.(flagResult).Value || res[0].Data.(flagResult).Value {
		t.Errorf("results: %+v %+v", res[0].Data, res[1].Data)
	}
}
