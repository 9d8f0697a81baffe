package system

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/runbook/runbook/modules/host"
)

// rpmManager is dnf or yum with rpm, on Red Hat's family.
type rpmManager struct {
	m *machine
	// tool is "dnf" or "yum".
	tool string
}

func (r *rpmManager) name() string { return r.tool }

// dnf5 says whether dnf is dnf5, which has no exit_on_lock (it fails at once on a lock).
func (r *rpmManager) dnf5() bool { return r.tool == "dnf" && r.m.lookPath("dnf5") != "" }

// rpmQueryFormat prints NAME, [EPOCH:]VERSION-RELEASE and ARCH.
const rpmQueryFormat = `%{NAME}\t%|EPOCH?{%{EPOCH}:}:{}|%{VERSION}-%{RELEASE}\t%{ARCH}\n`

// query reads the installed packages with rpm -q; "NAME.ARCH" is that architecture's.
func (r *rpmManager) query(ctx context.Context, names []string) (map[string]string, error) {
	argv := append([]string{"rpm", "-q", "--qf", rpmQueryFormat, "--"}, names...)
	res, err := r.m.run.Run(ctx, host.Cmd{Argv: argv, Data: true})
	if err != nil {
		return nil, fmt.Errorf("%s: %w", strings.Join(argv, " "), err)
	}
	// rpm exits with the number of names not installed, and says so on stdout.
	if res.RC != 0 && strings.TrimSpace(res.Stderr) != "" {
		return nil, fmtFailure(r.m, argv, res)
	}
	return parseRPMQuery(res.Stdout, names), nil
}

// parseRPMQuery maps each name to its installed version from rpm -q's lines.
func parseRPMQuery(out string, names []string) map[string]string {
	have := map[string]string{}
	for _, l := range strings.Split(out, "\n") {
		f := strings.Split(l, "\t")
		if len(f) != 3 {
			continue // "package foo is not installed"
		}
		for _, n := range names {
			if have[n] == "" && (n == f[0] || n == f[0]+"."+f[2]) {
				have[n] = f[1]
			}
		}
	}
	return have
}

// cacheAge is not known: dnf and yum decide by metadata_expire.
func (r *rpmManager) cacheAge() (time.Duration, bool) { return 0, false }

// common are the options of every dnf or yum command the module runs.
func (r *rpmManager) common(recommends bool) []string {
	var o []string
	if !r.dnf5() {
		o = append(o, "--setopt=exit_on_lock=True")
	}
	if r.tool == "dnf" && !recommends {
		o = append(o, "--setopt=install_weak_deps=False")
	}
	return o
}

func (r *rpmManager) refresh(ctx context.Context, maxAge time.Duration, lw *lockWait) error {
	argv := append([]string{r.tool}, r.common(true)...)
	if maxAge > 0 {
		argv = append(argv, "--setopt=metadata_expire="+strconv.Itoa(int(maxAge.Seconds())))
	} else {
		argv = append(argv, "--refresh")
	}
	argv = append(argv, "makecache")
	_, err := lw.run(ctx, r.m, nil, func(int) []string { return argv }, nil)
	return err
}

// rpmSpec is a spec as dnf and yum name it: "jq-1.6-2.1".
func rpmSpec(s pkgSpec) string {
	if s.Version == "" {
		return s.Name
	}
	return s.Name + "-" + s.Version
}

// plan works out the dnf or yum commands and asks each what it would do (--assumeno).
func (r *rpmManager) plan(ctx context.Context, state string, specs []pkgSpec, have map[string]string, recommends bool, lw *lockWait) (pkgPlan, error) {
	var install, upgrade, remove []string
	for _, s := range specs {
		if strings.Contains(s.Name, ":") {
			return pkgPlan{}, fmt.Errorf("%s: NAME:ARCH is apt's syntax; %s names an architecture as NAME.ARCH", s.Name, r.tool)
		}
		v := have[s.Name]
		switch {
		case state == "absent":
			if v != "" && (s.Version == "" || versionMatches(v, s.Version, true)) {
				remove = append(remove, rpmSpec(s))
			}
		case v == "" || (s.Version != "" && !versionMatches(v, s.Version, true)):
			install = append(install, rpmSpec(s))
		case state == "latest":
			upgrade = append(upgrade, s.Name)
		}
	}
	var p pkgPlan
	for _, c := range []struct {
		verb  string
		names []string
	}{{"install", install}, {"upgrade", upgrade}, {"remove", remove}} {
		if len(c.names) == 0 {
			continue
		}
		verb := c.verb
		if verb == "upgrade" && r.tool == "yum" {
			verb = "update"
		}
		cmd := append(append(append(r.common(recommends), verb), "--"), c.names...)
		res, err := lw.run(ctx, r.m, nil, func(int) []string {
			return append([]string{r.tool, "--assumeno"}, cmd...)
		}, assumeNoAccepted)
		if err != nil {
			return pkgPlan{}, err
		}
		sub := parseDnfTransaction(res.Stdout)
		if sub.empty() {
			continue
		}
		p.installed = append(p.installed, sub.installed...)
		p.upgraded = append(p.upgraded, sub.upgraded...)
		p.removed = append(p.removed, sub.removed...)
		p.cmds = append(p.cmds, cmd)
	}
	// dnf4 and yum do not print the version an upgrade replaces: rpm knows it.
	var need []string
	for _, c := range p.upgraded {
		if c.From == "" {
			need = append(need, c.Name)
		}
	}
	if len(need) > 0 {
		was, err := r.query(ctx, need)
		if err != nil {
			return pkgPlan{}, err
		}
		for i, c := range p.upgraded {
			if c.From == "" {
				p.upgraded[i].From = was[c.Name]
			}
		}
	}
	sortChanges(p.installed)
	sortChanges(p.upgraded)
	sortChanges(p.removed)
	return p, nil
}

// assumeNoAccepted: --assumeno exits 0 with nothing to do, and 1 after printing the
// transaction it refused ("Operation aborted.", yum's "Exiting on user command").
func assumeNoAccepted(res host.Result) bool {
	if res.RC == 0 {
		return true
	}
	if res.RC != 1 || strings.Contains(res.Stderr, "Error") || strings.Contains(res.Stdout, "\nError") {
		return false
	}
	return !parseDnfTransaction(res.Stdout).empty()
}

func (r *rpmManager) run(ctx context.Context, cmd []string, lw *lockWait) error {
	_, err := lw.run(ctx, r.m, nil, func(int) []string {
		return append([]string{r.tool, "-y"}, cmd...)
	}, nil)
	return err
}

// dnfSection maps the headings of dnf's and yum's transaction table to what their
// packages undergo: i(nstall), u(pgrade), r(emove); others ("Reinstalling:", "Skipping
// packages with conflicts:") are not changes of version.
func dnfSection(h string) byte {
	h = strings.ToLower(strings.TrimSuffix(h, ":"))
	switch {
	case strings.HasPrefix(h, "installing"):
		return 'i'
	case strings.HasPrefix(h, "upgrading"), strings.HasPrefix(h, "updating"), strings.HasPrefix(h, "downgrading"):
		return 'u'
	case strings.HasPrefix(h, "removing"), strings.HasPrefix(h, "erasing"):
		return 'r'
	}
	return 0
}

// parseDnfTransaction reads the transaction table that dnf (4 and 5) and yum print before
// they ask: a heading ("Installing:", "Installing dependencies:", "Upgrading:",
// "Removing unused dependencies:" ...) then one line per package, " NAME ARCH VERSION
// REPO SIZE". A name too long for its column is alone on its line, the rest on the next;
// dnf5 gives an upgrade's old version on a "replacing" line under it.
func parseDnfTransaction(out string) pkgPlan {
	var p pkgPlan
	var sec byte
	pending := ""
	for _, l := range strings.Split(out, "\n") {
		l = strings.TrimRight(l, "\r")
		if l == "" {
			continue
		}
		if l[0] != ' ' {
			sec = dnfSection(l)
			pending = ""
			if !strings.HasSuffix(l, ":") {
				sec = 0 // "Transaction Summary", a rule of "=", the summary's counts
			}
			continue
		}
		f := strings.Fields(l)
		if sec == 0 || len(f) == 0 {
			continue
		}
		if f[0] == "replacing" && len(f) >= 4 && sec == 'u' && len(p.upgraded) > 0 {
			p.upgraded[len(p.upgraded)-1].From = f[3]
			continue
		}
		if len(f) == 1 && pending == "" {
			pending = f[0]
			continue
		}
		if pending != "" {
			f = append([]string{pending}, f...)
			pending = ""
		}
		if len(f) < 4 {
			continue
		}
		c := pkgChange{Name: f[0], Version: f[2]}
		switch sec {
		case 'i':
			p.installed = append(p.installed, c)
		case 'u':
			p.upgraded = append(p.upgraded, c)
		case 'r':
			p.removed = append(p.removed, c)
		}
	}
	return p
}
