package inventory

import (
	"fmt"

	"github.com/hashicorp/hcl/v2"
	"go.yaml.in/yaml/v3"
)

// The YAML reader follows Ansible's yaml plugin: top-level keys are groups, each with
// optional hosts (a mapping of host pattern to variables), vars and children (a mapping of
// group name to the same structure). Where Ansible only warns and skips, so does this
// reader, with a warning diagnostic.

type yamlReader struct {
	d     *yamlDoc
	m     *model
	diags hcl.Diagnostics
}

// parseYAMLInventory reads a YAML (or JSON) inventory. handled is false when the
// document is not a mapping, which Ansible would hand on to its INI reader.
func parseYAMLInventory(d *yamlDoc, m *model) (diags hcl.Diagnostics, handled bool) {
	root := resolve(d.root)
	if root == nil {
		return nil, true
	}
	if root.Kind != yaml.MappingNode {
		return hcl.Diagnostics{errorf(nodeRange(d.f, root), "Invalid YAML inventory",
			"A YAML inventory is a mapping of group names, e.g.\n\nall:\n  hosts:\n    web1:\n  children:\n    db:\n      hosts:\n        db1:")}, false
	}
	r := &yamlReader{d: d, m: m}
	for i := 0; i+1 < len(root.Content); i += 2 {
		if kn := resolve(root.Content[i]); kn != nil && kn.Kind == yaml.ScalarNode && kn.Value == "plugin" {
			return hcl.Diagnostics{errorf(nodeRange(d.f, kn), "Inventory plugins are not supported",
				"This file configures an Ansible inventory plugin; runbook reads static INI, YAML and HCL inventories and executable inventory scripts only.")}, true
		}
	}
	mds := d.mapping(root, 0, func(k string, kn, vn *yaml.Node) {
		r.group(kn, vn, 0)
	})
	r.diags = append(r.diags, mds...)
	return r.diags, true
}

func (r *yamlReader) errorf(n *yaml.Node, summary, format string, args ...any) {
	r.diags = append(r.diags, errorf(nodeRange(r.d.f, n), summary, format, args...))
}

func (r *yamlReader) warnf(n *yaml.Node, summary, format string, args ...any) {
	r.diags = append(r.diags, warnf(nodeRange(r.d.f, n), summary, format, args...))
}

func (r *yamlReader) groupName(kn *yaml.Node) (string, bool) {
	v, diags := r.d.value(kn)
	r.diags = append(r.diags, diags...)
	if diags.HasErrors() {
		return "", false
	}
	name, ok := v.(string)
	if !ok || name == "" {
		r.errorf(kn, "Invalid group name", "A group name must be text, not %s; quote it.", pyRepr(v))
		return "", false
	}
	return name, true
}

// group reads one group definition and returns it, or nil when the name is unusable.
func (r *yamlReader) group(kn, vn *yaml.Node, depth int) *gnode {
	if r.d.exhausted {
		return nil
	}
	name, ok := r.groupName(kn)
	if !ok {
		return nil
	}
	if depth > 200 {
		r.errorf(kn, "Groups nested too deeply", "Group %q is nested more than 200 levels deep.", name)
		return nil
	}
	body := resolve(vn)
	// aliases can make one group body appear many times over; bound the work
	if body != nil {
		r.d.budget -= 1 + len(body.Content)
	}
	if r.d.budget < 0 {
		r.diags = append(r.diags, r.d.tooDeep(kn)...)
		return nil
	}
	if body != nil && body.Kind == yaml.ScalarNode {
		if v, _ := r.d.value(body); v == nil {
			body = nil
		}
	}
	if body != nil && body.Kind != yaml.MappingNode {
		r.warnf(vn, "Group skipped", "Group %q is not a mapping, so Ansible skips it; give it hosts:, vars: or children:.", name)
		if g, ok := r.m.groups[name]; ok {
			return g
		}
		return nil
	}
	g := r.m.addGroup(name, nodeRange(r.d.f, kn))
	if body == nil {
		return g
	}
	type section struct{ k, v *yaml.Node }
	var sections []section
	mds := r.d.mapping(body, depth, func(k string, skn, svn *yaml.Node) {
		sv := resolve(svn)
		isNull := sv == nil
		if sv != nil && sv.Kind == yaml.ScalarNode {
			v, _ := r.d.value(sv)
			isNull = v == nil
		}
		switch k {
		case "hosts", "vars", "children":
			if isNull || sv.Kind == yaml.MappingNode || sv.Kind == yaml.ScalarNode {
				sections = append(sections, section{skn, svn})
				return
			}
			r.errorf(svn, fmt.Sprintf("Invalid %s section", k), "The %s of group %q must be a mapping, not a %s.%s",
				k, name, kindName(sv), sectionHint(k))
		default:
			// Ansible skips these too, silently when they are empty
			if !isNull {
				r.warnf(skn, "Unexpected key", "Ansible skips the key %q in group %q: only hosts, vars and children are read.%s",
					k, name, didYouMean(k, []string{"hosts", "vars", "children"}))
			}
		}
	})
	r.diags = append(r.diags, mds...)
	for _, s := range sections {
		k, _ := r.d.key(s.k)
		sv := resolve(s.v)
		if sv == nil {
			continue
		}
		if sv.Kind == yaml.ScalarNode {
			v, diags := r.d.value(sv)
			r.diags = append(r.diags, diags...)
			if v == nil {
				continue
			}
			// Ansible accepts a single name where a mapping belongs
			str, ok := v.(string)
			if k == "vars" && ok {
				r.warnf(s.v, "Variable without value", "vars: %s sets %q to null in group %q; write vars as key: value lines.", str, str, name)
			}
			if !ok {
				r.errorf(s.v, fmt.Sprintf("Invalid %s section", k), "The %s of group %q must be a mapping; %s is not a name.%s", k, name, reprUnlessSecret(v), sectionHint(k))
				continue
			}
			r.entry(g, k, sv, str, nil, depth)
			continue
		}
		mds := r.d.mapping(sv, depth+1, func(ek string, ekn, evn *yaml.Node) {
			r.entry(g, k, ekn, ek, evn, depth)
		})
		r.diags = append(r.diags, mds...)
	}
	return g
}

func sectionHint(k string) string {
	switch k {
	case "hosts":
		return " List hosts as keys:\n\nhosts:\n  web1:\n  web2:\n    ansible_port: 2222"
	case "children":
		return " List child groups as keys:\n\nchildren:\n  web:\n  db:"
	}
	return " Write vars as key: value lines."
}

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.SequenceNode:
		return "list"
	case yaml.MappingNode:
		return "mapping"
	}
	return "value"
}

// entry handles one item of a hosts, vars or children section.
func (r *yamlReader) entry(g *gnode, section string, kn *yaml.Node, key string, vn *yaml.Node, depth int) {
	switch section {
	case "vars":
		v, diags := r.d.value(vn)
		r.diags = append(r.diags, diags...)
		if err := r.m.setGroupVar(g, key, v); err != nil {
			r.errorf(vn, "Invalid group priority", "%s.", err)
		}
	case "children":
		if key == "all" {
			r.diags = append(r.diags, allAsChildDiag(nodeRange(r.d.f, kn), g.name))
			return
		}
		child := r.group(kn, vn, depth+1)
		if child == nil {
			if v, _ := r.d.value(kn); v != nil {
				if name, isStr := v.(string); isStr && name != "" && r.m.groups[name] == nil {
					r.errorf(kn, "Undefined group", "Group %q is not a valid group definition and no other group of that name exists.", name)
				}
			}
			return
		}
		if err := r.m.addChild(g, child); err != nil {
			if ce, ok := err.(*cycleError); ok {
				r.diags = append(r.diags, cycleDiag(nodeRange(r.d.f, kn), ce))
			}
		}
	case "hosts":
		kv, diags := r.d.value(kn)
		r.diags = append(r.diags, diags...)
		pattern, ok := kv.(string)
		if !ok {
			r.errorf(kn, "Invalid host name", "Host name %s must be text; enclose numbers in quotes.", pyRepr(kv))
			return
		}
		names, port, err := splitHostPattern(pattern)
		if err != nil {
			re := err.(*rangeError)
			r.errorf(kn, re.summary, "%s", re.detail)
			return
		}
		for _, n := range names {
			if n == "" {
				r.errorf(kn, "Invalid host name", "A host name cannot be empty.")
				return
			}
		}
		var vars map[string]any
		if vn != nil {
			v, diags := r.d.value(vn)
			r.diags = append(r.diags, diags...)
			if diags.HasErrors() {
				return
			}
			switch x := v.(type) {
			case map[string]any:
				vars = x
			default:
				// Ansible treats any false-ish value as "no variables"
				if pyTruthy(v) {
					r.errorf(vn, "Invalid host variables", "The variables of host %q must be a mapping of names to values, not %s.", pattern, reprUnlessSecret(v))
					return
				}
			}
		}
		for _, n := range names {
			h := r.m.addHost(n, g, port)
			warned := false
			for _, k := range sortedKeys(vars) {
				redirected, err := r.m.setHostVar(h, k, deepCopy(vars[k]))
				if err != nil {
					r.errorf(kn, "Invalid group priority", "%s.", err)
				}
				if redirected && !warned {
					warned = true
					r.diags = append(r.diags, sameNameDiag(nodeRange(r.d.f, kn), n))
				}
			}
		}
	}
}

func pyTruthy(v any) bool {
	switch x := v.(type) {
	case nil:
		return false
	case bool:
		return x
	case string:
		return x != ""
	case int64:
		return x != 0
	case float64:
		return x != 0
	case []any:
		return len(x) > 0
	case map[string]any:
		return len(x) > 0
	}
	return true
}
