// Package generic holds the modules that work on any Linux host: running commands, managing
// files and lines, copying and rendering content, and asserting conditions. Their schemas and
// host-side code are here; what copy, template and assert do on the controller (read src,
// render, check the conditions) is in engine/controller, which the helper does not link.
package generic

import (
	"regexp"
	"strings"

	"github.com/zclconf/go-cty/cty"

	"github.com/runbook/runbook/modules"
)

func init() {
	modules.Register[commandArgs, commandResult](Command{})
	modules.Register[shellArgs, commandResult](Shell{})
	modules.Register[fileArgs, fileResult](File{})
	modules.Register[lineArgs, lineResult](Line{})
	modules.Register[CopyArgs, writeResult](Copy{})
	modules.Register[TemplateArgs, writeResult](Template{})
	modules.Register[AssertArgs, struct{}](Assert{})
}

var (
	modePattern = regexp.MustCompile(`^0?[0-7]{3,4}$`)
	listOfStr   = cty.List(cty.String)
)

// ownership are the arguments every file-writing module shares.
func ownership() []modules.Arg {
	return []modules.Arg{
		{Name: "mode", Type: cty.String, Pattern: modePattern, PatternHelp: `an octal mode such as "0644" (a string, so the leading zero is kept)`,
			Doc: `Permission bits as an octal string, e.g. "0644". Unset keeps the current mode (new files get 0644, directories 0755).`},
		{Name: "owner", Type: cty.String, Doc: "User name or numeric uid that should own the path. Unset keeps the current owner."},
		{Name: "group", Type: cty.String, Doc: "Group name or numeric gid. Unset keeps the current group."},
	}
}

// guards are the arguments that make a command idempotent.
func guards() []modules.Arg {
	return []modules.Arg{
		{Name: "chdir", Type: cty.String, Doc: "Directory to run the command in."},
		{Name: "creates", Type: cty.String, Doc: "A path; when it exists, the command is not run and the task is ok."},
		{Name: "removes", Type: cty.String, Doc: "A path; when it does not exist, the command is not run and the task is ok."},
		{Name: "unless", Type: cty.String, Doc: "A shell command run first (read-only, also in check mode); when it exits 0, the command is not run and the task is ok."},
		{Name: "env", Type: cty.Map(cty.String), Doc: "Extra environment variables for the command."},
		{Name: "stdin", Type: cty.String, Sensitive: true, Doc: "Text fed to the command's standard input; never shown in output."},
		{Name: "ok_codes", Type: cty.List(cty.Number), Default: cty.ListVal([]cty.Value{cty.Zero}),
			Doc: "Exit codes that count as success."},
	}
}

var commandReturns = []modules.Field{
	{Name: "rc", Type: cty.Number, Doc: "Exit code."},
	{Name: "stdout", Type: cty.String, Doc: "Standard output."},
	{Name: "stderr", Type: cty.String, Doc: "Standard error."},
	{Name: "skipped_by", Type: cty.String, Doc: `The guard that kept the command from running ("creates", "removes", "unless"), or "".`},
}

// Command runs a program without a shell.
type Command struct{}

func (Command) Info() modules.Info {
	return modules.Info{
		Name:    "command",
		Family:  "generic",
		Summary: "Run a program on the host, without a shell.",
		Description: `Runs a program directly (no shell: no pipes, globs or variable expansion, so no quoting
surprises). Give the program and its arguments as argv, or as one cmd string that is split on
whitespace with single and double quotes respected. A command is reported as changed every time it
runs, unless a guard (creates, removes, unless) shows there is nothing to do. In check mode only the
guards run; the command itself never does, and the result says whether it would run.`,
		Schema: modules.Schema{
			Args: append([]modules.Arg{
				{Name: "cmd", Type: cty.String, Doc: `Program and arguments as one string, split like a shell would split words (quotes respected, nothing expanded).`},
				{Name: "argv", Type: listOfStr, Doc: "Program and arguments as a list; no splitting at all."},
			}, guards()...),
			ExactlyOneOf: [][]string{{"cmd", "argv"}},
		},
		Returns: commandReturns,
		Examples: []modules.Example{
			{Title: "Flush iptables once a marker says it has not been done", HCL: `task "flush iptables" {
  command {
    argv    = ["iptables", "-F"]
    creates = "/etc/runbook/iptables-flushed"
  }
}`},
			{Title: "Read the load average", HCL: `task "loadavg" {
  command {
    cmd = "cat /proc/loadavg"
  }
}`},
		},
	}
}

// Shell runs a command line through a shell.
type Shell struct{}

func (Shell) Info() modules.Info {
	return modules.Info{
		Name:    "shell",
		Family:  "generic",
		Summary: "Run a command line through /bin/sh (pipes, redirections, globs).",
		Description: `Runs cmd with "executable -c cmd" (default /bin/sh). Use command when no shell features are
needed. Reported as changed every time it runs unless a guard (creates, removes, unless) shows there is
nothing to do; in check mode only the guards run.`,
		Schema: modules.Schema{
			Args: append([]modules.Arg{
				{Name: "cmd", Type: cty.String, Required: true, Doc: "The command line."},
				{Name: "executable", Type: cty.String, Default: cty.StringVal("/bin/sh"), Doc: "The shell that runs cmd."},
			}, guards()...),
		},
		Returns: commandReturns,
		Examples: []modules.Example{
			{Title: "Enable the legacy network service unless it already is", HCL: `task "network service on" {
  shell {
    cmd    = "systemctl enable --now network"
    unless = "systemctl is-enabled network && systemctl is-active network"
  }
}`},
		},
	}
}

// File manages a path's existence, type and metadata.
type File struct{}

func (File) Info() modules.Info {
	return modules.Info{
		Name:    "file",
		Family:  "generic",
		Summary: "Make a path a file, a directory, a symbolic link, or absent, with its mode and owner.",
		Description: `Ensures path is in the given state. "file" creates an empty file when missing and never
changes existing content (use copy or template for content); "directory" creates parents as needed;
"link" makes path a symbolic link to src; "absent" removes a file, link or (recursively) a directory;
"touch" creates the file or updates its times. Mode, owner and group are applied to the path itself.

When path is a symbolic link, "file", "touch" and "directory" act on what it leads to, but only when
the link is trusted, as copy describes (runbook modules copy): an untrusted link fails the task, in
check mode too, naming the link and both owners. "link" and "absent" act on the link itself and
never follow it. A link in a parent directory of path is held to the same rule in every state.`,
		Schema: modules.Schema{
			Args: append([]modules.Arg{
				{Name: "path", Type: cty.String, Required: true, Doc: "Absolute path on the host."},
				{Name: "state", Type: cty.String, Default: cty.StringVal("file"), OneOf: []string{"file", "directory", "link", "absent", "touch"},
					Doc: "What path should be."},
				{Name: "src", Type: cty.String, Doc: `Target of the link, for state = "link".`},
				{Name: "force", Type: cty.Bool, Default: cty.False, Doc: "Replace an existing path of another type (e.g. a file where a link should be)."},
			}, ownership()...),
		},
		Returns: []modules.Field{
			{Name: "exists", Type: cty.Bool, Doc: "Whether path existed before the task."},
			{Name: "type", Type: cty.String, Doc: `What path was before the task: "file", "directory", "link", "other" or "absent".`},
		},
		Examples: []modules.Example{
			{Title: "A state directory owned by root", HCL: `task "state dir" {
  file {
    path  = "/var/lib/runbook-demo"
    state = "directory"
    mode  = "0750"
  }
}`},
		},
	}
}

// Validate enforces the rules between state and src.
func (File) Validate(args fileArgs) []modules.ArgError {
	var errs []modules.ArgError
	if args.State == "link" && args.Src == nil {
		errs = append(errs, modules.ArgError{Arg: "state", Msg: `state = "link" needs src, the link's target.`})
	}
	if args.State != "link" && args.Src != nil {
		errs = append(errs, modules.ArgError{Arg: "src", Msg: `src is only used with state = "link".`})
	}
	if !isAbs(args.Path) {
		errs = append(errs, modules.ArgError{Arg: "path", Msg: "path must be absolute."})
	}
	return errs
}

// Line keeps one line of a text file present or absent.
type Line struct{}

func (Line) Info() modules.Info {
	return modules.Info{
		Name:    "line",
		Family:  "generic",
		Summary: "Make sure one line is in a text file (or is not), replacing the line a regexp finds.",
		Description: `With state = "present": when regexp matches lines, the last match is replaced by line; otherwise
line is added after the last line matching insert_after (or before the first matching insert_before),
or at the end of the file. When line is already there, nothing changes. With state = "absent": every
line matching regexp (or equal to line) is removed. The file is rewritten atomically, keeping its
mode and owner; other lines, comments included, are never touched. A symbolic link at path is
followed and its target edited, only when trusted, as copy describes (runbook modules copy).`,
		Schema: modules.Schema{
			Args: append([]modules.Arg{
				{Name: "path", Type: cty.String, Required: true, Doc: "The file to edit."},
				{Name: "line", Type: cty.String, Doc: `The whole line, without its newline. Required for state = "present".`},
				{Name: "regexp", Type: cty.String, Doc: "A regular expression (Go RE2 syntax) finding the line to replace or remove."},
				{Name: "state", Type: cty.String, Default: cty.StringVal("present"), OneOf: []string{"present", "absent"}, Doc: "Whether the line should be in the file."},
				{Name: "insert_after", Type: cty.String, Doc: `Regexp; a new line goes after the last line that matches. "EOF" means the end.`},
				{Name: "insert_before", Type: cty.String, Doc: `Regexp; a new line goes before the first line that matches. "BOF" means the start.`},
				{Name: "create", Type: cty.Bool, Default: cty.False, Doc: "Create the file when it does not exist (otherwise that is an error)."},
				{Name: "backup", Type: cty.Bool, Default: cty.False, Doc: "Keep the previous version beside the file, named with a timestamp."},
			}, ownership()...),
			AtMostOneOf: [][]string{{"insert_after", "insert_before"}},
		},
		Returns: []modules.Field{
			{Name: "backup_file", Type: cty.String, Doc: `Path of the backup, when one was made.`},
		},
		Examples: []modules.Example{
			{Title: "SELinux off in its config file", HCL: `task "selinux config" {
  line {
    path   = "/etc/selinux/config"
    regexp = "^SELINUX="
    line   = "SELINUX=disabled"
  }
}`},
		},
	}
}

// Validate enforces the rules between state, line and regexp.
func (Line) Validate(args lineArgs) []modules.ArgError {
	var errs []modules.ArgError
	if args.State == "present" && args.Line == nil {
		errs = append(errs, modules.ArgError{Arg: "", Msg: `state = "present" needs line, the text that should be in the file.`})
	}
	if args.State == "absent" && args.Line == nil && args.Regexp == nil {
		errs = append(errs, modules.ArgError{Arg: "state", Msg: `state = "absent" needs regexp or line to find what to remove.`})
	}
	for _, re := range []struct {
		name   string
		v      *string
		anchor string // the word that is no regexp but the start or end
	}{{"regexp", args.Regexp, ""}, {"insert_after", args.InsertAfter, "EOF"}, {"insert_before", args.InsertBefore, "BOF"}} {
		if re.v == nil || (re.anchor != "" && *re.v == re.anchor) {
			continue
		}
		if _, err := regexp.Compile(*re.v); err != nil {
			errs = append(errs, modules.ArgError{Arg: re.name, Msg: "Not a valid regular expression: " + err.Error()})
		}
	}
	if args.Line != nil && containsNewline(*args.Line) {
		errs = append(errs, modules.ArgError{Arg: "line", Msg: "line must be a single line; use copy or template for blocks of text."})
	}
	errs = append(errs, absolute("path", args.Path)...)
	return errs
}

// absolute requires an absolute path: the helper's working directory is nothing a runbook
// should depend on.
func absolute(name, path string) []modules.ArgError {
	if !isAbs(path) {
		return []modules.ArgError{{Arg: name, Msg: name + " must be an absolute path."}}
	}
	return nil
}

// Copy writes content to a file.
type Copy struct{}

func (Copy) Info() modules.Info {
	return modules.Info{
		Name:    "copy",
		Family:  "generic",
		Summary: "Write a file from inline content or from a file next to the runbook.",
		Description: `Writes dest atomically (a temporary file in the same directory, then a rename) when its content
differs. src is read on the controller, relative to the runbook's directory. With validate, the new
content is checked first by running the command with %s replaced by the path of a copy of the new
file (its name, content, mode and owner) in a directory of its own that only the helper's user may
enter, made in $TMPDIR or /tmp; a failing check leaves dest untouched.

Symbolic links: when dest is a link, its target is written and the link stays (a warning says so),
but only when the link is trusted: it leads to a file of its owner's own, or it is root's or the
helper user's and nobody else could have moved it there (it is in a directory of root's or that
user's that no one else may write, unless the directory is sticky); never a link with more than
one name. Any other link could have been planted, or moved there, by a local user to make root
write or reveal a file of their choosing, so it is refused: the task fails, in check mode too, with
an error that names the link, its owner, its target and why, and nothing behind the link is read,
shown in a diff or written. A link in a parent directory of dest is held to the same rule. A link to
nothing is an error. If a refused link is meant, give it to its target's owner (chown -h) or move it
to a directory only root may write; else remove it (file, state = "absent"). The file is read and
replaced through its opened directory, so a link put in its place during the task is replaced,
never written through. A file with several names (hard links) that belongs to someone other than
its directory's owner is neither read nor backed up.`,
		Schema: modules.Schema{
			Args: append([]modules.Arg{
				{Name: "dest", Type: cty.String, Required: true, Doc: "The file to write on the host."},
				{Name: "content", Type: cty.String, Doc: "The file's content."},
				{Name: "src", Type: cty.String, Doc: "A file on the controller, relative to the runbook's directory."},
				{Name: "backup", Type: cty.Bool, Default: cty.False, Doc: "Keep the previous version beside dest, named with a timestamp."},
				{Name: "validate", Type: cty.String, Doc: `A command that must succeed on the new content first; %s is the path of a private copy of the new file.`},
			}, ownership()...),
			ExactlyOneOf: [][]string{{"content", "src"}},
		},
		Returns: []modules.Field{
			{Name: "checksum", Type: cty.String, Doc: "sha256 of the content written."},
			{Name: "backup_file", Type: cty.String, Doc: "Path of the backup, when one was made."},
		},
		Examples: []modules.Example{
			{Title: "A bond definition for the legacy network service", HCL: `task "ifcfg-bond0" {
  copy {
    dest    = "/etc/sysconfig/network-scripts/ifcfg-bond0"
    content = <<-EOT
      DEVICE=bond0
      TYPE=Bond
      BONDING_OPTS="mode=802.3ad miimon=100 lacp_rate=fast xmit_hash_policy=layer3+4"
      MTU=9100
      ONBOOT=yes
    EOT
    mode    = "0644"
  }
}`},
		},
	}
}

// Validate checks that dest is absolute and that validate has its placeholder.
func (Copy) Validate(args CopyArgs) []modules.ArgError {
	errs := absolute("dest", args.Dest)
	if args.Validate != nil && !containsPlaceholder(*args.Validate) {
		errs = append(errs, modules.ArgError{Arg: "validate", Msg: "The validate command must contain %s, where the new file's path goes."})
	}
	return errs
}

// Template renders a template and writes the result to a file.
type Template struct{}

func (Template) Info() modules.Info {
	return modules.Info{
		Name:    "template",
		Family:  "generic",
		Summary: "Render an HCL template per host and write it to a file.",
		Description: `Templates use HCL's template syntax, the same as strings in runbooks: ${expr} interpolates and
%{ if }/%{ for } directives control the text. A template is rendered on the controller for each host with
vars plus everything an expression in the task can see (var, local, host, facts, task), then written like
copy: atomically, only when it differs, and following a link at dest only when trusted (runbook
modules copy). src is relative to the runbook's directory.`,
		Schema: modules.Schema{
			Args: append([]modules.Arg{
				{Name: "dest", Type: cty.String, Required: true, Doc: "The file to write on the host."},
				{Name: "src", Type: cty.String, Doc: "Template file on the controller, relative to the runbook's directory."},
				{Name: "content", Type: cty.String, Doc: "The template inline (escape ${ as $${ in it if the runbook itself should not expand it)."},
				{Name: "vars", Type: cty.DynamicPseudoType, Doc: "An object of extra values the template sees by name."},
				{Name: "backup", Type: cty.Bool, Default: cty.False, Doc: "Keep the previous version beside dest, named with a timestamp."},
				{Name: "validate", Type: cty.String, Doc: `A command that must succeed on the rendered file first; %s is the path of a private copy of it.`},
			}, ownership()...),
			ExactlyOneOf: [][]string{{"src", "content"}},
		},
		Returns: []modules.Field{
			{Name: "checksum", Type: cty.String, Doc: "sha256 of the rendered content."},
			{Name: "backup_file", Type: cty.String, Doc: "Path of the backup, when one was made."},
		},
		Examples: []modules.Example{
			{Title: "An /etc/motd naming the host", HCL: `task "motd" {
  template {
    dest    = "/etc/motd"
    content = "Managed by runbook. This is $${name}.\n"
    vars    = { name = host.name }
  }
}`},
		},
	}
}

// Validate checks dest, the vars object and the validate placeholder.
func (Template) Validate(args TemplateArgs) []modules.ArgError {
	errs := absolute("dest", args.Dest)
	if v := args.Vars; !v.IsNull() && !(v.Type().IsObjectType() || v.Type().IsMapType()) {
		errs = append(errs, modules.ArgError{Arg: "vars", Msg: "vars must be an object, e.g. { name = host.name }."})
	}
	if args.Validate != nil && !containsPlaceholder(*args.Validate) {
		errs = append(errs, modules.ArgError{Arg: "validate", Msg: "The validate command must contain %s, where the new file's path goes."})
	}
	return errs
}

// Assert fails a host when a condition does not hold.
type Assert struct{}

func (Assert) Info() modules.Info {
	return modules.Info{
		Name:    "assert",
		Family:  "generic",
		Summary: "Fail the host unless every condition is true.",
		Description: `Each element of that is an expression evaluated per host on the controller; the task is ok when
all are true and failed otherwise, naming the first false condition (or fail_msg). It never changes the
host and runs the same in check mode, so it suits compliance checks (e.g. "every bond slave is in one
aggregator"). With warn_only, a false condition does not fail the host: the task is ok and carries
the message as a warning, which the recap, the JSON view, the history and the report show (advice rather
than a rule, e.g. a card whose ports can carry more than its PCIe slot).`,
		Schema: modules.Schema{
			Args: []modules.Arg{
				{Name: "that", Type: cty.List(cty.Bool), Required: true, Doc: "Conditions that must all be true."},
				{Name: "fail_msg", Type: cty.String, Doc: "Message when a condition is false."},
				{Name: "success_msg", Type: cty.String, Doc: "Message when all are true."},
				{Name: "warn_only", Type: cty.Bool, Default: cty.False,
					Doc: "A false condition gives a warning (fail_msg, else which condition is false) on an ok task instead of failing the host."},
			},
		},
		Examples: []modules.Example{
			{Title: "Jumbo frames on the data NICs", HCL: `task "mtu is 9100" {
  assert {
    that     = [for nic in host.vars.data_nics : facts.nics[nic].mtu == 9100]
    fail_msg = "a data NIC is not at MTU 9100"
  }
}`},
			{Title: "Advice, not a rule: warn when a data NIC's PCIe link trained below what the card can do", HCL: `task "PCIe links at full width" {
  assert {
    that      = [for nic in host.vars.data_nics : !try(facts.nics[nic].pcie.degraded, false)]
    fail_msg  = "a data NIC's PCIe link is narrower or slower than the card's"
    warn_only = true
  }
}`},
		},
	}
}

// RunsOnController marks assert as the controller's: its code is in engine/controller.
func (Assert) RunsOnController() {}

// AssertArgs are assert's arguments, which the controller checks (engine/controller). A
// condition may be null, which counts as false.
type AssertArgs struct {
	That       []*bool `cty:"that"`
	FailMsg    *string `cty:"fail_msg"`
	SuccessMsg *string `cty:"success_msg"`
	WarnOnly   bool    `cty:"warn_only"`
}

// Validate rejects an empty condition list.
func (Assert) Validate(args AssertArgs) []modules.ArgError {
	if len(args.That) == 0 {
		return []modules.ArgError{{Arg: "that", Msg: "that needs at least one condition."}}
	}
	return nil
}

func isAbs(p string) bool { return len(p) > 0 && p[0] == '/' }

func containsNewline(s string) bool { return strings.ContainsRune(s, '\n') }

func containsPlaceholder(s string) bool { return strings.Contains(s, "%s") }
