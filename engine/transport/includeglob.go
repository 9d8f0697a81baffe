package transport

import (
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// includeGlob expands an Include pattern as the glob(3) OpenSSH uses (its
// openbsd-compat glob on Linux): each path component is matched on its own, '*' and
// '?' never match a '/', and a name that starts with '.' is only matched by a pattern
// component that starts with a literal '.' (editor leftovers such as .05.conf are not
// read). '[...]' is negated by '!' (a '^' is literal there), '\' quotes the next
// character. Matches are returned sorted; a pattern without wildcards is returned as
// is, whether or not it exists (the caller reads it, or skips it if missing).
func includeGlob(pattern string) []string {
	if !hasGlobMeta(pattern) {
		return []string{unescapeGlob(pattern)}
	}
	dirs := []string{""}
	if strings.HasPrefix(pattern, "/") {
		dirs = []string{"/"}
	}
	comps := strings.Split(strings.Trim(pattern, "/"), "/")
	for i, c := range comps {
		if c == "" {
			continue
		}
		last := i == len(comps)-1
		var next []string
		for _, d := range dirs {
			if !hasGlobMeta(c) {
				p := filepath.Join(d, unescapeGlob(c))
				if last {
					if _, err := os.Lstat(p); err == nil {
						next = append(next, p)
					}
				} else if st, err := os.Stat(p); err == nil && st.IsDir() {
					next = append(next, p)
				}
				continue
			}
			dd := d
			if dd == "" {
				dd = "."
			}
			ents, err := os.ReadDir(dd)
			if err != nil {
				continue
			}
			for _, e := range ents {
				n := e.Name()
				if n[0] == '.' && c[0] != '.' {
					continue // as glob(3): a leading '.' is matched only literally
				}
				if !globMatch(c, n) {
					continue
				}
				p := filepath.Join(d, n)
				if !last {
					if st, err := os.Stat(p); err != nil || !st.IsDir() {
						continue
					}
				}
				next = append(next, p)
			}
		}
		dirs = next
		if len(dirs) == 0 {
			return nil
		}
	}
	sort.Strings(dirs)
	return dirs
}

func hasGlobMeta(s string) bool {
	return strings.ContainsAny(s, "*?[")
}

func unescapeGlob(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+1 < len(s) {
			i++
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// globMatch matches one path component name against one pattern component, as glob(3):
// '*' any run of characters, '?' one, '[...]' a set with ranges, negated by a leading
// '!', '\' quotes. An unterminated '[' is a literal '['.
func globMatch(pat, name string) bool {
	for len(pat) > 0 {
		switch pat[0] {
		case '*':
			for len(pat) > 0 && pat[0] == '*' {
				pat = pat[1:]
			}
			if pat == "" {
				return true
			}
			for i := 0; i <= len(name); i++ {
				if globMatch(pat, name[i:]) {
					return true
				}
			}
			return false
		case '?':
			if name == "" {
				return false
			}
			pat, name = pat[1:], name[1:]
		case '[':
			end, ok := classEnd(pat)
			if !ok {
				if name == "" || name[0] != '[' {
					return false
				}
				pat, name = pat[1:], name[1:]
				continue
			}
			if name == "" || !classMatch(pat[1:end], name[0]) {
				return false
			}
			pat, name = pat[end+1:], name[1:]
		case '\\':
			if len(pat) > 1 {
				pat = pat[1:]
			}
			fallthrough
		default:
			if name == "" || name[0] != pat[0] {
				return false
			}
			pat, name = pat[1:], name[1:]
		}
	}
	return name == ""
}

// classEnd finds the ']' that closes the set opening pat (pat[0] == '['): a ']' right
// after '[' or '[!' belongs to the set.
func classEnd(pat string) (int, bool) {
	i := 1
	if i < len(pat) && pat[i] == '!' {
		i++
	}
	if i < len(pat) && pat[i] == ']' {
		i++
	}
	for ; i < len(pat); i++ {
		if pat[i] == ']' {
			return i, true
		}
	}
	return 0, false
}

func classMatch(set string, c byte) bool {
	neg := false
	if strings.HasPrefix(set, "!") {
		neg, set = true, set[1:]
	}
	ok := false
	for i := 0; i < len(set); i++ {
		lo := set[i]
		if i+2 < len(set) && set[i+1] == '-' {
			if lo <= c && c <= set[i+2] {
				ok = true
			}
			i += 2
			continue
		}
		if lo == c {
			ok = true
		}
	}
	return ok != neg
}
