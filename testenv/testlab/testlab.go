// Package testlab starts a lab (package testenv) for a Go test. It is imported by tests
// only: it needs the testing package, which must not be linked into cmd/testenv.
package testlab

import (
	"testing"

	"github.com/runbook/runbook/testenv"
)

// Start brings up a lab for a test and tears it down in t.Cleanup.
//
// It skips the test under -short, when not root, or when the tier's
// prerequisites are missing, unless CI=true: then a lab that cannot start
// fails the test, so CI can never silently skip the lab tests. Layers the
// lab asks for are built first; one that cannot be built skips the test in
// the same way.
func Start(t testing.TB, opts testenv.Options) *testenv.Lab {
	t.Helper()
	return testenv.StartTest(t, testing.Short(), opts)
}
