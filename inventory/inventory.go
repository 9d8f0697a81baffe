package inventory

import (
	"sort"
)

// Inventory is a loaded, merged inventory. It is read-only once returned and safe for
// concurrent reads.
type Inventory struct {
	m          *model
	hosts      []*Host
	hostByName map[string]*Host
	groups     []*Group
	groupByNm  map[string]*Group
	byNode     map[*hnode]*Host
	// groupVars are each group's own variables as ansible-inventory shows them in
	// --graph --vars: inline, then group_vars files, then a non-default priority
	groupVars map[*gnode]map[string]any
}

// Host is one host with its variables merged the way Ansible merges them.
type Host struct {
	Name string
	// Vars are the merged variables: JSON-shaped values (string, bool, int64, float64,
	// json.Number for integers beyond int64, nil, []any, map[string]any).
	Vars map[string]any
	// Groups is every group the host belongs to, ancestors and "all" included, in the
	// order their variables apply (so the last one wins).
	Groups []string
}

// Group is one group as declared: its direct hosts and child groups in the order they
// were added, and its own variables (inline and from group_vars files).
type Group struct {
	Name     string
	Hosts    []string
	Children []string
	Vars     map[string]any
}

// Hosts returns every host in the order it was first defined across the sources.
func (inv *Inventory) Hosts() []*Host {
	return append([]*Host(nil), inv.hosts...)
}

// Host returns the host of that name.
func (inv *Inventory) Host(name string) (*Host, bool) {
	h, ok := inv.hostByName[name]
	return h, ok
}

// Groups returns every group, "all" and "ungrouped" included, sorted by name.
func (inv *Inventory) Groups() []*Group {
	return append([]*Group(nil), inv.groups...)
}

// Group returns the group of that name.
func (inv *Inventory) Group(name string) (*Group, bool) {
	g, ok := inv.groupByNm[name]
	return g, ok
}

// build turns a reconciled model and its vars files into the public view.
func build(m *model, vf *varFiles) *Inventory {
	inv := &Inventory{
		m:          m,
		hostByName: map[string]*Host{},
		groupByNm:  map[string]*Group{},
		byNode:     map[*hnode]*Host{},
		groupVars:  map[*gnode]map[string]any{},
	}
	all := m.groups["all"]
	fileGroupVars := map[*gnode]map[string]any{}
	for _, g := range m.gorder {
		fileGroupVars[g] = vf.layer("group_vars", []string{g.name})
	}
	for _, g := range m.gorder {
		own := map[string]any{}
		for k, v := range g.vars {
			own[k] = v
		}
		for k, v := range fileGroupVars[g] {
			own[k] = v
		}
		inv.groupVars[g] = own
		pub := &Group{Name: g.name, Vars: deepCopy(own).(map[string]any), Hosts: []string{}, Children: []string{}}
		for _, h := range g.hosts {
			pub.Hosts = append(pub.Hosts, h.name)
		}
		for _, c := range g.children {
			pub.Children = append(pub.Children, c.name)
		}
		inv.groups = append(inv.groups, pub)
		inv.groupByNm[g.name] = pub
	}
	sort.Slice(inv.groups, func(i, j int) bool { return inv.groups[i].Name < inv.groups[j].Name })

	for _, h := range m.horder {
		set := h.groupSet()
		var groups []*gnode
		for g := range set {
			if g != all {
				groups = append(groups, g)
			}
		}
		sortGroups(groups)
		vars := map[string]any{}
		merge := func(src map[string]any) {
			for k, v := range src {
				vars[k] = v
			}
		}
		// Ansible's default precedence: inline vars of all, inline vars of the other
		// groups, then group_vars/all, then group_vars of the other groups (for each
		// source in turn), then the host's inline vars, then host_vars.
		merge(all.vars)
		for _, g := range groups {
			merge(g.vars)
		}
		names := make([]string, len(groups))
		for i, g := range groups {
			names[i] = g.name
		}
		merge(vf.layer("group_vars", []string{"all"}))
		merge(vf.layer("group_vars", names))
		merge(h.vars)
		merge(vf.layer("host_vars", []string{h.name}))
		pub := &Host{Name: h.name, Vars: deepCopy(vars).(map[string]any), Groups: append([]string{"all"}, names...)}
		inv.hosts = append(inv.hosts, pub)
		inv.hostByName[h.name] = pub
		inv.byNode[h] = pub
	}
	return inv
}
