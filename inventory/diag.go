package inventory

import (
	"fmt"
	"sort"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/hashicorp/hcl/v2"
)

// srcFile turns byte offsets into hcl positions, so every format reports file:line:col.
type srcFile struct {
	name       string
	src        []byte
	lineStarts []int
}

func newSrcFile(name string, src []byte) *srcFile {
	f := &srcFile{name: name, src: src, lineStarts: []int{0}}
	for i, c := range src {
		if c == '\n' {
			f.lineStarts = append(f.lineStarts, i+1)
		}
	}
	return f
}

func (f *srcFile) pos(off int) hcl.Pos {
	if off < 0 {
		off = 0
	}
	if off > len(f.src) {
		off = len(f.src)
	}
	line := sort.Search(len(f.lineStarts), func(i int) bool { return f.lineStarts[i] > off }) - 1
	start := f.lineStarts[line]
	return hcl.Pos{Line: line + 1, Column: utf8.RuneCount(f.src[start:off]) + 1, Byte: off}
}

func (f *srcFile) rng(start, end int) hcl.Range {
	if end < start {
		end = start
	}
	return hcl.Range{Filename: f.name, Start: f.pos(start), End: f.pos(end)}
}

// lineRange is the range of a 1-based line, without its line break.
func (f *srcFile) lineRange(line int) hcl.Range {
	if line < 1 {
		line = 1
	}
	if line > len(f.lineStarts) {
		line = len(f.lineStarts)
	}
	start := f.lineStarts[line-1]
	end := len(f.src)
	if line < len(f.lineStarts) {
		end = f.lineStarts[line] - 1
	}
	for end > start && (f.src[end-1] == '\r' || f.src[end-1] == '\n') {
		end--
	}
	return f.rng(start, end)
}

func fileRange(name string) hcl.Range {
	return hcl.Range{Filename: name, Start: hcl.Pos{Line: 1, Column: 1}, End: hcl.Pos{Line: 1, Column: 1}}
}

func errorf(rng hcl.Range, summary, format string, args ...any) *hcl.Diagnostic {
	r := rng
	return &hcl.Diagnostic{Severity: hcl.DiagError, Summary: summary, Detail: fmt.Sprintf(format, args...), Subject: &r}
}

func warnf(rng hcl.Range, summary, format string, args ...any) *hcl.Diagnostic {
	r := rng
	return &hcl.Diagnostic{Severity: hcl.DiagWarning, Summary: summary, Detail: fmt.Sprintf(format, args...), Subject: &r}
}

// pyIsSpace is Python's str.isspace for one character; Ansible strips lines with it.
func pyIsSpace(r rune) bool {
	return unicode.IsSpace(r) || r >= 0x1c && r <= 0x1f
}

func pyStrip(s string) string { return strings.TrimFunc(s, pyIsSpace) }

// suggest returns the candidate closest to name, if it is close enough to be a likely typo.
func suggest(name string, candidates []string) string {
	best, bestD := "", 1<<30
	for _, c := range candidates {
		if d := levenshtein(name, c); d < bestD {
			best, bestD = c, d
		}
	}
	if best == "" {
		return ""
	}
	// one edit turns any short name into any other; only a case slip is a likely typo there
	if len([]rune(name)) < 4 {
		if strings.EqualFold(best, name) {
			return best
		}
		return ""
	}
	if bestD <= max(1, len(name)/3) {
		return best
	}
	return ""
}

func didYouMean(name string, candidates []string) string {
	if s := suggest(name, candidates); s != "" {
		return fmt.Sprintf(" Did you mean %q?", s)
	}
	return ""
}

func levenshtein(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	if len(ra) > 64 || len(rb) > 64 {
		return 1 << 30
	}
	prev := make([]int, len(rb)+1)
	cur := make([]int, len(rb)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(ra); i++ {
		cur[0] = i
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(rb)]
}

// quoteUnlessSecret quotes a line of an inventory for an error message, unless it names a
// secret (MentionsSecret): then the line may hold that secret's value, and the message says
// so instead.
func quoteUnlessSecret(line string) string {
	if MentionsSecret([]byte(line)) {
		return "a line that names a secret (not shown)"
	}
	return fmt.Sprintf("%q", line)
}

// reprUnlessSecret is pyRepr(v) for an error message, unless it names a secret.
func reprUnlessSecret(v any) string {
	s := pyRepr(v)
	if MentionsSecret([]byte(s)) {
		return "a value that names a secret (not shown)"
	}
	return s
}
