package view

import (
	"fmt"
	"strings"

	"github.com/runbook/runbook/engine/run"
	"github.com/runbook/runbook/internal/termsafe"
	"github.com/runbook/runbook/modules"
)

// Status words the human views show for a result whose change the host rolled back
// (modules/txn): the engine's status stays failed (or changed, for a transaction left
// pending by an earlier run and rolled back when a helper started), and the recap counts
// it so; only the word differs.
const (
	WordRolledBack     = "rolled back"
	WordRollbackFailed = "rollback failed"
)

// StatusWord is the word people read for r's status: "rolled back" or "rollback failed"
// when the host rolled r's change back, else the status itself.
func StatusWord(r run.Result) string {
	return statusWord(string(r.Status), r.Transaction)
}

func statusWord(status string, t *modules.Transaction) string {
	if t != nil {
		switch t.State {
		case modules.TxnRolledBack:
			return WordRolledBack
		case modules.TxnRollbackFailed:
			return WordRollbackFailed
		}
	}
	return status
}

// StatusWordOf is StatusWord for a recorded task: its status as the history keeps it and
// its transaction.
func StatusWordOf(status string, t *modules.Transaction) string { return statusWord(status, t) }

// RolledBack reports whether the host rolled t back, well or not.
func RolledBack(t *modules.Transaction) bool {
	return t != nil && (t.State == modules.TxnRolledBack || t.State == modules.TxnRollbackFailed)
}

// stateWords say a transaction's state for people.
var stateWords = map[string]string{
	modules.TxnPending:        "pending",
	modules.TxnConfirmed:      "confirmed",
	modules.TxnRolledBack:     WordRolledBack,
	modules.TxnRollbackFailed: WordRollbackFailed,
	modules.TxnUnknown:        "rollback pending or unknown",
	modules.TxnNone:           "never begun",
}

// TransactionLines are what people read of a transaction under its result: which one it
// was and how it ended, what its rollback restored, whether the restored state was found
// equal to the state before the change, what still differs, and the rollback's error. Why
// it was rolled back is in the result's message, so it is not repeated. Every line is made
// safe for a terminal (termsafe.Line): what the host said cannot start a line of its own.
func TransactionLines(t *modules.Transaction) []string {
	if t == nil {
		return nil
	}
	state, ok := stateWords[t.State]
	if !ok {
		state = "in state " + termsafe.Line(t.State)
	}
	head := "transaction " + termsafe.Line(t.ID) + " " + state
	if t.Armed != "" {
		head += " (rollback armed by " + termsafe.Line(t.Armed) + ")"
	}
	lines := []string{head}
	lines = appendBounded(lines, "restored: ", t.Restored)
	if t.Verified {
		lines = append(lines, "verified: equal to the state before the change")
	}
	lines = appendBounded(lines, "still different: ", t.Verification)
	if t.Error != "" {
		lines = append(lines, "error: "+termsafe.Line(t.Error))
	}
	return lines
}

// MaxTransactionLines bounds the restored and the still-different lines people are shown
// of one transaction, each; the JSON output and the history keep them all.
const MaxTransactionLines = 32

// appendBounded appends each of items with label, safe for a terminal, at most
// MaxTransactionLines of them and then how many more there are.
func appendBounded(lines []string, label string, items []string) []string {
	for i, it := range items {
		if i == MaxTransactionLines {
			return append(lines, fmt.Sprintf("%s... (%d more)", label, len(items)-i))
		}
		lines = append(lines, label+termsafe.Line(it))
	}
	return lines
}

// TransactionMessage is msg, the message of a result whose change the host rolled back
// (t), without what TransactionLines shows under it: the engine's message ends with what
// was restored and how the verification went, which the lines give one per line. A
// message that does not end exactly so is returned whole, so nothing is ever lost.
func TransactionMessage(msg string, t *modules.Transaction) string {
	if !RolledBack(t) {
		return msg
	}
	tail := run.RollbackTail(t)
	if tail == "" || !strings.HasSuffix(msg, tail) || len(msg) == len(tail) {
		return msg
	}
	return strings.TrimSuffix(msg, tail)
}
