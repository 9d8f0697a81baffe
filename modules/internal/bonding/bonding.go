// Package bonding reads the bonding driver's report in /proc/net/bonding/BOND. The facts
// module and the bond module read sysfs first and fall back on it for what sysfs lacks: the
// kernel hides the 802.3ad aggregator and partner from sysfs readers without CAP_NET_ADMIN,
// has no per-port partner in sysfs at all, and old kernels lack some attributes.
package bonding

import "strings"

// Report is what /proc/net/bonding/BOND says.
type Report struct {
	// Bond holds the bond's own lines by key ("Bonding Mode", "LACP rate", ...).
	Bond map[string]string
	// Active holds the "Active Aggregator Info" block ("Aggregator ID", "Partner Mac
	// Address", ...).
	Active map[string]string
	// Slaves are the "Slave Interface" sections, in the report's order.
	Slaves []*Slave
}

// Slave is one "Slave Interface" section.
type Slave struct {
	Name    string
	Fields  map[string]string // the section's own lines ("MII Status", "Aggregator ID", ...)
	Actor   map[string]string // the "details actor lacp pdu" block
	Partner map[string]string // the "details partner lacp pdu" block
}

func newSlave(name string) *Slave {
	return &Slave{Name: name, Fields: map[string]string{}, Actor: map[string]string{}, Partner: map[string]string{}}
}

// Parse reads a report; text that is not one gives an empty Report. Where a key repeats
// within a section, the first value stands.
func Parse(text string) *Report {
	r := &Report{Bond: map[string]string{}, Active: map[string]string{}}
	cur := r.Bond
	var slave *Slave
	var block map[string]string // an indented block under a "...:" header
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
			slave = newSlave(v)
			r.Slaves = append(r.Slaves, slave)
			cur = slave.Fields
			continue
		case k == "Active Aggregator Info" && v == "":
			block = r.Active
			continue
		case slave != nil && k == "details actor lacp pdu" && v == "":
			block = slave.Actor
			continue
		case slave != nil && k == "details partner lacp pdu" && v == "":
			block = slave.Partner
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
	return r
}

// Slave returns the section of the named slave, or an empty one when the report has none.
func (r *Report) Slave(name string) *Slave {
	for _, s := range r.Slaves {
		if s.Name == name {
			return s
		}
	}
	return newSlave(name)
}

// Mode is the bond's mode by the name sysfs and runbooks use ("802.3ad"), or "".
func (r *Report) Mode() string {
	return modes[r.Bond["Bonding Mode"]]
}

// modes maps the report's mode text to the kernel's mode names.
var modes = map[string]string{
	"load balancing (round-robin)":          "balance-rr",
	"fault-tolerance (active-backup)":       "active-backup",
	"load balancing (xor)":                  "balance-xor",
	"fault-tolerance (broadcast)":           "broadcast",
	"IEEE 802.3ad Dynamic link aggregation": "802.3ad",
	"transmit load balancing":               "balance-tlb",
	"adaptive load balancing":               "balance-alb",
}

// FirstField reads sysfs values such as "802.3ad 4" or "fast 1" by their name.
func FirstField(s string) string {
	if f := strings.Fields(s); len(f) > 0 {
		return f[0]
	}
	return ""
}
