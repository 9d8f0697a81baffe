package run

import (
	"time"

	"github.com/runbook/runbook/modules"
)

// Status is the outcome of one task on one host.
type Status string

// Statuses, in the order a recap lists them.
const (
	OK          Status = "ok"
	Changed     Status = "changed"
	Drift       Status = "drift"
	Unknown     Status = "unknown"
	Skipped     Status = "skipped"
	Failed      Status = "failed"
	Unreachable Status = "unreachable"
)

// Result is one task (or one for_each element of it) on one host.
type Result struct {
	Host     string
	Play     string
	Task     string
	Module   string
	Item     string // the for_each key, "" without for_each
	Handler  bool
	Status   Status
	Msg      string
	Diff     *modules.Diff
	Data     map[string]any
	Warnings []string
	// RebootRequired says the change takes full effect only after a reboot.
	RebootRequired bool
	Duration       time.Duration
}

// Stats counts one host's results.
type Stats struct {
	OK, Changed, Drift, Unknown, Skipped, Failed, Unreachable int
	RebootRequired                                            bool
}

func (s *Stats) add(st Status, n int) {
	switch st {
	case OK:
		s.OK += n
	case Changed:
		s.Changed += n
	case Drift:
		s.Drift += n
	case Unknown:
		s.Unknown += n
	case Skipped:
		s.Skipped += n
	case Failed:
		s.Failed += n
	case Unreachable:
		s.Unreachable += n
	}
}

// Recap is a whole run's outcome.
type Recap struct {
	Hosts    map[string]*Stats
	Duration time.Duration
	// Interrupted is set when the run was cancelled before it finished.
	Interrupted bool
	// Stopped says why the run stopped early because too many hosts failed
	// (max_fail_percentage); "" when it did not.
	Stopped string
}

// Exit codes, as documented for the CLI: the lowest non-zero that applies wins.
const (
	ExitOK          = 0
	ExitFailed      = 2
	ExitUnreachable = 3
	ExitDrift       = 4
)

// ExitCode summarises the recap.
func (r *Recap) ExitCode() int {
	failed, unreachable, drift := false, false, false
	for _, s := range r.Hosts {
		failed = failed || s.Failed > 0
		unreachable = unreachable || s.Unreachable > 0
		drift = drift || s.Drift > 0
	}
	switch {
	case failed || r.Interrupted:
		return ExitFailed
	case unreachable:
		return ExitUnreachable
	case drift:
		return ExitDrift
	}
	return ExitOK
}

// worse combines statuses: failed beats changed beats drift beats ok beats skipped.
func worse(a, b Status) Status {
	rank := map[Status]int{Skipped: 0, OK: 1, Unknown: 2, Drift: 3, Changed: 4, Failed: 5, Unreachable: 6}
	if rank[b] > rank[a] {
		return b
	}
	return a
}
