package view

import (
	"bytes"
	"testing"

	"github.com/runbook/runbook/engine/run"
	"github.com/runbook/runbook/modules"
)

// TestFooter: what follows the recap, byte for byte. For people: the drift report of a
// check, then where the run was recorded, then (verbose) how the helper was started; the
// JSON and JUnit streams end with their recap.
func TestFooter(t *testing.T) {
	drifting := run.Result{Host: "web1", Task: "motd", Module: "copy", Status: run.Drift,
		Diff: &modules.Diff{BeforeHeader: "/etc/motd (before)", Before: "old\n", AfterHeader: "/etc/motd (after)", After: "new\n"}}
	rec := &Record{RunID: 7, Location: "/var/lib/runbook/history.db"}
	helper := HelperStats{Hosts: 3, Pushed: 1, Reused: 2, Hashed: 1, Stamped: 2}
	const (
		drift = `
DRIFT (1 host)
  web1: 1 task
    TASK  MODULE  REBOOT_REQUIRED
    motd  copy    no
      --- /etc/motd (before)
      +++ /etc/motd (after)
      -old
      +new
`
		history   = "history: run 7 in /var/lib/runbook/history.db\n"
		helperOut = "helper: started on 3 hosts (pushed to 1); verified by hash on 1, unchanged since a hash on 2\n"
	)
	cases := []struct {
		name    string
		kind    Kind
		opts    Options
		results []run.Result
		footer  Footer
		want    string
	}{
		{name: "human: nothing recorded", kind: KindHuman, footer: Footer{Helper: helper}, want: ""},
		{name: "human: recorded", kind: KindHuman, footer: Footer{History: rec, Helper: helper}, want: history},
		{name: "human verbose: helper last", kind: KindHuman, opts: Options{Verbose: true},
			footer: Footer{History: rec, Helper: helper}, want: history + helperOut},
		{name: "human verbose: a host ran more than one helper", kind: KindHuman, opts: Options{Verbose: true},
			footer: Footer{Helper: HelperStats{Hosts: 2, Reused: 6, Hashed: 4, Stamped: 2}},
			want:   "helper: started on 2 hosts (6 helpers; pushed to 0); verified by hash on 4, unchanged since a hash on 2\n"},
		{name: "human check: drift report first", kind: KindHuman, opts: Options{Check: true, Verbose: true},
			results: []run.Result{drifting}, footer: Footer{History: rec, Helper: helper}, want: drift + history + helperOut},
		{name: "human check: nothing drifts", kind: KindHuman, opts: Options{Check: true},
			results: []run.Result{{Host: "web1", Task: "motd", Status: run.OK}}, footer: Footer{History: rec}, want: history},
		{name: "human exec: no drift report", kind: KindHuman,
			results: []run.Result{drifting}, footer: Footer{History: rec}, want: history},
		{name: "json", kind: KindJSON, opts: Options{Check: true, Verbose: true},
			results: []run.Result{drifting}, footer: Footer{History: rec, Helper: helper}, want: ""},
		{name: "junit", kind: KindJUnit, opts: Options{Check: true, Verbose: true},
			results: []run.Result{drifting}, footer: Footer{History: rec, Helper: helper}, want: ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var b bytes.Buffer
			c.opts.W = &b
			v, err := New(c.kind, c.opts)
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range c.results {
				v.TaskDone(r)
			}
			if err := v.Finish(&run.Recap{Hosts: map[string]*run.Stats{"web1": {}}}); err != nil {
				t.Fatal(err)
			}
			before := b.Len()
			v.Footer(c.footer)
			if got := b.String()[before:]; got != c.want {
				t.Errorf("footer:\n%q\nwant:\n%q", got, c.want)
			}
		})
	}
}
