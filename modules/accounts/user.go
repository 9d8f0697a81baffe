package accounts

import (
	"context"
	"fmt"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/zclconf/go-cty/cty"

	"github.com/runbook/runbook/modules"
	"github.com/runbook/runbook/modules/hostfs"
)

var (
	_ modules.Runner[userArgs]    = User{}
	_ modules.Validator[userArgs] = User{}
)

// User makes a local user account present or absent.
type User struct{ test *machine }

type userArgs struct {
	Name         string   `cty:"name"`
	State        string   `cty:"state"`
	UID          *float64 `cty:"uid"`
	Group        *string  `cty:"group"`
	Groups       []string `cty:"groups"`
	Append       bool     `cty:"append"`
	Home         *string  `cty:"home"`
	CreateHome   bool     `cty:"create_home"`
	Shell        *string  `cty:"shell"`
	Comment      *string  `cty:"comment"`
	System       bool     `cty:"system"`
	Password     *string  `cty:"password"`
	PasswordLock *bool    `cty:"password_lock"`
	Remove       bool     `cty:"remove"`
}

type userResult struct {
	Name           string   `cty:"name"`
	State          string   `cty:"state"`
	Exists         bool     `cty:"exists"`
	UID            float64  `cty:"uid"`
	Group          string   `cty:"group"`
	Groups         []string `cty:"groups"`
	Home           string   `cty:"home"`
	Shell          string   `cty:"shell"`
	Comment        string   `cty:"comment"`
	PasswordSet    bool     `cty:"password_set"`
	PasswordLocked bool     `cty:"password_locked"`
}

// cryptPattern is a crypt(3) hash in the modular format: "$id$", optional parameters
// ("rounds=5000") and salt, and the hash itself, all in crypt's alphabet. It keeps out a
// plain password by mistake, and, since the hash reaches chpasswd as "name:hash" on a
// line, any ":" or line break.
var cryptPattern = regexp.MustCompile(`^\$[a-z0-9]{1,3}(\$[./A-Za-z0-9=,]+)*\$[./A-Za-z0-9]{16,}$`)

// validPassword says what is wrong with a password argument, never quoting it.
func validPassword(p string) string {
	if p == "!" || p == "*" || cryptPattern.MatchString(p) {
		return ""
	}
	return `must be a crypt hash: "$6$…" (SHA-512) or "$y$…" (yescrypt), for instance (make one with mkpasswd or openssl passwd -6), or "!" or "*" for no password; a plain password is never taken (the value is not shown here)`
}

// pathArg checks home and shell: absolute, one line, no ":" (the passwd file's separator).
func pathArg(arg string, p *string) []modules.ArgError {
	if p == nil {
		return nil
	}
	if !strings.HasPrefix(*p, "/") || strings.ContainsAny(*p, ":\n\r\x00") {
		return []modules.ArgError{{Arg: arg, Msg: fmt.Sprintf("%q is not an absolute path without \":\" or line breaks.", *p)}}
	}
	return nil
}

func (User) Info() modules.Info {
	return modules.Info{
		Name:    "user",
		Family:  "accounts",
		Summary: "Make a local user account present (uid, groups, home, shell, password hash, lock) or absent.",
		Description: `Reads /etc/passwd, /etc/shadow and /etc/group directly (check mode runs no program) and changes them
with shadow-utils: useradd, usermod, userdel, and chpasswd -e for the password. Only the arguments given
are managed; an unset one leaves the account's value as it is.

password is a crypt hash, never a plain password: "$6$..." (SHA-512), "$y$..." (yescrypt), "$5$...",
"$2b$..." (bcrypt), or "!" / "*" for an account without a password. It is sensitive: it reaches the host
on chpasswd's standard input (never a command line, where /proc would show it to every user), and the
diff, messages, results, the JSON view and the history show only "(changed)". Make a hash with
"mkpasswd -m sha-512" or "openssl passwd -6" and keep it in a sensitive variable.

password_lock = true locks the password (usermod -L: a "!" before the hash), false unlocks it;
unset, the lock stays as it is, also when password sets a new hash (chpasswd drops the "!", and
usermod -L sets it again right after);
SSH keys still log in where sshd uses PAM (Debian's and Red Hat's default). groups lists supplementary groups: exactly these, unless append = true adds them
to the ones the user has. group (the primary group) and every name in groups must exist (the group
module makes them); in check mode a missing one is a warning, since an earlier task may create it.
home sets the home directory's path in /etc/passwd; an existing home is not moved. state = "absent"
removes the account, and with remove = true its home directory and mail spool (userdel -r); userdel
refuses a user who still has processes (a login, a systemd --user manager), and the task fails saying so.
remove = true is refused, in check mode too, when the home is "/", holds another user's home, or does
not belong to the user (a system account whose home is /var/www or /bin): userdel -r would delete it.`,
		Schema: modules.Schema{
			Args: []modules.Arg{
				{Name: "name", Type: cty.String, Required: true, Pattern: namePattern, PatternHelp: namePatternHelp,
					Doc: "The user's login name."},
				{Name: "state", Type: cty.String, Default: cty.StringVal("present"), OneOf: []string{"present", "absent"},
					Doc: "present: the account exists as described; absent: it does not."},
				{Name: "uid", Type: cty.Number, Doc: "The user's id; unset lets useradd choose and leaves an existing account's."},
				{Name: "group", Type: cty.String, Pattern: namePattern, PatternHelp: namePatternHelp,
					Doc: "The primary group's name; unset: a new user gets useradd's default (on most distributions a group of their own name)."},
				{Name: "groups", Type: cty.List(cty.String), Doc: "Supplementary groups; [] removes every one (unless append)."},
				{Name: "append", Type: cty.Bool, Default: cty.False, Doc: "Add groups to the user's supplementary groups instead of setting exactly them."},
				{Name: "home", Type: cty.String, Doc: "The home directory's path (absolute)."},
				{Name: "create_home", Type: cty.Bool, Default: cty.True, Doc: "Create the home directory (from /etc/skel) when creating the user."},
				{Name: "shell", Type: cty.String, Doc: `The login shell (absolute path), e.g. "/bin/bash".`},
				{Name: "comment", Type: cty.String, Doc: "The GECOS field: usually the full name."},
				{Name: "system", Type: cty.Bool, Default: cty.False, Doc: "Create a system account (useradd -r: uid from the system range, no aging); has no effect on an existing user."},
				{Name: "password", Type: cty.String, Sensitive: true,
					Doc: `The password as a crypt hash ("$6$...", "$y$..."), or "!" / "*" for none. Sensitive: never shown.`},
				{Name: "password_lock", Type: cty.Bool, Doc: "true locks the password (usermod -L), false unlocks it; unset leaves it."},
				{Name: "remove", Type: cty.Bool, Default: cty.False, Doc: `With state = "absent": remove the home directory and mail spool too (userdel -r).`},
			},
		},
		Returns: []modules.Field{
			{Name: "name", Type: cty.String, Doc: "The user's name."},
			{Name: "state", Type: cty.String, Doc: "present or absent, after the task."},
			{Name: "exists", Type: cty.Bool, Doc: "Whether the account exists after the task."},
			{Name: "uid", Type: cty.Number, Doc: "The user's id (-1 when absent)."},
			{Name: "group", Type: cty.String, Doc: "The primary group's name (its gid when no group has it)."},
			{Name: "groups", Type: cty.List(cty.String), Doc: "The supplementary groups, as /etc/group lists them."},
			{Name: "home", Type: cty.String, Doc: "The home directory."},
			{Name: "shell", Type: cty.String, Doc: "The login shell."},
			{Name: "comment", Type: cty.String, Doc: "The GECOS field."},
			{Name: "password_set", Type: cty.Bool, Doc: "Whether /etc/shadow holds a password hash for the user (locked or not)."},
			{Name: "password_locked", Type: cty.Bool, Doc: `Whether the password field starts with "!".`},
		},
		Examples: []modules.Example{
			{Title: "An operator with sudo rights and a password hash kept in the inventory (mkpasswd -m sha-512)", HCL: `task "operator" {
  user {
    name     = "ops"
    comment  = "Operations"
    shell    = "/bin/bash"
    groups   = ["sudo"]
    append   = true
    password = host.vars.ops_password_hash # sensitive: shown as "(changed)" only
  }
}`},
			{Title: "A service account without a login, and a former colleague removed with their home", HCL: `task "service account" {
  user {
    name        = "runbook-agent"
    system      = true
    create_home = false
    shell       = "/usr/sbin/nologin"
  }
}

task "former colleague" {
  user {
    name   = "olduser"
    state  = "absent"
    remove = true
  }
}`},
		},
	}
}

func (User) Validate(a userArgs) []modules.ArgError {
	errs := wholeID("uid", a.UID)
	errs = append(errs, pathArg("home", a.Home)...)
	errs = append(errs, pathArg("shell", a.Shell)...)
	if c := a.Comment; c != nil && strings.ContainsAny(*c, ":\n\r\x00") {
		errs = append(errs, modules.ArgError{Arg: "comment", Msg: `The comment must be one line without ":" (the passwd file's separator).`})
	}
	if a.Groups != nil {
		for _, g := range a.Groups {
			if err := validName(g); err != nil {
				errs = append(errs, modules.ArgError{Arg: "groups", Msg: err.Error() + "."})
			}
		}
	}
	if a.Password != nil {
		if msg := validPassword(*a.Password); msg != "" {
			errs = append(errs, modules.ArgError{Arg: "password", Msg: "The password " + msg + "."})
		} else if (*a.Password == "!" || *a.Password == "*") && a.PasswordLock != nil {
			errs = append(errs, modules.ArgError{Arg: "password_lock", Msg: `password_lock needs a password hash to lock or unlock; "!" and "*" are no password at all.`})
		}
	}
	if a.State == "absent" {
		for _, set := range []struct {
			name string
			set  bool
		}{{"uid", a.UID != nil}, {"group", a.Group != nil}, {"groups", a.Groups != nil}, {"home", a.Home != nil},
			{"shell", a.Shell != nil}, {"comment", a.Comment != nil}, {"password", a.Password != nil}, {"password_lock", a.PasswordLock != nil}} {
			if set.set {
				errs = append(errs, modules.ArgError{Arg: set.name, Msg: set.name + ` applies to state = "present" only.`})
			}
		}
	} else if a.Remove {
		errs = append(errs, modules.ArgError{Arg: "remove", Msg: `remove applies to state = "absent" only.`})
	}
	return errs
}

func (u User) Run(ctx context.Context, env *modules.Env, a userArgs, apply bool) (*modules.Result, error) {
	return runUser(ctx, on(u.test, env), a, apply)
}

// account is what the three files say about one user.
type account struct {
	pw     *passwdEntry
	shadow *shadowEntry
	groups []groupEntry
}

func (m *machine) readAccount(name string) (account, error) {
	var acc account
	b, err := m.readDB("/etc/passwd")
	if err != nil {
		return acc, err
	}
	acc.pw = findUser(parsePasswd(b), name)
	if b, err = m.readDB("/etc/shadow"); err != nil {
		return acc, err
	}
	acc.shadow = findShadow(parseShadow(b), name)
	if b, err = m.readDB("/etc/group"); err != nil {
		return acc, err
	}
	acc.groups = parseGroup(b)
	return acc, nil
}

func (acc account) result(name string) *userResult {
	r := &userResult{Name: name, State: "absent", UID: -1, Groups: []string{}}
	if acc.pw == nil {
		return r
	}
	r.State, r.Exists, r.UID = "present", true, float64(acc.pw.UID)
	r.Group = strconv.FormatInt(acc.pw.GID, 10)
	if g := groupByID(acc.groups, acc.pw.GID); g != nil {
		r.Group = g.Name
	}
	if s := supplementary(acc.groups, name); s != nil {
		r.Groups = s
	}
	r.Home, r.Shell, r.Comment = acc.pw.Home, acc.pw.Shell, acc.pw.Comment
	if acc.shadow != nil {
		p := acc.shadow.Password
		r.PasswordLocked = strings.HasPrefix(p, "!")
		r.PasswordSet = strings.HasPrefix(strings.TrimPrefix(p, "!"), "$")
	}
	return r
}

// userPlan is what runUser found to do: the programs to run in order, the diff, the
// summary. Only argv of programs is shown anywhere; the password goes on stdin.
type userPlan struct {
	steps    []userStep
	diff     fieldDiff
	what     []string
	warnings []string
}

type userStep struct {
	argv  []string
	stdin string // secret: never shown
}

func (p *userPlan) change(field, before, after string) {
	p.diff.add(field, before, after)
	p.what = append(p.what, field)
}

func runUser(ctx context.Context, m *machine, a userArgs, apply bool) (*modules.Result, error) {
	for _, n := range append([]string{a.Name}, ptrList(a.Group)...) {
		if err := validName(n); err != nil {
			return nil, err
		}
	}
	if a.Groups != nil {
		for _, n := range a.Groups {
			if err := validName(n); err != nil {
				return nil, err
			}
		}
	}
	if a.Password != nil && validPassword(*a.Password) != "" {
		return nil, fmt.Errorf("the password argument is not a crypt hash (not shown)")
	}
	acc, err := m.readAccount(a.Name)
	if err != nil {
		return nil, err
	}
	if a.State == "absent" && a.Remove && acc.pw != nil {
		if err := m.removableHome(acc.pw); err != nil {
			return nil, err
		}
	}
	res := &modules.Result{Status: modules.StatusOK, Data: acc.result(a.Name)}
	p := planUser(acc, a)
	res.Warnings = p.warnings
	if len(p.steps) == 0 {
		res.Msg = fmt.Sprintf("user %s is %s", a.Name, a.State)
		if a.State == "present" {
			res.Msg += fmt.Sprintf(" (uid %d)", acc.pw.UID)
		}
		return res, nil
	}
	res.Status = modules.DiffStatus(apply)
	res.Diff = p.diff.diff("user " + a.Name)
	switch {
	case acc.pw == nil:
		res.Msg = modules.Tense(apply, "created", "would create") + " user " + a.Name
	case a.State == "absent":
		res.Msg = modules.Tense(apply, "removed", "would remove") + " user " + a.Name
	default:
		res.Msg = modules.Tense(apply, "changed", "would change") + " user " + a.Name + ": " + strings.Join(p.what, ", ")
	}
	if !apply {
		return res, nil
	}
	for _, s := range p.steps {
		if err := m.exec(ctx, s.stdin, s.argv...); err != nil {
			return res, err
		}
	}
	if acc, err = m.readAccount(a.Name); err == nil {
		res.Data = acc.result(a.Name)
	}
	return res, err
}

// removableHome refuses a home that userdel -r must not delete: userdel removes whatever
// the home is, and checks for another user's home inside it only when shadow-utils is
// built to (EXTRA_CHECK_HOME_DIR). "/", a directory that holds another user's home (a
// system account's /srv or /var/www), or one that is not the user's own (root's /bin, as
// the sync account has) is refused before anything runs.
func (m *machine) removableHome(pw *passwdEntry) error {
	home := filepath.Clean(pw.Home)
	refuse := func(why string) error {
		return fmt.Errorf("user %s: remove = true would have userdel -r delete %s, which %s; remove what must go yourself, or set remove = false", pw.Name, pw.Home, why)
	}
	if !strings.HasPrefix(home, "/") || home == "/" {
		return refuse("is not a home directory of its own")
	}
	fi, err := hostfs.Stat(m.path(home))
	if err != nil {
		return fmt.Errorf("user %s: home %s: %w", pw.Name, pw.Home, err)
	}
	if fi == nil {
		return nil // nothing to delete (system accounts share /nonexistent)
	}
	b, err := m.readDB("/etc/passwd")
	if err != nil {
		return err
	}
	for _, o := range parsePasswd(b) {
		if oh := filepath.Clean(o.Home); o.Name != pw.Name && (oh == home || strings.HasPrefix(oh, home+"/")) {
			return refuse("holds the home of user " + o.Name)
		}
	}
	if owner, _ := ownerOf(fi); owner != int(pw.UID) {
		return refuse(fmt.Sprintf("belongs to uid %d, not to the user (uid %d)", owner, pw.UID))
	}
	return nil
}

func ptrList(s *string) []string {
	if s == nil {
		return nil
	}
	return []string{*s}
}

// planUser compares the account with the arguments and lists the programs that make them
// agree.
func planUser(acc account, a userArgs) *userPlan {
	p := &userPlan{}
	if a.State == "absent" {
		if acc.pw != nil {
			argv := []string{"userdel"}
			if a.Remove {
				argv = append(argv, "-r")
			}
			p.steps = append(p.steps, userStep{argv: append(argv, "--", a.Name)})
			p.change("user", a.Name, "(absent)")
			if a.Remove {
				p.change("home", acc.pw.Home, "(removed)")
			}
		}
		return p
	}
	// Groups that must exist (warned about in check mode; apply fails in useradd).
	for _, g := range append(ptrList(a.Group), a.Groups...) {
		if findGroup(acc.groups, g) == nil {
			p.warnings = append(p.warnings, fmt.Sprintf("group %s does not exist (yet): applying fails unless an earlier task creates it", g))
		}
	}
	cur := account{}.result(a.Name)
	if acc.pw != nil {
		cur = acc.result(a.Name)
	}
	var opts []string
	if acc.pw == nil {
		p.change("user", "(absent)", a.Name)
	}
	if a.UID != nil && (acc.pw == nil || cur.UID != *a.UID) {
		uid := strconv.FormatInt(int64(*a.UID), 10)
		opts = append(opts, "-u", uid)
		p.change("uid", idOrNone(acc.pw != nil, cur.UID), uid)
	}
	// The primary group is compared by gid: two groups may share one, and the name
	// /etc/group lists first is not the only right one.
	if a.Group != nil && (acc.pw == nil || !hasGID(acc.groups, *a.Group, acc.pw.GID)) {
		opts = append(opts, "-g", *a.Group)
		p.change("group", orNone(cur.Group), *a.Group)
	}
	if a.Groups != nil {
		want := slices.Clone(a.Groups)
		if a.Append {
			want = union(cur.Groups, want)
		}
		if !sameSet(cur.Groups, want) {
			p.change("groups", orNone(strings.Join(sorted(cur.Groups), ",")), orNone(strings.Join(sorted(want), ",")))
			// -a is usermod's alone: a new user has no groups to add to.
			if a.Append && acc.pw != nil {
				opts = append(opts, "-a")
			}
			opts = append(opts, "-G", strings.Join(a.Groups, ","))
		}
	}
	if a.Home != nil && (acc.pw == nil || cur.Home != *a.Home) {
		opts = append(opts, "-d", *a.Home)
		p.change("home", orNone(cur.Home), *a.Home)
	}
	if a.Shell != nil && (acc.pw == nil || cur.Shell != *a.Shell) {
		opts = append(opts, "-s", *a.Shell)
		p.change("shell", orNone(cur.Shell), *a.Shell)
	}
	if a.Comment != nil && (acc.pw == nil || cur.Comment != *a.Comment) {
		opts = append(opts, "-c", *a.Comment)
		p.change("comment", orNone(cur.Comment), *a.Comment)
	}
	if acc.pw == nil {
		argv := []string{"useradd"}
		if a.CreateHome {
			argv = append(argv, "-m")
		} else {
			argv = append(argv, "-M")
		}
		if a.System {
			argv = append(argv, "-r")
		}
		p.steps = append(p.steps, userStep{argv: append(append(argv, opts...), "--", a.Name)})
	} else if len(opts) > 0 {
		p.steps = append(p.steps, userStep{argv: append(append([]string{"usermod"}, opts...), "--", a.Name)})
	}

	// The password: the shadow field is "!"+hash when locked.
	field := ""
	if acc.shadow != nil {
		field = acc.shadow.Password
	}
	locked := strings.HasPrefix(field, "!")
	hash := strings.TrimPrefix(field, "!")
	setPassword := false
	if a.Password != nil {
		w := *a.Password
		if w == "!" || w == "*" {
			setPassword = field != w
		} else {
			setPassword = hash != w
		}
		if setPassword {
			p.steps = append(p.steps, userStep{argv: []string{"chpasswd", "-e"}, stdin: a.Name + ":" + w + "\n"})
			before := "(none)"
			if strings.HasPrefix(hash, "$") {
				before = "(set)"
			}
			p.change("password", before, "(changed)")
			// chpasswd writes the field whole: a locked password is unlocked by it. The lock
			// is not the task's to drop unless password_lock says so: it is set again (and
			// is no change to show).
			if strings.HasPrefix(w, "$") {
				switch {
				case locked && (a.PasswordLock == nil || *a.PasswordLock):
					p.steps = append(p.steps, userStep{argv: []string{"usermod", "-L", "--", a.Name}})
				case locked:
					p.change("password_locked", "true", "false")
					locked = false
				}
				hash = w
			} else {
				locked, hash = w == "!", ""
			}
		}
	} else if acc.pw == nil {
		// useradd leaves the new account without a password ("!" on most systems).
		locked, hash = true, ""
	}
	if a.PasswordLock != nil && *a.PasswordLock != locked {
		switch {
		case *a.PasswordLock:
			p.steps = append(p.steps, userStep{argv: []string{"usermod", "-L", "--", a.Name}})
			p.change("password_locked", "false", "true")
		case !strings.HasPrefix(hash, "$"):
			p.warnings = append(p.warnings, "password_lock = false: the account has no password hash to unlock; set password")
		default:
			p.steps = append(p.steps, userStep{argv: []string{"usermod", "-U", "--", a.Name}})
			p.change("password_locked", "true", "false")
		}
	}
	return p
}

// hasGID says whether the group called name has the id gid.
func hasGID(db []groupEntry, name string, gid int64) bool {
	g := findGroup(db, name)
	return g != nil && g.GID == gid
}

func idOrNone(exists bool, id float64) string {
	if !exists {
		return "(none)"
	}
	return strconv.FormatInt(int64(id), 10)
}

func union(a, b []string) []string {
	out := slices.Clone(a)
	for _, s := range b {
		if !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	return out
}

func sorted(s []string) []string {
	out := slices.Clone(s)
	slices.Sort(out)
	return slices.Compact(out)
}

func sameSet(a, b []string) bool { return slices.Equal(sorted(a), sorted(b)) }
