package security

import (
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/zclconf/go-cty/cty"

	"github.com/runbook/runbook/modules"
	"github.com/runbook/runbook/modules/host"
	"github.com/runbook/runbook/modules/moduletest"
)

func fixture(t *testing.T, name string) string {
	t.Helper()
	return readFile(t, filepath.Join("testdata", name))
}

// TestParseSave reads real iptables-save output of both backends, with and without
// counters, and checks tables, rules per table, user chains and policies.
func TestParseSave(t *testing.T) {
	full := map[string]int{"filter": 6, "nat": 3, "mangle": 1, "raw": 1}
	tests := []struct {
		file     string
		rules    map[string]int
		user     map[string][]string
		policies map[string]string // filter
		notes    int
		incompat []string
	}{
		{file: "nft.save", rules: full, user: map[string][]string{"filter": {"LOGDROP"}}, policies: map[string]string{"INPUT": "ACCEPT", "FORWARD": "DROP", "OUTPUT": "ACCEPT"}},
		{file: "nft-counters.save", rules: full, user: map[string][]string{"filter": {"LOGDROP"}}, policies: map[string]string{"FORWARD": "DROP"}},
		{file: "legacy.save", rules: full, user: map[string][]string{"filter": {"LOGDROP"}}, policies: map[string]string{"FORWARD": "DROP"}},
		{file: "legacy-counters.save", rules: full, user: map[string][]string{"filter": {"LOGDROP"}}, policies: map[string]string{"INPUT": "ACCEPT", "OUTPUT": "ACCEPT"}},
		{file: "nft-ip6.save", rules: map[string]int{"filter": 2}},
		{file: "legacy-ip6.save", rules: map[string]int{"filter": 2}},
		{file: "el7.save", rules: map[string]int{"filter": 6}, policies: map[string]string{"INPUT": "ACCEPT"}},
		{file: "nft-incompatible.save", rules: map[string]int{"filter": 0, "nat": 1}, notes: 2, incompat: []string{"filter"}},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			rs, err := parseSave(fixture(t, tt.file))
			if err != nil {
				t.Fatal(err)
			}
			got := map[string]int{}
			user := map[string][]string{}
			var incompat []string
			for _, tb := range rs.tables {
				got[tb.name] = len(tb.rules)
				if u := tb.userChains(); len(u) > 0 {
					user[tb.name] = u
				}
				if tb.incompatible {
					incompat = append(incompat, tb.name)
				}
				for _, r := range tb.rules {
					if !strings.HasPrefix(r, "-A ") {
						t.Errorf("rule %q kept its counters", r)
					}
				}
			}
			if !reflect.DeepEqual(got, tt.rules) {
				t.Errorf("rules per table %v, want %v", got, tt.rules)
			}
			if tt.user == nil {
				tt.user = map[string][]string{}
			}
			if !reflect.DeepEqual(user, tt.user) {
				t.Errorf("user chains %v, want %v", user, tt.user)
			}
			filter, _ := rs.table("filter")
			for c, p := range tt.policies {
				if got := filter.policy(c); got != p {
					t.Errorf("policy %s = %q, want %q", c, got, p)
				}
			}
			if len(rs.notes) != tt.notes {
				t.Errorf("notes %q, want %d", rs.notes, tt.notes)
			}
			if !reflect.DeepEqual(incompat, tt.incompat) {
				t.Errorf("incompatible %v, want %v", incompat, tt.incompat)
			}
		})
	}
}

// TestSaveTextIgnoresCounters: the same rules with and without counters, in either
// backend's table order, render the same text.
func TestSaveTextIgnoresCounters(t *testing.T) {
	var texts []string
	for _, f := range []string{"nft.save", "nft-counters.save", "legacy.save", "legacy-counters.save"} {
		rs, err := parseSave(fixture(t, f))
		if err != nil {
			t.Fatal(err)
		}
		texts = append(texts, rs.text())
	}
	for i := range texts[1:] {
		if texts[i+1] != texts[0] {
			t.Errorf("text %d differs:\n%s\nvs\n%s", i+1, texts[i+1], texts[0])
		}
	}
	if !strings.HasPrefix(texts[0], "*filter\n:INPUT ACCEPT\n:FORWARD DROP\n") || strings.Contains(texts[0], "[") {
		t.Errorf("unexpected text:\n%s", texts[0])
	}
	// The text parses back to itself.
	rs, err := parseSave(texts[0])
	if err != nil || rs.text() != texts[0] {
		t.Errorf("round trip: %v\n%s", err, rs.text())
	}
}

func TestParseSaveErrors(t *testing.T) {
	tests := []struct{ in, wantErr string }{
		{"*filter\n:INPUT ACCEPT [0:0]\n-A INPUT -j ACCEPT\n", "has no COMMIT"},
		{"-A INPUT -j ACCEPT\n", "outside a table"},
		{"COMMIT\n", "COMMIT outside a table"},
		{"*filter\n:INPUT\nCOMMIT\n", "malformed chain line"},
		{"*filter\n-I INPUT -j ACCEPT\nCOMMIT\n", "unexpected"},
		{"*filter\n*nat\nCOMMIT\n", "starts before filter's COMMIT"},
	}
	for _, tt := range tests {
		if _, err := parseSave(tt.in); err == nil || !strings.Contains(err.Error(), tt.wantErr) {
			t.Errorf("parseSave(%q) = %v, want %q", tt.in, err, tt.wantErr)
		}
	}
}

func TestBackendOf(t *testing.T) {
	for in, want := range map[string]string{
		"iptables v1.8.9 (nf_tables)\n": backendNFT,
		"iptables v1.8.9 (legacy)\n":    backendLegacy,
		"iptables v1.4.21\n":            backendLegacy,
	} {
		if got := backendOf(in); got != want {
			t.Errorf("backendOf(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestPlanFlush is the table of what a flush and policies do to a ruleset.
func TestPlanFlush(t *testing.T) {
	lockedDown := "*filter\n:INPUT DROP [0:0]\n:FORWARD DROP [0:0]\n:OUTPUT ACCEPT [0:0]\n-A INPUT -p tcp --dport 22 -j ACCEPT\nCOMMIT\n"
	empty := "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\nCOMMIT\n"
	tests := []struct {
		name       string
		save       string
		flush      bool
		tables     []string
		policies   map[string]string
		removed    map[string]int
		chains     map[string]int
		restore    []string
		setPol     []string
		msg        string
		wantErr    string
		afterRules int // rules left after the plan
	}{
		{name: "tables unset: the filter table only", save: fixture(t, "nft.save"), flush: true,
			removed: map[string]int{"filter": 6}, chains: map[string]int{"filter": 1}, restore: []string{"filter"},
			msg: "would flush 6 rules (filter 6) and 1 user chain", afterRules: 5},
		{name: "every table named", save: fixture(t, "nft.save"), flush: true, tables: knownTables,
			removed: map[string]int{"filter": 6, "nat": 3, "mangle": 1, "raw": 1}, chains: map[string]int{"filter": 1, "nat": 0, "mangle": 0, "raw": 0},
			restore: []string{"mangle", "raw", "filter", "nat"},
			msg:     "would flush 11 rules (filter 6, nat 3, mangle 1, raw 1) and 1 user chain"},
		// libvirt's NAT (nat) and checksum (mangle) rules stay; its filter chains go, as
		// with "iptables -F".
		{name: "libvirt host, tables unset", save: fixture(t, "libvirt.save"), flush: true,
			removed: map[string]int{"filter": 18}, chains: map[string]int{"filter": 5}, restore: []string{"filter"},
			msg: "would flush 18 rules (filter 18) and 5 user chains", afterRules: 8},
		{name: "libvirt host, nat named", save: fixture(t, "libvirt.save"), flush: true, tables: []string{"filter", "nat"},
			removed: map[string]int{"filter": 18, "nat": 6}, chains: map[string]int{"filter": 5, "nat": 1}, restore: []string{"nat", "filter"},
			msg: "would flush 24 rules (filter 18, nat 6) and 6 user chains", afterRules: 2},
		{name: "flush nat only", save: fixture(t, "legacy.save"), flush: true, tables: []string{"nat", "security"},
			removed: map[string]int{"nat": 3}, chains: map[string]int{"nat": 0}, restore: []string{"nat"},
			msg: "would flush 3 rules (nat 3)", afterRules: 8},
		{name: "flush with policies", save: fixture(t, "el7.save"), flush: true, policies: map[string]string{"INPUT": "ACCEPT", "FORWARD": "DROP"},
			removed: map[string]int{"filter": 6}, chains: map[string]int{"filter": 0}, restore: []string{"filter"},
			msg: "would flush 6 rules (filter 6), would set filter policy FORWARD ACCEPT → DROP"},
		{name: "already flushed", save: empty, flush: true, removed: map[string]int{"filter": 0}, chains: map[string]int{"filter": 0}},
		{name: "empty user chain only", save: "*filter\n:INPUT ACCEPT [0:0]\n:X - [0:0]\nCOMMIT\n", flush: true,
			removed: map[string]int{"filter": 0}, chains: map[string]int{"filter": 1}, restore: []string{"filter"}, msg: "would flush 0 rules and 1 user chain"},
		{name: "policies without a flush", save: fixture(t, "nft.save"), policies: map[string]string{"FORWARD": "ACCEPT", "INPUT": "ACCEPT"},
			removed: map[string]int{}, chains: map[string]int{}, setPol: []string{"FORWARD"}, msg: "would set filter policy FORWARD DROP → ACCEPT", afterRules: 11},
		{name: "policies already so", save: empty, policies: map[string]string{"INPUT": "ACCEPT"}, removed: map[string]int{}, chains: map[string]int{}},
		{name: "ACCEPT on a host without a filter table", save: "", policies: map[string]string{"INPUT": "ACCEPT"}, removed: map[string]int{}, chains: map[string]int{}},
		{name: "DROP on a host without a filter table", save: "", policies: map[string]string{"FORWARD": "DROP"},
			removed: map[string]int{}, chains: map[string]int{}, setPol: []string{"FORWARD"}, msg: "would set filter policy FORWARD ACCEPT → DROP"},
		{name: "flush under INPUT DROP would lock us out", save: lockedDown, flush: true, wantErr: "INPUT policy DROP would cut this host off"},
		{name: "explicit DROP is meant", save: lockedDown, flush: true, policies: map[string]string{"INPUT": "DROP"},
			removed: map[string]int{"filter": 1}, chains: map[string]int{"filter": 0}, restore: []string{"filter"}, msg: "would flush 1 rule (filter 1)"},
		{name: "ACCEPT lifts the lockout", save: lockedDown, flush: true, policies: map[string]string{"INPUT": "ACCEPT"},
			removed: map[string]int{"filter": 1}, chains: map[string]int{"filter": 0}, restore: []string{"filter"},
			msg: "would flush 1 rule (filter 1), would set filter policy INPUT DROP → ACCEPT"},
		{name: "table made with nft", save: fixture(t, "nft-incompatible.save"), flush: true, wantErr: "table filter holds rules iptables cannot read"},
		{name: "table made with nft, not selected", save: fixture(t, "nft-incompatible.save"), flush: true, tables: []string{"nat"},
			removed: map[string]int{"nat": 1}, chains: map[string]int{"nat": 0}, restore: []string{"nat"}, msg: "would flush 1 rule (nat 1)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rs, err := parseSave(tt.save)
			if err != nil {
				t.Fatal(err)
			}
			p, err := planFlush(rs, tt.policies, tt.flush, tt.tables)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(p.removed, tt.removed) || !reflect.DeepEqual(p.chains, tt.chains) {
				t.Errorf("removed %v chains %v, want %v %v", p.removed, p.chains, tt.removed, tt.chains)
			}
			var restore []string
			for _, tb := range p.restore {
				restore = append(restore, tb.name)
				if len(tb.rules) > 0 || len(tb.userChains()) > 0 {
					t.Errorf("restore of %s keeps rules or chains", tb.name)
				}
			}
			if !reflect.DeepEqual(restore, tt.restore) || !reflect.DeepEqual(p.setPolicies, tt.setPol) {
				t.Errorf("restore %v setPolicies %v, want %v %v", restore, p.setPolicies, tt.restore, tt.setPol)
			}
			if p.changes() != (tt.msg != "") {
				t.Errorf("changes() = %v with message %q", p.changes(), tt.msg)
			}
			if tt.msg != "" {
				if got := p.message("IPv4", false); got != tt.msg {
					t.Errorf("message %q, want %q", got, tt.msg)
				}
			}
			left := 0
			for _, tb := range p.after.tables {
				left += len(tb.rules)
			}
			if left != tt.afterRules {
				t.Errorf("%d rules left after, want %d", left, tt.afterRules)
			}
			if filter, ok := p.after.table("filter"); ok {
				for c, want := range tt.policies {
					if got := filter.policy(c); got != want {
						t.Errorf("after: %s policy %s, want %s", c, got, want)
					}
				}
			}
			// Planning the result again finds nothing left to do.
			if again, err := planFlush(p.after, tt.policies, tt.flush, tt.tables); err != nil || again.changes() {
				t.Errorf("the planned result is not in sync: %v %+v", err, again)
			}
		})
	}
}

func TestRestoreInput(t *testing.T) {
	rs, err := parseSave(fixture(t, "legacy-counters.save"))
	if err != nil {
		t.Fatal(err)
	}
	p, err := planFlush(rs, map[string]string{"FORWARD": "ACCEPT"}, true, []string{"filter"})
	if err != nil {
		t.Fatal(err)
	}
	want := "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\nCOMMIT\n"
	if got := restoreInput(p.restore); got != want {
		t.Errorf("restore input:\n%s\nwant:\n%s", got, want)
	}
}

// fakeSystemctl is a systemctl for tests: each unit's state is a line "load active file"
// in units/<name>; a missing file is a unit that is not installed. Every call is logged.
// A unit listed in units/stuck does not stop.
const fakeSystemctl = `#!/bin/sh
d="$(dirname "$0")/units"
echo "$*" >> "$d/log"
verb=$1; shift
case "$1" in --property=*) shift;; esac
case "$1" in --runtime) shift;; esac
[ "$1" = "--" ] && shift
unit=$1
if [ -f "$d/$unit" ]; then read load active file < "$d/$unit"; else load=not-found active=inactive file=; fi
case "$verb" in
show) printf 'LoadState=%s\nActiveState=%s\nUnitFileState=%s\n' "$load" "$active" "$file"; exit 0;;
stop) grep -qx "$unit" "$d/stuck" 2>/dev/null || active=inactive;;
disable) file=disabled;;
mask) load=masked file=masked;;
unmask) load=loaded file=enabled;;
*) echo "unknown verb $verb" >&2; exit 1;;
esac
echo "$load $active $file" > "$d/$unit"
`

// fakeHost makes a directory with the fake systemctl and the given unit states.
func fakeHost(t *testing.T, units map[string]string) (dir string) {
	t.Helper()
	dir = t.TempDir()
	files := map[string]string{"units/log": ""}
	for n, st := range units {
		files["units/"+n] = st + "\n"
	}
	writeTree(t, dir, files)
	if err := os.WriteFile(filepath.Join(dir, "systemctl"), []byte(fakeSystemctl), 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// TestFirewallUnits runs the firewalld and service parts against the fake systemctl:
// check → apply → check → apply, with check proven to change nothing.
func TestFirewallUnits(t *testing.T) {
	tests := []struct {
		name   string
		units  map[string]string
		args   map[string]cty.Value
		after  map[string]string // unit state lines after apply
		msg    string            // apply's message
		data   map[string]cty.Value
		stuck  string
		errMsg string
	}{
		{name: "firewalld disabled", units: map[string]string{"firewalld.service": "loaded active enabled"},
			args:  map[string]cty.Value{"firewalld": s("disabled")},
			after: map[string]string{"firewalld.service": "loaded inactive disabled"}, msg: "disabled and stopped firewalld.service",
			data: map[string]cty.Value{"firewalld": s("inactive, disabled")}},
		{name: "firewalld masked", units: map[string]string{"firewalld.service": "loaded active enabled"},
			args:  map[string]cty.Value{"firewalld": s("masked")},
			after: map[string]string{"firewalld.service": "masked inactive masked"}, msg: "masked and stopped firewalld.service"},
		{name: "masked firewalld to disabled", units: map[string]string{"firewalld.service": "masked inactive masked"},
			args:  map[string]cty.Value{"firewalld": s("disabled")},
			after: map[string]string{"firewalld.service": "loaded inactive disabled"}, msg: "unmasked and disabled firewalld.service"},
		{name: "firewalld only stopped", units: map[string]string{"firewalld.service": "loaded active enabled"},
			args:  map[string]cty.Value{"firewalld": s("stopped")},
			after: map[string]string{"firewalld.service": "loaded inactive enabled"}, msg: "stopped firewalld.service"},
		{name: "services that exist, IPv6 too", units: map[string]string{"netfilter-persistent.service": "loaded active enabled", "ip6tables.service": "loaded active enabled"},
			args:  map[string]cty.Value{"iptables_service": s("disabled"), "ipv6": cty.True},
			after: map[string]string{"netfilter-persistent.service": "loaded inactive disabled", "ip6tables.service": "loaded inactive disabled"},
			msg:   "disabled and stopped netfilter-persistent.service; disabled and stopped ip6tables.service",
			data:  map[string]cty.Value{"units": cty.MapVal(map[string]cty.Value{"netfilter-persistent.service": s("inactive, disabled"), "ip6tables.service": s("inactive, disabled")})}},
		{name: "ip6tables.service is IPv6's", units: map[string]string{"iptables.service": "loaded active enabled", "ip6tables.service": "loaded active enabled"},
			args:  map[string]cty.Value{"iptables_service": s("stopped")},
			after: map[string]string{"iptables.service": "loaded inactive enabled", "ip6tables.service": "loaded active enabled"},
			msg:   "stopped iptables.service"},
		{name: "a unit that does not stop", units: map[string]string{"firewalld.service": "loaded active enabled"}, stuck: "firewalld.service",
			args: map[string]cty.Value{"firewalld": s("disabled")}, errMsg: "firewalld.service is still active after systemctl stop"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := fakeHost(t, tt.units)
			if tt.stuck != "" {
				writeTree(t, dir, map[string]string{"units/stuck": tt.stuck + "\n"})
			}
			m := Firewall{root: host.Root(dir), dirs: []string{dir}}
			// state is every unit's state line and every systemctl call that is not a
			// question: a check (and an apply with nothing to do) must leave it as it is.
			state := func(t testing.TB) string {
				t.Helper()
				var out []string
				entries, _ := os.ReadDir(filepath.Join(dir, "units"))
				for _, e := range entries {
					if e.Name() != "log" {
						out = append(out, e.Name()+"="+strings.TrimSpace(readFile(t, filepath.Join(dir, "units", e.Name()))))
					}
				}
				for _, c := range strings.Split(strings.TrimSpace(readFile(t, filepath.Join(dir, "units", "log"))), "\n") {
					if c != "" && !strings.HasPrefix(c, "show ") {
						out = append(out, "ran systemctl "+c)
					}
				}
				return strings.Join(out, "\n")
			}
			if tt.errMsg != "" {
				before := state(t)
				res, err := moduletest.Run(t, m, tt.args, false)
				if err != nil || res.Status != modules.StatusDrift {
					t.Fatalf("check: %v %+v", err, res)
				}
				if after := state(t); after != before {
					t.Fatalf("check changed units:\n%s\n->\n%s", before, after)
				}
				if _, err := moduletest.Run(t, m, tt.args, true); err == nil || !strings.Contains(err.Error(), tt.errMsg) {
					t.Fatalf("apply: err = %v, want %q", err, tt.errMsg)
				}
				return
			}
			res := moduletest.Timeline(t, m, tt.args, moduletest.Snapshot(state))
			if res[1].Msg != tt.msg {
				t.Errorf("msg %q, want %q", res[1].Msg, tt.msg)
			}
			data := moduletest.Data(t, m, res[1])
			for k, v := range tt.data {
				if got := data.GetAttr(k); !got.RawEquals(v) {
					t.Errorf("data %s = %#v, want %#v", k, got, v)
				}
			}
			if !strings.Contains(res[0].Diff.After, "inactive") {
				t.Errorf("drift diff %+v", res[0].Diff)
			}
			for n, want := range tt.after {
				if got := strings.TrimSpace(readFile(t, filepath.Join(dir, "units", n))); got != want {
					t.Errorf("%s = %q, want %q", n, got, want)
				}
			}
		})
	}
}

// TestFirewallWithoutIptables: a host without iptables has no iptables rules, unless the
// kernel has legacy tables nothing can read.
func TestFirewallWithoutIptables(t *testing.T) {
	args := map[string]cty.Value{"iptables_flush": cty.True, "save": cty.True, "save_path": s("/etc/iptables.rules")}
	t.Run("nothing to flush", func(t *testing.T) {
		root := t.TempDir()
		writeTree(t, root, map[string]string{"proc/thread-self/net/ip_tables_names": ""})
		res, err := moduletest.Run(t, Firewall{root: host.Root(root), dirs: []string{root}}, args, true)
		if err != nil {
			t.Fatal(err)
		}
		if res.Status != modules.StatusOK || res.Data.(*fwResult).Backend != backendMissing || !contains(res.Warnings, "iptables is not installed") {
			t.Errorf("result %+v", res)
		}
	})
	t.Run("legacy tables nobody can read", func(t *testing.T) {
		root := t.TempDir()
		writeTree(t, root, map[string]string{"proc/thread-self/net/ip_tables_names": "nat\nfilter\n"})
		_, err := moduletest.Run(t, Firewall{root: host.Root(root), dirs: []string{root}}, args, false)
		if err == nil || !strings.Contains(err.Error(), "legacy iptables tables (nat, filter)") {
			t.Errorf("err = %v", err)
		}
	})
}

// TestFirewallWithoutSystemd: on a host without systemd, services that have no init script
// either are not installed, which every wanted state accepts; one that has a script needs
// systemd to be managed, and says so.
func TestFirewallWithoutSystemd(t *testing.T) {
	args := map[string]cty.Value{"firewalld": s("disabled"), "iptables_service": s("disabled")}
	tests := []struct {
		name    string
		tree    map[string]string
		wantErr string
	}{
		{name: "nothing installed", tree: map[string]string{"proc/thread-self/net/ip_tables_names": ""}},
		{name: "an init script", tree: map[string]string{"etc/init.d/iptables": "#!/bin/sh\n"}, wantErr: "iptables_service: systemctl not found"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := t.TempDir()
			writeTree(t, root, tt.tree)
			for _, apply := range []bool{false, true} {
				res, err := moduletest.Run(t, Firewall{root: host.Root(root), dirs: []string{root}}, args, apply)
				if tt.wantErr != "" {
					if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
						t.Fatalf("err = %v, want %q", err, tt.wantErr)
					}
					continue
				}
				if err != nil || res.Status != modules.StatusOK || res.Data.(*fwResult).Firewalld != "not installed" || !strings.Contains(res.Msg, "no iptables service installed") {
					t.Fatalf("apply=%v: %+v %v", apply, res, err)
				}
			}
		})
	}
}

func TestFirewallValidate(t *testing.T) {
	list := func(v ...string) cty.Value {
		var vs []cty.Value
		for _, x := range v {
			vs = append(vs, s(x))
		}
		if len(vs) == 0 {
			return cty.ListValEmpty(cty.String)
		}
		return cty.ListVal(vs)
	}
	tests := []struct {
		args    map[string]cty.Value
		wantErr string
	}{
		{map[string]cty.Value{"firewalld": s("disabled")}, ""},
		{map[string]cty.Value{"iptables_flush": cty.True, "tables": list("filter", "nat")}, ""},
		{map[string]cty.Value{}, "needs at least one of"},
		{map[string]cty.Value{"iptables_flush": cty.False}, "needs at least one of"},
		{map[string]cty.Value{"tables": list("nat")}, "set iptables_flush = true"},
		{map[string]cty.Value{"iptables_flush": cty.True, "tables": list()}, "tables is empty"},
		{map[string]cty.Value{"iptables_flush": cty.True, "tables": list("filtr")}, `"filtr" is not an iptables table; expected one of: filter, nat, mangle, raw, security. Did you mean "filter"?`},
		{map[string]cty.Value{"policies": cty.MapVal(map[string]cty.Value{"input": s("ACCEPT")})}, `"input" is not a built-in chain of the filter table; expected one of: INPUT, FORWARD, OUTPUT. Did you mean "INPUT"?`},
		{map[string]cty.Value{"policies": cty.MapVal(map[string]cty.Value{"INPUT": s("REJECT")})}, `policy "REJECT" for INPUT is not valid`},
		{map[string]cty.Value{"save": cty.True, "save_path": s("rules.v4")}, "save_path must be an absolute path"},
		// Values the controller did not know (a host's facts) meet the schema's rules here.
		{map[string]cty.Value{"firewalld": s("bogus")}, `firewalld: "bogus" is not a valid firewalld; expected one of: stopped, disabled, masked.`},
		{map[string]cty.Value{"firewalld": s("")}, `"" is not a valid firewalld`},
		{map[string]cty.Value{"iptables_service": s("masked")}, `"masked" is not a valid iptables_service; expected one of: stopped, disabled.`},
	}
	for _, tt := range tests {
		errs := moduletest.Validate(t, Firewall{}, tt.args)
		switch {
		case tt.wantErr == "" && len(errs) > 0:
			t.Errorf("%v: unexpected %v", tt.args, errs)
		case tt.wantErr != "" && !slices.ContainsFunc(errs, func(e modules.ArgError) bool { return strings.Contains(e.Error(), tt.wantErr) }):
			t.Errorf("%v: errors %v, want %q", tt.args, errs, tt.wantErr)
		}
	}
}
