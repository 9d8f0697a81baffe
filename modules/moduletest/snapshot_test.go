package moduletest

import (
	"context"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"testing"

	"github.com/zclconf/go-cty/cty"

	"github.com/runbook/runbook/modules"
)

// leakHost is the "host" of the leakProbe module: a value, and a count of the times anything
// touched it.
type leakHost struct {
	value  string
	writes int
	// leak names the run that touches the host although it must not: "check" or "noop"
	// (an apply with nothing to do).
	leak string
}

func (h *leakHost) snapshot(testing.TB) string { return fmt.Sprintf("%s/%d", h.value, h.writes) }

// leakProbe sets the host's value; it is right unless its host leaks.
type leakProbe struct{ h *leakHost }

type leakArgs struct {
	Value string `cty:"value"`
}

type leakResult struct {
	Value string `cty:"value"`
}

func (leakProbe) Info() modules.Info {
	return modules.Info{
		Name: "moduletest_leak", Family: "test", Summary: "Test module.",
		Schema:  modules.Schema{Args: []modules.Arg{{Name: "value", Type: cty.String, Required: true, Doc: "The value."}}},
		Returns: []modules.Field{{Name: "value", Type: cty.String, Doc: "The value."}},
	}
}

func (p leakProbe) Run(_ context.Context, _ *modules.Env, args leakArgs, apply bool) (*modules.Result, error) {
	h := p.h
	if h.value == args.Value {
		if apply && h.leak == "noop" {
			h.writes++
		}
		return &modules.Result{Status: modules.StatusOK, Data: leakResult{h.value}}, nil
	}
	res := &modules.Result{Status: modules.DiffStatus(apply), Data: leakResult{args.Value},
		Diff: &modules.Diff{Before: h.value + "\n", After: args.Value + "\n"}}
	if apply || h.leak == "check" {
		h.writes++
	}
	if apply {
		h.value = args.Value
	}
	return res, nil
}

func init() { modules.Register[leakArgs, leakResult](leakProbe{}) }

// recorder is a testing.TB whose failures are recorded, not reported; Fatal ends the
// goroutine that Timeline runs in, as it ends a test.
type recorder struct {
	testing.TB
	mu     sync.Mutex
	failed []string
}

func (r *recorder) Errorf(format string, a ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.failed = append(r.failed, fmt.Sprintf(format, a...))
}

func (r *recorder) Fatalf(format string, a ...any) {
	r.Errorf(format, a...)
	runtime.Goexit()
}

func (r *recorder) Fatal(a ...any) {
	r.Errorf("%s", fmt.Sprint(a...))
	runtime.Goexit()
}

// timeline runs Timeline on its own goroutine with a recorder and returns the failures.
func timeline(t *testing.T, m modules.Module, args map[string]cty.Value, opts ...Option) []string {
	r := &recorder{TB: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		Timeline(r, m, args, opts...)
	}()
	<-done
	return r.failed
}

func TestTimelineSnapshot(t *testing.T) {
	args := map[string]cty.Value{"value": cty.StringVal("b")}
	tests := []struct {
		name     string
		leak     string
		snapshot bool
		want     string // a failure that must be reported; "" for none
	}{
		{name: "a right module passes", snapshot: true},
		{name: "a check that touches the host fails", leak: "check", snapshot: true, want: "check changed the host:\na/0\n->\na/1"},
		{name: "an apply with nothing to do that touches the host fails", leak: "noop", snapshot: true, want: "apply again changed the host:\nb/1\n->\nb/2"},
		{name: "without a snapshot the statuses alone miss it", leak: "check"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := &leakHost{value: "a", leak: tt.leak}
			var opts []Option
			if tt.snapshot {
				opts = append(opts, Snapshot(h.snapshot))
			}
			failed := timeline(t, leakProbe{h}, args, opts...)
			switch {
			case tt.want == "" && len(failed) > 0:
				t.Errorf("failures %q, want none", failed)
			case tt.want != "" && (len(failed) != 1 || !strings.Contains(failed[0], tt.want)):
				t.Errorf("failures %q, want one with %q", failed, tt.want)
			}
			if h.value != "b" && tt.want == "" {
				t.Errorf("value %q after the timeline, want b", h.value)
			}
		})
	}
}
