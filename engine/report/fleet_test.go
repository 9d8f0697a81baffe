package report

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/runbook/runbook/engine/history"
)

func TestWorstExitCode(t *testing.T) {
	for _, c := range []struct {
		codes []int
		want  int
	}{
		{nil, 0},
		{[]int{0, 0}, 0},
		{[]int{0, 4}, 4},
		{[]int{4, 3, 0}, 3},
		{[]int{3, 2, 4}, 2},
		{[]int{2, 1}, 1},
		{[]int{0, -1, 2}, -1},
	} {
		if got := WorstExitCode(c.codes...); got != c.want {
			t.Errorf("WorstExitCode(%v) = %d, want %d", c.codes, got, c.want)
		}
	}
}

func TestFleetOf(t *testing.T) {
	t0 := time.Date(2026, 12, 7, 21, 0, 0, 0, time.UTC)
	sh := func(i, n int) *history.Shard { return &history.Shard{Index: i, Count: n} }
	r := func(id int64, shard *history.Shard, start, end int, code int, hosts int, c history.Counts) history.Run {
		run := history.Run{ID: id, Shard: shard, StartedAt: t0.Add(time.Duration(start) * time.Second), ExitCode: code, Hosts: hosts,
			Counts: c, Mode: history.ModeCheck, Controller: "ctl"}
		if end >= 0 {
			run.FinishedAt = t0.Add(time.Duration(end) * time.Second)
		}
		return run
	}
	ok := func(n int) history.Counts { return history.Counts{OK: n} }
	cases := []struct {
		name       string
		runs       []history.Run
		counted    []int64
		superseded []int64
		missing    []int
		hosts      int
		counts     history.Counts
		exit       int
		span       int64
		complete   bool
	}{
		{
			name: "four shards",
			runs: []history.Run{r(4, sh(3, 4), 3, 9, 0, 2, ok(4)), r(1, sh(0, 4), 1, 5, 0, 2, ok(4)),
				r(2, sh(1, 4), 0, 7, 4, 2, history.Counts{OK: 2, Drift: 2}), r(3, sh(2, 4), 2, 6, 3, 2, history.Counts{OK: 2, Unreachable: 1})},
			counted: []int64{1, 2, 3, 4}, hosts: 8, counts: history.Counts{OK: 12, Drift: 2, Unreachable: 1}, exit: 3, span: 9000, complete: true,
		},
		{
			name: "a shard run again counts once, its last run",
			runs: []history.Run{r(1, sh(0, 2), 0, 4, 2, 3, history.Counts{Failed: 1, OK: 2}), r(2, sh(1, 2), 0, 3, 0, 3, ok(3)),
				r(3, sh(0, 2), 10, 12, 0, 3, ok(3))},
			counted: []int64{3, 2}, superseded: []int64{1}, hosts: 6, counts: ok(6), exit: 0, span: 12000, complete: true,
		},
		{
			name:    "a shard missing",
			runs:    []history.Run{r(1, sh(0, 3), 0, 4, 0, 1, ok(1)), r(2, sh(2, 3), 0, 3, 0, 1, ok(1))},
			counted: []int64{1, 2}, missing: []int{1}, hosts: 2, counts: ok(2), exit: 0, span: 4000,
		},
		{
			name:    "a shard not finished",
			runs:    []history.Run{r(1, sh(0, 2), 0, 4, 0, 1, ok(1)), r(2, sh(1, 2), 0, -1, -1, 0, history.Counts{})},
			counted: []int64{1, 2}, hosts: 1, counts: ok(1), exit: -1,
		},
		{
			name:    "regional controllers, not sharded",
			runs:    []history.Run{r(1, nil, 0, 4, 0, 5, ok(5)), r(2, nil, 1, 6, 2, 5, history.Counts{OK: 4, Failed: 1})},
			counted: []int64{1, 2}, hosts: 10, counts: history.Counts{OK: 9, Failed: 1}, exit: 2, span: 6000, complete: true,
		},
		{name: "no runs", exit: -1},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := fleetOf("L", c.runs)
			var ids []int64
			for _, r := range f.Runs {
				ids = append(ids, r.Run)
			}
			if !reflect.DeepEqual(ids, c.counted) || !reflect.DeepEqual(f.Superseded, c.superseded) || !reflect.DeepEqual(f.Missing, c.missing) {
				t.Errorf("counted %v superseded %v missing %v; want %v %v %v", ids, f.Superseded, f.Missing, c.counted, c.superseded, c.missing)
			}
			if f.Hosts != c.hosts || f.Counts != c.counts || f.ExitCode != c.exit || f.DurationMS != c.span || f.Complete != c.complete {
				t.Errorf("hosts %d counts %+v exit %d span %d complete %v; want %d %+v %d %d %v", f.Hosts, f.Counts, f.ExitCode,
					f.DurationMS, f.Complete, c.hosts, c.counts, c.exit, c.span, c.complete)
			}
			if c.exit == -1 && (f.Finished || !f.FinishedAt.IsZero()) {
				t.Errorf("an unfinished fleet run reads as finished at %v", f.FinishedAt)
			}
		})
	}
}

// labelHistory opens a new history and returns it with a function that records a finished
// run: its label and shard, start and end after 21:00, its hosts' counts, its exit code.
func labelHistory(t *testing.T) (history.Store, func(label string, shard *history.Shard, start, end time.Duration, hosts map[string]history.Counts, code int) int64) {
	t.Helper()
	ctx := context.Background()
	s, err := history.Open(ctx, filepath.Join(t.TempDir(), "history.db"), history.Options{Create: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	t0 := time.Date(2026, 12, 7, 21, 0, 0, 0, time.UTC)
	return s, func(label string, shard *history.Shard, start, end time.Duration, hosts map[string]history.Counts, code int) int64 {
		id, err := s.BeginRun(ctx, history.Run{StartedAt: t0.Add(start), Runbook: "/srv/site.hcl", Mode: history.ModeCheck,
			Controller: "pod-<b>", Label: label, Shard: shard})
		if err != nil {
			t.Fatal(err)
		}
		var total history.Counts
		for h, c := range hosts {
			if err := s.RecordHost(ctx, history.HostResult{RunID: id, Host: h, Counts: c}, nil); err != nil {
				t.Fatal(err)
			}
			total.Add(c)
		}
		if err := s.FinishRun(ctx, history.Run{ID: id, FinishedAt: t0.Add(end), ExitCode: code, Hosts: len(hosts), Counts: total}); err != nil {
			t.Fatal(err)
		}
		return id
	}
}

// TestReportByLabel: report --run-label selects the runs of one fleet run, merges their
// hosts and shows the fleet run in text, JSON and HTML, the label escaped.
func TestReportByLabel(t *testing.T) {
	ctx := context.Background()
	s, record := labelHistory(t)
	const label = `night <script>alert("x")</script> & more`
	record("", nil, 0, time.Second, map[string]history.Counts{"a": {OK: 1}, "b": {OK: 1}, "z": {OK: 1}}, 0)
	record(label, &history.Shard{Index: 0, Count: 2}, time.Minute, time.Minute+3*time.Second, map[string]history.Counts{"a": {OK: 1, Drift: 1}}, 4)
	record(label, &history.Shard{Index: 1, Count: 2}, time.Minute+time.Second, time.Minute+5*time.Second, map[string]history.Counts{"b": {OK: 2}}, 0)
	record("other", nil, 2*time.Minute, 2*time.Minute+time.Second, map[string]history.Counts{"a": {Failed: 1}}, 2)

	rep, err := Build(ctx, s, Options{Filter: history.Filter{Label: label}})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Hosts) != 2 || rep.Hosts[0].Host != "a" || rep.Hosts[0].Status != history.HostDrift || rep.Hosts[1].Host != "b" ||
		rep.Hosts[1].Status != history.HostOK {
		t.Errorf("hosts of the fleet run: %+v", rep.Hosts)
	}
	f := rep.Fleet
	if f == nil || len(f.Runs) != 2 || f.Hosts != 2 || f.Counts != (history.Counts{OK: 3, Drift: 1}) || f.ExitCode != 4 ||
		f.DurationMS != 5000 || !f.Complete || !reflect.DeepEqual(f.ShardCounts, []int{2}) {
		t.Fatalf("fleet: %+v", f)
	}

	var js bytes.Buffer
	if err := rep.JSON(&js); err != nil {
		t.Fatal(err)
	}
	var back struct {
		Filter struct{ Label string }
		Fleet  struct {
			Label      string
			ExitCode   int   `json:"exit_code"`
			DurationMS int64 `json:"duration_ms"`
			Runs       []struct{ Shard *history.Shard }
		}
	}
	if err := json.Unmarshal(js.Bytes(), &back); err != nil {
		t.Fatal(err)
	}
	if back.Filter.Label != label || back.Fleet.Label != label || back.Fleet.ExitCode != 4 || back.Fleet.DurationMS != 5000 ||
		len(back.Fleet.Runs) != 2 || *back.Fleet.Runs[1].Shard != (history.Shard{Index: 1, Count: 2}) {
		t.Errorf("JSON: %s", js.String())
	}

	var txt bytes.Buffer
	if err := rep.Text(&txt, TextOptions{}); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		`FLEET RUN "night <script>alert(\"x\")</script> & more": finished`,
		"  2 runs, 2 hosts, exit code 4, from ",
		"(5s)",
		"  ok=3 changed=0 drift=1 unknown=0 failed=0 unreachable=0 skipped=0",
		"  0/2    ",
		"  1/2    ",
	} {
		if !strings.Contains(txt.String(), want) {
			t.Errorf("text lacks %q:\n%s", want, txt.String())
		}
	}

	var page bytes.Buffer
	if err := rep.HTML(&page); err != nil {
		t.Fatal(err)
	}
	h := page.String()
	if strings.Contains(h, "<script>alert") || strings.Contains(h, "pod-<b>") {
		t.Errorf("the HTML report shows a label or controller unescaped")
	}
	for _, want := range []string{
		`<h2>Fleet run night &lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt; &amp; more</h2>`,
		`exit code <span data-fleet="exit_code">4</span>`,
		`<td>1/2</td>`, `<td>pod-&lt;b&gt;</td>`,
	} {
		if !strings.Contains(h, want) {
			t.Errorf("HTML lacks %q", want)
		}
	}

	// A shard missing shows as such; a label with no runs says so.
	record("half", &history.Shard{Index: 1, Count: 3}, 0, time.Second, map[string]history.Counts{"q": {OK: 1}}, 0)
	rep, err = Build(ctx, s, Options{Filter: history.Filter{Label: "half"}})
	if err != nil {
		t.Fatal(err)
	}
	txt.Reset()
	_ = rep.Text(&txt, TextOptions{})
	if !strings.Contains(txt.String(), `FLEET RUN "half": finished, 2 of 3 shards missing`) ||
		!strings.Contains(txt.String(), "missing: shard 0/3 2/3 (no run recorded under this label)") {
		t.Errorf("missing shards:\n%s", txt.String())
	}
	rep, err = Build(ctx, s, Options{Filter: history.Filter{Label: "nope"}})
	if err != nil {
		t.Fatal(err)
	}
	txt.Reset()
	_ = rep.Text(&txt, TextOptions{})
	if !strings.Contains(txt.String(), `FLEET RUN "nope": no runs recorded under this label`) ||
		!strings.Contains(txt.String(), "that match the filter") {
		t.Errorf("an unknown label:\n%s", txt.String())
	}
}

// TestTrendFleetRun: the trend shows the runs of one label as one point, a shard run again
// by its last run, and counts the point as one of --runs however many runs it has, reading
// its runs older than the rows the other points needed.
func TestTrendFleetRun(t *testing.T) {
	ctx := context.Background()
	s, record := labelHistory(t)
	const label = "night <i>"
	sh := func(i int) *history.Shard { return &history.Shard{Index: i, Count: 10} }
	ok := history.Counts{OK: 1}
	record("", nil, 0, time.Second, map[string]history.Counts{"a": ok, "b": ok, "c": ok}, 0)                  // 1
	record(label, sh(0), time.Minute, time.Minute+time.Second, map[string]history.Counts{"a": {Drift: 1}}, 4) // 2, superseded by 13
	record(label, sh(1), time.Minute, time.Minute+time.Second, map[string]history.Counts{"b": ok}, 0)         // 3
	record("", nil, time.Minute, time.Minute+time.Second, map[string]history.Counts{"a": ok}, 0)              // 4
	for i := 2; i < 10; i++ {                                                                                 // 5..12
		hosts := map[string]history.Counts{}
		if i == 2 {
			hosts["c"] = history.Counts{OK: 1, Drift: 1}
		}
		code := 0
		if i == 2 {
			code = 4
		}
		record(label, sh(i), time.Minute, time.Minute+time.Second, hosts, code)
	}
	record(label, sh(0), 2*time.Minute, 2*time.Minute+time.Second, map[string]history.Counts{"a": ok}, 0)     // 13
	record("", nil, 3*time.Minute, 3*time.Minute+time.Second, map[string]history.Counts{"a": {Failed: 1}}, 2) // 14

	night := []int64{3, 5, 6, 7, 8, 9, 10, 11, 12, 13}
	for _, c := range []struct {
		runs    int
		names   string
		ids     [][]int64
		summary []Summary
		codes   []int
		history map[string]string // host -> statuses
	}{
		{
			runs: 2, names: `"night <i>" 14`, ids: [][]int64{night, {14}},
			summary: []Summary{{Hosts: 3, InSync: 2, Drifting: 1}, {Hosts: 1, Failed: 1}}, codes: []int{4, 2},
			history: map[string]string{"a": "ok failed", "b": "ok -", "c": "drift -"},
		},
		{
			runs: 3, names: `"night <i>" 4 14`, ids: [][]int64{night, {4}, {14}},
			summary: []Summary{{Hosts: 3, InSync: 2, Drifting: 1}, {Hosts: 1, InSync: 1}, {Hosts: 1, Failed: 1}}, codes: []int{4, 0, 2},
			history: map[string]string{"a": "ok ok failed", "b": "ok - -", "c": "drift - -"},
		},
		{
			runs: 10, names: `1 "night <i>" 4 14`, ids: [][]int64{{1}, night, {4}, {14}},
			summary: []Summary{{Hosts: 3, InSync: 3}, {Hosts: 3, InSync: 2, Drifting: 1}, {Hosts: 1, InSync: 1}, {Hosts: 1, Failed: 1}},
			codes:   []int{0, 4, 0, 2},
			history: map[string]string{"a": "ok ok ok failed", "b": "ok ok - -", "c": "ok drift - -"},
		},
	} {
		t.Run(fmt.Sprint(c.runs), func(t *testing.T) {
			rep, err := Build(ctx, s, Options{Runs: c.runs})
			if err != nil {
				t.Fatal(err)
			}
			var names []string
			for i, p := range rep.Runs {
				names = append(names, p.Name())
				if i >= len(c.ids) || !reflect.DeepEqual(p.RunIDs, c.ids[i]) {
					t.Errorf("point %d counts runs %v, want %v", i, p.RunIDs, c.ids)
					continue
				}
				if i < len(c.summary) && p.Summary != c.summary[i] {
					t.Errorf("point %d: %+v, want %+v", i, p.Summary, c.summary[i])
				}
				if i < len(c.codes) && p.ExitCode != c.codes[i] {
					t.Errorf("point %d: exit code %d, want %d", i, p.ExitCode, c.codes[i])
				}
			}
			if got := strings.Join(names, " "); got != c.names {
				t.Fatalf("points %s, want %s", got, c.names)
			}
			for _, hh := range rep.DriftHistory {
				st := make([]string, len(hh.Statuses))
				for i, x := range hh.Statuses {
					st[i] = cmp.Or(x, "-")
				}
				if got := strings.Join(st, " "); got != c.history[hh.Host] {
					t.Errorf("host %s: %s, want %s", hh.Host, got, c.history[hh.Host])
				}
			}

			var txt bytes.Buffer
			if err := rep.Text(&txt, TextOptions{History: true}); err != nil {
				t.Fatal(err)
			}
			if want := fmt.Sprintf("DRIFT OVER THE LAST %d RUNS (oldest first: %s)", len(c.ids), c.names); !strings.Contains(txt.String(), want) {
				t.Errorf("text lacks %q:\n%s", want, txt.String())
			}
			var page bytes.Buffer
			if err := rep.HTML(&page); err != nil {
				t.Fatal(err)
			}
			h := page.String()
			if strings.Contains(h, "<i>") {
				t.Errorf("the chart shows the label unescaped")
			}
			for _, want := range []string{">night &lt;…</text>", "fleet run night &lt;i&gt; (runs 3, 5, 6, 7, 8, 9, 10, 11, 12, 13)"} {
				if !strings.Contains(h, want) {
					t.Errorf("HTML lacks %q", want)
				}
			}
		})
	}
}

// TestTrendFleetRunRerun: a fleet run whose shard ran again takes its place in the trend by
// the run it counts, not the one superseded; and with --host, which of the shard's runs
// counts is still the fleet run's, whatever hosts they ran.
func TestTrendFleetRunRerun(t *testing.T) {
	ctx := context.Background()
	s, record := labelHistory(t)
	sh := &history.Shard{Index: 0, Count: 1}
	record("L", sh, 0, time.Second, map[string]history.Counts{"a": {Drift: 1}, "b": {OK: 1}}, 4)          // 1, superseded by 3
	record("", nil, time.Minute, time.Minute+time.Second, map[string]history.Counts{"a": {OK: 1}}, 0)     // 2
	record("L", sh, 2*time.Minute, 2*time.Minute+time.Second, map[string]history.Counts{"b": {OK: 1}}, 0) // 3
	for _, c := range []struct {
		hosts   []string
		names   string
		history map[string]string
	}{
		{nil, `2 "L"`, map[string]string{"a": "ok -", "b": "- ok"}},
		{[]string{"a"}, `2 "L"`, map[string]string{"a": "ok -"}},
	} {
		rep, err := Build(ctx, s, Options{Runs: 5, Filter: history.Filter{Hosts: c.hosts}})
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, p := range rep.Runs {
			names = append(names, p.Name())
		}
		if got := strings.Join(names, " "); got != c.names {
			t.Errorf("hosts %v: points %s, want %s", c.hosts, got, c.names)
		}
		if len(rep.Runs) == 2 && !reflect.DeepEqual(rep.Runs[1].RunIDs, []int64{3}) {
			t.Errorf("hosts %v: the fleet run counts %v, want run 3 alone", c.hosts, rep.Runs[1].RunIDs)
		}
		if len(rep.DriftHistory) != len(c.history) {
			t.Errorf("hosts %v: %d hosts in the drift history, want %d", c.hosts, len(rep.DriftHistory), len(c.history))
		}
		for _, hh := range rep.DriftHistory {
			st := make([]string, len(hh.Statuses))
			for i, x := range hh.Statuses {
				st[i] = cmp.Or(x, "-")
			}
			if got := strings.Join(st, " "); got != c.history[hh.Host] {
				t.Errorf("hosts %v: host %s: %s, want %s", c.hosts, hh.Host, got, c.history[hh.Host])
			}
		}
	}
}
