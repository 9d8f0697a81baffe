package network

import (
	"strings"
	"testing"

	"github.com/zclconf/go-cty/cty"

	"github.com/runbook/runbook/modules"
	"github.com/runbook/runbook/modules/moduletest"
)

// validate checks args as the helper does: what the schema refuses (moduletest.Validate
// would fail the test there) is an error too.
func validate(t *testing.T, m modules.Module, args map[string]cty.Value) []modules.ArgError {
	t.Helper()
	d := moduletest.Def(t, m)
	a, _, err := d.Args(cty.ObjectVal(args))
	if err != nil {
		return []modules.ArgError{{Msg: err.Error()}}
	}
	return d.Validate(a)
}

func TestValidate(t *testing.T) {
	vlan := func(parent string, id int) cty.Value {
		return cty.ObjectVal(map[string]cty.Value{"parent": s(parent), "id": n(id)})
	}
	vf := func(kv ...any) cty.Value {
		m := map[string]cty.Value{}
		for i := 0; i < len(kv); i += 2 {
			m[kv[i].(string)] = kv[i+1].(cty.Value)
		}
		return cty.ObjectVal(m)
	}
	vfs := func(vals ...cty.Value) cty.Value { return cty.TupleVal(vals) }
	cases := []struct {
		name string
		m    modules.Module
		args map[string]cty.Value
		want string // "" means valid
	}{
		{"bond ok", Bond{}, lacpBond, ""},
		{"bond mode by number", Bond{}, with(lacpBond, "mode", n(4)), ""},
		{"bond bad mode", Bond{}, with(lacpBond, "mode", s("lacp")), `mode: "lacp" is not a valid mode`},
		{"bond bad lacp_rate", Bond{}, with(lacpBond, "lacp_rate", s("medium")), `lacp_rate: "medium" is not a valid lacp_rate`},
		{"bond lacp_rate outside 802.3ad", Bond{}, with(lacpBond, "mode", s("active-backup")), "lacp_rate applies only to 802.3ad"},
		{"bond primary in 802.3ad", Bond{}, with(lacpBond, "primary", s("ens1f0")), "primary applies only to active-backup"},
		{"bond primary not a slave", Bond{}, map[string]cty.Value{"name": s("bond1"), "mode": s("active-backup"), "slaves": strs("a", "b"), "primary": s("c")}, `primary "c" is not one of the slaves`},
		{"bond slave twice", Bond{}, with(lacpBond, "slaves", strs("ens1f0", "ens1f0")), "ens1f0 is listed twice"},
		{"bond slave is itself", Bond{}, with(lacpBond, "slaves", strs("bond0")), "its own slave"},
		{"bond name too long", Bond{}, with(lacpBond, "name", s("bond-with-a-long-name")), "expected an interface name"},
		{"bond fractional miimon", Bond{}, with(lacpBond, "miimon", cty.NumberFloatVal(0.5)), "miimon must be a whole number"},
		{"bond negative min_links", Bond{}, with(lacpBond, "min_links", n(-1)), "min_links must be a whole number"},
		{"bond mtu too small", Bond{}, with(lacpBond, "mtu", n(60)), "mtu must be"},
		{"bond mtu auto", Bond{}, with(lacpBond, "mtu", s("auto")), ""},
		{"bond bad address", Bond{}, with(lacpBond, "addresses", strs("192.0.2.10")), "not an address with a prefix length"},
		{"bond nothing to manage", Bond{}, with(lacpBond, "runtime", cty.False, "persist", cty.False), "leaves nothing to manage"},
		{"bond unknown argument", Bond{}, with(lacpBond, "bogus", n(1)), `unsupported argument "bogus"`},
		{"bond without slaves", Bond{}, map[string]cty.Value{"name": s("bond0"), "mode": s("4")}, `argument "slaves" is required`},

		{"interface ok", Interface{}, map[string]cty.Value{"name": s("ens1f0"), "mtu": n(9000), "state": s("up")}, ""},
		{"interface vlan ok", Interface{}, map[string]cty.Value{"name": s("bond0.100"), "vlan": vlan("bond0", 100)}, ""},
		{"interface vlan id 0", Interface{}, map[string]cty.Value{"name": s("v0"), "vlan": vlan("bond0", 0)}, "vlan.id must be a whole number from 1 to 4094"},
		{"interface vlan id 4095", Interface{}, map[string]cty.Value{"name": s("v"), "vlan": vlan("bond0", 4095)}, "from 1 to 4094"},
		{"interface vlan id fraction", Interface{}, map[string]cty.Value{"name": s("v"), "vlan": cty.ObjectVal(map[string]cty.Value{"parent": s("bond0"), "id": cty.NumberFloatVal(1.5)})}, "vlan.id must be a whole number from 1 to 4094, not 1.5"},
		{"interface vlan own parent", Interface{}, map[string]cty.Value{"name": s("x"), "vlan": vlan("x", 5)}, "own parent"},
		{"interface exclusive without addresses", Interface{}, map[string]cty.Value{"name": s("x"), "exclusive": cty.True}, "exclusive needs addresses"},
		{"interface exclusive empty", Interface{}, map[string]cty.Value{"name": s("x"), "exclusive": cty.True, "addresses": strs()}, ""},
		{"interface bad address", Interface{}, map[string]cty.Value{"name": s("x"), "addresses": strs("300.1.1.1/24")}, "not an address"},
		{"interface vlan missing id", Interface{}, map[string]cty.Value{"name": s("x"), "vlan": cty.ObjectVal(map[string]cty.Value{"parent": s("bond0")})}, `argument "vlan"`},

		{"sriov ok", SRIOV{}, map[string]cty.Value{"device": s("ens1f0"), "num_vfs": n(8), "vfs": vfs(vf("index", n(0), "trust", cty.True), vf("index", n(7), "mac", s("02:00:00:00:00:07"), "vlan", n(101)))}, ""},
		{"sriov index at num_vfs", SRIOV{}, map[string]cty.Value{"device": s("ens1f0"), "num_vfs": n(2), "vfs": vfs(vf("index", n(2), "trust", cty.True))}, "VF index 2 does not exist with num_vfs = 2"},
		{"sriov vfs with none", SRIOV{}, map[string]cty.Value{"device": s("ens1f0"), "num_vfs": n(0), "vfs": vfs(vf("index", n(0)))}, "VF index 0 does not exist"},
		{"sriov index twice", SRIOV{}, map[string]cty.Value{"device": s("ens1f0"), "num_vfs": n(4), "vfs": vfs(vf("index", n(1)), vf("index", n(1)))}, "VF 1 is listed twice"},
		{"sriov negative", SRIOV{}, map[string]cty.Value{"device": s("ens1f0"), "num_vfs": n(-1)}, "num_vfs must be a whole number"},
		{"sriov fractional num_vfs", SRIOV{}, map[string]cty.Value{"device": s("ens1f0"), "num_vfs": cty.NumberFloatVal(2.5)}, "num_vfs must be a whole number from 0 to 4096, not 2.5"},
		{"sriov fractional index", SRIOV{}, map[string]cty.Value{"device": s("ens1f0"), "num_vfs": n(4), "vfs": vfs(vf("index", cty.NumberFloatVal(0.5)))}, "VF index 0.5 is not a whole number from 0"},
		{"sriov multicast mac", SRIOV{}, map[string]cty.Value{"device": s("ens1f0"), "num_vfs": n(1), "vfs": vfs(vf("index", n(0), "mac", s("01:00:5e:00:00:01")))}, "multicast"},
		{"sriov bad mac", SRIOV{}, map[string]cty.Value{"device": s("ens1f0"), "num_vfs": n(1), "vfs": vfs(vf("index", n(0), "mac", s("zz")))}, "not an Ethernet MAC"},
		{"sriov bad vlan", SRIOV{}, map[string]cty.Value{"device": s("ens1f0"), "num_vfs": n(1), "vfs": vfs(vf("index", n(0), "vlan", n(5000)))}, "vlan must be"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			errs := validate(t, c.m, c.args)
			var msgs []string
			for _, e := range errs {
				msgs = append(msgs, e.Error())
			}
			got := strings.Join(msgs, "; ")
			switch {
			case c.want == "" && got != "":
				t.Errorf("want valid, got %s", got)
			case c.want != "" && !strings.Contains(got, c.want):
				t.Errorf("got %q, want it to say %q", got, c.want)
			}
		})
	}
}
