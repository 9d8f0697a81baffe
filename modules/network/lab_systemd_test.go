package network_test

import (
	"regexp"
	"strings"
	"testing"

	"github.com/runbook/runbook/testenv"
	"github.com/runbook/runbook/testenv/testlab"
)

// TestNetworkOnSystemdHost runs the network modules through the CLI against a systemd lab
// host (Debian with NetworkManager and ifupdown; a kernel without bonding, whose data NICs
// are veths): the interface module for real on ens1f1 with its ifupdown stanza read back
// by ifquery, the bond's NetworkManager keyfiles read back by nmcli (and rewritten by
// nmcli without drift), refusals before the host is touched, and clear failures where the
// kernel cannot do what is asked.
func TestNetworkOnSystemdHost(t *testing.T) {
	lab := testlab.Start(t, testenv.Options{Tier: testenv.TierSystemd, Hosts: 1})
	h := &labHost{t: t, lab: lab, r: labRunner(t, lab)}
	// NetworkManager brings every device it manages up while it starts (ens1f1 goes from
	// DOWN to UP, "disconnected"); on a busy machine that can fall between the two
	// snapshots of a refused task. Start once it has finished starting.
	h.sh("nm-online -s -q -t 60")

	t.Run("interface", func(t *testing.T) {
		h.t, h.r = t, labRunner(t, lab)
		snap := func() string {
			return h.sh("ip -o link show ens1f1 | sed 's/ qlen.*//'; ip -o addr show dev ens1f1 scope global | sed 's/ tentative//'; cat /etc/network/interfaces; ls /etc/network/interfaces.d; cat /etc/network/interfaces.d/* 2>/dev/null; true")
		}
		h.rejected(snap, "interface", "name=ens1f1", "bogus=1")
		h.rejected(snap, "interface", "name=ens1f1", "mtu=10")
		h.rejected(snap, "interface", "name=ens1f1", "exclusive=true")
		h.rejected(snap, "interface", "name=x.5", `vlan={parent="ens1f1",id=5000}`)

		args := []string{"name=ens1f1", "mtu=9000", "state=up", `addresses=["192.0.2.10/24","2001:db8::10/64"]`, "backend=ifupdown"}
		res := h.r.Timeline("lab01", "interface", args, snap)
		for _, want := range []string{"ens1f1: mtu 1500 → 9000", "ens1f1: add address 192.0.2.10/24", "+iface ens1f1 inet static", "+    mtu 9000"} {
			if !strings.Contains(res[0].Out, want) {
				t.Errorf("check output lacks %q:\n%s", want, res[0].Out)
			}
		}
		if got := h.sh("cat /sys/class/net/ens1f1/mtu"); got != "9000\n" {
			t.Errorf("mtu %q", got)
		}
		if got := h.sh("ip -o addr show dev ens1f1 scope global | awk '{print $4}' | sort"); got != "192.0.2.10/24\n2001:db8::10/64\n" {
			t.Errorf("addresses:\n%s", got)
		}
		// ifupdown itself reads the stanza runbook wrote.
		q := h.sh("ifquery ens1f1")
		for _, want := range []string{"mtu: 9000", "address: 192.0.2.10\n", "netmask: 255.255.255.0", "address: 2001:db8::10\n"} {
			if !strings.Contains(q, want) {
				t.Errorf("ifquery ens1f1 lacks %q:\n%s", want, q)
			}
		}
		if got := h.sh("ifquery --list --allow auto"); !regexp.MustCompile(`(?m)^ens1f1$`).MatchString(got) {
			t.Errorf("ens1f1 does not come up at boot:\n%s", got)
		}
		code, v := h.result("interface", args...)
		if d := data(v); code != 0 || v["status"] != "ok" || d["mtu"] != float64(9000) || d["state"] != "up" || d["backend"] != "ifupdown" || d["kind"] != "veth" {
			t.Errorf("in sync: exit %d %v", code, v)
		}

		// Someone sets the MTU back by hand: runtime drift only, the file is fine.
		h.sh("ip link set ens1f1 mtu 1500")
		code, v = h.result("interface", append(args, "--check")...)
		if d := data(v); code != 4 || strings.Join(list(d["runtime_drift"]), ";") != "ens1f1: mtu 1500 → 9000" || len(list(d["persistent_drift"])) != 0 {
			t.Errorf("hand-made drift: exit %d %v", code, d)
		}
		// Down, keeping the addresses; the stanza loses its auto line.
		down := []string{"name=ens1f1", "mtu=9000", "state=down", "backend=ifupdown"}
		h.r.Timeline("lab01", "interface", down, snap)
		if got := h.sh("ip -o link show ens1f1"); strings.Contains(got, "<BROADCAST,MULTICAST,UP") {
			t.Errorf("still up: %s", got)
		}
		if got := h.sh("ifquery --list --allow auto"); strings.Contains(got, "ens1f1") {
			t.Errorf("still auto:\n%s", got)
		}
	})

	t.Run("bond keyfiles for NetworkManager", func(t *testing.T) {
		h.t, h.r = t, labRunner(t, lab)
		dir := "/etc/NetworkManager/system-connections"
		snap := func() string {
			return h.sh("ls -l --time-style=+ " + dir + " | tail -n +2; for f in " + dir + "/*; do [ -f \"$f\" ] && cat \"$f\"; done; true")
		}
		h.rejected(snap, "bond", "name=bond0", "mode=lacp", `slaves=["ens1f0","ens1f1"]`, "runtime=false")
		h.rejected(snap, "bond", "name=bond0", "mode=active-backup", `slaves=["ens1f0","ens1f1"]`, "lacp_rate=fast", "runtime=false")
		h.rejected(snap, "bond", "name=bond0", "mode=4", `slaves=["ens1f0"]`, "primary=ens1f9", "runtime=false")

		args := []string{"name=bond0", "mode=802.3ad", `slaves=["ens1f0","ens1f1"]`, "miimon=100", "lacp_rate=fast",
			"xmit_hash_policy=layer3+4", "mtu=9100", "runtime=false", "backend=NetworkManager"}
		res := h.r.Timeline("lab01", "bond", args, snap)
		if !strings.Contains(res[0].Out, "bond0: not configured") || !strings.Contains(res[0].Out, "+mode=802.3ad") {
			t.Errorf("check:\n%s", res[0].Out)
		}
		if got := h.sh("stat -c '%a %U %n' " + dir + "/bond0*.nmconnection"); got != "600 root "+dir+"/bond0-port-ens1f0.nmconnection\n600 root "+dir+"/bond0-port-ens1f1.nmconnection\n600 root "+dir+"/bond0.nmconnection\n" {
			t.Errorf("keyfile modes:\n%s", got)
		}
		// NetworkManager loaded the profiles (the module asked it to) and reads them as written.
		shown := h.sh("nmcli -t -f NAME,TYPE connection show")
		for _, want := range []string{"bond0:bond", "bond0-port-ens1f0:802-3-ethernet", "bond0-port-ens1f1:802-3-ethernet"} {
			if !strings.Contains(shown, want) {
				t.Errorf("nmcli connection show lacks %q:\n%s", want, shown)
			}
		}
		opts := h.sh("nmcli -g bond.options connection show bond0")
		for _, want := range []string{"mode=802.3ad", "miimon=100", "lacp_rate=fast", "xmit_hash_policy=layer3+4"} {
			if !strings.Contains(opts, want) {
				t.Errorf("bond.options %q lacks %q", opts, want)
			}
		}
		if got := h.sh("nmcli -g 802-3-ethernet.mtu,connection.master,connection.slave-type connection show bond0-port-ens1f1"); got != "9100\nbond0\nbond\n" {
			t.Errorf("port profile: %q", got)
		}

		// nmcli rewrites the profile its own way, numbers for names: no drift.
		h.sh(`nmcli connection modify bond0 bond.options "mode=4,miimon=100,lacp_rate=1,xmit_hash_policy=1"`)
		if code, v := h.result("bond", append(args, "--check")...); code != 0 || v["status"] != "ok" {
			t.Errorf("after nmcli rewrote the same options: exit %d %v\n%s", code, v, h.sh("cat "+dir+"/bond0.nmconnection"))
		}
		// A real change is persistent drift, and only that.
		h.sh(`nmcli connection modify bond0 bond.options "mode=802.3ad,miimon=100,lacp_rate=slow,xmit_hash_policy=layer3+4"`)
		code, v := h.result("bond", append(args, "--check")...)
		if d := data(v); code != 4 || strings.Join(list(d["persistent_drift"]), ";") != "bond0: lacp_rate slow → fast" || len(list(d["runtime_drift"])) != 0 {
			t.Errorf("after nmcli changed lacp_rate: exit %d %v", code, d)
		}
		if code, _ := h.result("bond", args...); code != 0 {
			t.Errorf("apply: exit %d", code)
		}
		// backend = "auto" finds NetworkManager (running, enabled) on this host.
		auto := append([]string{}, args[:len(args)-1]...)
		if code, v := h.result("bond", append(auto, "--check")...); code != 0 || data(v)["backend"] != "NetworkManager" {
			t.Errorf("backend auto: exit %d %v", code, v)
		}
		if got := h.sh("nmcli -g bond.options connection show bond0"); !strings.Contains(got, "lacp_rate=fast") {
			t.Errorf("NetworkManager did not reload the profile: %s", got)
		}
	})

	t.Run("what the kernel cannot do", func(t *testing.T) {
		h.t, h.r = t, labRunner(t, lab)
		if _, err := h.try("test -e /sys/class/net/bonding_masters || modprobe -q bonding"); err != nil {
			res := h.r.Module("lab01", "bond", "name=bond9", "mode=4", `slaves=["ens1f0"]`, "backend=none")
			if res.Code != 2 || !strings.Contains(res.Out, "modprobe bonding") {
				t.Errorf("bond without the bonding driver: exit %d\n%s", res.Code, res.Out)
			}
		} else {
			t.Log("this kernel has the bonding driver; the failure without it is not shown here")
		}
		res := h.r.Module("lab01", "sriov", "device=ens1f0", "num_vfs=2", "persist=false")
		if res.Code != 2 || !strings.Contains(res.Out, "ens1f0 has no SR-IOV virtual functions to manage") {
			t.Errorf("sriov on a veth: exit %d\n%s", res.Code, res.Out)
		}
		snap := func() string { return h.sh("ls /etc/systemd/system") }
		h.rejected(snap, "sriov", "device=ens1f0", "num_vfs=2", `vfs=[{index=2,trust=true}]`)
	})

	t.Run("sriov boot unit", func(t *testing.T) {
		h.t, h.r = t, labRunner(t, lab)
		unit := "runbook-sriov-ens1f0.service"
		snap := func() string {
			return h.sh("ls -l /etc/systemd/system/multi-user.target.wants; cat /etc/systemd/system/" + unit + " 2>&1; systemctl is-enabled " + unit + " 2>&1; true")
		}
		args := []string{"device=ens1f0", "num_vfs=8", `vfs=[{index=0,trust=true,spoofchk=false},{index=7,mac="02:00:00:00:00:07",vlan=101}]`, "runtime=false"}
		h.r.Timeline("lab01", "sriov", args, snap)
		// systemd reads the unit as runbook wrote it: enabled, ordered before the network.
		if got := h.sh("systemctl is-enabled " + unit); got != "enabled\n" {
			t.Errorf("is-enabled: %q", got)
		}
		props := h.sh("systemctl show -p Type,RemainAfterExit,Before,BindsTo,WantedBy " + unit)
		for _, want := range []string{"Type=oneshot", "RemainAfterExit=yes", "network-pre.target", "BindsTo=sys-subsystem-net-devices-ens1f0.device", "WantedBy=multi-user.target"} {
			if !strings.Contains(props, want) {
				t.Errorf("systemctl show lacks %q:\n%s", want, props)
			}
		}
		if out, err := h.try("systemd-analyze verify /etc/systemd/system/" + unit); err != nil || strings.Contains(out, unit+":") {
			t.Errorf("systemd-analyze verify: %v\n%s", err, out)
		}
		// Another VF setting is drift in the unit only.
		code, v := h.result("sriov", "device=ens1f0", "num_vfs=8", `vfs=[{index=0,trust=true,spoofchk=false}]`, "runtime=false", "--check")
		if d := data(v); code != 4 || len(list(d["persistent_drift"])) != 1 || len(list(d["runtime_drift"])) != 0 {
			t.Errorf("a VF dropped: exit %d %v", code, d)
		}
	})
}
