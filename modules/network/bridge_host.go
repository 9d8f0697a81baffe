package network

import (
	"context"
	"fmt"
	"path"
	"slices"

	"github.com/vishvananda/netlink"

	"github.com/runbook/runbook/modules"
)

// bridgeSTPOps is what a netlink layer may offer for a bridge's STP state, which netlink's
// Bridge type does not carry. The real handle has none: STP goes through rtnetlink messages
// of runbook's own (bridge_linux.go). The fake kernel of the tests implements it.
type bridgeSTPOps interface {
	BridgeSTP(name string) (bool, error)
	SetBridgeSTP(name string, on bool) error
}

// bridgeSTP reads whether STP is on for a bridge.
func bridgeSTP(ops linkOps, name string) (bool, error) {
	if x, ok := ops.(bridgeSTPOps); ok {
		return x.BridgeSTP(name)
	}
	l, err := ops.LinkByName(name)
	if err != nil {
		return false, fmt.Errorf("read link %s: %w", name, err)
	}
	on, err := nlBridgeSTP(l.Attrs().Index)
	if err != nil {
		return false, fmt.Errorf("read the STP state of %s: %w", name, err)
	}
	return on, nil
}

// setBridgeSTP turns a bridge's STP on (the kernel's, or the bridge-stp daemon's where the
// host has one) or off.
func setBridgeSTP(ops linkOps, name string, on bool) error {
	if x, ok := ops.(bridgeSTPOps); ok {
		return x.SetBridgeSTP(name, on)
	}
	l, err := ops.LinkByName(name)
	if err != nil {
		return fmt.Errorf("read link %s: %w", name, err)
	}
	if err := nlSetBridgeSTP(l.Attrs().Index, on); err != nil {
		return fmt.Errorf("set %s stp %s: %w", name, onOff(on), err)
	}
	return nil
}

// bridgeSnap is the running state of a bridge and the links around it.
type bridgeSnap struct {
	br    *kernelLink            // nil: no link of that name
	links map[string]*kernelLink // wanted and current ports by name; nil: absent
}

func (s *bridgeSnap) currentPorts() []string {
	if s.br == nil {
		return nil
	}
	return s.br.Slaves
}

// readBridgeSnap reads the bridge (with its STP state), its ports and the wanted ones.
func readBridgeSnap(ops linkOps, s *bridgeSpec) (*bridgeSnap, error) {
	snap := &bridgeSnap{links: map[string]*kernelLink{}}
	b, ok, err := readLink(ops, s.name)
	if err != nil {
		return nil, err
	}
	if ok {
		snap.br = b
		if b.Type == kindBridge {
			if b.BridgeOpts == nil {
				b.BridgeOpts = &bridgeOpts{}
			}
			if b.BridgeOpts.STP, err = bridgeSTP(ops, s.name); err != nil {
				return nil, err
			}
			all, err := ops.LinkList()
			if err != nil {
				return nil, fmt.Errorf("list links: %w", err)
			}
			for _, l := range all {
				if l.Attrs().MasterIndex == b.Index {
					b.Slaves = append(b.Slaves, l.Attrs().Name)
				}
			}
			slices.Sort(b.Slaves)
		}
	}
	for _, n := range append(slices.Clone(s.ports), snap.currentPorts()...) {
		if _, done := snap.links[n]; done {
			continue
		}
		l, ok, err := readLink(ops, n)
		if err != nil {
			return nil, err
		}
		if ok {
			snap.links[n] = l
		} else {
			snap.links[n] = nil
		}
	}
	return snap, nil
}

// bridgeChange is one step that brings the running bridge in line with the task, as
// bondChange is for a bond: check reports its line, apply runs its apply, check mode's diff
// shows the state its predict leaves.
type bridgeChange struct {
	line    string
	touches []pathChange
	phase   bridgePhase
	apply   func(*bridgeApplier) error
	predict func(*bridgeSnap)
}

// bridgePhase orders the changes: the bridge made (or deleted) with its options, ports
// not wanted released, the ports' MTU, ports joining, the bridge's MTU (after its ports:
// the kernel gives a bridge whose MTU nobody set the smallest of its ports'), up, then
// addresses.
type bridgePhase int

const (
	brPhaseDelete bridgePhase = iota
	brPhaseCreate
	brPhaseOptions
	brPhaseRelease
	brPhasePortMTU
	brPhaseEnslave
	brPhaseMTU
	brPhaseUp
	brPhaseAddrs
)

// bridgeChanges lists what differs between the running bridge and the spec. An error
// means apply could not succeed (a missing port, a name taken by another kind of link).
func bridgeChanges(s *bridgeSpec, snap *bridgeSnap) ([]bridgeChange, error) {
	b := snap.br
	if b != nil && b.Type != kindBridge {
		if s.absent {
			return nil, fmt.Errorf("%s is a %s link, not a bridge: not deleting it", s.name, b.Type)
		}
		return nil, fmt.Errorf("%s exists and is a %s link, not a bridge", s.name, b.Type)
	}
	var out []bridgeChange
	add := func(c bridgeChange) { out = append(out, c) }

	if s.absent {
		if b == nil {
			return nil, nil
		}
		line := s.name + ": delete"
		touches := []pathChange{{s.name, changeRemove, line}}
		for _, n := range b.Slaves {
			pl := fmt.Sprintf("%s: released (%s deleted)", n, s.name)
			touches = append(touches, pathChange{n, changeRemove, pl})
			add(bridgeChange{line: pl, phase: brPhaseDelete, predict: func(p *bridgeSnap) {
				if l := p.links[n]; l != nil {
					l.Master = ""
				}
			}})
		}
		add(bridgeChange{line: line, phase: brPhaseDelete, touches: touches,
			apply:   func(a *bridgeApplier) error { return a.delete() },
			predict: func(p *bridgeSnap) { p.br = nil }})
		return out, nil
	}

	for _, n := range s.ports {
		l := snap.links[n]
		if l == nil {
			return nil, fmt.Errorf("port %s: no such interface", n)
		}
		if l.Type == kindBridge {
			return nil, fmt.Errorf("port %s is a bridge itself (the kernel does not put a bridge in a bridge)", n)
		}
	}
	lineIf := func(cond bool, format string, a ...any) string {
		if !cond {
			return ""
		}
		return fmt.Sprintf(format, a...)
	}

	if b == nil {
		add(bridgeChange{line: fmt.Sprintf("%s: create (stp %s, vlan_filtering %s)", s.name, onOff(s.opts.STP), onOff(s.opts.VLANFiltering)),
			phase: brPhaseCreate, apply: func(a *bridgeApplier) error { return a.create() },
			predict: func(p *bridgeSnap) {
				opts := s.opts
				p.br = &kernelLink{Name: s.name, Type: kindBridge, MTU: defaultMTU, BridgeOpts: &opts}
			}})
		if s.opts.STP {
			add(bridgeChange{phase: brPhaseOptions, apply: func(a *bridgeApplier) error { return a.setSTP(true) }})
		}
	} else {
		have := bridgeOpts{}
		if b.BridgeOpts != nil {
			have = *b.BridgeOpts
		}
		if have.STP != s.opts.STP {
			line := fmt.Sprintf("%s: stp %s → %s", s.name, onOff(have.STP), onOff(s.opts.STP))
			add(bridgeChange{line: line, phase: brPhaseOptions, touches: []pathChange{{s.name, changeSTP, line}},
				apply:   func(a *bridgeApplier) error { return a.setSTP(s.opts.STP) },
				predict: func(p *bridgeSnap) { p.br.BridgeOpts.STP = s.opts.STP }})
		}
		if have.VLANFiltering != s.opts.VLANFiltering {
			line := fmt.Sprintf("%s: vlan_filtering %s → %s", s.name, onOff(have.VLANFiltering), onOff(s.opts.VLANFiltering))
			add(bridgeChange{line: line, phase: brPhaseOptions, touches: []pathChange{{s.name, changeVLANFiltering, line}},
				apply:   func(a *bridgeApplier) error { return a.setVLANFiltering() },
				predict: func(p *bridgeSnap) { p.br.BridgeOpts.VLANFiltering = s.opts.VLANFiltering }})
		}
	}

	if s.exclusive {
		for _, n := range snap.currentPorts() {
			if contains(s.ports, n) {
				continue
			}
			line := fmt.Sprintf("%s: release from %s", n, s.name)
			add(bridgeChange{line: line, phase: brPhaseRelease, touches: []pathChange{{n, changeRemove, line}},
				apply: func(a *bridgeApplier) error { return a.release(n) },
				predict: func(p *bridgeSnap) {
					p.links[n].Master = ""
					p.br.Slaves = slices.DeleteFunc(p.br.Slaves, func(x string) bool { return x == n })
				}})
		}
	}

	mtu, fixed := s.mtu.fixed()
	if fixed {
		for _, n := range s.ports {
			l := snap.links[n]
			line := lineIf(l.MTU != mtu, "%s: mtu %d → %d", n, l.MTU, mtu)
			var touches []pathChange
			if line != "" {
				touches = []pathChange{{n, changeMTU, line}}
			}
			add(bridgeChange{line: line, phase: brPhasePortMTU, touches: touches,
				apply:   func(a *bridgeApplier) error { return a.setMTU(n, mtu) },
				predict: func(p *bridgeSnap) { p.links[n].MTU = mtu }})
		}
	}

	for _, n := range s.ports {
		l := snap.links[n]
		line := ""
		switch l.Master {
		case s.name:
		case "":
			line = fmt.Sprintf("%s: enslave to %s", n, s.name)
		default:
			line = fmt.Sprintf("%s: master %s → %s", n, l.Master, s.name)
		}
		var touches []pathChange
		if line != "" {
			touches = []pathChange{{n, changeEnslave, line}}
		}
		add(bridgeChange{line: line, phase: brPhaseEnslave, touches: touches,
			apply: func(a *bridgeApplier) error { return a.enslave(n) },
			predict: func(p *bridgeSnap) {
				p.links[n].Master = s.name
				if !contains(p.br.Slaves, n) {
					p.br.Slaves = append(p.br.Slaves, n)
					slices.Sort(p.br.Slaves)
				}
			}})
	}
	if b == nil && !fixed && len(s.ports) > 0 {
		// A new bridge takes the smallest MTU of its ports.
		add(bridgeChange{phase: brPhaseEnslave, predict: func(p *bridgeSnap) {
			m := 0
			for _, n := range p.br.Slaves {
				if l := p.links[n]; l != nil && (m == 0 || l.MTU < m) {
					m = l.MTU
				}
			}
			if m > 0 {
				p.br.MTU = m
			}
		}})
	}

	if fixed {
		line := lineIf(b == nil, "%s: mtu %d", s.name, mtu)
		var touches []pathChange
		if b != nil && b.MTU != mtu {
			line = fmt.Sprintf("%s: mtu %d → %d", s.name, b.MTU, mtu)
			touches = []pathChange{{s.name, changeMTU, line}}
		}
		add(bridgeChange{line: line, phase: brPhaseMTU, touches: touches,
			apply:   func(a *bridgeApplier) error { return a.setMTU(s.name, mtu) },
			predict: func(p *bridgeSnap) { p.br.MTU = mtu }})
	}

	add(bridgeChange{line: lineIf(b == nil || !b.Up, "%s: down → up", s.name), phase: brPhaseUp,
		apply:   func(a *bridgeApplier) error { return a.setUp(s.name) },
		predict: func(p *bridgeSnap) { p.br.Up = true }})
	for _, n := range s.ports {
		l := snap.links[n]
		// A port the kernel releases from a bond on the way is set down by it: brought up
		// again, the join's line says it.
		add(bridgeChange{line: lineIf(!l.Up, "%s: down → up", n), phase: brPhaseUp,
			apply:   func(a *bridgeApplier) error { return a.setUp(n) },
			predict: func(p *bridgeSnap) { p.links[n].Up = true }})
	}

	if s.manageAddrs {
		for _, addr := range s.addrs {
			if b != nil && contains(b.Addrs, addr) {
				continue
			}
			add(bridgeChange{line: fmt.Sprintf("%s: add address %s", s.name, addr), phase: brPhaseAddrs,
				apply:   func(a *bridgeApplier) error { return a.addAddr(addr) },
				predict: func(p *bridgeSnap) { p.br.Addrs = append(p.br.Addrs, addr) }})
		}
	}
	return out, nil
}

func bridgeDrift(changes []bridgeChange) []string {
	var out []string
	for _, c := range changes {
		if c.line != "" {
			out = append(out, c.line)
		}
	}
	return out
}

func bridgeTouches(changes []bridgeChange) []pathChange {
	var out []pathChange
	for _, c := range changes {
		out = append(out, c.touches...)
	}
	return out
}

// applyBridgeChanges runs the changes' apply steps in phase order.
func applyBridgeChanges(ops linkOps, s *bridgeSpec, changes []bridgeChange) error {
	a := &bridgeApplier{ops: ops, s: s}
	ordered := slices.Clone(changes)
	slices.SortStableFunc(ordered, func(x, y bridgeChange) int { return int(x.phase) - int(y.phase) })
	for _, c := range ordered {
		if c.apply == nil {
			continue
		}
		if err := c.apply(a); err != nil {
			return err
		}
	}
	return nil
}

// predictBridge is the state apply would leave, for check mode's diff.
func predictBridge(snap *bridgeSnap, changes []bridgeChange) *bridgeSnap {
	out := &bridgeSnap{links: map[string]*kernelLink{}}
	if snap.br != nil {
		c := *snap.br
		if c.BridgeOpts != nil {
			o := *c.BridgeOpts
			c.BridgeOpts = &o
		}
		c.Slaves = slices.Clone(snap.br.Slaves)
		c.Addrs = slices.Clone(snap.br.Addrs)
		out.br = &c
	}
	for n, l := range snap.links {
		if l != nil {
			c := *l
			out.links[n] = &c
		}
	}
	for _, c := range changes {
		if c.predict != nil {
			c.predict(out)
		}
	}
	return out
}

// bridgeApplier carries out changes on the kernel.
type bridgeApplier struct {
	ops linkOps
	s   *bridgeSpec
}

func (a *bridgeApplier) byName(n string) (netlink.Link, error) {
	l, err := a.ops.LinkByName(n)
	if err != nil {
		return nil, fmt.Errorf("read link %s: %w", n, err)
	}
	return l, nil
}

// message starts a netlink message for the bridge (index 0: a new one), with VLAN
// filtering when vf: a kernel built without it (CONFIG_BRIDGE_VLAN_FILTERING) refuses the
// attribute even to turn it off, so a message carries it only to change it or to make a
// bridge with it on.
func (a *bridgeApplier) message(idx int, vf bool) *netlink.Bridge {
	attrs := netlink.NewLinkAttrs()
	attrs.Name, attrs.Index = a.s.name, idx
	br := &netlink.Bridge{LinkAttrs: attrs}
	if vf {
		on := a.s.opts.VLANFiltering
		br.VlanFiltering = &on
	}
	return br
}

func (a *bridgeApplier) create() error {
	what := "create bridge " + a.s.name
	if a.s.opts.VLANFiltering {
		what += " with vlan_filtering on"
	}
	if err := a.ops.LinkAdd(a.message(0, a.s.opts.VLANFiltering)); err != nil {
		return kernelErr(what, err)
	}
	return nil
}

func (a *bridgeApplier) delete() error {
	l, err := a.byName(a.s.name)
	if err != nil {
		return err
	}
	if err := a.ops.LinkDel(l); err != nil {
		return kernelErr("delete bridge "+a.s.name, err)
	}
	return nil
}

func (a *bridgeApplier) setSTP(on bool) error { return setBridgeSTP(a.ops, a.s.name, on) }

func (a *bridgeApplier) setVLANFiltering() error {
	l, err := a.byName(a.s.name)
	if err != nil {
		return err
	}
	if err := a.ops.LinkModify(a.message(l.Attrs().Index, true)); err != nil {
		return kernelErr(fmt.Sprintf("set %s vlan_filtering %s", a.s.name, onOff(a.s.opts.VLANFiltering)), err)
	}
	return nil
}

// release takes port n out of the bridge if it is still in it.
func (a *bridgeApplier) release(n string) error {
	br, err := a.byName(a.s.name)
	if err != nil {
		return err
	}
	l, err := a.byName(n)
	if err != nil {
		return err
	}
	if l.Attrs().MasterIndex != br.Attrs().Index {
		return nil
	}
	if err := a.ops.LinkSetNoMaster(l); err != nil {
		return kernelErr(fmt.Sprintf("release %s from %s", n, a.s.name), err)
	}
	return nil
}

// enslave makes n a port of the bridge, out of another master first.
func (a *bridgeApplier) enslave(n string) error {
	br, err := a.byName(a.s.name)
	if err != nil {
		return err
	}
	l, err := a.byName(n)
	if err != nil {
		return err
	}
	at := l.Attrs()
	if at.MasterIndex == br.Attrs().Index {
		return nil
	}
	if at.MasterIndex != 0 {
		if err := a.ops.LinkSetNoMaster(l); err != nil {
			return kernelErr(fmt.Sprintf("release %s from its master", n), err)
		}
	}
	if err := a.ops.LinkSetMasterByIndex(l, br.Attrs().Index); err != nil {
		return kernelErr(fmt.Sprintf("enslave %s to %s", n, a.s.name), err)
	}
	return nil
}

func (a *bridgeApplier) setMTU(n string, mtu int) error {
	l, err := a.byName(n)
	if err != nil {
		return err
	}
	if l.Attrs().MTU == mtu {
		return nil
	}
	if err := a.ops.LinkSetMTU(l, mtu); err != nil {
		return kernelErr(fmt.Sprintf("set %s mtu %d", n, mtu), err)
	}
	return nil
}

func (a *bridgeApplier) setUp(n string) error {
	l, err := a.byName(n)
	if err != nil {
		return err
	}
	if l.Attrs().Flags&netFlagUp != 0 {
		return nil
	}
	if err := a.ops.LinkSetUp(l); err != nil {
		return kernelErr("set "+n+" up", err)
	}
	return nil
}

func (a *bridgeApplier) addAddr(addr string) error {
	l, err := a.byName(a.s.name)
	if err != nil {
		return err
	}
	return addAddrs(a.ops, l, []string{addr})
}

func (b Bridge) opener() opener {
	if b.open != nil {
		return b.open
	}
	return openNetlink
}

// Run compares the running bridge and the persistent configuration with the arguments and,
// when applying, changes what differs: the kernel first, then the files.
func (b Bridge) Run(ctx context.Context, env *modules.Env, args bridgeArgs, apply bool) (*modules.Result, error) {
	tx, err := newTxn(env, b.txn, "bridge", args.ConfirmTimeout)
	if err != nil {
		return nil, err
	}
	if !apply {
		tx = nil // check mode never arms anything
	}
	return tx.end(b.run(ctx, args, apply, tx))
}

func (b Bridge) run(ctx context.Context, args bridgeArgs, apply bool, tx *netTxn) (*modules.Result, error) {
	s, errs := parseBridge(args)
	if len(errs) > 0 {
		return nil, errs[0]
	}
	f := &fileTree{b.root}
	res := &modules.Result{}
	data := bridgeResult{Ports: []string{}}

	var runtimeDrift []string
	var runtimeBefore, runtimeAfter string
	if s.runtime {
		ops, closeOps, err := b.opener()()
		if err != nil {
			return nil, err
		}
		defer closeOps()
		snap, err := readBridgeSnap(ops, s)
		if err != nil {
			return nil, err
		}
		changes, err := bridgeChanges(s, snap)
		if err != nil {
			return nil, err
		}
		runtimeDrift = bridgeDrift(changes)
		released, err := nmReleasedPorts(ctx, f, s, snap)
		if err != nil {
			return nil, err
		}
		warns, err := guardChanges(ops, f, b.session, args.OnManagementPath, append(bridgeTouches(changes), released...))
		if err != nil {
			return nil, err
		}
		res.Warnings = append(res.Warnings, warns...)
		runtimeBefore = describeBridge(s, snap)
		runtimeAfter = runtimeBefore
		if len(runtimeDrift) > 0 && apply {
			// The snapshot takes the bridge's running ports with it.
			if err := tx.begin(ops, f, append([]string{s.name}, s.ports...)); err != nil {
				return nil, err
			}
			if err := applyBridgeChanges(ops, s, changes); err != nil {
				return nil, err
			}
		}
		if apply {
			if snap, err = readBridgeSnap(ops, s); err != nil {
				return nil, err
			}
			runtimeAfter = describeBridge(s, snap)
		} else if len(runtimeDrift) > 0 {
			runtimeAfter = describeBridge(s, predictBridge(snap, changes))
		}
		if br := snap.br; br != nil && br.Type == kindBridge {
			data.Exists = true
			data.Ports = orEmpty(slices.Clone(br.Slaves))
			if br.BridgeOpts != nil {
				data.STP, data.VLANFiltering = br.BridgeOpts.STP, br.BridgeOpts.VLANFiltering
			}
			mtu := br.MTU
			data.MTU = &mtu
		}
	}

	p, err := runPersist(ctx, f, s.backend, s.wants(), apply, tx)
	if err != nil {
		return nil, err
	}
	if p.backend == backendIfupdown && !s.absent && !f.exists(ifupdownBridgeHook) {
		res.Warnings = append(res.Warnings, fmt.Sprintf("ifupdown makes bridges with bridge-utils' hook, and %s is missing: at boot the stanza makes no bridge (install bridge-utils)", ifupdownBridgeHook))
	}
	finish(res, apply, "bridge "+s.name, runtimeDrift, runtimeBefore, runtimeAfter, p)
	if res.Status == modules.StatusOK && s.absent {
		res.Msg = "bridge " + s.name + " is absent"
	}
	data.Backend, data.RuntimeDrift, data.PersistentDrift, data.Files = p.backend, orEmpty(runtimeDrift), orEmpty(p.drift), orEmpty(p.files())
	res.Data = data
	return res, nil
}

// ifupdownBridgeHook is the script of Debian's bridge-utils that makes the bridge of a
// stanza with bridge_ports when ifup runs; without it ifupdown ignores the bridge_* options.
const ifupdownBridgeHook = "/etc/network/if-pre-up.d/bridge"

func describeBridge(s *bridgeSpec, snap *bridgeSnap) string {
	names := append([]string{s.name}, s.ports...)
	for _, n := range snap.currentPorts() {
		if !contains(names, n) {
			names = append(names, n)
		}
	}
	links := map[string]*kernelLink{s.name: snap.br}
	for k, v := range snap.links {
		links[k] = v
	}
	return describeLinks(names, links, func(l *kernelLink) string {
		if l.BridgeOpts == nil {
			return ""
		}
		return fmt.Sprintf("stp %s, vlan_filtering %s, ports %s", onOff(l.BridgeOpts.STP), onOff(l.BridgeOpts.VLANFiltering), listOrNone(l.Slaves))
	})
}

// nmReleasedPorts are the running ports that writing the files releases at once: a port
// the task no longer lists stays in the bridge at runtime (without exclusive_ports), but
// its port profile of runbook's own is removed, and NetworkManager deactivates the
// connection of a removed profile when told (nmcli connection reload), taking the port out
// of the bridge. The guard sees them as released.
func nmReleasedPorts(ctx context.Context, f *fileTree, s *bridgeSpec, snap *bridgeSnap) ([]pathChange, error) {
	if s.backend == backendNone || s.absent || s.exclusive {
		return nil, nil
	}
	var dropped []string
	for _, n := range snap.currentPorts() {
		if !contains(s.ports, n) {
			dropped = append(dropped, n)
		}
	}
	if len(dropped) == 0 {
		return nil, nil
	}
	backend, _, err := chooseBackend(ctx, string(f.Root), s.backend)
	if err != nil || backend != backendNM {
		return nil, err
	}
	plan, err := planPersist(ctx, f, backend, s.wants())
	if err != nil {
		return nil, err
	}
	var out []pathChange
	for _, x := range plan.ws.changes() {
		for _, n := range dropped {
			if x.removed && path.Base(x.path) == s.name+nmPortInfix+n+nmKeyfileSuffix {
				out = append(out, pathChange{n, changeRemove,
					fmt.Sprintf("%s: its profile %s removed (NetworkManager releases it from %s at once)", n, x.path, s.name)})
			}
		}
	}
	return out, nil
}
