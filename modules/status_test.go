package modules

import "testing"

// TestStatus: the seven statuses with their wire strings, which ones a module may report,
// and that nothing else is one.
func TestStatus(t *testing.T) {
	tests := []struct {
		s          Status
		wire       string
		valid      bool
		fromModule bool
	}{
		{StatusOK, "ok", true, true},
		{StatusChanged, "changed", true, true},
		{StatusDrift, "drift", true, true},
		{StatusUnknown, "unknown", true, true},
		{StatusSkipped, "skipped", true, false},
		{StatusFailed, "failed", true, false},
		{StatusUnreachable, "unreachable", true, false},
		{"", "", false, false},
		{"OK", "OK", false, false},
		{"ok ", "ok ", false, false},
		{"error", "error", false, false},
	}
	valid := 0
	for _, tt := range tests {
		if string(tt.s) != tt.wire {
			t.Errorf("%q: wire form %q, want %q", tt.s, string(tt.s), tt.wire)
		}
		if got := tt.s.Valid(); got != tt.valid {
			t.Errorf("%q.Valid() = %v, want %v", tt.s, got, tt.valid)
		}
		if got := tt.s.FromModule(); got != tt.fromModule {
			t.Errorf("%q.FromModule() = %v, want %v", tt.s, got, tt.fromModule)
		}
		if tt.valid {
			valid++
		}
	}
	all := Statuses()
	if len(all) != valid {
		t.Errorf("Statuses() has %d, want %d", len(all), valid)
	}
	seen := map[Status]bool{}
	for i, s := range all {
		if !s.Valid() || seen[s] {
			t.Errorf("Statuses()[%d] = %q: invalid or repeated", i, s)
		}
		seen[s] = true
	}
	if all[0] != StatusOK || all[len(all)-1] != StatusUnreachable {
		t.Errorf("Statuses() = %v, want the recap's order, ok first, unreachable last", all)
	}
}
