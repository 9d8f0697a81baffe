package view

import (
	"strings"
	"testing"

	"github.com/runbook/runbook/modules"
)

func TestUnifiedKeepsContextOnly(t *testing.T) {
	var before, after []string
	for i := 0; i < 20; i++ {
		before = append(before, "line")
		after = append(after, "line")
	}
	after[10] = "changed"
	got := Unified(&modules.Diff{Before: strings.Join(before, "\n"), After: strings.Join(after, "\n")})
	if strings.Count(got, "\n") > 12 || !strings.Contains(got, "-line\n+changed") && !strings.Contains(got, "+changed\n-line") {
		t.Errorf("diff:\n%s", got)
	}
}
