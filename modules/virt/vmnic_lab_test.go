package virt_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"libvirt.org/go/libvirtxml"

	"github.com/runbook/runbook/internal/labtest"
	"github.com/runbook/runbook/testenv"
	"github.com/runbook/runbook/testenv/testlab"
)

// bigip1 is a stopped guest with one NIC (an e1000 on the management bridge) whose MAC must
// survive vm_nic, a VNC console password (which libvirt shows only with --security-info)
// that must survive it too, and no disk: the lab defines domains, it does not boot them.
const bigip1 = `<domain type='qemu'>
  <name>bigip1</name>
  <memory unit='MiB'>64</memory>
  <os><type arch='x86_64'>hvm</type></os>
  <devices>
    <interface type='bridge'>
      <mac address='52:54:00:0b:19:01'/>
      <source bridge='br-mgmt'/>
      <model type='e1000'/>
    </interface>
    <graphics type='vnc' port='-1' autoport='yes' listen='127.0.0.1' passwd='Vnc-s3c9'/>
  </devices>
</domain>`

// runner is a guest the test starts paused (QEMU runs, the guest's CPU does not), so that a
// change of its definition needs a restart. Its bridge is made on the host first.
const runner = `<domain type='qemu'>
  <name>runner</name>
  <memory unit='MiB'>32</memory>
  <os><type arch='x86_64'>hvm</type></os>
  <devices>
    <interface type='bridge'>
      <mac address='52:54:00:0b:19:11'/>
      <source bridge='br-lab'/>
      <model type='virtio'/>
    </interface>
  </devices>
</domain>`

// TestVMNICLab runs vm_nic through the real CLI against libvirt on a systemd lab host:
// the timeline on a stopped domain (bridge, direct passthrough, and an SR-IOV VF at a
// made-up PCI address, which libvirt accepts in a definition and looks for only when the
// guest starts), identity kept, check mode defining nothing, exclusive = false, a running
// domain's restart warning, and libvirt's own errors.
func TestVMNICLab(t *testing.T) {
	start := time.Now()
	lab := testlab.Start(t, testenv.Options{Tier: testenv.TierSystemd, Hosts: 1, Layers: []string{testenv.LayerLibvirt}})
	r := labtest.New(t, lab)
	const host = "lab01"
	sh := func(stdin, script string) string {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		cmd, err := lab.Command(ctx, host, "sh", "-c", script)
		if err != nil {
			t.Fatal(err)
		}
		cmd.Stdin = strings.NewReader(stdin)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("%s: %v\n%s", script, err, out)
		}
		return string(out)
	}
	const virsh = "virsh -q -c qemu:///system "
	dump := func(domain string) *libvirtxml.Domain {
		t.Helper()
		var d libvirtxml.Domain
		if err := d.Unmarshal(sh("", virsh+"dumpxml --inactive "+domain)); err != nil {
			t.Fatal(err)
		}
		return &d
	}
	sh(bigip1, "cat > /tmp/bigip1.xml && "+virsh+"define /tmp/bigip1.xml")
	before := dump("bigip1")
	if len(before.Devices.Interfaces) != 1 || before.UUID == "" {
		t.Fatalf("bigip1 as defined: %d NICs, uuid %q", len(before.Devices.Interfaces), before.UUID)
	}

	// The timeline's snapshot is the whole persistent definition: check mode must leave it
	// byte for byte as it was.
	snap := func() string { return sh("", virsh+"dumpxml --inactive bigip1") }
	args := []string{"domain=bigip1",
		`interfaces=[{type="bridge",source="br-mgmt"},{type="direct",source="ens1f0",mode="passthrough"},{type="hostdev",source="0000:3b:02.1",vlan=42}]`}
	res := r.Timeline(host, "vm_nic", args, snap)
	if !strings.Contains(res[0].Out, `-  <model type="e1000"></model>`) || !strings.Contains(res[0].Out, `+<interface type="hostdev" managed="yes">`) {
		t.Errorf("check's diff does not show the planned NICs:\n%s", res[0].Out)
	}
	after := dump("bigip1")
	if !strings.Contains(sh("", virsh+"dumpxml --inactive --security-info bigip1"), "passwd='Vnc-s3c9'") {
		t.Errorf("vm_nic dropped the guest's VNC password from its definition")
	}
	if strings.Contains(res[0].Out+res[1].Out, "Vnc-s3c9") {
		t.Errorf("the VNC password shows in vm_nic's output")
	}
	if after.UUID != before.UUID {
		t.Errorf("UUID changed: %s, was %s", after.UUID, before.UUID)
	}
	got := nics(after)
	if len(got) != 3 || got[0] != "bridge br-mgmt model=virtio mac=52:54:00:0b:19:01" ||
		!strings.HasPrefix(got[1], "direct ens1f0 mode=passthrough model=virtio mac=52:54:00:") ||
		!strings.HasPrefix(got[2], "hostdev 0000:3b:02.1 vlan=42 mac=52:54:00:") {
		t.Errorf("bigip1's NICs after vm_nic:\n%s", strings.Join(got, "\n"))
	}
	if a, b := after.Devices.Interfaces[0].Address, before.Devices.Interfaces[0].Address; a == nil || b == nil || *a.PCI.Slot != *b.PCI.Slot {
		t.Errorf("the kept NIC moved to another PCI slot")
	}

	// Check mode with a change pending defines nothing either (compared again here, apart
	// from the timeline, with a removal and a VLAN change in the plan).
	def := snap()
	out := r.Module(host, "vm_nic", "domain=bigip1", `interfaces=[{type="bridge",source="br-mgmt"},{type="hostdev",source="0000:3b:02.1",vlan=43}]`, "--check")
	if out.Code != 4 || snap() != def {
		t.Fatalf("check with changes pending: exit %d, definition changed: %v\n%s", out.Code, snap() != def, out.Out)
	}

	// exclusive = false adds a NIC at the end and leaves the others, MACs and all, alone.
	out = r.Module(host, "vm_nic", "domain=bigip1", "exclusive=false", `interfaces=[{type="network",source="default",model="e1000"}]`)
	if out.Code != 0 || !out.Matches(`changed .*1 added, 3 unchanged`) {
		t.Fatalf("exclusive = false: exit %d\n%s", out.Code, out.Out)
	}
	got2 := nics(dump("bigip1"))
	if len(got2) != 4 || strings.Join(got2[:3], "\n") != strings.Join(got, "\n") || !strings.HasPrefix(got2[3], "network default model=e1000 mac=") {
		t.Errorf("after exclusive = false:\n%s\nwas:\n%s", strings.Join(got2, "\n"), strings.Join(got, "\n"))
	}

	// A running domain: the new definition waits for a restart, and vm_nic says so.
	sh(runner, "ip link add br-lab type bridge && ip link set br-lab up && cat > /tmp/runner.xml && "+
		virsh+"define /tmp/runner.xml && "+virsh+"start --paused runner")
	t.Cleanup(func() { sh("", virsh+"destroy runner || true") })
	out = r.Module(host, "vm_nic", "domain=runner", `interfaces=[{type="bridge",source="br-lab",mtu=9000}]`)
	if out.Code != 0 || !out.Matches(`changed `) || !strings.Contains(out.Out, "warning: domain runner is running with NICs other than the ones it is defined with") {
		t.Fatalf("running domain: exit %d\n%s", out.Code, out.Out)
	}
	if live, def := sh("", virsh+"dumpxml runner"), sh("", virsh+"dumpxml --inactive runner"); strings.Contains(live, "<mtu") || !strings.Contains(def, "<mtu size='9000'/>") {
		t.Errorf("want the MTU in the definition only; live:\n%s\ndefinition:\n%s", live, def)
	}

	// libvirt's errors reach the user in libvirt's words.
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"domain=nosuch", "interfaces=[]"}, "read domain nosuch: failed to get domain 'nosuch'"},
		{[]string{"domain=bigip1", "uri=lxc:///", "interfaces=[]"}, "no connection driver available for lxc:///"},
	} {
		out = r.Module(host, "vm_nic", tc.args...)
		if out.Code != 2 || !strings.Contains(out.Out, tc.want) {
			t.Errorf("%v: want exit 2 and %q, got exit %d\n%s", tc.args, tc.want, out.Code, out.Out)
		}
	}

	// Bad arguments stop the run before any host is touched (exit 1), with a hint.
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"domain=bigip1", "interfaces=[]", "bogus=1"}, `"bogus"`},
		{[]string{"domain=bigip1", `interfaces=[{type="bridg",source="br0"}]`}, `Did you mean "bridge"?`},
		{[]string{"domain=bigip1", `interfaces=[{type="direct",source="ens1f0",mtu=9000}]`}, "libvirt sets the MTU of bridge and network NICs only"},
		{[]string{"domain=bigip1", `interfaces=[{type="bridge"}]`}, `"source" is required`},
	} {
		def := snap()
		out = r.Module(host, "vm_nic", tc.args...)
		if out.Code != 1 || !strings.Contains(out.Out, tc.want) || snap() != def {
			t.Errorf("%v: want exit 1 and %q, got exit %d\n%s", tc.args, tc.want, out.Code, out.Out)
		}
	}
	t.Logf("vm_nic lab test: %s including the lab", time.Since(start).Round(time.Millisecond))
}

// nics renders a domain's NICs one per line: type, source, then mode, model, vlan and mac
// where the NIC has them.
func nics(d *libvirtxml.Domain) []string {
	var out []string
	for _, ifc := range d.Devices.Interfaces {
		var s string
		src := ifc.Source
		switch {
		case src.Bridge != nil:
			s = "bridge " + src.Bridge.Bridge
		case src.Direct != nil:
			s = "direct " + src.Direct.Dev + " mode=" + src.Direct.Mode
		case src.Network != nil:
			s = "network " + src.Network.Network
		case src.Hostdev != nil && src.Hostdev.PCI != nil:
			a := src.Hostdev.PCI.Address
			s = fmt.Sprintf("hostdev %04x:%02x:%02x.%x", *a.Domain, *a.Bus, *a.Slot, *a.Function)
		default:
			s = "other"
		}
		if ifc.Model != nil {
			s += " model=" + ifc.Model.Type
		}
		if ifc.VLan != nil && len(ifc.VLan.Tags) > 0 {
			s += fmt.Sprintf(" vlan=%d", ifc.VLan.Tags[0].ID)
		}
		if ifc.MAC != nil {
			s += " mac=" + ifc.MAC.Address
		}
		out = append(out, s)
	}
	return out
}
