package run

import (
	"time"

	"github.com/runbook/runbook/modules"
	"github.com/zclconf/go-cty/cty"
)

// Status is the outcome of one task on one host: modules.Status, the one vocabulary the
// helper, the protocol, the engine, the views and the history share.
type Status = modules.Status

// The statuses under the engine's short names, typed; the values are modules' (the one
// list, modules.Statuses).
const (
	OK          Status = modules.StatusOK
	Changed     Status = modules.StatusChanged
	Drift       Status = modules.StatusDrift
	Unknown     Status = modules.StatusUnknown
	Skipped     Status = modules.StatusSkipped
	Failed      Status = modules.StatusFailed
	Unreachable Status = modules.StatusUnreachable
)

// Result is one task (or one for_each element of it) on one host.
type Result struct {
	Host    string
	Play    string
	Task    string
	Module  string
	Item    string // the for_each key, "" without for_each
	Handler bool
	Status  Status
	Msg     string
	Diff    *modules.Diff
	// Data is what the module registered: an object with one attribute per field its Info
	// declares in Returns, each of its declared type; cty.NilVal when it registered nothing.
	Data     cty.Value
	Warnings []string
	// RebootRequired says the change takes full effect only after a reboot.
	RebootRequired bool
	// Transaction is the transaction a network change ran in (modules/txn): confirmed,
	// rolled back, or unknown when the host was not reached again; nil for other changes.
	Transaction *modules.Transaction
	Duration    time.Duration
}

// Stats counts one host's results.
type Stats struct {
	OK, Changed, Drift, Unknown, Skipped, Failed, Unreachable int
	// Warnings counts the results that carry warnings, whatever their status.
	Warnings int
	// Rescued counts the blocks whose rescue took a failure back: the failed results
	// of their tasks are not in Failed.
	Rescued        int
	RebootRequired bool
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

// Exit codes of the runbook command, defined here once: a run's come from Recap.ExitCode,
// and the CLI uses ExitInvalid for a command that ran nothing. Where several apply, the
// lowest non-zero wins.
const (
	ExitOK          = 0 // everything ok; in check mode: in sync
	ExitInvalid     = 1 // invalid runbook, inventory or flags: nothing was run
	ExitFailed      = 2 // a task failed (or the run was interrupted)
	ExitUnreachable = 3 // a host was unreachable
	ExitDrift       = 4 // check mode found drift and nothing failed
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
