package system

import (
	"context"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/zclconf/go-cty/cty"

	"github.com/runbook/runbook/modules"
	"github.com/runbook/runbook/modules/host"
)

var (
	_ modules.Runner[rebootArgs]    = Reboot{}
	_ modules.Validator[rebootArgs] = Reboot{}
)

// Reboot restarts the host. The host half asks the host's init to reboot after a short
// delay, so that its answer leaves first; the engine's half (engine/run/reboot.go) waits for
// the host to come back with another boot id and runs test_command there.
type Reboot struct {
	// test is the machine a unit test runs it on; nil: the helper's host.
	test *machine
}

// rebootArgs are the reboot module's arguments.
type rebootArgs struct {
	RebootTimeout   string `cty:"reboot_timeout"`
	PreRebootDelay  string `cty:"pre_reboot_delay"`
	PostRebootDelay string `cty:"post_reboot_delay"`
	Msg             string `cty:"msg"`
	TestCommand     string `cty:"test_command"`
}

// rebootResult is what the reboot module returns. The host half fills boot_id_before and
// how; the engine's half the rest, once the host is back.
type rebootResult struct {
	Rebooted     bool    `cty:"rebooted"`
	Elapsed      float64 `cty:"elapsed"`
	BootIDBefore string  `cty:"boot_id_before"`
	BootID       string  `cty:"boot_id"`
	How          string  `cty:"how"`
}

// rebootDuration is what the duration arguments may say: a whole number of seconds or a Go
// duration of s, m and h units.
var rebootDuration = regexp.MustCompile(`^([0-9]+|([0-9]+(\.[0-9]+)?(h|m|s))+)$`)

// minRebootDelay is the least time between the module's answer and the reboot: the answer
// must leave the host before its network goes.
const minRebootDelay = 2 * time.Second

// maxRebootMsg bounds msg: it goes to the host's logs and its users' terminals.
const maxRebootMsg = 200

func (Reboot) Info() modules.Info {
	return modules.Info{
		Name:    "reboot",
		Family:  "system",
		Reboots: true,
		Summary: "Reboot the host, wait until it is back, and go on with the next task.",
		Description: `Asks the host's init to reboot (systemd: a transient timer that runs "systemctl reboot" with msg
as the reason; elsewhere "shutdown -r" or busybox's "reboot", from a process of its own session), at
least 2 seconds later so that the module's answer leaves first, or pre_reboot_delay later. The
connection's end is then expected: the controller reaches the host again over a new connection
until the helper answers with another boot id (/proc/sys/kernel/random/boot_id), waits
post_reboot_delay, and runs test_command there until it succeeds. The task is changed when all
of that happened within reboot_timeout (counted from the reboot's request), and the host's later
tasks run over the new connection; a host that does not come back in time is unreachable.

Check mode reports drift ("would reboot") and changes nothing. A reboot is always a change: guard
the task with a when, typically on a task that says a reboot is needed
(when = task["selinux"].reboot_required).

Facts gathered before the reboot are not gathered again. A network transaction that is still
pending rolls back at the boot, as it would after a power cut (docs/network-safety.md): a reboot
right after a network change is safe to write only after its confirmation, which the engine waits
for before the next task anyway.`,
		Schema: modules.Schema{
			Args: []modules.Arg{
				{Name: "reboot_timeout", Type: cty.String, Default: cty.StringVal("10m"), Pattern: rebootDuration,
					PatternHelp: `a duration such as "600", "10m" or "1h30m"`,
					Doc:         "How long the host may take to come back and pass test_command, counted from the reboot's request; at least 10s, at most 24h."},
				{Name: "pre_reboot_delay", Type: cty.String, Default: cty.StringVal("0s"), Pattern: rebootDuration,
					PatternHelp: `a duration such as "0", "30s" or "5m"`,
					Doc:         "How long the host waits before it reboots (at least 2s whatever this says); at most 1h."},
				{Name: "post_reboot_delay", Type: cty.String, Default: cty.StringVal("0s"), Pattern: rebootDuration,
					PatternHelp: `a duration such as "0", "30s"`,
					Doc:         "How long to wait after the host is back, before test_command; at most 1h."},
				{Name: "msg", Type: cty.String, Default: cty.StringVal("Reboot initiated by runbook"),
					Doc: "The reason given to the host's init, logged there; at most 200 characters, one line."},
				{Name: "test_command", Type: cty.String, Default: cty.StringVal("true"),
					Doc: "A shell command that must succeed on the host after the boot before the task is done; it is run again every 2s until it does or reboot_timeout passes."},
			},
		},
		Returns: []modules.Field{
			{Name: "rebooted", Type: cty.Bool, Doc: "The host came back with another boot id."},
			{Name: "elapsed", Type: cty.Number, Doc: "Seconds from the reboot's request until test_command succeeded."},
			{Name: "boot_id_before", Type: cty.String, Doc: "The boot id before the reboot."},
			{Name: "boot_id", Type: cty.String, Doc: "The boot id after it."},
			{Name: "how", Type: cty.String, Doc: `How the reboot was asked for: "systemd" or "shutdown" or "busybox".`},
		},
		Examples: []modules.Example{
			{Title: "Reboot when SELinux's mode needs it", HCL: `task "selinux" {
  selinux {
    state  = "enforcing"
    policy = "targeted"
  }
}

task "reboot for SELinux" {
  when = task["selinux"].reboot_required
  reboot {
    reboot_timeout = "15m"
    msg            = "SELinux mode changed"
    test_command   = "systemctl is-system-running --wait | grep -qx running"
  }
}`},
		},
	}
}

// parseRebootDuration reads a duration argument: a whole number is seconds.
func parseRebootDuration(s string) (time.Duration, error) {
	if n, err := strconv.Atoi(s); err == nil {
		return time.Duration(n) * time.Second, nil
	}
	return time.ParseDuration(s)
}

// Validate checks the durations' bounds and msg.
func (Reboot) Validate(a rebootArgs) []modules.ArgError {
	var errs []modules.ArgError
	bound := func(arg, v string, least, most time.Duration) {
		d, err := parseRebootDuration(v)
		switch {
		case err != nil:
			errs = append(errs, modules.ArgError{Arg: arg, Msg: fmt.Sprintf("%q is not a duration: %v", v, err)})
		case d < least:
			errs = append(errs, modules.ArgError{Arg: arg, Msg: fmt.Sprintf("%s is less than %s", d, least)})
		case d > most:
			errs = append(errs, modules.ArgError{Arg: arg, Msg: fmt.Sprintf("%s is more than %s", d, most)})
		}
	}
	bound("reboot_timeout", a.RebootTimeout, 10*time.Second, 24*time.Hour)
	bound("pre_reboot_delay", a.PreRebootDelay, 0, time.Hour)
	bound("post_reboot_delay", a.PostRebootDelay, 0, time.Hour)
	if len(a.Msg) > maxRebootMsg {
		errs = append(errs, modules.ArgError{Arg: "msg", Msg: fmt.Sprintf("msg is %d characters long, more than %d", len(a.Msg), maxRebootMsg)})
	}
	if strings.ContainsFunc(a.Msg, func(r rune) bool { return r < ' ' || r == 0x7f }) {
		errs = append(errs, modules.ArgError{Arg: "msg", Msg: "msg must be one line of printable characters"})
	}
	if strings.TrimSpace(a.TestCommand) == "" {
		errs = append(errs, modules.ArgError{Arg: "test_command", Msg: `test_command is empty; "true" checks nothing more than that the host answers`})
	}
	return errs
}

// Run asks for the reboot (apply) or says it would (check).
func (r Reboot) Run(ctx context.Context, env *modules.Env, a rebootArgs, apply bool) (*modules.Result, error) {
	m := on(r.test, env)
	before := m.bootID
	if m.pid1 == nil {
		return nil, &modules.Failure{Msg: "cannot tell what PID 1 is"}
	}
	// PID 1 must be this host's init: a helper in network and mount namespaces of its own
	// that shares PID 1 with a whole machine (a lab host on the ns tier, a chroot) would
	// reboot that machine.
	if comm, ours := m.pid1(); !ours {
		return nil, &modules.Failure{Msg: fmt.Sprintf("refusing to reboot: PID 1 (%q) is not this host's init (the helper runs in network, mount or UTS namespaces PID 1 does not share, or cannot read PID 1's: a container or chroot sharing another machine's init; or not root)",
			comm)}
	}
	res := &modules.Result{Data: rebootResult{BootIDBefore: before}}
	if !apply {
		res.Status = modules.StatusDrift
		res.Msg = "would reboot (" + a.Msg + ")"
		return res, nil
	}
	delay, _ := parseRebootDuration(a.PreRebootDelay)
	delay = max(delay, minRebootDelay)
	how, argv := rebootCommand(m, delay, a.Msg)
	if argv == nil {
		return nil, &modules.Failure{Msg: "the host has no way to reboot that runbook knows: no systemd as PID 1, no shutdown, no reboot"}
	}
	out, err := m.run.Run(ctx, host.Cmd{Argv: argv, Timeout: 30 * time.Second})
	if err != nil {
		return nil, fmt.Errorf("ask for the reboot: %w", err)
	}
	if out.RC != 0 {
		return nil, &modules.Failure{Msg: fmt.Sprintf("ask for the reboot (%s): exit %d", how, out.RC), Stderr: host.Tail(out.Stderr+out.Stdout, 2000)}
	}
	res.Status = modules.StatusChanged
	res.Msg = fmt.Sprintf("changed: the host reboots in %s (%s)", delay, a.Msg)
	res.Data = rebootResult{BootIDBefore: before, How: how}
	return res, nil
}

// rebootCommand is how this host is asked to reboot after delay: one program that returns
// at once and leaves the reboot to a process that outlives the helper and its session.
func rebootCommand(m *machine, delay time.Duration, msg string) (how string, argv []string) {
	secs := strconv.Itoa(int((delay + time.Second - 1) / time.Second))
	if m.systemdPID1() && m.lookPath("systemd-run") != "" {
		// A transient timer: systemd keeps it whatever happens to the SSH session.
		return "systemd", []string{"systemd-run", "--quiet", "--unit=runbook-reboot-" + strconv.FormatInt(time.Now().UnixNano(), 36),
			"--description=runbook: reboot", "--on-active=" + secs + "s", "--timer-property=AccuracySec=1s",
			"--", "systemctl", "reboot", "--message=" + msg}
	}
	// Elsewhere a shell of its own session sleeps, then reboots; its standard streams are
	// /dev/null, so the helper's command returns at once. Only the number of seconds and
	// msg, as positional parameters, reach the script.
	script := `setsid sh -c 'sleep "$1"; if command -v shutdown >/dev/null 2>&1; then exec shutdown -r now "$2"; else exec reboot; fi' reboot "$1" "$2" </dev/null >/dev/null 2>&1 &`
	switch {
	case m.lookPath("shutdown") != "":
		how = "shutdown"
	case m.lookPath("reboot") != "":
		how = "busybox"
	default:
		return "", nil
	}
	if m.lookPath("setsid") == "" || m.lookPath("sh") == "" {
		return "", nil
	}
	return how, []string{"sh", "-c", script, "reboot", secs, msg}
}
