package protocol

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/runbook/runbook/modules"
	"github.com/runbook/runbook/modules/txn"
)

// TestConfirmOp confirms a pending transaction through the protocol, as the controller does
// over its new connection, and shows the hello naming what the helper recovered.
func TestConfirmOp(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "txn")
	mgr := &txn.Manager{Dir: dir, Arm: func(*txn.Manager, *txn.Journal) (txn.Arm, error) { return txn.Arm{How: "none"}, nil }}
	j, _, err := mgr.Begin("", "interface", time.Minute, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	recovered := []modules.Transaction{{ID: "0123456789abcdef01234567", State: modules.TxnRolledBack, Module: "bond", Why: "made before the host rebooted"}}
	c, _, stop := pair(t, &Server{Registry: testRegistry(), TxnDir: dir, Recovered: recovered})
	if h := c.Hello(); len(h.Recovered) != 1 || h.Recovered[0].Why != recovered[0].Why {
		t.Errorf("hello recovered %+v", h.Recovered)
	}
	ctx := context.Background()
	tests := []struct {
		txn, state, err string
	}{
		{txn: j.ID, state: modules.TxnConfirmed},
		{txn: j.ID, state: modules.TxnConfirmed}, // again: the outcome
		{txn: "../../etc/shadow", err: "not a transaction id"},
		{txn: "ffffffffffffffffffffffff", err: "no such transaction on this host: ffffffffffffffffffffffff"},
	}
	for _, tc := range tests {
		resp, err := c.Call(ctx, &Request{Op: OpConfirm, Txn: tc.txn})
		if err != nil {
			t.Fatal(err)
		}
		switch {
		case tc.err != "":
			if resp.Error == nil || !strings.Contains(resp.Error.Msg, tc.err) {
				t.Errorf("confirm %q: %+v, want error %q", tc.txn, resp.Error, tc.err)
			}
		case resp.Transaction == nil || resp.Transaction.ID != tc.txn || resp.Transaction.State != tc.state:
			t.Errorf("confirm %q: %+v (%v)", tc.txn, resp.Transaction, resp.Err())
		}
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}

	// A helper without a transactions directory (not root) says why it cannot confirm.
	c2, _, stop2 := pair(t, &Server{Registry: testRegistry()})
	resp, err := c2.Call(ctx, &Request{Op: OpConfirm, Txn: j.ID})
	if err != nil || resp.Error == nil || !strings.Contains(resp.Error.Msg, "use become") {
		t.Errorf("no directory: %+v, %v", resp, err)
	}
	_ = stop2()

	if _, err := DecodeRequest([]byte(`{"id":1,"op":"confirm"}`)); err == nil || !strings.Contains(err.Error(), "needs a txn") {
		t.Errorf("a confirm without txn decoded: %v", err)
	}
}
