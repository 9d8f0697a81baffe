package system

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"

	"github.com/zclconf/go-cty/cty"

	"github.com/runbook/runbook/modules"
	"github.com/runbook/runbook/modules/host"
)

var (
	_ modules.Runner[serviceArgs]    = Service{}
	_ modules.Validator[serviceArgs] = Service{}
)

// Service manages a systemd unit, or a SysV init script.
type Service struct {
	// test is the machine a unit test runs it on; nil: the helper's host.
	test *machine
}

// serviceArgs are the service module's arguments.
type serviceArgs struct {
	Name         string  `cty:"name"`
	State        *string `cty:"state"`
	Enabled      *bool   `cty:"enabled"`
	Masked       *bool   `cty:"masked"`
	DaemonReload bool    `cty:"daemon_reload"`
}

// unit is the unit's full name: "network" → "network.service".
func (a serviceArgs) unit() string { return unitName(a.Name) }

// state is the state asked for, "" when unset.
func (a serviceArgs) state() string { return orEmpty(a.State) }

// serviceResult is what the service module returns.
type serviceResult struct {
	Name          string `cty:"name"`
	ActiveState   string `cty:"active_state"`
	SubState      string `cty:"sub_state"`
	Enabled       bool   `cty:"enabled"`
	UnitFileState string `cty:"unit_file_state"`
	Masked        bool   `cty:"masked"`
	LoadState     string `cty:"load_state"`
	Manager       string `cty:"manager"`
}

var unitNamePattern = regexp.MustCompile(`^[A-Za-z0-9:_.@\\-]+$`)

func (Service) Info() modules.Info {
	return modules.Info{
		Name:    "service",
		Family:  "system",
		Summary: "Start, stop, restart, enable, disable or mask a service: systemd units and SysV init scripts.",
		Description: `Reads the unit's state from systemd ("systemctl show": LoadState, ActiveState, SubState,
UnitFileState, SourcePath...) and changes only what differs: unmask, enable or disable, start or stop,
then mask, in that order. A name without a unit type means a service: "network" and "network.service"
are the same unit. state = "restarted" and "reloaded" act on every apply and always report changed
(a reload of a stopped unit starts it). Check mode only reads; it never runs a verb that changes
anything.

A unit that does not exist is an error ("unit X does not exist on this host") when it should run or
be enabled; stopping or disabling it is fine and the message says there was nothing to do. Masking a
unit that does not exist is allowed: it makes sure nothing can ever start it. A unit masked only
until the next boot (masked-runtime) is masked for good when masked = true.

Legacy SysV scripts (the "network" service of EL7/EL8, anything in /etc/init.d without a native
unit) reach systemd through its generator: UnitFileState "generated", SourcePath /etc/init.d/NAME.
"systemctl enable" cannot enable those, so the module enables and disables them with chkconfig when
the host has it, else update-rc.d, else by managing the /etc/rcN.d links itself (S links in the
levels of the script's Default-Start, K links elsewhere), and reports enabled from those links: an S
link in any of runlevels 2 to 5. The manager is reloaded afterwards so systemd sees the change.

Static, indirect and other generated units have no [Install] section of their own: asking to enable
them is an error that says why, and disabling them has nothing to do.

On a host whose PID 1 is not systemd (no /run/systemd/system) the module drives /etc/init.d
scripts with "service NAME start|stop|restart|reload" (the script itself when there is no service
command) and reads their state from "status" (exit 0 running, 1 to 3 stopped); enabling works as
above and masking is refused. A host with neither is refused with a message that says so.`,
		Schema: modules.Schema{
			Args: []modules.Arg{
				{Name: "name", Type: cty.String, Required: true, Pattern: unitNamePattern,
					PatternHelp: `a unit name such as "sshd", "network.service" or "getty@tty1"`,
					Doc:         `The unit. Without a type suffix it is a service: "network" means "network.service".`},
				{Name: "state", Type: cty.String, OneOf: []string{"started", "stopped", "restarted", "reloaded"},
					Doc: `"started" and "stopped" act only when needed; "restarted" and "reloaded" act every time (the task reports changed). Unset leaves the unit running or not.`},
				{Name: "enabled", Type: cty.Bool, Doc: "Whether the unit starts at boot. Unset leaves it as it is."},
				{Name: "masked", Type: cty.Bool, Doc: "Whether the unit is masked (linked to /dev/null, so nothing can start it). Unset leaves it as it is."},
				{Name: "daemon_reload", Type: cty.Bool, Default: cty.False,
					Doc: "Reload systemd's configuration first when it reports the unit's files changed on disk (NeedDaemonReload), or when the unit is not loaded yet (a unit file or init script just written)."},
			},
		},
		Returns: []modules.Field{
			{Name: "name", Type: cty.String, Doc: `The unit's full name, e.g. "network.service".`},
			{Name: "active_state", Type: cty.String, Doc: `systemd's ActiveState after the task: "active", "inactive", "failed", ...`},
			{Name: "sub_state", Type: cty.String, Doc: `systemd's SubState: "running", "exited", "dead", ...`},
			{Name: "enabled", Type: cty.Bool, Doc: "Whether the unit starts at boot (for a SysV script: an S link in runlevels 2-5)."},
			{Name: "unit_file_state", Type: cty.String, Doc: `systemd's UnitFileState: "enabled", "disabled", "static", "masked", "generated", ... ("" when the unit does not exist).`},
			{Name: "masked", Type: cty.Bool, Doc: "Whether the unit is masked."},
			{Name: "load_state", Type: cty.String, Doc: `systemd's LoadState: "loaded", "not-found", "masked", ...`},
			{Name: "manager", Type: cty.String, Doc: `"systemd", or "sysv" on a host whose PID 1 is not systemd.`},
		},
		Examples: []modules.Example{
			{Title: "NetworkManager off and never started at boot", HCL: `task "NetworkManager off" {
  service {
    name    = "NetworkManager"
    state   = "stopped"
    enabled = false
  }
}`},
			{Title: "The legacy network service (a SysV script on EL7/EL8) on at boot and running", HCL: `task "network service" {
  service {
    name    = "network"
    state   = "started"
    enabled = true
  }
}`},
			{Title: "firewalld stopped and masked, so nothing pulls it in again", HCL: `task "no firewalld" {
  service {
    name   = "firewalld"
    state  = "stopped"
    masked = true
  }
}`},
			{Title: "Restart a service after its unit file changed", HCL: `task "restart app" {
  service {
    name          = "app.service"
    state         = "restarted"
    daemon_reload = true
  }
}`},
		},
	}
}

// Validate rejects combinations that no unit can satisfy.
func (Service) Validate(args serviceArgs) []modules.ArgError {
	var errs []modules.ArgError
	if isTrue(args.Masked) {
		if state := args.state(); state != "" && state != "stopped" {
			errs = append(errs, modules.ArgError{Arg: "state", Msg: fmt.Sprintf("A masked unit cannot be %s; use state = \"stopped\" with masked = true.", state)})
		}
		if isTrue(args.Enabled) {
			errs = append(errs, modules.ArgError{Arg: "enabled", Msg: "A masked unit cannot be enabled; use enabled = false with masked = true."})
		}
	}
	if strings.HasPrefix(args.Name, "-") {
		errs = append(errs, modules.ArgError{Arg: "name", Msg: "A unit name cannot start with a dash."})
	}
	return errs
}

// unitSuffixes are systemd's unit types; a name without one is a service.
var unitSuffixes = []string{".service", ".socket", ".target", ".timer", ".mount", ".automount",
	".path", ".slice", ".scope", ".swap", ".device"}

// unitName gives name its unit type: "network" → "network.service".
func unitName(name string) string {
	for _, s := range unitSuffixes {
		if strings.HasSuffix(name, s) && len(name) > len(s) {
			return name
		}
	}
	return name + ".service"
}

// systemdBooted reports whether PID 1 is systemd, the way sd_booted(3) tells.
func (m *machine) systemdBooted() bool {
	fi, err := os.Stat(m.path("/run/systemd/system"))
	return err == nil && fi.IsDir()
}

// runStep is a step that runs a program other than systemctl (an init script).
func (m *machine) runStep(desc, would string, argv []string) host.Step {
	return host.Step{Desc: desc, Would: would, Do: func(ctx context.Context) error {
		_, err := m.runOK(ctx, argv...)
		return err
	}}
}

// Run reads the unit, works out the steps that bring it to what the task wants, and runs
// them when applying.
func (sv Service) Run(ctx context.Context, env *modules.Env, args serviceArgs, apply bool) (*modules.Result, error) {
	return runService(ctx, on(sv.test, env), args, apply)
}

func runService(ctx context.Context, m *machine, w serviceArgs, apply bool) (*modules.Result, error) {
	if !m.systemdBooted() {
		return runSysVService(ctx, m, w, apply)
	}
	if m.lookPath("systemctl") == "" {
		return nil, errors.New("PID 1 is systemd (/run/systemd/system exists) but there is no systemctl on this host")
	}
	st, err := m.systemctl().Show(ctx, w.unit())
	if err != nil {
		return nil, err
	}
	var steps []host.Step
	var notes []string
	res := &modules.Result{Status: modules.StatusOK}

	if w.DaemonReload {
		switch {
		case st.NeedReload:
			steps = append(steps, host.Step{Desc: "reloaded systemd (unit files changed on disk)", Would: "would reload systemd (unit files changed on disk)",
				Verb: "daemon-reload"})
		case st.Load == "not-found" && apply:
			// A unit file or init script may just have been written: reload, then look
			// again. It is a change only when the unit appears.
			if _, err := m.systemctl().Run(ctx, "daemon-reload"); err != nil {
				return nil, err
			}
			if st, err = m.systemctl().Show(ctx, w.unit()); err != nil {
				return nil, err
			}
			if st.Load != "not-found" {
				notes = append(notes, "reloaded systemd, which found the unit")
				res.Status = modules.StatusChanged
			}
		case st.Load == "not-found":
			if src := unitSource(m, w.unit()); src != "" {
				res.Status = modules.StatusUnknown
				res.Msg = fmt.Sprintf("%s is not loaded; a daemon-reload would load it from %s, so what follows cannot be predicted", w.unit(), src)
				res.Data = serviceData(w.unit(), st, false, "systemd")
				return res, nil
			}
		}
	}
	before := st
	sysv := st.SysVScript()
	enabledNow := st.Enabled()
	if sysv != "" {
		enabledNow = rcEnabled(m.rcLinks(filepath.Base(sysv)))
	}

	want := host.Want{State: w.state(), Enabled: w.Enabled, Masked: w.Masked}
	if sysv != "" {
		// A unit generated from an init script is enabled by its rc links.
		want.Enable = func(enable bool) []host.Step {
			if enabledNow == enable {
				return nil
			}
			name := filepath.Base(sysv)
			desc, would := "enabled (SysV script)", "would enable (SysV script)"
			if !enable {
				desc, would = "disabled (SysV script)", "would disable (SysV script)"
			}
			return []host.Step{{Desc: desc, Would: would, Do: func(ctx context.Context) error {
				if err := setSysVEnabled(ctx, m, name, enable); err != nil {
					return err
				}
				// The generator reads the rc links: let systemd see the change.
				_, err := m.systemctl().Run(ctx, "daemon-reload")
				return err
			}}}
		}
	}
	plan, err := host.PlanUnit(st, want)
	if err != nil {
		return nil, err
	}
	steps = append(steps, plan.Steps...)
	notes = append(notes, plan.Notes...)
	return finishService(ctx, m, w, res, before, enabledNow, steps, notes, apply)
}

// unitSource finds a file that a daemon-reload would load unit from, or "".
func unitSource(m *machine, unit string) string {
	for _, dir := range []string{"/etc/systemd/system", "/run/systemd/system", "/usr/local/lib/systemd/system",
		"/usr/lib/systemd/system", "/lib/systemd/system"} {
		if _, err := os.Stat(m.path(filepath.Join(dir, unit))); err == nil {
			return filepath.Join(dir, unit)
		}
	}
	if name, ok := strings.CutSuffix(unit, ".service"); ok {
		if _, err := os.Stat(m.path("/etc/init.d/" + name)); err == nil {
			return "/etc/init.d/" + name
		}
	}
	return ""
}

// finishService reports the steps (and runs them when applying), with the diff and data.
func finishService(ctx context.Context, m *machine, w serviceArgs, res *modules.Result, before host.Unit, enabledBefore bool, steps []host.Step, notes []string, apply bool) (*modules.Result, error) {
	after := predictUnit(w, before, enabledBefore)
	var done []string
	for _, s := range steps {
		done = append(done, modules.Tense(apply, s.Desc, s.Would))
	}
	if len(steps) > 0 {
		res.Status = modules.DiffStatus(apply)
	}
	if apply {
		if err := m.systemctl().Apply(ctx, steps); err != nil {
			return nil, err
		}
	}
	final, enabledFinal := before, enabledBefore
	if apply && (len(steps) > 0 || res.Status == modules.StatusChanged) {
		var err error
		if final, err = m.systemctl().Show(ctx, w.unit()); err != nil {
			return nil, err
		}
		enabledFinal = final.Enabled()
		if s := final.SysVScript(); s != "" {
			enabledFinal = rcEnabled(m.rcLinks(filepath.Base(s)))
		}
		if w.state() == "started" && final.Active == "failed" {
			return nil, fmt.Errorf("unit %s failed right after it was started (SubState %s); see journalctl -u %s", w.unit(), final.Sub, w.unit())
		}
	}
	res.Data = serviceData(w.unit(), final, enabledFinal, "systemd")
	if res.Status != modules.StatusOK {
		res.Diff = &modules.Diff{
			Before: describeUnit(before.Active, enabledBefore, before.Masked(), w), After: after,
			BeforeHeader: w.unit() + " (before)", AfterHeader: w.unit() + " (after)",
		}
	}
	parts := append(done, notes...)
	if len(parts) == 0 {
		parts = append(parts, summary(before, enabledBefore))
	}
	res.Msg = w.unit() + ": " + strings.Join(parts, ", ")
	return res, nil
}

// summary is the one-line state of a unit that needed nothing.
func summary(st host.Unit, enabled bool) string {
	s := st.Active
	if st.Sub != "" && st.Sub != st.Active {
		s += " (" + st.Sub + ")"
	}
	switch {
	case st.Masked():
		s += ", masked"
	case enabled:
		s += ", enabled"
	case st.FileState != "":
		s += ", " + st.FileState
	}
	return s
}

// predictUnit describes the unit as the steps leave it.
func predictUnit(w serviceArgs, st host.Unit, enabled bool) string {
	active := st.Active
	switch w.state() {
	case "started":
		if !st.Running() {
			active = "active"
		}
	case "stopped":
		if !st.Stopped() {
			active = "inactive"
		}
	case "restarted":
		active = "active (restarted)"
	case "reloaded":
		if st.Running() {
			active = "active (reloaded)"
		} else {
			active = "active"
		}
	}
	if w.Enabled != nil && st.Load != "not-found" {
		enabled = *w.Enabled
	}
	masked := st.Masked()
	if w.Masked != nil {
		masked = *w.Masked
	}
	return describeUnit(active, enabled, masked, w)
}

func describeUnit(active string, enabled, masked bool, w serviceArgs) string {
	if active == "" {
		active = "inactive"
	}
	s := fmt.Sprintf("state: %s\nenabled: %t\n", active, enabled)
	if w.Masked != nil || masked {
		s += fmt.Sprintf("masked: %t\n", masked)
	}
	return s
}

func serviceData(unit string, st host.Unit, enabled bool, manager string) serviceResult {
	return serviceResult{
		Name:          unit,
		ActiveState:   st.Active,
		SubState:      st.Sub,
		Enabled:       enabled,
		UnitFileState: st.FileState,
		Masked:        st.Masked(),
		LoadState:     st.Load,
		Manager:       manager,
	}
}

// runSysVService manages an init script on a host whose PID 1 is not systemd.
func runSysVService(ctx context.Context, m *machine, w serviceArgs, apply bool) (*modules.Result, error) {
	name, ok := strings.CutSuffix(w.unit(), ".service")
	if !ok {
		return nil, fmt.Errorf("%s is a systemd unit, and this host does not run systemd (no /run/systemd/system)", w.unit())
	}
	if fi, err := os.Stat(m.path("/etc/init.d")); err != nil || !fi.IsDir() {
		return nil, errors.New("this host runs neither systemd (no /run/systemd/system) nor SysV init scripts (no /etc/init.d): the service module cannot manage its services")
	}
	res := &modules.Result{Status: modules.StatusOK}
	script := "/etc/init.d/" + name
	st := host.Unit{Name: w.unit(), ID: w.unit(), Load: "loaded", Active: "inactive", Sub: "dead"}
	var warnings []string
	if w.DaemonReload {
		warnings = append(warnings, "daemon_reload ignored: this host does not run systemd")
	}
	fi, err := os.Stat(m.path(script))
	switch {
	case errors.Is(err, fs.ErrNotExist):
		st.Load = "not-found"
	case err != nil:
		return nil, fmt.Errorf("inspect %s: %w", script, err)
	case !fi.Mode().IsRegular() || fi.Mode()&0o111 == 0:
		return nil, fmt.Errorf("%s is not an executable file", script)
	}
	if isTrue(w.Masked) {
		return nil, fmt.Errorf("masking needs systemd, and this host does not run it (no /run/systemd/system)")
	}
	if st.Load == "not-found" {
		if w.state() == "started" || w.state() == "restarted" || w.state() == "reloaded" || isTrue(w.Enabled) {
			return nil, fmt.Errorf("unit %s does not exist on this host (no %s)", w.unit(), script)
		}
		res.Msg = fmt.Sprintf("%s: unit %s does not exist on this host (no %s); nothing to do", w.unit(), w.unit(), script)
		res.Data = serviceData(w.unit(), host.Unit{Load: "not-found", Active: "inactive", Sub: "dead"}, false, "sysv")
		res.Warnings = warnings
		return res, nil
	}
	control := func(verb string) []string {
		if p := m.lookPath("service"); p != "" {
			return []string{p, name, verb}
		}
		return []string{m.path(script), verb}
	}
	// status is read-only for every LSB script: 0 running, 1-3 not running, 4 unknown.
	running, known := false, true
	status, err := m.run.Run(ctx, host.Cmd{Argv: control("status")})
	rc := status.RC
	switch {
	case err != nil:
		return nil, fmt.Errorf("%s status: %w", name, err)
	case rc == 0:
		running = true
	case rc >= 1 && rc <= 3:
	default:
		known = false
	}
	if running {
		st.Active, st.Sub = "active", "running"
	}
	links := m.rcLinks(name)
	enabledNow := rcEnabled(links)
	st.FileState = "disabled"
	if enabledNow {
		st.FileState = "enabled"
	}

	var steps []host.Step
	if w.Enabled != nil && enabledNow != *w.Enabled {
		en := *w.Enabled
		desc, would := "enabled", "would enable"
		if !en {
			desc, would = "disabled", "would disable"
		}
		steps = append(steps, host.Step{Desc: desc, Would: would, Do: func(ctx context.Context) error { return setSysVEnabled(ctx, m, name, en) }})
	}
	if !known && (w.state() == "started" || w.state() == "stopped") && !apply {
		res.Status = modules.StatusUnknown
		res.Msg = fmt.Sprintf("%s: cannot tell whether it runs (%s status exited %d)", w.unit(), name, rc)
		res.Data = serviceData(w.unit(), st, enabledNow, "sysv")
		res.Warnings = warnings
		return res, nil
	}
	// When the status is unknown, apply runs start or stop anyway: LSB scripts make both
	// idempotent.
	switch w.state() {
	case "started":
		if !running || !known {
			steps = append(steps, m.runStep("started", "would start", control("start")))
		}
	case "stopped":
		if running || !known {
			steps = append(steps, m.runStep("stopped", "would stop", control("stop")))
		}
	case "restarted":
		steps = append(steps, m.runStep("restarted", "would restart", control("restart")))
	case "reloaded":
		if running {
			steps = append(steps, m.runStep("reloaded", "would reload", control("reload")))
		} else {
			steps = append(steps, m.runStep("started (it was not running)", "would start (it is not running)", control("start")))
		}
	}
	res.Warnings = warnings
	after := predictUnit(w, st, enabledNow)
	var done []string
	for _, s := range steps {
		done = append(done, modules.Tense(apply, s.Desc, s.Would))
	}
	final, enabledFinal := st, enabledNow
	if len(steps) > 0 {
		res.Status = modules.DiffStatus(apply)
		res.Diff = &modules.Diff{Before: describeUnit(st.Active, enabledNow, false, w), After: after,
			BeforeHeader: w.unit() + " (before)", AfterHeader: w.unit() + " (after)"}
	}
	if apply && len(steps) > 0 {
		if err := m.systemctl().Apply(ctx, steps); err != nil {
			return nil, err
		}
		enabledFinal = rcEnabled(m.rcLinks(name))
		if status, err := m.run.Run(ctx, host.Cmd{Argv: control("status")}); err == nil {
			final.Active, final.Sub = "inactive", "dead"
			if status.RC == 0 {
				final.Active, final.Sub = "active", "running"
			}
		}
		final.FileState = "disabled"
		if enabledFinal {
			final.FileState = "enabled"
		}
	}
	res.Data = serviceData(w.unit(), final, enabledFinal, "sysv")
	if len(done) == 0 {
		done = append(done, summary(st, enabledNow))
	}
	res.Msg = w.unit() + ": " + strings.Join(done, ", ")
	return res, nil
}

// rcLevels are the SysV runlevels with link directories; a script is enabled when it has
// an S link in one of 2-5, the multi-user levels.
var rcLevels = []string{"0", "1", "2", "3", "4", "5", "6"}

// rcDir finds the link directory of a runlevel: /etc/rcN.d (Debian; a link to
// /etc/rc.d/rcN.d on EL) or /etc/rc.d/rcN.d.
func (m *machine) rcDir(level string) string {
	for _, d := range []string{"/etc/rc" + level + ".d", "/etc/rc.d/rc" + level + ".d"} {
		if fi, err := os.Stat(m.path(d)); err == nil && fi.IsDir() {
			return d
		}
	}
	return ""
}

// rcLink is one runlevel link of a script: S or K, with its two-digit order.
type rcLink struct {
	level, kind, order, file string // file: the link's host path
}

// rcLinkName matches "S20network" / "K90network"; the name part is compared separately.
var rcLinkName = regexp.MustCompile(`^([SK])([0-9]{2})(.+)$`)

// rcLinks lists the runlevel links of the script name.
func (m *machine) rcLinks(name string) []rcLink {
	var out []rcLink
	for _, lvl := range rcLevels {
		dir := m.rcDir(lvl)
		if dir == "" {
			continue
		}
		ents, err := os.ReadDir(m.path(dir))
		if err != nil {
			continue
		}
		for _, e := range ents {
			if sm := rcLinkName.FindStringSubmatch(e.Name()); sm != nil && sm[3] == name {
				out = append(out, rcLink{level: lvl, kind: sm[1], order: sm[2], file: filepath.Join(dir, e.Name())})
			}
		}
	}
	return out
}

func rcEnabled(links []rcLink) bool {
	for _, l := range links {
		if l.kind == "S" && l.level >= "2" && l.level <= "5" {
			return true
		}
	}
	return false
}

// setSysVEnabled enables or disables an init script at boot with the host's own tool
// (chkconfig on EL, update-rc.d on Debian) or, lacking both, by managing its rc links;
// then it checks the links say what was wanted.
func setSysVEnabled(ctx context.Context, m *machine, name string, enable bool) error {
	links := m.rcLinks(name)
	onOff := map[bool]string{true: "on", false: "off"}[enable]
	switch {
	case m.lookPath("chkconfig") != "":
		if len(links) == 0 {
			if _, err := m.runOK(ctx, "chkconfig", "--add", name); err != nil {
				return err
			}
		}
		if _, err := m.runOK(ctx, "chkconfig", name, onOff); err != nil {
			return err
		}
	case m.lookPath("update-rc.d") != "":
		if len(links) == 0 {
			if !enable {
				return nil
			}
			if _, err := m.runOK(ctx, "update-rc.d", name, "defaults"); err != nil {
				return err
			}
		}
		verb := map[bool]string{true: "enable", false: "disable"}[enable]
		if _, err := m.runOK(ctx, "update-rc.d", name, verb); err != nil {
			return err
		}
	default:
		if err := setRCLinks(m, name, enable, links); err != nil {
			return err
		}
	}
	if got := rcEnabled(m.rcLinks(name)); got != enable {
		return fmt.Errorf("%s is still %s at boot after turning it %s: its runlevel links in /etc/rc[2-5].d did not change (does /etc/init.d/%s have an LSB or chkconfig header?)",
			name, map[bool]string{true: "enabled", false: "disabled"}[got], onOff, name)
	}
	return nil
}

// initHeader is what an init script's header says about its runlevels and order.
type initHeader struct {
	start, stop           []string
	startOrder, stopOrder string
}

// parseInitHeader reads the LSB block (Default-Start, Default-Stop) and the chkconfig line
// ("# chkconfig: 2345 10 90"). Without either, a script starts in 2-5 and stops in 0, 1
// and 6, at order 50.
func parseInitHeader(b []byte) initHeader {
	h := initHeader{startOrder: "50", stopOrder: "50"}
	var lsbStart, lsbStop []string
	var ckLevels []string
	lsbStartSet, lsbStopSet := false, false
	for _, l := range strings.Split(string(b), "\n") {
		l = strings.TrimSpace(l)
		if !strings.HasPrefix(l, "#") {
			continue
		}
		l = strings.TrimSpace(strings.TrimPrefix(l, "#"))
		if v, ok := strings.CutPrefix(l, "Default-Start:"); ok {
			lsbStart, lsbStartSet = levelsOf(v), true
		} else if v, ok := strings.CutPrefix(l, "Default-Stop:"); ok {
			lsbStop, lsbStopSet = levelsOf(v), true
		} else if v, ok := strings.CutPrefix(l, "chkconfig:"); ok {
			f := strings.Fields(v)
			if len(f) == 3 {
				if f[0] != "-" {
					for _, c := range f[0] {
						ckLevels = append(ckLevels, string(c))
					}
				}
				h.startOrder, h.stopOrder = twoDigits(f[1]), twoDigits(f[2])
			}
		}
	}
	switch {
	case lsbStartSet:
		h.start = lsbStart
	case ckLevels != nil:
		h.start = ckLevels
	default:
		h.start = []string{"2", "3", "4", "5"}
	}
	if lsbStopSet {
		h.stop = lsbStop
	} else {
		for _, l := range rcLevels {
			if !slices.Contains(h.start, l) {
				h.stop = append(h.stop, l)
			}
		}
	}
	return h
}

func levelsOf(s string) []string {
	var out []string
	for _, f := range strings.Fields(s) {
		if slices.Contains(rcLevels, f) {
			out = append(out, f)
		}
	}
	return out
}

func twoDigits(s string) string {
	switch {
	case len(s) == 1 && s[0] >= '0' && s[0] <= '9':
		return "0" + s
	case len(s) == 2 && s[0] >= '0' && s[0] <= '9' && s[1] >= '0' && s[1] <= '9':
		return s
	}
	return "50"
}

// setRCLinks enables a script with S links in its start levels (K links elsewhere), or
// disables it by turning its S links into K links, as update-rc.d and chkconfig do.
func setRCLinks(m *machine, name string, enable bool, links []rcLink) error {
	script, err := os.ReadFile(m.path("/etc/init.d/" + name))
	if err != nil {
		return fmt.Errorf("read /etc/init.d/%s: %w", name, err)
	}
	h := parseInitHeader(script)
	target := "../init.d/" + name
	byLevel := map[string][]rcLink{}
	for _, l := range links {
		byLevel[l.level] = append(byLevel[l.level], l)
	}
	put := func(level, kind, order string) error {
		dir := m.rcDir(level)
		if dir == "" {
			dir = "/etc/rc" + level + ".d"
			if err := os.MkdirAll(m.path(dir), 0o755); err != nil {
				return fmt.Errorf("create %s: %w", dir, err)
			}
		}
		for _, l := range byLevel[level] {
			if l.kind == kind {
				return nil
			}
			if err := os.Remove(m.path(l.file)); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return fmt.Errorf("remove %s: %w", l.file, err)
			}
		}
		link := filepath.Join(dir, kind+order+name)
		if err := os.Symlink(target, m.path(link)); err != nil {
			return fmt.Errorf("link %s: %w", link, err)
		}
		return nil
	}
	for _, lvl := range rcLevels {
		switch {
		case enable && slices.Contains(h.start, lvl):
			err = put(lvl, "S", h.startOrder)
		case enable && slices.Contains(h.stop, lvl):
			err = put(lvl, "K", h.stopOrder)
		case !enable && len(byLevel[lvl]) > 0:
			err = put(lvl, "K", h.stopOrder)
		}
		if err != nil {
			return err
		}
	}
	return nil
}
