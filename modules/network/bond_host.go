package network

import (
	"context"
	"fmt"
	"slices"
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

// bondRuntimeDrift lists what differs between the running bond and the spec, in the order
// apply changes it. An error means apply could not succeed (a missing slave, a name taken
// by a link that is not a bond).
func bondRuntimeDrift(s *bondSpec, snap *bondSnap) ([]string, error) {
	var out []string
	add := func(format string, a ...any) { out = append(out, fmt.Sprintf(format, a...)) }
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
	if b == nil {
		add("%s: create (mode %s)", s.name, s.opts["mode"])
	} else {
		for _, k := range sortedOptNames(s.opts) {
			if b.Bond[k] != s.opts[k] {
				add("%s: %s %s → %s", s.name, k, orUnset(b.Bond[k]), orUnset(s.opts[k]))
			}
		}
	}
	for _, n := range snap.currentSlaves() {
		if !contains(s.slaves, n) {
			add("%s: release from %s", n, s.name)
		}
	}
	if b != nil && !s.mtu.matchesRuntime(b.MTU) {
		add("%s: mtu %d → %d", s.name, b.MTU, s.mtu.n)
	} else if b == nil && s.mtu.set && !s.mtu.auto {
		add("%s: mtu %d", s.name, s.mtu.n)
	}
	for _, n := range s.slaves {
		l := snap.links[n]
		switch l.Master {
		case s.name:
		case "":
			add("%s: enslave to %s", n, s.name)
		default:
			add("%s: master %s → %s", n, l.Master, s.name)
		}
	}
	if b == nil || !b.Up {
		add("%s: down → up", s.name)
	}
	for _, n := range s.slaves {
		l := snap.links[n]
		if l.Master == s.name && !l.Up {
			add("%s: down → up", n)
		}
		if !s.mtu.matchesRuntime(l.MTU) {
			add("%s: mtu %d → %d", n, l.MTU, s.mtu.n)
		}
	}
	if s.manageAddrs {
		for _, a := range s.addrs {
			if b == nil || !contains(b.Addrs, a) {
				add("%s: add address %s", s.name, a)
			}
		}
	}
	return out, nil
}

// applyBond brings the running bond in line with the spec. The kernel's rules decide the
// order: mode only without slaves and with the bond down, lacp_rate and ad_select with the
// bond down; a slave is enslaved while it is down; the primary is set once it is a slave.
func applyBond(ops linkOps, s *bondSpec, snap *bondSnap) error {
	byName := func(n string) (netlink.Link, error) {
		l, err := ops.LinkByName(n)
		if err != nil {
			return nil, fmt.Errorf("read link %s: %w", n, err)
		}
		return l, nil
	}
	index := func(n string) (int, error) {
		l, err := byName(n)
		if err != nil {
			return 0, err
		}
		return l.Attrs().Index, nil
	}
	newBond := func(name string, idx int) *netlink.Bond {
		attrs := netlink.NewLinkAttrs()
		attrs.Name, attrs.Index = name, idx
		return netlink.NewLinkBond(attrs)
	}

	b := snap.bond
	if b == nil {
		nb := newBond(s.name, 0)
		for _, k := range sortedOptNames(s.opts) {
			if k == "primary" {
				continue
			}
			if err := setBondOption(nb, k, s.opts[k], index); err != nil {
				return err
			}
		}
		if err := ops.LinkAdd(nb); err != nil {
			return kernelErr("create bond "+s.name, err)
		}
	} else {
		var changed []string
		for _, k := range sortedOptNames(s.opts) {
			if k != "primary" && b.Bond[k] != s.opts[k] {
				changed = append(changed, k)
			}
		}
		if len(changed) > 0 {
			down := false
			for _, k := range changed {
				if optNeedsNoSlaves[k] {
					for _, n := range b.Slaves {
						l, err := byName(n)
						if err != nil {
							return err
						}
						if err := ops.LinkSetNoMaster(l); err != nil {
							return kernelErr(fmt.Sprintf("release %s from %s (to change %s)", n, s.name, k), err)
						}
					}
					b.Slaves = nil
				}
				down = down || optNeedsDown[k]
			}
			if down && b.Up {
				if err := ops.LinkSetDown(b.link); err != nil {
					return kernelErr("set "+s.name+" down", err)
				}
			}
			nb := newBond(s.name, b.Index)
			for _, k := range changed {
				if err := setBondOption(nb, k, s.opts[k], index); err != nil {
					return err
				}
			}
			if err := ops.LinkModify(nb); err != nil {
				return kernelErr(fmt.Sprintf("set %s options %s", s.name, strings.Join(changed, ", ")), err)
			}
		}
	}
	bond, err := byName(s.name)
	if err != nil {
		return err
	}
	bondIdx := bond.Attrs().Index

	// Slaves that are not wanted leave first, then the MTU (the bond passes it on to its
	// slaves), then the wanted slaves join.
	if b != nil {
		for _, n := range b.Slaves {
			if contains(s.slaves, n) {
				continue
			}
			l, err := byName(n)
			if err != nil {
				return err
			}
			if err := ops.LinkSetNoMaster(l); err != nil {
				return kernelErr(fmt.Sprintf("release %s from %s", n, s.name), err)
			}
		}
	}
	if s.mtu.set && !s.mtu.auto && bond.Attrs().MTU != s.mtu.n {
		if err := ops.LinkSetMTU(bond, s.mtu.n); err != nil {
			return kernelErr(fmt.Sprintf("set %s mtu %d", s.name, s.mtu.n), err)
		}
	}
	for _, n := range s.slaves {
		l, err := byName(n)
		if err != nil {
			return err
		}
		a := l.Attrs()
		if a.MasterIndex == bondIdx {
			continue
		}
		if a.MasterIndex != 0 {
			if err := ops.LinkSetNoMaster(l); err != nil {
				return kernelErr(fmt.Sprintf("release %s from its bond", n), err)
			}
			// Released, it is down now.
			if l, err = byName(n); err != nil {
				return err
			}
			a = l.Attrs()
		}
		if a.Flags&netFlagUp != 0 {
			if err := ops.LinkSetDown(l); err != nil {
				return kernelErr("set "+n+" down", err)
			}
		}
		if err := ops.LinkSetMasterByIndex(l, bondIdx); err != nil {
			return kernelErr(fmt.Sprintf("enslave %s to %s", n, s.name), err)
		}
	}
	if p, ok := s.opts["primary"]; ok && (b == nil || b.Bond["primary"] != p) {
		nb := newBond(s.name, bondIdx)
		if err := setBondOption(nb, "primary", p, index); err != nil {
			return err
		}
		if err := ops.LinkModify(nb); err != nil {
			return kernelErr(fmt.Sprintf("set %s primary %s", s.name, p), err)
		}
	}
	if bond, err = byName(s.name); err != nil {
		return err
	}
	if bond.Attrs().Flags&netFlagUp == 0 {
		if err := ops.LinkSetUp(bond); err != nil {
			return kernelErr("set "+s.name+" up", err)
		}
	}
	for _, n := range s.slaves {
		l, err := byName(n)
		if err != nil {
			return err
		}
		if l.Attrs().Flags&netFlagUp == 0 {
			if err := ops.LinkSetUp(l); err != nil {
				return kernelErr("set "+n+" up", err)
			}
		}
		if s.mtu.set && !s.mtu.auto && l.Attrs().MTU != s.mtu.n {
			if err := ops.LinkSetMTU(l, s.mtu.n); err != nil {
				return kernelErr(fmt.Sprintf("set %s mtu %d", n, s.mtu.n), err)
			}
		}
	}
	return addAddrs(ops, bond, s.addrs)
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
	s, errs := parseBond(args)
	if len(errs) > 0 {
		return nil, errs[0]
	}
	f := newHostFS(b.root)
	res := &modules.Result{}
	data := bondResult{Slaves: []string{}, LACP: cty.NullVal(cty.DynamicPseudoType)}

	var rtDrift []string
	var rtBefore, rtAfter string
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
		if rtDrift, err = bondRuntimeDrift(s, snap); err != nil {
			return nil, err
		}
		rtBefore = describeBond(s, snap)
		rtAfter = rtBefore
		if len(rtDrift) > 0 && apply {
			if err := applyBond(ops, s, snap); err != nil {
				return nil, err
			}
		}
		if apply {
			if snap, err = readBondSnap(ops, s); err != nil {
				return nil, err
			}
			rtAfter = describeBond(s, snap)
		} else if len(rtDrift) > 0 {
			rtAfter = describeBond(s, predictBond(s, snap))
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

	p, err := runPersist(ctx, f, s.backend, s.wants(), apply)
	if err != nil {
		return nil, err
	}

	if state, ok, exists := lacpState(f, s.name); exists {
		if data.LACP, err = anyValue(state); err != nil {
			return nil, fmt.Errorf("lacp state of %s: %w", s.name, err)
		}
		data.LACPOK = ok
		if s.runtime && state["mode"] == "802.3ad" && !ok && len(rtDrift) == 0 {
			res.Warnings = append(res.Warnings, lacpProblem(state))
		}
	}
	finish(res, apply, "bond "+s.name, rtDrift, rtBefore, rtAfter, p)
	data.Backend, data.RuntimeDrift, data.PersistentDrift, data.Files = p.backend, orEmpty(rtDrift), orEmpty(p.drift), orEmpty(p.files())
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

// predictBond is the state apply would leave, for check mode's diff.
func predictBond(s *bondSpec, snap *bondSnap) *bondSnap {
	out := &bondSnap{links: map[string]*kernelLink{}}
	b := &kernelLink{Name: s.name, Type: "bond", MTU: defaultMTU, Bond: map[string]string{}}
	if snap.bond != nil {
		c := *snap.bond
		b = &c
		b.Bond = map[string]string{}
		for k, v := range snap.bond.Bond {
			b.Bond[k] = v
		}
	}
	for k, v := range s.opts {
		b.Bond[k] = v
	}
	b.Up, b.Slaves = true, slices.Sorted(slices.Values(s.slaves))
	if s.mtu.set && !s.mtu.auto {
		b.MTU = s.mtu.n
	}
	for _, a := range s.addrs {
		if !contains(b.Addrs, a) {
			b.Addrs = append(b.Addrs, a)
		}
	}
	out.bond = b
	for n, l := range snap.links {
		if l == nil {
			continue
		}
		c := *l
		if contains(s.slaves, n) {
			c.Master, c.Up = s.name, true
			if s.mtu.set && !s.mtu.auto {
				c.MTU = s.mtu.n
			}
		} else if c.Master == s.name {
			c.Master = ""
		}
		out.links[n] = &c
	}
	return out
}
