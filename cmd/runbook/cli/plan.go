package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/spf13/cobra"

	"github.com/runbook/runbook/engine/config"
	"github.com/runbook/runbook/engine/diag"
	"github.com/runbook/runbook/engine/plan"
	"github.com/runbook/runbook/internal/termsafe"
	"github.com/runbook/runbook/inventory"
	"github.com/runbook/runbook/inventory/vault"
)

// inventoryTimeoutFlag adds --inventory-timeout, and the vault options, to a command that
// loads inventories.
func inventoryTimeoutFlag(cmd *cobra.Command) {
	vaultFlags(cmd)
	cmd.Flags().Duration("inventory-timeout", 0, fmt.Sprintf("bound on each executable inventory, its --list and --host runs together (default %gs, or %s)",
		inventory.DefaultScriptTimeout.Seconds(), inventory.TimeoutEnvVar))
}

// inventoryTimeout is --inventory-timeout if given, else RUNBOOK_INVENTORY_TIMEOUT if set,
// else 0 (the inventory package's default).
func (a *app) inventoryTimeout(cmd *cobra.Command) (time.Duration, *hcl.Diagnostic) {
	if fl := cmd.Flags().Lookup("inventory-timeout"); fl != nil && fl.Changed {
		d, _ := cmd.Flags().GetDuration("inventory-timeout")
		if d <= 0 {
			return 0, diag.Errorf("Invalid --inventory-timeout", "--inventory-timeout must be a positive duration such as 90s or 5m, not %s.", fl.Value)
		}
		return d, nil
	}
	raw := a.getenv(inventory.TimeoutEnvVar)
	if raw == "" {
		return 0, nil
	}
	d, err := time.ParseDuration(raw)
	if err != nil || d <= 0 {
		return 0, diag.Errorf("Invalid "+inventory.TimeoutEnvVar, "%s in the environment must be a positive duration such as 90s or 5m, not %q.", inventory.TimeoutEnvVar, raw)
	}
	return d, nil
}

// stopSignals are the signals that stop runbook in order: scripts killed, hosts stopped at
// their next task boundary, the history recorded. One that runbook was started with
// ignored stays ignored, as whoever started it asked (nohup ignores SIGHUP; a shell
// ignores SIGINT for a background job). That is read once, at start: after signal.Notify,
// signal.Ignored no longer tells.
var stopSignals = func() []os.Signal {
	var out []os.Signal
	for _, s := range []os.Signal{os.Interrupt, syscall.SIGTERM, syscall.SIGHUP} {
		if !signal.Ignored(s) {
			out = append(out, s)
		}
	}
	return out
}()

// notifyStop returns a context that ends on one of stopSignals.
func notifyStop(ctx context.Context) (context.Context, context.CancelFunc) {
	if len(stopSignals) == 0 {
		// signal.NotifyContext with no signals would catch every signal
		return context.WithCancel(ctx)
	}
	return signal.NotifyContext(ctx, stopSignals...)
}

// loadInventory loads the inventories cmd names. Executable inventories get the
// environment the command was given (filtered by the inventory package) and the timeout
// of --inventory-timeout; an interrupt while they run stops them.
func (a *app) loadInventory(cmd *cobra.Command, paths []string) (*inventory.Inventory, hcl.Diagnostics) {
	timeout, d := a.inventoryTimeout(cmd)
	if d != nil {
		return nil, hcl.Diagnostics{d}
	}
	ctx := cmd.Context()
	if ctx == nil {
		ctx = context.Background()
	}
	// Scripts run in process groups of their own, out of reach of the terminal's Ctrl-C:
	// runbook stops them itself.
	ctx, stop := notifyStop(ctx)
	defer stop()
	env := a.env
	if env == nil {
		env = []string{}
	}
	// runbook inventory and validate show and check inventories without their secrets;
	// exec, check and run need every vault value decrypted before any host is touched
	keys, d := a.vaultKeyring(cmd, cmd.Name() != "inventory" && cmd.Name() != "validate")
	if d != nil {
		return nil, hcl.Diagnostics{d}
	}
	inv, diags := inventory.LoadWith(ctx, inventory.LoadOptions{ScriptTimeout: timeout, Environ: env, Vault: keys}, paths...)
	hideSecretSources(diags)
	return inv, diags
}

// hideSecretSources keeps the lines of an inventory file that holds a variable named like
// a secret (inventory.MentionsSecret) out of the errors about it: the line of a syntax
// error, or the lines around it, may be that secret's. The errors still name the file,
// line and column.
func hideSecretSources(diags hcl.Diagnostics) {
	secret := map[string]bool{}
	for _, d := range diags {
		if d.Subject == nil || d.Subject.Filename == "" {
			continue
		}
		name := d.Subject.Filename
		hide, ok := secret[name]
		if !ok {
			b, err := os.ReadFile(name)
			// a file that cannot be read now shows no lines anyway
			hide = err == nil && (inventory.MentionsSecret(b) || vault.IsEncrypted(b))
			secret[name] = hide
		}
		if hide {
			diag.HideSource(d)
		}
	}
}

// plan resolves hosts and tasks for exec, check and run, and reports what would run.
func (a *app) plan(cmd *cobra.Command, rb *config.Runbook, f *runFlags, warnings hcl.Diagnostics) error {
	inv, diags := a.loadInventory(cmd, f.inv)
	diags = append(warnings, diags...)
	if diags.HasErrors() {
		a.report(rb.Files, diags)
		return fail(ExitInvalid)
	}
	opts := plan.Options{Limit: f.limit, Tags: f.tags, SkipTags: f.skipTags, Task: f.task, WithDeps: f.withDeps, StartAt: f.startAt, Check: f.check}
	if f.rerun == "failed" {
		hosts, err := a.lastFailed(cmd.Context(), rb, f)
		if err != nil {
			a.report(rb.Files, hcl.Diagnostics{diag.Errorf("Cannot rerun failed hosts", "%s", err)})
			return fail(ExitInvalid)
		}
		if len(hosts) == 0 {
			fmt.Fprintln(a.stdout, "Nothing to rerun: no host failed or was unreachable in the last recorded run of this runbook.")
			return nil
		}
		fmt.Fprintf(a.stdout, "Rerunning %s that failed last time: %s\n", plural(len(hosts), "host"), termsafe.Line(strings.Join(hosts, " ")))
		opts.Only = hosts
	}
	pl, pdiags := plan.Build(rb, inv, opts)
	diags = append(diags, pdiags...)
	// A shard keeps its part of the hosts the run selects (after --limit and --rerun), the
	// same part in every play: the shard is a function of the host name alone.
	var shardMine, shardAll int
	if f.shard != nil && pl != nil {
		_, shardAll = shardCounts(nil, pl)
		f.shard.Apply(pl)
		shardMine, _ = shardCounts(pl, nil)
	}
	// Before any host is touched: a connection variable runbook cannot honour on any planned
	// host stops the run (--list included: it shows what a run would do). The refusals are
	// shown together with the plan's other errors, so that one attempt shows everything to
	// fix. Which hosts run does not depend on the task selection: when only that failed (an
	// unknown tag, --task or --start-at-task), the hosts are those of a plan without it.
	// When --limit itself is wrong the hosts are unknown, and their connection variables
	// are checked once it is fixed; an inventory that did not load stopped the run above.
	hostsOf := pl
	if hostsOf == nil {
		hostsOf, _ = plan.Build(rb, inv, plan.Options{Limit: opts.Limit, Only: opts.Only})
		f.shard.Apply(hostsOf)
	}
	if hostsOf != nil {
		var hosts []*inventory.Host
		for _, p := range hostsOf.Plays {
			hosts = append(hosts, p.Hosts...)
		}
		diags = append(diags, connectionDiags(hosts)...)
	}
	if a.report(rb.Files, diags) {
		return fail(ExitInvalid)
	}
	if f.list {
		return a.listPlan(pl, f, shardMine, shardAll)
	}
	total := 0
	for _, p := range pl.Plays {
		total += len(p.Hosts)
	}
	if f.shard != nil {
		fmt.Fprintf(a.stderr, "runbook: shard %s (from %s): %s of the %d the run selects\n", f.shard, f.shardFrom, plural(shardMine, "host"), shardAll)
	}
	if total == 0 && f.shard != nil && shardAll > 0 {
		// Its part of the fleet is empty (fewer hosts than shards, or an unlucky --limit):
		// the shard has nothing to do, which is not the shard failing. It still runs, so that
		// its history records the shard as done under its --run-label.
		fmt.Fprintf(a.stderr, "runbook: shard %s holds none of the hosts: nothing to do here\n", f.shard)
	} else if total == 0 {
		// A run (or a nightly check) that touches nothing must not look like a success.
		a.report(rb.Files, hcl.Diagnostics{diag.Errorf("No hosts selected",
			"No play selects any host of the inventory, so nothing would run. Check the hosts patterns and --limit (`runbook inventory -i INV --graph` shows the groups).")})
		return fail(ExitInvalid)
	}
	return a.execute(cmd, rb, pl, f)
}

// listPlan prints what a run would do without connecting anywhere.
func (a *app) listPlan(pl *plan.Plan, f *runFlags, shardMine, shardAll int) error {
	if a.output == "json" {
		var plays []map[string]any
		for _, p := range pl.Plays {
			var hosts, tasks []string
			for _, h := range p.Hosts {
				hosts = append(hosts, h.Name)
			}
			for _, t := range p.Tasks {
				tasks = append(tasks, t.Name)
			}
			plays = append(plays, map[string]any{"play": p.Play.Name, "hosts": hosts, "tasks": tasks})
		}
		out := map[string]any{"type": "plan", "plays": plays}
		if f.shard != nil {
			out["shard"] = map[string]any{"index": f.shard.Index, "count": f.shard.Count, "from": f.shardFrom,
				"hosts": shardMine, "selected": shardAll}
		}
		return json.NewEncoder(a.stdout).Encode(out)
	}
	if f.shard != nil {
		fmt.Fprintf(a.stdout, "shard %s (from %s): %s of the %d the run selects\n", f.shard, f.shardFrom, plural(shardMine, "host"), shardAll)
	}
	for _, p := range pl.Plays {
		fmt.Fprintf(a.stdout, "play %q: %s, %s\n", p.Play.Name, plural(len(p.Hosts), "host"), plural(len(p.Tasks), "task"))
		names := make([]string, len(p.Hosts))
		for i, h := range p.Hosts {
			names[i] = termsafe.Line(h.Name)
		}
		fmt.Fprintf(a.stdout, "  hosts: %s\n", strings.Join(names, " "))
		for _, t := range p.Tasks {
			fmt.Fprintf(a.stdout, "  task %q (%s)\n", t.Name, t.Module)
		}
	}
	return nil
}

// connectionDiags reports, per host, every connection variable of the hosts that runbook
// would not honour (inventory.Host.CheckConnection): an error each, naming the host and
// the variable, never a secret's value. A host listed several times is checked once.
func connectionDiags(hosts []*inventory.Host) hcl.Diagnostics {
	var diags hcl.Diagnostics
	seen := map[string]bool{}
	for _, h := range hosts {
		if seen[h.Name] {
			continue
		}
		seen[h.Name] = true
		for _, err := range h.CheckConnection() {
			diags = append(diags, diag.Errorf("Unsupported connection variable", "%s", err))
		}
	}
	return diags
}
