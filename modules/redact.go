package modules

import (
	"fmt"
	"slices"
	"sort"
	"strings"
	"unicode/utf8"

	"github.com/zclconf/go-cty/cty"
)

// Redacted is what replaces a sensitive value in any output.
const Redacted = "(sensitive value)"

// minSecret is the shortest secret that is redacted: replacing shorter ones would mangle
// ordinary text while hiding little.
const minSecret = 4

// Redactor replaces secrets in text. It is the one place where output is both redacted
// and shortened, in that order: a secret is replaced whole before any cut, so no cut can
// leave a part of it (its head before a cut, or its tail after one) in what is shown. The
// nil Redactor has no secrets; its methods still cut on character boundaries.
//
// Every byte of the text that belongs to an occurrence of a secret is hidden: occurrences
// that overlap (one secret's tail is another's head) form one region, replaced by one
// Redacted. The secrets are an Aho–Corasick automaton, built once, so a text is read once,
// however many secrets there are and whatever they have in common with the text. A
// Redactor is safe for concurrent use.
type Redactor struct {
	longest int
	// root is the state after one byte read at the start: the node of that byte, 0 (the
	// root) when no secret starts with it.
	root [256]int32
	// nodes are the automaton's states, numbered breadth first, so that the children of
	// a node are consecutive; label is the byte that leads to each.
	nodes []acNode
	label []byte
	// rows are the children of the nodes that have many, by byte (0 for none), so that
	// a byte read in a node where many secrets branch (hex tokens) costs one look-up.
	// A trie has fewer such nodes than an eighth of its secrets.
	rows [][256]int32
}

type acNode struct {
	first, n int32 // children: nodes[first : first+n], in byte order
	fail     int32 // the longest proper suffix of this node's text that is a node
	match    int32 // the length of the longest secret that ends this node's text, 0 if none
	row      int32 // the node's row in rows, -1 when it has none
}

// denseKids is how many children a node must have to get a row.
const denseKids = 8

// NewRedactor returns a Redactor for the secrets, nil when none is worth redacting: those
// shorter than 4 bytes are left alone, and so are those that Redacted itself holds, which
// would otherwise be replaced again inside every placeholder each time a text is redacted.
func NewRedactor(secrets []string) *Redactor {
	var keep []string
	for _, s := range secrets {
		if len(s) >= minSecret && !strings.Contains(Redacted, s) {
			keep = append(keep, s)
		}
	}
	if len(keep) == 0 {
		return nil
	}
	keep = slices.Clone(keep)
	slices.Sort(keep)
	keep = slices.Compact(keep)

	// The trie, in the order the sorted secrets build it: a node's children are added in
	// byte order, and a secret shares with the one before it exactly their common prefix.
	size := 1
	for _, s := range keep {
		size += len(s)
	}
	kid := make([]int32, 0, size) // first child, 0 when none (the root is nobody's child)
	last := make([]int32, 0, size)
	next := make([]int32, 0, size) // next sibling, 0 when none
	lab := make([]byte, 0, size)
	term := make([]int32, 0, size) // the length of the secret that ends here, 0 if none
	add := func(parent int32, c byte) int32 {
		id := int32(len(kid))
		kid, last, next = append(kid, 0), append(last, 0), append(next, 0)
		lab, term = append(lab, c), append(term, 0)
		if parent >= 0 {
			if kid[parent] == 0 {
				kid[parent] = id
			} else {
				next[last[parent]] = id
			}
			last[parent] = id
		}
		return id
	}
	add(-1, 0)
	path := []int32{0} // path[d] is the node of the previous secret's first d bytes
	prev := ""
	r := &Redactor{}
	for _, s := range keep {
		common := 0
		for common < len(prev) && prev[common] == s[common] {
			common++
		}
		path = path[:common+1]
		for d := common; d < len(s); d++ {
			path = append(path, add(path[d], s[d]))
		}
		term[path[len(s)]] = int32(len(s))
		prev = s
		r.longest = max(r.longest, len(s))
	}

	// Breadth first: number the nodes, and give each its failure link and match. A node's
	// failure link is shallower than it, so it is complete by the time the node is reached.
	r.nodes = make([]acNode, len(kid))
	r.label = make([]byte, len(kid))
	order := make([]int32, 1, len(kid)) // the trie's node at each new number
	for id := 0; id < len(order); id++ {
		first := int32(len(order))
		for k := kid[order[id]]; k != 0; k = next[k] {
			order = append(order, k)
		}
		nd := &r.nodes[id]
		nd.first, nd.n, nd.row = first, int32(len(order))-first, -1
		if id != 0 && nd.n > denseKids {
			nd.row = int32(len(r.rows))
			r.rows = append(r.rows, [256]int32{})
		}
		for v := first; v < int32(len(order)); v++ {
			c := lab[order[v]]
			r.label[v] = c
			if nd.row >= 0 {
				r.rows[nd.row][c] = v
			}
			fail := int32(0)
			if id == 0 {
				r.root[c] = v
			} else {
				fail = r.step(nd.fail, c)
			}
			m := term[order[v]]
			if m == 0 {
				m = r.nodes[fail].match
			}
			r.nodes[v].fail, r.nodes[v].match = fail, m
		}
	}
	return r
}

// step returns the state after reading c in state.
func (r *Redactor) step(state int32, c byte) int32 {
	for state != 0 {
		nd := &r.nodes[state]
		if nd.row >= 0 {
			if v := r.rows[nd.row][c]; v != 0 {
				return v
			}
		} else {
			for j, b := range r.label[nd.first : nd.first+nd.n] {
				if b == c {
					return nd.first + int32(j)
				}
			}
		}
		state = nd.fail
	}
	return r.root[c]
}

// Margin is how many bytes past a cut a bounded capture must keep so that Clip can
// recognise a secret that straddles the cut: the longest secret's length less one.
func (r *Redactor) Margin() int {
	if r == nil {
		return 0
	}
	return r.longest - 1
}

// Redact returns s with every secret replaced by Redacted.
func (r *Redactor) Redact(s string) string {
	out, _ := r.Clip(s, len(s))
	return out
}

// Clip returns s redacted and cut to the first n bytes of s, and how many bytes of s that
// is. A secret that starts before the cut is replaced whole, and so is every secret that
// overlaps it and also starts before the cut, so the result may cover a few bytes past n;
// otherwise the cut moves back to the start of a UTF-8 character it would split. A caller
// that holds only the start of a longer text must hold n+Margin() bytes of it, so that a
// secret straddling the cut is there to be recognised.
func (r *Redactor) Clip(s string, n int) (string, int) {
	n = max(0, min(n, len(s)))
	if r == nil {
		end := runeCut(s, n)
		return s[:end], end
	}
	// A secret that ends past stop starts at or after the cut: it is not shown anyway.
	stop := min(len(s), n+r.longest-1)
	var out []byte // nil until something is replaced
	copied := 0    // s[:copied] is accounted for in out
	// pending are the regions found that a later secret could still overlap: disjoint,
	// in order, each ending within the longest secret's length of where the scan is.
	var pending []region
	flush := func(g region) {
		if out == nil {
			out = make([]byte, 0, stop+len(Redacted))
		}
		out = append(out, s[copied:g.start]...)
		out = append(out, Redacted...)
		copied = g.end
	}
	state := int32(0)
	for i := 0; i < stop; i++ {
		if state == 0 {
			for i < stop && r.root[s[i]] == 0 {
				i++
			}
			if i == stop {
				break
			}
			state = r.root[s[i]]
		} else {
			state = r.step(state, s[i])
		}
		m := int(r.nodes[state].match)
		if m == 0 || i+1-m >= n {
			continue
		}
		// The longest secret that ends here; shorter ones that do lie inside it.
		g := region{i + 1 - m, i + 1}
		k := len(pending)
		for k > 0 && pending[k-1].end > g.start {
			k--
		}
		if k < len(pending) {
			g.start = min(g.start, pending[k].start)
		}
		pending = append(pending[:k], g)
		// What ends at least a secret's length before the next byte is final.
		for pending[0].end <= i+2-r.longest {
			flush(pending[0])
			pending = pending[1:]
		}
	}
	end := runeCut(s, n)
	if len(pending) > 0 {
		end = max(end, pending[len(pending)-1].end)
	}
	for _, g := range pending {
		flush(g)
	}
	if out == nil {
		return s[:end], end
	}
	out = append(out, s[copied:end]...)
	return string(out), end
}

// region is a span of a text that secrets cover: s[start:end].
type region struct{ start, end int }

// runeCut moves a cut at n back to the start of the UTF-8 character it would split; a cut
// between two characters, or among bytes that are not UTF-8, stays where it is.
func runeCut(s string, n int) int {
	if n >= len(s) || utf8.RuneStart(s[n]) {
		return n
	}
	for k := n - 1; k >= 0 && k > n-utf8.UTFMax; k-- {
		if utf8.RuneStart(s[k]) {
			if r, size := utf8.DecodeRuneInString(s[k:]); r != utf8.RuneError && k+size > n {
				return k
			}
			return n
		}
	}
	return n
}

// Capture keeps what a program writes to one stream, for a result: memory stays bounded
// while the program runs, and String shows at most the Env's output limit of it, redacted
// before it is cut, with a note saying how much was left out. Each stream needs its own
// Capture.
type Capture struct {
	limit int
	red   *Redactor
	buf   []byte
	total int64
}

// NewCapture returns a Capture for a program the module runs.
func (e *Env) NewCapture() *Capture {
	return &Capture{limit: e.Limit(), red: e.Redactor()}
}

// Write keeps the first bytes, up to the limit plus what a secret straddling the limit
// needs to be recognised, and counts the rest. It never fails: a program must not die of
// a full buffer.
func (c *Capture) Write(p []byte) (int, error) {
	c.total += int64(len(p))
	if room := c.limit + c.red.Margin() - len(c.buf); room > 0 {
		c.buf = append(c.buf, p[:min(room, len(p))]...)
	}
	return len(p), nil
}

// String returns the output as the result shows it.
func (c *Capture) String() string {
	s, kept := c.red.Clip(string(c.buf), c.limit)
	if dropped := c.total - int64(kept); dropped > 0 {
		s += fmt.Sprintf("\n[output truncated: %d more bytes not kept]\n", dropped)
	}
	return s
}

// Redact replaces every occurrence of each secret in the result's text (message, warnings,
// diff, data held as a map or as the cty object an executor returns) with Redacted. A
// result struct is not looked into here: the helper redacts its strings as Def.Value
// converts them, and the controller converts a controller half's data to a cty object
// before it redacts (engine/run). Modules already keep sensitive arguments out of their
// output; this is the net under them, e.g. for a command that echoes its stdin. Secrets
// shorter than 4 bytes are skipped, as NewRedactor says.
func (r *Result) Redact(secrets []string) {
	if r == nil {
		return
	}
	rep := NewRedactor(secrets)
	if rep == nil {
		return
	}
	r.Msg = rep.Redact(r.Msg)
	for i, w := range r.Warnings {
		r.Warnings[i] = rep.Redact(w)
	}
	if r.Diff != nil {
		r.Diff.Before = rep.Redact(r.Diff.Before)
		r.Diff.After = rep.Redact(r.Diff.After)
		r.Diff.BeforeHeader = rep.Redact(r.Diff.BeforeHeader)
		r.Diff.AfterHeader = rep.Redact(r.Diff.AfterHeader)
	}
	r.Transaction.Redact(rep)
	switch d := r.Data.(type) {
	case map[string]any:
		r.Data = redactAny(rep, d)
	case cty.Value:
		// data as an executor returns it, converted from what the helper sent
		if v, err := redactValue(rep, d); err == nil {
			r.Data = v
		}
	}
}

// redactValue replaces every secret in the strings of v, at any depth.
func redactValue(rep *Redactor, v cty.Value) (cty.Value, error) {
	if rep == nil {
		return v, nil
	}
	return cty.Transform(v, func(_ cty.Path, x cty.Value) (cty.Value, error) {
		if x.Type() == cty.String && x.IsKnown() && !x.IsNull() {
			return cty.StringVal(rep.Redact(x.AsString())).WithMarks(x.Marks()), nil
		}
		if x.Type().IsMapType() && x.IsKnown() && !x.IsNull() && x.LengthInt() > 0 {
			// A key is data too (a unit's name, a parameter's): it is redacted like a value.
			m, marks := map[string]cty.Value{}, x.Marks()
			x, _ = x.Unmark()
			elems := x.AsValueMap()
			keys := make([]string, 0, len(elems))
			for k := range elems {
				keys = append(keys, k)
			}
			sort.Strings(keys) // which of two colliding keys gets a suffix does not depend on map order
			for _, k := range keys {
				m[redactKey(rep, k, m)] = elems[k]
			}
			return cty.MapVal(m).WithMarks(marks), nil
		}
		return x, nil
	})
}

// redactKey is key redacted, made unique among the keys of m already taken: two keys that
// held secrets must not become one, losing a value.
func redactKey(rep *Redactor, key string, taken map[string]cty.Value) string {
	k := rep.Redact(key)
	if k == key {
		return k
	}
	for i, base := 2, k; ; i++ {
		if _, dup := taken[k]; !dup {
			return k
		}
		k = fmt.Sprintf("%s (%d)", base, i)
	}
}

func redactAny(rep *Redactor, v any) any {
	switch x := v.(type) {
	case string:
		return rep.Redact(x)
	case []any:
		for i := range x {
			x[i] = redactAny(rep, x[i])
		}
		return x
	case []string:
		for i := range x {
			x[i] = rep.Redact(x[i])
		}
		return x
	case map[string]any:
		out := make(map[string]any, len(x))
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		sort.Strings(keys) // which of two colliding keys gets the suffix does not depend on map order
		for _, k := range keys {
			rk := rep.Redact(k)
			for i, base := 2, rk; rk != k; i++ {
				if _, dup := out[rk]; !dup {
					break
				}
				rk = fmt.Sprintf("%s (%d)", base, i)
			}
			out[rk] = redactAny(rep, x[k])
		}
		return out
	}
	return v
}

// SecretStrings returns the string values found in the named top-level attributes of args
// (strings, and strings inside collections), for Redact.
func SecretStrings(args cty.Value, names []string) []string {
	if args.IsNull() || !args.IsKnown() || !(args.Type().IsObjectType() || args.Type().IsMapType()) {
		return nil
	}
	var out []string
	for _, n := range names {
		var v cty.Value
		if args.Type().IsObjectType() {
			if !args.Type().HasAttribute(n) {
				continue
			}
			v = args.GetAttr(n)
		} else {
			v = args.Index(cty.StringVal(n))
		}
		_ = cty.Walk(v, func(_ cty.Path, x cty.Value) (bool, error) {
			x, _ = x.Unmark()
			if x.IsKnown() && !x.IsNull() && x.Type() == cty.String {
				out = append(out, x.AsString())
			}
			return true, nil
		})
	}
	return out
}
