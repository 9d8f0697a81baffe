package network_test

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/runbook/runbook/testenv"
	"github.com/runbook/runbook/testenv/testlab"
)

// TestBridgeOnNSHost runs the bridge module through the CLI against an ns-tier host, with
// the kernel's bridge driver and the host's own /etc: check changes nothing, apply makes
// the bridge on the data NICs (read back from /sys/class/net, not from the module) and the
// ifupdown stanza, a second check and apply find it in sync; then STP, MTU and ports
// change, VLAN filtering goes on, a port the task does not list (a guest's tap, as libvirt
// adds one) stays until exclusive_ports releases it; state = "absent" deletes the bridge
// and its stanza. Putting eth0, which carries the session, into a bridge is refused.
func TestBridgeOnNSHost(t *testing.T) {
	lab := testlab.Start(t, testenv.Options{Tier: testenv.TierNS, Hosts: 1})
	h := &labHost{t: t, lab: lab, r: labRunner(t, lab)}
	const stanza = "/etc/network/interfaces.d/br0"
	// kernel describes br0 and its ports from sysfs.
	kernel := func() string {
		return h.sh(`cd /sys/class/net; if [ -d br0 ]; then echo "br0 mtu=$(cat br0/mtu) up=$(( $(cat br0/flags) & 1 )) stp=$(cat br0/bridge/stp_state) vlan_filtering=$(cat br0/bridge/vlan_filtering 2>/dev/null || echo none) ports=$(ls br0/brif | tr '\n' ,)"; else echo "no br0"; fi; for p in ens1f0 ens1f1 rbtap0; do [ -d $p ] && echo "$p mtu=$(cat $p/mtu) up=$(( $(cat $p/flags) & 1 ))"; done; true`)
	}
	file := func() string { return h.sh("cat " + stanza + " 2>/dev/null || echo '(absent)'") }
	args := []string{"name=br0", `ports=["ens1f0"]`, "mtu=9000", "backend=ifupdown"}

	t.Run("create", func(t *testing.T) {
		h.t = t
		before, beforeFile := kernel(), file()
		code, v := h.result("bridge", append(args, "--check")...)
		want := []string{"br0: create (stp off, vlan_filtering off)", "ens1f0: mtu 1500 → 9000", "ens1f0: enslave to br0", "br0: mtu 9000", "br0: down → up"}
		if d := data(v); code != 4 || v["status"] != "drift" || !slices.Equal(list(d["runtime_drift"]), want) ||
			// The host's own /etc has no interfaces file yet: the module adds one that
			// sources interfaces.d.
			strings.Join(list(d["persistent_drift"]), ";") != "br0: not configured;br0: /etc/network/interfaces does not read /etc/network/interfaces.d" {
			t.Errorf("check: exit %d %v", code, v)
		}
		if kernel() != before || file() != beforeFile {
			t.Fatalf("check changed the host:\n%s\n->\n%s", before, kernel())
		}
		if code, v := h.result("bridge", args...); code != 0 || v["status"] != "changed" {
			t.Fatalf("apply: exit %d %v", code, v)
		}
		got := kernel()
		if !regexp.MustCompile(`br0 mtu=9000 up=1 stp=0 vlan_filtering=(0|none) ports=ens1f0,`).MatchString(got) || !strings.Contains(got, "ens1f0 mtu=9000 up=1") {
			t.Errorf("after apply:\n%s", got)
		}
		if f := file(); !strings.Contains(f, "auto br0\niface br0 inet manual\n    bridge_ports ens1f0\n    bridge_stp off\n    mtu 9000\n") {
			t.Errorf("stanza:\n%s", f)
		}
		for _, mode := range [][]string{{"--check"}, nil} {
			if code, v := h.result("bridge", append(args, mode...)...); code != 0 || v["status"] != "ok" {
				t.Errorf("%v after apply: exit %d %v", mode, code, v)
			}
		}
	})

	t.Run("a guest's tap stays", func(t *testing.T) {
		h.t = t
		// libvirt gives a tap the bridge's MTU before it joins.
		h.sh("ip link add rbtap0 mtu 9000 type veth peer name rbtap1 mtu 9000 && ip link set rbtap0 master br0 && ip link set rbtap0 up")
		if code, v := h.result("bridge", args...); code != 0 || v["status"] != "ok" || !slices.Contains(list(data(v)["ports"]), "rbtap0") {
			t.Errorf("with a tap: exit %d %v", code, v)
		}
	})

	t.Run("stp, mtu and ports change", func(t *testing.T) {
		h.t = t
		changed := []string{"name=br0", `ports=["ens1f0","ens1f1"]`, "mtu=9100", "stp=true", "backend=ifupdown"}
		code, v := h.result("bridge", changed...)
		want := []string{"br0: stp off → on", "ens1f0: mtu 9000 → 9100", "ens1f1: mtu 1500 → 9100", "ens1f1: enslave to br0", "br0: mtu 9000 → 9100"}
		if d := data(v); code != 0 || v["status"] != "changed" || !slices.Equal(list(d["runtime_drift"]), want) {
			t.Errorf("apply: exit %d %v", code, v)
		}
		got := kernel()
		for _, w := range []string{`br0 mtu=9100 up=1 stp=1 vlan_filtering=(0|none) ports=ens1f0,ens1f1,rbtap0,`, "ens1f1 mtu=9100"} {
			if !regexp.MustCompile(w).MatchString(got) {
				t.Errorf("after the change, no %q in\n%s", w, got)
			}
		}
		if f := file(); !strings.Contains(f, "bridge_ports ens1f0 ens1f1\n    bridge_stp on\n    mtu 9100\n") {
			t.Errorf("stanza:\n%s", f)
		}
		if code, v := h.result("bridge", append(changed, "--check")...); code != 0 || v["status"] != "ok" {
			t.Errorf("check after the change: exit %d %v", code, v)
		}

		vlan := append(slices.Clone(changed), "vlan_filtering=true")
		if _, err := h.try("test -e /sys/class/net/br0/bridge/vlan_filtering"); err != nil {
			// This kernel was built without VLAN filtering for bridges (the ns tier runs
			// on the machine's): the apply fails saying so, and is rolled back.
			before, beforeFile := kernel(), file()
			code, v := h.result("bridge", vlan...)
			if code != 2 || !strings.Contains(fmt.Sprint(v["msg"]), "CONFIG_BRIDGE_VLAN_FILTERING") || !strings.Contains(fmt.Sprint(v["msg"]), "rolled back") {
				t.Errorf("vlan_filtering on a kernel without it: exit %d %v", code, v)
			}
			if kernel() != before || file() != beforeFile {
				t.Errorf("the failed apply left the host changed:\n%s\n->\n%s\n%s", before, kernel(), file())
			}
			t.Logf("this kernel has no VLAN filtering for bridges: %v", v["msg"])
			vlan = changed
		}
		vlan = append(vlan, "exclusive_ports=true")
		code, v = h.result("bridge", vlan...)
		want = []string{"rbtap0: release from br0"}
		if slices.Contains(vlan, "vlan_filtering=true") {
			want = append([]string{"br0: vlan_filtering off → on"}, want...)
		}
		if d := data(v); code != 0 || v["status"] != "changed" || !slices.Equal(list(d["runtime_drift"]), want) {
			t.Errorf("exclusive (and vlan_filtering): exit %d %v", code, v)
		}
		if got := kernel(); !regexp.MustCompile(`stp=1 vlan_filtering=(1|none) ports=ens1f0,ens1f1,\n`).MatchString(got) {
			t.Errorf("after exclusive (and vlan_filtering):\n%s", got)
		}
		if f := file(); slices.Contains(vlan, "vlan_filtering=true") != strings.Contains(f, "bridge_vlan_aware yes") {
			t.Errorf("stanza:\n%s", f)
		}
		if code, v := h.result("bridge", append(vlan, "--check")...); code != 0 || v["status"] != "ok" {
			t.Errorf("check: exit %d %v", code, v)
		}
	})

	t.Run("the session's NIC is refused", func(t *testing.T) {
		h.t = t
		ip := lab.Hosts[0].MgmtIP
		how := regexp.MustCompile(`"eth0: enslave to br1" enslaves eth0: eth0 holds ` + regexp.QuoteMeta(ip) + `, this SSH session's address \(peer [0-9.]+\)`)
		snap := func() string {
			return h.sh("ip -o link show eth0 | sed 's/ qlen.*//'; ip -o link show br1 2>&1; ip -o addr show dev eth0 | sed 's/ tentative//'")
		}
		for _, mode := range [][]string{{"--check"}, nil} {
			before := snap()
			res := h.r.Module("lab01", "bridge", append([]string{"name=br1", `ports=["eth0"]`, "backend=none"}, mode...)...)
			if out := strings.Join(strings.Fields(res.Out), " "); res.Code != 2 || !how.MatchString(out) {
				t.Errorf("%v: exit %d, want 2 naming eth0\n%s", mode, res.Code, res.Out)
			}
			if after := snap(); after != before {
				t.Fatalf("a refused task changed the host:\n%s\n->\n%s", before, after)
			}
		}
	})

	t.Run("absent", func(t *testing.T) {
		h.t = t
		absent := []string{"name=br0", "state=absent", "backend=ifupdown"}
		code, v := h.result("bridge", absent...)
		d := data(v)
		if code != 0 || v["status"] != "changed" || strings.Join(list(d["persistent_drift"]), ";") != "br0: configured → absent" ||
			list(d["runtime_drift"])[len(list(d["runtime_drift"]))-1] != "br0: delete" {
			t.Errorf("absent: exit %d %v", code, v)
		}
		if got := kernel(); !strings.HasPrefix(got, "no br0\n") || !strings.Contains(got, "ens1f0 mtu=9100 up=1") {
			t.Errorf("after absent:\n%s", got)
		}
		if f := file(); f != "(absent)\n" {
			t.Errorf("stanza after absent:\n%s", f)
		}
		for _, mode := range [][]string{{"--check"}, nil} {
			if code, v := h.result("bridge", append(absent, mode...)...); code != 0 || v["status"] != "ok" {
				t.Errorf("%v absent again: exit %d %v", mode, code, v)
			}
		}
	})
}

// TestBridgeOnSystemdHost has the daemons read what the bridge module writes for a bridge
// on the guide's bond, on a systemd lab host (Debian with NetworkManager and ifupdown):
// NetworkManager loads the bridge keyfile and sees the bond's profile as its port (nmcli),
// and runs the bond task again without drift; systemd-networkd builds the bridge from its
// files alone; ifupdown's ifquery reads the bridge stanza; state = "absent" removes them.
func TestBridgeOnSystemdHost(t *testing.T) {
	lab := testlab.Start(t, testenv.Options{Tier: testenv.TierSystemd, Hosts: 1})
	h := &labHost{t: t, lab: lab, r: labRunner(t, lab)}
	h.sh("nm-online -s -q -t 60")
	bond := []string{"name=bond0", "mode=802.3ad", `slaves=["ens1f0","ens1f1"]`, "miimon=100", "lacp_rate=fast",
		"xmit_hash_policy=layer3+4", "mtu=9100", "runtime=false"}
	bridge := []string{"name=br0", `ports=["bond0"]`, "mtu=9100", "runtime=false"}

	t.Run("NetworkManager", func(t *testing.T) {
		h.t, h.r = t, labRunner(t, lab)
		dir := "/etc/NetworkManager/system-connections"
		snap := func() string {
			return h.sh("ls -l --time-style=+ " + dir + " | tail -n +2; for f in " + dir + "/*; do [ -f \"$f\" ] && cat \"$f\"; done; true")
		}
		nm := func(args []string) []string { return append(append([]string{}, args...), "backend=NetworkManager") }
		if code, v := h.result("bond", nm(bond)...); code != 0 || v["status"] != "changed" {
			t.Fatalf("bond: exit %d %v", code, v)
		}
		res := h.r.Timeline("lab01", "bridge", nm(bridge), snap)
		for _, want := range []string{"br0: not configured", "bond0: bridge (none) → br0", "+type=bridge", "+stp=false"} {
			if !strings.Contains(res[0].Out, want) {
				t.Errorf("check lacks %q:\n%s", want, res[0].Out)
			}
		}
		shown := h.sh("nmcli -t -f NAME,TYPE connection show")
		if !strings.Contains(shown, "br0:bridge") {
			t.Errorf("nmcli connection show lacks br0:\n%s", shown)
		}
		if got := h.sh("nmcli -g bridge.stp,bridge.vlan-filtering,802-3-ethernet.mtu connection show br0"); got != "no\nno\n9100\n" {
			t.Errorf("br0 as NetworkManager reads it: %q", got)
		}
		if got := h.sh("nmcli -g connection.master,connection.slave-type,bond.options connection show bond0"); !strings.HasPrefix(got, "br0\nbridge\n") ||
			!strings.Contains(got, "mode=802.3ad") {
			t.Errorf("bond0 as NetworkManager reads it: %q", got)
		}
		// The bond task again leaves the bond's place in the bridge alone.
		if code, v := h.result("bond", append(nm(bond), "--check")...); code != 0 || v["status"] != "ok" {
			t.Errorf("bond after the bridge: exit %d %v", code, v)
		}
		code, v := h.result("bridge", "name=br0", "state=absent", "runtime=false", "backend=NetworkManager")
		if d := data(v); code != 0 || v["status"] != "changed" || strings.Join(list(d["persistent_drift"]), ";") != "bond0: bridge br0 → (none);br0: configured → absent" {
			t.Errorf("absent: exit %d %v", code, v)
		}
		if shown := h.sh("nmcli -t -f NAME,TYPE connection show"); strings.Contains(shown, "br0:") {
			t.Errorf("NetworkManager still has br0:\n%s", shown)
		}
		if got := h.sh("nmcli -g connection.master,ipv4.method,ipv6.method connection show bond0"); got != "\ndisabled\ndisabled\n" {
			t.Errorf("bond0 out of the bridge: %q", got)
		}
	})

	// systemd-networkd makes the bridge from the files alone: NetworkManager stopped, the
	// module writes them (runtime = false), networkd starts and builds br0 on ens1f0 with
	// STP off and the MTU (read back from sysfs); then runbook finds the kernel in sync.
	t.Run("systemd-networkd", func(t *testing.T) {
		h.t, h.r = t, labRunner(t, lab)
		// No bridge of that name left by NetworkManager: networkd makes it.
		h.sh("systemctl stop NetworkManager; ip link del br0 2>/dev/null; true")
		if _, err := h.try("test -e /sys/class/net/br0"); err == nil {
			t.Fatal("br0 is still there")
		}
		defer h.sh("systemctl stop systemd-networkd.socket systemd-networkd; ip link del br0 2>/dev/null; true")
		nd := []string{"name=br0", `ports=["ens1f0"]`, "mtu=9000", "backend=systemd-networkd"}
		if code, v := h.result("bridge", append(nd, "runtime=false")...); code != 0 || v["status"] != "changed" {
			t.Fatalf("files: exit %d %v", code, v)
		}
		h.sh("systemctl start systemd-networkd")
		deadline := time.Now().Add(60 * time.Second)
		want := "0\n9000\nens1f0\n9000\n"
		got := ""
		for time.Now().Before(deadline) {
			got, _ = h.try("cat /sys/class/net/br0/bridge/stp_state /sys/class/net/br0/mtu; ls /sys/class/net/br0/brif; cat /sys/class/net/ens1f0/mtu")
			if got == want {
				break
			}
			time.Sleep(time.Second)
		}
		if got != want {
			t.Fatalf("networkd made br0 as:\n%s\nwant\n%s\n%s", got, want, h.sh("networkctl list; journalctl -u systemd-networkd --no-pager | tail -20"))
		}
		if code, v := h.result("bridge", append(nd, "--check")...); code != 0 || v["status"] != "ok" {
			t.Errorf("the bridge networkd made: exit %d %v", code, v)
		}
	})

	t.Run("ifupdown", func(t *testing.T) {
		h.t, h.r = t, labRunner(t, lab)
		snap := func() string {
			return h.sh("cat /etc/network/interfaces; ls /etc/network/interfaces.d; cat /etc/network/interfaces.d/* 2>/dev/null; true")
		}
		ifu := func(args []string) []string { return append(append([]string{}, args...), "backend=ifupdown") }
		if code, v := h.result("bond", ifu(bond)...); code != 0 || v["status"] != "changed" {
			t.Fatalf("bond: exit %d %v", code, v)
		}
		h.r.Timeline("lab01", "bridge", ifu(append(bridge, "stp=true")), snap)
		q := h.sh("ifquery br0")
		for _, want := range []string{`bridge[-_]ports: bond0`, `bridge[-_]stp: on`, `mtu: 9100`} {
			if !regexp.MustCompile(want).MatchString(q) {
				t.Errorf("ifquery br0 lacks %s:\n%s", want, q)
			}
		}
		if got := h.sh("ifquery --list --allow auto"); !regexp.MustCompile(`(?m)^br0$`).MatchString(got) || !regexp.MustCompile(`(?m)^bond0$`).MatchString(got) {
			t.Errorf("br0 and bond0 do not both come up at boot:\n%s", got)
		}
		if code, v := h.result("bond", append(ifu(bond), "--check")...); code != 0 || v["status"] != "ok" {
			t.Errorf("bond after the bridge: exit %d %v", code, v)
		}
		if code, v := h.result("bridge", "name=br0", "state=absent", "runtime=false", "backend=ifupdown"); code != 0 || v["status"] != "changed" {
			t.Errorf("absent: exit %d %v", code, v)
		}
		if out, err := h.try("ifquery br0"); err == nil {
			t.Errorf("ifquery still knows br0:\n%s", out)
		}
	})
}

// TestBridgeOnVM makes a bridge on the guide's LACP bond on a vm-tier host (Debian's
// kernel, which has VLAN filtering for bridges; the data NICs cabled to an 802.3ad partner
// at 192.0.2.254, MTU 9000): a VLAN-aware bridge with jumbo frames and the address passes
// 8000-byte pings to the partner over the bond, STP goes on, and the bridge goes away
// leaving the bond negotiated.
func TestBridgeOnVM(t *testing.T) {
	lab := testlab.Start(t, testenv.Options{Tier: testenv.TierVM, Hosts: 1})
	h := &labHost{t: t, lab: lab, r: labRunner(t, lab)}
	snap := func() string {
		return h.sh("ip -o link show | sed 's/ qlen.*//'; ip -o addr show scope global | sed 's/ tentative//'; for a in stp_state vlan_filtering; do cat /sys/class/net/br0/bridge/$a 2>/dev/null; done; true")
	}
	bond := []string{"name=bond0", "mode=802.3ad", `slaves=["ens1f0","ens1f1"]`, "miimon=100", "lacp_rate=fast",
		"xmit_hash_policy=layer3+4", "mtu=9000", "persist=false"}
	if code, v := h.result("bond", bond...); code != 0 || v["status"] != "changed" {
		t.Fatalf("bond: exit %d %v", code, v)
	}
	h.waitLACP(bond)

	args := []string{"name=br0", `ports=["bond0"]`, "mtu=9000", "vlan_filtering=true", `addresses=["192.0.2.10/24"]`, "backend=none"}
	res := h.r.Timeline("lab01", "bridge", args, snap)
	if !strings.Contains(res[0].Out, "br0: create (stp off, vlan_filtering on)") || !strings.Contains(res[0].Out, "bond0: enslave to br0") {
		t.Errorf("check:\n%s", res[0].Out)
	}
	if got := h.sh("cat /sys/class/net/br0/bridge/vlan_filtering /sys/class/net/br0/bridge/stp_state /sys/class/net/br0/mtu; ls /sys/class/net/br0/brif"); got != "1\n0\n9000\nbond0\n" {
		t.Errorf("br0 as the kernel has it:\n%s", got)
	}
	// Untagged frames ride the default VLAN through the VLAN-aware bridge and the bond.
	h.sh(fmt.Sprintf("ping -c 2 -W 5 -s 8000 %s", testenv.VMPartnerAddr))

	code, v := h.result("bridge", append(args, "stp=true")...)
	if d := data(v); code != 0 || v["status"] != "changed" || strings.Join(list(d["runtime_drift"]), ";") != "br0: stp off → on" || d["stp"] != true {
		t.Errorf("stp on: exit %d %v", code, v)
	}
	if got := h.sh("cat /sys/class/net/br0/bridge/stp_state"); got == "0\n" {
		t.Errorf("stp_state %q", got)
	}

	code, v = h.result("bridge", "name=br0", "state=absent", "backend=none")
	if code != 0 || v["status"] != "changed" {
		t.Errorf("absent: exit %d %v", code, v)
	}
	if _, err := h.try("test -e /sys/class/net/br0"); err == nil {
		t.Error("br0 is still there")
	}
	h.waitLACP(bond)
}
