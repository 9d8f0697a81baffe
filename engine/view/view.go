// Package view shows a run: for people (coloured lines as results arrive, a recap table and
// what the run left behind), as JSON lines, and as JUnit XML. New builds the view of the
// kind a command was asked for from one set of Options; every view implements View and is
// fed by the same engine events, so a command asks nothing of its view but what View says.
package view

import (
	"fmt"
	"io"

	"github.com/runbook/runbook/engine/run"
)

// Kind names an output format, as --output spells it.
type Kind string

const (
	// KindHuman is for people: Human.
	KindHuman Kind = "text"
	// KindJSON is one JSON object per line: JSON.
	KindJSON Kind = "json"
	// KindJUnit is a JUnit XML document: JUnit.
	KindJUnit Kind = "junit"
)

// Options are what a command knows about the run's output. Every view is built from the
// same options and uses those that mean something in its format.
type Options struct {
	// W receives the output.
	W io.Writer
	// Color colours the output for a terminal.
	Color bool
	// Verbose shows every result, ok and skipped too, every host in the recap, and how the
	// helper was started and verified.
	Verbose bool
	// Quiet shows only failed and unreachable results (and the recap).
	Quiet bool
	// Diff shows before/after differences.
	Diff bool
	// Live redraws a progress line while the run goes on: for a terminal only. Total is how
	// many hosts it counts.
	Live  bool
	Total int
	// Check is a check run: for people, the output ends with the drift report.
	Check bool
}

// View shows one run. The engine feeds it events (run.Observer); the command then writes the
// recap (Finish) and, once the run's record is kept, what follows it (Footer).
type View interface {
	run.Observer
	// Hold runs fn with the view's output held: for a prompt or a warning on the terminal
	// the view may be drawing on. Views that draw nothing between results just run fn.
	Hold(fn func())
	// Finish writes the recap.
	Finish(r *run.Recap) error
	// Footer writes what follows the recap, after the run's record is kept. It is best
	// effort, like the record: the run's exit code is the recap's.
	Footer(f Footer)
}

// Footer is what a run leaves besides its results: where it was recorded and how the helper
// was started on the hosts.
type Footer struct {
	// History is the run's record, nil when none was kept.
	History *Record
	// Helper counts the helper's starts and verifications.
	Helper HelperStats
}

// Record names a run in the history.
type Record struct {
	RunID int64
	// Location is where the history is, as the history names it (without a password).
	Location string
}

// HelperStats counts what starting the helper took. A host runs a helper per identity its
// tasks run as (become), so Pushed+Reused can be more than Hosts.
type HelperStats struct {
	// Hosts is how many hosts a helper started on.
	Hosts int
	// Pushed and Reused count the helpers started: pushed to the host, or found there.
	Pushed, Reused int
	// Hashed and Stamped count the verifications of a helper's file: by its hash, or by a
	// stamp left by an earlier hash.
	Hashed, Stamped int
	// Sent is the bytes of the helpers pushed, as sent (compressed where the host can
	// inflate them).
	Sent int64
}

// New returns the view of kind k.
func New(k Kind, o Options) (View, error) {
	switch k {
	case KindHuman:
		return &Human{W: o.W, Color: o.Color, Verbose: o.Verbose, Quiet: o.Quiet, Diff: o.Diff, Live: o.Live, Total: o.Total,
			DriftReport: o.Check}, nil
	case KindJSON:
		return &JSON{W: o.W}, nil
	case KindJUnit:
		return &JUnit{W: o.W}, nil
	}
	return nil, fmt.Errorf("no output format %q (%q, %q or %q)", k, KindHuman, KindJSON, KindJUnit)
}

var (
	_ View = (*Human)(nil)
	_ View = (*JSON)(nil)
	_ View = (*JUnit)(nil)
)
