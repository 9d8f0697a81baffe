package view

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"strings"
	"testing"
	"time"

	"github.com/runbook/runbook/engine/run"
	"github.com/runbook/runbook/modules"
)

func sample() ([]run.Result, *run.Recap) {
	rs := []run.Result{
		{Host: "kvm01", Play: "p", Task: "selinux config", Module: "line", Status: run.Changed, Duration: 120 * time.Millisecond,
			Diff: &modules.Diff{Before: "# c\nSELINUX=enforcing\nSELINUXTYPE=targeted\n", After: "# c\nSELINUX=disabled\nSELINUXTYPE=targeted\n",
				BeforeHeader: "/etc/selinux/config (before)", AfterHeader: "/etc/selinux/config (after)"}, RebootRequired: true},
		{Host: "kvm01", Play: "p", Task: "uptime", Module: "command", Status: run.OK, Data: map[string]any{"rc": 0}},
		{Host: "kvm02", Play: "p", Task: "uptime", Module: "command", Status: run.Failed, Msg: "command exited 1: boom", Data: map[string]any{"rc": 1}},
		{Host: "kvm03", Play: "p", Task: "connect", Status: run.Unreachable, Msg: "connection refused"},
		{Host: "kvm01", Play: "p", Task: "dirs", Item: "b", Module: "file", Status: run.Skipped, Msg: "skipped: when is false"},
	}
	recap := &run.Recap{Hosts: map[string]*run.Stats{
		"kvm01": {OK: 1, Changed: 1, Skipped: 1, RebootRequired: true},
		"kvm02": {Failed: 1},
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

func TestHuman(t *testing.T) {
	var b bytes.Buffer
	if err := feed(&Human{W: &b, Diff: true}); err != nil {
		t.Fatal(err)
	}
	want := `kvm01 changed     selinux config (120ms) [reboot required]
    --- /etc/selinux/config (before)
    +++ /etc/selinux/config (after)
     # c
    -SELINUX=enforcing
    +SELINUX=disabled
     SELINUXTYPE=targeted
kvm01 ok          uptime
kvm02 failed      uptime: command exited 1: boom
kvm03 unreachable connect: connection refused
kvm01 skipped     dirs [b]

RECAP
  kvm01  ok=1 changed=1 drift=0 failed=0 unreachable=0 skipped=1 reboot_required
  kvm02  ok=0 changed=0 drift=0 failed=1 unreachable=0 skipped=0
  kvm03  ok=0 changed=0 drift=0 failed=0 unreachable=1 skipped=0

finished: 3 hosts in 1.5s, exit code 2
`
	if b.String() != want {
		t.Errorf("got:\n%s\nwant:\n%s", b.String(), want)
	}
	b.Reset()
	feed(&Human{W: &b, Quiet: true})
	if strings.Contains(b.String(), " ok ") || strings.Contains(b.String(), "skipped     dirs") {
		t.Errorf("quiet view shows ok/skipped results:\n%s", b.String())
	}
}

func TestJSON(t *testing.T) {
	var b bytes.Buffer
	if err := feed(&JSON{W: &b}); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(b.String()), "\n")
	if len(lines) != 6 {
		t.Fatalf("%d lines", len(lines))
	}
	var first, failed, recap map[string]any
	json.Unmarshal([]byte(lines[0]), &first)
	json.Unmarshal([]byte(lines[2]), &failed)
	json.Unmarshal([]byte(lines[5]), &recap)
	if first["type"] != "result" || first["status"] != "changed" || first["changed"] != true || !strings.Contains(first["diff"].(string), "+SELINUX=disabled") {
		t.Errorf("first = %v", first)
	}
	if failed["rc"] != float64(1) || failed["msg"] != "command exited 1: boom" {
		t.Errorf("failed = %v", failed)
	}
	if recap["type"] != "recap" || recap["exit_code"] != float64(2) {
		t.Errorf("recap = %v", recap)
	}
}

func TestJUnit(t *testing.T) {
	var b bytes.Buffer
	if err := feed(&JUnit{W: &b}); err != nil {
		t.Fatal(err)
	}
	var doc junitSuites
	if err := xml.Unmarshal(b.Bytes(), &doc); err != nil {
		t.Fatalf("not XML: %v\n%s", err, b.String())
	}
	if len(doc.Suites) != 3 || doc.Suites[0].Name != "kvm01" || doc.Suites[0].Tests != 3 || doc.Suites[0].Skipped != 1 {
		t.Errorf("suites = %+v", doc.Suites)
	}
	if doc.Suites[1].Failures != 1 || doc.Suites[2].Failures != 1 {
		t.Errorf("failures not counted: %+v", doc.Suites)
	}
}

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
