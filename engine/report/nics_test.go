package report

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/runbook/runbook/engine/history"
)

// TestReportNICsAndWarnings: the NIC inventory of a host's last facts task becomes its NIC
// table (driver, versions, bus, PCIe link, SR-IOV, speed, MTU, bond), software interfaces
// left out and the host's text escaped; the tasks with warnings are listed with them, in
// the HTML page and in JSON.
func TestReportNICsAndWarnings(t *testing.T) {
	rep, err := Build(context.Background(), fleet(t), Options{})
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	if err := rep.HTML(&b); err != nil {
		t.Fatal(err)
	}
	page := b.String()
	for _, want := range []string{
		`<details class="host nics" data-status="ok" data-host="web2">`,
		`<summary>web2: 2 NICs (run 4,`,
		`<tr data-nic="ens2f0"><td>ens2f0</td><td>mlx5_core</td><td>5.8-1.0.1</td><td>16.35.2000 (MT_0000000012)</td><td>0000:5e:00.0</td>` +
			`<td class="over" title="the card's ports can carry more than this link">x16 Gen3 (8 GT/s), 126 Gbps, oversubscribed</td>` +
			`<td>2 of 8 VFs</td><td>100G</td><td class="num">9100</td><td>bond0</td></tr>`,
		`<tr data-nic="eth9"><td>eth9</td><td>&lt;img src=x onerror=&#34;document.body.dataset.pwned=&#39;nic&#39;&#34;&gt;mlx5\u202e</td>` +
			`<td>–</td><td>–</td><td>0000:00:03.0</td><td>–</td><td>no</td><td>–</td><td class="num">–</td><td>–</td></tr>`,
		`<span class="warn" title="tasks with warnings in the last run">1 warned</span>`,
		`<div class="task" data-task-warned="PCIe slots not oversubscribed"><b>PCIe slots not oversubscribed</b>`,
		`<ul class="warnings"><li>` + pcieWarningText + `</li></ul>`,
	} {
		if !strings.Contains(page, want) {
			t.Errorf("the page lacks %s", want)
		}
	}
	for _, absent := range []string{`data-nic="bond0"`, "<img src=x", "\u202e", `data-host="web1">` + "\n<summary>web1:", "No NIC inventory", "No warnings in"} {
		if strings.Contains(page, absent) {
			t.Errorf("the page has %q", absent)
		}
	}

	var j bytes.Buffer
	if err := rep.JSON(&j); err != nil {
		t.Fatal(err)
	}
	var got struct {
		Hosts []struct {
			Host     string
			NICs     []NIC `json:"nics"`
			Warnings []struct {
				Task     string
				Warnings []string
			}
		}
	}
	if err := json.Unmarshal(j.Bytes(), &got); err != nil {
		t.Fatal(err)
	}
	for _, h := range got.Hosts {
		switch h.Host {
		case "web2":
			if len(h.NICs) != 2 || h.NICs[0].Name != "ens2f0" || h.NICs[0].PCIe == nil || !h.NICs[0].PCIe.Oversubscribed ||
				h.NICs[1].Driver != evilDriver {
				t.Errorf("web2's NICs in JSON: %+v", h.NICs)
			}
			if len(h.Warnings) != 1 || h.Warnings[0].Task != "PCIe slots not oversubscribed" || h.Warnings[0].Warnings[0] != pcieWarningText {
				t.Errorf("web2's warnings in JSON: %+v", h.Warnings)
			}
		default:
			if h.NICs != nil || h.Warnings != nil {
				t.Errorf("%s has NICs %v, warnings %v", h.Host, h.NICs, h.Warnings)
			}
		}
	}
}

// TestReportWithoutNICs: a history without facts tasks or warnings says so.
func TestReportWithoutNICs(t *testing.T) {
	rep, err := Build(context.Background(), fleet(t), Options{Filter: history.Filter{Hosts: []string{"web1", "db1"}}})
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	if err := rep.HTML(&b); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`No NIC inventory: no facts task that gathers "nics" in the hosts' last runs.`, "No warnings in the hosts' last runs."} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("the page lacks %q", want)
		}
	}
}
