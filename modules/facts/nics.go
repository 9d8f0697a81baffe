package facts

import (
	"context"
	"path"
	"regexp"
	"strings"
)

// pciAddr matches a PCI function's name in sysfs: domain:bus:device.function.
var pciAddr = regexp.MustCompile(`^[0-9a-f]{4,}:[0-9a-f]{2}:[0-9a-f]{2}\.[0-7]$`)

// gatherNICs reads every network interface but lo from /sys/class/net and returns them by
// name, plus the pcie_devices list.
func gatherNICs(ctx context.Context, f rootFS) (map[string]any, []any, error) {
	var et *ethtool
	if f.real {
		et = openEthtool()
		defer et.close()
	}
	nics := map[string]map[string]any{}
	for _, name := range f.names("/sys/class/net") {
		if err := ctx.Err(); err != nil {
			return nil, nil, err
		}
		// bonding_masters is a file beside the interfaces.
		if name == "lo" || !f.isDir("/sys/class/net/"+name) {
			continue
		}
		nics[name] = readNIC(f, et, name)
	}
	for _, n := range nics {
		slave, _ := n["bond_slave"].(map[string]any)
		if slave == nil {
			continue
		}
		master := nics[n["master"].(string)]
		bond, _ := master["bond"].(map[string]any)
		agg, ok1 := bond["ad_aggregator"].(int)
		id, ok2 := slave["ad_aggregator_id"].(int)
		if ok1 && ok2 {
			slave["in_active_aggregator"] = agg == id
		}
	}
	devices := oversubscription(nics)
	out := make(map[string]any, len(nics))
	for k, v := range nics {
		out[k] = v
	}
	return out, devices, nil
}

// parseUevent reads KEY=value lines.
func parseUevent(text string) map[string]string {
	out := map[string]string{}
	for _, l := range strings.Split(text, "\n") {
		if k, v, ok := strings.Cut(strings.TrimSpace(l), "="); ok {
			out[k] = v
		}
	}
	return out
}

// pciFunction returns the sysfs directory of the PCI function a device sits on: the device
// itself for a PCI NIC, the nearest PCI ancestor for one on another bus (a virtio NIC's
// virtioN device sits below its virtio-pci function). "" when there is none.
func pciFunction(dev string) string {
	for d := dev; strings.HasPrefix(d, "/sys/devices/"); d = path.Dir(d) {
		if pciAddr.MatchString(path.Base(d)) {
			return d
		}
	}
	return ""
}

// virtualKinds maps ethtool's driver names of software interfaces to their kind.
var virtualKinds = map[string]string{
	"802.1Q VLAN Support": "vlan",
	"bonding":             "bond",
	"bridge":              "bridge",
}

// nicKind says what an interface is: "bond", "bridge", the uevent DEVTYPE ("vlan",
// "macvlan", "vxlan", "wlan", ...), the driver of a software interface ("veth", "tun",
// "dummy", ...), "ether" for hardware Ethernet, "infiniband", or "other".
func nicKind(f rootFS, base string, uevent map[string]string, virtual bool, ethDriver string) string {
	switch {
	case f.isDir(base + "/bonding"):
		return "bond"
	case f.isDir(base + "/bridge"):
		return "bridge"
	case uevent["DEVTYPE"] != "":
		return uevent["DEVTYPE"]
	case virtual && ethDriver != "":
		if k, ok := virtualKinds[ethDriver]; ok {
			return k
		}
		return ethDriver
	}
	typ, _ := f.num(base + "/type")
	if virtual {
		// Without ethtool (a fixture tree), a software Ethernet interface whose iflink
		// names another interface is one end of a veth pair (macvlan and vlan say so in
		// DEVTYPE, handled above).
		ifindex, ok1 := f.num(base + "/ifindex")
		iflink, ok2 := f.num(base + "/iflink")
		if typ == 1 && ok1 && ok2 && ifindex != iflink {
			return "veth"
		}
		return "virtual"
	}
	switch typ {
	case 1:
		return "ether"
	case 32:
		return "infiniband"
	}
	return "other"
}

// readNIC reads one interface. Strings that cannot be read are "", numbers null.
func readNIC(f rootFS, et *ethtool, name string) map[string]any {
	base := "/sys/class/net/" + name
	dev := f.resolve(base + "/device")
	virtual := dev == "" || strings.HasPrefix(f.resolve(base), "/sys/devices/virtual/")
	uevent := parseUevent(f.str(base + "/uevent"))
	info, hasInfo := et.info(name)

	driver := f.linkBase(base + "/device/driver")
	if driver == "" && hasInfo {
		driver = info.driver
	}
	driverVersion := info.version
	if driverVersion == "" && driver != "" {
		// Modules that declare a version show it in sysfs; fixture trees rely on this.
		if m := f.resolve(base + "/device/driver/module"); m != "" {
			driverVersion = f.str(m + "/version")
		}
		if driverVersion == "" {
			driverVersion = f.str("/sys/module/" + driver + "/version")
		}
	}

	pci := ""
	if dev != "" {
		pci = pciFunction(dev)
	}
	pciAddress := ""
	if pci != "" {
		pciAddress = path.Base(pci)
	}
	busInfo := pciAddress
	if hasInfo && info.busInfo != "" {
		busInfo = info.busInfo
	}

	mtu, okMTU := f.num(base + "/mtu")
	speed, okSpeed := f.num(base + "/speed")
	carrier, _ := f.num(base + "/carrier")
	n := map[string]any{
		"mac":              f.str(base + "/address"),
		"mtu":              nullable(mtu, okMTU),
		"operstate":        f.str(base + "/operstate"),
		"link":             carrier == 1,
		"speed_mbps":       nullable(speed, okSpeed && speed > 0),
		"duplex":           f.str(base + "/duplex"),
		"driver":           driver,
		"driver_version":   driverVersion,
		"firmware_version": info.firmware,
		"bus_info":         busInfo,
		"pci_address":      pciAddress,
		"vendor_id":        "",
		"device_id":        "",
		"numa_node":        nil,
		"virtual":          virtual,
		"kind":             nicKind(f, base, uevent, virtual, info.driver),
		"master":           f.linkBase(base + "/master"),
		"sriov_capable":    false,
		"sriov_total_vfs":  nil,
		"sriov_num_vfs":    nil,
		"sriov_pf_address": "",
		"pcie":             nil,
		// Set for every port of a PCI device once all NICs are read.
		"pcie_oversubscribed": false,
		"bond":                nil,
		"bond_slave":          nil,
		"bridge_ports":        nil,
	}
	if pci != "" {
		n["vendor_id"] = strings.TrimPrefix(f.str(pci+"/vendor"), "0x")
		n["device_id"] = strings.TrimPrefix(f.str(pci+"/device"), "0x")
		if node, ok := f.num(pci + "/numa_node"); ok && node >= 0 {
			n["numa_node"] = node
		}
		total, okT := f.num(pci + "/sriov_totalvfs")
		num, okN := f.num(pci + "/sriov_numvfs")
		n["sriov_total_vfs"], n["sriov_num_vfs"] = nullable(total, okT), nullable(num, okN)
		n["sriov_capable"] = okT && total > 0
		n["sriov_pf_address"] = f.linkBase(pci + "/physfn")
		if p := readPCIe(f, pci); p != nil {
			n["pcie"] = p
		}
	}
	switch n["kind"] {
	case "bond":
		n["bond"] = readBond(f, name)
	case "bridge":
		ports := []any{}
		for _, p := range f.names(base + "/brif") {
			ports = append(ports, p)
		}
		n["bridge_ports"] = ports
	}
	if f.isDir(base + "/bonding_slave") {
		n["bond_slave"] = readBondSlave(f, name, n["master"].(string))
	}
	return n
}
