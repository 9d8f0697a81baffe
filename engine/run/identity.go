package run

import (
	"errors"
	"fmt"

	"github.com/runbook/runbook/engine/config"
	"github.com/runbook/runbook/inventory"
)

// Identity is who a task runs as on its host: the login user, or the user a become method
// switches to. The engine computes it for every task and handler (EffectiveIdentity); a
// Connection runs one helper per identity.
type Identity struct {
	// Method is the become method ("sudo"; the transport refuses those it does not know);
	// "" runs as the login user.
	Method string
	// User is the user to become, "root" by default; "" when Method is "".
	User string
}

// Login is the identity of the login user: no become.
var Login = Identity{}

// String names the identity for messages: "the login user", "root (sudo)".
func (id Identity) String() string {
	if id.Method == "" {
		return "the login user"
	}
	return id.User + " (" + id.Method + ")"
}

// HostBecome is what a host's inventory variables say about become.
type HostBecome struct {
	Become *bool  // ansible_become; nil when unset
	User   string // ansible_become_user; "" when unset
	Method string // ansible_become_method; "" when unset (sudo)
	// Password is ansible_become_password (or ansible_become_pass); "" when unset, and
	// the password given with --ask-become-pass is used then.
	Password string
}

// String describes hb without its password, which it only says is set: a HostBecome printed
// with %v, %+v or %s (in a message, a log, a test's failure) never shows the password.
func (hb HostBecome) String() string {
	b := "unset"
	if hb.Become != nil {
		b = fmt.Sprint(*hb.Become)
	}
	pw := "unset"
	if hb.Password != "" {
		pw = "(sensitive value)"
	}
	return fmt.Sprintf("become=%s user=%q method=%q password=%s", b, hb.User, hb.Method, pw)
}

// GoString is String, for %#v.
func (hb HostBecome) GoString() string { return "run.HostBecome{" + hb.String() + "}" }

// DefaultBecomeMethod is the method used when the inventory names none.
const DefaultBecomeMethod = "sudo"

// InventoryBecome is what a host's inventory says about become, as inventory.Host.Connection
// reads it (ansible_become with Ansible's boolean rules; ansible_become_user,
// ansible_become_method and the become password, each also under the method's own names
// such as ansible_sudo_pass or ansible_su_user, the one Ansible reads last winning). A value
// runbook cannot honour (a become that is not a boolean, an unknown method, a list where a
// name belongs) is an error that names the variable and the host, never a secret's value;
// the CLI reports those for every host before it connects to any.
//
// This is the one place the engine reads these variables.
func InventoryBecome(h *inventory.Host) (HostBecome, error) {
	var hb HostBecome
	if errs := h.CheckConnection(); len(errs) > 0 {
		return hb, errors.Join(errs...)
	}
	c := h.Connection()
	if c.Become.IsSet() {
		b := c.Become.Bool()
		hb.Become = &b
	}
	hb.User, hb.Method, hb.Password = c.BecomeUser, c.BecomeMethod, c.BecomePassword
	return hb, nil
}

// EffectiveIdentity is the identity task t runs as on a host whose inventory says hb: each
// of become, become_user and become_method is taken from the task when it sets it, else
// from the play, else from the inventory (ansible_become, ansible_become_user,
// ansible_become_method); become is false, become_user root and become_method sudo when
// nobody sets them. become_user alone does not turn become on. With
// t nil it is the play's own identity (for the play's vars and its facts).
func EffectiveIdentity(t *config.Task, p *config.Play, hb HostBecome) Identity {
	become := false
	switch {
	case t != nil && t.Become != nil:
		become = *t.Become
	case p != nil && p.Become != nil:
		become = *p.Become
	case hb.Become != nil:
		become = *hb.Become
	}
	if !become {
		return Login
	}
	user := hb.User
	if p != nil && p.BecomeUser != "" {
		user = p.BecomeUser
	}
	if t != nil && t.BecomeUser != "" {
		user = t.BecomeUser
	}
	if user == "" {
		user = "root"
	}
	method := hb.Method
	if p != nil && p.BecomeMethod != "" {
		method = p.BecomeMethod
	}
	if t != nil && t.BecomeMethod != "" {
		method = t.BecomeMethod
	}
	if method == "" {
		method = DefaultBecomeMethod
	}
	return Identity{Method: method, User: user}
}
