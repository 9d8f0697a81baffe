package security_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/runbook/runbook/internal/labtest"
	"github.com/runbook/runbook/testenv"
	"github.com/runbook/runbook/testenv/testlab"
)

// labHost is the one host of a systemd-tier lab, with helpers to run commands on it.
type labHost struct {
	t   *testing.T
	lab *testenv.Lab
	r   *labtest.Runner
}

func startLab(t *testing.T) *labHost {
	lab := testlab.Start(t, testenv.Options{Tier: testenv.TierSystemd, Hosts: 1})
	return &labHost{t: t, lab: lab, r: labtest.New(t, lab)}
}

// sh runs a shell command on lab01 and returns its output; a failure fails the test.
func (h *labHost) sh(cmd string) string {
	h.t.Helper()
	out, err := h.try(cmd)
	if err != nil {
		h.t.Fatalf("lab01: %s: %v\n%s", cmd, err, out)
	}
	return out
}

func (h *labHost) try(cmd string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := h.lab.Exec(ctx, "lab01", "sh", "-c", cmd)
	return string(out), err
}

// result runs the module with JSON output and returns the one result line.
func (h *labHost) result(module string, args ...string) (int, map[string]any) {
	h.t.Helper()
	res := h.r.Module("lab01", module, append(args, "-o", "json")...)
	for line := range strings.SplitSeq(res.Out, "\n") {
		var v map[string]any
		if json.Unmarshal([]byte(line), &v) == nil && v["type"] == "result" {
			return res.Code, v
		}
	}
	h.t.Fatalf("no result line in:\n%s", res.Out)
	return 0, nil
}

const labSELinuxConfig = `# SELinux settings of this lab host.
# SELINUX= enforcing, permissive or disabled.
SELINUX=enforcing
# SELINUXTYPE= the policy.
SELINUXTYPE=default

# SETLOCALDEFS= local definitions.
SETLOCALDEFS=0
`

// TestSELinuxOnLabHost: a Debian host whose kernel runs no SELinux. Only the file is
// managed: check → apply → check → apply for disabled and then permissive, comments kept,
// no reboot reported (the kernel would not run SELinux after one either), runtime "not
// available"; bad arguments fail before the host is touched.
func TestSELinuxOnLabHost(t *testing.T) {
	h := startLab(t)
	if _, err := h.try("test -e /sys/fs/selinux/enforce"); err == nil {
		t.Fatal("this lab host runs SELinux; the test expects a kernel without it")
	}
	h.sh("cat > /etc/selinux/config <<'EOF'\n" + labSELinuxConfig + "EOF\nchmod 0640 /etc/selinux/config")
	snap := func() string { return h.sh("stat -c '%a %U:%G %s' /etc/selinux/config; cat /etc/selinux/config") }

	for _, bad := range [][]string{{"state=enforced"}, {"state=disabled", "bogus=1"}, {"policy=targeted"}, {"state=disabled", "config=etc/selinux/config"}} {
		before := snap()
		if res := h.r.Module("lab01", "selinux", bad...); res.Code != 1 {
			t.Errorf("selinux %v: exit %d, want 1\n%s", bad, res.Code, res.Out)
		}
		if after := snap(); after != before {
			t.Fatalf("a rejected task changed the host:\n%s\n->\n%s", before, after)
		}
	}

	want := labSELinuxConfig
	for _, state := range []string{"disabled", "permissive"} {
		res := h.r.Timeline("lab01", "selinux", []string{"state=" + state}, snap)
		if !strings.Contains(res[0].Out, "-SELINUX=") || !strings.Contains(res[0].Out, "+SELINUX="+state) || !strings.Contains(res[0].Out, "+++ /etc/selinux/config (after; runtime: not available)") {
			t.Errorf("check diff for %s:\n%s", state, res[0].Out)
		}
		if strings.Contains(res[1].Out, "reboot required") {
			t.Errorf("a kernel without SELinux needs no reboot:\n%s", res[1].Out)
		}
		want = regexp.MustCompile(`(?m)^SELINUX=.*$`).ReplaceAllString(want, "SELINUX="+state)
		if got := h.sh("cat /etc/selinux/config"); got != want {
			t.Errorf("config after %s:\n%s\nwant:\n%s", state, got, want)
		}
		if got := h.sh("stat -c %a /etc/selinux/config"); got != "640\n" {
			t.Errorf("mode %q, want 640", got)
		}
		code, v := h.result("selinux", "state="+state)
		data, _ := v["data"].(map[string]any)
		if code != 0 || v["status"] != "ok" || data["runtime"] != "not available" || data["persistent"] != state ||
			data["reboot_required"] != false || data["policy"] != "default" || v["reboot_required"] != nil {
			t.Errorf("result after %s: exit %d %v", state, code, v)
		}
	}
	// The host's own tools agree: SELinux is off in the kernel, the file says permissive.
	if out, _ := h.try("sestatus"); !strings.Contains(out, "disabled") {
		t.Errorf("sestatus: %s", out)
	}
}

// unitState is firewalld's state as systemd reports it.
func (h *labHost) unitState(unit string) string {
	h.t.Helper()
	return h.sh("systemctl show -p LoadState,ActiveState,UnitFileState " + unit)
}

// TestFirewalldOnLabHost: firewalld runs and is enabled on a fresh lab host. Disabled,
// masked and disabled again (the mask lifted) each go check → apply → check → apply, with
// check proven to leave the unit as it was; bad arguments fail before the host is touched.
func TestFirewalldOnLabHost(t *testing.T) {
	h := startLab(t)
	_, _ = h.try("systemctl is-system-running --wait") // the boot settles; degraded is fine
	snap := func() string { return h.unitState("firewalld.service") }
	if got := snap(); !strings.Contains(got, "ActiveState=active") || !strings.Contains(got, "UnitFileState=enabled") {
		t.Fatalf("the lab host's firewalld should run and be enabled at start:\n%s", got)
	}

	for _, bad := range [][]string{{"firewalld=off"}, {"firewalld=disabled", "bogus=1"}, {"iptables_flush=true", `tables=["filtre"]`},
		{`policies={INPUT="REJECT"}`}, {"iptables_flush=false"}} {
		before := snap()
		if res := h.r.Module("lab01", "firewall", bad...); res.Code != 1 {
			t.Errorf("firewall %v: exit %d, want 1\n%s", bad, res.Code, res.Out)
		}
		if after := snap(); after != before {
			t.Fatalf("a rejected task changed the host:\n%s\n->\n%s", before, after)
		}
	}

	for _, step := range []struct{ want, check, state string }{
		{"disabled", "would disable and stop firewalld.service", "ActiveState=inactive\nUnitFileState=disabled"},
		{"masked", "would mask firewalld.service", "LoadState=masked\nActiveState=inactive\nUnitFileState=masked"},
		{"disabled", "would unmask and disable firewalld.service", "LoadState=loaded\nActiveState=inactive\nUnitFileState=disabled"},
	} {
		res := h.r.Timeline("lab01", "firewall", []string{"firewalld=" + step.want}, snap)
		if !strings.Contains(res[0].Out, step.check) {
			t.Errorf("check for %s: want %q in\n%s", step.want, step.check, res[0].Out)
		}
		if got := snap(); !strings.Contains(got, step.state) {
			t.Errorf("after %s:\n%s\nwant %q", step.want, got, step.state)
		}
	}
	code, v := h.result("firewall", "firewalld=disabled")
	if data, _ := v["data"].(map[string]any); code != 0 || v["status"] != "ok" || data["firewalld"] != "inactive, disabled" {
		t.Errorf("result: exit %d %v", code, v)
	}
	// The dbus alias went with the enablement: nothing can activate firewalld by name.
	if out, _ := h.try("systemctl is-enabled dbus-org.fedoraproject.FirewallD1.service"); strings.Contains(out, "enabled") {
		t.Errorf("firewalld's D-Bus alias is still enabled: %s", out)
	}
}

// iptablesPkgs are the Debian packages iptables needs.
var iptablesPkgs = []string{"iptables", "libip4tc2", "libip6tc2", "libxtables12", "libnftnl11", "libmnl0", "libnetfilter-conntrack3", "libnfnetlink0"}

// provisionIptables copies the iptables this machine has installed into the lab host,
// when both are the same Debian release (the lab base has no iptables, and its hosts have
// no network to install it). It returns why it could not, or "".
func (h *labHost) provisionIptables() string {
	h.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	status := func(out string) map[string]string {
		m := map[string]string{}
		for line := range strings.SplitSeq(out, "\n") {
			if f := strings.Fields(line); len(f) == 3 && f[2] == "installed" {
				m[f[0]] = f[1]
			}
		}
		return m
	}
	query := "dpkg-query -W -f='${Package} ${Version} ${db:Status-Status}\\n' " + strings.Join(iptablesPkgs, " ") + " 2>/dev/null; true"
	local, _ := exec.CommandContext(ctx, "sh", "-c", query).Output()
	mine, theirs := status(string(local)), status(h.sh(query))
	var files []string
	for _, p := range iptablesPkgs {
		if mine[p] == "" {
			return "this machine has no " + p + " package to copy"
		}
		if v, ok := theirs[p]; ok {
			if v != mine[p] {
				return fmt.Sprintf("the lab host has %s %s, this machine %s", p, v, mine[p])
			}
			continue
		}
		list, err := exec.CommandContext(ctx, "dpkg", "-L", p).Output()
		if err != nil {
			return "dpkg -L " + p + ": " + err.Error()
		}
		for f := range strings.SplitSeq(string(list), "\n") {
			if fi, err := os.Lstat(f); err == nil && (fi.Mode().IsRegular() || fi.Mode()&os.ModeSymlink != 0) {
				files = append(files, strings.TrimPrefix(f, "/"))
			}
		}
	}
	pack := exec.CommandContext(ctx, "tar", append([]string{"-C", "/", "--no-recursion", "-cf", "-"}, files...)...)
	unpack, err := h.lab.Command(ctx, "lab01", "tar", "-C", "/", "-xf", "-")
	if err != nil {
		h.t.Fatal(err)
	}
	pipe, err := pack.StdoutPipe()
	if err != nil {
		h.t.Fatal(err)
	}
	unpack.Stdin = pipe
	if err := pack.Start(); err != nil {
		h.t.Fatal(err)
	}
	if out, err := unpack.CombinedOutput(); err != nil {
		h.t.Fatalf("copy iptables into the lab host: %v\n%s", err, out)
	}
	if err := pack.Wait(); err != nil {
		h.t.Fatalf("tar: %v", err)
	}
	h.useBackend("nft")
	h.sh("ldconfig")
	return ""
}

// useBackend points the plain iptables names at a backend, as update-alternatives would.
func (h *labHost) useBackend(b string) {
	h.t.Helper()
	var cmds []string
	for _, fam := range []string{"iptables", "ip6tables"} {
		for _, tool := range []string{"", "-save", "-restore"} {
			cmds = append(cmds, fmt.Sprintf("ln -sfn %s-%s%s /usr/sbin/%s%s", fam, b, tool, fam, tool))
		}
	}
	h.sh(strings.Join(cmds, " && "))
}

// rules is the host's ruleset without comments and counters.
func (h *labHost) rules(tool string) string {
	h.t.Helper()
	return h.sh(tool + ` | grep -v '^#' | sed 's/ \[[0-9]*:[0-9]*\]$//; s/^\[[0-9]*:[0-9]*\] //'`)
}

// addRules gives the host a ruleset to flush: 3 filter rules (one in a user chain), 1
// nat rule, one IPv6 rule. The addresses are none the lab uses.
func (h *labHost) addRules() {
	h.t.Helper()
	h.sh(`iptables -A INPUT -s 10.99.0.0/16 -j DROP && iptables -N RBTEST && iptables -A RBTEST -p tcp --dport 22 -j ACCEPT &&
iptables -A INPUT -j RBTEST && iptables -t nat -A POSTROUTING -s 10.99.0.0/16 -j MASQUERADE && ip6tables -A INPUT -s fd00:99::/32 -j DROP`)
}

// TestIptablesOnLabHost flushes iptables on a systemd host with firewalld running. The
// lab base has no iptables: the module says so (ok, backend "not installed"); then this
// machine's iptables is copied in, rules are added and iptables_flush goes check → apply →
// check → apply with check proven to leave the rules alone, and the counts are checked,
// with the nf_tables backend and then the legacy one, IPv6 and save included.
func TestIptablesOnLabHost(t *testing.T) {
	h := startLab(t)
	if strings.HasPrefix(h.lab.Subnet(), "10.99.") {
		t.Fatalf("the lab subnet %s is the one the test's rules drop", h.lab.Subnet())
	}
	progs := strings.TrimSpace(h.sh("ls -1 /usr/sbin/*tables* /usr/sbin/nft /sbin/*tables* 2>/dev/null | tr '\\n' ' '; true"))
	if progs == "" {
		progs = "none"
	}
	t.Logf("the lab host's iptables and nft programs: %s", progs)
	if _, err := h.try("command -v iptables"); err != nil {
		code, v := h.result("firewall", "iptables_flush=true")
		if data, _ := v["data"].(map[string]any); code != 0 || v["status"] != "ok" || data["backend"] != "not installed" {
			t.Fatalf("without iptables: exit %d %v", code, v)
		}
		if why := h.provisionIptables(); why != "" {
			t.Skipf("cannot give the lab host iptables: %s", why)
		}
	}
	_, _ = h.try("systemctl is-system-running --wait")
	h.addRules()
	snap := func() string { return h.rules("iptables-save") + h.rules("ip6tables-save") }
	before := h.rules("iptables-save")

	res := h.r.Timeline("lab01", "firewall", []string{"iptables_flush=true"}, snap)
	if !strings.Contains(res[0].Out, "would flush 3 rules (filter 3) and 1 user chain") ||
		!strings.Contains(res[0].Out, "-A INPUT -s 10.99.0.0/16 -j DROP") || !strings.Contains(res[0].Out, "iptables-nft-save (nf_tables)") {
		t.Errorf("check:\n%s", res[0].Out)
	}
	after := h.rules("iptables-save")
	if filter := h.rules("iptables-save -t filter"); strings.Contains(filter, "-A ") || strings.Contains(after, "RBTEST") || !strings.Contains(before, "RBTEST") {
		t.Errorf("rules before:\n%s\nafter:\n%s", before, after)
	}
	if !strings.Contains(h.rules("ip6tables-save"), "fd00:99::/32") {
		t.Error("IPv6 rules were flushed without ipv6 = true")
	}
	if !strings.Contains(after, "-A POSTROUTING -s 10.99.0.0/16 -j MASQUERADE") {
		t.Errorf("the nat table was flushed without tables naming it:\n%s", after)
	}

	// An apply's registered counts, with IPv6 and a save where Debian's boot scripts look.
	h.sh("iptables -F && iptables -X && iptables -t nat -F && ip6tables -F")
	h.addRules()
	h.sh("mkdir -p /etc/iptables")
	args := []string{"iptables_flush=true", `tables=["filter","nat"]`, "ipv6=true", "save=true", `policies={INPUT="ACCEPT"}`}
	code, v := h.result("firewall", args...)
	data, _ := v["data"].(map[string]any)
	if code != 0 || v["status"] != "changed" || data["backend"] != "nf_tables" {
		t.Fatalf("apply: exit %d %v", code, v)
	}
	wantData := map[string]any{
		"removed":        map[string]any{"filter": 3.0, "nat": 1.0},
		"removed6":       map[string]any{"filter": 1.0},
		"chains_removed": map[string]any{"filter": 1.0},
		"saved":          []any{"/etc/iptables/rules.v4", "/etc/iptables/rules.v6"},
	}
	for k, want := range wantData {
		if !reflect.DeepEqual(data[k], want) {
			t.Errorf("data.%s = %v, want %v", k, data[k], want)
		}
	}
	if saved := h.sh("cat /etc/iptables/rules.v4 /etc/iptables/rules.v6"); strings.Contains(saved, "-A ") || !strings.Contains(saved, "*filter") {
		t.Errorf("saved rules:\n%s", saved)
	}
	if code, v := h.result("firewall", args...); code != 0 || v["status"] != "ok" {
		t.Errorf("apply again: exit %d %v", code, v)
	}

	// The legacy backend: the host's iptables now names it, and so does the result.
	h.useBackend("legacy")
	h.addRules()
	legacyBefore := h.rules("iptables-save")
	code, v = h.result("firewall", append(args, "--check")...)
	if code != 4 || v["status"] != "drift" || h.rules("iptables-save") != legacyBefore {
		t.Fatalf("legacy check: exit %d %v", code, v)
	}
	code, v = h.result("firewall", args...)
	data, _ = v["data"].(map[string]any)
	if code != 0 || v["status"] != "changed" || data["backend"] != "legacy" || !reflect.DeepEqual(data["removed"], wantData["removed"]) {
		t.Fatalf("legacy apply: exit %d %v", code, v)
	}
	if left := h.rules("iptables-legacy-save") + h.rules("ip6tables-legacy-save"); strings.Contains(left, "-A ") {
		t.Errorf("legacy rules left:\n%s", left)
	}
	if code, v := h.result("firewall", args...); code != 0 || v["status"] != "ok" {
		t.Errorf("legacy apply again: exit %d %v", code, v)
	}
}

// TestIptablesFlushKeepsLibvirtRulesOnLabHost: a host with the rules libvirt makes for its
// default NAT network (testdata/libvirt.save: masquerading for 192.168.122.0/24 in the nat
// table's LIBVIRT_PRT, the DHCP checksum fix in mangle's, its chains in filter). The flush
// with tables unset, as the BIG-IP runbook does it, goes check → apply → check → apply:
// the filter table ends empty, libvirt's nat and mangle rules are exactly as before, and
// the check after the apply is ok (exit 0), so nightly checks show no drift. An ns-tier
// host: its own network namespace, this machine's iptables.
func TestIptablesFlushKeepsLibvirtRulesOnLabHost(t *testing.T) {
	lab := testlab.Start(t, testenv.Options{Tier: testenv.TierNS, Hosts: 1})
	h := &labHost{t: t, lab: lab, r: labtest.New(t, lab)}
	if _, err := h.try("command -v iptables-restore"); err != nil {
		t.Fatal("the lab host has no iptables-restore (this machine's iptables package)")
	}
	libvirt, err := os.ReadFile("testdata/libvirt.save")
	if err != nil {
		t.Fatal(err)
	}
	h.sh("iptables-restore <<'EOF'\n" + string(libvirt) + "EOF")
	table := func(name string) string { return h.rules("iptables-save -t " + name) }
	natBefore, mangleBefore := table("nat"), table("mangle")
	if !strings.Contains(natBefore, "-A LIBVIRT_PRT -s 192.168.122.0/24 ! -d 192.168.122.0/24 -j MASQUERADE") ||
		!strings.Contains(mangleBefore, "--checksum-fill") || !strings.Contains(table("filter"), "-A INPUT -j LIBVIRT_INP") {
		t.Fatalf("libvirt's rules did not load:\n%s%s%s", table("filter"), natBefore, mangleBefore)
	}

	res := h.r.Timeline("lab01", "firewall", []string{"iptables_flush=true"}, func() string { return h.rules("iptables-save") })
	if !strings.Contains(res[0].Out, "would flush 18 rules (filter 18) and 5 user chains") {
		t.Errorf("check:\n%s", res[0].Out)
	}
	if filter := table("filter"); strings.Contains(filter, "-A ") || strings.Contains(filter, "LIBVIRT") {
		t.Errorf("the filter table after the flush:\n%s", filter)
	}
	if nat, mangle := table("nat"), table("mangle"); nat != natBefore || mangle != mangleBefore {
		t.Errorf("libvirt's nat and mangle rules changed:\n%s%s\nwant:\n%s%s", nat, mangle, natBefore, mangleBefore)
	}
	code, v := h.result("firewall", "iptables_flush=true", "--check")
	if data, _ := v["data"].(map[string]any); code != 0 || v["status"] != "ok" || !reflect.DeepEqual(data["removed"], map[string]any{"filter": 0.0}) {
		t.Errorf("check after the flush: exit %d %v", code, v)
	}
}
