package config

import (
	"fmt"
	"strings"
	"testing"

	"github.com/runbook/runbook/engine/diag"
	"github.com/runbook/runbook/modules"
)

// TestModuleExamples validates every example that `runbook modules NAME` shows, so the docs
// never show a task that does not load.
func TestModuleExamples(t *testing.T) {
	for _, info := range modules.All() {
		if len(info.Examples) == 0 {
			t.Errorf("module %s has no example", info.Name)
		}
		for i, ex := range info.Examples {
			t.Run(fmt.Sprintf("%s/%d", info.Name, i), func(t *testing.T) {
				src := fmt.Sprintf("play \"example\" {\n  hosts = \"all\"\n%s\n}\n", ex.HCL)
				rb, diags := Parse([]Source{{Name: info.Name + ".hcl", Src: []byte(src)}}, Inputs{})
				if len(diags) > 0 {
					var b strings.Builder
					(&diag.Printer{Files: rb.Files}).Text(&b, diags)
					t.Fatalf("example %q:\n%s", ex.Title, b.String())
				}
				if got := rb.Plays[0].Tasks[0].Module; got != info.Name {
					t.Errorf("example runs module %q, want %q", got, info.Name)
				}
			})
		}
	}
}
