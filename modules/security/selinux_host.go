package security

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"

	"github.com/runbook/runbook/modules"
	"github.com/runbook/runbook/modules/host"
	"github.com/runbook/runbook/modules/hostfs"
	"github.com/runbook/runbook/modules/internal/selinuxconf"
)

var _ modules.Runner[seArgs] = SELinux{}

// Run brings the config file and, where the kernel allows it, the running mode to the
// wanted state. Check and apply share this path; only apply writes.
func (m SELinux) Run(ctx context.Context, env *modules.Env, args seArgs, apply bool) (*modules.Result, error) {
	want, cfgArg := args.State, args.Config
	policy := ""
	if args.Policy != nil {
		policy = *args.Policy
	}
	if !isAbs(cfgArg) {
		return nil, fmt.Errorf("config %q must be an absolute path", cfgArg)
	}
	kern, err := readKernel(m.root)
	if err != nil {
		return nil, err
	}

	// One Ref to the config file from the read to the write: the file read, whose mode
	// and owner the rewrite keeps, is the one replaced.
	ref, fi, err := resolveConfig(m.root.Path(cfgArg))
	if err != nil {
		return nil, err
	}
	defer ref.Close()
	cfg := m.root.Path(cfgArg)
	var old []byte
	exists := fi != nil
	if ref != nil {
		cfg = ref.Path()
	}
	if exists {
		if old, err = ref.ReadFile(); err != nil {
			return nil, fmt.Errorf("read %s: %w", cfgArg, err)
		}
	}
	modeBefore, policyBefore := parseSEConfig(old)
	defPolicy := policy
	if defPolicy == "" {
		defPolicy = installedPolicy(filepath.Dir(cfg))
	}
	content, fileChanged := editSEConfig(old, exists, want, policy, defPolicy)
	modeAfter, policyAfter := parseSEConfig(content)

	// A running SELinux keeps the policy it booted with; only a file that names another
	// one (and did name one) is a change the kernel sees at the next boot.
	policyChanged := policy != "" && policyBefore != "" && policyBefore != policy
	plan := planRuntime(kern.state, want, policyChanged)

	data := &seResult{Runtime: kern.state, Persistent: modeBefore, Policy: policyBefore,
		RebootRequired: plan.reboot, Config: cfgArg}
	res := &modules.Result{Status: modules.StatusOK, Data: data}
	res.RebootRequired = plan.reboot
	res.Warnings = seWarnings(kern, want, policyAfter, filepath.Dir(cfg), filepath.Dir(cfgArg), plan)

	var did []string
	if fileChanged {
		if !exists {
			did = append(did, modules.Tense(apply, "created ", "would create ")+cfgArg+" with SELINUX="+want)
		} else {
			var what []string
			if !strings.EqualFold(modeBefore, modeAfter) || modeBefore == "" {
				what = append(what, fmt.Sprintf("SELINUX=%s → %s", orNone(modeBefore), modeAfter))
			}
			if policyBefore != policyAfter {
				what = append(what, fmt.Sprintf("SELINUXTYPE=%s → %s", orNone(policyBefore), policyAfter))
			}
			if len(what) == 0 {
				what = append(what, "SELINUX="+want) // only a duplicate line or quoting differed
			}
			did = append(did, modules.Tense(apply, "set ", "would set ")+strings.Join(what, ", ")+" in "+cfgArg)
		}
	}
	if plan.setTo != "" {
		did = append(did, fmt.Sprintf("%sruntime %s → %s", modules.Tense(apply, "switched ", "would switch "), kern.state, plan.setTo))
	}
	runtimeAfter := kern.state
	if plan.setTo != "" {
		runtimeAfter = plan.setTo
	}

	if len(did) == 0 {
		res.Msg = fmt.Sprintf("SELinux is %s in %s; runtime %s", want, cfgArg, kern.state)
		if plan.reboot {
			res.Msg = fmt.Sprintf("%s says %s; reboot pending: %s", cfgArg, want, plan.why)
		} else if kern.state == seNotAvailable {
			res.Msg += " (" + kern.why + "; only the file is managed)"
		}
		return res, nil
	}

	res.Status = modules.DiffStatus(apply)
	msg := strings.Join(did, "; ")
	switch {
	case plan.reboot:
		msg += "; reboot required: " + plan.why
	case kern.state == seNotAvailable:
		msg += "; runtime not available (" + kern.why + ")"
	}
	res.Msg = msg
	// The runtime state heads both sides, so the diff shows it even when only the file
	// changes; a runtime change is a section of its own.
	rtAfter := runtimeAfter
	if plan.reboot {
		rtAfter += " (" + want + " after a reboot)"
	}
	res.Diff = sectionsDiff("selinux", []section{
		{title: "runtime", before: "mode: " + kern.state, after: "mode: " + rtAfter},
		fileSection(cfgArg, old, content, exists),
	})
	res.Diff.BeforeHeader = strings.TrimSuffix(res.Diff.BeforeHeader, ")") + "; runtime: " + kern.state + ")"
	res.Diff.AfterHeader = strings.TrimSuffix(res.Diff.AfterHeader, ")") + "; runtime: " + rtAfter + ")"
	if apply {
		if fileChanged {
			if err := writeConfig(ref, cfg, content, fi); err != nil {
				return nil, err
			}
		}
		if plan.setTo != "" {
			if err := setEnforce(kern.enforce, plan.setTo); err != nil {
				return res, err
			}
		}
		data.Persistent, data.Policy, data.Runtime = modeAfter, policyAfter, runtimeAfter
	}
	return res, nil
}

func orNone(s string) string {
	if s == "" {
		return "(none)"
	}
	return s
}

// fileSection shows a file's change in a diff; an absent side is marked as such.
func fileSection(title string, before, after []byte, existed bool) section {
	b := string(before)
	if !existed {
		b = "(absent)\n"
	}
	return section{title: title, before: b, after: string(after)}
}

// resolveConfig follows a symbolic link to the real file, so an atomic rewrite replaces the
// file and keeps the link; only a trusted link is followed (hostfs.Resolve), an untrusted
// one is an error before the file is read. The Ref is nil when the file's directory does
// not exist (it is made when the file is written), fi nil when the file does not exist.
func resolveConfig(path string) (*hostfs.Ref, fs.FileInfo, error) {
	r, err := hostfs.Resolve(path, hostfs.FollowLast)
	var dangling *hostfs.DanglingLinkError
	switch {
	case errors.As(err, &dangling):
		return nil, nil, fmt.Errorf("%s is a link that does not resolve: %w", path, err)
	case errors.Is(err, fs.ErrNotExist):
		return nil, nil, nil
	case err != nil:
		return nil, nil, err
	}
	fi, err := r.Lstat()
	switch {
	case err != nil:
		err = fmt.Errorf("inspect %s: %w", path, err)
	case fi != nil && !fi.Mode().IsRegular():
		err = fmt.Errorf("%s is not a regular file", r.Path())
	}
	if err != nil {
		r.Close()
		return nil, nil, err
	}
	return r, fi, nil
}

// writeConfig replaces the config file that ref names, keeping the mode and owner of fi,
// the file that was read; without a ref (its directory did not exist) path is resolved
// now, making the missing directories, and must still be missing: a file that appeared
// meanwhile was not read, and is not replaced.
func writeConfig(ref *hostfs.Ref, path string, content []byte, fi fs.FileInfo) error {
	if ref == nil {
		r, err := hostfs.Resolve(path, hostfs.MakeParents)
		if err != nil {
			return fmt.Errorf("write %s: %w", path, err)
		}
		defer r.Close()
		switch now, err := r.Lstat(); {
		case err != nil:
			return fmt.Errorf("write %s: %w", path, err)
		case now != nil:
			return fmt.Errorf("write %s: it appeared while runbook was working on it; nothing was changed", path)
		}
		ref = r
	}
	uid, gid := hostfs.KeepOwner(fi)
	return ref.WriteAtomic(content, hostfs.Options{Mode: fileMode(fi, 0o644), UID: uid, GID: gid})
}

// seModeLine and sePolicyLine match anything that looks like an assignment of the config
// file (SELINUXTYPE= is not SELINUX=); whether libselinux reads it is another matter.
var (
	seModeLine   = regexp.MustCompile(`^\s*SELINUX\s*=`)
	sePolicyLine = regexp.MustCompile(`^\s*SELINUXTYPE\s*=`)
)

// parseSEConfig returns the mode and policy a config file sets at boot (selinuxconf.Parse).
func parseSEConfig(b []byte) (mode, policy string) { return selinuxconf.Parse(b) }

// editSEConfig returns the config with every SELINUX= line set to mode and, when policy is
// given, every SELINUXTYPE= line set to policy; missing lines are added at the end. A line
// that libselinux already reads as the value (selinuxconf.BootMode, BootPolicy) is left as it
// is; one it would not read (quoted, indented, spaced around "=") is rewritten. A file
// that does not exist gets a short comment, the mode and defPolicy.
func editSEConfig(old []byte, exists bool, mode, policy, defPolicy string) ([]byte, bool) {
	if !exists {
		if policy == "" {
			policy = defPolicy
		}
		return []byte(newSEConfig(mode, policy)), true
	}
	lines := hostfs.SplitLines(old)
	sawMode, sawPolicy := false, false
	for i, l := range lines {
		switch {
		case seModeLine.MatchString(l.Text):
			sawMode = true
			if m, ok := selinuxconf.BootMode(l.Text); !ok || m != mode {
				lines[i].Text = "SELINUX=" + mode
			}
		case sePolicyLine.MatchString(l.Text) && policy != "":
			sawPolicy = true
			if p, ok := selinuxconf.BootPolicy(l.Text); !ok || p != policy {
				lines[i].Text = "SELINUXTYPE=" + policy
			}
		}
	}
	add := func(text string) {
		eol := "\n"
		if len(lines) > 0 {
			if lines[0].EOL == "\r\n" {
				eol = "\r\n"
			}
			if last := &lines[len(lines)-1]; last.EOL == "" {
				last.EOL = eol
			}
		}
		lines = append(lines, hostfs.Line{Text: text, EOL: eol})
	}
	if !sawMode {
		add("SELINUX=" + mode)
	}
	if policy != "" && !sawPolicy {
		add("SELINUXTYPE=" + policy)
	}
	out := hostfs.JoinLines(lines)
	return out, !bytes.Equal(out, old)
}

func newSEConfig(mode, policy string) string {
	return `# SELinux configuration (written by runbook).
# SELINUX= is the mode the kernel starts in:
#   enforcing  - the policy is enforced;
#   permissive - denials are logged but not enforced;
#   disabled   - no policy is loaded.
# SELINUXTYPE= names the policy to load, a directory under /etc/selinux.
SELINUX=` + mode + `
SELINUXTYPE=` + policy + "\n"
}

// installedPolicy names the one policy installed in dir (a subdirectory with a policy
// directory in it), or "targeted" when there is none or several.
func installedPolicy(dir string) string {
	entries, _ := os.ReadDir(dir)
	var found []string
	for _, e := range entries {
		if fi, err := os.Stat(filepath.Join(dir, e.Name(), "policy")); err == nil && fi.IsDir() {
			found = append(found, e.Name())
		}
	}
	if len(found) == 1 {
		return found[0]
	}
	return "targeted"
}

// seKernel is what the running kernel says about SELinux.
type seKernel struct {
	// state is enforcing, permissive, disabled or not available.
	state string
	// enforce is the path of selinuxfs's enforce switch when SELinux is active.
	enforce string
	// why explains a disabled or unavailable SELinux.
	why string
	// bootOff is set when the kernel command line turns SELinux off (selinux=0).
	bootOff bool
}

// readKernel finds SELinux's state in the kernel under root: an active SELinux has
// selinuxfs mounted, whose enforce file holds 1 (enforcing) or 0 (permissive). Without it,
// SELinux is "disabled" when the kernel has it but does not run it (listed among the
// active security modules with no policy loaded, selinuxfs registered, or selinux=0 on the
// command line), and "not available" otherwise.
func readKernel(root host.Root) (seKernel, error) {
	cmdline, _, _ := hostfs.ReadOptional(root.Path("/proc/cmdline"))
	k := seKernel{bootOff: slices.Contains(strings.Fields(string(cmdline)), "selinux=0")}
	if mnt := selinuxfsMount(root); mnt != "" {
		k.enforce = filepath.Join(mnt, "enforce")
		b, err := os.ReadFile(k.enforce)
		if err != nil {
			return k, fmt.Errorf("read the SELinux mode: %w", err)
		}
		switch strings.TrimSpace(string(b)) {
		case "1":
			k.state = seEnforcing
		case "0":
			k.state = sePermissive
		default:
			return k, fmt.Errorf("read the SELinux mode: unexpected %q in %s", strings.TrimSpace(string(b)), k.enforce)
		}
		return k, nil
	}
	lsm, _, _ := hostfs.ReadOptional(root.Path("/sys/kernel/security/lsm"))
	filesystems, _, _ := hostfs.ReadOptional(root.Path("/proc/filesystems"))
	switch {
	case k.bootOff:
		k.state, k.why = seDisabled, "the kernel command line has selinux=0"
	case slices.Contains(strings.Split(strings.TrimSpace(string(lsm)), ","), "selinux"):
		k.state, k.why = seDisabled, "SELinux is in the kernel but no policy is loaded"
	case slices.Contains(strings.Fields(string(filesystems)), "selinuxfs"):
		k.state, k.why = seDisabled, "selinuxfs is registered but not mounted"
	default:
		k.state, k.why = seNotAvailable, "the running kernel has no active SELinux"
	}
	return k, nil
}

// selinuxfsMount returns where selinuxfs is mounted under root, "" when it is not. The
// mount table is the truth; a host whose /proc cannot be read is asked at the usual
// mount point.
func selinuxfsMount(root host.Root) string {
	b, ok, err := hostfs.ReadOptional(root.Path("/proc/self/mountinfo"))
	if err != nil || !ok {
		if fi, err := os.Stat(root.Path("/sys/fs/selinux/enforce")); err == nil && fi.Mode().IsRegular() {
			return root.Path("/sys/fs/selinux")
		}
		return ""
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		// id parent major:minor root mountpoint options [optional...] - fstype source superopts
		pre, post, ok := strings.Cut(line, " - ")
		if !ok {
			continue
		}
		f, g := strings.Fields(pre), strings.Fields(post)
		if len(f) >= 5 && len(g) >= 1 && g[0] == "selinuxfs" {
			return root.Path(unescapeMount(f[4]))
		}
	}
	return ""
}

// unescapeMount undoes the octal escapes (\040 for a space) of the mount table.
func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+4 <= len(s) {
			if n, ok := octal3(s[i+1 : i+4]); ok {
				b.WriteByte(n)
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func octal3(s string) (byte, bool) {
	if len(s) != 3 {
		return 0, false
	}
	n := 0
	for _, c := range s {
		if c < '0' || c > '7' {
			return 0, false
		}
		n = n*8 + int(c-'0')
	}
	if n > 255 {
		return 0, false
	}
	return byte(n), true
}

// sePlan is what the runtime needs for a wanted state.
type sePlan struct {
	// setTo is the mode to switch the running kernel to now, "" for none.
	setTo string
	// reboot says the wanted state takes effect only after a reboot; why says what is pending.
	reboot bool
	why    string
}

// planRuntime decides, from the running kernel's state and the wanted state, what can
// change now and whether a reboot is pending. Only enforcing and permissive switch at
// runtime; a kernel with SELinux disabled, or one that should have it disabled, needs a
// reboot; an enforcing kernel that should be disabled drops to permissive at once. A kernel
// without SELinux has nothing to change and nothing a reboot would change.
func planRuntime(runtime, want string, policyChanged bool) sePlan {
	var p sePlan
	switch runtime {
	case seEnforcing, sePermissive:
		switch {
		case want == seDisabled:
			if runtime == seEnforcing {
				p.setTo = sePermissive
			}
			p.reboot, p.why = true, "the running kernel has SELinux "+runtime+"; disabled takes effect after a reboot"
		case want != runtime:
			p.setTo = want
		}
		if policyChanged && !p.reboot {
			p.reboot, p.why = true, "the running kernel keeps its policy until a reboot (with a relabel)"
		}
	case seDisabled:
		if want != seDisabled {
			p.reboot, p.why = true, "SELinux is disabled in the running kernel; "+want+" takes effect after a reboot"
		}
	}
	return p
}

// seWarnings lists what could keep the wanted state from working after a reboot.
// dir is the config's directory as the module reads it, shown the same as the host names it.
func seWarnings(k seKernel, want, policy, dir, shown string, p sePlan) []string {
	var w []string
	if p.reboot {
		w = append(w, "reboot required: "+p.why)
	}
	if want == seDisabled {
		return w
	}
	if k.state == seDisabled {
		w = append(w, "files created while SELinux was disabled have no labels: create /.autorelabel before the reboot so they are relabelled")
	}
	if k.bootOff {
		w = append(w, "the kernel command line has selinux=0: SELinux stays off after a reboot until the boot loader's configuration drops it")
	}
	if policy != "" {
		if fi, err := os.Stat(filepath.Join(dir, policy, "policy")); err != nil || !fi.IsDir() {
			w = append(w, fmt.Sprintf("policy %q is not installed (no %s): a kernel with SELinux cannot load it at boot", policy, filepath.Join(shown, policy, "policy")))
		}
	}
	return w
}

// setEnforce switches the running kernel to mode and reads the switch back: a kernel
// built without the permissive mode, or a policy that forbids the change, must not pass
// for success.
func setEnforce(path, mode string) error {
	val := "1"
	if mode == sePermissive {
		val = "0"
	}
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return fmt.Errorf("set SELinux %s: %w", mode, err)
	}
	_, werr := f.Write([]byte(val))
	cerr := f.Close()
	if err := errors.Join(werr, cerr); err != nil {
		return fmt.Errorf("set SELinux %s: %w", mode, err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("set SELinux %s: read back: %w", mode, err)
	}
	if got := strings.TrimSpace(string(b)); got != val {
		return fmt.Errorf("set SELinux %s: the kernel still reports %q in %s", mode, got, path)
	}
	return nil
}
