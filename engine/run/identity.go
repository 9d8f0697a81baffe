package run

import (
	"encoding/json"
	"fmt"
	"strings"

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

// DefaultBecomeMethod is the method used when the inventory names none.
const DefaultBecomeMethod = "sudo"

// InventoryBecome reads the become variables of a host's inventory: ansible_become (a bool,
// or a string or number Ansible reads as one: yes/no, true/false, on/off, 1/0, y/n, t/f),
// ansible_become_user, ansible_become_method, and ansible_become_password or
// ansible_become_pass (the latter wins when both are set, as before). A value of the wrong
// type is an error that names the variable and the host.
//
// This is the one place the engine reads these variables.
func InventoryBecome(h *inventory.Host) (HostBecome, error) {
	var hb HostBecome
	if v, ok := h.Vars["ansible_become"]; ok && v != nil {
		b, ok := ansibleBool(v)
		if !ok {
			return hb, fmt.Errorf("host %s: ansible_become is %s, which is not a boolean (want true or false, yes or no)", h.Name, describe(v))
		}
		hb.Become = &b
	}
	str := func(name string) (string, error) {
		v, ok := h.Vars[name]
		if !ok || v == nil {
			return "", nil
		}
		s, ok := v.(string)
		if !ok {
			return "", fmt.Errorf("host %s: %s is %s, not a string", h.Name, name, describe(v))
		}
		return s, nil
	}
	var err error
	if hb.User, err = str("ansible_become_user"); err != nil {
		return hb, err
	}
	if hb.User != "" && strings.TrimSpace(hb.User) != hb.User {
		return hb, fmt.Errorf("host %s: ansible_become_user %q has spaces around the name", h.Name, hb.User)
	}
	if hb.Method, err = str("ansible_become_method"); err != nil {
		return hb, err
	}
	hb.Method = strings.TrimSpace(hb.Method)
	for _, name := range []string{"ansible_become_password", "ansible_become_pass"} {
		// never quoted in the error: it may be the password itself, of the wrong type
		v, ok := h.Vars[name]
		if !ok || v == nil {
			continue
		}
		s, ok := v.(string)
		if !ok {
			return hb, fmt.Errorf("host %s: %s is not a string", h.Name, name)
		}
		if s != "" {
			hb.Password = s
		}
	}
	return hb, nil
}

// ansibleBool reads a value as Ansible's boolean() does.
func ansibleBool(v any) (bool, bool) {
	switch x := v.(type) {
	case bool:
		return x, true
	case string:
		switch strings.ToLower(strings.TrimSpace(x)) {
		case "yes", "y", "true", "t", "on", "1":
			return true, true
		case "no", "n", "false", "f", "off", "0":
			return false, true
		}
	case int64:
		if x == 0 || x == 1 {
			return x == 1, true
		}
	case int:
		if x == 0 || x == 1 {
			return x == 1, true
		}
	case float64:
		if x == 0 || x == 1 {
			return x == 1, true
		}
	case json.Number:
		return ansibleBool(x.String())
	}
	return false, false
}

// describe shows an inventory value in an error: short, and quoted when a string.
func describe(v any) string {
	switch x := v.(type) {
	case string:
		if len(x) > 40 {
			x = x[:40] + "…"
		}
		return fmt.Sprintf("%q", x)
	case map[string]any:
		return "a mapping"
	case []any:
		return "a list"
	}
	s := fmt.Sprint(v)
	if len(s) > 40 {
		s = s[:40] + "…"
	}
	return s
}

// EffectiveIdentity is the identity task t runs as on a host whose inventory says hb: each
// of become and become_user is taken from the task when it sets it, else from the play,
// else from the inventory (ansible_become, ansible_become_user); become is false and
// become_user root when nobody sets them. The method is the inventory's
// (ansible_become_method), sudo by default. become_user alone does not turn become on. With
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
	if method == "" {
		method = DefaultBecomeMethod
	}
	return Identity{Method: method, User: user}
}
