package run

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/zclconf/go-cty/cty"

	"github.com/runbook/runbook/modules"
)

// Booter is an executor that knows its host's boot id (the helper's hello gives it): the
// engine's half of a module that reboots the host waits for another one.
type Booter interface {
	BootID() string
}

// rebootPoll is the pause between attempts to reach a rebooting host, and between runs of
// its test_command.
var rebootPoll = 2 * time.Second

// rebootAttempt bounds one attempt to reach the host: an address that takes the SYN and
// never answers must not use up the whole reboot_timeout in one try.
var rebootAttempt = 20 * time.Second

// rebootLeast is the least delay the reboot module puts between its answer and the reboot
// (modules/system's minRebootDelay): the host answers on its old boot until then.
var rebootLeast = 2 * time.Second

// reboots says module restarts the host (modules.Info.Reboots).
func reboots(module string) bool {
	info, ok := modules.InfoOf(module)
	return ok && info.Reboots
}

// bootIDOf is x's host's boot id, "" when x does not know it.
func bootIDOf(x Executor) string {
	if b, ok := x.(Booter); ok {
		return b.BootID()
	}
	return ""
}

// rebooted is the engine's half of an apply of a module that reboots the host (reboot):
// the apply asked the host to reboot (its answer may have been lost with the connection,
// which is expected); this waits, reaching the host over new connections, until its helper
// answers with a boot id other than before, then waits post_reboot_delay and runs
// test_command there until it succeeds, all within reboot_timeout from sent. The new
// connection then carries the host's later tasks. A host that does not come back in time is
// unreachable; one that comes back but whose test_command keeps failing is failed.
func (hr *hostRun) rebooted(ctx context.Context, id Identity, args cty.Value, sensitive []string, before string, res *modules.Result, sent time.Time) (*modules.Result, error) {
	timeout := argDuration(args, "reboot_timeout", 10*time.Minute)
	pre := max(argDuration(args, "pre_reboot_delay", 0), rebootLeast)
	post := argDuration(args, "post_reboot_delay", 0)
	test := Call{Module: "shell", Args: cty.ObjectVal(map[string]cty.Value{"cmd": cty.StringVal(argString(args, "test_command", "true"))})}
	if slices.Contains(sensitive, "test_command") {
		test.Sensitive = []string{"cmd"} // a secret in it stays one in what the shell says
	}
	deadline := sent.Add(timeout)
	if res == nil {
		res = &modules.Result{}
	}
	// The module said it asked for the reboot; what this finds says how it ended.
	res.Msg = ""
	ctx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()
	// The host keeps answering on its old boot until the delay has passed.
	if err := sleepCtx(ctx, time.Until(sent.Add(pre))); err != nil {
		return res, hr.rebootLost(ctx, timeout, err)
	}
	var last error
	for {
		conn, x, err := hr.reachAgain(ctx, id)
		if err == nil {
			if now := bootIDOf(x); now == before {
				_ = conn.Close()
				err = errors.New("the host still runs the boot it had before the reboot")
			} else {
				hr.swapConnection(conn)
				return hr.backAgain(ctx, x, res, before, now, post, test, sent, timeout)
			}
		}
		last = err
		if ctx.Err() != nil {
			return res, hr.rebootLost(ctx, timeout, last)
		}
		if err := sleepCtx(ctx, rebootPoll); err != nil {
			return res, hr.rebootLost(ctx, timeout, last)
		}
	}
}

// reachAgain connects anew and starts the helper as id, within one bounded attempt.
func (hr *hostRun) reachAgain(ctx context.Context, id Identity) (Connection, Executor, error) {
	actx, cancel := context.WithTimeout(ctx, rebootAttempt)
	defer cancel()
	conn, err := hr.e.Connector.Connect(actx, Endpoint{Host: hr.h, Become: hr.become})
	if err != nil {
		return nil, nil, err
	}
	x, err := conn.Executor(actx, id)
	if err != nil {
		_ = conn.Close()
		return nil, nil, err
	}
	return conn, x, nil
}

// backAgain finishes a reboot once the host answered with boot id now: post_reboot_delay,
// then test_command until it succeeds.
func (hr *hostRun) backAgain(ctx context.Context, x Executor, res *modules.Result, before, now string, post time.Duration, test Call, sent time.Time, timeout time.Duration) (*modules.Result, error) {
	back := time.Since(sent)
	if err := sleepCtx(ctx, post); err != nil {
		return res, fmt.Errorf("the host came back after %s, then %s passed during post_reboot_delay: %w", back.Round(100*time.Millisecond), timeout, err)
	}
	var last error
	for {
		_, err := x.Run(ctx, test, true)
		if err == nil {
			break
		}
		last = err
		if errors.Is(err, ErrUnreachable) || sleepCtx(ctx, rebootPoll) != nil {
			res.Data = withRebootData(res.Data, before, now, time.Since(sent))
			return res, fmt.Errorf("the host came back (another boot id) after %s, but its test_command did not succeed within %s of the reboot: %w",
				back.Round(100*time.Millisecond), timeout, last)
		}
	}
	elapsed := time.Since(sent)
	res.Status = modules.StatusChanged
	res.Msg = fmt.Sprintf("changed: rebooted, back after %s", elapsed.Round(100*time.Millisecond))
	res.Data = withRebootData(res.Data, before, now, elapsed)
	return res, nil
}

// rebootLost is the error of a host that did not come back in time, or of a wait that was
// interrupted.
func (hr *hostRun) rebootLost(ctx context.Context, timeout time.Duration, last error) error {
	why := ""
	if last != nil {
		why = fmt.Sprintf(" (last attempt: %v)", last)
	}
	if errors.Is(context.Cause(ctx), context.Canceled) {
		return fmt.Errorf("%w: interrupted while waiting for the host to come back from its reboot%s", ErrUnreachable, why)
	}
	return fmt.Errorf("%w: the host did not come back within %s of its reboot%s", ErrUnreachable, timeout, why)
}

// withRebootData is the reboot module's data with what the engine learned: rebooted,
// elapsed and boot_id.
func withRebootData(data any, before, now string, elapsed time.Duration) any {
	m := map[string]cty.Value{}
	if v, ok := data.(cty.Value); ok && v != cty.NilVal && !v.IsNull() && v.Type().IsObjectType() {
		m = v.AsValueMap()
	}
	m["rebooted"] = cty.True
	m["elapsed"] = cty.NumberFloatVal(float64(elapsed.Milliseconds()) / 1000)
	m["boot_id"] = cty.StringVal(now)
	if v, ok := m["boot_id_before"]; !ok || v.IsNull() || v.AsString() == "" {
		m["boot_id_before"] = cty.StringVal(before)
	}
	if _, ok := m["how"]; !ok {
		m["how"] = cty.StringVal("")
	}
	return cty.ObjectVal(m)
}

// argDuration reads a duration argument of args (a whole number is seconds); def when it is
// missing or unreadable (the module validated it before it ran).
func argDuration(args cty.Value, name string, def time.Duration) time.Duration {
	s := argString(args, name, "")
	if s == "" {
		return def
	}
	if n, err := strconv.Atoi(s); err == nil {
		return time.Duration(n) * time.Second
	}
	if d, err := time.ParseDuration(s); err == nil {
		return d
	}
	return def
}

// argString reads a string argument of args; def when it is missing or null.
func argString(args cty.Value, name, def string) string {
	if args == cty.NilVal || args.IsNull() || !args.Type().IsObjectType() || !args.Type().HasAttribute(name) {
		return def
	}
	v := args.GetAttr(name)
	if v.IsNull() || !v.IsKnown() || v.Type() != cty.String {
		return def
	}
	return v.AsString()
}

// sleepCtx waits d, or until ctx ends (its error then).
func sleepCtx(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
