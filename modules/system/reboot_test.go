package system

import (
	"strings"
	"testing"

	"github.com/zclconf/go-cty/cty"

	"github.com/runbook/runbook/modules"
	"github.com/runbook/runbook/modules/moduletest"
)

func TestRebootAsks(t *testing.T) {
	const boot = "6f1c2d3e-0000-4000-8000-0123456789ab"
	tests := []struct {
		name     string
		systemd  bool     // /run/systemd/system exists
		pid1     string   // PID 1's comm
		foreign  bool     // the helper does not share PID 1's namespaces
		tools    []string // programs the host has
		args     map[string]cty.Value
		apply    bool
		wantErr  string
		wantArgv string // the one program run, joined by spaces ("" = none)
		wantHow  string
	}{
		{name: "systemd: a transient timer reboots with the message", systemd: true, pid1: "systemd", tools: []string{"systemd-run", "systemctl"},
			args: map[string]cty.Value{"msg": cty.StringVal("kernel 6.1.0-28"), "pre_reboot_delay": cty.StringVal("30s")}, apply: true,
			wantArgv: "--on-active=30s --timer-property=AccuracySec=1s -- systemctl reboot --message=kernel 6.1.0-28", wantHow: "systemd"},
		{name: "the delay is 2s at least", systemd: true, pid1: "systemd", tools: []string{"systemd-run", "systemctl"}, apply: true,
			wantArgv: "--on-active=2s", wantHow: "systemd"},
		{name: "sysvinit: shutdown from a shell of its own session", pid1: "init", tools: []string{"shutdown", "setsid", "sh"}, apply: true,
			wantArgv: "sh -c setsid sh -c 'sleep \"$1\"; if command -v shutdown", wantHow: "shutdown"},
		{name: "busybox: reboot, the message only as a parameter", pid1: "init", tools: []string{"reboot", "setsid", "sh"},
			args: map[string]cty.Value{"msg": cty.StringVal("'; rm -rf / #")}, apply: true,
			wantArgv: "reboot 2 '; rm -rf / #", wantHow: "busybox"},
		{name: "check: would reboot, nothing run", systemd: true, pid1: "systemd", tools: []string{"systemd-run"}},
		{name: "PID 1 of another machine's namespaces: refused, also in check mode", systemd: true, pid1: "systemd", foreign: true,
			tools: []string{"systemd-run"}, wantErr: `refusing to reboot: PID 1 ("systemd") is not this host's init`},
		{name: "PID 1 of another machine's namespaces: refused", systemd: true, pid1: "systemd", foreign: true, apply: true,
			tools: []string{"systemd-run"}, wantErr: "refusing to reboot"},
		{name: "no way to reboot", pid1: "init", tools: []string{"sh"}, apply: true, wantErr: "no way to reboot"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newFakeHost(t, tt.systemd)
			h.tools = map[string]bool{}
			for _, p := range tt.tools {
				h.tools[p] = true
			}
			h.external = func(argv []string) (int, string, string, error) { return 0, "", "", nil }
			m := h.machine()
			m.bootID = boot
			m.pid1 = func() (string, bool) { return tt.pid1, !tt.foreign }
			args := tt.args
			if args == nil {
				args = map[string]cty.Value{}
			}
			res, err := moduletest.Run(t, Reboot{test: m}, args, tt.apply)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err %v, want %q", err, tt.wantErr)
				}
				if len(h.calls) != 0 {
					t.Errorf("ran %v after refusing", h.calls)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !tt.apply {
				if res.Status != modules.StatusDrift || !strings.Contains(res.Msg, "would reboot") || len(h.calls) != 0 {
					t.Errorf("check: %s %q, ran %v", res.Status, res.Msg, h.calls)
				}
				return
			}
			if res.Status != modules.StatusChanged || len(h.calls) != 1 {
				t.Fatalf("apply: %s %q, ran %v", res.Status, res.Msg, h.calls)
			}
			if got := strings.Join(h.calls[0], " "); !strings.Contains(got, tt.wantArgv) {
				t.Errorf("ran %q, want it to hold %q", got, tt.wantArgv)
			}
			d := res.Data.(rebootResult)
			if d.How != tt.wantHow || d.BootIDBefore != boot {
				t.Errorf("data %+v", d)
			}
		})
	}
}

func TestRebootValidate(t *testing.T) {
	tests := []struct {
		args map[string]cty.Value
		want string
	}{
		{map[string]cty.Value{"reboot_timeout": cty.StringVal("5s")}, "less than 10s"},
		{map[string]cty.Value{"reboot_timeout": cty.StringVal("25h")}, "more than 24h"},
		{map[string]cty.Value{"pre_reboot_delay": cty.StringVal("2h")}, "more than 1h"},
		{map[string]cty.Value{"msg": cty.StringVal("two\nlines")}, "one line"},
		{map[string]cty.Value{"msg": cty.StringVal(strings.Repeat("x", 201))}, "more than 200"},
		{map[string]cty.Value{"test_command": cty.StringVal(" ")}, "test_command is empty"},
		{map[string]cty.Value{"reboot_timeout": cty.StringVal("ten minutes")}, "a duration"},
	}
	for _, tt := range tests {
		errs := moduletest.Validate(t, Reboot{}, tt.args)
		if len(errs) != 1 || !strings.Contains(errs[0].Msg, tt.want) {
			t.Errorf("%v: errors %v, want one holding %q", tt.args, errs, tt.want)
		}
	}
}
