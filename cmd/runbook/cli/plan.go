package cli

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/hashicorp/hcl/v2"
	"github.com/spf13/cobra"

	"github.com/runbook/runbook/engine/config"
	"github.com/runbook/runbook/engine/diag"
	"github.com/runbook/runbook/engine/plan"
	"github.com/runbook/runbook/inventory"
)

func loadInventory(ctx context.Context, paths []string) (*inventory.Inventory, hcl.Diagnostics) {
	if ctx == nil {
		ctx = context.Background()
	}
	return inventory.Load(ctx, paths...)
}

func checkPlayHosts(rb *config.Runbook, inv *inventory.Inventory) hcl.Diagnostics {
	return plan.CheckPlayHosts(rb, inv)
}

// plan resolves hosts and tasks for exec, check and run, and reports what would run.
func (a *app) plan(cmd *cobra.Command, rb *config.Runbook, f *runFlags, warnings hcl.Diagnostics) error {
	inv, diags := loadInventory(cmd.Context(), f.inv)
	diags = append(warnings, diags...)
	if diags.HasErrors() {
		a.report(rb.Files, diags)
		return fail(ExitInvalid)
	}
	diags = append(diags, checkPlayHosts(rb, inv)...)
	pl, pdiags := plan.Build(rb, inv, plan.Options{Limit: f.limit, Tags: f.tags, SkipTags: f.skipTags, Task: f.task, Check: f.check})
	diags = append(diags, pdiags...)
	if a.report(rb.Files, diags) {
		return fail(ExitInvalid)
	}
	hosts := map[string]bool{}
	tasks := 0
	for _, p := range pl.Plays {
		for _, h := range p.Hosts {
			hosts[h.Name] = true
		}
		tasks += len(p.Tasks) * len(p.Hosts)
	}
	if a.output == "json" {
		_ = json.NewEncoder(a.stdout).Encode(map[string]any{"type": "plan", "hosts": len(hosts), "task_runs": tasks, "check": f.check})
	} else {
		for _, p := range pl.Plays {
			fmt.Fprintf(a.stdout, "play %q: %s, %s\n", p.Play.Name, plural(len(p.Hosts), "host"), plural(len(p.Tasks), "task"))
		}
	}
	// The runbook, inventory and selection are valid; executing needs the SSH transport.
	a.report(rb.Files, hcl.Diagnostics{diag.Errorf("No transport yet",
		"The runbook and inventory are valid and %s would run on %s, but this build of runbook cannot connect to hosts yet: the SSH transport is not part of it.",
		plural(tasks, "task run"), plural(len(hosts), "host"))})
	return fail(ExitInvalid)
}
