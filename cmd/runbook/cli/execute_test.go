package cli

import (
	"strings"
	"testing"
)

// The key path in the passphrase prompt can come from a dynamic inventory: its controls
// and newlines are shown as escapes, and the prompt stays one line.
func TestPassphrasePrompt(t *testing.T) {
	tests := []struct {
		path, want string
	}{
		{"/home/me/.ssh/id_ed25519", "Enter passphrase for key '/home/me/.ssh/id_ed25519': "},
		{"/k\r\x1b[2KEnter password for root: ", `Enter passphrase for key '/k\r\x1b[2KEnter password for root: ': `},
		{"/k\nsudo password:\u202e\u009b", `Enter passphrase for key '/k\nsudo password:\u202e\u009b': `},
	}
	for _, tt := range tests {
		if got := passphrasePrompt(tt.path); got != tt.want || strings.ContainsAny(got, "\r\n\x1b\u202e\u009b") {
			t.Errorf("passphrasePrompt(%q) = %q, want %q", tt.path, got, tt.want)
		}
	}
}
