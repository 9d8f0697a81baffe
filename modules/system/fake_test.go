package system

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/zclconf/go-cty/cty"
	ctyjson "github.com/zclconf/go-cty/cty/json"

	"github.com/runbook/runbook/modules"
	"github.com/runbook/runbook/modules/host"
	"github.com/runbook/runbook/modules/moduletest"
)

// fakeUnit is one unit of the fake systemd.
type fakeUnit struct {
	load, active, sub, fileState, fragment, source string
	canReload, needReload                          bool
	// savedFileState is what unmask brings back.
	savedFileState string
	// failStart makes start fail like a unit whose ExecStart exits non-zero.
	failStart bool
}

// fakeHost is a machine whose systemctl (and chkconfig, update-rc.d, modprobe) are
// simulated in memory, with a temporary directory as its root. Every program run is
// recorded, so tests can prove check mode ran nothing but reads.
type fakeHost struct {
	t     *testing.T
	root  string
	units map[string]*fakeUnit
	// pending units appear at the next daemon-reload.
	pending map[string]*fakeUnit
	calls   [][]string
	// tools are the programs lookPath finds.
	tools map[string]bool
	// external handles programs the fake does not simulate; nil runs them for real.
	external func(argv []string) (int, string, string, error)
	// nodename is the kernel's hostname; setErr makes sethostname fail.
	nodename string
	setErr   error
}

func newFakeHost(t *testing.T, systemd bool) *fakeHost {
	t.Helper()
	h := &fakeHost{t: t, root: t.TempDir(), units: map[string]*fakeUnit{}, pending: map[string]*fakeUnit{},
		tools: map[string]bool{"systemctl": true}}
	if systemd {
		h.mkdir("/run/systemd/system")
	}
	return h
}

func (h *fakeHost) mkdir(p string) {
	h.t.Helper()
	if err := os.MkdirAll(filepath.Join(h.root, p), 0o755); err != nil {
		h.t.Fatal(err)
	}
}

func (h *fakeHost) write(p, content string, mode os.FileMode) {
	h.t.Helper()
	h.mkdir(filepath.Dir(p))
	if err := os.WriteFile(filepath.Join(h.root, p), []byte(content), mode); err != nil {
		h.t.Fatal(err)
	}
}

func (h *fakeHost) machine() *machine {
	return &machine{
		root:     host.Root(h.root),
		run:      h,
		nodename: func() (string, error) { return h.nodename, nil },
		release:  func() string { return "6.1.0-test" },
		sethostname: func(name string) error {
			h.calls = append(h.calls, []string{"sethostname(2)", name})
			if h.setErr != nil {
				return h.setErr
			}
			h.nodename = name
			return nil
		},
	}
}

// Run and LookPath make the fake host a host.Runner.
func (h *fakeHost) Run(ctx context.Context, c host.Cmd) (host.Result, error) {
	rc, stdout, stderr, err := h.run(ctx, c.Argv...)
	return host.Result{RC: rc, Stdout: stdout, Stderr: stderr}, err
}

// LookPath finds the programs in tools.
func (h *fakeHost) LookPath(name string) string {
	if h.tools[name] {
		return name
	}
	return ""
}

// mutating lists the programs run other than reads (systemctl show, an init script's
// status).
func (h *fakeHost) mutating() []string {
	var out []string
	for _, c := range h.calls {
		base := filepath.Base(c[0])
		if base == "systemctl" && len(c) > 1 && c[1] == "show" {
			continue
		}
		if len(c) > 1 && c[len(c)-1] == "status" {
			continue
		}
		out = append(out, strings.Join(c, " "))
	}
	return out
}

func (h *fakeHost) run(ctx context.Context, argv ...string) (int, string, string, error) {
	h.calls = append(h.calls, argv)
	switch filepath.Base(argv[0]) {
	case "systemctl":
		return h.systemctl(argv[1:])
	}
	if h.external != nil {
		return h.external(argv)
	}
	return realRun(ctx, argv)
}

// realRun runs a program for real (init scripts in the fixture tree).
func realRun(ctx context.Context, argv []string) (int, string, string, error) {
	res, err := host.Exec{}.Run(ctx, host.Cmd{Argv: argv})
	return res.RC, res.Stdout, res.Stderr, err
}

func (h *fakeHost) systemctl(args []string) (int, string, string, error) {
	// Drop options the module passes; keep the verb and the unit.
	var verb, unit string
	runtime := false
	for _, a := range args {
		switch {
		case a == "--":
		case a == "--runtime":
			runtime = true
		case strings.HasPrefix(a, "--"):
		case verb == "":
			verb = a
		default:
			unit = a
		}
	}
	u := h.units[unit]
	if verb == "daemon-reload" {
		for _, x := range h.units {
			x.needReload = false
		}
		for n, x := range h.pending {
			h.units[n] = x
			delete(h.pending, n)
		}
		return 0, "", "", nil
	}
	if u == nil {
		if verb == "show" {
			return 0, fmt.Sprintf("Id=%s\nLoadState=not-found\nActiveState=inactive\nSubState=dead\nFragmentPath=\nSourcePath=\nUnitFileState=\nCanReload=no\nNeedDaemonReload=no\n", unit), "", nil
		}
		if verb == "mask" {
			h.units[unit] = &fakeUnit{load: "masked", active: "inactive", sub: "dead", fileState: "masked", savedFileState: "gone"}
			return 0, "", "", nil
		}
		return 5, "", fmt.Sprintf("Failed to %s %s: Unit %s not found.\n", verb, unit, unit), nil
	}
	yn := map[bool]string{true: "yes", false: "no"}
	switch verb {
	case "show":
		return 0, fmt.Sprintf("Id=%s\nLoadState=%s\nActiveState=%s\nSubState=%s\nFragmentPath=%s\nSourcePath=%s\nUnitFileState=%s\nCanReload=%s\nNeedDaemonReload=%s\n",
			unit, u.load, u.active, u.sub, u.fragment, u.source, u.fileState, yn[u.canReload], yn[u.needReload]), "", nil
	case "start", "restart", "reload":
		if u.load == "masked" {
			return 1, "", "Failed to start " + unit + ": Unit " + unit + " is masked.\n", nil
		}
		if verb == "reload" && !u.canReload {
			return 1, "", "Failed to reload " + unit + ": Job type reload is not applicable for unit " + unit + ".\n", nil
		}
		if u.failStart {
			u.active, u.sub = "failed", "failed"
			return 1, "", "Job for " + unit + " failed because the control process exited with error code.\n", nil
		}
		u.active, u.sub = "active", "running"
	case "stop":
		u.active, u.sub = "inactive", "dead"
	case "enable":
		if u.load == "masked" {
			return 1, "", "Failed to enable unit: Unit file " + unit + " is masked.\n", nil
		}
		u.fileState = "enabled"
	case "disable":
		if runtime || u.fileState == "enabled" {
			u.fileState = "disabled"
		}
	case "mask":
		u.savedFileState, u.load, u.fileState = u.fileState, "masked", "masked"
		if runtime {
			u.fileState = "masked-runtime"
		}
	case "unmask":
		if u.savedFileState == "gone" {
			delete(h.units, unit)
			return 0, "", "", nil
		}
		u.load, u.fileState = "loaded", u.savedFileState
	default:
		return 1, "", "fake systemctl: unknown verb " + verb + "\n", nil
	}
	return 0, "", "", nil
}

// data is a result's data as the controller sees it (the declared Returns types), as the
// plain values its JSON decodes to: strings, bools, []any, map[string]any.
func data(t *testing.T, m modules.Module, res *modules.Result) map[string]any {
	t.Helper()
	b, err := ctyjson.SimpleJSONValue{Value: moduletest.Data(t, m, res)}.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	var out map[string]any
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	return out
}

// decoded is the argument struct the module receives for args (defaults applied).
func decoded[A any](t *testing.T, m modules.Module, args map[string]cty.Value) A {
	t.Helper()
	a, _, err := moduletest.Def(t, m).Args(cty.ObjectVal(args))
	if err != nil {
		t.Fatal(err)
	}
	return a.(A)
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func s(v string) cty.Value { return cty.StringVal(v) }

// onlyReads fails the test when check mode ran anything but reads.
func (h *fakeHost) onlyReads(t testing.TB, what string) {
	t.Helper()
	if m := h.mutating(); len(m) > 0 {
		t.Fatalf("%s ran programs that change the host: %v", what, m)
	}
}

// ran reports whether a program with these leading words was run.
func (h *fakeHost) ran(words ...string) bool {
	for _, c := range h.calls {
		if len(c) >= len(words) && slices.Equal(c[:len(words)], words) {
			return true
		}
	}
	return false
}

// tree describes every path under the fake root: type, mode, content and link target.
// Two equal descriptions mean nothing changed.
func (h *fakeHost) tree() string {
	h.t.Helper()
	var lines []string
	err := filepath.WalkDir(h.root, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		l := fmt.Sprintf("%s %v mtime=%d", strings.TrimPrefix(p, h.root), fi.Mode(), fi.ModTime().UnixNano())
		switch {
		case fi.Mode().IsRegular():
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			l += fmt.Sprintf(" %q", b)
		case fi.Mode()&os.ModeSymlink != 0:
			target, _ := os.Readlink(p)
			l += " -> " + target
		}
		lines = append(lines, l)
		return nil
	})
	if err != nil {
		h.t.Fatal(err)
	}
	return strings.Join(lines, "\n")
}

func (h *fakeHost) read(p string) string {
	h.t.Helper()
	b, err := os.ReadFile(filepath.Join(h.root, p))
	if err != nil {
		h.t.Fatal(err)
	}
	return string(b)
}

// checkFiles compares files under the fake host's root with want (path → content; "" means
// the file must not exist).
func (h *fakeHost) checkFiles(t *testing.T, want map[string]string) {
	t.Helper()
	for p, w := range want {
		b, err := os.ReadFile(filepath.Join(h.root, p))
		switch {
		case w == "" && !os.IsNotExist(err):
			t.Errorf("%s should be gone: %v %q", p, err, b)
		case w != "" && string(b) != w:
			t.Errorf("%s:\n%q\nwant\n%q", p, b, w)
		}
	}
}
