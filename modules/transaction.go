package modules

import "time"

// The states of a transaction (modules/txn): pending until the controller confirms it over
// a new connection or the host rolls it back by itself.
const (
	TxnPending        = "pending"
	TxnConfirmed      = "confirmed"
	TxnRolledBack     = "rolled_back"
	TxnRollbackFailed = "rollback_failed"
	// TxnNone says no transaction of that id was begun (the answer to a rollback request
	// for an apply that changed nothing).
	TxnNone = "none"
	// TxnUnknown is the controller's: the host could not be reached again to learn the end.
	TxnUnknown = "unknown"
)

// Transaction is what a result says of the transaction its change ran in.
type Transaction struct {
	ID     string `json:"id"`
	State  string `json:"state"`
	Module string `json:"module,omitempty"`
	// Deadline is when a pending transaction rolls back unless confirmed.
	Deadline time.Time `json:"deadline,omitzero"`
	// WithinMS is how long a pending transaction waits for its confirmation, counted from
	// the helper's answer: the controller's clock need not agree with the host's.
	WithinMS int64 `json:"within_ms,omitempty"`
	// Armed says how its rollback was armed ("systemd", "watchdog").
	Armed string `json:"armed,omitempty"`
	// Why says why it was rolled back.
	Why string `json:"why,omitempty"`
	// Restored lists what a rollback restored, one line each.
	Restored []string `json:"restored,omitempty"`
	// Verification lists what still differs from the snapshot after the rollback; Verified
	// says the restored state was compared and found equal.
	Verification []string `json:"verification,omitempty"`
	Verified     bool     `json:"verified,omitempty"`
	Error        string   `json:"error,omitempty"`
}

// Redact hides secrets in what the transaction says.
func (t *Transaction) Redact(rep *Redactor) {
	if t == nil || rep == nil {
		return
	}
	t.Why, t.Error = rep.Redact(t.Why), rep.Redact(t.Error)
	for i := range t.Restored {
		t.Restored[i] = rep.Redact(t.Restored[i])
	}
	for i := range t.Verification {
		t.Verification[i] = rep.Redact(t.Verification[i])
	}
}
