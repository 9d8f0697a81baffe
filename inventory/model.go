package inventory

import (
	"fmt"
	"sort"
	"strings"

	"github.com/hashicorp/hcl/v2"

	"github.com/runbook/runbook/inventory/vault"
)

// The model mirrors how Ansible holds an inventory while its plugins fill it: groups and
// hosts in the order they were first seen, children and members in the order they were
// added, inline variables on each. Every reader (HCL, INI, YAML, script) feeds one model,
// so several sources merge exactly the way Ansible merges them.

type gnode struct {
	name     string
	vars     map[string]any
	children []*gnode
	parents  []*gnode
	hosts    []*hnode
	hostSet  map[*hnode]bool
	priority int
	depth    int
	order    int
	// where the group was first declared, for diagnostics that name it
	decl hcl.Range
}

type hnode struct {
	name  string
	vars  map[string]any
	order int
	// the groups the host was put into directly, in order
	direct []*gnode
}

type model struct {
	vault *vault.Keyring
	// decrypted is set while an encrypted inventory file is read
	decrypted bool
	groups    map[string]*gnode
	gorder    []*gnode
	hosts     map[string]*hnode
	horder    []*hnode
}

func newModel() *model {
	m := &model{groups: map[string]*gnode{}, hosts: map[string]*hnode{}}
	m.addGroup("all", hcl.Range{})
	m.addGroup("ungrouped", hcl.Range{})
	// cannot fail: two fresh groups
	_ = m.addChild(m.groups["all"], m.groups["ungrouped"])
	return m
}

func (m *model) addGroup(name string, decl hcl.Range) *gnode {
	if g, ok := m.groups[name]; ok {
		return g
	}
	g := &gnode{name: name, vars: map[string]any{}, hostSet: map[*hnode]bool{}, priority: 1, order: len(m.gorder), decl: decl}
	m.groups[name] = g
	m.gorder = append(m.gorder, g)
	return g
}

// addHost adds the host if it is new and puts it into g (when g is not nil). Like Ansible,
// a port only counts when the host is created: a later "h:2222" for a known host is ignored.
func (m *model) addHost(name string, g *gnode, port int) *hnode {
	h, ok := m.hosts[name]
	if !ok {
		h = &hnode{name: name, vars: map[string]any{}, order: len(m.horder)}
		if port > 0 {
			h.vars["ansible_port"] = int64(port)
		}
		m.hosts[name] = h
		m.horder = append(m.horder, h)
	}
	if g != nil {
		g.addHost(h)
	}
	return h
}

func (g *gnode) addHost(h *hnode) {
	if g.hostSet[h] {
		return
	}
	g.hostSet[h] = true
	g.hosts = append(g.hosts, h)
	h.direct = append(h.direct, g)
}

func (g *gnode) removeHost(h *hnode) {
	if !g.hostSet[h] {
		return
	}
	delete(g.hostSet, h)
	for i, x := range g.hosts {
		if x == h {
			g.hosts = append(g.hosts[:i:i], g.hosts[i+1:]...)
			break
		}
	}
	for i, x := range h.direct {
		if x == g {
			h.direct = append(h.direct[:i:i], h.direct[i+1:]...)
			break
		}
	}
}

// cycleError tells a reader that an edge would make a group its own ancestor; path is the
// loop it would close, from the child back to itself.
type cycleError struct{ path []string }

func (e *cycleError) Error() string {
	return fmt.Sprintf("group cycle: %s", strings.Join(e.path, " -> "))
}

// addChild makes child a child group of parent. It refuses an edge that would close a
// loop, as Ansible does, because group depth and variable precedence need a DAG.
func (m *model) addChild(parent, child *gnode) error {
	if parent == child {
		return &cycleError{path: []string{parent.name, parent.name}}
	}
	for _, c := range parent.children {
		if c == child {
			return nil
		}
	}
	if p := pathDown(child, parent, map[*gnode]bool{}); p != nil {
		return &cycleError{path: append([]string{parent.name}, p...)}
	}
	parent.children = append(parent.children, child)
	child.parents = append(child.parents, parent)
	return nil
}

// pathDown returns the names along a child path from 'from' to 'to', or nil.
func pathDown(from, to *gnode, seen map[*gnode]bool) []string {
	if from == to {
		return []string{from.name}
	}
	if seen[from] {
		return nil
	}
	seen[from] = true
	for _, c := range from.children {
		if p := pathDown(c, to, seen); p != nil {
			return append([]string{from.name}, p...)
		}
	}
	return nil
}

func (g *gnode) ancestors() map[*gnode]bool {
	out := map[*gnode]bool{}
	var walk func(*gnode)
	walk = func(x *gnode) {
		for _, p := range x.parents {
			if !out[p] {
				out[p] = true
				walk(p)
			}
		}
	}
	walk(g)
	return out
}

// hostGroups is every group a host belongs to: the groups it was put in and their ancestors.
func (h *hnode) groupSet() map[*gnode]bool {
	out := map[*gnode]bool{}
	for _, g := range h.direct {
		out[g] = true
		for a := range g.ancestors() {
			out[a] = true
		}
	}
	return out
}

// reconcile applies the rules Ansible enforces once all sources are read: every group
// without a parent hangs under "all", and "ungrouped" holds exactly the hosts that are in no
// other group.
func (m *model) reconcile() {
	all, ungrouped := m.groups["all"], m.groups["ungrouped"]
	for _, g := range m.gorder {
		if g != all && len(g.parents) == 0 {
			// all has no parents (readers refuse it as a child), so this cannot loop
			_ = m.addChild(all, g)
		}
	}
	for _, h := range m.horder {
		gs := h.groupSet()
		if gs[ungrouped] {
			for g := range gs {
				if g != all && g != ungrouped {
					ungrouped.removeHost(h)
					break
				}
			}
			continue
		}
		other := false
		for g := range gs {
			if g != all {
				other = true
			}
		}
		if !other {
			ungrouped.addHost(h)
		}
	}
	m.computeDepth()
}

// computeDepth sets each group's depth to its longest path from a root, which is what
// Ansible's incremental bookkeeping ends up with; depth orders group variables.
func (m *model) computeDepth() {
	done := map[*gnode]bool{}
	var depth func(g *gnode) int
	depth = func(g *gnode) int {
		if done[g] {
			return g.depth
		}
		d := 0
		for _, p := range g.parents {
			if pd := depth(p) + 1; pd > d {
				d = pd
			}
		}
		g.depth = d
		done[g] = true
		return d
	}
	for _, g := range m.gorder {
		depth(g)
	}
}

// sortGroups orders groups the way Ansible layers their variables: shallow before deep,
// then by ansible_group_priority, then by name; later groups win.
func sortGroups(gs []*gnode) {
	sort.SliceStable(gs, func(i, j int) bool {
		a, b := gs[i], gs[j]
		if a.depth != b.depth {
			return a.depth < b.depth
		}
		if a.priority != b.priority {
			return a.priority < b.priority
		}
		return a.name < b.name
	})
}

// descendantsBFS lists g and its descendants level by level, in child order; Ansible
// builds a group's host list from this walk.
func (g *gnode) descendantsBFS() []*gnode {
	out := []*gnode{g}
	seen := map[*gnode]bool{g: true}
	level := []*gnode{g}
	for len(level) > 0 {
		var next []*gnode
		for _, x := range level {
			for _, c := range x.children {
				if !seen[c] {
					seen[c] = true
					out = append(out, c)
					next = append(next, c)
				}
			}
		}
		level = next
	}
	return out
}

// allHosts is every host of g and its descendants, without duplicates.
func (g *gnode) allHosts() []*hnode {
	var out []*hnode
	seen := map[*hnode]bool{}
	for _, x := range g.descendantsBFS() {
		for _, h := range x.hosts {
			if !seen[h] {
				seen[h] = true
				out = append(out, h)
			}
		}
	}
	return out
}

// setGroupVar sets an inline group variable. ansible_group_priority is not a variable
// but the group's priority, exactly as in Ansible.
func (m *model) setGroupVar(g *gnode, k string, v any) error {
	if k == "ansible_group_priority" {
		p, ok := pyIntOf(v)
		if !ok {
			return fmt.Errorf("ansible_group_priority must be a whole number, not %s", pyRepr(v))
		}
		g.priority = p
		return nil
	}
	g.vars[k] = v
	return nil
}

// setHostVar sets an inline host variable the way Ansible's readers do: when a group has
// the host's name, the variable goes to that group instead (Ansible looks groups up
// first). redirected tells the caller, which warns.
func (m *model) setHostVar(h *hnode, k string, v any) (redirected bool, err error) {
	if g, ok := m.groups[h.name]; ok {
		return true, m.setGroupVar(g, k, v)
	}
	h.vars[k] = v
	return false, nil
}

func sameNameDiag(rng hcl.Range, name string) *hcl.Diagnostic {
	return warnf(rng, "Host and group share a name",
		"%q is both a host and a group, so Ansible, and runbook with it, give this host's variables to the group %q (and so to all its hosts). Rename one of them.", name, name)
}

func cycleDiag(rng hcl.Range, err *cycleError) *hcl.Diagnostic {
	if len(err.path) == 2 && err.path[0] == err.path[1] {
		return errorf(rng, "Group cycle", "The group %q lists itself as a child; a group cannot contain itself.", err.path[0])
	}
	return errorf(rng, "Group cycle", "Making %q a child of %q closes the loop %s; a group cannot be its own ancestor.",
		err.path[1], err.path[0], strings.Join(err.path, " -> "))
}

func allAsChildDiag(rng hcl.Range, parent string) *hcl.Diagnostic {
	return errorf(rng, "Group cycle", "The group %q lists \"all\" as a child; every group is already inside \"all\", so this would make %q its own ancestor.", parent, parent)
}
