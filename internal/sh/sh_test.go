package sh

import (
	"os/exec"
	"testing"
)

func TestQuoteRoundTrips(t *testing.T) {
	for _, s := range []string{"", "plain", "it's", "a b\tc\n", `$(rm -rf /) "x" \ ;`} {
		out, err := exec.Command("/bin/sh", "-c", "printf %s "+Quote(s)).Output()
		if err != nil || string(out) != s {
			t.Errorf("Quote(%q): sh printed %q, %v", s, out, err)
		}
	}
}
