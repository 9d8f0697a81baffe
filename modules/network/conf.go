package network

import (
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
)

// Kinds of interface the persistent configuration describes.
const (
	kindEthernet = "ethernet"
	kindBond     = "bond"
	kindVLAN     = "vlan"
	kindBridge   = "bridge"
)

// bridgeOpts are the options of a bridge runbook manages.
type bridgeOpts struct {
	STP           bool
	VLANFiltering bool
}

// defaultMTU is what an Ethernet NIC or a bond runs with when nothing sets an MTU. A VLAN
// has no such default: it takes its parent's MTU.
const defaultMTU = 1500

// mtuSpec is a wanted MTU: not managed, "auto" (no MTU in the configuration: the kernel's or
// backend's default), or a number of bytes.
type mtuSpec struct {
	set, auto bool
	n         int
}

func parseMTU(s string) (mtuSpec, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return mtuSpec{}, nil
	}
	if strings.EqualFold(s, "auto") {
		return mtuSpec{set: true, auto: true}, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 68 || n > 65535 {
		return mtuSpec{}, fmt.Errorf(`mtu must be "auto" or a number from 68 to 65535, not %q`, s)
	}
	return mtuSpec{set: true, n: n}, nil
}

func (m mtuSpec) String() string {
	switch {
	case !m.set:
		return "(unmanaged)"
	case m.auto:
		return "auto"
	}
	return strconv.Itoa(m.n)
}

// matchesPersisted compares with an MTU read from a file (0: the file sets none). A file
// without an MTU is in sync with "auto", and with 1500 for an Ethernet NIC or bond, since
// that is what they get; writing 1500 there would change nothing on the host.
func (m mtuSpec) matchesPersisted(kind string, have int) bool {
	switch {
	case !m.set:
		return true
	case m.auto:
		return have == 0
	case have == m.n:
		return true
	}
	return have == 0 && m.n == defaultMTU && kind != kindVLAN
}

// fixed returns the MTU to set on a running link: ok is false when the MTU is not
// managed or is "auto", which leaves the running MTU alone.
func (m mtuSpec) fixed() (n int, ok bool) { return m.n, m.set && !m.auto }

// matchesRuntime compares with the running MTU. "auto" leaves the running MTU alone.
func (m mtuSpec) matchesRuntime(have int) bool {
	return !m.set || m.auto || have == m.n
}

// fmtMTU shows an MTU read from a file.
func fmtMTU(n int) string {
	if n == 0 {
		return "auto"
	}
	return strconv.Itoa(n)
}

// vlanSpec is an 802.1Q sub-interface: its parent link and VLAN id.
type vlanSpec struct {
	Parent string
	ID     int
}

// ifWant is what runbook wants the persistent configuration to say about one interface.
// Fields the task does not manage are left as the files have them.
type ifWant struct {
	Name string
	// Kind "" takes the kind the configuration has (an Ethernet NIC for a new one).
	Kind string
	// Master is the bond this interface is a slave of ("" none); only compared when
	// ManageMaster is set.
	Master       string
	ManageMaster bool
	MTU          mtuSpec
	// Up: brought up at boot; nil leaves it as configured.
	Up *bool
	// Addrs are static addresses in canonical CIDR form; compared when ManageAddrs.
	Addrs       []string
	ManageAddrs bool
	// Bond holds the managed bond options (canonical values), Slaves the bond's slaves.
	Bond   map[string]string
	Slaves []string
	VLAN   *vlanSpec
	// Bridge is the bridge this interface is a port of ("" none); compared only when
	// ManageBridge is set. Bond membership (Master) and bridge membership are apart, so
	// that a bond task leaves its bond's place in a bridge alone.
	Bridge       string
	ManageBridge bool
	// BridgeOpts are a bridge's options (Kind bridge); Slaves are its ports.
	BridgeOpts *bridgeOpts
	// Absent: the interface should have no configuration (its Kind says what to remove).
	Absent bool
}

// ifConf is what a backend's files say about one interface.
type ifConf struct {
	Name string
	Kind string
	// File is the file that holds the configuration (the first one, when several do).
	File   string
	Master string
	MTU    int // 0: none set
	Up     bool
	// Method is how addresses are configured: "static" (the listed addresses, maybe none),
	// "dhcp", or what the backend calls anything else.
	Method string
	Addrs  []string
	Bond   map[string]string
	Slaves []string
	VLAN   *vlanSpec
	// Bridge is the bridge the interface is a port of; BridgeOpts a bridge's options.
	Bridge     string
	BridgeOpts *bridgeOpts
}

// diffConf lists what differs between the wanted and the configured state, one line per
// value, "NAME: what have → want". have nil means the interface has no configuration.
func diffConf(w ifWant, have *ifConf) []string {
	if have == nil {
		return []string{w.Name + ": not configured"}
	}
	var out []string
	add := func(what, from, to string) {
		out = append(out, fmt.Sprintf("%s: %s %s → %s", w.Name, what, from, to))
	}
	if w.Kind != "" && have.Kind != w.Kind {
		add("type", have.Kind, w.Kind)
	}
	if w.ManageMaster && have.Master != w.Master {
		add("master", orNone(have.Master), orNone(w.Master))
	}
	if w.ManageBridge && have.Bridge != w.Bridge {
		add("bridge", orNone(have.Bridge), orNone(w.Bridge))
	}
	if !w.MTU.matchesPersisted(w.Kind, have.MTU) {
		add("mtu", fmtMTU(have.MTU), w.MTU.String())
	}
	if w.Up != nil && *w.Up != have.Up {
		add("start at boot", yesNo(have.Up), yesNo(*w.Up))
	}
	if w.ManageAddrs {
		if have.Method != "static" {
			add("addressing", have.Method, "static")
		}
		if !sameSet(have.Addrs, w.Addrs) {
			add("addresses", listOrNone(have.Addrs), listOrNone(w.Addrs))
		}
	}
	if w.Kind == kindBond {
		for _, k := range sortedOptNames(w.Bond) {
			if have.Bond[k] != w.Bond[k] {
				add(k, orUnset(have.Bond[k]), w.Bond[k])
			}
		}
		if !sameSet(have.Slaves, w.Slaves) {
			add("slaves", listOrNone(slices.Sorted(slices.Values(have.Slaves))), listOrNone(slices.Sorted(slices.Values(w.Slaves))))
		}
	}
	if w.Kind == kindBridge && w.BridgeOpts != nil {
		h := bridgeOpts{}
		if have.BridgeOpts != nil {
			h = *have.BridgeOpts
		}
		if h.STP != w.BridgeOpts.STP {
			add("stp", onOff(h.STP), onOff(w.BridgeOpts.STP))
		}
		if h.VLANFiltering != w.BridgeOpts.VLANFiltering {
			add("vlan_filtering", onOff(h.VLANFiltering), onOff(w.BridgeOpts.VLANFiltering))
		}
		if !sameSet(have.Slaves, w.Slaves) {
			add("ports", listOrNone(slices.Sorted(slices.Values(have.Slaves))), listOrNone(slices.Sorted(slices.Values(w.Slaves))))
		}
	}
	if w.VLAN != nil {
		h := have.VLAN
		if h == nil {
			h = &vlanSpec{}
		}
		if h.Parent != w.VLAN.Parent || h.ID != w.VLAN.ID {
			add("vlan", fmtVLAN(h), fmtVLAN(w.VLAN))
		}
	}
	return out
}

func fmtVLAN(v *vlanSpec) string {
	if v.Parent == "" && v.ID == 0 {
		return "(none)"
	}
	return fmt.Sprintf("%s id %d", v.Parent, v.ID)
}

func orNone(s string) string {
	if s == "" {
		return "(none)"
	}
	return s
}

func orUnset(s string) string {
	if s == "" {
		return "(unset)"
	}
	return s
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

func listOrNone(l []string) string {
	if len(l) == 0 {
		return "(none)"
	}
	return strings.Join(l, ", ")
}

// sameSet compares two lists as sets.
func sameSet(a, b []string) bool {
	x, y := slices.Clone(a), slices.Clone(b)
	slices.Sort(x)
	slices.Sort(y)
	return slices.Equal(slices.Compact(x), slices.Compact(y))
}

// canonPrefix parses an address with its prefix length ("192.0.2.10/24") and returns its
// canonical form; the host part is kept, since it is the address.
func canonPrefix(s string) (string, error) {
	p, err := netip.ParsePrefix(strings.TrimSpace(s))
	if err != nil {
		return "", fmt.Errorf("%q is not an address with a prefix length, such as 192.0.2.10/24: %v", s, err)
	}
	return p.String(), nil
}

// splitFamilies returns the IPv4 and IPv6 addresses of a canonical list.
func splitFamilies(addrs []string) (v4, v6 []string) {
	for _, a := range addrs {
		if p, err := netip.ParsePrefix(a); err == nil && p.Addr().Is4() {
			v4 = append(v4, a)
		} else {
			v6 = append(v6, a)
		}
	}
	return v4, v6
}

// maskBits turns a dotted netmask into a prefix length, or -1.
func maskBits(mask string) int {
	a, err := netip.ParseAddr(strings.TrimSpace(mask))
	if err != nil || !a.Is4() {
		return -1
	}
	b := a.As4()
	n := 0
	seenZero := false
	for _, x := range b {
		for i := 7; i >= 0; i-- {
			if x&(1<<i) != 0 {
				if seenZero {
					return -1
				}
				n++
			} else {
				seenZero = true
			}
		}
	}
	return n
}

// withPrefix joins an address and a prefix length (or netmask) into canonical CIDR form;
// an address without either gets the family's full length, as the backends do.
func withPrefix(addr, prefix string) (string, error) {
	addr = strings.TrimSpace(addr)
	if strings.Contains(addr, "/") {
		return canonPrefix(addr)
	}
	a, err := netip.ParseAddr(addr)
	if err != nil {
		return "", fmt.Errorf("%q is not an IP address", addr)
	}
	prefix = strings.TrimSpace(prefix)
	bits := a.BitLen()
	if prefix != "" {
		if strings.Contains(prefix, ".") {
			bits = maskBits(prefix)
		} else if n, err := strconv.Atoi(prefix); err == nil {
			bits = n
		} else {
			bits = -1
		}
	}
	p, err := a.Prefix(bits)
	if err != nil || bits < 0 {
		return "", fmt.Errorf("%q is not a valid prefix length for %s", prefix, addr)
	}
	return netip.PrefixFrom(a, p.Bits()).String(), nil
}

// absentOtherKind is the warning for an interface that should have no configuration of
// its kind and has one of another: that one is not the task's to remove.
func absentOtherKind(w ifWant, have *ifConf) string {
	return fmt.Sprintf("%s is configured as %s in %s, not as %s: not removed", w.Name, have.Kind, have.File, w.Kind)
}

// kindOr returns the kind a new configuration gets.
func (w ifWant) kindOr() string {
	if w.Kind == "" {
		return kindEthernet
	}
	return w.Kind
}
