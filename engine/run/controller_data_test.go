package run

import (
	"context"
	"strings"
	"testing"

	"github.com/zclconf/go-cty/cty"

	"github.com/runbook/runbook/engine/controller"
	"github.com/runbook/runbook/engine/plan"
	"github.com/runbook/runbook/modules"
)

// echoData is a controller-only module for this test: it registers its argument as data,
// the way a controller half could register something a secret went into.
type echoData struct{}

type echoDataArgs struct {
	Text string `cty:"text"`
}

type echoDataResult struct {
	Said string `cty:"said"`
}

func (echoData) Info() modules.Info {
	return modules.Info{Name: "test_echo_data", Family: "test", Summary: "Registers its text (engine/run tests).",
		Schema:  modules.Schema{Args: []modules.Arg{{Name: "text", Type: cty.String, Required: true, Doc: "The text."}}},
		Returns: []modules.Field{{Name: "said", Type: cty.String, Doc: "The text."}}}
}

func (echoData) RunsOnController() {}

func init() {
	modules.Register[echoDataArgs, echoDataResult](echoData{})
	controller.RegisterRunner("test_echo_data", func(_ context.Context, _ *controller.Env, args cty.Value) (*modules.Result, error) {
		return &modules.Result{Status: modules.StatusOK, Data: echoDataResult{Said: "said " + args.GetAttr("text").AsString()}}, nil
	})
}

// TestControllerDataIsRedacted: data a controller half registers is redacted like a host's,
// although it comes back as the module's result struct, not over the wire.
func TestControllerDataIsRedacted(t *testing.T) {
	src := `
variable "token" {
  default   = "hunter2-secret"
  sensitive = true
}
play "p" {
  hosts = "kvm"
  task "echo" {
    test_echo_data {
      text = "token=${var.token}"
    }
  }
}
`
	l := newLab(t, src, "a")
	pl, diags := plan.Build(l.rb, l.inv, plan.Options{})
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	var calls []Call
	rec := &recorder{}
	(&Engine{Runbook: l.rb, Connector: callsConnector{&calls}, Observer: rec, Options: Options{Forks: 1}}).Run(context.Background(), pl)
	if len(rec.results) != 1 || len(calls) != 0 {
		t.Fatalf("results %v, calls %v", rec.results, calls)
	}
	r := rec.results[0]
	if r.Status != OK {
		t.Fatalf("%s %s", r.Status, r.Msg)
	}
	said := r.Data.GetAttr("said").AsString()
	if strings.Contains(said, "hunter2") || !strings.Contains(said, modules.Redacted) {
		t.Errorf("said = %q", said)
	}
}
