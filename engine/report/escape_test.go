package report

import (
	"bytes"
	"context"
	"encoding/json"
	"html"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/runbook/runbook/engine/history"
	"github.com/runbook/runbook/engine/run"
	"github.com/runbook/runbook/modules"
)

// hostileReport holds what a hostile host could have put in the history: a failure whose
// message paints a fake ok over itself, a diff that writes the clipboard, names with
// controls in them.
func hostileReport() *Report {
	when := time.Date(2026, 5, 4, 2, 0, 0, 0, time.Local)
	return &Report{GeneratedAt: when, History: "/var/lib/runbook/history.db",
		Summary: Summary{Hosts: 2, Drifting: 1, Failed: 1},
		Hosts: []Host{
			{Host: "web1", Run: 4, When: when, Mode: "check", Status: "failed", Counts: history.Counts{Failed: 1},
				Drift: []Task{}, Failed: []Task{{Play: "base", Task: "deploy", Module: "shell", Status: "failed",
					Msg: "exited with 1: boom\r\x1b[2Kweb1 ok\x1b]0;all good\x07"}}},
			{Host: "web\x1b[8m2", Run: 4, When: when, Mode: "check", Status: "drift", Counts: history.Counts{Drift: 1},
				Drift: []Task{{Play: "base", Task: "motd\u202eok", Module: "copy", Status: "drift",
					Diff: "--- /etc/motd (before)\n+++ /etc/motd (after)\n-hi\x1b]52;c;cm0gLXJm\x07\n+hi\n"}}, Failed: []Task{}},
		},
		Runs:         []RunPoint{{Run: 4, When: when, Mode: "check", Summary: Summary{Hosts: 2, Drifting: 1, Failed: 1}}},
		DriftHistory: []HostHistory{{Host: "web1", Runs: 1, Statuses: []string{"failed"}}, {Host: "web\x1b[8m2", Drifted: 1, Runs: 1, Statuses: []string{"drift"}}},
		Top:          []history.TaskCount{{Play: "base", Task: "motd\u202eok", Module: "copy", Count: 1, Hosts: 1, LastRun: 4}},
	}
}

func TestReportsEscapeHostText(t *testing.T) {
	rep := hostileReport()
	var text, page bytes.Buffer
	if err := rep.Text(&text, TextOptions{History: true, Diffs: true}); err != nil {
		t.Fatal(err)
	}
	if err := rep.HTML(&page); err != nil {
		t.Fatal(err)
	}
	for name, out := range map[string]string{"text": text.String(), "HTML": page.String()} {
		if i := strings.IndexAny(out, "\x1b\r\x07\u202e"); i >= 0 {
			t.Errorf("%s: a control character at %d: %q", name, i, out[max(0, i-30):min(len(out), i+30)])
		}
		for _, want := range []string{`web\x1b[8m2`, `motd\u202eok`, `\x1b]52;c;cm0gLXJm\x07`} {
			if !strings.Contains(out, want) {
				t.Errorf("%s lacks %q:\n%s", name, want, out)
			}
		}
	}
	if !strings.Contains(text.String(), `  failed  deploy (shell): exited with 1: boom\r\x1b[2Kweb1 ok\x1b]0;all good\x07`) {
		t.Errorf("the failure is not shown escaped:\n%s", text.String())
	}

	// The report itself is left as it was, and JSON shows the exact text.
	if rep.Hosts[1].Host != "web\x1b[8m2" {
		t.Errorf("the report was changed: %q", rep.Hosts[1].Host)
	}
	var js bytes.Buffer
	if err := rep.JSON(&js); err != nil {
		t.Fatal(err)
	}
	var back Report
	if err := json.Unmarshal(js.Bytes(), &back); err != nil || back.Hosts[0].Failed[0].Msg != rep.Hosts[0].Failed[0].Msg || back.Hosts[1].Host != rep.Hosts[1].Host {
		t.Errorf("JSON does not keep the exact text: %v", err)
	}
}

// A diff header recorded from a host cannot forge lines of the diff in the text or HTML
// report: it is shown on its own line, with the newlines in it escaped.
func TestReportDiffHeaderStaysOnItsLine(t *testing.T) {
	s, err := history.Open(context.Background(), filepath.Join(t.TempDir(), "history.db"), history.Options{Create: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	rec, err := history.Begin(context.Background(), s, history.Run{StartedAt: time.Date(2026, 5, 4, 2, 0, 0, 0, time.Local),
		Runbook: "/srv/site.hcl", Mode: history.ModeCheck}, func(err error) { t.Error(err) })
	if err != nil {
		t.Fatal(err)
	}
	rec.HostStarted("web1")
	rec.TaskDone(run.Result{Host: "web1", Play: "base", Task: "x", Module: "copy", Status: run.Drift,
		Diff: &modules.Diff{BeforeHeader: "/srv/x\n+++ /etc/shadow (after)\n-root:!:1:0\n+root::1:0\n@@", Before: "a\n", AfterHeader: "/srv/x (after)", After: "b\n"}})
	rec.HostDone("web1", run.Stats{Drift: 1})
	if err := rec.Finish(&run.Recap{Hosts: map[string]*run.Stats{"web1": {Drift: 1}}}); err != nil {
		t.Fatal(err)
	}
	rep, err := Build(context.Background(), s, Options{Runs: 1})
	if err != nil {
		t.Fatal(err)
	}
	var text, page bytes.Buffer
	if err := rep.Text(&text, TextOptions{Diffs: true}); err != nil {
		t.Fatal(err)
	}
	if err := rep.HTML(&page); err != nil {
		t.Fatal(err)
	}
	forged := regexp.MustCompile(`(?m)^\s*(\+\+\+ /etc/shadow|-root|\+root)`)
	for name, out := range map[string]string{"text": text.String(), "HTML": html.UnescapeString(page.String())} {
		if forged.MatchString(out) || !strings.Contains(out, `--- /srv/x\n+++ /etc/shadow (after)\n-root:!:1:0\n+root::1:0\n@@`) {
			t.Errorf("%s report:\n%s", name, out)
		}
	}
}
