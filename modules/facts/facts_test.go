package facts

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rogpeppe/go-internal/txtar"
	"github.com/runbook/runbook/modules/host"
)

// extract builds a fixture host tree from testdata/NAME.txtar in a temporary directory
// and returns its root. A section "DIR/" makes DIR and, for each NAME=VALUE line of its
// body, the file DIR/NAME holding VALUE (as sysfs attribute files hold one line); a
// section "PATH -> TARGET" makes a symbolic link; any other section is a file. The trees
// live in archives because sysfs names (0000:3b:00.0) are not valid in Go module files.
func extract(t *testing.T, name string) string {
	t.Helper()
	a, err := txtar.ParseFile(filepath.Join("testdata", name+".txtar"))
	if err != nil {
		t.Fatal(err)
	}
	root := t.TempDir()
	mkdir := func(p string) {
		if err := os.MkdirAll(p, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	write := func(p, content string) {
		mkdir(filepath.Dir(p))
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, f := range a.Files {
		if src, dst, ok := strings.Cut(f.Name, " -> "); ok {
			p := filepath.Join(root, src)
			mkdir(filepath.Dir(p))
			if err := os.Symlink(dst, p); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if dir, ok := strings.CutSuffix(f.Name, "/"); ok {
			mkdir(filepath.Join(root, dir))
			for _, line := range strings.Split(string(f.Data), "\n") {
				if line == "" {
					continue
				}
				k, v, ok := strings.Cut(line, "=")
				if !ok {
					t.Fatalf("%s: section %s: line %q is not NAME=VALUE", name, f.Name, line)
				}
				write(filepath.Join(root, dir, k), v+"\n")
			}
			continue
		}
		write(filepath.Join(root, f.Name), string(f.Data))
	}
	return root
}

// get follows a dotted path through maps and lists ("nics.eth0.pcie.width",
// "pcie_devices.0.address"); ok is false when a step is missing.
func get(v any, path string) (any, bool) {
	for _, k := range strings.Split(path, ".") {
		switch x := v.(type) {
		case map[string]any:
			var ok bool
			if v, ok = x[k]; !ok {
				return nil, false
			}
		case []any:
			i, err := strconv.Atoi(k)
			if err != nil || i < 0 || i >= len(x) {
				return nil, false
			}
			v = x[i]
		default:
			return nil, false
		}
	}
	return v, true
}

func gather(t *testing.T, root string, subsets ...string) map[string]any {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	m, err := Gather(ctx, Options{Root: host.Root(root), Subsets: subsets})
	if err != nil {
		t.Fatalf("Gather(%s): %v", root, err)
	}
	// What the helper sends is JSON: every value must encode.
	if _, err := json.Marshal(m); err != nil {
		t.Fatalf("facts do not encode as JSON: %v", err)
	}
	return m
}

type want map[string]any

// TestGatherFixtures reads each fixture host and checks the facts a runbook would branch on.
func TestGatherFixtures(t *testing.T) {
	cases := []struct {
		fixture string
		want    want
		// absent lists paths that must not exist (skipped interfaces).
		absent []string
	}{
		{fixture: "el8", want: want{
			"os.id": "rocky", "os.family": "redhat", "os.version_id": "8.9", "os.version_major": 8,
			"os.name": "Rocky Linux", "os.pretty_name": "Rocky Linux 8.9 (Green Obsidian)",
			"os.id_like": []any{"rhel", "centos", "fedora"},
			"kernel":     "4.18.0-513.5.1.el8_9.x86_64", "arch": "x86_64", "hostname": "hv01.example.net",
			"init":              "systemd",
			"selinux.available": true, "selinux.runtime": "enforcing", "selinux.persistent": "enforcing", "selinux.policy": "targeted",
			"network.backend":                   "network-scripts",
			"network.backends_present":          []any{"network-scripts"},
			"network.backends_active":           []any{"network-scripts"},
			"network.network_scripts_available": true,
			// Intel XXV710, 2×25G on x8 Gen3: 50 < 63, fine.
			"nics.ens1f0.driver": "i40e", "nics.ens1f0.driver_version": "2.22.18", "nics.ens1f0.firmware_version": "",
			"nics.ens1f0.bus_info": "0000:3b:00.0", "nics.ens1f0.pci_address": "0000:3b:00.0",
			"nics.ens1f0.vendor_id": "8086", "nics.ens1f0.device_id": "158b", "nics.ens1f0.numa_node": 0,
			"nics.ens1f0.mac": "3c:fd:fe:a1:b2:c0", "nics.ens1f0.mtu": 9000, "nics.ens1f0.speed_mbps": 25000,
			"nics.ens1f0.duplex": "full", "nics.ens1f0.link": true, "nics.ens1f0.operstate": "up",
			"nics.ens1f0.kind": "ether", "nics.ens1f0.virtual": false, "nics.ens1f0.master": "bond0",
			"nics.ens1f0.sriov_total_vfs": 64, "nics.ens1f0.sriov_num_vfs": 0,
			"nics.ens1f0.pcie.width": 8, "nics.ens1f0.pcie.max_width": 8, "nics.ens1f0.pcie.speed_gts": 8.0,
			"nics.ens1f0.pcie.max_speed_gts": 8.0, "nics.ens1f0.pcie.generation": 3,
			"nics.ens1f0.pcie.bandwidth_gbps": 63.0, "nics.ens1f0.pcie.degraded": false,
			"nics.ens1f0.pcie_oversubscribed": false,
			"nics.ens1f0.bond_slave.state":    "active", "nics.ens1f0.bond_slave.ad_aggregator_id": 1,
			"nics.ens1f0.bond_slave.in_active_aggregator": true,
			// sysfs hides ens1f1's aggregator; /proc/net/bonding/bond0 says 2: not the active one.
			"nics.ens1f1.bond_slave.ad_aggregator_id": 2, "nics.ens1f1.bond_slave.in_active_aggregator": false,
			"nics.ens1f1.bond_slave.link_failure_count": 2, "nics.ens1f1.bond_slave.perm_hwaddr": "3c:fd:fe:a1:b2:c1",
			"nics.ens1f1.bus_info": "0000:3b:00.1",
			// The 802.3ad bond.
			"nics.bond0.kind": "bond", "nics.bond0.virtual": true, "nics.bond0.bus_info": "", "nics.bond0.pcie": nil,
			"nics.bond0.bond.mode": "802.3ad", "nics.bond0.bond.slaves": []any{"ens1f0", "ens1f1"},
			"nics.bond0.bond.miimon": 100, "nics.bond0.bond.lacp_rate": "fast", "nics.bond0.bond.xmit_hash_policy": "layer3+4",
			"nics.bond0.bond.ad_aggregator": 1, "nics.bond0.bond.ad_num_ports": 1,
			"nics.bond0.bond.ad_partner_mac": "00:1c:73:aa:bb:01", "nics.bond0.bond_slave": nil,
			// Mellanox ConnectX-5, 2×100G on x16 Gen3: 200 > 126, oversubscribed; SR-IOV 4 of 8.
			"nics.ens2f0.driver": "mlx5_core", "nics.ens2f0.driver_version": "",
			"nics.ens2f0.sriov_total_vfs": 8, "nics.ens2f0.sriov_num_vfs": 4, "nics.ens2f0.numa_node": 1,
			"nics.ens2f1.sriov_total_vfs": 8, "nics.ens2f1.sriov_num_vfs": 0,
			"nics.ens2f0.pcie.width": 16, "nics.ens2f0.pcie.bandwidth_gbps": 126.0, "nics.ens2f0.pcie.max_bandwidth_gbps": 126.0,
			"nics.ens2f0.pcie_oversubscribed": true, "nics.ens2f1.pcie_oversubscribed": true,
			// The VF: its PF is named, it has no VFs of its own and it is no port of the card.
			"nics.ens2f0v0.sriov_pf_address": "0000:5e:00.0", "nics.ens2f0v0.device_id": "1018",
			"nics.ens2f0v0.sriov_total_vfs": nil, "nics.ens2f0v0.pcie_oversubscribed": false,
			"pcie_devices": []any{
				map[string]any{"address": "0000:3b:00", "ports": []any{"ens1f0", "ens1f1"},
					"port_speed_total_gbps": 50.0, "slot_bandwidth_gbps": 63.0, "oversubscribed": false},
				map[string]any{"address": "0000:5e:00", "ports": []any{"ens2f0", "ens2f1"},
					"port_speed_total_gbps": 200.0, "slot_bandwidth_gbps": 126.0, "oversubscribed": true},
			},
		}, absent: []string{"nics.lo", "nics.bonding_masters"}},

		{fixture: "el9", want: want{
			"os.id": "rhel", "os.family": "redhat", "os.version_major": 9, "os.version_id": "9.3",
			"kernel": "5.14.0-362.8.1.el9_3.x86_64", "hostname": "guest9", "init": "systemd",
			"selinux.available": true, "selinux.runtime": "permissive", "selinux.persistent": "enforcing", "selinux.policy": "targeted",
			"network.backend":                   "NetworkManager",
			"network.backends_present":          []any{"NetworkManager"},
			"network.network_scripts_available": false,
			// virtio: the driver is on the virtio device, bus_info is its virtio-pci function.
			"nics.eth0.driver": "virtio_net", "nics.eth0.driver_version": "", "nics.eth0.bus_info": "0000:00:03.0",
			"nics.eth0.pci_address": "0000:00:03.0", "nics.eth0.vendor_id": "1af4", "nics.eth0.device_id": "1041",
			"nics.eth0.virtual": false, "nics.eth0.kind": "ether", "nics.eth0.speed_mbps": nil,
			"nics.eth0.duplex": "unknown", "nics.eth0.pcie": nil, "nics.eth0.numa_node": nil,
			"nics.eth0.sriov_total_vfs": nil, "nics.eth0.mtu": 1500,
			// The veth pair.
			"nics.veth0.kind": "veth", "nics.veth0.virtual": true, "nics.veth0.bus_info": "", "nics.veth0.driver": "",
			"nics.veth0.mtu": 9000, "nics.veth0.link": true, "nics.veth0.speed_mbps": 10000,
			"nics.veth1.kind": "veth", "nics.veth1.link": false, "nics.veth1.operstate": "lowerlayerdown",
			"nics.veth1.speed_mbps": nil, "nics.veth1.duplex": "",
			"pcie_devices": []any{},
		}, absent: []string{"nics.lo"}},

		{fixture: "debian", want: want{
			"os.id": "debian", "os.family": "debian", "os.version_major": 12, "init": "systemd",
			"selinux.available": false, "selinux.runtime": "disabled", "selinux.persistent": "permissive", "selinux.policy": "default",
			"network.backend": "ifupdown", "network.backends_present": []any{"ifupdown"},
			"network.backends_active": []any{"ifupdown"}, "network.network_scripts_available": false,
			"nics.eno1.driver": "ixgbe", "nics.eno1.driver_version": "5.1.0-k", "nics.eno1.speed_mbps": 10000,
			// Trained at x4 Gen2 on a card made for x8: 16 of 32 Gbit/s.
			"nics.eno1.pcie.width": 4, "nics.eno1.pcie.max_width": 8, "nics.eno1.pcie.generation": 2,
			"nics.eno1.pcie.speed_gts": 5.0, "nics.eno1.pcie.bandwidth_gbps": 16.0,
			"nics.eno1.pcie.max_bandwidth_gbps": 32.0, "nics.eno1.pcie.degraded": true,
			"nics.eno2.link": false, "nics.eno2.operstate": "down", "nics.eno2.speed_mbps": nil, "nics.eno2.duplex": "",
			"pcie_devices": []any{map[string]any{"address": "0000:01:00", "ports": []any{"eno1", "eno2"},
				"port_speed_total_gbps": 10.0, "slot_bandwidth_gbps": 16.0, "oversubscribed": false}},
		}},

		{fixture: "ubuntu", want: want{
			"os.id": "ubuntu", "os.family": "debian", "os.version_id": "22.04", "os.version_major": 22,
			"network.backend": "netplan", "network.netplan_renderer": "networkd",
			"network.backends_present": []any{"netplan", "systemd-networkd"},
			"network.backends_active":  []any{"systemd-networkd"},
			"nics.ens3.bus_info":       "0000:00:03.0", "nics.ens4.bus_info": "0000:00:04.0",
			"nics.ens4.master": "br0", "nics.br0.kind": "bridge", "nics.br0.bridge_ports": []any{"ens4"},
			"nics.br0.virtual": true, "nics.ens3.bridge_ports": nil,
			"selinux.runtime": "not available", "selinux.available": false, "selinux.persistent": "",
		}},

		{fixture: "alpine", want: want{
			"os.id": "alpine", "os.family": "alpine", "os.version_major": 3, "os.id_like": []any{},
			"hostname": "alpine1", "kernel": "6.6.14-0-lts", "arch": "", "init": "openrc",
			"selinux.runtime": "not available", "selinux.available": false,
			"network.backend": "ifupdown", "nics": map[string]any{}, "pcie_devices": []any{},
		}},
	}
	for _, c := range cases {
		t.Run(c.fixture, func(t *testing.T) {
			m := gather(t, extract(t, c.fixture))
			for path, w := range c.want {
				got, ok := get(m, path)
				if !ok {
					t.Errorf("%s: missing", path)
					continue
				}
				if !reflect.DeepEqual(got, w) {
					t.Errorf("%s = %#v, want %#v", path, got, w)
				}
			}
			for _, path := range c.absent {
				if _, ok := get(m, path); ok {
					t.Errorf("%s: present, want absent", path)
				}
			}
		})
	}
}

// TestNICKeysStable proves every NIC carries every key, null or not, so expressions such as
// facts.nics.eth0.pcie never fail on a missing attribute.
func TestNICKeysStable(t *testing.T) {
	var keys []string
	for _, fx := range []string{"el8", "el9", "debian", "ubuntu"} {
		m := gather(t, extract(t, fx), "nics")
		for name, n := range m["nics"].(map[string]any) {
			var ks []string
			for k := range n.(map[string]any) {
				ks = append(ks, k)
			}
			slices.Sort(ks)
			if keys == nil {
				keys = ks
			} else if !reflect.DeepEqual(ks, keys) {
				t.Errorf("%s %s keys %v, want %v", fx, name, ks, keys)
			}
		}
	}
	if len(keys) < 20 {
		t.Fatalf("too few NIC keys: %v", keys)
	}
}

// TestGatherSubsets checks that a subset reads only its keys and that an unknown one fails.
func TestGatherSubsets(t *testing.T) {
	root := extract(t, "el8")
	cases := []struct {
		subsets []string
		keys    []string
	}{
		{[]string{"os"}, []string{"arch", "hostname", "kernel", "os"}},
		{[]string{"init"}, []string{"init"}},
		{[]string{"selinux"}, []string{"selinux"}},
		{[]string{"network"}, []string{"network"}},
		{[]string{"nics"}, []string{"management", "nics", "pcie_devices"}},
		{[]string{"init", "network"}, []string{"init", "network"}},
		{nil, []string{"arch", "hostname", "init", "kernel", "management", "network", "nics", "os", "pcie_devices", "selinux"}},
	}
	for _, c := range cases {
		m := gather(t, root, c.subsets...)
		var keys []string
		for k := range m {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		if !reflect.DeepEqual(keys, c.keys) {
			t.Errorf("subsets %v: keys %v, want %v", c.subsets, keys, c.keys)
		}
	}
	if _, err := Gather(context.Background(), Options{Root: host.Root(root), Subsets: []string{"disks"}}); err == nil ||
		!strings.Contains(err.Error(), `"disks"`) {
		t.Errorf("unknown subset: err = %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := Gather(ctx, Options{Root: host.Root(root)}); err == nil {
		t.Error("a cancelled context gathered anyway")
	}
}
