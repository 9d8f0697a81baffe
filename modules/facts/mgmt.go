package facts

import (
	"bufio"
	"fmt"
	"net"
	"net/netip"
	"os"
	"sort"
	"strings"

	"github.com/runbook/runbook/modules/host"
)

// Bounds on what the management facts read: /proc/net/route has a line per route, and a
// host may hold many of them; lower_* chains are short on any real host.
const (
	mgmtMaxRouteLines = 1 << 16
	mgmtMaxDepth      = 8
	mgmtMaxNICs       = 64
)

// mgmtInputs are what the management facts are worked out from; Gather fills them from
// the running system, tests give them.
type mgmtInputs struct {
	// session is the SSH session the facts are gathered under (nil: none found), and why
	// it was not found.
	session *host.SSHSession
	why     error
	// addrs are the addresses each interface holds.
	addrs map[string][]netip.Addr
}

// realMgmtInputs reads the session and the interfaces' addresses of the running system.
func realMgmtInputs() mgmtInputs {
	in := mgmtInputs{addrs: map[string][]netip.Addr{}}
	in.session, in.why = host.SessionFinder{}.FindSSHSession()
	ifs, err := net.Interfaces()
	if err != nil {
		return in
	}
	for _, i := range ifs {
		as, err := i.Addrs()
		if err != nil {
			continue
		}
		for _, a := range as {
			if p, err := netip.ParsePrefix(a.String()); err == nil {
				in.addrs[i.Name] = append(in.addrs[i.Name], p.Addr().Unmap())
			}
		}
	}
	return in
}

// gatherManagement says which interfaces carry the management path: the interface that
// holds the local address of the SSH session the facts are gathered under, and every
// interface below it (a bond's slaves, a VLAN's parent, a bridge's ports: the kernel's
// lower_* links). When the session is not found, or it runs over loopback or an address
// no interface holds, the interfaces of the default routes (/proc/net/route,
// /proc/net/ipv6_route) and those below them count instead, and "how" says so. It is the
// early, readable form of the network modules' management-path guard, which stays the
// safety net: that guard also follows routes and tunnels.
func gatherManagement(f rootFS, in mgmtInputs) map[string]any {
	var roots []string
	how := ""
	if in.session != nil && !in.session.OtherNetns {
		for _, c := range in.session.Conns {
			local := c.Local.Addr().Unmap()
			if local.IsLoopback() {
				continue
			}
			for name, as := range in.addrs {
				for _, a := range as {
					if a == local && name != "lo" {
						roots = append(roots, name)
					}
				}
			}
		}
		if len(roots) > 0 {
			how = "the SSH session's local address (" + in.session.Source + ")"
		}
	}
	if len(roots) == 0 {
		roots = defaultRouteNICs(f)
		switch {
		case in.session == nil && in.why != nil:
			how = fmt.Sprintf("the default routes: the SSH session was not found (%v)", in.why)
		case in.session == nil:
			how = "the default routes: no SSH session"
		default:
			how = "the default routes: no interface of this host holds the SSH session's local address"
		}
	}
	seen := map[string]bool{}
	var walk func(name string, depth int)
	walk = func(name string, depth int) {
		if name == "" || name == "." || name == ".." || strings.ContainsRune(name, '/') ||
			seen[name] || depth > mgmtMaxDepth || len(seen) >= mgmtMaxNICs || !f.isDir("/sys/class/net/"+name) {
			return
		}
		seen[name] = true
		for _, e := range f.names("/sys/class/net/" + name) {
			if lower, ok := strings.CutPrefix(e, "lower_"); ok {
				walk(lower, depth+1)
			}
		}
	}
	sort.Strings(roots)
	for _, r := range roots {
		walk(r, 0)
	}
	nics := make([]string, 0, len(seen))
	for n := range seen {
		nics = append(nics, n)
	}
	sort.Strings(nics)
	list := make([]any, len(nics))
	for i, n := range nics {
		list[i] = n
	}
	return map[string]any{"nics": list, "how": how}
}

// defaultRouteNICs are the interfaces of the default routes of IPv4 (/proc/net/route:
// destination and mask 00000000) and IPv6 (/proc/net/ipv6_route: ::/0), sorted.
func defaultRouteNICs(f rootFS) []string {
	set := map[string]bool{}
	f.scanLines("/proc/net/route", mgmtMaxRouteLines, func(line string) {
		fl := strings.Fields(line)
		// Iface Destination Gateway Flags RefCnt Use Metric Mask ...
		if len(fl) >= 8 && fl[1] == "00000000" && fl[7] == "00000000" && fl[0] != "lo" {
			set[fl[0]] = true
		}
	})
	f.scanLines("/proc/net/ipv6_route", mgmtMaxRouteLines, func(line string) {
		fl := strings.Fields(line)
		// dst dst_len src src_len next_hop metric refcnt use flags iface
		if len(fl) >= 10 && fl[0] == strings.Repeat("0", 32) && fl[1] == "00" && fl[9] != "lo" {
			set[fl[9]] = true
		}
	})
	out := make([]string, 0, len(set))
	for n := range set {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// scanLines calls fn with each of the first max lines of the file at p and reads no
// further: a routing table may be large, and it is read line by line, not whole.
func (f rootFS) scanLines(p string, max int, fn func(string)) {
	fh, err := os.Open(f.path(p))
	if err != nil {
		return
	}
	defer fh.Close()
	sc := bufio.NewScanner(fh)
	for n := 0; n < max && sc.Scan(); n++ {
		fn(sc.Text())
	}
}
