package network

import (
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/zclconf/go-cty/cty"

	"github.com/runbook/runbook/modules"
	"github.com/runbook/runbook/modules/host"
	"github.com/runbook/runbook/modules/txn"
)

// Bond manages a Linux bonding interface, its slaves and its persistent configuration.
type Bond struct {
	// root is the filesystem root (tests use a directory); "" means "/".
	root host.Root
	// open makes the netlink handle; nil means the real one.
	open opener
	// session locates the SSH session for the management-path guard; nil: the real one.
	session sessionFinder
	// txn keeps the transactions; nil: the helper's (txn.go).
	txn *txn.Manager
}

var (
	_ modules.Runner[bondArgs]    = Bond{}
	_ modules.Validator[bondArgs] = Bond{}
)

// bondArgs are the bond module's arguments. The whole numbers are float64 so that a
// fraction or a negative number gets the module's own message.
type bondArgs struct {
	Name           string   `cty:"name"`
	Mode           string   `cty:"mode"`
	Slaves         []string `cty:"slaves"`
	Miimon         *float64 `cty:"miimon"`
	LACPRate       *string  `cty:"lacp_rate"`
	XmitHashPolicy *string  `cty:"xmit_hash_policy"`
	ADSelect       *string  `cty:"ad_select"`
	MinLinks       *float64 `cty:"min_links"`
	Primary        *string  `cty:"primary"`
	MTU            *string  `cty:"mtu"`
	Addresses      []string `cty:"addresses"`
	Backend        string   `cty:"backend"`
	Persist        bool     `cty:"persist"`
	Runtime        bool     `cty:"runtime"`
	// OnManagementPath is "refuse" or "allow" (guard.go).
	OnManagementPath string `cty:"on_management_path"`
	// ConfirmTimeout is the transaction's time to be confirmed (txn.go); nil: the run's.
	ConfirmTimeout *string `cty:"confirm_timeout"`
}

// bondResult is what a bond run registers.
type bondResult struct {
	Backend         string    `cty:"backend"`
	RuntimeDrift    []string  `cty:"runtime_drift"`
	PersistentDrift []string  `cty:"persistent_drift"`
	Files           []string  `cty:"files"`
	Mode            string    `cty:"mode"`
	Slaves          []string  `cty:"slaves"`
	MTU             *int      `cty:"mtu"`
	LACPOK          bool      `cty:"lacp_ok"`
	LACP            cty.Value `cty:"lacp"`
}

func (Bond) Info() modules.Info {
	return modules.Info{
		Name:    "bond",
		Family:  "network",
		Summary: "A bonded interface (802.3ad LACP and the other kernel modes): its slaves, options and MTU, running and persistent.",
		Description: `Makes NAME a bond of the listed slaves with the given options, in the running kernel (over
netlink) and in the persistent configuration of the host's network backend, and reports the two apart:
runtime_drift and persistent_drift list what differs in each.

Runtime: the bond is created if missing; options the kernel takes only while the bond is down (mode,
lacp_rate, ad_select) are changed with the bond down, and a mode change first releases the slaves (the
kernel refuses it otherwise); a slave is set down before it is enslaved, as the kernel wants, and taken
from another bond if it is in one; slaves not listed are released. mtu is set on the bond, which gives
it to its slaves, and any slave that still differs is set itself. The bond and its slaves are brought
up. Listed addresses are added; others are left alone.

Options are compared by value, never by text: mode = 4 is mode = "802.3ad", lacp_rate = 1 is "fast",
and an option left unset is not managed. An MTU of "auto" leaves the running MTU alone and removes
the MTU from the persistent configuration; a file without an MTU is in sync with 1500.

Persistent: NetworkManager gets a keyfile for the bond and one per slave (an existing profile bound to
a slave is made its port rather than a second one added) and is told to load them; network-scripts
gets ifcfg-BOND with BONDING_OPTS and MASTER/SLAVE in each slave's ifcfg; systemd-networkd gets a
.netdev and a .network for the bond and a .network per slave; ifupdown gets a stanza with bond-slaves
and bond-* options. Existing files are edited in place, keeping what runbook does not manage. A new
bond configuration without addresses carries no IP configuration at all.

The negotiated 802.3ad state is registered, not enforced: per slave its aggregator, its partner's
MAC and both sides' port states (from /sys/class/net/*/bonding* and /proc/net/bonding), and lacp_ok
when every slave is in one aggregator with a partner. A bond whose LACP is not ok is reported with a
warning, since only the switch side can fix it.`,
		Schema: modules.Schema{
			Args: append([]modules.Arg{
				{Name: "name", Type: cty.String, Required: true, Pattern: ifNamePattern, PatternHelp: ifNameHelp, Doc: `The bond's interface name, e.g. "bond0".`},
				{Name: "mode", Type: cty.String, Required: true,
					Doc: `Bonding mode by name or number: "balance-rr" (0), "active-backup" (1), "balance-xor" (2), "broadcast" (3), "802.3ad" (4, LACP), "balance-tlb" (5), "balance-alb" (6).`},
				{Name: "slaves", Type: cty.List(cty.String), Required: true, Doc: "The interfaces to enslave, e.g. [\"ens1f0\", \"ens1f1\"]."},
				{Name: "miimon", Type: cty.Number, Doc: "MII link monitoring interval in milliseconds (100 is usual; 0 turns it off)."},
				{Name: "lacp_rate", Type: cty.String, Doc: optDoc("lacp_rate", `how often the partner should send LACPDUs, "slow" (0, every 30 s) or "fast" (1, every second).`)},
				{Name: "xmit_hash_policy", Type: cty.String,
					Doc: optDoc("xmit_hash_policy", `how flows are spread over slaves: "layer2" (0), "layer3+4" (1), "layer2+3" (2), "encap2+3" (3), "encap3+4" (4), "vlan+srcmac" (5).`)},
				{Name: "ad_select", Type: cty.String, Doc: optDoc("ad_select", `aggregator selection, "stable" (0), "bandwidth" (1) or "count" (2).`)},
				{Name: "min_links", Type: cty.Number, Doc: "Slaves that must be up before the bond reports carrier."},
				{Name: "primary", Type: cty.String, Doc: optDoc("primary", "the slave preferred as the active one; it must be listed in slaves.")},
				mtuArg(`MTU of the bond and its slaves, e.g. 9000; "auto" leaves the running MTU alone and keeps it out of the persistent configuration. Unset: not managed.`),
				{Name: "addresses", Type: cty.List(cty.String), Doc: `Addresses with prefix length for the bond, e.g. ["192.0.2.10/24"]. Added at runtime; the persistent configuration gets exactly these (static). Unset: not managed.`},
			}, append(persistArgs(), guardArg(), confirmArg())...),
		},
		Returns: []modules.Field{
			{Name: "backend", Type: cty.String, Doc: `The backend whose files were compared ("none" when not persisted).`},
			{Name: "runtime_drift", Type: cty.List(cty.String), Doc: "What differed in the running kernel (empty when in sync)."},
			{Name: "persistent_drift", Type: cty.List(cty.String), Doc: "What differed in the persistent configuration."},
			{Name: "files", Type: cty.List(cty.String), Doc: "The files written (or that check mode would write)."},
			{Name: "mode", Type: cty.String, Doc: `The running mode ("" without the bond).`},
			{Name: "slaves", Type: cty.List(cty.String), Doc: "The running slaves."},
			{Name: "mtu", Type: cty.Number, Doc: "The bond's running MTU (null without the bond)."},
			{Name: "lacp_ok", Type: cty.Bool, Doc: "802.3ad: every slave is in one aggregator and has a partner (a non-zero partner MAC)."},
			{Name: "lacp", Type: cty.DynamicPseudoType, Doc: `The negotiated state: mode, active_aggregator_id, partner_mac, and slaves by name, each with aggregator_id, partner_mac, actor_oper_state and partner_oper_state (numbers) with their flags (activity, short_timeout, aggregation, synchronization, collecting, distributing, defaulted, expired), mii_status and in_active_aggregator. null without the bond.`},
		},
		Examples: []modules.Example{
			{Title: "An LACP bond of two 10G ports with jumbo frames for guest traffic", HCL: `task "data bond" {
  bond {
    name             = "bond0"
    mode             = "802.3ad"
    slaves           = ["ens1f0", "ens1f1"]
    miimon           = 100
    lacp_rate        = "fast"
    xmit_hash_policy = "layer3+4"
    mtu              = 9100
  }
}`},
			{Title: "An active-backup bond with an address, written for systemd-networkd", HCL: `task "mgmt bond" {
  bond {
    name      = "bond1"
    mode      = "active-backup"
    slaves    = ["eno1", "eno2"]
    primary   = "eno1"
    miimon    = 100
    addresses = ["192.0.2.10/24"]
    backend   = "systemd-networkd"
  }
}`},
		},
	}
}

// bondSpec is a bond task's arguments, checked and normalised.
type bondSpec struct {
	name        string
	opts        map[string]string // managed options, canonical values
	slaves      []string
	mtu         mtuSpec
	addrs       []string
	manageAddrs bool
	backend     string
	persist     bool
	runtime     bool
}

// wholeArg checks a whole, non-negative number argument; "" when it is not given.
func wholeArg(name string, f *float64) (string, *modules.ArgError) {
	if f == nil {
		return "", nil
	}
	if *f != math.Trunc(*f) || *f < 0 || *f >= 1<<31 {
		return "", &modules.ArgError{Arg: name, Msg: fmt.Sprintf("%s must be a whole number of 0 or more, not %s", name, numText(*f))}
	}
	return strconv.FormatInt(int64(*f), 10), nil
}

func parseBond(args bondArgs) (*bondSpec, []modules.ArgError) {
	var errs []modules.ArgError
	s := &bondSpec{name: args.Name, opts: map[string]string{}, backend: args.Backend, persist: args.Persist, runtime: args.Runtime}
	if !validIfName(s.name) {
		errs = append(errs, modules.ArgError{Arg: "name", Msg: fmt.Sprintf("%q is not %s", s.name, ifNameHelp)})
	}
	named := []struct {
		name  string
		value *string
	}{{"mode", &args.Mode}, {"lacp_rate", args.LACPRate}, {"xmit_hash_policy", args.XmitHashPolicy}, {"ad_select", args.ADSelect}}
	for _, o := range named {
		if o.value == nil || *o.value == "" {
			continue
		}
		nv, err := normBondOption(o.name, *o.value)
		if err != nil {
			errs = append(errs, modules.ArgError{Arg: o.name, Msg: err.Error()})
			continue
		}
		s.opts[o.name] = nv
	}
	numbers := []struct {
		name  string
		value *float64
	}{{"miimon", args.Miimon}, {"min_links", args.MinLinks}}
	for _, o := range numbers {
		v, e := wholeArg(o.name, o.value)
		if e != nil {
			errs = append(errs, *e)
		} else if v != "" {
			s.opts[o.name] = v
		}
	}
	primary := deref(args.Primary)
	mode := s.opts["mode"]
	if mode != "" {
		for _, o := range bondOptions {
			given := s.opts[o.name] != "" || (o.name == "primary" && primary != "")
			if given && !o.allowedIn(mode) {
				errs = append(errs, modules.ArgError{Arg: o.name, Msg: fmt.Sprintf("%s applies only to %s, not to mode %q", o.name, o.modesText(), mode)})
			}
		}
	}
	seen := map[string]bool{}
	for _, sl := range args.Slaves {
		switch {
		case !validIfName(sl):
			errs = append(errs, modules.ArgError{Arg: "slaves", Msg: fmt.Sprintf("%q is not %s", sl, ifNameHelp)})
		case sl == s.name:
			errs = append(errs, modules.ArgError{Arg: "slaves", Msg: "a bond cannot be its own slave"})
		case seen[sl]:
			errs = append(errs, modules.ArgError{Arg: "slaves", Msg: fmt.Sprintf("%s is listed twice", sl)})
		}
		seen[sl] = true
		s.slaves = append(s.slaves, sl)
	}
	if primary != "" {
		if !seen[primary] {
			errs = append(errs, modules.ArgError{Arg: "primary", Msg: fmt.Sprintf("primary %q is not one of the slaves (%s)", primary, strings.Join(s.slaves, ", "))})
		}
		s.opts["primary"] = primary
	}
	m, err := parseMTU(deref(args.MTU))
	if err != nil {
		errs = append(errs, modules.ArgError{Arg: "mtu", Msg: err.Error()})
	}
	s.mtu = m
	if args.Addresses != nil {
		s.manageAddrs = true
		addrs, aerrs := canonAddrs("addresses", args.Addresses)
		s.addrs, errs = addrs, append(errs, aerrs...)
	}
	if !s.persist {
		s.backend = backendNone
	}
	if !s.runtime && s.backend == backendNone {
		errs = append(errs, modules.ArgError{Msg: "runtime = false with nothing persisted leaves nothing to manage"})
	}
	errs = append(errs, confirmErrs(args.ConfirmTimeout)...)
	return s, errs
}

// Validate checks everything that does not depend on the host.
func (Bond) Validate(args bondArgs) []modules.ArgError {
	_, errs := parseBond(args)
	return errs
}

// wants is what the persistent configuration should say: the bond, then each slave.
func (s *bondSpec) wants() []ifWant {
	up := true
	out := []ifWant{{Name: s.name, Kind: kindBond, ManageMaster: true, MTU: s.mtu, Up: &up,
		Addrs: s.addrs, ManageAddrs: s.manageAddrs, Bond: s.opts, Slaves: s.slaves}}
	for _, sl := range s.slaves {
		out = append(out, ifWant{Name: sl, Kind: kindEthernet, ManageMaster: true, Master: s.name, MTU: s.mtu, Up: &up})
	}
	return out
}
