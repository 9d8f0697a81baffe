package cli

import (
	"encoding/json"
	"fmt"
	"strings"
	"text/tabwriter"

	"github.com/hashicorp/hcl/v2"
	"github.com/spf13/cobra"
	"github.com/zclconf/go-cty/cty"
	ctyjson "github.com/zclconf/go-cty/cty/json"

	"github.com/runbook/runbook/engine/diag"
	"github.com/runbook/runbook/modules"
)

func (a *app) modulesCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "modules [NAME]",
		Short: "List modules, or show one module's arguments and examples",
		Args:  cobra.MaximumNArgs(1),
		ValidArgsFunction: func(_ *cobra.Command, args []string, _ string) ([]string, cobra.ShellCompDirective) {
			if len(args) > 0 {
				return nil, cobra.ShellCompDirectiveNoFileComp
			}
			return modules.Names(), cobra.ShellCompDirectiveNoFileComp
		},
		RunE: func(_ *cobra.Command, args []string) error {
			if len(args) == 0 {
				return a.listModules()
			}
			m, ok := modules.Lookup(args[0])
			if !ok {
				detail := fmt.Sprintf("There is no module named %q.", args[0])
				if s := modules.Suggest(args[0], modules.Names()); s != "" {
					detail += fmt.Sprintf(" Did you mean %q?", s)
				}
				a.report(nil, hcl.Diagnostics{diag.Errorf("Unknown module", "%s Run `runbook modules` to list them.", detail)})
				return fail(ExitInvalid)
			}
			return a.showModule(m.Info())
		},
	}
	a.outputFlag(cmd, "text", "json")
	return cmd
}

func (a *app) listModules() error {
	infos := modules.All()
	if a.output == "json" {
		out := make([]map[string]string, 0, len(infos))
		for _, i := range infos {
			out = append(out, map[string]string{"name": i.Name, "family": i.Family, "summary": i.Summary})
		}
		return json.NewEncoder(a.stdout).Encode(out)
	}
	tw := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "MODULE\tFAMILY\tSUMMARY")
	for _, i := range infos {
		fmt.Fprintf(tw, "%s\t%s\t%s\n", i.Name, i.Family, i.Summary)
	}
	return tw.Flush()
}

type argDoc struct {
	Name      string          `json:"name"`
	Type      string          `json:"type"`
	Required  bool            `json:"required"`
	Default   json.RawMessage `json:"default,omitempty"`
	OneOf     []string        `json:"one_of,omitempty"`
	Sensitive bool            `json:"sensitive,omitempty"`
	Doc       string          `json:"doc"`
}

func (a *app) showModule(info modules.Info) error {
	var args []argDoc
	for _, arg := range info.Schema.Args {
		d := argDoc{Name: arg.Name, Type: modules.TypeName(arg.Type), Required: arg.Required, OneOf: arg.OneOf, Sensitive: arg.Sensitive, Doc: arg.Doc}
		if arg.Default != cty.NilVal {
			if b, err := ctyjson.Marshal(arg.Default, arg.Default.Type()); err == nil {
				d.Default = b
			}
		}
		args = append(args, d)
	}
	if a.output == "json" {
		type ret struct {
			Name string `json:"name"`
			Type string `json:"type"`
			Doc  string `json:"doc"`
		}
		var rets []ret
		for _, r := range info.Returns {
			rets = append(rets, ret{r.Name, modules.TypeName(r.Type), r.Doc})
		}
		return json.NewEncoder(a.stdout).Encode(map[string]any{
			"name": info.Name, "family": info.Family, "summary": info.Summary, "description": info.Description,
			"arguments": args, "exactly_one_of": info.Schema.ExactlyOneOf, "at_most_one_of": info.Schema.AtMostOneOf,
			"returns": rets, "examples": info.Examples,
		})
	}
	w := a.stdout
	fmt.Fprintf(w, "%s — %s\n\n%s\n\nARGUMENTS\n", info.Name, info.Summary, info.Description)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	for _, d := range args {
		req := "optional"
		switch {
		case d.Required:
			req = "required"
		case d.Default != nil:
			req = "default " + string(d.Default)
		}
		doc := d.Doc
		if len(d.OneOf) > 0 {
			doc += " One of: " + strings.Join(d.OneOf, ", ") + "."
		}
		if d.Sensitive {
			doc += " (sensitive)"
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\n", d.Name, d.Type, req, doc)
	}
	_ = tw.Flush()
	for _, set := range info.Schema.ExactlyOneOf {
		fmt.Fprintf(w, "\n  Exactly one of: %s.", strings.Join(set, ", "))
	}
	for _, set := range info.Schema.AtMostOneOf {
		fmt.Fprintf(w, "\n  At most one of: %s.", strings.Join(set, ", "))
	}
	if len(info.Schema.ExactlyOneOf)+len(info.Schema.AtMostOneOf) > 0 {
		fmt.Fprintln(w)
	}
	if len(info.Returns) > 0 {
		fmt.Fprintf(w, "\nRETURNS (task[\"name\"].<field>)\n")
		tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		for _, r := range info.Returns {
			fmt.Fprintf(tw, "  %s\t%s\t%s\n", r.Name, modules.TypeName(r.Type), r.Doc)
		}
		_ = tw.Flush()
	}
	for _, ex := range info.Examples {
		fmt.Fprintf(w, "\nEXAMPLE: %s\n\n", ex.Title)
		for _, line := range strings.Split(strings.TrimRight(ex.HCL, "\n"), "\n") {
			fmt.Fprintf(w, "  %s\n", line)
		}
	}
	return nil
}
