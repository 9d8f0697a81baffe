package security

import (
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/zclconf/go-cty/cty"

	"github.com/runbook/runbook/modules"
	"github.com/runbook/runbook/modules/host"
)

// Built-in chains of the filter table, whose policies the firewall module sets.
var filterChains = []string{"INPUT", "FORWARD", "OUTPUT"}

// Wanted unit states, the values of firewalld and iptables_service.
const (
	unitStopped  = "stopped"
	unitDisabled = "disabled"
	unitMasked   = "masked"
)

// Firewall turns a host's firewall off: firewalld, the iptables rules and the services that
// restore them at boot.
type Firewall struct {
	// root is where the module finds "/" for /proc and the save directories; dirs, when
	// set, are the only places it looks for iptables and systemctl. Both are for tests.
	root host.Root
	dirs []string
}

// fwArgs are the firewall module's arguments. The parts left unset (nil, false) are left
// alone.
type fwArgs struct {
	Firewalld       *string           `cty:"firewalld"`
	IptablesFlush   bool              `cty:"iptables_flush"`
	Tables          []string          `cty:"tables"`
	Policies        map[string]string `cty:"policies"`
	Save            bool              `cty:"save"`
	SavePath        *string           `cty:"save_path"`
	SavePath6       *string           `cty:"save_path6"`
	IptablesService *string           `cty:"iptables_service"`
	IPv6            bool              `cty:"ipv6"`
}

// fwResult is what a firewall task registers. Every field is set (empty when the part was
// not asked about), as the module's documentation describes.
type fwResult struct {
	Backend       string            `cty:"backend"`
	Rules         string            `cty:"rules"`
	Rules6        string            `cty:"rules6"`
	Removed       map[string]int    `cty:"removed"`
	Removed6      map[string]int    `cty:"removed6"`
	ChainsRemoved map[string]int    `cty:"chains_removed"`
	Firewalld     string            `cty:"firewalld"`
	Units         map[string]string `cty:"units"`
	Saved         []string          `cty:"saved"`
}

var _ modules.Validator[fwArgs] = Firewall{}

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

Only the filter table is flushed unless tables names others, as the guide's "iptables -F" and
Ansible's iptables module (table: filter) do. On a libvirt host the nat and mangle tables hold
libvirt's rules for its guest networks (masquerading in LIBVIRT_PRT, checksum fixes), which
libvirt puts back whenever it restarts a network: flushing them would cut the guests' NAT and
leave a drift that every later check reports again. Name them in tables to flush them anyway.
libvirt's chains in the filter table (LIBVIRT_INP, LIBVIRT_FWO, ...) go with the flush, as they
do with "iptables -F".

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
					Doc: "Remove every rule and user chain from the tables (tables; unset: the filter table), zero the counters."},
				{Name: "tables", Type: cty.List(cty.String),
					Doc: `The tables to flush: any of "filter", "nat", "mangle", "raw", "security". Unset: the filter table only (as "iptables -F" does), so the nat and mangle rules of libvirt, Docker and the like stay. A table that does not exist is not created.`},
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

// Validate checks that the task asks for something and that the unit states (for values
// the controller could not check), tables, policies and paths are valid.
func (m Firewall) Validate(args fwArgs) []modules.ArgError {
	var errs []modules.ArgError
	if args.Firewalld == nil && !args.IptablesFlush && args.Policies == nil && !args.Save && args.IptablesService == nil {
		errs = append(errs, modules.ArgError{Msg: "The firewall module needs at least one of firewalld, iptables_flush, policies, save or iptables_service."})
	}
	if args.Tables != nil {
		if !args.IptablesFlush {
			errs = append(errs, modules.ArgError{Arg: "tables", Msg: "tables says what iptables_flush flushes; set iptables_flush = true."})
		}
		if len(args.Tables) == 0 {
			errs = append(errs, modules.ArgError{Arg: "tables", Msg: "tables is empty; leave it unset to flush the filter table only, or name the tables to flush."})
		}
		for _, t := range args.Tables {
			if !slices.Contains(knownTables, t) {
				msg := fmt.Sprintf("%q is not an iptables table; expected one of: %s.", t, strings.Join(knownTables, ", "))
				if s := modules.Suggest(t, knownTables); s != "" {
					msg += fmt.Sprintf(" Did you mean %q?", s)
				}
				errs = append(errs, modules.ArgError{Arg: "tables", Msg: msg})
			}
		}
	}
	errs = append(errs, checkPolicies(args.Policies)...)
	for _, p := range []struct {
		name string
		v    *string
	}{{"save_path", args.SavePath}, {"save_path6", args.SavePath6}} {
		if p.v != nil && !isAbs(*p.v) {
			errs = append(errs, modules.ArgError{Arg: p.name, Msg: p.name + " must be an absolute path."})
		}
	}
	return errs
}

// checkPolicies checks the chains and policies of the policies argument.
func checkPolicies(policies map[string]string) []modules.ArgError {
	var errs []modules.ArgError
	for _, chain := range slices.Sorted(maps.Keys(policies)) {
		if !slices.Contains(filterChains, chain) {
			msg := fmt.Sprintf("%q is not a built-in chain of the filter table; expected one of: %s.", chain, strings.Join(filterChains, ", "))
			if s := modules.Suggest(strings.ToUpper(chain), filterChains); s != "" {
				msg += fmt.Sprintf(" Did you mean %q?", s)
			}
			errs = append(errs, modules.ArgError{Arg: "policies", Msg: msg})
			continue
		}
		if p := policies[chain]; p != "ACCEPT" && p != "DROP" {
			errs = append(errs, modules.ArgError{Arg: "policies", Msg: fmt.Sprintf("policy %q for %s is not valid; expected \"ACCEPT\" or \"DROP\".", p, chain)})
		}
	}
	return errs
}
