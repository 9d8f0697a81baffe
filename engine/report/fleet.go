package report

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/runbook/runbook/engine/history"
	"github.com/runbook/runbook/internal/termsafe"
)

// Fleet is one fleet run: the runs recorded under one --run-label (the shards of a run
// split across controllers, or the regional controllers of one rollout), shown as one run.
// The report's Hosts, selected by the same label, are its hosts merged: each host's last
// run under the label.
type Fleet struct {
	Label string `json:"label"`
	// Runs are the runs that count: for each shard the last run recorded for it (a shard
	// run again, as a Job does with an evicted pod, counts once), by shard, then every run
	// that was not sharded, oldest first.
	Runs []FleetRun `json:"runs"`
	// Superseded are the earlier runs of a shard that a later run of the same shard
	// replaced, oldest first.
	Superseded []int64 `json:"superseded,omitempty"`
	// ShardCounts are the shard counts the runs were split into (one, normally; none when no
	// run was sharded). Missing are the shards of that count that have no run under the
	// label (only with one count).
	ShardCounts []int `json:"shard_counts,omitempty"`
	Missing     []int `json:"missing_shards,omitempty"`
	// Hosts is the number of hosts the counted runs recorded, Counts their task results
	// summed.
	Hosts  int            `json:"hosts"`
	Counts history.Counts `json:"counts"`
	// ExitCode is the worst of the counted runs' exit codes (failed, then unreachable, then
	// drift, then ok), -1 while any of them has not finished (or its controller died).
	ExitCode    int  `json:"exit_code"`
	Finished    bool `json:"finished"`
	Interrupted bool `json:"interrupted,omitempty"`
	// Complete says every shard has a finished run under the label.
	Complete bool `json:"complete"`
	// StartedAt is the first start of the counted runs, FinishedAt the last finish (zero
	// while any has not finished), DurationMS the span between them.
	StartedAt  time.Time `json:"started_at"`
	FinishedAt time.Time `json:"finished_at,omitzero"`
	DurationMS int64     `json:"duration_ms"`
}

// FleetRun is one run of a fleet run.
type FleetRun struct {
	Run        int64          `json:"run"`
	Shard      *history.Shard `json:"shard,omitempty"`
	Runbook    string         `json:"runbook"`
	Mode       string         `json:"mode"`
	Controller string         `json:"controller"`
	StartedAt  time.Time      `json:"started_at"`
	FinishedAt time.Time      `json:"finished_at,omitzero"`
	ExitCode   int            `json:"exit_code"`
	Hosts      int            `json:"hosts"`
	Counts     history.Counts `json:"counts"`
}

// exitRank orders exit codes from best to worst as a fleet run combines them: ok, drift,
// unreachable, failed (the order run.Recap.ExitCode picks them in); any other code ranks
// worst of all.
func exitRank(code int) int {
	switch code {
	case 0:
		return 0
	case 4:
		return 1
	case 3:
		return 2
	case 2:
		return 3
	}
	return 4
}

// WorstExitCode combines the exit codes of a fleet run's runs: -1 (not finished) if any
// is, else the worst by exitRank. No codes: 0.
func WorstExitCode(codes ...int) int {
	worst := 0
	for _, c := range codes {
		if c == -1 {
			return -1
		}
		if exitRank(c) > exitRank(worst) {
			worst = c
		}
	}
	return worst
}

// buildFleet reads the fleet run of label: the runs recorded under it (of the report's
// runbook, when it names one).
func buildFleet(ctx context.Context, s history.Store, label, runbook string) (*Fleet, error) {
	runs, err := s.Runs(ctx, history.Filter{Label: label, Runbook: runbook}, 0)
	if err != nil {
		return nil, err
	}
	return fleetOf(label, runs), nil
}

// fleetOf combines runs (any order) into their fleet run.
func fleetOf(label string, runs []history.Run) *Fleet {
	f := &Fleet{Label: label, Runs: []FleetRun{}}
	sort.Slice(runs, func(i, j int) bool { return runs[i].ID < runs[j].ID })
	// The last run of each shard counts; earlier ones were replaced.
	last := map[history.Shard]int64{}
	for _, r := range runs {
		if r.Shard != nil {
			last[*r.Shard] = r.ID
		}
	}
	counts := map[int]map[int]bool{} // shard count -> indexes with a run
	var codes []int
	f.Finished = true
	for _, r := range runs {
		if r.Shard != nil && last[*r.Shard] != r.ID {
			f.Superseded = append(f.Superseded, r.ID)
			continue
		}
		if r.Shard != nil {
			if counts[r.Shard.Count] == nil {
				counts[r.Shard.Count] = map[int]bool{}
			}
			counts[r.Shard.Count][r.Shard.Index] = true
		}
		f.Runs = append(f.Runs, FleetRun{Run: r.ID, Shard: r.Shard, Runbook: r.Runbook, Mode: r.Mode, Controller: r.Controller,
			StartedAt: r.StartedAt, FinishedAt: r.FinishedAt, ExitCode: r.ExitCode, Hosts: r.Hosts, Counts: r.Counts})
		f.Hosts += r.Hosts
		f.Counts.Add(r.Counts)
		codes = append(codes, r.ExitCode)
		f.Interrupted = f.Interrupted || r.Interrupted
		if f.StartedAt.IsZero() || r.StartedAt.Before(f.StartedAt) {
			f.StartedAt = r.StartedAt
		}
		if !r.Finished() {
			f.Finished = false
		} else if r.FinishedAt.After(f.FinishedAt) {
			f.FinishedAt = r.FinishedAt
		}
	}
	sort.SliceStable(f.Runs, func(i, j int) bool {
		a, b := f.Runs[i].Shard, f.Runs[j].Shard
		switch {
		case a == nil || b == nil:
			return a != nil && b == nil // sharded runs first, each kind in run order
		case a.Count != b.Count:
			return a.Count < b.Count
		}
		return a.Index < b.Index
	})
	f.ExitCode = WorstExitCode(codes...)
	if len(f.Runs) == 0 {
		f.Finished = false
	}
	if !f.Finished {
		f.FinishedAt = time.Time{}
		f.ExitCode = -1
	} else {
		f.DurationMS = f.FinishedAt.Sub(f.StartedAt).Milliseconds()
	}
	for n := range counts {
		f.ShardCounts = append(f.ShardCounts, n)
	}
	sort.Ints(f.ShardCounts)
	if len(f.ShardCounts) == 1 {
		n := f.ShardCounts[0]
		for i := 0; i < n; i++ {
			if !counts[n][i] {
				f.Missing = append(f.Missing, i)
			}
		}
	}
	f.Complete = f.Finished && len(f.Missing) == 0 && len(f.ShardCounts) <= 1
	return f
}

// forPeople is the fleet run with every text a controller or a history could have written
// made safe to show on one line.
func (f *Fleet) forPeople() *Fleet {
	if f == nil {
		return nil
	}
	c := *f
	c.Label = termsafe.Line(f.Label)
	c.Runs = make([]FleetRun, len(f.Runs))
	for i, r := range f.Runs {
		r.Runbook, r.Mode, r.Controller = termsafe.Line(r.Runbook), termsafe.Line(r.Mode), termsafe.Line(r.Controller)
		c.Runs[i] = r
	}
	return &c
}

// Status is the fleet run's state in a few words, for the text and HTML forms.
func (f *Fleet) Status() string {
	var parts []string
	switch {
	case len(f.Runs) == 0:
		return "no runs recorded under this label"
	case !f.Finished:
		parts = append(parts, "not finished")
	case f.Interrupted:
		parts = append(parts, "interrupted")
	default:
		parts = append(parts, "finished")
	}
	if len(f.Missing) > 0 {
		parts = append(parts, fmt.Sprintf("%d of %d shards missing", len(f.Missing), f.ShardCounts[0]))
	}
	if len(f.ShardCounts) > 1 {
		parts = append(parts, "shards of different counts under one label")
	}
	return strings.Join(parts, ", ")
}

// ShardName is a run's shard as text: "2/4", or "-" for a run that was not sharded.
func (r FleetRun) ShardName() string {
	if r.Shard == nil {
		return "-"
	}
	return fmt.Sprintf("%d/%d", r.Shard.Index, r.Shard.Count)
}

// Span is the fleet run's time from its first start to its last finish, for people.
func (f *Fleet) Span() string {
	if !f.Finished {
		return "not finished"
	}
	return (time.Duration(f.DurationMS) * time.Millisecond).String()
}

// MissingNames are the missing shards as "i/n".
func (f *Fleet) MissingNames() string {
	names := make([]string, len(f.Missing))
	for i, m := range f.Missing {
		names[i] = fmt.Sprintf("%d/%d", m, f.ShardCounts[0])
	}
	return strings.Join(names, " ")
}
