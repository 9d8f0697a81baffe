package network

import (
	"context"
	"fmt"
	"slices"

	"github.com/vishvananda/netlink"
	"github.com/zclconf/go-cty/cty"

	"github.com/runbook/runbook/modules"
	"github.com/runbook/runbook/modules/host"
	"github.com/runbook/runbook/modules/txn"
)

// Interface manages one interface's MTU, state and addresses, and 802.1Q VLAN links.
type Interface struct {
	root    host.Root
	open    opener
	session sessionFinder // nil: the real session (guard.go)
	txn     *txn.Manager  // nil: the helper's transactions (txn.go)
}

var (
	_ modules.Runner[ifaceArgs]    = Interface{}
	_ modules.Validator[ifaceArgs] = Interface{}
)

// ifaceArgs are the interface module's arguments.
type ifaceArgs struct {
	Name      string    `cty:"name"`
	MTU       *string   `cty:"mtu"`
	State     *string   `cty:"state"`
	Addresses []string  `cty:"addresses"`
	Exclusive bool      `cty:"exclusive"`
	VLAN      *vlanArgs `cty:"vlan"`
	Backend   string    `cty:"backend"`
	Persist   bool      `cty:"persist"`
	Runtime   bool      `cty:"runtime"`
	// OnManagementPath is "refuse" or "allow" (guard.go).
	OnManagementPath string `cty:"on_management_path"`
	// ConfirmTimeout is the transaction's time to be confirmed (txn.go); nil: the run's.
	ConfirmTimeout *string `cty:"confirm_timeout"`
}

// vlanArgs is the vlan argument. Its members are pointers so that a null one gets the
// module's message, and id a float64 so that a fraction does.
type vlanArgs struct {
	Parent *string  `cty:"parent"`
	ID     *float64 `cty:"id"`
}

// ifaceResult is what an interface run registers.
type ifaceResult struct {
	Backend         string   `cty:"backend"`
	RuntimeDrift    []string `cty:"runtime_drift"`
	PersistentDrift []string `cty:"persistent_drift"`
	Files           []string `cty:"files"`
	MTU             *int     `cty:"mtu"`
	State           string   `cty:"state"`
	Kind            string   `cty:"kind"`
	Addresses       []string `cty:"addresses"`
}

var vlanObject = cty.Object(map[string]cty.Type{"parent": cty.String, "id": cty.Number})

func (Interface) Info() modules.Info {
	return modules.Info{
		Name:    "interface",
		Family:  "network",
		Summary: "An interface's MTU, up/down state and addresses; 802.1Q VLAN interfaces on a parent link.",
		Description: `Brings the named interface to the given MTU, state and addresses in the running kernel (netlink)
and in the persistent configuration of the host's network backend, reporting runtime_drift and
persistent_drift apart. Arguments left unset are not managed.

With vlan = { parent = "bond0", id = 100 }, NAME is an 802.1Q VLAN link on parent: it is created when
missing and made again when it exists with another parent or id (its addresses come back from the
task; others do not). Without vlan the interface must exist.

addresses are added when missing; with exclusive = true the interface's other addresses are removed
(IPv6 link-local addresses, which the kernel makes, are never touched). The persistent configuration
gets exactly the listed addresses as static ones. state = "down" also keeps the interface down at
boot (autoconnect off, ONBOOT=no, ActivationPolicy=down, no auto line). An MTU of "auto" leaves the
running MTU alone and removes the MTU from the persistent configuration; a file without an MTU is in
sync with 1500 (except for a VLAN, which takes its parent's MTU).

An existing profile or stanza for the interface is edited in place, keeping what runbook does not
manage (DHCP stays DHCP unless addresses are given). A new one without addresses carries no IP
configuration. ifupdown names VLANs PARENT.ID or vlanID; other names are refused there.`,
		Schema: modules.Schema{
			Args: append([]modules.Arg{
				{Name: "name", Type: cty.String, Required: true, Pattern: ifNamePattern, PatternHelp: ifNameHelp, Doc: `The interface, e.g. "ens1f0" or "bond0.100".`},
				mtuArg(`MTU in bytes, e.g. 9000; "auto" leaves the running MTU alone and keeps it out of the persistent configuration. Unset: not managed.`),
				{Name: "state", Type: cty.String, OneOf: []string{"up", "down"}, Doc: `Administrative state, "up" or "down" (also at boot). Unset: not managed.`},
				{Name: "addresses", Type: cty.List(cty.String), Doc: `Addresses with prefix length, e.g. ["192.0.2.10/24", "2001:db8::10/64"]. Unset: not managed.`},
				{Name: "exclusive", Type: cty.Bool, Default: cty.False, Doc: "Remove the interface's other addresses (never IPv6 link-local ones). Needs addresses; an empty list removes them all."},
				{Name: "vlan", Type: vlanObject, Doc: `Make NAME an 802.1Q VLAN link: { parent = "bond0", id = 100 } (id 1-4094).`},
			}, append(persistArgs(), guardArg(), confirmArg())...),
			RequiredWith: map[string][]string{"exclusive": {"addresses"}},
		},
		Returns: []modules.Field{
			{Name: "backend", Type: cty.String, Doc: `The backend whose files were compared ("none" when not persisted).`},
			{Name: "runtime_drift", Type: cty.List(cty.String), Doc: "What differed in the running kernel."},
			{Name: "persistent_drift", Type: cty.List(cty.String), Doc: "What differed in the persistent configuration."},
			{Name: "files", Type: cty.List(cty.String), Doc: "The files written (or that check mode would write)."},
			{Name: "mtu", Type: cty.Number, Doc: "The running MTU (null when the interface does not exist)."},
			{Name: "state", Type: cty.String, Doc: `The running administrative state, "up" or "down" ("" when absent).`},
			{Name: "kind", Type: cty.String, Doc: `The link's kind as netlink names it ("device" for a NIC, "vlan", "bond", "veth", ...).`},
			{Name: "addresses", Type: cty.List(cty.String), Doc: "The running addresses, link-local ones left out."},
		},
		Examples: []modules.Example{
			{Title: "Jumbo frames on a NIC", HCL: `task "jumbo ens1f0" {
  interface {
    name = "ens1f0"
    mtu  = 9000
  }
}`},
			{Title: "A tagged VLAN on the data bond with one address and no other", HCL: `task "vlan 100" {
  interface {
    name      = "bond0.100"
    vlan      = { parent = "bond0", id = 100 }
    mtu       = 9000
    state     = "up"
    addresses = ["198.51.100.10/24"]
    exclusive = true
  }
}`},
			{Title: "Jumbo frames on the NIC this SSH session runs over, knowingly (the guard refuses it otherwise)", HCL: `task "jumbo eth0" {
  interface {
    name               = "eth0"
    mtu                = 9000
    on_management_path = "allow"
  }
}`},
		},
	}
}

// ifaceSpec is an interface task's arguments, checked and normalised.
type ifaceSpec struct {
	name        string
	mtu         mtuSpec
	state       string // "", "up", "down"
	addrs       []string
	manageAddrs bool
	exclusive   bool
	vlan        *vlanSpec
	backend     string
	persist     bool
	runtime     bool
}

func parseIface(args ifaceArgs) (*ifaceSpec, []modules.ArgError) {
	var errs []modules.ArgError
	s := &ifaceSpec{name: args.Name, state: deref(args.State), exclusive: args.Exclusive,
		backend: args.Backend, persist: args.Persist, runtime: args.Runtime}
	if !validIfName(s.name) {
		errs = append(errs, modules.ArgError{Arg: "name", Msg: fmt.Sprintf("%q is not %s", s.name, ifNameHelp)})
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
	} else if s.exclusive {
		errs = append(errs, modules.ArgError{Arg: "exclusive", Msg: "exclusive needs addresses (an empty list removes every address)"})
	}
	if v := args.VLAN; v != nil {
		s.vlan = &vlanSpec{}
		if v.Parent == nil || !validIfName(*v.Parent) {
			errs = append(errs, modules.ArgError{Arg: "vlan", Msg: "vlan.parent must be " + ifNameHelp})
		} else {
			s.vlan.Parent = *v.Parent
		}
		if v.ID == nil {
			errs = append(errs, modules.ArgError{Arg: "vlan", Msg: "vlan.id is required"})
		} else {
			n, ok := wholeNumber(*v.ID, 1, 4094)
			if !ok {
				errs = append(errs, modules.ArgError{Arg: "vlan", Msg: fmt.Sprintf("vlan.id must be a whole number from 1 to 4094, not %s", numText(*v.ID))})
			}
			s.vlan.ID = n
		}
		if s.vlan.Parent == s.name && s.name != "" {
			errs = append(errs, modules.ArgError{Arg: "vlan", Msg: "a VLAN cannot be its own parent"})
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
func (Interface) Validate(args ifaceArgs) []modules.ArgError {
	_, errs := parseIface(args)
	return errs
}

func (s *ifaceSpec) want() ifWant {
	w := ifWant{Name: s.name, MTU: s.mtu, Addrs: s.addrs, ManageAddrs: s.manageAddrs, VLAN: s.vlan}
	if s.vlan != nil {
		w.Kind = kindVLAN
	}
	if s.state != "" {
		up := s.state == "up"
		w.Up = &up
	}
	return w
}

// ifaceRuntimeDrift lists what differs in the running link, and the changes among those
// that the management-path guard knows (guard.go). parentOK says whether a wanted VLAN's
// parent exists.
func ifaceRuntimeDrift(s *ifaceSpec, l *kernelLink, parentOK bool) ([]string, []pathChange, []string, error) {
	var out, warns []string
	var touches []pathChange
	add := func(format string, a ...any) { out = append(out, fmt.Sprintf(format, a...)) }
	touch := func(kind, format string, a ...any) {
		add(format, a...)
		touches = append(touches, pathChange{s.name, kind, out[len(out)-1]})
	}
	if l == nil {
		if s.vlan == nil {
			return nil, nil, nil, fmt.Errorf("no interface %s (give vlan to create a VLAN link)", s.name)
		}
		if !parentOK {
			warns = append(warns, fmt.Sprintf("the VLAN's parent %s does not exist (yet)", s.vlan.Parent))
		}
		add("%s: create VLAN %d on %s", s.name, s.vlan.ID, s.vlan.Parent)
		if mtu, ok := s.mtu.fixed(); ok {
			add("%s: mtu %d", s.name, mtu)
		}
		for _, a := range s.addrs {
			add("%s: add address %s", s.name, a)
		}
		if s.state == "up" {
			add("%s: down → up", s.name)
		}
		return out, nil, warns, nil
	}
	if s.vlan != nil {
		if l.VLAN == nil {
			return nil, nil, nil, fmt.Errorf("%s exists and is a %s link, not a VLAN", s.name, l.Type)
		}
		if *l.VLAN != *s.vlan {
			touch(changeRemove, "%s: VLAN %d on %s → VLAN %d on %s (made again)", s.name, l.VLAN.ID, l.VLAN.Parent, s.vlan.ID, s.vlan.Parent)
		}
	}
	if s.state == "down" && l.Up {
		touch(changeDown, "%s: up → down", s.name)
	}
	if !s.mtu.matchesRuntime(l.MTU) {
		touch(changeMTU, "%s: mtu %d → %d", s.name, l.MTU, s.mtu.n)
	}
	for _, a := range s.addrs {
		if !contains(l.Addrs, a) {
			add("%s: add address %s", s.name, a)
		}
	}
	if s.exclusive {
		for _, a := range l.Addrs {
			if !contains(s.addrs, a) {
				touch(changeAddress, "%s: remove address %s", s.name, a)
			}
		}
	}
	if s.state == "up" && !l.Up {
		add("%s: down → up", s.name)
	}
	return out, touches, warns, nil
}

// applyIface changes the running link: the VLAN first, down before anything else when
// going down, addresses added before others are removed (so the host is never left with
// none), up last.
func applyIface(ops linkOps, s *ifaceSpec, cur *kernelLink) error {
	if s.vlan != nil && (cur == nil || *cur.VLAN != *s.vlan) {
		parent, err := ops.LinkByName(s.vlan.Parent)
		if err != nil {
			return fmt.Errorf("VLAN parent %s: %w", s.vlan.Parent, err)
		}
		if cur != nil {
			if err := ops.LinkDel(cur.link); err != nil {
				return kernelErr("delete "+s.name+" to make it again", err)
			}
		}
		attrs := netlink.NewLinkAttrs()
		attrs.Name, attrs.ParentIndex = s.name, parent.Attrs().Index
		if err := ops.LinkAdd(&netlink.Vlan{LinkAttrs: attrs, VlanId: s.vlan.ID, VlanProtocol: netlink.VLAN_PROTOCOL_8021Q}); err != nil {
			return kernelErr(fmt.Sprintf("create VLAN %s (id %d on %s)", s.name, s.vlan.ID, s.vlan.Parent), err)
		}
	}
	l, err := ops.LinkByName(s.name)
	if err != nil {
		return fmt.Errorf("read link %s: %w", s.name, err)
	}
	up := l.Attrs().Flags&netFlagUp != 0
	if s.state == "down" && up {
		if err := ops.LinkSetDown(l); err != nil {
			return kernelErr("set "+s.name+" down", err)
		}
	}
	if mtu, ok := s.mtu.fixed(); ok && l.Attrs().MTU != mtu {
		if err := ops.LinkSetMTU(l, mtu); err != nil {
			return kernelErr(fmt.Sprintf("set %s mtu %d", s.name, mtu), err)
		}
	}
	if err := addAddrs(ops, l, s.addrs); err != nil {
		return err
	}
	if s.exclusive {
		have, err := ops.AddrList(l, familyAll)
		if err != nil {
			return fmt.Errorf("read addresses of %s: %w", s.name, err)
		}
		for _, a := range have {
			if c, ok := globalAddr(a); ok && !contains(s.addrs, c) {
				if err := ops.AddrDel(l, &a); err != nil {
					return kernelErr(fmt.Sprintf("remove address %s from %s", c, s.name), err)
				}
			}
		}
	}
	if s.state == "up" && !up {
		if err := ops.LinkSetUp(l); err != nil {
			return kernelErr("set "+s.name+" up", err)
		}
	}
	return nil
}

func (i Interface) opener() opener {
	if i.open != nil {
		return i.open
	}
	return openNetlink
}

// Run compares the running interface and its persistent configuration with the arguments
// and, when applying, changes what differs.
func (i Interface) Run(ctx context.Context, env *modules.Env, args ifaceArgs, apply bool) (*modules.Result, error) {
	tx, err := newTxn(env, i.txn, "interface", args.ConfirmTimeout)
	if err != nil {
		return nil, err
	}
	if !apply {
		tx = nil // check mode never arms anything
	}
	return tx.end(i.run(ctx, args, apply, tx))
}

func (i Interface) run(ctx context.Context, args ifaceArgs, apply bool, tx *netTxn) (*modules.Result, error) {
	s, errs := parseIface(args)
	if len(errs) > 0 {
		return nil, errs[0]
	}
	f := &fileTree{i.root}
	res := &modules.Result{}
	data := ifaceResult{Addresses: []string{}}
	var runtimeDrift []string
	var runtimeBefore, runtimeAfter string
	if s.runtime {
		ops, closeOps, err := i.opener()()
		if err != nil {
			return nil, err
		}
		defer closeOps()
		cur, _, err := readLink(ops, s.name)
		if err != nil {
			return nil, err
		}
		parentOK := true
		if s.vlan != nil {
			_, parentOK, err = readLink(ops, s.vlan.Parent)
			if err != nil {
				return nil, err
			}
		}
		var warns []string
		var touches []pathChange
		if runtimeDrift, touches, warns, err = ifaceRuntimeDrift(s, cur, parentOK); err != nil {
			return nil, err
		}
		res.Warnings = append(res.Warnings, warns...)
		if warns, err = guardChanges(ops, f, i.session, args.OnManagementPath, touches); err != nil {
			return nil, err
		}
		res.Warnings = append(res.Warnings, warns...)
		runtimeBefore = describeIface(s.name, cur)
		runtimeAfter = runtimeBefore
		if len(runtimeDrift) > 0 {
			runtimeAfter = describeIface(s.name, predictIface(s, cur))
			if apply {
				links := []string{s.name}
				if s.vlan != nil {
					links = append(links, s.vlan.Parent)
				}
				if err := tx.begin(ops, f, links); err != nil {
					return nil, err
				}
				if err := applyIface(ops, s, cur); err != nil {
					return nil, err
				}
				if cur, _, err = readLink(ops, s.name); err != nil {
					return nil, err
				}
				runtimeAfter = describeIface(s.name, cur)
			}
		}
		if cur != nil {
			state := "down"
			if cur.Up {
				state = "up"
			}
			addrs := orEmpty(slices.Clone(cur.Addrs))
			slices.Sort(addrs)
			mtu := cur.MTU
			data.MTU, data.State, data.Kind, data.Addresses = &mtu, state, cur.Type, addrs
		}
	}
	w := s.want()
	if w.Kind == "" && s.runtime {
		// A bond or VLAN keeps its kind in the files; the running link says which it is.
		if k := data.Kind; k == kindBond || k == kindVLAN {
			w.Kind = k
		}
	}
	p, err := runPersist(ctx, f, s.backend, []ifWant{w}, apply, tx)
	if err != nil {
		return nil, err
	}
	finish(res, apply, "interface "+s.name, runtimeDrift, runtimeBefore, runtimeAfter, p)
	data.Backend, data.RuntimeDrift, data.PersistentDrift, data.Files = p.backend, orEmpty(runtimeDrift), orEmpty(p.drift), orEmpty(p.files())
	res.Data = data
	return res, nil
}

func predictIface(s *ifaceSpec, cur *kernelLink) *kernelLink {
	l := &kernelLink{Name: s.name, Type: "vlan", MTU: defaultMTU}
	if cur != nil {
		c := *cur
		l = &c
		l.Addrs = slices.Clone(cur.Addrs)
	}
	if mtu, ok := s.mtu.fixed(); ok {
		l.MTU = mtu
	}
	if s.state != "" {
		l.Up = s.state == "up"
	}
	if s.exclusive {
		l.Addrs = nil
	}
	for _, a := range s.addrs {
		if !contains(l.Addrs, a) {
			l.Addrs = append(l.Addrs, a)
		}
	}
	if s.vlan != nil {
		v := *s.vlan
		l.VLAN = &v
	}
	return l
}

func describeIface(name string, l *kernelLink) string {
	return describeLinks([]string{name}, map[string]*kernelLink{name: l}, func(l *kernelLink) string {
		if l.VLAN != nil {
			return fmt.Sprintf("vlan %d on %s", l.VLAN.ID, l.VLAN.Parent)
		}
		return ""
	})
}
