package network

import (
	"context"
	"fmt"
	"io/fs"
	"path"
	"slices"
	"sort"
	"strings"

	"github.com/runbook/runbook/modules/facts"
	"github.com/runbook/runbook/modules/host"
	"github.com/runbook/runbook/modules/hostfs"
)

// Backends runbook writes persistent configuration for.
const (
	backendAuto           = "auto"
	backendNM             = "NetworkManager"
	backendIfcfg          = "network-scripts"
	backendNetworkd       = "systemd-networkd"
	backendIfupdown       = "ifupdown"
	backendNone           = "none"
	managedComment        = "Managed by runbook"
	nmConnectionsDir      = "/etc/NetworkManager/system-connections"
	ifcfgDir              = "/etc/sysconfig/network-scripts"
	networkdDir           = "/etc/systemd/network"
	ifupdownMain          = "/etc/network/interfaces"
	ifupdownDir           = "/etc/network/interfaces.d"
	networkdPrefix        = "10-"
	nmPortInfix           = "-port-"
	nmKeyfileSuffix       = ".nmconnection"
	errUnknownBackendText = "cannot tell which network backend manages this host"
)

var backendNames = []string{backendAuto, backendNM, backendIfcfg, backendNetworkd, backendIfupdown, backendNone}

// fileTree reads and writes the host's files below its Root ("/" on a host, a directory
// in tests), through modules/hostfs; Real says whether the host's daemons may be told of
// changes.
type fileTree struct {
	host.Root
}

// read returns a file's content; a missing file is ("", false, nil). A link is followed
// only when trusted (hostfs.ReadOptional): what a plan reads may reach a diff.
func (f *fileTree) read(p string) (string, bool, error) {
	b, ok, err := hostfs.ReadOptional(f.Path(p))
	return string(b), ok, err
}

// exists says whether p is there; links are followed only when trusted (hostfs.Stat).
func (f *fileTree) exists(p string) bool {
	fi, err := hostfs.Stat(f.Path(p))
	return err == nil && fi != nil
}

// list returns the regular files and links of a directory (host paths), sorted by name;
// links on the way are followed only when trusted (hostfs.ReadDir).
func (f *fileTree) list(dir string) []string {
	ents, err := hostfs.ReadDir(f.Path(dir))
	if err != nil {
		return nil
	}
	var out []string
	for _, e := range ents {
		if e.Type().IsRegular() || e.Type()&fs.ModeSymlink != 0 {
			out = append(out, path.Join(dir, e.Name()))
		}
	}
	sort.Strings(out)
	return out
}

// writeAtomic replaces a file atomically (hostfs.WriteAtomic), so a reader (or a crash)
// never sees half a file. Missing directories are made.
func (f *fileTree) writeAtomic(p, content string, mode fs.FileMode) error {
	return hostfs.WriteAtomic(f.Path(p), []byte(content), hostfs.Options{Mode: mode, UID: -1, GID: -1, MkdirAll: true})
}

func (f *fileTree) remove(p string) error { return hostfs.Remove(f.Path(p)) }

// stagedFile is one file a plan reads and maybe changes.
type stagedFile struct {
	path    string
	orig    string
	cur     string
	existed bool
	removed bool
	// written: the plan wrote the file (a missing file that was only read is no change).
	written  bool
	origMode fs.FileMode
	// mode is what the file is written with; 0 keeps an existing file's mode (0644 for a
	// new one).
	mode fs.FileMode
}

func (w *stagedFile) changed() bool {
	if w.removed {
		return w.existed
	}
	if !w.existed {
		return w.written
	}
	return w.cur != w.orig || (w.mode != 0 && w.mode != w.origMode)
}

// workspace collects a plan's edits in memory: backends read files through it (seeing their
// own earlier edits) and nothing reaches the host until apply.
type workspace struct {
	fs    *fileTree
	files map[string]*stagedFile
	order []string
}

func newWorkspace(f *fileTree) *workspace {
	return &workspace{fs: f, files: map[string]*stagedFile{}}
}

func (w *workspace) file(p string) (*stagedFile, error) {
	if x, ok := w.files[p]; ok {
		return x, nil
	}
	content, ok, err := w.fs.read(p)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", p, err)
	}
	x := &stagedFile{path: p, orig: content, cur: content, existed: ok}
	if ok {
		if fi, err := hostfs.Stat(w.fs.Path(p)); err == nil && fi != nil {
			x.origMode = fi.Mode().Perm()
		}
	}
	w.files[p] = x
	w.order = append(w.order, p)
	return x, nil
}

// read returns a file's content as the plan has it so far.
func (w *workspace) read(p string) (string, bool, error) {
	x, err := w.file(p)
	if err != nil {
		return "", false, err
	}
	if x.removed || (!x.existed && x.cur == "") {
		return "", false, nil
	}
	return x.cur, true, nil
}

func (w *workspace) write(p, content string, mode fs.FileMode) error {
	x, err := w.file(p)
	if err != nil {
		return err
	}
	x.cur, x.removed, x.mode, x.written = content, false, mode, true
	return nil
}

func (w *workspace) remove(p string) error {
	x, err := w.file(p)
	if err != nil {
		return err
	}
	x.removed = true
	return nil
}

// list returns the files of a directory as the plan has it: files on disk that were not
// removed, plus files the plan made.
func (w *workspace) list(dir string) []string {
	set := map[string]bool{}
	for _, p := range w.fs.list(dir) {
		set[p] = true
	}
	for p, x := range w.files {
		if path.Dir(p) == dir {
			set[p] = !x.removed && (x.existed || x.cur != "")
		}
	}
	var out []string
	for p, ok := range set {
		if ok {
			out = append(out, p)
		}
	}
	sort.Strings(out)
	return out
}

// changes lists the files the plan changes, in the order they were first read.
func (w *workspace) changes() []*stagedFile {
	var out []*stagedFile
	for _, p := range w.order {
		if x := w.files[p]; x.changed() {
			out = append(out, x)
		}
	}
	return out
}

// apply writes the changed files.
func (w *workspace) apply() error {
	for _, x := range w.changes() {
		var err error
		if x.removed {
			err = w.fs.remove(x.path)
		} else {
			mode := x.mode
			if mode == 0 {
				mode = x.origMode
			}
			if mode == 0 {
				mode = 0o644
			}
			err = w.fs.writeAtomic(x.path, x.cur, mode)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// persistPlan is what bringing a backend's files in line with the wanted state takes.
type persistPlan struct {
	backend  string
	drift    []string
	ws       *workspace
	warnings []string
	// reload says which files the backend's daemon should be told about after apply.
	reload func(ctx context.Context, changed []*stagedFile) []string
}

// backendPlanner computes a plan for a set of interfaces. The wants come in order: a bond
// before its slaves, a VLAN's parent before the VLAN.
type backendPlanner func(ws *workspace, wants []ifWant) (drift, warnings []string, err error)

func plannerFor(backend string) backendPlanner {
	switch backend {
	case backendNM:
		return planNM
	case backendIfcfg:
		return planIfcfg
	case backendNetworkd:
		return planNetworkd
	case backendIfupdown:
		return planIfupdown
	}
	return nil
}

// planPersist reads the backend's files and computes the edits that make them say what
// wants says.
func planPersist(ctx context.Context, f *fileTree, backend string, wants []ifWant) (*persistPlan, error) {
	p := &persistPlan{backend: backend, ws: newWorkspace(f)}
	planner := plannerFor(backend)
	if planner == nil {
		return nil, fmt.Errorf("no persistent configuration writer for backend %q", backend)
	}
	drift, warnings, err := planner(p.ws, wants)
	if err != nil {
		return nil, fmt.Errorf("%s configuration: %w", backend, err)
	}
	p.drift, p.warnings = drift, warnings
	if backend == backendNM {
		p.reload = nmReload(f)
	}
	return p, nil
}

// chooseBackend resolves "auto" from the host's network facts.
func chooseBackend(ctx context.Context, root, want string) (string, []string, error) {
	if want != backendAuto {
		return want, nil, nil
	}
	gathered, err := facts.Gather(ctx, facts.Options{Root: host.Root(root), Subsets: []string{"network"}})
	if err != nil {
		return "", nil, fmt.Errorf("detect the network backend: %w", err)
	}
	netFacts, _ := gathered["network"].(map[string]any)
	found, _ := netFacts["backend"].(string)
	switch found {
	case backendNM, backendIfcfg, backendNetworkd, backendIfupdown:
		return found, nil, nil
	case "netplan":
		renderer, _ := netFacts["netplan_renderer"].(string)
		b := backendNetworkd
		if renderer == backendNM {
			b = backendNM
		}
		return b, []string{fmt.Sprintf("netplan generates this host's network configuration; runbook writes %s files beside it, which netplan does not manage (set backend to choose)", b)}, nil
	}
	return "", nil, fmt.Errorf("%s (facts say %q); set backend to one of %s", errUnknownBackendText, found,
		strings.Join(slices.DeleteFunc(slices.Clone(backendNames), func(s string) bool { return s == backendAuto }), ", "))
}

// describeFiles renders files for a diff: each under a header line with its path.
func describeFiles(files []*stagedFile, after bool) string {
	var b strings.Builder
	for _, x := range files {
		content, exists := x.orig, x.existed
		if after {
			content, exists = x.cur, !x.removed
		}
		if !exists {
			fmt.Fprintf(&b, "# %s: (absent)\n", x.path)
			continue
		}
		fmt.Fprintf(&b, "# %s:\n%s", x.path, content)
		if !strings.HasSuffix(content, "\n") {
			b.WriteString("\n")
		}
	}
	return b.String()
}
