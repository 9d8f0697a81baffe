package cli

import (
	"encoding/json"
	"fmt"

	"github.com/hashicorp/hcl/v2"
	"github.com/spf13/cobra"

	"github.com/runbook/runbook/engine/config"
	"github.com/runbook/runbook/engine/plan"
	"github.com/runbook/runbook/inventory"
)

// varFlags are the flags that give values to a runbook's variables.
type varFlags struct {
	vars     []string
	varFiles []string
}

func (v *varFlags) add(cmd *cobra.Command) {
	cmd.Flags().StringArrayVar(&v.vars, "var", nil, "set a variable: NAME=VALUE (repeatable; non-string values are HCL, e.g. 'nics=[\"a\",\"b\"]')")
	cmd.Flags().StringArrayVar(&v.varFiles, "var-file", nil, "read variable values from an HCL file of NAME = VALUE lines, a JSON object, or a YAML mapping with !vault values; a file may be encrypted whole with ansible-vault (repeatable)")
}

func (v *varFlags) inputs(env []string, allowMissing bool) config.Inputs {
	return config.Inputs{Vars: v.vars, VarFiles: v.varFiles, Environ: env, AllowMissing: allowMissing}
}

func (a *app) validateCmd() *cobra.Command {
	var vf varFlags
	var invPaths []string
	cmd := &cobra.Command{
		Use:   "validate [flags] RUNBOOK...",
		Short: "Check runbooks without touching any host",
		Long: `Decodes every file of each runbook (a .hcl or .hcl.json file, or a directory of them) and checks everything
that can be checked without hosts: syntax, blocks and arguments, module arguments against each
module's schema (with placeholder host values), references to variables, locals and tasks,
depends_on and notify targets, dependency cycles and duplicate names. Every problem is reported,
each at its source line. With -i, the plays' host patterns are also matched against the inventory.
Variables without a value are treated as unknown, so validate needs no --var.`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			invalid := false
			var summaries []map[string]any
			for _, path := range args {
				keys, kd := a.vaultKeyring(cmd, false)
				if kd != nil {
					a.report(nil, hcl.Diagnostics{kd})
					return fail(ExitInvalid)
				}
				in := vf.inputs(a.env, true)
				in.Vault = keys
				load, what := config.Load, "valid"
				if config.IsModule(path) {
					load, what = config.LoadModule, "valid module"
				}
				rb, diags := load(path, in)
				files := map[string]*hcl.File{}
				if rb != nil {
					files = rb.Files
				}
				if !diags.HasErrors() && len(invPaths) > 0 {
					inv, idiags := a.loadInventory(cmd, invPaths)
					diags = append(diags, idiags...)
					if inv != nil {
						diags = append(diags, plan.CheckPlayHosts(rb, inv)...)
						var hosts []*inventory.Host
						for _, p := range rb.Plays {
							sel, _ := inv.Select(p.Hosts)
							hosts = append(hosts, sel...)
						}
						diags = append(diags, connectionDiags(hosts)...)
					}
				}
				if a.report(files, diags) {
					invalid = true
					continue
				}
				plays, tasks, handlers := counts(rb)
				if what != "valid" {
					plays = 0
				}
				if a.output == "json" {
					sum := map[string]any{"type": "summary", "runbook": path, "valid": true,
						"plays": plays, "tasks": tasks, "handlers": handlers, "warnings": len(diags)}
					if what != "valid" {
						sum["module"] = true
					}
					summaries = append(summaries, sum)
					continue
				}
				if what != "valid" {
					fmt.Fprintf(a.stdout, "%s: %s (%s, %s)\n", path, what, plural(tasks, "task"), plural(handlers, "handler"))
					continue
				}
				fmt.Fprintf(a.stdout, "%s: %s (%s, %s, %s)\n", path, what, plural(plays, "play"), plural(tasks, "task"), plural(handlers, "handler"))
			}
			enc := json.NewEncoder(a.stdout)
			for _, s := range summaries {
				_ = enc.Encode(s)
			}
			if invalid {
				return fail(ExitInvalid)
			}
			return nil
		},
	}
	vf.add(cmd)
	cmd.Flags().StringArrayVarP(&invPaths, "inventory", "i", nil, "also check host patterns against this inventory (repeatable)")
	inventoryTimeoutFlag(cmd)
	a.outputFlag(cmd, "text", "json")
	return cmd
}

func counts(rb *config.Runbook) (plays, tasks, handlers int) {
	for _, p := range rb.Plays {
		tasks += len(p.Tasks)
		handlers += len(p.Handlers)
	}
	return len(rb.Plays), tasks, handlers
}

func plural(n int, word string) string {
	if n == 1 {
		return fmt.Sprintf("1 %s", word)
	}
	return fmt.Sprintf("%d %ss", n, word)
}
