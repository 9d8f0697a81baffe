package network

import (
	"fmt"
	"path"
	"sort"
	"strconv"
	"strings"
)

// network-scripts: /etc/sysconfig/network-scripts/ifcfg-NAME, shell variables read by the
// legacy network service (and by NetworkManager's ifcfg-rh plugin).

func ifcfgPath(name string) string { return path.Join(ifcfgDir, "ifcfg-"+name) }

// ifcfgFiles lists the interface files, leaving out backups and the loopback's.
func ifcfgFiles(ws *workspace) []string {
	var out []string
	for _, p := range ws.list(ifcfgDir) {
		n := path.Base(p)
		if !strings.HasPrefix(n, "ifcfg-") || n == "ifcfg-lo" || nmIgnored(n) {
			continue
		}
		out = append(out, p)
	}
	return out
}

// ifcfgDevice is the interface a file configures: DEVICE=, or the file's name.
func ifcfgDevice(p string, d *shDoc) string {
	if v := d.value("DEVICE"); v != "" {
		return v
	}
	return strings.TrimPrefix(path.Base(p), "ifcfg-")
}

func ifcfgYes(v string, def bool) bool {
	switch strings.ToLower(strings.TrimSpace(v)) {
	case "yes", "true", "y", "1", "on":
		return true
	case "no", "false", "n", "0", "off":
		return false
	}
	return def
}

func ifcfgKind(d *shDoc) string {
	t := strings.ToLower(d.value("TYPE"))
	switch {
	case t == "bond" || ifcfgYes(d.value("BONDING_MASTER"), false):
		return kindBond
	case t == "vlan" || ifcfgYes(d.value("VLAN"), false):
		return kindVLAN
	case t == "" || t == "ethernet":
		return kindEthernet
	}
	return t
}

// ifcfgAddrs reads IPADDR/PREFIX/NETMASK in their plain and numbered forms, then the IPv6
// addresses.
func ifcfgAddrs(p string, d *shDoc) ([]string, error) {
	type slot struct {
		n    int
		addr string
	}
	var slots []slot
	for _, l := range d.lines {
		rest, ok := strings.CutPrefix(l.key, "IPADDR")
		if !l.kv || !ok || (rest != "" && !isDigits(rest)) || l.value == "" {
			continue
		}
		n := -1
		if rest != "" {
			n, _ = strconv.Atoi(rest)
		}
		prefix := d.value("PREFIX" + rest)
		if prefix == "" {
			prefix = d.value("NETMASK" + rest)
		}
		a, err := withPrefix(l.value, prefix)
		if err != nil {
			return nil, fmt.Errorf("%s: IPADDR%s: %v", p, rest, err)
		}
		slots = append(slots, slot{n, a})
	}
	sort.SliceStable(slots, func(i, j int) bool { return slots[i].n < slots[j].n })
	var out []string
	seen := map[string]bool{}
	for _, s := range slots {
		if !seen[s.addr] {
			seen[s.addr] = true
			out = append(out, s.addr)
		}
	}
	v6 := strings.Fields(d.value("IPV6ADDR") + " " + d.value("IPV6ADDR_SECONDARIES"))
	for _, a := range v6 {
		c, err := withPrefix(a, "64")
		if err != nil {
			return nil, fmt.Errorf("%s: IPV6ADDR: %v", p, err)
		}
		out = append(out, c)
	}
	return out, nil
}

func ifcfgConf(p string, d *shDoc, files map[string]*shDoc) (*ifConf, error) {
	c := &ifConf{Name: ifcfgDevice(p, d), Kind: ifcfgKind(d), File: p, Up: ifcfgYes(d.value("ONBOOT"), true)}
	if ifcfgYes(d.value("SLAVE"), d.value("MASTER") != "") {
		c.Master = d.value("MASTER")
	}
	c.Bridge = d.value("BRIDGE")
	if v := d.value("MTU"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			return nil, fmt.Errorf("%s: MTU %q is not a number", p, v)
		}
		c.MTU = n
	}
	switch bp := strings.ToLower(d.value("BOOTPROTO")); bp {
	case "", "none", "static":
		c.Method = "static"
	case "dhcp", "bootp":
		c.Method = "dhcp"
	default:
		c.Method = bp
	}
	if c.Method == "static" && ifcfgYes(d.value("DHCPV6C"), false) {
		c.Method = "dhcpv6"
	}
	addrs, err := ifcfgAddrs(p, d)
	if err != nil {
		return nil, err
	}
	c.Addrs = addrs
	if c.Kind == kindBond {
		opts, _, err := parseBondingOpts(d.value("BONDING_OPTS"))
		if err != nil {
			return nil, fmt.Errorf("%s: %v", p, err)
		}
		c.Bond = opts
		for _, fp := range sortedKeys(files) {
			s := files[fp]
			if s.value("MASTER") == c.Name && ifcfgYes(s.value("SLAVE"), true) {
				c.Slaves = append(c.Slaves, ifcfgDevice(fp, s))
			}
		}
	}
	if c.Kind == kindBridge {
		opts, err := parseBridgingOpts(d.value("BRIDGING_OPTS"))
		if err != nil {
			return nil, fmt.Errorf("%s: %v", p, err)
		}
		c.BridgeOpts = &bridgeOpts{STP: ifcfgYes(d.value("STP"), false), VLANFiltering: ifcfgYes(opts["vlan_filtering"], false)}
		for _, fp := range sortedKeys(files) {
			if files[fp].value("BRIDGE") == c.Name {
				c.Slaves = append(c.Slaves, ifcfgDevice(fp, files[fp]))
			}
		}
	}
	if c.Kind == kindVLAN {
		v := &vlanSpec{Parent: d.value("PHYSDEV")}
		v.ID, _ = strconv.Atoi(d.value("VLAN_ID"))
		if parent, id, ok := strings.Cut(c.Name, "."); ok {
			if v.Parent == "" {
				v.Parent = parent
			}
			if v.ID == 0 {
				v.ID, _ = strconv.Atoi(id)
			}
		}
		c.VLAN = v
	}
	return c, nil
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// ifcfgTypes are the TYPE= values the network service and ifcfg-rh know.
var ifcfgTypes = map[string]string{kindEthernet: "Ethernet", kindBond: "Bond", kindVLAN: "Vlan", kindBridge: "Bridge"}

// parseBridgingOpts reads BRIDGING_OPTS: space-separated NAME=VALUE bridge attributes
// (those of /sys/class/net/BR/bridge, which the network service writes there).
func parseBridgingOpts(v string) (map[string]string, error) {
	out := map[string]string{}
	for _, f := range strings.Fields(v) {
		k, val, ok := strings.Cut(f, "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("BRIDGING_OPTS: %.40q is not NAME=VALUE", f)
		}
		out[k] = val
	}
	return out, nil
}

// ipKeys are the addressing variables of a file; a bond port carries none.
var ipKeys = keyNumbered("IPADDR", "PREFIX", "NETMASK", "GATEWAY")

func ifcfgEdit(d *shDoc, w ifWant, have *ifConf) error {
	if have == nil {
		d.lines = append([]shLine{{raw: "# " + managedComment + "."}}, d.lines...)
		d.set("DEVICE", w.Name)
		d.set("NAME", w.Name)
		d.set("TYPE", ifcfgTypes[w.kindOr()])
		if w.Kind == kindBond {
			d.set("BONDING_MASTER", "yes")
		}
		if w.Kind == kindVLAN {
			d.set("VLAN", "yes")
		}
	} else if w.Kind != "" && have.Kind != w.Kind {
		d.set("TYPE", ifcfgTypes[w.Kind])
	}
	if w.Up != nil {
		d.set("ONBOOT", yesNo(*w.Up))
	}
	slave := w.ManageMaster && w.Master != ""
	port := w.ManageBridge && w.Bridge != ""
	if w.ManageBridge {
		if port {
			d.set("BRIDGE", w.Bridge)
			d.set("BOOTPROTO", "none")
			d.del(ipKeys)
			d.del(keyIs("IPV6ADDR", "IPV6ADDR_SECONDARIES", "DHCPV6C"))
		} else {
			d.del(keyIs("BRIDGE"))
		}
	}
	if w.ManageMaster {
		if slave {
			d.set("MASTER", w.Master)
			d.set("SLAVE", "yes")
			d.set("BOOTPROTO", "none")
			d.del(ipKeys)
			d.del(keyIs("IPV6ADDR", "IPV6ADDR_SECONDARIES", "DHCPV6C"))
		} else {
			d.del(keyIs("MASTER", "SLAVE"))
		}
	}
	if w.MTU.set && (have == nil || !w.MTU.matchesPersisted(w.Kind, have.MTU)) {
		if w.MTU.auto {
			d.del(keyIs("MTU"))
		} else {
			d.set("MTU", strconv.Itoa(w.MTU.n))
		}
	}
	if w.Kind == kindBond {
		opts, _, err := parseBondingOpts(d.value("BONDING_OPTS"))
		if err != nil {
			return err
		}
		for k, v := range w.Bond {
			opts[k] = v
		}
		// mode first: the network service sets the options in the order given, and the
		// kernel takes most of them only once the mode is set.
		var parts []string
		for _, k := range sortedOptNames(opts) {
			parts = append(parts, k+"="+opts[k])
		}
		d.set("BONDING_OPTS", strings.Join(parts, " "))
	}
	if w.Kind == kindBridge && w.BridgeOpts != nil {
		d.set("STP", yesNo(w.BridgeOpts.STP))
		opts, err := parseBridgingOpts(d.value("BRIDGING_OPTS"))
		if err != nil {
			return err
		}
		delete(opts, "vlan_filtering")
		if w.BridgeOpts.VLANFiltering {
			opts["vlan_filtering"] = "1"
		}
		var parts []string
		for _, k := range sortedKeys(opts) {
			parts = append(parts, k+"="+opts[k])
		}
		if len(parts) > 0 {
			d.set("BRIDGING_OPTS", strings.Join(parts, " "))
		} else {
			d.del(keyIs("BRIDGING_OPTS"))
		}
	}
	if w.VLAN != nil {
		d.set("PHYSDEV", w.VLAN.Parent)
		d.set("VLAN_ID", strconv.Itoa(w.VLAN.ID))
	}
	switch {
	case slave, port:
	case w.ManageAddrs:
		v4, v6 := splitFamilies(w.Addrs)
		d.del(keyNumbered("IPADDR", "PREFIX", "NETMASK"))
		d.del(keyIs("IPV6ADDR", "IPV6ADDR_SECONDARIES", "DHCPV6C"))
		d.set("BOOTPROTO", "none")
		if len(v4) == 0 {
			d.del(keyNumbered("GATEWAY"))
		}
		for i, a := range v4 {
			addr, bits, _ := strings.Cut(a, "/")
			d.set("IPADDR"+strconv.Itoa(i), addr)
			d.set("PREFIX"+strconv.Itoa(i), bits)
		}
		if len(v6) > 0 {
			d.set("IPV6INIT", "yes")
			d.set("IPV6ADDR", v6[0])
			if len(v6) > 1 {
				d.set("IPV6ADDR_SECONDARIES", strings.Join(v6[1:], " "))
			}
		}
	case have == nil:
		d.set("BOOTPROTO", "none")
	}
	return nil
}

func planIfcfg(ws *workspace, wants []ifWant) (drift, warnings []string, err error) {
	for _, w := range wants {
		files := map[string]*shDoc{}
		for _, p := range ifcfgFiles(ws) {
			text, _, err := ws.read(p)
			if err != nil {
				return nil, nil, err
			}
			files[p] = parseSh(text)
		}
		file := ifcfgPath(w.Name)
		doc, ok := files[file]
		if !ok {
			// A file of another name may configure the interface (DEVICE=).
			for _, p := range sortedKeys(files) {
				if ifcfgDevice(p, files[p]) == w.Name {
					file, doc, ok = p, files[p], true
					break
				}
			}
		}
		var have *ifConf
		if ok {
			if have, err = ifcfgConf(file, doc, files); err != nil {
				return nil, nil, err
			}
		} else {
			doc = parseSh("")
		}
		if w.Kind == kindBridge {
			// Ports the bridge no longer has (all of them, when it goes) leave it.
			for _, p := range sortedKeys(files) {
				s := files[p]
				if s.value("BRIDGE") != w.Name || (!w.Absent && contains(w.Slaves, ifcfgDevice(p, s))) {
					continue
				}
				s.del(keyIs("BRIDGE"))
				drift = append(drift, fmt.Sprintf("%s: bridge %s → (none)", ifcfgDevice(p, s), w.Name))
				if err := ws.write(p, s.String(), 0); err != nil {
					return nil, nil, err
				}
			}
		}
		if w.Absent {
			if have != nil && have.Kind != w.Kind {
				warnings = append(warnings, absentOtherKind(w, have))
			}
			if have != nil && have.Kind == w.Kind {
				drift = append(drift, w.Name+": configured → absent")
				if err := ws.remove(file); err != nil {
					return nil, nil, err
				}
			}
			continue
		}
		d := diffConf(w, have)
		if w.Kind == kindBond {
			for _, p := range sortedKeys(files) {
				s := files[p]
				n := ifcfgDevice(p, s)
				if s.value("MASTER") != w.Name || contains(w.Slaves, n) {
					continue
				}
				s.del(keyIs("MASTER", "SLAVE"))
				if err := ws.write(p, s.String(), 0); err != nil {
					return nil, nil, err
				}
			}
		}
		if len(d) == 0 {
			continue
		}
		drift = append(drift, d...)
		if err := ifcfgEdit(doc, w, have); err != nil {
			return nil, nil, fmt.Errorf("%s: %w", file, err)
		}
		if err := ws.write(file, doc.String(), 0); err != nil {
			return nil, nil, err
		}
	}
	return drift, warnings, nil
}
