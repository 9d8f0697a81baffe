package system

import (
	"context"
	"errors"
	"fmt"
	"math"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/zclconf/go-cty/cty"

	"github.com/runbook/runbook/modules"
	"github.com/runbook/runbook/modules/host"
)

func init() { modules.Register[packageArgs, packageResult](Package{}) }

var (
	_ modules.Runner[packageArgs]    = Package{}
	_ modules.Validator[packageArgs] = Package{}
)

// Package installs, upgrades and removes packages with the host's package manager: apt
// (dpkg) on Debian and Ubuntu, dnf or yum (rpm) on Red Hat's family.
type Package struct {
	// test is the machine a unit test runs it on; nil: the helper's host.
	test *machine
	// sleep waits between lock attempts; nil: a timer (tests make it instant).
	sleep func(ctx context.Context, d time.Duration) error
	// now is the lock wait's clock; nil: time.Now.
	now func() time.Time
}

// packageArgs are the package module's arguments.
type packageArgs struct {
	// Name is a string or a list of strings (see pkgSpecs).
	Name              cty.Value `cty:"name"`
	State             string    `cty:"state"`
	Manager           string    `cty:"manager"`
	UpdateCache       bool      `cty:"update_cache"`
	CacheValidTime    *string   `cty:"cache_valid_time"`
	InstallRecommends bool      `cty:"install_recommends"`
	LockTimeout       string    `cty:"lock_timeout"`
}

// pkgChange is one package a run installs, upgrades or removes.
type pkgChange struct {
	Name    string `cty:"name"`
	Version string `cty:"version"`
	From    string `cty:"from"`
}

// packageResult is what the package module returns.
type packageResult struct {
	Manager      string            `cty:"manager"`
	Installed    []pkgChange       `cty:"installed"`
	Upgraded     []pkgChange       `cty:"upgraded"`
	Removed      []pkgChange       `cty:"removed"`
	Packages     map[string]string `cty:"packages"`
	CacheUpdated bool              `cty:"cache_updated"`
}

// pkgNamePattern is what one entry of name may be: a package name, an optional
// architecture after a colon (apt's multiarch, "libc6:i386"), an optional version after an
// equals sign. Nothing may start with a dash, hold a space, a glob or a shell character:
// an entry reaches the manager's argv after "--" and cannot become an option.
var pkgNamePattern = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_.+-]*(:[a-z0-9_-]+)?(=[A-Za-z0-9][A-Za-z0-9_.+~:^-]*)?$`)

// durationPattern is what cache_valid_time and lock_timeout may say.
var durationPattern = regexp.MustCompile(`^(0|([0-9]+(ms|s|m|h))+)$`)

// maxPackages bounds the names of one task: they all go on one command line.
const maxPackages = 1000

// maxLockTimeout bounds lock_timeout: a wait longer than this is a mistake.
const maxLockTimeout = time.Hour

var changeType = cty.List(cty.Object(map[string]cty.Type{"name": cty.String, "version": cty.String, "from": cty.String}))

func (Package) Info() modules.Info {
	return modules.Info{
		Name:    "package",
		Family:  "system",
		Summary: "Install, upgrade or remove packages with apt (Debian, Ubuntu) or dnf/yum (Red Hat's family).",
		Description: `Reads what is installed (dpkg-query, rpm -q), asks the package manager what it would do
(apt-get -s; dnf or yum with --assumeno) and reports exactly that as the diff: the packages that
would be installed, upgraded or removed, dependencies included, with their versions. Apply runs the
same command for real and reports the same lists, then reads the installed versions again: a
package that is still not as asked is an error. A host already as asked is ok, and nothing runs
but reads. A name the manager resolves to another package (a virtual package, a "provides")
is an error when the manager would do nothing for it: name the real package. With apt, so is a
name that apt-get would install under no package of that name: it reads "NAME-" as NAME to
remove and a name with "." or "+" that no package has as a regular expression over the lists;
the task fails, in check mode too, before anything changes.

state = "present" installs what is missing (a named version: what is not at that version, which may
downgrade); "latest" also upgrades what is installed to the newest version the repositories have;
"absent" removes what is installed (with a version: only when that version is installed). apt
installs without recommended packages and dnf without weak dependencies unless install_recommends
is true. apt runs with DEBIAN_FRONTEND=noninteractive and keeps changed configuration files
(--force-confdef, --force-confold).

Names are checked before any program runs: letters, digits and "_.+-", not starting with a dash,
an optional ":arch" (apt), an optional "=VERSION". The version syntax is apt's on every manager:
"jq=1.6-2.1" is given to dnf and yum as "jq-1.6-2.1". Every name follows "--" on the manager's
command line.

update_cache refreshes the package lists first (apt-get update; dnf/yum makecache) when they are
older than cache_valid_time (always when it is not set). apt's age is the newer of
/var/lib/apt/periodic/update-success-stamp and /var/lib/apt/lists; dnf and yum decide with
metadata_expire set to cache_valid_time. A refresh alone is not a change: the task reports changed
only when packages change (cache_updated says whether the lists were refreshed). Check mode never
refreshes the lists: it answers from the lists the host has, and says so when update_cache would
refresh them first; a package those lists lack is then "unknown" (apply may find it in the new
lists), where without update_cache it is an error. dnf and yum refresh metadata older than their
metadata_expire by themselves on any command, check mode's included: that changes no package.

Locks: another apt, dpkg, dnf or yum holding the manager's lock is waited on for lock_timeout,
by each command the module runs.
apt-get waits itself (-o DPkg::Lock::Timeout); dnf and yum are told to exit at once on a lock
(exit_on_lock) and the module tries again each second; when the lock is still held at the deadline
the task fails with the manager's own message. A failing command's output (bounded, secrets
redacted) is in the failure.

The manager is the host's: apt when it has dpkg-query and apt-get, else dnf, else yum; manager
forces one. The module needs root for changes (become); checking works without it, and a lock
that cannot be taken for want of permission fails at once, without waiting.

Ad hoc, name is an HCL value: runbook run ... package 'name="curl"' or 'name=["curl","jq"]'.`,
		Schema: modules.Schema{
			Args: []modules.Arg{
				{Name: "name", Type: cty.DynamicPseudoType, Required: true,
					Doc: `A package or a list of them, each "NAME", "NAME=VERSION" or (apt) "NAME:ARCH[=VERSION]": "curl", ["curl", "jq=1.6-2.1"]. The version is compared with the installed one as the manager writes it (dpkg's Version; rpm's VERSION-RELEASE, VERSION or EPOCH:VERSION-RELEASE).`},
				{Name: "state", Type: cty.String, Default: cty.StringVal("present"), OneOf: []string{"present", "latest", "absent"},
					Doc: `"present": installed (at the version when one is named); "latest": installed and upgraded to the newest available; "absent": not installed.`},
				{Name: "manager", Type: cty.String, Default: cty.StringVal("auto"), OneOf: []string{"auto", "apt", "dnf", "yum"},
					Doc: `The package manager; "auto" takes the host's (apt, else dnf, else yum).`},
				{Name: "update_cache", Type: cty.Bool, Default: cty.False,
					Doc: "Refresh the package lists before anything else when they are older than cache_valid_time. Not a change by itself; check mode does not refresh."},
				{Name: "cache_valid_time", Type: cty.String, Pattern: durationPattern, PatternHelp: `a duration such as "1h" or "30m"`,
					Doc: "How old the package lists may be before update_cache refreshes them; unset: always refresh."},
				{Name: "install_recommends", Type: cty.Bool, Default: cty.False,
					Doc: "Install apt's recommended packages (dnf: weak dependencies) too."},
				{Name: "lock_timeout", Type: cty.String, Default: cty.StringVal("2m"), Pattern: durationPattern, PatternHelp: `a duration such as "2m" or "30s"`,
					Doc: `How long each command waits for another package manager run to release its lock (at most 1h); "0" fails at once.`},
			},
		},
		Returns: []modules.Field{
			{Name: "manager", Type: cty.String, Doc: `"apt", "dnf" or "yum".`},
			{Name: "installed", Type: changeType, Doc: "The packages installed (check mode: that would be), dependencies included: name, version (from is empty)."},
			{Name: "upgraded", Type: changeType, Doc: "The packages whose version changed (an upgrade, or a downgrade to a named version): name, version, from."},
			{Name: "removed", Type: changeType, Doc: "The packages removed, dependents included: name, version (the one removed)."},
			{Name: "packages", Type: cty.Map(cty.String), Doc: `Each named package's installed version after the task ("" when not installed); in check mode, as the host has them now.`},
			{Name: "cache_updated", Type: cty.Bool, Doc: "Whether the package lists were refreshed."},
		},
		Examples: []modules.Example{
			{Title: "Tools an operator needs, jq at a known version", HCL: `task "tools" {
  package {
    name = ["curl", "tcpdump", "jq=1.6-2.1"]
  }
}`},
			{Title: "The newest openssh-server, with package lists at most an hour old", HCL: `task "sshd up to date" {
  package {
    name             = "openssh-server"
    state            = "latest"
    update_cache     = true
    cache_valid_time = "1h"
  }
}`},
			{Title: "No telnet client, waiting up to 5 minutes for an unattended upgrade to finish", HCL: `task "no telnet" {
  package {
    name         = "telnet"
    state        = "absent"
    lock_timeout = "5m"
  }
}`},
			{Title: "Force dnf on a host that has both", HCL: `task "ethtool" {
  package {
    name    = ["ethtool", "pciutils"]
    manager = "dnf"
  }
}`},
		},
	}
}

// pkgSpec is one entry of name: the package, its version when one is named.
type pkgSpec struct {
	Name, Version string
}

func (s pkgSpec) String() string {
	if s.Version == "" {
		return s.Name
	}
	return s.Name + "=" + s.Version
}

// pkgSpecs reads name: a string or a list of strings, each checked against pkgNamePattern.
func pkgSpecs(v cty.Value) ([]pkgSpec, error) {
	v, _ = v.UnmarkDeep()
	if v.IsNull() {
		return nil, errors.New(`name is required: a package ("curl") or a list (["curl", "jq"]).`)
	}
	if !v.IsKnown() {
		return nil, nil
	}
	var raw []cty.Value
	switch t := v.Type(); {
	case t == cty.String:
		raw = []cty.Value{v}
	case t.IsListType() || t.IsTupleType() || t.IsSetType():
		raw = v.AsValueSlice()
	default:
		return nil, fmt.Errorf("name must be a string or a list of strings, not %s", modules.TypeName(t))
	}
	if len(raw) == 0 {
		return nil, errors.New("name lists no package")
	}
	if len(raw) > maxPackages {
		return nil, fmt.Errorf("name lists %d packages, more than the %d one task may name", len(raw), maxPackages)
	}
	var out []pkgSpec
	seen := map[string]bool{}
	for i, e := range raw {
		if !e.IsKnown() {
			return nil, nil
		}
		if e.IsNull() || e.Type() != cty.String {
			return nil, fmt.Errorf("name[%d] must be a string", i)
		}
		s := e.AsString()
		if len(s) > 256 || !pkgNamePattern.MatchString(s) {
			return nil, fmt.Errorf(`%q is not a package name: expected NAME, NAME=VERSION or NAME:ARCH (letters, digits and "_.+-", not starting with a dash)`, s)
		}
		name, ver, _ := strings.Cut(s, "=")
		if seen[name] {
			return nil, fmt.Errorf("%s is named twice", name)
		}
		seen[name] = true
		out = append(out, pkgSpec{Name: name, Version: ver})
	}
	return out, nil
}

// parseDuration reads a duration the pattern accepted.
func parseDuration(s string) (time.Duration, error) {
	if s == "0" {
		return 0, nil
	}
	return time.ParseDuration(s)
}

// Validate checks the names and the rules between arguments.
func (Package) Validate(a packageArgs) []modules.ArgError {
	var errs []modules.ArgError
	specs, err := pkgSpecs(a.Name)
	if err != nil {
		errs = append(errs, modules.ArgError{Arg: "name", Msg: err.Error()})
	}
	if a.State == "latest" {
		for _, s := range specs {
			if s.Version != "" {
				errs = append(errs, modules.ArgError{Arg: "name", Msg: fmt.Sprintf("%s names a version, which state = \"latest\" cannot keep; use state = \"present\" for a version.", s)})
			}
		}
	}
	if a.CacheValidTime != nil && !a.UpdateCache {
		errs = append(errs, modules.ArgError{Arg: "cache_valid_time", Msg: "cache_valid_time needs update_cache = true."})
	}
	if d, err := parseDuration(a.LockTimeout); err == nil && d > maxLockTimeout {
		errs = append(errs, modules.ArgError{Arg: "lock_timeout", Msg: fmt.Sprintf("lock_timeout %s is longer than %s.", a.LockTimeout, maxLockTimeout)})
	}
	return errs
}

// pkgPlan is what the manager would do: the changes, and the commands that do them.
type pkgPlan struct {
	installed, upgraded, removed []pkgChange
	// cmds are the commands apply runs, each as its argv without the lock options.
	cmds [][]string
}

func (p pkgPlan) empty() bool {
	return len(p.installed)+len(p.upgraded)+len(p.removed) == 0
}

// pkgManager is one package manager's part of the module.
type pkgManager interface {
	name() string
	// query returns the installed version of each package named ("" or absent: not installed).
	query(ctx context.Context, names []string) (map[string]string, error)
	// cacheAge says how old the package lists are (ok false: the manager decides itself).
	cacheAge() (time.Duration, bool)
	// refresh brings the package lists up to date; maxAge 0: whatever their age.
	refresh(ctx context.Context, maxAge time.Duration, lw *lockWait) error
	// plan asks the manager what it would do for the specs, given what is installed.
	plan(ctx context.Context, state string, specs []pkgSpec, have map[string]string, recommends bool, lw *lockWait) (pkgPlan, error)
	// run runs a command of a plan.
	run(ctx context.Context, argv []string, lw *lockWait) error
}

// Run reads the packages, asks the manager what it would do, and does it when applying.
func (p Package) Run(ctx context.Context, env *modules.Env, a packageArgs, apply bool) (*modules.Result, error) {
	m := on(p.test, env)
	specs, err := pkgSpecs(a.Name)
	if err != nil {
		return nil, err
	}
	if len(specs) == 0 {
		return nil, errors.New("name is not known")
	}
	lockTimeout, err := parseDuration(a.LockTimeout)
	if err != nil {
		return nil, fmt.Errorf("lock_timeout: %w", err)
	}
	var maxAge time.Duration
	if a.CacheValidTime != nil {
		if maxAge, err = parseDuration(*a.CacheValidTime); err != nil {
			return nil, fmt.Errorf("cache_valid_time: %w", err)
		}
	}
	mgr, err := pickManager(m, a.Manager)
	if err != nil {
		return nil, err
	}
	sleep := p.sleep
	if sleep == nil {
		sleep = sleepCtx
	}
	lw := &lockWait{timeout: lockTimeout, sleep: sleep, now: p.now}
	names := make([]string, len(specs))
	for i, s := range specs {
		names[i] = s.Name
	}
	res := &modules.Result{Status: modules.StatusOK}
	data := packageResult{Manager: mgr.name(), Installed: []pkgChange{}, Upgraded: []pkgChange{}, Removed: []pkgChange{}}
	var notes []string
	// refreshFirst: check mode answers from lists apply would refresh first.
	refreshFirst := false

	if a.UpdateCache {
		age, known := mgr.cacheAge()
		stale := !known || a.CacheValidTime == nil || age > maxAge
		switch {
		case !stale:
			notes = append(notes, fmt.Sprintf("package lists are %s old, within cache_valid_time", age.Round(time.Second)))
		case apply:
			if err := mgr.refresh(ctx, maxAge, lw); err != nil {
				return nil, err
			}
			data.CacheUpdated = true
			notes = append(notes, "package lists refreshed")
		default:
			refreshFirst = true
			notes = append(notes, "check mode answers from the package lists the host has; apply refreshes them first")
		}
	}

	have, err := mgr.query(ctx, names)
	if err != nil {
		return nil, err
	}
	plan, err := mgr.plan(ctx, a.State, specs, have, a.InstallRecommends, lw)
	var fail *modules.Failure
	if err != nil && refreshFirst && errors.As(err, &fail) && notInLists.MatchString(fail.Stderr) {
		// The lists apply would fetch may have it: what apply does cannot be known here.
		data.Packages = map[string]string{}
		for _, n := range names {
			data.Packages[n] = have[n]
		}
		res.Status, res.Data = modules.StatusUnknown, data
		res.Msg = fmt.Sprintf("%s does not know every package in the lists the host has now (%s); apply refreshes them first, so what it would do cannot be told in check mode",
			mgr.name(), strings.TrimSpace(notInLists.FindString(fail.Stderr)))
		return res, nil
	}
	if err != nil {
		return nil, err
	}
	data.Installed = append(data.Installed, plan.installed...)
	data.Upgraded = append(data.Upgraded, plan.upgraded...)
	data.Removed = append(data.Removed, plan.removed...)
	data.Packages = map[string]string{}
	for _, n := range names {
		data.Packages[n] = have[n]
	}
	if plan.empty() {
		// The manager would do nothing: the packages must be as asked already (a virtual
		// package's name, which dpkg-query does not know, is not).
		if miss := unmet(a.State, specs, have, mgr.name() != "apt"); len(miss) > 0 {
			res.Data = data
			return res, fmt.Errorf("%s would change nothing, but %s (a virtual package or a group? name the real package)", mgr.name(), strings.Join(miss, "; "))
		}
	} else {
		res.Status = modules.DiffStatus(apply)
		res.Diff = pkgDiff(plan)
	}
	if apply && len(plan.cmds) > 0 {
		for _, argv := range plan.cmds {
			if err := mgr.run(ctx, argv, lw); err != nil {
				return nil, err
			}
		}
		after, err := mgr.query(ctx, names)
		if err != nil {
			return nil, err
		}
		for _, n := range names {
			data.Packages[n] = after[n]
		}
		if miss := unmet(a.State, specs, after, mgr.name() != "apt"); len(miss) > 0 {
			res.Data = data
			return res, fmt.Errorf("%s ran, but %s: the host is not as asked", mgr.name(), strings.Join(miss, "; "))
		}
	}
	res.Data = data
	res.Msg = pkgMsg(apply, plan, names, notes)
	return res, nil
}

// pickManager finds the manager asked for, or the host's.
func pickManager(m *machine, want string) (pkgManager, error) {
	has := func(progs ...string) bool {
		for _, p := range progs {
			if m.lookPath(p) == "" {
				return false
			}
		}
		return true
	}
	switch want {
	case "apt":
		if !has("apt-get", "dpkg-query") {
			return nil, errors.New(`manager = "apt", but this host has no apt-get or dpkg-query`)
		}
		return &aptManager{m: m}, nil
	case "dnf", "yum":
		if !has(want, "rpm") {
			return nil, fmt.Errorf("manager = %q, but this host has no %s or rpm", want, want)
		}
		return &rpmManager{m: m, tool: want}, nil
	}
	switch {
	case has("apt-get", "dpkg-query"):
		return &aptManager{m: m}, nil
	case has("dnf", "rpm"):
		return &rpmManager{m: m, tool: "dnf"}, nil
	case has("yum", "rpm"):
		return &rpmManager{m: m, tool: "yum"}, nil
	}
	return nil, errors.New("this host has no package manager the module knows: no apt-get (with dpkg-query), dnf or yum (with rpm)")
}

// versionMatches says whether an installed version (as the manager's query writes it) is
// the one a spec names: for apt the whole version, for rpm also without the epoch or
// without the release.
func versionMatches(installed, want string, rpm bool) bool {
	if installed == want {
		return true
	}
	if !rpm {
		return false
	}
	// rpm: the query gives EPOCH:VERSION-RELEASE; "VERSION-RELEASE" and "VERSION" match too.
	vr := installed
	if e, rest, ok := strings.Cut(installed, ":"); ok && e != "" && !strings.ContainsAny(e, ".-") {
		vr = rest
		if e == "0" && vr == want {
			return true
		}
	}
	if vr == want {
		return true
	}
	v, _, _ := strings.Cut(vr, "-")
	return v == want && !strings.Contains(want, "-")
}

// unmet lists the specs the host does not satisfy.
func unmet(state string, specs []pkgSpec, have map[string]string, rpm bool) []string {
	var out []string
	for _, s := range specs {
		v := have[s.Name]
		switch {
		case state == "absent" && v != "" && (s.Version == "" || versionMatches(v, s.Version, rpm)):
			out = append(out, s.Name+" "+v+" is still installed")
		case state != "absent" && v == "":
			out = append(out, s.Name+" is not installed")
		case state != "absent" && s.Version != "" && !versionMatches(v, s.Version, rpm):
			out = append(out, fmt.Sprintf("%s is at %s, not %s", s.Name, v, s.Version))
		}
	}
	return out
}

// pkgDiff shows the changes as before/after lines, one package a line.
func pkgDiff(p pkgPlan) *modules.Diff {
	var before, after strings.Builder
	for _, c := range p.installed {
		fmt.Fprintf(&after, "%s %s\n", c.Name, c.Version)
	}
	for _, c := range p.upgraded {
		fmt.Fprintf(&before, "%s %s\n", c.Name, c.From)
		fmt.Fprintf(&after, "%s %s\n", c.Name, c.Version)
	}
	for _, c := range p.removed {
		fmt.Fprintf(&before, "%s %s\n", c.Name, c.Version)
	}
	return &modules.Diff{Before: before.String(), After: after.String(),
		BeforeHeader: "packages (before)", AfterHeader: "packages (after)"}
}

// pkgMsg says what was (or would be) done.
func pkgMsg(apply bool, p pkgPlan, names []string, notes []string) string {
	var parts []string
	list := func(cs []pkgChange, from bool) string {
		var s []string
		for _, c := range cs {
			if from {
				s = append(s, fmt.Sprintf("%s %s → %s", c.Name, c.From, c.Version))
			} else {
				s = append(s, c.Name+" "+c.Version)
			}
		}
		return strings.Join(s, ", ")
	}
	if len(p.installed) > 0 {
		parts = append(parts, modules.Tense(apply, "installed ", "would install ")+list(p.installed, false))
	}
	if len(p.upgraded) > 0 {
		parts = append(parts, modules.Tense(apply, "upgraded ", "would upgrade ")+list(p.upgraded, true))
	}
	if len(p.removed) > 0 {
		parts = append(parts, modules.Tense(apply, "removed ", "would remove ")+list(p.removed, false))
	}
	if len(parts) == 0 {
		parts = append(parts, strings.Join(names, ", ")+": nothing to do")
	}
	return strings.Join(append(parts, notes...), "; ")
}

// lockWait waits out another package manager's lock: each command the module runs waits up
// to timeout for it (a budget shared by the commands would count the time a long apt-get
// update spends working as time waited).
type lockWait struct {
	timeout  time.Duration
	sleep    func(ctx context.Context, d time.Duration) error
	deadline time.Time
	now      func() time.Time
}

func (lw *lockWait) clock() time.Time {
	if lw.now != nil {
		return lw.now()
	}
	return time.Now()
}

// remaining is the time the current command has left to wait.
func (lw *lockWait) remaining() time.Duration {
	return max(lw.deadline.Sub(lw.clock()), 0)
}

// seconds is remaining rounded up to whole seconds (apt's DPkg::Lock::Timeout).
func (lw *lockWait) seconds() int {
	return int(math.Ceil(lw.remaining().Seconds()))
}

// notInLists recognises the managers' messages for a package their lists do not have.
var notInLists = regexp.MustCompile(`(?m)(Unable to locate package \S+|Version '[^']*' for '[^']*' was not found|Unable to find a match: .*$|No match for argument: .*$|No package \S+ available)`)

// notLockHolder recognises a lock the helper may not take at all (it is not root): no
// wait makes that work.
var notLockHolder = regexp.MustCompile(`(?i)are you root|permission denied`)

// lockHeld recognises the managers' messages for a lock another process holds.
var lockHeld = regexp.MustCompile(`(?i)could not get lock|unable to acquire the dpkg frontend lock|unable to lock (the )?(administration )?director|existing lock /|another app is currently holding the yum lock|is locked by|already locked|failed to obtain (the )?(rpm )?transaction lock|waiting for process with pid`)

// run runs argv (built by args for the seconds left; stdout kept whole, since it is parsed), trying again each second while the
// output says another process holds the lock and the deadline has not passed. It returns
// the result of the last try; a lock still held at the deadline is a Failure saying so.
// accept, when not nil, decides which results are not failures (else: exit 0).
func (lw *lockWait) run(ctx context.Context, m *machine, env []string, args func(secs int) []string, accept func(host.Result) bool) (host.Result, error) {
	if accept == nil {
		accept = func(r host.Result) bool { return r.RC == 0 }
	}
	lw.deadline = lw.clock().Add(lw.timeout)
	for {
		argv := args(lw.seconds())
		res, err := m.run.Run(ctx, host.Cmd{Argv: argv, Env: env, Data: true})
		line := m.red.Redact(strings.Join(argv, " "))
		if err != nil {
			return res, fmt.Errorf("%s: %w", line, err)
		}
		if accept(res) {
			return res, nil
		}
		out := strings.TrimSpace(strings.TrimSpace(res.Stdout) + "\n" + strings.TrimSpace(res.Stderr))
		held := lockHeld.MatchString(out) && !notLockHolder.MatchString(out)
		if !held || lw.remaining() == 0 {
			msg := fmt.Sprintf("%s exited with %d", line, res.RC)
			if held {
				msg = fmt.Sprintf("another process held the package manager's lock for longer than lock_timeout (%s): %s", lw.timeout, msg)
			}
			return res, &modules.Failure{Msg: msg, Stderr: host.Tail(m.red.Redact(out), host.StderrTail)}
		}
		if err := lw.sleep(ctx, min(time.Second, lw.remaining())); err != nil {
			return res, fmt.Errorf("waiting for the package manager's lock: %w", err)
		}
	}
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return context.Cause(ctx)
	case <-t.C:
		return nil
	}
}

// sortChanges orders changes by name, for stable diffs and messages.
func sortChanges(cs []pkgChange) {
	slices.SortFunc(cs, func(a, b pkgChange) int { return strings.Compare(a.Name, b.Name) })
}
