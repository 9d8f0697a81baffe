package testenv

import (
	"fmt"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// File descriptors a lab of n hosts needs.
//
// The forwarder (the CLI's daemon, or the test process for in-process
// forwarders) holds one listening socket per host and two sockets for every
// connection it relays (the accepted one and the one it dials from the hub).
// A controller that reaches every host at once (runbook --forks n) keeps one
// connection per host open, and `up` itself checks every host at once: so n
// connections, 3n sockets, plus the process's own files.
func ForwarderFDs(hosts int) int { return 3*hosts + 64 }

// ControllerFDs is what a controller reaching all hosts at once needs: a
// socket per host and its own files (runbook opens one SSH connection per host;
// its sessions and the helper's channel are multiplexed on it).
func ControllerFDs(hosts int) int { return hosts + 64 }

// NofileLimit is a process's RLIMIT_NOFILE.
type NofileLimit struct{ Soft, Hard uint64 }

func (l NofileLimit) String() string { return fmt.Sprintf("%d (hard %d)", l.Soft, l.Hard) }

// ensureNofile makes this process's RLIMIT_NOFILE at least need: the soft
// limit is raised to the hard one (Go programs do this at start anyway, but
// the lab says so and checks it), and if the hard limit is below need too, a
// process with CAP_SYS_RESOURCE raises it to need. It returns the limit before
// and after.
func ensureNofile(need int) (before, after NofileLimit, err error) {
	var rl unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &rl); err != nil {
		return before, after, fmt.Errorf("read RLIMIT_NOFILE: %w", err)
	}
	before = NofileLimit{rl.Cur, rl.Max}
	after = before
	if rl.Cur >= uint64(need) {
		return before, after, nil
	}
	want := unix.Rlimit{Cur: rl.Max, Max: rl.Max}
	if rl.Max < uint64(need) {
		want = unix.Rlimit{Cur: uint64(need), Max: uint64(need)}
	}
	if err := unix.Setrlimit(unix.RLIMIT_NOFILE, &want); err != nil {
		return before, after, fmt.Errorf("a lab of this size needs %d file descriptors and RLIMIT_NOFILE is %s; raising it failed (%v): raise it (ulimit -n %d) and try again", need, before, err, need)
	}
	after = NofileLimit{want.Cur, want.Max}
	return before, after, nil
}

// CurrentNofile is this process's RLIMIT_NOFILE now.
func CurrentNofile() (NofileLimit, error) {
	var rl unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &rl); err != nil {
		return NofileLimit{}, err
	}
	return NofileLimit{rl.Cur, rl.Max}, nil
}

// pidsPerHost is how many processes an ns-tier host holds while idle (the
// anchor and sshd) and while a controller runs a task on it (an sshd for the
// connection, its privilege-separated child, the shell or helper, a command).
const (
	pidsIdlePerHost = 2
	pidsBusyPerHost = 6
)

// checkPids refuses a lab whose idle processes would not fit under
// kernel.pid_max (with the threads already running), and warns when a run
// across all of its hosts at once might not.
func checkPids(hosts int, logf func(string, ...any)) error {
	max, used, err := pidUse()
	if err != nil {
		logf("cannot read the process table's size (%v): not checked", err)
		return nil
	}
	free := max - used
	if need := pidsIdlePerHost*hosts + 64; free < need {
		return fmt.Errorf("a lab of %d hosts needs about %d processes and only %d fit under kernel.pid_max (%d, %d in use)", hosts, need, free, max, used)
	}
	if need := pidsBusyPerHost*hosts + 64; free < need {
		logf("warning: a run on all %d hosts at once needs about %d processes; only %d fit under kernel.pid_max (%d)", hosts, need, free, max)
	}
	return nil
}

// pidUse reads kernel.pid_max and the number of threads (each takes a PID).
func pidUse() (max, used int, err error) {
	b, err := os.ReadFile("/proc/sys/kernel/pid_max")
	if err != nil {
		return 0, 0, err
	}
	if max, err = strconv.Atoi(strings.TrimSpace(string(b))); err != nil {
		return 0, 0, fmt.Errorf("kernel.pid_max: %w", err)
	}
	b, err = os.ReadFile("/proc/loadavg")
	if err != nil {
		return 0, 0, err
	}
	used, err = parseLoadavgThreads(string(b))
	return max, used, err
}

// parseLoadavgThreads reads the total of "running/total" in /proc/loadavg.
func parseLoadavgThreads(s string) (int, error) {
	f := strings.Fields(s)
	if len(f) < 4 {
		return 0, fmt.Errorf("/proc/loadavg: %q", s)
	}
	_, total, ok := strings.Cut(f[3], "/")
	n, err := strconv.Atoi(total)
	if !ok || err != nil || n < 0 {
		return 0, fmt.Errorf("/proc/loadavg: %q", s)
	}
	return n, nil
}
