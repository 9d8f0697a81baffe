package cli

import (
	"fmt"
	"io"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/spf13/cobra"

	"github.com/runbook/runbook/engine/diag"
)

func (a *app) inventoryCmd() *cobra.Command {
	var (
		paths    []string
		list     bool
		host     string
		graph    bool
		withVars bool
	)
	cmd := &cobra.Command{
		Use:   "inventory -i INVENTORY [--list | --host NAME | --graph [--vars]]",
		Short: "Show an inventory as runbook reads it (Ansible-shaped JSON, one host, or a tree)",
		Long: `Reads an inventory (HCL, Ansible INI or YAML, an executable printing Ansible's --list JSON, or a
directory of them, with group_vars/ and host_vars/) and prints it: --list as Ansible-shaped JSON
(_meta.hostvars merged per host), --host NAME as one host's merged vars, --graph as a tree.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			n := 0
			for _, b := range []bool{list, host != "", graph} {
				if b {
					n++
				}
			}
			if n > 1 {
				a.report(nil, hcl.Diagnostics{diag.Errorf("Conflicting options", "Use one of --list, --host and --graph.")})
				return fail(ExitInvalid)
			}
			inv, diags := a.loadInventory(cmd, paths)
			if a.report(nil, diags) {
				return fail(ExitInvalid)
			}
			switch {
			case host != "":
				if _, ok := inv.Host(host); !ok {
					a.report(nil, hcl.Diagnostics{diag.Errorf("Unknown host", "The inventory has no host named %q.", host)})
					return fail(ExitInvalid)
				}
				b, err := inv.HostJSON(host)
				if err != nil {
					return err
				}
				fmt.Fprintln(a.stdout, string(b))
			case graph:
				// Graph escapes each name and value itself (termsafe.Line); escaping
				// the tree as a whole would keep the newlines in them.
				var b strings.Builder
				if err := inv.Graph(&b, withVars); err != nil {
					return err
				}
				_, err := io.WriteString(a.stdout, b.String())
				return err
			default:
				b, err := inv.ListJSON()
				if err != nil {
					return err
				}
				fmt.Fprintln(a.stdout, string(b))
			}
			return nil
		},
	}
	fl := cmd.Flags()
	fl.StringArrayVarP(&paths, "inventory", "i", nil, "inventory source (repeatable)")
	fl.BoolVar(&list, "list", false, "print every group and host as Ansible-shaped JSON (the default)")
	fl.StringVar(&host, "host", "", "print one host's merged variables")
	fl.BoolVar(&graph, "graph", false, "print the group tree")
	fl.BoolVar(&withVars, "vars", false, "with --graph: show variables too")
	inventoryTimeoutFlag(cmd)
	_ = cmd.MarkFlagRequired("inventory")
	return cmd
}
