package inventory

import (
	"regexp"
	"strings"
	"unicode/utf8"

	"github.com/hashicorp/hcl/v2"
)

// The INI reader follows Ansible's: lines before any section are ungrouped hosts,
// [g] lists hosts, [g:vars] sets group variables, [g:children] lists child groups, a
// child may be declared later in the file, and values are typed like Python literals.

const pySpaceClass = `\t\n\v\f\r \x1c-\x1f\x{85}\p{Z}`

var (
	reINISection   = regexp.MustCompile(`^\[([^:\]` + pySpaceClass + `]+)(?::([\p{L}\p{N}_]+))?\][` + pySpaceClass + `]*(?:#.*)?$`)
	reINIGroupName = regexp.MustCompile(`^([^:\]` + pySpaceClass + `]+)[` + pySpaceClass + `]*(?:#.*)?$`)
)

type iniPending struct {
	state   string // "vars" or "children"
	rng     hcl.Range
	parents []*gnode
	refs    []hcl.Range // where each parent listed the child
}

type iniReader struct {
	f       *srcFile
	m       *model
	diags   hcl.Diagnostics
	pending map[string]*iniPending
	order   []string
}

// pyLine is one line as Python's str.splitlines() cuts it, with its byte offset.
type pyLine struct {
	text  string
	start int
}

func pySplitLines(src string) []pyLine {
	var out []pyLine
	start := 0
	for i := 0; i < len(src); {
		r, sz := utf8.DecodeRuneInString(src[i:])
		brk := 0
		switch r {
		case '\n', '\v', '\f', 0x1c, 0x1d, 0x1e, 0x85, 0x2028, 0x2029:
			brk = sz
		case '\r':
			brk = 1
			if i+1 < len(src) && src[i+1] == '\n' {
				brk = 2
			}
		}
		if r == utf8.RuneError && sz == 1 {
			brk = 0
		}
		if brk > 0 {
			out = append(out, pyLine{src[start:i], start})
			i += brk
			start = i
			continue
		}
		i += sz
	}
	if start < len(src) {
		out = append(out, pyLine{src[start:], start})
	}
	return out
}

func parseINI(filename string, src []byte, m *model) hcl.Diagnostics {
	r := &iniReader{f: newSrcFile(filename, src), m: m, pending: map[string]*iniPending{}}
	r.parse()
	return r.diags
}

func (r *iniReader) errorf(rng hcl.Range, summary, format string, args ...any) {
	r.diags = append(r.diags, errorf(rng, summary, format, args...))
}

func (r *iniReader) parse() {
	text := string(r.f.src)
	bom := 0
	if strings.HasPrefix(text, "\ufeff") {
		bom = 3
	}
	group := r.m.groups["ungrouped"]
	state := "hosts"
	for _, ln := range pySplitLines(text[bom:]) {
		ln.start += bom
		raw := ln.text
		if !utf8.ValidString(raw) {
			if raw != "" && (raw[0] == '#' || raw[0] == ';') {
				continue
			}
			r.errorf(r.f.rng(ln.start, ln.start+len(raw)), "Invalid text encoding", "This line is not valid UTF-8; inventories must be UTF-8 text.")
			continue
		}
		line := strings.TrimLeftFunc(raw, pyIsSpace)
		off := ln.start + len(raw) - len(line)
		line = strings.TrimRightFunc(line, pyIsSpace)
		if line == "" || line[0] == '#' || line[0] == ';' {
			continue
		}
		lineRng := r.f.rng(off, off+len(line))

		if sm := reINISection.FindStringSubmatchIndex(line); sm != nil {
			name := line[sm[2]:sm[3]]
			st := "hosts"
			if sm[4] >= 0 {
				st = line[sm[4]:sm[5]]
			}
			if st != "hosts" && st != "children" && st != "vars" {
				rng := r.f.rng(off+sm[4], off+sm[5])
				r.errorf(rng, "Unknown section type",
					"[%s:%s] has the unknown type %q; a section is [%s], [%s:vars] or [%s:children].%s",
					name, st, st, name, name, name, didYouMean(st, []string{"vars", "children"}))
				state = "skip"
				continue
			}
			r.section(name, st, lineRng)
			group, state = r.m.groups[name], st
			continue
		}
		if line[0] == '[' && line[len(line)-1] == ']' {
			r.errorf(lineRng, "Invalid section header",
				"%s is not a valid section header: a group name cannot contain spaces, \":\" or \"]\", and only a # comment may follow the header.", line)
			state = "skip"
			continue
		}
		if line[0] == '[' && !strings.Contains(line, "]") {
			r.errorf(lineRng, "Unterminated section header", "%s has no closing \"]\"; write [%s].", line, strings.TrimSpace(line[1:]))
			state = "skip"
			continue
		}
		if line[0] == '[' && !r.isBracketedHost(line, state) {
			// Ansible reads this as a host and fails on it; it is a section header gone wrong
			r.errorf(lineRng, "Invalid section header",
				"%s is not a valid section header: only a # comment may follow the closing \"]\", and a group name cannot contain spaces, \":\" or \"]\".", withoutComment(line))
			state = "skip"
			continue
		}
		switch state {
		case "hosts":
			r.hostLine(line, off, group)
		case "vars":
			r.varLine(line, off, group, lineRng)
		case "children":
			r.childLine(line, off, group, lineRng)
		}
	}
	for _, name := range r.order {
		p := r.pending[name]
		if p == nil {
			continue
		}
		if p.state == "vars" {
			r.errorf(p.rng, "Undefined group",
				"[%s:vars] sets variables of a group that no [%s] or [%s:children] section declares.%s",
				name, name, name, didYouMean(name, r.groupNames(name)))
			continue
		}
		for i, parent := range p.parents {
			r.errorf(p.refs[i], "Undefined group",
				"[%s:children] lists %q, but no [%s] or [%s:children] section declares it.%s",
				parent.name, name, name, name, didYouMean(name, r.groupNames(name)))
		}
	}
}

// isBracketedHost tells a host line such as "[::1]:22 x=1" from a broken section header.
func (r *iniReader) isBracketedHost(line, state string) bool {
	if state != "hosts" {
		return false
	}
	toks, err := shlexSplit(line)
	if err != nil || len(toks) == 0 {
		return false
	}
	_, _, err = splitHostPattern(toks[0].text)
	return err == nil
}

// withoutComment drops a trailing " # comment" from a line quoted in a message.
func withoutComment(line string) string {
	if i := strings.Index(line, " #"); i > 0 {
		return strings.TrimSpace(line[:i])
	}
	if i := strings.Index(line, "\t#"); i > 0 {
		return strings.TrimSpace(line[:i])
	}
	return line
}

func (r *iniReader) groupNames(except string) []string {
	var out []string
	for _, g := range r.m.gorder {
		if g.name != except && r.pending[g.name] == nil {
			out = append(out, g.name)
		}
	}
	return out
}

func (r *iniReader) section(name, state string, rng hcl.Range) {
	if _, known := r.m.groups[name]; !known {
		// [g:vars] alone does not declare g; the check waits for the end of the file
		if state == "vars" && r.pending[name] == nil {
			r.pending[name] = &iniPending{state: "vars", rng: rng}
			r.order = append(r.order, name)
		}
		r.m.addGroup(name, rng)
	}
	if p := r.pending[name]; p != nil && state != "vars" {
		if p.state == "children" {
			r.resolveChildren(name)
		} else {
			delete(r.pending, name)
		}
	}
}

// resolveChildren links a group that [p:children] sections named before it was declared.
func (r *iniReader) resolveChildren(name string) {
	p := r.pending[name]
	delete(r.pending, name)
	child := r.m.groups[name]
	for i, parent := range p.parents {
		r.link(parent, child, p.refs[i])
		if pp := r.pending[parent.name]; pp != nil && pp.state == "children" {
			r.resolveChildren(parent.name)
		}
	}
}

func (r *iniReader) link(parent, child *gnode, rng hcl.Range) {
	if err := r.m.addChild(parent, child); err != nil {
		if ce, ok := err.(*cycleError); ok {
			r.diags = append(r.diags, cycleDiag(rng, ce))
		}
	}
}

func (r *iniReader) hostLine(line string, off int, group *gnode) {
	toks, err := shlexSplit(line)
	if err != nil {
		r.errorf(r.f.rng(off, off+len(line)), "Invalid host line", "Cannot split this host line: %s. Close every quote you open.", err)
		return
	}
	if len(toks) == 0 {
		return
	}
	ht := toks[0]
	hrng := r.f.rng(off+ht.start, off+ht.end)
	pattern := ht.text
	names, port, err := splitHostPattern(pattern)
	if err != nil {
		re := err.(*rangeError)
		r.errorf(hrng, re.summary, "%s", re.detail)
		return
	}
	if strings.HasSuffix(strings.TrimSpace(pattern), ":") && port < 0 {
		r.errorf(hrng, "Invalid host name", "%q ends in \":\" with no port after it; write %s:PORT or drop the colon.", pattern, strings.TrimSuffix(pattern, ":"))
		return
	}
	for _, n := range names {
		if strings.TrimSpace(n) == "---" {
			r.errorf(hrng, "Invalid host name", "\"---\" starts a YAML document; a YAML inventory needs a .yml or .yaml file name.")
			return
		}
		if n == "" {
			r.errorf(hrng, "Invalid host name", "A host name cannot be empty.")
			return
		}
	}
	type kv struct {
		k string
		v any
	}
	var vars []kv
	for _, t := range toks[1:] {
		k, v, ok := strings.Cut(t.text, "=")
		if !ok {
			r.errorf(r.f.rng(off+t.start, off+t.end), "Invalid host variable",
				"Expected key=value after the host name, got %q. Quote a value that has spaces: key=\"a b\".", t.text)
			return
		}
		val, isLit := pyLiteral(v)
		if !isLit {
			val = v
		}
		vars = append(vars, kv{k, val})
	}
	for _, n := range names {
		h := r.m.addHost(n, group, port)
		warned := false
		for _, e := range vars {
			redirected, err := r.m.setHostVar(h, e.k, e.v)
			if err != nil {
				r.errorf(hrng, "Invalid group priority", "%s.", err)
			}
			if redirected && !warned {
				warned = true
				r.diags = append(r.diags, sameNameDiag(hrng, n))
			}
		}
	}
}

func (r *iniReader) varLine(line string, off int, group *gnode, rng hcl.Range) {
	k, v, ok := strings.Cut(line, "=")
	if !ok {
		r.errorf(rng, "Invalid variable line", "Expected key=value in [%s:vars], got %s.", group.name, quoteUnlessSecret(line))
		return
	}
	k, v = pyStrip(k), pyStrip(v)
	val, isLit := pyLiteral(v)
	if !isLit {
		val = v
	}
	if err := r.m.setGroupVar(group, k, val); err != nil {
		r.errorf(rng, "Invalid group priority", "%s.", err)
	}
}

func (r *iniReader) childLine(line string, off int, group *gnode, rng hcl.Range) {
	sm := reINIGroupName.FindStringSubmatch(line)
	if sm == nil {
		r.errorf(rng, "Invalid child group", "Expected a group name in [%s:children], got %q; list one group per line.", group.name, withoutComment(line))
		return
	}
	name := sm[1]
	nrng := r.f.rng(off, off+len(name))
	if name == "all" {
		r.diags = append(r.diags, allAsChildDiag(nrng, group.name))
		return
	}
	if child, ok := r.m.groups[name]; ok && r.pending[name] == nil {
		r.link(group, child, nrng)
		return
	}
	p := r.pending[name]
	if p == nil {
		p = &iniPending{state: "children", rng: nrng}
		r.pending[name] = p
		r.order = append(r.order, name)
	}
	if p.state == "vars" {
		// the group has only a [g:vars] so far: Ansible records it as declared
		r.link(group, r.m.groups[name], nrng)
		return
	}
	p.parents = append(p.parents, group)
	p.refs = append(p.refs, nrng)
}
