package system_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/runbook/runbook/internal/labtest"
	"github.com/runbook/runbook/testenv"
	"github.com/runbook/runbook/testenv/testlab"
)

// labHost is one systemd lab host and the CLI runner against it.
type labHost struct {
	t   *testing.T
	lab *testenv.Lab
	r   *labtest.Runner
}

func startLab(t *testing.T) *labHost {
	t.Helper()
	return startTier(t, testenv.TierSystemd)
}

func startTier(t *testing.T, tier testenv.TierName) *labHost {
	t.Helper()
	lab := testlab.Start(t, testenv.Options{Tier: tier, Hosts: 1})
	return &labHost{t: t, lab: lab, r: labtest.New(t, lab)}
}

// sh runs a shell command on lab01 and returns its output; a failure fails the test.
func (h *labHost) sh(cmd string) string {
	h.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := h.lab.Exec(ctx, "lab01", "sh", "-c", cmd)
	if err != nil {
		h.t.Fatalf("%s: %v\n%s", cmd, err, out)
	}
	return string(out)
}

// shOK is sh that tolerates a failing command (its output is the snapshot).
func (h *labHost) shOK(cmd string) string {
	h.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, _ := h.lab.Exec(ctx, "lab01", "sh", "-c", "{ "+cmd+"; } 2>&1")
	return string(out)
}

// result is one JSON result line of `runbook run -o json`.
type result struct {
	Status string         `json:"status"`
	Msg    string         `json:"msg"`
	Data   map[string]any `json:"data"`
}

// module runs a module with -o json and returns the exit code and its result.
func (h *labHost) module(module string, args ...string) (int, result, string) {
	h.t.Helper()
	res := h.r.Module("lab01", module, append(args, "-o", "json")...)
	var out result
	for _, l := range strings.Split(res.Out, "\n") {
		if strings.Contains(l, `"type":"result"`) {
			if err := json.Unmarshal([]byte(l), &out); err != nil {
				h.t.Fatalf("decode %s: %v", l, err)
			}
		}
	}
	return res.Code, out, res.Out
}

// units is a snapshot of units' states and the rc links of SysV scripts.
func (h *labHost) units(names ...string) func() string {
	return func() string {
		return h.shOK("systemctl show -p Id,LoadState,ActiveState,SubState,UnitFileState -- " + strings.Join(names, " ") +
			"; ls -l /etc/rc?.d /etc/systemd/system | grep -v '^total'")
	}
}

const labDemoScript = `#!/bin/sh
### BEGIN INIT INFO
# Provides:          rbdemo
# Required-Start:    $local_fs
# Required-Stop:     $local_fs
# Default-Start:     2 3 4 5
# Default-Stop:      0 1 6
# Short-Description: runbook lab service
### END INIT INFO
case "$1" in
  start) touch /run/rbdemo.running ;;
  stop) rm -f /run/rbdemo.running ;;
  status) [ -e /run/rbdemo.running ] || exit 3 ;;
  restart|force-reload) touch /run/rbdemo.running ;;
  *) echo "usage: $0 {start|stop|status|restart}" >&2; exit 3 ;;
esac
`

// TestServiceLab drives real units on a systemd lab host through the CLI: firewalld and
// NetworkManager (native units), a SysV script seen through systemd's generator, a unit
// that does not exist, and arguments that must be refused before any host is touched.
func TestServiceLab(t *testing.T) {
	h := startLab(t)

	for _, unit := range []string{"firewalld", "NetworkManager"} {
		t.Run(unit+" off", func(t *testing.T) {
			snap := h.units(unit + ".service")
			if got := snap(); !strings.Contains(got, "ActiveState=active") || !strings.Contains(got, "UnitFileState=enabled") {
				t.Fatalf("%s should start active and enabled on the lab:\n%s", unit, got)
			}
			h.r.Timeline("lab01", "service", []string{"name=" + unit, "state=stopped", "enabled=false"}, snap)
			got := h.sh("systemctl show -p ActiveState,UnitFileState " + unit)
			if !strings.Contains(got, "ActiveState=inactive") || !strings.Contains(got, "UnitFileState=disabled") {
				t.Errorf("after the timeline:\n%s", got)
			}
		})
	}

	t.Run("masking changes nothing in check mode", func(t *testing.T) {
		snap := h.units("firewalld.service")
		before := snap()
		res := h.r.Module("lab01", "service", "name=firewalld", "masked=true", "--check", "--diff")
		if res.Code != 4 || !strings.Contains(res.Out, "would mask") || !strings.Contains(res.Out, "+masked: true") {
			t.Fatalf("check: exit %d\n%s", res.Code, res.Out)
		}
		if after := snap(); after != before {
			t.Fatalf("check mode changed the host:\n%s\n---\n%s", before, after)
		}
	})

	t.Run("SysV script through the generator", func(t *testing.T) {
		h.sh("cat > /etc/init.d/rbdemo <<'EOF'\n" + labDemoScript + "EOF\nchmod 755 /etc/init.d/rbdemo && systemctl daemon-reload")
		snap := h.units("rbdemo.service")
		if got := snap(); !strings.Contains(got, "UnitFileState=generated") {
			t.Fatalf("rbdemo is not a generated unit:\n%s", got)
		}
		h.r.Timeline("lab01", "service", []string{"name=rbdemo", "enabled=true", "state=started"}, snap)
		code, res, out := h.module("service", "name=rbdemo")
		if code != 0 || res.Data["enabled"] != true || res.Data["active_state"] != "active" || res.Data["unit_file_state"] != "generated" {
			t.Fatalf("after enabling: exit %d\n%s", code, out)
		}
		if got := h.sh("ls /etc/rc2.d /etc/rc5.d; ls /run/rbdemo.running"); strings.Count(got, "S01rbdemo") != 2 {
			t.Errorf("no start links after enabling:\n%s", got)
		}

		h.r.Timeline("lab01", "service", []string{"name=rbdemo.service", "enabled=false", "state=stopped"}, snap)
		code, res, out = h.module("service", "name=rbdemo")
		if code != 0 || res.Data["enabled"] != false || res.Data["active_state"] != "inactive" {
			t.Fatalf("after disabling: exit %d\n%s", code, out)
		}
		if got := h.shOK("ls /etc/rc?.d | grep rbdemo; ls /run/rbdemo.running"); strings.Contains(got, "S01rbdemo") || !strings.Contains(got, "No such file") {
			t.Errorf("start links or the running marker left:\n%s", got)
		}
	})

	t.Run("a unit that does not exist", func(t *testing.T) {
		res := h.r.Module("lab01", "service", "name=rb-no-such-unit", "state=started")
		if res.Code != 2 || !strings.Contains(res.Out, "unit rb-no-such-unit.service does not exist on this host") {
			t.Errorf("start: exit %d\n%s", res.Code, res.Out)
		}
		code, r, out := h.module("service", "name=rb-no-such-unit", "state=stopped", "enabled=false")
		if code != 0 || r.Status != "ok" || !strings.Contains(r.Msg, "nothing to stop or disable") {
			t.Errorf("stop: exit %d\n%s", code, out)
		}
	})

	t.Run("bad arguments touch no host", func(t *testing.T) {
		for _, tc := range []struct {
			args []string
			want string
		}{
			{[]string{"name=firewalld", "bogus=1"}, `has no argument "bogus"`},
			{[]string{"name=firewalld", "state=sarted"}, `Did you mean "started"?`},
			{[]string{"name=firewalld", "state=started", "masked=true"}, "A masked unit cannot be started"},
			{[]string{"state=started"}, `The argument "name" is required`},
			{[]string{"name=fire walld"}, "a unit name such as"},
		} {
			res := h.r.Module("lab01", "service", tc.args...)
			if res.Code != 1 || !strings.Contains(res.Out, tc.want) || strings.Contains(res.Out, "RECAP") {
				t.Errorf("%v: want exit 1 with %q before any host, got %d\n%s", tc.args, tc.want, res.Code, res.Out)
			}
		}
	})
}

// TestServiceSysVHostLab drives an init script on a host whose PID 1 is not systemd: a
// namespace-tier lab host (private /etc and /run, no /run/systemd/system), where the
// module uses "service" and update-rc.d.
func TestServiceSysVHostLab(t *testing.T) {
	h := startTier(t, testenv.TierNS)
	if got := h.shOK("ls -d /run/systemd/system; command -v service; command -v update-rc.d"); !strings.Contains(got, "No such file") || !strings.Contains(got, "update-rc.d") {
		t.Skipf("this namespace host is not a SysV host with update-rc.d:\n%s", got)
	}
	h.sh("cat > /etc/init.d/rbdemo <<'EOF'\n" + labDemoScript + "EOF\nchmod 755 /etc/init.d/rbdemo")
	snap := func() string { return h.shOK("ls /etc/rc2.d /etc/rc0.d /run/rbdemo.running") }
	h.r.Timeline("lab01", "service", []string{"name=rbdemo", "state=started", "enabled=true"}, snap)
	code, res, out := h.module("service", "name=rbdemo")
	if code != 0 || res.Data["manager"] != "sysv" || res.Data["enabled"] != true || res.Data["active_state"] != "active" {
		t.Fatalf("after starting: exit %d\n%s", code, out)
	}
	h.r.Timeline("lab01", "service", []string{"name=rbdemo", "state=stopped", "enabled=false"}, snap)
	if got := snap(); strings.Contains(got, "S01rbdemo") || !strings.Contains(got, "No such file") {
		t.Errorf("after stopping and disabling:\n%s", got)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"name=rbdemo", "masked=true"}, "masking needs systemd"},
		{[]string{"name=rb-no-such-script", "state=started"}, "unit rb-no-such-script.service does not exist on this host (no /etc/init.d/rb-no-such-script)"},
	} {
		res := h.r.Module("lab01", "service", tc.args...)
		if res.Code != 2 || !strings.Contains(res.Out, tc.want) {
			t.Errorf("%v: exit %d\n%s", tc.args, res.Code, res.Out)
		}
	}
}

// TestHostnameLab renames a systemd lab host through the CLI (kernel name, /etc/hostname,
// its /etc/hosts line and the pretty name via hostnamectl), then shows runtime drift alone.
func TestHostnameLab(t *testing.T) {
	h := startLab(t)
	snap := func() string {
		return h.shOK("uname -n; cat /etc/hostname /etc/hosts /etc/machine-info")
	}
	if got := h.sh("uname -n"); got != "lab01\n" {
		t.Fatalf("the lab host is named %q", got)
	}
	h.r.Timeline("lab01", "hostname", []string{"name=rbtest01", "update_hosts=true", "pretty=Runbook lab host"}, snap)
	got := h.sh("uname -n; cat /etc/hostname; grep -c rbtest01 /etc/hosts; grep -c lab01 /etc/hosts || true; cat /etc/machine-info")
	if got != "rbtest01\nrbtest01\n1\n0\nPRETTY_HOSTNAME=\"Runbook lab host\"\n" {
		t.Errorf("after the timeline:\n%s", got)
	}

	// The kernel's name drifts alone: check reports runtime drift only and changes nothing.
	h.sh("hostname rescue")
	before := snap()
	code, res, out := h.module("hostname", "name=rbtest01", "--check")
	if code != 4 || res.Data["runtime"] != "rescue" || res.Data["persistent"] != "rbtest01" ||
		!strings.Contains(res.Msg, "runtime rescue → rbtest01") || strings.Contains(res.Msg, "/etc/hostname") {
		t.Fatalf("check with runtime drift: exit %d\n%s", code, out)
	}
	if after := snap(); after != before {
		t.Fatalf("check mode changed the host:\n%s\n---\n%s", before, after)
	}
	if code, res, out := h.module("hostname", "name=rbtest01"); code != 0 || res.Status != "changed" || h.sh("uname -n") != "rbtest01\n" {
		t.Fatalf("apply: exit %d\n%s", code, out)
	}

	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"name=bad_name"}, "a hostname: letters, digits and dashes"},
		{[]string{"name=" + strings.Repeat("a", 60) + ".example"}, "at most 64 characters"},
		{[]string{"name=ok", "update_hosts=maybe"}, "update_hosts"},
	} {
		res := h.r.Module("lab01", "hostname", tc.args...)
		if res.Code != 1 || !strings.Contains(res.Out, tc.want) || strings.Contains(res.Out, "RECAP") {
			t.Errorf("%v: want exit 1 with %q before any host, got %d\n%s", tc.args, tc.want, res.Code, res.Out)
		}
	}
}

// TestSysctlLab sets keys that a container's own network namespace lets it write, at
// runtime and in sysctl.d, and shows runtime drift, a read-only key and a missing key.
func TestSysctlLab(t *testing.T) {
	h := startLab(t)
	snap := func() string {
		return h.shOK("cat /proc/sys/net/ipv4/ip_local_port_range /proc/sys/net/ipv4/conf/all/forwarding; ls /etc/sysctl.d; cat /etc/sysctl.d/*.conf")
	}
	h.r.Timeline("lab01", "sysctl", []string{"name=net.ipv4.ip_local_port_range", "value=20000 60999"}, snap)
	h.r.Timeline("lab01", "sysctl", []string{"name=net/ipv4/conf/all/forwarding", "value=1", "file=/etc/sysctl.d/60-forwarding.conf"}, snap)
	got := h.sh("cat /proc/sys/net/ipv4/ip_local_port_range /proc/sys/net/ipv4/conf/all/forwarding /etc/sysctl.d/90-runbook.conf /etc/sysctl.d/60-forwarding.conf")
	if got != "20000\t60999\n1\nnet.ipv4.ip_local_port_range = 20000 60999\nnet.ipv4.conf.all.forwarding = 1\n" {
		t.Errorf("after the timelines:\n%s", got)
	}

	// The running value drifts alone.
	h.sh("echo 32768 60999 > /proc/sys/net/ipv4/ip_local_port_range")
	before := snap()
	code, res, out := h.module("sysctl", "name=net.ipv4.ip_local_port_range", "value=20000 60999", "--check")
	if code != 4 || res.Data["runtime_drift"] != true || res.Data["persistent_drift"] != false || res.Data["runtime_value"] != "32768 60999" {
		t.Fatalf("check with runtime drift: exit %d\n%s", code, out)
	}
	if after := snap(); after != before {
		t.Fatalf("check mode changed the host:\n%s\n---\n%s", before, after)
	}

	// Outside net.*, a container's /proc/sys is read-only: check already says apply would
	// fail, and a failed apply leaves the file alone.
	for _, flags := range [][]string{{"--check"}, nil} {
		res := h.r.Module("lab01", "sysctl", append([]string{"name=vm.swappiness", "value=10"}, flags...)...)
		if res.Code != 2 || !strings.Contains(res.Out, "read-only file system") {
			t.Errorf("vm.swappiness %v: exit %d\n%s", flags, res.Code, res.Out)
		}
	}
	if got := h.sh("cat /etc/sysctl.d/90-runbook.conf"); strings.Contains(got, "swappiness") {
		t.Errorf("a failed task wrote the file:\n%s", got)
	}
	res2 := h.r.Module("lab01", "sysctl", "name=net.ipv4.no_such_key", "value=1")
	if res2.Code != 2 || !strings.Contains(res2.Out, "no sysctl key net.ipv4.no_such_key on this host") {
		t.Errorf("missing key: exit %d\n%s", res2.Code, res2.Out)
	}

	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"name=net.ipv4.ip_forward"}, `state = "present" needs value`},
		{[]string{"name=net..ipv4", "value=1"}, "is not a sysctl key"},
		{[]string{"name=net.ipv4.ip_forward", "value=1", "state=gone"}, "expected one of: present, absent"},
		{[]string{"name=net.ipv4.ip_forward", "value=1", "bogus=1"}, `has no argument "bogus"`},
	} {
		res := h.r.Module("lab01", "sysctl", tc.args...)
		if res.Code != 1 || !strings.Contains(res.Out, tc.want) || strings.Contains(res.Out, "RECAP") {
			t.Errorf("%v: want exit 1 with %q before any host, got %d\n%s", tc.args, tc.want, res.Code, res.Out)
		}
	}
}

// TestKernelModuleLab proves the boot-time files on a systemd lab host. The lab's
// containers see neither /proc/modules nor /sys/module, and the lab machine's kernel has no
// loadable modules at all, so the runtime part is "unknown" there, which the test checks is
// reported as such; loading and unloading are covered by the unit tests' fixtures.
func TestKernelModuleLab(t *testing.T) {
	h := startLab(t)
	if got := h.shOK("ls /proc/modules /sys/module"); !strings.Contains(got, "No such file") {
		t.Logf("the lab host sees its kernel's modules; the unknown-runtime assertions below may not hold:\n%s", got)
	}
	snap := func() string {
		return h.shOK("ls -l /etc/modules-load.d /etc/modprobe.d; cat /etc/modules-load.d/*.conf /etc/modprobe.d/*.conf")
	}
	// loop is built into the lab machine's kernel (it is in /sys/module there).
	res := h.r.Timeline("lab01", "kernel_module", []string{"name=loop", `params={max_loop="16"}`}, snap)
	if !strings.Contains(res[2].Out, "lab01 unknown") {
		t.Errorf("check after apply should say the runtime is unknown:\n%s", res[2].Out)
	}
	if got := h.sh("cat /etc/modules-load.d/loop.conf /etc/modprobe.d/loop.conf"); got != "loop\noptions loop max_loop=16\n" {
		t.Errorf("files:\n%s", got)
	}
	code, r, out := h.module("kernel_module", "name=loop", `params={max_loop="16"}`)
	if code != 0 || r.Status != "ok" || r.Data["runtime"] != "unknown" || r.Data["persistent"] != true || r.Data["options"] != "options loop max_loop=16" {
		t.Fatalf("registered data: exit %d\n%s", code, out)
	}
	if !strings.Contains(out, "runtime state unknown: the running kernel's modules cannot be seen here") {
		t.Errorf("no warning about the unknown runtime:\n%s", out)
	}

	// Files only, by choice: no warning, and in sync once written.
	h.r.Timeline("lab01", "kernel_module", []string{"name=bonding", "runtime=false", `params={max_bonds="0", miimon="100"}`}, snap)
	if got := h.sh("cat /etc/modprobe.d/bonding.conf"); got != "options bonding max_bonds=0 miimon=100\n" {
		t.Errorf("bonding options:\n%s", got)
	}

	// absent removes both files; the kernel is left alone since it cannot be seen.
	h.sh("printf 'blacklist pcspkr\\n' >> /etc/modprobe.d/loop.conf")
	h.r.Timeline("lab01", "kernel_module", []string{"name=loop", "state=absent"}, snap)
	if got := h.shOK("cat /etc/modules-load.d/loop.conf; cat /etc/modprobe.d/loop.conf"); !strings.Contains(got, "No such file") || !strings.HasSuffix(got, "blacklist pcspkr\n") {
		t.Errorf("after absent:\n%s", got)
	}

	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"name=loop", "state=absent", `params={max_loop="8"}`}, `params is not used with state = "absent"`},
		{[]string{"name=lo op"}, "a module name such as"},
		{[]string{"name=loop", `params={"max-loop"="8"}`}, "not a module parameter name"},
		{[]string{"name=loop", "persistent=sometimes"}, "persistent"},
	} {
		res := h.r.Module("lab01", "kernel_module", tc.args...)
		if res.Code != 1 || !strings.Contains(res.Out, tc.want) || strings.Contains(res.Out, "RECAP") {
			t.Errorf("%v: want exit 1 with %q before any host, got %d\n%s", tc.args, tc.want, res.Code, res.Out)
		}
	}
}
