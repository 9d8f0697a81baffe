package bonding

import (
	"os"
	"testing"
)

func TestParse8023ad(t *testing.T) {
	// Captured from a vm-tier lab host: bond0 in 802.3ad with two ports, negotiated.
	b, err := os.ReadFile("testdata/8023ad.txt")
	if err != nil {
		t.Fatal(err)
	}
	r := Parse(string(b))
	if len(r.Slaves) != 2 || r.Slaves[0].Name != "ens1f0" || r.Slaves[1].Name != "ens1f1" {
		t.Fatalf("slaves: %+v", r.Slaves)
	}
	tests := []struct{ name, got, want string }{
		{"mode", r.Mode(), "802.3ad"},
		{"bond MII status", r.Bond["MII Status"], "up"},
		{"lacp rate", r.Bond["LACP rate"], "fast"},
		{"active aggregator", r.Active["Aggregator ID"], "1"},
		{"active partner", r.Active["Partner Mac Address"], "52:54:00:00:01:03"},
		{"slave aggregator", r.Slave("ens1f1").Fields["Aggregator ID"], "1"},
		{"slave MII status", r.Slave("ens1f0").Fields["MII Status"], "up"},
		{"actor port state", r.Slave("ens1f0").Actor["port state"], "63"},
		{"partner system mac", r.Slave("ens1f0").Partner["system mac address"], "52:54:00:00:01:03"},
		// the details blocks stay out of the slave's own fields and the bond's
		{"no details in fields", r.Slave("ens1f0").Fields["port state"], ""},
		{"no active block in bond", r.Bond["Aggregator ID"], ""},
		{"unknown slave", r.Slave("eth9").Fields["MII Status"], ""},
	}
	for _, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("%s: %q, want %q", tt.name, tt.got, tt.want)
		}
	}
}

func TestParseActiveBackupAndEmpty(t *testing.T) {
	r := Parse(`Ethernet Channel Bonding Driver: v6.1.0

Bonding Mode: fault-tolerance (active-backup)
Primary Slave: None
Currently Active Slave: eth1
MII Status: up

Slave Interface: eth1
MII Status: up
Link Failure Count: 0

Slave Interface: eth2
MII Status: down
Link Failure Count: 3
`)
	if r.Mode() != "active-backup" || r.Bond["Currently Active Slave"] != "eth1" || len(r.Active) != 0 {
		t.Errorf("bond: %v %v", r.Bond, r.Active)
	}
	if r.Slave("eth2").Fields["Link Failure Count"] != "3" || r.Slave("eth2").Fields["MII Status"] != "down" {
		t.Errorf("eth2: %v", r.Slave("eth2").Fields)
	}
	if e := Parse(""); len(e.Bond) != 0 || len(e.Slaves) != 0 || e.Mode() != "" {
		t.Errorf("empty: %+v", e)
	}
}

func TestFirstField(t *testing.T) {
	for in, want := range map[string]string{"802.3ad 4": "802.3ad", "fast 1": "fast", "": "", "  layer3+4 1 ": "layer3+4"} {
		if got := FirstField(in); got != want {
			t.Errorf("FirstField(%q) = %q, want %q", in, got, want)
		}
	}
}
