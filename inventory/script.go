package inventory

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os/exec"
	"strings"
	"unicode/utf8"

	"github.com/hashicorp/hcl/v2"
	"go.yaml.in/yaml/v3"
)

// An executable inventory prints Ansible's inventory-script JSON when run with --list:
// groups with hosts, vars and children, and usually _meta.hostvars. Without _meta the
// script is asked for each host's variables with --host NAME, as Ansible does.

type hostVarsFunc func(host string) (map[string]any, hcl.Diagnostics)

// parseListJSON reads the --list output in f into m.
func parseListJSON(f *srcFile, m *model, hostVars hostVarsFunc) hcl.Diagnostics {
	if !json.Valid(f.src) {
		var v any
		err := json.Unmarshal(f.src, &v)
		rng := f.rng(0, 0)
		var se *json.SyntaxError
		if errors.As(err, &se) {
			off := int(se.Offset)
			if off > 0 {
				off--
			}
			rng = f.rng(off, min(off+1, len(f.src)))
		}
		msg := "the output is empty"
		if err != nil && len(bytes.TrimSpace(f.src)) > 0 {
			msg = err.Error()
		}
		return hcl.Diagnostics{errorf(rng, "Invalid inventory script output", "This is not valid JSON: %s.", msg)}
	}
	root, err := jsonNodes(f)
	if err != nil {
		return hcl.Diagnostics{errorf(f.rng(0, 0), "Invalid inventory script output", "The --list output cannot be read: %s.", err)}
	}
	d := &yamlDoc{f: f, root: root, json: true, budget: yamlNodeBudget}
	if root.Kind != yaml.MappingNode {
		return hcl.Diagnostics{errorf(nodeRange(f, root), "Invalid inventory script output",
			"The --list output must be a JSON object of groups, e.g. {\"web\": {\"hosts\": [\"web1\"]}, \"_meta\": {\"hostvars\": {}}}.")}
	}
	r := &scriptReader{d: d, m: m, seen: map[string]bool{}}
	var meta *yaml.Node
	mds := d.mapping(root, 0, func(k string, kn, vn *yaml.Node) {
		if k == "_meta" {
			if vn.Kind != yaml.MappingNode {
				r.errorf(vn, "Invalid inventory script output", "_meta must be an object holding \"hostvars\".")
				return
			}
			_ = d.mapping(vn, 1, func(mk string, _, mv *yaml.Node) {
				if mk == "hostvars" {
					meta = mv
				}
			})
			return
		}
		r.group(k, kn, vn)
	})
	r.diags = append(r.diags, mds...)
	if r.diags.HasErrors() {
		return r.diags
	}
	var fromMeta map[string]*yaml.Node
	if meta != nil {
		if meta.Kind != yaml.MappingNode {
			r.errorf(meta, "Invalid inventory script output", "_meta.hostvars must be an object of host names to variables.")
			return r.diags
		}
		fromMeta = map[string]*yaml.Node{}
		_ = d.mapping(meta, 1, func(h string, _, v *yaml.Node) { fromMeta[h] = v })
	}
	for _, name := range r.hosts {
		var vars map[string]any
		if meta != nil {
			vn, ok := fromMeta[name]
			if !ok {
				continue
			}
			v, diags := d.value(vn)
			r.diags = append(r.diags, diags...)
			mv, isMap := v.(map[string]any)
			if !isMap {
				r.errorf(vn, "Invalid host variables", "_meta.hostvars[%q] must be an object of variables, not %s.", name, pyRepr(v))
				continue
			}
			vars = mv
		} else if hostVars != nil {
			v, diags := hostVars(name)
			r.diags = append(r.diags, diags...)
			vars = v
		}
		h := m.hosts[name]
		warned := false
		for _, k := range sortedKeys(vars) {
			redirected, err := m.setHostVar(h, k, vars[k])
			if err != nil {
				r.diags = append(r.diags, errorf(f.rng(0, 0), "Invalid group priority", "%s.", err))
			}
			if redirected && !warned {
				warned = true
				r.diags = append(r.diags, sameNameDiag(f.rng(0, 0), name))
			}
		}
	}
	return r.diags
}

type scriptReader struct {
	d     *yamlDoc
	m     *model
	diags hcl.Diagnostics
	hosts []string
	seen  map[string]bool
}

func (r *scriptReader) errorf(n *yaml.Node, summary, format string, args ...any) {
	r.diags = append(r.diags, errorf(nodeRange(r.d.f, n), summary, format, args...))
}

func (r *scriptReader) group(name string, kn, vn *yaml.Node) {
	if name == "" {
		r.errorf(kn, "Invalid group name", "A group name cannot be empty.")
		return
	}
	g := r.m.addGroup(name, nodeRange(r.d.f, kn))
	hosts, vars, children := vn, (*yaml.Node)(nil), (*yaml.Node)(nil)
	if vn.Kind == yaml.MappingNode {
		hosts = nil
		found := false
		_ = r.d.mapping(vn, 1, func(k string, _, v *yaml.Node) {
			switch k {
			case "hosts":
				hosts, found = v, true
			case "vars":
				vars, found = v, true
			case "children":
				children, found = v, true
			}
		})
		if !found {
			// {"group": {"var": 1}} is shorthand for a host of the group's name
			hosts = &yaml.Node{Kind: yaml.SequenceNode, Content: []*yaml.Node{{Kind: yaml.ScalarNode, Tag: "!!str", Value: name, Style: yaml.DoubleQuotedStyle, Line: kn.Line, Column: kn.Column}}}
			vars = vn
		}
	}
	if hosts != nil {
		if hosts.Kind != yaml.SequenceNode {
			r.errorf(hosts, "Invalid inventory script output", "The hosts of group %q must be a list of host names.", name)
			return
		}
		for _, hn := range hosts.Content {
			v, _ := r.d.value(hn)
			h, ok := v.(string)
			if !ok || h == "" {
				r.errorf(hn, "Invalid host name", "Host names in group %q must be non-empty strings, not %s.", name, pyRepr(v))
				continue
			}
			if !r.seen[h] {
				r.seen[h] = true
				r.hosts = append(r.hosts, h)
			}
			r.m.addHost(h, g, -1)
		}
	}
	if vars != nil {
		if vars.Kind != yaml.MappingNode {
			r.errorf(vars, "Invalid inventory script output", "The vars of group %q must be an object.", name)
		} else {
			mds := r.d.mapping(vars, 1, func(k string, _, v *yaml.Node) {
				val, diags := r.d.value(v)
				r.diags = append(r.diags, diags...)
				if err := r.m.setGroupVar(g, k, val); err != nil {
					r.errorf(v, "Invalid group priority", "%s.", err)
				}
			})
			r.diags = append(r.diags, mds...)
		}
	}
	if children != nil {
		if children.Kind != yaml.SequenceNode {
			r.errorf(children, "Invalid inventory script output", "The children of group %q must be a list of group names.", name)
			return
		}
		for _, cn := range children.Content {
			v, _ := r.d.value(cn)
			c, ok := v.(string)
			if !ok || c == "" {
				r.errorf(cn, "Invalid group name", "Child groups of %q must be non-empty strings, not %s.", name, pyRepr(v))
				continue
			}
			if c == "all" {
				r.diags = append(r.diags, allAsChildDiag(nodeRange(r.d.f, cn), name))
				continue
			}
			child := r.m.addGroup(c, nodeRange(r.d.f, cn))
			if err := r.m.addChild(g, child); err != nil {
				if ce, ok := err.(*cycleError); ok {
					r.diags = append(r.diags, cycleDiag(nodeRange(r.d.f, cn), ce))
				}
			}
		}
	}
}

// runScript runs an executable inventory and reads its output into m. Diagnostics point
// at the script itself; where the output is at fault, the detail says where in it.
func runScript(ctx context.Context, path string, m *model) hcl.Diagnostics {
	subject := scriptSubject(path)
	out, diags := runInventoryCommand(ctx, path, subject, "--list")
	if diags.HasErrors() {
		return diags
	}
	hostVars := func(host string) (map[string]any, hcl.Diagnostics) {
		out, diags := runInventoryCommand(ctx, path, subject, "--host", host)
		if diags.HasErrors() || len(bytes.TrimSpace(out)) == 0 {
			return nil, diags
		}
		name := fmt.Sprintf("%s --host %s", path, host)
		doc, ds := parseYAMLDoc(name, out)
		if ds.HasErrors() {
			return nil, relocate(ds, subject, "--host "+host)
		}
		v, ds := doc.value(doc.root)
		if ds.HasErrors() {
			return nil, relocate(ds, subject, "--host "+host)
		}
		vars, ok := v.(map[string]any)
		if !ok {
			return nil, hcl.Diagnostics{errorf(subject, "Invalid inventory script output",
				"%s --host %s must print a JSON object of variables, not %s.", path, host, pyRepr(v))}
		}
		return vars, nil
	}
	f := newSrcFile(path+" --list", out)
	return relocate(parseListJSON(f, m, hostVars), subject, "--list")
}

// scriptSubject is the first line of the script, where its diagnostics point.
func scriptSubject(path string) hcl.Range {
	src, _ := readFileLimited(path, 4096)
	return newSrcFile(path, src).lineRange(1)
}

// relocate moves diagnostics about a script's output onto the script, keeping the
// position within the output in the detail.
func relocate(diags hcl.Diagnostics, subject hcl.Range, what string) hcl.Diagnostics {
	for _, d := range diags {
		if d.Subject != nil && d.Subject.Filename != subject.Filename {
			d.Detail = fmt.Sprintf("In what %s %s printed, at line %d, column %d: %s", subject.Filename, what, d.Subject.Start.Line, d.Subject.Start.Column, d.Detail)
			s := subject
			d.Subject = &s
		}
	}
	return diags
}

func runInventoryCommand(ctx context.Context, path string, subject hcl.Range, args ...string) ([]byte, hcl.Diagnostics) {
	cmd := exec.CommandContext(ctx, path, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		msg := strings.TrimSpace(stderr.String())
		if len(msg) > 2000 {
			msg = msg[:2000] + "..."
		}
		if ctx.Err() != nil {
			return nil, hcl.Diagnostics{errorf(subject, "Inventory script failed", "%s %s was stopped: %s.", path, strings.Join(args, " "), ctx.Err())}
		}
		if msg != "" {
			msg = "\n\n" + msg
		}
		return nil, hcl.Diagnostics{errorf(subject, "Inventory script failed", "%s %s failed: %s.%s", path, strings.Join(args, " "), err, msg)}
	}
	if !utf8.Valid(stdout.Bytes()) {
		return nil, hcl.Diagnostics{errorf(subject, "Invalid inventory script output", "%s %s printed text that is not UTF-8.", path, strings.Join(args, " "))}
	}
	return stdout.Bytes(), nil
}
