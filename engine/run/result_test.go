package run

import (
	"testing"

	"github.com/runbook/runbook/modules"
)

// TestEveryStatusCounts: each status, from the one list in modules, is counted in its own
// field of Stats and has its own rank in worse; none is dropped silently.
func TestEveryStatusCounts(t *testing.T) {
	ranks := map[Status]bool{}
	for _, st := range modules.Statuses() {
		var s Stats
		s.add(st, 1)
		if n := s.OK + s.Changed + s.Drift + s.Unknown + s.Skipped + s.Failed + s.Unreachable; n != 1 {
			t.Errorf("%s: counted %d times", st, n)
		}
		if worse(Skipped, st) != st || worse(st, Skipped) != st {
			t.Errorf("%s ranks below skipped", st)
		}
		ranks[st] = true
	}
	if len(ranks) != 7 {
		t.Errorf("%d statuses, want 7", len(ranks))
	}
	// the order the recap's worse follows: unreachable > failed > changed > drift > unknown > ok > skipped
	order := []Status{Skipped, OK, Unknown, Drift, Changed, Failed, Unreachable}
	for i := 1; i < len(order); i++ {
		if worse(order[i-1], order[i]) != order[i] || worse(order[i], order[i-1]) != order[i] {
			t.Errorf("worse(%s, %s) is not %s", order[i-1], order[i], order[i])
		}
	}
}

// TestExitCodes: the lowest non-zero code that applies wins; an interrupted run failed.
func TestExitCodes(t *testing.T) {
	tests := []struct {
		hosts       []Stats
		interrupted bool
		want        int
	}{
		{nil, false, ExitOK},
		{[]Stats{{OK: 2, Changed: 1, Unknown: 1, Skipped: 1}}, false, ExitOK},
		{[]Stats{{Drift: 1}}, false, ExitDrift},
		{[]Stats{{Drift: 1}, {Unreachable: 1}}, false, ExitUnreachable},
		{[]Stats{{Drift: 1}, {Unreachable: 1}, {Failed: 1}}, false, ExitFailed},
		{[]Stats{{OK: 1}}, true, ExitFailed},
	}
	for i, tt := range tests {
		r := &Recap{Hosts: map[string]*Stats{}, Interrupted: tt.interrupted}
		for j := range tt.hosts {
			r.Hosts[string(rune('a'+j))] = &tt.hosts[j]
		}
		if got := r.ExitCode(); got != tt.want {
			t.Errorf("%d: exit %d, want %d", i, got, tt.want)
		}
	}
	if ExitInvalid != 1 || ExitOK != 0 || ExitFailed != 2 || ExitUnreachable != 3 || ExitDrift != 4 {
		t.Error("the exit codes changed: they are documented (docs/compliance.md) and scripts depend on them")
	}
}
