package generic

import (
	"fmt"
	"math"
	"net/netip"
	"regexp"
	"strings"
	"time"

	"github.com/zclconf/go-cty/cty"

	"github.com/runbook/runbook/modules"
)

func init() { modules.Register[waitForArgs, waitForResult](WaitFor{}) }

// Limits of wait_for's arguments, in seconds.
const (
	// maxWaitTimeout bounds timeout: a request the controller sends without a deadline of
	// its own (no task timeout, no host timeout) is cut by the helper after an hour
	// (protocol.DefaultTimeout); wait_for ends well before that, saying why, rather than
	// being cut without a word (TestWaitForTimeoutFitsTheProtocol holds the two apart).
	maxWaitTimeout = 3000
	// minWaitSleep keeps the checks from spinning.
	minWaitSleep = 0.05
	// maxConnectTimeout bounds one connection attempt.
	maxConnectTimeout = 300
)

// maxSearch is how much of a file search_regex reads, from its start: 8 MiB, so that a
// log of any size costs bounded memory and time at each check.
const maxSearch = 8 << 20

// maxShownMatch bounds the match (and each group) that a task registers.
const maxShownMatch = 4096

// Wait states. started/present and stopped/absent are one state each, as in Ansible:
// the first word reads naturally for a port, the second for a path.
const (
	waitStarted = "started"
	waitPresent = "present"
	waitStopped = "stopped"
	waitAbsent  = "absent"
	waitDrained = "drained"
)

// WaitFor waits on the host for a TCP port, a path, or a regular expression in a file.
type WaitFor struct {
	// procNet is where /proc/net/tcp and tcp6 are read for state = "drained"; "" is
	// /proc/net. For tests.
	procNet string
}

// waitForArgs are wait_for's arguments. Seconds are numbers that may be fractions.
type waitForArgs struct {
	Host           string   `cty:"host"`
	Port           *float64 `cty:"port"`
	Path           *string  `cty:"path"`
	SearchRegex    *string  `cty:"search_regex"`
	State          string   `cty:"state"`
	Timeout        float64  `cty:"timeout"`
	ConnectTimeout float64  `cty:"connect_timeout"`
	Delay          float64  `cty:"delay"`
	Sleep          float64  `cty:"sleep"`
	Msg            *string  `cty:"msg"`
}

// waitForResult is what a wait_for task registers.
type waitForResult struct {
	Elapsed     float64  `cty:"elapsed"`
	Match       *string  `cty:"match"`
	MatchGroups []string `cty:"match_groups"`
}

var _ modules.Validator[waitForArgs] = WaitFor{}

func (WaitFor) Info() modules.Info {
	return modules.Info{
		Name:    "wait_for",
		Family:  "generic",
		Summary: "Wait on the host until a TCP port opens or closes, a path appears or goes, or a file matches a regexp.",
		Description: `Checks one condition on the host every sleep seconds, after waiting delay seconds first, until
it holds, and fails when timeout seconds (counted from the start, delay included) pass first. The
conditions:

- port: a TCP connection to host:port succeeds (state "started", the default) or fails ("stopped":
  refused, unreachable or no answer within connect_timeout; a host name that does not resolve is
  not taken as stopped). With state = "drained", no connection to this host's local port is
  established any more (read from /proc/net/tcp and tcp6 of the helper's network namespace):
  those whose local address is host, or every local address when host is "0.0.0.0" or "::".
- path: the path exists ("present"; "started" is the same) or does not ("absent"; "stopped" is
  the same). A link at path is followed when trusted, as copy describes (runbook modules copy); an
  untrusted one fails the task at once. A link to nothing counts as absent.
- path with search_regex: the file exists and the regular expression (Go's RE2 syntax, with ^
  and $ matching at line ends, as Ansible's multiline search does) matches its first 8 MiB; the
  rest of a larger file is not read. The match and its groups are registered (what is secret in
  them redacted, at most 4 KiB each).

wait_for only reads, so it runs the same in check mode (as Ansible's does): ok when the condition
holds in time, failed when not. Its status is ok, never changed. In check mode, what an earlier
task would have started has not been started, so a wait for it runs until its timeout: keep such
a task out of check runs (tags) if that wait is not wanted.

The task's timeout meta-argument (or what is left of --host-timeout), when shorter than timeout,
ends the wait first: wait_for stops a moment before it and fails saying so, with its own timeout.
Without either, a request to the helper is cut after an hour, so timeout is at most 3000 seconds
(50 minutes).`,
		Schema: modules.Schema{
			Args: []modules.Arg{
				{Name: "port", Type: cty.Number, Doc: "A TCP port (1–65535) on host."},
				{Name: "host", Type: cty.String, Default: cty.StringVal("127.0.0.1"),
					Doc: `The address or name to connect to for port, as the host sees it. For state = "drained", an address of this host, or "0.0.0.0" / "::" for all.`},
				{Name: "path", Type: cty.String, Doc: "An absolute path on the host."},
				{Name: "search_regex", Type: cty.String, Doc: "With path: a regular expression (Go RE2, multiline) the file's first 8 MiB must match."},
				{Name: "state", Type: cty.String, Default: cty.StringVal(waitStarted), OneOf: []string{waitStarted, waitStopped, waitPresent, waitAbsent, waitDrained},
					Doc: `For port: "started" (open), "stopped" (closed) or "drained" (no established connections). For path: "present" or "absent" ("started" and "stopped" mean the same).`},
				{Name: "timeout", Type: cty.Number, Default: cty.NumberIntVal(300), Doc: "Seconds to wait in all, delay included; at most 3000."},
				{Name: "connect_timeout", Type: cty.Number, Default: cty.NumberIntVal(5), Doc: "Seconds one connection attempt to port may take."},
				{Name: "delay", Type: cty.Number, Default: cty.Zero, Doc: "Seconds to wait before the first check."},
				{Name: "sleep", Type: cty.Number, Default: cty.NumberIntVal(1), Doc: "Seconds between checks (at least 0.05)."},
				{Name: "msg", Type: cty.String, Doc: "The failure message when the time runs out; what was last seen is added to it."},
			},
			ExactlyOneOf: [][]string{{"port", "path"}},
			RequiredWith: map[string][]string{"search_regex": {"path"}},
		},
		Returns: []modules.Field{
			{Name: "elapsed", Type: cty.Number, Doc: "Seconds from the start (delay included) until the condition held."},
			{Name: "match", Type: cty.String, Doc: "With search_regex: the text it matched; null otherwise."},
			{Name: "match_groups", Type: cty.List(cty.String), Doc: `With search_regex: the text of each group of the regexp ("" for a group that took no part).`},
		},
		Examples: []modules.Example{
			{Title: "Wait for a service to listen on its port after starting it", HCL: `task "api listening" {
  wait_for {
    port    = 8443
    timeout = 120
  }
}`},
			{Title: "Wait for an application to log that it started, and register the port it names", HCL: `task "app started" {
  wait_for {
    path         = "/var/log/app/server.log"
    search_regex = "listening on port ([0-9]+)"
    timeout      = 600
    msg          = "the application did not start"
  }
}`},
			{Title: "Wait until boot has finished (systemd removes /run/nologin)", HCL: `task "logins allowed" {
  wait_for {
    path  = "/run/nologin"
    state = "absent"
  }
}`},
			{Title: "Wait for a load balancer to drain the host's HTTPS connections", HCL: `task "drained" {
  wait_for {
    port    = 443
    host    = "0.0.0.0"
    state   = "drained"
    delay   = 10
    timeout = 900
  }
}`},
		},
	}
}

// Validate checks the numbers, the states each condition takes, the regexp and the path.
func (WaitFor) Validate(a waitForArgs) []modules.ArgError {
	var errs []modules.ArgError
	add := func(arg, format string, args ...any) {
		errs = append(errs, modules.ArgError{Arg: arg, Msg: fmt.Sprintf(format, args...)})
	}
	if a.Port != nil {
		if p := *a.Port; p != math.Trunc(p) || p < 1 || p > 65535 {
			add("port", "port must be a whole number from 1 to 65535, not %v.", p)
		}
		if a.State == waitPresent || a.State == waitAbsent {
			add("state", `state = %q is for a path; for a port use "started", "stopped" or "drained".`, a.State)
		}
	}
	if a.Path != nil {
		errs = append(errs, absolute("path", *a.Path)...)
		if a.State == waitDrained {
			add("state", `state = "drained" is for a port; for a path use "present" or "absent".`)
		}
	}
	host := strings.TrimSpace(a.Host)
	switch {
	case host == "" || host != a.Host || strings.ContainsAny(host, " \t\r\n/"):
		add("host", "host must be an address or a host name, not %q.", a.Host)
	case a.State == waitDrained:
		if _, err := netip.ParseAddr(host); err != nil {
			add("host", `with state = "drained", host must be an address of this host, or "0.0.0.0" for all, not %q.`, a.Host)
		}
	}
	if a.SearchRegex != nil {
		if _, err := regexp.Compile(*a.SearchRegex); err != nil {
			add("search_regex", "Not a valid regular expression: %v", err)
		}
		if a.State == waitAbsent || a.State == waitStopped {
			add("search_regex", `search_regex waits for a match (state "present"); to wait for a file to go, leave it out.`)
		}
	}
	switch {
	case !(a.Timeout > 0) || a.Timeout > maxWaitTimeout:
		add("timeout", "timeout must be more than 0 and at most %d seconds (50 minutes), not %v.", maxWaitTimeout, a.Timeout)
	case !(a.Delay >= 0) || a.Delay >= a.Timeout:
		add("delay", "delay must be at least 0 and less than timeout (%v), not %v.", a.Timeout, a.Delay)
	}
	if !(a.Sleep >= minWaitSleep) || a.Sleep > maxWaitTimeout {
		add("sleep", "sleep must be at least %v and at most %d seconds, not %v.", minWaitSleep, maxWaitTimeout, a.Sleep)
	}
	if !(a.ConnectTimeout >= minWaitSleep) || a.ConnectTimeout > maxConnectTimeout {
		add("connect_timeout", "connect_timeout must be at least %v and at most %d seconds, not %v.", minWaitSleep, maxConnectTimeout, a.ConnectTimeout)
	}
	return errs
}

// seconds turns a number of seconds into a Duration.
func seconds(s float64) time.Duration { return time.Duration(s * float64(time.Second)) }
