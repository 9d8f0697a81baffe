package network_test

import (
	"strings"
	"testing"

	"github.com/runbook/runbook/engine/config"
	"github.com/runbook/runbook/engine/diag"
	"github.com/runbook/runbook/modules"
	_ "github.com/runbook/runbook/modules/network"
)

// TestExamples loads every example of the network modules as a task in a play, as
// engine/config's test does for the modules the standard set links in.
func TestExamples(t *testing.T) {
	for _, name := range []string{"bond", "bridge", "interface", "sriov"} {
		m, ok := modules.Lookup(name)
		if !ok {
			t.Fatalf("module %s is not registered", name)
		}
		info := m.Info()
		if len(info.Examples) == 0 {
			t.Errorf("%s has no example", name)
		}
		for _, ex := range info.Examples {
			src := "play \"example\" {\n  hosts = \"all\"\n" + ex.HCL + "\n}\n"
			rb, diags := config.Parse([]config.Source{{Name: name + ".hcl", Src: []byte(src)}}, config.Inputs{})
			if len(diags) > 0 {
				var b strings.Builder
				(&diag.Printer{Files: rb.Files}).Text(&b, diags)
				t.Fatalf("%s example %q:\n%s", name, ex.Title, b.String())
			}
			if got := rb.Plays[0].Tasks[0].Module; got != name {
				t.Errorf("example runs %q", got)
			}
		}
	}
}
