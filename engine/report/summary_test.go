package report

import (
	"testing"

	"github.com/runbook/runbook/engine/history"
)

// TestSummaryCountsEachState: every host state the history records lands in its own count;
// a host whose check could not predict a task is not counted as in sync.
func TestSummaryCountsEachState(t *testing.T) {
	tests := []struct {
		status string
		want   Summary
	}{
		{history.HostOK, Summary{Hosts: 1, InSync: 1}},
		{history.HostChanged, Summary{Hosts: 1, InSync: 1}},
		{history.HostDrift, Summary{Hosts: 1, Drifting: 1}},
		{history.HostUnknown, Summary{Hosts: 1, Unknown: 1}},
		{history.HostFailed, Summary{Hosts: 1, Failed: 1}},
		{history.HostUnreachable, Summary{Hosts: 1, Unreachable: 1}},
	}
	for _, tt := range tests {
		var s Summary
		s.add(tt.status)
		if s != tt.want {
			t.Errorf("%s: got %+v, want %+v", tt.status, s, tt.want)
		}
	}
}
