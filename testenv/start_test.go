package testenv

import "testing"

// Start is testlab.Start for the tests of this package, which testlab imports.
func Start(t testing.TB, opts Options) *Lab {
	t.Helper()
	return StartTest(t, testing.Short(), opts)
}
