package security

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/zclconf/go-cty/cty"

	"github.com/runbook/runbook/modules"
	"github.com/runbook/runbook/modules/host"
	"github.com/runbook/runbook/modules/moduletest"
)

// rhelConfig is a config file as Red Hat systems ship it, comments and all.
const rhelConfig = `
# This file controls the state of SELinux on the system.
# SELINUX= can take one of these three values:
#     enforcing - SELinux security policy is enforced.
#     permissive - SELinux prints warnings instead of enforcing.
#     disabled - No SELinux policy is loaded.
SELINUX=enforcing
# SELINUXTYPE= can take one of three values:
#     targeted - Targeted processes are protected,
#     minimum - Modification of targeted policy. Only selected processes are protected.
#     mls - Multi Level Security protection.
SELINUXTYPE=targeted

`

func TestEditSEConfig(t *testing.T) {
	tests := []struct {
		name        string
		old         string
		missing     bool
		mode        string
		policy      string
		want        string
		wantChanged bool
	}{
		{name: "enforcing to disabled keeps every other line", old: rhelConfig, mode: "disabled",
			want: strings.Replace(rhelConfig, "SELINUX=enforcing", "SELINUX=disabled", 1), wantChanged: true},
		{name: "already so", old: rhelConfig, mode: "enforcing", want: rhelConfig},
		{name: "value in another case is already so", old: "SELINUX=Enforcing\n", mode: "enforcing", want: "SELINUX=Enforcing\n"},
		{name: "value after blanks is already so", old: "SELINUX= permissive # for now\n", mode: "permissive", want: "SELINUX= permissive # for now\n"},
		// libselinux reads neither quotes nor an indented line: the boot would not see them.
		{name: "quoted value is rewritten", old: "SELINUX=\"permissive\"\n", mode: "permissive", want: "SELINUX=permissive\n", wantChanged: true},
		{name: "indented line is rewritten", old: "  SELINUX=permissive\n", mode: "permissive", want: "SELINUX=permissive\n", wantChanged: true},
		{name: "quoted policy is rewritten", old: "SELINUX=enforcing\nSELINUXTYPE=\"mls\"\n", mode: "enforcing", policy: "mls",
			want: "SELINUX=enforcing\nSELINUXTYPE=mls\n", wantChanged: true},
		{name: "spaces around the equals sign", old: "  SELINUX = enforcing\nSELINUXTYPE=targeted\n", mode: "permissive",
			want: "SELINUX=permissive\nSELINUXTYPE=targeted\n", wantChanged: true},
		{name: "SELINUXTYPE is not SELINUX", old: "SELINUXTYPE=targeted\n", mode: "disabled",
			want: "SELINUXTYPE=targeted\nSELINUX=disabled\n", wantChanged: true},
		{name: "every assignment is set", old: "SELINUX=enforcing\n#SELINUX=permissive\nSELINUX=enforcing\n", mode: "disabled",
			want: "SELINUX=disabled\n#SELINUX=permissive\nSELINUX=disabled\n", wantChanged: true},
		{name: "commented-out line is not an assignment", old: "# SELINUX=disabled\n", mode: "disabled",
			want: "# SELINUX=disabled\nSELINUX=disabled\n", wantChanged: true},
		{name: "last line without newline", old: "# x\nSELINUXTYPE=default", mode: "permissive",
			want: "# x\nSELINUXTYPE=default\nSELINUX=permissive\n", wantChanged: true},
		{name: "CRLF file gets CRLF lines", old: "# x\r\nSELINUX=enforcing\r\n", mode: "permissive", policy: "mls",
			want: "# x\r\nSELINUX=permissive\r\nSELINUXTYPE=mls\r\n", wantChanged: true},
		{name: "policy changed in place", old: rhelConfig, mode: "enforcing", policy: "mls",
			want: strings.Replace(rhelConfig, "SELINUXTYPE=targeted", "SELINUXTYPE=mls", 1), wantChanged: true},
		{name: "policy unset leaves the line alone", old: "SELINUX=enforcing\nSELINUXTYPE=default\n", mode: "enforcing",
			want: "SELINUX=enforcing\nSELINUXTYPE=default\n"},
		{name: "empty file", old: "", mode: "disabled", want: "SELINUX=disabled\n", wantChanged: true},
		{name: "missing file gets the full content", missing: true, mode: "permissive", policy: "",
			want: newSEConfig("permissive", "targeted"), wantChanged: true},
		{name: "missing file with a policy", missing: true, mode: "enforcing", policy: "mls",
			want: newSEConfig("enforcing", "mls"), wantChanged: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, changed := editSEConfig([]byte(tt.old), !tt.missing, tt.mode, tt.policy, "targeted")
			if string(got) != tt.want {
				t.Errorf("content:\n%q\nwant:\n%q", got, tt.want)
			}
			if changed != tt.wantChanged {
				t.Errorf("changed = %v, want %v", changed, tt.wantChanged)
			}
			mode, policy := parseSEConfig(got)
			if mode != tt.mode {
				t.Errorf("the result reads back as SELINUX=%q, want %q", mode, tt.mode)
			}
			if tt.policy != "" && policy != tt.policy {
				t.Errorf("the result reads back as SELINUXTYPE=%q, want %q", policy, tt.policy)
			}
		})
	}
}

// TestPlanRuntime is the whole table of runtime state × wanted state.
func TestPlanRuntime(t *testing.T) {
	tests := []struct {
		runtime, want string
		policyChanged bool
		setTo         string
		reboot        bool
	}{
		{seEnforcing, seEnforcing, false, "", false},
		{seEnforcing, sePermissive, false, sePermissive, false},
		{seEnforcing, seDisabled, false, sePermissive, true},
		{sePermissive, seEnforcing, false, seEnforcing, false},
		{sePermissive, sePermissive, false, "", false},
		{sePermissive, seDisabled, false, "", true},
		{seDisabled, seEnforcing, false, "", true},
		{seDisabled, sePermissive, false, "", true},
		{seDisabled, seDisabled, false, "", false},
		{seNotAvailable, seEnforcing, false, "", false},
		{seNotAvailable, sePermissive, false, "", false},
		{seNotAvailable, seDisabled, false, "", false},
		// A new policy type needs a reboot while SELinux runs, not when it is off.
		{seEnforcing, seEnforcing, true, "", true},
		{sePermissive, seEnforcing, true, seEnforcing, true},
		{seDisabled, seDisabled, true, "", false},
		{seNotAvailable, seEnforcing, true, "", false},
	}
	for _, tt := range tests {
		p := planRuntime(tt.runtime, tt.want, tt.policyChanged)
		if p.setTo != tt.setTo || p.reboot != tt.reboot {
			t.Errorf("planRuntime(%s, %s, policy changed %v) = set %q, reboot %v; want set %q, reboot %v",
				tt.runtime, tt.want, tt.policyChanged, p.setTo, p.reboot, tt.setTo, tt.reboot)
		}
		if p.reboot && p.why == "" {
			t.Errorf("planRuntime(%s, %s): a reboot without a reason", tt.runtime, tt.want)
		}
	}
}

// Mount tables of fake roots.
const (
	mountinfoSELinux = "22 1 0:21 / /sys rw,nosuid,nodev,noexec,relatime shared:7 - sysfs sysfs rw\n" +
		"23 22 0:20 / /sys/fs/selinux rw,nosuid,noexec,relatime shared:3 - selinuxfs selinuxfs rw\n"
	mountinfoPlain = "22 1 0:21 / /sys rw,nosuid,nodev,noexec,relatime shared:7 - sysfs sysfs rw\n"
)

func TestReadKernel(t *testing.T) {
	tests := []struct {
		name    string
		files   map[string]string
		want    string
		bootOff bool
		wantErr string
	}{
		{name: "enforcing", files: map[string]string{"proc/self/mountinfo": mountinfoSELinux, "sys/fs/selinux/enforce": "1"}, want: seEnforcing},
		{name: "permissive", files: map[string]string{"proc/self/mountinfo": mountinfoSELinux, "sys/fs/selinux/enforce": "0\n"}, want: sePermissive},
		{name: "selinuxfs at an old mount point with an escaped space",
			files: map[string]string{"proc/self/mountinfo": "30 1 0:20 / /se\\040linux rw - selinuxfs none rw\n", "se linux/enforce": "1"}, want: seEnforcing},
		{name: "no mount table: the usual mount point", files: map[string]string{"sys/fs/selinux/enforce": "0"}, want: sePermissive},
		{name: "in the kernel without a policy", files: map[string]string{"proc/self/mountinfo": mountinfoPlain,
			"sys/kernel/security/lsm": "lockdown,capability,yama,selinux,bpf"}, want: seDisabled},
		{name: "selinuxfs registered, not mounted", files: map[string]string{"proc/self/mountinfo": mountinfoPlain,
			"proc/filesystems": "nodev\tsysfs\nnodev\tselinuxfs\n"}, want: seDisabled},
		{name: "selinux=0 on the command line", files: map[string]string{"proc/self/mountinfo": mountinfoPlain,
			"proc/cmdline": "BOOT_IMAGE=/vmlinuz ro selinux=0 quiet\n"}, want: seDisabled, bootOff: true},
		{name: "another security module only", files: map[string]string{"proc/self/mountinfo": mountinfoPlain,
			"sys/kernel/security/lsm": "lockdown,capability,landlock,yama,apparmor", "proc/filesystems": "nodev\tsysfs\n"}, want: seNotAvailable},
		{name: "nothing at all", files: map[string]string{}, want: seNotAvailable},
		{name: "an enforce switch that makes no sense", files: map[string]string{"proc/self/mountinfo": mountinfoSELinux, "sys/fs/selinux/enforce": "2"},
			wantErr: `unexpected "2"`},
		{name: "mounted without an enforce switch", files: map[string]string{"proc/self/mountinfo": mountinfoSELinux},
			wantErr: "read the SELinux mode"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := t.TempDir()
			writeTree(t, root, tt.files)
			k, err := readKernel(host.Root(root))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if k.state != tt.want || k.bootOff != tt.bootOff {
				t.Errorf("state %q bootOff %v, want %q %v", k.state, k.bootOff, tt.want, tt.bootOff)
			}
			if (k.state == seEnforcing || k.state == sePermissive) != (k.enforce != "") {
				t.Errorf("enforce path %q for state %s", k.enforce, k.state)
			}
		})
	}
}

// Kernels for the run tests.
var (
	kernEnforcing  = map[string]string{"proc/self/mountinfo": mountinfoSELinux, "sys/fs/selinux/enforce": "1"}
	kernPermissive = map[string]string{"proc/self/mountinfo": mountinfoSELinux, "sys/fs/selinux/enforce": "0"}
	kernDisabled   = map[string]string{"proc/self/mountinfo": mountinfoPlain, "sys/kernel/security/lsm": "capability,selinux"}
	kernNone       = map[string]string{"proc/self/mountinfo": mountinfoPlain, "sys/kernel/security/lsm": "capability,apparmor"}
)

func with(base map[string]string, more map[string]string) map[string]string {
	out := map[string]string{}
	for k, v := range base {
		out[k] = v
	}
	for k, v := range more {
		out[k] = v
	}
	return out
}

// TestSELinuxTimeline runs each case through check → apply → check → apply on a fake root
// and checks the statuses, the reboot flag on every run (a pending reboot stays reported
// while the runs are ok), the files and the kernel switch.
func TestSELinuxTimeline(t *testing.T) {
	targeted := map[string]string{"etc/selinux/targeted/policy/policy.33": "x"}
	tests := []struct {
		name  string
		files map[string]string
		args  map[string]cty.Value
		// reboot is the reboot flag every run must report; changeReboot is one only the
		// runs that change the file report (a new policy type: nothing in the kernel shows
		// which one it loaded, so a later run cannot tell).
		reboot, changeReboot bool
		// runtime is Data.runtime after the apply.
		runtime    string
		enforce    string // the switch after apply, "" for no switch
		config     string // the config file's content after apply
		warning    string // a warning every run carries
		noWarnings bool
	}{
		{name: "enforcing kernel to disabled: permissive now, disabled after a reboot",
			files: with(with(kernEnforcing, targeted), map[string]string{"etc/selinux/config": rhelConfig}),
			args:  map[string]cty.Value{"state": s("disabled")}, reboot: true, runtime: sePermissive, enforce: "0",
			config: strings.Replace(rhelConfig, "SELINUX=enforcing", "SELINUX=disabled", 1), warning: "reboot required"},
		{name: "permissive kernel to disabled: only the reboot is left",
			files: with(kernPermissive, map[string]string{"etc/selinux/config": rhelConfig}),
			args:  map[string]cty.Value{"state": s("disabled")}, reboot: true, runtime: sePermissive, enforce: "0",
			config: strings.Replace(rhelConfig, "SELINUX=enforcing", "SELINUX=disabled", 1), warning: "disabled takes effect after a reboot"},
		{name: "permissive kernel to enforcing: at once, no reboot",
			files: with(with(kernPermissive, targeted), map[string]string{"etc/selinux/config": strings.Replace(rhelConfig, "=enforcing", "=permissive", 1)}),
			args:  map[string]cty.Value{"state": s("enforcing")}, runtime: seEnforcing, enforce: "1", config: rhelConfig, noWarnings: true},
		{name: "enforcing kernel to permissive with the file already so",
			files: with(with(kernEnforcing, targeted), map[string]string{"etc/selinux/config": strings.Replace(rhelConfig, "=enforcing", "=permissive", 1)}),
			args:  map[string]cty.Value{"state": s("permissive")}, runtime: sePermissive, enforce: "0",
			config: strings.Replace(rhelConfig, "=enforcing", "=permissive", 1), noWarnings: true},
		{name: "disabled kernel to permissive: reboot and relabel",
			files: with(with(kernDisabled, targeted), map[string]string{"etc/selinux/config": strings.Replace(rhelConfig, "=enforcing", "=disabled", 1)}),
			args:  map[string]cty.Value{"state": s("permissive")}, reboot: true, runtime: seDisabled,
			config: strings.Replace(rhelConfig, "=enforcing", "=permissive", 1), warning: ".autorelabel"},
		{name: "no SELinux in the kernel: only the file, no reboot",
			files: with(kernNone, map[string]string{"etc/selinux/config": rhelConfig}),
			args:  map[string]cty.Value{"state": s("disabled")}, runtime: seNotAvailable,
			config: strings.Replace(rhelConfig, "SELINUX=enforcing", "SELINUX=disabled", 1), noWarnings: true},
		{name: "no SELinux in the kernel, policy not installed: a warning",
			files: with(kernNone, map[string]string{"etc/selinux/config": "SELINUX=disabled\nSELINUXTYPE=default\n"}),
			args:  map[string]cty.Value{"state": s("permissive")}, runtime: seNotAvailable,
			config: "SELINUX=permissive\nSELINUXTYPE=default\n", warning: `policy "default" is not installed (no /etc/selinux/default/policy)`},
		{name: "missing file is created with the installed policy",
			files: with(kernNone, map[string]string{"etc/selinux/mls/policy/policy.33": "x"}),
			args:  map[string]cty.Value{"state": s("permissive")}, runtime: seNotAvailable, config: newSEConfig("permissive", "mls"), noWarnings: true},
		{name: "missing directory and file are created",
			files: kernNone,
			args:  map[string]cty.Value{"state": s("disabled"), "policy": s("targeted")}, runtime: seNotAvailable, config: newSEConfig("disabled", "targeted")},
		{name: "policy change on a running SELinux needs a reboot",
			files: with(with(kernEnforcing, map[string]string{"etc/selinux/mls/policy/policy.33": "x"}), map[string]string{"etc/selinux/config": rhelConfig}),
			args:  map[string]cty.Value{"state": s("enforcing"), "policy": s("mls")}, runtime: seEnforcing, enforce: "1",
			config: strings.Replace(rhelConfig, "=targeted", "=mls", 1), changeReboot: true},
		{name: "config elsewhere",
			files: with(kernNone, map[string]string{"srv/se/config": "SELINUX=enforcing\n"}),
			args:  map[string]cty.Value{"state": s("disabled"), "config": s("/srv/se/config")}, runtime: seNotAvailable, config: "SELINUX=disabled\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := t.TempDir()
			writeTree(t, root, tt.files)
			m := SELinux{root: host.Root(root)}
			cfgPath := "/etc/selinux/config"
			if v, ok := tt.args["config"]; ok {
				cfgPath = v.AsString()
			}
			// The timeline checks the statuses and diffs, and that no check (nor the last
			// apply) changes a file.
			results := moduletest.Timeline(t, m, tt.args, moduletest.Snapshot(func(t testing.TB) string { return snapshot(t, root) }))
			for i, res := range results {
				data := res.Data.(*seResult)
				wantReboot := tt.reboot || (tt.changeReboot && res.Status != modules.StatusOK)
				if res.RebootRequired != wantReboot || data.RebootRequired != wantReboot {
					t.Errorf("run %d: reboot %v / data %v, want %v", i+1, res.RebootRequired, data.RebootRequired, wantReboot)
				}
				if tt.changeReboot && wantReboot && !contains(res.Warnings, "keeps its policy until a reboot") {
					t.Errorf("run %d: warnings %q lack the policy reboot", i+1, res.Warnings)
				}
				if tt.warning != "" && !contains(res.Warnings, tt.warning) {
					t.Errorf("run %d: warnings %q lack %q", i+1, res.Warnings, tt.warning)
				}
				if tt.noWarnings && len(res.Warnings) > 0 {
					t.Errorf("run %d: unexpected warnings %q", i+1, res.Warnings)
				}
				if res.Status == modules.StatusOK && tt.reboot && !strings.Contains(res.Msg, "reboot pending") {
					t.Errorf("run %d: ok with a pending reboot should say so: %q", i+1, res.Msg)
				}
				if i >= 1 {
					if data.Runtime != tt.runtime {
						t.Errorf("run %d: runtime %v, want %s", i+1, data.Runtime, tt.runtime)
					}
					if data.Persistent != tt.args["state"].AsString() {
						t.Errorf("run %d: persistent %v, want %s", i+1, data.Persistent, tt.args["state"].AsString())
					}
				}
			}
			if got := readFile(t, filepath.Join(root, cfgPath)); got != tt.config {
				t.Errorf("config:\n%s\nwant:\n%s", got, tt.config)
			}
			if tt.enforce != "" {
				if got := strings.TrimSpace(readFile(t, filepath.Join(root, "sys/fs/selinux/enforce"))); got != tt.enforce {
					t.Errorf("enforce = %q, want %q", got, tt.enforce)
				}
			}
		})
	}
}

// TestSELinuxDiff checks the first check's diff: the runtime, in the headers and as a
// section when it changes, and the file's lines.
func TestSELinuxDiff(t *testing.T) {
	root := t.TempDir()
	writeTree(t, root, with(kernEnforcing, map[string]string{"etc/selinux/config": rhelConfig}))
	res, err := moduletest.Run(t, SELinux{root: host.Root(root)}, map[string]cty.Value{"state": s("disabled")}, false)
	if err != nil {
		t.Fatal(err)
	}
	d := res.Diff
	if d.BeforeHeader != "selinux (before; runtime: enforcing)" || d.AfterHeader != "selinux (after; runtime: permissive (disabled after a reboot))" {
		t.Errorf("headers %q, %q", d.BeforeHeader, d.AfterHeader)
	}
	for _, want := range []string{"==> runtime <==\nmode: enforcing\n", "==> /etc/selinux/config <==\n", "SELINUX=enforcing\n", "# SELINUX= can take one of these three values:"} {
		if !strings.Contains(d.Before, want) {
			t.Errorf("diff before lacks %q:\n%s", want, d.Before)
		}
	}
	for _, want := range []string{"mode: permissive (disabled after a reboot)\n", "SELINUX=disabled\n", "SELINUXTYPE=targeted\n"} {
		if !strings.Contains(d.After, want) {
			t.Errorf("diff after lacks %q:\n%s", want, d.After)
		}
	}
	if !strings.Contains(res.Msg, "would set SELINUX=enforcing → disabled in /etc/selinux/config") || !strings.Contains(res.Msg, "would switch runtime enforcing → permissive") {
		t.Errorf("msg = %q", res.Msg)
	}

	// Only the file changes: the diff is the file's, with the runtime in its headers.
	root = t.TempDir()
	writeTree(t, root, with(kernNone, map[string]string{"etc/selinux/config": rhelConfig}))
	res, err = moduletest.Run(t, SELinux{root: host.Root(root)}, map[string]cty.Value{"state": s("permissive")}, false)
	if err != nil {
		t.Fatal(err)
	}
	if h := res.Diff.AfterHeader; h != "/etc/selinux/config (after; runtime: not available)" || strings.Contains(res.Diff.After, "==>") {
		t.Errorf("file-only diff: %q\n%s", h, res.Diff.After)
	}
}

// TestSELinuxKeepsFile checks that a rewrite keeps the file's mode, and a link stays a link.
func TestSELinuxKeepsFile(t *testing.T) {
	root := t.TempDir()
	writeTree(t, root, with(kernNone, map[string]string{
		"etc/selinux/config":    "SELINUX=enforcing\n",
		"etc/sysconfig/selinux": "->../selinux/config",
	}))
	cfg := filepath.Join(root, "etc/selinux/config")
	if err := os.Chmod(cfg, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := moduletest.Run(t, SELinux{root: host.Root(root)}, map[string]cty.Value{"state": s("disabled"), "config": s("/etc/sysconfig/selinux")}, true); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Lstat(filepath.Join(root, "etc/sysconfig/selinux"))
	if err != nil || fi.Mode()&os.ModeSymlink == 0 {
		t.Fatalf("the link was replaced: %v %v", fi.Mode(), err)
	}
	if fi, err := os.Stat(cfg); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("mode %v, want 0600 (%v)", fi.Mode().Perm(), err)
	}
	if got := readFile(t, cfg); got != "SELINUX=disabled\n" {
		t.Errorf("config = %q", got)
	}
	if left, _ := filepath.Glob(filepath.Join(root, "etc/selinux/.config.runbook-*")); len(left) > 0 {
		t.Errorf("temporary files left: %v", left)
	}
}

func TestSELinuxErrors(t *testing.T) {
	tests := []struct {
		name    string
		files   map[string]string
		args    map[string]cty.Value
		wantErr string
	}{
		{name: "config is a directory", files: with(kernNone, map[string]string{"etc/selinux/config/x": ""}),
			args: map[string]cty.Value{"state": s("disabled")}, wantErr: "is not a regular file"},
		{name: "unreadable kernel switch", files: map[string]string{"proc/self/mountinfo": mountinfoSELinux, "etc/selinux/config": "SELINUX=enforcing\n"},
			args: map[string]cty.Value{"state": s("disabled")}, wantErr: "read the SELinux mode"},
		{name: "dangling link", files: with(kernNone, map[string]string{"etc/selinux/config": "->nowhere"}),
			args: map[string]cty.Value{"state": s("disabled")}, wantErr: "does not resolve"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := t.TempDir()
			writeTree(t, root, tt.files)
			before := snapshot(t, root)
			_, err := moduletest.Run(t, SELinux{root: host.Root(root)}, tt.args, true)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("err = %v, want %q", err, tt.wantErr)
			}
			if after := snapshot(t, root); after != before {
				t.Errorf("a failed run changed files:\n%s\n%s", before, after)
			}
		})
	}
}

func TestSELinuxValidate(t *testing.T) {
	tests := []struct {
		args    map[string]cty.Value
		wantErr string
	}{
		{map[string]cty.Value{"state": s("disabled")}, ""},
		{map[string]cty.Value{"state": s("disabled"), "config": s("etc/selinux/config")}, "config must be an absolute path"},
		// Values the controller did not know (a host's facts) meet the schema's rules here.
		{map[string]cty.Value{"state": s("enforced")}, `state: "enforced" is not a valid state; expected one of: enforcing, permissive, disabled.`},
		{map[string]cty.Value{"state": s("disabled"), "policy": s("../x")}, `policy: "../x" is not valid here: expected a policy name such as "targeted".`},
	}
	for _, tt := range tests {
		errs := moduletest.Validate(t, SELinux{}, tt.args)
		switch {
		case tt.wantErr == "" && len(errs) > 0:
			t.Errorf("%v: unexpected %v", tt.args, errs)
		case tt.wantErr != "" && (len(errs) == 0 || !strings.Contains(errs[0].Error(), tt.wantErr)):
			t.Errorf("%v: errors %v, want %q", tt.args, errs, tt.wantErr)
		}
	}
	if _, err := (SELinux{}).Info().Schema.Normalize(cty.ObjectVal(map[string]cty.Value{"policy": s("targeted")})); err == nil {
		t.Error("state is required, but Normalize accepted its absence")
	}
}
