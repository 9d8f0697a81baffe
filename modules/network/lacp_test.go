package network

import (
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/runbook/runbook/modules/host"
)

// TestLACPState reads the negotiated 802.3ad state from fixture sysfs trees and
// /proc/net/bonding files.
func TestLACPState(t *testing.T) {
	type port struct {
		agg            int
		partner        string
		actor, pstate  int
		inActive       bool
		actorFlagsWant []any
	}
	cases := []struct {
		fixture, bond string
		ok            bool
		active        int
		ports         map[string]port
		dropProc      bool
	}{
		{"lacp-ok", "bond0", true, 1, map[string]port{
			"ens1f0": {1, "00:1c:73:aa:bb:cc", 63, 61, true, []any{"activity", "short_timeout", "aggregation", "synchronization", "collecting", "distributing"}},
			"ens1f1": {1, "00:1c:73:aa:bb:cc", 63, 61, true, nil},
		}, false},
		// Without /proc the ports in the active aggregator take the bond's partner.
		{"lacp-ok", "bond0", true, 1, map[string]port{
			"ens1f0": {1, "00:1c:73:aa:bb:cc", 63, 61, true, nil},
			"ens1f1": {1, "00:1c:73:aa:bb:cc", 63, 61, true, nil},
		}, true},
		{"lacp-split", "bond0", false, 1, map[string]port{
			"ens1f0": {1, "00:1c:73:aa:bb:cc", 61, 61, true, nil},
			"ens1f1": {2, "00:1c:73:dd:ee:ff", 5, 61, false, []any{"activity", "aggregation"}},
		}, false},
		{"lacp-nopartner", "bond0", false, 1, map[string]port{
			"ens1f0": {1, zeroMAC, 71, 1, true, []any{"activity", "short_timeout", "aggregation", "defaulted"}},
			"ens1f1": {2, zeroMAC, 71, 1, false, nil},
		}, false},
		{"lacp-proc-only", "bond0", true, 3, map[string]port{
			"eno1": {3, "38:90:a5:11:22:33", 63, 63, true, nil},
			"eno2": {3, "38:90:a5:11:22:33", 63, 63, true, nil},
		}, false},
	}
	for _, c := range cases {
		name := c.fixture
		if c.dropProc {
			name += "/sysfs-only"
		}
		t.Run(name, func(t *testing.T) {
			root := loadFixture(t, c.fixture).root(t)
			if c.dropProc {
				if err := os.RemoveAll(filepath.Join(root, "proc")); err != nil {
					t.Fatal(err)
				}
			}
			state, ok, exists := lacpState(&fileTree{host.Root(root)}, c.bond)
			if !exists {
				t.Fatal("bond not found")
			}
			if ok != c.ok || state["active_aggregator_id"] != c.active || state["mode"] != "802.3ad" {
				t.Errorf("ok %v active %v mode %v; want %v %v", ok, state["active_aggregator_id"], state["mode"], c.ok, c.active)
			}
			slaves := state["slaves"].(map[string]any)
			if len(slaves) != len(c.ports) {
				t.Errorf("slaves %v", slaves)
			}
			for n, p := range c.ports {
				got, _ := slaves[n].(map[string]any)
				if got == nil {
					t.Errorf("no slave %s", n)
					continue
				}
				if got["aggregator_id"] != p.agg || got["partner_mac"] != p.partner || got["actor_oper_state"] != p.actor ||
					got["partner_oper_state"] != p.pstate || got["in_active_aggregator"] != p.inActive {
					t.Errorf("%s: %v\nwant %+v", n, got, p)
				}
				if p.actorFlagsWant != nil && !reflect.DeepEqual(got["actor_oper_flags"], p.actorFlagsWant) {
					t.Errorf("%s actor flags %v, want %v", n, got["actor_oper_flags"], p.actorFlagsWant)
				}
			}
			if !ok {
				if msg := lacpProblem(state); msg == "" {
					t.Error("no explanation")
				} else {
					t.Log(msg)
				}
			}
		})
	}
	if _, _, exists := lacpState(&fileTree{host.Root(t.TempDir())}, "bond9"); exists {
		t.Error("a missing bond exists")
	}
}
