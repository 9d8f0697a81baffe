package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rogpeppe/go-internal/txtar"

	"github.com/runbook/runbook/engine/config"
	"github.com/runbook/runbook/engine/history"
	"github.com/runbook/runbook/engine/plan"
	"github.com/runbook/runbook/engine/report"
	"github.com/runbook/runbook/engine/run"
	"github.com/runbook/runbook/engine/view"
	"github.com/runbook/runbook/inventory"
	"github.com/runbook/runbook/modules"
	"github.com/runbook/runbook/modules/facts"
	"github.com/runbook/runbook/modules/host"
)

// The BIG-IP VE runbook's checks and refusals against a host whose facts are the facts
// module's own EL8 fixture (modules/facts/testdata/el8.txtar), the guide's example among
// them: a dual-port 100G card (ens2f0, ens2f1, with SR-IOV) on an x16 Gen3 link (200 Gbps of
// ports on about 126 Gbps), and two 25G ports (ens1f0, ens1f1) in bond0 on x8 Gen3. No lab
// has a PCIe link to show (virtual NICs have none): the facts come from sysfs files read by
// the real facts code, the runbook and the engine are the real ones, and the host's modules
// are answered by fakeBigIP, which records every call so a refusal is seen to run nothing.

// el8Facts gathers the facts module's EL8 fixture; management replaces what the
// management facts found (nil: the fixture's).
func el8Facts(t *testing.T, management []string) map[string]any {
	t.Helper()
	a, err := txtar.ParseFile("../../modules/facts/testdata/el8.txtar")
	if err != nil {
		t.Fatal(err)
	}
	root := t.TempDir()
	write := func(p, content string) {
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, f := range a.Files {
		if src, dst, ok := strings.Cut(f.Name, " -> "); ok {
			p := filepath.Join(root, src)
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.Symlink(dst, p); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if dir, ok := strings.CutSuffix(f.Name, "/"); ok {
			for _, line := range strings.Split(string(f.Data), "\n") {
				if k, v, ok := strings.Cut(line, "="); ok {
					write(filepath.Join(root, dir, k), v+"\n")
				}
			}
			continue
		}
		write(filepath.Join(root, f.Name), string(f.Data))
	}
	data, err := facts.Gather(context.Background(), facts.Options{Root: host.Root(root)})
	if err != nil {
		t.Fatal(err)
	}
	if management != nil {
		list := make([]any, len(management))
		for i, n := range management {
			list[i] = n
		}
		data["management"] = map[string]any{"nics": list, "how": "the SSH session's local address (test)"}
	}
	return data
}

// fakeBigIP answers the facts op and the facts module with its facts, and every other
// module with ok, recording "MODULE" for each call.
type fakeBigIP struct {
	facts map[string]any
	mu    sync.Mutex
	calls []string
}

func (f *fakeBigIP) Connect(context.Context, run.Endpoint) (run.Connection, error) { return f, nil }
func (f *fakeBigIP) Executor(context.Context, run.Identity) (run.Executor, error)  { return f, nil }
func (f *fakeBigIP) Close() error                                                  { return nil }
func (f *fakeBigIP) Facts(context.Context) (map[string]any, error)                 { return f.facts, nil }

func (f *fakeBigIP) Run(_ context.Context, c run.Call, _ bool) (*modules.Result, error) {
	f.mu.Lock()
	f.calls = append(f.calls, c.Module)
	f.mu.Unlock()
	if c.Module == "facts" {
		return &modules.Result{Status: modules.StatusOK, Data: f.facts}, nil
	}
	return &modules.Result{Status: modules.StatusOK}, nil
}

// observers hands each event to every observer.
type observers []run.Observer

func (o observers) HostStarted(h string) {
	for _, x := range o {
		x.HostStarted(h)
	}
}
func (o observers) TaskDone(r run.Result) {
	for _, x := range o {
		x.TaskDone(r)
	}
}
func (o observers) HostDone(h string, s run.Stats) {
	for _, x := range o {
		x.HostDone(h, s)
	}
}

// bigipRun is one run of the runbook on host kvm1 with the given host vars (HCL) and --var
// pairs, recorded in store: its exit code, the human output and the modules the host ran.
func bigipRun(t *testing.T, store history.Store, f *fakeBigIP, hostVars string, check bool, vars ...string) (int, string, []string) {
	t.Helper()
	rb, diags := config.Load("../../runbooks/bigip-ve-kvm", config.Inputs{Vars: vars})
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	invPath := filepath.Join(t.TempDir(), "inv.hcl")
	if err := os.WriteFile(invPath, []byte("host \"kvm1\" {\n  address = \"192.0.2.10\"\n  vars = {\n"+hostVars+"\n  }\n}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	inv, diags := inventory.LoadWith(context.Background(), inventory.LoadOptions{}, invPath)
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	pl, diags := plan.Build(rb, inv, plan.Options{Check: check})
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	var out bytes.Buffer
	human := &view.Human{W: &out}
	mode := history.ModeExec
	if check {
		mode = history.ModeCheck
	}
	rec, err := history.Begin(context.Background(), store, history.Run{Runbook: "../../runbooks/bigip-ve-kvm", Mode: mode},
		func(err error) { t.Error(err) })
	if err != nil {
		t.Fatal(err)
	}
	f.calls = nil
	eng := &run.Engine{Runbook: rb, Connector: f, Observer: observers{human, rec}, Options: run.Options{Check: check, HostTimeout: time.Minute}}
	recap := eng.Run(context.Background(), pl)
	if err := human.Finish(recap); err != nil {
		t.Fatal(err)
	}
	if err := rec.Finish(recap); err != nil {
		t.Fatal(err)
	}
	return recap.ExitCode(), out.String(), slices.Clone(f.calls)
}

// TestBigIPRunbookOnFixtureFacts: the PCIe oversubscription of the guide's example is a
// warning (exit 0) in the recap, the history and the HTML report, beside the host's NIC
// table; strict_pcie makes it fail the host; an SR-IOV PF among the data NICs and a data
// NIC on the management path are refused before any module runs on the host; a host
// without a hostname in the inventory keeps its own.
func TestBigIPRunbookOnFixtureFacts(t *testing.T) {
	store, err := history.Open(context.Background(), filepath.Join(t.TempDir(), "history.db"), history.Options{Create: true})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	base := `    data_nics = ["ens1f0", "ens1f1"]
    network_backend = "NetworkManager"`
	f := &fakeBigIP{facts: el8Facts(t, []string{"eno1"})}
	// The bond's LACP check reads the running bond (a host module); this host's kernel is a
	// fixture, so it is skipped like on a host whose kernel lacks the driver.
	noRuntime := "network_runtime=false"

	t.Run("PCIe oversubscription warns", func(t *testing.T) {
		code, out, calls := bigipRun(t, store, f, base, true, noRuntime)
		warning := "kvm1: card 0000:5e:00 (ens2f0, ens2f1): its ports add up to 200 Gbps, more than the 126 Gbps its PCIe link carries (x16 Gen3); " +
			"the guide: an x8 slot achieves about 63 Gbps and x16 about 126 Gbps (Gen3), so spread the ports over cards or expect less than line rate"
		if code != 0 || !strings.Contains(out, "kvm1 ok          hypervisor.PCIe slots not oversubscribed\n    warning: "+warning) ||
			!regexp.MustCompile(`(?m)^  kvm1  ok=\d+ changed=0 drift=0 failed=0 unreachable=0 skipped=\d+ warnings=2$`).MatchString(out) {
			t.Fatalf("exit %d\n%s", code, out)
		}
		// The other warning: no hostname in the inventory, so the host keeps its own.
		if !strings.Contains(out, "warning: kvm1: no hostname in the inventory (host.vars.hostname): the hostname task is skipped and the host keeps its name hv01.example.net") {
			t.Errorf("no note about the hostname:\n%s", out)
		}
		if slices.Contains(calls, "hostname") {
			t.Errorf("the hostname module ran without a hostname: %v", calls)
		}
		if !slices.Contains(calls, "facts") {
			t.Errorf("no NIC inventory: %v", calls)
		}

		rep, err := report.Build(context.Background(), store, report.Options{})
		if err != nil {
			t.Fatal(err)
		}
		var page bytes.Buffer
		if err := rep.HTML(&page); err != nil {
			t.Fatal(err)
		}
		for _, want := range []string{
			`<li>` + strings.ReplaceAll(warning, "'", "&#39;") + `</li>`,
			`<tr data-nic="ens2f0"><td>ens2f0</td><td>mlx5_core</td>`,
			`<td class="over" title="the card's ports can carry more than this link">x16 Gen3 (8 GT/s), 126 Gbps, oversubscribed</td><td>4 of 8 VFs</td>`,
			`<tr data-nic="ens1f0"><td>ens1f0</td><td>i40e</td>`,
		} {
			if !strings.Contains(page.String(), want) {
				t.Errorf("the report lacks %s", want)
			}
		}
		if strings.Contains(page.String(), `data-nic="bond0"`) {
			t.Error("the bond is in the NIC table")
		}
	})

	t.Run("strict_pcie fails", func(t *testing.T) {
		code, out, _ := bigipRun(t, store, f, base, true, noRuntime, "strict_pcie=true")
		if code != 2 || !regexp.MustCompile(`(?m)^kvm1 failed +hypervisor\.PCIe slots not oversubscribed: kvm1: card 0000:5e:00 .*\(condition 2 of 2 is false\)$`).MatchString(out) {
			t.Fatalf("exit %d\n%s", code, out)
		}
	})

	for _, tc := range []struct {
		name, vars, task, msg string
		management            []string
	}{
		{"an SR-IOV PF in the bond", base + "\n    sriov_pf = \"ens1f0\"", "hypervisor.SR-IOV PF not in the bond",
			"kvm1: sriov_pf ens1f0 is also a data NIC (data_nics: ens1f0, ens1f1): the guide dedicates the bonded NIC to BIG-IP VE, which avoids SR-IOV VFs that appear to function but do not pass traffic; give the VFs a PF outside the bond",
			[]string{"eno1"}},
		{"a data NIC on the management path", `    data_nics = ["ens2f0", "ens2f1"]
    network_backend = "NetworkManager"`, "hypervisor.data NICs off the management path",
			"kvm1: data NICs ens2f1 carry the management path (ens2f1, from the SSH session's local address (test)): bonding them would cut this host off; take them out of data_nics or move management to another NIC",
			[]string{"ens2f1"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := &fakeBigIP{facts: el8Facts(t, tc.management)}
			for _, check := range []bool{false, true} {
				code, out, calls := bigipRun(t, store, f, tc.vars, check, "sriov_numvfs=2", "vlans={internal=100}")
				if code != 2 || !regexp.MustCompile(`(?m)^kvm1 failed +`+regexp.QuoteMeta(tc.task+": "+tc.msg)+` \(condition \d of \d is false\)$`).MatchString(out) {
					t.Fatalf("check %v: exit %d\n%s", check, code, out)
				}
				// Nothing ran on the host: the refusal comes before the first module.
				if len(calls) != 0 || strings.Contains(out, " changed ") {
					t.Errorf("check %v: the host ran %v\n%s", check, calls, out)
				}
			}
		})
	}

	t.Run("SR-IOV without a bond", func(t *testing.T) {
		f := &fakeBigIP{facts: el8Facts(t, []string{"eno1"})}
		code, out, calls := bigipRun(t, store, f, `    network_backend = "NetworkManager"
    sriov_pf = "ens2f0"`, false, noRuntime, "sriov_numvfs=2")
		if code != 0 || !slices.Contains(calls, "sriov") || slices.Contains(calls, "bond") {
			t.Fatalf("exit %d, calls %v\n%s", code, calls, out)
		}
	})

	t.Run("a data NIC already in the bond carries management: allowed", func(t *testing.T) {
		f := &fakeBigIP{facts: el8Facts(t, []string{"bond0", "ens1f0", "ens1f1"})}
		code, out, calls := bigipRun(t, store, f, base+"\n    hostname = \"hv1.example.net\"", false, noRuntime)
		if code != 0 || !slices.Contains(calls, "bond") || !slices.Contains(calls, "hostname") || strings.Contains(out, "no hostname") {
			t.Fatalf("exit %d, calls %v\n%s", code, calls, out)
		}
	})
}
