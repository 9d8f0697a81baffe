package history

import (
	"testing"

	"github.com/runbook/runbook/modules"
)

// TestHostStatus: a host's status is the worst of its tasks' in the order unreachable,
// failed, drift, unknown, changed, ok; skipped tasks count as nothing, and every status
// is a task status.
func TestHostStatus(t *testing.T) {
	tests := []struct {
		c    Counts
		want string
	}{
		{Counts{}, HostOK},
		{Counts{OK: 3, Skipped: 2}, HostOK},
		{Counts{OK: 1, Changed: 1}, HostChanged},
		{Counts{OK: 1, Unknown: 1}, HostUnknown},
		{Counts{Changed: 2, Unknown: 1}, HostUnknown},
		{Counts{Unknown: 4, Drift: 1}, HostDrift},
		{Counts{Drift: 1, Failed: 1}, HostFailed},
		{Counts{Failed: 1, Unreachable: 1, Unknown: 1}, HostUnreachable},
	}
	for _, tt := range tests {
		got := tt.c.HostStatus()
		if got != tt.want {
			t.Errorf("%+v: %s, want %s", tt.c, got, tt.want)
		}
		if !modules.Status(got).Valid() {
			t.Errorf("%+v: %q is not a status", tt.c, got)
		}
	}
}
