// Package plan decides what a run does: which hosts each play runs on and which of its tasks
// run, from the runbook, the inventory and the selection flags. It touches no host.
package plan

import (
	"fmt"
	"os"
	"slices"
	"sort"
	"strings"

	"github.com/hashicorp/hcl/v2"

	"github.com/runbook/runbook/engine/config"
	"github.com/runbook/runbook/inventory"
	"github.com/runbook/runbook/modules"
)

// Options are the selection flags of a run.
type Options struct {
	// Limit is a pattern further limiting every play's hosts, or "@FILE": the host names
	// in FILE, one per line (blank lines and # comments ignored), each of which must be in
	// the inventory.
	Limit    string
	Tags     []string // run only tasks with one of these tags (plus tasks tagged "always")
	SkipTags []string // never run tasks with one of these tags
	Task     string   // run only the task of this name
	// Only, when not nil, keeps just these hosts (exact names, e.g. those that failed in the
	// last run); it narrows Limit further.
	Only []string
	// WithDeps adds, to Task, the tasks it depends on (transitively), in their order.
	WithDeps bool
	// StartAt skips every task before the first task of this name, in runbook order
	// (earlier plays entirely).
	StartAt string
	Check   bool
}

// Always is the tag that selects a task whatever --tags says (unless --skip-tags names it).
const Always = "always"

// Plan is what a run will do.
type Plan struct {
	Plays []*Play
}

// Play is one play with its selected hosts and tasks.
type Play struct {
	Play  *config.Play
	Hosts []*inventory.Host
	Tasks []*config.Task // in execution order
}

// Build selects hosts and tasks. Problems that mean the user asked for something that does
// not exist (an unknown tag or task name, a malformed --limit) are errors: a run that quietly
// does nothing is worse than one that refuses.
func Build(rb *config.Runbook, inv *inventory.Inventory, opts Options) (*Plan, hcl.Diagnostics) {
	var diags hcl.Diagnostics
	errorf := func(summary, format string, args ...any) {
		diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: summary, Detail: fmt.Sprintf(format, args...)})
	}
	var limit map[string]bool
	if strings.HasPrefix(opts.Limit, "@") {
		names, err := readLimitFile(strings.TrimPrefix(opts.Limit, "@"), inv)
		if err != nil {
			errorf("Invalid --limit", "%s", err)
		} else {
			limit = map[string]bool{}
			for _, n := range names {
				limit[n] = true
			}
		}
	} else if opts.Limit != "" {
		hosts, err := inv.Select(opts.Limit)
		if err != nil {
			errorf("Invalid --limit", "%s", err)
		} else {
			limit = map[string]bool{}
			for _, h := range hosts {
				limit[h.Name] = true
			}
			if len(hosts) == 0 {
				errorf("No hosts match --limit", "The pattern %q selects no host of the inventory.", opts.Limit)
			}
		}
	}

	if opts.Only != nil {
		only := map[string]bool{}
		for _, n := range opts.Only {
			if limit == nil || limit[n] {
				only[n] = true
			}
		}
		limit = only
	}

	known := map[string]bool{Always: true}
	var taskNames []string
	taskFound := false
	for _, p := range rb.Plays {
		for _, t := range p.Tasks {
			taskNames = append(taskNames, t.Name)
			if t.Name == opts.Task {
				taskFound = true
			}
			for _, tag := range t.Tags {
				known[tag] = true
			}
		}
	}
	knownList := make([]string, 0, len(known))
	for t := range known {
		knownList = append(knownList, t)
	}
	sort.Strings(knownList)
	for _, flag := range []struct {
		name string
		tags []string
	}{{"--tags", opts.Tags}, {"--skip-tags", opts.SkipTags}} {
		for _, tag := range flag.tags {
			if !known[tag] {
				detail := fmt.Sprintf("%s names %q, but no task has that tag.", flag.name, tag)
				if s := modules.Suggest(tag, knownList); s != "" {
					detail += fmt.Sprintf(" Did you mean %q?", s)
				}
				errorf("Unknown tag", "%s Tags in this runbook: %s.", detail, strings.Join(knownList, ", "))
			}
		}
	}
	if opts.StartAt != "" && !slices.Contains(taskNames, opts.StartAt) {
		detail := fmt.Sprintf("--start-at-task names %q, but the runbook has no task of that name.", opts.StartAt)
		if s := modules.Suggest(opts.StartAt, taskNames); s != "" {
			detail += fmt.Sprintf(" Did you mean %q?", s)
		}
		errorf("Unknown task", "%s", detail)
	}
	if opts.WithDeps && opts.Task == "" {
		errorf("Invalid flags", "--with-deps adds the dependencies of --task; name the task with --task.")
	}
	// A rescue task runs only when a task of its block fails: it cannot be run alone, nor
	// be where a run starts (the block's tasks before it would not run).
	for _, p := range rb.Plays {
		for _, t := range p.Tasks {
			b := rescueOf(t)
			if b == nil {
				continue
			}
			for _, f := range []struct{ flag, name string }{{"--task", opts.Task}, {"--start-at-task", opts.StartAt}} {
				if f.name == t.Name {
					errorf("Invalid "+f.flag, "%q is in the rescue of %s %q: it runs only when a task of that %s fails on a host, so it cannot run without them. Name a task of the %s's main part, or select the %s by its tags.",
						t.Name, b.Kind(), b.Name, b.Kind(), b.Kind(), b.Kind())
				}
			}
		}
	}
	if opts.Task != "" && !taskFound {
		detail := fmt.Sprintf("--task names %q, but the runbook has no task of that name.", opts.Task)
		if s := modules.Suggest(opts.Task, taskNames); s != "" {
			detail += fmt.Sprintf(" Did you mean %q?", s)
		}
		errorf("Unknown task", "%s", detail)
	}
	if diags.HasErrors() {
		return nil, diags
	}

	pl := &Plan{}
	started := opts.StartAt == ""
	for _, p := range rb.Plays {
		hosts, err := inv.Select(p.Hosts)
		if err != nil {
			diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Invalid host pattern", Detail: err.Error(), Subject: p.HostsRange.Ptr()})
			continue
		}
		if len(hosts) == 0 {
			diags = append(diags, noHosts(p))
		}
		if limit != nil {
			kept := hosts[:0:0]
			for _, h := range hosts {
				if limit[h.Name] {
					kept = append(kept, h)
				}
			}
			hosts = kept
		}
		pp := &Play{Play: p, Hosts: hosts}
		wanted := map[string]bool{}
		if opts.Task != "" && opts.WithDeps && p.Task(opts.Task) != nil {
			addDeps(p, opts.Task, wanted)
		}
		chosen := map[*config.Task]bool{}
		opened := map[*config.Block]bool{}
		for _, t := range p.Order() {
			if t.Name == opts.StartAt {
				started = true
			}
			if !started {
				continue
			}
			if wanted[t.Name] || selected(t, opts) {
				chosen[t] = true
				// a block runs (with its rescue and always tasks) when a task of its
				// main part does
				for b := t.Block; b != nil; b = b.Parent {
					if t.SectionIn(b) == config.SectionMain {
						opened[b] = true
					}
				}
			}
		}
		for _, t := range p.Order() {
			if b := rescueOf(t); chosen[t] && b != nil && !opened[b] {
				diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagWarning, Summary: "Rescue task will not run",
					Detail: fmt.Sprintf("The selection (--tags, --skip-tags) takes %q, in the rescue of %s %q, but no task of the %s's main part: the rescue runs only when one of them fails, so it will not run.",
						t.Name, b.Kind(), b.Name, b.Kind())})
			}
		}
		for _, t := range p.Order() {
			if !chosen[t] && rescues(t, opened) && !skipped(t, opts) {
				// a block that runs keeps its rescue and always tasks
				chosen[t] = true
			}
			if chosen[t] {
				pp.Tasks = append(pp.Tasks, t)
			}
		}
		pl.Plays = append(pl.Plays, pp)
	}
	return pl, diags
}

// addDeps marks name and everything it depends on, transitively.
func addDeps(p *config.Play, name string, into map[string]bool) {
	if into[name] {
		return
	}
	into[name] = true
	if t := p.Task(name); t != nil {
		for _, d := range t.DependsOn {
			addDeps(p, d.Name, into)
		}
	}
}

// readLimitFile reads host names for --limit @FILE: one per line, blank lines and
// # comments ignored. A name the inventory does not have is an error.
func readLimitFile(path string, inv *inventory.Inventory) ([]string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	all := map[string]bool{}
	var allNames []string
	if hosts, err := inv.Select("all"); err == nil {
		for _, h := range hosts {
			all[h.Name] = true
			allNames = append(allNames, h.Name)
		}
	}
	var names, unknown []string
	for _, l := range strings.Split(string(b), "\n") {
		l = strings.TrimSpace(l)
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		if !all[l] {
			u := fmt.Sprintf("%q", l)
			if s := modules.Suggest(l, allNames); s != "" {
				u += fmt.Sprintf(" (did you mean %q?)", s)
			}
			unknown = append(unknown, u)
			continue
		}
		names = append(names, l)
	}
	switch {
	case len(unknown) > 0:
		return nil, fmt.Errorf("%s names hosts that are not in the inventory: %s", path, strings.Join(unknown, ", "))
	case len(names) == 0:
		return nil, fmt.Errorf("%s names no hosts", path)
	}
	return names, nil
}

// rescueOf returns the innermost block whose rescue section holds t, or nil.
func rescueOf(t *config.Task) *config.Block {
	for b := t.Block; b != nil; b = b.Parent {
		if t.SectionIn(b) == config.SectionRescue {
			return b
		}
	}
	return nil
}

// rescues reports whether t is in the rescue or always section of a block that runs.
func rescues(t *config.Task, opened map[*config.Block]bool) bool {
	for b := t.Block; b != nil; b = b.Parent {
		if opened[b] && t.SectionIn(b) != config.SectionMain {
			return true
		}
	}
	return false
}

func skipped(t *config.Task, opts Options) bool {
	for _, s := range opts.SkipTags {
		if slices.Contains(t.Tags, s) {
			return true
		}
	}
	return false
}

func selected(t *config.Task, opts Options) bool {
	if opts.Task != "" && t.Name != opts.Task {
		return false
	}
	for _, s := range opts.SkipTags {
		if slices.Contains(t.Tags, s) {
			return false
		}
	}
	if len(opts.Tags) == 0 || slices.Contains(t.Tags, Always) {
		return true
	}
	for _, tag := range opts.Tags {
		if slices.Contains(t.Tags, tag) {
			return true
		}
	}
	return false
}

// CheckPlayHosts warns about plays whose pattern selects no host of the inventory, for
// validate; Build gives the same warnings as it selects.
func CheckPlayHosts(rb *config.Runbook, inv *inventory.Inventory) hcl.Diagnostics {
	var diags hcl.Diagnostics
	for _, p := range rb.Plays {
		hosts, err := inv.Select(p.Hosts)
		switch {
		case err != nil:
			diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Invalid host pattern", Detail: err.Error(), Subject: p.HostsRange.Ptr()})
		case len(hosts) == 0:
			diags = append(diags, noHosts(p))
		}
	}
	return diags
}

func noHosts(p *config.Play) *hcl.Diagnostic {
	return &hcl.Diagnostic{
		Severity: hcl.DiagWarning,
		Summary:  "Play matches no hosts",
		Detail:   fmt.Sprintf("play %q selects hosts %q, and no host of the inventory matches; it will do nothing.", p.Name, p.Hosts),
		Subject:  p.HostsRange.Ptr(),
	}
}
