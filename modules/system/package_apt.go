package system

import (
	"context"
	"fmt"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/runbook/runbook/modules"
	"github.com/runbook/runbook/modules/host"
)

// aptManager is apt-get with dpkg-query on Debian and Ubuntu.
type aptManager struct{ m *machine }

func (*aptManager) name() string { return "apt" }

// aptEnv keeps apt, dpkg and debconf from asking anything.
var aptEnv = []string{"DEBIAN_FRONTEND=noninteractive", "APT_LISTCHANGES_FRONTEND=none", "NEEDRESTART_MODE=l"}

// query reads the installed packages with dpkg-query: a name with ":ARCH" is that
// architecture's package, a name without one any architecture's.
func (a *aptManager) query(ctx context.Context, names []string) (map[string]string, error) {
	argv := append([]string{"dpkg-query", "-W", "-f", `${binary:Package}\t${Package}\t${Status}\t${Version}\n`, "--"}, names...)
	res, err := a.m.run.Run(ctx, host.Cmd{Argv: argv, Data: true})
	if err != nil {
		return nil, fmt.Errorf("%s: %w", strings.Join(argv, " "), err)
	}
	// Exit 1 is "no packages found matching" for some names: they are not installed.
	if res.RC != 0 && (res.RC != 1 || !onlyNotFound(res.Stderr)) {
		return nil, fmtFailure(a.m, argv, res)
	}
	return parseDpkgQuery(res.Stdout, names), nil
}

// onlyNotFound says whether every line of dpkg-query's stderr says a name matched nothing.
func onlyNotFound(stderr string) bool {
	for _, l := range strings.Split(strings.TrimSpace(stderr), "\n") {
		if !strings.HasPrefix(l, "dpkg-query: no packages found matching ") {
			return false
		}
	}
	return true
}

// parseDpkgQuery maps each name to its installed version from dpkg-query's lines.
func parseDpkgQuery(out string, names []string) map[string]string {
	have := map[string]string{}
	for _, l := range strings.Split(out, "\n") {
		f := strings.Split(l, "\t")
		if len(f) != 4 {
			continue
		}
		st := strings.Fields(f[2])
		if len(st) != 3 || st[2] != "installed" {
			continue
		}
		for _, n := range names {
			if have[n] != "" {
				continue
			}
			if n == f[0] || (!strings.Contains(n, ":") && n == f[1]) {
				have[n] = f[3]
			}
		}
	}
	return have
}

// aptStamps are the files whose modification time says when the lists were refreshed.
var aptStamps = []string{"/var/lib/apt/periodic/update-success-stamp", "/var/lib/apt/lists"}

func (a *aptManager) cacheAge() (time.Duration, bool) {
	var newest time.Time
	for _, p := range aptStamps {
		if fi, err := os.Stat(a.m.path(p)); err == nil && fi.ModTime().After(newest) {
			newest = fi.ModTime()
		}
	}
	if newest.IsZero() {
		return 0, false
	}
	return max(time.Since(newest), 0), true
}

func (a *aptManager) refresh(ctx context.Context, _ time.Duration, lw *lockWait) error {
	_, err := lw.run(ctx, a.m, aptEnv, func(secs int) []string {
		return []string{"apt-get", "-q", "-o", "DPkg::Lock::Timeout=" + strconv.Itoa(secs), "update"}
	}, nil)
	return err
}

// plan works out the apt-get command and asks apt-get -s what it would do.
func (a *aptManager) plan(ctx context.Context, state string, specs []pkgSpec, have map[string]string, recommends bool, lw *lockWait) (pkgPlan, error) {
	var op string
	var args []string
	pinned := false
	for _, s := range specs {
		v := have[s.Name]
		switch state {
		case "absent":
			if v != "" && (s.Version == "" || versionMatches(v, s.Version, false)) {
				op = "remove"
				args = append(args, s.Name)
			}
		case "latest":
			op = "install"
			args = append(args, s.Name)
		default:
			if v == "" || (s.Version != "" && !versionMatches(v, s.Version, false)) {
				op = "install"
				args = append(args, s.String())
				pinned = pinned || s.Version != ""
			}
		}
	}
	if len(args) == 0 {
		return pkgPlan{}, nil
	}
	cmd := []string{op}
	if op == "install" {
		if !recommends {
			cmd = append(cmd, "--no-install-recommends")
		}
		if pinned {
			cmd = append(cmd, "--allow-downgrades")
		}
	}
	cmd = append(append(cmd, "--"), args...)
	res, err := lw.run(ctx, a.m, aptEnv, func(secs int) []string {
		return append([]string{"apt-get", "-s", "-q", "-o", "DPkg::Lock::Timeout=" + strconv.Itoa(secs)}, cmd...)
	}, nil)
	if err != nil {
		return pkgPlan{}, err
	}
	p := parseAptSimulation(res.Stdout)
	if op == "install" && !p.empty() {
		if err := aptReadAsNamed(p, specs, have); err != nil {
			return pkgPlan{}, err
		}
	}
	if !p.empty() {
		p.cmds = [][]string{cmd}
	}
	return p, nil
}

// aptReadAsNamed makes sure apt-get would install each package named that is not as asked
// under its own name. apt-get install takes a name no package has as something else: "NAME-"
// as NAME to remove, "NAME+" as NAME, one with "." or "+" as a regular expression over
// every package in the lists (all of whose matches it installs), a virtual package as the
// one that provides it. Any of those would change other packages than the task names.
func aptReadAsNamed(p pkgPlan, specs []pkgSpec, have map[string]string) error {
	base := func(n string) string { b, _, _ := strings.Cut(n, ":"); return b }
	inst := map[string]bool{}
	for _, c := range append(slices.Clone(p.installed), p.upgraded...) {
		inst[c.Name], inst[base(c.Name)] = true, true
	}
	var bad []string
	for _, s := range specs {
		v := have[s.Name]
		if v != "" && (s.Version == "" || versionMatches(v, s.Version, false)) {
			continue // as asked already ("latest" with nothing newer)
		}
		if !inst[s.Name] && !inst[base(s.Name)] {
			bad = append(bad, s.Name)
		}
	}
	if len(bad) == 0 {
		return nil
	}
	return fmt.Errorf("apt-get would install no package named %s, but %s: it reads a name that no package has otherwise (NAME- as a removal, a name with \".\" or \"+\" as a regular expression, a virtual package as its provider); name the real package",
		strings.Join(bad, ", "), planWords(p))
}

// planWords says in a few words what a plan would do, for messages.
func planWords(p pkgPlan) string {
	var w []string
	for _, part := range []struct {
		verb string
		cs   []pkgChange
	}{{"install", p.installed}, {"upgrade", p.upgraded}, {"remove", p.removed}} {
		if len(part.cs) == 0 {
			continue
		}
		var names []string
		for _, c := range part.cs {
			names = append(names, c.Name)
		}
		if len(names) > 10 {
			names = append(names[:10], fmt.Sprintf("and %d more", len(names)-10))
		}
		w = append(w, part.verb+" "+strings.Join(names, ", "))
	}
	return "would " + strings.Join(w, "; ")
}

func (a *aptManager) run(ctx context.Context, cmd []string, lw *lockWait) error {
	_, err := lw.run(ctx, a.m, aptEnv, func(secs int) []string {
		return append([]string{"apt-get", "-y", "-q", "-o", "DPkg::Lock::Timeout=" + strconv.Itoa(secs),
			"-o", "Dpkg::Options::=--force-confdef", "-o", "Dpkg::Options::=--force-confold"}, cmd...)
	}, nil)
	return err
}

var (
	// aptInst is apt-get -s's line for a package it would install or change:
	// "Inst jq (1.6-2.1 Debian:12/stable [amd64])", "Inst curl [7.88.1-10] (7.88.1-10+deb12u5 ...)".
	aptInst = regexp.MustCompile(`^Inst (\S+)(?: \[([^\]]*)\])? \((\S+)`)
	// aptRemv is its line for a package it would remove: "Remv jq [1.6-2.1]".
	aptRemv = regexp.MustCompile(`^(?:Remv|Purg) (\S+)(?: \[([^\]]*)\])?`)
)

// parseAptSimulation reads apt-get -s's Inst and Remv lines.
func parseAptSimulation(out string) pkgPlan {
	var p pkgPlan
	for _, l := range strings.Split(out, "\n") {
		l = strings.TrimRight(l, "\r")
		if m := aptInst.FindStringSubmatch(l); m != nil {
			if m[2] == "" {
				p.installed = append(p.installed, pkgChange{Name: m[1], Version: m[3]})
			} else {
				p.upgraded = append(p.upgraded, pkgChange{Name: m[1], Version: m[3], From: m[2]})
			}
		} else if m := aptRemv.FindStringSubmatch(l); m != nil {
			p.removed = append(p.removed, pkgChange{Name: m[1], Version: m[2]})
		}
	}
	sortChanges(p.installed)
	sortChanges(p.upgraded)
	sortChanges(p.removed)
	return p
}

// fmtFailure is the Failure of a command that exited non-zero: its output, bounded and
// redacted.
func fmtFailure(m *machine, argv []string, res host.Result) error {
	out := strings.TrimSpace(strings.TrimSpace(res.Stdout) + "\n" + strings.TrimSpace(res.Stderr))
	return &modules.Failure{Msg: fmt.Sprintf("%s exited with %d", m.red.Redact(strings.Join(argv, " ")), res.RC), Stderr: host.Tail(m.red.Redact(out), host.StderrTail)}
}
