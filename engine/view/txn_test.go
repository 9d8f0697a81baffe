package view

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"reflect"
	"regexp"
	"strings"
	"testing"

	"github.com/runbook/runbook/engine/run"
	"github.com/runbook/runbook/modules"
)

// The results of network changes as the engine reports them (engine/run/confirm.go and
// connect.go): messages spelled as its rolledBackError and unconfirmed spell them.
func txnResults() map[string]run.Result {
	return map[string]run.Result{
		"rolled back": {Host: "lab01", Play: "p", Task: "mgmt down", Module: "interface", Status: run.Failed,
			Msg: "rolled back (no confirmation came before the deadline): the change was eth0: state up → down: restored eth0: state down → up; eth0: address 10.201.1.11/24 added; verified equal to the state before the change",
			Transaction: &modules.Transaction{ID: "tx1", State: modules.TxnRolledBack, Module: "interface", Armed: "systemd",
				Why: "no confirmation came before the deadline", Restored: []string{"eth0: state down → up", "eth0: address 10.201.1.11/24 added"},
				Verified: true}},
		"rollback failed": {Host: "lab02", Play: "p", Task: "bond0", Module: "bond", Status: run.Failed,
			Msg: "rolled back (no confirmation came before the deadline): the change was bond0: slaves + eth1: restored /etc/network/interfaces; the rollback did not restore everything: still different: eth1: master bond0, want none: ip link set eth1 nomaster: device busy",
			Transaction: &modules.Transaction{ID: "tx2", State: modules.TxnRollbackFailed, Module: "bond", Armed: "watchdog",
				Why: "no confirmation came before the deadline", Restored: []string{"/etc/network/interfaces"},
				Verification: []string{"eth1: master bond0, want none"}, Error: "ip link set eth1 nomaster: device busy"}},
		"unknown": {Host: "lab03", Play: "p", Task: "mtu", Module: "interface", Status: run.Unreachable,
			Msg:         "rollback pending or unknown: transaction tx3 could not be confirmed (the host was not reached again: dial tcp: i/o timeout); the host rolls the change back by itself at 15:04:05",
			Transaction: &modules.Transaction{ID: "tx3", State: modules.TxnUnknown, Module: "interface", Armed: "systemd"}},
		"confirmed": {Host: "lab04", Play: "p", Task: "data bond", Module: "bond", Status: run.Changed,
			Msg:         "changed bond0: created (confirmed over a new connection)",
			Transaction: &modules.Transaction{ID: "tx4", State: modules.TxnConfirmed, Module: "bond", Armed: "systemd"}},
		"recovered": {Host: "lab05", Task: "roll back transaction tx5", Module: "sriov", Status: run.Changed,
			Msg: "rolled back (pending when the helper started): restored ens1f0: sriov_numvfs 4 → 0; verified equal to the state before the change",
			Transaction: &modules.Transaction{ID: "tx5", State: modules.TxnRolledBack, Module: "sriov",
				Why: "pending when the helper started", Restored: []string{"ens1f0: sriov_numvfs 4 → 0"}, Verified: true}},
		"none": {Host: "lab06", Play: "p", Task: "motd", Module: "copy", Status: run.Changed, Msg: "/etc/motd: changed"},
	}
}

func TestJSONTransaction(t *testing.T) {
	tests := []struct {
		result string
		want   map[string]any // nil: no "transaction" key
	}{
		{"rolled back", map[string]any{"id": "tx1", "state": "rolled_back", "module": "interface", "armed": "systemd",
			"why": "no confirmation came before the deadline", "verified": true,
			"restored": []any{"eth0: state down → up", "eth0: address 10.201.1.11/24 added"}}},
		{"rollback failed", map[string]any{"id": "tx2", "state": "rollback_failed", "module": "bond", "armed": "watchdog",
			"why": "no confirmation came before the deadline", "verified": false, "restored": []any{"/etc/network/interfaces"},
			"verification": []any{"eth1: master bond0, want none"}, "error": "ip link set eth1 nomaster: device busy"}},
		{"unknown", map[string]any{"id": "tx3", "state": "unknown", "module": "interface", "armed": "systemd", "verified": false}},
		{"confirmed", map[string]any{"id": "tx4", "state": "confirmed", "module": "bond", "armed": "systemd", "verified": false}},
		{"recovered", map[string]any{"id": "tx5", "state": "rolled_back", "module": "sriov", "why": "pending when the helper started",
			"verified": true, "restored": []any{"ens1f0: sriov_numvfs 4 → 0"}}},
		{"none", nil},
	}
	rs := txnResults()
	for _, tt := range tests {
		t.Run(tt.result, func(t *testing.T) {
			r := rs[tt.result]
			var b bytes.Buffer
			(&JSON{W: &b}).TaskDone(r)
			var line map[string]any
			if err := json.Unmarshal(b.Bytes(), &line); err != nil {
				t.Fatalf("%v: %s", err, b.String())
			}
			got, has := line["transaction"]
			if tt.want == nil {
				if has {
					t.Errorf("a result without a transaction has one: %v", got)
				}
				return
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("transaction = %v\nwant          %v", got, tt.want)
			}
			// The status and message stay the engine's: a rolled-back change is failed.
			if line["status"] != string(r.Status) || line["msg"] != r.Msg || line["changed"] != (r.Status == run.Changed) {
				t.Errorf("status %v changed %v msg %v", line["status"], line["changed"], line["msg"])
			}
		})
	}
}

func TestHumanTransaction(t *testing.T) {
	tests := []struct {
		result  string
		verbose bool
		quiet   bool
		want    string
		colour  string // in colour, the status word as painted
	}{
		{result: "rolled back",
			want: `lab01 rolled back mgmt down: rolled back (no confirmation came before the deadline): the change was eth0: state up → down
    transaction tx1 rolled back (rollback armed by systemd)
    restored: eth0: state down → up
    restored: eth0: address 10.201.1.11/24 added
    verified: equal to the state before the change
`, colour: "\x1b[36;1mrolled back\x1b["},
		{result: "rolled back", quiet: true,
			want: `lab01 rolled back mgmt down: rolled back (no confirmation came before the deadline): the change was eth0: state up → down
    transaction tx1 rolled back (rollback armed by systemd)
    restored: eth0: state down → up
    restored: eth0: address 10.201.1.11/24 added
    verified: equal to the state before the change
`},
		{result: "rollback failed",
			want: `lab02 rollback failed bond0: rolled back (no confirmation came before the deadline): the change was bond0: slaves + eth1
    transaction tx2 rollback failed (rollback armed by watchdog)
    restored: /etc/network/interfaces
    still different: eth1: master bond0, want none
    error: ip link set eth1 nomaster: device busy
`, colour: "\x1b[31;1mrollback failed\x1b["},
		{result: "unknown",
			want: `lab03 unreachable mtu: rollback pending or unknown: transaction tx3 could not be confirmed (the host was not reached again: dial tcp: i/o timeout); the host rolls the change back by itself at 15:04:05
    transaction tx3 rollback pending or unknown (rollback armed by systemd)
`, colour: "\x1b[31;1munreachable\x1b["},
		{result: "confirmed",
			want:   "lab04 changed     data bond: changed bond0: created (confirmed over a new connection)\n",
			colour: "\x1b[33mchanged\x1b["},
		{result: "confirmed", verbose: true,
			want: "lab04 changed     data bond: changed bond0: created (confirmed over a new connection)\n" +
				"    transaction tx4 confirmed (rollback armed by systemd)\n"},
		{result: "recovered",
			want: `lab05 rolled back roll back transaction tx5: rolled back (pending when the helper started)
    transaction tx5 rolled back
    restored: ens1f0: sriov_numvfs 4 → 0
    verified: equal to the state before the change
`, colour: "\x1b[36;1mrolled back\x1b["},
		{result: "none", want: "lab06 changed     motd: /etc/motd: changed\n"},
	}
	rs := txnResults()
	for _, tt := range tests {
		name := tt.result
		if tt.verbose {
			name += " verbose"
		}
		if tt.quiet {
			name += " quiet"
		}
		t.Run(name, func(t *testing.T) {
			var b bytes.Buffer
			(&Human{W: &b, Verbose: tt.verbose, Quiet: tt.quiet}).TaskDone(rs[tt.result])
			if b.String() != tt.want {
				t.Errorf("got:\n%s\nwant:\n%s", b.String(), tt.want)
			}
			if tt.colour == "" {
				return
			}
			b.Reset()
			(&Human{W: &b, Color: true}).TaskDone(rs[tt.result])
			if !strings.Contains(b.String(), tt.colour) {
				t.Errorf("in colour, the status word is not %q:\n%q", tt.colour, b.String())
			}
		})
	}
}

// TestRolledBackColourIsItsOwn: "rolled back" has a colour no status has.
func TestRolledBackColourIsItsOwn(t *testing.T) {
	for _, st := range []run.Status{run.OK, run.Changed, run.Drift, run.Unknown, run.Skipped, run.Failed, run.Unreachable} {
		if reflect.DeepEqual(statusColor(st), rolledBackColor) {
			t.Errorf("%s has the colour of rolled back", st)
		}
	}
}

// TestRecapCountsRolledBackAsFailed: the recap counts by the engine's status, so a
// rolled-back change is among the failed.
func TestRecapCountsRolledBackAsFailed(t *testing.T) {
	var b bytes.Buffer
	h := &Human{W: &b}
	h.TaskDone(txnResults()["rolled back"])
	h.Finish(&run.Recap{Hosts: map[string]*run.Stats{"lab01": {Failed: 1}}})
	if !strings.Contains(b.String(), "lab01  ok=0 changed=0 drift=0 failed=1 ") || !strings.Contains(b.String(), "exit code 2") {
		t.Errorf("recap:\n%s", b.String())
	}
}

func TestJUnitTransaction(t *testing.T) {
	tests := []struct {
		result      string
		message     string // the failure's message, "" for no failure
		body        []string
		systemOut   string
		failureType string
	}{
		{result: "rolled back", failureType: "failed",
			message: "failed (transaction tx1): rolled back (no confirmation came before the deadline): the change was eth0: state up → down: restored eth0: state down → up; eth0: address 10.201.1.11/24 added; verified equal to the state before the change",
			body:    []string{"\ntransaction tx1 rolled back (rollback armed by systemd)\nrestored: eth0: state down → up\nrestored: eth0: address 10.201.1.11/24 added\nverified: equal to the state before the change"}},
		{result: "rollback failed", failureType: "failed",
			message: "failed (transaction tx2): rolled back (no confirmation came before the deadline)",
			body:    []string{"transaction tx2 rollback failed", "still different: eth1: master bond0, want none", "error: ip link set eth1 nomaster: device busy"}},
		{result: "unknown", failureType: "unreachable",
			message: "unreachable (transaction tx3): rollback pending or unknown: transaction tx3 could not be confirmed",
			body:    []string{"transaction tx3 rollback pending or unknown"}},
		{result: "confirmed", systemOut: "changed"},
		{result: "recovered", systemOut: "changed: rolled back (pending when the helper started): restored ens1f0: sriov_numvfs 4 → 0; verified equal to the state before the change\ntransaction tx5 rolled back\nrestored: ens1f0: sriov_numvfs 4 → 0"},
		{result: "none", systemOut: "changed"},
	}
	rs := txnResults()
	for _, tt := range tests {
		t.Run(tt.result, func(t *testing.T) {
			var b bytes.Buffer
			u := &JUnit{W: &b}
			u.TaskDone(rs[tt.result])
			if err := u.Finish(&run.Recap{}); err != nil {
				t.Fatal(err)
			}
			var doc junitSuites
			if err := xml.Unmarshal(b.Bytes(), &doc); err != nil {
				t.Fatalf("not XML: %v\n%s", err, b.String())
			}
			c := doc.Suites[0].Cases[0]
			if tt.message == "" {
				if c.Failure != nil {
					t.Errorf("failure %+v", c.Failure)
				}
				if !strings.HasPrefix(c.SystemOut, tt.systemOut) || (tt.systemOut == "changed" && c.SystemOut != "changed") {
					t.Errorf("system-out %q, want %q", c.SystemOut, tt.systemOut)
				}
				return
			}
			if c.Failure == nil || !strings.HasPrefix(c.Failure.Message, tt.message) || c.Failure.Type != tt.failureType {
				t.Fatalf("failure %+v\nwant message %q", c.Failure, tt.message)
			}
			for _, want := range tt.body {
				if !strings.Contains(c.Failure.Body, want) {
					t.Errorf("body lacks %q:\n%s", want, c.Failure.Body)
				}
			}
		})
	}
}

// TestTransactionMessage: the message loses exactly the tail that the lines under it
// repeat; a message that does not end so is kept whole.
func TestTransactionMessage(t *testing.T) {
	rs := txnResults()
	tests := []struct {
		name string
		msg  string
		t    *modules.Transaction
		want string
	}{
		{"rolled back", rs["rolled back"].Msg, rs["rolled back"].Transaction,
			"rolled back (no confirmation came before the deadline): the change was eth0: state up → down"},
		{"rollback failed", rs["rollback failed"].Msg, rs["rollback failed"].Transaction,
			"rolled back (no confirmation came before the deadline): the change was bond0: slaves + eth1"},
		{"recovered", rs["recovered"].Msg, rs["recovered"].Transaction, "rolled back (pending when the helper started)"},
		{"another ending is kept whole", "rolled back (x): restored eth0: something else", rs["rolled back"].Transaction,
			"rolled back (x): restored eth0: something else"},
		{"a message that is only the tail is kept", "; verified equal to the state before the change",
			&modules.Transaction{State: modules.TxnRolledBack, Verified: true}, "; verified equal to the state before the change"},
		{"not rolled back", rs["confirmed"].Msg, rs["confirmed"].Transaction, rs["confirmed"].Msg},
		{"no transaction", "x: restored y", nil, "x: restored y"},
	}
	for _, tt := range tests {
		if got := TransactionMessage(tt.msg, tt.t); got != tt.want {
			t.Errorf("%s: got %q, want %q", tt.name, got, tt.want)
		}
	}
}

// TestTransactionLinesEscapeHostText: what the host says of its rollback cannot drive the
// terminal nor start a line of its own, in the human view and in JUnit.
func TestTransactionLinesEscapeHostText(t *testing.T) {
	r := run.Result{Host: "lab07", Play: "p", Task: "t", Module: "interface", Status: run.Failed, Msg: "rolled back",
		Transaction: &modules.Transaction{ID: "tx\x1b]0;x\x07", State: modules.TxnRollbackFailed, Armed: "sys\ntemd",
			Restored: []string{"eth0" + fakeOK}, Verification: []string{"eth1\nlab07 ok  t" + clipboard}, Error: "e" + title}}
	for _, colour := range []bool{false, true} {
		var b bytes.Buffer
		(&Human{W: &b, Color: colour}).TaskDone(r)
		rest := printerEscape.ReplaceAllString(b.String(), "")
		if i := strings.IndexAny(rest, "\x1b\r\x07"); i >= 0 {
			t.Errorf("colour=%v: a control character reached the terminal: %q", colour, rest)
		}
		if regexp.MustCompile(`(?m)^lab07 ok`).MatchString(rest) || strings.Count(rest, "\n") != 5 {
			t.Errorf("colour=%v: the host's text started a line of its own:\n%s", colour, rest)
		}
	}
	var b bytes.Buffer
	u := &JUnit{W: &b}
	u.TaskDone(r)
	u.Finish(&run.Recap{})
	if strings.Contains(b.String(), "\x1b") || strings.Contains(b.String(), "&#x1B;") || strings.Contains(b.String(), "&#x7;") {
		t.Errorf("JUnit keeps a control character:\n%s", b.String())
	}
}

// TestTransactionLinesBounded: a host that reports thousands of restored or different
// things gets MaxTransactionLines of each shown, and how many more there are.
func TestTransactionLinesBounded(t *testing.T) {
	many := make([]string, 5000)
	for i := range many {
		many[i] = "eth" + strings.Repeat("x", i%7)
	}
	tests := []struct {
		name  string
		t     *modules.Transaction
		lines int
		last  string
	}{
		{"restored", &modules.Transaction{ID: "a", State: modules.TxnRolledBack, Restored: many}, 1 + MaxTransactionLines + 1,
			"restored: ... (4968 more)"},
		{"still different", &modules.Transaction{ID: "a", State: modules.TxnRollbackFailed, Verification: many, Error: "e"},
			1 + MaxTransactionLines + 2, "error: e"},
		{"exactly the bound", &modules.Transaction{ID: "a", State: modules.TxnRolledBack, Restored: many[:MaxTransactionLines]},
			1 + MaxTransactionLines, "restored: " + many[MaxTransactionLines-1]},
	}
	for _, tt := range tests {
		got := TransactionLines(tt.t)
		if len(got) != tt.lines || got[len(got)-1] != tt.last {
			t.Errorf("%s: %d lines ending %q, want %d ending %q", tt.name, len(got), got[len(got)-1], tt.lines, tt.last)
		}
	}
}
