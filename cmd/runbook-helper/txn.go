package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"

	"github.com/runbook/runbook/modules/txn"
)

// runTxn is `runbook-helper txn rollback|watch|boot`: what an armed rollback runs on the host,
// without the controller (modules/txn). It prints each outcome as a JSON line on stdout
// (the journal of a systemd unit, or /dev/null for the watchdog); the outcome is also kept
// in the transactions directory for the controller to read.
func runTxn(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprintln(stderr, "usage: runbook-helper txn rollback|watch --dir DIR --id ID | boot --dir DIR")
		return 2
	}
	sub := args[0]
	fs := flag.NewFlagSet("runbook-helper txn "+sub, flag.ContinueOnError)
	fs.SetOutput(stderr)
	dir := fs.String("dir", txn.DefaultDir, "the transactions directory")
	id := fs.String("id", "", "the transaction")
	if err := fs.Parse(args[1:]); err != nil || fs.NArg() > 0 {
		return 2
	}
	m := &txn.Manager{Dir: *dir}
	var outs []txn.Outcome
	var err error
	switch sub {
	case txn.CmdRollback:
		var o *txn.Outcome
		if o, err = m.RollbackPatiently(*id, "no confirmation came before the deadline"); o != nil {
			outs = append(outs, *o)
		}
	case txn.CmdWatch:
		var o *txn.Outcome
		if o, err = m.Watch(*id); o != nil {
			outs = append(outs, *o)
		}
	case txn.CmdBoot:
		outs, err = m.Boot()
	default:
		fmt.Fprintf(stderr, "runbook-helper txn: unknown subcommand %q\n", sub)
		return 2
	}
	enc := json.NewEncoder(stdout)
	for _, o := range outs {
		_ = enc.Encode(o)
	}
	if err != nil {
		fmt.Fprintf(stderr, "runbook-helper txn %s: %v\n", sub, err)
		return 1
	}
	return 0
}
