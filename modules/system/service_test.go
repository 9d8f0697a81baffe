package system

import (
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/zclconf/go-cty/cty"

	"github.com/runbook/runbook/modules"
	"github.com/runbook/runbook/modules/host"
	"github.com/runbook/runbook/modules/moduletest"
)

// demoScript is an LSB init script that keeps its "daemon" as a file under the root it
// lives in, so the SysV code paths run a real script in a temporary tree.
const demoScript = `#!/bin/sh
### BEGIN INIT INFO
# Provides:          rbdemo
# Default-Start:     2 3 4 5
# Default-Stop:      0 1 6
# Short-Description: runbook test service
### END INIT INFO
root=$(cd "$(dirname "$0")/../.." && pwd)
case "$1" in
  start) mkdir -p "$root/run" && touch "$root/run/rbdemo.running" ;;
  stop) rm -f "$root/run/rbdemo.running" ;;
  status) [ -e "$root/run/rbdemo.running" ] || exit 3 ;;
  restart|reload|force-reload) mkdir -p "$root/run" && touch "$root/run/rbdemo.running" ;;
  *) echo "usage: $0 {start|stop|status|restart|reload}" >&2; exit 2 ;;
esac
`

func unitFrom(t *testing.T, fixture string) *fakeUnit {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "host", "testdata", "show", fixture))
	if err != nil {
		t.Fatal(err)
	}
	st, err := host.ParseShow(fixture, string(b))
	if err != nil {
		t.Fatal(err)
	}
	return &fakeUnit{load: st.Load, active: st.Active, sub: st.Sub, fileState: st.FileState,
		fragment: st.Fragment, source: st.Source, canReload: st.CanReload, needReload: st.NeedReload,
		savedFileState: "disabled"}
}

// withDemoScript installs the init script and the rc directories of a Debian host.
func withDemoScript(h *fakeHost) {
	h.write("/etc/init.d/rbdemo", demoScript, 0o755)
	for _, l := range rcLevels {
		h.mkdir("/etc/rc" + l + ".d")
	}
}

// fakeRCTool simulates update-rc.d and chkconfig on the rc links of the fake root.
func fakeRCTool(h *fakeHost, effective bool) func(argv []string) (int, string, string, error) {
	return func(argv []string) (int, string, string, error) {
		m := h.machine()
		tool := filepath.Base(argv[0])
		var name, verb string
		switch {
		case tool == "update-rc.d" && len(argv) == 3:
			name, verb = argv[1], argv[2]
		case tool == "chkconfig" && len(argv) == 3 && argv[1] == "--add":
			name, verb = argv[2], "defaults"
		case tool == "chkconfig" && len(argv) == 3:
			name, verb = argv[1], map[string]string{"on": "enable", "off": "disable"}[argv[2]]
		default:
			return 1, "", "unexpected call " + strings.Join(argv, " "), nil
		}
		if !effective {
			return 0, "", "", nil
		}
		links := m.rcLinks(name)
		var err error
		switch verb {
		case "defaults":
			if len(links) == 0 {
				err = setRCLinks(m, name, tool == "update-rc.d", links)
			}
		case "enable":
			err = setRCLinks(m, name, true, links)
		case "disable":
			err = setRCLinks(m, name, false, links)
		}
		if err != nil {
			return 1, "", err.Error(), nil
		}
		return 0, "", "", nil
	}
}

func rcListing(t *testing.T, h *fakeHost) string {
	t.Helper()
	var out []string
	for _, l := range h.machine().rcLinks("rbdemo") {
		target, _ := os.Readlink(filepath.Join(h.root, l.file))
		out = append(out, l.file+" -> "+target)
	}
	sort.Strings(out)
	return strings.Join(out, "\n")
}

// TestServiceTimelines runs each case through check (drift, nothing but reads) → apply
// (changed, exactly the expected programs) → check (in sync) → apply (nothing to do).
func TestServiceTimelines(t *testing.T) {
	cases := []struct {
		name    string
		systemd bool
		setup   func(h *fakeHost)
		args    map[string]cty.Value
		// steps are the programs the first apply runs, in order.
		steps []string
		// repeats: restarted/reloaded act on every apply.
		repeats bool
		after   func(t *testing.T, h *fakeHost)
		data    map[string]any
	}{
		{name: "stop and disable firewalld", systemd: true,
			setup: func(h *fakeHost) { h.units["firewalld.service"] = unitFrom(t, "firewalld.txt") },
			args:  map[string]cty.Value{"name": s("firewalld"), "state": s("stopped"), "enabled": cty.False},
			steps: []string{"systemctl disable -- firewalld.service", "systemctl stop -- firewalld.service"},
			data: map[string]any{"name": "firewalld.service", "active_state": "inactive", "sub_state": "dead", "enabled": false,
				"unit_file_state": "disabled", "masked": false, "load_state": "loaded", "manager": "systemd"}},
		{name: "start and enable a socket unit", systemd: true,
			setup: func(h *fakeHost) { h.units["ssh.socket"] = unitFrom(t, "ssh.socket.txt") },
			args:  map[string]cty.Value{"name": s("ssh.socket"), "state": s("started"), "enabled": cty.True},
			steps: []string{"systemctl enable -- ssh.socket", "systemctl start -- ssh.socket"}},
		{name: "enabled only until reboot is made persistent", systemd: true,
			setup: func(h *fakeHost) {
				u := unitFrom(t, "ssh.socket.txt")
				u.fileState = "enabled-runtime"
				h.units["ssh.socket"] = u
			},
			args:  map[string]cty.Value{"name": s("ssh.socket"), "enabled": cty.True},
			steps: []string{"systemctl enable -- ssh.socket"}},
		{name: "mask stops first", systemd: true,
			setup: func(h *fakeHost) { h.units["firewalld.service"] = unitFrom(t, "firewalld.txt") },
			args:  map[string]cty.Value{"name": s("firewalld.service"), "state": s("stopped"), "masked": cty.True},
			steps: []string{"systemctl stop -- firewalld.service", "systemctl mask -- firewalld.service"},
			data: map[string]any{"name": "firewalld.service", "active_state": "inactive", "sub_state": "dead", "enabled": false,
				"unit_file_state": "masked", "masked": true, "load_state": "masked", "manager": "systemd"}},
		{name: "unmask comes before start", systemd: true,
			setup: func(h *fakeHost) { h.units["rbdemo.service"] = unitFrom(t, "rbdemo-masked.txt") },
			args:  map[string]cty.Value{"name": s("rbdemo"), "state": s("started"), "masked": cty.False},
			steps: []string{"systemctl unmask -- rbdemo.service", "systemctl start -- rbdemo.service"}},
		{name: "unmask and disable: what the mask hid may have been enabled", systemd: true,
			setup: func(h *fakeHost) {
				u := unitFrom(t, "rbdemo-masked.txt")
				u.savedFileState = "enabled"
				h.units["rbdemo.service"] = u
			},
			args:  map[string]cty.Value{"name": s("rbdemo"), "masked": cty.False, "enabled": cty.False},
			steps: []string{"systemctl unmask -- rbdemo.service", "systemctl disable -- rbdemo.service"},
			data:  map[string]any{"enabled": false, "unit_file_state": "disabled", "masked": false}},
		{name: "mask a unit that does not exist", systemd: true,
			args:  map[string]cty.Value{"name": s("nosuch"), "masked": cty.True},
			steps: []string{"systemctl mask -- nosuch.service"}},
		{name: "restart acts every time", systemd: true, repeats: true,
			setup: func(h *fakeHost) { h.units["firewalld.service"] = unitFrom(t, "firewalld.txt") },
			args:  map[string]cty.Value{"name": s("firewalld"), "state": s("restarted")},
			steps: []string{"systemctl restart -- firewalld.service"}},
		{name: "reload acts every time", systemd: true, repeats: true,
			setup: func(h *fakeHost) { h.units["firewalld.service"] = unitFrom(t, "firewalld.txt") },
			args:  map[string]cty.Value{"name": s("firewalld"), "state": s("reloaded")},
			steps: []string{"systemctl reload -- firewalld.service"}},
		{name: "daemon reload when unit files changed", systemd: true,
			setup: func(h *fakeHost) {
				u := unitFrom(t, "firewalld.txt")
				u.needReload = true
				h.units["firewalld.service"] = u
			},
			args:  map[string]cty.Value{"name": s("firewalld"), "state": s("started"), "daemon_reload": cty.True},
			steps: []string{"systemctl daemon-reload"}},
		{name: "generated SysV unit enabled with rc links", systemd: true,
			setup: func(h *fakeHost) {
				withDemoScript(h)
				h.units["rbdemo.service"] = unitFrom(t, "rbdemo.txt")
			},
			args:  map[string]cty.Value{"name": s("rbdemo"), "enabled": cty.True, "state": s("started")},
			steps: []string{"systemctl daemon-reload", "systemctl start -- rbdemo.service"},
			after: func(t *testing.T, h *fakeHost) {
				want := strings.Join([]string{
					"/etc/rc0.d/K50rbdemo -> ../init.d/rbdemo", "/etc/rc1.d/K50rbdemo -> ../init.d/rbdemo",
					"/etc/rc2.d/S50rbdemo -> ../init.d/rbdemo", "/etc/rc3.d/S50rbdemo -> ../init.d/rbdemo",
					"/etc/rc4.d/S50rbdemo -> ../init.d/rbdemo", "/etc/rc5.d/S50rbdemo -> ../init.d/rbdemo",
					"/etc/rc6.d/K50rbdemo -> ../init.d/rbdemo"}, "\n")
				if got := rcListing(t, h); got != want {
					t.Errorf("rc links:\n%s\nwant:\n%s", got, want)
				}
			},
			data: map[string]any{"name": "rbdemo.service", "active_state": "active", "sub_state": "running", "enabled": true,
				"unit_file_state": "generated", "masked": false, "load_state": "loaded", "manager": "systemd"}},
		{name: "generated SysV unit enabled with update-rc.d", systemd: true,
			setup: func(h *fakeHost) {
				withDemoScript(h)
				h.tools["update-rc.d"] = true
				h.external = fakeRCTool(h, true)
				h.units["rbdemo.service"] = unitFrom(t, "rbdemo.txt")
			},
			args:  map[string]cty.Value{"name": s("rbdemo"), "enabled": cty.True},
			steps: []string{"update-rc.d rbdemo defaults", "update-rc.d rbdemo enable", "systemctl daemon-reload"}},
		{name: "generated SysV unit disabled with chkconfig", systemd: true,
			setup: func(h *fakeHost) {
				withDemoScript(h)
				if err := setRCLinks(h.machine(), "rbdemo", true, nil); err != nil {
					t.Fatal(err)
				}
				h.tools["chkconfig"] = true
				h.tools["update-rc.d"] = true // chkconfig wins
				h.external = fakeRCTool(h, true)
				u := unitFrom(t, "el8-network.txt")
				u.source = "/etc/rc.d/init.d/rbdemo"
				h.units["rbdemo.service"] = u
			},
			args:  map[string]cty.Value{"name": s("rbdemo.service"), "enabled": cty.False},
			steps: []string{"chkconfig rbdemo off", "systemctl daemon-reload"},
			after: func(t *testing.T, h *fakeHost) {
				if l := rcListing(t, h); strings.Contains(l, "/S") {
					t.Errorf("start links left:\n%s", l)
				}
			}},
		{name: "SysV host: start and enable a script", systemd: false,
			setup: withDemoScript,
			args:  map[string]cty.Value{"name": s("rbdemo"), "state": s("started"), "enabled": cty.True},
			steps: []string{"{root}/etc/init.d/rbdemo start"},
			after: func(t *testing.T, h *fakeHost) {
				if _, err := os.Stat(filepath.Join(h.root, "run/rbdemo.running")); err != nil {
					t.Errorf("the script did not start: %v", err)
				}
				if !rcEnabled(h.machine().rcLinks("rbdemo")) {
					t.Error("no start links")
				}
			},
			data: map[string]any{"name": "rbdemo.service", "active_state": "active", "sub_state": "running", "enabled": true,
				"unit_file_state": "enabled", "masked": false, "load_state": "loaded", "manager": "sysv"}},
		{name: "SysV host: stop through the service command", systemd: false,
			setup: func(h *fakeHost) {
				withDemoScript(h)
				h.write("/run/rbdemo.running", "", 0o644)
				h.tools["service"] = true
				h.external = func(argv []string) (int, string, string, error) {
					if filepath.Base(argv[0]) != "service" {
						return realRun(ctxT(t), argv)
					}
					// service NAME VERB runs the script itself.
					return h.run(ctxT(t), filepath.Join(h.root, "etc/init.d", argv[1]), argv[2])
				}
			},
			args:  map[string]cty.Value{"name": s("rbdemo"), "state": s("stopped")},
			steps: []string{"service rbdemo stop", "{root}/etc/init.d/rbdemo stop"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := newFakeHost(t, tc.systemd)
			if tc.setup != nil {
				tc.setup(h)
			}
			step := func(apply bool, want modules.Status) *modules.Result {
				t.Helper()
				h.calls = nil
				res, err := moduletest.Run(t, Service{test: h.machine()}, tc.args, apply)
				if err != nil {
					t.Fatalf("apply=%v: %v", apply, err)
				}
				if res.Status != want {
					t.Fatalf("apply=%v: status %q, want %q (%s)", apply, res.Status, want, res.Msg)
				}
				if !apply {
					h.onlyReads(t, "check")
				}
				if want == modules.StatusOK && len(h.mutating()) > 0 {
					t.Fatalf("apply=%v reported ok but ran %v", apply, h.mutating())
				}
				if res.Msg == "" {
					t.Errorf("apply=%v: no message", apply)
				}
				return res
			}
			checked := step(false, modules.StatusDrift)
			applied := step(true, modules.StatusChanged)
			var got []string
			for _, c := range h.mutating() {
				got = append(got, strings.ReplaceAll(c, h.root, "{root}"))
			}
			if !slices.Equal(got, tc.steps) {
				t.Errorf("apply ran:\n  %s\nwant:\n  %s", strings.Join(got, "\n  "), strings.Join(tc.steps, "\n  "))
			}
			if checked.Diff == nil || applied.Diff == nil || *checked.Diff != *applied.Diff {
				t.Errorf("check's diff differs from apply's:\ncheck: %+v\napply: %+v", checked.Diff, applied.Diff)
			}
			if tc.data != nil {
				got := data(t, Service{}, applied)
				for k, v := range tc.data {
					if got[k] != v {
						t.Errorf("data %s = %v, want %v", k, got[k], v)
					}
				}
			}
			if tc.repeats {
				step(false, modules.StatusDrift)
				step(true, modules.StatusChanged)
			} else {
				step(false, modules.StatusOK)
				step(true, modules.StatusOK)
			}
			if tc.after != nil {
				tc.after(t, h)
			}
		})
	}
}

// TestServiceInSync covers runs with nothing to do, and the message each gives.
func TestServiceInSync(t *testing.T) {
	cases := []struct {
		name    string
		systemd bool
		setup   func(h *fakeHost)
		args    map[string]cty.Value
		msg     string
	}{
		{name: "stopping a unit that does not exist", systemd: true,
			args: map[string]cty.Value{"name": s("nosuch"), "state": s("stopped"), "enabled": cty.False},
			msg:  "unit nosuch.service does not exist on this host; nothing to stop or disable"},
		{name: "unmasking a unit that does not exist", systemd: true,
			args: map[string]cty.Value{"name": s("nosuch"), "masked": cty.False},
			msg:  "nothing to unmask"},
		{name: "disabling a static unit", systemd: true,
			setup: func(h *fakeHost) { h.units["systemd-journald.service"] = unitFrom(t, "systemd-journald.txt") },
			args:  map[string]cty.Value{"name": s("systemd-journald"), "enabled": cty.False, "state": s("started")},
			msg:   "nothing to disable: it is static"},
		{name: "a failed unit counts as stopped", systemd: true,
			setup: func(h *fakeHost) {
				u := unitFrom(t, "firewalld.txt")
				u.active, u.sub = "failed", "failed"
				h.units["firewalld.service"] = u
			},
			args: map[string]cty.Value{"name": s("firewalld"), "state": s("stopped")},
			msg:  "firewalld.service: failed, enabled"},
		{name: "reading only", systemd: true,
			setup: func(h *fakeHost) { h.units["firewalld.service"] = unitFrom(t, "firewalld.txt") },
			args:  map[string]cty.Value{"name": s("firewalld")},
			msg:   "firewalld.service: active (running), enabled"},
		{name: "generated SysV unit disabled, from its rc links", systemd: true,
			setup: func(h *fakeHost) {
				withDemoScript(h)
				h.units["rbdemo.service"] = unitFrom(t, "rbdemo.txt")
			},
			args: map[string]cty.Value{"name": s("rbdemo"), "enabled": cty.False},
			msg:  "rbdemo.service: inactive (dead), generated"},
		{name: "SysV host: missing script", systemd: false,
			setup: withDemoScript,
			args:  map[string]cty.Value{"name": s("other"), "state": s("stopped")},
			msg:   "unit other.service does not exist on this host (no /etc/init.d/other); nothing to do"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := newFakeHost(t, tc.systemd)
			if tc.setup != nil {
				tc.setup(h)
			}
			for _, apply := range []bool{false, true} {
				h.calls = nil
				res, err := moduletest.Run(t, Service{test: h.machine()}, tc.args, apply)
				if err != nil {
					t.Fatalf("apply=%v: %v", apply, err)
				}
				if res.Status != modules.StatusOK || !strings.Contains(res.Msg, tc.msg) {
					t.Errorf("apply=%v: %s %q, want ok with %q", apply, res.Status, res.Msg, tc.msg)
				}
				h.onlyReads(t, "a run with nothing to do")
			}
		})
	}
}

// TestServiceErrors covers runs that must fail, in check mode as in apply, before
// anything on the host changes.
func TestServiceErrors(t *testing.T) {
	cases := []struct {
		name    string
		systemd bool
		setup   func(h *fakeHost)
		args    map[string]cty.Value
		checkOK bool // the failure shows only when applying
		wantErr string
	}{
		{name: "starting a unit that does not exist", systemd: true,
			args:    map[string]cty.Value{"name": s("nosuch"), "state": s("started")},
			wantErr: "unit nosuch.service does not exist on this host"},
		{name: "enabling a unit that does not exist", systemd: true,
			args:    map[string]cty.Value{"name": s("nosuch.service"), "enabled": cty.True},
			wantErr: "unit nosuch.service does not exist on this host, so it cannot be enabled"},
		{name: "starting a masked unit", systemd: true,
			setup:   func(h *fakeHost) { h.units["rbdemo.service"] = unitFrom(t, "rbdemo-masked.txt") },
			args:    map[string]cty.Value{"name": s("rbdemo"), "state": s("started")},
			wantErr: "unit rbdemo.service is masked, so it cannot be started; set masked = false"},
		{name: "enabling a static unit", systemd: true,
			setup:   func(h *fakeHost) { h.units["systemd-journald.service"] = unitFrom(t, "systemd-journald.txt") },
			args:    map[string]cty.Value{"name": s("systemd-journald"), "enabled": cty.True},
			wantErr: "cannot be enabled: it is static"},
		{name: "enabling a unit from an fstab generator", systemd: true,
			setup:   func(h *fakeHost) { h.units["data.mount"] = unitFrom(t, "data.mount.txt") },
			args:    map[string]cty.Value{"name": s("data.mount"), "enabled": cty.True},
			wantErr: "generated by a systemd generator from /etc/fstab"},
		{name: "reloading a unit without ExecReload", systemd: true,
			setup: func(h *fakeHost) {
				u := unitFrom(t, "rbdemo.txt")
				u.active, u.sub = "active", "exited"
				h.units["rbdemo.service"] = u
			},
			args:    map[string]cty.Value{"name": s("rbdemo"), "state": s("reloaded")},
			wantErr: `cannot reload (it has no ExecReload=); use state = "restarted"`},
		{name: "a start that fails", systemd: true, checkOK: true,
			setup: func(h *fakeHost) {
				u := unitFrom(t, "ssh.socket.txt")
				u.failStart = true
				h.units["ssh.socket"] = u
			},
			args:    map[string]cty.Value{"name": s("ssh.socket"), "state": s("started")},
			wantErr: "systemctl start -- ssh.socket exited with 1"},
		{name: "SysV rc tool that changes nothing", systemd: true, checkOK: true,
			setup: func(h *fakeHost) {
				withDemoScript(h)
				h.tools["update-rc.d"] = true
				h.external = fakeRCTool(h, false)
				h.units["rbdemo.service"] = unitFrom(t, "rbdemo.txt")
			},
			args:    map[string]cty.Value{"name": s("rbdemo"), "enabled": cty.True},
			wantErr: "rbdemo is still disabled at boot after turning it on"},
		{name: "SysV host: masking", systemd: false, setup: withDemoScript,
			args:    map[string]cty.Value{"name": s("rbdemo"), "masked": cty.True},
			wantErr: "masking needs systemd"},
		{name: "SysV host: a socket unit", systemd: false, setup: withDemoScript,
			args:    map[string]cty.Value{"name": s("ssh.socket"), "state": s("started")},
			wantErr: "ssh.socket is a systemd unit, and this host does not run systemd"},
		{name: "SysV host: starting a missing script", systemd: false, setup: withDemoScript,
			args:    map[string]cty.Value{"name": s("nosuch"), "state": s("started")},
			wantErr: "unit nosuch.service does not exist on this host (no /etc/init.d/nosuch)"},
		{name: "neither systemd nor init scripts", systemd: false,
			args:    map[string]cty.Value{"name": s("sshd"), "state": s("started")},
			wantErr: "this host runs neither systemd (no /run/systemd/system) nor SysV init scripts"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := newFakeHost(t, tc.systemd)
			if tc.setup != nil {
				tc.setup(h)
			}
			before := rcListing(t, h)
			for _, apply := range []bool{false, true} {
				h.calls = nil
				_, err := moduletest.Run(t, Service{test: h.machine()}, tc.args, apply)
				if !apply && tc.checkOK {
					if err != nil {
						t.Fatalf("check: %v", err)
					}
					h.onlyReads(t, "check")
					continue
				}
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("apply=%v: error %v, want %q", apply, err, tc.wantErr)
				}
				if !tc.checkOK {
					h.onlyReads(t, "a run that fails up front")
				}
			}
			if !tc.checkOK && rcListing(t, h) != before {
				t.Error("rc links changed")
			}
		})
	}
}

// TestServiceDaemonReloadNewUnit: a unit file written but not loaded yet is unknown in
// check mode, and found by the reload when applying.
func TestServiceDaemonReloadNewUnit(t *testing.T) {
	h := newFakeHost(t, true)
	h.write("/etc/systemd/system/app.service", "[Service]\nExecStart=/bin/true\n", 0o644)
	h.pending["app.service"] = &fakeUnit{load: "loaded", active: "inactive", sub: "dead", fileState: "disabled"}
	args := map[string]cty.Value{"name": s("app"), "state": s("started"), "daemon_reload": cty.True}
	res, err := moduletest.Run(t, Service{test: h.machine()}, args, false)
	if err != nil || res.Status != modules.StatusUnknown || !strings.Contains(res.Msg, "/etc/systemd/system/app.service") {
		t.Fatalf("check: %v %+v", err, res)
	}
	h.onlyReads(t, "check")
	res, err = moduletest.Run(t, Service{test: h.machine()}, args, true)
	if err != nil || res.Status != modules.StatusChanged {
		t.Fatalf("apply: %v %+v", err, res)
	}
	if !h.ran("systemctl", "daemon-reload") || !h.ran("systemctl", "start", "--", "app.service") {
		t.Errorf("calls: %v", h.calls)
	}
	if res.Data.(serviceResult).ActiveState != "active" {
		t.Errorf("data: %v", res.Data)
	}
}

func TestUnitName(t *testing.T) {
	for in, want := range map[string]string{
		"network": "network.service", "network.service": "network.service", "getty@tty1": "getty@tty1.service",
		"ssh.socket": "ssh.socket", "data.mount": "data.mount", "foo.bar": "foo.bar.service", ".service": ".service.service",
	} {
		if got := unitName(in); got != want {
			t.Errorf("unitName(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestParseInitHeader(t *testing.T) {
	cases := []struct {
		name, script string
		want         initHeader
	}{
		{"LSB", demoScript, initHeader{start: []string{"2", "3", "4", "5"}, stop: []string{"0", "1", "6"}, startOrder: "50", stopOrder: "50"}},
		{"chkconfig (EL network)", "#! /bin/bash\n#\n# network       Bring up/down networking\n#\n# chkconfig: 2345 10 90\n# description: Activates/Deactivates all network interfaces\n",
			initHeader{start: []string{"2", "3", "4", "5"}, stop: []string{"0", "1", "6"}, startOrder: "10", stopOrder: "90"}},
		{"chkconfig off by default", "#!/bin/sh\n# chkconfig: - 85 15\n",
			initHeader{start: []string{"2", "3", "4", "5"}, stop: []string{"0", "1", "6"}, startOrder: "85", stopOrder: "15"}},
		{"LSB levels win over chkconfig", "#!/bin/sh\n# chkconfig: 345 20 80\n### BEGIN INIT INFO\n# Default-Start: 3 5\n# Default-Stop: 0 6\n### END INIT INFO\n",
			initHeader{start: []string{"3", "5"}, stop: []string{"0", "6"}, startOrder: "20", stopOrder: "80"}},
		{"no header", "#!/bin/sh\nexit 0\n",
			initHeader{start: []string{"2", "3", "4", "5"}, stop: []string{"0", "1", "6"}, startOrder: "50", stopOrder: "50"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := parseInitHeader([]byte(tc.script))
			if !slices.Equal(got.start, tc.want.start) || !slices.Equal(got.stop, tc.want.stop) ||
				got.startOrder != tc.want.startOrder || got.stopOrder != tc.want.stopOrder {
				t.Errorf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}

// TestRCLinks: enabled means an S link in 2-5, whatever the links of other scripts or
// levels say; disabling turns S links into K links and keeps the rest.
func TestRCLinks(t *testing.T) {
	h := newFakeHost(t, false)
	withDemoScript(h)
	m := h.machine()
	link := func(p string) {
		if err := os.Symlink("../init.d/x", filepath.Join(h.root, p)); err != nil {
			t.Fatal(err)
		}
	}
	link("/etc/rc2.d/S01rbdemo2")    // another script whose name starts the same
	link("/etc/rc0.d/K01rbdemo")     // a stop link only
	link("/etc/rc1.d/S01rbdemo")     // single-user only: not enabled
	link("/etc/rc2.d/README.rbdemo") // not a link name
	if rcEnabled(m.rcLinks("rbdemo")) {
		t.Fatal("enabled without an S link in 2-5")
	}
	if n := len(m.rcLinks("rbdemo")); n != 2 {
		t.Fatalf("found %d links, want 2: %v", n, m.rcLinks("rbdemo"))
	}
	if err := setRCLinks(m, "rbdemo", true, m.rcLinks("rbdemo")); err != nil {
		t.Fatal(err)
	}
	if !rcEnabled(m.rcLinks("rbdemo")) {
		t.Fatalf("not enabled after setRCLinks: %s", rcListing(t, h))
	}
	if err := setRCLinks(m, "rbdemo", false, m.rcLinks("rbdemo")); err != nil {
		t.Fatal(err)
	}
	got := rcListing(t, h)
	if strings.Contains(got, "/S") || strings.Count(got, "\n")+1 != 7 {
		t.Errorf("after disabling:\n%s", got)
	}
	if _, err := os.Lstat(filepath.Join(h.root, "/etc/rc2.d/S01rbdemo2")); err != nil {
		t.Error("another script's link was touched")
	}
}

func TestServiceValidate(t *testing.T) {
	cases := []struct {
		args map[string]cty.Value
		want string
	}{
		{map[string]cty.Value{"name": s("x"), "masked": cty.True, "state": s("started")}, "A masked unit cannot be started"},
		{map[string]cty.Value{"name": s("x"), "masked": cty.True, "enabled": cty.True}, "A masked unit cannot be enabled"},
		{map[string]cty.Value{"name": s("-x")}, "cannot start with a dash"},
		{map[string]cty.Value{"name": s("x"), "masked": cty.True, "state": s("stopped"), "enabled": cty.False}, ""},
	}
	for _, tc := range cases {
		errs := moduletest.Validate(t, Service{}, tc.args)
		var msgs []string
		for _, e := range errs {
			msgs = append(msgs, e.Error())
		}
		got := strings.Join(msgs, "; ")
		if (tc.want == "") != (got == "") || !strings.Contains(got, tc.want) {
			t.Errorf("Validate(%v) = %q, want %q", tc.args, got, tc.want)
		}
	}
}
