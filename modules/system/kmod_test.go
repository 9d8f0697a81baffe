package system

import (
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/zclconf/go-cty/cty"

	"github.com/runbook/runbook/modules"
	"github.com/runbook/runbook/modules/hostfs"
	"github.com/runbook/runbook/modules/moduletest"
)

// withKernel gives the fake host a kernel with loadable modules: /proc/modules from the
// fixture, /sys/module entries for them, and a modprobe that loads what is "available",
// applying the options file at load time the way the real one does.
func withKernel(t *testing.T, h *fakeHost, available ...string) {
	t.Helper()
	h.write("/proc/modules", fixture(t, "modules/proc_modules"), 0o644)
	h.write("/proc/self/status", "Name:\tfake\nCapEff:\t000001ffffffffff\n", 0o644)
	h.write("/proc/sys/kernel/modules_disabled", "0\n", 0o644)
	for name := range parseProcModules([]byte(fixture(t, "modules/proc_modules"))) {
		h.mkdir("/sys/module/" + name)
	}
	h.mkdir("/sys/module/loop/parameters") // built in
	h.tools["modprobe"] = true
	h.external = func(argv []string) (int, string, string, error) {
		if filepath.Base(argv[0]) != "modprobe" {
			return 127, "", argv[0] + ": not found", nil
		}
		dry, remove := slices.Contains(argv, "--dry-run"), slices.Contains(argv, "-r")
		name := modName(argv[len(argv)-1])
		mods := parseProcModules([]byte(h.read("/proc/modules")))
		if remove {
			if _, ok := mods[name]; !ok {
				return 1, "", "modprobe: FATAL: Module " + name + " is not in kernel.\n", nil
			}
			if dry {
				return 0, "rmmod " + name + "\n", "", nil
			}
			var keep []string
			for _, l := range splitKeep([]byte(h.read("/proc/modules"))) {
				if !strings.HasPrefix(l, name+" ") {
					keep = append(keep, l)
				}
			}
			h.write("/proc/modules", string(joinKeep(keep)), 0o644)
			return 0, "", "", os.RemoveAll(filepath.Join(h.root, "sys/module", name))
		}
		if !slices.Contains(available, name) {
			return 1, "", "modprobe: FATAL: Module " + name + " not found in directory /lib/modules/6.1.0-test\n", nil
		}
		if dry {
			return 0, "insmod /lib/modules/6.1.0-test/kernel/" + name + ".ko\n", "", nil
		}
		if _, ok := mods[name]; ok {
			return 0, "", "", nil
		}
		h.write("/proc/modules", h.read("/proc/modules")+name+" 16384 0 - Live 0xffffffffc0000000\n", 0o644)
		h.mkdir("/sys/module/" + name + "/parameters")
		opts, _, _ := hostfs.ReadOptional(filepath.Join(h.root, "etc/modprobe.d", argv[len(argv)-1]+".conf"))
		for _, l := range splitKeep(opts) {
			if p, ok := parseOptionsLine(l, name); ok {
				for k, v := range p {
					h.write("/sys/module/"+name+"/parameters/"+k, v+"\n", 0o644)
				}
			}
		}
		return 0, "", "", nil
	}
}

// TestKernelModuleTimelines: check (drift; only reads and dry runs) → apply (changed) →
// check → apply, on fixture kernels of each kind.
func TestKernelModuleTimelines(t *testing.T) {
	cases := []struct {
		name   string
		kernel func(h *fakeHost)
		files  map[string]string
		args   map[string]cty.Value
		// settled is the check status once applied: ok, or unknown where the kernel
		// cannot be seen.
		settled  modules.Status
		steps    []string
		want     map[string]string // files after ("" means absent)
		runtime  string
		warnings []string
		diff     string // the diff's after side, when given
	}{
		{name: "load bonding with options, persistent",
			kernel: func(h *fakeHost) { withKernel(t, h, "bonding") },
			args:   map[string]cty.Value{"name": s("bonding"), "params": cty.MapVal(map[string]cty.Value{"max_bonds": s("0"), "miimon": s("100")})},
			steps:  []string{"modprobe -- bonding"},
			want: map[string]string{"/etc/modules-load.d/bonding.conf": "bonding\n",
				"/etc/modprobe.d/bonding.conf": "options bonding max_bonds=0 miimon=100\n",
				// modprobe saw the options: the file came first.
				"/sys/module/bonding/parameters/max_bonds": "0\n"},
			runtime: "loaded",
			diff:    "runtime: loaded\nloaded at boot: yes (/etc/modules-load.d/bonding.conf)\noptions: max_bonds=0 miimon=100\n"},
		{name: "loaded already, only boot files; comments and other options kept",
			kernel: func(h *fakeHost) { withKernel(t, h) },
			files: map[string]string{"/etc/modprobe.d/8021q.conf": "# VLANs\noptions 8021q old=1\nalias vlan 8021q\n",
				"/etc/modules-load.d/8021q.conf": "# for the data VLANs\n"},
			args: map[string]cty.Value{"name": s("8021q"), "params": cty.MapVal(map[string]cty.Value{"label": s("data vlans")})},
			want: map[string]string{"/etc/modprobe.d/8021q.conf": "# VLANs\noptions 8021q label=\"data vlans\"\nalias vlan 8021q\n",
				"/etc/modules-load.d/8021q.conf": "# for the data VLANs\n8021q\n"},
			runtime: "loaded"},
		{name: "dashes and underscores are one name",
			kernel:  func(h *fakeHost) { withKernel(t, h) },
			files:   map[string]string{"/etc/modules-load.d/nf-conntrack.conf": "nf_conntrack\nnf-conntrack\n"},
			args:    map[string]cty.Value{"name": s("nf-conntrack")},
			want:    map[string]string{"/etc/modules-load.d/nf-conntrack.conf": "nf_conntrack\n"},
			runtime: "loaded"},
		{name: "unload, and remove its boot files but not other settings",
			kernel: func(h *fakeHost) { withKernel(t, h) },
			files: map[string]string{"/etc/modules-load.d/kvm_intel.conf": "# virt\nkvm_intel\n",
				"/etc/modprobe.d/kvm_intel.conf": "options kvm_intel nested=1\nblacklist kvm_amd\n"},
			args:    map[string]cty.Value{"name": s("kvm_intel"), "state": s("absent")},
			steps:   []string{"modprobe -r -- kvm_intel"},
			want:    map[string]string{"/etc/modules-load.d/kvm_intel.conf": "", "/etc/modprobe.d/kvm_intel.conf": "blacklist kvm_amd\n"},
			runtime: "absent"},
		{name: "not persistent: loaded now, not at boot",
			kernel: func(h *fakeHost) { withKernel(t, h, "dummy0") },
			files:  map[string]string{"/etc/modules-load.d/dummy0.conf": "dummy0\n", "/etc/modules": "# /etc/modules\ndummy0\n"},
			args:   map[string]cty.Value{"name": s("dummy0"), "persistent": cty.False},
			steps:  []string{"modprobe -- dummy0"},
			want:   map[string]string{"/etc/modules-load.d/dummy0.conf": ""},
			// Debian's /etc/modules still loads it: say so.
			warnings: []string{"dummy0 is still loaded at boot by /etc/modules"},
			runtime:  "loaded"},
		{name: "built in, on a kernel without loadable modules (like the lab machine's)",
			kernel:  func(h *fakeHost) { h.mkdir("/sys/module/loop/parameters") },
			args:    map[string]cty.Value{"name": s("loop")},
			want:    map[string]string{"/etc/modules-load.d/loop.conf": "loop\n"},
			runtime: "builtin"},
		{name: "built in by modules.builtin",
			kernel: func(h *fakeHost) {
				withKernel(t, h)
				h.write("/lib/modules/6.1.0-test/modules.builtin", fixture(t, "modules/modules.builtin"), 0o644)
			},
			args:     map[string]cty.Value{"name": s("overlay"), "params": cty.MapVal(map[string]cty.Value{"metacopy": s("Y")})},
			want:     map[string]string{"/etc/modprobe.d/overlay.conf": "options overlay metacopy=Y\n"},
			warnings: []string{"overlay is built in: modprobe.d options never apply to it"},
			runtime:  "builtin"},
		{name: "a container: runtime unknown, the files are managed",
			args:     map[string]cty.Value{"name": s("bonding")},
			settled:  modules.StatusUnknown,
			want:     map[string]string{"/etc/modules-load.d/bonding.conf": "bonding\n"},
			warnings: []string{"runtime state unknown: the running kernel's modules cannot be seen here"},
			runtime:  "unknown"},
		{name: "runtime false: files only, by choice",
			args:    map[string]cty.Value{"name": s("bonding"), "runtime": cty.False, "params": cty.MapVal(map[string]cty.Value{"max_bonds": s("0")})},
			want:    map[string]string{"/etc/modules-load.d/bonding.conf": "bonding\n", "/etc/modprobe.d/bonding.conf": "options bonding max_bonds=0\n"},
			runtime: "unknown"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := newFakeHost(t, true)
			if tc.kernel != nil {
				tc.kernel(h)
			}
			for p, c := range tc.files {
				h.write(p, c, 0o644)
			}
			if tc.settled == "" {
				tc.settled = modules.StatusOK
			}
			w := decoded[kmodArgs](t, KernelModule{}, tc.args)
			step := func(apply bool, want modules.Status) *modules.Result {
				t.Helper()
				h.calls = nil
				before := h.tree()
				res, err := moduletest.Run(t, KernelModule{test: h.machine()}, tc.args, apply)
				if err != nil {
					t.Fatalf("apply=%v: %v", apply, err)
				}
				if res.Status != want {
					t.Fatalf("apply=%v: status %q, want %q (%s)", apply, res.Status, want, res.Msg)
				}
				if !apply || want != modules.StatusChanged {
					for _, c := range h.calls {
						if !slices.Contains(c, "--dry-run") {
							t.Fatalf("apply=%v ran %v", apply, c)
						}
					}
					if after := h.tree(); after != before {
						t.Fatalf("apply=%v changed files:\n%s\n---\n%s", apply, before, after)
					}
				}
				if len(res.Warnings) != len(tc.warnings) {
					t.Fatalf("apply=%v: warnings %q, want %q", apply, res.Warnings, tc.warnings)
				}
				for i, wn := range tc.warnings {
					if !strings.Contains(res.Warnings[i], wn) {
						t.Errorf("warning %q, want %q", res.Warnings[i], wn)
					}
				}
				return res
			}
			checked := step(false, modules.StatusDrift)
			applied := step(true, modules.StatusChanged)
			var ran []string
			for _, c := range h.calls {
				if !slices.Contains(c, "--dry-run") {
					ran = append(ran, strings.Join(c, " "))
				}
			}
			if !slices.Equal(ran, tc.steps) {
				t.Errorf("apply ran %q, want %q", ran, tc.steps)
			}
			if checked.Diff == nil || applied.Diff == nil || *checked.Diff != *applied.Diff {
				t.Fatalf("check's diff differs from apply's:\n%+v\n%+v", checked.Diff, applied.Diff)
			}
			if tc.diff != "" && applied.Diff.After != tc.diff {
				t.Errorf("diff after:\n%q\nwant\n%q", applied.Diff.After, tc.diff)
			}
			d := data(t, KernelModule{}, applied)
			if d["runtime"] != tc.runtime {
				t.Errorf("runtime %v, want %s", d["runtime"], tc.runtime)
			}
			if d["persistent"] != (w.present() && w.Persistent) {
				t.Errorf("persistent %v", d["persistent"])
			}
			step(false, tc.settled)
			step(true, modules.StatusOK)
			h.checkFiles(t, tc.want)
		})
	}
}

// TestKernelModuleStaleParams: a loaded module whose parameters differ from new options
// keeps them until its next load; the task says so and that a reboot is due.
func TestKernelModuleStaleParams(t *testing.T) {
	h := newFakeHost(t, true)
	withKernel(t, h)
	h.write("/sys/module/8021q/parameters/gvrp", "N\n", 0o644)
	h.write("/etc/modules-load.d/8021q.conf", "8021q\n", 0o644)
	args := map[string]cty.Value{"name": s("8021q"), "params": cty.MapVal(map[string]cty.Value{"gvrp": s("1")})}
	km := KernelModule{test: h.machine()}
	for _, apply := range []bool{false, true} {
		res, err := moduletest.Run(t, km, args, apply)
		if err != nil || !res.RebootRequired || len(res.Warnings) != 1 || !strings.Contains(res.Warnings[0], "8021q is loaded with gvrp=N (wanted 1)") {
			t.Fatalf("apply=%v: %v %+v", apply, err, res)
		}
		if d := data(t, km, res); d["runtime_params"].(map[string]any)["gvrp"] != "N" {
			t.Errorf("runtime_params %v", d["runtime_params"])
		}
	}
	res, err := moduletest.Run(t, km, args, false)
	if err != nil || res.Status != modules.StatusOK || res.RebootRequired || len(res.Warnings) != 1 {
		t.Fatalf("after apply: %v %+v", err, res)
	}
	// Y/N in sysfs is the same as 1/0 in options.
	h.write("/sys/module/8021q/parameters/gvrp", "Y\n", 0o644)
	if res, _ := moduletest.Run(t, km, args, false); len(res.Warnings) != 0 {
		t.Errorf("Y vs 1 warned: %q", res.Warnings)
	}
}

func TestKernelModuleErrors(t *testing.T) {
	cases := []struct {
		name    string
		kernel  func(h *fakeHost)
		args    map[string]cty.Value
		wantErr string
	}{
		{name: "unloading a built-in module",
			kernel:  func(h *fakeHost) { withKernel(t, h) },
			args:    map[string]cty.Value{"name": s("loop"), "state": s("absent")},
			wantErr: "loop is built into the kernel and cannot be unloaded"},
		{name: "unloading a module in use",
			kernel:  func(h *fakeHost) { withKernel(t, h) },
			args:    map[string]cty.Value{"name": s("garp"), "state": s("absent")},
			wantErr: "garp is in use (by 8021q, 1 references), so it cannot be unloaded"},
		{name: "a module modprobe cannot find",
			kernel:  func(h *fakeHost) { withKernel(t, h) },
			args:    map[string]cty.Value{"name": s("nosuchmod")},
			wantErr: "modprobe -- nosuchmod would fail: modprobe --dry-run -- nosuchmod exited with 1"},
		{name: "a kernel without loadable modules",
			kernel:  func(h *fakeHost) { h.mkdir("/sys/module/loop") },
			args:    map[string]cty.Value{"name": s("bonding")},
			wantErr: "cannot load bonding: this kernel was built without loadable module support (no /proc/modules), and bonding is not built in"},
		{name: "module loading disabled",
			kernel: func(h *fakeHost) {
				withKernel(t, h, "bonding")
				h.write("/proc/sys/kernel/modules_disabled", "1\n", 0o644)
			},
			args:    map[string]cty.Value{"name": s("bonding")},
			wantErr: "kernel.modules_disabled = 1"},
		{name: "no CAP_SYS_MODULE",
			kernel: func(h *fakeHost) {
				withKernel(t, h, "bonding")
				h.write("/proc/self/status", "CapEff:\t00000000fcecbfff\n", 0o644)
			},
			args:    map[string]cty.Value{"name": s("bonding")},
			wantErr: "cannot load bonding: the helper lacks CAP_SYS_MODULE"},
		{name: "no modprobe",
			kernel: func(h *fakeHost) {
				withKernel(t, h, "bonding")
				delete(h.tools, "modprobe")
			},
			args:    map[string]cty.Value{"name": s("bonding"), "state": s("present")},
			wantErr: "there is no modprobe on this host"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := newFakeHost(t, true)
			tc.kernel(h)
			before := h.tree()
			for _, apply := range []bool{false, true} {
				h.calls = nil
				_, err := moduletest.Run(t, KernelModule{test: h.machine()}, tc.args, apply)
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("apply=%v: error %v, want %q", apply, err, tc.wantErr)
				}
				for _, c := range h.calls {
					if !slices.Contains(c, "--dry-run") {
						t.Fatalf("apply=%v ran %v before failing", apply, c)
					}
				}
			}
			if h.tree() != before {
				t.Error("a failed run changed files")
			}
		})
	}
}

func TestParseProcModules(t *testing.T) {
	mods := parseProcModules([]byte(fixture(t, "modules/proc_modules")))
	cases := []struct {
		name                   string
		refs                   int
		holders                []string
		state, runtimeStateFor string
	}{
		{"8021q", 0, nil, "Live", "loaded"},
		{"garp", 1, []string{"8021q"}, "Live", "loaded"},
		{"nf_conntrack", 3, []string{"xt_conntrack", "nf_nat", "nf_conntrack_netlink"}, "Live", "loaded"},
		{"nvidia", 42, []string{"nvidia_modeset", "nvidia_uvm"}, "Live", "loaded"},
		{"zfs", 0, nil, "Unloading", "absent"},
		{"dummy", 0, nil, "Loading", "loaded"},
	}
	if len(mods) != 8 {
		t.Errorf("parsed %d modules, want 8", len(mods))
	}
	for _, tc := range cases {
		m, ok := mods[tc.name]
		if !ok || m.refs != tc.refs || !slices.Equal(m.holders, tc.holders) || m.state != tc.state || procModulesState[m.state] != tc.runtimeStateFor {
			t.Errorf("%s: %+v (found %v), want refs %d holders %v state %s", tc.name, m, ok, tc.refs, tc.holders, tc.state)
		}
	}
	if mods["nvidia"].size != 35323904 {
		t.Errorf("size %d", mods["nvidia"].size)
	}
}

func TestModuleFiles(t *testing.T) {
	t.Run("options", func(t *testing.T) {
		cases := []struct {
			name, in string
			params   map[string]string
			want     string
			changed  bool
		}{
			{"new", "", map[string]string{"b": "2", "a": "1"}, "options bonding a=1 b=2\n", true},
			{"same, other order and quotes, kept", "options bonding b=\"2\"  a=1\n", map[string]string{"a": "1", "b": "2"}, "options bonding b=\"2\"  a=1\n", false},
			{"first replaced, later dropped", "options bonding a=1\ninstall bonding /bin/true\noptions bonding c=3\n", map[string]string{"a": "2"},
				"options bonding a=2\ninstall bonding /bin/true\n", true},
			{"another module's options untouched", "options bond0 a=1\n", map[string]string{"a": "1"}, "options bond0 a=1\noptions bonding a=1\n", true},
			{"removed", "# keep\noptions bonding a=1\n", nil, "# keep\n", true},
			{"empty map removes", "options bonding a=1\n", map[string]string{}, "", true},
			{"commented options are not options", "#options bonding a=1\n", map[string]string{"a": "1"}, "#options bonding a=1\noptions bonding a=1\n", true},
			{"empty value quoted", "", map[string]string{"x": ""}, "options bonding x=\"\"\n", true},
		}
		for _, tc := range cases {
			got, changed := editOptions([]byte(tc.in), "bonding", "bonding", tc.params)
			if string(got) != tc.want || changed != tc.changed {
				t.Errorf("%s: got %q (%v), want %q (%v)", tc.name, got, changed, tc.want, tc.changed)
			}
		}
	})
	t.Run("modules-load.d", func(t *testing.T) {
		cases := []struct {
			name, in string
			want     bool
			out      string
			changed  bool
		}{
			{"add", "", true, "bonding\n", true},
			{"kept", "# c\nbonding\n", true, "# c\nbonding\n", false},
			{"duplicate dropped", "bonding\nbonding\n", true, "bonding\n", true},
			{"removed", "# c\nbonding\n8021q\n", false, "# c\n8021q\n", true},
			{"nothing to remove", "8021q", false, "8021q", false},
			{"a comment naming it is not a listing", "# bonding\n", true, "# bonding\nbonding\n", true},
		}
		for _, tc := range cases {
			got, changed := editModulesLoad([]byte(tc.in), "bonding", "bonding", tc.want)
			if string(got) != tc.out || changed != tc.changed {
				t.Errorf("%s: got %q (%v), want %q (%v)", tc.name, got, changed, tc.out, tc.changed)
			}
		}
	})
	t.Run("options words", func(t *testing.T) {
		got := fmt.Sprint(optionWords(`options x a="b c" d=e  f=""`))
		if got != `[options x a=b c d=e f=]` {
			t.Errorf("optionWords: %s", got)
		}
		p, ok := parseOptionsLine(`options nf-conntrack hashsize=1024`, "nf_conntrack")
		if !ok || p["hashsize"] != "1024" {
			t.Errorf("parseOptionsLine: %v %v", p, ok)
		}
	})
	t.Run("same parameter", func(t *testing.T) {
		for _, tc := range []struct {
			cur, want string
			same      bool
		}{{"Y", "1", true}, {"N", "0", true}, {"Y", "y", true}, {"N", "1", false}, {"1", "Y", false}, {"100", "100", true}, {"0", "00", false}} {
			if sameParam(tc.cur, tc.want) != tc.same {
				t.Errorf("sameParam(%q, %q) != %v", tc.cur, tc.want, tc.same)
			}
		}
	})
}

func TestKernelModuleValidate(t *testing.T) {
	cases := []struct {
		args map[string]cty.Value
		want string
	}{
		{map[string]cty.Value{"name": s("bonding"), "state": s("absent"), "params": cty.MapVal(map[string]cty.Value{"a": s("1")})}, "not used with"},
		{map[string]cty.Value{"name": s("bonding"), "params": cty.MapVal(map[string]cty.Value{"a-b": s("1")})}, "not a module parameter name"},
		{map[string]cty.Value{"name": s("bonding"), "params": cty.MapVal(map[string]cty.Value{"a": s(`x"y`)})}, "without double quotes"},
		{map[string]cty.Value{"name": s("bonding"), "params": cty.MapVal(map[string]cty.Value{"max_bonds": s("0")})}, ""},
		// A null value leaves the parameter out.
		{map[string]cty.Value{"name": s("bonding"), "params": cty.MapVal(map[string]cty.Value{"max_bonds": s("0"), "miimon": cty.NullVal(cty.String)})}, ""},
	}
	for _, tc := range cases {
		var msgs []string
		for _, e := range moduletest.Validate(t, KernelModule{}, tc.args) {
			msgs = append(msgs, e.Error())
		}
		got := strings.Join(msgs, "; ")
		if (tc.want == "") != (got == "") || !strings.Contains(got, tc.want) {
			t.Errorf("Validate(%v) = %q, want %q", tc.args, got, tc.want)
		}
	}
}

// TestKmodParams: params unset leaves options unmanaged (nil); a null value leaves that
// parameter out; an empty map manages an options line with no parameters.
func TestKmodParams(t *testing.T) {
	one := "1"
	for _, tc := range []struct {
		in   map[string]*string
		want map[string]string
	}{
		{nil, nil},
		{map[string]*string{}, map[string]string{}},
		{map[string]*string{"a": &one, "b": nil}, map[string]string{"a": "1"}},
	} {
		got := kmodArgs{Params: tc.in}.params()
		if (got == nil) != (tc.want == nil) || !maps.Equal(got, tc.want) {
			t.Errorf("params(%v) = %#v, want %#v", tc.in, got, tc.want)
		}
	}
}
