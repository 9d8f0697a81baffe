package accounts

import (
	"os"
	"strings"
	"testing"

	"github.com/zclconf/go-cty/cty"

	"github.com/runbook/runbook/modules"
	"github.com/runbook/runbook/modules/moduletest"
)

const (
	basePasswd = "root:x:0:0:root:/root:/bin/bash\nalice:x:1000:1000:Alice:/home/alice:/bin/bash\n"
	baseShadow = "root:*:19000:0:99999:7:::\nalice:" + hashA + ":19000:0:99999:7:::\n"
	baseGroup  = "root:x:0:\nsudo:x:27:\nadm:x:4:alice\nalice:x:1000:\nops:x:2001:\n"
)

func s(v string) cty.Value { return cty.StringVal(v) }

func list(vs ...string) cty.Value {
	if len(vs) == 0 {
		return cty.ListValEmpty(cty.String)
	}
	var out []cty.Value
	for _, v := range vs {
		out = append(out, s(v))
	}
	return cty.ListVal(out)
}

// told is all that a run shows: error, message, warnings, diff.
func told(res *modules.Result, err error) string {
	var b strings.Builder
	if err != nil {
		b.WriteString(err.Error())
	}
	if res != nil {
		b.WriteString(res.Msg + strings.Join(res.Warnings, " "))
		if res.Diff != nil {
			b.WriteString(res.Diff.Before + res.Diff.After)
		}
	}
	return b.String()
}

func TestGroupTimeline(t *testing.T) {
	for _, tc := range []struct {
		name  string
		args  map[string]cty.Value
		argv  [][]string
		after string // a line /etc/group has afterwards ("" : the group is gone)
	}{
		{name: "new with gid", args: map[string]cty.Value{"name": s("deploy"), "gid": cty.NumberIntVal(3000)},
			argv: [][]string{{"groupadd", "-g", "3000", "--", "deploy"}}, after: "deploy:x:3000:"},
		{name: "new system group", args: map[string]cty.Value{"name": s("svc"), "system": cty.True},
			argv: [][]string{{"groupadd", "-r", "--", "svc"}}, after: "svc:x:"},
		{name: "gid changed", args: map[string]cty.Value{"name": s("ops"), "gid": cty.NumberIntVal(2002)},
			argv: [][]string{{"groupmod", "-g", "2002", "--", "ops"}}, after: "ops:x:2002:"},
		{name: "removed", args: map[string]cty.Value{"name": s("ops"), "state": s("absent")},
			argv: [][]string{{"groupdel", "--", "ops"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sim, m := newSim(t, basePasswd, baseShadow, baseGroup)
			res := moduletest.Timeline(t, Group{test: m}, tc.args, moduletest.Snapshot(sim.snapshot))
			if !equalArgv(sim.argv, tc.argv) {
				t.Errorf("ran %q, want %q", sim.argv, tc.argv)
			}
			if g := sim.snapshot(t); tc.after != "" && !strings.Contains(g, tc.after) || tc.after == "" && strings.Contains(g, "ops:") {
				t.Errorf("after:\n%s", g)
			}
			if res[0].Diff.Before == res[0].Diff.After {
				t.Errorf("diff: %+v", res[0].Diff)
			}
		})
	}
}

func equalArgv(a, b [][]string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if strings.Join(a[i], "\x00") != strings.Join(b[i], "\x00") {
			return false
		}
	}
	return true
}

func TestUserTimeline(t *testing.T) {
	for _, tc := range []struct {
		name   string
		args   map[string]cty.Value
		argv   [][]string
		passwd string // a line /etc/passwd has afterwards
		shadow string // the password field afterwards
		group  []string
		diff   string // in the check's diff
	}{
		{name: "new user with groups and a password",
			args: map[string]cty.Value{"name": s("bob"), "uid": cty.NumberIntVal(1500), "groups": list("sudo", "ops"), "shell": s("/bin/bash"),
				"comment": s("Bob B"), "password": s(hashB)},
			argv:   [][]string{{"useradd", "-m", "-u", "1500", "-G", "sudo,ops", "-s", "/bin/bash", "-c", "Bob B", "--", "bob"}, {"chpasswd", "-e"}},
			passwd: "bob:x:1500:", shadow: hashB, group: []string{"sudo:x:27:bob", "ops:x:2001:bob"},
			diff: "password: (changed)"},
		{name: "new locked user",
			args:   map[string]cty.Value{"name": s("carol"), "password": s(hashB), "password_lock": cty.True, "create_home": cty.False},
			argv:   [][]string{{"useradd", "-M", "--", "carol"}, {"chpasswd", "-e"}, {"usermod", "-L", "--", "carol"}},
			shadow: "!" + hashB, diff: "password_locked: true"},
		{name: "password changed", args: map[string]cty.Value{"name": s("alice"), "password": s(hashB)},
			argv: [][]string{{"chpasswd", "-e"}}, shadow: hashB, diff: "password: (set)"},
		{name: "locked", args: map[string]cty.Value{"name": s("alice"), "password_lock": cty.True},
			argv: [][]string{{"usermod", "-L", "--", "alice"}}, shadow: "!" + hashA},
		{name: "fields changed", args: map[string]cty.Value{"name": s("alice"), "uid": cty.NumberIntVal(1001), "group": s("ops"),
			"home": s("/srv/alice"), "shell": s("/bin/sh"), "comment": s("Alice A")},
			argv:   [][]string{{"usermod", "-u", "1001", "-g", "ops", "-d", "/srv/alice", "-s", "/bin/sh", "-c", "Alice A", "--", "alice"}},
			passwd: "alice:x:1001:2001:Alice A:/srv/alice:/bin/sh", diff: "group: alice"},
		{name: "groups set exactly", args: map[string]cty.Value{"name": s("alice"), "groups": list("sudo")},
			argv: [][]string{{"usermod", "-G", "sudo", "--", "alice"}}, group: []string{"sudo:x:27:alice", "adm:x:4:\n"}, diff: "groups: adm"},
		{name: "groups appended", args: map[string]cty.Value{"name": s("alice"), "groups": list("sudo"), "append": cty.True},
			argv: [][]string{{"usermod", "-a", "-G", "sudo", "--", "alice"}}, group: []string{"sudo:x:27:alice", "adm:x:4:alice"}, diff: "groups: adm,sudo"},
		{name: "new user whose comment looks like an option", args: map[string]cty.Value{"name": s("dave"), "comment": s("-a"),
			"groups": list("sudo"), "append": cty.True, "create_home": cty.False},
			argv:   [][]string{{"useradd", "-M", "-G", "sudo", "-c", "-a", "--", "dave"}},
			passwd: "dave:x:1002:1002:-a:", diff: "comment: -a"},
		{name: "removed with home", args: map[string]cty.Value{"name": s("alice"), "state": s("absent"), "remove": cty.True},
			argv: [][]string{{"userdel", "-r", "--", "alice"}}, diff: "home: (removed)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sim, m := newSim(t, basePasswd, baseShadow, baseGroup)
			res := moduletest.Timeline(t, User{test: m}, tc.args, moduletest.Snapshot(sim.snapshot))
			if !equalArgv(sim.argv, tc.argv) {
				t.Errorf("ran %q, want %q", sim.argv, tc.argv)
			}
			after := sim.snapshot(t)
			if tc.passwd != "" && !strings.Contains(after, tc.passwd) {
				t.Errorf("passwd wants %q:\n%s", tc.passwd, after)
			}
			name := tc.args["name"].AsString()
			if tc.shadow != "" && !strings.Contains(after, "\n"+name+":"+tc.shadow+":") {
				t.Errorf("shadow wants %s:%s:\n%s", name, tc.shadow, after)
			}
			for _, g := range tc.group {
				if !strings.Contains(after, g) {
					t.Errorf("group wants %q:\n%s", g, after)
				}
			}
			if !strings.Contains(res[0].Diff.After+res[0].Diff.Before, tc.diff) {
				t.Errorf("diff lacks %q:\n%s\n---\n%s", tc.diff, res[0].Diff.Before, res[0].Diff.After)
			}
			// The hash reaches chpasswd's stdin only: never a command line, never what
			// the run tells.
			for i, argv := range sim.argv {
				if strings.Contains(strings.Join(argv, " "), "$6$") || strings.Contains(strings.Join(argv, " "), "$y$") {
					t.Errorf("a hash on a command line: %q", argv)
				}
				if argv[0] == "chpasswd" && sim.in[i] != name+":"+hashB+"\n" {
					t.Errorf("chpasswd's stdin: %q", sim.in[i])
				}
			}
			for _, r := range res {
				if out := told(r, nil); strings.Contains(out, hashB) || strings.Contains(out, hashA) {
					t.Errorf("the hash is shown: %s", out)
				}
			}
		})
	}
}

func TestUserRefuses(t *testing.T) {
	for _, tc := range []struct {
		args map[string]cty.Value
		arg  string
		msg  string
	}{
		{map[string]cty.Value{"name": s("bob"), "password": s("hunter2hunter2")}, "password", "crypt hash"},
		{map[string]cty.Value{"name": s("bob"), "password": s(hashA + "\nroot::0")}, "password", "crypt hash"},
		{map[string]cty.Value{"name": s("bob"), "password": s("!"), "password_lock": cty.True}, "password_lock", "needs a password hash"},
		{map[string]cty.Value{"name": s("bob"), "groups": list("sudo", "-G")}, "groups", "not a valid"},
		{map[string]cty.Value{"name": s("bob"), "uid": cty.NumberFloatVal(1.5)}, "uid", "whole number"},
		{map[string]cty.Value{"name": s("bob"), "shell": s("bash")}, "shell", "absolute"},
		{map[string]cty.Value{"name": s("bob"), "comment": s("a:b")}, "comment", "without"},
		{map[string]cty.Value{"name": s("bob"), "state": s("absent"), "shell": s("/bin/sh")}, "shell", `state = "present" only`},
		{map[string]cty.Value{"name": s("bob"), "remove": cty.True}, "remove", `state = "absent" only`},
		{map[string]cty.Value{"name": s("-o")}, "name", "not valid"},
		{map[string]cty.Value{"name": s("bob"), "group": s("--help")}, "group", "not valid"},
	} {
		errs := moduletest.Validate(t, User{}, tc.args)
		found := false
		for _, e := range errs {
			if e.Arg == tc.arg && strings.Contains(e.Msg, tc.msg) {
				found = true
			}
			if p, ok := tc.args["password"]; ok && len(p.AsString()) > 1 && strings.Contains(e.Msg, p.AsString()) {
				t.Errorf("the message quotes the password: %s", e.Msg)
			}
		}
		if !found {
			t.Errorf("%v: errors %v, want %s: %s", tc.args, errs, tc.arg, tc.msg)
		}
	}
	// The same values reach Run only from a caller that skipped validation: it refuses them too.
	_, m := newSim(t, basePasswd, baseShadow, baseGroup)
	if _, err := runUser(t.Context(), m, userArgs{Name: "-rf", State: "present"}, true); err == nil {
		t.Error("runUser took the name -rf")
	}
	pw := "plain-password-1"
	if _, err := runUser(t.Context(), m, userArgs{Name: "bob", State: "present", Password: &pw}, true); err == nil || strings.Contains(err.Error(), pw) {
		t.Errorf("runUser with a plain password: %v", err)
	}
}

// TestUserCheckWarnsMissingGroup: a group that an earlier task would create is a warning in
// check mode, and the failure of useradd in apply.
func TestUserCheckWarnsMissingGroup(t *testing.T) {
	_, m := newSim(t, basePasswd, baseShadow, baseGroup)
	args := map[string]cty.Value{"name": s("bob"), "groups": list("wheel")}
	res, err := moduletest.Run(t, User{test: m}, args, false)
	if err != nil || res.Status != modules.StatusDrift || !strings.Contains(strings.Join(res.Warnings, " "), "group wheel does not exist") {
		t.Fatalf("check: %v %+v", err, res)
	}
	if _, err := moduletest.Run(t, User{test: m}, args, true); err == nil || !strings.Contains(told(nil, err), "useradd") {
		t.Fatalf("apply: %v", err)
	}
}

// TestUserKeepsWhatIsNotAsked: what the task does not name stays as it is. A new hash for a
// locked account keeps it locked (chpasswd writes the field whole, so the lock is set again);
// a primary group named by a name that shares its gid with another group is the group
// the account has, and not a change at every run.
func TestUserKeepsWhatIsNotAsked(t *testing.T) {
	const lockedShadow = "root:*:19000:0:99999:7:::\nalice:!" + hashA + ":19000:0:99999:7:::\n"
	const twoNamesGroup = "root:x:0:\nalice:x:1000:\nstaff:x:1000:\nops:x:2001:\n"
	for _, tc := range []struct {
		name          string
		shadow, group string
		args          map[string]cty.Value
		argv          [][]string // nil: the account is as asked from the start
		field         string     // alice's password field afterwards
	}{
		{name: "new hash, locked account", shadow: lockedShadow, group: baseGroup,
			args:  map[string]cty.Value{"name": s("alice"), "password": s(hashB)},
			argv:  [][]string{{"chpasswd", "-e"}, {"usermod", "-L", "--", "alice"}},
			field: "!" + hashB},
		{name: "new hash, locked account, unlock asked", shadow: lockedShadow, group: baseGroup,
			args:  map[string]cty.Value{"name": s("alice"), "password": s(hashB), "password_lock": cty.False},
			argv:  [][]string{{"chpasswd", "-e"}},
			field: hashB},
		{name: "new hash, locked account, lock asked", shadow: lockedShadow, group: baseGroup,
			args:  map[string]cty.Value{"name": s("alice"), "password": s(hashB), "password_lock": cty.True},
			argv:  [][]string{{"chpasswd", "-e"}, {"usermod", "-L", "--", "alice"}},
			field: "!" + hashB},
		{name: "new hash, unlocked account", shadow: baseShadow, group: baseGroup,
			args:  map[string]cty.Value{"name": s("alice"), "password": s(hashB)},
			argv:  [][]string{{"chpasswd", "-e"}},
			field: hashB},
		{name: "primary group by its second name", shadow: baseShadow, group: twoNamesGroup,
			args: map[string]cty.Value{"name": s("alice"), "group": s("staff")}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sim, m := newSim(t, basePasswd, tc.shadow, tc.group)
			if tc.argv == nil {
				for _, apply := range []bool{false, true} {
					res, err := moduletest.Run(t, User{test: m}, tc.args, apply)
					if err != nil || res.Status != modules.StatusOK || len(sim.argv) > 0 {
						t.Fatalf("apply %v: %v %+v, ran %q", apply, err, res, sim.argv)
					}
				}
				return
			}
			res := moduletest.Timeline(t, User{test: m}, tc.args, moduletest.Snapshot(sim.snapshot))
			// The lock is shown as a change only when it changes.
			wasLocked := strings.Contains(tc.shadow, "alice:!")
			if lockChanges := wasLocked != strings.HasPrefix(tc.field, "!"); strings.Contains(res[0].Diff.After, "password_locked") != lockChanges {
				t.Errorf("diff (lock changes: %v):\n%s\n---\n%s", lockChanges, res[0].Diff.Before, res[0].Diff.After)
			}
			if !equalArgv(sim.argv, tc.argv) {
				t.Errorf("ran %q, want %q", sim.argv, tc.argv)
			}
			if after := sim.snapshot(t); !strings.Contains(after, "\nalice:"+tc.field+":") {
				t.Errorf("shadow wants alice:%s:\n%s", tc.field, after)
			}
		})
	}
}

// TestUserRemoveHome: remove = true has userdel -r delete the home directory, whatever it
// is; shadow-utils checks for another user's home inside it only when built to. A home
// that is "/", holds another user's home, or is not the user's own is refused, in check
// mode as in apply, before userdel runs.
func TestUserRemoveHome(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("giving a home to its user needs root")
	}
	for _, tc := range []struct {
		name, home string
		owner      int
		others     string // more /etc/passwd lines
		want       string // in the error; "" for none
	}{
		{name: "the user's own", home: "/home/alice", owner: 1000},
		{name: "missing", home: "/home/gone"},
		{name: "missing, shared with another", home: "/nonexistent", others: "nobody:x:65534:65534::/nonexistent:/usr/sbin/nologin\n"},
		{name: "root's directory", home: "/var/www", owner: 0, want: "belongs to uid 0, not to the user (uid 1000)"},
		{name: "the root directory", home: "/", owner: 0, want: "is not a home directory of its own"},
		{name: "holds another's home", home: "/srv", owner: 1000, others: "bob:x:1001:1001::/srv/bob:/bin/sh\n", want: "holds the home of user bob"},
		{name: "shared with another", home: "/home/alice", owner: 1000, others: "bob:x:1001:1001::/home/alice/:/bin/sh\n", want: "holds the home of user bob"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			passwd := "root:x:0:0:root:/root:/bin/bash\nalice:x:1000:1000:Alice:" + tc.home + ":/bin/bash\n" + tc.others
			sim, m := newSim(t, passwd, baseShadow, baseGroup)
			if !strings.HasPrefix(tc.name, "missing") && tc.home != "/" {
				if err := os.MkdirAll(sim.root+tc.home, 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.Chown(sim.root+tc.home, tc.owner, tc.owner); err != nil {
					t.Fatal(err)
				}
			}
			args := map[string]cty.Value{"name": s("alice"), "state": s("absent"), "remove": cty.True}
			for _, apply := range []bool{false, true} {
				res, err := moduletest.Run(t, User{test: m}, args, apply)
				if tc.want == "" {
					if err != nil || res.Status != modules.DiffStatus(apply) {
						t.Fatalf("apply %v: %v %+v", apply, err, res)
					}
					continue
				}
				if err == nil || !strings.Contains(err.Error(), tc.want) || len(sim.argv) > 0 {
					t.Fatalf("apply %v: %v, ran %q; want an error saying %q", apply, err, sim.argv, tc.want)
				}
			}
		})
	}
}
