package testenv

import (
	"encoding/binary"
	"fmt"
	"maps"
	"net/netip"
	"os"
	"os/exec"
	"reflect"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

func TestBlockBits(t *testing.T) {
	for _, tc := range []struct {
		hosts, per, segs, bits int
	}{
		{1, 244, 1, 24},
		{244, 244, 1, 24},
		{245, 244, 2, 23},
		{300, 244, 2, 23},
		{488, 244, 2, 23},
		{489, 244, 3, 22},
		{500, 244, 3, 22},
		{976, 244, 4, 22},
		{1000, 244, 5, 21},
		{3904, 244, 16, 20},
		{7, 3, 3, 22},
		{6, 3, 2, 23},
		{1, 1, 1, 24},
	} {
		if got := segmentsNeeded(tc.hosts, tc.per); got != tc.segs {
			t.Errorf("segmentsNeeded(%d, %d) = %d, want %d", tc.hosts, tc.per, got, tc.segs)
		}
		if got := blockBits(tc.hosts, tc.per); got != tc.bits {
			t.Errorf("blockBits(%d, %d) = /%d, want /%d", tc.hosts, tc.per, got, tc.bits)
		}
	}
}

func TestHostsPerSegment(t *testing.T) {
	for _, tc := range []struct {
		in, want int
		ok       bool
	}{
		{0, MaxHostsPerSegment, true},
		{1, 1, true},
		{244, 244, true},
		{245, 0, false},
		{-1, 0, false},
	} {
		got, err := hostsPerSegment(tc.in)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("hostsPerSegment(%d) = %d, %v; want %d, ok=%v", tc.in, got, err, tc.want, tc.ok)
		}
	}
}

func TestCandidateSlots(t *testing.T) {
	pool16 := netip.MustParsePrefix("10.201.0.0/16")
	for _, tc := range []struct {
		pool  string
		bits  int
		first []int
		count int
		block string // the block at the second candidate
	}{
		{"10.201.0.0/16", 24, []int{0, 1, 2}, 256, "10.201.1.0/24"},
		{"10.201.0.0/16", 23, []int{0, 2, 4}, 128, "10.201.2.0/23"},
		{"10.201.0.0/16", 22, []int{0, 4, 8}, 64, "10.201.4.0/22"},
		{"10.201.0.0/16", 21, []int{0, 8, 16}, 32, "10.201.8.0/21"},
		{"10.201.0.0/16", 20, []int{0, 16, 32}, 16, "10.201.16.0/20"},
		{"10.0.0.0/8", 24, []int{0, 1, 2}, maxSlots, "10.0.1.0/24"}, // bounded by maxSlots
		{"192.168.8.0/22", 23, []int{0, 2}, 2, "192.168.10.0/23"},
		{"192.168.8.0/22", 22, []int{0}, 1, ""},
	} {
		p := netip.MustParsePrefix(tc.pool)
		got := candidateSlots(p, tc.bits)
		if len(got) != tc.count || !reflect.DeepEqual(got[:len(tc.first)], tc.first) {
			t.Errorf("candidateSlots(%s, /%d) = %v (%d), want %v... (%d)", tc.pool, tc.bits, got[:min(len(got), 4)], len(got), tc.first, tc.count)
			continue
		}
		if tc.block != "" {
			if b := slotBlock(p, got[1], tc.bits).String(); b != tc.block {
				t.Errorf("block at slot %d of %s = %s, want %s", got[1], tc.pool, b, tc.block)
			}
		}
	}
	// Every block is aligned: its /24s are exactly the slots it covers.
	for _, k := range candidateSlots(pool16, 22) {
		b := slotBlock(pool16, k, 22)
		if b.Masked() != b {
			t.Fatalf("block %s at slot %d is not aligned", b, k)
		}
		if nthSubnet(pool16, k+3).Addr() != nthSubnet(b, 3).Addr() {
			t.Fatalf("block %s does not cover slots %d..%d", b, k, k+3)
		}
	}
}

func TestPlanSegments(t *testing.T) {
	for _, tc := range []struct {
		subnet string
		hosts  int
		per    int
		want   []Segment
		err    string
	}{
		{subnet: "10.201.7.0/24", hosts: 3, per: 244, want: []Segment{{"10.201.7.0/24", "10.201.7.1", "rbl7br"}}},
		{subnet: "10.201.4.0/22", hosts: 500, per: 244, want: []Segment{
			{"10.201.4.0/24", "10.201.4.1", "rbl7br"}, {"10.201.5.0/24", "10.201.5.1", "rbl7br1"}, {"10.201.6.0/24", "10.201.6.1", "rbl7br2"}}},
		{subnet: "10.201.4.0/22", hosts: 976, per: 244, want: []Segment{
			{"10.201.4.0/24", "10.201.4.1", "rbl7br"}, {"10.201.5.0/24", "10.201.5.1", "rbl7br1"},
			{"10.201.6.0/24", "10.201.6.1", "rbl7br2"}, {"10.201.7.0/24", "10.201.7.1", "rbl7br3"}}},
		{subnet: "10.201.4.0/22", hosts: 977, per: 244, err: "holds at most 976 hosts"},
		{subnet: "10.201.4.5/23", hosts: 2, per: 1, want: []Segment{ // masked first
			{"10.201.4.0/24", "10.201.4.1", "rbl7br"}, {"10.201.5.0/24", "10.201.5.1", "rbl7br1"}}},
		// A subnet of /24 or smaller is one segment, whatever per says.
		{subnet: "192.168.77.0/25", hosts: 116, per: 244, want: []Segment{{"192.168.77.0/25", "192.168.77.1", "rbl7br"}}},
		{subnet: "192.168.77.0/25", hosts: 117, per: 244, err: "holds at most 116 hosts"},
		{subnet: "192.168.77.0/24", hosts: 245, per: 244, err: "holds at most 244 hosts"},
		{subnet: "192.168.77.0/28", hosts: 4, per: 244, want: []Segment{{"192.168.77.0/28", "192.168.77.1", "rbl7br"}}},
		{subnet: "192.168.77.0/28", hosts: 5, per: 244, err: "holds at most 4 hosts"},
		{subnet: "192.168.77.0/29", hosts: 1, per: 244, err: "too small"},
	} {
		t.Run(fmt.Sprintf("%s/%d", tc.subnet, tc.hosts), func(t *testing.T) {
			got, err := planSegments(netip.MustParsePrefix(tc.subnet), "rbl7", tc.hosts, tc.per)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("error = %v, want one with %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("segments = %+v\nwant %+v", got, tc.want)
			}
		})
	}
}

func TestPlanNetworkSegments(t *testing.T) {
	for _, tc := range []struct {
		name   string
		prefix string
		subnet string
		hosts  int
		per    int
		// checks: host index (from 1) -> name, address, gateway, segment
		hosts_ map[int][4]string
		segs   int
	}{
		{"one segment", "rbl3", "10.201.3.0/24", 244, 0, map[int][4]string{
			1: {"lab001", "10.201.3.11", "10.201.3.1", "0"}, 244: {"lab244", "10.201.3.254", "10.201.3.1", "0"}}, 1},
		{"300 hosts", "rbl2", "10.201.2.0/23", 300, 0, map[int][4]string{
			1: {"lab001", "10.201.2.11", "10.201.2.1", "0"}, 244: {"lab244", "10.201.2.254", "10.201.2.1", "0"},
			245: {"lab245", "10.201.3.11", "10.201.3.1", "1"}, 300: {"lab300", "10.201.3.66", "10.201.3.1", "1"}}, 2},
		{"1000 hosts", "rbl8", "10.201.8.0/21", 1000, 0, map[int][4]string{
			1: {"lab0001", "10.201.8.11", "10.201.8.1", "0"}, 489: {"lab0489", "10.201.10.11", "10.201.10.1", "2"},
			977: {"lab0977", "10.201.12.11", "10.201.12.1", "4"}, 1000: {"lab1000", "10.201.12.34", "10.201.12.1", "4"}}, 5},
		{"small segments", "rbl4", "10.201.4.0/22", 7, 3, map[int][4]string{
			3: {"lab03", "10.201.4.13", "10.201.4.1", "0"}, 4: {"lab04", "10.201.5.11", "10.201.5.1", "1"},
			7: {"lab07", "10.201.6.11", "10.201.6.1", "2"}}, 3},
		{"small subnet", "rbl9", "192.168.77.0/25", 5, 0, map[int][4]string{
			5: {"lab05", "192.168.77.15", "192.168.77.1", "0"}}, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st := &State{Prefix: tc.prefix, Subnet: tc.subnet}
			if err := planNetwork(st, tc.hosts, tc.per); err != nil {
				t.Fatal(err)
			}
			if len(st.Hosts) != tc.hosts || len(st.Segments) != tc.segs {
				t.Fatalf("%d hosts in %d segments, want %d in %d", len(st.Hosts), len(st.Segments), tc.hosts, tc.segs)
			}
			if st.HubIP != st.Segments[0].HubIP || st.Bridge != st.Segments[0].Bridge {
				t.Errorf("hub %s bridge %s, want the first segment's", st.HubIP, st.Bridge)
			}
			for i, want := range tc.hosts_ {
				h := st.Hosts[i-1]
				gw, plen := st.hostNet(h)
				got := [4]string{h.Name, h.MgmtIP, gw, fmt.Sprint(h.Segment)}
				if got != want {
					t.Errorf("host %d = %v, want %v", i, got, want)
				}
				seg := netip.MustParsePrefix(st.Segments[h.Segment].Subnet)
				if plen != seg.Bits() || !seg.Contains(netip.MustParseAddr(h.MgmtIP)) {
					t.Errorf("host %d: %s/%d outside its segment %s", i, h.MgmtIP, plen, seg)
				}
			}
			// Addresses and names are unique, names within the kernel's 15 bytes.
			seen := map[string]bool{}
			for _, h := range st.Hosts {
				for _, k := range []string{h.MgmtIP, h.Name, h.HubIf, h.SwIfs[0], h.SwIfs[1]} {
					if seen[k] {
						t.Fatalf("%s used twice", k)
					}
					seen[k] = true
				}
				for _, n := range append([]string{h.HubIf, h.SwIfs[0], h.SwIfs[1], st.Segments[h.Segment].Bridge}, fabricBridges(st.Prefix, h.Segment)...) {
					if len(n) > 15 {
						t.Errorf("interface name %q is longer than 15 bytes", n)
					}
				}
				a := netip.MustParseAddr(h.MgmtIP).As4()
				if a[3] <= hostOffset || a[3] == 255 {
					t.Errorf("host %s has address %s (hub range or broadcast)", h.Name, h.MgmtIP)
				}
			}
		})
	}
	// The longest names: the last slot, the largest lab.
	st := &State{Prefix: fmt.Sprintf("rbl%d", maxSlots-1), Subnet: "10.0.0.0/20"}
	if err := planNetwork(st, MaxHosts, 0); err != nil {
		t.Fatal(err)
	}
	h := st.Hosts[len(st.Hosts)-1]
	for _, n := range append([]string{h.HubIf, h.SwIfs[0], h.SwIfs[1], st.Segments[len(st.Segments)-1].Bridge}, fabricBridges(st.Prefix, len(st.Segments)-1)...) {
		if len(n) > 15 {
			t.Errorf("interface name %q is longer than 15 bytes", n)
		}
	}
	if err := planNetwork(&State{Prefix: "rbl1", Subnet: "10.0.0.0/20"}, MaxHosts+1, 0); err == nil {
		t.Error("a lab larger than its subnet was planned")
	}
}

// A state written before labs had segments still gives each host its gateway.
func TestHostNetOldState(t *testing.T) {
	st := &State{Subnet: "10.201.7.0/24", HubIP: "10.201.7.1", Bridge: "rbl7br",
		Hosts: []*HostState{{Name: "lab01", MgmtIP: "10.201.7.11"}}}
	gw, plen := st.hostNet(st.Hosts[0])
	if gw != "10.201.7.1" || plen != 24 {
		t.Errorf("hostNet = %s/%d, want 10.201.7.1/24", gw, plen)
	}
	if segs := st.segments(); len(segs) != 1 || segs[0].Bridge != "rbl7br" {
		t.Errorf("segments of an old state = %+v", segs)
	}
}

func TestNeighBook(t *testing.T) {
	defaults := map[string]int{}
	for i, p := range neighSysctls {
		defaults[p] = []int{128, 512, 1024}[i%3]
	}
	v4, v6 := neighSysctls[2], neighSysctls[5]
	with := func(m map[string]int, kv ...any) map[string]int {
		m = maps.Clone(m)
		for i := 0; i < len(kv); i += 2 {
			m[kv[i].(string)] = kv[i+1].(int)
		}
		return m
	}
	apply := func(cur, w map[string]int) map[string]int {
		cur = maps.Clone(cur)
		maps.Copy(cur, w)
		return cur
	}
	all := func(string) bool { return true }

	type step struct {
		op    string // add, remove
		id    string
		hosts int
		live  func(string) bool
		// poke changes the machine's values before the step (someone else).
		poke map[string]int
		// want: values of thresh3 (v4, v6) after the step.
		v4, v6  int
		skipped int
		empty   bool
	}
	for _, tc := range []struct {
		name  string
		start map[string]int
		steps []step
	}{
		{"one lab", defaults, []step{
			{op: "add", id: "a", hosts: 1000, v4: 1024 + 4000, v6: 1024 + 24000},
			{op: "remove", id: "a", v4: 1024, v6: 1024, empty: true},
		}},
		{"two labs, either order", defaults, []step{
			{op: "add", id: "a", hosts: 300, v4: 1024 + 1200, v6: 1024 + 7200},
			{op: "add", id: "b", hosts: 700, v4: 1024 + 4000, v6: 1024 + 24000},
			// a goes first: b still needs the raised values.
			{op: "remove", id: "a", v4: 1024 + 4000, v6: 1024 + 24000},
			{op: "remove", id: "b", v4: 1024, v6: 1024, empty: true},
		}},
		// The lab's entries go into the same table, whatever it was sized for.
		{"set high by the machine's owner", with(defaults, v4, 100000), []step{
			{op: "add", id: "a", hosts: 10, v4: 100040, v6: 1024 + 240},
			{op: "remove", id: "a", v4: 100000, v6: 1024, empty: true},
		}},
		{"changed by someone else meanwhile", defaults, []step{
			{op: "add", id: "a", hosts: 10, v4: 1024 + 40, v6: 1024 + 240},
			{op: "remove", id: "a", poke: map[string]int{v4: 50000}, v4: 50000, v6: 1024, skipped: 1, empty: true},
		}},
		{"a lab that died is not waited for", defaults, []step{
			{op: "add", id: "dead", hosts: 100, v4: 1024 + 400, v6: 1024 + 2400},
			// Its raise is undone; a's own applies.
			{op: "add", id: "a", hosts: 10, live: func(id string) bool { return id != "dead" }, v4: 1024 + 40, v6: 1024 + 240},
			{op: "remove", id: "a", live: func(id string) bool { return id != "dead" }, v4: 1024, v6: 1024, empty: true},
		}},
		{"the original survives labs that all died", defaults, []step{
			{op: "add", id: "dead", hosts: 100, v4: 1024 + 400, v6: 1024 + 2400},
			// The next lab finds raised values nobody restored: 1024 stays the original.
			{op: "add", id: "a", hosts: 10, live: func(id string) bool { return id == "a" }, v4: 1024 + 40, v6: 1024 + 240},
			{op: "remove", id: "a", v4: 1024, v6: 1024, empty: true},
		}},
		{"no IPv6 on the machine", map[string]int{neighSysctls[0]: 128, neighSysctls[1]: 512, v4: 1024}, []step{
			{op: "add", id: "a", hosts: 5, v4: 1044, v6: -1},
			{op: "remove", id: "a", v4: 1024, v6: -1, empty: true},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			book := &neighBook{}
			cur := maps.Clone(tc.start)
			for i, s := range tc.steps {
				live := s.live
				if live == nil {
					live = all
				}
				cur = apply(cur, s.poke)
				var skipped []string
				switch s.op {
				case "add":
					cur = apply(cur, book.add(s.id, s.hosts, cur, live))
				case "remove":
					var w map[string]int
					w, skipped = book.remove(s.id, cur, live)
					cur = apply(cur, w)
				}
				got6, ok6 := cur[v6]
				if !ok6 {
					got6 = -1
				}
				if cur[v4] != s.v4 || got6 != s.v6 || len(skipped) != s.skipped || book.empty() != s.empty {
					t.Fatalf("step %d (%s %s): thresh3 v4 %d v6 %d, skipped %v, empty %v; want %d %d, %d skipped, empty %v",
						i, s.op, s.id, cur[v4], got6, skipped, book.empty(), s.v4, s.v6, s.skipped, s.empty)
				}
				// thresh1 <= thresh2 <= thresh3 always.
				for _, fam := range [][]string{neighSysctls[:3], neighSysctls[3:]} {
					if a, b, c := cur[fam[0]], cur[fam[1]], cur[fam[2]]; a > b || b > c {
						t.Errorf("step %d: %s thresholds out of order: %d %d %d", i, fam[0], a, b, c)
					}
				}
			}
		})
	}
}

func TestParseLoadavgThreads(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int
		ok   bool
	}{
		{"3.99 2.87 2.05 4/184 14601\n", 184, true},
		{"0.00 0.00 0.00 1/1 1", 1, true},
		{"0.00 0.00 0.00 4 14601", 0, false},
		{"0.00 0.00", 0, false},
		{"0.00 0.00 0.00 1/-3 1", 0, false},
	} {
		got, err := parseLoadavgThreads(tc.in)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("parseLoadavgThreads(%q) = %d, %v; want %d ok=%v", tc.in, got, err, tc.want, tc.ok)
		}
	}
}

func TestFDNeeds(t *testing.T) {
	// The forwarder: a listener and two relayed sockets per host.
	if got := ForwarderFDs(1000); got != 3064 {
		t.Errorf("ForwarderFDs(1000) = %d", got)
	}
	if got := ControllerFDs(1000); got != 1064 {
		t.Errorf("ControllerFDs(1000) = %d", got)
	}
}

// TestEnsureNofile lowers this test process's own soft RLIMIT_NOFILE and
// checks that the lab raises it to the hard one when that suffices; a child
// process (the hard limit cannot be raised again without CAP_SYS_RESOURCE)
// checks a hard limit below the need: raised to it where the process may,
// else a clear error.
func TestEnsureNofile(t *testing.T) {
	if os.Getenv("RUNBOOK_NOFILE_CHILD") == "1" {
		if err := unix.Setrlimit(unix.RLIMIT_NOFILE, &unix.Rlimit{Cur: 256, Max: 512}); err != nil {
			fmt.Println("setrlimit:", err)
			os.Exit(3)
		}
		_, after, err := ensureNofile(700)
		fmt.Printf("after=%d/%d err=%v\n", after.Soft, after.Hard, err)
		os.Exit(0)
	}
	orig, err := CurrentNofile()
	if err != nil {
		t.Fatal(err)
	}
	if orig.Hard < 1024 {
		t.Skipf("hard limit %d too low to test with", orig.Hard)
	}
	t.Cleanup(func() { _ = unix.Setrlimit(unix.RLIMIT_NOFILE, &unix.Rlimit{Cur: orig.Soft, Max: orig.Hard}) })
	for _, tc := range []struct {
		name string
		soft uint64
		need int
		want NofileLimit
	}{
		{"enough", 512, 300, NofileLimit{512, orig.Hard}},
		{"soft raised to hard", 256, 300, NofileLimit{orig.Hard, orig.Hard}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := unix.Setrlimit(unix.RLIMIT_NOFILE, &unix.Rlimit{Cur: tc.soft, Max: orig.Hard}); err != nil {
				t.Fatal(err)
			}
			before, after, err := ensureNofile(tc.need)
			if err != nil {
				t.Fatal(err)
			}
			now, _ := CurrentNofile()
			if before != (NofileLimit{tc.soft, orig.Hard}) || after != tc.want || now != tc.want {
				t.Errorf("ensureNofile(%d) from %d: before %v after %v now %v, want %v", tc.need, tc.soft, before, after, now, tc.want)
			}
		})
	}
	t.Run("hard limit short", func(t *testing.T) {
		cmd := exec.Command(os.Args[0], "-test.run=^TestEnsureNofile$")
		cmd.Env = append(os.Environ(), "RUNBOOK_NOFILE_CHILD=1")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("child: %v\n%s", err, out)
		}
		got := string(out)
		raised := strings.Contains(got, "after=700/700 err=<nil>")
		refused := strings.Contains(got, "needs 700 file descriptors and RLIMIT_NOFILE is 256 (hard 512)") && strings.Contains(got, "ulimit -n 700")
		if !raised && !refused {
			t.Errorf("a hard limit of 512 for a need of 700: want it raised to 700 or a clear error, got:\n%s", got)
		}
		t.Logf("child: %s", strings.TrimSpace(got))
	})
}

func TestRtattr(t *testing.T) {
	for _, tc := range []struct {
		typ  uint16
		data []byte
		want []byte
	}{
		// length (4 + data, little endian here), type, data, padding to 4
		{1, []byte{10, 201, 2, 11}, []byte{8, 0, 1, 0, 10, 201, 2, 11}},
		{5, []byte{1}, []byte{5, 0, 5, 0, 1, 0, 0, 0}},
		{3, nil, []byte{4, 0, 3, 0}},
	} {
		got := rtattr(tc.typ, tc.data)
		if binary.NativeEndian.Uint16([]byte{1, 0}) != 1 {
			t.Skip("big-endian machine: the table is little-endian")
		}
		if !reflect.DeepEqual(got, tc.want) {
			t.Errorf("rtattr(%d, %v) = %v, want %v", tc.typ, tc.data, got, tc.want)
		}
	}
}

// The systemd and vm tiers give a host of a later segment its own segment's
// gateway and prefix, as the ns tier does.
func TestTierConfigsFollowSegments(t *testing.T) {
	st := &State{Dir: "/var/lib/lab", Slot: 4, Prefix: "rbl4", Subnet: "10.201.4.0/22"}
	if err := planNetwork(st, 7, 3); err != nil {
		t.Fatal(err)
	}
	h := st.Hosts[6] // lab07, third segment
	ifc := ifupdownConfig(st, h)
	for _, want := range []string{"address 10.201.6.11/24\n", "gateway 10.201.6.1\n"} {
		if !strings.Contains(ifc, want) {
			t.Errorf("ifupdown config lacks %q:\n%s", want, ifc)
		}
	}
	env := vmHostEnv(st, h, vmNICs(st, h))
	for _, want := range []string{"MGMT_ADDR=10.201.6.11/24\n", "GATEWAY=10.201.6.1\n"} {
		if !strings.Contains(env, want) {
			t.Errorf("vm host.env lacks %q:\n%s", want, env)
		}
	}
}
