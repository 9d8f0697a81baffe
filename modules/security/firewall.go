package security

import (
	"fmt"
	"slices"
	"strings"

	"github.com/zclconf/go-cty/cty"

	"github.com/runbook/runbook/modules"
)

// Built-in chains of the filter table, whose policies the firewall module sets.
var filterChains = []string{"INPUT", "FORWARD", "OUTPUT"}

// Firewall turns a host's firewall off: firewalld, the iptables rules and the services that
// restore them at boot.
// Wanted unit states, the values of firewalld and iptables_service.
const (
	unitStopped  = "stopped"
	unitDisabled = "disabled"
	unitMasked   = "masked"
)

type Firewall struct {
	// root is where the module finds "/" for /proc and the save directories; dirs, when
	// set, are the only places it looks for iptables and systemctl. Both are for tests.
	root string
	dirs []string
}

func (Firewall) Info() modules.Info {
	return modules.Info{
		Name:    "firewall",
		Family:  "security",
		Summary: "Turn the host firewall off: stop firewalld, flush and save iptables, stop the iptables services.",
		Description: `Each argument names one part; unset parts are left alone. The parts run in this order:
firewalld (disabled or masked first, then stopped, so nothing starts it again in between), the
iptables services, the flush and policies, and the save.

The rules are read with iptables-save of the backend the host's iptables command uses (nf_tables or
legacy, as "iptables -V" says; reported in backend). A flush replaces every selected table in one
iptables-restore transaction: rules and user chains are removed, counters zeroed and the filter
policies set, with no moment in between where a half-flushed table is live. Afterwards the rules are
read again, and any left is an error. Check mode changes nothing: it shows the ruleset before and
after as a diff and counts what would be removed.

Flushing the filter table while INPUT or OUTPUT has the policy DROP would cut the host off,
runbook's own connection included. The task fails instead, unless policies names that chain: set it
to "ACCEPT", or to "DROP" to say the lockout is meant.

With save = true the resulting ruleset is written where the host's boot scripts read it:
/etc/sysconfig/iptables (and ip6tables) where /etc/sysconfig exists, else /etc/iptables/rules.v4
(and rules.v6) where /etc/iptables exists, else save_path (and save_path6), which also override
both. The file is compared without comments and counters, and rewritten atomically only when
the rules differ.

A host without iptables has no iptables rules: the iptables arguments then report ok, with
backend = "not installed" and a warning (unless the kernel holds legacy tables that nothing
could read, which fails). A unit that is not installed is ok in every wanted state.`,
		Schema: modules.Schema{
			Args: []modules.Arg{
				{Name: "firewalld", Type: cty.String, OneOf: []string{unitStopped, unitDisabled, unitMasked},
					Doc: `"stopped"; "disabled" (stopped and not started at boot; a mask is lifted); or "masked" (stopped, and nothing can start it). Unset leaves firewalld alone.`},
				{Name: "iptables_flush", Type: cty.Bool, Default: cty.False,
					Doc: "Remove every rule and user chain from the tables, zero the counters."},
				{Name: "tables", Type: cty.List(cty.String),
					Doc: `The tables to flush: any of "filter", "nat", "mangle", "raw", "security". Unset: every table that exists. A table that does not exist is not created.`},
				{Name: "policies", Type: cty.Map(cty.String),
					Doc: `Policies of the filter table's built-in chains, e.g. { INPUT = "ACCEPT", FORWARD = "DROP" }. Chains: INPUT, FORWARD, OUTPUT; policies: ACCEPT, DROP. With ipv6 they apply to ip6tables as well.`},
				{Name: "save", Type: cty.Bool, Default: cty.False,
					Doc: "Write the resulting ruleset where it is restored at boot (see the description)."},
				{Name: "save_path", Type: cty.String,
					Doc: "Where save writes the IPv4 ruleset, instead of the distribution's place."},
				{Name: "save_path6", Type: cty.String,
					Doc: "Where save writes the IPv6 ruleset (with ipv6), instead of the distribution's place."},
				{Name: "iptables_service", Type: cty.String, OneOf: []string{unitStopped, unitDisabled},
					Doc: "The state of the units that restore rules at boot: iptables.service, netfilter-persistent.service and, with ipv6, ip6tables.service (those that exist). Unset leaves them alone."},
				{Name: "ipv6", Type: cty.Bool, Default: cty.False,
					Doc: "Do the same for IPv6: ip6tables rules, policies, save and ip6tables.service."},
			},
			RequiredWith: map[string][]string{"save_path": {"save"}, "save_path6": {"save", "ipv6"}},
		},
		Returns: []modules.Field{
			{Name: "backend", Type: cty.String, Doc: `The iptables backend: "nf_tables", "legacy", "not installed", or "" when no iptables argument was given.`},
			{Name: "rules", Type: cty.String, Doc: "The IPv4 ruleset before the task, as iptables-save prints it without counters (the listing)."},
			{Name: "rules6", Type: cty.String, Doc: "The same for IPv6 (with ipv6)."},
			{Name: "removed", Type: cty.Map(cty.Number), Doc: "Rules removed (in check mode: that would be) per IPv4 table flushed, e.g. { filter = 9, nat = 3 }."},
			{Name: "removed6", Type: cty.Map(cty.Number), Doc: "The same for IPv6."},
			{Name: "chains_removed", Type: cty.Map(cty.Number), Doc: "User chains removed per table, IPv4 and IPv6 together."},
			{Name: "firewalld", Type: cty.String, Doc: `firewalld's state after the task (in check mode: as it is), e.g. "inactive, disabled", or "not installed"; "" when firewalld was not asked about.`},
			{Name: "units", Type: cty.Map(cty.String), Doc: `State of each iptables service unit that exists, e.g. { "netfilter-persistent.service" = "inactive, disabled" }.`},
			{Name: "saved", Type: cty.List(cty.String), Doc: "The files save manages."},
		},
		Examples: []modules.Example{
			{Title: "Firewall off as the installation guide asks", HCL: `task "firewall off" {
  firewall {
    firewalld        = "disabled"
    iptables_flush   = true
    policies         = { INPUT = "ACCEPT", FORWARD = "ACCEPT", OUTPUT = "ACCEPT" }
    save             = true
    iptables_service = "disabled"
  }
}`},
			{Title: "Only list and flush the nat table, IPv4 and IPv6", HCL: `task "flush nat" {
  firewall {
    iptables_flush = true
    tables         = ["nat"]
    ipv6           = true
  }
}`},
			{Title: "Mask firewalld so nothing starts it again", HCL: `task "firewalld masked" {
  firewall {
    firewalld = "masked"
  }
}`},
		},
	}
}

// Validate checks that the task asks for something and that tables, policies and paths
// are valid.
func (Firewall) Validate(args cty.Value) []modules.ArgError {
	var errs []modules.ArgError
	flush := boolArg(args, "iptables_flush")
	if str(args, "firewalld") == "" && !flush && args.GetAttr("policies").IsNull() && !boolArg(args, "save") && str(args, "iptables_service") == "" {
		errs = append(errs, modules.ArgError{Msg: "The firewall module needs at least one of firewalld, iptables_flush, policies, save or iptables_service."})
	}
	if v := args.GetAttr("tables"); !v.IsNull() {
		if !flush {
			errs = append(errs, modules.ArgError{Arg: "tables", Msg: "tables says what iptables_flush flushes; set iptables_flush = true."})
		}
		if v.LengthInt() == 0 {
			errs = append(errs, modules.ArgError{Arg: "tables", Msg: "tables is empty; leave it unset to flush every table."})
		}
		for it := v.ElementIterator(); it.Next(); {
			_, t := it.Element()
			if t.IsNull() || !slices.Contains(knownTables, t.AsString()) {
				name := "null"
				if !t.IsNull() {
					name = fmt.Sprintf("%q", t.AsString())
				}
				msg := fmt.Sprintf("%s is not an iptables table; expected one of: %s.", name, strings.Join(knownTables, ", "))
				if !t.IsNull() {
					if s := modules.Suggest(t.AsString(), knownTables); s != "" {
						msg += fmt.Sprintf(" Did you mean %q?", s)
					}
				}
				errs = append(errs, modules.ArgError{Arg: "tables", Msg: msg})
			}
		}
	}
	if v := args.GetAttr("policies"); !v.IsNull() {
		_, perr := policiesOf(v)
		errs = append(errs, perr...)
	}
	for _, n := range []string{"save_path", "save_path6"} {
		if v := args.GetAttr(n); !v.IsNull() && !isAbs(v.AsString()) {
			errs = append(errs, modules.ArgError{Arg: n, Msg: n + " must be an absolute path."})
		}
	}
	return errs
}

// policiesOf reads the policies map, checking chains and policies.
func policiesOf(v cty.Value) (map[string]string, []modules.ArgError) {
	out := map[string]string{}
	if v.IsNull() {
		return out, nil
	}
	var errs []modules.ArgError
	for it := v.ElementIterator(); it.Next(); {
		k, p := it.Element()
		chain := k.AsString()
		if !slices.Contains(filterChains, chain) {
			msg := fmt.Sprintf("%q is not a built-in chain of the filter table; expected one of: %s.", chain, strings.Join(filterChains, ", "))
			if s := modules.Suggest(strings.ToUpper(chain), filterChains); s != "" {
				msg += fmt.Sprintf(" Did you mean %q?", s)
			}
			errs = append(errs, modules.ArgError{Arg: "policies", Msg: msg})
			continue
		}
		if p.IsNull() || (p.AsString() != "ACCEPT" && p.AsString() != "DROP") {
			got := "null"
			if !p.IsNull() {
				got = fmt.Sprintf("%q", p.AsString())
			}
			errs = append(errs, modules.ArgError{Arg: "policies", Msg: fmt.Sprintf("policy %s for %s is not valid; expected \"ACCEPT\" or \"DROP\".", got, chain)})
			continue
		}
		out[chain] = p.AsString()
	}
	return out, errs
}
