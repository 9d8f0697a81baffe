package network

import (
	"fmt"
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
	lacpRates     = optTable{"slow", "fast"}
	xmitHashes    = optTable{"layer2", "layer3+4", "layer2+3", "encap2+3", "encap3+4", "vlan+srcmac"}
	adSelects     = optTable{"stable", "bandwidth", "count"}
	modeNameOrder = []string{"mode", "miimon", "lacp_rate", "xmit_hash_policy", "ad_select", "min_links", "primary"}
)

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

// bondOptionTables are the options whose values are names; the others are numbers
// (miimon, min_links) or an interface name (primary).
var bondOptionTables = map[string]optTable{
	"mode":             bondModes,
	"lacp_rate":        lacpRates,
	"xmit_hash_policy": xmitHashes,
	"ad_select":        adSelects,
}

// bondNumeric are the options runbook manages whose values are plain numbers.
var bondNumeric = map[string]bool{"miimon": true, "min_links": true}

// normBondOption returns the canonical form of a bond option's value: a name for modes and
// policies ("4" → "802.3ad"), a decimal number for intervals, the value itself otherwise
// (an option runbook does not manage is kept verbatim, so files can carry it).
func normBondOption(name, value string) (string, error) {
	name = strings.ToLower(strings.ReplaceAll(strings.TrimSpace(name), "-", "_"))
	value = strings.TrimSpace(value)
	if t, ok := bondOptionTables[name]; ok {
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
	if bondNumeric[name] {
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
	for _, n := range modeNameOrder {
		if _, ok := opts[n]; ok {
			out = append(out, n)
			seen[n] = true
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

// Kernel rules for bond options (drivers/net/bonding/bond_options.c): some can only be set
// while the bond is down, mode only without slaves as well, and some only mean something in
// certain modes.
var (
	optNeedsDown     = map[string]bool{"mode": true, "lacp_rate": true, "ad_select": true}
	optNeedsNoSlaves = map[string]bool{"mode": true}
	// optModes lists the modes an option is accepted in; absent means every mode.
	optModes = map[string][]string{
		"lacp_rate": {"802.3ad"},
		"primary":   {"active-backup", "balance-tlb", "balance-alb"},
	}
)

// optAllowed says whether option name can be set on a bond in mode.
func optAllowed(name, mode string) bool {
	modes, ok := optModes[name]
	if !ok {
		return true
	}
	for _, m := range modes {
		if m == mode {
			return true
		}
	}
	return false
}
