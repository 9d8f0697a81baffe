// Package accounts holds the modules for operator accounts: group, user and
// authorized_key. Users and groups are changed with shadow-utils (groupadd, useradd,
// usermod and their kin, through the host toolkit) and read from /etc/passwd, /etc/shadow
// and /etc/group directly, so check mode runs no program at all. A password is given as a
// crypt hash, marked sensitive, and reaches the host's chpasswd on its standard input,
// never its command line. authorized_key writes into a directory its user owns, so it goes
// through modules/hostfs and refuses every link on the way (docs/security.md).
package accounts

import (
	"context"
	"fmt"
	"regexp"
	"strings"

	"github.com/runbook/runbook/modules"
	"github.com/runbook/runbook/modules/host"
	"github.com/runbook/runbook/modules/hostfs"
)

func init() {
	modules.Register[groupArgs, groupResult](Group{})
	modules.Register[userArgs, userResult](User{})
	modules.Register[keyArgs, keyResult](AuthorizedKey{})
}

// machine is the host a module works on: where its files are and how it runs programs.
// Unit tests point it at a test tree and a simulator of shadow-utils.
type machine struct {
	root host.Root
	run  host.Runner
	red  *modules.Redactor
}

func realMachine(env *modules.Env) *machine {
	return &machine{run: host.Exec{Env: env}, red: env.Redactor()}
}

func on(test *machine, env *modules.Env) *machine {
	if test != nil {
		return test
	}
	return realMachine(env)
}

func (m *machine) path(p string) string { return m.root.Path(p) }

// exec runs a shadow-utils program; stdin, when not "", is written to its standard input.
func (m *machine) exec(ctx context.Context, stdin string, argv ...string) error {
	if m.run.LookPath(argv[0]) == "" {
		return fmt.Errorf("%s is not installed on this host (shadow-utils: the passwd package on Debian, shadow-utils on Red Hat)", argv[0])
	}
	_, err := host.Output(ctx, m.run, m.red, host.Cmd{Argv: argv, Stdin: stdin})
	return err
}

// namePattern is what shadow-utils accepts as a user or group name by default
// (NAME_REGEX of useradd, and what its is_valid_name allows): a lower-case letter or an
// underscore first, then lower-case letters, digits, underscores and dashes, an optional
// "$" at the end (Samba machine accounts). Upper case and dots, which some builds allow,
// are refused here: a name must mean the same on every host. A leading dash can never
// reach a command line as an option.
var namePattern = regexp.MustCompile(`^[a-z_][a-z0-9_-]*\$?$`)

// maxName is the longest name useradd takes (32, LOGIN_NAME_MAX aside; utmp keeps 32).
const maxName = 32

const namePatternHelp = `a user or group name: a lower-case letter or "_" first, then lower-case letters, digits, "_" and "-" (at most 32), e.g. "deploy"`

func validName(n string) error {
	if !namePattern.MatchString(n) || len(n) > maxName {
		return fmt.Errorf("%q is not a valid user or group name (%s)", n, namePatternHelp)
	}
	return nil
}

// maxID is the largest uid or gid a name may get: (uid_t)-1 is "no id".
const maxID = 1<<32 - 2

// wholeID checks an optional uid or gid argument.
func wholeID(arg string, v *float64) []modules.ArgError {
	if v == nil {
		return nil
	}
	if *v != float64(int64(*v)) || *v < 0 || *v > maxID {
		return []modules.ArgError{{Arg: arg, Msg: fmt.Sprintf("%v is not an id: a whole number from 0 to %d.", *v, int64(maxID))}}
	}
	return nil
}

// readDB reads one of the account files of the machine; a missing file is empty.
func (m *machine) readDB(p string) ([]byte, error) {
	b, _, err := hostfs.ReadOptional(m.path(p))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", p, err)
	}
	return b, nil
}

// fieldDiff renders the fields that differ as "field: value" lines, before and after.
type fieldDiff struct{ before, after strings.Builder }

func (d *fieldDiff) add(field, before, after string) {
	fmt.Fprintf(&d.before, "%s: %s\n", field, before)
	fmt.Fprintf(&d.after, "%s: %s\n", field, after)
}

func (d *fieldDiff) diff(what string) *modules.Diff {
	return &modules.Diff{Before: d.before.String(), After: d.after.String(),
		BeforeHeader: what + " (before)", AfterHeader: what + " (after)"}
}

func orNone(s string) string {
	if s == "" {
		return "(none)"
	}
	return s
}
