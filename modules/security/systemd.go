package security

import (
	"context"
	"errors"
	"fmt"
	"strings"
)

// unitState is what systemd says about a unit.
type unitState struct {
	name string
	// load is LoadState: "loaded", "not-found", "masked", ...
	load string
	// active is ActiveState: "active", "inactive", "failed", "activating", ...
	active string
	// file is UnitFileState: "enabled", "disabled", "masked", "static", ... ("" when unknown).
	file string
}

// installed reports whether the unit exists (a masked unit counts: its mask is a file).
func (u unitState) installed() bool {
	return u.load != "not-found" || strings.HasPrefix(u.file, "masked")
}

// running reports whether the unit is up or on its way (stopping counts: it is not down yet).
func (u unitState) running() bool {
	switch u.active {
	case "inactive", "failed", "":
		return false
	}
	return true
}

// describe renders the unit's state for messages and diffs: "firewalld.service: active, enabled".
func (u unitState) describe() string {
	if !u.installed() {
		return u.name + ": not installed"
	}
	file := u.file
	if file == "" {
		file = "unknown"
	}
	return fmt.Sprintf("%s: %s, %s", u.name, u.active, file)
}

// Wanted unit states.
const (
	unitStopped  = "stopped"
	unitDisabled = "disabled"
	unitMasked   = "masked"
)

// unitSteps returns the systemctl commands (verb and arguments) that bring u to want, in
// order, and the state the unit will be in then. Enablement goes first so that nothing (a
// D-Bus activation, a dependency) starts the unit again between the stop and the disable.
func unitSteps(u unitState, want string) ([][]string, unitState) {
	after := u
	var steps [][]string
	if !u.installed() {
		return nil, after
	}
	switch want {
	case unitDisabled:
		switch u.file {
		case "masked", "masked-runtime":
			// A mask hides the enablement; lift it, then make sure it is not enabled.
			if u.file == "masked-runtime" {
				steps = append(steps, []string{"unmask", "--runtime", u.name})
			} else {
				steps = append(steps, []string{"unmask", u.name})
			}
			steps = append(steps, []string{"disable", u.name})
			after.file, after.load = "disabled", "loaded"
		case "enabled", "linked", "alias":
			steps = append(steps, []string{"disable", u.name})
			after.file = "disabled"
		case "enabled-runtime", "linked-runtime":
			steps = append(steps, []string{"disable", "--runtime", u.name})
			after.file = "disabled"
		}
	case unitMasked:
		if u.file != "masked" {
			steps = append(steps, []string{"mask", u.name})
			after.file, after.load = "masked", "masked"
		}
	}
	if u.running() {
		steps = append(steps, []string{"stop", u.name})
		after.active = "inactive"
	}
	return steps, after
}

// systemctl runs systemctl for the firewall's units.
type systemctl struct {
	path string
}

// show reads a unit's load, active and unit file state.
func (s systemctl) show(ctx context.Context, unit string) (unitState, error) {
	out, err := runTool(ctx, "", s.path, "show", "--property=LoadState,ActiveState,UnitFileState", "--", unit)
	if err != nil {
		return unitState{}, fmt.Errorf("read the state of %s: %w", unit, err)
	}
	return parseShow(unit, out)
}

// parseShow reads `systemctl show -p ...` output: one KEY=value per line.
func parseShow(unit, out string) (unitState, error) {
	u := unitState{name: unit}
	for line := range strings.SplitSeq(out, "\n") {
		k, v, ok := strings.Cut(strings.TrimSpace(line), "=")
		if !ok {
			continue
		}
		switch k {
		case "LoadState":
			u.load = v
		case "ActiveState":
			u.active = v
		case "UnitFileState":
			u.file = v
		}
	}
	if u.load == "" || u.active == "" {
		return u, fmt.Errorf("systemctl show %s: no LoadState or ActiveState in %q", unit, strings.TrimSpace(out))
	}
	return u, nil
}

// converge runs the steps that bring a unit to want and reads the result back; a unit that
// is not where it should be afterwards is an error, not a success.
func (s systemctl) converge(ctx context.Context, u unitState, want string) (unitState, error) {
	steps, _ := unitSteps(u, want)
	for _, st := range steps {
		if _, err := runTool(ctx, "", append([]string{s.path}, st...)...); err != nil {
			return u, err
		}
	}
	got, err := s.show(ctx, u.name)
	if err != nil {
		return got, err
	}
	if got.running() {
		return got, fmt.Errorf("%s is still %s after systemctl stop", u.name, got.active)
	}
	if rest, _ := unitSteps(got, want); len(rest) > 0 {
		return got, errors.New(got.describe() + ", not " + want + " as wanted")
	}
	return got, nil
}
