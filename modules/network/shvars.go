package network

import (
	"regexp"
	"strings"

	"github.com/runbook/runbook/modules/hostfs"
)

// shDoc is a file of shell variable assignments (ifcfg), kept line by line so that editing
// a few variables leaves comments and the others as they were.
type shDoc struct {
	lines []shLine
}

type shLine struct {
	raw   string
	key   string
	value string // unquoted
	kv    bool
}

var shAssign = regexp.MustCompile(`^\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)=(.*)$`)

func parseSh(text string) *shDoc {
	d := &shDoc{}
	if text == "" {
		return d
	}
	for _, line := range strings.Split(strings.TrimRight(text, "\n"), "\n") {
		if m := shAssign.FindStringSubmatch(line); m != nil && !strings.HasPrefix(strings.TrimSpace(line), "#") {
			d.lines = append(d.lines, shLine{key: m[1], value: hostfs.ShellUnquote(m[2]), kv: true})
			continue
		}
		d.lines = append(d.lines, shLine{raw: line})
	}
	return d
}

var shSafe = regexp.MustCompile(`^[A-Za-z0-9_./:,+@%=-]*$`)

func shQuote(v string) string {
	if shSafe.MatchString(v) {
		return v
	}
	r := strings.NewReplacer(`\`, `\\`, `"`, `\"`, `$`, `\$`, "`", "\\`")
	return `"` + r.Replace(v) + `"`
}

func (d *shDoc) String() string {
	var b strings.Builder
	for _, l := range d.lines {
		if l.kv {
			b.WriteString(l.key + "=" + shQuote(l.value) + "\n")
		} else {
			b.WriteString(l.raw + "\n")
		}
	}
	return b.String()
}

// get returns the last assignment's value (the shell's answer).
func (d *shDoc) get(key string) (string, bool) {
	val, ok := "", false
	for _, l := range d.lines {
		if l.kv && l.key == key {
			val, ok = l.value, true
		}
	}
	return val, ok
}

func (d *shDoc) value(key string) string {
	v, _ := d.get(key)
	return v
}

// set changes the first assignment in place and drops later ones, or appends.
func (d *shDoc) set(key, value string) {
	found := false
	kept := d.lines[:0]
	for _, l := range d.lines {
		if l.kv && l.key == key {
			if found {
				continue
			}
			found = true
			l.value = value
		}
		kept = append(kept, l)
	}
	d.lines = kept
	if !found {
		d.lines = append(d.lines, shLine{key: key, value: value, kv: true})
	}
}

// del removes every assignment of the keys match selects.
func (d *shDoc) del(match func(string) bool) {
	kept := d.lines[:0]
	for _, l := range d.lines {
		if !l.kv || !match(l.key) {
			kept = append(kept, l)
		}
	}
	d.lines = kept
}

func keyIs(keys ...string) func(string) bool {
	return func(k string) bool { return contains(keys, k) }
}

// keyNumbered matches a key and its numbered forms: IPADDR, IPADDR0, IPADDR1, ...
func keyNumbered(bases ...string) func(string) bool {
	return func(k string) bool {
		for _, b := range bases {
			if rest, ok := strings.CutPrefix(k, b); ok && (rest == "" || isDigits(rest)) {
				return true
			}
		}
		return false
	}
}
