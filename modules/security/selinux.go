package security

import (
	"regexp"

	"github.com/zclconf/go-cty/cty"

	"github.com/runbook/runbook/modules"
	"github.com/runbook/runbook/modules/host"
)

// Values of the runtime field: the SELinux modes, plus the state of a kernel that runs
// without SELinux.
const (
	seEnforcing    = "enforcing"
	sePermissive   = "permissive"
	seDisabled     = "disabled"
	seNotAvailable = "not available"
)

// DefaultSELinuxConfig is the file the selinux module edits unless told otherwise.
const DefaultSELinuxConfig = "/etc/selinux/config"

var policyPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]*$`)

// SELinux sets the SELinux mode, persistently in its config file and at runtime where the
// kernel allows it.
type SELinux struct {
	// root is where the module finds "/" (config, /proc, /sys); "" on a host. Tests point
	// it at a fake tree.
	root host.Root
}

// seArgs are the selinux module's arguments.
type seArgs struct {
	State string `cty:"state"`
	// Policy is nil when the task leaves SELINUXTYPE= alone.
	Policy *string `cty:"policy"`
	Config string  `cty:"config"`
}

// seResult is what a selinux task registers.
type seResult struct {
	Runtime        string `cty:"runtime"`
	Persistent     string `cty:"persistent"`
	Policy         string `cty:"policy"`
	RebootRequired bool   `cty:"reboot_required"`
	Config         string `cty:"config"`
}

var _ modules.Validator[seArgs] = SELinux{}

func (SELinux) Info() modules.Info {
	return modules.Info{
		Name:    "selinux",
		Family:  "security",
		Summary: "Set the SELinux mode (enforcing, permissive, disabled) in its config file and at runtime.",
		Description: `Edits the SELINUX= line (and SELINUXTYPE= when policy is given) of the SELinux config file;
every other line, comments included, is kept byte for byte, and the file is rewritten atomically
with its mode and owner. A missing file is created with both settings and a short comment.

When SELinux is active in the running kernel (selinuxfs is mounted), the runtime mode is set too,
by writing the kernel's enforce switch: enforcing and permissive switch at once. Going to or from
disabled needs a reboot: the task then reports reboot_required (state = "disabled" also drops an
enforcing kernel to permissive right away). Once the file says what is wanted and only the reboot
is missing, later runs are ok, not changed, and still report reboot_required with a message that
the reboot is pending. Changing the policy type of a running SELinux needs a reboot (and a
relabel) as well; that is reported on the run that changes the file.

A kernel without SELinux (not built in, or not among its active security modules) is reported as
runtime "not available": that is a fact, not a failure. Only the file is managed there, and no
reboot is reported, since rebooting the same kernel would not change anything.`,
		Schema: modules.Schema{
			Args: []modules.Arg{
				{Name: "state", Type: cty.String, Required: true, OneOf: []string{seEnforcing, sePermissive, seDisabled},
					Doc: "The SELinux mode, in the config file and, where the kernel allows it, at runtime."},
				{Name: "policy", Type: cty.String, Pattern: policyPattern, PatternHelp: `a policy name such as "targeted"`,
					Doc: `The policy type for SELINUXTYPE=, e.g. "targeted" or "mls" (a directory under /etc/selinux). Unset leaves the line alone.`},
				{Name: "config", Type: cty.String, Default: cty.StringVal(DefaultSELinuxConfig),
					Doc: "The SELinux config file."},
			},
		},
		Returns: []modules.Field{
			{Name: "runtime", Type: cty.String, Doc: `The running kernel's mode after the task: "enforcing", "permissive", "disabled" (SELinux is in the kernel but not active) or "not available" (the kernel has no SELinux).`},
			{Name: "persistent", Type: cty.String, Doc: `The SELINUX= value of the config file (after the task; in check mode as it is now), "" when the file has none.`},
			{Name: "policy", Type: cty.String, Doc: `The SELINUXTYPE= value of the config file, "" when the file has none.`},
			{Name: "reboot_required", Type: cty.Bool, Doc: "Whether the running kernel differs from the wanted state in a way only a reboot changes."},
			{Name: "config", Type: cty.String, Doc: "The config file's path."},
		},
		Examples: []modules.Example{
			{Title: "SELinux off, as the installation guide asks", HCL: `task "selinux off" {
  selinux {
    state = "disabled"
  }
}`},
			{Title: "Permissive with the targeted policy", HCL: `task "selinux permissive" {
  selinux {
    state  = "permissive"
    policy = "targeted"
  }
}`},
		},
	}
}

// Validate checks that config is an absolute path, and state and policy as the schema
// says (for values the controller could not check).
func (m SELinux) Validate(args seArgs) []modules.ArgError {
	var errs []modules.ArgError
	if !isAbs(args.Config) {
		errs = append(errs, modules.ArgError{Arg: "config", Msg: "config must be an absolute path."})
	}
	return errs
}

func isAbs(p string) bool { return len(p) > 0 && p[0] == '/' }
