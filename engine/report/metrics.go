package report

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/runbook/runbook/engine/history"
	"github.com/runbook/runbook/engine/run"

	"github.com/runbook/runbook/modules/hostfs"
)

// MetricsRun is what a Prometheus textfile says about one run.
type MetricsRun struct {
	Runbook string // the runbook's path
	Mode    string // history.ModeExec or history.ModeCheck
	Started time.Time
	Recap   *run.Recap
}

// Metrics renders the run in the Prometheus text exposition format, for node_exporter's
// textfile collector. Every series carries the runbook (its absolute path) and the mode,
// so the files of several runbooks, or of exec and check, can sit in one directory.
func Metrics(m MetricsRun) string {
	base := fmt.Sprintf(`runbook="%s",mode="%s"`, labelValue(history.RunbookKey(m.Runbook)), labelValue(m.Mode))
	hosts := make([]string, 0, len(m.Recap.Hosts))
	for h := range m.Recap.Hosts {
		hosts = append(hosts, h)
	}
	sort.Strings(hosts)
	var b strings.Builder
	gauge := func(name, help string, value func(*run.Stats) float64) {
		fmt.Fprintf(&b, "# HELP %s %s\n# TYPE %s gauge\n", name, help, name)
		for _, h := range hosts {
			fmt.Fprintf(&b, "%s{%s,host=\"%s\"} %s\n", name, base, labelValue(h), number(value(m.Recap.Hosts[h])))
		}
	}
	gauge("runbook_host_drift_tasks", "Tasks that drift on the host in the last run (check mode).",
		func(s *run.Stats) float64 { return float64(s.Drift) })
	gauge("runbook_host_changed_tasks", "Tasks that changed the host in the last run.",
		func(s *run.Stats) float64 { return float64(s.Changed) })
	gauge("runbook_host_failed_tasks", "Tasks that failed on the host in the last run.",
		func(s *run.Stats) float64 { return float64(s.Failed) })
	gauge("runbook_host_unreachable", "1 when the host was unreachable in the last run.",
		func(s *run.Stats) float64 { return b2f(s.Unreachable > 0) })
	gauge("runbook_host_reboot_required", "1 when a change on the host takes effect only after a reboot.",
		func(s *run.Stats) float64 { return b2f(s.RebootRequired) })
	runGauge := func(name, help string, v float64) {
		fmt.Fprintf(&b, "# HELP %s %s\n# TYPE %s gauge\n%s{%s} %s\n", name, help, name, name, base, number(v))
	}
	runGauge("runbook_run_timestamp_seconds", "When the last run started, in seconds since the epoch.",
		float64(m.Started.UnixNano())/1e9)
	runGauge("runbook_run_duration_seconds", "How long the last run took.", m.Recap.Duration.Seconds())
	runGauge("runbook_run_exit_code", "The last run's exit code (0 ok, 2 failed, 3 unreachable, 4 drift).",
		float64(m.Recap.ExitCode()))
	runGauge("runbook_run_hosts", "Hosts in the last run.", float64(len(hosts)))
	return b.String()
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

func number(f float64) string { return strconv.FormatFloat(f, 'g', -1, 64) }

// labelValue escapes a label value: backslash, double quote and newline.
func labelValue(s string) string {
	return strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`).Replace(s)
}

// WriteMetrics writes the run's metrics to path atomically (hostfs.WriteAtomic: a
// temporary file in the same directory, synced, then renamed over path), so the collector
// never reads half a file.
func WriteMetrics(path string, m MetricsRun) error {
	return hostfs.WriteAtomic(path, []byte(Metrics(m)), hostfs.Options{Mode: 0o644, UID: -1, GID: -1})
}
