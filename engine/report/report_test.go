package report

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/zclconf/go-cty/cty"

	"github.com/runbook/runbook/engine/history"
	"github.com/runbook/runbook/engine/run"
	"github.com/runbook/runbook/modules"
)

// evilDiff is drift whose text would be markup if the HTML report did not escape it.
const evilDiff = `<img src=x onerror="document.body.dataset.pwned='yes'"></pre><b>bold</b>`

// fleet records four nightly checks of a small fleet and returns the store: web1 drifts
// from the third run on, web2 is in sync, db1 fails in the last run, db2 is unreachable in
// the last run.
func fleet(t *testing.T) history.Store {
	t.Helper()
	s, err := history.Open(context.Background(), filepath.Join(t.TempDir(), "history.db"), history.Options{Create: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	base := time.Date(2026, 5, 1, 2, 0, 0, 0, time.Local)
	nights := []map[string][]run.Result{
		{"web1": {ok("motd"), ok("sysctl")}, "web2": {ok("motd")}, "db1": {ok("motd")}, "db2": {ok("motd")}},
		{"web1": {ok("motd"), ok("sysctl")}, "web2": {ok("motd")}, "db1": {ok("motd")}, "db2": {ok("motd")}},
		{"web1": {drift("motd", "old motd\n", "new motd\n"), ok("sysctl")}, "web2": {ok("motd")}, "db1": {ok("motd")}, "db2": {ok("motd")}},
		{
			"web1": {drift("motd", "old motd\n", "new motd\n"), drift("sysctl", "vm.swappiness = 60\n", evilDiff+"\n")},
			"web2": {ok("motd"), nicInventory(), pcieWarning()},
			"db1":  {{Task: "motd", Module: "copy", Status: run.Failed, Msg: "write /etc/motd: read-only file system"}},
			"db2":  {{Task: "connect", Status: run.Unreachable, Msg: "dial tcp 10.0.0.9:22: connection refused"}},
		},
	}
	for i, night := range nights {
		rec, err := history.Begin(context.Background(), s, history.Run{StartedAt: base.Add(time.Duration(i) * 24 * time.Hour),
			Runbook: "/srv/site.hcl", Mode: history.ModeCheck}, func(err error) { t.Error(err) })
		if err != nil {
			t.Fatal(err)
		}
		recap := &run.Recap{Hosts: map[string]*run.Stats{}, Duration: 3 * time.Second}
		for host, results := range night {
			st := &run.Stats{}
			recap.Hosts[host] = st
			rec.HostStarted(host)
			for _, r := range results {
				r.Host, r.Play = host, "base"
				switch r.Status {
				case run.OK:
					st.OK++
				case run.Drift:
					st.Drift++
				case run.Failed:
					st.Failed++
				case run.Unreachable:
					st.Unreachable++
				}
				st.RebootRequired = st.RebootRequired || r.RebootRequired
				rec.TaskDone(r)
			}
			rec.HostDone(host, *st)
		}
		if err := rec.Finish(recap); err != nil {
			t.Fatal(err)
		}
	}
	return s
}

// evilDriver is a driver name whose text would be markup, or would reorder the line, if the
// report did not escape it: a host writes its own driver strings.
const evilDriver = "<img src=x onerror=\"document.body.dataset.pwned='nic'\">mlx5\u202e"

// nicInventory is a facts task's result with two hardware NICs of web2: a 100G port of a
// card on an x16 Gen3 link that its two ports oversubscribe, and one with a hostile driver
// name; the bond is no hardware and stays out of the table.
func nicInventory() run.Result {
	nic := func(m map[string]cty.Value) cty.Value { return cty.ObjectVal(m) }
	data := cty.ObjectVal(map[string]cty.Value{"nics": cty.ObjectVal(map[string]cty.Value{
		"ens2f0": nic(map[string]cty.Value{"kind": cty.StringVal("ether"), "virtual": cty.False, "driver": cty.StringVal("mlx5_core"),
			"driver_version": cty.StringVal("5.8-1.0.1"), "firmware_version": cty.StringVal("16.35.2000 (MT_0000000012)"),
			"bus_info": cty.StringVal("0000:5e:00.0"), "master": cty.StringVal("bond0"), "mtu": cty.NumberIntVal(9100),
			"speed_mbps": cty.NumberIntVal(100000), "sriov_capable": cty.True, "sriov_total_vfs": cty.NumberIntVal(8),
			"sriov_num_vfs": cty.NumberIntVal(2), "sriov_pf_address": cty.StringVal(""), "pcie_oversubscribed": cty.True,
			"pcie": nic(map[string]cty.Value{"width": cty.NumberIntVal(16), "max_width": cty.NumberIntVal(16),
				"speed_gts": cty.NumberFloatVal(8), "generation": cty.NumberIntVal(3), "bandwidth_gbps": cty.NumberFloatVal(126),
				"degraded": cty.False})}),
		"eth9": nic(map[string]cty.Value{"kind": cty.StringVal("ether"), "virtual": cty.False, "driver": cty.StringVal(evilDriver),
			"bus_info": cty.StringVal("0000:00:03.0"), "sriov_capable": cty.False, "pcie": cty.NullVal(cty.DynamicPseudoType)}),
		"bond0": nic(map[string]cty.Value{"kind": cty.StringVal("bond"), "virtual": cty.True, "driver": cty.StringVal("bonding")}),
	})})
	return run.Result{Task: "NIC inventory", Module: "facts", Status: run.OK, Data: data}
}

// pcieWarningText is the warning of an assert with warn_only.
const pcieWarningText = "web2: card 0000:5e:00 (ens2f0, ens2f1): its ports add up to 200 Gbps, more than the 126 Gbps its PCIe link carries"

func pcieWarning() run.Result {
	return run.Result{Task: "PCIe slots not oversubscribed", Module: "assert", Status: run.OK, Msg: pcieWarningText,
		Warnings: []string{pcieWarningText}}
}

func ok(task string) run.Result { return run.Result{Task: task, Module: "copy", Status: run.OK} }

func drift(task, before, after string) run.Result {
	return run.Result{Task: task, Module: "copy", Status: run.Drift, RebootRequired: task == "sysctl",
		Diff: &modules.Diff{BeforeHeader: "/etc/" + task + " (before)", Before: before, AfterHeader: "/etc/" + task + " (after)", After: after}}
}

func TestReportText(t *testing.T) {
	s := fleet(t)
	cases := []struct {
		name   string
		opts   Options
		text   TextOptions
		want   []string // regular expressions, each matching a line
		absent []string
	}{
		{
			name: "last run per host",
			want: []string{
				`^HOST +RUN +WHEN +MODE +STATUS +OK +CHANGED +DRIFT +FAILED +UNREACHABLE +DRIFTING SINCE$`,
				`^db1 +4 +2026-05-04 02:00 +check +failed +0 +0 +0 +1 +0 +-$`,
				`^db2 +4 +.* +unreachable +0 +0 +0 +0 +1 +-$`,
				`^web1 +4 +.* +drift +0 +0 +2 +0 +0 +run 3 \(2026-05-03 02:00\)$`,
				`^web2 +4 +.* +ok +3 +0 +0 +0 +0 +-$`,
				`^web2 \(run 4\):$`,
				`^  warning PCIe slots not oversubscribed \(assert\): ` + regexp.QuoteMeta(pcieWarningText) + `$`,
				`^web1 \(run 4\):$`,
				`^  drift   motd \(copy\)$`,
				`^  drift   sysctl \(copy\) \[reboot required\]$`,
				`^  failed  motd \(copy\): write /etc/motd: read-only file system$`,
				`^  unreachable connect: dial tcp`,
				`^4 hosts: 1 in sync, 1 drifting, 1 failed, 1 unreachable$`,
			},
			absent: []string{`DRIFT OVER`, `TOP DRIFTING`, `old motd`},
		},
		{
			name: "diffs",
			text: TextOptions{Diffs: true},
			want: []string{`^      --- /etc/motd \(before\)$`, `^      -old motd$`, `^      \+new motd$`},
		},
		{
			name: "drift over the last runs, top tasks",
			opts: Options{Runs: 3, Top: 5},
			text: TextOptions{History: true},
			want: []string{
				`^DRIFT OVER THE LAST 3 RUNS \(oldest first: 2 3 4\)$`,
				`^db1 +0/3 +\. \. F$`,
				`^db2 +0/3 +\. \. U$`,
				`^web1 +2/3 +\. D D$`,
				`^TOP DRIFTING TASKS \(last 3 runs\)$`,
				`^DRIFTED +HOSTS +TASK +MODULE +PLAY +LAST RUN$`,
				`^2 +1 +motd +copy +base +4$`,
				`^1 +1 +sysctl +copy +base +4$`,
			},
		},
		{
			name:   "host filter",
			opts:   Options{Filter: history.Filter{Hosts: []string{"web2"}}},
			want:   []string{`^web2 +4 `, `^1 hosts: 1 in sync, 0 drifting, 0 failed, 0 unreachable$`},
			absent: []string{`web1`, `db1`},
		},
		{
			name: "runbook filter without runs",
			opts: Options{Filter: history.Filter{Runbook: "/srv/other.hcl"}},
			want: []string{`^no runs recorded in .*history.db that match the filter$`},
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			rep, err := Build(context.Background(), s, c.opts)
			if err != nil {
				t.Fatal(err)
			}
			var b bytes.Buffer
			if err := rep.Text(&b, c.text); err != nil {
				t.Fatal(err)
			}
			out := b.String()
			for _, w := range c.want {
				if !regexp.MustCompile("(?m)" + w).MatchString(out) {
					t.Errorf("no line matches %s in:\n%s", w, out)
				}
			}
			for _, a := range c.absent {
				if regexp.MustCompile("(?m)" + a).MatchString(out) {
					t.Errorf("%s should not match:\n%s", a, out)
				}
			}
		})
	}
}

func TestReportJSON(t *testing.T) {
	rep, err := Build(context.Background(), fleet(t), Options{Runs: 2, Top: 1})
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	if err := rep.JSON(&b); err != nil {
		t.Fatal(err)
	}
	var got struct {
		Summary Summary `json:"summary"`
		Hosts   []struct {
			Host         string  `json:"host"`
			Status       string  `json:"status"`
			FirstDrifted *RunRef `json:"first_drifted"`
			Drift        []Task  `json:"drift"`
		} `json:"hosts"`
		Runs         []RunPoint          `json:"runs"`
		DriftHistory []HostHistory       `json:"drift_history"`
		Top          []history.TaskCount `json:"top"`
	}
	if err := json.Unmarshal(b.Bytes(), &got); err != nil {
		t.Fatalf("%v\n%s", err, b.String())
	}
	if got.Summary != (Summary{Hosts: 4, InSync: 1, Drifting: 1, Failed: 1, Unreachable: 1}) {
		t.Errorf("summary %+v", got.Summary)
	}
	web1 := got.Hosts[2]
	if web1.Host != "web1" || web1.Status != "drift" || web1.FirstDrifted == nil || web1.FirstDrifted.Run != 3 ||
		len(web1.Drift) != 2 || !strings.Contains(web1.Drift[0].Diff, "+new motd") || !web1.Drift[1].RebootRequired {
		t.Errorf("web1 = %+v", web1)
	}
	if len(got.Runs) != 2 || got.Runs[0].Run != 3 || got.Runs[1].Drifting != 1 || got.Runs[1].Unreachable != 1 || got.Runs[0].InSync != 3 {
		t.Errorf("runs = %+v", got.Runs)
	}
	if len(got.Top) != 1 || got.Top[0].Task != "motd" || got.Top[0].Count != 2 {
		t.Errorf("top = %+v", got.Top)
	}
}

func TestMetrics(t *testing.T) {
	recap := &run.Recap{Duration: 1500 * time.Millisecond, Hosts: map[string]*run.Stats{
		"web1":         {OK: 3, Drift: 2, RebootRequired: true},
		`odd"host\x`:   {OK: 1},
		"db2":          {Unreachable: 1},
		"db1.example.": {Failed: 1, Changed: 2},
	}}
	path := filepath.Join(t.TempDir(), "runbook.prom")
	if err := os.WriteFile(path, []byte("stale\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	started := time.Unix(1767232800, 500_000_000)
	if err := WriteMetrics(path, MetricsRun{Runbook: "/srv/site.hcl", Mode: "check", Started: started, Recap: recap}); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(path)
	if err != nil || st.Mode().Perm() != 0o644 {
		t.Fatalf("stat: %v %v", st, err)
	}
	if left, _ := filepath.Glob(filepath.Join(filepath.Dir(path), ".runbook.prom.tmp-*")); len(left) > 0 {
		t.Errorf("temporary files left: %v", left)
	}
	b, _ := os.ReadFile(path)
	want := map[string]string{
		`runbook_host_drift_tasks{runbook="/srv/site.hcl",mode="check",host="web1"}`:           "2",
		`runbook_host_drift_tasks{runbook="/srv/site.hcl",mode="check",host="odd\"host\\x"}`:   "0",
		`runbook_host_failed_tasks{runbook="/srv/site.hcl",mode="check",host="db1.example."}`:  "1",
		`runbook_host_changed_tasks{runbook="/srv/site.hcl",mode="check",host="db1.example."}`: "2",
		`runbook_host_unreachable{runbook="/srv/site.hcl",mode="check",host="db2"}`:            "1",
		`runbook_host_unreachable{runbook="/srv/site.hcl",mode="check",host="web1"}`:           "0",
		`runbook_host_reboot_required{runbook="/srv/site.hcl",mode="check",host="web1"}`:       "1",
		`runbook_run_timestamp_seconds{runbook="/srv/site.hcl",mode="check"}`:                  "1.7672328005e+09",
		`runbook_run_duration_seconds{runbook="/srv/site.hcl",mode="check"}`:                   "1.5",
		`runbook_run_exit_code{runbook="/srv/site.hcl",mode="check"}`:                          "2",
		`runbook_run_hosts{runbook="/srv/site.hcl",mode="check"}`:                              "4",
	}
	got := map[string]string{}
	types := map[string]bool{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	// Every line is a comment (HELP, then TYPE gauge) or "series value".
	sample := regexp.MustCompile(`^([a-z_]+)(\{[^\n]*\}) (\S+)$`)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "# TYPE ") {
			f := strings.Fields(line)
			if len(f) != 4 || f[3] != "gauge" {
				t.Errorf("bad TYPE line %q", line)
			}
			types[f[2]] = true
			continue
		}
		if strings.HasPrefix(line, "# HELP ") {
			continue
		}
		m := sample.FindStringSubmatch(line)
		if m == nil {
			t.Errorf("not a sample line: %q", line)
			continue
		}
		if !types[m[1]] {
			t.Errorf("%s has no TYPE before its samples", m[1])
		}
		got[m[1]+m[2]] = m[3]
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %q, want %q", k, got[k], v)
		}
	}
	if len(got) != 5*4+4 {
		t.Errorf("%d samples, want %d:\n%s", len(got), 5*4+4, b)
	}
}
