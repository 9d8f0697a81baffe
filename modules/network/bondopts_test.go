package network

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/zclconf/go-cty/cty"

	"github.com/runbook/runbook/modules/moduletest"
)

// TestBondOptionTable holds the table of bond options to itself and to what reads it: the
// modes it names exist, validation refuses an option in exactly the modes the table leaves
// out, and the argument docs and the module's description say what the table says.
func TestBondOptionTable(t *testing.T) {
	for _, o := range bondOptions {
		for _, m := range o.modes {
			if _, ok := bondModes.lookup(m); !ok {
				t.Errorf("%s: mode %q is not a bond mode", o.name, m)
			}
		}
		if o.needsNoSlaves && !o.needsDown {
			t.Errorf("%s: needs no slaves but not the bond down", o.name)
		}
	}
	// The mode comes first: the others depend on it.
	if bondOptions[0].name != "mode" {
		t.Errorf("the first option is %s", bondOptions[0].name)
	}

	// Validation: each mode-bound option, given in each mode.
	given := map[string]cty.Value{"lacp_rate": s("fast"), "xmit_hash_policy": s("layer2"), "ad_select": s("count"), "primary": s("eth0")}
	for _, o := range bondOptions {
		v, ok := given[o.name]
		if o.modes == nil {
			if ok {
				t.Errorf("%s applies in every mode but the test gives it", o.name)
			}
			continue
		}
		if !ok {
			t.Fatalf("the test gives no value for %s", o.name)
		}
		for _, mode := range bondModes {
			errs := moduletest.Validate(t, Bond{}, map[string]cty.Value{"name": s("bond0"), "mode": s(mode), "slaves": strs("eth0", "eth1"), o.name: v})
			want := fmt.Sprintf("%s applies only to %s, not to mode %q", o.name, o.modesText(), mode)
			refused := len(errs) == 1 && errs[0].Arg == o.name && errs[0].Msg == want
			if slices.Contains(o.modes, mode) != (len(errs) == 0) || (len(errs) > 0 && !refused) {
				t.Errorf("%s in mode %s: %v", o.name, mode, errs)
			}
		}
	}

	// The docs the user reads (runbook modules bond) start with the modes, as they always
	// have.
	docs := map[string]string{}
	for _, a := range (Bond{}).Info().Schema.Args {
		docs[a.Name] = a.Doc
	}
	for name, prefix := range map[string]string{
		"lacp_rate":        "802.3ad only: ",
		"ad_select":        "802.3ad only: ",
		"xmit_hash_policy": "balance-xor, 802.3ad and balance-tlb: ",
		"primary":          "active-backup, balance-tlb and balance-alb: ",
	} {
		if !strings.HasPrefix(docs[name], prefix) {
			t.Errorf("%s: doc %q, want it to start with %q", name, docs[name], prefix)
		}
	}
	desc := strings.Join(strings.Fields((Bond{}).Info().Description), " ")
	down := optNames(func(o bondOption) bool { return o.needsDown })
	if want := "options the kernel takes only while the bond is down (" + strings.Join(down, ", ") + ")"; !strings.Contains(desc, want) {
		t.Errorf("the description does not say %q", want)
	}
}
