package facts

import (
	"cmp"
	"strconv"
	"strings"

	"github.com/runbook/runbook/modules/internal/bonding"
)

// orInt parses a number, or returns nil (JSON null).
func orInt(s string) any {
	n, err := strconv.Atoi(strings.TrimSpace(s))
	if err != nil {
		return nil
	}
	return n
}

// readBond reads a bond's state from /sys/class/net/BOND/bonding, with /proc/net/bonding
// filling the gaps.
func readBond(f rootFS, name string) map[string]any {
	d := "/sys/class/net/" + name + "/bonding/"
	p := f.bondReport(name)
	slaves := []any{}
	names := strings.Fields(f.str(d + "slaves"))
	if len(names) == 0 {
		for _, s := range p.Slaves {
			names = append(names, s.Name)
		}
	}
	for _, s := range names {
		slaves = append(slaves, s)
	}
	hash := bonding.FirstField(f.str(d + "xmit_hash_policy"))
	if hash == "" {
		hash = bonding.FirstField(p.Bond["Transmit Hash Policy"])
	}
	return map[string]any{
		"mode":             cmp.Or(bonding.FirstField(f.str(d+"mode")), p.Mode()),
		"slaves":           slaves,
		"active_slave":     cmp.Or(f.str(d+"active_slave"), p.Bond["Currently Active Slave"]),
		"mii_status":       cmp.Or(f.str(d+"mii_status"), p.Bond["MII Status"]),
		"miimon":           orInt(cmp.Or(f.str(d+"miimon"), p.Bond["MII Polling Interval (ms)"])),
		"lacp_rate":        cmp.Or(bonding.FirstField(f.str(d+"lacp_rate")), p.Bond["LACP rate"]),
		"xmit_hash_policy": hash,
		"ad_aggregator":    orInt(cmp.Or(f.str(d+"ad_aggregator"), p.Active["Aggregator ID"])),
		"ad_num_ports":     orInt(cmp.Or(f.str(d+"ad_num_ports"), p.Active["Number of ports"])),
		"ad_partner_mac":   cmp.Or(f.str(d+"ad_partner_mac"), p.Active["Partner Mac Address"]),
	}
}

// bondReport parses /proc/net/bonding/BOND once per gathering.
func (f rootFS) bondReport(bond string) *bonding.Report {
	if r := f.bonds[bond]; r != nil {
		return r
	}
	r := bonding.Parse(f.str("/proc/net/bonding/" + bond))
	if f.bonds != nil {
		f.bonds[bond] = r
	}
	return r
}

// readBondSlave reads an enslaved NIC's side from /sys/class/net/NIC/bonding_slave, with
// the master's /proc/net/bonding section filling the gaps.
func readBondSlave(f rootFS, name, master string) map[string]any {
	d := "/sys/class/net/" + name + "/bonding_slave/"
	p := f.bondReport(master).Slave(name).Fields
	return map[string]any{
		"state":              f.str(d + "state"),
		"mii_status":         cmp.Or(f.str(d+"mii_status"), p["MII Status"]),
		"link_failure_count": orInt(cmp.Or(f.str(d+"link_failure_count"), p["Link Failure Count"])),
		"perm_hwaddr":        cmp.Or(f.str(d+"perm_hwaddr"), p["Permanent HW addr"]),
		"ad_aggregator_id":   orInt(cmp.Or(f.str(d+"ad_aggregator_id"), p["Aggregator ID"])),
		// Filled in once the master is read: whether this port is in the aggregator
		// that carries the bond's traffic (a port in another one carries nothing).
		"in_active_aggregator": nil,
	}
}
