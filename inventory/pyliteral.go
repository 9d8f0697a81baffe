package inventory

import (
	"errors"
	"math"
	"math/big"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Ansible's INI reader splits host lines with Python's shlex (POSIX mode, # comments) and
// types every value with ast.literal_eval, keeping the text when that fails. The two
// functions here reproduce both closely enough that the same file gives the same values.

type shToken struct {
	text       string
	start, end int // byte offsets in the line, end exclusive
}

var errNoClosingQuote = errors.New("no closing quotation")
var errNoEscapedChar = errors.New("no escaped character")

// shlexSplit splits a line like Python's shlex.split(line, comments=True).
func shlexSplit(line string) ([]shToken, error) {
	var toks []shToken
	i := 0
	n := len(line)
	isSpace := func(c byte) bool { return c == ' ' || c == '\t' || c == '\r' || c == '\n' }
	for {
		for i < n && isSpace(line[i]) {
			i++
		}
		if i >= n || line[i] == '#' {
			return toks, nil
		}
		start := i
		var b strings.Builder
	word:
		for i < n {
			c := line[i]
			switch {
			case isSpace(c):
				break word
			case c == '#':
				// a comment ends the word and the line
				toks = append(toks, shToken{b.String(), start, i})
				return toks, nil
			case c == '\\':
				if i+1 >= n {
					return nil, errNoEscapedChar
				}
				_, sz := utf8.DecodeRuneInString(line[i+1:])
				b.WriteString(line[i+1 : i+1+sz])
				i += 1 + sz
			case c == '\'' || c == '"':
				q := c
				i++
				closed := false
				for i < n {
					d := line[i]
					if d == q {
						i++
						closed = true
						break
					}
					if q == '"' && d == '\\' {
						if i+1 >= n {
							return nil, errNoClosingQuote
						}
						e := line[i+1]
						// inside double quotes only \" and \\ are escapes
						if e != '"' && e != '\\' {
							b.WriteByte('\\')
						}
						_, sz := utf8.DecodeRuneInString(line[i+1:])
						b.WriteString(line[i+1 : i+1+sz])
						i += 1 + sz
						continue
					}
					b.WriteByte(d)
					i++
				}
				if !closed {
					return nil, errNoClosingQuote
				}
			default:
				b.WriteByte(c)
				i++
			}
		}
		toks = append(toks, shToken{b.String(), start, i})
	}
}

// pyLiteral evaluates s as ast.literal_eval does for the literals that can be JSON:
// numbers, strings, True/False/None, lists, tuples, sets and dicts. ok is false for
// anything else, and the caller keeps the text.
func pyLiteral(s string) (v any, ok bool) {
	// literal_eval strips leading blanks and tabs only
	s = strings.TrimLeft(s, " \t")
	p := &pyParser{s: s}
	defer func() {
		if r := recover(); r != nil {
			if _, isBail := r.(pyBail); !isBail {
				panic(r)
			}
			v, ok = nil, false
		}
	}()
	v = p.expr(0)
	p.skip()
	if p.i != len(p.s) {
		return nil, false
	}
	if b, isBytes := v.(pyBytes); isBytes {
		v = string(b)
	}
	return pyToJSON(v), true
}

type pyBail struct{}

type pyBytes string
type pyTuple []any
type pyComplex struct{}

type pyParser struct {
	s string
	i int
}

func (p *pyParser) fail() { panic(pyBail{}) }

// skip passes blanks and a trailing comment; a newline ends what literal_eval accepts
// outside brackets, and inside them the caller passes inBrackets.
func (p *pyParser) skip() {
	for p.i < len(p.s) {
		c := p.s[p.i]
		switch {
		case c == ' ' || c == '\t' || c == '\f':
			p.i++
		case c == '#':
			for p.i < len(p.s) && p.s[p.i] != '\n' && p.s[p.i] != '\r' {
				p.i++
			}
		case c == '\\' && p.i+1 < len(p.s) && p.s[p.i+1] == '\n':
			p.i += 2
		default:
			return
		}
	}
}

func (p *pyParser) skipAll() {
	for {
		p.skip()
		if p.i < len(p.s) && (p.s[p.i] == '\n' || p.s[p.i] == '\r') {
			p.i++
			continue
		}
		return
	}
}

func (p *pyParser) peek() byte {
	if p.i < len(p.s) {
		return p.s[p.i]
	}
	return 0
}

const maxPyDepth = 200

// expr parses one value; depth guards against stack exhaustion on hostile input, where
// Python itself gives up with a RecursionError (and Ansible keeps the text).
func (p *pyParser) expr(depth int) any {
	if depth > maxPyDepth {
		p.fail()
	}
	p.skip()
	c := p.peek()
	switch {
	case c == '-' || c == '+':
		p.i++
		p.skip()
		v := p.operand(depth + 1)
		switch x := v.(type) {
		case int64:
			if c == '-' {
				if x == math.MinInt64 {
					return new(big.Int).Neg(big.NewInt(x))
				}
				return -x
			}
			return x
		case *big.Int:
			if c == '-' {
				return new(big.Int).Neg(x)
			}
			return x
		case float64:
			if c == '-' {
				return -x
			}
			return x
		case bool:
			n := int64(0)
			if x {
				n = 1
			}
			if c == '-' {
				n = -n
			}
			return n
		case pyComplex:
			return x
		}
		p.fail()
	}
	v := p.atom(depth + 1)
	p.skip()
	// "1+2j" is a complex literal; Ansible cannot print those, so they stay text
	if c := p.peek(); c == '+' || c == '-' {
		if _, num := v.(pyComplex); num || isPyNumber(v) {
			p.i++
			p.skip()
			if _, isC := p.operand(depth + 1).(pyComplex); isC {
				return pyComplex{}
			}
		}
		p.fail()
	}
	return v
}

func isPyNumber(v any) bool {
	switch v.(type) {
	case int64, float64, *big.Int:
		return true
	}
	return false
}

// operand is what a unary sign may apply to: a number, possibly in parentheses.
func (p *pyParser) operand(depth int) any {
	if depth > maxPyDepth {
		p.fail()
	}
	p.skip()
	if p.peek() == '(' {
		p.i++
		p.skipAll()
		v := p.operand(depth + 1)
		p.skipAll()
		if p.peek() != ')' {
			p.fail()
		}
		p.i++
		return v
	}
	v := p.atom(depth + 1)
	switch v.(type) {
	case int64, float64, *big.Int, bool, pyComplex:
		return v
	}
	p.fail()
	return nil
}

func (p *pyParser) atom(depth int) any {
	if depth > maxPyDepth {
		p.fail()
	}
	p.skip()
	c := p.peek()
	switch {
	case c == '[':
		p.i++
		items, _ := p.items(']', depth)
		return items
	case c == '(':
		p.i++
		items, trailingComma := p.items(')', depth)
		if len(items) == 1 && !trailingComma {
			return items[0]
		}
		return pyTuple(items)
	case c == '{':
		p.i++
		return p.dictOrSet(depth)
	case c >= '0' && c <= '9' || c == '.' && p.i+1 < len(p.s) && p.s[p.i+1] >= '0' && p.s[p.i+1] <= '9':
		return p.number()
	case c == '"' || c == '\'':
		return p.strings("")
	case isIdentStart(c):
		j := p.i
		for j < len(p.s) && isIdentChar(p.s[j]) {
			j++
		}
		word := p.s[p.i:j]
		if j < len(p.s) && (p.s[j] == '"' || p.s[j] == '\'') && isStringPrefix(word) {
			p.i = j
			return p.strings(strings.ToLower(word))
		}
		if j < len(p.s) && p.s[j] >= 0x80 {
			p.fail() // a longer, non-ASCII identifier
		}
		p.i = j
		switch word {
		case "True":
			return true
		case "False":
			return false
		case "None":
			return nil
		case "set":
			// set() is the one call literal_eval allows
			p.skip()
			if p.peek() == '(' {
				p.i++
				p.skipAll()
				if p.peek() == ')' {
					p.i++
					return pyTuple{}
				}
			}
		}
	}
	p.fail()
	return nil
}

func isIdentStart(c byte) bool {
	return c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
}

func isIdentChar(c byte) bool { return isIdentStart(c) || c >= '0' && c <= '9' }

func isStringPrefix(w string) bool {
	switch strings.ToLower(w) {
	case "r", "u", "b", "br", "rb":
		return true
	}
	return false
}

func (p *pyParser) items(closer byte, depth int) (out []any, trailingComma bool) {
	out = []any{}
	for {
		p.skipAll()
		if p.peek() == closer {
			p.i++
			return out, trailingComma
		}
		out = append(out, p.expr(depth+1))
		trailingComma = false
		p.skipAll()
		switch p.peek() {
		case ',':
			p.i++
			trailingComma = true
		case closer:
		default:
			p.fail()
		}
		if trailingComma && len(out) == 0 {
			p.fail()
		}
	}
}

func (p *pyParser) dictOrSet(depth int) any {
	p.skipAll()
	if p.peek() == '}' {
		p.i++
		return map[string]any{}
	}
	first := p.expr(depth + 1)
	p.skipAll()
	if p.peek() != ':' {
		// a set; JSON has no sets, a list is the closest
		out := []any{first}
		for {
			p.skipAll()
			switch p.peek() {
			case '}':
				p.i++
				return out
			case ',':
				p.i++
				p.skipAll()
				if p.peek() == '}' {
					p.i++
					return out
				}
				out = append(out, p.expr(depth+1))
			default:
				p.fail()
			}
		}
	}
	m := map[string]any{}
	key := first
	for {
		p.i++ // the colon
		val := p.expr(depth + 1)
		ks, ok := pyKeyString(key)
		if !ok {
			p.fail()
		}
		m[ks] = val
		p.skipAll()
		switch p.peek() {
		case '}':
			p.i++
			return m
		case ',':
			p.i++
			p.skipAll()
			if p.peek() == '}' {
				p.i++
				return m
			}
			key = p.expr(depth + 1)
			p.skipAll()
			if p.peek() != ':' {
				p.fail()
			}
		default:
			p.fail()
		}
	}
}

// pyKeyString names a dict key the way Python's json module writes it.
func pyKeyString(k any) (string, bool) {
	switch x := k.(type) {
	case string:
		return x, true
	case pyBytes:
		return string(x), true
	case int64:
		return strconv.FormatInt(x, 10), true
	case *big.Int:
		return x.String(), true
	case float64:
		return pyFloatRepr(x), true
	case bool:
		if x {
			return "true", true
		}
		return "false", true
	case nil:
		return "null", true
	}
	return "", false
}

func (p *pyParser) number() any {
	s := p.s
	start := p.i
	j := p.i
	digits := func(ok func(byte) bool) bool {
		// digits with single underscores between them
		if j >= len(s) || !ok(s[j]) {
			return false
		}
		for j < len(s) {
			if ok(s[j]) {
				j++
				continue
			}
			if s[j] == '_' && j+1 < len(s) && ok(s[j+1]) {
				j += 2
				continue
			}
			break
		}
		return true
	}
	dec := func(c byte) bool { return c >= '0' && c <= '9' }
	if s[j] == '0' && j+1 < len(s) && strings.IndexByte("xXoObB", s[j+1]) >= 0 {
		base := map[byte]int{'x': 16, 'o': 8, 'b': 2}[s[j+1]|0x20]
		j += 2
		if j < len(s) && s[j] == '_' {
			j++
		}
		ok := func(c byte) bool {
			v := strings.IndexByte("0123456789abcdef", c|0x20)
			return v >= 0 && v < base && (c >= '0' && c <= '9' || base == 16)
		}
		if !digits(ok) {
			p.fail()
		}
		p.i = j
		p.noIdentAfter()
		n, okN := new(big.Int).SetString(strings.ReplaceAll(s[start+2:j], "_", ""), base)
		if !okN {
			p.fail()
		}
		return pyIntValue(n)
	}
	isFloat := false
	if s[j] != '.' {
		digits(dec)
	}
	if j < len(s) && s[j] == '.' {
		isFloat = true
		j++
		digits(dec)
	}
	if j < len(s) && (s[j] == 'e' || s[j] == 'E') {
		k := j + 1
		if k < len(s) && (s[k] == '+' || s[k] == '-') {
			k++
		}
		if k < len(s) && dec(s[k]) {
			j = k
			digits(dec)
			isFloat = true
		}
	}
	if j < len(s) && (s[j] == 'j' || s[j] == 'J') {
		p.i = j + 1
		p.noIdentAfter()
		return pyComplex{}
	}
	p.i = j
	p.noIdentAfter()
	text := strings.ReplaceAll(s[start:j], "_", "")
	if isFloat {
		f, err := strconv.ParseFloat(text, 64)
		if err != nil && !errors.Is(err, strconv.ErrRange) {
			p.fail()
		}
		return f
	}
	// Python rejects "01"; "00" is zero
	if len(text) > 1 && text[0] == '0' && strings.Trim(text, "0") != "" {
		p.fail()
	}
	// Python refuses to read integers longer than 4300 digits
	if len(text) > 4300 {
		p.fail()
	}
	n, ok := new(big.Int).SetString(text, 10)
	if !ok {
		p.fail()
	}
	return pyIntValue(n)
}

func (p *pyParser) noIdentAfter() {
	if p.i < len(p.s) && (isIdentChar(p.s[p.i]) || p.s[p.i] >= 0x80) {
		p.fail()
	}
}

func pyIntValue(n *big.Int) any {
	if n.IsInt64() {
		return n.Int64()
	}
	return n
}

// strings reads one or more adjacent string literals, which Python joins.
func (p *pyParser) strings(prefix string) any {
	var out strings.Builder
	isBytes := strings.Contains(prefix, "b")
	first := true
	for {
		raw := strings.Contains(prefix, "r")
		b := strings.Contains(prefix, "b")
		if !first && b != isBytes {
			p.fail() // Python cannot join bytes and str
		}
		first = false
		out.WriteString(p.stringLit(raw, b))
		p.skip()
		j := p.i
		for j < len(p.s) && isIdentChar(p.s[j]) {
			j++
		}
		if j < len(p.s) && (p.s[j] == '"' || p.s[j] == '\'') && (j == p.i || isStringPrefix(p.s[p.i:j])) {
			prefix = strings.ToLower(p.s[p.i:j])
			p.i = j
			continue
		}
		break
	}
	if isBytes {
		return pyBytes(out.String())
	}
	return out.String()
}

func (p *pyParser) stringLit(raw, isBytes bool) string {
	s := p.s
	q := s[p.i]
	triple := p.i+2 < len(s) && s[p.i+1] == q && s[p.i+2] == q
	if triple {
		p.i += 3
	} else {
		p.i++
	}
	var b strings.Builder
	for {
		if p.i >= len(s) {
			p.fail()
		}
		c := s[p.i]
		if c == q {
			if !triple {
				p.i++
				return b.String()
			}
			if p.i+2 < len(s) && s[p.i+1] == q && s[p.i+2] == q {
				p.i += 3
				return b.String()
			}
		}
		if (c == '\n' || c == '\r') && !triple {
			p.fail()
		}
		if isBytes && c >= 0x80 {
			p.fail()
		}
		if c != '\\' {
			b.WriteByte(c)
			p.i++
			continue
		}
		if p.i+1 >= len(s) {
			p.fail()
		}
		e := s[p.i+1]
		if raw {
			// a raw string keeps the backslash, but it still protects the next quote
			b.WriteByte('\\')
			b.WriteByte(e)
			p.i += 2
			continue
		}
		p.i += 2
		switch e {
		case '\n':
		case '\\', '\'', '"':
			b.WriteByte(e)
		case 'a':
			b.WriteByte('\a')
		case 'b':
			b.WriteByte('\b')
		case 'f':
			b.WriteByte('\f')
		case 'n':
			b.WriteByte('\n')
		case 'r':
			b.WriteByte('\r')
		case 't':
			b.WriteByte('\t')
		case 'v':
			b.WriteByte('\v')
		case '0', '1', '2', '3', '4', '5', '6', '7':
			v := int(e - '0')
			for k := 0; k < 2 && p.i < len(s) && s[p.i] >= '0' && s[p.i] <= '7'; k++ {
				v = v*8 + int(s[p.i]-'0')
				p.i++
			}
			p.writeCode(&b, v, isBytes)
		case 'x':
			p.writeCode(&b, p.hex(2), isBytes)
		case 'u', 'U', 'N':
			if isBytes {
				b.WriteByte('\\')
				b.WriteByte(e)
				continue
			}
			if e == 'N' {
				p.fail() // named characters need Unicode's name table
			}
			width := 4
			if e == 'U' {
				width = 8
			}
			v := p.hex(width)
			if v > 0x10FFFF {
				p.fail()
			}
			b.WriteRune(rune(v))
		default:
			b.WriteByte('\\')
			b.WriteByte(e)
		}
	}
}

func (p *pyParser) writeCode(b *strings.Builder, v int, isBytes bool) {
	if isBytes {
		if v > 0xff {
			p.fail()
		}
		b.WriteByte(byte(v))
		return
	}
	b.WriteRune(rune(v))
}

func (p *pyParser) hex(width int) int {
	if p.i+width > len(p.s) {
		p.fail()
	}
	v, err := strconv.ParseUint(p.s[p.i:p.i+width], 16, 32)
	if err != nil || strings.ContainsAny(p.s[p.i:p.i+width], "+-_") {
		p.fail()
	}
	p.i += width
	return int(v)
}

// pyToJSON turns parsed Python values into the JSON-shaped values the package uses:
// tuples and sets become lists, bytes become text, big integers json.Number.
func pyToJSON(v any) any {
	switch x := v.(type) {
	case pyTuple:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = pyToJSON(e)
		}
		return out
	case []any:
		for i, e := range x {
			x[i] = pyToJSON(e)
		}
		return x
	case map[string]any:
		for k, e := range x {
			x[k] = pyToJSON(e)
		}
		return x
	case pyBytes:
		return strings.ToValidUTF8(string(x), "\uFFFD")
	case *big.Int:
		return bigNumber(x)
	case pyComplex:
		panic(pyBail{})
	}
	return v
}
