// Package history keeps the record of runs: every exec and check, per host and per task,
// in a SQLite file (the default) or a PostgreSQL database shared by a team. Both backends
// share one schema and one implementation over database/sql; only the column types and the
// placeholders differ. The Recorder writes a run as it happens (one transaction per host as
// the host finishes), so an interrupted run keeps what finished; the query methods read it
// back for `runbook report` and for re-running the hosts that failed.
package history

import (
	"context"
	"errors"
	"net/url"
	"path/filepath"
	"strings"
	"time"

	"github.com/runbook/runbook/modules"

	"github.com/runbook/runbook/internal/statedir"
)

// Mode is how a run was made.
const (
	ModeExec  = "exec"
	ModeCheck = "check"
)

// Host statuses, from worst to best: a host's status in a run is the worst that applies
// (Counts.HostStatus). They are task statuses (modules.Status), as the history's text
// columns hold them. Unknown (check could not predict what apply would do) ranks below
// drift, which is known, and above changed and ok: a host with a task whose outcome nobody
// could predict is not known to be as wanted.
const (
	HostUnreachable = string(modules.StatusUnreachable)
	HostFailed      = string(modules.StatusFailed)
	HostDrift       = string(modules.StatusDrift)
	HostUnknown     = string(modules.StatusUnknown)
	HostChanged     = string(modules.StatusChanged)
	HostOK          = string(modules.StatusOK)
)

// Counts are task results by status.
type Counts struct {
	OK          int `json:"ok"`
	Changed     int `json:"changed"`
	Drift       int `json:"drift"`
	Unknown     int `json:"unknown"`
	Skipped     int `json:"skipped"`
	Failed      int `json:"failed"`
	Unreachable int `json:"unreachable"`
}

// Add adds o to c.
func (c *Counts) Add(o Counts) {
	c.OK += o.OK
	c.Changed += o.Changed
	c.Drift += o.Drift
	c.Unknown += o.Unknown
	c.Skipped += o.Skipped
	c.Failed += o.Failed
	c.Unreachable += o.Unreachable
}

// HostStatus is the status a host's counts stand for: the worst of its tasks' statuses in
// the order of the Host constants; skipped tasks count as nothing.
func (c Counts) HostStatus() string {
	switch {
	case c.Unreachable > 0:
		return HostUnreachable
	case c.Failed > 0:
		return HostFailed
	case c.Drift > 0:
		return HostDrift
	case c.Unknown > 0:
		return HostUnknown
	case c.Changed > 0:
		return HostChanged
	}
	return HostOK
}

// Run is one exec or check.
type Run struct {
	ID         int64     `json:"id"`
	StartedAt  time.Time `json:"started_at"`
	FinishedAt time.Time `json:"finished_at,omitzero"` // zero while running or when the controller died
	// Runbook is the runbook's absolute path (see RunbookKey).
	Runbook string `json:"runbook"`
	// RunbookSHA256 hashes the runbook's files (names and contents), so a report can tell
	// runs of different versions apart.
	RunbookSHA256 string   `json:"runbook_sha256"`
	User          string   `json:"user"`
	Controller    string   `json:"controller"` // the controller's host name
	Mode          string   `json:"mode"`
	Argv          []string `json:"argv"` // with secrets redacted
	// ExitCode is the run's exit code; -1 while running or when the controller died.
	ExitCode    int           `json:"exit_code"`
	Interrupted bool          `json:"interrupted,omitempty"`
	Hosts       int           `json:"hosts"`
	Counts      Counts        `json:"counts"`
	Duration    time.Duration `json:"-"`
	// Label is the label the runs of one fleet run share (--run-label): the shards of a
	// run split across controllers; "" for a run without one.
	Label string `json:"label,omitempty"`
	// Shard is the part of the fleet the run covered (--shard i/n); nil when it was not
	// sharded.
	Shard *Shard `json:"shard,omitempty"`
}

// Shard is a run's shard: the hosts whose name hashes to Index of Count (plan.ShardOf).
type Shard struct {
	Index int `json:"index"`
	Count int `json:"count"`
}

// Finished reports whether the run ended (normally or interrupted) and was recorded as such.
func (r *Run) Finished() bool { return !r.FinishedAt.IsZero() }

// HostResult is one host's outcome in one run.
type HostResult struct {
	RunID          int64         `json:"run_id"`
	Host           string        `json:"host"`
	Status         string        `json:"status"`
	Counts         Counts        `json:"counts"`
	RebootRequired bool          `json:"reboot_required,omitempty"`
	Duration       time.Duration `json:"-"`
}

// TaskResult is one task (or one for_each element) on one host in one run.
type TaskResult struct {
	RunID          int64         `json:"run_id"`
	Host           string        `json:"host"`
	Seq            int           `json:"seq"` // order on the host within the run
	Play           string        `json:"play"`
	Task           string        `json:"task"`
	Module         string        `json:"module"`
	Item           string        `json:"item,omitempty"`
	Handler        bool          `json:"handler,omitempty"`
	Status         string        `json:"status"`
	Msg            string        `json:"msg,omitempty"`
	Diff           *modules.Diff `json:"-"`
	RebootRequired bool          `json:"reboot_required,omitempty"`
	Changed        bool          `json:"changed"`
	// Transaction is the transaction the task's network change ran in (modules/txn): how
	// it ended, what a rollback restored; nil for other tasks.
	Transaction *modules.Transaction `json:"transaction,omitempty"`
	// Warnings are the result's warnings; NICs the hardware NICs of a facts task (NICsOf).
	Warnings []string      `json:"warnings,omitempty"`
	NICs     []NIC         `json:"nics,omitempty"`
	Duration time.Duration `json:"-"`
}

// HostRecord is a host's result with the task results to add beside it (Store.RecordHosts).
type HostRecord struct {
	Result HostResult
	Tasks  []TaskResult
}

// HostRun is a host's result together with the run it belongs to.
type HostRun struct {
	Run  Run
	Host HostResult
}

// Filter narrows queries. Empty fields match everything.
type Filter struct {
	// Runbook is a runbook path; it is compared as RunbookKey gives it.
	Runbook string
	// Hosts are exact host names.
	Hosts []string
	// Mode is ModeExec or ModeCheck.
	Mode string
	// Label is a run label (--run-label): only the runs of that fleet run.
	Label string
}

// TaskCount is how often one task drifted.
type TaskCount struct {
	Runbook string `json:"runbook"`
	Play    string `json:"play"`
	Task    string `json:"task"`
	Module  string `json:"module"`
	// Count is the number of (run, host) pairs where the task drifted; Hosts the number of
	// distinct hosts.
	Count   int   `json:"count"`
	Hosts   int   `json:"hosts"`
	LastRun int64 `json:"last_run"`
}

// Store keeps runs. SQLite and PostgreSQL implement it with the same schema.
type Store interface {
	// BeginRun records a run as started and returns its id; r.ID is ignored.
	BeginRun(ctx context.Context, r Run) (int64, error)
	// RecordHost writes a host's result and the given task results in one transaction. A
	// host seen again in the same run (a later play) has its result replaced and the new
	// tasks added.
	RecordHost(ctx context.Context, h HostResult, tasks []TaskResult) error
	// RecordHosts writes several hosts' results, as RecordHost does each, in one
	// transaction: all of them or, on an error, none.
	RecordHosts(ctx context.Context, hosts []HostRecord) error
	// FinishRun records the run's end: finished_at, exit code and counts.
	FinishRun(ctx context.Context, r Run) error

	// Runs returns the last n runs that match f, newest first (n <= 0: all).
	Runs(ctx context.Context, f Filter, n int) ([]Run, error)
	// Latest returns each host's result in its last run that matches f, by host name.
	Latest(ctx context.Context, f Filter) ([]HostRun, error)
	// HostRuns returns the host results of the given runs, newest run first, then by host.
	HostRuns(ctx context.Context, runIDs []int64, hosts []string) ([]HostRun, error)
	// FirstDrifted returns, per host whose current streak of drifting runs is unbroken, the
	// first run of that streak. Runs where the host was unreachable or failed tell nothing
	// about drift and neither break nor start a streak; any run where it was in sync does.
	FirstDrifted(ctx context.Context, f Filter) (map[string]Run, error)
	// Tasks returns the task results of one host in one run, in order; with statuses, only
	// those.
	Tasks(ctx context.Context, runID int64, host string, statuses ...string) ([]TaskResult, error)
	// TransactionTasks returns the task results of the given runs that ran in a
	// transaction (a network change, modules/txn), of the given hosts (none: all), by run,
	// host and order.
	TransactionTasks(ctx context.Context, runIDs []int64, hosts []string) ([]TaskResult, error)
	// NoteTasks returns the task results of the given runs that carry warnings or a NIC
	// inventory, of the given hosts (none: all), by run, host and order.
	NoteTasks(ctx context.Context, runIDs []int64, hosts []string) ([]TaskResult, error)
	// TopDrift counts drifting tasks over the given runs, most drifting first.
	TopDrift(ctx context.Context, runIDs []int64, hosts []string, limit int) ([]TaskCount, error)
	// LastFailedHosts returns the hosts that failed or were unreachable in the last run of
	// the runbook at runbookPath (any mode), sorted.
	LastFailedHosts(ctx context.Context, runbookPath string) ([]string, error)
	// SchemaVersion is the newest migration applied.
	SchemaVersion(ctx context.Context) (int, error)

	// Location names the store for people: a file path, or a URL without its password.
	Location() string
	Close() error
}

// ErrNotExist is returned by Open when a SQLite file does not exist and Options.Create is
// false.
var ErrNotExist = errors.New("no history there")

// Options tune Open.
type Options struct {
	// Create makes a missing SQLite file (and its directory, mode 0700). Without it, a
	// missing file is ErrNotExist, so a report never leaves an empty database behind.
	Create bool
}

// Open opens the store at location, a SQLite file path or a postgres:// (postgresql://)
// URL, and migrates its schema to the newest version.
func Open(ctx context.Context, location string, opts Options) (Store, error) {
	if IsPostgres(location) {
		return openPostgres(ctx, location)
	}
	return openSQLite(ctx, location, opts)
}

// IsPostgres reports whether location names a PostgreSQL database.
func IsPostgres(location string) bool {
	return strings.HasPrefix(location, "postgres://") || strings.HasPrefix(location, "postgresql://")
}

// Redact shows a location without a password.
func Redact(location string) string {
	if !IsPostgres(location) {
		return location
	}
	u, err := url.Parse(location)
	if err != nil {
		return "postgres://(unparsable URL)"
	}
	q := u.Query()
	if q.Has("password") {
		q.Set("password", "xxxxx")
		u.RawQuery = q.Encode()
	}
	return u.Redacted()
}

// DefaultPath is where the history lives without --history: history.db in runbook's state
// directory ($XDG_STATE_HOME/runbook, else ~/.local/state/runbook; statedir.Dir). getenv
// reads the environment. A home that does not exist is an error: runbook never creates one.
func DefaultPath(getenv func(string) string) (string, error) {
	dir, err := statedir.Dir(getenv)
	if err != nil {
		return "", err
	}
	return filepath.Join(dir, "history.db"), nil
}

// RunbookKey is how a runbook path is stored: absolute and clean, so runs started from
// different directories meet.
func RunbookKey(path string) string {
	if path == "" {
		return ""
	}
	if abs, err := filepath.Abs(path); err == nil {
		return abs
	}
	return filepath.Clean(path)
}
