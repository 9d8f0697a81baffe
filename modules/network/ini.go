package network

import "strings"

// iniDoc is an INI-style file (NetworkManager keyfile, systemd-networkd unit) kept line by
// line, so that editing a few keys leaves comments, order and every key runbook does not
// manage as they were.
type iniDoc struct {
	pre      []string // lines before the first section
	sections []*iniSection
}

type iniSection struct {
	name  string
	lines []iniLine
}

type iniLine struct {
	raw   string // comments and blank lines
	key   string
	value string
	kv    bool
}

func parseINI(text string) *iniDoc {
	d := &iniDoc{}
	var cur *iniSection
	for _, line := range strings.Split(strings.TrimRight(text, "\n"), "\n") {
		t := strings.TrimSpace(line)
		if strings.HasPrefix(t, "[") && strings.HasSuffix(t, "]") {
			cur = &iniSection{name: strings.TrimSpace(t[1 : len(t)-1])}
			d.sections = append(d.sections, cur)
			continue
		}
		l := iniLine{raw: line}
		if t != "" && t[0] != '#' && t[0] != ';' {
			if k, v, ok := strings.Cut(t, "="); ok {
				l = iniLine{key: strings.TrimSpace(k), value: strings.TrimSpace(v), kv: true}
			}
		}
		if cur == nil {
			if text != "" {
				d.pre = append(d.pre, line)
			}
			continue
		}
		cur.lines = append(cur.lines, l)
	}
	return d
}

func (d *iniDoc) String() string {
	var b strings.Builder
	for _, l := range d.pre {
		b.WriteString(l + "\n")
	}
	for i, s := range d.sections {
		if i > 0 && !endsBlank(&b) {
			b.WriteString("\n")
		}
		b.WriteString("[" + s.name + "]\n")
		// Trailing blank lines belong between sections, written once above.
		lines := s.lines
		for len(lines) > 0 && !lines[len(lines)-1].kv && strings.TrimSpace(lines[len(lines)-1].raw) == "" {
			lines = lines[:len(lines)-1]
		}
		for _, l := range lines {
			if l.kv {
				b.WriteString(l.key + "=" + l.value + "\n")
			} else {
				b.WriteString(l.raw + "\n")
			}
		}
	}
	return b.String()
}

func endsBlank(b *strings.Builder) bool {
	s := b.String()
	return s == "" || strings.HasSuffix(s, "\n\n")
}

// has reports whether a section of that name exists.
func (d *iniDoc) has(section string) bool {
	for _, s := range d.sections {
		if s.name == section {
			return true
		}
	}
	return false
}

// get returns the last value of key in the sections named section (a later assignment
// wins, as both NetworkManager and systemd read them).
func (d *iniDoc) get(section, key string) (string, bool) {
	val, found := "", false
	for _, s := range d.sections {
		if s.name != section {
			continue
		}
		for _, l := range s.lines {
			if l.kv && l.key == key {
				val, found = l.value, true
			}
		}
	}
	return val, found
}

// getAll returns every value of a list-valued key in order; an empty assignment clears the
// list, as systemd reads it.
func (d *iniDoc) getAll(section, key string) []string {
	var out []string
	for _, s := range d.sections {
		if s.name != section {
			continue
		}
		for _, l := range s.lines {
			if l.kv && l.key == key {
				if l.value == "" {
					out = nil
					continue
				}
				out = append(out, l.value)
			}
		}
	}
	return out
}

// set gives key one value: the first assignment is changed in place and any later ones are
// removed; a missing key is added to the first section of that name (made at the end if
// there is none).
func (d *iniDoc) set(section, key, value string) {
	d.setAll(section, key, []string{value})
}

// setAll replaces every assignment of key with one line per value, where the first one was.
func (d *iniDoc) setAll(section, key string, values []string) {
	var target *iniSection
	at := -1
	for _, s := range d.sections {
		if s.name != section {
			continue
		}
		if target == nil {
			target = s
		}
		kept := s.lines[:0]
		for _, l := range s.lines {
			if l.kv && l.key == key {
				if at < 0 {
					target, at = s, len(kept)
				}
				continue
			}
			kept = append(kept, l)
		}
		s.lines = kept
	}
	if len(values) == 0 {
		return
	}
	if target == nil {
		target = &iniSection{name: section}
		d.sections = append(d.sections, target)
	}
	if at < 0 {
		at = len(target.lines)
		// New keys go after the last key, before trailing blank lines and comments.
		for at > 0 && !target.lines[at-1].kv {
			at--
		}
	}
	add := make([]iniLine, 0, len(values))
	for _, v := range values {
		add = append(add, iniLine{key: key, value: v, kv: true})
	}
	target.lines = append(target.lines[:at], append(add, target.lines[at:]...)...)
}

// del removes every assignment of key in the sections named section.
func (d *iniDoc) del(section, key string) { d.setAll(section, key, nil) }

// delSection removes every section of that name.
func (d *iniDoc) delSection(section string) {
	kept := d.sections[:0]
	for _, s := range d.sections {
		if s.name != section {
			kept = append(kept, s)
		}
	}
	d.sections = kept
}

// keys lists the keys of the first section named section, in order.
func (d *iniDoc) keys(section string) []string {
	var out []string
	for _, s := range d.sections {
		if s.name != section {
			continue
		}
		for _, l := range s.lines {
			if l.kv {
				out = append(out, l.key)
			}
		}
	}
	return out
}
