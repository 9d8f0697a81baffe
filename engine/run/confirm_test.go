package run

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/runbook/runbook/engine/config"
	"github.com/runbook/runbook/engine/plan"
	"github.com/runbook/runbook/inventory"
	"github.com/runbook/runbook/modules"
)

// txnHost stands in for a host whose network changes run as transactions: an apply of
// "interface" answers with a pending transaction, and Confirm says how it ended.
type txnHost struct {
	mu sync.Mutex
	// failConnects makes that many connects after the first fail (the host is cut off).
	failConnects int
	// outcome is what a confirmation finds: confirmed, or rolled back by the host first.
	outcome   string
	connects  int
	failed    int      // connects that failed
	closed    []int    // the numbers of the connections closed
	ran       []string // "task on connection N"
	confirmed []string // "ID on connection N"
	recovered []modules.Transaction
	// dropApply loses the answer of the first apply with its connection; rollback is what
	// the host then says of the transaction.
	dropApply  bool
	rollback   string
	rolledBack []string // "ID on connection N"
	txid       string   // the id the lost apply carried
	dropAfter  time.Duration
}

type txnConnector struct{ h *txnHost }

func (c txnConnector) Connect(context.Context, Endpoint) (Connection, error) {
	c.h.mu.Lock()
	defer c.h.mu.Unlock()
	c.h.connects++
	if c.h.connects > 1 && c.h.failConnects > 0 {
		c.h.failConnects--
		c.h.failed++
		return nil, errors.New("dial tcp 127.0.0.1:22: connect: no route to host")
	}
	return &txnConn{h: c.h, n: c.h.connects}, nil
}

type txnConn struct {
	h      *txnHost
	n      int
	closed bool
}

func (c *txnConn) Executor(context.Context, Identity) (Executor, error) { return txnExec{c}, nil }
func (c *txnConn) Close() error {
	c.h.mu.Lock()
	c.closed = true
	c.h.closed = append(c.h.closed, c.n)
	c.h.mu.Unlock()
	return nil
}

type txnExec struct{ c *txnConn }

func (x txnExec) Run(_ context.Context, call Call, apply bool) (*modules.Result, error) {
	h := x.c.h
	h.mu.Lock()
	defer h.mu.Unlock()
	if x.c.closed {
		return nil, fmt.Errorf("%w: connection %d is closed", ErrUnreachable, x.c.n)
	}
	h.ran = append(h.ran, fmt.Sprintf("%s on %d", call.Args.GetAttr("name").AsString(), x.c.n))
	if !apply {
		return &modules.Result{Status: modules.StatusDrift, Msg: "would change interface"}, nil
	}
	if h.dropApply {
		h.dropApply = false
		if h.dropAfter > 0 {
			// the loss shows late, as keepalives make it: after the deadline
			h.mu.Unlock()
			time.Sleep(h.dropAfter)
			h.mu.Lock()
		}
		if call.Txn == "" {
			return nil, errors.New("the apply of a module that runs transactions carried no id")
		}
		h.txid = call.Txn
		return nil, fmt.Errorf("%w: connection to kvm01 lost: keepalive unanswered", ErrUnreachable)
	}
	return &modules.Result{Status: modules.StatusChanged, Msg: "changed interface eth0: runtime: eth0: mtu 1500 → 9000",
		Transaction: &modules.Transaction{ID: "tx1", State: modules.TxnPending, Module: "interface", WithinMS: 300, Armed: "watchdog"}}, nil
}

func (x txnExec) Confirm(_ context.Context, id string) (*modules.Transaction, error) {
	h := x.c.h
	h.mu.Lock()
	defer h.mu.Unlock()
	h.confirmed = append(h.confirmed, fmt.Sprintf("%s on %d", id, x.c.n))
	if h.outcome == modules.TxnConfirmed {
		return &modules.Transaction{ID: id, State: modules.TxnConfirmed, Module: "interface"}, nil
	}
	return &modules.Transaction{ID: id, State: modules.TxnRolledBack, Module: "interface", Why: "no confirmation came before the deadline",
		Restored: []string{"eth0: mtu 9000 → 1500"}, Verified: true}, nil
}

func (x txnExec) Rollback(_ context.Context, id string) (*modules.Transaction, error) {
	h := x.c.h
	h.mu.Lock()
	defer h.mu.Unlock()
	if id != h.txid {
		return nil, fmt.Errorf("rollback of %s, but the lost apply carried %s", id, h.txid)
	}
	h.rolledBack = append(h.rolledBack, fmt.Sprintf("tx on %d", x.c.n))
	if h.rollback == modules.TxnNone {
		return &modules.Transaction{ID: id, State: modules.TxnNone}, nil
	}
	return &modules.Transaction{ID: id, State: modules.TxnRolledBack, Module: "interface", Why: "the controller lost the connection during the change and never saw it",
		Restored: []string{"eth0: down → up"}, Verified: true}, nil
}

func (x txnExec) Recovered() []modules.Transaction { return x.c.h.recovered }

func runTxnHost(t *testing.T, h *txnHost, check bool, extra ...string) *recorder {
	taskExtra := ""
	if len(extra) > 1 {
		taskExtra = extra[1]
	}
	t.Helper()
	oldGrace, oldRetry := ConfirmGrace, confirmRetry
	ConfirmGrace, confirmRetry = 200*time.Millisecond, 20*time.Millisecond
	t.Cleanup(func() { ConfirmGrace, confirmRetry = oldGrace, oldRetry })
	src := `play "net" {
  hosts = "all"
  task "jumbo" {
    interface {
      name = "eth0"
      mtu  = 9000
      EXTRA
    }
TASKEXTRA
  }
  task "then" {
    interface {
      name = "eth1"
      mtu  = 9000
    }
  }
}
`
	first := ""
	if len(extra) > 0 {
		first = extra[0]
	}
	src = strings.Replace(src, "TASKEXTRA", taskExtra, 1)
	src = strings.Replace(src, "EXTRA", first, 1)
	rb, diags := config.Parse([]config.Source{{Name: "t.hcl", Src: []byte(src)}}, config.Inputs{})
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	iv, idiags := inventory.Parse("inv.hcl", []byte("host \"kvm01\" {\n  address = \"127.0.0.1\"\n}\n"))
	if idiags.HasErrors() {
		t.Fatal(idiags)
	}
	pl, pdiags := plan.Build(rb, iv, plan.Options{})
	if pdiags.HasErrors() {
		t.Fatal(pdiags)
	}
	rec := &recorder{}
	e := &Engine{Runbook: rb, Connector: txnConnector{h}, Observer: rec, Options: Options{Forks: 1, Check: check}}
	e.Run(context.Background(), pl)
	return rec
}

func TestConfirmOverANewConnection(t *testing.T) {
	tests := []struct {
		name         string
		host         *txnHost
		check        bool
		wantStatus   []Status // of jumbo, then (when it runs)
		wantMsg      string
		wantState    string
		wantRan      string
		wantConfirms string
	}{
		{name: "confirmed: the new connection carries on", host: &txnHost{outcome: modules.TxnConfirmed},
			wantStatus: []Status{Changed, Changed}, wantMsg: "confirmed over a new connection", wantState: modules.TxnConfirmed,
			// the second task runs on connection 2 and is confirmed over connection 3
			wantRan: "eth0 on 1,eth1 on 2", wantConfirms: "tx1 on 2,tx1 on 3"},
		{name: "rolled back by the host: failed, and said so", host: &txnHost{outcome: modules.TxnRolledBack},
			wantStatus: []Status{Failed}, wantMsg: "rolled back (no confirmation came before the deadline): the change was interface eth0: runtime: eth0: mtu 1500 → 9000: restored eth0: mtu 9000 → 1500; verified equal",
			wantState: modules.TxnRolledBack, wantRan: "eth0 on 1", wantConfirms: "tx1 on 2"},
		{name: "the host comes back after two tries", host: &txnHost{outcome: modules.TxnRolledBack, failConnects: 2},
			wantStatus: []Status{Failed}, wantMsg: "rolled back", wantState: modules.TxnRolledBack, wantRan: "eth0 on 1", wantConfirms: "tx1 on 4"},
		{name: "never reached again: unreachable, outcome unknown", host: &txnHost{outcome: modules.TxnConfirmed, failConnects: 1 << 20},
			wantStatus: []Status{Unreachable}, wantMsg: "rollback pending or unknown: transaction tx1 could not be confirmed (the host was not reached again: dial tcp",
			wantState: modules.TxnUnknown, wantRan: "eth0 on 1"},
		{name: "check mode: nothing to confirm", host: &txnHost{outcome: modules.TxnConfirmed}, check: true,
			wantStatus: []Status{Drift, Drift}, wantMsg: "would change", wantRan: "eth0 on 1,eth1 on 1"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := tc.host
			rec := runTxnHost(t, h, tc.check)
			if len(rec.results) != len(tc.wantStatus) {
				t.Fatalf("results %v, want statuses %v", rec.lines(), tc.wantStatus)
			}
			for i, s := range tc.wantStatus {
				if rec.results[i].Status != s {
					t.Errorf("result %d: %s (%s), want %s", i, rec.results[i].Status, rec.results[i].Msg, s)
				}
			}
			first := rec.results[0]
			if !strings.Contains(first.Msg, tc.wantMsg) {
				t.Errorf("message %q, want it to hold %q", first.Msg, tc.wantMsg)
			}
			if tc.wantState == "" {
				if first.Transaction != nil {
					t.Errorf("transaction %+v in check mode", first.Transaction)
				}
			} else if first.Transaction == nil || first.Transaction.State != tc.wantState {
				t.Errorf("transaction %+v, want state %s", first.Transaction, tc.wantState)
			}
			if got := strings.Join(h.ran, ","); got != tc.wantRan {
				t.Errorf("ran %s, want %s", got, tc.wantRan)
			}
			if got := strings.Join(h.confirmed, ","); got != tc.wantConfirms {
				t.Errorf("confirmed %s, want %s", got, tc.wantConfirms)
			}
			// Every connection opened is closed by the end.
			if len(h.closed) != h.connects-h.failed {
				t.Errorf("%d connections opened (%d failed), %d closed: %v", h.connects, h.failed, len(h.closed), h.closed)
			}
		})
	}
}

// TestLostAnswer: the answer to an apply is lost with its connection (the change cut it).
// The engine reaches the host again and has it roll back what the apply began, by the id the
// request carried: failed (rolled back) when it did, unreachable when it began nothing or
// cannot be reached.
func TestLostAnswer(t *testing.T) {
	tests := []struct {
		name       string
		host       *txnHost
		wantStatus Status
		wantMsg    string
		wantState  string
		rolledBack string
	}{
		{"rolled back", &txnHost{dropApply: true, rollback: modules.TxnRolledBack}, Failed,
			"rolled back (the controller lost the connection during the change and never saw it): restored eth0: down → up; verified", modules.TxnRolledBack, "tx on 2"},
		{"no transaction was begun", &txnHost{dropApply: true, rollback: modules.TxnNone}, Unreachable,
			"reached again: the change had begun no transaction", "", "tx on 2"},
		{"the loss shows after the deadline", &txnHost{dropApply: true, rollback: modules.TxnRolledBack, dropAfter: 1200 * time.Millisecond}, Failed,
			"rolled back (the controller lost the connection", modules.TxnRolledBack, "tx on 2"},
		{"never reached again", &txnHost{dropApply: true, failConnects: 1 << 20}, Unreachable,
			"rollback pending or unknown: the host was not reached again", modules.TxnUnknown, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rec := runTxnHost(t, tc.host, false, `confirm_timeout = "1s"`)
			if len(rec.results) != 1 {
				t.Fatalf("results %v", rec.lines())
			}
			r := rec.results[0]
			if r.Status != tc.wantStatus || !strings.Contains(r.Msg, tc.wantMsg) {
				t.Errorf("%s %q, want %s with %q", r.Status, r.Msg, tc.wantStatus, tc.wantMsg)
			}
			if tc.wantState == "" {
				if r.Transaction != nil {
					t.Errorf("transaction %+v", r.Transaction)
				}
			} else if r.Transaction == nil || r.Transaction.State != tc.wantState || r.Transaction.ID != tc.host.txid {
				t.Errorf("transaction %+v, want %s of %s", r.Transaction, tc.wantState, tc.host.txid)
			}
			if got := strings.Join(tc.host.rolledBack, ","); got != tc.rolledBack {
				t.Errorf("rolled back %q, want %q", got, tc.rolledBack)
			}
		})
	}
}

// TestRetryAfterRollback: a task whose change was rolled back is tried again (retries), on
// the connection the confirmation moved the host to, not the closed one.
func TestRetryAfterRollback(t *testing.T) {
	h := &txnHost{outcome: modules.TxnRolledBack}
	rec := runTxnHost(t, h, false, "", "  retries = 1")
	if len(rec.results) != 1 || rec.results[0].Status != Failed || !strings.Contains(rec.results[0].Msg, "rolled back") {
		t.Fatalf("results %v", rec.lines())
	}
	if got := strings.Join(h.ran, ","); got != "eth0 on 1,eth0 on 2" {
		t.Errorf("ran %s, want the retry on the new connection", got)
	}
	if got := strings.Join(h.confirmed, ","); got != "tx1 on 2,tx1 on 3" {
		t.Errorf("confirmed %s", got)
	}
}

func TestRecoveredTransactionsAreReported(t *testing.T) {
	h := &txnHost{outcome: modules.TxnConfirmed, recovered: []modules.Transaction{{ID: "old1", State: modules.TxnRolledBack, Module: "bond",
		Why: "a transaction left pending (found when the helper started): made before the host rebooted", Restored: []string{"/etc/sysconfig/network-scripts/ifcfg-bond0: written back"}, Verified: true}}}
	rec := runTxnHost(t, h, true)
	var found []Result
	for _, r := range rec.results {
		if strings.HasPrefix(r.Task, "roll back transaction") {
			found = append(found, r)
		}
	}
	if len(found) != 1 {
		t.Fatalf("recovered transactions reported %d times: %v", len(found), rec.lines())
	}
	r := found[0]
	if r.Status != Changed || r.Module != "bond" || r.Transaction == nil || r.Transaction.ID != "old1" ||
		!strings.Contains(r.Msg, "made before the host rebooted") || !strings.Contains(r.Msg, "ifcfg-bond0: written back") {
		t.Errorf("reported %+v", r)
	}
}

// TestSensitiveTaskTransaction: a sensitive task's result keeps its transaction's id and
// state, not the lines of what was restored.
func TestSensitiveTaskTransaction(t *testing.T) {
	h := &txnHost{outcome: modules.TxnRolledBack}
	rec := runTxnHost(t, h, false, "", "  sensitive = true")
	if len(rec.results) != 1 {
		t.Fatalf("results %v", rec.lines())
	}
	tx := rec.results[0].Transaction
	if tx == nil || tx.State != modules.TxnRolledBack || tx.ID != "tx1" || len(tx.Restored) != 0 || tx.Why != "" {
		t.Errorf("transaction of a sensitive task: %+v", tx)
	}
}
