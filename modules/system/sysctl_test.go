package system

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/zclconf/go-cty/cty"

	"github.com/runbook/runbook/modules"
	"github.com/runbook/runbook/modules/moduletest"
)

func fixture(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", p))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

const runbookConf = "/etc/sysctl.d/90-runbook.conf"

// TestSysctlTimelines runs each case check (drift) → apply (changed) → check (ok) →
// apply (ok) on a fixture tree with its own /proc/sys, and checks the files after.
func TestSysctlTimelines(t *testing.T) {
	cases := []struct {
		name       string
		files      map[string]string
		args       map[string]cty.Value
		drift      [2]bool // runtime, persistent
		diff       string
		want       map[string]string // files after; "" means absent
		warnings   []string
		wantValue  string
		persistent string
	}{
		{name: "ip_forward now and at boot",
			files: map[string]string{"/proc/sys/net/ipv4/ip_forward": "0\n"},
			args:  map[string]cty.Value{"name": s("net.ipv4.ip_forward"), "value": s("1")},
			drift: [2]bool{true, true},
			diff:  "runtime: 1\npersistent (/etc/sysctl.d/90-runbook.conf): 1\n",
			want:  map[string]string{"/proc/sys/net/ipv4/ip_forward": "1\n", runbookConf: "net.ipv4.ip_forward = 1\n"}},
		{name: "edited in place, comments kept, duplicates dropped",
			files: map[string]string{"/proc/sys/net/ipv4/tcp_rmem": "4096\t131072\t6291456\n", "/etc/sysctl.d/60-tuning.conf": fixture(t, "sysctl/tuning.conf")},
			args: map[string]cty.Value{"name": s("net.ipv4.tcp_rmem"), "value": s(" 4096  87380\t6291456 "),
				"file": s("/etc/sysctl.d/60-tuning.conf")},
			drift: [2]bool{true, true},
			diff:  "runtime: 4096 87380 6291456\npersistent (/etc/sysctl.d/60-tuning.conf): 4096 87380 6291456\n",
			want:  map[string]string{"/etc/sysctl.d/60-tuning.conf": fixture(t, "sysctl/tuning.want")}},
		{name: "only the file drifted",
			files: map[string]string{"/proc/sys/net/core/somaxconn": "4096\n", runbookConf: "# mine\nnet.core.somaxconn = 128\n"},
			args:  map[string]cty.Value{"name": s("net/core/somaxconn"), "value": s("4096")},
			drift: [2]bool{false, true},
			diff:  "runtime: 4096\npersistent (/etc/sysctl.d/90-runbook.conf): 4096\n",
			want:  map[string]string{runbookConf: "# mine\nnet.core.somaxconn = 4096\n"}},
		{name: "only the running value drifted",
			files: map[string]string{"/proc/sys/net/core/somaxconn": "128\n", runbookConf: "net.core.somaxconn=4096"},
			args:  map[string]cty.Value{"name": s("net.core.somaxconn"), "value": s("4096")},
			drift: [2]bool{true, false},
			want:  map[string]string{"/proc/sys/net/core/somaxconn": "4096\n", runbookConf: "net.core.somaxconn=4096"}},
		{name: "a VLAN interface's key, written with slashes",
			files: map[string]string{"/proc/sys/net/ipv4/conf/eth0.100/forwarding": "0\n"},
			args:  map[string]cty.Value{"name": s("net/ipv4/conf/eth0.100/forwarding"), "value": s("1")},
			drift: [2]bool{true, true},
			want: map[string]string{"/proc/sys/net/ipv4/conf/eth0.100/forwarding": "1\n",
				runbookConf: "net/ipv4/conf/eth0.100/forwarding = 1\n"}},
		{name: "absent removes the line, then the empty file; the running value stays",
			files: map[string]string{"/proc/sys/net/ipv4/ip_forward": "1\n", runbookConf: "net.ipv4.ip_forward = 1\n"},
			args:  map[string]cty.Value{"name": s("net.ipv4.ip_forward"), "state": s("absent")},
			drift: [2]bool{false, true},
			diff:  "persistent (/etc/sysctl.d/90-runbook.conf): (none)\n",
			want:  map[string]string{"/proc/sys/net/ipv4/ip_forward": "1\n", runbookConf: ""}},
		{name: "file only for a key the kernel does not have yet",
			args:  map[string]cty.Value{"name": s("net.bridge.bridge-nf-call-iptables"), "value": s("0"), "runtime": cty.False},
			drift: [2]bool{false, true}, diff: "persistent (/etc/sysctl.d/90-runbook.conf): 0\n",
			want:     map[string]string{runbookConf: "net.bridge.bridge-nf-call-iptables = 0\n"},
			warnings: []string{"does not exist on the running kernel"}},
		{name: "a later file that wins at boot is named",
			files: map[string]string{"/proc/sys/vm/swappiness": "60\n", "/etc/sysctl.conf": "vm.swappiness = 60\n",
				"/usr/lib/sysctl.d/95-vendor.conf": "vm.swappiness=30\n", "/usr/lib/sysctl.d/10-early.conf": "vm.swappiness=60\n"},
			args:  map[string]cty.Value{"name": s("vm.swappiness"), "value": s("10")},
			drift: [2]bool{true, true},
			warnings: []string{"/usr/lib/sysctl.d/95-vendor.conf sets vm.swappiness = 30 and is read after /etc/sysctl.d/90-runbook.conf",
				"/etc/sysctl.d/99-sysctl.conf sets vm.swappiness = 60"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := newFakeHost(t, true)
			h.mkdir("/etc/sysctl.d")
			for p, c := range tc.files {
				h.write(p, c, 0o644)
			}
			if tc.name == "a later file that wins at boot is named" {
				if err := os.Symlink("../sysctl.conf", filepath.Join(h.root, "etc/sysctl.d/99-sysctl.conf")); err != nil {
					t.Fatal(err)
				}
			}
			w := decoded[sysctlArgs](t, Sysctl{}, tc.args)
			present, value := w.State != "absent", normValue(orEmpty(w.Value))
			// No step runs a program; each check, and the apply after the first, writes no
			// file.
			var before string
			res := moduletest.Timeline(t, Sysctl{test: h.machine()}, tc.args,
				moduletest.Before(func(testing.TB, string) { before = h.tree() }),
				moduletest.Unchanged(func(t testing.TB, step string) {
					if after := h.tree(); after != before {
						t.Fatalf("%s changed files:\n%s\n---\n%s", step, before, after)
					}
				}))
			if len(h.calls) > 0 {
				t.Fatalf("ran programs: %v", h.calls)
			}
			for _, r := range res {
				if len(r.Warnings) != len(tc.warnings) {
					t.Fatalf("warnings %q, want %q", r.Warnings, tc.warnings)
				}
				for i, wn := range tc.warnings {
					if !strings.Contains(r.Warnings[i], wn) {
						t.Errorf("warning %q, want %q", r.Warnings[i], wn)
					}
				}
			}
			checked := res[0]
			if d := data(t, Sysctl{}, checked); d["runtime_drift"] != tc.drift[0] || d["persistent_drift"] != tc.drift[1] {
				t.Errorf("drift runtime=%v persistent=%v, want %v", d["runtime_drift"], d["persistent_drift"], tc.drift)
			}
			applied := res[1]
			if checked.Diff == nil || applied.Diff == nil || *checked.Diff != *applied.Diff {
				t.Fatalf("check's diff differs from apply's:\n%+v\n%+v", checked.Diff, applied.Diff)
			}
			if tc.diff != "" && applied.Diff.After != tc.diff {
				t.Errorf("diff after:\n%q\nwant\n%q", applied.Diff.After, tc.diff)
			}
			d := data(t, Sysctl{}, applied)
			if present && w.Runtime && d["runtime_value"] != value {
				t.Errorf("runtime_value %v", d["runtime_value"])
			}
			if present && d["persistent_value"] != value {
				t.Errorf("persistent_value %v", d["persistent_value"])
			}
			if d := data(t, Sysctl{}, res[2]); d["runtime_drift"] != false || d["persistent_drift"] != false {
				t.Errorf("drift after apply: %v", d)
			}
			h.checkFiles(t, tc.want)
		})
	}
}

func TestSysctlErrors(t *testing.T) {
	cases := []struct {
		name    string
		setup   func(h *fakeHost)
		args    map[string]cty.Value
		checkOK bool
		wantErr string
	}{
		{name: "a key the kernel does not have",
			args:    map[string]cty.Value{"name": s("net.ipv4.no_such_key"), "value": s("1")},
			wantErr: "no sysctl key net.ipv4.no_such_key on this host (no /proc/sys/net/ipv4/no_such_key); set runtime = false"},
		{name: "a group, not a key",
			setup:   func(h *fakeHost) { h.mkdir("/proc/sys/net/ipv4/conf") },
			args:    map[string]cty.Value{"name": s("net.ipv4.conf"), "value": s("1")},
			wantErr: "is a group of sysctl keys"},
		{name: "a value the kernel does not keep", checkOK: true,
			setup: func(h *fakeHost) {
				h.mkdir("/proc/sys/kernel")
				// Writes vanish and reads are empty, as with a value the kernel refuses quietly.
				if err := os.Symlink("/dev/null", filepath.Join(h.root, "proc/sys/kernel/panic")); err != nil {
					t.Fatal(err)
				}
			},
			args:    map[string]cty.Value{"name": s("kernel.panic"), "value": s("10")},
			wantErr: "the kernel keeps kernel.panic = (none) after 10 was written"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := newFakeHost(t, true)
			h.mkdir("/etc/sysctl.d")
			h.mkdir("/proc/sys")
			if tc.setup != nil {
				tc.setup(h)
			}
			before := h.tree()
			for _, apply := range []bool{false, true} {
				res, err := moduletest.Run(t, Sysctl{test: h.machine()}, tc.args, apply)
				if !apply && tc.checkOK {
					if err != nil || res.Status != modules.StatusDrift {
						t.Fatalf("check: %v %v", err, res)
					}
					continue
				}
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("apply=%v: error %v, want %q", apply, err, tc.wantErr)
				}
			}
			// Nothing is written when the running value cannot be set, the file included.
			if h.tree() != before {
				t.Errorf("a failed run changed files:\n%s\n---\n%s", before, h.tree())
			}
		})
	}
}

func TestSysctlNames(t *testing.T) {
	cases := []struct{ in, path, name string }{
		{"net.ipv4.ip_forward", "net/ipv4/ip_forward", "net.ipv4.ip_forward"},
		{"net/ipv4/ip_forward", "net/ipv4/ip_forward", "net.ipv4.ip_forward"},
		{"/net/ipv4/ip_forward", "net/ipv4/ip_forward", "net.ipv4.ip_forward"},
		{"net/ipv4/conf/eth0.100/rp_filter", "net/ipv4/conf/eth0.100/rp_filter", "net/ipv4/conf/eth0.100/rp_filter"},
		{"net.bridge.bridge-nf-call-iptables", "net/bridge/bridge-nf-call-iptables", "net.bridge.bridge-nf-call-iptables"},
	}
	for _, tc := range cases {
		if p, n := sysctlPath(tc.in), sysctlName(tc.in); p != tc.path || n != tc.name {
			t.Errorf("%s: path %q name %q, want %q %q", tc.in, p, n, tc.path, tc.name)
		}
	}
}

func TestEditSysctlFile(t *testing.T) {
	cases := []struct {
		name, in, key, value string
		present              bool
		want                 string
		changed              bool
	}{
		{"append", "a = 1\n", "b", "2", true, "a = 1\nb = 2\n", true},
		{"append to a file without final newline", "a = 1", "b", "2", true, "a = 1\nb = 2\n", true},
		{"same value, other spelling, kept", "net/core/somaxconn=4096\n", "net.core.somaxconn", "4096", true, "net/core/somaxconn=4096\n", false},
		{"the ignore-failure dash is kept", "-kernel.x = 1\n", "kernel.x", "2", true, "-kernel.x = 2\n", true},
		{"commented-out settings are not settings", "# kernel.x = 1\n", "kernel.x", "1", true, "# kernel.x = 1\nkernel.x = 1\n", true},
		{"absent removes every line", "kernel.x = 1\nkeep = 1\nkernel/x=2\n", "kernel.x", "", false, "keep = 1\n", true},
		{"absent with nothing to remove", "keep = 1", "kernel.x", "", false, "keep = 1", false},
		{"a line without =", "garbage\n", "kernel.x", "1", true, "garbage\nkernel.x = 1\n", true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, changed := editSysctlFile([]byte(tc.in), tc.key, sysctlName(tc.key), tc.value, tc.present)
			if string(got) != tc.want || changed != tc.changed {
				t.Errorf("got %q (changed %v), want %q (%v)", got, changed, tc.want, tc.changed)
			}
		})
	}
}

func TestSysctlFileWarnings(t *testing.T) {
	h := newFakeHost(t, true)
	h.write("/etc/sysctl.d/50-x.conf", "", 0o644)
	h.write("/usr/lib/sysctl.d/50-x.conf", "", 0o644)
	for file, want := range map[string]string{
		"/usr/lib/sysctl.d/50-x.conf": "is never read at boot: /etc/sysctl.d/50-x.conf has the same name",
		"/root/tuning.conf":           "is not read at boot",
		"/etc/sysctl.d/x.txt":         "is not read at boot",
		"/etc/sysctl.conf":            "",
	} {
		got := strings.Join(sysctlOverrides(h.machine(), file, "vm.swappiness", "1"), "; ")
		if (want == "") != (got == "") || !strings.Contains(got, want) {
			t.Errorf("%s: %q, want %q", file, got, want)
		}
	}
}

func TestSysctlValidate(t *testing.T) {
	cases := []struct {
		args map[string]cty.Value
		want string
	}{
		{map[string]cty.Value{"name": s("a.b")}, `state = "present" needs value`},
		{map[string]cty.Value{"name": s("a.b"), "value": s("  ")}, "value is empty"},
		{map[string]cty.Value{"name": s("a.b"), "value": s("1"), "state": s("absent")}, "not used with"},
		{map[string]cty.Value{"name": s("a.b"), "value": s("1\n2")}, "one line"},
		{map[string]cty.Value{"name": s("a.b"), "value": s("1"), "file": s("rel.conf")}, "absolute"},
		{map[string]cty.Value{"name": s("a..b"), "value": s("1")}, "is not a sysctl key"},
		{map[string]cty.Value{"name": s("a.b"), "state": s("absent")}, ""},
	}
	for _, tc := range cases {
		var msgs []string
		for _, e := range moduletest.Validate(t, Sysctl{}, tc.args) {
			msgs = append(msgs, e.Error())
		}
		got := strings.Join(msgs, "; ")
		if (tc.want == "") != (got == "") || !strings.Contains(got, tc.want) {
			t.Errorf("Validate(%v) = %q, want %q", tc.args, got, tc.want)
		}
	}
}
