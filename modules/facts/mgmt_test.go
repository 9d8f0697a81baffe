package facts

import (
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/runbook/runbook/modules/host"
)

// mgmtTree builds /sys/class/net with the given interfaces and lower_* links ("upper>lower")
// and /proc/net/route and ipv6_route with the given texts.
func mgmtTree(t *testing.T, nics []string, links []string, route, route6 string) rootFS {
	t.Helper()
	root := t.TempDir()
	for _, n := range nics {
		if err := os.MkdirAll(filepath.Join(root, "sys/class/net", n), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, l := range links {
		upper, lower, _ := strings.Cut(l, ">")
		if err := os.Symlink("../"+lower, filepath.Join(root, "sys/class/net", upper, "lower_"+lower)); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.MkdirAll(filepath.Join(root, "proc/net"), 0o755); err != nil {
		t.Fatal(err)
	}
	for name, text := range map[string]string{"route": route, "ipv6_route": route6} {
		if text != "" {
			if err := os.WriteFile(filepath.Join(root, "proc/net", name), []byte(text), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	return newFS(host.Root(root))
}

func TestGatherManagement(t *testing.T) {
	const routeHdr = "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n"
	route := routeHdr + "eth0\t00000000\t0102000A\t0003\t0\t0\t0\t00000000\t0\t0\t0\n" +
		"bond0.100\t0064A8C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n"
	route6 := "00000000000000000000000000000000 00 00000000000000000000000000000000 00 fe800000000000000000000000000001 00000400 00000001 00000000 00000003  ens1f1\n" +
		"00000000000000000000000000000000 00 00000000000000000000000000000000 00 00000000000000000000000000000000 ffffffff 00000001 00000000 00200200       lo\n"
	nics := []string{"lo", "eth0", "mgmt0", "bond0", "bond0.100", "ens1f0", "ens1f1"}
	links := []string{"bond0.100>bond0", "bond0>ens1f0", "bond0>ens1f1"}
	addrs := map[string][]netip.Addr{
		"lo":        {netip.MustParseAddr("127.0.0.1")},
		"eth0":      {netip.MustParseAddr("10.0.2.15")},
		"mgmt0":     {netip.MustParseAddr("192.0.2.10"), netip.MustParseAddr("2001:db8::10")},
		"bond0.100": {netip.MustParseAddr("192.168.100.5")},
	}
	session := func(local string) *host.SSHSession {
		return &host.SSHSession{Source: "SSH_CONNECTION", Conns: []host.SessionConn{{
			Local: netip.AddrPortFrom(netip.MustParseAddr(local), 22), Peer: netip.MustParseAddrPort("192.0.2.1:50000")}}}
	}
	tests := []struct {
		name        string
		in          mgmtInputs
		route       string
		want        []string
		wantHowHas  string
		links, nics []string
	}{
		{name: "session on a plain NIC", in: mgmtInputs{session: session("192.0.2.10"), addrs: addrs}, route: route,
			want: []string{"mgmt0"}, wantHowHas: "SSH session's local address (SSH_CONNECTION)"},
		{name: "session on a VLAN of a bond: the bond and its slaves", in: mgmtInputs{session: session("192.168.100.5"), addrs: addrs},
			route: route, want: []string{"bond0", "bond0.100", "ens1f0", "ens1f1"}, wantHowHas: "local address"},
		{name: "IPv6 session", in: mgmtInputs{session: session("2001:db8::10"), addrs: addrs}, route: route,
			want: []string{"mgmt0"}, wantHowHas: "local address"},
		{name: "IPv4-mapped local address", in: mgmtInputs{session: session("::ffff:192.0.2.10"), addrs: addrs}, route: route,
			want: []string{"mgmt0"}, wantHowHas: "local address"},
		{name: "no session: the default routes, both families, not lo", in: mgmtInputs{why: errors.New("no sshd ancestor"), addrs: addrs},
			route: route, want: []string{"ens1f1", "eth0"}, wantHowHas: "SSH session was not found (no sshd ancestor)"},
		{name: "session over loopback: the default routes", in: mgmtInputs{session: session("127.0.0.1"), addrs: addrs},
			route: route, want: []string{"ens1f1", "eth0"}, wantHowHas: "no interface of this host holds"},
		{name: "session in another namespace: the default routes",
			in:    mgmtInputs{session: &host.SSHSession{OtherNetns: true, Conns: session("192.0.2.10").Conns}, addrs: addrs},
			route: route, want: []string{"ens1f1", "eth0"}, wantHowHas: "default routes"},
		{name: "address no interface holds", in: mgmtInputs{session: session("198.51.100.7"), addrs: addrs}, route: route,
			want: []string{"ens1f1", "eth0"}, wantHowHas: "no interface of this host holds"},
		{name: "no session, no IPv4 routes: the IPv6 one", in: mgmtInputs{}, route: "", want: []string{"ens1f1"}, wantHowHas: "no SSH session"},
		{name: "hostile route names and a lower_ loop end",
			in: mgmtInputs{},
			route: routeHdr + "../../etc\t00000000\t0\t0003\t0\t0\t0\t00000000\t0\t0\t0\n" + "a\t00000000\t0\t0003\t0\t0\t0\t00000000\t0\t0\t0\n" +
				"short 00000000\n" + "ghost\t00000000\t0\t0003\t0\t0\t0\t00000000\t0\t0\t0\n",
			nics: []string{"a", "b"}, links: []string{"a>b", "b>a"},
			want: []string{"a", "b", "ens1f1"}, wantHowHas: "no SSH session"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ns, ls := nics, links
			if tt.nics != nil {
				ns, ls = append(append([]string{}, nics...), tt.nics...), tt.links
			}
			// The hostile case names a directory outside /sys/class/net that exists.
			f := mgmtTree(t, ns, ls, tt.route, route6)
			if err := os.MkdirAll(f.path("/etc"), 0o755); err != nil {
				t.Fatal(err)
			}
			got := gatherManagement(f, tt.in)
			var names []string
			for _, n := range got["nics"].([]any) {
				names = append(names, n.(string))
			}
			if !reflect.DeepEqual(names, tt.want) {
				t.Errorf("nics = %v, want %v", names, tt.want)
			}
			if how := got["how"].(string); !strings.Contains(how, tt.wantHowHas) {
				t.Errorf("how = %q, want it to contain %q", how, tt.wantHowHas)
			}
		})
	}
}

// TestMgmtRouteTableBounded: /proc/net/route is read line by line up to
// mgmtMaxRouteLines and no further: a default route within the bound counts, one past it
// does not, and a table that is still being written past the bound (a pipe whose writer
// never closes it) does not hold the facts up.
func TestMgmtRouteTableBounded(t *testing.T) {
	const header = "Iface\tDestination\tGateway\tFlags\tRefCnt\tUse\tMetric\tMask\tMTU\tWindow\tIRTT\n"
	filler := func(n int) string {
		return strings.Repeat("eth9\t0000A8C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n", n)
	}
	const dflt = "eth0\t00000000\t0100A8C0\t0003\t0\t0\t0\t00000000\t0\t0\t0\n"
	cases := []struct {
		name string
		pipe bool
		text string
		want bool // eth0 is found
	}{
		{"default route within the bound", false, header + filler(100) + dflt, true},
		{"default route past the bound", false, header + filler(mgmtMaxRouteLines) + dflt, false},
		{"a table that never ends", true, header + filler(3*mgmtMaxRouteLines), false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			root := t.TempDir()
			if err := os.MkdirAll(filepath.Join(root, "proc/net"), 0o755); err != nil {
				t.Fatal(err)
			}
			p := filepath.Join(root, "proc/net/route")
			stop := make(chan struct{})
			defer close(stop)
			if c.pipe {
				if err := syscall.Mkfifo(p, 0o600); err != nil {
					t.Skipf("mkfifo: %v", err)
				}
				go func() {
					w, err := os.OpenFile(p, os.O_WRONLY, 0)
					if err != nil {
						return
					}
					defer w.Close()
					// Written, then held open: a reader that wants the end waits for ever.
					_, _ = w.WriteString(c.text)
					<-stop
				}()
			} else if err := os.WriteFile(p, []byte(c.text), 0o644); err != nil {
				t.Fatal(err)
			}
			done := make(chan []string, 1)
			go func() { done <- defaultRouteNICs(rootFS{root: host.Root(root)}) }()
			select {
			case got := <-done:
				if found := slices.Contains(got, "eth0"); found != c.want {
					t.Errorf("default route NICs %q, want eth0: %v", got, c.want)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("the route table is still being read after 10s")
			}
		})
	}
}
