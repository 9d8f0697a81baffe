package network_test

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/runbook/runbook/testenv"
	"github.com/runbook/runbook/testenv/testlab"
)

// vmBondArgs is the bond the vendor guide asks for on a hypervisor: LACP over both data
// NICs, fast rate, layer3+4 hashing, jumbo frames.
func vmBondArgs(mtu int) []string {
	return []string{"name=bond0", "mode=802.3ad", `slaves=["ens1f0","ens1f1"]`, "miimon=100", "lacp_rate=fast",
		"xmit_hash_policy=layer3+4", fmt.Sprintf("mtu=%d", mtu), `addresses=["192.0.2.10/24"]`, "persist=false"}
}

// waitLACP checks the bond until LACP is negotiated and returns the last result's data.
func (h *labHost) waitLACP(args []string) map[string]any {
	h.t.Helper()
	deadline := time.Now().Add(90 * time.Second)
	for {
		code, v := h.result("bond", append(args, "--check")...)
		d := data(v)
		if code == 0 && d["lacp_ok"] == true {
			return d
		}
		if time.Now().After(deadline) {
			h.t.Fatalf("LACP not negotiated: exit %d %v\n%s", code, v, h.sh("cat /proc/net/bonding/bond0"))
		}
		time.Sleep(2 * time.Second)
	}
}

// TestNetworkOnVM runs bond, interface (VLAN) and sriov through the CLI against a vm-tier
// host: a QEMU guest with Debian's kernel, whose data NICs ens1f0 and ens1f1 are cabled to
// an 802.3ad partner bond (192.0.2.254/24, MTU 9100, VLAN 100 with 198.51.100.254/24).
func TestNetworkOnVM(t *testing.T) {
	lab := testlab.Start(t, testenv.Options{Tier: testenv.TierVM, Hosts: 1})
	h := &labHost{t: t, lab: lab, r: labRunner(t, lab)}
	snap := func() string {
		return h.sh("ip -o link show | sed 's/ qlen.*//'; ip -o addr show scope global | sed 's/ tentative//'; cat /proc/net/bonding/bond0 2>/dev/null | grep -v -e Churn -e 'port state' -e 'Link Failure'; true")
	}

	// The controller's session comes in on eth0: enslaving it, or taking it down, is
	// refused in check and in apply, and nothing changes.
	t.Run("the management NIC is guarded", func(t *testing.T) {
		h.t, h.r = t, labRunner(t, lab)
		for _, c := range []struct {
			module string
			args   []string
			want   string
		}{
			{"bond", []string{"name=bond0", "mode=802.3ad", `slaves=["eth0","ens1f0"]`, "persist=false"}, `"eth0: enslave to bond0" enslaves eth0: eth0 holds `},
			{"interface", []string{"name=eth0", "state=down", "backend=none"}, `"eth0: up → down" takes down eth0: eth0 holds `},
		} {
			for _, mode := range [][]string{{"--check"}, nil} {
				before := snap()
				res := h.r.Module("lab01", c.module, append(c.args, mode...)...)
				out := strings.Join(strings.Fields(res.Out), " ")
				if res.Code != 2 || !strings.Contains(out, c.want) || !strings.Contains(out, "this SSH session's address") {
					t.Errorf("%s %v: exit %d, want 2 with %q\n%s", c.module, mode, res.Code, c.want, res.Out)
				}
				if after := snap(); after != before {
					t.Fatalf("a refused task changed the host:\n%s\n->\n%s", before, after)
				}
			}
		}
	})

	t.Run("bond 802.3ad", func(t *testing.T) {
		h.t, h.r = t, labRunner(t, lab)
		h.rejected(snap, "bond", "name=bond0", "mode=802.3ad", `slaves=["ens1f0","ens1f1"]`, "lacp_rate=sometimes", "persist=false")
		h.rejected(snap, "bond", "name=bond0", "mode=802.3ad", `slaves=["ens1f0","ens1f1"]`, "bogus=1")

		args := vmBondArgs(9000)
		res := h.r.Timeline("lab01", "bond", args, snap)
		for _, want := range []string{"bond0: create (mode 802.3ad)", "ens1f0: enslave to bond0", "ens1f1: mtu 1500 → 9000"} {
			if !strings.Contains(res[0].Out, want) {
				t.Errorf("check lacks %q:\n%s", want, res[0].Out)
			}
		}
		d := h.waitLACP(args)
		partner := strings.TrimSpace(h.sh("ip netns exec switch cat /sys/class/net/" + testenv.VMPartnerBond + "/address"))
		lacp, _ := d["lacp"].(map[string]any)
		slaves, _ := lacp["slaves"].(map[string]any)
		var aggs []string
		for _, n := range []string{"ens1f0", "ens1f1"} {
			s, _ := slaves[n].(map[string]any)
			if s["partner_mac"] != partner || s["in_active_aggregator"] != true {
				t.Errorf("%s: %v (partner %s)", n, s, partner)
			}
			aggs = append(aggs, fmt.Sprint(s["aggregator_id"]))
		}
		if aggs[0] != aggs[1] || aggs[0] == "0" {
			t.Errorf("aggregators %v", aggs)
		}
		if d["mode"] != "802.3ad" || d["mtu"] != float64(9000) || !slices.Equal(list(d["slaves"]), []string{"ens1f0", "ens1f1"}) {
			t.Errorf("data: %v", d)
		}
		if got := h.sh("cat /sys/class/net/bond0/bonding/mode /sys/class/net/bond0/bonding/lacp_rate /sys/class/net/bond0/bonding/xmit_hash_policy /sys/class/net/ens1f0/mtu /sys/class/net/ens1f1/mtu"); got != "802.3ad 4\nfast 1\nlayer3+4 1\n9000\n9000\n" {
			t.Errorf("sysfs:\n%s", got)
		}
		// Jumbo frames cross the bond to the partner.
		h.sh(fmt.Sprintf("ping -c 2 -W 5 -s 8000 %s", testenv.VMPartnerAddr))
	})

	t.Run("a slave set down is drift", func(t *testing.T) {
		h.t, h.r = t, labRunner(t, lab)
		args := vmBondArgs(9000)
		h.sh("ip link set ens1f1 down")
		code, v := h.result("bond", append(args, "--check")...)
		if d := data(v); code != 4 || !slices.Contains(list(d["runtime_drift"]), "ens1f1: down → up") {
			t.Fatalf("check with ens1f1 down: exit %d %v", code, d)
		}
		if code, v := h.result("bond", args...); code != 0 || v["status"] != "changed" {
			t.Fatalf("apply: exit %d %v", code, v)
		}
		h.waitLACP(args)
	})

	t.Run("mtu 9100 on the bond and its slaves", func(t *testing.T) {
		h.t, h.r = t, labRunner(t, lab)
		args := vmBondArgs(9100)
		res := h.r.Timeline("lab01", "bond", args, snap)
		if !strings.Contains(res[1].Out, "bond0: mtu 9000 → 9100") {
			t.Errorf("apply:\n%s", res[1].Out)
		}
		if got := h.sh("cat /sys/class/net/bond0/mtu /sys/class/net/ens1f0/mtu /sys/class/net/ens1f1/mtu"); got != "9100\n9100\n9100\n" {
			t.Errorf("mtus:\n%s", got)
		}
		h.waitLACP(args)
	})

	t.Run("mode change releases and takes back the slaves", func(t *testing.T) {
		h.t, h.r = t, labRunner(t, lab)
		ab := []string{"name=bond0", "mode=active-backup", `slaves=["ens1f0","ens1f1"]`, "primary=ens1f1", "miimon=100", "mtu=9100", "persist=false"}
		h.r.Timeline("lab01", "bond", ab, snap)
		if got := h.sh("cat /sys/class/net/bond0/bonding/mode /sys/class/net/bond0/bonding/primary /sys/class/net/bond0/bonding/slaves"); got != "active-backup 1\nens1f1\nens1f0 ens1f1\n" {
			t.Errorf("active-backup:\n%s", got)
		}
		args := vmBondArgs(9100)
		h.r.Timeline("lab01", "bond", args, snap)
		h.waitLACP(args)
	})

	t.Run("vlan on the bond", func(t *testing.T) {
		h.t, h.r = t, labRunner(t, lab)
		h.rejected(snap, "interface", "name=bond0.100", `vlan={parent="bond0",id=0}`)
		args := []string{"name=bond0.100", `vlan={parent="bond0",id=100}`, "state=up", `addresses=["198.51.100.10/24"]`, "persist=false"}
		res := h.r.Timeline("lab01", "interface", args, snap)
		if !strings.Contains(res[0].Out, "bond0.100: create VLAN 100 on bond0") {
			t.Errorf("check:\n%s", res[0].Out)
		}
		if d := h.sh("ip -d link show bond0.100"); !strings.Contains(d, "vlan protocol 802.1Q id 100") {
			t.Errorf("not an 802.1Q VLAN:\n%s", d)
		}
		h.sh(fmt.Sprintf("ping -c 2 -W 5 %s", testenv.VMPartnerVLANAddr))
		code, v := h.result("interface", args...)
		if d := data(v); code != 0 || d["kind"] != "vlan" || d["mtu"] != float64(9100) {
			t.Errorf("in sync: exit %d %v", code, d)
		}
	})

	t.Run("sriov on netdevsim", func(t *testing.T) {
		h.t, h.r = t, labRunner(t, lab)
		// The vm assets build netdevsim for the guest's kernel when this machine has the
		// tools; without them the guest says why it has no SR-IOV.
		if why, err := h.try("cat /etc/runbook-lab/sriov-skip"); err == nil {
			t.Skip(strings.TrimSpace(why))
		}
		pf := testenv.VMSriovPF
		dev := "/sys/class/net/" + pf + "/device/"
		if got := h.sh("cat " + dev + "sriov_totalvfs " + dev + "sriov_numvfs"); got != fmt.Sprintf("%d\n0\n", testenv.VMSriovTotalVFs) {
			t.Fatalf("%s sriov_totalvfs, sriov_numvfs: %q", pf, got)
		}
		usnap := func() string {
			return snap() + h.sh("cat "+dev+"sriov_numvfs; ip link show "+pf)
		}
		// vfLines are the VF lines of `ip link show PF`.
		vfLines := func() []string {
			var out []string
			for line := range strings.SplitSeq(h.sh("ip link show "+pf), "\n") {
				if line = strings.TrimSpace(line); strings.HasPrefix(line, "vf ") {
					out = append(out, line)
				}
			}
			return out
		}

		all := "device=" + pf
		var vfs []string
		for i := range testenv.VMSriovTotalVFs {
			vfs = append(vfs, fmt.Sprintf("{index=%d,trust=true,spoofchk=false}", i))
		}
		args := []string{all, fmt.Sprintf("num_vfs=%d", testenv.VMSriovTotalVFs), "vfs=[" + strings.Join(vfs, ",") + "]", "persist=false"}
		res := h.r.Timeline("lab01", "sriov", args, usnap)
		if want := fmt.Sprintf("num_vfs 0 → %d", testenv.VMSriovTotalVFs); !strings.Contains(res[0].Out, want) {
			t.Errorf("check lacks %q:\n%s", want, res[0].Out)
		}
		lines := vfLines()
		if len(lines) != testenv.VMSriovTotalVFs {
			t.Fatalf("%d VFs on %s, want %d: %q", len(lines), pf, testenv.VMSriovTotalVFs, lines)
		}
		for i, line := range lines {
			for _, want := range []string{fmt.Sprintf("vf %d ", i), "spoof checking off", "trust on"} {
				if !strings.Contains(line, want) {
					t.Errorf("VF line %q lacks %q", line, want)
				}
			}
		}

		// A VF changed behind runbook's back (with ip, over netlink too) is drift again.
		h.sh("ip link set " + pf + " vf 1 trust off spoofchk on")
		code, v := h.result("sriov", append(args, "--check")...)
		if d := fmt.Sprint(data(v)["runtime_drift"]); code != 4 || !strings.Contains(d, "vf 1: trust off → on") || !strings.Contains(d, "vf 1: spoofchk on → off") {
			t.Errorf("VF 1 changed by ip: exit %d, drift %s", code, d)
		}
		if res := h.r.Module("lab01", "sriov", args...); res.Code != 0 || !strings.Contains(h.sh("ip link show "+pf), "vf 1 ") {
			t.Errorf("apply: exit %d\n%s", res.Code, res.Out)
		}
		if code, _ := h.result("sriov", append(args, "--check")...); code != 0 {
			t.Errorf("after the repair: exit %d", code)
		}

		fewer := []string{all, "num_vfs=2", `vfs=[{index=0,trust=true,spoofchk=false},{index=1,mac="02:00:00:00:00:11",vlan=100}]`, "persist=false"}
		res = h.r.Timeline("lab01", "sriov", fewer, usnap)
		if want := fmt.Sprintf("num_vfs %d → 2 (through 0", testenv.VMSriovTotalVFs); !strings.Contains(res[0].Out, want) {
			t.Errorf("check lacks %q:\n%s", want, res[0].Out)
		}
		if got := h.sh("cat " + dev + "sriov_numvfs"); got != "2\n" {
			t.Errorf("sriov_numvfs %q, want 2", got)
		}
		lines = vfLines()
		if len(lines) != 2 || !strings.Contains(lines[0], "trust on") || !strings.Contains(lines[0], "spoof checking off") ||
			!strings.Contains(lines[1], "link/ether 02:00:00:00:00:11") || !strings.Contains(lines[1], "vlan 100") {
			t.Errorf("VFs after 4 → 2: %q", lines)
		}
		code, v = h.result("sriov", append(fewer, "--check")...)
		if d := data(v); code != 0 || d["total_vfs"] != float64(testenv.VMSriovTotalVFs) || d["num_vfs"] != float64(2) || len(d["vfs"].([]any)) != 2 {
			t.Errorf("in sync: exit %d %v", code, d)
		}

		// More VFs than sriov_totalvfs: refused before anything changes, in check and apply.
		for _, mode := range [][]string{{"--check"}, nil} {
			before := usnap()
			args := append([]string{all, fmt.Sprintf("num_vfs=%d", testenv.VMSriovTotalVFs+1), "persist=false"}, mode...)
			res := h.r.Module("lab01", "sriov", args...)
			if want := fmt.Sprintf("offers at most %d VFs", testenv.VMSriovTotalVFs); res.Code != 2 || !strings.Contains(res.Out, want) {
				t.Errorf("sriov %v: exit %d, want 2 with %q\n%s", args, res.Code, want, res.Out)
			}
			if after := usnap(); after != before {
				t.Fatalf("a refused task changed the host:\n%s\n->\n%s", before, after)
			}
		}
		h.rejected(usnap, "sriov", all, "num_vfs=2", `vfs=[{index=2}]`, "persist=false")
	})
}
