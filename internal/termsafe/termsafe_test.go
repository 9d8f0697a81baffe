package termsafe

import (
	"strings"
	"testing"
	"unicode/utf8"
)

func TestText(t *testing.T) {
	tests := []struct {
		name, in, text, line string
	}{
		{name: "plain text is returned as it is", in: "ok: ran /bin/true", text: "ok: ran /bin/true", line: "ok: ran /bin/true"},
		{name: "empty", in: "", text: "", line: ""},
		{name: "newline and tab stay in text, not in a line", in: "a\tb\nc", text: "a\tb\nc", line: `a\tb\nc`},
		{name: "erase the line and paint a fake ok", in: "\r\x1b[2Klab01 ok", text: `\r\x1b[2Klab01 ok`, line: `\r\x1b[2Klab01 ok`},
		{name: "OSC 52 writes the clipboard", in: "\x1b]52;c;ZWNobyBoaQ==\x07", text: `\x1b]52;c;ZWNobyBoaQ==\x07`, line: `\x1b]52;c;ZWNobyBoaQ==\x07`},
		{name: "OSC 0 retitles the window, ended by ST", in: "\x1b]0;owned\x1b\\", text: `\x1b]0;owned\x1b\`, line: `\x1b]0;owned\x1b\`},
		{name: "NUL, BEL, backspace, DEL", in: "a\x00b\x07c\x08d\x7f", text: `a\x00b\x07c\x08d\x7f`, line: `a\x00b\x07c\x08d\x7f`},
		{name: "C1 CSI and NEL", in: "x\u009b2Ky\u0085z", text: `x\u009b2Ky\u0085z`, line: `x\u009b2Ky\u0085z`},
		{name: "bytes that are not UTF-8", in: "a\xff\xc2b\x9bc", text: `a\xff\xc2b\x9bc`, line: `a\xff\xc2b\x9bc`},
		{name: "a rune cut in half", in: "caf\xc3", text: `caf\xc3`, line: `caf\xc3`},
		{name: "bidirectional overrides and isolates", in: "ok\u202edeliaf\u202c \u2066x\u2069 \u200f\u061c", text: `ok\u202edeliaf\u202c \u2066x\u2069 \u200f\u061c`,
			line: `ok\u202edeliaf\u202c \u2066x\u2069 \u200f\u061c`},
		{name: "other text is left alone", in: "héllo wörld ✓ 日本 \\x1b", text: "héllo wörld ✓ 日本 \\x1b", line: "héllo wörld ✓ 日本 \\x1b"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Text(tt.in); got != tt.text {
				t.Errorf("Text(%q) = %q; want %q", tt.in, got, tt.text)
			}
			if got := Line(tt.in); got != tt.line {
				t.Errorf("Line(%q) = %q; want %q", tt.in, got, tt.line)
			}
		})
	}
}

// Whatever goes in, nothing a terminal obeys comes out.
func TestNothingUnsafeComesOut(t *testing.T) {
	var all strings.Builder
	for c := 0; c < 256; c++ {
		all.WriteByte(byte(c))
	}
	for r := rune(0x80); r < 0x3000; r++ {
		all.WriteRune(r)
	}
	for _, out := range []string{Text(all.String()), Line(all.String())} {
		for i, r := range out {
			if r == '\n' || r == '\t' {
				continue
			}
			if r < 0x20 || (r >= 0x7f && r <= 0x9f) || r == 0xfffd || unsafeRune(r) {
				t.Fatalf("unsafe rune %U at %d", r, i)
			}
		}
		if strings.Count(out, "\n") > 1 || strings.Contains(Line(all.String()), "\n") {
			t.Fatal("a newline was added")
		}
	}
}

// FuzzText: whatever a host writes, what Text and Line print holds nothing a terminal
// obeys, Line keeps it on one line, and text that was safe already is left as it is.
func FuzzText(f *testing.F) {
	for _, s := range []string{"ok", "\x1b]52;c;aGk=\x07", "a\r\x1b[2Kok", "\xff\xfe", "\u202eevil", "tab\there\nline", "\u009b31m"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		for _, out := range []string{Text(s), Line(s)} {
			if !utf8.ValidString(out) {
				t.Fatalf("%q: not UTF-8: %q", s, out)
			}
			for _, r := range out {
				if r != '\n' && r != '\t' && (r < 0x20 || (r >= 0x7f && r <= 0x9f) || r == utf8.RuneError || unsafeRune(r)) {
					t.Fatalf("%q: unsafe rune %U in %q", s, r, out)
				}
			}
		}
		if strings.Contains(Line(s), "\n") {
			t.Fatalf("%q: Line kept a newline", s)
		}
		if firstUnsafe(s, false) == len(s) && Text(s) != s {
			t.Fatalf("%q: safe text changed to %q", s, Text(s))
		}
	})
}
