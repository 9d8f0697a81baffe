package protocol

import (
	"strings"
	"testing"

	"github.com/runbook/runbook/modules"
)

// TestResponseStatuses: a response carries a status a module reports, or failed (with its
// error); the engine's own statuses never come from a helper, and the wire strings are
// those of modules.Status.
func TestResponseStatuses(t *testing.T) {
	for _, s := range modules.Statuses() {
		line := `{"id":1,"status":"` + string(s) + `"}`
		if s == StatusFailed {
			line = `{"id":1,"status":"failed","error":{"message":"boom"}}`
		}
		r, err := DecodeResponse([]byte(line))
		wantOK := s.FromModule() || s == modules.StatusFailed
		switch {
		case wantOK && err != nil:
			t.Errorf("%s: %v", s, err)
		case wantOK && r.Status != s:
			t.Errorf("%s: decoded as %q", s, r.Status)
		case !wantOK && (err == nil || !strings.Contains(err.Error(), `unknown status "`+string(s)+`"`)):
			t.Errorf("%s: a helper may not report it, got %v", s, err)
		}
	}
	if StatusFailed != "failed" {
		t.Errorf("StatusFailed = %q on the wire, want failed", StatusFailed)
	}
}
