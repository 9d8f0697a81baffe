package cli

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/spf13/cobra"

	"github.com/runbook/runbook/engine/diag"
	"github.com/runbook/runbook/engine/history"
	"github.com/runbook/runbook/engine/report"
	"github.com/runbook/runbook/modules/hostfs"
)

func (a *app) reportCmd() *cobra.Command {
	var (
		loc, runbook, htmlOut string
		label                 setString
		hosts                 []string
		runs, top             int
		diffs                 bool
	)
	cmd := &cobra.Command{
		Use:   "report [flags]",
		Short: "Show the hosts' compliance from the run history",
		Long: `Reads the history that exec and check keep and shows each host's last run: when, in which
mode, its status and counts, the tasks that drift (with --diff, their diffs) or fail, and since
which run a drifting host has drifted without a break. --runs N shows each host's status over the
last N runs; --top N the tasks that drifted most in them. --html FILE writes the same as one
self-contained page, with a trend chart. --run-label LABEL shows the runs recorded under that
label (the shards of one fleet run, see --shard) as one fleet run; --runs and the chart count
each label's runs as one run too. The history is --history,
else $RUNBOOK_HISTORY, else the default file that exec and check write.

  runbook report --runbook site.hcl --runs 14 --top 10
  runbook report --html /var/www/compliance/index.html`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			invalid := func(summary, format string, args ...any) error {
				a.report(nil, hcl.Diagnostics{diag.Errorf(summary, format, args...)})
				return fail(ExitInvalid)
			}
			if cmd.Flags().Changed("runs") && runs < 1 {
				return invalid("Invalid --runs", "--runs must be at least 1, not %d.", runs)
			}
			if top < 0 {
				return invalid("Invalid --top", "--top must not be negative.")
			}
			if label.set {
				if err := checkRunLabel(label.value); err != nil {
					return invalid("Invalid --run-label", "%s.", err)
				}
			}
			where, err := a.historyLocation(loc, false)
			if err != nil {
				return invalid("No history", "%s: name the history with --history PATH or $%s.", err, historyEnv)
			}
			if where == "" {
				return invalid("No history", "The history is off (%s). Name one with --history PATH.", historyEnv+"="+historyOff)
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), 2*time.Minute)
			defer cancel()
			store, err := history.Open(ctx, where, history.Options{})
			if errors.Is(err, history.ErrNotExist) {
				return invalid("No history", "There is no history at %s yet: exec and check record there (see --history).", where)
			}
			if err != nil {
				return invalid("Cannot open the history", "%s", err)
			}
			defer store.Close()
			rep, err := report.Build(ctx, store, report.Options{
				Filter: history.Filter{Runbook: runbook, Hosts: hosts, Label: label.value}, Runs: runs, Top: top})
			if err != nil {
				return invalid("Cannot read the history", "%s", err)
			}
			if htmlOut != "" {
				var buf bytes.Buffer
				if err := rep.HTML(&buf); err != nil {
					return err
				}
				if err := hostfs.WriteAtomic(htmlOut, buf.Bytes(), hostfs.Options{Mode: 0o644, UID: -1, GID: -1}); err != nil {
					return invalid("Cannot write the HTML report", "%s", err)
				}
				fmt.Fprintf(a.stderr, "report: wrote %s (%d hosts, %d runs)\n", htmlOut, len(rep.Hosts), len(rep.Runs))
				return nil
			}
			if a.output == "json" {
				return rep.JSON(a.stdout)
			}
			return rep.Text(a.stdout, report.TextOptions{History: cmd.Flags().Changed("runs"), Diffs: diffs})
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&loc, "history", "", "the history: a SQLite file or a postgres:// URL (default $"+historyEnv+", else the file exec and check write)")
	fl.StringVar(&runbook, "runbook", "", "only runs of this runbook (its path)")
	fl.StringArrayVar(&hosts, "host", nil, "only this host (repeatable)")
	label.typ = "LABEL"
	fl.Var(&label, "run-label", "only the runs recorded with this --run-label: the shards of one fleet run, shown as one (its runs, hosts merged, counts summed, the worst exit code, the span from first start to last finish)")
	fl.IntVar(&runs, "runs", report.DefaultRuns, "show each host's status over the last N runs")
	fl.IntVar(&top, "top", 0, "list the N tasks that drifted most over the runs")
	fl.BoolVar(&diffs, "diff", false, "show the diffs of drifting tasks")
	fl.StringVar(&htmlOut, "html", "", "write a self-contained HTML report to this file instead")
	a.outputFlag(cmd, "text", "json")
	return cmd
}
