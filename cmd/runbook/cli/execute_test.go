package cli

import (
	"io"
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

// TestReadPasswordLines: without a terminal each prompt takes one line of standard input
// and leaves the next to the next prompt (--ask-vault-pass, then the become password).
func TestReadPasswordLines(t *testing.T) {
	a := &app{stdin: strings.NewReader("vault-pw\r\nbecome-pw\nlast"), stderr: io.Discard}
	for _, want := range []string{"vault-pw", "become-pw", "last"} {
		got, err := a.readPassword("? ")
		if err != nil || got != want {
			t.Fatalf("got %q, %v; want %q", got, err, want)
		}
	}
	if _, err := a.readPassword("? "); err == nil {
		t.Fatal("no error at the end of standard input")
	}
	long := &app{stdin: strings.NewReader(strings.Repeat("x", maxPasswordLine+10) + "\n"), stderr: io.Discard}
	if _, err := long.readPassword("? "); err == nil || !strings.Contains(err.Error(), "longer than") {
		t.Fatalf("a line without end: %v", err)
	}
}
