// Package view shows a run's events: for people (coloured lines as results arrive and a
// recap table), as JSON lines, and as JUnit XML. Every view implements run.Observer plus
// Finish, fed by the same engine events.
package view

import (
	"github.com/runbook/runbook/engine/run"
)

// View is an engine observer that can also close the run's output.
type View interface {
	run.Observer
	Finish(r *run.Recap) error
}
