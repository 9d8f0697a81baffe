package history

import (
	"os"
	"testing"

	"github.com/runbook/runbook/internal/pgtest"
)

func TestMain(m *testing.M) {
	code := m.Run()
	pgtest.Stop()
	os.Exit(code)
}

// postgresURL returns the URL of a new, empty database on the test server (pgtest.URL).
func postgresURL(t *testing.T) string { return pgtest.URL(t) }
