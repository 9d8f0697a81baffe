package modules

import (
	"fmt"
	"sort"
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
type Redactor struct {
	secrets []string // each at least minSecret bytes, longest first
	first   [256]bool
}

// NewRedactor returns a Redactor for the secrets, nil when none is long enough to redact.
func NewRedactor(secrets []string) *Redactor {
	r := &Redactor{}
	seen := map[string]bool{}
	for _, s := range secrets {
		if len(s) >= minSecret && !seen[s] {
			seen[s] = true
			r.secrets = append(r.secrets, s)
			r.first[s[0]] = true
		}
	}
	if len(r.secrets) == 0 {
		return nil
	}
	// Longest first, so a secret that contains another is hidden whole.
	sort.SliceStable(r.secrets, func(i, j int) bool { return len(r.secrets[i]) > len(r.secrets[j]) })
	return r
}

// Margin is how many bytes past a cut a bounded capture must keep so that Clip can
// recognise a secret that straddles the cut: the longest secret's length less one.
func (r *Redactor) Margin() int {
	if r == nil {
		return 0
	}
	return len(r.secrets[0]) - 1
}

// Redact returns s with every secret replaced by Redacted. Occurrences are replaced left
// to right without overlapping; where several secrets start at one place, the longest wins.
func (r *Redactor) Redact(s string) string {
	out, _ := r.Clip(s, len(s))
	return out
}

// Clip returns s redacted and cut to the first n bytes of s, and how many bytes of s that
// is. A secret that starts before the cut is replaced whole, so the result may cover a few
// bytes past n; otherwise the cut moves back to the start of a UTF-8 character it would
// split. A caller that holds only the start of a longer text must hold n+Margin() bytes of
// it, so that a secret straddling the cut is there to be recognised.
func (r *Redactor) Clip(s string, n int) (string, int) {
	n = max(0, min(n, len(s)))
	var out []byte // nil until something is replaced
	copied, i := 0, 0
	for i < n {
		if r == nil || !r.first[s[i]] {
			i++
			continue
		}
		m := r.match(s[i:])
		if m == 0 {
			i++
			continue
		}
		out = append(out, s[copied:i]...)
		out = append(out, Redacted...)
		i += m
		copied = i
	}
	end := i
	if i == n {
		end = max(runeCut(s, n), copied)
	}
	if out == nil {
		return s[:end], end
	}
	out = append(out, s[copied:end]...)
	return string(out), end
}

// match returns the length of the secret s starts with, 0 when none.
func (r *Redactor) match(s string) int {
	for _, x := range r.secrets {
		if len(s) >= len(x) && s[:len(x)] == x {
			return len(x)
		}
	}
	return 0
}

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
// diff, string data) with Redacted. Modules already keep sensitive arguments out of their
// output; this is the net under them, e.g. for a command that echoes its stdin. Secrets
// shorter than 4 bytes are skipped.
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
	for k, v := range r.Data {
		r.Data[k] = redactAny(rep, v)
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
		for k := range x {
			x[k] = redactAny(rep, x[k])
		}
		return x
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
