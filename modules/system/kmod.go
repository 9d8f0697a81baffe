package system

import (
	"context"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/zclconf/go-cty/cty"

	"github.com/runbook/runbook/modules"
	"github.com/runbook/runbook/modules/hostfs"
)

var (
	_ modules.Runner[kmodArgs]    = KernelModule{}
	_ modules.Validator[kmodArgs] = KernelModule{}
)

// KernelModule loads or unloads a kernel module and keeps its boot-time configuration.
type KernelModule struct {
	// test is the machine a unit test runs it on; nil: the helper's host.
	test *machine
}

// kmodArgs are the kernel_module module's arguments.
type kmodArgs struct {
	Name  string `cty:"name"`
	State string `cty:"state"`
	// Params is nil when options are not managed; a null value leaves that parameter out.
	Params     map[string]*string `cty:"params"`
	Persistent bool               `cty:"persistent"`
	Runtime    bool               `cty:"runtime"`
}

// present reports whether the module is wanted.
func (a kmodArgs) present() bool { return a.State != "absent" }

// params are the wanted parameters (null values left out), nil when unmanaged.
func (a kmodArgs) params() map[string]string {
	if a.Params == nil {
		return nil
	}
	out := make(map[string]string, len(a.Params))
	for k, v := range a.Params {
		if v != nil {
			out[k] = *v
		}
	}
	return out
}

// kmodResult is what the kernel_module module returns.
type kmodResult struct {
	Name          string            `cty:"name"`
	Runtime       string            `cty:"runtime"`
	Persistent    bool              `cty:"persistent"`
	Options       string            `cty:"options"`
	RuntimeParams map[string]string `cty:"runtime_params"`
	Holders       []string          `cty:"holders"`
}

var (
	modNamePattern   = regexp.MustCompile(`^[A-Za-z0-9_-]+$`)
	modParamPattern  = regexp.MustCompile(`^[A-Za-z0-9_]+$`)
	optionsPrefix    = regexp.MustCompile(`^\s*options\s+\S+\s*`)
	procModulesState = map[string]string{"Live": "loaded", "Loading": "loaded", "Unloading": "absent"}
)

func (KernelModule) Info() modules.Info {
	return modules.Info{
		Name:    "kernel_module",
		Family:  "system",
		Summary: "Load or unload a kernel module, with its options and whether it loads at boot.",
		Description: `Manages three things and reports each: the running kernel (runtime), a modules-load.d file
that loads the module at boot (/etc/modules-load.d/NAME.conf, with persistent = true), and its options
(an "options NAME key=value..." line in /etc/modprobe.d/NAME.conf, from params). Files are edited in
place and rewritten atomically: other lines (blacklist, install, comments) stay, and a file left with
no settings is removed. Dashes and underscores in names are the same, as for modprobe.

The running state comes from /proc/modules (loaded modules, their users) and /sys/module (built-in
modules appear there too, and the modules.builtin list of /lib/modules/RELEASE names the rest). A
built-in module counts as loaded and cannot be unloaded: state = "absent" on one is an error that
says so, and its params cannot apply (built-in modules take options on the kernel command line, as
NAME.key=value: a warning says so). Modules are loaded with modprobe, which resolves dependencies
and aliases and applies the modprobe.d options, none of which the bare finit_module system call does.
Check mode asks "modprobe --dry-run" whether a load or unload would work, and refuses up front what
cannot: a kernel without module support, kernel.modules_disabled = 1, a helper without
CAP_SYS_MODULE, a module in use.

When the module is loaded with parameter values other than params, the new options take effect at
its next load: a warning names them, and the task reports reboot_required when it changed the
options file.

Where the running kernel's modules cannot be seen at all (no /proc/modules and no /sys/module, as
in a systemd-nspawn container) the runtime state is "unknown": check reports unknown (or the files'
drift), apply manages the files only and warns. runtime = false manages the files only, by choice.
runbook's lab hosts are such containers, and the lab machine's kernel has no loadable modules, so
loading and unloading are proven there only by unit tests against fixtures; the files are proven on
the lab.`,
		Schema: modules.Schema{
			Args: []modules.Arg{
				{Name: "name", Type: cty.String, Required: true, Pattern: modNamePattern,
					PatternHelp: `a module name such as "bonding" or "8021q"`, Doc: "The module."},
				{Name: "state", Type: cty.String, Default: cty.StringVal("present"), OneOf: []string{"present", "absent"},
					Doc: `"present": loaded, and loaded at boot with persistent; "absent": unloaded, and its lines removed from both files.`},
				{Name: "params", Type: cty.Map(cty.String),
					Doc: `Module options, e.g. { max_bonds = "0" }: the whole options line for the module in /etc/modprobe.d/NAME.conf ({} removes it). Unset leaves that file alone.`},
				{Name: "persistent", Type: cty.Bool, Default: cty.True,
					Doc: "Load the module at boot: /etc/modules-load.d/NAME.conf lists it (false removes it from there)."},
				{Name: "runtime", Type: cty.Bool, Default: cty.True,
					Doc: "Also load or unload the module in the running kernel. false manages the files only (for an image, or a host that cannot load modules now)."},
			},
		},
		Returns: []modules.Field{
			{Name: "name", Type: cty.String, Doc: "The module's name as the kernel writes it (underscores)."},
			{Name: "runtime", Type: cty.String, Doc: `The running kernel after the task: "loaded", "builtin", "absent" or "unknown" (cannot be seen here).`},
			{Name: "persistent", Type: cty.Bool, Doc: "Whether /etc/modules-load.d/NAME.conf loads it at boot, after the task."},
			{Name: "options", Type: cty.String, Doc: `The options line for it in /etc/modprobe.d/NAME.conf after the task ("" when none).`},
			{Name: "runtime_params", Type: cty.Map(cty.String), Doc: "The loaded module's current values of the params named, from /sys/module/NAME/parameters."},
			{Name: "holders", Type: cty.List(cty.String), Doc: "Modules that use it (from /proc/modules)."},
		},
		Examples: []modules.Example{
			{Title: "The bonding driver, loaded now and at boot, without the default bond0", HCL: `task "bonding" {
  kernel_module {
    name   = "bonding"
    params = { max_bonds = "0" }
  }
}`},
			{Title: "802.1Q VLANs", HCL: `task "8021q" {
  kernel_module {
    name = "8021q"
  }
}`},
			{Title: "Unload a driver and never load it at boot", HCL: `task "no floppy" {
  kernel_module {
    name  = "floppy"
    state = "absent"
  }
}`},
		},
	}
}

// Validate checks params against state, and each parameter's name and value.
func (KernelModule) Validate(args kmodArgs) []modules.ArgError {
	var errs []modules.ArgError
	if args.Params == nil {
		return nil
	}
	if !args.present() {
		errs = append(errs, modules.ArgError{Arg: "params", Msg: `params is not used with state = "absent" (its options line is removed).`})
	}
	for _, k := range slices.Sorted(maps.Keys(args.Params)) {
		if !modParamPattern.MatchString(k) {
			errs = append(errs, modules.ArgError{Arg: "params", Msg: fmt.Sprintf("%q is not a module parameter name (letters, digits, underscores).", k)})
		}
		if v := args.Params[k]; v != nil && strings.ContainsAny(*v, "\"\n\r") {
			errs = append(errs, modules.ArgError{Arg: "params", Msg: fmt.Sprintf("The value of %s must be one line without double quotes.", k)})
		}
	}
	return errs
}

// modName is the kernel's spelling of a module name: modprobe treats - and _ alike, the
// kernel writes _.
func modName(n string) string { return strings.ReplaceAll(n, "-", "_") }

// procModule is one line of /proc/modules.
type procModule struct {
	name    string
	size    int
	refs    int
	holders []string
	state   string // Live, Loading, Unloading
}

// parseProcModules reads /proc/modules: "name size refcount holders state address [taints]",
// holders a comma-separated list ending in a comma, or "-".
func parseProcModules(b []byte) map[string]procModule {
	out := map[string]procModule{}
	for _, l := range strings.Split(string(b), "\n") {
		f := strings.Fields(l)
		if len(f) < 5 {
			continue
		}
		pm := procModule{name: f[0], state: f[4]}
		pm.size, _ = strconv.Atoi(f[1])
		pm.refs, _ = strconv.Atoi(f[2])
		if f[3] != "-" {
			for _, h := range strings.Split(f[3], ",") {
				if h != "" {
					pm.holders = append(pm.holders, h)
				}
			}
		}
		out[pm.name] = pm
	}
	return out
}

// modRuntime is what the running kernel says about a module.
type modRuntime struct {
	state string // loaded, builtin, absent, unknown
	mod   procModule
	// why says why the state is unknown, or why loading cannot work ("" when it can).
	why, cannotLoad string
}

// moduleRuntime reads /proc/modules, /sys/module and modules.builtin.
func moduleRuntime(m *machine, name string) modRuntime {
	procB, procErr := os.ReadFile(m.path("/proc/modules"))
	_, sysErr := os.Stat(m.path("/sys/module"))
	_, inSys := os.Stat(m.path("/sys/module/" + name))
	builtin := listedBuiltin(m, name)
	switch {
	case procErr == nil:
		if pm, ok := parseProcModules(procB)[name]; ok {
			return modRuntime{state: procModulesState[pm.state], mod: pm}
		}
		if inSys == nil || builtin {
			return modRuntime{state: "builtin"}
		}
		return modRuntime{state: "absent"}
	case sysErr == nil:
		// /sys/module without /proc/modules: a kernel built without loadable modules.
		if inSys == nil || builtin {
			return modRuntime{state: "builtin"}
		}
		return modRuntime{state: "absent", cannotLoad: "this kernel was built without loadable module support (no /proc/modules), and " + name + " is not built in"}
	case builtin:
		return modRuntime{state: "builtin"}
	}
	return modRuntime{state: "unknown", why: "the running kernel's modules cannot be seen here (no /proc/modules and no /sys/module: a container?)"}
}

// listedBuiltin reports whether /lib/modules/RELEASE/modules.builtin lists the module.
func listedBuiltin(m *machine, name string) bool {
	rel := m.release()
	if rel == "" {
		return false
	}
	for _, dir := range []string{"/lib/modules/", "/usr/lib/modules/"} {
		b, err := os.ReadFile(m.path(dir + rel + "/modules.builtin"))
		if err != nil {
			continue
		}
		for _, l := range strings.Split(string(b), "\n") {
			base := strings.TrimSuffix(filepath.Base(strings.TrimSpace(l)), ".ko")
			if base != "" && modName(base) == name {
				return true
			}
		}
		return false
	}
	return false
}

// loadBlocker says why this helper cannot load or unload modules, or "".
func loadBlocker(m *machine) string {
	if b, err := os.ReadFile(m.path("/proc/sys/kernel/modules_disabled")); err == nil && strings.TrimSpace(string(b)) == "1" {
		return "module loading is disabled on this host (kernel.modules_disabled = 1, until reboot)"
	}
	if b, err := os.ReadFile(m.path("/proc/self/status")); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(l, "CapEff:"); ok {
				if caps, err := strconv.ParseUint(strings.TrimSpace(v), 16, 64); err == nil && caps&(1<<16) == 0 {
					return "the helper lacks CAP_SYS_MODULE (a container, or a restricted sudo?)"
				}
			}
		}
	}
	return ""
}

// formatOptions renders params as an options line, keys sorted, values with spaces quoted.
func formatOptions(name string, params map[string]string) string {
	keys := make([]string, 0, len(params))
	for k := range params {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	b.WriteString("options " + name)
	for _, k := range keys {
		v := params[k]
		if v == "" || strings.ContainsAny(v, " \t") {
			v = `"` + v + `"`
		}
		b.WriteString(" " + k + "=" + v)
	}
	return b.String()
}

// optionWords splits the rest of an options line into words; double quotes group.
func optionWords(s string) []string {
	var out []string
	var cur strings.Builder
	in, quoted := false, false
	for _, r := range s {
		switch {
		case r == '"':
			quoted, in = !quoted, true
		case (r == ' ' || r == '\t') && !quoted:
			if in {
				out = append(out, cur.String())
				cur.Reset()
				in = false
			}
		default:
			cur.WriteRune(r)
			in = true
		}
	}
	if in {
		out = append(out, cur.String())
	}
	return out
}

// parseOptionsLine reads "options NAME k=v ..." for the module; ok is false for any other line.
func parseOptionsLine(l, name string) (map[string]string, bool) {
	t := strings.TrimSpace(l)
	if t == "" || t[0] == '#' {
		return nil, false
	}
	w := optionWords(t)
	if len(w) < 2 || w[0] != "options" || modName(w[1]) != name {
		return nil, false
	}
	params := map[string]string{}
	for _, kv := range w[2:] {
		k, v, _ := strings.Cut(kv, "=")
		params[k] = v
	}
	return params, true
}

// editOptions makes the file's options for the module exactly params (one line, in place
// of the first) or, with params nil, removes them. Other lines stay.
func editOptions(content []byte, name, spelled string, params map[string]string) ([]byte, bool) {
	lines := splitKeep(content)
	out := make([]string, 0, len(lines)+1)
	placed, changed := false, false
	for _, l := range lines {
		cur, ok := parseOptionsLine(l, name)
		if !ok {
			out = append(out, l)
			continue
		}
		if params != nil && len(params) > 0 && !placed {
			placed = true
			if mapsEqual(cur, params) {
				out = append(out, l)
				continue
			}
			out = append(out, formatOptions(spelled, params))
		}
		changed = true
	}
	if params != nil && len(params) > 0 && !placed {
		out = append(out, formatOptions(spelled, params))
		changed = true
	}
	if !changed {
		return content, false
	}
	return joinKeep(out), true
}

func mapsEqual(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

// editModulesLoad makes a modules-load.d file list the module (want) or not.
func editModulesLoad(content []byte, name, spelled string, want bool) ([]byte, bool) {
	lines := splitKeep(content)
	out := make([]string, 0, len(lines)+1)
	listed, changed := false, false
	for _, l := range lines {
		t := strings.TrimSpace(l)
		if t == "" || t[0] == '#' || t[0] == ';' || modName(t) != name {
			out = append(out, l)
			continue
		}
		if want && !listed {
			listed = true
			out = append(out, l)
			continue
		}
		changed = true
	}
	if want && !listed {
		out = append(out, spelled)
		changed = true
	}
	if !changed {
		return content, false
	}
	return joinKeep(out), true
}

// hasSettings reports whether a config file holds anything but comments and blank lines.
func hasSettings(content []byte) bool {
	for _, l := range splitKeep(content) {
		if t := strings.TrimSpace(l); t != "" && t[0] != '#' && t[0] != ';' {
			return true
		}
	}
	return false
}

// listsModule reports whether a modules-load.d file lists the module.
func listsModule(content []byte, name string) bool {
	for _, l := range splitKeep(content) {
		if t := strings.TrimSpace(l); t != "" && t[0] != '#' && t[0] != ';' && modName(t) == name {
			return true
		}
	}
	return false
}

// otherLoaders lists the files besides own that load the module at boot.
func otherLoaders(m *machine, name, own string) []string {
	var out []string
	for _, d := range []string{"/etc/modules-load.d", "/run/modules-load.d", "/usr/local/lib/modules-load.d", "/usr/lib/modules-load.d", "/lib/modules-load.d"} {
		ents, _ := os.ReadDir(m.path(d))
		for _, e := range ents {
			p := filepath.Join(d, e.Name())
			if p == own || !strings.HasSuffix(e.Name(), ".conf") {
				continue
			}
			if b, err := os.ReadFile(m.path(p)); err == nil && listsModule(b, name) {
				out = append(out, p)
			}
		}
	}
	if b, err := os.ReadFile(m.path("/etc/modules")); err == nil && listsModule(b, name) {
		out = append(out, "/etc/modules")
	}
	return out
}

// fileEdit is a planned change to one config file.
type fileEdit struct {
	path             string
	old, new         []byte
	existed, changed bool
}

func planEdit(m *machine, path string, edit func([]byte) ([]byte, bool)) (fileEdit, error) {
	old, existed, err := hostfs.ReadOptional(m.path(path))
	if err != nil {
		return fileEdit{}, fmt.Errorf("read %s: %w", path, err)
	}
	nw, changed := edit(old)
	if changed && !hasSettings(nw) {
		nw = nil // nothing left to say: the file goes
	}
	if !existed && !changed {
		nw = nil
	}
	return fileEdit{path: path, old: old, new: nw, existed: existed, changed: changed}, nil
}

func (e fileEdit) apply(m *machine) error {
	if !e.changed {
		return nil
	}
	if e.new == nil {
		if e.existed {
			return hostfs.Remove(m.path(e.path))
		}
		return nil
	}
	return writeAtomic(m.path(e.path), e.new, 0o644)
}

// Run compares the running kernel and the two files with what is wanted.
func (km KernelModule) Run(ctx context.Context, env *modules.Env, args kmodArgs, apply bool) (*modules.Result, error) {
	return runKernelModule(ctx, on(km.test, env), args, apply)
}

func runKernelModule(ctx context.Context, m *machine, w kmodArgs, apply bool) (*modules.Result, error) {
	present, params := w.present(), w.params()
	if !modNamePattern.MatchString(w.Name) {
		return nil, fmt.Errorf("%q is not a module name", w.Name)
	}
	name := modName(w.Name)
	res := &modules.Result{Status: modules.StatusOK}
	loadPath := "/etc/modules-load.d/" + w.Name + ".conf"
	optsPath := "/etc/modprobe.d/" + w.Name + ".conf"

	load, err := planEdit(m, loadPath, func(b []byte) ([]byte, bool) {
		return editModulesLoad(b, name, w.Name, present && w.Persistent)
	})
	if err != nil {
		return nil, err
	}
	opts := fileEdit{path: optsPath}
	if params != nil || !present {
		if !present {
			params = nil
		}
		if opts, err = planEdit(m, optsPath, func(b []byte) ([]byte, bool) { return editOptions(b, name, w.Name, params) }); err != nil {
			return nil, err
		}
	} else if opts.old, opts.existed, err = hostfs.ReadOptional(m.path(optsPath)); err != nil {
		return nil, fmt.Errorf("read %s: %w", optsPath, err)
	}

	rt := moduleRuntime(m, name)
	var runtimeStep []string // the modprobe command, nil for none
	var what []string
	switch {
	case !w.Runtime:
	case rt.state == "unknown":
		res.Warnings = append(res.Warnings, "runtime state unknown: "+rt.why+"; the module is neither loaded nor unloaded")
	case present && rt.state == "absent":
		runtimeStep = []string{"modprobe", "--", w.Name}
		what = append(what, modules.Tense(apply, "loaded", "would load"))
	case !present && rt.state == "builtin":
		return nil, fmt.Errorf("%s is built into the kernel and cannot be unloaded", name)
	case !present && rt.state == "loaded":
		if len(rt.mod.holders) > 0 || rt.mod.refs > 0 {
			users := strings.Join(rt.mod.holders, ", ")
			if users == "" {
				users = "something"
			}
			return nil, fmt.Errorf("%s is in use (by %s, %d references), so it cannot be unloaded", name, users, rt.mod.refs)
		}
		runtimeStep = []string{"modprobe", "-r", "--", w.Name}
		what = append(what, modules.Tense(apply, "unloaded", "would unload"))
	}
	if runtimeStep != nil {
		if rt.cannotLoad != "" {
			return nil, fmt.Errorf("cannot load %s: %s", name, rt.cannotLoad)
		}
		if why := loadBlocker(m); why != "" {
			return nil, fmt.Errorf("cannot %s %s: %s", map[bool]string{true: "load", false: "unload"}[present], name, why)
		}
		if m.lookPath("modprobe") == "" {
			return nil, fmt.Errorf("cannot %s %s: there is no modprobe on this host (package kmod)", map[bool]string{true: "load", false: "unload"}[present], name)
		}
		// modprobe resolves the name, dependencies and options without touching the
		// kernel: check mode learns what apply would meet, and apply fails before it
		// writes any file.
		dry := append([]string{"modprobe", "--dry-run"}, runtimeStep[1:]...)
		if _, err := m.runOK(ctx, dry...); err != nil {
			return nil, fmt.Errorf("%s would fail: %w", strings.Join(runtimeStep, " "), err)
		}
	}

	// Parameters of a module that is already there.
	runtimeParams := map[string]string{}
	differ := false
	if present && len(params) > 0 {
		switch rt.state {
		case "builtin":
			res.Warnings = append(res.Warnings, fmt.Sprintf("%s is built in: modprobe.d options never apply to it; set them on the kernel command line (%s.PARAM=VALUE)", name, name))
		case "loaded":
			var stale []string
			keys := make([]string, 0, len(params))
			for k := range params {
				keys = append(keys, k)
			}
			sort.Strings(keys)
			for _, k := range keys {
				b, err := os.ReadFile(m.path("/sys/module/" + name + "/parameters/" + k))
				if err != nil {
					continue // not every parameter is visible in sysfs
				}
				cur := strings.TrimSpace(string(b))
				runtimeParams[k] = cur
				if !sameParam(cur, params[k]) {
					stale = append(stale, fmt.Sprintf("%s=%s (wanted %s)", k, cur, params[k]))
				}
			}
			if len(stale) > 0 {
				differ = true
				res.Warnings = append(res.Warnings, fmt.Sprintf("%s is loaded with %s; options apply at its next load (modprobe -r %s; modprobe %s) or at boot",
					name, strings.Join(stale, ", "), w.Name, w.Name))
			}
		}
	}

	if opts.changed {
		what = append(what, fmt.Sprintf("%s %s", optsPath, modules.Tense(apply, "written", "would be written")))
		if opts.new == nil {
			what[len(what)-1] = fmt.Sprintf("%s %s", optsPath, modules.Tense(apply, "removed", "would be removed"))
		}
		res.RebootRequired = differ
	}
	if load.changed {
		what = append(what, fmt.Sprintf("%s %s", loadPath, modules.Tense(apply, "written", "would be written")))
		if load.new == nil {
			what[len(what)-1] = fmt.Sprintf("%s %s", loadPath, modules.Tense(apply, "removed", "would be removed"))
		}
	}
	if !present || !w.Persistent {
		if others := otherLoaders(m, name, loadPath); len(others) > 0 {
			res.Warnings = append(res.Warnings, fmt.Sprintf("%s is still loaded at boot by %s", name, strings.Join(others, ", ")))
		}
	}

	after := rt.state
	if runtimeStep != nil {
		after = map[bool]string{true: "loaded", false: "absent"}[present]
	}
	optionsOf := func(b []byte) string {
		for _, l := range splitKeep(b) {
			if _, ok := parseOptionsLine(l, name); ok {
				return strings.TrimSpace(l)
			}
		}
		return ""
	}
	describe := func(state string, loadB, optsB []byte) string {
		boot := "no"
		if listsModule(loadB, name) {
			boot = "yes (" + loadPath + ")"
		}
		o := optionsPrefix.ReplaceAllString(optionsOf(optsB), "")
		return fmt.Sprintf("runtime: %s\nloaded at boot: %s\noptions: %s\n", state, boot, orNone(o))
	}
	afterOpts := opts.old
	if opts.changed {
		afterOpts = opts.new
	}
	afterLoad := load.old
	if load.changed {
		afterLoad = load.new
	}
	data := &kmodResult{
		Name: name, Runtime: rt.state, Persistent: listsModule(load.old, name), Options: optionsOf(opts.old),
		RuntimeParams: runtimeParams, Holders: orNoStrings(rt.mod.holders),
	}
	res.Data = data
	if len(what) == 0 {
		if rt.state == "unknown" && w.Runtime && !apply {
			res.Status = modules.StatusUnknown
		}
		res.Msg = fmt.Sprintf("%s: runtime %s, loaded at boot: %t", name, rt.state, listsModule(load.old, name))
		return res, nil
	}
	res.Status = modules.DiffStatus(apply)
	res.Msg = name + ": " + strings.Join(what, "; ")
	res.Diff = &modules.Diff{Before: describe(rt.state, load.old, opts.old), After: describe(after, afterLoad, afterOpts),
		BeforeHeader: name + " (before)", AfterHeader: name + " (after)"}
	if !apply {
		return res, nil
	}

	if present {
		// Options first, so that modprobe loads the module with them.
		for _, e := range []fileEdit{opts, load} {
			if err := e.apply(m); err != nil {
				return nil, err
			}
		}
		if runtimeStep != nil {
			if _, err := m.runOK(ctx, runtimeStep...); err != nil {
				return nil, err
			}
		}
	} else {
		// Unload first: a module that will not unload keeps its files, which still say
		// what the host does.
		if runtimeStep != nil {
			if _, err := m.runOK(ctx, runtimeStep...); err != nil {
				return nil, err
			}
		}
		for _, e := range []fileEdit{load, opts} {
			if err := e.apply(m); err != nil {
				return nil, err
			}
		}
	}
	final := moduleRuntime(m, name)
	if w.Runtime && runtimeStep != nil && final.state != after {
		return nil, fmt.Errorf("%s succeeded but the kernel reports %s as %s (is %s an alias? name the module itself)", strings.Join(runtimeStep, " "), name, final.state, w.Name)
	}
	data.Runtime = final.state
	data.Holders = orNoStrings(final.mod.holders)
	data.Persistent = listsModule(afterLoad, name)
	data.Options = optionsOf(afterOpts)
	return res, nil
}

// sameParam compares a sysfs parameter value with a wanted one; booleans read back as Y/N.
func sameParam(cur, want string) bool {
	if cur == want {
		return true
	}
	truth := map[string]string{"Y": "y", "y": "y", "1": "y", "on": "y", "true": "y", "N": "n", "n": "n", "0": "n", "off": "n", "false": "n"}
	a, okA := truth[cur]
	b, okB := truth[want]
	return okA && okB && a == b && (cur == "Y" || cur == "N")
}

// orNoStrings is ss, or an empty list (not null) when there are none.
func orNoStrings(ss []string) []string {
	if ss == nil {
		return []string{}
	}
	return ss
}
