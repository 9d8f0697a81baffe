package sh

import (
	"os/exec"
	"testing"
)

func TestQuote(t *testing.T) {
	for in, want := range map[string]string{
		"root": "root", "": "''", "a b": "'a b'", "it's": `'it'\''s'`, "[runbook-sudo-1]": "'[runbook-sudo-1]'",
	} {
		if got := Quote(in); got != want {
			t.Errorf("Quote(%q) = %s; want %s", in, got, want)
		}
	}
}

func TestQuoteRoundTrips(t *testing.T) {
	for _, s := range []string{"", "plain", "/var/lib/x-1", "it's", "[x]", "*", "a b\tc\n", `$(rm -rf /) "x" \ ;`} {
		out, err := exec.Command("/bin/sh", "-c", "printf %s "+Quote(s)).Output()
		if err != nil || string(out) != s {
			t.Errorf("Quote(%q): sh printed %q, %v", s, out, err)
		}
	}
}
