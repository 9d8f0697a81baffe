// Package report reads the run history back for people and machines: each host's state in
// its last run with what drifts, drift over the last runs, the tasks that drift most, as
// text, JSON or a self-contained HTML page; and it writes a run's outcome as a Prometheus
// textfile for node_exporter.
package report

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/runbook/runbook/engine/history"
	"github.com/runbook/runbook/engine/view"
	"github.com/runbook/runbook/internal/termsafe"
	"github.com/runbook/runbook/modules"
)

// DefaultRuns is how many runs the drift history and the trend cover without --runs.
const DefaultRuns = 20

// Options say what to read.
type Options struct {
	Filter history.Filter
	// Runs is how many of the last runs the drift history and trend cover (0: DefaultRuns).
	Runs int
	// Top is how many of the most drifting tasks to list (0: none).
	Top int
	// Now stamps the report; nil means time.Now.
	Now func() time.Time
}

// Report is everything a report shows.
type Report struct {
	GeneratedAt time.Time `json:"generated_at"`
	History     string    `json:"history"`
	Filter      Filter    `json:"filter"`
	Summary     Summary   `json:"summary"`
	// Hosts is each host's last run, by name.
	Hosts []Host `json:"hosts"`
	// Runs are the last runs, oldest first, with how many hosts were in each state.
	Runs []RunPoint `json:"runs"`
	// DriftHistory is per host its status in each of Runs.
	DriftHistory []HostHistory `json:"drift_history"`
	// Top lists the tasks that drifted most over Runs.
	Top []history.TaskCount `json:"top,omitempty"`
	// Fleet is the fleet run the report was selected by (Filter.Label): its runs as one.
	Fleet *Fleet `json:"fleet,omitempty"`
}

// Filter is the report's filter as given.
type Filter struct {
	Runbook string   `json:"runbook,omitempty"`
	Hosts   []string `json:"hosts,omitempty"`
	Label   string   `json:"label,omitempty"`
	Runs    int      `json:"runs"`
}

// Summary counts hosts by their state in a run (the report's summary: each host's last
// run). A host whose check could not predict a task (unknown) is not in sync: it is
// counted apart, as the history ranks it (docs/compliance.md).
type Summary struct {
	Hosts       int `json:"hosts"`
	InSync      int `json:"in_sync"`
	Drifting    int `json:"drifting"`
	Unknown     int `json:"unknown"`
	Failed      int `json:"failed"`
	Unreachable int `json:"unreachable"`
}

func (s *Summary) add(status string) {
	s.Hosts++
	switch status {
	case history.HostUnreachable:
		s.Unreachable++
	case history.HostFailed:
		s.Failed++
	case history.HostDrift:
		s.Drifting++
	case history.HostUnknown:
		s.Unknown++
	default:
		s.InSync++
	}
}

// RunRef points at a run.
type RunRef struct {
	Run  int64     `json:"run"`
	When time.Time `json:"when"`
}

// Host is one host's state in its last run.
type Host struct {
	Host           string         `json:"host"`
	Run            int64          `json:"run"`
	Runbook        string         `json:"runbook"`
	When           time.Time      `json:"when"`
	Mode           string         `json:"mode"`
	Status         string         `json:"status"`
	Counts         history.Counts `json:"counts"`
	RebootRequired bool           `json:"reboot_required"`
	// FirstDrifted is the first run of the host's current drift streak.
	FirstDrifted *RunRef `json:"first_drifted,omitempty"`
	// Drift are the tasks that drifted in the last run; Failed those that failed or found
	// the host unreachable, a change the host rolled back among them (its Transaction says
	// so).
	Drift  []Task `json:"drift"`
	Failed []Task `json:"failed"`
	// RolledBack are the other tasks of the last run whose change the host rolled back: a
	// transaction an earlier run left pending (it crashed, the host rebooted), rolled back
	// when a helper started and reported as a change.
	RolledBack []Task `json:"rolled_back,omitempty"`
	// Warnings are the tasks of the last run that carry warnings (advice such as a PCIe slot
	// narrower than its card's ports), each with its Warnings.
	Warnings []Task `json:"warnings,omitempty"`
	// NICs are the hardware NICs the last facts task of the last run found: driver,
	// versions, bus, PCIe link, SR-IOV (a runbook with a facts task that gathers "nics").
	NICs []NIC `json:"nics,omitempty"`
}

// NIC is one row of a host's NIC table.
type NIC = history.NIC

// Task is one drifting or failed task of a host, or a change the host rolled back.
type Task struct {
	Play           string `json:"play"`
	Task           string `json:"task"`
	Module         string `json:"module"`
	Item           string `json:"item,omitempty"`
	Status         string `json:"status"`
	Msg            string `json:"msg,omitempty"`
	Diff           string `json:"diff,omitempty"`
	RebootRequired bool   `json:"reboot_required"`
	// Transaction is the transaction the task's network change ran in: how it ended, what
	// a rollback restored and what its verification found.
	Transaction *view.Txn `json:"transaction,omitempty"`
	Warnings    []string  `json:"warnings,omitempty"`

	txn *modules.Transaction
	// Word and Lines are for people (forPeople): the status word ("rolled back" for a
	// change the host rolled back) and the transaction's lines (view.TransactionLines).
	Word  string   `json:"-"`
	Lines []string `json:"-"`
}

func taskOf(t history.TaskResult) Task {
	x := Task{Play: t.Play, Task: t.Task, Module: t.Module, Item: t.Item, Status: t.Status, Msg: t.Msg,
		RebootRequired: t.RebootRequired, Transaction: view.TxnOf(t.Transaction), Warnings: t.Warnings, txn: t.Transaction}
	if t.Diff != nil {
		x.Diff = view.Unified(t.Diff)
	}
	return x
}

// Name is the task's name with its for_each key.
func (t Task) Name() string {
	if t.Item != "" {
		return t.Task + " [" + t.Item + "]"
	}
	return t.Task
}

// RunPoint is one run in the trend, or one fleet run: the runs recorded under one
// --run-label of one runbook, shown as one point (as Fleet combines them).
type RunPoint struct {
	// Run is the run's id; for a fleet run, its first counted run's.
	Run int64 `json:"run"`
	// Label is the fleet run's label, "" for a run without one; RunIDs are the runs the
	// point counts, oldest first (a fleet run's superseded shard runs left out).
	Label  string  `json:"label,omitempty"`
	RunIDs []int64 `json:"run_ids"`
	// When is the (first) start.
	When     time.Time `json:"when"`
	Mode     string    `json:"mode"`
	Runbook  string    `json:"runbook"`
	ExitCode int       `json:"exit_code"`
	Finished bool      `json:"finished"`
	// Summary counts each host once: a host in two runs of a fleet run by its newest.
	Summary
}

// Name is how the text form lists the point: the run's id, or the fleet run's label
// quoted.
func (p RunPoint) Name() string {
	if p.Label == "" {
		return fmt.Sprint(p.Run)
	}
	return strconv.Quote(p.Label)
}

// short is the point's name under its bar in the chart: a label's first 8 characters.
func (p RunPoint) short() string {
	if p.Label == "" {
		return fmt.Sprint(p.Run)
	}
	if r := []rune(p.Label); len(r) > 8 {
		return string(r[:7]) + "…"
	}
	return p.Label
}

// title names the point in full, as the chart's tooltip does.
func (p RunPoint) title() string {
	if p.Label == "" {
		return fmt.Sprintf("run %d", p.Run)
	}
	ids := make([]string, len(p.RunIDs))
	for i, id := range p.RunIDs {
		ids[i] = fmt.Sprint(id)
	}
	return fmt.Sprintf("fleet run %s (runs %s)", p.Label, strings.Join(ids, ", "))
}

// trendPoints reads the last n points of the trend, oldest first (pointOf, their Summary
// still empty): a run
// without a label alone, the runs of one label and runbook together (a fleet run's shards).
// A fleet run counts as one of the n, however many runs it has.
func trendPoints(ctx context.Context, s history.Store, f history.Filter, n int) ([]RunPoint, error) {
	type key struct {
		runbook, label string
		id             int64 // a run without a label
	}
	keyOf := func(r history.Run) key {
		if r.Label == "" {
			return key{id: r.ID}
		}
		return key{runbook: r.Runbook, label: r.Label}
	}
	// The newest runs until n points are seen or the history ends, reading more at a time
	// while fleet runs fill the rows.
	var keys []key
	alone := map[int64]history.Run{}
	for limit := n * 4; ; limit *= 2 {
		runs, err := s.Runs(ctx, f, limit)
		if err != nil {
			return nil, err
		}
		keys = keys[:0]
		seen := map[key]bool{}
		for _, r := range runs {
			k := keyOf(r)
			if seen[k] {
				continue
			}
			if len(keys) == n {
				break
			}
			seen[k] = true
			keys = append(keys, k)
			if k.id != 0 {
				alone[k.id] = r
			}
		}
		if len(keys) == n || len(runs) < limit {
			break
		}
	}
	points := make([]RunPoint, 0, len(keys))
	for _, k := range keys {
		if k.id != 0 {
			points = append(points, pointOf([]history.Run{alone[k.id]}))
			continue
		}
		// Every run of the fleet run, also those older than the rows read above, and those
		// without the hosts asked for: which of a shard's runs counts is the fleet run's
		// (its last), whatever hosts it ran; HostRuns narrows to the hosts.
		fr := f
		fr.Runbook, fr.Label, fr.Hosts = k.runbook, k.label, nil
		runs, err := s.Runs(ctx, fr, 0)
		if err != nil {
			return nil, err
		}
		points = append(points, pointOf(runs))
	}
	// Oldest first, by each point's first counted run (a fleet run's superseded shard runs
	// do not place it), the run the point shows.
	sort.Slice(points, func(i, j int) bool { return points[i].Run < points[j].Run })
	return points, nil
}

// pointOf is the trend's point of runs (trendPoints), its Summary still empty.
func pointOf(runs []history.Run) RunPoint {
	r := runs[0]
	if r.Label == "" {
		return RunPoint{Run: r.ID, RunIDs: []int64{r.ID}, When: r.StartedAt, Mode: r.Mode, Runbook: r.Runbook,
			ExitCode: r.ExitCode, Finished: r.Finished()}
	}
	fl := fleetOf(r.Label, runs)
	p := RunPoint{Label: r.Label, When: fl.StartedAt, Mode: r.Mode, Runbook: r.Runbook, ExitCode: fl.ExitCode,
		Finished: fl.Finished}
	for _, fr := range fl.Runs {
		p.RunIDs = append(p.RunIDs, fr.Run)
		if fr.Mode != p.Mode {
			p.Mode = "mixed"
		}
	}
	slices.Sort(p.RunIDs)
	p.Run = p.RunIDs[0]
	return p
}

// HostHistory is a host's status in each run of the report's Runs ("" where the host was
// not part of the run).
type HostHistory struct {
	Host     string   `json:"host"`
	Drifted  int      `json:"drifted"`
	Runs     int      `json:"runs"`
	Statuses []string `json:"statuses"`
}

// Build reads the report from the store.
func Build(ctx context.Context, s history.Store, o Options) (*Report, error) {
	now := time.Now
	if o.Now != nil {
		now = o.Now
	}
	if o.Runs <= 0 {
		o.Runs = DefaultRuns
	}
	f := o.Filter
	rep := &Report{GeneratedAt: now(), History: s.Location(), Filter: Filter{Runbook: f.Runbook, Hosts: f.Hosts, Label: f.Label, Runs: o.Runs},
		Hosts: []Host{}, Runs: []RunPoint{}, DriftHistory: []HostHistory{}}
	if f.Runbook != "" {
		rep.Filter.Runbook = history.RunbookKey(f.Runbook)
	}

	if f.Label != "" {
		fleet, err := buildFleet(ctx, s, f.Label, f.Runbook)
		if err != nil {
			return nil, err
		}
		rep.Fleet = fleet
	}

	latest, err := s.Latest(ctx, f)
	if err != nil {
		return nil, err
	}
	first, err := s.FirstDrifted(ctx, f)
	if err != nil {
		return nil, err
	}
	for _, hr := range latest {
		h := Host{Host: hr.Host.Host, Run: hr.Run.ID, Runbook: hr.Run.Runbook, When: hr.Run.StartedAt, Mode: hr.Run.Mode,
			Status: hr.Host.Status, Counts: hr.Host.Counts, RebootRequired: hr.Host.RebootRequired, Drift: []Task{}, Failed: []Task{}}
		if r, ok := first[h.Host]; ok && h.Status == history.HostDrift {
			h.FirstDrifted = &RunRef{Run: r.ID, When: r.StartedAt}
		}
		if h.Counts.Drift+h.Counts.Failed+h.Counts.Unreachable > 0 {
			tasks, err := s.Tasks(ctx, hr.Run.ID, h.Host, "drift", "failed", "unreachable")
			if err != nil {
				return nil, err
			}
			for _, t := range tasks {
				x := taskOf(t)
				if t.Status == "drift" {
					h.Drift = append(h.Drift, x)
				} else {
					h.Failed = append(h.Failed, x)
				}
			}
		}
		rep.Summary.add(h.Status)
		rep.Hosts = append(rep.Hosts, h)
	}
	if err := addRolledBack(ctx, s, rep.Hosts, f.Hosts); err != nil {
		return nil, err
	}
	if err := addNotes(ctx, s, rep.Hosts, f.Hosts); err != nil {
		return nil, err
	}

	points, err := trendPoints(ctx, s, f, o.Runs)
	if err != nil {
		return nil, err
	}
	var ids []int64
	index := map[int64]int{}
	for i, p := range points {
		for _, id := range p.RunIDs {
			ids = append(ids, id)
			index[id] = i
		}
	}
	rep.Runs = append(rep.Runs, points...)
	hrs, err := s.HostRuns(ctx, ids, f.Hosts)
	if err != nil {
		return nil, err
	}
	byHost := map[string]*HostHistory{}
	for _, hr := range hrs {
		i := index[hr.Run.ID]
		hh := byHost[hr.Host.Host]
		if hh == nil {
			hh = &HostHistory{Host: hr.Host.Host, Statuses: make([]string, len(points))}
			byHost[hr.Host.Host] = hh
		}
		if hh.Statuses[i] != "" {
			// A host in two runs of one fleet run: its newest counts (HostRuns gives the
			// newest run first).
			continue
		}
		rep.Runs[i].add(hr.Host.Status)
		hh.Statuses[i] = hr.Host.Status
		hh.Runs++
		if hr.Host.Counts.Drift > 0 {
			hh.Drifted++
		}
	}
	for _, hh := range byHost {
		rep.DriftHistory = append(rep.DriftHistory, *hh)
	}
	sort.Slice(rep.DriftHistory, func(i, j int) bool { return rep.DriftHistory[i].Host < rep.DriftHistory[j].Host })

	if o.Top > 0 {
		rep.Top, err = s.TopDrift(ctx, ids, f.Hosts, o.Top)
		if err != nil {
			return nil, err
		}
	}
	return rep, nil
}

// addRolledBack adds to each host the tasks of its last run whose change the host rolled
// back and that are not among its failed ones, in one query for all hosts.
func addRolledBack(ctx context.Context, s history.Store, hosts []Host, only []string) error {
	last := map[string]int64{}
	var ids []int64
	for _, h := range hosts {
		if !slices.Contains(ids, h.Run) {
			ids = append(ids, h.Run)
		}
		last[h.Host] = h.Run
	}
	tasks, err := s.TransactionTasks(ctx, ids, only)
	if err != nil {
		return err
	}
	byHost := map[string][]Task{}
	for _, t := range tasks {
		if last[t.Host] != t.RunID || !view.RolledBack(t.Transaction) {
			continue
		}
		switch t.Status {
		case history.HostFailed, history.HostUnreachable, history.HostDrift:
			continue // listed already
		}
		byHost[t.Host] = append(byHost[t.Host], taskOf(t))
	}
	for i := range hosts {
		hosts[i].RolledBack = byHost[hosts[i].Host]
	}
	return nil
}

// addNotes adds to each host the tasks of its last run that carry warnings and the NICs its
// last facts task found, in one query for all hosts.
func addNotes(ctx context.Context, s history.Store, hosts []Host, only []string) error {
	last := map[string]int64{}
	var ids []int64
	for _, h := range hosts {
		if !slices.Contains(ids, h.Run) {
			ids = append(ids, h.Run)
		}
		last[h.Host] = h.Run
	}
	tasks, err := s.NoteTasks(ctx, ids, only)
	if err != nil {
		return err
	}
	warned := map[string][]Task{}
	nics := map[string][]NIC{}
	for _, t := range tasks {
		if last[t.Host] != t.RunID {
			continue
		}
		if len(t.Warnings) > 0 {
			warned[t.Host] = append(warned[t.Host], taskOf(t))
		}
		if t.NICs != nil {
			nics[t.Host] = t.NICs // in order: the last one wins
		}
	}
	for i := range hosts {
		hosts[i].Warnings, hosts[i].NICs = warned[hosts[i].Host], nics[hosts[i].Host]
	}
	return nil
}

// forPeople returns a copy of the report for the text and HTML forms: every text in it that
// a host, a file or an inventory could have written is made safe to show (termsafe), names
// to stay on one line. JSON shows the report as it is.
func (r *Report) forPeople() *Report {
	line := termsafe.Line
	c := *r
	c.History, c.Filter.Runbook = line(r.History), line(r.Filter.Runbook)
	c.Filter.Hosts = mapStrings(r.Filter.Hosts, line)
	c.Filter.Label = line(r.Filter.Label)
	c.Fleet = r.Fleet.forPeople()
	c.Hosts = make([]Host, len(r.Hosts))
	for i, h := range r.Hosts {
		h.Host, h.Runbook, h.Mode, h.Status = line(h.Host), line(h.Runbook), line(h.Mode), line(h.Status)
		h.Drift, h.Failed, h.RolledBack = tasksForPeople(h.Drift), tasksForPeople(h.Failed), tasksForPeople(h.RolledBack)
		h.Warnings, h.NICs = tasksForPeople(h.Warnings), nicsForPeople(h.NICs)
		c.Hosts[i] = h
	}
	c.Runs = make([]RunPoint, len(r.Runs))
	for i, p := range r.Runs {
		p.Mode, p.Runbook, p.Label = line(p.Mode), line(p.Runbook), line(p.Label)
		c.Runs[i] = p
	}
	c.DriftHistory = make([]HostHistory, len(r.DriftHistory))
	for i, hh := range r.DriftHistory {
		hh.Host = line(hh.Host)
		c.DriftHistory[i] = hh
	}
	if r.Top != nil {
		c.Top = make([]history.TaskCount, len(r.Top))
		for i, t := range r.Top {
			t.Runbook, t.Play, t.Task, t.Module = line(t.Runbook), line(t.Play), line(t.Task), line(t.Module)
			c.Top[i] = t
		}
	}
	return &c
}

// tasksForPeople makes each task safe to show, and gives it its status word and its
// transaction's lines; the message of a change the host rolled back loses what the lines
// show (view.TransactionMessage).
func tasksForPeople(ts []Task) []Task {
	if ts == nil {
		return nil
	}
	out := make([]Task, len(ts))
	for i, t := range ts {
		t.Word = termsafe.Line(view.StatusWordOf(t.Status, t.txn))
		t.Lines = view.TransactionLines(t.txn)
		t.Msg = view.TransactionMessage(t.Msg, t.txn)
		t.Play, t.Task, t.Module, t.Item, t.Status = termsafe.Line(t.Play), termsafe.Line(t.Task), termsafe.Line(t.Module),
			termsafe.Line(t.Item), termsafe.Line(t.Status)
		t.Msg, t.Diff = termsafe.Text(t.Msg), termsafe.Text(t.Diff)
		t.Warnings = mapStrings(t.Warnings, termsafe.Text)
		out[i] = t
	}
	return out
}

// nicsForPeople makes every text of the NICs, which their host wrote, safe to show on one
// line.
func nicsForPeople(ns []NIC) []NIC {
	if ns == nil {
		return nil
	}
	out := make([]NIC, len(ns))
	for i, n := range ns {
		l := termsafe.Line
		n.Name, n.Kind, n.Driver, n.DriverVersion, n.FirmwareVersion = l(n.Name), l(n.Kind), l(n.Driver), l(n.DriverVersion), l(n.FirmwareVersion)
		n.BusInfo, n.Master, n.SRIOVPF = l(n.BusInfo), l(n.Master), l(n.SRIOVPF)
		out[i] = n
	}
	return out
}

func mapStrings(ss []string, f func(string) string) []string {
	if ss == nil {
		return nil
	}
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = f(s)
	}
	return out
}
