package facts

import (
	"os"
	"reflect"
	"strings"
	"testing"

	"github.com/runbook/runbook/modules/host"
)

func TestParseGTs(t *testing.T) {
	cases := []struct {
		in   string
		want float64
		ok   bool
	}{
		{"8.0 GT/s PCIe", 8, true},
		{"8 GT/s", 8, true},
		{"2.5 GT/s PCIe", 2.5, true},
		{"16.0 GT/s PCIe", 16, true},
		{"64.0 GT/s PCIe", 64, true},
		{"Unknown", 0, false},
		{"", 0, false},
		{"0 GT/s", 0, false},
		{"8.0 Gb/s", 0, false},
	}
	for _, c := range cases {
		got, ok := parseGTs(c.in)
		if got != c.want || ok != c.ok {
			t.Errorf("parseGTs(%q) = %v, %v; want %v, %v", c.in, got, ok, c.want, c.ok)
		}
	}
}

// TestBandwidth pins the figures the oversubscription advice rests on.
func TestBandwidth(t *testing.T) {
	cases := []struct {
		width int
		gts   float64
		gen   int
		want  float64
		ok    bool
	}{
		{1, 2.5, 1, 2.0, true},
		{8, 2.5, 1, 16.0, true},
		{8, 5, 2, 32.0, true},
		{4, 8, 3, 31.5, true},
		{8, 8, 3, 63.0, true}, // the guide's x8 Gen3 ≈ 63 Gbps
		{16, 8, 3, 126.0, true},
		{16, 16, 4, 252.1, true},
		{16, 32, 5, 504.1, true},
		{16, 64, 6, 968.0, true},
		{0, 8, 3, 0, false},
		{8, 3, 0, 0, false},
	}
	for _, c := range cases {
		got, ok := bandwidth(c.width, c.gts)
		if got != c.want || ok != c.ok {
			t.Errorf("bandwidth(x%d, %v GT/s) = %v, %v; want %v, %v", c.width, c.gts, got, ok, c.want, c.ok)
		}
		if gen, _, _ := laneRate(c.gts); gen != c.gen {
			t.Errorf("generation of %v GT/s = %d, want %d", c.gts, gen, c.gen)
		}
	}
}

// TestOversubscription covers the grouping rules: functions of one device add up, another
// device (bus or device number) is separate, a port without speed adds nothing, VFs and
// NICs without PCIe link are left out.
func TestOversubscription(t *testing.T) {
	nic := func(addr string, speed any, bw float64, pf string) map[string]any {
		n := map[string]any{"pci_address": addr, "speed_mbps": speed, "sriov_pf_address": pf}
		if bw > 0 {
			n["pcie"] = map[string]any{"bandwidth_gbps": bw}
		}
		return n
	}
	nics := map[string]map[string]any{
		"a0": nic("0000:3b:00.0", 40000, 31.5, ""),
		"a1": nic("0000:3b:00.1", nil, 31.5, ""),    // no link: adds nothing
		"b0": nic("0000:3c:00.0", 25000, 63.0, ""),  // another bus
		"b1": nic("0000:3c:01.0", 25000, 63.0, ""),  // another device on that bus
		"v0": nic("0000:3b:02.0", 40000, 31.5, "x"), // a VF
		"vm": nic("0000:00:03.0", nil, 0, ""),       // no PCIe link
		"sw": nic("", 10000, 0, ""),                 // software interface
	}
	got := oversubscription(nics)
	want := []any{
		map[string]any{"address": "0000:3b:00", "ports": []any{"a0", "a1"}, "port_speed_total_gbps": 40.0, "slot_bandwidth_gbps": 31.5, "oversubscribed": true},
		map[string]any{"address": "0000:3c:00", "ports": []any{"b0"}, "port_speed_total_gbps": 25.0, "slot_bandwidth_gbps": 63.0, "oversubscribed": false},
		map[string]any{"address": "0000:3c:01", "ports": []any{"b1"}, "port_speed_total_gbps": 25.0, "slot_bandwidth_gbps": 63.0, "oversubscribed": false},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("oversubscription =\n%#v\nwant\n%#v", got, want)
	}
	for name, over := range map[string]any{"a0": true, "a1": true, "b0": false, "v0": nil, "vm": nil, "sw": nil} {
		if nics[name]["pcie_oversubscribed"] != over {
			t.Errorf("%s pcie_oversubscribed = %v, want %v", name, nics[name]["pcie_oversubscribed"], over)
		}
	}
}

func TestOSFamily(t *testing.T) {
	cases := []struct {
		id, like, want string
	}{
		{"rhel", "fedora", "redhat"},
		{"rocky", "rhel centos fedora", "redhat"},
		{"almalinux", "rhel centos fedora", "redhat"},
		{"ol", "fedora", "redhat"},
		{"fedora", "", "redhat"},
		{"centos", "rhel fedora", "redhat"},
		{"debian", "", "debian"},
		{"ubuntu", "debian", "debian"},
		{"pop", "ubuntu debian", "debian"},
		{"sles", "suse", "suse"},
		{"opensuse-leap", "suse opensuse", "suse"},
		{"arch", "", "arch"},
		{"", "", ""},
	}
	for _, c := range cases {
		if got := osFamily(c.id, strings.Fields(c.like)); got != c.want {
			t.Errorf("osFamily(%q, %q) = %q, want %q", c.id, c.like, got, c.want)
		}
	}
}

func TestParseOSRelease(t *testing.T) {
	got := parseOSRelease(`# comment
NAME="Red Hat Enterprise Linux"
ID=rhel
VERSION_ID='9.3'
PRETTY_NAME="A \"quoted\" name \\ here"
EMPTY=
 SPACED = "x"
not a line
`)
	want := map[string]string{
		"NAME": "Red Hat Enterprise Linux", "ID": "rhel", "VERSION_ID": "9.3",
		"PRETTY_NAME": `A "quoted" name \ here`, "EMPTY": "", "SPACED": "x",
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("parseOSRelease = %#v, want %#v", got, want)
	}
	for in, w := range map[string]any{"8.9": 8, "12": 12, "22.04": 22, "3.19.1": 3, "": nil, "rolling": nil} {
		n, ok := leadingInt(in)
		if got := nullable(n, ok); got != w {
			t.Errorf("leadingInt(%q) = %v, want %v", in, got, w)
		}
	}
}

// TestBondFromProcOnly reads a bond whose sysfs bonding directory is empty (an old kernel,
// or a reader without the rights), so every value comes from /proc/net/bonding.
func TestBondFromProcOnly(t *testing.T) {
	root := extract(t, "el8")
	f := newFS(host.Root(root))
	for _, a := range f.names("/sys/class/net/bond0/bonding") {
		if err := os.Remove(f.path("/sys/class/net/bond0/bonding/" + a)); err != nil {
			t.Fatal(err)
		}
	}
	b := readBond(f, "bond0")
	want := map[string]any{
		"mode": "802.3ad", "slaves": []any{"ens1f0", "ens1f1"}, "active_slave": "", "mii_status": "up",
		"miimon": 100, "lacp_rate": "fast", "xmit_hash_policy": "layer3+4", "ad_aggregator": 1,
		"ad_num_ports": 1, "ad_partner_mac": "00:1c:73:aa:bb:01",
	}
	if !reflect.DeepEqual(b, want) {
		t.Errorf("readBond =\n%#v\nwant\n%#v", b, want)
	}
}

func TestOrInt(t *testing.T) {
	if orInt(" 7 ") != 7 || orInt("") != nil || orInt("x") != nil {
		t.Error("orInt")
	}
}

func TestSELinuxfsMount(t *testing.T) {
	cases := []struct {
		name, mountinfo, want string
	}{
		{"usual place", "23 22 0:22 / /sys/fs/selinux rw,relatime shared:3 - selinuxfs selinuxfs rw\n", "/sys/fs/selinux"},
		{"old place", "40 1 0:30 / /selinux rw,relatime - selinuxfs none rw\n", "/selinux"},
		{"escaped", "40 1 0:30 / /mnt/se\\040linux rw - selinuxfs none rw\n", "/mnt/se linux"},
		{"not mounted", "22 1 0:21 / /sys rw shared:2 - sysfs sysfs rw\n", ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			root := t.TempDir()
			// The enforce file at the usual place must not matter when the table says otherwise.
			for _, p := range []string{"proc/self", "sys/fs/selinux"} {
				if err := os.MkdirAll(root+"/"+p, 0o755); err != nil {
					t.Fatal(err)
				}
			}
			if err := os.WriteFile(root+"/sys/fs/selinux/enforce", []byte("1\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(root+"/proc/self/mountinfo", []byte(c.mountinfo), 0o644); err != nil {
				t.Fatal(err)
			}
			if got := selinuxfsMount(newFS(host.Root(root))); got != c.want {
				t.Errorf("selinuxfsMount = %q, want %q", got, c.want)
			}
		})
	}
}
