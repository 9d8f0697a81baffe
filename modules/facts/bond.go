package facts

import (
	"cmp"
	"strconv"
	"strings"
)

// procBond is what /proc/net/bonding/BOND says. sysfs is read first; this fills what sysfs
// leaves empty (the kernel hides the 802.3ad aggregator and partner from sysfs readers
// without CAP_NET_ADMIN, and old kernels lack some attributes).
type procBond struct {
	// bond holds the bond's own lines, by key ("Bonding Mode", "LACP rate", ...); the
	// "Active Aggregator Info" block's keys are prefixed "active ".
	bond map[string]string
	// slaves holds each "Slave Interface" section, by slave name.
	slaves map[string]map[string]string
	order  []string
}

func parseProcBonding(text string) procBond {
	p := procBond{bond: map[string]string{}, slaves: map[string]map[string]string{}}
	cur := p.bond
	prefix := ""
	for _, line := range strings.Split(text, "\n") {
		if strings.TrimSpace(line) == "" {
			prefix = ""
			continue
		}
		indented := line[0] == ' ' || line[0] == '\t'
		k, v, ok := strings.Cut(strings.TrimSpace(line), ":")
		if !ok {
			continue
		}
		k, v = strings.TrimSpace(k), strings.TrimSpace(v)
		switch {
		case k == "Slave Interface":
			cur = map[string]string{}
			p.slaves[v] = cur
			p.order = append(p.order, v)
			prefix = ""
			continue
		case k == "Active Aggregator Info" && v == "":
			prefix = "active "
			continue
		case strings.HasPrefix(k, "details ") && v == "":
			// Per-slave LACP PDU details: a nested block we do not report.
			prefix = "details "
			continue
		}
		if prefix != "" && !indented {
			prefix = ""
		}
		if _, dup := cur[prefix+k]; !dup {
			cur[prefix+k] = v
		}
	}
	return p
}

// procBondModes maps the mode text of /proc/net/bonding to the names sysfs and runbooks use.
var procBondModes = map[string]string{
	"load balancing (round-robin)":          "balance-rr",
	"fault-tolerance (active-backup)":       "active-backup",
	"load balancing (xor)":                  "balance-xor",
	"fault-tolerance (broadcast)":           "broadcast",
	"IEEE 802.3ad Dynamic link aggregation": "802.3ad",
	"transmit load balancing":               "balance-tlb",
	"adaptive load balancing":               "balance-alb",
}

// firstField reads sysfs values such as "802.3ad 4" or "fast 1" by their name.
func firstField(s string) string {
	if f := strings.Fields(s); len(f) > 0 {
		return f[0]
	}
	return ""
}

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
	p := parseProcBonding(f.str("/proc/net/bonding/" + name))
	slaves := []any{}
	names := strings.Fields(f.str(d + "slaves"))
	if len(names) == 0 {
		names = p.order
	}
	for _, s := range names {
		slaves = append(slaves, s)
	}
	hash := firstField(f.str(d + "xmit_hash_policy"))
	if hash == "" {
		hash = firstField(p.bond["Transmit Hash Policy"])
	}
	return map[string]any{
		"mode":             cmp.Or(firstField(f.str(d+"mode")), procBondModes[p.bond["Bonding Mode"]]),
		"slaves":           slaves,
		"active_slave":     cmp.Or(f.str(d+"active_slave"), p.bond["Currently Active Slave"]),
		"mii_status":       cmp.Or(f.str(d+"mii_status"), p.bond["MII Status"]),
		"miimon":           orInt(cmp.Or(f.str(d+"miimon"), p.bond["MII Polling Interval (ms)"])),
		"lacp_rate":        cmp.Or(firstField(f.str(d+"lacp_rate")), p.bond["LACP rate"]),
		"xmit_hash_policy": hash,
		"ad_aggregator":    orInt(cmp.Or(f.str(d+"ad_aggregator"), p.bond["active Aggregator ID"])),
		"ad_num_ports":     orInt(cmp.Or(f.str(d+"ad_num_ports"), p.bond["active Number of ports"])),
		"ad_partner_mac":   cmp.Or(f.str(d+"ad_partner_mac"), p.bond["active Partner Mac Address"]),
	}
}

// readBondSlave reads an enslaved NIC's side from /sys/class/net/NIC/bonding_slave, with
// the master's /proc/net/bonding section filling the gaps.
func readBondSlave(f rootFS, name, master string) map[string]any {
	d := "/sys/class/net/" + name + "/bonding_slave/"
	p := parseProcBonding(f.str("/proc/net/bonding/" + master)).slaves[name]
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
