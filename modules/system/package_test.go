package system

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/zclconf/go-cty/cty"

	"github.com/runbook/runbook/modules"
	"github.com/runbook/runbook/modules/host"
	"github.com/runbook/runbook/modules/moduletest"
)

// fakeDeb is one version of a package in the fake apt's repository.
type fakeDeb struct {
	version string
	depends []string
}

// fakeApt simulates dpkg-query and apt-get over an in-memory package set: what apt-get -s
// prints (Inst/Remv lines) is parsed by the module exactly like the real thing's.
type fakeApt struct {
	installed map[string]string
	repo      map[string]fakeDeb // the candidate version of each package
	calls     [][]string
	all       []string // every command line, never reset
	// locked makes that many apt-get runs fail as if another process held the lock, with
	// lockMsg (else apt's message for a lock another process holds).
	locked  int
	lockMsg string
	// virtual packages are provided by an installed one: apt does nothing for them.
	virtual map[string]bool
}

func (f *fakeApt) LookPath(name string) string {
	if name == "apt-get" || name == "dpkg-query" {
		return "/usr/bin/" + name
	}
	return ""
}

func (f *fakeApt) Run(_ context.Context, c host.Cmd) (host.Result, error) {
	f.calls = append(f.calls, c.Argv)
	f.all = append(f.all, strings.Join(c.Argv, " "))
	argv := c.Argv
	switch argv[0] {
	case "dpkg-query":
		var out, errs strings.Builder
		rc := 0
		for _, n := range argv[slices.Index(argv, "--")+1:] {
			if v, ok := f.installed[n]; ok {
				fmt.Fprintf(&out, "%s\t%s\tinstall ok installed\t%s\n", n, n, v)
			} else {
				fmt.Fprintf(&errs, "dpkg-query: no packages found matching %s\n", n)
				rc = 1
			}
		}
		return host.Result{RC: rc, Stdout: out.String(), Stderr: errs.String()}, nil
	case "apt-get":
	default:
		return host.Result{RC: 127}, errors.New(argv[0] + ": not found")
	}
	if f.locked > 0 {
		f.locked--
		if f.lockMsg != "" {
			return host.Result{RC: 100, Stderr: f.lockMsg}, nil
		}
		return host.Result{RC: 100, Stderr: "E: Could not get lock /var/lib/dpkg/lock-frontend. It is held by process 4242 (apt-get)\nE: Unable to acquire the dpkg frontend lock (/var/lib/dpkg/lock-frontend), is another process using it?\n"}, nil
	}
	if !slices.Contains(c.Env, "DEBIAN_FRONTEND=noninteractive") {
		return host.Result{RC: 1, Stderr: "debconf would ask"}, nil
	}
	sim := slices.Contains(argv, "-s")
	dash := slices.Index(argv, "--")
	op := ""
	for _, a := range argv[1:] {
		if a == "install" || a == "remove" || a == "update" {
			op = a
		}
	}
	if op == "update" {
		return host.Result{}, nil
	}
	state := maps.Clone(f.installed)
	var out strings.Builder
	var add func(name, version string) error
	add = func(name, version string) error {
		if f.virtual[name] {
			fmt.Fprintf(&out, "Note, selecting 'base-files' instead of '%s'\n", name)
			return nil
		}
		d, ok := f.repo[name]
		if !ok {
			return fmt.Errorf("E: Unable to locate package %s", name)
		}
		if version == "" {
			version = d.version
		}
		for _, dep := range d.depends {
			if _, ok := state[dep]; !ok {
				if err := add(dep, ""); err != nil {
					return err
				}
			}
		}
		if old, ok := state[name]; ok {
			if old != version {
				fmt.Fprintf(&out, "Inst %s [%s] (%s local [all])\n", name, old, version)
			}
		} else {
			fmt.Fprintf(&out, "Inst %s (%s local [all])\n", name, version)
		}
		state[name] = version
		return nil
	}
	for _, a := range argv[dash+1:] {
		name, ver, _ := strings.Cut(a, "=")
		switch op {
		case "install":
			// apt's readings of a name no package has: "NAME-" removes NAME, and
			// a name with "." or "+" is a regular expression over every package.
			if _, ok := f.repo[name]; !ok && strings.HasSuffix(name, "-") {
				if v, ok := state[strings.TrimSuffix(name, "-")]; ok {
					fmt.Fprintf(&out, "Remv %s [%s]\n", strings.TrimSuffix(name, "-"), v)
					delete(state, strings.TrimSuffix(name, "-"))
				}
				continue
			}
			if _, ok := f.repo[name]; !ok && strings.ContainsAny(name, ".+") {
				re := regexp.MustCompile(name)
				for _, n := range slices.Sorted(maps.Keys(f.repo)) {
					if re.MatchString(n) {
						if err := add(n, ""); err != nil {
							return host.Result{RC: 100, Stderr: err.Error() + "\n"}, nil
						}
					}
				}
				continue
			}
			if err := add(name, ver); err != nil {
				return host.Result{RC: 100, Stderr: err.Error() + "\n"}, nil
			}
		case "remove":
			// Dependents go first, as apt removes them too.
			for other := range state {
				if slices.Contains(f.repo[other].depends, name) {
					fmt.Fprintf(&out, "Remv %s [%s]\n", other, state[other])
					delete(state, other)
				}
			}
			if v, ok := state[name]; ok {
				fmt.Fprintf(&out, "Remv %s [%s]\n", name, v)
				delete(state, name)
			}
		}
	}
	if sim {
		return host.Result{Stdout: "Reading package lists...\n" + out.String()}, nil
	}
	f.installed = state
	return host.Result{Stdout: "Unpacking...\n"}, nil
}

// mutating lists the commands other than dpkg-query and apt-get -s.
func (f *fakeApt) mutating() []string {
	var out []string
	for _, c := range f.calls {
		if c[0] == "dpkg-query" || slices.Contains(c, "-s") {
			continue
		}
		out = append(out, strings.Join(c, " "))
	}
	return out
}

func newFakeApt() *fakeApt {
	return &fakeApt{
		installed: map[string]string{"base-files": "12.4"},
		repo: map[string]fakeDeb{
			"rb-lib":     {version: "1.0-1"},
			"rb-app":     {version: "1.0-1", depends: []string{"rb-lib"}},
			"base-files": {version: "12.4"},
		},
	}
}

func aptModule(f *fakeApt) Package {
	return Package{test: &machine{run: f}, sleep: func(context.Context, time.Duration) error { return nil }}
}

func names(ns ...string) cty.Value {
	var vs []cty.Value
	for _, n := range ns {
		vs = append(vs, cty.StringVal(n))
	}
	return cty.TupleVal(vs)
}

// TestPackageAptTimelines: present (with a dependency in the diff), latest (an upgrade)
// and absent (a dependent removed too), each check → apply → check → apply, with check
// mode running nothing but dpkg-query and apt-get -s.
func TestPackageAptTimelines(t *testing.T) {
	f := newFakeApt()
	m := aptModule(f)
	checkOnlyReads := moduletest.Unchanged(func(t testing.TB, step string) {
		if got := f.mutating(); len(got) > 0 {
			t.Fatalf("%s ran %q", step, got)
		}
	})
	reset := moduletest.Before(func(testing.TB, string) { f.calls = nil })

	res := moduletest.Timeline(t, m, map[string]cty.Value{"name": cty.StringVal("rb-app")}, checkOnlyReads, reset)
	if got := res[0].Diff.After; got != "rb-app 1.0-1\nrb-lib 1.0-1\n" {
		t.Errorf("present: diff after %q", got)
	}
	if res[0].Msg != "would install rb-app 1.0-1, rb-lib 1.0-1" || res[1].Msg != "installed rb-app 1.0-1, rb-lib 1.0-1" {
		t.Errorf("present: messages %q, %q", res[0].Msg, res[1].Msg)
	}
	data := moduletest.Data(t, m, res[1])
	if inst := data.GetAttr("installed"); inst.LengthInt() != 2 || data.GetAttr("packages").Index(cty.StringVal("rb-app")).AsString() != "1.0-1" {
		t.Errorf("present: data %#v", data)
	}
	if !strings.Contains(strings.Join(f.calls[len(f.calls)-1], " "), "dpkg-query") {
		t.Errorf("apply again ran more than reads: %q", f.calls)
	}
	for _, c := range f.calls {
		if c[0] == "apt-get" && !slices.Contains(c, "--") {
			t.Errorf("no -- before the names: %q", c)
		}
	}

	// A new version in the repository: present keeps 1.0-1, latest upgrades.
	f.repo["rb-app"] = fakeDeb{version: "2.0-1", depends: []string{"rb-lib"}}
	if r, err := moduletest.Run(t, m, map[string]cty.Value{"name": names("rb-app")}, false); err != nil || r.Status != modules.StatusOK {
		t.Fatalf("present with a newer version available: %v %+v", err, r)
	}
	res = moduletest.Timeline(t, m, map[string]cty.Value{"name": names("rb-app", "rb-lib"), "state": cty.StringVal("latest")}, checkOnlyReads, reset)
	if res[0].Diff.Before != "rb-app 1.0-1\n" || res[0].Diff.After != "rb-app 2.0-1\n" || res[0].Msg != "would upgrade rb-app 1.0-1 → 2.0-1" {
		t.Errorf("latest: %q %+v", res[0].Msg, res[0].Diff)
	}
	if up := moduletest.Data(t, m, res[1]).GetAttr("upgraded"); up.LengthInt() != 1 || up.Index(cty.NumberIntVal(0)).GetAttr("from").AsString() != "1.0-1" {
		t.Errorf("latest: upgraded %#v", up)
	}

	// A pinned older version: present downgrades, saying so.
	res = moduletest.Timeline(t, m, map[string]cty.Value{"name": names("rb-app=1.0-1")}, checkOnlyReads, reset)
	if res[0].Msg != "would upgrade rb-app 2.0-1 → 1.0-1" || !strings.Contains(strings.Join(f.all, "\n"), "--allow-downgrades -- rb-app=1.0-1") {
		t.Errorf("pinned: %q %q", res[0].Msg, f.all)
	}

	// absent: removing the library removes what depends on it, both in the diff.
	res = moduletest.Timeline(t, m, map[string]cty.Value{"name": cty.StringVal("rb-lib"), "state": cty.StringVal("absent")}, checkOnlyReads, reset)
	if res[0].Diff.Before != "rb-app 1.0-1\nrb-lib 1.0-1\n" || res[0].Diff.After != "" {
		t.Errorf("absent: %+v", res[0].Diff)
	}
	if _, ok := f.installed["rb-app"]; ok {
		t.Error("rb-app is still installed")
	}
}

// TestPackageAptFailures: a package apt does not know fails with apt's message, and the
// recommends and environment rules reach the command line.
func TestPackageAptFailures(t *testing.T) {
	f := newFakeApt()
	_, err := moduletest.Run(t, aptModule(f), map[string]cty.Value{"name": cty.StringVal("rb-nosuch")}, false)
	var fail *modules.Failure
	if !errors.As(err, &fail) || !strings.Contains(fail.Stderr, "Unable to locate package rb-nosuch") || !strings.Contains(fail.Msg, "apt-get -s") {
		t.Fatalf("unknown package: %v %+v", err, fail)
	}
	if c := f.calls[len(f.calls)-1]; !slices.Contains(c, "--no-install-recommends") {
		t.Errorf("recommends not turned off: %q", c)
	}
	f.virtual = map[string]bool{"debian-base": true}
	if _, err := moduletest.Run(t, aptModule(f), map[string]cty.Value{"name": cty.StringVal("debian-base")}, false); err == nil || !strings.Contains(err.Error(), "apt would change nothing, but debian-base is not installed") {
		t.Errorf("a virtual package: %v", err)
	}
	f.calls = nil
	if _, err := moduletest.Run(t, aptModule(f), map[string]cty.Value{"name": cty.StringVal("rb-lib"), "install_recommends": cty.True}, false); err != nil {
		t.Fatal(err)
	}
	if c := f.calls[len(f.calls)-1]; slices.Contains(c, "--no-install-recommends") {
		t.Errorf("recommends turned off though asked for: %q", c)
	}
}

// TestPackageAptNameReadOtherwise: a name apt-get reads as something other than the
// package of that name ("NAME-" as a removal, "lib.+" as a regular expression over the
// lists) fails in check mode and in apply before anything is installed or removed.
func TestPackageAptNameReadOtherwise(t *testing.T) {
	for _, tc := range []struct {
		name, state string
		want        string
	}{
		{"rb-lib-", "present", "rb-lib-"},
		{"rb-.+", "present", "rb-.+"},
		{"rb-.+", "latest", "rb-.+"},
		{"rb-app+", "present", "rb-app+"},
	} {
		for _, apply := range []bool{false, true} {
			f := newFakeApt()
			f.installed["rb-lib"] = "1.0-1"
			before := maps.Clone(f.installed)
			res, err := moduletest.Run(t, aptModule(f), map[string]cty.Value{"name": cty.StringVal(tc.name), "state": cty.StringVal(tc.state)}, apply)
			if err == nil || !strings.Contains(err.Error(), "no package named "+tc.want) {
				t.Errorf("%s %s (apply %v): %v %+v", tc.name, tc.state, apply, err, res)
			}
			if got := f.mutating(); len(got) > 0 || !maps.Equal(before, f.installed) {
				t.Errorf("%s %s (apply %v): ran %q, installed now %v", tc.name, tc.state, apply, got, f.installed)
			}
		}
	}
	// The real names still work, "g++"-like names with a trailing "+" included.
	f := newFakeApt()
	f.repo["rb-c++"] = fakeDeb{version: "1"}
	if _, err := moduletest.Run(t, aptModule(f), map[string]cty.Value{"name": names("rb-app", "rb-c++")}, true); err != nil || f.installed["rb-c++"] != "1" {
		t.Fatalf("real names: %v %v", err, f.installed)
	}
}

// TestPackageLockWait: a lock held for a while is waited out (apt-get asked to wait the
// time left, each command with its own lock_timeout); a lock held past lock_timeout fails with the manager's own message.
func TestPackageLockWait(t *testing.T) {
	var clock time.Time
	mk := func(f *fakeApt) Package {
		clock = time.Unix(1_000_000, 0)
		return Package{test: &machine{run: f}, now: func() time.Time { return clock },
			sleep: func(_ context.Context, d time.Duration) error { clock = clock.Add(d); return nil }}
	}
	f := newFakeApt()
	f.locked = 3
	res, err := moduletest.Run(t, mk(f), map[string]cty.Value{"name": cty.StringVal("rb-lib"), "lock_timeout": cty.StringVal("10s")}, true)
	if err != nil || res.Status != modules.StatusChanged || f.installed["rb-lib"] != "1.0-1" {
		t.Fatalf("after a short lock: %v %+v", err, res)
	}
	var timeouts []string
	for _, c := range f.calls {
		for _, a := range c {
			if strings.HasPrefix(a, "DPkg::Lock::Timeout=") {
				timeouts = append(timeouts, strings.TrimPrefix(a, "DPkg::Lock::Timeout="))
			}
		}
	}
	if want := []string{"10", "9", "8", "7", "10"}; !slices.Equal(timeouts, want) {
		t.Errorf("lock timeouts given to apt-get: %q, want %q", timeouts, want)
	}

	f = newFakeApt()
	f.locked = 1000
	_, err = moduletest.Run(t, mk(f), map[string]cty.Value{"name": cty.StringVal("rb-lib"), "lock_timeout": cty.StringVal("5s")}, true)
	var fail *modules.Failure
	if !errors.As(err, &fail) || !strings.Contains(fail.Msg, "longer than lock_timeout (5s)") || !strings.Contains(fail.Stderr, "held by process 4242") {
		t.Fatalf("lock held past the deadline: %v %+v", err, fail)
	}
	if n := len(f.calls); n != 7 { // dpkg-query, then apt-get -s at 0s, 1s, ... 5s
		t.Errorf("%d calls: %q", n, f.calls)
	}

	// Not root: the lock can never be had, so there is no waiting.
	f = newFakeApt()
	f.locked = 1000
	f.lockMsg = "E: Could not open lock file /var/lib/dpkg/lock-frontend - open (13: Permission denied)\nE: Unable to acquire the dpkg frontend lock (/var/lib/dpkg/lock-frontend), are you root?\n"
	_, err = moduletest.Run(t, mk(f), map[string]cty.Value{"name": cty.StringVal("rb-lib")}, true)
	if !errors.As(err, &fail) || strings.Contains(fail.Msg, "lock_timeout") || !strings.Contains(fail.Stderr, "are you root?") || len(f.calls) != 2 {
		t.Fatalf("not root: %v %+v %q", err, fail, f.calls)
	}

	f = newFakeApt()
	f.locked = 1
	_, err = moduletest.Run(t, mk(f), map[string]cty.Value{"name": cty.StringVal("rb-lib"), "lock_timeout": cty.StringVal("0")}, false)
	if !errors.As(err, &fail) || !strings.Contains(fail.Msg, "lock_timeout (0s)") {
		t.Fatalf("lock_timeout 0: %v", err)
	}
}

// TestPackageUpdateCache: apply refreshes old lists (not a change by itself), check mode
// never does, and fresh lists are left alone.
func TestPackageUpdateCache(t *testing.T) {
	h := newFakeHost(t, true)
	h.mkdir("/var/lib/apt/lists")
	f := newFakeApt()
	f.installed["rb-lib"] = "1.0-1"
	m := Package{test: &machine{root: host.Root(h.root), run: f}}
	args := map[string]cty.Value{"name": cty.StringVal("rb-lib"), "update_cache": cty.True}
	ran := func() bool {
		for _, c := range f.calls {
			if slices.Contains(c, "update") {
				return true
			}
		}
		return false
	}
	res, err := moduletest.Run(t, m, args, false)
	if err != nil || res.Status != modules.StatusOK || ran() || !strings.Contains(res.Msg, "apply refreshes them first") {
		t.Fatalf("check: %v %+v %q", err, res, f.calls)
	}
	res, err = moduletest.Run(t, m, args, true)
	if err != nil || res.Status != modules.StatusOK || !ran() || !moduletest.Data(t, m, res).GetAttr("cache_updated").True() {
		t.Fatalf("apply: %v %+v %q", err, res, f.calls)
	}
	// A package the lists do not have yet: check mode cannot tell what apply would do.
	unknown := map[string]cty.Value{"name": cty.StringVal("rb-new"), "update_cache": cty.True}
	res, err = moduletest.Run(t, m, unknown, false)
	if err != nil || res.Status != modules.StatusUnknown || !strings.Contains(res.Msg, "Unable to locate package rb-new") {
		t.Fatalf("check, a package not in the lists: %v %+v", err, res)
	}
	delete(unknown, "update_cache")
	if _, err := moduletest.Run(t, m, unknown, false); err == nil {
		t.Fatal("check without update_cache, a package not in the lists: no error")
	}

	f.calls = nil
	args["cache_valid_time"] = cty.StringVal("1h")
	res, err = moduletest.Run(t, m, args, true)
	if err != nil || ran() || !strings.Contains(res.Msg, "within cache_valid_time") {
		t.Fatalf("fresh lists: %v %+v %q", err, res, f.calls)
	}
}

// TestPackageValidate: names that could become options or reach a shell, and rules
// between arguments, are refused before any program runs.
func TestPackageValidate(t *testing.T) {
	for _, tc := range []struct {
		args map[string]cty.Value
		want string
	}{
		{map[string]cty.Value{"name": cty.StringVal("-oAPT::Get::Simulate=0")}, "not a package name"},
		{map[string]cty.Value{"name": names("curl", "--allow-unauthenticated")}, "not a package name"},
		{map[string]cty.Value{"name": cty.StringVal("curl jq")}, "not a package name"},
		{map[string]cty.Value{"name": cty.StringVal("curl;reboot")}, "not a package name"},
		{map[string]cty.Value{"name": cty.StringVal("lib*")}, "not a package name"},
		{map[string]cty.Value{"name": cty.StringVal("jq=-1")}, "not a package name"},
		{map[string]cty.Value{"name": cty.StringVal("")}, "not a package name"},
		{map[string]cty.Value{"name": cty.EmptyTupleVal}, "lists no package"},
		{map[string]cty.Value{"name": names("jq", "jq=1.6")}, "jq is named twice"},
		{map[string]cty.Value{"name": names(slices.Repeat([]string{"x"}, 1001)...)}, "more than the 1000 one task may name"},
		{map[string]cty.Value{"name": cty.NumberIntVal(3)}, "a string or a list of strings"},
		{map[string]cty.Value{"name": cty.TupleVal([]cty.Value{cty.StringVal("a"), cty.True})}, "name[1] must be a string"},
		{map[string]cty.Value{"name": cty.StringVal("jq=1.6"), "state": cty.StringVal("latest")}, `cannot keep`},
		{map[string]cty.Value{"name": cty.StringVal("jq"), "cache_valid_time": cty.StringVal("1h")}, "needs update_cache"},
		{map[string]cty.Value{"name": cty.StringVal("jq"), "lock_timeout": cty.StringVal("2h")}, "longer than 1h"},
		{map[string]cty.Value{"name": cty.StringVal("jq"), "lock_timeout": cty.StringVal("soon")}, "a duration"},
		{map[string]cty.Value{"name": cty.StringVal("jq"), "state": cty.StringVal("installed")}, "expected one of"},
	} {
		errs := moduletest.Validate(t, Package{}, tc.args)
		if len(errs) == 0 || !strings.Contains(fmt.Sprint(errs), tc.want) {
			t.Errorf("%v: want %q, got %v", tc.args, tc.want, errs)
		}
	}
	for _, ok := range []string{"curl", "libc6:i386", "jq=1.6-2.1", "nginx=1:1.22.1-9+deb12u1~bpo", "python3.11", "g++", "kernel-core.x86_64", "openssl=3.0.7-27.el9_4^1"} {
		if errs := moduletest.Validate(t, Package{}, map[string]cty.Value{"name": cty.StringVal(ok)}); len(errs) > 0 {
			t.Errorf("%s: %v", ok, errs)
		}
	}
}

func TestParseAptSimulation(t *testing.T) {
	out := `NOTE: This is only a simulation!
      apt-get needs root privileges for real execution.
Reading package lists...
The following NEW packages will be installed:
  jq libjq1 libonig5
The following packages will be upgraded:
  curl
Inst libonig5 (6.9.8-1 Debian:12.5/stable [amd64])
Inst libjq1 (1.6-2.1 Debian:12.5/stable [amd64])
Inst jq (1.6-2.1 Debian:12.5/stable [amd64])
Inst curl [7.88.1-10] (7.88.1-10+deb12u5 Debian-Security:12/stable-security [amd64]) []
Inst libc6:i386 (2.36-9 Debian:12.5/stable [i386])
Remv telnet [0.17+2.4-2]
Purg inetutils-telnet [2:2.4-2]
Conf libonig5 (6.9.8-1 Debian:12.5/stable [amd64])
Conf jq (1.6-2.1 Debian:12.5/stable [amd64])
`
	p := parseAptSimulation(out)
	got := fmt.Sprint(p.installed, p.upgraded, p.removed)
	want := "[{jq 1.6-2.1 } {libc6:i386 2.36-9 } {libjq1 1.6-2.1 } {libonig5 6.9.8-1 }] [{curl 7.88.1-10+deb12u5 7.88.1-10}] [{inetutils-telnet 2:2.4-2 } {telnet 0.17+2.4-2 }]"
	if got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
	if p := parseAptSimulation("0 upgraded, 0 newly installed, 0 to remove and 3 not upgraded.\n"); !p.empty() {
		t.Errorf("nothing to do: %+v", p)
	}
}

func TestParseDnfTransaction(t *testing.T) {
	for _, tc := range []struct {
		name, out, want string
	}{
		{"dnf4 install with dependencies and a wrapped name", `Last metadata expiration check: 0:12:01 ago on Mon 07 Dec 2026 10:00:00 AM UTC.
Dependencies resolved.
================================================================================
 Package                 Architecture   Version               Repository   Size
================================================================================
Installing:
 jq                      x86_64         1.6-15.el9            appstream   186 k
Installing dependencies:
 oniguruma               x86_64         6.9.6-1.el9.5         appstream   217 k
 python3-very-long-package-name-here
                         noarch         2.1-3.el9             appstream    40 k
Installing weak dependencies:
 jq-doc                  noarch         1.6-15.el9            appstream    10 k

Transaction Summary
================================================================================
Install  4 Packages

Total download size: 453 k
Installed size: 1.1 M
Operation aborted.
`, "[{jq 1.6-15.el9 } {oniguruma 6.9.6-1.el9.5 } {python3-very-long-package-name-here 2.1-3.el9 } {jq-doc 1.6-15.el9 }] [] []"},
		{"dnf4 upgrade", `Dependencies resolved.
================================================================================
 Package       Arch         Version                   Repository          Size
================================================================================
Upgrading:
 curl          x86_64       7.76.1-29.el9_4.1         baseos             294 k
 libcurl       x86_64       7.76.1-29.el9_4.1         baseos             284 k

Transaction Summary
================================================================================
Upgrade  2 Packages
`, "[] [{curl 7.76.1-29.el9_4.1 } {libcurl 7.76.1-29.el9_4.1 }] []"},
		{"dnf4 remove with unused dependencies", `Dependencies resolved.
================================================================================
 Package           Architecture    Version               Repository       Size
================================================================================
Removing:
 jq                x86_64          1.6-15.el9            @appstream      401 k
Removing unused dependencies:
 oniguruma         x86_64          6.9.6-1.el9.5         @appstream      657 k

Transaction Summary
================================================================================
Remove  2 Packages
`, "[] [] [{jq 1.6-15.el9 } {oniguruma 6.9.6-1.el9.5 }]"},
		{"yum on EL7", `Resolving Dependencies
--> Running transaction check
---> Package jq.x86_64 0:1.6-2.el7 will be installed
--> Finished Dependency Resolution

Dependencies Resolved

================================================================================
 Package          Arch            Version               Repository        Size
================================================================================
Installing:
 jq               x86_64          1.6-2.el7             epel             167 k
Installing for dependencies:
 oniguruma        x86_64          6.8.2-2.el7           epel             181 k
Updating for dependencies:
 glibc            x86_64          2.17-326.el7_9        updates          3.6 M

Transaction Summary
================================================================================
Install  1 Package (+1 Dependent package)
Upgrade             ( 1 Dependent package)

Total download size: 4.0 M
Exiting on user command
Your transaction was saved, rerun it with:
 yum load-transaction /tmp/yum_save_tx.2026-12-07.10-00.abc.yumtx
`, "[{jq 1.6-2.el7 } {oniguruma 6.8.2-2.el7 }] [{glibc 2.17-326.el7_9 }] []"},
		{"dnf5 upgrade with the replaced version", `Updating and loading repositories:
Repositories loaded.
Package                    Arch   Version                Repository      Size
Upgrading:
 curl                      x86_64 8.6.0-10.fc40          updates     793.5 KiB
   replacing curl          x86_64 8.6.0-7.fc40           fedora      796.2 KiB
Installing dependencies:
 libfoo                    x86_64 1.0-1.fc40             updates      10.0 KiB

Transaction Summary:
 Upgrading:          1 package
 Replacing:          1 package
Operation aborted by the user.
`, "[{libfoo 1.0-1.fc40 }] [{curl 8.6.0-10.fc40 8.6.0-7.fc40}] []"},
		{"nothing to do", "Dependencies resolved.\nNothing to do.\nComplete!\n", "[] [] []"},
	} {
		p := parseDnfTransaction(tc.out)
		if got := fmt.Sprint(p.installed, p.upgraded, p.removed); got != tc.want {
			t.Errorf("%s:\ngot  %s\nwant %s", tc.name, got, tc.want)
		}
	}
}

// TestPackageDnf drives dnf through a scripted runner: the spec syntax is translated, the
// names follow "--", --assumeno's refusal (exit 1) is the plan, the replaced version comes
// from rpm, and the same command runs with -y on apply.
func TestPackageDnf(t *testing.T) {
	installed := map[string]string{"curl": "7.76.1-26.el9"}
	var calls []string
	r := noDnf5{host.Func(func(_ context.Context, c host.Cmd) (host.Result, error) {
		line := strings.Join(c.Argv, " ")
		calls = append(calls, line)
		switch c.Argv[0] {
		case "rpm":
			var out strings.Builder
			for _, n := range c.Argv[slices.Index(c.Argv, "--")+1:] {
				if v, ok := installed[n]; ok {
					fmt.Fprintf(&out, "%s\t%s\tx86_64\n", n, v)
				} else {
					fmt.Fprintf(&out, "package %s is not installed\n", n)
				}
			}
			return host.Result{RC: 0, Stdout: out.String()}, nil
		case "dnf":
		default:
			return host.Result{RC: 127}, errors.New("not found")
		}
		table := map[string]string{
			"install -- jq-1.6-15.el9": "Installing:\n jq   x86_64   1.6-15.el9   appstream  186 k\nInstalling dependencies:\n oniguruma  x86_64  6.9.6-1.el9.5  appstream  217 k\n\nTransaction Summary\n",
			"upgrade -- jq curl":       "Upgrading:\n curl   x86_64   7.76.1-29.el9   baseos  294 k\n\nTransaction Summary\n",
		}
		for k, v := range table {
			if strings.HasSuffix(line, k) {
				if slices.Contains(c.Argv, "--assumeno") {
					return host.Result{RC: 1, Stdout: "Dependencies resolved.\n" + v + "Operation aborted.\n"}, nil
				}
				if strings.HasPrefix(k, "upgrade") {
					installed["curl"] = "7.76.1-29.el9"
				} else {
					installed["jq"], installed["oniguruma"] = "1.6-15.el9", "6.9.6-1.el9.5"
				}
				return host.Result{Stdout: "Complete!\n"}, nil
			}
		}
		return host.Result{RC: 1, Stderr: "Error: Unable to find a match: " + line}, nil
	})}
	m := Package{test: &machine{run: r}}
	args := map[string]cty.Value{"name": names("jq=1.6-15.el9", "curl"), "state": cty.StringVal("present"), "manager": cty.StringVal("dnf")}
	res, err := moduletest.Run(t, m, args, false)
	if err != nil || res.Status != modules.StatusDrift || res.Msg != "would install jq 1.6-15.el9, oniguruma 6.9.6-1.el9.5" {
		t.Fatalf("check: %v %+v\n%s", err, res, strings.Join(calls, "\n"))
	}
	want := "dnf --assumeno --setopt=exit_on_lock=True --setopt=install_weak_deps=False install -- jq-1.6-15.el9"
	if !slices.Contains(calls, want) {
		t.Errorf("no %q in\n%s", want, strings.Join(calls, "\n"))
	}
	args["state"] = cty.StringVal("latest")
	args["name"] = names("jq", "curl")
	calls = nil
	res, err = moduletest.Run(t, m, args, false)
	if err == nil || !strings.Contains(err.Error(), "install -- jq exited with 1") {
		t.Fatalf("latest with jq unknown to the fake: %v %+v", err, res)
	}
	installed["jq"] = "1.6-15.el9"
	res, err = moduletest.Run(t, m, args, true)
	if err != nil || res.Status != modules.StatusChanged || res.Msg != "upgraded curl 7.76.1-26.el9 → 7.76.1-29.el9" {
		t.Fatalf("apply latest: %v %+v\n%s", err, res, strings.Join(calls, "\n"))
	}
	if !slices.Contains(calls, "dnf -y --setopt=exit_on_lock=True --setopt=install_weak_deps=False upgrade -- jq curl") {
		t.Errorf("apply ran:\n%s", strings.Join(calls, "\n"))
	}
	if _, err := moduletest.Run(t, m, map[string]cty.Value{"name": cty.StringVal("libc6:i386"), "manager": cty.StringVal("dnf")}, false); err == nil || !strings.Contains(err.Error(), "NAME.ARCH") {
		t.Errorf("apt's arch syntax on dnf: %v", err)
	}
}

// noDnf5 is a scripted host whose dnf is dnf 4.
type noDnf5 struct{ host.Func }

func (n noDnf5) LookPath(name string) string {
	if name == "dnf5" {
		return ""
	}
	return name
}

func TestVersionMatches(t *testing.T) {
	for _, tc := range []struct {
		have, want string
		ok, rpm    bool
	}{
		{"1.6-2.1", "1.6-2.1", true, false},
		{"1.6-2.1", "1.6", false, false}, // apt: the whole version
		{"1:1.22.1-9", "1.22.1-9", false, false},
		{"1:1.22.1-9", "1:1.22.1-9", true, true},
		{"1:1.22.1-9", "1.22.1-9", true, true}, // rpm's EPOCH:VERSION-RELEASE
		{"1.6-15.el9", "1.6", true, true},
		{"1.6-15.el9", "1.6-16.el9", false, true},
		{"1.6-15.el9", "1.6-15", false, true},
	} {
		if got := versionMatches(tc.have, tc.want, tc.rpm); got != tc.ok {
			t.Errorf("versionMatches(%q, %q) = %t", tc.have, tc.want, got)
		}
	}
}

// TestLockMessages: the managers' messages for a lock another process holds are waited
// on; a lock the helper may not take, or any other failure, is not.
func TestLockMessages(t *testing.T) {
	for _, tc := range []struct {
		out  string
		wait bool
	}{
		{"E: Could not get lock /var/lib/dpkg/lock-frontend. It is held by process 907 (apt-get)", true},
		{"E: Unable to acquire the dpkg frontend lock (/var/lib/dpkg/lock-frontend), is another process using it?", true},
		{"E: Could not get lock /var/lib/apt/lists/lock. It is held by process 12 (apt-get)\nE: Unable to lock directory /var/lib/apt/lists/", true},
		{"E: Could not get lock /var/lib/dpkg/lock - open (11: Resource temporarily unavailable)\nE: Unable to lock the administration directory (/var/lib/dpkg/), is another process using it?", true},
		{"Existing lock /var/run/yum.pid: another copy is running as pid 1234.\nAnother app is currently holding the yum lock; exiting as configured by exit_on_lock", true},
		{"Error: RPMDB already locked by 1234", true},
		{"Failed to obtain rpm transaction lock. Another transaction is in progress.", true},
		{"E: Could not open lock file /var/lib/dpkg/lock-frontend - open (13: Permission denied)\nE: Unable to acquire the dpkg frontend lock (/var/lib/dpkg/lock-frontend), are you root?", false},
		{"E: Unable to locate package rb-nosuch", false},
		{"Error: Unable to find a match: rb-nosuch", false},
	} {
		if got := lockHeld.MatchString(tc.out) && !notLockHolder.MatchString(tc.out); got != tc.wait {
			t.Errorf("%q: wait %t, want %t", tc.out, got, tc.wait)
		}
	}
}
