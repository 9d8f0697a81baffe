package modules

// Status is the outcome of one task on one host: the one vocabulary that modules, the
// helper's protocol, the engine, its views, the history and the CLI share. Its values are
// the strings on the wire, in the history and in JSON output.
//
// A module reports one of the first four (FromModule); a module's failure is not a status
// it reports but the error its Run returns, which the engine and the protocol turn into
// StatusFailed. StatusSkipped and StatusUnreachable are the engine's own.
type Status string

// Statuses, in the order a recap lists them.
const (
	// StatusOK means the host already is as wanted (or the module only reads).
	StatusOK Status = "ok"
	// StatusChanged means apply changed the host.
	StatusChanged Status = "changed"
	// StatusDrift means check found a difference that apply would fix.
	StatusDrift Status = "drift"
	// StatusUnknown means check cannot predict what apply would do.
	StatusUnknown Status = "unknown"
	// StatusSkipped means the task did not run on the host (its when was false, a task it
	// depends on did not succeed).
	StatusSkipped Status = "skipped"
	// StatusFailed means the task failed on the host.
	StatusFailed Status = "failed"
	// StatusUnreachable means the host could not be reached, or dropped off, or a helper
	// could not start on it.
	StatusUnreachable Status = "unreachable"
)

// Statuses returns every status, in the order a recap lists them.
func Statuses() []Status {
	return []Status{StatusOK, StatusChanged, StatusDrift, StatusUnknown, StatusSkipped, StatusFailed, StatusUnreachable}
}

// Valid reports whether s is one of the statuses.
func (s Status) Valid() bool {
	switch s {
	case StatusOK, StatusChanged, StatusDrift, StatusUnknown, StatusSkipped, StatusFailed, StatusUnreachable:
		return true
	}
	return false
}

// FromModule reports whether a module may report s: ok, changed, drift or unknown.
func (s Status) FromModule() bool {
	switch s {
	case StatusOK, StatusChanged, StatusDrift, StatusUnknown:
		return true
	}
	return false
}
