package testenv

import (
	"context"
	"fmt"
	"net/netip"
	"path/filepath"
)

// Data NIC names inside every host: named like a real dual-port card.
var dataNICs = []string{"ens1f0", "ens1f1"}

// mgmtNIC is the host's interface on the lab bridge.
const mgmtNIC = "eth0"

// hostOffset is where host addresses start in the lab subnet (.1 is the hub).
const hostOffset = 10

// planNetwork fills in names and addresses for st's hosts. Every name carries
// the lab's prefix; interfaces live only inside the lab's namespaces.
func planNetwork(st *State, n int) error {
	p, err := netip.ParsePrefix(st.Subnet)
	if err != nil {
		return fmt.Errorf("lab subnet: %w", err)
	}
	if max := (1 << (32 - p.Bits())) - hostOffset - 2; n > max {
		return fmt.Errorf("lab subnet %s holds at most %d hosts, %d asked", p, max, n)
	}
	st.HubIP = nthAddr(p, 1).String()
	st.HubNS = st.Prefix + "-hub"
	st.SwitchNS = st.Prefix + "-sw"
	st.Bridge = st.Prefix + "br"
	st.Namespaces = []string{st.HubNS, st.SwitchNS}
	width := 2
	if n >= 100 {
		width = 3
	}
	for i := 1; i <= n; i++ {
		name := fmt.Sprintf("lab%0*d", width, i)
		h := &HostState{
			Name:    name,
			Index:   i,
			NetNS:   st.Prefix + "-" + name,
			MgmtIP:  nthAddr(p, hostOffset+i).String(),
			HubIf:   fmt.Sprintf("%sm%d", st.Prefix, i),
			SwIfs:   []string{fmt.Sprintf("%sd%da", st.Prefix, i), fmt.Sprintf("%sd%db", st.Prefix, i)},
			DataIfs: dataNICs,
		}
		st.Hosts = append(st.Hosts, h)
		st.Namespaces = append(st.Namespaces, h.NetNS)
	}
	return nil
}

func netnsPath(name string) string { return filepath.Join("/run/netns", name) }

// setupNetwork builds the lab network: the unreachable guard route first, then
// hub (bridge), switch (two fabrics) and one namespace per host.
func setupNetwork(ctx context.Context, st *State) error {
	// The guard goes in before any lab address exists anywhere, so no lab
	// address can be routed out of the machine even for a moment.
	st.Route = st.Subnet
	if err := st.save(); err != nil {
		return err
	}
	if _, err := runCmd(ctx, "", "ip", "route", "add", "unreachable", st.Subnet); err != nil {
		return fmt.Errorf("add guard route: %w", err)
	}

	var lines []string
	for _, ns := range st.Namespaces {
		lines = append(lines, "netns add "+ns)
	}
	if err := ipBatch(ctx, "", false, lines); err != nil {
		return fmt.Errorf("create namespaces: %w", err)
	}

	plen := netip.MustParsePrefix(st.Subnet).Bits()
	hub := []string{
		"link set lo up",
		"link add name " + st.Bridge + " type bridge",
		fmt.Sprintf("addr add %s/%d dev %s", st.HubIP, plen, st.Bridge),
		"link set " + st.Bridge + " up",
	}
	sw := []string{"link set lo up"}
	fabrics := []string{st.Prefix + "f0", st.Prefix + "f1"}
	for _, f := range fabrics {
		sw = append(sw, "link add name "+f+" type bridge", "link set "+f+" up")
	}
	for _, h := range st.Hosts {
		hub = append(hub,
			fmt.Sprintf("link add name %s type veth peer name %s netns %s", h.HubIf, mgmtNIC, h.NetNS),
			fmt.Sprintf("link set %s master %s", h.HubIf, st.Bridge),
			"link set "+h.HubIf+" up")
		for j, nic := range h.DataIfs {
			sw = append(sw,
				fmt.Sprintf("link add name %s type veth peer name %s netns %s", h.SwIfs[j], nic, h.NetNS),
				fmt.Sprintf("link set %s master %s", h.SwIfs[j], fabrics[j]),
				"link set "+h.SwIfs[j]+" up")
		}
	}
	if err := ipBatch(ctx, st.HubNS, false, hub); err != nil {
		return fmt.Errorf("build hub: %w", err)
	}
	if err := ipBatch(ctx, st.SwitchNS, false, sw); err != nil {
		return fmt.Errorf("build switch: %w", err)
	}
	for _, h := range st.Hosts {
		lines := []string{
			"link set lo up",
			fmt.Sprintf("addr add %s/%d dev %s", h.MgmtIP, plen, mgmtNIC),
			"link set " + mgmtNIC + " up",
			// A default route like a real server has; it leads to the hub,
			// which has no way out, so nothing leaves the lab.
			"route add default via " + st.HubIP,
		}
		for _, nic := range h.DataIfs {
			lines = append(lines, "link set "+nic+" up")
		}
		if err := ipBatch(ctx, h.NetNS, false, lines); err != nil {
			return fmt.Errorf("configure %s: %w", h.Name, err)
		}
	}
	return nil
}

// removeNamespaces deletes the lab's named namespaces (which removes every
// interface inside them) and the guard route.
func removeNetwork(ctx context.Context, st *State) error {
	var errs []error
	var lines []string
	for _, ns := range st.Namespaces {
		if exists(netnsPath(ns)) {
			lines = append(lines, "netns del "+ns)
		}
	}
	if err := ipBatch(ctx, "", true, lines); err != nil {
		errs = append(errs, fmt.Errorf("delete namespaces: %w", err))
	}
	if st.Route != "" {
		if err := delUnreachable(ctx, st.Route); err != nil {
			errs = append(errs, fmt.Errorf("delete guard route: %w", err))
		}
	}
	return joinErrs(errs)
}

// labNetnsInodes returns the inodes of the lab's namespaces that still exist.
func labNetnsInodes(st *State) map[uint64]bool {
	inos := map[uint64]bool{}
	for _, ns := range st.Namespaces {
		if ino, err := nsInode(netnsPath(ns)); err == nil {
			inos[ino] = true
		}
	}
	return inos
}
