package labtest

import (
	"context"
	"testing"
	"time"

	"github.com/runbook/runbook/testenv"
	"github.com/runbook/runbook/testenv/testlab"
)

// TestTimelineOnLabHost runs the timeline with the file module on a namespace-tier host,
// and checks that the snapshot hook sees the host's real state.
func TestTimelineOnLabHost(t *testing.T) {
	lab := testlab.Start(t, testenv.Options{Tier: testenv.TierNS, Hosts: 1})
	r := New(t, lab)
	snap := func() string {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		out, _ := lab.Exec(ctx, "lab01", "sh", "-c", "stat -c %a /var/lib/labtest 2>&1")
		return string(out)
	}
	before := snap()
	res := r.Timeline("lab01", "file", []string{"path=/var/lib/labtest", "state=directory", "mode=0711"}, snap)
	if after := snap(); after == before || after != "711\n" {
		t.Fatalf("the directory was not made: before %q, after %q\n%s", before, after, res[1].Out)
	}
}
