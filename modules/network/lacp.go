package network

import (
	"cmp"
	"path"
	"strconv"
	"strings"

	"github.com/runbook/runbook/modules/internal/bonding"
)

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
func lacpState(f *fileTree, bond string) (state map[string]any, ok, exists bool) {
	dir := path.Join("/sys/class/net", bond, "bonding")
	read := func(p string) string {
		s, _, _ := f.read(p)
		return strings.TrimSpace(s)
	}
	procText, procFound, _ := f.read(path.Join("/proc/net/bonding", bond))
	if !f.exists(dir) && !procFound {
		return nil, false, false
	}
	proc := bonding.Parse(procText)

	mode := cmp.Or(bonding.FirstField(read(path.Join(dir, "mode"))), proc.Mode())
	names := strings.Fields(read(path.Join(dir, "slaves")))
	if len(names) == 0 {
		for _, s := range proc.Slaves {
			names = append(names, s.Name)
		}
	}
	activeAgg := atoiOr(read(path.Join(dir, "ad_aggregator")), atoiOr(proc.Active["Aggregator ID"], 0))
	bondPartner := cmp.Or(read(path.Join(dir, "ad_partner_mac")), proc.Active["Partner Mac Address"])

	slaves := map[string]any{}
	var aggs []int
	allPartners := len(names) > 0
	for _, n := range names {
		sd := path.Join("/sys/class/net", n, "bonding_slave")
		ps := proc.Slave(n)
		agg := atoiOr(read(path.Join(sd, "ad_aggregator_id")), atoiOr(ps.Fields["Aggregator ID"], 0))
		actor := atoiOr(read(path.Join(sd, "ad_actor_oper_port_state")), atoiOr(ps.Actor["port state"], 0))
		partner := atoiOr(read(path.Join(sd, "ad_partner_oper_port_state")), atoiOr(ps.Partner["port state"], 0))
		// sysfs has no per-port partner; the last LACPDU's system MAC is in /proc. Without
		// it, a port in the active aggregator has the aggregator's partner.
		partnerMAC := strings.ToLower(ps.Partner["system mac address"])
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
			"mii_status":           cmp.Or(read(path.Join(sd, "mii_status")), ps.Fields["MII Status"]),
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

func atoiOr(s string, def int) int {
	n, err := strconv.Atoi(strings.TrimSpace(s))
	if err != nil {
		return def
	}
	return n
}
