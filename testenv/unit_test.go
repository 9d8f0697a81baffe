package testenv

import (
	"net/netip"
	"strings"
	"testing"
)

func TestAptSources(t *testing.T) {
	for _, tc := range []struct {
		name, text string
		deb822     bool
		want       string
	}{
		{"deb822", `Types: deb
URIs: http://mirror.example/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /nonexistent/keyring.gpg

Types: deb
URIs: http://mirror.example/debian-security
Suites: bookworm-security
Components: main
`, true, "http://mirror.example/debian"},
		{"deb822 disabled first", `Types: deb
URIs: http://off.example/debian
Suites: bookworm
Components: main
Enabled: no

Types: deb-src deb
URIs: https://on.example/debian/
Suites: bookworm
Components: main contrib
`, true, "https://on.example/debian"},
		{"one-line", `# comment
deb [arch=amd64 signed-by=/x.gpg] http://a.example/debian bookworm main
deb http://b.example/debian bookworm main
`, false, "http://a.example/debian"},
		{"one-line wrong suite", "deb http://a.example/debian trixie main\ndeb-src http://b.example/debian bookworm main\n", false, ""},
		{"no main", "deb http://a.example/debian bookworm contrib\n", false, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var srcs []aptSource
			if tc.deb822 {
				srcs = parseDeb822(tc.text)
			} else {
				srcs = parseOneLine(tc.text)
			}
			got := ""
			for _, s := range srcs {
				if s.matches("bookworm") {
					got = s.uri
					break
				}
			}
			if got != tc.want {
				t.Errorf("mirror = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestSubnets(t *testing.T) {
	pool := netip.MustParsePrefix("10.201.0.0/16")
	if got := nthSubnet(pool, 7).String(); got != "10.201.7.0/24" {
		t.Errorf("slot 7 subnet = %s", got)
	}
	if got := nthAddr(netip.MustParsePrefix("10.201.7.0/24"), 11).String(); got != "10.201.7.11" {
		t.Errorf("address 11 = %s", got)
	}
	for _, tc := range []struct {
		in string
		ok bool
	}{
		{"10.50.0.0/24", true},
		{"192.168.77.0/25", true},
		{"8.8.8.0/24", false}, // public addresses never
		{"10.0.0.0/8", false}, // too big
		{"10.0.0.0/30", false},
		{"fd00::/64", false},
		{"nonsense", false},
	} {
		if _, err := checkSubnet(tc.in); (err == nil) != tc.ok {
			t.Errorf("checkSubnet(%s) error = %v, want ok=%v", tc.in, err, tc.ok)
		}
	}
}

func TestPlanAndClientFiles(t *testing.T) {
	st := &State{ID: "x", Dir: "/abs/lab", Tier: TierNS, Prefix: "rbl12", Subnet: "10.201.12.0/24"}
	if err := planNetwork(st, 3, 0); err != nil {
		t.Fatal(err)
	}
	for i, h := range st.Hosts {
		h.Port = 42001 + i
		h.HostKey = "ssh-ed25519 AAAAkey" + h.Name + " root@" + h.Name
		for _, name := range append([]string{h.HubIf, h.NetNS}, h.SwIfs...) {
			if !strings.HasPrefix(name, "rbl12") {
				t.Errorf("name %q lacks the lab prefix", name)
			}
		}
		if len(h.HubIf) > 15 || len(h.SwIfs[0]) > 15 {
			t.Errorf("interface name too long: %q %q", h.HubIf, h.SwIfs[0])
		}
	}
	if st.Hosts[0].MgmtIP != "10.201.12.11" || st.HubIP != "10.201.12.1" {
		t.Errorf("addresses: host %s hub %s", st.Hosts[0].MgmtIP, st.HubIP)
	}
	hcl := inventoryHCL(st, "/abs/lab/id_ed25519", "/abs/lab/known_hosts")
	for _, want := range []string{
		`host "lab01" {`,
		`  port          = 42001`,
		`  identity_file = "/abs/lab/id_ed25519"`,
		`  vars = { data_nics = ["ens1f0", "ens1f1"], lab_tier = "ns", mgmt_ip = "10.201.12.11" }`,
		`group "lab" { hosts = ["lab01", "lab02", "lab03"] }`,
		`ansible_ssh_common_args = "-o UserKnownHostsFile=/abs/lab/known_hosts -o StrictHostKeyChecking=yes"`,
	} {
		if !strings.Contains(hcl, want) {
			t.Errorf("inventory.hcl lacks %q:\n%s", want, hcl)
		}
	}
	if kh := knownHosts(st); !strings.HasPrefix(kh, "[127.0.0.1]:42001 ssh-ed25519 AAAAkeylab01\n") {
		t.Errorf("known_hosts = %q", kh)
	}
	ini := inventoryINI(st, "/abs/lab/id_ed25519", "/abs/lab/known_hosts")
	if !strings.Contains(ini, "lab02 ansible_host=127.0.0.1 ansible_port=42002 ansible_user=root ansible_ssh_private_key_file=/abs/lab/id_ed25519") {
		t.Errorf("inventory.ini:\n%s", ini)
	}
	cfg := sshConfig(st, "/abs/lab/id_ed25519", "/abs/lab/known_hosts")
	if !strings.Contains(cfg, "Host lab03\n  HostName 127.0.0.1\n  Port 42003\n  User root\n") || !strings.Contains(cfg, "StrictHostKeyChecking yes") {
		t.Errorf("ssh_config:\n%s", cfg)
	}
}

func TestCheckLayers(t *testing.T) {
	for _, tc := range []struct {
		name    string
		tier    TierName
		layers  []string
		wantErr string
	}{
		{"none on ns", TierNS, nil, ""},
		{"none on systemd", TierSystemd, nil, ""},
		{"libvirt on systemd", TierSystemd, []string{LayerLibvirt}, ""},
		{"libvirt on ns", TierNS, []string{LayerLibvirt}, "need the systemd tier"},
		{"unknown", TierSystemd, []string{"libvrt"}, `unknown lab layer "libvrt"`},
		{"twice", TierSystemd, []string{LayerLibvirt, LayerLibvirt}, "given twice"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := checkLayers(tc.tier, tc.layers)
			if tc.wantErr == "" && err != nil || tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)) {
				t.Fatalf("checkLayers(%s, %v) = %v, want error containing %q", tc.tier, tc.layers, err, tc.wantErr)
			}
		})
	}
}

// TestLayerHashes: a layer's cache key covers the base tree and its own
// recipe, and a lab without layers keeps the base tree's key.
func TestLayerHashes(t *testing.T) {
	base := baseHash()
	h1 := layerHashes([]string{LayerLibvirt})
	if len(h1) != 1 || h1[0] == base || len(h1[0]) != len(base) {
		t.Fatalf("layer hash %v (base %s)", h1, base)
	}
	if again := layerHashes([]string{LayerLibvirt}); again[0] != h1[0] {
		t.Fatalf("layer hash not stable: %s then %s", h1[0], again[0])
	}
	saved := layerDefs[LayerLibvirt]
	t.Cleanup(func() { layerDefs[LayerLibvirt] = saved })
	for _, change := range []func(d *layerDef){
		func(d *layerDef) { d.recipe += "x" },
		func(d *layerDef) { d.packages = append(append([]string{}, d.packages...), "ovmf") },
	} {
		d := saved
		change(&d)
		layerDefs[LayerLibvirt] = d
		if h := layerHashes([]string{LayerLibvirt}); h[0] == h1[0] {
			t.Errorf("a changed layer kept its hash %s", h[0])
		}
		layerDefs[LayerLibvirt] = saved
	}
	if baseHash() != base {
		t.Fatal("layers changed the base hash")
	}
	st := &State{BaseTree: "/c/base/rootfs", LayerTrees: []string{"/c/l1/upper", "/c/l2/upper"}}
	if got, want := st.lowerDirs(), "/c/l2/upper:/c/l1/upper:/c/base/rootfs"; got != want {
		t.Errorf("lowerDirs = %q, want %q", got, want)
	}
	if got := (&State{BaseTree: "/c/base/rootfs"}).lowerDirs(); got != "/c/base/rootfs" {
		t.Errorf("lowerDirs without layers = %q", got)
	}
}
