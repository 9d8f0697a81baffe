package host

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"github.com/runbook/runbook/modules"
)

// Unit is what systemd says about a unit (systemctl show).
type Unit struct {
	// Name is the unit asked about.
	Name string
	// ID is systemd's Id (the name an alias resolves to).
	ID string
	// Load is LoadState: "loaded", "not-found", "masked", ...
	Load string
	// Active is ActiveState: "active", "inactive", "failed", "activating", ...
	Active string
	// Sub is SubState: "running", "dead", "exited", ...
	Sub string
	// FileState is UnitFileState: "enabled", "disabled", "masked", "static", ... ("" when
	// systemd reports none).
	FileState string
	// Fragment and Source are FragmentPath and SourcePath.
	Fragment, Source string
	// NeedReload is NeedDaemonReload (the file changed on disk); CanReload says it has
	// ExecReload=.
	NeedReload, CanReload bool
}

// showProps are the properties Show asks for.
var showProps = []string{"Id", "LoadState", "ActiveState", "SubState", "UnitFileState", "FragmentPath",
	"SourcePath", "NeedDaemonReload", "CanReload"}

// maxShowValue bounds one property's value: a path is at most PATH_MAX.
const maxShowValue = 4096

// ParseShow reads `systemctl show --property=...` output: one Key=Value per line, a value
// may hold "=". It is strict, since the output decides what runs next: LoadState and
// ActiveState must be there, a property must not come twice, the states must be words
// (lower case, digits and "-") and no value may be longer than a path can be.
func ParseShow(name, out string) (Unit, error) {
	u := Unit{Name: name}
	seen := map[string]bool{}
	bad := func(format string, a ...any) (Unit, error) {
		return u, fmt.Errorf("systemctl show %s: "+format, append([]any{name}, a...)...)
	}
	for line := range strings.SplitSeq(out, "\n") {
		line = strings.TrimRight(line, "\r")
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			continue
		}
		k = strings.TrimSpace(k)
		if len(v) > maxShowValue {
			return bad("%s is %d bytes long", k, len(v))
		}
		var dst *string
		switch k {
		case "Id":
			dst = &u.ID
		case "LoadState":
			dst = &u.Load
		case "ActiveState":
			dst = &u.Active
		case "SubState":
			dst = &u.Sub
		case "UnitFileState":
			dst = &u.FileState
		case "FragmentPath":
			dst = &u.Fragment
		case "SourcePath":
			dst = &u.Source
		case "NeedDaemonReload":
			u.NeedReload = v == "yes"
		case "CanReload":
			u.CanReload = v == "yes"
		default:
			continue
		}
		if seen[k] {
			return bad("%s appears twice", k)
		}
		seen[k] = true
		if dst != nil {
			*dst = v
		}
	}
	if u.Load == "" || u.Active == "" {
		return bad("no LoadState or ActiveState in %q", Tail(strings.TrimSpace(out), 200))
	}
	for k, v := range map[string]string{"LoadState": u.Load, "ActiveState": u.Active, "SubState": u.Sub, "UnitFileState": u.FileState} {
		if !isWord(v) {
			return bad("%s %q is not a state", k, v)
		}
	}
	return u, nil
}

func isWord(s string) bool {
	for _, c := range s {
		if (c < 'a' || c > 'z') && (c < '0' || c > '9') && c != '-' {
			return false
		}
	}
	return true
}

// Installed reports whether the unit exists (a masked unit counts: its mask is a file).
func (u Unit) Installed() bool {
	return u.Load != "not-found" || strings.HasPrefix(u.FileState, "masked")
}

// Masked reports whether the unit is masked, until reboot or for good.
func (u Unit) Masked() bool {
	return u.Load == "masked" || u.FileState == "masked" || u.FileState == "masked-runtime"
}

// Running reports whether the unit is up or coming up.
func (u Unit) Running() bool {
	return u.Active == "active" || u.Active == "reloading" || u.Active == "activating"
}

// Stopped reports whether the unit is down (failed counts); a unit on its way down
// (deactivating) is not stopped yet.
func (u Unit) Stopped() bool { return u.Active == "inactive" || u.Active == "failed" }

// Enabled reports whether systemctl enabled the unit (for good or until reboot).
func (u Unit) Enabled() bool { return u.FileState == "enabled" || u.FileState == "enabled-runtime" }

// SysVScript returns the init script behind a unit that systemd's SysV generator made, or "".
func (u Unit) SysVScript() string {
	if u.FileState != "generated" || u.Source == "" {
		return ""
	}
	if filepath.Base(filepath.Dir(u.Source)) != "init.d" {
		return ""
	}
	return u.Source
}

// Describe renders the state for messages and diffs: "firewalld.service: active, enabled".
func (u Unit) Describe() string {
	if !u.Installed() {
		return u.Name + ": not installed"
	}
	file := u.FileState
	if file == "" {
		file = "unknown"
	}
	return fmt.Sprintf("%s: %s, %s", u.Name, u.Active, file)
}

// Wanted run states (Want.State).
const (
	Started   = "started"
	Stopped   = "stopped"
	Restarted = "restarted"
	Reloaded  = "reloaded"
)

// Want is the state a unit is to be brought to; a nil field is left as it is.
type Want struct {
	// State is Started, Stopped, Restarted, Reloaded or "" (leave it).
	State string
	// Enabled and Masked are the wanted enablement and mask.
	Enabled, Masked *bool
	// Hold masks before stopping, so that nothing (a D-Bus activation, a dependency)
	// starts the unit again in between; without it the mask comes last.
	Hold bool
	// Enable, when set, makes the steps that enable or disable the unit instead of
	// systemctl (a unit generated from a SysV script, whose rc links decide).
	Enable func(enable bool) []Step
}

// Step is one change to a unit, in order.
type Step struct {
	// Desc and Would say what it does, done and predicted: "started", "would start".
	Desc, Would string
	// Verb, Flags and Unit make the systemctl command: systemctl Verb Flags... -- Unit
	// (no "--" without a unit).
	Verb  string
	Flags []string
	Unit  string
	// Do, when set, makes the change instead of systemctl.
	Do func(ctx context.Context) error
}

// Argv is the systemctl command of the step.
func (s Step) Argv() []string {
	argv := append([]string{"systemctl", s.Verb}, s.Flags...)
	if s.Unit != "" {
		argv = append(argv, "--", s.Unit)
	}
	return argv
}

func step(desc, would, verb, unit string, flags ...string) Step {
	return Step{Desc: desc, Would: would, Verb: verb, Unit: unit, Flags: flags}
}

// Plan is what PlanUnit decided.
type Plan struct {
	// Steps bring the unit where it is wanted, in order: unmask, enable or disable, then
	// start or stop, then mask (before the stop with Want.Hold).
	Steps []Step
	// Notes say why something wanted needs no step ("nothing to disable: it is static").
	Notes []string
	// After is the unit as the steps leave it (as far as it can be told beforehand).
	After Unit
}

// PlanUnit returns the steps that bring u to w, or an error when w cannot be had (a unit
// that does not exist cannot be started; a masked one cannot be enabled).
func PlanUnit(u Unit, w Want) (Plan, error) {
	var p Plan
	unit := u.Name
	state := w.State
	masking := w.Masked != nil && *w.Masked
	if u.Load == "not-found" && !u.Masked() {
		switch {
		case state == Started || state == Restarted || state == Reloaded:
			return p, fmt.Errorf("unit %s does not exist on this host", unit)
		case w.Enabled != nil && *w.Enabled:
			return p, fmt.Errorf("unit %s does not exist on this host, so it cannot be enabled", unit)
		}
		if masking {
			p.Steps = append(p.Steps, step("masked", "would mask", "mask", unit))
		} else {
			var what []string
			if state == Stopped {
				what = append(what, "stop")
			}
			if w.Enabled != nil {
				what = append(what, "disable")
			}
			if w.Masked != nil {
				what = append(what, "unmask")
			}
			msg := fmt.Sprintf("unit %s does not exist on this host", unit)
			if len(what) > 0 {
				msg += "; nothing to " + strings.Join(what, " or ")
			}
			p.Notes = append(p.Notes, msg)
		}
		p.After = predict(u, p.Steps)
		return p, nil
	}

	// Unmask first: nothing else works on a masked unit.
	if u.Masked() {
		switch {
		case w.Masked != nil && !*w.Masked:
			if u.FileState == "masked-runtime" {
				p.Steps = append(p.Steps, step("unmasked", "would unmask", "unmask", unit, "--runtime"))
			} else {
				p.Steps = append(p.Steps, step("unmasked", "would unmask", "unmask", unit))
			}
		case state == Started || state == Restarted || state == Reloaded:
			return p, fmt.Errorf("unit %s is masked, so it cannot be %s; set masked = false to unmask it", unit, state)
		case w.Enabled != nil && *w.Enabled:
			return p, fmt.Errorf("unit %s is masked, so it cannot be enabled; set masked = false to unmask it", unit)
		}
	}

	if w.Enabled != nil {
		if w.Enable != nil {
			p.Steps = append(p.Steps, w.Enable(*w.Enabled)...)
		} else {
			s, note, err := enableSteps(u, *w.Enabled, w.Masked != nil && !*w.Masked)
			if err != nil {
				return p, err
			}
			p.Steps = append(p.Steps, s...)
			if note != "" {
				p.Notes = append(p.Notes, note)
			}
		}
	}

	// A mask is for good: one that lasts only until reboot is made permanent. A unit that is
	// masked by any other sign (LoadState, where UnitFileState says nothing) is left alone,
	// or every run would mask it again.
	var mask []Step
	if masking && (!u.Masked() || u.FileState == "masked-runtime") {
		mask = append(mask, step("masked", "would mask", "mask", unit))
	}
	if w.Hold {
		p.Steps, mask = append(p.Steps, mask...), nil
	}

	switch state {
	case Started:
		if !u.Running() {
			p.Steps = append(p.Steps, step("started", "would start", "start", unit))
		}
	case Stopped:
		if !u.Stopped() {
			p.Steps = append(p.Steps, step("stopped", "would stop", "stop", unit))
		}
	case Restarted:
		p.Steps = append(p.Steps, step("restarted", "would restart", "restart", unit))
	case Reloaded:
		switch {
		case !u.Running():
			p.Steps = append(p.Steps, step("started (it was not running, so there was nothing to reload)", "would start (it is not running)", "start", unit))
		case !u.CanReload:
			return p, fmt.Errorf("unit %s cannot reload (it has no ExecReload=); use state = \"restarted\"", unit)
		default:
			p.Steps = append(p.Steps, step("reloaded", "would reload", "reload", unit))
		}
	}
	p.Steps = append(p.Steps, mask...)
	p.After = predict(u, p.Steps)
	return p, nil
}

// enableSteps returns what makes a unit enabled or disabled, or an error when its kind of
// unit cannot be. unmasking says the plan unmasks it first.
func enableSteps(u Unit, enable, unmasking bool) ([]Step, string, error) {
	unit := u.Name
	switch u.FileState {
	case "enabled":
		if !enable {
			return []Step{step("disabled", "would disable", "disable", unit)}, "", nil
		}
	case "enabled-runtime":
		// Enabled only until the next boot (links under /run).
		if enable {
			return []Step{step("enabled (it was enabled only until reboot)", "would enable (it is enabled only until reboot)", "enable", unit)}, "", nil
		}
		return []Step{step("disabled", "would disable", "disable", unit, "--runtime")}, "", nil
	case "disabled", "linked", "linked-runtime":
		if enable {
			return []Step{step("enabled", "would enable", "enable", unit)}, "", nil
		}
	case "masked", "masked-runtime":
		// Unmasking comes first, and what the mask hid is unknown until then: enable, or
		// disable in case the unit was enabled under its mask (a no-op otherwise).
		if enable {
			return []Step{step("enabled", "would enable", "enable", unit)}, "", nil
		}
		if unmasking {
			return []Step{step("disabled", "would disable", "disable", unit)}, "", nil
		}
	case "static", "indirect", "generated", "transient", "alias", "":
		why := map[string]string{
			"static":    "it is static: it has no [Install] section and starts when another unit needs it",
			"indirect":  "it is indirect: it has no [Install] rules of its own (only Also= or a template instance)",
			"generated": "it is generated by a systemd generator from " + orDash(u.Source) + "; enable it where it comes from",
			"transient": "it is transient: made at runtime, gone at reboot",
			"alias":     "it is an alias; enable the unit it names",
			"":          "systemd reports no unit file state for it",
		}[u.FileState]
		if enable {
			return nil, "", fmt.Errorf("unit %s cannot be enabled: %s", unit, why)
		}
		return nil, "nothing to disable: " + why, nil
	default:
		return nil, "", fmt.Errorf("unit %s has unit file state %q, which cannot be enabled or disabled", unit, u.FileState)
	}
	return nil, "", nil
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// predict applies the steps' effects to u.
func predict(u Unit, steps []Step) Unit {
	for _, s := range steps {
		switch s.Verb {
		case "unmask":
			u.Load, u.FileState = "loaded", ""
		case "disable":
			u.FileState = "disabled"
		case "enable":
			u.FileState = "enabled"
		case "mask":
			u.Load, u.FileState = "masked", "masked"
		case "stop":
			u.Active = "inactive"
		case "start", "restart":
			u.Active = "active"
		}
	}
	return u
}

// Systemctl reads and changes units through systemctl, run by R.
type Systemctl struct {
	R Runner
	// Red redacts command lines in errors; nil redacts nothing.
	Red *modules.Redactor
	// Timeout bounds each systemctl call besides ctx; 0 leaves only ctx.
	Timeout time.Duration
}

// Available reports whether there is a systemctl to run.
func (s Systemctl) Available() bool { return s.R.LookPath("systemctl") != "" }

// Show reads a unit's state.
func (s Systemctl) Show(ctx context.Context, unit string) (Unit, error) {
	out, err := Output(ctx, s.R, s.Red, Cmd{Argv: []string{"systemctl", "show", "--property=" + strings.Join(showProps, ","), "--", unit},
		Timeout: s.Timeout, Data: true})
	if err != nil {
		return Unit{Name: unit}, fmt.Errorf("read the state of %s: %w", unit, err)
	}
	u, err := ParseShow(unit, out)
	if err != nil {
		return u, fmt.Errorf("read the state of %s: %w", unit, err)
	}
	return u, nil
}

// Run runs systemctl with args and returns its stdout (bounded, redacted: for showing); a
// non-zero exit is a *modules.Failure (Output).
func (s Systemctl) Run(ctx context.Context, args ...string) (string, error) {
	return Output(ctx, s.R, s.Red, Cmd{Argv: append([]string{"systemctl"}, args...), Timeout: s.Timeout})
}

// Apply runs the steps in order and stops at the first that fails.
func (s Systemctl) Apply(ctx context.Context, steps []Step) error {
	for _, st := range steps {
		var err error
		if st.Do != nil {
			err = st.Do(ctx)
		} else {
			_, err = s.Run(ctx, st.Argv()[1:]...)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// Converge brings u to w: plans, runs the steps, reads the unit back and checks it is
// where it should be. A unit that is not is an error, not a success.
func (s Systemctl) Converge(ctx context.Context, u Unit, w Want) (Unit, error) {
	p, err := PlanUnit(u, w)
	if err != nil {
		return u, err
	}
	if err := s.Apply(ctx, p.Steps); err != nil {
		return u, err
	}
	got, err := s.Show(ctx, u.Name)
	if err != nil {
		return got, err
	}
	if w.State == Stopped && !got.Stopped() {
		return got, fmt.Errorf("%s is still %s after systemctl stop", u.Name, got.Active)
	}
	// Restarted and reloaded are acts, not states: only the states are checked again.
	again := w
	if again.State == Restarted || again.State == Reloaded {
		again.State = Started
	}
	if rest, err := PlanUnit(got, again); err != nil || len(rest.Steps) > 0 {
		var left []string
		for _, st := range rest.Steps {
			left = append(left, st.Verb)
		}
		if err != nil {
			left = append(left, err.Error())
		}
		return got, errors.New(got.Describe() + " afterwards, not as wanted (it would still take: " + strings.Join(left, ", ") + ")")
	}
	return got, nil
}
