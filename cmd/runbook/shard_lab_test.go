package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/runbook/runbook/engine/helperbin"
	"github.com/runbook/runbook/engine/history"
	"github.com/runbook/runbook/engine/plan"
	runreport "github.com/runbook/runbook/engine/report"
	"github.com/runbook/runbook/internal/labtest"
	"github.com/runbook/runbook/internal/pgtest"
	"github.com/runbook/runbook/testenv"
	"github.com/runbook/runbook/testenv/testlab"
)

// shardSite is the fleet runbook of TestShardedFleetRun: two files that each host has or
// lacks.
const shardSite = `play "fleet" {
  hosts = "all"
  task "conf" {
    copy {
      dest    = "/tmp/fleet.conf"
      content = "fleet\n"
    }
  }
  task "conf2" {
    copy {
      dest    = "/tmp/fleet2.conf"
      content = "fleet 2\n"
    }
  }
}
`

// reportJSON is what the test reads of runbook report -o json.
type reportJSON struct {
	Hosts []struct {
		Host   string
		Run    int64
		Status string
		Counts history.Counts
		Drift  []struct{ Task, Status string }
		Failed []struct{ Task, Status string }
	}
	Fleet *struct {
		Label string
		Runs  []struct {
			Run   int64
			Shard *history.Shard
			Hosts int
		}
		ShardCounts []int `json:"shard_counts"`
		Missing     []int `json:"missing_shards"`
		Superseded  []int64
		Hosts       int
		Counts      history.Counts
		ExitCode    int `json:"exit_code"`
		Finished    bool
		Complete    bool
		DurationMS  int64 `json:"duration_ms"`
	}
}

// TestShardedFleetRun runs one check of an 8-host lab two ways, both recording into one
// real PostgreSQL history: by one controller, and by four shard processes of the real
// binary started at once with the environment of a Kubernetes Indexed Job
// (JOB_COMPLETION_INDEX, and the JOB_COMPLETIONS its manifest sets). runbook report
// --run-label shows the four as one fleet run that equals the single controller's, host
// for host: the same statuses, counts and drifting or failing tasks.
func TestShardedFleetRun(t *testing.T) {
	lab := testlab.Start(t, testenv.Options{Tier: testenv.TierNS, Hosts: 8})
	pg := pgtest.URL(t)
	helpers := labtest.Helpers(t)
	bin := filepath.Join(t.TempDir(), "runbook")
	build := exec.Command("go", "build", "-o", bin, "./cmd/runbook")
	build.Dir = labtest.Root()
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build runbook: %v\n%s", err, out)
	}
	dir := t.TempDir()
	site := filepath.Join(dir, "site.hcl")
	if err := os.WriteFile(site, []byte(shardSite), 0o644); err != nil {
		t.Fatal(err)
	}
	base := []string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir(), "XDG_STATE_HOME=" + t.TempDir(), "NO_COLOR=1",
		"SSH_AUTH_SOCK=", helperbin.EnvDir + "=" + helpers, "RUNBOOK_HISTORY=" + pg}
	runbook := func(env []string, args ...string) (int, string, string) {
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, bin, args...)
		cmd.Env = append(append([]string{}, base...), env...)
		cmd.Dir = dir
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		err := cmd.Run()
		var ee *exec.ExitError
		switch {
		case err == nil:
			return 0, stdout.String(), stderr.String()
		case errors.As(err, &ee) && ctx.Err() == nil:
			return ee.ExitCode(), stdout.String(), stderr.String()
		}
		t.Fatalf("runbook %s: %v\n%s%s", strings.Join(args, " "), err, stdout.String(), stderr.String())
		return 0, "", ""
	}

	// The hosts differ: lab01 has both files, lab02 and lab05 only the first, lab03 only
	// the second, the others neither; lab08's sshd is stopped. (Ad-hoc runs keep no
	// history.)
	for _, pre := range []struct{ hosts, dest, content string }{
		{"lab01,lab02,lab05", "/tmp/fleet.conf", "fleet\n"},
		{"lab01,lab03", "/tmp/fleet2.conf", "fleet 2\n"},
	} {
		if code, out, errOut := runbook(nil, "run", "-i", lab.Inventory, pre.hosts, "copy", "dest="+pre.dest, "content="+pre.content); code != 0 {
			t.Fatalf("prepare %s: exit %d\n%s%s", pre.hosts, code, out, errOut)
		}
	}
	if err := lab.Break("lab08", testenv.BreakStop); err != nil {
		t.Fatal(err)
	}

	// One controller.
	code, out, errOut := runbook(nil, "check", site, "-i", lab.Inventory, "--run-label", "single")
	if code != 3 {
		t.Fatalf("the single controller's check: exit %d, want 3 (lab08 unreachable)\n%s%s", code, out, errOut)
	}

	// Four shards at once, as the pods of an Indexed Job with completions: 4.
	type shardOut struct {
		code     int
		out, err string
	}
	shards := make([]shardOut, 4)
	var wg sync.WaitGroup
	for i := range shards {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, o, e := runbook([]string{fmt.Sprintf("JOB_COMPLETION_INDEX=%d", i), "JOB_COMPLETIONS=4"},
				"check", site, "-i", lab.Inventory, "--run-label", "fleet 2026-12-07", "-v")
			shards[i] = shardOut{c, o, e}
		}()
	}
	wg.Wait()
	byShard := map[int][]string{}
	for i := 1; i <= 8; i++ {
		h := fmt.Sprintf("lab%02d", i)
		byShard[plan.ShardOf(h, 4)] = append(byShard[plan.ShardOf(h, 4)], h)
	}
	for i, s := range shards {
		want := fmt.Sprintf("runbook: shard %d/4 (from $JOB_COMPLETION_INDEX/$JOB_COMPLETIONS): %d hosts of the 8 the run selects\n", i, len(byShard[i]))
		if !strings.Contains(s.err, want) {
			t.Errorf("shard %d does not say %q:\n%s%s", i, want, s.out, s.err)
		}
		wantCode := 4 // drift
		if byShard[i] == nil {
			wantCode = 0
		}
		for _, h := range byShard[i] {
			if h == "lab08" {
				wantCode = 3
			}
		}
		if s.code != wantCode {
			t.Errorf("shard %d (%v): exit %d, want %d\n%s%s", i, byShard[i], s.code, wantCode, s.out, s.err)
		}
		// Each shard touched its hosts and no other.
		for j := 1; j <= 8; j++ {
			h := fmt.Sprintf("lab%02d", j)
			mine := plan.ShardOf(h, 4) == i
			if strings.Contains(s.out, h) != mine {
				t.Errorf("shard %d: %s in its output: %v, in the shard: %v\n%s", i, h, !mine, mine, s.out)
			}
		}
	}

	report := func(label string) reportJSON {
		t.Helper()
		code, out, errOut := runbook(nil, "report", "--run-label", label, "-o", "json")
		if code != 0 {
			t.Fatalf("report --run-label %q: exit %d\n%s%s", label, code, out, errOut)
		}
		var r reportJSON
		if err := json.Unmarshal([]byte(out), &r); err != nil {
			t.Fatalf("report --run-label %q: %v\n%s", label, err, out)
		}
		return r
	}
	single, fleet := report("single"), report("fleet 2026-12-07")

	// Host for host, the same.
	type hostView struct {
		Status        string
		Counts        history.Counts
		Drift, Failed []string
	}
	view := func(r reportJSON) map[string]hostView {
		out := map[string]hostView{}
		for _, h := range r.Hosts {
			v := hostView{Status: h.Status, Counts: h.Counts}
			for _, d := range h.Drift {
				v.Drift = append(v.Drift, d.Task+"="+d.Status)
			}
			for _, f := range h.Failed {
				v.Failed = append(v.Failed, f.Task+"="+f.Status)
			}
			out[h.Host] = v
		}
		return out
	}
	sv, fv := view(single), view(fleet)
	if len(sv) != 8 || !reflect.DeepEqual(sv, fv) {
		t.Errorf("the fleet run's hosts differ from the single controller's:\nsingle: %+v\nfleet:  %+v", sv, fv)
	}
	wantStatus := map[string]string{"lab01": "ok", "lab02": "drift", "lab03": "drift", "lab04": "drift", "lab05": "drift",
		"lab06": "drift", "lab07": "drift", "lab08": "unreachable"}
	for h, st := range wantStatus {
		if sv[h].Status != st {
			t.Errorf("%s: status %q, want %q", h, sv[h].Status, st)
		}
	}

	// The fleet run: four runs, one per shard, the counts summed, the worst exit code.
	f, s := fleet.Fleet, single.Fleet
	if f == nil || s == nil {
		t.Fatalf("no fleet run in the reports")
	}
	if f.Hosts != 8 || f.Counts != s.Counts || f.ExitCode != 3 || s.ExitCode != 3 || !f.Finished || !f.Complete ||
		!reflect.DeepEqual(f.ShardCounts, []int{4}) || len(f.Missing) != 0 || len(f.Superseded) != 0 || len(f.Runs) != 4 {
		t.Errorf("fleet run: %+v\nsingle: %+v", f, s)
	}
	runOf := map[int64]int{}
	seen := map[int]bool{}
	for _, r := range f.Runs {
		if r.Shard == nil || r.Shard.Count != 4 || seen[r.Shard.Index] || r.Hosts != len(byShard[r.Shard.Index]) {
			t.Errorf("fleet run's run %d: shard %+v, %d hosts", r.Run, r.Shard, r.Hosts)
			continue
		}
		seen[r.Shard.Index] = true
		runOf[r.Run] = r.Shard.Index
	}
	// Each host's row comes from the run of its shard.
	for _, h := range fleet.Hosts {
		i, ok := runOf[h.Run]
		switch {
		case !ok:
			t.Errorf("%s is reported from run %d, which is not one of the fleet run's", h.Host, h.Run)
		case i != plan.ShardOf(h.Host, 4):
			t.Errorf("%s is reported from run %d (shard %d), not from its shard %d's", h.Host, h.Run, i, plan.ShardOf(h.Host, 4))
		}
	}
	// The text report says the same.
	code, out, errOut = runbook(nil, "report", "--run-label", "fleet 2026-12-07")
	if code != 0 || !strings.Contains(out, `FLEET RUN "fleet 2026-12-07": finished`+"\n") || !strings.Contains(out, "  4 runs, 8 hosts, exit code 3, from ") ||
		strings.Contains(out, "missing") || !strings.Contains(out, "8 hosts: 1 in sync, 6 drifting, 0 failed, 1 unreachable") {
		t.Errorf("report --run-label: exit %d\n%s%s", code, out, errOut)
	}
	t.Logf("runbook report --run-label 'fleet 2026-12-07':\n%s", out)

	// Without a label, the trend shows each fleet run as one point: the single run, then the
	// four shards' runs, with the same hosts in the same states.
	code, out, errOut = runbook(nil, "report", "-o", "json")
	if code != 0 {
		t.Fatalf("report: exit %d\n%s%s", code, out, errOut)
	}
	var trend struct {
		Runs []struct {
			Label  string
			RunIDs []int64 `json:"run_ids"`
			runreport.Summary
		}
	}
	if err := json.Unmarshal([]byte(out), &trend); err != nil {
		t.Fatalf("report: %v\n%s", err, out)
	}
	if p := trend.Runs; len(p) != 2 || p[0].Label != "single" || len(p[0].RunIDs) != 1 || p[1].Label != "fleet 2026-12-07" ||
		len(p[1].RunIDs) != 4 || p[0].Summary != p[1].Summary || p[1].Hosts != 8 {
		t.Errorf("the trend's points: %+v", p)
	}

	var hosts []string
	for h := range fv {
		hosts = append(hosts, h)
	}
	sort.Strings(hosts)
	t.Logf("fleet run: %d runs, %d hosts %v, exit %d, span %d ms", len(f.Runs), f.Hosts, hosts, f.ExitCode, f.DurationMS)
}
