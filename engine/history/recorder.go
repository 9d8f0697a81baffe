package history

import (
	"context"
	"slices"
	"sync"
	"time"

	"github.com/runbook/runbook/engine/run"
	"github.com/runbook/runbook/modules"
)

// writeTimeout bounds one write: a stuck database must not hold up the run's end forever.
const writeTimeout = 30 * time.Second

// Recorder is a run.Observer that writes the run to a Store as it happens: the run when it
// starts, each host's results in one transaction when the host finishes (a play), the
// totals at the end. Writes go on after the run's context is cancelled, so an interrupted
// run keeps every host that finished. After a failed write the Recorder reports the error
// once through Warn and keeps later hosts' results in memory rather than wait on the store
// again; Finish writes what is pending once more, so a passing failure loses nothing.
// History never fails a run.
type Recorder struct {
	store Store
	warn  func(error)
	run   Run

	mu     sync.Mutex
	hosts  map[string]*hostBuf
	broken bool // a write failed: hosts wait for Finish
}

type hostBuf struct {
	started time.Time
	seq     int
	tasks   []TaskResult // not yet written
	// pending is the host's latest result when it is not yet written.
	pending *HostResult
}

var _ run.Observer = (*Recorder)(nil)

// Begin records r as started and returns its Recorder. warn, when not nil, hears about the
// first write that fails later.
func Begin(ctx context.Context, store Store, r Run, warn func(error)) (*Recorder, error) {
	if r.StartedAt.IsZero() {
		r.StartedAt = time.Now()
	}
	r.Runbook = RunbookKey(r.Runbook)
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), writeTimeout)
	defer cancel()
	id, err := store.BeginRun(wctx, r)
	if err != nil {
		return nil, err
	}
	r.ID = id
	return &Recorder{store: store, warn: warn, run: r, hosts: map[string]*hostBuf{}}, nil
}

// RunID is the recorded run's id.
func (rec *Recorder) RunID() int64 { return rec.run.ID }

// Store is where the run is recorded.
func (rec *Recorder) Store() Store { return rec.store }

func (rec *Recorder) host(name string) *hostBuf {
	b := rec.hosts[name]
	if b == nil {
		b = &hostBuf{started: time.Now()}
		rec.hosts[name] = b
	}
	return b
}

// HostStarted notes when the host began (its first play).
func (rec *Recorder) HostStarted(host string) {
	rec.mu.Lock()
	rec.host(host)
	rec.mu.Unlock()
}

// TaskDone keeps the result until its host finishes.
func (rec *Recorder) TaskDone(r run.Result) {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	b := rec.host(r.Host)
	b.seq++
	b.tasks = append(b.tasks, TaskResult{RunID: rec.run.ID, Host: r.Host, Seq: b.seq, Play: r.Play, Task: r.Task,
		Module: r.Module, Item: r.Item, Handler: r.Handler, Status: string(r.Status), Msg: r.Msg, Diff: r.Diff,
		RebootRequired: r.RebootRequired, Changed: r.Status == run.Changed, Transaction: copyTxn(r.Transaction),
		Warnings: slices.Clone(r.Warnings), NICs: nicsOf(r), Duration: r.Duration})
}

// nicsOf is the NIC inventory of a facts task's result, nil for any other module's.
func nicsOf(r run.Result) []NIC {
	if r.Module != "facts" {
		return nil
	}
	return NICsOf(r.Data)
}

// copyTxn is a copy of t the Recorder keeps until the host finishes, whatever becomes of
// the result's.
func copyTxn(t *modules.Transaction) *modules.Transaction {
	if t == nil {
		return nil
	}
	c := *t
	c.Restored, c.Verification = slices.Clone(t.Restored), slices.Clone(t.Verification)
	return &c
}

// HostDone writes the host's result (its counts so far over all plays) and the tasks it ran
// since its last write, in one transaction.
func (rec *Recorder) HostDone(host string, s run.Stats) {
	rec.mu.Lock()
	b := rec.host(host)
	hr := HostResult{RunID: rec.run.ID, Host: host, Counts: countsOf(s), RebootRequired: s.RebootRequired,
		Duration: time.Since(b.started)}
	hr.Status = hr.Counts.HostStatus()
	if rec.broken {
		b.pending = &hr
		rec.mu.Unlock()
		return
	}
	tasks := b.tasks
	b.tasks = nil
	rec.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), writeTimeout)
	defer cancel()
	if err := rec.store.RecordHost(ctx, hr, tasks); err != nil {
		// The transaction wrote nothing: keep it all for Finish.
		rec.mu.Lock()
		b.tasks = append(tasks, b.tasks...)
		if b.pending == nil {
			b.pending = &hr
		}
		rec.mu.Unlock()
		rec.fail(err)
	}
}

// flush writes every host result that is still pending, once; it returns the first error.
func (rec *Recorder) flush() error {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	var first error
	for _, b := range rec.hosts {
		if b.pending == nil {
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), writeTimeout)
		err := rec.store.RecordHost(ctx, *b.pending, b.tasks)
		cancel()
		if err != nil {
			if first == nil {
				first = err
			}
			continue
		}
		b.pending, b.tasks = nil, nil
	}
	return first
}

func (rec *Recorder) fail(err error) {
	rec.mu.Lock()
	first := !rec.broken
	rec.broken = true
	rec.mu.Unlock()
	if first && rec.warn != nil {
		rec.warn(err)
	}
}

// Finish records the run's totals and exit code. It returns the first error of the whole
// recording, so the caller can tell whether the record is complete.
func (rec *Recorder) Finish(recap *run.Recap) error {
	rec.mu.Lock()
	broken := rec.broken
	rec.mu.Unlock()
	if broken {
		if err := rec.flush(); err != nil {
			return errBroken
		}
	}
	r := rec.run
	r.FinishedAt = time.Now()
	r.ExitCode = recap.ExitCode()
	r.Interrupted = recap.Interrupted
	r.Duration = recap.Duration
	r.Hosts = len(recap.Hosts)
	for _, s := range recap.Hosts {
		r.Counts.Add(countsOf(*s))
	}
	ctx, cancel := context.WithTimeout(context.Background(), writeTimeout)
	defer cancel()
	if err := rec.store.FinishRun(ctx, r); err != nil {
		rec.fail(err)
		return err
	}
	rec.run = r
	return nil
}

type brokenError struct{}

func (brokenError) Error() string { return "the history record is incomplete: a write failed" }

var errBroken error = brokenError{}

func countsOf(s run.Stats) Counts {
	return Counts{OK: s.OK, Changed: s.Changed, Drift: s.Drift, Unknown: s.Unknown, Skipped: s.Skipped, Failed: s.Failed,
		Unreachable: s.Unreachable}
}
