package inventory

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"math/big"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/hcl/v2"
	"go.yaml.in/yaml/v3"

	"github.com/runbook/runbook/inventory/vault"
)

// Ansible reads YAML with PyYAML, which types plain scalars by YAML 1.1 rules: yes/no/on/off
// are booleans, 017 is octal, 1:30 is 90, 1e3 is text. yaml.v3 follows YAML 1.2, so it
// is used for syntax and positions only, and scalars are typed here. Like Ansible, a file
// that is valid JSON is read as JSON first.

var (
	reYAMLBool  = regexp.MustCompile(`^(?:yes|Yes|YES|no|No|NO|true|True|TRUE|false|False|FALSE|on|On|ON|off|Off|OFF)$`)
	reYAMLFloat = regexp.MustCompile(`^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+][0-9]+)?|\.[0-9][0-9_]*(?:[eE][-+][0-9]+)?|[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+\.[0-9_]*|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$`)
	reYAMLInt   = regexp.MustCompile(`^(?:[-+]?0b[0-1_]+|[-+]?0[0-7_]+|[-+]?(?:0|[1-9][0-9_]*)|[-+]?0x[0-9a-fA-F_]+|[-+]?[1-9][0-9_]*(?::[0-5]?[0-9])+)$`)
	reYAMLNull  = regexp.MustCompile(`^(?:~|null|Null|NULL|)$`)
	reYAMLTime  = regexp.MustCompile(`^([0-9]{4})-([0-9]{1,2})-([0-9]{1,2})(?:(?:[Tt]|[ \t]+)([0-9]{1,2}):([0-9]{2}):([0-9]{2})(?:\.([0-9]*))?(?:[ \t]*(Z|([-+])([0-9]{1,2})(?::([0-9]{2}))?))?)?$`)
	reYAMLDate  = regexp.MustCompile(`^[0-9]{4}-[0-9]{2}-[0-9]{2}$`)
)

// yamlDoc is a parsed YAML or JSON file: its root node (nil for an empty file) and how
// its scalars are to be typed.
type yamlDoc struct {
	f    *srcFile
	root *yaml.Node
	json bool
	// budget bounds alias expansion, so "billion laughs" files fail instead of eating memory
	budget    int
	exhausted bool
	// vault decrypts !vault values; nil keeps them encrypted (see LoadOptions.Vault)
	vault *vault.Keyring
	// allSecret marks every string scalar as a secret: the file was encrypted whole
	allSecret bool
}

const yamlNodeBudget = 1 << 20

// parseYAMLDoc parses src as JSON if it is valid JSON, else as YAML.
func parseYAMLDoc(filename string, src []byte) (*yamlDoc, hcl.Diagnostics) {
	f := newSrcFile(filename, src)
	d := &yamlDoc{f: f, budget: yamlNodeBudget}
	if json.Valid(src) {
		d.json = true
		root, err := jsonNodes(f)
		if err != nil {
			return nil, hcl.Diagnostics{errorf(f.rng(0, 0), "Invalid JSON", "%s.", err)}
		}
		d.root = root
		return d, nil
	}
	dec := yaml.NewDecoder(bytes.NewReader(src))
	var root yaml.Node
	err := dec.Decode(&root)
	if errors.Is(err, io.EOF) {
		return d, nil
	}
	if err != nil {
		return nil, hcl.Diagnostics{yamlErrorDiag(f, err)}
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); err == nil {
		rng := f.rng(0, 0)
		if extra.Line > 0 {
			rng = nodeRange(f, &extra)
		}
		return nil, hcl.Diagnostics{errorf(rng, "Several YAML documents", "A YAML inventory or vars file holds one document; remove the second \"---\" or split the file.")}
	} else if !errors.Is(err, io.EOF) {
		return nil, hcl.Diagnostics{yamlErrorDiag(f, err)}
	}
	if root.Kind == yaml.DocumentNode && len(root.Content) == 1 {
		d.root = root.Content[0]
	}
	return d, nil
}

var reYAMLErrLine = regexp.MustCompile(`^yaml: (?:line (\d+): )?(.*)$`)

func yamlErrorDiag(f *srcFile, err error) *hcl.Diagnostic {
	msg := err.Error()
	line := 0
	if m := reYAMLErrLine.FindStringSubmatch(msg); m != nil {
		if m[1] != "" {
			line, _ = strconv.Atoi(m[1])
		}
		msg = m[2]
	}
	var te *yaml.TypeError
	if errors.As(err, &te) && len(te.Errors) > 0 {
		msg = te.Errors[0]
	}
	rng := f.rng(0, 0)
	if line > 0 {
		if strings.HasPrefix(msg, "did not find expected key") || strings.HasPrefix(msg, "did not find expected '-'") {
			// yaml.v3 names the line where the enclosing block starts; the mistake is
			// the first line below it that fits no open indentation level
			line = misindentedLine(f, line)
		}
		rng = f.lineRange(line)
	}
	detail := "The YAML parser says: " + msg + "."
	if strings.Contains(msg, "mapping values are not allowed") || strings.Contains(msg, "did not find expected key") ||
		strings.Contains(msg, "block mapping") || strings.Contains(msg, "indentation") {
		detail += " Check the indentation: keys of one mapping must line up, and a value on its own line is indented deeper than its key."
	}
	if strings.Contains(msg, "found character that cannot start any token") {
		detail += " YAML does not allow tabs for indentation."
	}
	return errorf(rng, "Invalid YAML", "%s", detail)
}

// misindentedLine finds, from the line where a block starts, the first line whose
// indentation matches none of the blocks still open; it returns start if there is none.
func misindentedLine(f *srcFile, start int) int {
	var stack []int
	for line := start; line <= len(f.lineStarts); line++ {
		r := f.lineRange(line)
		text := string(f.src[r.Start.Byte:r.End.Byte])
		trimmed := strings.TrimLeft(text, " ")
		if trimmed == "" || strings.HasPrefix(trimmed, "#") {
			continue
		}
		indent := len(text) - len(trimmed)
		if strings.HasPrefix(trimmed, "- ") || trimmed == "-" {
			// a sequence entry may sit at its parent key's indentation
			indent++
		}
		popped := false
		for len(stack) > 0 && stack[len(stack)-1] > indent {
			stack = stack[:len(stack)-1]
			popped = true
		}
		if popped && (len(stack) == 0 || stack[len(stack)-1] != indent) {
			// a dedent to a column where no block is open
			return line
		}
		if len(stack) == 0 || stack[len(stack)-1] < indent {
			stack = append(stack, indent)
		}
	}
	return start
}

func nodeRange(f *srcFile, n *yaml.Node) hcl.Range {
	if n == nil || n.Line == 0 {
		return f.rng(0, 0)
	}
	line := n.Line
	if line > len(f.lineStarts) {
		line = len(f.lineStarts)
	}
	start := f.lineStarts[line-1]
	// columns are counted in characters; walk to the byte offset
	off := start
	for col := 1; col < n.Column && off < len(f.src) && f.src[off] != '\n'; col++ {
		_, sz := decodeRune(f.src[off:])
		off += sz
	}
	end := off
	if n.Kind == yaml.ScalarNode && n.Style&(yaml.LiteralStyle|yaml.FoldedStyle) == 0 {
		// a scalar on one line: cover its text as written
		lineEnd := bytes.IndexByte(f.src[off:], '\n')
		if lineEnd < 0 {
			lineEnd = len(f.src) - off
		}
		width := len(n.Value)
		if n.Style&(yaml.DoubleQuotedStyle|yaml.SingleQuotedStyle) != 0 {
			width += 2
		}
		end = off + min(width, lineEnd)
	} else {
		lineEnd := bytes.IndexByte(f.src[off:], '\n')
		if lineEnd < 0 {
			lineEnd = len(f.src) - off
		}
		end = off + lineEnd
		for end > off && (f.src[end-1] == '\r' || f.src[end-1] == ' ') {
			end--
		}
	}
	return f.rng(off, end)
}

func decodeRune(b []byte) (rune, int) {
	if len(b) == 0 {
		return 0, 0
	}
	r, sz := rune(b[0]), 1
	if b[0] >= 0x80 {
		rr := []rune(string(b[:min(4, len(b))]))
		if len(rr) > 0 {
			r = rr[0]
			sz = len(string(r))
			if r == '\uFFFD' {
				sz = 1
			}
		}
	}
	return r, sz
}

// tooDeep reports, once per document, a value that nests or expands beyond reason;
// after that the document has failed and further values are dropped quietly.
func (d *yamlDoc) tooDeep(n *yaml.Node) hcl.Diagnostics {
	if d.exhausted {
		return nil
	}
	d.exhausted = true
	return hcl.Diagnostics{errorf(nodeRange(d.f, n), "YAML too deep", "This value nests or expands aliases beyond what an inventory needs; it may be an alias loop.")}
}

// resolve follows an alias to the node it names.
func resolve(n *yaml.Node) *yaml.Node {
	for i := 0; n != nil && n.Kind == yaml.AliasNode && i < 100; i++ {
		n = n.Alias
	}
	return n
}

// value converts a node into a Go value with Ansible's typing.
func (d *yamlDoc) value(n *yaml.Node) (any, hcl.Diagnostics) {
	return d.valueDepth(n, 0)
}

func (d *yamlDoc) valueDepth(n *yaml.Node, depth int) (any, hcl.Diagnostics) {
	d.budget--
	if d.budget < 0 || depth > 500 {
		return nil, d.tooDeep(n)
	}
	n = resolve(n)
	if n == nil {
		return nil, nil
	}
	switch n.Kind {
	case yaml.DocumentNode:
		if len(n.Content) == 0 {
			return nil, nil
		}
		return d.valueDepth(n.Content[0], depth+1)
	case yaml.SequenceNode:
		if n.Tag == "!!set" || n.Tag == "!!omap" || n.Tag == "!!pairs" {
			return nil, hcl.Diagnostics{errorf(nodeRange(d.f, n), "Unsupported YAML tag", "The tag %s is not supported in inventories.", n.Tag)}
		}
		out := make([]any, 0, len(n.Content))
		var diags hcl.Diagnostics
		for _, c := range n.Content {
			v, ds := d.valueDepth(c, depth+1)
			diags = append(diags, ds...)
			out = append(out, v)
		}
		return out, diags
	case yaml.MappingNode:
		m := map[string]any{}
		var diags hcl.Diagnostics
		mds := d.mapping(n, depth, func(k string, kn, vn *yaml.Node) {
			v, ds := d.valueDepth(vn, depth+1)
			diags = append(diags, ds...)
			m[k] = v
		})
		diags = append(diags, mds...)
		return m, diags
	case yaml.ScalarNode:
		return d.scalar(n)
	}
	return nil, nil
}

// mapping walks the entries of a mapping in order, with "<<" merge keys applied the way
// PyYAML applies them: the mapping's own keys win, then earlier merged mappings.
func (d *yamlDoc) mapping(n *yaml.Node, depth int, fn func(key string, kn, vn *yaml.Node)) hcl.Diagnostics {
	type entry struct{ k, v *yaml.Node }
	var diags hcl.Diagnostics
	var merged, own []entry
	for i := 0; i+1 < len(n.Content); i += 2 {
		kn, vn := n.Content[i], n.Content[i+1]
		if rk := resolve(kn); rk != nil && rk.Kind == yaml.ScalarNode && rk.Tag == "!!merge" && rk.Value == "<<" {
			src := resolve(vn)
			var srcs []*yaml.Node
			if src != nil && src.Kind == yaml.SequenceNode {
				srcs = src.Content
			} else {
				srcs = []*yaml.Node{src}
			}
			// with a list of mappings the earlier ones win
			for j := len(srcs) - 1; j >= 0; j-- {
				s := resolve(srcs[j])
				if s == nil || s.Kind != yaml.MappingNode {
					diags = append(diags, errorf(nodeRange(d.f, vn), "Invalid YAML merge", "A \"<<\" merge key takes a mapping or a list of mappings."))
					continue
				}
				d.budget -= len(s.Content)
				if d.budget < 0 || depth > 500 {
					return append(diags, d.tooDeep(n)...)
				}
				mds := d.mapping(s, depth+1, func(_ string, k, v *yaml.Node) { merged = append(merged, entry{k, v}) })
				diags = append(diags, mds...)
			}
			continue
		}
		own = append(own, entry{kn, vn})
	}
	// Python keeps a repeated key where it first appeared, with the last value
	type keyed struct {
		k    string
		e    entry
		seen bool
	}
	var list []keyed
	at := map[string]int{}
	for i, e := range append(merged, own...) {
		if d.exhausted {
			return diags
		}
		k, ds := d.key(e.k)
		diags = append(diags, ds...)
		if ds.HasErrors() {
			continue
		}
		if j, dup := at[k]; dup {
			if i >= len(merged) && list[j].seen {
				diags = append(diags, warnf(nodeRange(d.f, e.k), "Duplicate key",
					"The key %q appears twice in this mapping; the value given last is used.", k))
			}
			list[j].e = e
			list[j].seen = i >= len(merged)
			continue
		}
		at[k] = len(list)
		list = append(list, keyed{k, e, i >= len(merged)})
	}
	for _, x := range list {
		if d.exhausted {
			break
		}
		fn(x.k, x.e.k, x.e.v)
	}
	return diags
}

// key converts a mapping key to the string Python's json module would write for it.
func (d *yamlDoc) key(kn *yaml.Node) (string, hcl.Diagnostics) {
	// only scalars make keys; checking first also stops a key that aliases its own mapping
	if k := resolve(kn); k == nil || k.Kind != yaml.ScalarNode {
		return "", hcl.Diagnostics{errorf(nodeRange(d.f, kn), "Invalid mapping key", "A mapping key must be a plain value such as a name or a number, not a list or mapping.")}
	}
	v, diags := d.valueDepth(kn, 0)
	if diags.HasErrors() {
		return "", diags
	}
	if s, ok := pyKeyString(v); ok {
		return s, nil
	}
	if n, ok := v.(json.Number); ok {
		return string(n), nil
	}
	return "", hcl.Diagnostics{errorf(nodeRange(d.f, kn), "Invalid mapping key", "A mapping key must be a plain value such as a name or a number, not a list or mapping.")}
}

func (d *yamlDoc) scalar(n *yaml.Node) (any, hcl.Diagnostics) {
	v, diags := d.scalarValue(n)
	if d.allSecret {
		markVaulted(v)
	}
	return v, diags
}

func (d *yamlDoc) scalarValue(n *yaml.Node) (any, hcl.Diagnostics) {
	tag := n.Tag
	explicit := n.Style&yaml.TaggedStyle != 0
	quoted := n.Style&(yaml.DoubleQuotedStyle|yaml.SingleQuotedStyle|yaml.LiteralStyle|yaml.FoldedStyle) != 0
	if d.json {
		// JSON: strings are quoted, everything else is a JSON literal
		if quoted {
			return n.Value, nil
		}
		return jsonLiteral(n.Value), nil
	}
	if explicit {
		switch tag {
		case "!unsafe", "!!str", "tag:yaml.org,2002:str":
			return n.Value, nil
		case "!vault", "!vault-encrypted":
			if d.vault == nil {
				// ansible-inventory prints vaulted values in this form without decrypting them
				return map[string]any{"__ansible_vault": n.Value}, nil
			}
			plain, err := d.vault.Decrypt([]byte(n.Value))
			if err != nil {
				return nil, hcl.Diagnostics{decryptDiag(nodeRange(d.f, n), "this !vault value", err)}
			}
			s := strings.ToValidUTF8(string(plain), "\uFFFD")
			markVaulted(s)
			return s, nil
		case "!!binary":
			b, err := base64.StdEncoding.DecodeString(strings.Join(strings.Fields(n.Value), ""))
			if err != nil {
				return nil, hcl.Diagnostics{errorf(nodeRange(d.f, n), "Invalid YAML value", "This !!binary value is not valid base64.")}
			}
			return strings.ToValidUTF8(string(b), "\uFFFD"), nil
		case "!!int", "!!float", "!!bool", "!!null", "!!timestamp":
			v, t := yaml11Plain(n.Value)
			if t != tag {
				return nil, hcl.Diagnostics{errorf(nodeRange(d.f, n), "Invalid YAML value", "%q is not a valid %s.", n.Value, tag)}
			}
			return v, nil
		default:
			return nil, hcl.Diagnostics{errorf(nodeRange(d.f, n), "Unsupported YAML tag", "The tag %s is not supported in inventories; Ansible's own tags are !unsafe and !vault.", tag)}
		}
	}
	if quoted {
		return n.Value, nil
	}
	v, t := yaml11Plain(n.Value)
	if t == "!!value" {
		return nil, hcl.Diagnostics{errorf(nodeRange(d.f, n), "Invalid YAML value", "A bare \"=\" has no meaning in YAML 1.1; quote it.")}
	}
	if t == "!!timestamp" && v == nil {
		return nil, hcl.Diagnostics{errorf(nodeRange(d.f, n), "Invalid YAML value", "%q looks like a date but is not a valid one; quote it to keep it as text.", n.Value)}
	}
	return v, nil
}

// jsonLiteral types an unquoted JSON token.
func jsonLiteral(s string) any {
	switch s {
	case "true":
		return true
	case "false":
		return false
	case "null":
		return nil
	}
	if !strings.ContainsAny(s, ".eE") {
		if n, ok := new(big.Int).SetString(s, 10); ok {
			return bigNumber(n)
		}
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil && !errors.Is(err, strconv.ErrRange) {
		return s
	}
	return f
}

// yaml11Plain types a plain scalar as PyYAML's resolver and constructors do and returns
// the tag it resolved to. A timestamp that does not exist yields a nil value.
func yaml11Plain(s string) (any, string) {
	switch {
	case reYAMLNull.MatchString(s):
		return nil, "!!null"
	case reYAMLBool.MatchString(s):
		switch strings.ToLower(s) {
		case "yes", "true", "on":
			return true, "!!bool"
		}
		return false, "!!bool"
	case reYAMLInt.MatchString(s):
		return yaml11Int(s), "!!int"
	case reYAMLFloat.MatchString(s):
		return yaml11Float(s), "!!float"
	case reYAMLDate.MatchString(s) || reYAMLTime.MatchString(s) && strings.Contains(s, ":"):
		return yaml11Time(s), "!!timestamp"
	case s == "=":
		return s, "!!value"
	case s == "<<":
		return s, "!!merge"
	}
	return s, "!!str"
}

func yaml11Int(s string) any {
	s = strings.ReplaceAll(s, "_", "")
	neg := false
	if s[0] == '-' || s[0] == '+' {
		neg = s[0] == '-'
		s = s[1:]
	}
	n := new(big.Int)
	switch {
	case s == "0":
	case strings.HasPrefix(s, "0b"):
		n.SetString(s[2:], 2)
	case strings.HasPrefix(s, "0x"):
		n.SetString(s[2:], 16)
	case s[0] == '0':
		n.SetString(s, 8)
	case strings.Contains(s, ":"):
		for _, part := range strings.Split(s, ":") {
			d, _ := new(big.Int).SetString(part, 10)
			if d == nil {
				d = new(big.Int)
			}
			n.Mul(n, big.NewInt(60)).Add(n, d)
		}
	default:
		n.SetString(s, 10)
	}
	if neg {
		n.Neg(n)
	}
	return bigNumber(n)
}

func yaml11Float(s string) any {
	s = strings.ToLower(strings.ReplaceAll(s, "_", ""))
	sign := 1.0
	if s[0] == '-' || s[0] == '+' {
		if s[0] == '-' {
			sign = -1
		}
		s = s[1:]
	}
	switch {
	case s == ".inf":
		return sign * math.Inf(1)
	case s == ".nan":
		return math.NaN()
	case strings.Contains(s, ":"):
		v := 0.0
		for _, part := range strings.Split(s, ":") {
			f, _ := strconv.ParseFloat(part, 64)
			v = v*60 + f
		}
		return sign * v
	}
	f, _ := strconv.ParseFloat(s, 64)
	return sign * f
}

// yaml11Time reads a YAML timestamp; Ansible prints dates and times in ISO form, so that
// is the value kept.
func yaml11Time(s string) any {
	m := reYAMLTime.FindStringSubmatch(s)
	year, _ := strconv.Atoi(m[1])
	month, _ := strconv.Atoi(m[2])
	day, _ := strconv.Atoi(m[3])
	date := time.Date(year, time.Month(month), day, 0, 0, 0, 0, time.UTC)
	if date.Year() != year || int(date.Month()) != month || date.Day() != day || year < 1 {
		return nil
	}
	if m[4] == "" {
		return fmt.Sprintf("%04d-%02d-%02d", year, month, day)
	}
	hour, _ := strconv.Atoi(m[4])
	minute, _ := strconv.Atoi(m[5])
	second, _ := strconv.Atoi(m[6])
	if hour > 23 || minute > 59 || second > 59 {
		return nil
	}
	out := fmt.Sprintf("%04d-%02d-%02dT%02d:%02d:%02d", year, month, day, hour, minute, second)
	if frac := m[7]; frac != "" {
		if len(frac) > 6 {
			frac = frac[:6]
		}
		frac += strings.Repeat("0", 6-len(frac))
		if frac != "000000" {
			out += "." + frac
		}
	}
	switch {
	case m[9] != "":
		th, _ := strconv.Atoi(m[10])
		tm, _ := strconv.Atoi(m[11])
		if th > 23 || tm > 59 {
			return nil
		}
		if th == 0 && tm == 0 {
			out += "+00:00"
		} else {
			out += fmt.Sprintf("%s%02d:%02d", m[9], th, tm)
		}
	case m[8] == "Z":
		out += "+00:00"
	}
	return out
}

// jsonNodes reads a JSON document into the node tree the YAML code walks, keeping key
// order and positions.
func jsonNodes(f *srcFile) (*yaml.Node, error) {
	dec := json.NewDecoder(bytes.NewReader(f.src))
	dec.UseNumber()
	next := func() (json.Token, *yaml.Node, error) {
		start := int(dec.InputOffset())
		tok, err := dec.Token()
		if err != nil {
			return nil, nil, err
		}
		for start < len(f.src) && strings.IndexByte(" \t\r\n,:", f.src[start]) >= 0 {
			start++
		}
		p := f.pos(start)
		return tok, &yaml.Node{Line: p.Line, Column: p.Column}, nil
	}
	var build func(tok json.Token, n *yaml.Node, depth int) error
	build = func(tok json.Token, n *yaml.Node, depth int) error {
		if depth > 10000 {
			return fmt.Errorf("nested too deeply")
		}
		switch t := tok.(type) {
		case json.Delim:
			closer := json.Delim('}')
			n.Kind, n.Tag = yaml.MappingNode, "!!map"
			if t == '[' {
				closer = ']'
				n.Kind, n.Tag = yaml.SequenceNode, "!!seq"
			}
			n.Style = yaml.FlowStyle
			for {
				tok, c, err := next()
				if err != nil {
					return err
				}
				if d, ok := tok.(json.Delim); ok && d == closer {
					return nil
				}
				if err := build(tok, c, depth+1); err != nil {
					return err
				}
				n.Content = append(n.Content, c)
			}
		case string:
			n.Kind, n.Tag, n.Value, n.Style = yaml.ScalarNode, "!!str", t, yaml.DoubleQuotedStyle
		case json.Number:
			n.Kind, n.Tag, n.Value = yaml.ScalarNode, "!!float", t.String()
		case bool:
			n.Kind, n.Tag, n.Value = yaml.ScalarNode, "!!bool", strconv.FormatBool(t)
		case nil:
			n.Kind, n.Tag, n.Value = yaml.ScalarNode, "!!null", "null"
		}
		return nil
	}
	tok, root, err := next()
	if err != nil {
		return nil, err
	}
	if err := build(tok, root, 0); err != nil {
		return nil, err
	}
	return root, nil
}
