package view

import (
	"fmt"
	"io"
	"sort"
	"strings"
	"sync"

	"github.com/fatih/color"

	"github.com/runbook/runbook/engine/run"
)

// driftDiffLines bounds each diff in the drift report; the full diff is in --diff output
// and in the history.
const driftDiffLines = 12

// Drift collects what drifts during a check and writes the drift report after the recap:
// per drifting host, the tasks that drift with whether they need a reboot, and their diffs.
// The human view feeds one in a check (Human.DriftReport) and writes it in its Footer.
type Drift struct {
	Color bool

	mu sync.Mutex
	rs []run.Result
}

var _ run.Observer = (*Drift)(nil)

func (d *Drift) HostStarted(string)         {}
func (d *Drift) HostDone(string, run.Stats) {}

// TaskDone keeps drifting results.
func (d *Drift) TaskDone(r run.Result) {
	if r.Status != run.Drift {
		return
	}
	r = forPeople(r)
	d.mu.Lock()
	d.rs = append(d.rs, r)
	d.mu.Unlock()
}

// Len is the number of drifting results seen.
func (d *Drift) Len() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.rs)
}

// Write prints the report; it prints nothing when nothing drifted.
func (d *Drift) Write(w io.Writer) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if len(d.rs) == 0 {
		return nil
	}
	h := &Human{Color: d.Color}
	byHost := map[string][]run.Result{}
	for _, r := range d.rs {
		byHost[r.Host] = append(byHost[r.Host], r)
	}
	hosts := make([]string, 0, len(byHost))
	for n := range byHost {
		hosts = append(hosts, n)
	}
	sort.Strings(hosts)
	var b strings.Builder
	fmt.Fprintf(&b, "\nDRIFT (%s)\n", countNoun(len(hosts), "host"))
	for _, host := range hosts {
		rs := byHost[host]
		names := make([]string, len(rs))
		nameW, modW := len("TASK"), len("MODULE")
		for i, r := range rs {
			names[i] = r.Task
			if r.Handler {
				names[i] = "handler " + names[i]
			}
			if r.Item != "" {
				names[i] += " [" + r.Item + "]"
			}
			nameW, modW = max(nameW, len(names[i])), max(modW, len(r.Module))
		}
		fmt.Fprintf(&b, "  %s: %s\n", h.hostTag(host), countNoun(len(rs), "task"))
		fmt.Fprintf(&b, "    %-*s  %-*s  %s\n", nameW, "TASK", modW, "MODULE", "REBOOT_REQUIRED")
		for i, r := range rs {
			reboot := "no"
			if r.RebootRequired {
				reboot = h.paint("yes", color.FgYellow)
			}
			fmt.Fprintf(&b, "    %-*s  %-*s  %s\n", nameW, names[i], modW, r.Module, reboot)
			switch {
			case r.Diff != nil:
				b.WriteString(indent(headLines(Unified(r.Diff), driftDiffLines), "      "))
			case r.Msg != "":
				b.WriteString(indent(headLines(r.Msg, 3), "      "))
			}
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func countNoun(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}

// headLines keeps the first n lines of s and says how many more there were.
func headLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = append(lines[:n], fmt.Sprintf("... (%d more lines)", len(lines)-n))
	}
	return strings.Join(lines, "\n")
}
