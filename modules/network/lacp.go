package network

import (
	"cmp"
	"path"
	"strconv"
	"strings"
)

// procBonding is what /proc/net/bonding/BOND says. runbook reads sysfs first; this file
// fills what sysfs does not have (each port's partner, from the last LACPDU it received)
// and stands in for sysfs where that is missing.
type procBonding struct {
	bond   map[string]string // the bond's own lines by key ("Bonding Mode", "LACP rate", ...)
	active map[string]string // the "Active Aggregator Info" block
	slaves []*procSlave
}

type procSlave struct {
	name    string
	fields  map[string]string
	actor   map[string]string // "details actor lacp pdu"
	partner map[string]string // "details partner lacp pdu"
}

func parseProcBonding(text string) *procBonding {
	p := &procBonding{bond: map[string]string{}, active: map[string]string{}}
	cur := p.bond
	var slave *procSlave
	block := map[string]string(nil) // an indented block under a "...:" header
	for _, line := range strings.Split(text, "\n") {
		if strings.TrimSpace(line) == "" {
			block = nil
			continue
		}
		indented := line[0] == ' ' || line[0] == '\t'
		k, v, ok := strings.Cut(strings.TrimSpace(line), ":")
		if !ok {
			continue
		}
		k, v = strings.TrimSpace(k), strings.TrimSpace(v)
		if !indented {
			block = nil
		}
		switch {
		case k == "Slave Interface" && !indented:
			slave = &procSlave{name: v, fields: map[string]string{}, actor: map[string]string{}, partner: map[string]string{}}
			p.slaves = append(p.slaves, slave)
			cur = slave.fields
			continue
		case k == "Active Aggregator Info" && v == "":
			block = p.active
			continue
		case slave != nil && k == "details actor lacp pdu" && v == "":
			block = slave.actor
			continue
		case slave != nil && k == "details partner lacp pdu" && v == "":
			block = slave.partner
			continue
		}
		target := cur
		if indented && block != nil {
			target = block
		}
		if _, dup := target[k]; !dup {
			target[k] = v
		}
	}
	return p
}

func (p *procBonding) slave(name string) *procSlave {
	for _, s := range p.slaves {
		if s.name == name {
			return s
		}
	}
	return nil
}

// procBondModes maps /proc's mode text to the kernel's mode names.
var procBondModes = map[string]string{
	"load balancing (round-robin)":          "balance-rr",
	"fault-tolerance (active-backup)":       "active-backup",
	"load balancing (xor)":                  "balance-xor",
	"fault-tolerance (broadcast)":           "broadcast",
	"IEEE 802.3ad Dynamic link aggregation": "802.3ad",
	"transmit load balancing":               "balance-tlb",
	"adaptive load balancing":               "balance-alb",
}

// zeroMAC is what the kernel shows for a partner it has not heard from.
const zeroMAC = "00:00:00:00:00:00"

// lacpPortFlags names the bits of an 802.3ad port state, lowest first.
var lacpPortFlags = []string{"activity", "short_timeout", "aggregation", "synchronization", "collecting", "distributing", "defaulted", "expired"}

func portFlags(state int) []any {
	out := []any{}
	for i, n := range lacpPortFlags {
		if state&(1<<i) != 0 {
			out = append(out, n)
		}
	}
	return out
}

// lacpState reads the negotiated 802.3ad state of a bond: per slave its aggregator, its
// partner's system MAC and both sides' port states, and whether the aggregation is whole
// (lacp_ok: every slave in one aggregator, each with a partner). exists is false when the
// host has no such bond.
func lacpState(f *hostFS, bond string) (state map[string]any, ok, exists bool) {
	dir := path.Join("/sys/class/net", bond, "bonding")
	read := func(p string) string {
		s, _, _ := f.read(p)
		return strings.TrimSpace(s)
	}
	procText, procFound, _ := f.read(path.Join("/proc/net/bonding", bond))
	if !f.exists(dir) && !procFound {
		return nil, false, false
	}
	proc := parseProcBonding(procText)

	mode := firstField(read(path.Join(dir, "mode")))
	if mode == "" {
		mode = procBondModes[proc.bond["Bonding Mode"]]
	}
	names := strings.Fields(read(path.Join(dir, "slaves")))
	if len(names) == 0 {
		for _, s := range proc.slaves {
			names = append(names, s.name)
		}
	}
	activeAgg := atoiOr(read(path.Join(dir, "ad_aggregator")), atoiOr(proc.active["Aggregator ID"], 0))
	bondPartner := cmp.Or(read(path.Join(dir, "ad_partner_mac")), proc.active["Partner Mac Address"])

	slaves := map[string]any{}
	var aggs []int
	allPartners := len(names) > 0
	for _, n := range names {
		sd := path.Join("/sys/class/net", n, "bonding_slave")
		ps := proc.slave(n)
		if ps == nil {
			ps = &procSlave{fields: map[string]string{}, actor: map[string]string{}, partner: map[string]string{}}
		}
		agg := atoiOr(read(path.Join(sd, "ad_aggregator_id")), atoiOr(ps.fields["Aggregator ID"], 0))
		actor := atoiOr(read(path.Join(sd, "ad_actor_oper_port_state")), atoiOr(ps.actor["port state"], 0))
		partner := atoiOr(read(path.Join(sd, "ad_partner_oper_port_state")), atoiOr(ps.partner["port state"], 0))
		// sysfs has no per-port partner; the last LACPDU's system MAC is in /proc. Without
		// it, a port in the active aggregator has the aggregator's partner.
		partnerMAC := strings.ToLower(ps.partner["system mac address"])
		if partnerMAC == "" && agg != 0 && agg == activeAgg {
			partnerMAC = strings.ToLower(bondPartner)
		}
		if partnerMAC == "" {
			partnerMAC = zeroMAC
		}
		if partnerMAC == zeroMAC {
			allPartners = false
		}
		aggs = append(aggs, agg)
		slaves[n] = map[string]any{
			"aggregator_id":        agg,
			"partner_mac":          partnerMAC,
			"actor_oper_state":     actor,
			"actor_oper_flags":     portFlags(actor),
			"partner_oper_state":   partner,
			"partner_oper_flags":   portFlags(partner),
			"mii_status":           cmp.Or(read(path.Join(sd, "mii_status")), ps.fields["MII Status"]),
			"in_active_aggregator": agg != 0 && agg == activeAgg,
		}
	}
	oneAgg := len(aggs) > 0 && aggs[0] != 0
	for _, a := range aggs {
		oneAgg = oneAgg && a == aggs[0]
	}
	ok = mode == "802.3ad" && oneAgg && allPartners
	return map[string]any{
		"mode":                 mode,
		"active_aggregator_id": activeAgg,
		"partner_mac":          strings.ToLower(cmp.Or(bondPartner, zeroMAC)),
		"slaves":               slaves,
	}, ok, true
}

func firstField(s string) string {
	if f := strings.Fields(s); len(f) > 0 {
		return f[0]
	}
	return ""
}

func atoiOr(s string, def int) int {
	n, err := strconv.Atoi(strings.TrimSpace(s))
	if err != nil {
		return def
	}
	return n
}
