package inventory

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
)

// Host names in INI and YAML inventories may carry a port ("db:2222", "[::1]:22") and
// ranges ("web[01:20]", "db-[a:c]"). The grammar below follows Ansible's address parser;
// RE2 has no look-behind, so a label's "must not end in - or _" rule is spelled out.

const (
	reNumericRange = `\[(?:[0-9]+:[0-9]+)(?::[0-9]+)?\]`
	reHexRange     = `\[(?:[0-9a-fA-F]+:[0-9a-fA-F]+)(?::[0-9]+)?\]`
	reAlnumRange   = `\[(?:[a-zA-Z]:[a-zA-Z]|[0-9]+:[0-9]+)(?::[0-9]+)?\]`
	reWordChar     = `[\p{L}\p{N}_]`
	reAlnumChar    = `[\p{L}\p{N}]`
)

var (
	reBracketedHostPort = regexp.MustCompile(`^\[(.+)\]:([0-9]+)$`)
	reHostPort          = regexp.MustCompile(`^((?:[^:\[\]]|\[[^\]]*\])*):([0-9]+)$`)

	reIPv4 = func() *regexp.Regexp {
		c := `(?:[01]?[0-9]{1,2}|2[0-4][0-9]|25[0-5]|` + reNumericRange + `)`
		return regexp.MustCompile(`^(?:` + c + `\.){3}` + c + `$`)
	}()

	// Ansible's IPv6 expression anchors only its first alternative at the start and its
	// last at the end; with Python's match() every alternative is anchored at the start.
	// That looseness decides what counts as an address, so it is kept.
	reIPv6 = func() *regexp.Regexp {
		c := `(?:[0-9a-fA-F]{1,4}|` + reHexRange + `)`
		alts := []string{
			`(?:` + c + `:){7}` + c,
			`(?:` + c + `:){1,6}:`,
			`(?:` + c + `:)(?::` + c + `){1,6}`,
			`(?:` + c + `:){2}(?::` + c + `){1,5}`,
			`(?:` + c + `:){3}(?::` + c + `){1,4}`,
			`(?:` + c + `:){4}(?::` + c + `){1,3}`,
			`(?:` + c + `:){5}(?::` + c + `){1,2}`,
			`(?:` + c + `:){6}(?::` + c + `)`,
			`:(?::` + c + `){1,6}`,
			c + `?::`,
			`(?:0:){6}(?:` + c + `\.){3}` + c,
			`::(?:ffff:)?(?:` + c + `\.){3}` + c,
			`(?:0:){5}ffff:(?:` + c + `\.){3}` + c + `$`,
		}
		return regexp.MustCompile(`(?i)^(?:` + strings.Join(alts, "|") + `)`)
	}()

	reHostname = func() *regexp.Regexp {
		first := `(?:` + reWordChar + `|` + reAlnumRange + `)`
		mid := `(?:` + reWordChar + `|-|` + reAlnumRange + `)`
		last := `(?:` + reAlnumChar + `|` + reAlnumRange + `)`
		label := `(?:` + last + `|` + first + mid + `*` + last + `)`
		return regexp.MustCompile(`(?i)^` + label + `(?:\.` + label + `)*$`)
	}()
)

// parseAddress splits "host:port" the way Ansible does. ok is false when what is left is
// not a host name or address; callers then use the text unchanged, as Ansible does.
func parseAddress(s string, allowRanges bool) (host string, port int, ok bool) {
	port = -1
	for _, re := range []*regexp.Regexp{reBracketedHostPort, reHostPort} {
		if m := re.FindStringSubmatch(s); m != nil {
			p, err := strconv.Atoi(m[2])
			if err != nil {
				return "", -1, false
			}
			s, port = m[1], p
		}
	}
	if !reIPv4.MatchString(s) && !reIPv6.MatchString(s) && !reHostname.MatchString(s) {
		return "", -1, false
	}
	if !allowRanges && strings.Contains(s, "[") {
		return "", -1, false
	}
	return s, port, true
}

// rangeError is a host range that cannot be expanded; the message is for people.
type rangeError struct {
	summary string
	detail  string
}

func (e *rangeError) Error() string { return e.summary + ": " + e.detail }

// maxExpandedHosts bounds what one host pattern may expand to, so that a typo such as
// "[0:9999999999]" is an error rather than an exhausted machine.
const maxExpandedHosts = 100000

// splitHostPattern separates an optional port from a host pattern and expands its ranges.
// An address that does not parse is used as written, as Ansible does.
func splitHostPattern(pattern string) (hosts []string, port int, err error) {
	name, port, ok := parseAddress(pattern, true)
	if !ok {
		name, port = pattern, -1
	}
	if !strings.Contains(name, "[") {
		return []string{name}, port, nil
	}
	hosts, err = expandHostRange(name, pattern)
	return hosts, port, err
}

const asciiLetters = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"

// expandHostRange expands the first [begin:end(:step)] of name and recurses on the rest.
// Numeric bounds that start with 0 keep their width ("[01:10]"), letters run through
// a..z then A..Z. Unlike Ansible, which yields nothing for "[3:1]", a range that runs
// backwards is an error: it is always a mistake.
func expandHostRange(name, whole string) ([]string, error) {
	var out []string
	var expand func(string) error
	expand = func(s string) error {
		lb := strings.IndexByte(s, '[')
		if lb < 0 {
			if len(out) >= maxExpandedHosts {
				return &rangeError{"Host range too large", fmt.Sprintf("%q expands to more than %d hosts.", whole, maxExpandedHosts)}
			}
			out = append(out, s)
			return nil
		}
		// Ansible pairs the first "[" with the first "]", wherever it is
		rb := strings.IndexByte(s, ']')
		if strings.Contains(s, "|") {
			return &rangeError{"Invalid host range", fmt.Sprintf("%q contains \"|\", which cannot appear in a host name with a range.", whole)}
		}
		if rb < 0 {
			return &rangeError{"Invalid host range", fmt.Sprintf("%q has a \"[\" without a closing \"]\"; a range looks like [1:9], [01:20], [a:f] or [0:10:2].", whole)}
		}
		var head, nrange, tail string
		if rb < lb {
			// "a]b[1:2]": Ansible reads "b" as the range; it is never a valid one
			head, nrange, tail = s[:rb], s[rb+1:lb], s[lb+1:]
		} else {
			head, nrange, tail = s[:lb], s[lb+1:rb], s[rb+1:]
		}
		items, err := rangeItems(nrange, whole)
		if err != nil {
			return err
		}
		for _, it := range items {
			if err := expand(head + it + tail); err != nil {
				return err
			}
		}
		return nil
	}
	if err := expand(name); err != nil {
		return nil, err
	}
	return out, nil
}

func rangeItems(nrange, whole string) ([]string, error) {
	bounds := strings.Split(nrange, ":")
	if len(bounds) != 2 && len(bounds) != 3 {
		return nil, &rangeError{"Invalid host range", fmt.Sprintf("[%s] in %q is not a range; write [begin:end] or [begin:end:step], e.g. [01:20] or [a:f].", nrange, whole)}
	}
	beg, end, step := bounds[0], bounds[1], "1"
	if len(bounds) == 3 {
		step = bounds[2]
	}
	if beg == "" {
		beg = "0"
	}
	if end == "" {
		return nil, &rangeError{"Invalid host range", fmt.Sprintf("[%s] in %q has no end; write [begin:end].", nrange, whole)}
	}
	width := 0
	if beg[0] == '0' && len(beg) > 1 {
		width = len(beg)
		if len(end) != width {
			return nil, &rangeError{"Invalid host range", fmt.Sprintf("[%s] in %q: a zero-padded range needs begin and end of the same width, e.g. [01:20].", nrange, whole)}
		}
	}
	st, err := pyInt(step)
	if err != nil || st <= 0 {
		return nil, &rangeError{"Invalid host range", fmt.Sprintf("The step %q in [%s] of %q must be a positive whole number.", step, nrange, whole)}
	}
	ib, ie := strings.Index(asciiLetters, beg), strings.Index(asciiLetters, end)
	if ib >= 0 && ie >= 0 {
		if ib > ie {
			return nil, &rangeError{"Invalid host range", fmt.Sprintf("[%s] in %q runs backwards; write [%s:%s].", nrange, whole, end, beg)}
		}
		var out []string
		for i := ib; i <= ie && i < len(asciiLetters); i += int(st) {
			out = append(out, asciiLetters[i:i+1])
		}
		return out, nil
	}
	b, errB := pyInt(beg)
	e, errE := pyInt(end)
	if errB != nil || errE != nil {
		return nil, &rangeError{"Invalid host range", fmt.Sprintf("[%s] in %q mixes letters and numbers or is not a range; both ends must be numbers ([1:9], [01:20]) or single letters ([a:f]).", nrange, whole)}
	}
	if b > e {
		return nil, &rangeError{"Invalid host range", fmt.Sprintf("[%s] in %q runs backwards, so it names no host; write [%s:%s].", nrange, whole, end, beg)}
	}
	if (e-b)/st >= maxExpandedHosts {
		return nil, &rangeError{"Host range too large", fmt.Sprintf("[%s] in %q expands to more than %d hosts.", nrange, whole, maxExpandedHosts)}
	}
	var out []string
	for i := b; i <= e; i += st {
		s := strconv.FormatInt(i, 10)
		if width > 0 {
			s = zfill(s, width)
		}
		out = append(out, s)
	}
	return out, nil
}

// zfill pads with zeros after any sign, like Python's str.zfill.
func zfill(s string, width int) string {
	if len(s) >= width {
		return s
	}
	sign := ""
	if s != "" && (s[0] == '-' || s[0] == '+') {
		sign, s = s[:1], s[1:]
	}
	return sign + strings.Repeat("0", width-len(s)-len(sign)) + s
}

// pyInt parses a whole number the way Python's int() reads text: surrounding
// blanks, an optional sign, and single underscores between digits.
func pyInt(s string) (int64, error) {
	s = strings.TrimSpace(s)
	neg := false
	if s != "" && (s[0] == '+' || s[0] == '-') {
		neg = s[0] == '-'
		s = s[1:]
	}
	if s == "" || s[0] == '_' || s[len(s)-1] == '_' || strings.Contains(s, "__") {
		return 0, fmt.Errorf("invalid number")
	}
	s = strings.ReplaceAll(s, "_", "")
	for _, c := range s {
		if c < '0' || c > '9' {
			return 0, fmt.Errorf("invalid number")
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return 0, err
	}
	if neg {
		n = -n
	}
	return n, nil
}
