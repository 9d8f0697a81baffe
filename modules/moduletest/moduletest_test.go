package moduletest

import (
	"context"
	"slices"
	"testing"

	"github.com/zclconf/go-cty/cty"

	"github.com/runbook/runbook/modules"
)

// probe is a module that converges once: a check before its first apply drifts, that
// apply changes it, and every run after is ok. It shows what its Env hides.
type probe struct{ applied *bool }

type probeArgs struct {
	Word string `cty:"word"`
}

type probeResult struct {
	// Shown is word as the Env's redactor shows it; Sensitive whether the Env hides word.
	Shown     string `cty:"shown"`
	Sensitive bool   `cty:"sensitive"`
}

func (probe) Info() modules.Info {
	return modules.Info{
		Name:    "moduletest_probe",
		Summary: "A module for moduletest's own tests.",
		Schema:  modules.Schema{Args: []modules.Arg{{Name: "word", Type: cty.String, Default: cty.StringVal("plain")}}},
		Returns: []modules.Field{{Name: "shown", Type: cty.String}, {Name: "sensitive", Type: cty.Bool}},
	}
}

func (p probe) Run(_ context.Context, env *modules.Env, a probeArgs, apply bool) (*modules.Result, error) {
	res := &modules.Result{Status: modules.StatusOK, Data: probeResult{Shown: env.Redactor().Redact(a.Word), Sensitive: env.Sensitive("word")}}
	if !*p.applied {
		res.Status = modules.DiffStatus(apply)
		res.Diff = &modules.Diff{Before: "no\n", After: "yes\n"}
		*p.applied = apply
	}
	return res, nil
}

func init() { modules.Register[probeArgs, probeResult](probe{applied: new(bool)}) }

func TestSensitive(t *testing.T) {
	tests := []struct {
		name          string
		opts          []Option
		wantShown     string
		wantSensitive bool
	}{
		{"not named", nil, "hunter2-secret", false},
		{"named", []Option{Sensitive("word")}, modules.Redacted, true},
		{"another named", []Option{Sensitive("other")}, "hunter2-secret", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, err := Run(t, probe{applied: new(bool)}, map[string]cty.Value{"word": cty.StringVal("hunter2-secret")}, false, tt.opts...)
			if err != nil {
				t.Fatal(err)
			}
			if d := res.Data.(probeResult); d.Shown != tt.wantShown || d.Sensitive != tt.wantSensitive {
				t.Errorf("data = %+v, want shown %q, sensitive %v", d, tt.wantShown, tt.wantSensitive)
			}
		})
	}
}

func TestTimelineHookSteps(t *testing.T) {
	var before, unchanged []string
	out := Timeline(t, probe{applied: new(bool)}, nil,
		Before(func(_ testing.TB, step string) { before = append(before, step) }),
		Unchanged(func(_ testing.TB, step string) { unchanged = append(unchanged, step) }))
	if want := []string{"check", "apply", "check after apply", "apply again"}; !slices.Equal(before, want) {
		t.Errorf("Before saw %q, want %q", before, want)
	}
	if want := []string{"check", "check after apply", "apply again"}; !slices.Equal(unchanged, want) {
		t.Errorf("Unchanged saw %q, want %q", unchanged, want)
	}
	// The schema's default reached the module.
	if d := Data(t, probe{}, out[0]); d.GetAttr("shown").AsString() != "plain" {
		t.Errorf("data = %#v", d)
	}
}
