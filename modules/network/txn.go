package network

import (
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/zclconf/go-cty/cty"

	"github.com/runbook/runbook/modules"
	"github.com/runbook/runbook/modules/txn"
)

// Every apply of a network module that changes something runs as a transaction
// (modules/txn, docs/network-safety.md): before the first change the helper snapshots the
// links the change touches and each file before it is written, arms a rollback that runs
// without the SSH session, and answers with the transaction pending; the controller confirms
// it over a new connection. A change that fails half way is rolled back at once.

func init() { txn.Register(txnRestorer, netRestorer{}) }

// txnRestorer names the network modules' part of a journal.
const txnRestorer = "network"

func confirmArg() modules.Arg {
	return modules.Arg{Name: "confirm_timeout", Type: cty.String, Pattern: confirmPattern,
		PatternHelp: `a duration such as "60s", "2m" or "1m30s", or "0"`,
		Doc:         `How long a change waits, armed to roll back by itself, for the controller to confirm it over a new SSH connection (the proof that the host can still be reached): when no confirmation comes in time, the host restores the links and files the change touched, verifies them, and the task fails as rolled back. "0" makes the change without a transaction. When the task does not say, the run's --confirm-timeout (60s by default) applies. See docs/network-safety.md.`}
}

// confirmPattern is what confirm_timeout may say; parseConfirm bounds it.
var confirmPattern = regexp.MustCompile(`^(0|([0-9]+(\.[0-9]+)?(ms|s|m|h))+)$`)

// netTxn is one module run's transaction, begun at its first change.
type netTxn struct {
	mgr     *txn.Manager
	id      string // the controller's id for it; "": the helper's
	module  string
	timeout time.Duration // 0: no transaction
	j       *txn.Journal
	warns   []string
}

// newTxn works out whether and for how long a run's changes are a transaction: the task's
// confirm_timeout, else the run's (env.ConfirmTimeout), else txn.DefaultTimeout. mgr is the
// module's own (tests); nil keeps transactions in env.TxnDir.
func newTxn(env *modules.Env, mgr *txn.Manager, module string, arg *string) (*netTxn, error) {
	t := &netTxn{mgr: mgr, module: module, timeout: txn.DefaultTimeout}
	if env != nil {
		t.id = env.TxnID
	}
	switch {
	case arg != nil:
		d, err := parseConfirm(*arg)
		if err != nil {
			return nil, err
		}
		t.timeout = d
	case env != nil && env.ConfirmTimeout < 0:
		t.timeout = 0
	case env != nil && env.ConfirmTimeout > 0:
		t.timeout = env.ConfirmTimeout
	}
	if t.mgr == nil {
		dir := ""
		if env != nil {
			dir = env.TxnDir
		}
		t.mgr = &txn.Manager{Dir: dir}
	}
	return t, nil
}

// confirmErrs checks a task's confirm_timeout.
func confirmErrs(arg *string) []modules.ArgError {
	if arg == nil {
		return nil
	}
	if _, err := parseConfirm(*arg); err != nil {
		return []modules.ArgError{{Arg: "confirm_timeout", Msg: err.Error()}}
	}
	return nil
}

func parseConfirm(s string) (time.Duration, error) {
	if s == "0" {
		return 0, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < time.Second || d > 24*time.Hour {
		return 0, fmt.Errorf("%q is not a duration from 1s to 24h, or \"0\"", s)
	}
	return d, nil
}

// begin starts the transaction before the first runtime change, with the running state of
// links (and what hangs together with them) in its journal. Later calls add nothing: the
// first snapshot is the state to go back to.
func (t *netTxn) begin(ops linkOps, f *fileTree, links []string) error {
	if t == nil || t.timeout == 0 || t.j != nil {
		return nil
	}
	snap, err := snapshotRuntime(ops, f, links)
	if err != nil {
		return fmt.Errorf("snapshot for the transaction: %w", err)
	}
	raw, err := json.Marshal(snap)
	if err != nil {
		return err
	}
	return t.start(map[string]json.RawMessage{txnRestorer: raw})
}

func (t *netTxn) start(runtime map[string]json.RawMessage) error {
	j, recovered, err := t.mgr.Begin(t.id, t.module, t.timeout, nil, runtime)
	for _, o := range recovered {
		t.warns = append(t.warns, fmt.Sprintf("transaction %s (%s), left pending, was rolled back first: %s", o.ID, o.Module, o.Why))
	}
	if err != nil {
		return fmt.Errorf("begin the transaction: %w", err)
	}
	t.j = j
	return nil
}

// files adds the files a change is about to write or remove, as they are now; it begins
// the transaction when no runtime change did.
func (t *netTxn) files(f *fileTree, changes []*stagedFile) error {
	if t == nil || t.timeout == 0 || len(changes) == 0 {
		return nil
	}
	if t.j == nil {
		if err := t.start(nil); err != nil {
			return err
		}
	}
	paths := make([]string, len(changes))
	for i, c := range changes {
		paths[i] = f.Path(c.path)
	}
	snap, err := txn.Snapshot(paths)
	if err != nil {
		return err
	}
	return t.mgr.AddFiles(t.j, snap)
}

// end puts the transaction in the result: pending when the run succeeded (the controller
// confirms it), rolled back at once when it failed after a change.
func (t *netTxn) end(res *modules.Result, err error) (*modules.Result, error) {
	if t == nil || t.j == nil {
		return res, err
	}
	if res == nil {
		res = &modules.Result{}
	}
	res.Warnings = append(res.Warnings, t.warns...)
	// Rolled back while this apply still ran: what it changed since is undone too.
	if o, again, aerr := t.mgr.Again(t.j); again {
		res.Transaction = o
		if aerr != nil {
			return res, fmt.Errorf("the transaction was rolled back while the change was being made, and rolling back what it changed after that failed: %v", aerr)
		}
		return res, fmt.Errorf("the transaction was rolled back while the change was being made (%s); what it changed after that was rolled back too%s", o.Why, restoredText(o))
	}
	if err != nil {
		o, rerr := t.mgr.Rollback(t.j.ID, "the change failed: "+err.Error())
		if rerr != nil {
			return res, fmt.Errorf("%w; and rolling back what it had changed failed: %v", err, rerr)
		}
		res.Transaction = o
		return res, fmt.Errorf("%w; rolled back what it had changed%s", err, restoredText(o))
	}
	res.Transaction = &modules.Transaction{ID: t.j.ID, State: modules.TxnPending, Module: t.module,
		Deadline: t.j.Deadline, WithinMS: t.mgr.Left(t.j).Milliseconds(), Armed: t.j.Armed.How}
	return res, nil
}

func restoredText(o *modules.Transaction) string {
	var b strings.Builder
	if len(o.Restored) > 0 {
		b.WriteString(" (" + strings.Join(o.Restored, "; ") + ")")
	}
	switch {
	case o.State == modules.TxnRollbackFailed:
		b.WriteString(", not all of it: " + strings.Join(append(o.Verification, o.Error), "; "))
	case o.Verified:
		b.WriteString(", verified")
	}
	return b.String()
}

// netRestorer restores the network part of a journal on the running host.
type netRestorer struct{}

func (netRestorer) Restore(raw json.RawMessage) ([]string, error) {
	var s runtimeSnap
	if err := json.Unmarshal(raw, &s); err != nil {
		return nil, fmt.Errorf("network snapshot: %w", err)
	}
	ops, closeOps, err := openNetlink()
	if err != nil {
		return nil, err
	}
	defer closeOps()
	return s.restore(ops, &fileTree{})
}

func (netRestorer) Verify(raw json.RawMessage) ([]string, error) {
	var s runtimeSnap
	if err := json.Unmarshal(raw, &s); err != nil {
		return nil, fmt.Errorf("network snapshot: %w", err)
	}
	ops, closeOps, err := openNetlink()
	if err != nil {
		return nil, err
	}
	defer closeOps()
	return s.verify(ops, &fileTree{})
}
