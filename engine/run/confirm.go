package run

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/zclconf/go-cty/cty"

	"github.com/runbook/runbook/modules"
	"github.com/runbook/runbook/modules/txn"
)

// ConfirmGrace is how long past a transaction's deadline the engine keeps trying to reach
// the host again, to learn how the rollback ended.
var ConfirmGrace = 30 * time.Second

// confirmRetry is the pause between attempts to reach the host again.
var confirmRetry = time.Second

// confirm confirms the pending transaction of an apply's result over a NEW connection to
// the host, as identity id: the proof that the host can still be reached the way the next
// run will reach it (the old connection may live on over its old socket). The new
// connection then replaces the old one for the host's later tasks. When the host cannot be
// reached before the transaction's deadline, it has rolled the change back by itself; the
// engine goes on trying until the deadline and ConfirmGrace have passed, to learn the
// outcome: failed (rolled back, with what was restored and whether it was verified), or
// unreachable when the host never answered again. A result is never "changed" unless its
// transaction was confirmed.
func (hr *hostRun) confirm(ctx context.Context, id Identity, res *modules.Result) (*modules.Result, error) {
	tx := res.Transaction
	within := time.Duration(tx.WithinMS) * time.Millisecond
	deadline := time.Now().Add(within)
	giveUp := deadline.Add(ConfirmGrace)
	var last error
	for attempt := 0; ; attempt++ {
		if attempt > 0 {
			if time.Now().After(giveUp) {
				break
			}
			select {
			case <-ctx.Done():
				return hr.unconfirmed(res, ctx.Err(), deadline)
			case <-time.After(confirmRetry):
			}
		}
		// Each attempt is bounded so that a host that takes the SYN and never answers does
		// not use up the whole window in one try.
		actx, cancel := context.WithDeadline(ctx, minTime(giveUp, time.Now().Add(20*time.Second)))
		out, conn, err := hr.confirmOnce(actx, id, tx.ID)
		cancel()
		if err != nil {
			last = err
			if ctx.Err() != nil {
				return hr.unconfirmed(res, ctx.Err(), deadline)
			}
			if helperAnswered(err) {
				break // the host was reached, and its helper refused the confirmation
			}
			continue
		}
		hr.swapConnection(conn)
		out.Armed = tx.Armed
		res.Transaction = out
		switch out.State {
		case modules.TxnConfirmed:
			res.Msg += " (confirmed over a new connection)"
			return res, nil
		case modules.TxnRolledBack, modules.TxnRollbackFailed:
			// The module said "changed …"; the change is undone, so the message says what
			// was tried and how it ended.
			tried := strings.TrimPrefix(res.Msg, "changed ")
			res.Msg = ""
			return res, rolledBackError(out, tried)
		default:
			return res, fmt.Errorf("transaction %s: the host says %q", tx.ID, out.State)
		}
	}
	return hr.unconfirmed(res, last, deadline)
}

// lost learns how the transaction txid of an apply whose answer was lost with its
// connection ended: it reaches the host again (until the transaction's deadline and
// ConfirmGrace have passed) and has it roll the transaction back if it is still pending.
// A host that rolled back makes the task failed (rolled back); one that began no
// transaction, or is not reached again, leaves it unreachable as it was.
func (hr *hostRun) lost(ctx context.Context, id Identity, txid string, deadline time.Time, res *modules.Result, lostErr error) (*modules.Result, error) {
	// The loss shows when the keepalives fail, which may be after the deadline: the grace
	// counts from whichever is later.
	giveUp := maxTime(deadline, time.Now()).Add(ConfirmGrace)
	var last error
	for attempt := 0; ; attempt++ {
		if attempt > 0 {
			if time.Now().After(giveUp) {
				break
			}
			select {
			case <-ctx.Done():
				return res, lostErr
			case <-time.After(confirmRetry):
			}
		}
		actx, cancel := context.WithDeadline(ctx, minTime(giveUp, time.Now().Add(20*time.Second)))
		out, conn, err := hr.onNewConnection(actx, id, func(c Confirmer) (*modules.Transaction, error) { return c.Rollback(actx, txid) })
		cancel()
		if err != nil {
			last = err
			if helperAnswered(err) {
				break // the host was reached, and its helper refused: trying again repeats it
			}
			continue
		}
		hr.swapConnection(conn)
		if res == nil {
			res = &modules.Result{}
		}
		switch out.State {
		case modules.TxnRolledBack, modules.TxnRollbackFailed:
			res.Transaction = out
			res.Status = modules.StatusFailed
			return res, rolledBackError(out, "")
		case modules.TxnNone:
			return res, fmt.Errorf("%w (reached again: the change had begun no transaction)", lostErr)
		default:
			return res, fmt.Errorf("%w (reached again: the host says transaction %s is %s)", lostErr, txid, out.State)
		}
	}
	tx := &modules.Transaction{ID: txid, State: modules.TxnUnknown}
	if res == nil {
		res = &modules.Result{}
	}
	res.Transaction = tx
	msg := fmt.Sprintf("%v; rollback pending or unknown: the host was not reached again to learn how transaction %s ended", lostErr, txid)
	if last != nil {
		msg += fmt.Sprintf(" (%v)", last)
	}
	return res, fmt.Errorf("%w: %s", ErrUnreachable, strings.TrimPrefix(msg, ErrUnreachable.Error()+": "))
}

// transactionWindow is how long a transaction an apply of module with args may begin
// waits for its confirmation: 0 when the module runs none (it takes no confirm_timeout) or
// the task or the run turned it off.
func transactionWindow(module string, args cty.Value, run time.Duration) time.Duration {
	info, ok := modules.InfoOf(module)
	if _, has := info.Schema.Arg("confirm_timeout"); !ok || !has {
		return 0
	}
	if args.Type().IsObjectType() && args.Type().HasAttribute("confirm_timeout") {
		if v := args.GetAttr("confirm_timeout"); !v.IsNull() && v.IsKnown() && v.Type() == cty.String {
			if v.AsString() == "0" {
				return 0
			}
			if d, err := time.ParseDuration(v.AsString()); err == nil && d > 0 {
				return d
			}
		}
	}
	switch {
	case run < 0:
		return 0
	case run > 0:
		return run
	}
	return txn.DefaultTimeout
}

// confirmOnce connects anew, starts the helper as id and confirms transaction txid.
func (hr *hostRun) confirmOnce(ctx context.Context, id Identity, txid string) (*modules.Transaction, Connection, error) {
	return hr.onNewConnection(ctx, id, func(c Confirmer) (*modules.Transaction, error) { return c.Confirm(ctx, txid) })
}

// onNewConnection connects anew, starts the helper as id and asks it do.
func (hr *hostRun) onNewConnection(ctx context.Context, id Identity, do func(Confirmer) (*modules.Transaction, error)) (*modules.Transaction, Connection, error) {
	conn, err := hr.e.Connector.Connect(ctx, Endpoint{Host: hr.h, Become: hr.become})
	if err != nil {
		return nil, nil, err
	}
	x, err := conn.Executor(ctx, id)
	if err != nil {
		_ = conn.Close()
		return nil, nil, err
	}
	c, ok := x.(Confirmer)
	if !ok {
		_ = conn.Close()
		return nil, nil, errors.New("the executor cannot confirm transactions")
	}
	out, err := do(c)
	if err != nil {
		_ = conn.Close()
		return nil, nil, err
	}
	return out, conn, nil
}

// swapConnection makes conn the host's connection and closes the old one.
func (hr *hostRun) swapConnection(conn Connection) {
	hr.e.mu.Lock()
	old := hr.e.conns[hr.h.Name]
	hr.e.conns[hr.h.Name] = conn
	hr.e.helpers[hr.h.Name] = nil // the identity that confirmed is added by the next executor call
	hr.e.mu.Unlock()
	hr.conn = conn
	if old != nil && old != conn {
		hr.e.closing.Add(1)
		go func() {
			defer hr.e.closing.Done()
			_ = old.Close()
		}()
	}
}

// unconfirmed is the result of a transaction the engine could not confirm: the host was
// not reached again. What happened on it is not known: it rolled back at the deadline
// unless its armed rollback was lost too.
func (hr *hostRun) unconfirmed(res *modules.Result, why error, deadline time.Time) (*modules.Result, error) {
	tx := *res.Transaction
	tx.State = modules.TxnUnknown
	res.Transaction = &tx
	msg := fmt.Sprintf("rollback pending or unknown: transaction %s could not be confirmed", tx.ID)
	switch {
	case errors.Is(why, context.Canceled) || errors.Is(why, context.DeadlineExceeded):
		msg += fmt.Sprintf(" (interrupted: %v)", why)
	case helperAnswered(why):
		msg += fmt.Sprintf(" (the host's helper answered: %v)", why)
	case why != nil:
		msg += fmt.Sprintf(" (the host was not reached again: %v)", why)
	}
	msg += fmt.Sprintf("; the host rolls the change back by itself at %s", deadline.Format("15:04:05"))
	return res, fmt.Errorf("%w: %s", ErrUnreachable, msg)
}

// rolledBackError says how the host rolled a transaction back.
func rolledBackError(t *modules.Transaction, tried string) error {
	var b strings.Builder
	b.WriteString("rolled back")
	if t.Why != "" {
		b.WriteString(" (" + t.Why + ")")
	}
	if tried != "" {
		b.WriteString(": the change was " + tried)
	}
	b.WriteString(RollbackTail(t))
	return errors.New(b.String())
}

// helperAnswered says err is a helper's own answer (a *modules.Failure): the host was
// reached.
func helperAnswered(err error) bool {
	var f *modules.Failure
	return errors.As(err, &f)
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// RollbackTail is how a rolled-back transaction's message ends: what was restored, then
// the verification's outcome. The human view shows those as lines of their own and cuts
// this tail from the message (engine/view).
func RollbackTail(t *modules.Transaction) string {
	var b strings.Builder
	if len(t.Restored) > 0 {
		b.WriteString(": restored " + strings.Join(t.Restored, "; "))
	}
	switch {
	case t.State == modules.TxnRollbackFailed:
		b.WriteString("; the rollback did not restore everything")
		if len(t.Verification) > 0 {
			b.WriteString(": still different: " + strings.Join(t.Verification, "; "))
		}
		if t.Error != "" {
			b.WriteString(": " + t.Error)
		}
	case t.Verified:
		b.WriteString("; verified equal to the state before the change")
	}
	return b.String()
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}
