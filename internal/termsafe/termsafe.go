// Package termsafe makes text that runbook did not write itself safe to print on a
// terminal. Hosts' output, file content, messages and even host names can hold bytes a
// terminal obeys rather than shows: a carriage return and "erase line" that paint a fake
// "ok" over a failure, OSC 52 that writes the clipboard, OSC 0 that retitles the window,
// bidirectional overrides that reorder what is read. Every human printer passes such text
// through Text or Line, so those bytes are shown as escapes (\x1b, \u009b, \u202e) instead.
//
// The escaped form is for reading, not an encoding: a backslash is left as it is, so a host
// that prints the four characters \x1b looks the same as one that prints ESC. Machine
// output (JSON) keeps the exact text.
package termsafe

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Text returns s with every character that could drive a terminal escaped: C0 controls
// other than newline and tab (carriage return included), DEL, C1 controls (U+0080 to
// U+009F), bytes that are not UTF-8, and the bidirectional controls (U+061C, U+200E,
// U+200F, U+202A to U+202E, U+2066 to U+2069). Newlines and tabs are kept, so multi-line
// output reads as lines; the printer indents what follows a newline. s is returned as it
// is when nothing needs escaping.
func Text(s string) string { return escape(s, false) }

// Line is Text for a value that must stay on one line, such as a host or task name:
// newlines and tabs are escaped too, so the value cannot start a line of its own or shift
// a table's columns.
func Line(s string) string { return escape(s, true) }

func escape(s string, oneLine bool) string {
	i := firstUnsafe(s, oneLine)
	if i == len(s) {
		return s
	}
	var b strings.Builder
	b.Grow(len(s) + 16)
	b.WriteString(s[:i])
	for i < len(s) {
		c := s[i]
		if c < utf8.RuneSelf {
			if safeASCII(c, oneLine) {
				b.WriteByte(c)
			} else {
				writeASCIIEscape(&b, c)
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			fmt.Fprintf(&b, `\x%02x`, c)
		case unsafeRune(r):
			fmt.Fprintf(&b, `\u%04x`, r)
		default:
			b.WriteString(s[i : i+size])
		}
		i += size
	}
	return b.String()
}

// firstUnsafe returns the index of the first byte of s that needs escaping, len(s) when
// none does.
func firstUnsafe(s string, oneLine bool) int {
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if !safeASCII(c, oneLine) {
				return i
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if (r == utf8.RuneError && size == 1) || unsafeRune(r) {
			return i
		}
		i += size
	}
	return len(s)
}

func safeASCII(c byte, oneLine bool) bool {
	switch {
	case c == '\n' || c == '\t':
		return !oneLine
	case c < 0x20 || c == 0x7f:
		return false
	}
	return true
}

func writeASCIIEscape(b *strings.Builder, c byte) {
	switch c {
	case '\n':
		b.WriteString(`\n`)
	case '\t':
		b.WriteString(`\t`)
	case '\r':
		b.WriteString(`\r`)
	default:
		fmt.Fprintf(b, `\x%02x`, c)
	}
}

// unsafeRune reports whether a non-ASCII rune is a C1 control or a bidirectional control.
func unsafeRune(r rune) bool {
	return (r >= 0x80 && r <= 0x9f) || unicode.Is(unicode.Bidi_Control, r)
}
