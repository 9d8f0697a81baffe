package view

import (
	"github.com/zclconf/go-cty/cty"
	"time"

	"github.com/runbook/runbook/engine/run"
	"github.com/runbook/runbook/modules"
)

func sample() ([]run.Result, *run.Recap) {
	rs := []run.Result{
		{Host: "kvm01", Play: "p", Task: "selinux config", Module: "line", Status: run.Changed, Duration: 120 * time.Millisecond,
			Diff: &modules.Diff{Before: "# c\nSELINUX=enforcing\nSELINUXTYPE=targeted\n", After: "# c\nSELINUX=disabled\nSELINUXTYPE=targeted\n",
				BeforeHeader: "/etc/selinux/config (before)", AfterHeader: "/etc/selinux/config (after)"}, RebootRequired: true},
		{Host: "kvm01", Play: "p", Task: "uptime", Module: "command", Status: run.OK, Data: cty.ObjectVal(map[string]cty.Value{"rc": cty.NumberIntVal(0)})},
		{Host: "kvm02", Play: "p", Task: "uptime", Module: "command", Status: run.Failed, Msg: "command exited 1: boom", Data: cty.ObjectVal(map[string]cty.Value{"rc": cty.NumberIntVal(1)}),
			Warnings: []string{"uptime is not installed"}},
		{Host: "kvm03", Play: "p", Task: "connect", Status: run.Unreachable, Msg: "connection refused"},
		{Host: "kvm01", Play: "p", Task: "dirs", Item: "b", Module: "file", Status: run.Skipped, Msg: "skipped: when is false"},
	}
	recap := &run.Recap{Hosts: map[string]*run.Stats{
		"kvm01": {OK: 1, Changed: 1, Skipped: 1, RebootRequired: true},
		"kvm02": {Failed: 1, Warnings: 1},
		"kvm03": {Unreachable: 1},
	}, Duration: 1500 * time.Millisecond}
	return rs, recap
}

func feed(v View) error {
	rs, recap := sample()
	for _, r := range rs {
		v.TaskDone(r)
	}
	return v.Finish(recap)
}
