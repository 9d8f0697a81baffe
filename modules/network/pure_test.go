package network

import (
	"slices"
	"strings"
	"testing"

	"github.com/runbook/runbook/modules/hostfs"
)

func TestNormBondOption(t *testing.T) {
	cases := []struct {
		name, value, want, err string
	}{
		{"mode", "802.3ad", "802.3ad", ""},
		{"mode", "4", "802.3ad", ""},
		{"mode", " 4 ", "802.3ad", ""},
		{"mode", "802.3ad 4", "802.3ad", ""}, // sysfs
		{"mode", "Active-Backup", "active-backup", ""},
		{"mode", "1", "active-backup", ""},
		{"mode", "0", "balance-rr", ""},
		{"mode", "6", "balance-alb", ""},
		{"mode", "7", "", "not a valid mode"},
		{"mode", "lacp", "", "not a valid mode"},
		{"mode", "802.3ad 1", "", "not a valid mode"}, // name and number disagree
		{"lacp_rate", "fast", "fast", ""},
		{"lacp_rate", "1", "fast", ""},
		{"lacp_rate", "slow 0", "slow", ""},
		{"lacp-rate", "0", "slow", ""},
		{"xmit_hash_policy", "1", "layer3+4", ""},
		{"xmit_hash_policy", "layer2+3", "layer2+3", ""},
		{"xmit_hash_policy", "vlan+srcmac", "vlan+srcmac", ""},
		{"ad_select", "2", "count", ""},
		{"miimon", "0100", "100", ""},
		{"miimon", "-1", "", "whole number"},
		{"min_links", "x", "", "whole number"},
		{"primary", "ens1f0", "ens1f0", ""},
		{"updelay", "200", "200", ""}, // not managed: kept as written
	}
	for _, c := range cases {
		got, err := normBondOption(c.name, c.value)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("%s=%q: err %v, want %q", c.name, c.value, err, c.err)
			}
			continue
		}
		if err != nil || got != c.want {
			t.Errorf("%s=%q: %q, %v; want %q", c.name, c.value, got, err, c.want)
		}
	}
}

func TestParseBondingOpts(t *testing.T) {
	opts, order, err := parseBondingOpts(`mode=4 miimon=100  lacp_rate=fast bond-xmit-hash-policy=1 arp_ip_target=+192.0.2.1`)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"mode": "802.3ad", "miimon": "100", "lacp_rate": "fast", "xmit_hash_policy": "layer3+4", "arp_ip_target": "+192.0.2.1"}
	if !mapsEqual(opts, want) || !slices.Equal(order, []string{"mode", "miimon", "lacp_rate", "xmit_hash_policy", "arp_ip_target"}) {
		t.Errorf("got %v %v", opts, order)
	}
	for _, bad := range []string{"mode", "mode=9", "lacp_rate=medium"} {
		if _, _, err := parseBondingOpts(bad); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
	if got := sortedOptNames(map[string]string{"updelay": "1", "lacp_rate": "fast", "mode": "4", "arp_interval": "0"}); !slices.Equal(got, []string{"mode", "lacp_rate", "arp_interval", "updelay"}) {
		t.Errorf("order %v", got)
	}
}

// TestMTUSemantics: unset never drifts, "auto" wants no MTU in files and leaves the kernel
// alone, and a file without an MTU is 1500 for NICs and bonds but not for VLANs.
func TestMTUSemantics(t *testing.T) {
	mtu := func(s string) mtuSpec {
		m, err := parseMTU(s)
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	cases := []struct {
		spec          string
		kind          string
		persisted     int
		wantPersisted bool
		running       int
		wantRuntime   bool
	}{
		{"", kindBond, 9000, true, 9000, true},
		{"auto", kindBond, 0, true, 9000, true},
		{"auto", kindBond, 9000, false, 1500, true},
		{"AUTO", kindEthernet, 0, true, 1500, true},
		{"1500", kindEthernet, 0, true, 1500, true},
		{"1500", kindBond, 0, true, 9000, false},
		{"1500", kindVLAN, 0, false, 1500, true},
		{"1500", "", 0, true, 1500, true},
		{"9100", kindBond, 0, false, 9000, false},
		{"9100", kindBond, 9100, true, 9100, true},
	}
	for _, c := range cases {
		m := mtu(c.spec)
		if got := m.matchesPersisted(c.kind, c.persisted); got != c.wantPersisted {
			t.Errorf("mtu %q (%s) vs file %d: %v", c.spec, c.kind, c.persisted, got)
		}
		if got := m.matchesRuntime(c.running); got != c.wantRuntime {
			t.Errorf("mtu %q vs running %d: %v", c.spec, c.running, got)
		}
	}
	for _, bad := range []string{"67", "65536", "9k", "-1"} {
		if _, err := parseMTU(bad); err == nil {
			t.Errorf("mtu %q accepted", bad)
		}
	}
}

func TestAddresses(t *testing.T) {
	cases := []struct{ addr, prefix, want string }{
		{"192.0.2.10", "24", "192.0.2.10/24"},
		{"192.0.2.10", "255.255.255.0", "192.0.2.10/24"},
		{"192.0.2.10", "255.255.252.0", "192.0.2.10/22"},
		{"192.0.2.10", "", "192.0.2.10/32"},
		{"192.0.2.10/25", "", "192.0.2.10/25"},
		{"2001:DB8::0010/64", "", "2001:db8::10/64"},
		{"2001:db8::10", "", "2001:db8::10/128"},
	}
	for _, c := range cases {
		if got, err := withPrefix(c.addr, c.prefix); err != nil || got != c.want {
			t.Errorf("%s %s: %q %v, want %q", c.addr, c.prefix, got, err, c.want)
		}
	}
	for _, bad := range [][2]string{{"192.0.2.10", "255.0.255.0"}, {"192.0.2.10", "33"}, {"x", "24"}} {
		if got, err := withPrefix(bad[0], bad[1]); err == nil {
			t.Errorf("%v: %q accepted", bad, got)
		}
	}
	v4, v6 := splitFamilies([]string{"192.0.2.1/24", "2001:db8::1/64", "10.0.0.1/8"})
	if !slices.Equal(v4, []string{"192.0.2.1/24", "10.0.0.1/8"}) || !slices.Equal(v6, []string{"2001:db8::1/64"}) {
		t.Errorf("split %v %v", v4, v6)
	}
}

func TestTimeSpansAndSizes(t *testing.T) {
	for in, want := range map[string]int{"100ms": 100, "0.1s": 100, "1": 1000, "1s 500ms": 1500, "2min": 120000, "250 msec": 250, "1500us": 2} {
		if got, err := parseTimeSpanMS(in); err != nil || got != want {
			t.Errorf("%q: %d %v, want %d", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "fast", "10 parsecs"} {
		if _, err := parseTimeSpanMS(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
	for in, want := range map[string]int{"9000": 9000, "9K": 9216, "1M": 1 << 20} {
		if got, err := parseBytes(in); err != nil || got != want {
			t.Errorf("%q: %d %v", in, got, err)
		}
	}
}

func TestShellValues(t *testing.T) {
	for _, v := range []string{"plain", "mode=4 miimon=100", `a"b$c`, "", "x`y`"} {
		if got := hostfs.ShellUnquote(shQuote(v)); got != v {
			t.Errorf("round trip %q: %q (quoted %s)", v, got, shQuote(v))
		}
	}
	d := parseSh("# comment\nA=1\nexport B=\"two words\"\nA=3\n")
	if v, _ := d.get("A"); v != "3" {
		t.Errorf("A = %q (the last assignment wins)", v)
	}
	d.set("A", "4")
	d.del(keyIs("B"))
	d.set("C", "x y")
	if got, want := d.String(), "# comment\nA=4\nC=\"x y\"\n"; got != want {
		t.Errorf("edited:\n%s\nwant:\n%s", got, want)
	}
}

func TestINIEdit(t *testing.T) {
	d := parseINI("# top\n[a]\nk=1\n# note\nk=2\n\n[b]\nx=y\n\n[a]\nk=3\n")
	if v, _ := d.get("a", "k"); v != "3" {
		t.Errorf("get k = %q (the last wins)", v)
	}
	if got := d.getAll("a", "k"); !slices.Equal(got, []string{"1", "2", "3"}) {
		t.Errorf("getAll %v", got)
	}
	d.set("a", "k", "9")
	d.set("b", "new", "v")
	d.set("c", "z", "1")
	want := "# top\n[a]\nk=9\n# note\n\n[b]\nx=y\nnew=v\n\n[a]\n\n[c]\nz=1\n"
	if got := d.String(); got != want {
		t.Errorf("edited:\n%s\nwant:\n%s", got, want)
	}
	d2 := parseINI("[Network]\nAddress=192.0.2.1/24\nAddress=\nAddress=192.0.2.2/24\n")
	if got := d2.getAll("Network", "Address"); !slices.Equal(got, []string{"192.0.2.2/24"}) {
		t.Errorf("an empty assignment resets the list: %v", got)
	}
}

func TestDiffConf(t *testing.T) {
	up := true
	w := ifWant{Name: "bond0", Kind: kindBond, MTU: mtuSpec{set: true, n: 9100}, Up: &up, ManageAddrs: true, Addrs: []string{"192.0.2.10/24"},
		Bond: map[string]string{"mode": "802.3ad", "lacp_rate": "fast"}, Slaves: []string{"b", "a"}}
	have := &ifConf{Name: "bond0", Kind: kindBond, MTU: 9100, Up: true, Method: "static", Addrs: []string{"192.0.2.10/24"},
		Bond: map[string]string{"mode": "802.3ad", "lacp_rate": "fast", "miimon": "100"}, Slaves: []string{"a", "b"}}
	if d := diffConf(w, have); len(d) != 0 {
		t.Errorf("in sync, got %q", d)
	}
	have.Bond["lacp_rate"] = "slow"
	have.Method = "dhcp"
	have.Up = false
	have.Slaves = []string{"a"}
	want := []string{"bond0: start at boot no → yes", "bond0: addressing dhcp → static", "bond0: lacp_rate slow → fast", "bond0: slaves a → a, b"}
	if d := diffConf(w, have); !slices.Equal(d, want) {
		t.Errorf("got %q\nwant %q", d, want)
	}
	if d := diffConf(w, nil); !slices.Equal(d, []string{"bond0: not configured"}) {
		t.Errorf("nil: %q", d)
	}
	// Kind "" takes whatever the files have.
	if d := diffConf(ifWant{Name: "x", MTU: mtuSpec{set: true, n: 1500}}, &ifConf{Name: "x", Kind: kindBond}); len(d) != 0 {
		t.Errorf("kind-less want: %q", d)
	}
}
