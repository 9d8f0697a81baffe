package network

import (
	"context"
	"crypto/sha1"
	"errors"
	"fmt"
	"path"
	"strconv"
	"strings"
	"time"

	"github.com/runbook/runbook/modules"
	"github.com/runbook/runbook/modules/host"
)

// NetworkManager keyfiles: one profile per file in /etc/NetworkManager/system-connections,
// mode 0600 (NetworkManager ignores a keyfile others can read).

// nmProfile is one keyfile.
type nmProfile struct {
	path string
	doc  *iniDoc
}

func (p *nmProfile) get(section, key string) string {
	v, _ := p.doc.get(section, key)
	return v
}

func (p *nmProfile) ifname() string { return p.get("connection", "interface-name") }

// kind maps the profile's type to ours ("802-3-ethernet" and "ethernet" are one).
func (p *nmProfile) kind() string {
	switch t := p.get("connection", "type"); t {
	case "802-3-ethernet", "ethernet":
		return kindEthernet
	case "bond", "vlan", "bridge":
		return t
	default:
		return t
	}
}

// ethSection is the section holding the MTU: keyfiles written by old NetworkManager
// versions call it by the setting's full name.
func (p *nmProfile) ethSection() string {
	if p.doc.has("802-3-ethernet") && !p.doc.has("ethernet") {
		return "802-3-ethernet"
	}
	return "ethernet"
}

// master returns the controller the profile is a port of, as written (a name or a UUID),
// and the keys used ("master"/"slave-type" or the newer "controller"/"port-type").
func (p *nmProfile) master() (value, key, typeKey string) {
	if v, ok := p.doc.get("connection", "controller"); ok {
		return v, "controller", "port-type"
	}
	v, _ := p.doc.get("connection", "master")
	return v, "master", "slave-type"
}

func nmIgnored(name string) bool {
	if strings.HasPrefix(name, ".") || strings.HasSuffix(name, "~") {
		return true
	}
	for _, s := range []string{".swp", ".tmp", ".bak", ".orig", ".rej", ".rpmnew", ".rpmsave", ".dpkg-old", ".dpkg-new", ".dpkg-dist"} {
		if strings.HasSuffix(name, s) {
			return true
		}
	}
	return false
}

// nmProfiles reads every keyfile, sorted by file name.
func nmProfiles(ws *workspace) ([]*nmProfile, error) {
	var out []*nmProfile
	for _, p := range ws.list(nmConnectionsDir) {
		if nmIgnored(path.Base(p)) {
			continue
		}
		text, ok, err := ws.read(p)
		if err != nil {
			return nil, err
		}
		if ok {
			out = append(out, &nmProfile{path: p, doc: parseINI(text)})
		}
	}
	return out, nil
}

// nmResolve turns a controller or parent reference (an interface name or a profile's UUID)
// into an interface name.
func nmResolve(ref string, profiles []*nmProfile) string {
	for _, p := range profiles {
		if ref != "" && p.get("connection", "uuid") == ref {
			if n := p.ifname(); n != "" {
				return n
			}
			return p.get("connection", "id")
		}
	}
	return ref
}

// nmPath is the file runbook makes for an interface without a profile: bond ports are
// named after their bond, so they sort beside it.
func nmPath(w ifWant) (file, id string) {
	id = w.Name
	if w.ManageMaster && w.Master != "" {
		id = w.Master + nmPortInfix + w.Name
	}
	if w.ManageBridge && w.Bridge != "" {
		id = w.Bridge + nmPortInfix + w.Name
	}
	return path.Join(nmConnectionsDir, id+nmKeyfileSuffix), id
}

// nmFind picks the profile for an interface: the one bound to it by interface-name with a
// matching type, preferring runbook's own file; others bound to it are returned apart.
func nmFind(profiles []*nmProfile, w ifWant) (*nmProfile, []*nmProfile) {
	own, _ := nmPath(w)
	var found []*nmProfile
	for _, p := range profiles {
		if p.ifname() == w.Name && (p.kind() == w.Kind || w.Kind == "" && nmTypes[p.kind()] != "") {
			found = append(found, p)
		}
	}
	for i, p := range found {
		if p.path == own {
			return p, append(found[:i:i], found[i+1:]...)
		}
	}
	if len(found) == 0 {
		return nil, nil
	}
	return found[0], found[1:]
}

// nmBool reads a keyfile boolean.
func nmBool(s string, def bool) bool {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "true", "yes", "1", "on":
		return true
	case "false", "no", "0", "off":
		return false
	}
	return def
}

// nmAddrs reads addressN= (and the older addresses=) of an ip section: "ADDR/PLEN" or
// "ADDR/PLEN,GATEWAY".
func nmAddrs(p *nmProfile, section string) ([]string, error) {
	type numbered struct {
		n int
		v string
	}
	var list []numbered
	for _, k := range p.doc.keys(section) {
		rest, ok := strings.CutPrefix(k, "address")
		if !ok {
			continue
		}
		n := 0
		if rest == "es" {
			n = -1
		} else if x, err := strconv.Atoi(rest); err == nil {
			n = x
		} else {
			continue
		}
		v, _ := p.doc.get(section, k)
		for _, item := range strings.Split(v, ";") {
			if item = strings.TrimSpace(item); item != "" {
				list = append(list, numbered{n, item})
			}
		}
	}
	var out []string
	for _, x := range list {
		a, _, _ := strings.Cut(x.v, ",")
		c, err := withPrefix(a, "")
		if err != nil {
			return nil, fmt.Errorf("%s: [%s] address: %v", p.path, section, err)
		}
		out = append(out, c)
	}
	return out, nil
}

// nmConf reads what a profile says about its interface.
func nmConf(p *nmProfile, profiles []*nmProfile) (*ifConf, error) {
	c := &ifConf{Name: p.ifname(), Kind: p.kind(), File: p.path, Up: nmBool(p.get("connection", "autoconnect"), true)}
	if m, _, typeKey := p.master(); m != "" {
		switch p.get("connection", typeKey) {
		case "", "bond":
			c.Master = nmResolve(m, profiles)
		case "bridge":
			c.Bridge = nmResolve(m, profiles)
		}
	}
	if v := p.get(p.ethSection(), "mtu"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			return nil, fmt.Errorf("%s: mtu %q is not a number", p.path, v)
		}
		c.MTU = n
	}
	c.Method = "static"
	for _, fam := range []struct{ section, def string }{{"ipv4", "auto"}, {"ipv6", "auto"}} {
		method := p.get(fam.section, "method")
		if method == "" {
			method = fam.def
		}
		switch method {
		case "manual", "disabled", "ignore", "link-local":
		case "auto", "dhcp":
			if fam.section == "ipv4" || c.Method == "static" {
				c.Method = fam.section + " " + method
			}
		default:
			c.Method = fam.section + " " + method
		}
		addrs, err := nmAddrs(p, fam.section)
		if err != nil {
			return nil, err
		}
		c.Addrs = append(c.Addrs, addrs...)
	}
	if c.Kind == kindBond {
		c.Bond = map[string]string{}
		for _, k := range p.doc.keys("bond") {
			v, _ := p.doc.get("bond", k)
			nv, err := normBondOption(k, v)
			if err != nil {
				return nil, fmt.Errorf("%s: [bond] %v", p.path, err)
			}
			c.Bond[normOptName(k)] = nv
		}
		uuid := p.get("connection", "uuid")
		for _, s := range profiles {
			m, _, typeKey := s.master()
			if m == "" || (m != c.Name && (uuid == "" || m != uuid)) {
				continue
			}
			if st := s.get("connection", typeKey); st != "" && st != "bond" {
				continue
			}
			if n := s.ifname(); n != "" {
				c.Slaves = append(c.Slaves, n)
			}
		}
	}
	if c.Kind == kindBridge {
		// NetworkManager's default is STP on.
		c.BridgeOpts = &bridgeOpts{STP: nmBool(p.get("bridge", "stp"), true), VLANFiltering: nmBool(p.get("bridge", "vlan-filtering"), false)}
		c.Slaves = nmPortsOf(p, profiles, "bridge")
	}
	if c.Kind == kindVLAN {
		id, _ := strconv.Atoi(p.get("vlan", "id"))
		c.VLAN = &vlanSpec{Parent: nmResolve(p.get("vlan", "parent"), profiles), ID: id}
	}
	return c, nil
}

// nmUUID is a stable UUID for a profile runbook makes (a name-based, version 5 style
// UUID), so that the same task writes the same file on every host.
func nmUUID(id string) string {
	h := sha1.Sum([]byte("runbook NetworkManager profile " + id))
	h[6] = h[6]&0x0f | 0x50
	h[8] = h[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", h[0:4], h[4:6], h[6:8], h[8:10], h[10:16])
}

// nmTypes are the keyfile types runbook writes.
var nmTypes = map[string]string{kindEthernet: "ethernet", kindBond: "bond", kindVLAN: "vlan", kindBridge: "bridge"}

// nmPortsOf lists the interfaces whose profiles are ports (of that port type) of the
// controller profile p, named by interface or by UUID.
func nmPortsOf(p *nmProfile, profiles []*nmProfile, portType string) []string {
	name, uuid := p.ifname(), p.get("connection", "uuid")
	var out []string
	for _, s := range profiles {
		m, _, typeKey := s.master()
		if m == "" || (m != name && (uuid == "" || m != uuid)) || s.get("connection", typeKey) != portType {
			continue
		}
		if n := s.ifname(); n != "" {
			out = append(out, n)
		}
	}
	return out
}

// nmEdit changes a profile so it says what w says, keeping everything else it holds.
func nmEdit(d *iniDoc, w ifWant, have *ifConf, id string) {
	if have == nil {
		d.set("connection", "id", id)
		d.set("connection", "uuid", nmUUID(id))
		d.set("connection", "type", nmTypes[w.kindOr()])
		d.set("connection", "interface-name", w.Name)
	} else if w.Kind != "" && have.Kind != w.Kind {
		d.set("connection", "type", nmTypes[w.Kind])
	}
	p := &nmProfile{doc: d}
	slave := w.ManageMaster && w.Master != ""
	port := w.ManageBridge && w.Bridge != ""
	// A profile has one controller: a bond's or a bridge's. Each kind of membership
	// clears only its own.
	unset := func(portType string) bool {
		m, _, typeKey := p.master()
		if st := p.get("connection", typeKey); m == "" || (st != portType && !(portType == "bond" && st == "")) {
			return false
		}
		for _, k := range []string{"master", "slave-type", "controller", "port-type"} {
			d.del("connection", k)
		}
		return true
	}
	if w.ManageMaster {
		_, key, typeKey := p.master()
		if slave {
			d.set("connection", key, w.Master)
			d.set("connection", typeKey, "bond")
			// A port has no IP configuration of its own.
			d.delSection("ipv4")
			d.delSection("ipv6")
		} else {
			unset("bond")
		}
	}
	if w.ManageBridge {
		_, key, typeKey := p.master()
		if port {
			d.set("connection", key, w.Bridge)
			d.set("connection", typeKey, "bridge")
			d.delSection("ipv4")
			d.delSection("ipv6")
		} else if unset("bridge") && !slave {
			// A port had no IP configuration; out of the bridge it gets none rather than
			// NetworkManager's default (DHCP).
			for _, sec := range []string{"ipv4", "ipv6"} {
				if !d.has(sec) {
					d.set(sec, "method", "disabled")
				}
			}
		}
	}
	if w.Up != nil {
		if *w.Up {
			d.del("connection", "autoconnect")
		} else {
			d.set("connection", "autoconnect", "false")
		}
	}
	if w.MTU.set && (have == nil || !w.MTU.matchesPersisted(w.Kind, have.MTU)) {
		if w.MTU.auto {
			d.del(p.ethSection(), "mtu")
			if len(d.keys(p.ethSection())) == 0 {
				d.delSection(p.ethSection())
			}
		} else {
			d.set(p.ethSection(), "mtu", strconv.Itoa(w.MTU.n))
		}
	}
	if w.Kind == kindBond {
		for _, k := range sortedOptNames(w.Bond) {
			d.set("bond", k, w.Bond[k])
		}
	}
	if w.VLAN != nil {
		d.set("vlan", "id", strconv.Itoa(w.VLAN.ID))
		d.set("vlan", "parent", w.VLAN.Parent)
	}
	if w.Kind == kindBridge && w.BridgeOpts != nil {
		d.set("bridge", "stp", strconv.FormatBool(w.BridgeOpts.STP))
		d.set("bridge", "vlan-filtering", strconv.FormatBool(w.BridgeOpts.VLANFiltering))
	}
	switch {
	case slave, port:
	case w.ManageAddrs:
		v4, v6 := splitFamilies(w.Addrs)
		nmSetAddrs(d, "ipv4", v4)
		nmSetAddrs(d, "ipv6", v6)
	case have == nil:
		// A new profile without addresses carries none: no DHCP, no SLAAC.
		d.set("ipv4", "method", "disabled")
		d.set("ipv6", "method", "disabled")
	}
}

func nmSetAddrs(d *iniDoc, section string, addrs []string) {
	for _, k := range d.keys(section) {
		if rest, ok := strings.CutPrefix(k, "address"); ok && (rest == "es" || isDigits(rest)) {
			d.del(section, k)
		}
	}
	if len(addrs) == 0 {
		d.set(section, "method", "disabled")
		d.del(section, "gateway")
		return
	}
	for i, a := range addrs {
		d.set(section, "address"+strconv.Itoa(i+1), a)
	}
	d.set(section, "method", "manual")
}

func isDigits(s string) bool {
	if s == "" {
		return false
	}
	for _, r := range s {
		if r < '0' || r > '9' {
			return false
		}
	}
	return true
}

// planNM edits the keyfiles of every wanted interface.
func planNM(ws *workspace, wants []ifWant) (drift, warnings []string, err error) {
	for _, w := range wants {
		profiles, err := nmProfiles(ws)
		if err != nil {
			return nil, nil, err
		}
		p, others := nmFind(profiles, w)
		for _, o := range others {
			if nmBool(o.get("connection", "autoconnect"), true) {
				warnings = append(warnings, fmt.Sprintf("%s is also configured by %s (autoconnect): NetworkManager may activate that profile instead", w.Name, o.path))
			}
		}
		var have *ifConf
		file, id := nmPath(w)
		doc := parseINI("")
		if p != nil {
			if have, err = nmConf(p, profiles); err != nil {
				return nil, nil, err
			}
			file, doc = p.path, p.doc
		}
		if w.Kind == kindBridge {
			// Ports the bridge no longer has (all of them, when it goes): runbook's own
			// port profiles go, other profiles lose their controller.
			for _, s := range profiles {
				n := s.ifname()
				m, _, typeKey := s.master()
				if m == "" || s.get("connection", typeKey) != "bridge" || nmResolve(m, profiles) != w.Name || (!w.Absent && contains(w.Slaves, n)) {
					continue
				}
				drift = append(drift, fmt.Sprintf("%s: bridge %s → (none)", n, w.Name))
				if path.Base(s.path) == w.Name+nmPortInfix+n+nmKeyfileSuffix {
					if err := ws.remove(s.path); err != nil {
						return nil, nil, err
					}
					continue
				}
				nmEdit(s.doc, ifWant{Name: n, Kind: s.kind(), ManageBridge: true}, &ifConf{Kind: s.kind()}, "")
				if err := ws.write(s.path, s.doc.String(), 0o600); err != nil {
					return nil, nil, err
				}
			}
		}
		if w.Absent {
			if p == nil {
				continue
			}
			drift = append(drift, w.Name+": configured → absent")
			for _, x := range append([]*nmProfile{p}, others...) {
				if err := ws.remove(x.path); err != nil {
					return nil, nil, err
				}
			}
			continue
		}
		d := diffConf(w, have)
		if p != nil {
			if x, err := ws.file(p.path); err == nil && x.existed && x.origMode != 0o600 {
				d = append(d, fmt.Sprintf("%s: file mode %04o → 0600 (NetworkManager ignores a keyfile others can read)", w.Name, x.origMode))
			}
		}
		if w.Kind == kindBond {
			// Ports of this bond that are no longer wanted: runbook's own files go, other
			// profiles lose their controller.
			for _, s := range profiles {
				n := s.ifname()
				m, _, _ := s.master()
				if m == "" || nmResolve(m, profiles) != w.Name || contains(w.Slaves, n) {
					continue
				}
				if path.Base(s.path) == w.Name+nmPortInfix+n+nmKeyfileSuffix {
					if err := ws.remove(s.path); err != nil {
						return nil, nil, err
					}
					continue
				}
				nmEdit(s.doc, ifWant{Name: n, Kind: s.kind(), ManageMaster: true}, &ifConf{Kind: s.kind()}, "")
				if err := ws.write(s.path, s.doc.String(), 0o600); err != nil {
					return nil, nil, err
				}
			}
		}
		if len(d) == 0 {
			continue
		}
		drift = append(drift, d...)
		nmEdit(doc, w, have, id)
		if err := ws.write(file, doc.String(), 0o600); err != nil {
			return nil, nil, err
		}
	}
	return drift, warnings, nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// failureText is an error with the output that explains it, for a warning.
func failureText(err error) string {
	var f *modules.Failure
	if errors.As(err, &f) && f.Stderr != "" {
		return f.Msg + ": " + f.Stderr
	}
	return err.Error()
}

// nmReload tells a running NetworkManager about changed keyfiles (it reads them only at
// start or when asked): nmcli connection load for written files, reload when one was
// removed. It returns warnings, never fails: the files are right either way.
func nmReload(f *fileTree) func(ctx context.Context, changed []*stagedFile) []string {
	return func(ctx context.Context, changed []*stagedFile) []string {
		if !f.Real() || len(changed) == 0 {
			return nil
		}
		run := host.Exec{}
		nmcli := run.LookPath("nmcli")
		if nmcli == "" {
			return nil
		}
		cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		out, err := host.Output(cctx, run, nil, host.Cmd{Argv: []string{nmcli, "-t", "-f", "RUNNING", "general"}, Data: true})
		if err != nil || strings.TrimSpace(out) != "running" {
			return nil
		}
		args := []string{"connection", "load"}
		reload := false
		for _, x := range changed {
			if x.removed {
				reload = true
			} else {
				args = append(args, x.path)
			}
		}
		var warns []string
		if len(args) > 2 {
			if _, err := host.Output(cctx, run, nil, host.Cmd{Argv: append([]string{nmcli}, args...)}); err != nil {
				warns = append(warns, "nmcli connection load: "+failureText(err))
			}
		}
		if reload {
			if _, err := host.Output(cctx, run, nil, host.Cmd{Argv: []string{nmcli, "connection", "reload"}}); err != nil {
				warns = append(warns, "nmcli connection reload: "+failureText(err))
			}
		}
		return warns
	}
}
