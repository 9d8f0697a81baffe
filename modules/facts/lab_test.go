package facts_test

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/runbook/runbook/internal/labtest"
	"github.com/runbook/runbook/testenv"
	"github.com/runbook/runbook/testenv/testlab"
)

// labFacts runs the facts module on lab01 through the CLI with JSON output and returns the
// exit code, the result's status and its data.
func labFacts(t *testing.T, r *labtest.Runner, args ...string) (int, string, map[string]any) {
	t.Helper()
	res := r.Module("lab01", "facts", append(args, "-o", "json")...)
	for _, line := range strings.Split(res.Out, "\n") {
		var v struct {
			Type   string         `json:"type"`
			Status string         `json:"status"`
			Data   map[string]any `json:"data"`
		}
		if json.Unmarshal([]byte(line), &v) == nil && v.Type == "result" {
			return res.Code, v.Status, v.Data
		}
	}
	t.Fatalf("no result line (exit %d):\n%s", res.Code, res.Out)
	return 0, "", nil
}

func dig(v any, path string) any {
	for _, k := range strings.Split(path, ".") {
		m, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = m[k]
	}
	return v
}

// TestFactsOnLabHost gathers the facts of a systemd lab host (Debian bookworm with
// NetworkManager running and ifupdown configuring eth0; its NICs are veths) through SSH
// and the helper, and checks them against what the host says directly. The module only
// reads: check and apply both return ok with exit 0, and the host is the same afterwards.
func TestFactsOnLabHost(t *testing.T) {
	lab := testlab.Start(t, testenv.Options{Tier: testenv.TierSystemd, Hosts: 1})
	r := labtest.New(t, lab)
	sh := func(cmd string) string {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		out, err := lab.Exec(ctx, "lab01", "sh", "-c", cmd)
		if err != nil {
			t.Fatalf("lab01: %s: %v\n%s", cmd, err, out)
		}
		return strings.TrimSpace(string(out))
	}
	// A data NIC at jumbo MTU: the facts must show the live value.
	sh("ip link set dev ens1f0 mtu 9000")
	snap := func() string {
		return sh("systemctl is-active NetworkManager firewalld networking; ip -o link | sed 's/ qlen.*//'; " +
			"find /etc /run/NetworkManager /run/network -xdev -newer /etc/hostname -printf '%p %T@\\n' 2>/dev/null | sort | sha256sum")
	}
	before := snap()

	code, status, f := labFacts(t, r, "--check")
	if code != 0 || status != "ok" {
		t.Fatalf("check: exit %d, status %q", code, status)
	}
	if after := snap(); after != before {
		t.Fatalf("check mode changed the host:\nbefore:\n%s\nafter:\n%s", before, after)
	}
	code, status, f = labFacts(t, r)
	if code != 0 || status != "ok" {
		t.Fatalf("apply: exit %d, status %q", code, status)
	}
	if after := snap(); after != before {
		t.Fatalf("the facts module changed the host:\nbefore:\n%s\nafter:\n%s", before, after)
	}

	mtu := func(nic string) float64 {
		n, err := strconv.Atoi(sh("cat /sys/class/net/" + nic + "/mtu"))
		if err != nil {
			t.Fatal(err)
		}
		return float64(n)
	}
	wants := map[string]any{
		"os.id":                    "debian",
		"os.family":                "debian",
		"os.version_major":         12.0,
		"kernel":                   sh("uname -r"),
		"arch":                     sh("uname -m"),
		"hostname":                 sh("cat /proc/sys/kernel/hostname"),
		"init":                     "systemd",
		"network.backend":          "NetworkManager",
		"network.backends_present": []any{"NetworkManager", "ifupdown"},
		"network.backends_active":  []any{"NetworkManager", "ifupdown"},
		// Debian has no legacy network service: a runbook asking for it must refuse.
		"network.network_scripts_available": false,
		"selinux.available":                 false,
		"nics.eth0.kind":                    "veth",
		"nics.eth0.driver":                  "veth", // from ethtool: a veth has no device in sysfs
		"nics.eth0.virtual":                 true,
		"nics.eth0.bus_info":                "",
		"nics.eth0.mtu":                     mtu("eth0"),
		"nics.eth0.mac":                     sh("cat /sys/class/net/eth0/address"),
		"nics.eth0.link":                    true,
		"nics.ens1f0.mtu":                   9000.0,
		"nics.ens1f1.mtu":                   mtu("ens1f1"),
		"nics.ens1f0.pcie":                  nil,
		"nics.lo":                           nil,
		"pcie_devices":                      []any{},
		// The helper runs under the SSH session, which reaches the host on eth0.
		"management.nics":           []any{"eth0"},
		"nics.ens1f0.sriov_capable": false,
	}
	for path, want := range wants {
		got := dig(f, path)
		gb, _ := json.Marshal(got)
		wb, _ := json.Marshal(want)
		if string(gb) != string(wb) {
			t.Errorf("%s = %s, want %s", path, gb, wb)
		}
	}
	if how, _ := dig(f, "management.how").(string); !strings.HasPrefix(how, "the SSH session's local address (") {
		t.Errorf("management.how = %q: the session was not followed", how)
	}
	if v := dig(f, "nics.eth0.driver_version"); v == "" || v == nil {
		t.Errorf("nics.eth0.driver_version is empty: ethtool was not asked")
	}

	// A subset reads only its part.
	code, _, f = labFacts(t, r, `gather=["init"]`)
	if code != 0 || len(f) != 1 || f["init"] != "systemd" {
		t.Errorf("gather = [init]: exit %d, data %v", code, f)
	}

	// Registered results: a later task reads task.f.* on the controller.
	dir := t.TempDir()
	book := filepath.Join(dir, "site.hcl")
	if err := os.WriteFile(book, []byte(`play "facts" {
  hosts = "lab01"
  task "f" {
    facts {
      gather = ["nics", "network"]
    }
  }
  task "jumbo data NIC" {
    assert {
      that     = [task.f.nics.ens1f0.mtu == 9000, task.f.network.backend == "NetworkManager", !task.f.nics.eth0.pcie_oversubscribed]
      fail_msg = "facts were not registered as expected"
    }
  }
}
`), 0o644); err != nil {
		t.Fatal(err)
	}
	if res := r.Run("exec", book, "-i", lab.Inventory); res.Code != 0 {
		t.Errorf("runbook using registered facts: exit %d\n%s", res.Code, res.Out)
	}

	// Bad arguments fail before any host is touched.
	for _, args := range [][]string{{"bogus=1"}, {`gather=["nic"]`}} {
		res := r.Module("lab01", "facts", args...)
		if res.Code != 1 || strings.Contains(res.Out, "lab01 ") {
			t.Errorf("facts %v: want exit 1 before the host, got %d\n%s", args, res.Code, res.Out)
		}
	}
	if res := r.Module("lab01", "facts", `gather=["nic"]`); !strings.Contains(res.Out, `did you mean "nics"`) {
		t.Errorf("no suggestion for a misspelt subset:\n%s", res.Out)
	}
}
