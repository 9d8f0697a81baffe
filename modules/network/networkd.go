package network

import (
	"fmt"
	"math"
	"path"
	"strconv"
	"strings"
)

// systemd-networkd: .netdev files make virtual links (bonds, VLANs), .network files
// configure links; both in /etc/systemd/network. Of the .network files whose [Match]
// fits a link, only the first in file name order applies.

// networkdReadDirs are where networkd reads units, /etc first; runbook writes only /etc.
var networkdReadDirs = []string{networkdDir, "/run/systemd/network"}

type ndFile struct {
	path string
	doc  *iniDoc
}

// ndFiles reads the files of one suffix from every directory networkd reads, sorted by
// base name as networkd orders them; a file in /etc hides one of the same name in /run.
func ndFiles(ws *workspace, suffix string) ([]*ndFile, error) {
	byName := map[string]*ndFile{}
	for _, dir := range networkdReadDirs {
		for _, p := range ws.list(dir) {
			base := path.Base(p)
			if !strings.HasSuffix(base, suffix) || byName[base] != nil {
				continue
			}
			text, ok, err := ws.read(p)
			if err != nil {
				return nil, err
			}
			if ok {
				byName[base] = &ndFile{path: p, doc: parseINI(text)}
			}
		}
	}
	var out []*ndFile
	for _, k := range sortedKeys(byName) {
		out = append(out, byName[k])
	}
	return out, nil
}

// matchNames returns the [Match] Name= patterns of a .network file.
func (f *ndFile) matchNames() []string {
	var out []string
	for _, v := range f.doc.getAll("Match", "Name") {
		out = append(out, strings.Fields(v)...)
	}
	return out
}

// matches reports whether the file applies to name, and whether it names exactly that one
// link (so editing it changes nothing else).
func (f *ndFile) matches(name string) (any, only bool) {
	pats := f.matchNames()
	for _, p := range pats {
		if ok, _ := path.Match(p, name); ok {
			any = true
		}
	}
	return any, any && len(pats) == 1 && pats[0] == name
}

func ndNetworkFor(files []*ndFile, name string) *ndFile {
	for _, f := range files {
		if any, _ := f.matches(name); any {
			return f
		}
	}
	return nil
}

func ndNetdevFor(files []*ndFile, name string) *ndFile {
	for _, f := range files {
		if v, _ := f.doc.get("NetDev", "Name"); v == name {
			return f
		}
	}
	return nil
}

// ndBondKeys maps [Bond] keys to the kernel's option names.
var ndBondKeys = map[string]string{
	"Mode":               "mode",
	"TransmitHashPolicy": "xmit_hash_policy",
	"LACPTransmitRate":   "lacp_rate",
	"MIIMonitorSec":      "miimon",
	"AdSelect":           "ad_select",
	"MinLinks":           "min_links",
}

func ndBondKey(opt string) string {
	for k, v := range ndBondKeys {
		if v == opt {
			return k
		}
	}
	return ""
}

// parseTimeSpanMS reads a systemd time span ("100ms", "1s 500ms", "0.1"; a bare number is
// seconds) as whole milliseconds.
func parseTimeSpanMS(s string) (int, error) {
	s = strings.ReplaceAll(strings.TrimSpace(s), " ", "")
	if s == "" {
		return 0, fmt.Errorf("empty time span")
	}
	units := []struct {
		suffix string
		ms     float64
	}{{"msec", 1}, {"ms", 1}, {"usec", 0.001}, {"us", 0.001}, {"seconds", 1000}, {"second", 1000}, {"sec", 1000},
		{"s", 1000}, {"minutes", 60000}, {"minute", 60000}, {"min", 60000}, {"m", 60000}, {"hours", 3600000}, {"hour", 3600000}, {"hr", 3600000}, {"h", 3600000}}
	total := 0.0
	for s != "" {
		i := 0
		for i < len(s) && (s[i] >= '0' && s[i] <= '9' || s[i] == '.') {
			i++
		}
		if i == 0 {
			return 0, fmt.Errorf("%q is not a time span", s)
		}
		n, err := strconv.ParseFloat(s[:i], 64)
		if err != nil {
			return 0, fmt.Errorf("%q is not a time span", s)
		}
		s = s[i:]
		mult := 1000.0
		if s != "" && (s[0] < '0' || s[0] > '9') {
			found := false
			for _, u := range units {
				if strings.HasPrefix(s, u.suffix) {
					mult, s, found = u.ms, s[len(u.suffix):], true
					break
				}
			}
			if !found {
				return 0, fmt.Errorf("unknown time unit in %q", s)
			}
		}
		total += n * mult
	}
	return int(math.Round(total)), nil
}

// parseBytes reads MTUBytes= (1024-based K, M, G suffixes).
func parseBytes(s string) (int, error) {
	s = strings.TrimSpace(s)
	mult := 1
	switch {
	case strings.HasSuffix(s, "K"):
		mult, s = 1024, strings.TrimSuffix(s, "K")
	case strings.HasSuffix(s, "M"):
		mult, s = 1024*1024, strings.TrimSuffix(s, "M")
	case strings.HasSuffix(s, "G"):
		mult, s = 1024*1024*1024, strings.TrimSuffix(s, "G")
	}
	n, err := strconv.Atoi(s)
	if err != nil {
		return 0, fmt.Errorf("%q is not a size in bytes", s)
	}
	return n * mult, nil
}

func ndBool(s string) (bool, bool) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "yes", "true", "1", "on":
		return true, true
	case "no", "false", "0", "off":
		return false, true
	}
	return false, false
}

// ndConf reads what the files say about name; nil when neither a .netdev nor a .network
// file applies to it.
func ndConf(name string, networks, netdevs []*ndFile) (*ifConf, error) {
	nd := ndNetdevFor(netdevs, name)
	nw := ndNetworkFor(networks, name)
	if nd == nil && nw == nil {
		return nil, nil
	}
	c := &ifConf{Name: name, Kind: kindEthernet, Up: true, Method: "static"}
	if nd != nil {
		c.File = nd.path
		if k, _ := nd.doc.get("NetDev", "Kind"); k != "" {
			c.Kind = k
		}
		if v, ok := nd.doc.get("NetDev", "MTUBytes"); ok {
			n, err := parseBytes(v)
			if err != nil {
				return nil, fmt.Errorf("%s: MTUBytes: %v", nd.path, err)
			}
			c.MTU = n
		}
	}
	if nw != nil {
		if c.File == "" {
			c.File = nw.path
		}
		c.Master, _ = nw.doc.get("Network", "Bond")
		c.Bridge, _ = nw.doc.get("Network", "Bridge")
		if v, ok := nw.doc.get("Link", "MTUBytes"); ok {
			n, err := parseBytes(v)
			if err != nil {
				return nil, fmt.Errorf("%s: MTUBytes: %v", nw.path, err)
			}
			c.MTU = n
		}
		switch v, _ := nw.doc.get("Link", "ActivationPolicy"); v {
		case "down", "always-down", "manual":
			c.Up = false
		}
		if v, _ := nw.doc.get("Network", "DHCP"); v != "" {
			if on, ok := ndBool(v); !ok || on {
				c.Method = "dhcp"
			}
		}
		addrs := nw.doc.getAll("Network", "Address")
		addrs = append(addrs, nw.doc.getAll("Address", "Address")...)
		for _, a := range addrs {
			x, err := withPrefix(a, "")
			if err != nil {
				return nil, fmt.Errorf("%s: Address: %v", nw.path, err)
			}
			c.Addrs = append(c.Addrs, x)
		}
	}
	if c.Kind == kindBond {
		c.Bond = map[string]string{}
		for _, k := range nd.doc.keys("Bond") {
			opt, ok := ndBondKeys[k]
			if !ok {
				continue
			}
			v, _ := nd.doc.get("Bond", k)
			if opt == "miimon" {
				ms, err := parseTimeSpanMS(v)
				if err != nil {
					return nil, fmt.Errorf("%s: MIIMonitorSec: %v", nd.path, err)
				}
				v = strconv.Itoa(ms)
			}
			nv, err := normBondOption(opt, v)
			if err != nil {
				return nil, fmt.Errorf("%s: [Bond] %v", nd.path, err)
			}
			c.Bond[opt] = nv
		}
		for _, f := range networks {
			if b, _ := f.doc.get("Network", "Bond"); b != name {
				continue
			}
			for _, n := range f.matchNames() {
				if strings.ContainsAny(n, "*?[") {
					continue
				}
				c.Slaves = append(c.Slaves, n)
				if v, _ := f.doc.get("Network", "PrimarySlave"); v != "" {
					if on, _ := ndBool(v); on {
						c.Bond["primary"] = n
					}
				}
			}
		}
	}
	if c.Kind == kindBridge {
		c.BridgeOpts = &bridgeOpts{}
		if nd != nil {
			c.BridgeOpts.STP, _ = ndBool(firstOr(nd.doc.get("Bridge", "STP")))
			c.BridgeOpts.VLANFiltering, _ = ndBool(firstOr(nd.doc.get("Bridge", "VLANFiltering")))
		}
		for _, f := range networks {
			if b, _ := f.doc.get("Network", "Bridge"); b != name {
				continue
			}
			for _, n := range f.matchNames() {
				if !strings.ContainsAny(n, "*?[") {
					c.Slaves = append(c.Slaves, n)
				}
			}
		}
	}
	if c.Kind == kindVLAN {
		v := &vlanSpec{}
		if nd != nil {
			v.ID, _ = strconv.Atoi(firstOr(nd.doc.get("VLAN", "Id")))
		}
		for _, f := range networks {
			if contains(f.doc.getAll("Network", "VLAN"), name) {
				if names := f.matchNames(); len(names) > 0 {
					v.Parent = names[0]
				}
				break
			}
		}
		c.VLAN = v
	}
	return c, nil
}

func firstOr(s string, _ bool) string { return s }

func ndNewDoc(name string) *iniDoc {
	d := parseINI("# " + managedComment + ".\n")
	d.set("Match", "Name", name)
	return d
}

// ndNetworkTarget returns the .network file to edit for name: the one that applies to it
// when it names only that link, otherwise a new one runbook owns, which sorts before
// broader files in the usual numbering.
func ndNetworkTarget(ws *workspace, networks []*ndFile, name string) (string, *iniDoc, bool, []string) {
	var warnings []string
	own := path.Join(networkdDir, networkdPrefix+name+".network")
	if f := ndNetworkFor(networks, name); f != nil {
		if _, only := f.matches(name); only && path.Dir(f.path) == networkdDir {
			return f.path, f.doc, false, nil
		}
		if path.Base(f.path) < path.Base(own) {
			warnings = append(warnings, fmt.Sprintf("%s matches %s and sorts before %s, so systemd-networkd uses it instead", f.path, name, own))
		}
	}
	return own, ndNewDoc(name), true, warnings
}

func ndSetAddrs(d *iniDoc, addrs []string) {
	d.delSection("Address")
	d.del("Network", "DHCP")
	d.setAll("Network", "Address", addrs)
}

func planNetworkd(ws *workspace, wants []ifWant) (drift, warnings []string, err error) {
	var primary map[string]string // bond → its primary slave, when managed
	for _, w := range wants {
		networks, err := ndFiles(ws, ".network")
		if err != nil {
			return nil, nil, err
		}
		netdevs, err := ndFiles(ws, ".netdev")
		if err != nil {
			return nil, nil, err
		}
		have, err := ndConf(w.Name, networks, netdevs)
		if err != nil {
			return nil, nil, err
		}
		if w.Kind == kindBridge {
			// Ports the bridge no longer has (all of them, when it goes) leave it.
			for _, f := range networks {
				if b, _ := f.doc.get("Network", "Bridge"); b != w.Name || path.Dir(f.path) != networkdDir {
					continue
				}
				keep := false
				for _, n := range f.matchNames() {
					keep = keep || (!w.Absent && contains(w.Slaves, n))
				}
				if !keep {
					f.doc.del("Network", "Bridge")
					drift = append(drift, fmt.Sprintf("%s: bridge %s → (none)", strings.Join(f.matchNames(), " "), w.Name))
					if err := ws.write(f.path, f.doc.String(), 0); err != nil {
						return nil, nil, err
					}
				}
			}
		}
		if w.Absent {
			// runbook removes the files it would have written: the .netdev that makes the
			// link and a .network that names only it, both in /etc.
			if have == nil {
				continue
			}
			if have.Kind != w.Kind {
				warnings = append(warnings, absentOtherKind(w, have))
				continue
			}
			var gone []string
			if f := ndNetdevFor(netdevs, w.Name); f != nil && path.Dir(f.path) == networkdDir {
				gone = append(gone, f.path)
			}
			if f := ndNetworkFor(networks, w.Name); f != nil && path.Dir(f.path) == networkdDir {
				if _, only := f.matches(w.Name); only {
					gone = append(gone, f.path)
				}
			}
			if len(gone) == 0 {
				warnings = append(warnings, fmt.Sprintf("%s is configured outside %s (%s): not removed", w.Name, networkdDir, have.File))
				continue
			}
			drift = append(drift, w.Name+": configured → absent")
			for _, p := range gone {
				if err := ws.remove(p); err != nil {
					return nil, nil, err
				}
			}
			continue
		}
		d := diffConf(w, have)
		if w.Kind == kindBond {
			if p, ok := w.Bond["primary"]; ok {
				if primary == nil {
					primary = map[string]string{}
				}
				primary[w.Name] = p
			}
			// Slaves no longer wanted leave the bond.
			for _, f := range networks {
				if b, _ := f.doc.get("Network", "Bond"); b != w.Name || path.Dir(f.path) != networkdDir {
					continue
				}
				keep := false
				for _, n := range f.matchNames() {
					keep = keep || contains(w.Slaves, n)
				}
				if !keep {
					f.doc.del("Network", "Bond")
					f.doc.del("Network", "PrimarySlave")
					if err := ws.write(f.path, f.doc.String(), 0); err != nil {
						return nil, nil, err
					}
				}
			}
		}
		wantPrimary := w.ManageMaster && w.Master != "" && primary[w.Master] == w.Name
		primaryManaged := w.ManageMaster && w.Master != "" && primary[w.Master] != ""
		if w.VLAN != nil {
			// The parent's .network lists the VLAN; a former parent's no longer does.
			for _, f := range networks {
				if !contains(f.doc.getAll("Network", "VLAN"), w.Name) || path.Dir(f.path) != networkdDir {
					continue
				}
				if any, _ := f.matches(w.VLAN.Parent); any {
					continue
				}
				f.doc.setAll("Network", "VLAN", remove(f.doc.getAll("Network", "VLAN"), w.Name))
				if err := ws.write(f.path, f.doc.String(), 0); err != nil {
					return nil, nil, err
				}
			}
		}
		nwFile, nwDoc, fresh, warns := ndNetworkTarget(ws, networks, w.Name)
		warnings = append(warnings, warns...)
		if primaryManaged {
			cur, _ := nwDoc.get("Network", "PrimarySlave")
			on, _ := ndBool(cur)
			if on != wantPrimary {
				d = append(d, fmt.Sprintf("%s: primary slave of %s %s → %s", w.Name, w.Master, yesNo(on), yesNo(wantPrimary)))
			}
		}
		if len(d) == 0 {
			continue
		}
		drift = append(drift, d...)

		if w.Kind == kindBond || w.Kind == kindVLAN || w.Kind == kindBridge {
			ndFile := path.Join(networkdDir, networkdPrefix+w.Name+".netdev")
			nd := parseINI("# " + managedComment + ".\n")
			if f := ndNetdevFor(netdevs, w.Name); f != nil && path.Dir(f.path) == networkdDir {
				ndFile, nd = f.path, f.doc
			}
			nd.set("NetDev", "Name", w.Name)
			nd.set("NetDev", "Kind", w.Kind)
			if w.MTU.set {
				// The MTU lives in the .network file; one here could contradict it.
				nd.del("NetDev", "MTUBytes")
			}
			for _, k := range sortedOptNames(w.Bond) {
				key := ndBondKey(k)
				if key == "" {
					continue
				}
				v := w.Bond[k]
				if k == "miimon" {
					v += "ms"
				}
				nd.set("Bond", key, v)
			}
			if w.Kind == kindBridge && w.BridgeOpts != nil {
				nd.set("Bridge", "STP", yesNo(w.BridgeOpts.STP))
				nd.set("Bridge", "VLANFiltering", yesNo(w.BridgeOpts.VLANFiltering))
			}
			if w.VLAN != nil {
				nd.set("VLAN", "Id", strconv.Itoa(w.VLAN.ID))
				pFile, pDoc, _, warns := ndNetworkTarget(ws, networks, w.VLAN.Parent)
				warnings = append(warnings, warns...)
				if !contains(pDoc.getAll("Network", "VLAN"), w.Name) {
					pDoc.setAll("Network", "VLAN", append(pDoc.getAll("Network", "VLAN"), w.Name))
					if err := ws.write(pFile, pDoc.String(), 0); err != nil {
						return nil, nil, err
					}
				}
			}
			if err := ws.write(ndFile, nd.String(), 0o644); err != nil {
				return nil, nil, err
			}
			// The parent's file may be the one edited below; read it again.
			if w.VLAN != nil {
				if networks, err = ndFiles(ws, ".network"); err != nil {
					return nil, nil, err
				}
				nwFile, nwDoc, fresh, _ = ndNetworkTarget(ws, networks, w.Name)
			}
		}

		if w.MTU.set && (have == nil || !w.MTU.matchesPersisted(w.Kind, have.MTU)) {
			if w.MTU.auto {
				nwDoc.del("Link", "MTUBytes")
			} else {
				nwDoc.set("Link", "MTUBytes", strconv.Itoa(w.MTU.n))
			}
		}
		if w.Up != nil {
			if *w.Up {
				if v, _ := nwDoc.get("Link", "ActivationPolicy"); v == "down" || v == "always-down" || v == "manual" {
					nwDoc.del("Link", "ActivationPolicy")
				}
			} else {
				nwDoc.set("Link", "ActivationPolicy", "down")
			}
		}
		if w.ManageMaster {
			if w.Master != "" {
				nwDoc.set("Network", "Bond", w.Master)
				ndSetAddrs(nwDoc, nil)
				nwDoc.del("Network", "DHCP")
			} else {
				nwDoc.del("Network", "Bond")
				nwDoc.del("Network", "PrimarySlave")
			}
		}
		if primaryManaged {
			if wantPrimary {
				nwDoc.set("Network", "PrimarySlave", "yes")
			} else {
				nwDoc.del("Network", "PrimarySlave")
			}
		}
		if w.ManageBridge {
			if w.Bridge != "" {
				nwDoc.set("Network", "Bridge", w.Bridge)
				ndSetAddrs(nwDoc, nil)
			} else {
				nwDoc.del("Network", "Bridge")
			}
		}
		if w.ManageAddrs {
			ndSetAddrs(nwDoc, w.Addrs)
		}
		if fresh && !w.ManageAddrs && !(w.ManageMaster && w.Master != "") && !(w.ManageBridge && w.Bridge != "") {
			// A new configuration without addresses carries none, not even link-local.
			nwDoc.set("Network", "LinkLocalAddressing", "no")
		}
		if err := ws.write(nwFile, nwDoc.String(), 0o644); err != nil {
			return nil, nil, err
		}
	}
	return drift, warnings, nil
}

func remove(list []string, s string) []string {
	var out []string
	for _, x := range list {
		if x != s {
			out = append(out, x)
		}
	}
	return out
}
