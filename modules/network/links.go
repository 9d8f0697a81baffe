package network

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// linkOps is the part of netlink runbook uses; *netlink.Handle implements it, and tests
// give a fake that keeps the kernel's rules.
type linkOps interface {
	LinkByName(name string) (netlink.Link, error)
	LinkByIndex(index int) (netlink.Link, error)
	LinkList() ([]netlink.Link, error)
	LinkAdd(link netlink.Link) error
	LinkModify(link netlink.Link) error
	LinkDel(link netlink.Link) error
	LinkSetUp(link netlink.Link) error
	LinkSetDown(link netlink.Link) error
	LinkSetMTU(link netlink.Link, mtu int) error
	LinkSetMasterByIndex(link netlink.Link, masterIndex int) error
	LinkSetNoMaster(link netlink.Link) error
	AddrList(link netlink.Link, family int) ([]netlink.Addr, error)
	AddrAdd(link netlink.Link, addr *netlink.Addr) error
	AddrDel(link netlink.Link, addr *netlink.Addr) error
	LinkSetVfHardwareAddr(link netlink.Link, vf int, hwaddr net.HardwareAddr) error
	LinkSetVfVlan(link netlink.Link, vf, vlan int) error
	LinkSetVfSpoofchk(link netlink.Link, vf int, check bool) error
	LinkSetVfTrust(link netlink.Link, vf int, state bool) error
	RouteList(link netlink.Link, family int) ([]netlink.Route, error)
	RouteGetWithOptions(destination net.IP, options *netlink.RouteGetOptions) ([]netlink.Route, error)
	// The runtime snapshot of a transaction (rtsnap.go) reads routes in every table and
	// puts them back.
	RouteListFilteredIter(family int, filter *netlink.Route, filterMask uint64, f func(netlink.Route) (cont bool)) error
	RouteAdd(route *netlink.Route) error
	RouteDel(route *netlink.Route) error
}

// opener makes the netlink handle a run uses; tests replace it.
type opener func() (linkOps, func(), error)

// familyAll asks AddrList for every address family (AF_UNSPEC); iffLowerUp is the kernel's
// carrier flag. Both are spelled out so the schemas build on any system.
const (
	familyAll  = 0
	iffLowerUp = 0x10000
)

// isNotFound reports a missing link.
func isNotFound(err error) bool {
	var nf netlink.LinkNotFoundError
	return errors.As(err, &nf) || errors.Is(err, unix.ENODEV)
}

// kernelLink is a link as the kernel runs it, in runbook's terms.
type kernelLink struct {
	Name    string
	Index   int
	Type    string // netlink's kind: "device", "bond", "vlan", "veth", ...
	MTU     int
	Up      bool // administratively up
	Carrier bool
	Master  string
	// Bond options by the kernel's names, canonical values (bonds only).
	Bond   map[string]string
	Slaves []string
	VLAN   *vlanSpec
	// BridgeOpts are a bridge's options (bridges only; STP is read by bridgeSTP).
	BridgeOpts *bridgeOpts
	Addrs      []string // global-scope addresses, canonical CIDR
	link       netlink.Link
}

// readLink reads a link; ok is false when there is none of that name.
func readLink(ops linkOps, name string) (*kernelLink, bool, error) {
	l, err := ops.LinkByName(name)
	if isNotFound(err) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("read link %s: %w", name, err)
	}
	a := l.Attrs()
	r := &kernelLink{Name: a.Name, Index: a.Index, Type: l.Type(), MTU: a.MTU, Up: a.Flags&net.FlagUp != 0,
		Carrier: a.OperState == netlink.OperUp || a.RawFlags&iffLowerUp != 0, link: l}
	if a.MasterIndex != 0 {
		m, err := ops.LinkByIndex(a.MasterIndex)
		if err != nil {
			return nil, false, fmt.Errorf("read master of %s: %w", name, err)
		}
		r.Master = m.Attrs().Name
	}
	switch x := l.(type) {
	case *netlink.Bond:
		r.Bond = runningBondOptions(ops, x)
	case *netlink.Bridge:
		r.BridgeOpts = &bridgeOpts{VLANFiltering: x.VlanFiltering != nil && *x.VlanFiltering}
	case *netlink.Vlan:
		p, err := ops.LinkByIndex(a.ParentIndex)
		parent := ""
		if err == nil {
			parent = p.Attrs().Name
		}
		r.VLAN = &vlanSpec{Parent: parent, ID: x.VlanId}
	}
	addrs, err := ops.AddrList(l, familyAll)
	if err != nil {
		return nil, false, fmt.Errorf("read addresses of %s: %w", name, err)
	}
	for _, ad := range addrs {
		if c, ok := globalAddr(ad); ok {
			r.Addrs = append(r.Addrs, c)
		}
	}
	return r, true, nil
}

// globalAddr returns an address runbook manages: not link-local (the kernel makes those).
func globalAddr(a netlink.Addr) (string, bool) {
	if a.IPNet == nil {
		return "", false
	}
	ip, ok := netip.AddrFromSlice(a.IP)
	if !ok {
		return "", false
	}
	ip = ip.Unmap()
	if ip.IsLinkLocalUnicast() {
		return "", false
	}
	ones, _ := a.Mask.Size()
	return netip.PrefixFrom(ip, ones).String(), true
}

func parseAddr(cidr string) (*netlink.Addr, error) {
	p, err := netip.ParsePrefix(cidr)
	if err != nil {
		return nil, err
	}
	ip := net.IP(p.Addr().AsSlice())
	return &netlink.Addr{IPNet: &net.IPNet{IP: ip, Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}}, nil
}

// runningBondOptions reads the options runbook manages from a bond's netlink attributes.
func runningBondOptions(ops linkOps, b *netlink.Bond) map[string]string {
	out := map[string]string{}
	if int(b.Mode) >= 0 && int(b.Mode) < len(bondModes) {
		out["mode"] = bondModes[b.Mode]
	}
	if int(b.LacpRate) >= 0 && int(b.LacpRate) < len(lacpRates) {
		out["lacp_rate"] = lacpRates[b.LacpRate]
	}
	if int(b.XmitHashPolicy) >= 0 && int(b.XmitHashPolicy) < len(xmitHashes) {
		out["xmit_hash_policy"] = xmitHashes[b.XmitHashPolicy]
	}
	if int(b.AdSelect) >= 0 && int(b.AdSelect) < len(adSelects) {
		out["ad_select"] = adSelects[b.AdSelect]
	}
	if b.Miimon >= 0 {
		out["miimon"] = strconv.Itoa(b.Miimon)
	}
	if b.MinLinks >= 0 {
		out["min_links"] = strconv.Itoa(b.MinLinks)
	}
	out["primary"] = ""
	if b.Primary > 0 {
		if p, err := ops.LinkByIndex(b.Primary); err == nil {
			out["primary"] = p.Attrs().Name
		}
	}
	return out
}

// setBondOption puts one canonical option value into a netlink bond message.
func setBondOption(b *netlink.Bond, name, value string, index func(string) (int, error)) error {
	n := 0
	if o, _ := bondOpt(name); o.values != nil {
		n = o.values.number(value)
	} else if o.numeric {
		n, _ = strconv.Atoi(value)
	}
	switch name {
	case "mode":
		b.Mode = netlink.BondMode(n)
	case "lacp_rate":
		b.LacpRate = netlink.BondLacpRate(n)
	case "xmit_hash_policy":
		b.XmitHashPolicy = netlink.BondXmitHashPolicy(n)
	case "ad_select":
		b.AdSelect = netlink.BondAdSelect(n)
	case "miimon":
		b.Miimon = n
	case "min_links":
		b.MinLinks = n
	case "primary":
		i := 0
		if value != "" {
			var err error
			if i, err = index(value); err != nil {
				return err
			}
		}
		b.Primary = i
	default:
		return fmt.Errorf("bond option %s cannot be set", name)
	}
	return nil
}

// kernelErr explains the errors the kernel gives for links in words that say what to do.
func kernelErr(what string, err error) error {
	switch {
	case errors.Is(err, unix.EOPNOTSUPP) && strings.Contains(what, "create bond"):
		return fmt.Errorf("%s: %w (does the kernel have the bonding driver? modprobe bonding)", what, err)
	case errors.Is(err, unix.EOPNOTSUPP) && strings.Contains(what, "vlan_filtering"):
		return fmt.Errorf("%s: %w (the kernel has no VLAN filtering for bridges: it was built without CONFIG_BRIDGE_VLAN_FILTERING)", what, err)
	case errors.Is(err, unix.EOPNOTSUPP) && strings.Contains(what, "create bridge"):
		return fmt.Errorf("%s: %w (does the kernel have the bridge driver? modprobe bridge)", what, err)
	case errors.Is(err, unix.EOPNOTSUPP) && strings.Contains(what, "create VLAN"):
		return fmt.Errorf("%s: %w (does the kernel have 802.1Q support? modprobe 8021q)", what, err)
	}
	return fmt.Errorf("%s: %w", what, err)
}

// netFlagUp is the administrative up flag in LinkAttrs.Flags.
const netFlagUp = net.FlagUp
