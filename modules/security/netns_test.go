package security

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"

	"github.com/zclconf/go-cty/cty"

	"github.com/runbook/runbook/modules"
	"github.com/runbook/runbook/modules/moduletest"
)

// inNewNetns moves the calling test's goroutine, locked to its thread, into a new network
// namespace of its own: programs it starts (iptables) work on that namespace's tables, and
// the thread dies with the test, never going back to the pool. It skips where that is not
// possible (not root).
func inNewNetns(t *testing.T) {
	t.Helper()
	runtime.LockOSThread() // never unlocked: the thread ends with the test's goroutine
	if err := syscall.Unshare(syscall.CLONE_NEWNET); err != nil {
		t.Skipf("cannot make a network namespace here: %v", err)
	}
}

// backendDir makes a directory whose iptables programs are the given backend's, named as
// a host whose alternatives point at that backend names them.
func backendDir(t *testing.T, suffix string) string {
	t.Helper()
	dir := t.TempDir()
	for _, fam := range []string{"iptables", "ip6tables"} {
		for _, tool := range []string{"", "-save", "-restore"} {
			target := "/usr/sbin/" + fam + suffix + tool
			if _, err := os.Stat(target); err != nil {
				t.Skipf("no %s on this machine", target)
			}
			for _, name := range []string{fam + tool, fam + suffix + tool} {
				if err := os.Symlink(target, filepath.Join(dir, name)); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	return dir
}

// TestIptablesFlushReal runs the flush against the real iptables of both backends, in a
// network namespace of the test's own: check changes nothing (iptables-save is the same
// before and after), apply removes what check counted, and again finds nothing to do.
func TestIptablesFlushReal(t *testing.T) {
	for _, b := range []struct{ suffix, backend string }{{"-nft", backendNFT}, {"-legacy", backendLegacy}} {
		t.Run(b.backend, func(t *testing.T) {
			dir := backendDir(t, b.suffix)
			inNewNetns(t)
			ipt := func(args ...string) string {
				t.Helper()
				out, err := exec.Command(filepath.Join(dir, args[0]), args[1:]...).CombinedOutput()
				if err != nil {
					t.Fatalf("%v: %v\n%s", args, err, out)
				}
				return string(out)
			}
			dump := func() string {
				t.Helper()
				v4, err := parseSave(ipt("iptables-save", "-c"))
				if err != nil {
					t.Fatal(err)
				}
				v6, err := parseSave(ipt("ip6tables-save", "-c"))
				if err != nil {
					t.Fatal(err)
				}
				return v4.text() + "--\n" + v6.text()
			}
			ipt("iptables", "-A", "INPUT", "-s", "10.99.0.0/16", "-j", "DROP")
			ipt("iptables", "-N", "RBTEST")
			ipt("iptables", "-A", "RBTEST", "-p", "tcp", "--dport", "22", "-j", "ACCEPT")
			ipt("iptables", "-A", "INPUT", "-j", "RBTEST")
			ipt("iptables", "-P", "FORWARD", "DROP")
			ipt("iptables", "-t", "nat", "-A", "POSTROUTING", "-s", "10.99.0.0/16", "-j", "MASQUERADE")
			ipt("iptables", "-t", "mangle", "-A", "PREROUTING", "-j", "MARK", "--set-mark", "1")
			ipt("ip6tables", "-A", "INPUT", "-s", "fd00::/8", "-j", "DROP")
			if b.backend == backendNFT {
				// A legacy table beside the nf_tables ones is reported, not touched.
				if out, err := exec.Command("/usr/sbin/iptables-legacy", "-w", "-t", "raw", "-A", "OUTPUT", "-j", "ACCEPT").CombinedOutput(); err != nil {
					t.Fatalf("iptables-legacy: %v %s", err, out)
				}
			}

			save := filepath.Join(t.TempDir(), "rules.v4")
			args := map[string]cty.Value{"iptables_flush": cty.True, "tables": cty.ListVal([]cty.Value{s("filter"), s("nat")}),
				"policies": cty.MapVal(map[string]cty.Value{"FORWARD": s("ACCEPT")}), "ipv6": cty.True,
				"save": cty.True, "save_path": s(save), "save_path6": s(save + "6")}
			m := Firewall{dirs: []string{dir}}

			before := dump()
			res, err := moduletest.Run(t, m, args, false)
			if err != nil {
				t.Fatal(err)
			}
			if after := dump(); after != before {
				t.Fatalf("check mode changed the rules:\n%s\n->\n%s", before, after)
			}
			if _, err := os.Stat(save); err == nil {
				t.Fatal("check mode wrote the save file")
			}
			if res.Status != modules.StatusDrift || res.Data.(*fwResult).Backend != b.backend {
				t.Fatalf("check: %s backend %v: %s", res.Status, res.Data.(*fwResult).Backend, res.Msg)
			}
			if legacy := contains(res.Warnings, "IPv4 legacy iptables tables exist too (raw)"); legacy != (b.backend == backendNFT) {
				t.Errorf("warnings %q", res.Warnings)
			}
			wantMsg := "would flush 4 rules (filter 3, nat 1) and 1 user chain, would set filter policy FORWARD DROP → ACCEPT; " +
				"would save the IPv4 ruleset to " + save + "; IPv6: would flush 1 rule (filter 1); would save the IPv6 ruleset to " + save + "6"
			if res.Msg != wantMsg {
				t.Errorf("check msg:\n%s\nwant:\n%s", res.Msg, wantMsg)
			}
			if !strings.Contains(res.Diff.Before, "-A INPUT -s 10.99.0.0/16 -j DROP") || strings.Contains(res.Diff.After, "-A INPUT") ||
				!strings.Contains(res.Diff.After, "-A PREROUTING -j MARK") {
				t.Errorf("diff:\n%s\n--\n%s", res.Diff.Before, res.Diff.After)
			}

			res, err = moduletest.Run(t, m, args, true)
			if err != nil {
				t.Fatal(err)
			}
			if res.Status != modules.StatusChanged {
				t.Fatalf("apply: %s %s", res.Status, res.Msg)
			}
			data := res.Data.(*fwResult)
			wantRemoved := map[string]int{"filter": 3, "nat": 1}
			if got := data.Removed; len(got) != 2 || got["filter"] != 3 || got["nat"] != 1 {
				t.Errorf("removed %v, want %v", got, wantRemoved)
			}
			if got := data.Removed6; got["filter"] != 1 {
				t.Errorf("removed6 %v", got)
			}
			if got := data.ChainsRemoved; got["filter"] != 1 {
				t.Errorf("chains_removed %v", got)
			}
			v4, _ := parseSave(ipt("iptables-save"))
			for _, tb := range v4.tables {
				switch tb.name {
				case "filter", "nat":
					if len(tb.rules) > 0 || len(tb.userChains()) > 0 {
						t.Errorf("%s still has %v %v", tb.name, tb.rules, tb.userChains())
					}
				case "mangle":
					if len(tb.rules) != 1 {
						t.Errorf("mangle was not asked to be flushed, but has %v", tb.rules)
					}
				}
			}
			if filter, _ := v4.table("filter"); filter.policy("FORWARD") != "ACCEPT" {
				t.Errorf("FORWARD policy %q", filter.policy("FORWARD"))
			}
			saved, err := parseSave(readFile(t, save))
			if err != nil || saved.text() != v4.text() {
				t.Errorf("the save file does not hold the ruleset: %v\n%s", err, readFile(t, save))
			}
			if fi, err := os.Stat(save); err != nil || fi.Mode().Perm() != 0o600 {
				t.Errorf("save file mode %v %v", fi.Mode(), err)
			}

			for i := 0; i < 2; i++ {
				res, err = moduletest.Run(t, m, args, i == 1)
				if err != nil {
					t.Fatal(err)
				}
				if res.Status != modules.StatusOK || res.Diff != nil {
					t.Fatalf("run %d after apply: %s %s\n%+v", i+3, res.Status, res.Msg, res.Diff)
				}
			}
		})
	}
}

// TestIptablesLockoutReal: a flush under an INPUT policy of DROP fails before touching
// anything.
func TestIptablesLockoutReal(t *testing.T) {
	dir := backendDir(t, "-nft")
	inNewNetns(t)
	for _, a := range [][]string{{"-A", "INPUT", "-p", "tcp", "--dport", "22", "-j", "ACCEPT"}, {"-P", "INPUT", "DROP"}} {
		if out, err := exec.Command(filepath.Join(dir, "iptables"), a...).CombinedOutput(); err != nil {
			t.Fatalf("%v: %v %s", a, err, out)
		}
	}
	out, _ := exec.Command(filepath.Join(dir, "iptables-save")).Output()
	_, err := moduletest.Run(t, Firewall{dirs: []string{dir}}, map[string]cty.Value{"iptables_flush": cty.True}, true)
	if err == nil || !strings.Contains(err.Error(), "would cut this host off") {
		t.Fatalf("err = %v", err)
	}
	after, _ := exec.Command(filepath.Join(dir, "iptables-save")).Output()
	a, _ := parseSave(string(out))
	b, _ := parseSave(string(after))
	if a.text() != b.text() || !strings.Contains(b.text(), "--dport 22") {
		t.Errorf("the refused flush changed the rules:\n%s\n->\n%s", a.text(), b.text())
	}
}

// TestIptablesLockoutIPv6LeavesIPv4: the lockout guard refusing IPv6 stops the task before
// IPv4, which it would otherwise flush first, is touched: both families are planned before
// either is changed.
func TestIptablesLockoutIPv6LeavesIPv4(t *testing.T) {
	dir := backendDir(t, "-nft")
	inNewNetns(t)
	for _, c := range [][]string{
		{"iptables", "-A", "INPUT", "-s", "10.99.0.0/16", "-j", "DROP"},
		{"ip6tables", "-A", "INPUT", "-p", "tcp", "--dport", "22", "-j", "ACCEPT"},
		{"ip6tables", "-P", "INPUT", "DROP"},
	} {
		if out, err := exec.Command(filepath.Join(dir, c[0]), c[1:]...).CombinedOutput(); err != nil {
			t.Fatalf("%v: %v %s", c, err, out)
		}
	}
	save := func() string {
		v4, _ := exec.Command(filepath.Join(dir, "iptables-save")).Output()
		v6, _ := exec.Command(filepath.Join(dir, "ip6tables-save")).Output()
		a, _ := parseSave(string(v4))
		b, _ := parseSave(string(v6))
		return a.text() + b.text()
	}
	before := save()
	_, err := moduletest.Run(t, Firewall{dirs: []string{dir}}, map[string]cty.Value{"iptables_flush": cty.True, "ipv6": cty.True}, true)
	if err == nil || !strings.Contains(err.Error(), "IPv6") || !strings.Contains(err.Error(), "would cut this host off") {
		t.Fatalf("err = %v", err)
	}
	if after := save(); after != before || !strings.Contains(after, "10.99.0.0/16") {
		t.Errorf("the refused flush changed the rules:\n%s\n->\n%s", before, after)
	}
}

// TestIptablesDefaultFlushKeepsLibvirtRulesReal: with tables unset, a flush of a ruleset
// libvirt made (testdata/libvirt.save) empties the filter table and leaves the nat and
// mangle tables exactly as they were, on both backends, in a network namespace of the
// test's own; the check after it finds nothing to do.
func TestIptablesDefaultFlushKeepsLibvirtRulesReal(t *testing.T) {
	for _, b := range []struct{ suffix, backend string }{{"-nft", backendNFT}, {"-legacy", backendLegacy}} {
		t.Run(b.backend, func(t *testing.T) {
			dir := backendDir(t, b.suffix)
			inNewNetns(t)
			restore := exec.Command(filepath.Join(dir, "iptables-restore"))
			restore.Stdin = strings.NewReader(fixture(t, "libvirt.save"))
			if out, err := restore.CombinedOutput(); err != nil {
				t.Fatalf("iptables-restore: %v\n%s", err, out)
			}
			table := func(name string) ipTable {
				t.Helper()
				out, err := exec.Command(filepath.Join(dir, "iptables-save"), "-t", name).Output()
				if err != nil {
					t.Fatal(err)
				}
				rs, err := parseSave(string(out))
				if err != nil {
					t.Fatal(err)
				}
				tb, _ := rs.table(name)
				return tb
			}
			nat, mangle := table("nat").text(), table("mangle").text()
			if !strings.Contains(nat, "MASQUERADE") || !strings.Contains(mangle, "--checksum-fill") {
				t.Fatalf("libvirt's rules did not load:\n%s%s", nat, mangle)
			}
			m := Firewall{dirs: []string{dir}}
			args := map[string]cty.Value{"iptables_flush": cty.True}
			res, err := moduletest.Run(t, m, args, true)
			if err != nil {
				t.Fatal(err)
			}
			if d := res.Data.(*fwResult); res.Status != modules.StatusChanged || len(d.Removed) != 1 || d.Removed["filter"] != 18 || d.ChainsRemoved["filter"] != 5 {
				t.Fatalf("apply: %s %s removed %v chains %v", res.Status, res.Msg, d.Removed, d.ChainsRemoved)
			}
			if f := table("filter"); len(f.rules) > 0 || len(f.userChains()) > 0 {
				t.Errorf("filter after the flush:\n%s", f.text())
			}
			if got := table("nat").text(); got != nat {
				t.Errorf("nat changed:\n%s\nwant:\n%s", got, nat)
			}
			if got := table("mangle").text(); got != mangle {
				t.Errorf("mangle changed:\n%s\nwant:\n%s", got, mangle)
			}
			res, err = moduletest.Run(t, m, args, false)
			if err != nil || res.Status != modules.StatusOK {
				t.Fatalf("check after the flush: %v %v", err, res)
			}
		})
	}
}
