package history

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/runbook/runbook/engine/run"
	"github.com/runbook/runbook/modules"
)

// writeTimeout bounds one write: a stuck database must not hold up the run's end forever.
const writeTimeout = 30 * time.Second

// Recorder is a run.Observer that writes the run to a Store as it happens: the run when it
// starts, each host's results when the host finishes (a play), the totals at the end.
// Hosts that finish while a write is under way are written together by the next, in one
// transaction (a group commit): fewer transactions than hosts when many finish close
// together, and never a wait for a timer. Writes go on after the run's context is
// cancelled, so an interrupted run keeps every host that finished. After a failed write the
// Recorder reports the error once through Warn and keeps later hosts' results in memory
// rather than wait on the store again; Finish writes what is pending once more, so a
// passing failure loses nothing. History never fails a run.
type Recorder struct {
	store Store
	warn  func(error)
	run   Run

	mu      sync.Mutex
	hosts   map[string]*hostBuf
	queue   []string   // hosts with a result waiting for the next write, in order
	writing bool       // a write is under way; it writes the queue when it is done
	written *sync.Cond // signalled when a write ends (on mu)
	broken  bool       // a write failed: hosts wait for Finish
}

type hostBuf struct {
	started time.Time
	seq     int
	tasks   []TaskResult // not yet written
	// pending is the host's latest result when it is not yet written; queued says the
	// host is in the queue.
	pending *HostResult
	queued  bool
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
	rec := &Recorder{store: store, warn: warn, run: r, hosts: map[string]*hostBuf{}}
	rec.written = sync.NewCond(&rec.mu)
	return rec, nil
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
// since its last write. When no write is under way it writes them, with any other host's
// that come meanwhile; else the write under way writes them next, and HostDone returns.
func (rec *Recorder) HostDone(host string, s run.Stats) {
	rec.mu.Lock()
	var failed error // the first failed write, to warn about once unlocked
	defer func() {
		rec.mu.Unlock()
		if failed != nil && rec.warn != nil {
			rec.warn(failed)
		}
	}()
	b := rec.host(host)
	hr := HostResult{RunID: rec.run.ID, Host: host, Counts: countsOf(s), RebootRequired: s.RebootRequired,
		Duration: time.Since(b.started)}
	hr.Status = hr.Counts.HostStatus()
	b.pending = &hr
	if rec.broken {
		return // Finish writes it
	}
	if !b.queued {
		b.queued = true
		rec.queue = append(rec.queue, host)
	}
	if rec.writing {
		return
	}
	rec.writing = true
	for len(rec.queue) > 0 && !rec.broken {
		batch := make([]HostRecord, 0, len(rec.queue))
		for _, name := range rec.queue {
			b := rec.hosts[name]
			batch = append(batch, HostRecord{Result: *b.pending, Tasks: b.tasks})
			b.pending, b.tasks, b.queued = nil, nil, false
		}
		rec.queue = rec.queue[:0]
		rec.mu.Unlock()
		err := rec.write(batch)
		rec.mu.Lock()
		if err != nil {
			// The transaction wrote nothing: keep it all for Finish, before what came since.
			for _, r := range batch {
				b := rec.hosts[r.Result.Host]
				b.tasks = append(r.Tasks, b.tasks...)
				if b.pending == nil {
					hr := r.Result
					b.pending = &hr
				}
			}
			if !rec.broken {
				failed = err
			}
			rec.broken = true
		}
	}
	for _, name := range rec.queue { // broken meanwhile: Finish writes them
		rec.hosts[name].queued = false
	}
	rec.queue = rec.queue[:0]
	rec.writing = false
	rec.written.Broadcast()
}

// write writes a batch in one transaction. A store that panics (a driver's bug) fails the
// write like an error, so the lock HostDone holds around it and the write under way are
// settled as after any failed write, and the run goes on.
func (rec *Recorder) write(batch []HostRecord) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("record %d hosts: the history store failed: %v", len(batch), p)
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), writeTimeout)
	defer cancel()
	return rec.store.RecordHosts(ctx, batch)
}

// flush writes every host result that is still pending, each in its own transaction, once;
// it returns the first error. It waits for a write under way to end.
func (rec *Recorder) flush() error {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	for rec.writing {
		rec.written.Wait()
	}
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
	for rec.writing { // a host's write still under way
		rec.written.Wait()
	}
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
