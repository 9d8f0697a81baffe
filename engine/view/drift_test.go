package view

import (
	"bytes"
	"fmt"
	"strings"
	"testing"

	"github.com/runbook/runbook/engine/run"
	"github.com/runbook/runbook/modules"
)

func TestDriftReport(t *testing.T) {
	long := &modules.Diff{BeforeHeader: "/etc/big (before)", AfterHeader: "/etc/big (after)"}
	for i := range 30 {
		long.After += fmt.Sprintf("line %d\n", i)
	}
	cases := []struct {
		name    string
		results []run.Result
		want    []string // lines, in order
		absent  []string
	}{
		{
			name:    "nothing drifts: no report",
			results: []run.Result{{Host: "a", Task: "x", Module: "file", Status: run.OK}, {Host: "a", Task: "y", Status: run.Changed}},
		},
		{
			name: "per host, tasks with module, reboot column and diff",
			results: []run.Result{
				{Host: "web2", Task: "kernel args", Module: "grub", Status: run.Drift, RebootRequired: true, Msg: "cmdline differs"},
				{Host: "web1", Task: "motd", Module: "copy", Status: run.Drift,
					Diff: &modules.Diff{BeforeHeader: "/etc/motd (before)", Before: "old\n", AfterHeader: "/etc/motd (after)", After: "new\n"}},
				{Host: "web1", Task: "ok task", Module: "file", Status: run.OK},
				{Host: "web1", Task: "pkgs", Module: "line", Item: "b", Status: run.Drift},
			},
			want: []string{
				"DRIFT (2 hosts)",
				"  web1: 2 tasks",
				"    TASK      MODULE  REBOOT_REQUIRED",
				"    motd      copy    no",
				"      --- /etc/motd (before)",
				"      +++ /etc/motd (after)",
				"      -old",
				"      +new",
				"    pkgs [b]  line    no",
				"  web2: 1 task",
				"    kernel args  grub    yes",
				"      cmdline differs",
			},
			absent: []string{"ok task"},
		},
		{
			name:    "long diffs are cut",
			results: []run.Result{{Host: "h", Task: "big", Module: "copy", Status: run.Drift, Diff: long}},
			want:    []string{"      +line 9", "      ... (20 more lines)"},
			absent:  []string{"+line 10"},
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			d := &Drift{}
			for _, r := range c.results {
				d.TaskDone(r)
			}
			var b bytes.Buffer
			if err := d.Write(&b); err != nil {
				t.Fatal(err)
			}
			out := b.String()
			if len(c.want) == 0 && out != "" {
				t.Fatalf("report without drift:\n%s", out)
			}
			rest := out
			for _, w := range c.want {
				i := strings.Index(rest, w+"\n")
				if i < 0 {
					t.Fatalf("missing (or out of order) %q in:\n%s", w, out)
				}
				rest = rest[i+len(w):]
			}
			for _, a := range c.absent {
				if strings.Contains(out, a) {
					t.Errorf("%q should not be in:\n%s", a, out)
				}
			}
		})
	}
}
