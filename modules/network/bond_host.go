package network

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"

	"github.com/vishvananda/netlink"
	"github.com/zclconf/go-cty/cty"

	"github.com/runbook/runbook/modules"
)

// bondSnap is the running state of a bond and the links around it.
type bondSnap struct {
	bond  *kernelLink            // nil: no link of that name
	links map[string]*kernelLink // wanted and current slaves by name; nil: absent
}

// readBondSnap reads the bond, its current slaves and the wanted ones.
func readBondSnap(ops linkOps, s *bondSpec) (*bondSnap, error) {
	snap := &bondSnap{links: map[string]*kernelLink{}}
	b, ok, err := readLink(ops, s.name)
	if err != nil {
		return nil, err
	}
	if ok {
		snap.bond = b
		if b.Type == "bond" {
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
	names := append(slices.Clone(s.slaves), snap.currentSlaves()...)
	for _, n := range names {
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

func (s *bondSnap) currentSlaves() []string {
	if s.bond == nil {
		return nil
	}
	return s.bond.Slaves
}

// bondChange is one step that brings the running bond in line with the task, computed once
// from the running state and used three ways: check reports its line, apply runs its
// apply, and check mode's diff shows the state its predict leaves. A change without a line
// is a step apply takes only because an earlier one needs it (a bond an option change set
// down comes back up; slaves a mode change released join again). Apply reads the live
// state where an earlier step may have changed it.
type bondChange struct {
	line string
	// touches are the interfaces the change acts on in ways the management-path guard
	// knows (guard.go).
	touches []pathChange

	phase   bondPhase
	apply   func(*bondApplier) error
	predict func(*bondSnap)
}

// bondPhase orders the changes as the kernel's rules need them: mode only without slaves
// and with the bond down, lacp_rate and ad_select with the bond down; slaves that are not
// wanted leave before the MTU is set (the bond passes it on to its slaves); a slave is
// enslaved while it is down; the primary is set once it is a slave.
type bondPhase int

const (
	phaseOptions bondPhase = iota // create the bond, or change its options
	phaseRelease                  // release the slaves that are not wanted
	phaseMTU                      // the bond's MTU
	phaseEnslave                  // the wanted slaves join
	phasePrimary                  // the primary slave
	phaseUp                       // the bond up
	phaseSlaves                   // each slave up, with the MTU
	phaseAddrs                    // the bond's addresses
)

// bondChanges lists what differs between the running bond and the spec, in the order check
// reports it. An error means apply could not succeed (a missing slave, a name taken by a
// link that is not a bond).
func bondChanges(s *bondSpec, snap *bondSnap) ([]bondChange, error) {
	for _, n := range s.slaves {
		l := snap.links[n]
		if l == nil {
			return nil, fmt.Errorf("slave %s: no such interface", n)
		}
		if l.Type == "bond" {
			return nil, fmt.Errorf("slave %s is a bond itself", n)
		}
	}
	b := snap.bond
	if b != nil && b.Type != "bond" {
		return nil, fmt.Errorf("%s exists and is a %s link, not a bond", s.name, b.Type)
	}
	var out []bondChange
	add := func(c bondChange) { out = append(out, c) }
	lineIf := func(cond bool, format string, a ...any) string {
		if !cond {
			return ""
		}
		return fmt.Sprintf(format, a...)
	}

	// The bond and its options.
	if b == nil {
		add(bondChange{line: fmt.Sprintf("%s: create (mode %s)", s.name, s.opts["mode"]), phase: phaseOptions,
			apply: func(a *bondApplier) error { return a.create() },
			predict: func(p *bondSnap) {
				p.bond = &kernelLink{Name: s.name, Type: "bond", MTU: defaultMTU, Bond: maps.Clone(s.opts)}
			}})
		if v, ok := s.opts["primary"]; ok {
			add(bondChange{phase: phasePrimary, apply: func(a *bondApplier) error { return a.setPrimary(v) }})
		}
	} else {
		var changed []string
		for _, k := range sortedOptNames(s.opts) {
			if b.Bond[k] == s.opts[k] {
				continue
			}
			c := bondChange{line: fmt.Sprintf("%s: %s %s → %s", s.name, k, orUnset(b.Bond[k]), orUnset(s.opts[k])), phase: phaseOptions,
				predict: func(p *bondSnap) { p.bond.Bond[k] = s.opts[k] }}
			if o, _ := bondOpt(k); o.needsNoSlaves {
				for _, n := range b.Slaves {
					c.touches = append(c.touches, pathChange{n, changeRemove, c.line})
				}
			}
			if o, _ := bondOpt(k); o.needsDown && b.Up {
				c.touches = append(c.touches, pathChange{s.name, changeDown, c.line})
			}
			// A bond with fewer active ports than min_links loses its carrier: raised
			// above the slaves that are in it now with a carrier, it goes down.
			if want, err := strconv.Atoi(s.opts[k]); k == "min_links" && err == nil && b.Up && want > activeSlaves(snap, s) {
				c.touches = append(c.touches, pathChange{s.name, changeDown, c.line})
			}
			if k == "primary" {
				v := s.opts[k]
				c.phase, c.apply = phasePrimary, func(a *bondApplier) error { return a.setPrimary(v) }
			} else {
				changed = append(changed, k)
			}
			add(c)
		}
		if len(changed) > 0 {
			// One message sets them all.
			add(bondChange{phase: phaseOptions, apply: func(a *bondApplier) error { return a.modify(changed) }})
		}
	}

	for _, n := range snap.currentSlaves() {
		if !contains(s.slaves, n) {
			line := fmt.Sprintf("%s: release from %s", n, s.name)
			add(bondChange{line: line, phase: phaseRelease, touches: []pathChange{{n, changeRemove, line}},
				apply: func(a *bondApplier) error { return a.release(n, "") },
				predict: func(p *bondSnap) {
					p.links[n].Master = ""
					p.bond.Slaves = slices.DeleteFunc(p.bond.Slaves, func(x string) bool { return x == n })
				}})
		}
	}

	mtu, fixed := s.mtu.fixed()
	if fixed {
		line := lineIf(b == nil, "%s: mtu %d", s.name, mtu)
		if b != nil {
			line = lineIf(b.MTU != mtu, "%s: mtu %d → %d", s.name, b.MTU, mtu)
		}
		var touches []pathChange
		if b != nil && line != "" {
			touches = []pathChange{{s.name, changeMTU, line}}
		}
		add(bondChange{line: line, phase: phaseMTU, touches: touches,
			apply:   func(a *bondApplier) error { return a.setMTU(s.name, mtu) },
			predict: func(p *bondSnap) { p.bond.MTU = mtu }})
	}

	for _, n := range s.slaves {
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
		add(bondChange{line: line, phase: phaseEnslave, touches: touches,
			apply: func(a *bondApplier) error { return a.enslave(n) },
			predict: func(p *bondSnap) {
				p.links[n].Master = s.name
				if !contains(p.bond.Slaves, n) {
					p.bond.Slaves = append(p.bond.Slaves, n)
					slices.Sort(p.bond.Slaves)
				}
			}})
	}

	add(bondChange{line: lineIf(b == nil || !b.Up, "%s: down → up", s.name), phase: phaseUp,
		apply:   func(a *bondApplier) error { return a.setUp(s.name) },
		predict: func(p *bondSnap) { p.bond.Up = true }})

	for _, n := range s.slaves {
		l := snap.links[n]
		add(bondChange{line: lineIf(l.Master == s.name && !l.Up, "%s: down → up", n), phase: phaseSlaves,
			apply:   func(a *bondApplier) error { return a.setUp(n) },
			predict: func(p *bondSnap) { p.links[n].Up = true }})
		if fixed {
			line := lineIf(l.MTU != mtu, "%s: mtu %d → %d", n, l.MTU, mtu)
			var touches []pathChange
			if line != "" {
				touches = []pathChange{{n, changeMTU, line}}
			}
			add(bondChange{line: line, phase: phaseSlaves, touches: touches,
				apply:   func(a *bondApplier) error { return a.setMTU(n, mtu) },
				predict: func(p *bondSnap) { p.links[n].MTU = mtu }})
		}
	}

	if s.manageAddrs {
		for _, addr := range s.addrs {
			if b != nil && contains(b.Addrs, addr) {
				continue
			}
			add(bondChange{line: fmt.Sprintf("%s: add address %s", s.name, addr), phase: phaseAddrs,
				apply:   func(a *bondApplier) error { return a.addAddr(addr) },
				predict: func(p *bondSnap) { p.bond.Addrs = append(p.bond.Addrs, addr) }})
		}
	}
	return out, nil
}

// activeSlaves counts the wanted slaves that are in the bond now with a carrier: those a
// raised min_links can count on (a slave that joins has yet to come up and negotiate).
func activeSlaves(snap *bondSnap, s *bondSpec) int {
	n := 0
	for _, name := range s.slaves {
		if l := snap.links[name]; l != nil && l.Master == s.name && l.Up && l.Carrier {
			n++
		}
	}
	return n
}

// driftLines are the lines of the changes that have one.
func driftLines(changes []bondChange) []string {
	var out []string
	for _, c := range changes {
		if c.line != "" {
			out = append(out, c.line)
		}
	}
	return out
}

// bondTouches lists what the changes do to interfaces, for the guard.
func bondTouches(changes []bondChange) []pathChange {
	var out []pathChange
	for _, c := range changes {
		out = append(out, c.touches...)
	}
	return out
}

// applyBondChanges runs the changes' apply steps in phase order.
func applyBondChanges(ops linkOps, s *bondSpec, snap *bondSnap, changes []bondChange) error {
	a := &bondApplier{ops: ops, s: s, snap: snap}
	ordered := slices.Clone(changes)
	slices.SortStableFunc(ordered, func(x, y bondChange) int { return int(x.phase) - int(y.phase) })
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

// predictBond is the state apply would leave, for check mode's diff: the running state
// with every change's predict applied.
func predictBond(snap *bondSnap, changes []bondChange) *bondSnap {
	out := &bondSnap{links: map[string]*kernelLink{}}
	if snap.bond != nil {
		c := *snap.bond
		c.Bond = maps.Clone(snap.bond.Bond)
		c.Slaves = slices.Clone(snap.bond.Slaves)
		c.Addrs = slices.Clone(snap.bond.Addrs)
		out.bond = &c
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

// bondApplier carries out changes on the kernel.
type bondApplier struct {
	ops  linkOps
	s    *bondSpec
	snap *bondSnap
}

func (a *bondApplier) byName(n string) (netlink.Link, error) {
	l, err := a.ops.LinkByName(n)
	if err != nil {
		return nil, fmt.Errorf("read link %s: %w", n, err)
	}
	return l, nil
}

func (a *bondApplier) index(n string) (int, error) {
	l, err := a.byName(n)
	if err != nil {
		return 0, err
	}
	return l.Attrs().Index, nil
}

// message starts a netlink message for the bond (index 0: a new one).
func (a *bondApplier) message(idx int) *netlink.Bond {
	attrs := netlink.NewLinkAttrs()
	attrs.Name, attrs.Index = a.s.name, idx
	return netlink.NewLinkBond(attrs)
}

// create makes the bond with every option but the primary (which needs its slave).
func (a *bondApplier) create() error {
	nb := a.message(0)
	for _, k := range sortedOptNames(a.s.opts) {
		if k == "primary" {
			continue
		}
		if err := setBondOption(nb, k, a.s.opts[k], a.index); err != nil {
			return err
		}
	}
	if err := a.ops.LinkAdd(nb); err != nil {
		return kernelErr("create bond "+a.s.name, err)
	}
	return nil
}

// modify sets changed options of the running bond: without slaves and down where the
// kernel wants that.
func (a *bondApplier) modify(changed []string) error {
	b := a.snap.bond
	down := false
	for _, k := range changed {
		o, _ := bondOpt(k)
		if o.needsNoSlaves {
			for _, n := range b.Slaves {
				if err := a.release(n, fmt.Sprintf(" (to change %s)", k)); err != nil {
					return err
				}
			}
		}
		down = down || o.needsDown
	}
	if down && b.Up {
		if err := a.ops.LinkSetDown(b.link); err != nil {
			return kernelErr("set "+a.s.name+" down", err)
		}
	}
	nb := a.message(b.Index)
	for _, k := range changed {
		if err := setBondOption(nb, k, a.s.opts[k], a.index); err != nil {
			return err
		}
	}
	if err := a.ops.LinkModify(nb); err != nil {
		return kernelErr(fmt.Sprintf("set %s options %s", a.s.name, strings.Join(changed, ", ")), err)
	}
	return nil
}

// release takes slave n out of the bond if it is still in it.
func (a *bondApplier) release(n, why string) error {
	bondIdx, err := a.index(a.s.name)
	if err != nil {
		return err
	}
	l, err := a.byName(n)
	if err != nil {
		return err
	}
	if l.Attrs().MasterIndex != bondIdx {
		return nil
	}
	if err := a.ops.LinkSetNoMaster(l); err != nil {
		return kernelErr(fmt.Sprintf("release %s from %s%s", n, a.s.name, why), err)
	}
	return nil
}

// setMTU sets a link's MTU if it differs.
func (a *bondApplier) setMTU(n string, mtu int) error {
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

// enslave makes n a slave of the bond: out of another bond first, and down.
func (a *bondApplier) enslave(n string) error {
	bondIdx, err := a.index(a.s.name)
	if err != nil {
		return err
	}
	l, err := a.byName(n)
	if err != nil {
		return err
	}
	at := l.Attrs()
	if at.MasterIndex == bondIdx {
		return nil
	}
	if at.MasterIndex != 0 {
		if err := a.ops.LinkSetNoMaster(l); err != nil {
			return kernelErr(fmt.Sprintf("release %s from its bond", n), err)
		}
		// Released, it is down now.
		if l, err = a.byName(n); err != nil {
			return err
		}
		at = l.Attrs()
	}
	if at.Flags&netFlagUp != 0 {
		if err := a.ops.LinkSetDown(l); err != nil {
			return kernelErr("set "+n+" down", err)
		}
	}
	if err := a.ops.LinkSetMasterByIndex(l, bondIdx); err != nil {
		return kernelErr(fmt.Sprintf("enslave %s to %s", n, a.s.name), err)
	}
	return nil
}

func (a *bondApplier) setPrimary(p string) error {
	bondIdx, err := a.index(a.s.name)
	if err != nil {
		return err
	}
	nb := a.message(bondIdx)
	if err := setBondOption(nb, "primary", p, a.index); err != nil {
		return err
	}
	if err := a.ops.LinkModify(nb); err != nil {
		return kernelErr(fmt.Sprintf("set %s primary %s", a.s.name, p), err)
	}
	return nil
}

// setUp brings a link up if it is down.
func (a *bondApplier) setUp(n string) error {
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

func (a *bondApplier) addAddr(addr string) error {
	l, err := a.byName(a.s.name)
	if err != nil {
		return err
	}
	return addAddrs(a.ops, l, []string{addr})
}

// addAddrs adds the addresses a link lacks.
func addAddrs(ops linkOps, l netlink.Link, want []string) error {
	have, err := ops.AddrList(l, familyAll)
	if err != nil {
		return fmt.Errorf("read addresses of %s: %w", l.Attrs().Name, err)
	}
	var cur []string
	for _, a := range have {
		if c, ok := globalAddr(a); ok {
			cur = append(cur, c)
		}
	}
	for _, a := range want {
		if contains(cur, a) {
			continue
		}
		addr, err := parseAddr(a)
		if err != nil {
			return err
		}
		if err := ops.AddrAdd(l, addr); err != nil {
			return kernelErr(fmt.Sprintf("add address %s to %s", a, l.Attrs().Name), err)
		}
	}
	return nil
}

func (b Bond) opener() opener {
	if b.open != nil {
		return b.open
	}
	return openNetlink
}

// Run compares the running bond and the persistent configuration with the arguments and,
// when applying, changes what differs: the kernel first, then the files.
func (b Bond) Run(ctx context.Context, env *modules.Env, args bondArgs, apply bool) (*modules.Result, error) {
	tx, err := newTxn(env, b.txn, "bond", args.ConfirmTimeout)
	if err != nil {
		return nil, err
	}
	if !apply {
		tx = nil // check mode never arms anything
	}
	return tx.end(b.run(ctx, args, apply, tx))
}

func (b Bond) run(ctx context.Context, args bondArgs, apply bool, tx *netTxn) (*modules.Result, error) {
	s, errs := parseBond(args)
	if len(errs) > 0 {
		return nil, errs[0]
	}
	f := &fileTree{b.root}
	res := &modules.Result{}
	data := bondResult{Slaves: []string{}, LACP: cty.NullVal(cty.DynamicPseudoType)}

	var runtimeDrift []string
	var runtimeBefore, runtimeAfter string
	if s.runtime {
		ops, closeOps, err := b.opener()()
		if err != nil {
			return nil, err
		}
		defer closeOps()
		snap, err := readBondSnap(ops, s)
		if err != nil {
			return nil, err
		}
		changes, err := bondChanges(s, snap)
		if err != nil {
			return nil, err
		}
		runtimeDrift = driftLines(changes)
		warns, err := guardChanges(ops, f, b.session, args.OnManagementPath, bondTouches(changes))
		if err != nil {
			return nil, err
		}
		res.Warnings = append(res.Warnings, warns...)
		runtimeBefore = describeBond(s, snap)
		runtimeAfter = runtimeBefore
		if len(runtimeDrift) > 0 && apply {
			links := append([]string{s.name}, s.slaves...)
			links = append(links, snap.currentSlaves()...)
			if err := tx.begin(ops, f, links); err != nil {
				return nil, err
			}
			if err := applyBondChanges(ops, s, snap, changes); err != nil {
				return nil, err
			}
		}
		if apply {
			if snap, err = readBondSnap(ops, s); err != nil {
				return nil, err
			}
			runtimeAfter = describeBond(s, snap)
		} else if len(runtimeDrift) > 0 {
			runtimeAfter = describeBond(s, predictBond(snap, changes))
		}
		if snap.bond != nil {
			data.Mode = snap.bond.Bond["mode"]
			data.Slaves = orEmpty(slices.Clone(snap.bond.Slaves))
			mtu := snap.bond.MTU
			data.MTU = &mtu
			for _, n := range s.slaves {
				if l := snap.links[n]; l != nil && l.Master == s.name && l.Up && !l.Carrier {
					res.Warnings = append(res.Warnings, fmt.Sprintf("slave %s has no carrier", n))
				}
			}
		}
	}

	p, err := runPersist(ctx, f, s.backend, s.wants(), apply, tx)
	if err != nil {
		return nil, err
	}

	if state, ok, exists := lacpState(f, s.name); exists {
		if data.LACP, err = anyValue(state); err != nil {
			return nil, fmt.Errorf("lacp state of %s: %w", s.name, err)
		}
		data.LACPOK = ok
		if s.runtime && state["mode"] == "802.3ad" && !ok && len(runtimeDrift) == 0 {
			res.Warnings = append(res.Warnings, lacpProblem(state))
		}
	}
	finish(res, apply, "bond "+s.name, runtimeDrift, runtimeBefore, runtimeAfter, p)
	data.Backend, data.RuntimeDrift, data.PersistentDrift, data.Files = p.backend, orEmpty(runtimeDrift), orEmpty(p.drift), orEmpty(p.files())
	if res.Status == modules.StatusOK && data.LACPOK {
		res.Msg = fmt.Sprintf("bond %s is in sync (%s, %d slaves, LACP negotiated)", s.name, s.opts["mode"], len(s.slaves))
	}
	res.Data = data
	return res, nil
}

// lacpProblem says in words why an 802.3ad bond's LACP is not ok.
func lacpProblem(state map[string]any) string {
	slaves, _ := state["slaves"].(map[string]any)
	var aggs []string
	var noPartner []string
	for _, n := range sortedKeys(slaves) {
		m := slaves[n].(map[string]any)
		agg, _ := m["aggregator_id"].(int)
		aggs = append(aggs, fmt.Sprintf("%s in aggregator %d", n, agg))
		if m["partner_mac"] == zeroMAC {
			noPartner = append(noPartner, n)
		}
	}
	msg := "LACP is not negotiated: " + strings.Join(aggs, ", ")
	if len(noPartner) > 0 {
		msg += "; no partner on " + strings.Join(noPartner, ", ") + " (is the switch port in an LACP group?)"
	}
	return msg
}

func describeBond(s *bondSpec, snap *bondSnap) string {
	names := append([]string{s.name}, s.slaves...)
	for _, n := range snap.currentSlaves() {
		if !contains(names, n) {
			names = append(names, n)
		}
	}
	links := map[string]*kernelLink{s.name: snap.bond}
	for k, v := range snap.links {
		links[k] = v
	}
	return describeLinks(names, links, func(l *kernelLink) string {
		if l.Bond == nil {
			return ""
		}
		var parts []string
		for _, k := range sortedOptNames(s.opts) {
			parts = append(parts, k+" "+orUnset(l.Bond[k]))
		}
		return strings.Join(parts, ", ") + ", slaves " + listOrNone(l.Slaves)
	})
}
