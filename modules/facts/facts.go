package facts

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/runbook/runbook/modules/host"
	"github.com/runbook/runbook/modules/internal/bonding"
)

// Subsets are the parts Gather can read, in the order they are gathered.
var Subsets = []string{"os", "init", "selinux", "network", "nics"}

// Options select what Gather reads. Root is the filesystem root the readers use (the
// running system's when empty); tests point it at fixture trees under testdata/. Subsets
// limits what is gathered ("os", "init", "selinux", "network", "nics"); empty means all.
type Options struct {
	Root    host.Root
	Subsets []string
	// mgmt replaces what the management facts read from the running system (tests).
	mgmt *mgmtInputs
}

// Gather reads the host's facts. The map is JSON-friendly (strings, bools, ints, float64,
// nil, []any, map[string]any); its keys are documented in the facts module's Returns.
//
// Each subset fills these top-level keys:
//
//	os       os, kernel, arch, hostname
//	init     init
//	selinux  selinux
//	network  network
//	nics     nics, pcie_devices, management
//
// A fact that cannot be read is reported as unknown ("" or null), never as an error: a
// container without /sys/fs/selinux or a NIC without a PCIe link is normal. Only an
// unknown subset or a cancelled context fails.
func Gather(ctx context.Context, opts Options) (map[string]any, error) {
	want := map[string]bool{}
	for _, s := range opts.Subsets {
		if !slices.Contains(Subsets, s) {
			return nil, fmt.Errorf("unknown facts subset %q (known: %s)", s, strings.Join(Subsets, ", "))
		}
		want[s] = true
	}
	all := len(want) == 0
	fs := newFS(opts.Root)
	out := map[string]any{}
	for _, s := range Subsets {
		if !all && !want[s] {
			continue
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		switch s {
		case "os":
			out["os"] = gatherOS(fs)
			out["kernel"], out["arch"] = kernelArch(fs)
			out["hostname"] = hostname(fs)
		case "init":
			out["init"] = initSystem(fs)
		case "selinux":
			out["selinux"] = gatherSELinux(fs)
		case "network":
			out["network"] = gatherNetwork(fs)
		case "nics":
			nics, devices, err := gatherNICs(ctx, fs)
			if err != nil {
				return nil, err
			}
			out["nics"], out["pcie_devices"] = nics, devices
			in := mgmtInputs{}
			switch {
			case opts.mgmt != nil:
				in = *opts.mgmt
			case fs.real:
				in = realMgmtInputs()
			}
			out["management"] = gatherManagement(fs, in)
		}
	}
	return out, nil
}

// rootFS reads files below a root (host.Root maps the paths). real says the root is the
// running system's, so kernel interfaces (uname, ioctls) may fill what the files do not
// say.
type rootFS struct {
	root host.Root
	real bool
	// bonds holds each /proc/net/bonding report once parsed: a bond's and each of its
	// slaves' facts read the same one.
	bonds map[string]*bonding.Report
}

func newFS(root host.Root) rootFS {
	return rootFS{root: root, real: root.Real(), bonds: map[string]*bonding.Report{}}
}

// path maps an absolute path on the host to the path below the root.
func (f rootFS) path(p string) string { return f.root.Path(p) }

// rel turns a path below the root back into the host's path; ok is false when it is not
// below the root.
func (f rootFS) rel(p string) (string, bool) {
	rel, err := filepath.Rel(f.root.Path("/"), p)
	if err != nil || rel == ".." || strings.HasPrefix(rel, "../") {
		return "", false
	}
	return filepath.Join("/", rel), true
}

// read returns a file's content with surrounding white space trimmed; ok is false when it
// cannot be read.
func (f rootFS) read(p string) (string, bool) {
	b, err := os.ReadFile(f.path(p))
	if err != nil {
		return "", false
	}
	return strings.TrimSpace(string(b)), true
}

// str returns a file's trimmed content, or "" when it cannot be read.
func (f rootFS) str(p string) string {
	s, _ := f.read(p)
	return s
}

// num reads a decimal integer; ok is false when the file is missing or holds no number.
func (f rootFS) num(p string) (int, bool) {
	s, ok := f.read(p)
	if !ok {
		return 0, false
	}
	n, err := strconv.Atoi(s)
	return n, err == nil
}

func (f rootFS) exists(p string) bool {
	_, err := os.Lstat(f.path(p))
	return err == nil
}

func (f rootFS) isDir(p string) bool {
	fi, err := os.Stat(f.path(p))
	return err == nil && fi.IsDir()
}

// linkBase returns the last element of a symbolic link's target ("" when p is no link).
func (f rootFS) linkBase(p string) string {
	t, err := os.Readlink(f.path(p))
	if err != nil {
		return ""
	}
	return filepath.Base(t)
}

// resolve follows every link in p and returns the host path it leads to (relative to the
// root), or "" when it does not resolve inside the root. sysfs links are relative, so a
// fixture tree resolves the same way the real /sys does.
func (f rootFS) resolve(p string) string {
	r, err := filepath.EvalSymlinks(f.path(p))
	if err != nil {
		return ""
	}
	h, _ := f.rel(r)
	return h
}

// names lists a directory's entries, sorted; nil when it cannot be read.
func (f rootFS) names(p string) []string {
	ents, err := os.ReadDir(f.path(p))
	if err != nil {
		return nil
	}
	out := make([]string, 0, len(ents))
	for _, e := range ents {
		out = append(out, e.Name())
	}
	return out
}

// glob matches a pattern below the root and returns host paths, sorted.
func (f rootFS) glob(pattern string) []string {
	m, _ := filepath.Glob(f.path(pattern))
	out := make([]string, 0, len(m))
	for _, p := range m {
		if h, ok := f.rel(p); ok {
			out = append(out, h)
		}
	}
	return out
}

// nullable turns "not known" into nil so the JSON says null.
func nullable(n int, ok bool) any {
	if !ok {
		return nil
	}
	return n
}
