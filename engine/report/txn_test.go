package report

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/runbook/runbook/engine/history"
	"github.com/runbook/runbook/engine/run"
	"github.com/runbook/runbook/modules"
)

// Network changes as the engine reports them (engine/run/confirm.go, connect.go).
var (
	rolledBack = run.Result{Task: "mgmt down", Module: "interface", Status: run.Failed,
		Msg: "rolled back (no confirmation came before the deadline): the change was eth0: state up → down: restored eth0: state down → up; verified equal to the state before the change",
		Transaction: &modules.Transaction{ID: "tx1", State: modules.TxnRolledBack, Module: "interface", Armed: "systemd",
			Why: "no confirmation came before the deadline", Restored: []string{"eth0: state down → up"}, Verified: true}}
	rollbackFailed = run.Result{Task: "bond0", Module: "bond", Status: run.Failed,
		Msg: "rolled back (no confirmation came before the deadline): the change was bond0: slaves + eth1: restored /etc/network/interfaces; the rollback did not restore everything: still different: eth1: master bond0, want none",
		Transaction: &modules.Transaction{ID: "tx2", State: modules.TxnRollbackFailed, Module: "bond", Armed: "watchdog",
			Why: "no confirmation came before the deadline", Restored: []string{"/etc/network/interfaces"},
			Verification: []string{"eth1: master bond0, want none"}}}
	unknownTxn = run.Result{Task: "mtu", Module: "interface", Status: run.Unreachable,
		Msg:         "rollback pending or unknown: transaction tx3 could not be confirmed (the host was not reached again: i/o timeout); the host rolls the change back by itself at 02:01:00",
		Transaction: &modules.Transaction{ID: "tx3", State: modules.TxnUnknown, Module: "interface", Armed: "systemd"}}
	recovered = run.Result{Task: "roll back transaction tx4", Module: "sriov", Status: run.Changed,
		Msg: "rolled back (pending when the helper started): restored ens1f0: sriov_numvfs 4 → 0; verified equal to the state before the change",
		Transaction: &modules.Transaction{ID: "tx4", State: modules.TxnRolledBack, Module: "sriov",
			Why: "pending when the helper started", Restored: []string{"ens1f0: sriov_numvfs 4 → 0"}, Verified: true}}
	confirmed = run.Result{Task: "data bond", Module: "bond", Status: run.Changed, Msg: "changed bond1: created (confirmed over a new connection)",
		Transaction: &modules.Transaction{ID: "tx5", State: modules.TxnConfirmed, Module: "bond", Armed: "systemd"}}
	// hostile is a rollback whose lines hold what a terminal or a page would obey.
	hostile = run.Result{Task: "evil", Module: "interface", Status: run.Failed, Msg: "rolled back",
		Transaction: &modules.Transaction{ID: "tx6", State: modules.TxnRolledBack,
			Restored: []string{"eth9\r\x1b[2K<img src=x onerror=alert(1)>", "two\nkvm6 ok"}}}
)

// txnFleet records two exec runs with network changes. kvm5's rollbacks are in its first
// run only, which is kvm7's last: the report (each host's last run) shows neither for kvm5.
func txnFleet(t *testing.T) history.Store {
	t.Helper()
	s, err := history.Open(context.Background(), filepath.Join(t.TempDir(), "history.db"), history.Options{Create: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	base := time.Date(2026, 5, 1, 2, 0, 0, 0, time.Local)
	runs := []map[string][]run.Result{
		{"kvm5": {rolledBack, recovered}, "kvm7": {ok("motd")}},
		{
			"kvm1": {ok("motd"), rolledBack},
			"kvm2": {recovered, confirmed},
			"kvm3": {rollbackFailed},
			"kvm4": {unknownTxn},
			"kvm5": {confirmed},
			"kvm6": {hostile},
		},
	}
	for i, hosts := range runs {
		rec, err := history.Begin(context.Background(), s, history.Run{StartedAt: base.Add(time.Duration(i) * time.Hour),
			Runbook: "/srv/net.hcl", Mode: history.ModeExec}, func(err error) { t.Error(err) })
		if err != nil {
			t.Fatal(err)
		}
		recap := &run.Recap{Hosts: map[string]*run.Stats{}}
		for host, results := range hosts {
			st := &run.Stats{}
			recap.Hosts[host] = st
			rec.HostStarted(host)
			for _, r := range results {
				r.Host, r.Play = host, "net"
				switch r.Status {
				case run.OK:
					st.OK++
				case run.Changed:
					st.Changed++
				case run.Failed:
					st.Failed++
				case run.Unreachable:
					st.Unreachable++
				}
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

func TestReportTransactions(t *testing.T) {
	rep, err := Build(context.Background(), txnFleet(t), Options{})
	if err != nil {
		t.Fatal(err)
	}
	var text, page bytes.Buffer
	if err := rep.Text(&text, TextOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := rep.HTML(&page); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		text   []string // regular expressions, each matching a line of the text report
		html   []string // strings in the page
		absent []string // regular expressions matching no line of the text report
	}{
		{name: "rolled back: the word, the message without the tail, the lines",
			text: []string{
				`^kvm1 +2 +.* +exec +failed +1 +0 +0 +1 +0 +-$`,
				`^kvm1 \(run 2\):$`,
				`^  rolled back mgmt down \(interface\): rolled back \(no confirmation came before the deadline\): the change was eth0: state up → down$`,
				`^      transaction tx1 rolled back \(rollback armed by systemd\)$`,
				`^      restored: eth0: state down → up$`,
				`^      verified: equal to the state before the change$`,
			},
			html: []string{`<span class="badge s-rolled-back">rolled back</span>`, `<li>restored: eth0: state down → up</li>`,
				`<li>transaction tx1 rolled back (rollback armed by systemd)</li>`},
			absent: []string{`^  failed +mgmt down`, `the change was eth0: state up → down: restored`}},
		{name: "rollback failed",
			text: []string{
				`^  rollback failed bond0 \(bond\): rolled back \(no confirmation came before the deadline\): the change was bond0: slaves \+ eth1$`,
				`^      restored: /etc/network/interfaces$`,
				`^      still different: eth1: master bond0, want none$`,
			},
			html: []string{`<span class="badge s-rollback-failed">rollback failed</span>`, `<li>still different: eth1: master bond0, want none</li>`}},
		{name: "unknown: unreachable, with its transaction",
			text: []string{`^  unreachable mtu \(interface\): rollback pending or unknown: transaction tx3 could not be confirmed`,
				`^      transaction tx3 rollback pending or unknown \(rollback armed by systemd\)$`}},
		{name: "a transaction rolled back when a helper started, reported as a change",
			text: []string{
				`^kvm2 +2 +.* +changed +0 +2 +0 +0 +0 +-$`,
				`^kvm2 \(run 2\):$`,
				`^  rolled back roll back transaction tx4 \(sriov\): rolled back \(pending when the helper started\)$`,
				`^      restored: ens1f0: sriov_numvfs 4 → 0$`,
			},
			html:   []string{`roll back transaction tx4`, `<li>restored: ens1f0: sriov_numvfs 4 → 0</li>`},
			absent: []string{`data bond`, `tx5`}},
		{name: "a rollback in an earlier run is not the host's state now",
			text:   []string{`^kvm5 +2 +.* +changed +0 +1 +0 +0 +0 +-$`},
			absent: []string{`^kvm5 \(run`}},
		{name: "rolled back counts as failed in the summary",
			text: []string{`^7 hosts: 3 in sync, 0 drifting, 3 failed, 1 unreachable$`}},
		{name: "what the host said is escaped",
			text:   []string{`^      restored: eth9\\r\\x1b\[2K<img src=x onerror=alert\(1\)>$`, `^      restored: two\\nkvm6 ok$`},
			html:   []string{`<li>restored: eth9\r\x1b[2K&lt;img src=x onerror=alert(1)&gt;</li>`},
			absent: []string{`^kvm6 ok`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, w := range tt.text {
				if !regexp.MustCompile("(?m)" + w).MatchString(text.String()) {
					t.Errorf("no line matches %s in:\n%s", w, text.String())
				}
			}
			for _, a := range tt.absent {
				if regexp.MustCompile("(?m)" + a).MatchString(text.String()) {
					t.Errorf("%s should not match:\n%s", a, text.String())
				}
			}
			for _, w := range tt.html {
				if !strings.Contains(page.String(), w) {
					t.Errorf("the page lacks %s", w)
				}
			}
		})
	}
	if strings.ContainsAny(text.String()+page.String(), "\x1b\r") || strings.Contains(page.String(), "<img") {
		t.Error("a control character or markup from the host reached the report")
	}
}

func TestReportTransactionsJSON(t *testing.T) {
	rep, err := Build(context.Background(), txnFleet(t), Options{})
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	if err := rep.JSON(&b); err != nil {
		t.Fatal(err)
	}
	var got struct {
		Hosts []struct {
			Host       string           `json:"host"`
			Failed     []map[string]any `json:"failed"`
			RolledBack []map[string]any `json:"rolled_back"`
		} `json:"hosts"`
	}
	if err := json.Unmarshal(b.Bytes(), &got); err != nil {
		t.Fatalf("%v\n%s", err, b.String())
	}
	hosts := map[string]int{}
	for i, h := range got.Hosts {
		hosts[h.Host] = i
	}
	tests := []struct {
		host, list string
		want       []string // "task status state" of each task in the list
		first      map[string]any
	}{
		{host: "kvm1", list: "failed", want: []string{"mgmt down failed rolled_back"},
			first: map[string]any{"id": "tx1", "state": "rolled_back", "module": "interface", "armed": "systemd", "verified": true,
				"why": "no confirmation came before the deadline", "restored": []any{"eth0: state down → up"}}},
		{host: "kvm2", list: "failed"},
		{host: "kvm2", list: "rolled_back", want: []string{"roll back transaction tx4 changed rolled_back"}},
		{host: "kvm3", list: "failed", want: []string{"bond0 failed rollback_failed"}},
		{host: "kvm4", list: "failed", want: []string{"mtu unreachable unknown"}},
		{host: "kvm5", list: "rolled_back"},
	}
	for _, tt := range tests {
		h := got.Hosts[hosts[tt.host]]
		tasks := h.Failed
		if tt.list == "rolled_back" {
			tasks = h.RolledBack
		}
		var names []string
		for _, x := range tasks {
			txn, _ := x["transaction"].(map[string]any)
			names = append(names, x["task"].(string)+" "+x["status"].(string)+" "+toString(txn["state"]))
		}
		if strings.Join(names, ",") != strings.Join(tt.want, ",") {
			t.Errorf("%s %s: %v, want %v", tt.host, tt.list, names, tt.want)
		}
		if tt.first != nil && len(tasks) > 0 {
			if got := tasks[0]["transaction"]; !jsonEqual(got, tt.first) {
				t.Errorf("%s: transaction %v, want %v", tt.host, got, tt.first)
			}
			// JSON keeps the engine's message whole.
			if tasks[0]["msg"] != rolledBack.Msg {
				t.Errorf("%s: msg %v", tt.host, tasks[0]["msg"])
			}
		}
	}
}

func toString(v any) string {
	s, _ := v.(string)
	return s
}

func jsonEqual(a, b any) bool {
	x, _ := json.Marshal(a)
	y, _ := json.Marshal(b)
	return bytes.Equal(x, y)
}

// txnProbe marks, in a copy of the page, each rolled-back badge with its colour and each
// transaction's list with whether the browser shows it.
const txnProbe = `<script>
document.querySelectorAll('.badge.s-rolled-back, ul.txn').forEach(function (el) {
  var r = el.getBoundingClientRect();
  el.dataset.visible = (r.width > 0 && r.height > 0 && el.checkVisibility({visibilityProperty: true})) ? 'yes' : 'no';
  el.dataset.bg = getComputedStyle(el).backgroundColor;
});
document.body.dataset.probed = 'yes';
</script>
`

// TestHTMLTransactionsInChromium: in a real browser, a rolled-back task's badge shows in
// the colour of its own, and the transaction's lines are visible under it.
func TestHTMLTransactionsInChromium(t *testing.T) {
	if testing.Short() {
		t.Skip("browser test skipped in -short mode")
	}
	bin := chromium(t)
	rep, err := Build(context.Background(), txnFleet(t), Options{})
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	if err := rep.HTML(&b); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "probe.html")
	if err := os.WriteFile(path, []byte(strings.Replace(b.String(), "</body>", txnProbe+"</body>", 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	dom := string(runChromium(t, bin, "--dump-dom", "file://"+path))
	if !strings.Contains(dom, `data-probed="yes"`) {
		t.Fatalf("the probe did not run; DOM:\n%s", dom)
	}
	badges := regexp.MustCompile(`<span class="badge s-rolled-back" data-visible="(yes|no)" data-bg="([^"]*)">rolled back</span>`).FindAllStringSubmatch(dom, -1)
	lists := regexp.MustCompile(`<ul class="txn" data-visible="(yes|no)"`).FindAllStringSubmatch(dom, -1)
	// kvm1, kvm2 (a rollback a helper's start reported) and kvm6 rolled back; kvm3's
	// rollback failed and kvm4 is unknown, with lists of their own.
	if len(badges) != 3 || len(lists) != 5 {
		t.Fatalf("%d rolled-back badges and %d transaction lists, want 3 and 5:\n%s", len(badges), len(lists), dom)
	}
	for _, m := range badges {
		if m[1] != "yes" || m[2] != "rgb(0, 131, 143)" {
			t.Errorf("a rolled-back badge: visible %s, colour %s", m[1], m[2])
		}
	}
	for _, m := range lists {
		if m[1] != "yes" {
			t.Error("a transaction's lines are not visible")
		}
	}
}
