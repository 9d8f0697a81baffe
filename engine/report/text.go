package report

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/runbook/runbook/engine/history"
)

// TextOptions choose the text report's sections.
type TextOptions struct {
	// History adds the drift history over the report's runs.
	History bool
	// Diffs shows the diffs of drifting tasks under each host.
	Diffs bool
}

const timeFormat = "2006-01-02 15:04"

// Text writes the report for people: a line per host with its last run, what drifts and
// fails there, then the fleet summary; with History the status of each host over the last
// runs; with Top the tasks that drift most.
func (r *Report) Text(w io.Writer, o TextOptions) error {
	r = r.forPeople()
	var b strings.Builder
	if r.Fleet != nil {
		r.Fleet.text(&b)
	}
	if len(r.Hosts) == 0 {
		fmt.Fprintf(&b, "no runs recorded in %s", r.History)
		if r.Filter.Runbook != "" || len(r.Filter.Hosts) > 0 || r.Filter.Label != "" {
			b.WriteString(" that match the filter")
		}
		b.WriteString("\n")
		_, err := io.WriteString(w, b.String())
		return err
	}
	tw := tabwriter.NewWriter(&b, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "HOST\tRUN\tWHEN\tMODE\tSTATUS\tOK\tCHANGED\tDRIFT\tFAILED\tUNREACHABLE\tDRIFTING SINCE")
	for _, h := range r.Hosts {
		since := "-"
		if h.FirstDrifted != nil {
			since = fmt.Sprintf("run %d (%s)", h.FirstDrifted.Run, h.FirstDrifted.When.Local().Format(timeFormat))
		}
		c := h.Counts
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\t%d\t%d\t%d\t%d\t%d\t%s\n", h.Host, h.Run, h.When.Local().Format(timeFormat), h.Mode,
			h.Status, c.OK, c.Changed, c.Drift, c.Failed, c.Unreachable, since)
	}
	tw.Flush()
	// What drifts and fails, and the warnings, under the table, host by host.
	for _, h := range r.Hosts {
		if len(h.Drift) == 0 && len(h.Failed) == 0 && len(h.RolledBack) == 0 && len(h.Warnings) == 0 {
			continue
		}
		fmt.Fprintf(&b, "\n%s (run %d):\n", h.Host, h.Run)
		for _, t := range h.Drift {
			line := "  drift   " + t.label()
			if t.RebootRequired {
				line += " [reboot required]"
			}
			b.WriteString(line + "\n")
			if o.Diffs && t.Diff != "" {
				b.WriteString(indentText(t.Diff, "      "))
			}
		}
		// A change the host rolled back reads "rolled back", with what the rollback
		// restored and found under it.
		for _, t := range append(h.Failed, h.RolledBack...) {
			msg := firstLine(t.Msg)
			fmt.Fprintf(&b, "  %-7s %s: %s\n", t.Word, t.label(), msg)
			for _, l := range t.Lines {
				b.WriteString("      " + l + "\n")
			}
		}
		for _, t := range h.Warnings {
			for _, w := range t.Warnings {
				fmt.Fprintf(&b, "  warning %s: %s\n", t.label(), strings.ReplaceAll(strings.TrimRight(w, "\n"), "\n", "\n      "))
			}
		}
	}
	s := r.Summary
	unknown := ""
	if s.Unknown > 0 {
		unknown = fmt.Sprintf(", %d unknown", s.Unknown)
	}
	fmt.Fprintf(&b, "\n%d hosts: %d in sync, %d drifting%s, %d failed, %d unreachable\n", s.Hosts, s.InSync, s.Drifting, unknown, s.Failed, s.Unreachable)

	if o.History && len(r.Runs) > 0 {
		ids := make([]string, len(r.Runs))
		for i, p := range r.Runs {
			ids[i] = p.Name()
		}
		fmt.Fprintf(&b, "\nDRIFT OVER THE LAST %d RUNS (oldest first: %s)\n", len(r.Runs), strings.Join(ids, " "))
		tw := tabwriter.NewWriter(&b, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "HOST\tDRIFTED\tRUNS")
		for _, hh := range r.DriftHistory {
			marks := make([]string, len(hh.Statuses))
			for i, st := range hh.Statuses {
				marks[i] = statusMark(st)
			}
			fmt.Fprintf(tw, "%s\t%d/%d\t%s\n", hh.Host, hh.Drifted, hh.Runs, strings.Join(marks, " "))
		}
		tw.Flush()
		b.WriteString("(. in sync  c changed  D drift  ? unknown  F failed  U unreachable  - not in the run)\n")
	}

	if len(r.Top) > 0 {
		fmt.Fprintf(&b, "\nTOP DRIFTING TASKS (last %d runs)\n", len(r.Runs))
		tw := tabwriter.NewWriter(&b, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "DRIFTED\tHOSTS\tTASK\tMODULE\tPLAY\tLAST RUN")
		for _, t := range r.Top {
			fmt.Fprintf(tw, "%d\t%d\t%s\t%s\t%s\t%d\n", t.Count, t.Hosts, t.Task, t.Module, t.Play, t.LastRun)
		}
		tw.Flush()
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// text writes the fleet run's block: its totals, then a line per run.
func (f *Fleet) text(b *strings.Builder) {
	fmt.Fprintf(b, "FLEET RUN %q: %s\n", f.Label, f.Status())
	if len(f.Runs) == 0 {
		b.WriteString("\n")
		return
	}
	end := "-"
	if f.Finished {
		end = f.FinishedAt.Local().Format(timeFormatSeconds)
	}
	c := f.Counts
	fmt.Fprintf(b, "  %d runs, %d hosts, exit code %d, from %s to %s (%s)\n", len(f.Runs), f.Hosts, f.ExitCode,
		f.StartedAt.Local().Format(timeFormatSeconds), end, f.Span())
	fmt.Fprintf(b, "  ok=%d changed=%d drift=%d unknown=%d failed=%d unreachable=%d skipped=%d\n", c.OK, c.Changed, c.Drift,
		c.Unknown, c.Failed, c.Unreachable, c.Skipped)
	tw := tabwriter.NewWriter(b, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "  SHARD\tRUN\tCONTROLLER\tMODE\tHOSTS\tEXIT\tSTARTED\tFINISHED")
	for _, r := range f.Runs {
		fin := "-"
		if !r.FinishedAt.IsZero() {
			fin = r.FinishedAt.Local().Format(timeFormatSeconds)
		}
		fmt.Fprintf(tw, "  %s\t%d\t%s\t%s\t%d\t%d\t%s\t%s\n", r.ShardName(), r.Run, r.Controller, r.Mode, r.Hosts, r.ExitCode,
			r.StartedAt.Local().Format(timeFormatSeconds), fin)
	}
	tw.Flush()
	if len(f.Missing) > 0 {
		fmt.Fprintf(b, "  missing: shard %s (no run recorded under this label)\n", f.MissingNames())
	}
	if len(f.Superseded) > 0 {
		ids := make([]string, len(f.Superseded))
		for i, id := range f.Superseded {
			ids[i] = fmt.Sprint(id)
		}
		fmt.Fprintf(b, "  superseded: run %s (a later run of the same shard counts)\n", strings.Join(ids, ", "))
	}
	b.WriteString("\n")
}

const timeFormatSeconds = "2006-01-02 15:04:05"

// label is the task's name with its module, as text lines show it.
func (t Task) label() string {
	if t.Module == "" {
		return t.Name()
	}
	return t.Name() + " (" + t.Module + ")"
}

func statusMark(st string) string {
	switch st {
	case history.HostOK:
		return "."
	case history.HostChanged:
		return "c"
	case history.HostDrift:
		return "D"
	case history.HostUnknown:
		return "?"
	case history.HostFailed:
		return "F"
	case history.HostUnreachable:
		return "U"
	}
	return "-"
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(strings.TrimSpace(s), "\n")
	return s
}

func indentText(s, pre string) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return pre + strings.Join(lines, "\n"+pre) + "\n"
}

// JSON writes the report as one indented JSON object.
func (r *Report) JSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}
