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
// ends with the goroutine. It returns a netlink handle in that namespace.
func inTestNetns(t *testing.T) *netlink.Handle {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("network namespaces need root")
	}
	runtime.LockOSThread()
	orig, err := netns.Get()
	if err != nil {
		t.Skipf("cannot read this thread's network namespace: %v", err)
	}
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	name := fmt.Sprintf("rbnet-%d-%s", os.Getpid(), hex.EncodeToString(b))
	ns, err := netns.NewNamed(name)
	if err != nil {
		orig.Close()
		t.Skipf("cannot make a network namespace here: %v", err)
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
