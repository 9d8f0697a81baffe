package network

import (
	"fmt"
	"path"
	"slices"
	"strconv"
	"strings"
)

// ifupdown: /etc/network/interfaces and the files it sources. An interface may have several
// iface stanzas (one per address family, and more for extra addresses: ifup applies them
// all); "auto NAME" or "allow-hotplug NAME" brings it up at boot. Bond options are the
// ifenslave package's bond-* options, VLANs the vlan package's vlan-raw-device.

// ifuLine is one line of an interfaces file.
type ifuLine struct {
	text string
	// kind: "iface", "option" (inside a stanza), "auto" (auto/allow-*), "source", "other".
	kind   string
	fields []string
}

type ifuFile struct {
	path  string
	lines []ifuLine
}

var ifuTopLevel = map[string]bool{"iface": true, "mapping": true, "auto": true, "source": true,
	"source-directory": true, "source-dir": true, "no-auto-down": true, "no-scripts": true}

func parseIfu(p, text string) *ifuFile {
	f := &ifuFile{path: p}
	inStanza := false
	if text == "" {
		return f
	}
	for _, line := range strings.Split(strings.TrimRight(text, "\n"), "\n") {
		fields := strings.Fields(line)
		l := ifuLine{text: line, kind: "other", fields: fields}
		switch {
		case len(fields) == 0 || strings.HasPrefix(fields[0], "#"):
		case fields[0] == "iface":
			l.kind, inStanza = "iface", true
		case fields[0] == "auto" || strings.HasPrefix(fields[0], "allow-"):
			l.kind, inStanza = "auto", false
		case fields[0] == "source" || fields[0] == "source-directory" || fields[0] == "source-dir":
			l.kind, inStanza = "source", false
		case ifuTopLevel[fields[0]]:
			inStanza = false
		case inStanza:
			l.kind = "option"
		}
		f.lines = append(f.lines, l)
	}
	return f
}

func (f *ifuFile) String() string {
	var b strings.Builder
	for _, l := range f.lines {
		b.WriteString(l.text + "\n")
	}
	return b.String()
}

// ifuStanza is one iface stanza: its header and option lines (indexes into the file).
type ifuStanza struct {
	file    *ifuFile
	start   int // the iface line
	end     int // one past the last line of the stanza (options, comments inside it)
	family  string
	method  string
	options [][]string
}

func (f *ifuFile) stanzas(name string) []*ifuStanza {
	var out []*ifuStanza
	for i := 0; i < len(f.lines); i++ {
		l := f.lines[i]
		if l.kind != "iface" || len(l.fields) < 2 || l.fields[1] != name {
			continue
		}
		s := &ifuStanza{file: f, start: i}
		if len(l.fields) > 2 {
			s.family = l.fields[2]
		}
		if len(l.fields) > 3 {
			s.method = l.fields[3]
		}
		j := i + 1
		last := i
		for ; j < len(f.lines); j++ {
			k := f.lines[j].kind
			if k == "option" {
				s.options = append(s.options, f.lines[j].fields)
				last = j
				continue
			}
			if k != "other" {
				break
			}
			// Blank lines and comments end a stanza only if no option follows.
		}
		s.end = last + 1
		out = append(out, s)
	}
	return out
}

// option returns the value of a stanza option ("bond-mode" and "bond_mode" are one).
func (s *ifuStanza) option(name string) (string, bool) {
	for _, o := range s.options {
		if ifuOptName(o[0]) == name {
			return strings.Join(o[1:], " "), true
		}
	}
	return "", false
}

func ifuOptName(s string) string { return strings.ReplaceAll(strings.ToLower(s), "_", "-") }

// ifuFiles reads /etc/network/interfaces and the files it sources, in the order ifup does.
func ifuFiles(ws *workspace) ([]*ifuFile, bool, error) {
	var out []*ifuFile
	queue := []string{ifupdownMain}
	seen := map[string]bool{}
	readsDir := false
	for i := 0; i < len(queue) && i < 256; i++ {
		p := queue[i]
		if seen[p] {
			continue
		}
		seen[p] = true
		text, ok, err := ws.read(p)
		if err != nil {
			return nil, false, err
		}
		if !ok && p != ifupdownMain {
			continue
		}
		f := parseIfu(p, text)
		out = append(out, f)
		for _, l := range f.lines {
			xs, dir := ifuSourced(ws, l)
			queue = append(queue, xs...)
			readsDir = readsDir || dir
		}
	}
	return out, readsDir, nil
}

// ifuSourced lists the files a source or source-directory line reads, in order, and
// whether it reads interfaces.d.
func ifuSourced(ws *workspace, l ifuLine) (out []string, readsDir bool) {
	if l.kind != "source" || len(l.fields) < 2 {
		return nil, false
	}
	pat := l.fields[1]
	if !path.IsAbs(pat) {
		pat = path.Join(path.Dir(ifupdownMain), pat)
	}
	if l.fields[0] != "source" {
		for _, x := range ws.list(path.Clean(pat)) {
			if ifuDirName(path.Base(x)) {
				out = append(out, x)
			}
		}
		return out, path.Clean(pat) == ifupdownDir
	}
	for _, x := range ws.list(path.Dir(pat)) {
		if ok, _ := path.Match(pat, x); ok {
			out = append(out, x)
		}
	}
	return out, path.Dir(pat) == ifupdownDir && strings.ContainsAny(path.Base(pat), "*?[")
}

// ifuAutoOrder lists the interfaces of auto lines in the order ifup -a brings them up:
// each sourced file read where its source line stands.
func ifuAutoOrder(ws *workspace) ([]string, error) {
	var out []string
	seen := map[string]bool{}
	var read func(p string, depth int) error
	read = func(p string, depth int) error {
		if seen[p] || depth > 8 || len(seen) >= 256 {
			return nil
		}
		seen[p] = true
		text, ok, err := ws.read(p)
		if err != nil || !ok {
			return err
		}
		for _, l := range parseIfu(p, text).lines {
			switch {
			case l.kind == "auto" && (l.fields[0] == "auto" || l.fields[0] == "allow-auto"):
				out = append(out, l.fields[1:]...)
			case l.kind == "source":
				xs, _ := ifuSourced(ws, l)
				for _, x := range xs {
					if err := read(x, depth+1); err != nil {
						return err
					}
				}
			}
		}
		return nil
	}
	return out, read(ifupdownMain, 0)
}

// ifuBridgeOrder warns of a bridge that ifup -a brings up before a port that only its own
// stanza makes (a bond): bridge-utils' hook skips a port that does not exist yet, so after
// a reboot the bridge would run without it.
func ifuBridgeOrder(ws *workspace, wants []ifWant) ([]string, error) {
	var out []string
	for _, w := range wants {
		if w.Kind != kindBridge || w.Absent || len(w.Slaves) == 0 {
			continue
		}
		order, err := ifuAutoOrder(ws)
		if err != nil {
			return nil, err
		}
		files, _, err := ifuFiles(ws)
		if err != nil {
			return nil, err
		}
		b := slices.Index(order, w.Name)
		if b < 0 {
			continue
		}
		for _, p := range w.Slaves {
			c, err := ifuConf(files, p)
			if err != nil {
				return nil, err
			}
			if c == nil || c.Kind != kindBond || slices.Index(order, p) < b {
				continue
			}
			out = append(out, fmt.Sprintf("at boot ifup brings %s up before its port %s (%s's auto line comes later in the files ifup reads, %s): bridge-utils' hook skips a port that does not exist yet, so after a reboot %s runs without %s; put %s's stanza after %s's",
				w.Name, p, p, c.File, w.Name, p, w.Name, p))
		}
	}
	return out, nil
}

// ifuDirName: run-parts rules for source-directory (letters, digits, _ and -).
func ifuDirName(n string) bool {
	for _, r := range n {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '-') {
			return false
		}
	}
	return n != ""
}

// ifuAuto reports whether name is on an auto (or allow-hotplug, allow-auto) line.
func ifuAuto(files []*ifuFile, name string) (auto, hotplug bool) {
	for _, f := range files {
		for _, l := range f.lines {
			if l.kind != "auto" || !contains(l.fields[1:], name) {
				continue
			}
			if l.fields[0] == "allow-hotplug" {
				hotplug = true
			} else if l.fields[0] == "auto" || l.fields[0] == "allow-auto" {
				auto = true
			}
		}
	}
	return auto, hotplug
}

// ifuVLANID reads the VLAN id from the name, as the vlan package does ("bond0.100",
// "vlan100", "vlan0100").
func ifuVLANID(name string) (parent string, id int, ok bool) {
	if i := strings.LastIndexByte(name, '.'); i > 0 {
		if n, err := strconv.Atoi(name[i+1:]); err == nil {
			return name[:i], n, true
		}
	}
	if rest, found := strings.CutPrefix(name, "vlan"); found {
		if n, err := strconv.Atoi(rest); err == nil {
			return "", n, true
		}
	}
	return "", 0, false
}

func ifuConf(files []*ifuFile, name string) (*ifConf, error) {
	var all []*ifuStanza
	for _, f := range files {
		all = append(all, f.stanzas(name)...)
	}
	if len(all) == 0 {
		return nil, nil
	}
	first := all[0]
	for _, s := range all {
		if s.family == "inet" {
			first = s
			break
		}
	}
	c := &ifConf{Name: name, Kind: kindEthernet, File: first.file.path, Method: "static"}
	auto, hotplug := ifuAuto(files, name)
	c.Up = auto || hotplug
	for _, s := range all {
		switch s.method {
		case "static", "manual", "loopback":
		default:
			if c.Method == "static" {
				c.Method = s.family + " " + s.method
			}
		}
		if v, ok := s.option("mtu"); ok && c.MTU == 0 {
			n, err := strconv.Atoi(v)
			if err != nil {
				return nil, fmt.Errorf("%s: mtu %q is not a number", s.file.path, v)
			}
			c.MTU = n
		}
		if v, ok := s.option("bond-master"); ok {
			c.Master = v
		}
		mask, _ := s.option("netmask")
		for _, o := range s.options {
			if ifuOptName(o[0]) != "address" || len(o) < 2 {
				continue
			}
			a, err := withPrefix(o[1], mask)
			if err != nil {
				return nil, fmt.Errorf("%s: address: %v", s.file.path, err)
			}
			c.Addrs = append(c.Addrs, a)
		}
	}
	_, hasSlaves := first.option("bond-slaves")
	_, hasMode := first.option("bond-mode")
	if hasSlaves || hasMode {
		c.Kind = kindBond
		c.Bond = map[string]string{}
		for _, o := range first.options {
			n := ifuOptName(o[0])
			opt, ok := strings.CutPrefix(n, "bond-")
			if !ok || opt == "slaves" || opt == "master" || len(o) < 2 {
				continue
			}
			opt = normOptName(opt)
			v, err := normBondOption(opt, strings.Join(o[1:], " "))
			if err != nil {
				return nil, fmt.Errorf("%s: %s: %v", first.file.path, n, err)
			}
			c.Bond[opt] = v
		}
		if v, _ := first.option("bond-slaves"); v != "none" {
			c.Slaves = strings.Fields(v)
		}
		for _, f := range files {
			for i, l := range f.lines {
				if l.kind != "iface" || len(l.fields) < 2 || contains(c.Slaves, l.fields[1]) {
					continue
				}
				for _, s := range f.stanzas(l.fields[1]) {
					if s.start == i {
						if m, _ := s.option("bond-master"); m == name {
							c.Slaves = append(c.Slaves, l.fields[1])
						}
					}
				}
			}
		}
	}
	if v, ok := first.option("bridge-ports"); ok {
		c.Kind = kindBridge
		if v != "none" {
			c.Slaves = strings.Fields(v)
		}
		// Read as bridge-utils' hook acts on them: brctl stp takes on, yes or 1 (it
		// refuses what is not on or off), and the hook turns VLAN filtering on for "yes"
		// alone.
		stp, _ := first.option("bridge-stp")
		aware, _ := first.option("bridge-vlan-aware")
		c.BridgeOpts = &bridgeOpts{STP: slices.Contains([]string{"on", "yes", "1"}, stp), VLANFiltering: aware == "yes"}
	}
	// A port is listed by its bridge's bridge_ports (bridge-utils).
	for _, f := range files {
		for _, l := range f.lines {
			if l.kind != "iface" || len(l.fields) < 2 || l.fields[1] == name {
				continue
			}
			for _, s := range f.stanzas(l.fields[1]) {
				if v, ok := s.option("bridge-ports"); ok && contains(strings.Fields(v), name) {
					c.Bridge = l.fields[1]
				}
			}
		}
	}
	if raw, ok := first.option("vlan-raw-device"); ok {
		c.Kind = kindVLAN
		c.VLAN = &vlanSpec{Parent: raw}
		if v, ok := first.option("vlan-id"); ok {
			c.VLAN.ID, _ = strconv.Atoi(v)
		} else if _, id, ok := ifuVLANID(name); ok {
			c.VLAN.ID = id
		}
	} else if parent, id, ok := ifuVLANID(name); ok && parent != "" {
		c.Kind = kindVLAN
		c.VLAN = &vlanSpec{Parent: parent, ID: id}
	}
	return c, nil
}

// ifuManaged says which options of an existing stanza runbook rewrites for w.
func ifuManaged(w ifWant, name string) bool {
	switch name {
	case "mtu":
		return w.MTU.set
	case "address", "netmask", "broadcast", "network":
		return w.ManageAddrs || (w.ManageMaster && w.Master != "")
	case "gateway":
		// A gateway stays while the interface keeps an IPv4 address.
		v4, _ := splitFamilies(w.Addrs)
		return (w.ManageAddrs && len(v4) == 0) || (w.ManageMaster && w.Master != "")
	case "bond-master":
		return w.ManageMaster
	case "vlan-raw-device", "vlan-id":
		return w.VLAN != nil
	case "bridge-ports", "bridge-stp", "bridge-vlan-aware":
		return w.Kind == kindBridge
	}
	if strings.HasPrefix(name, "bond-") {
		return w.Kind == kindBond && (name == "bond-slaves" || w.Bond[normOptName(strings.TrimPrefix(name, "bond-"))] != "")
	}
	return false
}

// ifuRender writes the stanzas for w; old holds the ones it replaces (nil for new).
func ifuRender(w ifWant, have *ifConf, old []*ifuStanza, up bool, autoWord string) []string {
	var firstOld *ifuStanza
	var keepOthers []*ifuStanza
	for _, s := range old {
		if firstOld == nil && s.family == "inet" {
			firstOld = s
			continue
		}
		keepOthers = append(keepOthers, s)
	}
	slave := w.ManageMaster && w.Master != ""
	v4, v6 := splitFamilies(w.Addrs)
	method := "manual"
	switch {
	case slave:
	case w.ManageAddrs && len(v4) > 0:
		method = "static"
	case w.ManageAddrs:
	case firstOld != nil && firstOld.method != "":
		method = firstOld.method
	}
	var out []string
	if up {
		out = append(out, autoWord+" "+w.Name)
	}
	out = append(out, fmt.Sprintf("iface %s inet %s", w.Name, method))
	opt := func(o ...string) { out = append(out, "    "+strings.Join(o, " ")) }
	if w.ManageAddrs && len(v4) > 0 {
		opt("address", v4[0])
	}
	if firstOld != nil {
		for _, o := range firstOld.options {
			if !ifuManaged(w, ifuOptName(o[0])) {
				opt(o...)
			}
		}
	}
	if w.Kind == kindBond {
		slaves := strings.Join(w.Slaves, " ")
		if slaves == "" {
			slaves = "none"
		}
		opt("bond-slaves", slaves)
		for _, k := range sortedOptNames(w.Bond) {
			opt("bond-"+strings.ReplaceAll(k, "_", "-"), w.Bond[k])
		}
	}
	if slave {
		opt("bond-master", w.Master)
	}
	if w.Kind == kindBridge && w.BridgeOpts != nil {
		ports := strings.Join(w.Slaves, " ")
		if ports == "" {
			ports = "none"
		}
		opt("bridge_ports", ports)
		opt("bridge_stp", onOff(w.BridgeOpts.STP))
		if w.BridgeOpts.VLANFiltering {
			opt("bridge_vlan_aware", "yes")
		}
	}
	if w.VLAN != nil {
		opt("vlan-raw-device", w.VLAN.Parent)
	}
	if w.MTU.set && !w.MTU.auto {
		if have != nil && have.MTU == 0 && w.MTU.matchesPersisted(w.Kind, 0) {
			// 1500 where no MTU was set: nothing to write.
		} else {
			opt("mtu", strconv.Itoa(w.MTU.n))
		}
	}
	stanza := func(family, method string, extra []string) {
		out = append(out, "", fmt.Sprintf("iface %s %s %s", w.Name, family, method))
		out = append(out, extra...)
	}
	switch {
	case slave:
	case w.ManageAddrs:
		for _, a := range v4[min(1, len(v4)):] {
			stanza("inet", "static", []string{"    address " + a})
		}
		for _, a := range v6 {
			stanza("inet6", "static", []string{"    address " + a})
		}
		for _, s := range keepOthers {
			if s.family != "inet" && s.family != "inet6" {
				out = append(out, "")
				out = append(out, linesOf(s)...)
			}
		}
	default:
		for _, s := range keepOthers {
			out = append(out, "")
			out = append(out, linesOf(s)...)
		}
	}
	return out
}

// ifuDropBondMaster removes "bond-master BOND" from the stanzas of interfaces that are not
// among the bond's wanted slaves, and says what it removed.
func ifuDropBondMaster(ws *workspace, files []*ifuFile, w ifWant) ([]string, error) {
	var freed []string
	for _, f := range files {
		drop := map[int]bool{}
		for i, l := range f.lines {
			if l.kind != "iface" || len(l.fields) < 2 || l.fields[1] == w.Name || contains(w.Slaves, l.fields[1]) {
				continue
			}
			for _, st := range f.stanzas(l.fields[1]) {
				if st.start != i {
					continue
				}
				for j := st.start + 1; j < st.end; j++ {
					o := f.lines[j]
					if o.kind == "option" && len(o.fields) >= 2 && ifuOptName(o.fields[0]) == "bond-master" && o.fields[1] == w.Name {
						drop[j] = true
						freed = append(freed, fmt.Sprintf("%s: bond-master %s → none (not a slave of %s any more)", l.fields[1], w.Name, w.Name))
					}
				}
			}
		}
		if len(drop) == 0 {
			continue
		}
		var kept []ifuLine
		for i, l := range f.lines {
			if !drop[i] {
				kept = append(kept, l)
			}
		}
		f.lines = kept
		if err := ws.write(f.path, f.String(), 0); err != nil {
			return nil, err
		}
	}
	return freed, nil
}

// ifuOnlyComments says whether a file holds nothing but comments and blank lines.
func ifuOnlyComments(f *ifuFile) bool {
	for _, l := range f.lines {
		if l.kind != "other" || (len(l.fields) > 0 && !strings.HasPrefix(l.fields[0], "#")) {
			return false
		}
	}
	return true
}

func linesOf(s *ifuStanza) []string {
	var out []string
	for _, l := range s.file.lines[s.start:s.end] {
		out = append(out, l.text)
	}
	return out
}

func planIfupdown(ws *workspace, wants []ifWant) (drift, warnings []string, err error) {
	for _, w := range wants {
		files, readsDir, err := ifuFiles(ws)
		if err != nil {
			return nil, nil, err
		}
		if w.Kind == kindBond {
			// A NIC that is no longer a slave keeps no bond-master line naming the bond:
			// ifupdown would still count it as one, and put it back into the bond at boot.
			freed, err := ifuDropBondMaster(ws, files, w)
			if err != nil {
				return nil, nil, err
			}
			drift = append(drift, freed...)
			if len(freed) > 0 {
				if files, readsDir, err = ifuFiles(ws); err != nil {
					return nil, nil, err
				}
			}
		}
		have, err := ifuConf(files, w.Name)
		if err != nil {
			return nil, nil, err
		}
		if w.Absent {
			if have == nil {
				continue
			}
			if have.Kind != w.Kind {
				warnings = append(warnings, absentOtherKind(w, have))
				continue
			}
			drift = append(drift, w.Name+": configured → absent")
		}
		// Slaves are listed by bond-slaves on the bond, a bridge's ports by its
		// bridge_ports; a slave or port needs a stanza only to keep ifup from configuring
		// it otherwise, so one is written only where one exists.
		port := w.ManageBridge && w.Bridge != ""
		if (w.ManageMaster && w.Master != "" || port) && have == nil {
			continue
		}
		wc := w
		if w.ManageMaster && w.Master != "" && have != nil && have.Master == "" {
			// A stanza listed in bond-slaves needs no bond-master.
			wc.ManageMaster, wc.Master = false, ""
			wc.ManageAddrs, wc.Addrs = true, nil
		}
		if port {
			// bridge_ports says it; the port's own stanza carries no address.
			wc.ManageBridge, wc.Bridge = false, ""
			wc.ManageAddrs, wc.Addrs = true, nil
		}
		if w.VLAN != nil {
			if parent, id, ok := ifuVLANID(w.Name); !ok || id != w.VLAN.ID || (parent != "" && parent != w.VLAN.Parent) {
				return nil, nil, fmt.Errorf("ifupdown takes a VLAN's id from its name: call it %s.%d or vlan%d", w.VLAN.Parent, w.VLAN.ID, w.VLAN.ID)
			}
		}
		var d []string
		if !w.Absent {
			d = diffConf(wc, have)
		}
		if have == nil && !readsDir {
			d = append(d, fmt.Sprintf("%s: %s does not read %s", w.Name, ifupdownMain, ifupdownDir))
		}
		if len(d) == 0 && !w.Absent {
			continue
		}
		drift = append(drift, d...)

		// Take out every stanza and auto entry of the interface, then put the new ones
		// where the first stanza was (or in a file of its own).
		autoWord := "auto"
		if auto, hotplug := ifuAuto(files, w.Name); hotplug && !auto {
			autoWord = "allow-hotplug"
		}
		up := have == nil || have.Up
		if w.Up != nil {
			up = *w.Up
		}
		var old []*ifuStanza
		target, at := (*ifuFile)(nil), 0
		for _, f := range files {
			st := f.stanzas(w.Name)
			old = append(old, st...)
			if len(st) > 0 && target == nil {
				target, at = f, st[0].start
			}
		}
		var rendered []string
		if !w.Absent {
			rendered = ifuRender(wc, have, old, up, autoWord)
		}
		for _, f := range files {
			changed := false
			var kept []ifuLine
			drop := map[int]bool{}
			for _, s := range f.stanzas(w.Name) {
				for i := s.start; i < s.end; i++ {
					drop[i] = true
				}
			}
			for i, l := range f.lines {
				if f == target && i == at {
					for _, r := range rendered {
						kept = append(kept, ifuLine{text: r})
					}
					changed = true
				}
				if drop[i] {
					changed = true
					continue
				}
				if l.kind == "auto" && contains(l.fields[1:], w.Name) {
					rest := remove(l.fields[1:], w.Name)
					changed = true
					if len(rest) == 0 {
						continue
					}
					l.text = l.fields[0] + " " + strings.Join(rest, " ")
				}
				kept = append(kept, l)
			}
			if !changed {
				continue
			}
			f.lines = kept
			if w.Absent && path.Dir(f.path) == ifupdownDir && ifuOnlyComments(f) {
				// runbook's own file, with nothing left in it.
				if err := ws.remove(f.path); err != nil {
					return nil, nil, err
				}
				continue
			}
			// Re-read so later wants see the file as written.
			if err := ws.write(f.path, parseIfu(f.path, f.String()).String(), 0); err != nil {
				return nil, nil, err
			}
		}
		if target == nil && !w.Absent {
			p := path.Join(ifupdownDir, w.Name)
			text := "# " + managedComment + ".\n" + strings.Join(rendered, "\n") + "\n"
			if err := ws.write(p, text, 0o644); err != nil {
				return nil, nil, err
			}
			if !readsDir {
				main, _, err := ws.read(ifupdownMain)
				if err != nil {
					return nil, nil, err
				}
				if main != "" && !strings.HasSuffix(main, "\n") {
					main += "\n"
				}
				main += "\nsource " + ifupdownDir + "/*\n"
				if err := ws.write(ifupdownMain, main, 0); err != nil {
					return nil, nil, err
				}
			}
		}
	}
	order, err := ifuBridgeOrder(ws, wants)
	if err != nil {
		return nil, nil, err
	}
	return drift, append(warnings, order...), nil
}
