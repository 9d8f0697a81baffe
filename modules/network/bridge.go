package network

import (
	"fmt"

	"github.com/zclconf/go-cty/cty"

	"github.com/runbook/runbook/modules"
	"github.com/runbook/runbook/modules/host"
	"github.com/runbook/runbook/modules/txn"
)

func init() {
	modules.Register[bridgeArgs, bridgeResult](Bridge{})
}

// Bridge manages a Linux bridge, its ports and its persistent configuration, the way Bond
// manages a bond.
type Bridge struct {
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
	_ modules.Runner[bridgeArgs]    = Bridge{}
	_ modules.Validator[bridgeArgs] = Bridge{}
)

const (
	statePresent = "present"
	stateAbsent  = "absent"
)

// bridgeArgs are the bridge module's arguments.
type bridgeArgs struct {
	Name           string   `cty:"name"`
	State          string   `cty:"state"`
	Ports          []string `cty:"ports"`
	ExclusivePorts bool     `cty:"exclusive_ports"`
	STP            bool     `cty:"stp"`
	VLANFiltering  bool     `cty:"vlan_filtering"`
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

// bridgeResult is what a bridge run registers.
type bridgeResult struct {
	Backend         string   `cty:"backend"`
	RuntimeDrift    []string `cty:"runtime_drift"`
	PersistentDrift []string `cty:"persistent_drift"`
	Files           []string `cty:"files"`
	Exists          bool     `cty:"exists"`
	Ports           []string `cty:"ports"`
	STP             bool     `cty:"stp"`
	VLANFiltering   bool     `cty:"vlan_filtering"`
	MTU             *int     `cty:"mtu"`
}

func (Bridge) Info() modules.Info {
	return modules.Info{
		Name:    "bridge",
		Family:  "network",
		Summary: "A Linux bridge: its ports, STP, VLAN filtering and MTU, running and persistent.",
		Description: `Makes NAME a Linux bridge with the listed ports, in the running kernel (over netlink) and in
the persistent configuration of the host's network backend, and reports the two apart: runtime_drift
and persistent_drift list what differs in each. state = "absent" deletes the bridge (the kernel
releases its ports) and removes its configuration.

Ports: the listed interfaces are made ports of the bridge (taken from another bond or bridge if they
are in one) and brought up. A running port that is not listed is left in the bridge unless
exclusive_ports = true releases it: guests' tap devices (libvirt's vnetN) join a bridge at runtime
and must not be thrown out by the next run. The persistent configuration lists exactly the listed
ports (taps are never in it): a port the files name and the task does not is taken out of the
files.

stp and vlan_filtering are managed always (false when not given: no STP, which a bridge with a
single uplink such as a bond does not need, and not VLAN-aware). With vlan_filtering every port gets the kernel's
default VLAN (1, untagged, pvid); per-port VLAN lists are not managed by this module, and a kernel
built without CONFIG_BRIDGE_VLAN_FILTERING fails the apply, saying so. mtu is set on the listed
ports and then on the bridge: a bridge whose MTU was never set takes the smallest of its ports'
(a tap that joins with a smaller one lowers it; libvirt gives taps the bridge's), one that was set
keeps it; "auto" leaves the running MTU alone and removes it from the persistent configuration.
Listed addresses are added at runtime; the persistent configuration gets exactly these.

Persistent: ifupdown gets a stanza with bridge_ports, bridge_stp (and bridge_vlan_aware yes),
which only Debian's bridge-utils acts on (without its hook the task warns; it also warns when
ifup would reach a bond port's auto line after the bridge's, as the hook skips a port not yet
made); network-scripts
ifcfg-NAME with TYPE=Bridge, STP and BRIDGING_OPTS=vlan_filtering=1, and BRIDGE=NAME in each
port's ifcfg; systemd-networkd a .netdev with Kind=bridge and a [Bridge]
section, a .network for the bridge and Bridge=NAME in each port's .network; NetworkManager a keyfile
of type bridge ([bridge] stp, vlan-filtering) and a port profile per port (slave-type bridge), or
the port's existing profile made a port. A port that is a bond (a bridge on bond0, how a guest gets the bond) keeps
its bond configuration: its bridge membership is written and its own addressing removed (a port
has none); a bond task run again leaves its place in the bridge alone.

The management-path guard refuses, unless on_management_path = "allow", to enslave an interface
that carries this SSH session (its address would stop working: an address on a bridge port is not
used), to release one, to delete a bridge that carries it, to change its MTU, and to turn STP or
VLAN filtering on or off on a bridge that carries it (STP blocks forwarding while the ports
listen and learn; VLAN filtering drops frames of VLANs the ports are not members of). A
running port the task no longer lists counts as released when the NetworkManager backend
removes its port profile: NetworkManager takes it out of the bridge at once.`,
		Schema: modules.Schema{
			Args: append([]modules.Arg{
				{Name: "name", Type: cty.String, Required: true, Pattern: ifNamePattern, PatternHelp: ifNameHelp, Doc: `The bridge's interface name, e.g. "br0".`},
				{Name: "state", Type: cty.String, Default: cty.StringVal(statePresent), OneOf: []string{statePresent, stateAbsent},
					Doc: `"present" makes the bridge as described; "absent" deletes it and its persistent configuration (its ports are released).`},
				{Name: "ports", Type: cty.List(cty.String), Doc: `The interfaces to make ports of the bridge, e.g. ["bond0"]. Unset or empty: a bridge without ports (in the files; at runtime ports are released only with exclusive_ports).`},
				{Name: "exclusive_ports", Type: cty.Bool, Default: cty.False, Doc: "Release running ports that are not listed (guests' taps among them)."},
				{Name: "stp", Type: cty.Bool, Default: cty.False, Doc: "Spanning tree protocol on the bridge."},
				{Name: "vlan_filtering", Type: cty.Bool, Default: cty.False, Doc: "A VLAN-aware bridge (IFLA_BR_VLAN_FILTERING); ports get the default VLAN 1 untagged."},
				mtuArg(`MTU of the bridge and its listed ports, e.g. 9100; "auto" leaves the running MTU alone and keeps it out of the persistent configuration. Unset: not managed.`),
				{Name: "addresses", Type: cty.List(cty.String), Doc: `Addresses with prefix length for the bridge, e.g. ["192.0.2.10/24"]. Added at runtime; the persistent configuration gets exactly these (static). Unset: not managed.`},
			}, append(persistArgs(), guardArg(), confirmArg())...),
		},
		Returns: []modules.Field{
			{Name: "backend", Type: cty.String, Doc: `The backend whose files were compared ("none" when not persisted).`},
			{Name: "runtime_drift", Type: cty.List(cty.String), Doc: "What differed in the running kernel (empty when in sync)."},
			{Name: "persistent_drift", Type: cty.List(cty.String), Doc: "What differed in the persistent configuration."},
			{Name: "files", Type: cty.List(cty.String), Doc: "The files written (or that check mode would write)."},
			{Name: "exists", Type: cty.Bool, Doc: "The bridge runs (after apply; as it is, in check mode)."},
			{Name: "ports", Type: cty.List(cty.String), Doc: "The running ports, taps included."},
			{Name: "stp", Type: cty.Bool, Doc: "STP is on."},
			{Name: "vlan_filtering", Type: cty.Bool, Doc: "VLAN filtering is on."},
			{Name: "mtu", Type: cty.Number, Doc: "The bridge's running MTU (null without the bridge)."},
		},
		Examples: []modules.Example{
			{Title: "A bridge on the LACP bond for guests' NICs, jumbo frames, no STP", HCL: `task "guest bridge" {
  bridge {
    name  = "br0"
    ports = ["bond0"]
    mtu   = 9100
  }
}`},
			{Title: "A VLAN-aware bridge with an address, written for systemd-networkd", HCL: `task "vlan bridge" {
  bridge {
    name           = "br1"
    ports          = ["ens2f0", "ens2f1"]
    stp            = true
    vlan_filtering = true
    addresses      = ["192.0.2.20/24"]
    backend        = "systemd-networkd"
  }
}`},
			{Title: "Remove a bridge and its configuration", HCL: `task "no test bridge" {
  bridge {
    name  = "brtest"
    state = "absent"
  }
}`},
		},
	}
}

// bridgeSpec is a bridge task's arguments, checked and normalised.
type bridgeSpec struct {
	name        string
	absent      bool
	ports       []string
	exclusive   bool
	opts        bridgeOpts
	mtu         mtuSpec
	addrs       []string
	manageAddrs bool
	backend     string
	persist     bool
	runtime     bool
}

func parseBridge(args bridgeArgs) (*bridgeSpec, []modules.ArgError) {
	var errs []modules.ArgError
	s := &bridgeSpec{name: args.Name, absent: args.State == stateAbsent, exclusive: args.ExclusivePorts,
		opts: bridgeOpts{STP: args.STP, VLANFiltering: args.VLANFiltering}, backend: args.Backend, persist: args.Persist, runtime: args.Runtime}
	if !validIfName(s.name) {
		errs = append(errs, modules.ArgError{Arg: "name", Msg: fmt.Sprintf("%q is not %s", s.name, ifNameHelp)})
	}
	switch args.State {
	case statePresent, stateAbsent, "":
	default:
		errs = append(errs, modules.ArgError{Arg: "state", Msg: fmt.Sprintf(`state must be "present" or "absent", not %q`, args.State)})
	}
	seen := map[string]bool{}
	for _, p := range args.Ports {
		switch {
		case !validIfName(p):
			errs = append(errs, modules.ArgError{Arg: "ports", Msg: fmt.Sprintf("%q is not %s", p, ifNameHelp)})
		case p == s.name:
			errs = append(errs, modules.ArgError{Arg: "ports", Msg: "a bridge cannot be its own port"})
		case seen[p]:
			errs = append(errs, modules.ArgError{Arg: "ports", Msg: fmt.Sprintf("%s is listed twice", p)})
		}
		seen[p] = true
		s.ports = append(s.ports, p)
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
	if s.absent {
		// What an absent bridge would be made of is not for the task to say.
		for _, a := range []struct {
			name  string
			given bool
		}{{"ports", len(args.Ports) > 0}, {"stp", args.STP}, {"vlan_filtering", args.VLANFiltering}, {"mtu", args.MTU != nil},
			{"addresses", args.Addresses != nil}, {"exclusive_ports", args.ExclusivePorts}} {
			if a.given {
				errs = append(errs, modules.ArgError{Arg: a.name, Msg: fmt.Sprintf(`%s does not go with state = "absent"`, a.name)})
			}
		}
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
func (Bridge) Validate(args bridgeArgs) []modules.ArgError {
	_, errs := parseBridge(args)
	return errs
}

// wants is what the persistent configuration should say: the bridge, then each port (no
// bond's slave, a port of this bridge). An absent bridge is one want that removes it (its
// ports leave it with it).
func (s *bridgeSpec) wants() []ifWant {
	if s.absent {
		return []ifWant{{Name: s.name, Kind: kindBridge, Absent: true, BridgeOpts: &bridgeOpts{}}}
	}
	up := true
	opts := s.opts
	out := []ifWant{{Name: s.name, Kind: kindBridge, ManageMaster: true, ManageBridge: true, MTU: s.mtu, Up: &up,
		Addrs: s.addrs, ManageAddrs: s.manageAddrs, BridgeOpts: &opts, Slaves: s.ports}}
	for _, p := range s.ports {
		// A port is no bond's slave (the kernel takes it out of one to make it a port).
		out = append(out, ifWant{Name: p, ManageMaster: true, ManageBridge: true, Bridge: s.name, MTU: s.mtu, Up: &up})
	}
	return out
}
