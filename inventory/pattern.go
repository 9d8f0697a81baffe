package inventory

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
)

// Host patterns follow Ansible's: terms separated by "," (or ":" when that is not part of
// an address or range), each a host or group name, a glob, or a ~regex; "&" intersects,
// "!" excludes, and a [subscript] picks hosts by position. Ansible applies all plain
// terms first, then the "&" terms, then the "!" terms, whatever order they are written in.
//
// Where Ansible silently selects nothing for a mistake, runbook reports it: an invalid
// regex, the removed [x-y] subscript form, a backwards [3:1] slice, an empty pattern.

type patternTerm struct {
	op      byte   // 0, '&' or '!'
	text    string // the term without its operator
	expr    string // the term without its subscript
	match   *regexp.Regexp
	special bool // a regex or glob, which also matches host names when a group matched
	sub     *subscript
}

type subscript struct {
	start, end int // end < 0: to the last host
	single     bool
}

var (
	reSubscript   = regexp.MustCompile(`^(.+)\[(?:(-?[0-9]+)|([0-9]*)([:-])([0-9]*))\]$`)
	reColonSplit  = regexp.MustCompile(`(?:[^` + pySpaceClass + `:\[\]]|\[[^\]]*\])+`)
	reGlobSpecial = regexp.MustCompile(`[.?*\[]`)
)

// splitPattern cuts a pattern into terms as Ansible does.
func splitPattern(pattern string) []string {
	var parts []string
	switch {
	case strings.Contains(pattern, ","):
		parts = strings.Split(pattern, ",")
	default:
		if _, _, ok := parseAddress(pattern, true); ok {
			parts = []string{pattern}
		} else {
			parts = reColonSplit.FindAllString(pattern, -1)
		}
	}
	var out []string
	for _, p := range parts {
		if p = pyStrip(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// ValidatePattern reports whether a host pattern is well formed, without an inventory.
func ValidatePattern(pattern string) error {
	_, err := parsePattern(pattern)
	return err
}

func parsePattern(pattern string) ([]patternTerm, error) {
	parts := splitPattern(pattern)
	if len(parts) == 0 {
		return nil, fmt.Errorf("empty host pattern: name a host, a group, or \"all\"")
	}
	terms := make([]patternTerm, 0, len(parts))
	for _, p := range parts {
		t, err := parseTerm(p)
		if err != nil {
			return nil, err
		}
		terms = append(terms, t)
	}
	return terms, nil
}

func parseTerm(p string) (patternTerm, error) {
	t := patternTerm{text: p}
	if p[0] == '&' || p[0] == '!' {
		t.op, t.text = p[0], p[1:]
	}
	if t.text == "" {
		return t, fmt.Errorf("invalid host pattern %q: %q must be followed by a host, group or pattern", p, string(t.op))
	}
	t.expr = t.text
	if t.text[0] == '~' {
		re, err := regexp.Compile(`^(?:` + t.text[1:] + `)`)
		if err != nil {
			msg := strings.TrimPrefix(err.Error(), "error parsing regexp: ")
			msg = strings.NewReplacer("\n", `\n`, "\r", `\r`).Replace(msg)
			return t, fmt.Errorf("invalid regular expression in host pattern %q: %s", p, msg)
		}
		t.match, t.special = re, true
		return t, nil
	}
	if m := reSubscript.FindStringSubmatch(t.text); m != nil {
		t.expr = m[1]
		sub := &subscript{end: -1}
		switch {
		case m[2] != "":
			n, err := strconv.Atoi(m[2])
			if err != nil {
				return t, fmt.Errorf("invalid subscript in host pattern %q: %s is too large", p, m[2])
			}
			sub.start, sub.single = n, true
		case m[4] == "-":
			return t, fmt.Errorf("invalid subscript in host pattern %q: the [%s-%s] form was removed from Ansible; write [%s:%s] for positions %s to %s, or use ~ and a regular expression for a character class",
				p, m[3], m[5], m[3], m[5], orZero(m[3]), orLast(m[5]))
		default:
			var err error
			if m[3] != "" {
				if sub.start, err = strconv.Atoi(m[3]); err != nil {
					return t, fmt.Errorf("invalid subscript in host pattern %q: %s is too large", p, m[3])
				}
			}
			if m[5] != "" {
				if sub.end, err = strconv.Atoi(m[5]); err != nil {
					return t, fmt.Errorf("invalid subscript in host pattern %q: %s is too large", p, m[5])
				}
				if sub.start > sub.end {
					return t, fmt.Errorf("invalid subscript in host pattern %q: [%d:%d] runs backwards; write [%d:%d]", p, sub.start, sub.end, sub.end, sub.start)
				}
			}
		}
		t.sub = sub
	}
	re, err := globRegexp(t.expr)
	if err != nil {
		return t, fmt.Errorf("invalid host pattern %q: %v", p, err)
	}
	t.match = re
	t.special = reGlobSpecial.MatchString(t.expr)
	return t, nil
}

func orZero(s string) string {
	if s == "" {
		return "0"
	}
	return s
}

func orLast(s string) string {
	if s == "" {
		return "the last"
	}
	return s
}

// globRegexp translates a shell glob as Python's fnmatch does: * ? [set] [!set], and a
// "[" without its "]" is literal.
func globRegexp(pat string) (*regexp.Regexp, error) {
	var b strings.Builder
	b.WriteString(`^(?s:`)
	rs := []rune(pat)
	n := len(rs)
	for i := 0; i < n; {
		c := rs[i]
		i++
		switch c {
		case '*':
			for i < n && rs[i] == '*' {
				i++
			}
			b.WriteString(`.*`)
		case '?':
			b.WriteString(`.`)
		case '[':
			j := i
			if j < n && rs[j] == '!' {
				j++
			}
			if j < n && rs[j] == ']' {
				j++
			}
			for j < n && rs[j] != ']' {
				j++
			}
			if j >= n {
				b.WriteString(`\[`)
				continue
			}
			class, err := globClass(rs[i:j])
			if err != nil {
				return nil, err
			}
			b.WriteString(class)
			i = j + 1
		default:
			b.WriteString(regexp.QuoteMeta(string(c)))
		}
	}
	b.WriteString(`)$`)
	return regexp.Compile(b.String())
}

// globClass turns the inside of a glob [set] into a regexp class; ranges that run
// backwards are dropped, as fnmatch drops them.
func globClass(set []rune) (string, error) {
	if len(set) == 0 {
		return `[^\x00-\x{10FFFF}]`, nil
	}
	negate := set[0] == '!'
	body := set
	if negate {
		body = set[1:]
	}
	if len(body) == 0 {
		return `.`, nil
	}
	// split into chunks at the hyphens that make ranges, as fnmatch does
	var chunks [][]rune
	start := 0
	k := 1
	for {
		idx := -1
		for x := k; x < len(body); x++ {
			if body[x] == '-' {
				idx = x
				break
			}
		}
		if idx < 0 {
			break
		}
		chunks = append(chunks, body[start:idx])
		start = idx + 1
		k = idx + 3
	}
	if rest := body[start:]; len(rest) > 0 {
		chunks = append(chunks, rest)
	} else if len(chunks) > 0 {
		chunks[len(chunks)-1] = append(append([]rune(nil), chunks[len(chunks)-1]...), '-')
	} else {
		chunks = append(chunks, []rune{'-'})
	}
	for x := len(chunks) - 1; x > 0; x-- {
		prev, cur := chunks[x-1], chunks[x]
		if len(prev) == 0 || len(cur) == 0 {
			return "", fmt.Errorf("malformed character set [%s]", string(set))
		}
		if prev[len(prev)-1] > cur[0] {
			chunks[x-1] = append(append([]rune(nil), prev[:len(prev)-1]...), cur[1:]...)
			chunks = append(chunks[:x], chunks[x+1:]...)
		}
	}
	var b strings.Builder
	b.WriteByte('[')
	if negate {
		b.WriteByte('^')
	}
	empty := true
	for x, ch := range chunks {
		if x > 0 {
			if len(chunks[x-1]) == 0 || len(ch) == 0 {
				return "", fmt.Errorf("malformed character set [%s]", string(set))
			}
			b.WriteByte('-')
		}
		for _, r := range ch {
			fmt.Fprintf(&b, `\x{%x}`, r)
			empty = false
		}
	}
	b.WriteByte(']')
	if empty {
		if negate {
			return `.`, nil
		}
		return `[^\x00-\x{10FFFF}]`, nil
	}
	return b.String(), nil
}

// Select returns the hosts a pattern names, in Ansible's order, without duplicates. A
// pattern that names nothing returns no hosts and no error (see Unmatched); a malformed
// one returns an error.
func (inv *Inventory) Select(pattern string) ([]*Host, error) {
	terms, err := parsePattern(pattern)
	if err != nil {
		return nil, err
	}
	// plain terms first, then intersections, then exclusions
	var ordered []patternTerm
	for _, op := range []byte{0, '&', '!'} {
		for _, t := range terms {
			if t.op == op {
				ordered = append(ordered, t)
			}
		}
	}
	if ordered[0].op != 0 {
		all, _ := parseTerm("all")
		ordered = append([]patternTerm{all}, ordered...)
	}
	var hosts []*hnode
	for _, t := range ordered {
		if t.op == 0 {
			if h, ok := inv.m.hosts[t.text]; ok {
				hosts = append(hosts, h)
				continue
			}
		}
		that, _ := inv.matchTerm(t)
		switch t.op {
		case '!':
			set := toSet(that)
			hosts = filterHosts(hosts, func(h *hnode) bool { return !set[h] })
		case '&':
			set := toSet(that)
			hosts = filterHosts(hosts, func(h *hnode) bool { return set[h] })
		default:
			existing := toSet(hosts)
			for _, h := range that {
				if !existing[h] {
					hosts = append(hosts, h)
				}
			}
		}
	}
	out := make([]*Host, 0, len(hosts))
	seen := map[*hnode]bool{}
	for _, h := range hosts {
		if !seen[h] {
			seen[h] = true
			out = append(out, inv.byNode[h])
		}
	}
	return out, nil
}

// Unmatched returns the terms of a pattern that name no host and no group, which
// Ansible reports as "Could not match supplied host pattern". A caller can warn about
// them; they are often typos.
func (inv *Inventory) Unmatched(pattern string) ([]string, error) {
	terms, err := parsePattern(pattern)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, t := range terms {
		if _, ok := inv.m.hosts[t.text]; ok && t.op == 0 {
			continue
		}
		whole := t
		whole.sub = nil
		if hosts, groups := inv.matchTerm(whole); len(hosts) == 0 && groups == 0 && t.expr != "all" {
			out = append(out, t.text)
		}
	}
	return out, nil
}

// matchTerm returns the hosts one term names (before its operator applies) and how many
// groups it matched.
func (inv *Inventory) matchTerm(t patternTerm) ([]*hnode, int) {
	var hosts []*hnode
	groups := 0
	for _, g := range inv.m.gorder {
		if t.match.MatchString(g.name) {
			groups++
			hosts = append(hosts, g.allHosts()...)
		}
	}
	if groups == 0 || t.special {
		for _, h := range inv.m.horder {
			if t.match.MatchString(h.name) {
				hosts = append(hosts, h)
			}
		}
	}
	if t.sub != nil && len(hosts) > 0 {
		s := t.sub
		switch {
		case s.single:
			i := s.start
			if i < 0 {
				i += len(hosts)
			}
			if i < 0 || i >= len(hosts) {
				return nil, groups
			}
			hosts = hosts[i : i+1]
		default:
			end := s.end
			if end < 0 || end >= len(hosts) {
				end = len(hosts) - 1
			}
			if s.start > end {
				return nil, groups
			}
			hosts = hosts[s.start : end+1]
		}
	}
	return hosts, groups
}

func toSet(hs []*hnode) map[*hnode]bool {
	m := make(map[*hnode]bool, len(hs))
	for _, h := range hs {
		m[h] = true
	}
	return m
}

func filterHosts(hs []*hnode, keep func(*hnode) bool) []*hnode {
	out := hs[:0:0]
	for _, h := range hs {
		if keep(h) {
			out = append(out, h)
		}
	}
	return out
}
