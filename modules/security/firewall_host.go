package security

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"

	"github.com/runbook/runbook/modules"
	"github.com/runbook/runbook/modules/host"
	"github.com/runbook/runbook/modules/hostfs"
)

var _ modules.Runner[fwArgs] = Firewall{}

// fwRun collects one run's findings: what it did or would do, what was already right, the
// diff sections and the warnings.
type fwRun struct {
	// run runs the host's programs; red redacts command lines in errors.
	run   host.Runner
	red   *modules.Redactor
	apply bool
	res   *modules.Result
	// data is res.Data, filled in as the parts run.
	data    *fwResult
	did     []string
	fine    []string
	secs    []section
	changed bool
}

func (r *fwRun) change(msg string, sec ...section) {
	r.changed = true
	r.did = append(r.did, msg)
	r.secs = append(r.secs, sec...)
}

func (r *fwRun) warn(format string, a ...any) {
	r.res.Warnings = append(r.res.Warnings, fmt.Sprintf(format, a...))
}

// Run turns the firewall parts the arguments name off, in order: firewalld, the iptables
// services, the flush and policies, the save. Check and apply share this path; only apply
// changes the host.
func (m Firewall) Run(ctx context.Context, env *modules.Env, args fwArgs, apply bool) (*modules.Result, error) {
	if errs := checkPolicies(args.Policies); len(errs) > 0 {
		return nil, errs[0]
	}
	data := &fwResult{Removed: map[string]int{}, Removed6: map[string]int{}, ChainsRemoved: map[string]int{},
		Units: map[string]string{}, Saved: []string{}}
	r := &fwRun{run: m.runner(env), red: env.Redactor(), apply: apply, data: data,
		res: &modules.Result{Status: modules.StatusOK, Data: data}}

	if args.Firewalld != nil && !m.noSystemdNoScripts("firewalld") {
		sc, err := r.systemctl()
		if err != nil {
			return nil, fmt.Errorf("firewalld: %w", err)
		}
		u, err := sc.Show(ctx, "firewalld.service")
		if err != nil {
			return r.result(), err
		}
		if u, err = r.unit(ctx, sc, u, *args.Firewalld); err != nil {
			return r.result(), err
		}
		data.Firewalld = strings.TrimPrefix(u.Describe(), u.Name+": ")
	}
	if args.Firewalld != nil && m.noSystemdNoScripts("firewalld") {
		data.Firewalld = "not installed"
		r.fine = append(r.fine, "firewalld is not installed")
	}
	if want := args.IptablesService; want != nil && m.noSystemdNoScripts("iptables", "ip6tables", "netfilter-persistent") {
		r.fine = append(r.fine, "no iptables service installed")
	} else if want != nil {
		sc, err := r.systemctl()
		if err != nil {
			return nil, fmt.Errorf("iptables_service: %w", err)
		}
		names := []string{"iptables.service", "netfilter-persistent.service"}
		if args.IPv6 {
			names = append(names, "ip6tables.service")
		}
		for _, n := range names {
			u, err := sc.Show(ctx, n)
			if err != nil {
				return r.result(), err
			}
			if !u.Installed() {
				continue
			}
			if u, err = r.unit(ctx, sc, u, *want); err != nil {
				return r.result(), err
			}
			data.Units[n] = strings.TrimPrefix(u.Describe(), u.Name+": ")
		}
		if len(data.Units) == 0 {
			r.fine = append(r.fine, "no iptables service installed")
		}
	}
	if args.IptablesFlush || args.Save || len(args.Policies) > 0 {
		if err := m.iptables(ctx, r, args); err != nil {
			return r.result(), err
		}
	}
	return r.result(), nil
}

// result finishes the Result: status, message and diff.
func (r *fwRun) result() *modules.Result {
	res := r.res
	if r.changed {
		res.Status = modules.DiffStatus(r.apply)
		res.Msg = strings.Join(r.did, "; ")
		res.Diff = sectionsDiff("firewall", r.secs)
	} else {
		res.Msg = strings.Join(r.fine, "; ")
	}
	return res
}

// runner runs the host's programs; dirs, in tests, are the only places it finds them.
func (m Firewall) runner(env *modules.Env) host.Runner { return host.Exec{Env: env, Dirs: m.dirs} }

// noSystemdNoScripts reports a host without systemctl that has none of the named services
// as init scripts either: on it those services are simply not installed, which every
// wanted state accepts.
func (m Firewall) noSystemdNoScripts(names ...string) bool {
	if m.runner(nil).LookPath("systemctl") != "" {
		return false
	}
	for _, n := range names {
		if fi, err := hostfs.Stat(m.root.Path("/etc/init.d/" + n)); err == nil && fi != nil {
			return false
		}
	}
	return true
}

// systemctl is the firewall's way to its units, the service module's code; the firewalld
// and service parts need a systemd host.
func (r *fwRun) systemctl() (host.Systemctl, error) {
	sc := host.Systemctl{R: r.run, Red: r.red, Timeout: toolTimeout}
	if !sc.Available() {
		return sc, errors.New("systemctl not found: managing units needs a host that runs systemd")
	}
	return sc, nil
}

// unitWant is what a wanted state of the firewall's units asks of systemd. "disabled" and
// "masked" hold the unit: its enablement changes before it is stopped, so nothing (a D-Bus
// activation, a dependency) starts it again in between.
func unitWant(want string) host.Want {
	no, yes := false, true
	switch want {
	case unitDisabled:
		return host.Want{State: host.Stopped, Enabled: &no, Masked: &no, Hold: true}
	case unitMasked:
		return host.Want{State: host.Stopped, Masked: &yes, Hold: true}
	}
	return host.Want{State: host.Stopped}
}

// unit brings a unit from its state u to want (apply) or says what that would take
// (check), and returns its state after the task (in check mode, as it is).
func (r *fwRun) unit(ctx context.Context, sc host.Systemctl, u host.Unit, want string) (host.Unit, error) {
	name := u.Name
	if !u.Installed() {
		r.fine = append(r.fine, name+" is not installed")
		return u, nil
	}
	plan, err := host.PlanUnit(u, unitWant(want))
	if err != nil {
		return u, err
	}
	if len(plan.Steps) == 0 {
		r.fine = append(r.fine, u.Describe())
		return u, nil
	}
	r.change(modules.Tense(r.apply, "", "would ")+stepWords(plan.Steps, r.apply)+" "+name,
		section{title: name, before: u.Describe(), after: plan.After.Describe()})
	if !r.apply {
		return u, nil
	}
	return sc.Converge(ctx, u, unitWant(want))
}

// stepWords renders unit steps for a message: "disable and stop", "disabled and stopped".
func stepWords(steps []host.Step, past bool) string {
	pastOf := map[string]string{"stop": "stopped", "disable": "disabled", "mask": "masked", "unmask": "unmasked"}
	words := make([]string, 0, len(steps))
	for _, s := range steps {
		w := s.Verb
		if p, ok := pastOf[w]; ok && past {
			w = p
		}
		if !slices.Contains(words, w) {
			words = append(words, w)
		}
	}
	return strings.Join(words, " and ")
}

// iptables does the flush, policies and save for each address family.
func (m Firewall) iptables(ctx context.Context, r *fwRun, args fwArgs) error {
	procRoot := m.root.Path("/proc/thread-self/net")
	backend, tools, err := findTools(ctx, r.run, procRoot, args.IPv6)
	r.data.Backend = backend
	if err != nil {
		return err
	}
	if backend == backendMissing {
		// Without the tools, the kernel's list of legacy tables is the only truth there is.
		for _, f := range []string{"ip_tables_names", "ip6_tables_names"} {
			if t := legacyTables(filepath.Join(procRoot, f)); len(t) > 0 && (args.IPv6 || f == "ip_tables_names") {
				return fmt.Errorf("the kernel holds legacy iptables tables (%s), but iptables is not installed to read or flush them", strings.Join(t, ", "))
			}
		}
		r.warn("iptables is not installed: there are no iptables rules to flush, set or save")
		r.fine = append(r.fine, "iptables is not installed")
		return nil
	}
	// Every family is read and planned before any is changed, so that a refusal (the
	// lockout guard on IPv6, say) leaves IPv4 untouched too.
	var preps []familyPlan
	for _, t := range tools {
		p, err := m.prepare(ctx, r, t, backend, args)
		if err != nil {
			return err
		}
		preps = append(preps, p)
	}
	for _, p := range preps {
		t := p.t
		after, err := m.family(ctx, r, p, args)
		if err != nil {
			return err
		}
		if args.Save {
			if err := m.save(ctx, r, args, t, after); err != nil {
				return err
			}
		}
	}
	return nil
}

// familyPlan is one address family as read, and what it needs.
type familyPlan struct {
	t       ipTools
	backend string
	before  ruleset
	plan    flushPlan
}

// ipv6 says the tools are IPv6's, whose findings go to the result's "6" fields.
func (t ipTools) ipv6() bool { return t.family == "IPv6" }

// prepare reads one address family's ruleset (IPv4 or IPv6) and plans its flush and
// policies; it changes nothing.
func (m Firewall) prepare(ctx context.Context, r *fwRun, t ipTools, backend string, args fwArgs) (familyPlan, error) {
	out, err := r.tool(ctx, "", t.save)
	if err != nil {
		return familyPlan{}, err
	}
	before, err := parseSave(out)
	if err != nil {
		return familyPlan{}, fmt.Errorf("read %s: %w", filepath.Base(t.save), err)
	}
	if t.ipv6() {
		r.data.Rules6 = before.text()
	} else {
		r.data.Rules = before.text()
	}
	for _, n := range before.notes {
		if !strings.HasPrefix(n, "Table `") {
			r.warn("%s: %s", filepath.Base(t.save), n)
		}
	}
	if backend == backendNFT {
		if lt := legacyTables(t.procNames); len(lt) > 0 {
			r.warn("%s legacy iptables tables exist too (%s); they are not touched: the host's iptables uses nf_tables", t.family, strings.Join(lt, ", "))
		}
	}

	plan, err := planFlush(before, args.Policies, args.IptablesFlush, args.Tables)
	if err != nil {
		return familyPlan{}, fmt.Errorf("%s: %w", t.family, err)
	}
	return familyPlan{t: t, backend: backend, before: before, plan: plan}, nil
}

// family flushes and sets policies for one address family as prepared, and returns its
// ruleset after the task (in check mode, as planned).
func (m Firewall) family(ctx context.Context, r *fwRun, p familyPlan, args fwArgs) (ruleset, error) {
	t, backend, before, plan := p.t, p.backend, p.before, p.plan
	policies, flush := args.Policies, args.IptablesFlush
	removed := r.data.Removed
	if t.ipv6() {
		removed = r.data.Removed6
	}
	for name, n := range plan.removed {
		removed[name] = n
	}
	for name, n := range plan.chains {
		if n > 0 {
			r.data.ChainsRemoved[name] += n
		}
	}
	after := plan.after
	tool := filepath.Base(t.save)
	if !plan.changes() {
		var what []string
		if flush {
			what = append(what, "no rules to flush")
		}
		if len(policies) > 0 {
			what = append(what, "policies as wanted")
		}
		if len(what) == 0 {
			what = append(what, "ruleset read")
		}
		r.fine = append(r.fine, fmt.Sprintf("%s: %s (%s)", t.family, strings.Join(what, ", "), backend))
		return after, nil
	}
	r.change(plan.message(t.family, r.apply), section{title: tool + " (" + backend + ")", before: before.text(), after: plan.after.text()})
	if !r.apply {
		return after, nil
	}
	if len(plan.restore) > 0 {
		if _, err := r.tool(ctx, restoreInput(plan.restore), t.restore); err != nil {
			return after, fmt.Errorf("flush %s: %w", t.family, err)
		}
	}
	for _, c := range plan.setPolicies {
		if _, err := r.tool(ctx, "", t.cmd, "-w", "-t", "filter", "-P", c, policies[c]); err != nil {
			return after, fmt.Errorf("set %s policy: %w", c, err)
		}
	}
	// The rules as the kernel has them now are the result; a table that still has rules
	// (something re-added them) is a failure, not a success.
	out, err := r.tool(ctx, "", t.save)
	if err != nil {
		return after, err
	}
	now, err := parseSave(out)
	if err != nil {
		return after, fmt.Errorf("read %s after the flush: %w", tool, err)
	}
	after = now
	if again, _ := planFlush(now, policies, flush, args.Tables); again.changes() {
		return after, fmt.Errorf("%s: after the flush, %s still shows: %s", t.family, tool, again.message(t.family, false))
	}
	return after, nil
}

// flushPlan is what a family's ruleset needs.
type flushPlan struct {
	// after is the ruleset as it will be.
	after ruleset
	// restore are the tables to replace with their flushed form.
	restore []ipTable
	// setPolicies are filter chains whose policy is set on its own (no flush of filter).
	setPolicies []string
	// removed counts the rules per flushed table; chains the user chains.
	removed, chains map[string]int
	// policyChanges says which policies change, e.g. "INPUT DROP → ACCEPT".
	policyChanges []string
}

func (p flushPlan) changes() bool { return len(p.restore) > 0 || len(p.setPolicies) > 0 }

// message says what the plan does: "flushed 12 rules (filter 9, nat 3), 1 user chain;
// policy INPUT DROP → ACCEPT".
func (p flushPlan) message(family string, apply bool) string {
	total, chains := 0, 0
	var per []string
	for _, name := range tableOrder(p.removed) {
		total += p.removed[name]
		chains += p.chains[name]
		if p.removed[name] > 0 {
			per = append(per, fmt.Sprintf("%s %d", name, p.removed[name]))
		}
	}
	var parts []string
	if total > 0 || chains > 0 {
		s := fmt.Sprintf("%s %d %s", modules.Tense(apply, "flushed", "would flush"), total, plural(total, "rule", "rules"))
		if len(per) > 0 {
			s += " (" + strings.Join(per, ", ") + ")"
		}
		if chains > 0 {
			s += fmt.Sprintf(" and %d user %s", chains, plural(chains, "chain", "chains"))
		}
		parts = append(parts, s)
	}
	if len(p.policyChanges) > 0 {
		parts = append(parts, modules.Tense(apply, "set", "would set")+" filter "+plural(len(p.policyChanges), "policy", "policies")+" "+strings.Join(p.policyChanges, ", "))
	}
	if len(parts) == 0 {
		parts = append(parts, modules.Tense(apply, "reset", "would reset")+" the flushed tables")
	}
	msg := strings.Join(parts, ", ")
	if family == "IPv6" {
		msg = "IPv6: " + msg
	}
	return msg
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

// tableOrder returns the keys of a per-table map in report order.
func tableOrder[V any](m map[string]V) []string {
	var names []string
	for n := range m {
		names = append(names, n)
	}
	slices.SortFunc(names, func(a, b string) int {
		ia, ib := slices.Index(knownTables, a), slices.Index(knownTables, b)
		if ia < 0 {
			ia = len(knownTables)
		}
		if ib < 0 {
			ib = len(knownTables)
		}
		if ia != ib {
			return ia - ib
		}
		return strings.Compare(a, b)
	})
	return names
}

// defaultFlushTables are the tables a flush empties when the task names none: the filter
// table only, as the guide's "iptables -F" and Ansible's iptables module (table: filter) do.
// The nat and mangle tables hold what libvirt, Docker and the like add for their networks
// and add again when they restart: emptying them would remove the guests' NAT and make
// every later check report drift that nothing can settle.
var defaultFlushTables = []string{"filter"}

// planFlush decides, from the current ruleset, what the flush and the policies change. The
// flush empties the selected tables (defaultFlushTables when none are). A
// flushed table holds no rules and no user chains; policies apply to the filter table,
// with the flush when filter is flushed, else on their own. A table that does not exist
// is not created for a flush; for a policy other than ACCEPT it is (iptables -P does
// that), since an absent filter table accepts everything.
func planFlush(cur ruleset, policies map[string]string, flush bool, selected []string) (flushPlan, error) {
	p := flushPlan{removed: map[string]int{}, chains: map[string]int{}}
	if len(selected) == 0 {
		selected = defaultFlushTables
	}
	filterFlushed := false
	var after []ipTable
	for _, t := range cur.tables {
		if !flush || !slices.Contains(selected, t.name) {
			after = append(after, t)
			continue
		}
		if t.incompatible {
			return p, fmt.Errorf("table %s holds rules iptables cannot read (made with nft); remove them with nft", t.name)
		}
		p.removed[t.name] = len(t.rules)
		p.chains[t.name] = len(t.userChains())
		ft := t.flushed(policies)
		if t.name == "filter" {
			filterFlushed = true
			if len(t.rules) > 0 {
				// Without rules, a DROP policy on INPUT or OUTPUT drops everything, the
				// controller's connection included: only an explicit policy says that is meant.
				for _, c := range []string{"INPUT", "OUTPUT"} {
					if _, explicit := policies[c]; !explicit && ft.policy(c) == "DROP" {
						return p, fmt.Errorf("flushing the filter table with the %s policy DROP would cut this host off (runbook's connection included); set policies = { %s = \"ACCEPT\" }, or \"DROP\" if that is meant", c, c)
					}
				}
			}
		}
		if ft.text() != t.text() {
			p.restore = append(p.restore, ft)
		}
		after = append(after, ft)
	}
	if len(policies) > 0 && !filterFlushed {
		idx := slices.IndexFunc(after, func(t ipTable) bool { return t.name == "filter" })
		var ft ipTable
		if idx >= 0 {
			ft = after[idx]
		} else {
			ft = ipTable{name: "filter", chains: []ipChain{{"INPUT", "ACCEPT"}, {"FORWARD", "ACCEPT"}, {"OUTPUT", "ACCEPT"}}}
		}
		nt := ipTable{name: "filter", rules: ft.rules, incompatible: ft.incompatible}
		for _, c := range ft.chains {
			if want, ok := policies[c.name]; ok && c.policy != "-" && c.policy != want {
				p.setPolicies = append(p.setPolicies, c.name)
				c.policy = want
			}
			nt.chains = append(nt.chains, c)
		}
		if len(p.setPolicies) > 0 {
			if idx >= 0 {
				after[idx] = nt
			} else {
				after = append(after, nt)
			}
		}
	}
	if filter, ok := cur.table("filter"); ok {
		for _, c := range filterChains {
			want, ok := policies[c]
			if old := filter.policy(c); ok && old != "" && old != want {
				p.policyChanges = append(p.policyChanges, fmt.Sprintf("%s %s → %s", c, old, want))
			}
		}
	} else {
		for _, c := range p.setPolicies {
			p.policyChanges = append(p.policyChanges, fmt.Sprintf("%s ACCEPT → %s", c, policies[c]))
		}
	}
	p.after = ruleset{tables: after}
	return p, nil
}

// savePath is where save writes a family's ruleset: the explicit path, else the place the
// distribution's boot scripts read it from.
func (m Firewall) savePath(args fwArgs, family string) (string, error) {
	arg, sysconfig, debian, given := "save_path", "/etc/sysconfig/iptables", "/etc/iptables/rules.v4", args.SavePath
	if family == "IPv6" {
		arg, sysconfig, debian, given = "save_path6", "/etc/sysconfig/ip6tables", "/etc/iptables/rules.v6", args.SavePath6
	}
	if given != nil && *given != "" {
		return *given, nil
	}
	for _, p := range []string{sysconfig, debian} {
		if fi, err := hostfs.Stat(m.root.Path(filepath.Dir(p))); err == nil && fi != nil && fi.IsDir() {
			return p, nil
		}
	}
	return "", fmt.Errorf("save: this host has neither /etc/sysconfig nor /etc/iptables; set %s", arg)
}

// save writes the family's ruleset after the task where the boot scripts restore it from,
// when the file's rules differ from it (comments and counters aside).
func (m Firewall) save(ctx context.Context, r *fwRun, args fwArgs, t ipTools, after ruleset) error {
	path, err := m.savePath(args, t.family)
	if err != nil {
		return err
	}
	r.data.Saved = append(r.data.Saved, path)
	file := m.root.Path(path)
	fi, err := hostfs.Lstat(file)
	switch {
	case err == nil && fi == nil:
		if dfi, err := hostfs.Stat(filepath.Dir(file)); err != nil || dfi == nil || !dfi.IsDir() {
			return fmt.Errorf("save: %s does not exist; create it first", filepath.Dir(path))
		}
	case err != nil:
		return fmt.Errorf("save: inspect %s: %w", path, err)
	case !fi.Mode().IsRegular():
		return fmt.Errorf("save: %s is not a regular file", path)
	}
	old, exists, err := hostfs.ReadOptional(file)
	if err != nil {
		return fmt.Errorf("save: read %s: %w", path, err)
	}
	want := after.text()
	if exists {
		if cur, err := parseSave(string(old)); err == nil && cur.text() == want {
			r.fine = append(r.fine, path+" holds the ruleset")
			return nil
		}
	}
	content := want
	if r.apply {
		// Write what iptables-save prints, the form the restore service expects.
		if content, err = r.tool(ctx, "", t.save); err != nil {
			return err
		}
	}
	before := string(old)
	if !exists {
		before = "(absent)\n"
	}
	r.change(modules.Tense(r.apply, "saved the ", "would save the ")+t.family+" ruleset to "+path, section{title: path, before: before, after: content})
	if !r.apply {
		return nil
	}
	return writeAtomic(file, []byte(content), fileMode(fi, 0o600), fi)
}
