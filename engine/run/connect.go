package run

import (
	"context"
	"errors"
	"slices"
	"strings"
	"time"

	"github.com/zclconf/go-cty/cty"

	"github.com/runbook/runbook/engine/config"
	"github.com/runbook/runbook/inventory"
	"github.com/runbook/runbook/modules"
)

// Connector connects to hosts; an error means the host is unreachable. Connect starts no
// helper: the identity each helper runs as is resolved per task and given to
// Connection.Executor.
type Connector interface {
	Connect(ctx context.Context, to Endpoint) (Connection, error)
}

// Endpoint is what the engine resolved about a host before it connects: the host, whose
// connection variables (address, port, user, keys, proxy, ssh arguments) say how to reach
// it, and what its inventory says about become (InventoryBecome, read once, by the engine),
// whose password the connection's helpers use under become.
type Endpoint struct {
	Host   *inventory.Host
	Become HostBecome
}

// String names the host and its become settings: never the host's variables, which may hold
// passwords, nor the become password, which it only says is set. An Endpoint printed with
// %v, %+v, %s or %#v (in a message, a log, a test's failure) goes through it.
func (to Endpoint) String() string {
	name := "(no host)"
	if to.Host != nil {
		name = to.Host.Name
	}
	return "host " + name + " " + to.Become.String()
}

// GoString is String, for %#v.
func (to Endpoint) GoString() string { return "run.Endpoint{" + to.String() + "}" }

// Connection is one connection to a host, which hands out an executor per identity.
type Connection interface {
	// Executor returns the executor that runs tasks as id, starting its helper on the
	// connection the first time id is asked for; later calls with id return the same
	// executor. An error means the helper could not start: the host is unreachable as id.
	Executor(ctx context.Context, id Identity) (Executor, error)
	// Close ends every helper started on the connection, then the connection.
	Close() error
}

// Executor runs modules on one host as one identity: the helper process behind one
// session of the host's connection. The Connection that handed it out ends it.
type Executor interface {
	Run(ctx context.Context, c Call, apply bool) (*modules.Result, error)
}

// Pipeliner is an executor that can send a request without waiting for its answer, for
// pipelining (pipeline.go): Start sends it and returns the wait for its result. Requests
// started one after the other reach the host in that order.
type Pipeliner interface {
	Start(ctx context.Context, c Call, apply bool) (wait func() (*modules.Result, error), err error)
}

// Queuer is a Pipeliner that can hold requests back and send several in one write: Queue
// is Start whose request leaves, after those queued before it, with the next Flush or
// Start, or with the first wait for any of them. The pipeline queues a run of tasks and
// flushes them once: one write, one SSH packet, rather than one per task.
type Queuer interface {
	Queue(ctx context.Context, c Call, apply bool) (wait func() (*modules.Result, error), err error)
	Flush(ctx context.Context) error
}

// ErrNotRun is a pipelined request's result when the host did not run it, because a task
// before it in the pipeline failed.
var ErrNotRun = errors.New("not run: a task before it in its pipeline failed")

// Call is one module run as the executor sends it: the arguments as plain values and the
// names of those that are sensitive, worked out once from the marks (config.SplitSensitive).
type Call struct {
	Module string
	// Args is an object of plain values, without marks.
	Args cty.Value
	// Sensitive names the arguments whose values must never be shown.
	Sensitive []string
	// ConfirmTimeout is Options.ConfirmTimeout, for the modules whose changes run in a
	// transaction (modules/txn).
	ConfirmTimeout time.Duration
	// Txn is the id a transaction the apply begins takes (txn.NewID): the engine asks by it
	// how the transaction ended when the answer to the apply is lost. "" for modules that
	// run none.
	Txn string
	// Chain and Tolerated put the call in a pipeline (protocol.Request.Chain).
	Chain     string
	Tolerated bool
	// Task is the task the call runs, nil for none: the same for every host, so an
	// executor may keep what it works out for one host's call for the next (the wire form
	// of equal arguments).
	Task *config.Task
}

// Confirmer is an executor that can confirm a transaction (modules/txn): the engine asks
// one on a new connection after an apply that answered with a pending transaction.
type Confirmer interface {
	Confirm(ctx context.Context, id string) (*modules.Transaction, error)
	// Rollback rolls transaction id back when it is still pending and says how it ended
	// (state "none": the apply began no transaction).
	Rollback(ctx context.Context, id string) (*modules.Transaction, error)
}

// ErrUnreachable marks executor errors that mean the host itself is gone (a dropped
// connection), not that the task failed.
var ErrUnreachable = errors.New("host unreachable")

// connection returns the host's connection, opening it on the host's first play.
func (hr *hostRun) connection(ctx context.Context) (Connection, error) {
	hr.e.mu.Lock()
	c := hr.e.conns[hr.h.Name]
	hr.e.mu.Unlock()
	if c != nil {
		return c, nil
	}
	c, err := hr.e.Connector.Connect(ctx, Endpoint{Host: hr.h, Become: hr.become})
	if err != nil {
		return nil, err
	}
	hr.e.mu.Lock()
	hr.e.conns[hr.h.Name] = c
	hr.e.mu.Unlock()
	return c, nil
}

// connectFailed reports that the host could not be connected to, or that a helper could not
// start on it, as the host's "connect" step: the host is unreachable.
func (hr *hostRun) connectFailed(err error) {
	// Results already carry the host name; transport errors start with it too.
	hr.report(Result{Task: "connect", Status: Unreachable, Msg: strings.TrimPrefix(err.Error(), hr.h.Name+": ")})
	hr.markDead()
}

// executor returns the executor of identity id on the host's connection; its helper starts
// the first time id is needed. A helper that cannot start is reported as connectFailed, and
// startFailed set. When the run (or the host's time) ended meanwhile, the failure is that
// interruption, not the host's: nothing is reported here, the host is not marked
// unreachable, and the error says "interrupted".
func (hr *hostRun) executor(ctx context.Context, id Identity) (Executor, error) {
	x, err := hr.conn.Executor(ctx, id)
	if err != nil {
		if ctx.Err() != nil {
			return nil, hr.interrupted(err)
		}
		hr.startFailed = true
		hr.connectFailed(err)
		return nil, err
	}
	hr.e.mu.Lock()
	if !slices.Contains(hr.e.helpers[hr.h.Name], id) {
		hr.e.helpers[hr.h.Name] = append(hr.e.helpers[hr.h.Name], id)
	}
	hr.e.mu.Unlock()
	hr.reportRecovered(x)
	return x, nil
}

// Recoverer is an executor whose helper may have rolled back transactions when it started
// (modules/txn: left pending by a run that crashed, or by a reboot).
type Recoverer interface {
	Recovered() []modules.Transaction
}

// reportRecovered reports, once each, the transactions x's helper rolled back when it
// started: the host was changed back, and the run says so rather than keep it silent.
func (hr *hostRun) reportRecovered(x Executor) {
	rc, ok := x.(Recoverer)
	if !ok {
		return
	}
	for _, t := range rc.Recovered() {
		hr.e.mu.Lock()
		seen := hr.e.recovered[hr.h.Name+" "+t.ID]
		if hr.e.recovered == nil {
			hr.e.recovered = map[string]bool{}
		}
		hr.e.recovered[hr.h.Name+" "+t.ID] = true
		hr.e.mu.Unlock()
		if seen {
			continue
		}
		t := t
		r := Result{Task: "roll back transaction " + t.ID, Module: t.Module, Status: Changed, Transaction: &t}
		r.Msg = rolledBackError(&t, "").Error()
		if t.State == modules.TxnRollbackFailed {
			r.Status = Failed
		}
		hr.report(r)
	}
}

// startStatus is the status of a step whose helper could not start with err: failed when
// the run was interrupted meanwhile, else unreachable.
func startStatus(err error) Status {
	var ie *interruptedError
	if errors.As(err, &ie) {
		return Failed
	}
	return Unreachable
}

// interruptedError is a helper's start cut short by the run's cancellation or the host's
// timeout.
type interruptedError struct {
	msg string // without the host's name, which results carry
	err error
}

func (e *interruptedError) Error() string { return "interrupted: " + e.msg }

func (e *interruptedError) Unwrap() error { return e.err }

// interrupted is err, the failure of a connect or a helper's start that the run's
// cancellation (or the host's timeout) cut short.
func (hr *hostRun) interrupted(err error) error {
	return &interruptedError{msg: strings.TrimPrefix(strings.TrimPrefix(err.Error(), hr.h.Name+": "), "interrupted: "), err: err}
}

// identity is the identity task (or handler) t runs as on this host.
func (hr *hostRun) identity(t *config.Task) Identity {
	return EffectiveIdentity(t, hr.p.Play, hr.become)
}
