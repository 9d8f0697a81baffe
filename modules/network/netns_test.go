package network

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"github.com/zclconf/go-cty/cty"

	"github.com/runbook/runbook/modules"
	"github.com/runbook/runbook/modules/host"
	"github.com/runbook/runbook/modules/moduletest"
)

// inTestNetns moves the test's goroutine, locked to its thread, into a new named network
// namespace; the namespace is deleted when the test ends and the thread, never unlocked,
// ends with the goroutine. It returns a netlink handle in that namespace. A missing
// prerequisite skips the test, and fails it under CI=true (needOrSkip).
func inTestNetns(t *testing.T) *netlink.Handle {
	t.Helper()
	if os.Geteuid() != 0 {
		needOrSkip(t, "network namespaces need root")
	}
	runtime.LockOSThread()
	orig, err := netns.Get()
	if err != nil {
		needOrSkip(t, "cannot read this thread's network namespace: %v", err)
	}
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	name := fmt.Sprintf("rbnet-%d-%s", os.Getpid(), hex.EncodeToString(b))
	ns, err := netns.NewNamed(name)
	if err != nil {
		orig.Close()
		needOrSkip(t, "cannot make a network namespace here: %v", err)
	}
	h, err := netlink.NewHandle()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		h.Close()
		_ = netns.Set(orig)
		if err := netns.DeleteNamed(name); err != nil {
			t.Errorf("delete netns %s: %v", name, err)
		}
		ns.Close()
		orig.Close()
	})
	return h
}

// linkState describes a link as the kernel has it, for before/after comparisons.
func linkState(t testing.TB, h *netlink.Handle, name string) string {
	t.Helper()
	l, err := h.LinkByName(name)
	if err != nil {
		t.Fatal(err)
	}
	addrs, err := h.AddrList(l, netlink.FAMILY_ALL)
	if err != nil {
		t.Fatal(err)
	}
	var as []string
	for _, a := range addrs {
		as = append(as, a.IPNet.String())
	}
	slices.Sort(as)
	return fmt.Sprintf("mtu=%d up=%v addrs=%s", l.Attrs().MTU, l.Attrs().Flags&net.FlagUp != 0, strings.Join(as, ","))
}

// TestInterfaceNetns runs the interface module against the real kernel on a veth pair in a
// network namespace of the test's own: MTU, addresses (exclusive) and up, then down, with
// check mode proven to change nothing, and the systemd-networkd file written beside it.
func TestInterfaceNetns(t *testing.T) {
	h := inTestNetns(t)
	attrs := netlink.NewLinkAttrs()
	attrs.Name = "rbv0"
	if err := h.LinkAdd(&netlink.Veth{LinkAttrs: attrs, PeerName: "rbv1"}); err != nil {
		t.Fatalf("veth: %v", err)
	}
	v0, _ := h.LinkByName("rbv0")
	stray, _ := netlink.ParseAddr("10.99.0.1/16")
	if err := h.AddrAdd(v0, stray); err != nil {
		t.Fatal(err)
	}
	root := t.TempDir()
	m := Interface{root: host.Root(root)}
	args := map[string]cty.Value{"name": s("rbv0"), "mtu": n(9000), "state": s("up"), "addresses": strs("192.0.2.1/24", "2001:db8::1/64"),
		"exclusive": cty.True, "backend": s(backendNetworkd)}

	initial := linkState(t, h, "rbv0")
	const synced = "mtu=9000 up=true addrs=192.0.2.1/24,2001:db8::1/64"
	file := root + "/etc/systemd/network/10-rbv0.network"
	res4 := moduletest.Timeline(t, m, args, moduletest.Unchanged(func(t testing.TB, step string) {
		t.Helper()
		want := synced
		if step == "check" {
			want = initial
			if _, err := os.Stat(file); err == nil {
				t.Error("check mode wrote the file")
			}
		}
		if got := linkState(t, h, "rbv0"); got != want {
			t.Fatalf("%s: the link is\n%s\nwant\n%s", step, got, want)
		}
	}))
	check := res4[0].Data.(ifaceResult)
	want := []string{"rbv0: mtu 1500 → 9000", "rbv0: add address 192.0.2.1/24", "rbv0: add address 2001:db8::1/64",
		"rbv0: remove address 10.99.0.1/16", "rbv0: down → up"}
	if got := check.RuntimeDrift; !slices.Equal(got, want) {
		t.Errorf("runtime drift %q", got)
	}
	if got := check.PersistentDrift; !slices.Equal(got, []string{"rbv0: not configured"}) {
		t.Errorf("persistent drift %q", got)
	}
	data, err := os.ReadFile(file)
	if err != nil || !strings.Contains(string(data), "MTUBytes=9000") || !strings.Contains(string(data), "Address=2001:db8::1/64") {
		t.Errorf("networkd file: %v\n%s", err, data)
	}
	if d := res4[2].Data.(ifaceResult); d.MTU == nil || *d.MTU != 9000 || d.State != "up" || d.Kind != "veth" {
		t.Errorf("data %+v", d)
	}

	// Down again; an MTU of "auto" leaves the kernel's 9000 and drops the file's MTU.
	down := with(args, "state", s("down"), "mtu", s("auto"))
	res, err := moduletest.Run(t, m, down, true)
	if err != nil || res.Status != modules.StatusChanged {
		t.Fatalf("down: %v %+v", err, res)
	}
	if got := linkState(t, h, "rbv0"); !strings.HasPrefix(got, "mtu=9000 up=false") {
		t.Errorf("after down: %s", got)
	}
	if res, err = moduletest.Run(t, m, down, false); err != nil || res.Status != modules.StatusOK {
		t.Errorf("check after down: %v %+v", err, res)
	}

	// A VLAN on the veth: made when the kernel has 802.1Q, else a clear error.
	vlan := map[string]cty.Value{"name": s("rbv0.100"), "vlan": vlanVal("rbv0", 100), "state": s("up"), "backend": s("none")}
	res, err = moduletest.Run(t, m, vlan, true)
	if err != nil {
		if !strings.Contains(err.Error(), "modprobe 8021q") {
			t.Fatalf("vlan: %v", err)
		}
		t.Logf("no 802.1Q in this kernel: %v", err)
		return
	}
	if l, err := h.LinkByName("rbv0.100"); err != nil || l.(*netlink.Vlan).VlanId != 100 {
		t.Fatalf("vlan link: %v %v", l, err)
	}
	if res, err = moduletest.Run(t, m, vlan, false); err != nil || res.Status != modules.StatusOK {
		t.Errorf("vlan check: %v %+v", err, res)
	}
}

// TestGuardAltnameNetns: on the real kernel, a task that names the session's interface by
// an alternative name (lo, altname rbmgmt0, in a namespace of the test's own, the session
// on 127.0.0.1) is refused like one that names it, and the link is left as it was; a
// veth beside it changes.
func TestGuardAltnameNetns(t *testing.T) {
	h := inTestNetns(t)
	lo, err := h.LinkByName("lo")
	if err != nil {
		t.Fatal(err)
	}
	if err := h.LinkSetUp(lo); err != nil {
		t.Fatal(err)
	}
	if err := h.LinkAddAltName(lo, "rbmgmt0"); err != nil {
		t.Skipf("this kernel has no alternative names: %v", err)
	}
	attrs := netlink.NewLinkAttrs()
	attrs.Name = "rbdata0"
	if err := h.LinkAdd(&netlink.Veth{LinkAttrs: attrs, PeerName: "rbdata1"}); err != nil {
		t.Fatal(err)
	}
	m := Interface{root: host.Root(t.TempDir()), session: fixedSession("127.0.0.1:22", "127.0.0.1:50000")}
	before := linkState(t, h, "lo")
	for _, name := range []string{"rbmgmt0", "lo"} {
		for _, apply := range []bool{false, true} {
			_, err := moduletest.Run(t, m, runtimeOnly(map[string]cty.Value{"name": s(name), "mtu": n(1400)}), apply)
			want := `changes the MTU of lo (rbmgmt0): lo holds 127.0.0.1, this SSH session's address`
			if name == "lo" {
				want = `changes the MTU of lo: lo holds 127.0.0.1`
			}
			if err == nil || !strings.Contains(err.Error(), want) {
				t.Errorf("%s apply=%v: %v, want %s", name, apply, err, want)
			}
			if got := linkState(t, h, "lo"); got != before {
				t.Fatalf("%s apply=%v: a refused task changed lo: %s -> %s", name, apply, before, got)
			}
		}
	}
	if res, err := moduletest.Run(t, m, runtimeOnly(map[string]cty.Value{"name": s("rbdata0"), "mtu": n(1400)}), true); err != nil || res.Status != modules.StatusChanged {
		t.Errorf("rbdata0: %v %+v", err, res)
	}
}

// TestGuardPathNetns reads the management path off the real kernel, in a namespace of the
// test's own: the session's address on lo, its peer behind a multipath route over two
// veths (both are on the path, whichever the kernel picks now), and a VXLAN tunnel whose
// remote end is reached over one of them (that one is its underlay); a third veth is off
// the path.
func TestGuardPathNetns(t *testing.T) {
	h := inTestNetns(t)
	up := func(name string) netlink.Link {
		t.Helper()
		l, err := h.LinkByName(name)
		if err != nil {
			t.Fatal(err)
		}
		if err := h.LinkSetUp(l); err != nil {
			t.Fatal(err)
		}
		return l
	}
	addr := func(l netlink.Link, cidr string) {
		t.Helper()
		a, _ := netlink.ParseAddr(cidr)
		if err := h.AddrAdd(l, a); err != nil {
			t.Fatalf("%s %s: %v", l.Attrs().Name, cidr, err)
		}
	}
	for _, v := range []string{"rbu0", "rbu1", "rbx0"} {
		attrs := netlink.NewLinkAttrs()
		attrs.Name = v
		if err := h.LinkAdd(&netlink.Veth{LinkAttrs: attrs, PeerName: v + "p"}); err != nil {
			t.Fatalf("veth: %v", err)
		}
		up(v + "p")
	}
	addr(up("lo"), "192.0.2.10/32")
	u0, u1 := up("rbu0"), up("rbu1")
	addr(u0, "10.0.0.2/24")
	addr(u1, "10.0.1.2/24")
	addr(up("rbx0"), "10.0.2.2/24")
	_, dst, _ := net.ParseCIDR("198.51.100.0/24")
	if err := h.RouteAdd(&netlink.Route{Dst: dst, MultiPath: []*netlink.NexthopInfo{
		{LinkIndex: u0.Attrs().Index, Gw: net.ParseIP("10.0.0.1")},
		{LinkIndex: u1.Attrs().Index, Gw: net.ParseIP("10.0.1.1")},
	}}); err != nil {
		t.Fatalf("multipath route: %v", err)
	}
	vattrs := netlink.NewLinkAttrs()
	vattrs.Name = "rbvx0"
	if err := h.LinkAdd(&netlink.Vxlan{LinkAttrs: vattrs, VxlanId: 5, Group: net.ParseIP("10.0.1.1"), Port: 4789}); err != nil {
		t.Skipf("no vxlan here: %v", err)
	}
	addr(up("rbvx0"), "203.0.113.1/24")

	f := &fileTree{host.Root(t.TempDir())}
	for _, c := range []struct {
		name        string
		local, peer string
		want        []string
	}{
		{"multipath", "192.0.2.10:22", "198.51.100.1:50000", []string{"lo", "rbu0", "rbu1"}},
		{"vxlan", "203.0.113.1:22", "203.0.113.2:50000", []string{"rbu1", "rbvx0"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			se := sess(c.local, c.peer)
			snap, err := readPathSnap(h, f, se)
			if err != nil {
				t.Fatal(err)
			}
			p := managementPath(snap, se, nil)
			got := slices.Clone(p.names())
			slices.Sort(got)
			if !slices.Equal(got, c.want) || p.lost != "" {
				t.Errorf("path %q (lost %q), want %q\n%v", got, p.lost, c.want, p.how)
			}
		})
	}
}
