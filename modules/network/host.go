package network

import (
	"context"
	"fmt"
	"sort"
	"strings"

	"github.com/runbook/runbook/modules"
)

// persistOutcome is the persistent half of a bond or interface run.
type persistOutcome struct {
	backend  string
	drift    []string
	changes  []*stagedFile
	warnings []string
}

func (p *persistOutcome) files() []string {
	var out []string
	for _, x := range p.changes {
		out = append(out, x.path)
	}
	return out
}

// runPersist compares the backend's files with wants and, when applying, writes them and
// tells the backend's daemon.
func runPersist(ctx context.Context, f *fileTree, backend string, wants []ifWant, apply bool, tx *netTxn) (*persistOutcome, error) {
	out := &persistOutcome{backend: backendNone}
	if backend == backendNone {
		return out, nil
	}
	b, warns, err := chooseBackend(ctx, string(f.Root), backend)
	if err != nil {
		return nil, err
	}
	out.backend, out.warnings = b, warns
	plan, err := planPersist(ctx, f, b, wants)
	if err != nil {
		return nil, err
	}
	out.drift = plan.drift
	out.changes = plan.ws.changes()
	out.warnings = append(out.warnings, plan.warnings...)
	if len(out.drift) == 0 && len(out.changes) > 0 {
		// Edits that follow from no difference (a stale reference elsewhere) still count.
		for _, x := range out.changes {
			out.drift = append(out.drift, x.path+": needs an update")
		}
	}
	if !apply || len(out.changes) == 0 {
		return out, nil
	}
	if err := tx.files(f, out.changes); err != nil {
		return nil, err
	}
	if err := plan.ws.apply(); err != nil {
		return nil, err
	}
	if plan.reload != nil {
		out.warnings = append(out.warnings, plan.reload(ctx, out.changes)...)
	}
	return out, nil
}

// finish fills the parts of a result bond and interface share: status, message, diff and
// the persistent half's warnings. The caller puts the drift lists in its data.
func finish(res *modules.Result, apply bool, subject string, runtimeDrift []string, runtimeBefore, runtimeAfter string, p *persistOutcome) {
	res.Warnings = append(res.Warnings, p.warnings...)
	if len(runtimeDrift) == 0 && len(p.drift) == 0 {
		res.Status = modules.StatusOK
		if res.Msg == "" {
			res.Msg = subject + " is in sync"
		}
		return
	}
	res.Status = modules.DiffStatus(apply)
	var parts []string
	if len(runtimeDrift) > 0 {
		parts = append(parts, fmt.Sprintf("runtime: %s", strings.Join(runtimeDrift, "; ")))
	}
	if len(p.drift) > 0 {
		parts = append(parts, fmt.Sprintf("%s: %s", p.backend, strings.Join(p.drift, "; ")))
	}
	res.Msg = modules.Tense(apply, "changed ", "would change ") + subject + ": " + strings.Join(parts, " | ")
	var before, after strings.Builder
	if runtimeBefore != runtimeAfter {
		before.WriteString("# runtime:\n" + runtimeBefore)
		after.WriteString("# runtime:\n" + runtimeAfter)
	}
	before.WriteString(describeFiles(p.changes, false))
	after.WriteString(describeFiles(p.changes, true))
	res.Diff = &modules.Diff{Before: before.String(), After: after.String(),
		BeforeHeader: subject + " (before)", AfterHeader: subject + " (after)"}
}

// describeLinks renders the running state of links for a diff, one line each.
func describeLinks(names []string, links map[string]*kernelLink, extra func(*kernelLink) string) string {
	var b strings.Builder
	for _, n := range names {
		l := links[n]
		if l == nil {
			fmt.Fprintf(&b, "%s: absent\n", n)
			continue
		}
		state := "down"
		if l.Up {
			state = "up"
		}
		fmt.Fprintf(&b, "%s: %s, mtu %d", n, state, l.MTU)
		if l.Master != "" {
			fmt.Fprintf(&b, ", master %s", l.Master)
		}
		if x := extra(l); x != "" {
			b.WriteString(", " + x)
		}
		if len(l.Addrs) > 0 {
			addrs := append([]string(nil), l.Addrs...)
			sort.Strings(addrs)
			fmt.Fprintf(&b, ", addresses %s", strings.Join(addrs, " "))
		}
		b.WriteString("\n")
	}
	return b.String()
}
