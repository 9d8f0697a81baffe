package network

import (
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"
)

// A bond option's values, as the kernel names and numbers them. The kernel accepts either
// form (sysfs, BONDING_OPTS, NetworkManager); runbook compares by name.
type optTable []string

// Kernel bond modes, indexed by their number.
var bondModes = optTable{"balance-rr", "active-backup", "balance-xor", "broadcast", "802.3ad", "balance-tlb", "balance-alb"}

var (
	lacpRates  = optTable{"slow", "fast"}
	xmitHashes = optTable{"layer2", "layer3+4", "layer2+3", "encap2+3", "encap3+4", "vlan+srcmac"}
	adSelects  = optTable{"stable", "bandwidth", "count"}
)

// bondOption is what runbook knows of a bond option it manages: its values, the modes it
// means something in, and when the kernel takes it (drivers/net/bonding/bond_options.c and
// Documentation/networking/bonding.rst).
type bondOption struct {
	name string
	// values names the option's values by the kernel's numbers; nil for a plain number
	// (numeric) or an interface name (primary).
	values  optTable
	numeric bool
	// modes are the modes the option means something in, as the kernel's documentation
	// states it; a task that sets it for another mode is refused. nil: every mode. (The
	// kernel itself refuses lacp_rate and primary outside their modes, and takes
	// xmit_hash_policy and ad_select in any mode, where they do nothing.)
	modes []string
	// needsDown: the kernel changes it only while the bond is down; needsNoSlaves: only
	// without slaves as well.
	needsDown, needsNoSlaves bool
}

// bondOptions are the options runbook manages, in the order they are applied: mode first,
// since the others depend on it. It is the one statement of the rules: validation, apply,
// the argument docs and the messages all read it.
var bondOptions = []bondOption{
	{name: "mode", values: bondModes, needsDown: true, needsNoSlaves: true},
	{name: "miimon", numeric: true},
	{name: "lacp_rate", values: lacpRates, modes: []string{"802.3ad"}, needsDown: true},
	{name: "xmit_hash_policy", values: xmitHashes, modes: []string{"balance-xor", "802.3ad", "balance-tlb"}},
	{name: "ad_select", values: adSelects, modes: []string{"802.3ad"}, needsDown: true},
	{name: "min_links", numeric: true},
	{name: "primary", modes: []string{"active-backup", "balance-tlb", "balance-alb"}},
}

// bondOpt returns the rules of a managed option; ok is false for one runbook does not
// manage (kept verbatim in files).
func bondOpt(name string) (bondOption, bool) {
	for _, o := range bondOptions {
		if o.name == name {
			return o, true
		}
	}
	return bondOption{}, false
}

// allowedIn says whether the option means something in mode.
func (o bondOption) allowedIn(mode string) bool {
	return o.modes == nil || slices.Contains(o.modes, mode)
}

// modesText names the option's modes for messages: "802.3ad", "balance-xor, 802.3ad and
// balance-tlb".
func (o bondOption) modesText() string {
	if len(o.modes) < 2 {
		return strings.Join(o.modes, "")
	}
	return strings.Join(o.modes[:len(o.modes)-1], ", ") + " and " + o.modes[len(o.modes)-1]
}

// optDoc starts an option's argument doc with the modes it applies to.
func optDoc(name, doc string) string {
	o, _ := bondOpt(name)
	switch len(o.modes) {
	case 0:
		return doc
	case 1:
		return o.modesText() + " only: " + doc
	}
	return o.modesText() + ": " + doc
}

// optNames lists the managed options that satisfy keep, in table order.
func optNames(keep func(bondOption) bool) []string {
	var out []string
	for _, o := range bondOptions {
		if keep(o) {
			out = append(out, o.name)
		}
	}
	return out
}

// lookup turns a name or number into the canonical name.
func (t optTable) lookup(v string) (string, bool) {
	v = strings.ToLower(strings.TrimSpace(v))
	for _, n := range t {
		if n == v {
			return n, true
		}
	}
	if i, err := strconv.Atoi(v); err == nil && i >= 0 && i < len(t) {
		return t[i], true
	}
	return "", false
}

// number returns the kernel's number for a canonical name, or -1.
func (t optTable) number(name string) int {
	for i, n := range t {
		if n == name {
			return i
		}
	}
	return -1
}

// normBondOption returns the canonical form of a bond option's value: a name for modes and
// policies ("4" → "802.3ad"), a decimal number for intervals, the value itself otherwise
// (an option runbook does not manage is kept verbatim, so files can carry it).
func normBondOption(name, value string) (string, error) {
	name = strings.ToLower(strings.ReplaceAll(strings.TrimSpace(name), "-", "_"))
	value = strings.TrimSpace(value)
	o, _ := bondOpt(name)
	if t := o.values; t != nil {
		// sysfs shows "802.3ad 4": the name and its number.
		if f := strings.Fields(value); len(f) == 2 {
			if a, ok := t.lookup(f[0]); ok {
				if b, ok := t.lookup(f[1]); ok && a == b {
					return a, nil
				}
			}
		}
		if v, ok := t.lookup(value); ok {
			return v, nil
		}
		return "", fmt.Errorf("%q is not a valid %s (one of: %s, or their numbers 0-%d)", value, name, strings.Join(t, ", "), len(t)-1)
	}
	if o.numeric {
		n, err := strconv.Atoi(value)
		if err != nil || n < 0 {
			return "", fmt.Errorf("%s must be a whole number of 0 or more, not %q", name, value)
		}
		return strconv.Itoa(n), nil
	}
	return value, nil
}

// normOptName turns "bond-lacp-rate", "LACP_RATE" or "lacp-rate" into "lacp_rate".
func normOptName(name string) string {
	name = strings.ToLower(strings.TrimSpace(name))
	name = strings.TrimPrefix(name, "bond-")
	name = strings.TrimPrefix(name, "bond_")
	return strings.ReplaceAll(name, "-", "_")
}

// sortedOptNames lists option names in the order they must be applied: mode first (other
// options depend on it), then the ones runbook knows, then the rest by name.
func sortedOptNames(opts map[string]string) []string {
	var out []string
	seen := map[string]bool{}
	for _, o := range bondOptions {
		if _, ok := opts[o.name]; ok {
			out = append(out, o.name)
			seen[o.name] = true
		}
	}
	var rest []string
	for n := range opts {
		if !seen[n] {
			rest = append(rest, n)
		}
	}
	sort.Strings(rest)
	return append(out, rest...)
}

// parseBondingOpts reads a BONDING_OPTS value ("mode=4 miimon=100"). Values are normalised;
// an invalid value of a known option is an error, since the file is then broken.
func parseBondingOpts(s string) (map[string]string, []string, error) {
	opts := map[string]string{}
	var order []string
	for _, f := range strings.Fields(s) {
		k, v, ok := strings.Cut(f, "=")
		if !ok {
			return nil, nil, fmt.Errorf("BONDING_OPTS: %q is not name=value", f)
		}
		k = normOptName(k)
		nv, err := normBondOption(k, v)
		if err != nil {
			return nil, nil, fmt.Errorf("BONDING_OPTS: %w", err)
		}
		if _, dup := opts[k]; !dup {
			order = append(order, k)
		}
		opts[k] = nv
	}
	return opts, order, nil
}
