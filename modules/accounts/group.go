package accounts

import (
	"context"
	"fmt"
	"strconv"

	"github.com/zclconf/go-cty/cty"

	"github.com/runbook/runbook/modules"
)

var (
	_ modules.Runner[groupArgs]    = Group{}
	_ modules.Validator[groupArgs] = Group{}
)

// Group makes a local group present or absent.
type Group struct{ test *machine }

type groupArgs struct {
	Name   string   `cty:"name"`
	State  string   `cty:"state"`
	GID    *float64 `cty:"gid"`
	System bool     `cty:"system"`
}

type groupResult struct {
	Name   string  `cty:"name"`
	State  string  `cty:"state"`
	GID    float64 `cty:"gid"`
	Exists bool    `cty:"exists"`
}

func (Group) Info() modules.Info {
	return modules.Info{
		Name:    "group",
		Family:  "accounts",
		Summary: "Make a local group present (with a given gid) or absent.",
		Description: `Reads /etc/group directly (check mode runs no program) and changes it with shadow-utils:
groupadd, groupmod -g and groupdel. Only local groups are managed: a group that exists only in LDAP
or another NSS source is not seen. system = true makes a new group take its gid from the system range
(groupadd -r); it does not change an existing group. A gid that another group already has is refused
by groupadd, and the error says so. Removing a group that is a user's primary group fails, as
groupdel does.`,
		Schema: modules.Schema{
			Args: []modules.Arg{
				{Name: "name", Type: cty.String, Required: true, Pattern: namePattern, PatternHelp: namePatternHelp,
					Doc: "The group's name."},
				{Name: "state", Type: cty.String, Default: cty.StringVal("present"), OneOf: []string{"present", "absent"},
					Doc: "present: the group exists (with gid, when given); absent: it does not."},
				{Name: "gid", Type: cty.Number, Doc: "The group's id; unset lets groupadd choose one and leaves an existing group's as it is."},
				{Name: "system", Type: cty.Bool, Default: cty.False, Doc: "Create the group with a gid from the system range (groupadd -r)."},
			},
		},
		Returns: []modules.Field{
			{Name: "name", Type: cty.String, Doc: "The group's name."},
			{Name: "state", Type: cty.String, Doc: "present or absent, after the task."},
			{Name: "gid", Type: cty.Number, Doc: "The group's id after the task (-1 when absent)."},
			{Name: "exists", Type: cty.Bool, Doc: "Whether the group exists after the task."},
		},
		Examples: []modules.Example{
			{Title: "A group for the operators, with a fixed gid", HCL: `task "operators group" {
  group {
    name = "operators"
    gid  = 2001
  }
}`},
			{Title: "A system group for a service, and an old group removed", HCL: `task "service group" {
  group {
    name   = "runbook-agent"
    system = true
  }
}

task "old group gone" {
  group {
    name  = "legacy"
    state = "absent"
  }
}`},
		},
	}
}

func (Group) Validate(a groupArgs) []modules.ArgError {
	errs := wholeID("gid", a.GID)
	if a.State == "absent" && a.GID != nil {
		errs = append(errs, modules.ArgError{Arg: "gid", Msg: `gid applies to state = "present" only.`})
	}
	return errs
}

func (g Group) Run(ctx context.Context, env *modules.Env, a groupArgs, apply bool) (*modules.Result, error) {
	return runGroup(ctx, on(g.test, env), a, apply)
}

func runGroup(ctx context.Context, m *machine, a groupArgs, apply bool) (*modules.Result, error) {
	if err := validName(a.Name); err != nil {
		return nil, err
	}
	raw, err := m.readDB("/etc/group")
	if err != nil {
		return nil, err
	}
	cur := findGroup(parseGroup(raw), a.Name)
	data := &groupResult{Name: a.Name, State: "absent", GID: -1}
	if cur != nil {
		data.State, data.GID, data.Exists = "present", float64(cur.GID), true
	}
	res := &modules.Result{Status: modules.StatusOK, Data: data}
	var d fieldDiff
	var argv []string
	var msg string
	switch {
	case a.State == "absent" && cur != nil:
		d.add("group", a.Name, "(absent)")
		argv = []string{"groupdel", "--", a.Name}
		msg = "remove group " + a.Name
	case a.State == "absent":
		res.Msg = "group " + a.Name + " is absent"
		return res, nil
	case cur == nil:
		argv = []string{"groupadd"}
		gid := "(chosen by groupadd)"
		if a.GID != nil {
			gid = strconv.FormatInt(int64(*a.GID), 10)
			argv = append(argv, "-g", gid)
		}
		if a.System {
			argv = append(argv, "-r")
		}
		argv = append(argv, "--", a.Name)
		d.add("group", "(absent)", a.Name)
		d.add("gid", "(none)", gid)
		msg = "create group " + a.Name
	case a.GID != nil && cur.GID != int64(*a.GID):
		gid := strconv.FormatInt(int64(*a.GID), 10)
		d.add("gid", strconv.FormatInt(cur.GID, 10), gid)
		argv = []string{"groupmod", "-g", gid, "--", a.Name}
		msg = fmt.Sprintf("set gid of %s to %s", a.Name, gid)
	default:
		res.Msg = fmt.Sprintf("group %s is present (gid %d)", a.Name, cur.GID)
		return res, nil
	}
	res.Status = modules.DiffStatus(apply)
	res.Msg = modules.Tense(apply, "", "would ") + msg
	res.Diff = d.diff("group " + a.Name)
	if !apply {
		return res, nil
	}
	if err := m.exec(ctx, "", argv...); err != nil {
		return res, err
	}
	raw, err = m.readDB("/etc/group")
	if err != nil {
		return res, err
	}
	if now := findGroup(parseGroup(raw), a.Name); now != nil {
		data.State, data.GID, data.Exists = "present", float64(now.GID), true
	} else {
		data.State, data.GID, data.Exists = "absent", -1, false
	}
	return res, nil
}
