package testenv

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"
)

// TestLabSegments brings up a lab spanning two /24 segments (3 hosts to a
// segment, so 6 hosts do it) beside a small lab, reaches a host of each
// segment with OpenSSH's client, and checks the neighbour table limits: raised
// for both labs, still raised for the small lab after the large one is down,
// back to what the first lab found once both are down; and that down leaves
// nothing (namespaces, interfaces, the guard route, processes, registry).
func TestLabSegments(t *testing.T) {
	requireSSHClient(t)
	const perSeg, hosts = 3, 6
	big := Start(t, Options{Tier: TierNS, Hosts: hosts, HostsPerSegment: perSeg})
	small := Start(t, Options{Tier: TierNS, Hosts: 2})

	subnet := netip.MustParsePrefix(big.Subnet())
	if subnet.Bits() != 23 {
		t.Errorf("lab of %d hosts at %d a segment has subnet %s, want a /23", hosts, perSeg, subnet)
	}
	segs := big.Segments()
	if len(segs) != 2 {
		t.Fatalf("%d segments, want 2: %+v", len(segs), segs)
	}
	if netip.MustParsePrefix(small.Subnet()).Overlaps(subnet) {
		t.Errorf("the small lab's subnet %s overlaps the large lab's %s", small.Subnet(), subnet)
	}

	// One host of each segment, over the real path: 127.0.0.1 -> forwarder ->
	// hub -> that segment's bridge -> sshd.
	for i, seg := range segs {
		h := big.Hosts[i*perSeg+perSeg-1]
		segNet := netip.MustParsePrefix(seg.Subnet)
		if !segNet.Contains(netip.MustParseAddr(h.MgmtIP)) {
			t.Errorf("%s has address %s outside its segment %s", h.Name, h.MgmtIP, segNet)
		}
		out, err := sshHost(t, big, h, 30*time.Second, "hostname; ip -4 -o addr show dev eth0; ip -4 route show default")
		if err != nil {
			t.Fatal(err)
		}
		for _, want := range []string{h.Name + "\n", " " + h.MgmtIP + "/24 ", "default via " + seg.HubIP + " dev eth0"} {
			if !strings.Contains(out, want) {
				t.Errorf("%s (segment %s): output lacks %q:\n%s", h.Name, seg.Subnet, want, out)
			}
		}
	}
	// The hub has an address and a bridge on each segment.
	out, err := runCmd(context.Background(), "", "ip", "-n", big.st.HubNS, "-4", "-o", "addr")
	if err != nil {
		t.Fatal(err)
	}
	for _, seg := range segs {
		if !strings.Contains(string(out), seg.Bridge+"    inet "+seg.HubIP+"/24") {
			t.Errorf("hub lacks %s on %s:\n%s", seg.HubIP, seg.Bridge, out)
		}
	}

	// A host's mount namespace does not keep copies of the machine's
	// /run/netns mounts (one per namespace of every lab: a million mounts
	// for a thousand hosts otherwise).
	for _, h := range big.st.Hosts {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/mountinfo", h.Main.PID))
		if err != nil {
			t.Fatal(err)
		}
		if n := strings.Count(string(b), " nsfs "); n > 0 {
			t.Errorf("%s's mount namespace holds %d nsfs mounts", h.Name, n)
		}
	}

	// rtnetlink errors name what failed: a link the host lacks, an address it has.
	h := big.st.Hosts[0]
	gw, plen := big.st.hostNet(h)
	ip, gwa := netip.MustParseAddr(h.MgmtIP), netip.MustParseAddr(gw)
	if err := configureHostNetns(netnsPath(h.NetNS), "nosuch0", ip, plen, gwa, nil); err == nil || !strings.Contains(err.Error(), "link nosuch0") {
		t.Errorf("configuring a missing link: %v", err)
	}
	if err := configureHostNetns(netnsPath(h.NetNS), mgmtNIC, ip, plen, gwa, nil); err == nil || !strings.Contains(err.Error(), "address "+h.MgmtIP) || !strings.Contains(err.Error(), "exists") {
		t.Errorf("adding the address twice: %v", err)
	}

	// The switch has two fabrics per segment, each host's data veths on its segment's.
	for _, h := range big.st.Hosts {
		for j, f := range fabricBridges(big.st.Prefix, h.Segment) {
			out, err := runCmd(context.Background(), "", "ip", "-n", big.st.SwitchNS, "-o", "link", "show", "master", f)
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(string(out), " "+h.SwIfs[j]+"@") {
				t.Errorf("%s's %s is not a port of %s:\n%s", h.Name, h.SwIfs[j], f, out)
			}
		}
	}

	// Neighbour limits: both labs counted.
	if big.st.Neigh == nil || small.st.Neigh == nil {
		t.Fatal("a lab did not record its neighbour limits")
	}
	orig := readBookOrig(t)
	const v4, v6 = "net/ipv4/neigh/default/gc_thresh3", "net/ipv6/neigh/default/gc_thresh3"
	wantRaised := func(when string, n int) {
		t.Helper()
		cur := readNeighLimits()
		for _, p := range []string{v4, v6} {
			if _, ok := orig[p]; !ok {
				continue
			}
			if want := orig[p] + neighPerHost(p)*n; cur[p] < want {
				t.Errorf("%s: %s = %d, want at least %d", when, sysctlName(p), cur[p], want)
			}
		}
	}
	wantRaised("both labs up", hosts+2)

	downAndCheck := func(l *Lab) {
		t.Helper()
		procs := l.Processes()
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := l.Down(ctx); err != nil {
			t.Fatal(err)
		}
		if left := l.Leftovers(procs); len(left) > 0 {
			t.Errorf("down of %s left:\n%s", l.Dir, strings.Join(left, "\n"))
		}
	}
	downAndCheck(big)
	// The small lab still counts on the raise: the large lab must not have
	// restored the limits under it.
	wantRaised("after the large lab is down", 2)

	downAndCheck(small)
	if _, err := os.Stat(neighBookPath()); err == nil {
		// Another lab is up on the machine (the suite runs packages at once, each with
		// labs of its own): the limits stay raised for it, rightly. Neither of this
		// test's labs may still be counted.
		b, err := loadNeighBook()
		if err != nil {
			t.Fatal(err)
		}
		for _, l := range []*Lab{big, small} {
			if _, ok := b.Labs[l.st.ID]; ok {
				t.Errorf("%s still counts lab %s (%s) after it went down", neighBookPath(), l.st.ID, l.Dir)
			}
		}
		if len(b.Labs) == 0 {
			t.Errorf("%s is left with no lab counted in it", neighBookPath())
		}
		t.Logf("other labs are up (%d counted): the neighbour limits stay raised for them", len(b.Labs))
		return
	}
	cur := readNeighLimits()
	for p, v := range orig {
		if cur[p] != v {
			t.Errorf("after both labs are down %s = %d, want %d as before", sysctlName(p), cur[p], v)
		}
	}
}

// readBookOrig returns the limits as they were before the labs raised them.
func readBookOrig(t *testing.T) map[string]int {
	t.Helper()
	unlock, err := lockRegistry(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer unlock()
	b, err := loadNeighBook()
	if err != nil {
		t.Fatal(err)
	}
	if len(b.Orig) == 0 {
		t.Fatal("no original neighbour limits recorded while labs are up")
	}
	return b.Orig
}
