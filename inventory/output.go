package inventory

import (
	"bufio"
	"fmt"
	"io"
	"strings"

	"github.com/runbook/runbook/internal/termsafe"
	"github.com/runbook/runbook/modules"
)

// internalVars are the names ansible-inventory removes from what it prints, because
// Ansible sets them itself at run time.
var internalVars = map[string]bool{
	"ansible_diff_mode": true, "ansible_config_file": true, "ansible_facts": true, "ansible_forks": true,
	"ansible_inventory_sources": true, "ansible_limit": true, "ansible_playbook_python": true,
	"ansible_run_tags": true, "ansible_skip_tags": true, "ansible_verbosity": true, "ansible_version": true,
	"inventory_dir": true, "inventory_file": true, "inventory_hostname": true, "inventory_hostname_short": true,
	"groups": true, "group_names": true, "omit": true, "playbook_dir": true,
}

// printable is what runbook inventory prints of a host's or group's variables: not the ones
// Ansible sets itself, and secrets (see Redact) replaced.
func printable(vars map[string]any) map[string]any {
	out := make(map[string]any, len(vars))
	for k, v := range vars {
		if !internalVars[k] {
			out[k] = v
		}
	}
	return Redact(out).(map[string]any)
}

// Redact returns v with the value of every mapping key named like a secret (Secret), and
// every string that holds a private key or was decrypted from a vault (SecretValue), at any depth, replaced by
// modules.Redacted: {"db": {"password": "x"}} becomes {"db": {"password": "(sensitive
// value)"}}. A null stays null (it holds nothing), a boolean stays itself (true or false
// is no secret). v is not changed; what holds no secret is shared, not copied.
func Redact(v any) any {
	r, _ := redact(v)
	return r
}

// redact is Redact, and whether it replaced anything.
func redact(v any) (any, bool) {
	switch x := v.(type) {
	case map[string]any:
		var out map[string]any
		for k, e := range x {
			r, changed := redact(e)
			if secretByName(k, e) { // a private key deeper in e is hidden where it is
				r, changed = modules.Redacted, true
			}
			if !changed {
				continue
			}
			if out == nil {
				out = make(map[string]any, len(x))
				for k2, e2 := range x {
					out[k2] = e2
				}
			}
			out[k] = r
		}
		if out == nil {
			return x, false
		}
		return out, true
	case []any:
		var out []any
		for i, e := range x {
			r, changed := redact(e)
			if !changed {
				continue
			}
			if out == nil {
				out = append([]any(nil), x...)
			}
			out[i] = r
		}
		if out == nil {
			return x, false
		}
		return out, true
	case string:
		if privateKeyText(x) || VaultedString(x) {
			return modules.Redacted, true
		}
	}
	return v, false
}

// ListJSON returns the inventory as ansible-inventory --list prints it: each group with
// its hosts and children (empty ones left out), "all" with its children, and
// _meta.hostvars with every host's merged variables, secrets (Redact) shown as
// modules.Redacted.
func (inv *Inventory) ListJSON() ([]byte, error) {
	out := map[string]any{}
	seen := map[*gnode]bool{}
	var format func(g *gnode)
	format = func(g *gnode) {
		entry := map[string]any{}
		if g.name != "all" && len(g.hosts) > 0 {
			hosts := make([]any, len(g.hosts))
			for i, h := range g.hosts {
				hosts[i] = h.name
			}
			entry["hosts"] = hosts
		}
		if len(g.children) > 0 {
			kids := make([]any, len(g.children))
			for i, c := range g.children {
				kids[i] = c.name
			}
			entry["children"] = kids
		}
		if len(entry) > 0 {
			out[g.name] = entry
		}
		for _, c := range g.children {
			if !seen[c] {
				seen[c] = true
				format(c)
			}
		}
	}
	format(inv.m.groups["all"])
	hostvars := map[string]any{}
	for _, h := range inv.hosts {
		if vars := printable(h.Vars); len(vars) > 0 {
			hostvars[h.Name] = vars
		}
	}
	out["_meta"] = map[string]any{"hostvars": hostvars}
	return pyJSON(out), nil
}

// HostJSON returns one host's merged variables as ansible-inventory --host prints them,
// secrets (Redact) shown as modules.Redacted.
func (inv *Inventory) HostJSON(name string) ([]byte, error) {
	h, ok := inv.hostByName[name]
	if !ok {
		return nil, fmt.Errorf("the inventory has no host named %q", name)
	}
	return pyJSON(printable(h.Vars)), nil
}

// Graph writes the group tree as ansible-inventory --graph does, with each host's and
// group's variables when withVars is set (--graph --vars), secrets (Redact) shown as
// modules.Redacted. Names, keys and values can come from a script's output or a CMDB
// field: each is escaped to one line (termsafe.Line), so that none can draw lines of the
// tree or drive the terminal.
func (inv *Inventory) Graph(w io.Writer, withVars bool) error {
	// a group under several parents is printed under each, as Ansible does; stacked
	// diamonds of groups would make that exponential, so the tree is sized first
	if n := inv.graphLines(inv.m.groups["all"], map[*gnode]int{}); n > maxGraphLines {
		return fmt.Errorf("the group tree has more than %d lines once groups under several parents are repeated", maxGraphLines)
	}
	bw := bufio.NewWriter(w)
	line := func(depth int, text string) {
		if depth > 0 {
			bw.WriteString(strings.Repeat("  |", depth))
			bw.WriteString("--")
		}
		bw.WriteString(text)
		bw.WriteByte('\n')
	}
	showVars := func(vars map[string]any, depth int) {
		vars = printable(vars)
		for _, k := range sortedKeys(vars) {
			line(depth, "{"+termsafe.Line(k)+" = "+termsafe.Line(pyStr(vars[k]))+"}")
		}
	}
	var walk func(g *gnode, depth int)
	walk = func(g *gnode, depth int) {
		line(depth, "@"+termsafe.Line(g.name)+":")
		for _, c := range g.children {
			walk(c, depth+1)
		}
		if g.name != "all" {
			for _, h := range g.hosts {
				line(depth+1, termsafe.Line(h.name))
				if withVars {
					showVars(inv.byNode[h].Vars, depth+2)
				}
			}
		}
		if withVars {
			vars := inv.groupVars[g]
			if g.priority != 1 {
				vars = copyMap(vars)
				vars["ansible_group_priority"] = int64(g.priority)
			}
			showVars(vars, depth+1)
		}
	}
	walk(inv.m.groups["all"], 0)
	return bw.Flush()
}

func copyMap(m map[string]any) map[string]any {
	out := make(map[string]any, len(m)+1)
	for k, v := range m {
		out[k] = v
	}
	return out
}

const maxGraphLines = 1 << 20

// graphLines counts the group and host lines of g's subtree, memoized per group.
func (inv *Inventory) graphLines(g *gnode, memo map[*gnode]int) int {
	if n, ok := memo[g]; ok {
		return n
	}
	n := 1 + len(g.hosts)
	for _, c := range g.children {
		n += inv.graphLines(c, memo)
		if n > maxGraphLines {
			break
		}
	}
	memo[g] = n
	return n
}
