package host

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestParseShow(t *testing.T) {
	cases := []struct {
		fixture string
		want    Unit
		sysv    string
	}{
		{"firewalld.txt", Unit{ID: "firewalld.service", Load: "loaded", Active: "active", Sub: "running", FileState: "enabled",
			Fragment: "/lib/systemd/system/firewalld.service", CanReload: true}, ""},
		{"nosuch.txt", Unit{ID: "nosuch.service", Load: "not-found", Active: "inactive", Sub: "dead"}, ""},
		{"rbdemo.txt", Unit{ID: "rbdemo.service", Load: "loaded", Active: "inactive", Sub: "dead", FileState: "generated",
			Fragment: "/run/systemd/generator.late/rbdemo.service", Source: "/etc/init.d/rbdemo"}, "/etc/init.d/rbdemo"},
		{"el8-network.txt", Unit{ID: "network.service", Load: "loaded", Active: "active", Sub: "exited", FileState: "generated",
			Fragment: "/run/systemd/generator.late/network.service", Source: "/etc/rc.d/init.d/network", CanReload: true}, "/etc/rc.d/init.d/network"},
		{"data.mount.txt", Unit{ID: "data.mount", Load: "loaded", Active: "active", Sub: "mounted", FileState: "generated",
			Fragment: "/run/systemd/generator/data.mount", Source: "/etc/fstab", CanReload: true}, ""},
		{"rbdemo-masked.txt", Unit{ID: "rbdemo.service", Load: "masked", Active: "inactive", Sub: "dead", FileState: "masked",
			Fragment: "/etc/systemd/system/rbdemo.service"}, ""},
	}
	for _, tc := range cases {
		t.Run(tc.fixture, func(t *testing.T) {
			b, err := os.ReadFile(filepath.Join("testdata", "show", tc.fixture))
			if err != nil {
				t.Fatal(err)
			}
			got, err := ParseShow("x", string(b))
			tc.want.Name = "x"
			if err != nil || got != tc.want {
				t.Errorf("ParseShow:\n got %+v, %v\nwant %+v", got, err, tc.want)
			}
			if s := got.SysVScript(); s != tc.sysv {
				t.Errorf("SysVScript = %q, want %q", s, tc.sysv)
			}
		})
	}
}

// TestParseShowHostile: the output decides what runs next, so whatever is not plainly
// systemctl's is refused.
func TestParseShowHostile(t *testing.T) {
	tests := []struct {
		name, out string
		want      Unit
		wantErr   string
	}{
		{name: "the three states", out: "LoadState=loaded\nActiveState=active\nUnitFileState=enabled\n",
			want: Unit{Name: "u", Load: "loaded", Active: "active", FileState: "enabled"}},
		{name: "CRLF and a value with =", out: "LoadState=loaded\r\nActiveState=inactive\r\nSourcePath=/etc/a=b\r\n",
			want: Unit{Name: "u", Load: "loaded", Active: "inactive", Source: "/etc/a=b"}},
		{name: "unknown properties are ignored", out: "Description=anything = goes; here\nLoadState=loaded\nActiveState=failed\n",
			want: Unit{Name: "u", Load: "loaded", Active: "failed"}},
		{name: "no states", out: "Unit x could not be found.\n", wantErr: "no LoadState or ActiveState"},
		{name: "empty", out: "", wantErr: "no LoadState or ActiveState"},
		{name: "a state twice", out: "LoadState=loaded\nActiveState=inactive\nActiveState=active\n", wantErr: "ActiveState appears twice"},
		{name: "a state that is not a word", out: "LoadState=loaded\nActiveState=active; rm -rf /\n", wantErr: `ActiveState "active; rm -rf /" is not a state`},
		{name: "a state with an escape", out: "LoadState=loaded\x1b[31m\nActiveState=active\n", wantErr: "LoadState"},
		{name: "an overlong value", out: "LoadState=loaded\nActiveState=active\nFragmentPath=/" + strings.Repeat("a", 5000) + "\n", wantErr: "FragmentPath is 5001 bytes long"},
		{name: "upper case", out: "LoadState=LOADED\nActiveState=active\n", wantErr: "is not a state"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseShow("u", tt.out)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Errorf("ParseShow = %+v, %v, want %+v", got, err, tt.want)
			}
		})
	}
}

func ptr(b bool) *bool { return &b }

// The firewall's wants.
var (
	wantDisabled = Want{State: Stopped, Enabled: ptr(false), Masked: ptr(false), Hold: true}
	wantStopped  = Want{State: Stopped}
	wantMasked   = Want{State: Stopped, Masked: ptr(true), Hold: true}
)

// TestPlanUnit: the steps, in order, and the state they leave. The firewall's cases came
// from its own planner (security.TestUnitSteps) and keep their assertions.
func TestPlanUnit(t *testing.T) {
	u := func(load, active, file string) Unit {
		return Unit{Name: "x.service", Load: load, Active: active, FileState: file}
	}
	tests := []struct {
		name    string
		cur     Unit
		want    Want
		steps   string
		after   string
		wantErr string
	}{
		{"enabled and running to disabled", u("loaded", "active", "enabled"), wantDisabled, "disable x.service; stop x.service", "x.service: inactive, disabled", ""},
		{"enabled and running to stopped", u("loaded", "active", "enabled"), wantStopped, "stop x.service", "x.service: inactive, enabled", ""},
		{"enabled and running to masked", u("loaded", "active", "enabled"), wantMasked, "mask x.service; stop x.service", "x.service: inactive, masked", ""},
		{"masked to disabled", u("masked", "inactive", "masked"), wantDisabled, "unmask x.service; disable x.service", "x.service: inactive, disabled", ""},
		{"runtime mask to disabled", u("masked", "inactive", "masked-runtime"), wantDisabled, "unmask --runtime x.service; disable x.service", "x.service: inactive, disabled", ""},
		{"runtime enablement to disabled", u("loaded", "inactive", "enabled-runtime"), wantDisabled, "disable --runtime x.service", "x.service: inactive, disabled", ""},
		{"runtime mask to masked", u("masked", "inactive", "masked-runtime"), wantMasked, "mask x.service", "x.service: inactive, masked", ""},
		// Masked by its load state, with no unit file state to say so: masking again would
		// change nothing, and report a change on every run.
		{"masked by load state only", u("masked", "inactive", ""), wantMasked, "", "x.service: inactive, unknown", ""},
		{"failed counts as stopped", u("loaded", "failed", "disabled"), wantDisabled, "", "x.service: failed, disabled", ""},
		{"activating is running", u("loaded", "activating", "static"), wantDisabled, "stop x.service", "x.service: inactive, static", ""},
		{"deactivating is not stopped yet", u("loaded", "deactivating", "disabled"), wantStopped, "stop x.service", "x.service: inactive, disabled", ""},
		{"static cannot be disabled", u("loaded", "inactive", "static"), wantDisabled, "", "x.service: inactive, static", ""},
		{"not installed", u("not-found", "inactive", ""), wantMasked, "mask x.service", "x.service: inactive, masked", ""},
		{"already masked", u("masked", "inactive", "masked"), wantMasked, "", "x.service: inactive, masked", ""},
		// The service module's order: the mask comes after the stop without Hold.
		{"mask last without Hold", u("loaded", "active", "enabled"), Want{State: Stopped, Masked: ptr(true)}, "stop x.service; mask x.service", "x.service: inactive, masked", ""},
		{"unmask before start", u("masked", "inactive", "masked"), Want{State: Started, Masked: ptr(false)}, "unmask x.service; start x.service", "x.service: active, unknown", ""},
		{"enable and start", u("loaded", "inactive", "disabled"), Want{State: Started, Enabled: ptr(true)}, "enable x.service; start x.service", "x.service: active, enabled", ""},
		{"restart always restarts", u("loaded", "active", "enabled"), Want{State: Restarted}, "restart x.service", "x.service: active, enabled", ""},
		{"reload a stopped unit starts it", u("loaded", "inactive", "enabled"), Want{State: Reloaded}, "start x.service", "x.service: active, enabled", ""},
		{"reload without ExecReload", u("loaded", "active", "enabled"), Want{State: Reloaded}, "", "", "cannot reload"},
		{"start a masked unit", u("masked", "inactive", "masked"), Want{State: Started}, "", "", "is masked, so it cannot be started"},
		{"enable a missing unit", u("not-found", "inactive", ""), Want{Enabled: ptr(true)}, "", "", "does not exist on this host, so it cannot be enabled"},
		{"enable a static unit", u("loaded", "inactive", "static"), Want{Enabled: ptr(true)}, "", "", "cannot be enabled: it is static"},
		{"an unknown file state", u("loaded", "inactive", "bad"), Want{Enabled: ptr(false)}, "", "", `unit file state "bad"`},
		{"enablement by another hand", u("loaded", "inactive", "generated"), Want{Enabled: ptr(true), Enable: func(on bool) []Step {
			return []Step{{Desc: "enabled (SysV script)", Verb: "rc-links"}}
		}}, "rc-links", "x.service: inactive, generated", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := PlanUnit(tt.cur, tt.want)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, s := range p.Steps {
				got = append(got, strings.Join(append([]string{s.Verb}, append(s.Flags, s.Unit)...), " "))
			}
			if g := strings.TrimSpace(strings.Join(got, "; ")); g != tt.steps || p.After.Describe() != tt.after {
				t.Errorf("steps %q after %q, want %q %q", g, p.After.Describe(), tt.steps, tt.after)
			}
		})
	}
}

func TestStepArgv(t *testing.T) {
	if got := strings.Join(step("", "", "disable", "a.service", "--runtime").Argv(), " "); got != "systemctl disable --runtime -- a.service" {
		t.Errorf("argv %q", got)
	}
	if got := strings.Join(Step{Verb: "daemon-reload"}.Argv(), " "); got != "systemctl daemon-reload" {
		t.Errorf("argv %q", got)
	}
}

// fakeSystemd is a systemctl in memory: show prints the unit's state, the verbs change it;
// a stuck unit does not stop.
type fakeSystemd struct {
	units map[string]*Unit
	stuck bool
	calls []string
}

func (f *fakeSystemd) run(_ context.Context, c Cmd) (Result, error) {
	f.calls = append(f.calls, strings.Join(c.Argv[1:], " "))
	verb, name := c.Argv[1], c.Argv[len(c.Argv)-1]
	u := f.units[name]
	switch verb {
	case "show":
		return Result{Stdout: "LoadState=" + u.Load + "\nActiveState=" + u.Active + "\nUnitFileState=" + u.FileState + "\n"}, nil
	case "stop":
		if !f.stuck {
			u.Active = "inactive"
		}
	case "disable":
		u.FileState = "disabled"
	case "mask":
		u.Load, u.FileState = "masked", "masked"
	case "unmask":
		u.Load, u.FileState = "loaded", "enabled"
	default:
		return Result{RC: 1, Stderr: "unknown verb " + verb}, nil
	}
	return Result{}, nil
}

func TestConverge(t *testing.T) {
	tests := []struct {
		name    string
		cur     Unit
		want    Want
		stuck   bool
		after   string
		calls   string
		wantErr string
	}{
		{name: "disable and stop", cur: Unit{Load: "loaded", Active: "active", FileState: "enabled"}, want: wantDisabled,
			after: "f.service: inactive, disabled", calls: "disable -- f.service; stop -- f.service; show"},
		{name: "a unit that does not stop", cur: Unit{Load: "loaded", Active: "active", FileState: "enabled"}, want: wantDisabled, stuck: true,
			wantErr: "f.service is still active after systemctl stop"},
		{name: "the mask hid an enablement", cur: Unit{Load: "masked", Active: "inactive", FileState: "masked"}, want: Want{Masked: ptr(false)},
			after: "f.service: inactive, enabled", calls: "unmask -- f.service; show"},
		{name: "a failed step stops the rest", cur: Unit{Load: "loaded", Active: "inactive", FileState: "disabled"}, want: Want{State: Started},
			wantErr: "systemctl start -- f.service exited with 1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cur := tt.cur
			cur.Name = "f.service"
			f := &fakeSystemd{units: map[string]*Unit{"f.service": &cur}, stuck: tt.stuck}
			start := cur
			got, err := Systemctl{R: Func(f.run)}.Converge(ctxT(t), start, tt.want)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			calls := strings.Join(f.calls, "; ")
			calls = strings.ReplaceAll(calls, "show --property="+strings.Join(showProps, ",")+" -- f.service", "show")
			if got.Describe() != tt.after || calls != tt.calls {
				t.Errorf("after %q calls %q, want %q %q", got.Describe(), calls, tt.after, tt.calls)
			}
		})
	}
}
