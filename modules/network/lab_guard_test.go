package network_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/runbook/runbook/testenv"
	"github.com/runbook/runbook/testenv/testlab"
)

// TestGuardOnNSHost runs the interface module through the CLI against an ns-tier host,
// whose SSH session comes in on eth0 (the management veth in the host's own network
// namespace): taking eth0 down, replacing its addresses and changing its MTU are refused
// in check and in apply with a message that names eth0 and the session's address, and
// nothing changes (read back over netlink by ip); with on_management_path = "allow" the MTU
// change is made (and undone); a change on a data NIC goes through without a word.
func TestGuardOnNSHost(t *testing.T) {
	lab := testlab.Start(t, testenv.Options{Tier: testenv.TierNS, Hosts: 1})
	h := &labHost{t: t, lab: lab, r: labRunner(t, lab)}
	ip := lab.Hosts[0].MgmtIP
	snap := func() string {
		return h.sh("ip -o link show eth0 | sed 's/ qlen.*//'; ip -o addr show dev eth0 | sed 's/ tentative//'; ip route show default")
	}
	how := regexp.MustCompile(`eth0 holds ` + regexp.QuoteMeta(ip) + `, this SSH session's address \(peer [0-9.]+\)`)
	for _, c := range []struct {
		name string
		args []string
		what string
	}{
		{"down", []string{"name=eth0", "state=down"}, `"eth0: up → down" takes down eth0: `},
		{"addresses replaced", []string{"name=eth0", `addresses=["192.0.2.99/24"]`, "exclusive=true"}, `removes an address of eth0: `},
		{"mtu", []string{"name=eth0", "mtu=1400"}, `"eth0: mtu 1500 → 1400" changes the MTU of eth0: `},
	} {
		t.Run(c.name, func(t *testing.T) {
			h.t = t
			for _, mode := range [][]string{{"--check"}, nil} {
				before := snap()
				res := h.r.Module("lab01", "interface", append(append(c.args, "backend=none"), mode...)...)
				out := strings.Join(strings.Fields(res.Out), " ")
				if res.Code != 2 || !strings.Contains(out, c.what) || !how.MatchString(out) || !strings.Contains(out, `set on_management_path = "allow" on the task`) {
					t.Errorf("%v: exit %d, want 2 naming eth0 and %s\n%s", mode, res.Code, ip, res.Out)
				} else if mode == nil {
					t.Logf("refused:\n%s", res.Out)
				}
				if after := snap(); after != before {
					t.Fatalf("a refused task changed the host:\n%s\n->\n%s", before, after)
				}
			}
		})
	}

	// Under sudo the helper's environment has no SSH_CONNECTION: the session is found from
	// sshd's socket above it.
	t.Run("under sudo", func(t *testing.T) {
		h.t = t
		if _, err := exec.LookPath("sudo"); err != nil {
			if os.Getenv("CI") == "true" {
				t.Fatalf("CI=true and %v (scripts/install-deps.sh installs it)", err)
			}
			t.Skip("sudo is not installed on this machine (the ns tier shares its binaries): apt-get install sudo")
		}
		pub, err := os.ReadFile(lab.Key + ".pub")
		if err != nil {
			t.Fatal(err)
		}
		h.sh("id op >/dev/null 2>&1 || useradd -m -d /tmp/op -s /bin/sh op; echo 'op ALL=(ALL:ALL) NOPASSWD: ALL' > /etc/sudoers.d/op && chmod 440 /etc/sudoers.d/op && install -d -m 700 -o op /tmp/op/.ssh && echo '" +
			strings.TrimSpace(string(pub)) + "' > /tmp/op/.ssh/authorized_keys && chown op /tmp/op/.ssh/authorized_keys")
		inv, err := os.ReadFile(lab.Inventory)
		if err != nil {
			t.Fatal(err)
		}
		dir := t.TempDir()
		opInv := filepath.Join(dir, "op.hcl")
		if err := os.WriteFile(opInv, []byte(regexp.MustCompile(`user *= *"root"`).ReplaceAllString(string(inv), `user = "op"`)), 0o644); err != nil {
			t.Fatal(err)
		}
		book := filepath.Join(dir, "mtu.hcl")
		if err := os.WriteFile(book, []byte(`play "mtu" {
  hosts  = "lab01"
  become = true
  task "eth0 mtu" {
    interface {
      name    = "eth0"
      mtu     = 1400
      backend = "none"
    }
  }
}
`), 0o644); err != nil {
			t.Fatal(err)
		}
		before := snap()
		res := h.r.Run("exec", book, "-i", opInv)
		out := strings.Join(strings.Fields(res.Out), " ")
		if res.Code != 2 || !how.MatchString(out) {
			t.Errorf("under sudo: exit %d, want 2 naming eth0\n%s", res.Code, res.Out)
		}
		if after := snap(); after != before {
			t.Fatalf("a refused task changed the host:\n%s\n->\n%s", before, after)
		}
	})

	t.Run("allow", func(t *testing.T) {
		h.t = t
		code, v := h.result("interface", "name=eth0", "mtu=1400", "backend=none", "on_management_path=allow")
		if code != 0 || v["status"] != "changed" || !strings.Contains(strings.Join(list(v["warnings"]), "\n"), `on_management_path = "allow": "eth0: mtu 1500 → 1400"`) {
			t.Errorf("allow: exit %d %v", code, v)
		}
		if got := h.sh("cat /sys/class/net/eth0/mtu"); got != "1400\n" {
			t.Errorf("mtu %q", got)
		}
		if code, v := h.result("interface", "name=eth0", "mtu=1500", "backend=none", "on_management_path=allow"); code != 0 || v["status"] != "changed" {
			t.Errorf("restore: exit %d %v", code, v)
		}
	})

	t.Run("a data NIC", func(t *testing.T) {
		h.t = t
		code, v := h.result("interface", "name=ens1f0", "mtu=9000", "state=down", "backend=none")
		if code != 0 || v["status"] != "changed" || len(list(v["warnings"])) != 0 {
			t.Errorf("ens1f0: exit %d %v", code, v)
		}
		if got := h.sh("cat /sys/class/net/ens1f0/mtu"); got != "9000\n" {
			t.Errorf("mtu %q", got)
		}
	})
}
