package modules

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/zclconf/go-cty/cty"
)

const secret = "hunter2-very-secret"

func TestClip(t *testing.T) {
	pad := func(n int) string { return strings.Repeat("x", n) }
	tests := []struct {
		name    string
		secrets []string
		in      string
		n       int
		want    string
		kept    int
	}{
		{name: "short text is only redacted", secrets: []string{secret}, in: "a " + secret + " b", n: 200,
			want: "a " + Redacted + " b", kept: 23},
		{name: "a secret straddling the cut is replaced whole", secrets: []string{secret}, in: pad(195) + secret + "tail", n: 200,
			want: pad(195) + Redacted, kept: 195 + len(secret)},
		{name: "a secret starting one byte before the cut", secrets: []string{secret}, in: pad(199) + secret, n: 200,
			want: pad(199) + Redacted, kept: 199 + len(secret)},
		{name: "a secret starting at the cut is left out", secrets: []string{secret}, in: pad(200) + secret, n: 200,
			want: pad(200), kept: 200},
		{name: "a secret ending at the cut", secrets: []string{secret}, in: pad(200-len(secret)) + secret + "yz", n: 200,
			want: pad(200-len(secret)) + Redacted, kept: 200},
		{name: "a two-byte character at the cut", in: pad(199) + "é" + "z", n: 200, want: pad(199), kept: 199},
		{name: "a four-byte character at the cut", in: pad(198) + "𝄞" + "z", n: 200, want: pad(198), kept: 198},
		{name: "a character ending at the cut", in: pad(198) + "é" + "z", n: 200, want: pad(198) + "é", kept: 200},
		{name: "bytes that are not UTF-8 are cut where they are", in: pad(199) + "\x80\x80z", n: 200, want: pad(199) + "\x80", kept: 200},
		{name: "the longest secret wins", secrets: []string{"pass", "password1"}, in: "password1 pass", n: 100,
			want: Redacted + " " + Redacted, kept: 14},
		{name: "secrets shorter than 4 bytes are left alone", secrets: []string{"abc"}, in: "abc abc", n: 100, want: "abc abc", kept: 7},
		{name: "no secrets: a plain cut", in: pad(300), n: 200, want: pad(200), kept: 200},
		{name: "a negative length keeps nothing", secrets: []string{secret}, in: secret, n: -1, want: "", kept: 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, kept := NewRedactor(tt.secrets).Clip(tt.in, tt.n)
			if got != tt.want || kept != tt.kept {
				t.Errorf("Clip = %q, %d\nwant   %q, %d", got, kept, tt.want, tt.kept)
			}
			if utf8.ValidString(tt.in) && !utf8.ValidString(got) {
				t.Errorf("Clip split a character: %q", got)
			}
		})
	}
}

// Occurrences that overlap are one region, replaced once: no secret's tail is left after
// another's placeholder. Secrets that start at or after the cut do not extend a region.
func TestRedactOverlaps(t *testing.T) {
	tests := []struct {
		name    string
		secrets []string
		in      string
		n       int // -1: the whole text
		want    string
		kept    int
	}{
		{name: "one secret's tail is another's head", secrets: []string{"aaaaBBBB", "BBBBcccc"}, in: "x aaaaBBBBcccc y", n: -1,
			want: "x " + Redacted + " y"},
		{name: "the same, listed the other way", secrets: []string{"BBBBcccc", "aaaaBBBB"}, in: "x aaaaBBBBcccc y", n: -1,
			want: "x " + Redacted + " y"},
		{name: "a chain of three", secrets: []string{"abcdef", "defghi", "ghijkl"}, in: "<abcdefghijkl>", n: -1,
			want: "<" + Redacted + ">"},
		{name: "a password and the address built on it", secrets: []string{"user:pw-1234", "pw-1234@10.0.0.5:5432/prod?key=SECRETKEY"},
			in: "connecting user:pw-1234@10.0.0.5:5432/prod?key=SECRETKEY now", n: -1, want: "connecting " + Redacted + " now"},
		{name: "a secret inside another", secrets: []string{"0123456789", "3456"}, in: "a 0123456789 b 3456", n: -1,
			want: "a " + Redacted + " b " + Redacted},
		{name: "a longer secret ending later covers regions found before it", secrets: []string{"0123456789", "1234", "5678"},
			in: "x0123456789y", n: -1, want: "x" + Redacted + "y"},
		{name: "secrets side by side stay two", secrets: []string{"1234", "5678"}, in: "123456789", n: -1,
			want: Redacted + Redacted + "9"},
		{name: "a secret starting at the cut does not extend a region", secrets: []string{"aaaaBBBB", "BBBBcccc"}, in: "aaaaBBBBcccc tail", n: 4,
			want: Redacted, kept: 8},
		{name: "a secret starting before the cut does", secrets: []string{"aaaaBBBB", "BBBBcccc"}, in: "aaaaBBBBcccc tail", n: 5,
			want: Redacted, kept: 12},
		{name: "the same secret overlapping itself", secrets: []string{"abab"}, in: "xabababy", n: -1, want: "x" + Redacted + "y"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n, kept := tt.n, tt.kept
			if n < 0 {
				n, kept = len(tt.in), len(tt.in)
			}
			got, k := NewRedactor(tt.secrets).Clip(tt.in, n)
			if got != tt.want || k != kept {
				t.Errorf("Clip = %q, %d\nwant   %q, %d", got, k, tt.want, kept)
			}
		})
	}
}

// A secret that the placeholder holds is not redacted: it would be found again inside
// every placeholder, each time a text is redacted.
func TestRedactPlaceholder(t *testing.T) {
	for _, secret := range []string{"value", "sensitive", "(sensitive value)", "e va"} {
		if r := NewRedactor([]string{secret}); r != nil {
			t.Errorf("NewRedactor(%q) redacts", secret)
		}
	}
	r := NewRedactor([]string{"value", "hunter2"})
	once := r.Redact("the value of hunter2")
	if twice := r.Redact(once); once != "the value of "+Redacted || twice != once {
		t.Errorf("Redact = %q, then %q", once, twice)
	}
}

// No part of a secret survives a cut anywhere in or around it: not its head, not its tail.
func TestClipNeverShowsAPart(t *testing.T) {
	r := NewRedactor([]string{secret})
	in := "abc " + secret + " def"
	for n := 0; n <= len(in); n++ {
		got, _ := r.Clip(in, n)
		if part := partOf(got, secret); part != "" {
			t.Errorf("n=%d: %q shows in %q", n, part, got)
		}
	}
}

// partOf returns a part of secret at least 4 bytes long that shows in s, "" when none does.
func partOf(s, secret string) string {
	for i := 0; i+4 <= len(secret); i++ {
		for j := i + 4; j <= len(secret); j++ {
			if strings.Contains(s, secret[i:j]) {
				return secret[i:j]
			}
		}
	}
	return ""
}

func TestCapture(t *testing.T) {
	const limit = 1 << 20
	tests := []struct {
		name   string
		writes []string
		want   string // the start of what is shown, after the limit's worth of x
		note   string
	}{
		{name: "a secret straddling the cap", writes: []string{strings.Repeat("x", limit-5), secret + "after"},
			want: strings.Repeat("x", limit-5) + Redacted, note: "\n[output truncated: 5 more bytes not kept]\n"},
		{name: "a secret straddling the cap across writes", writes: []string{strings.Repeat("x", limit-5), "hunte", "r2-very", "-secret", strings.Repeat("y", 1000)},
			want: strings.Repeat("x", limit-5) + Redacted, note: "\n[output truncated: 1000 more bytes not kept]\n"},
		{name: "a secret that would start at the cap is left out", writes: []string{strings.Repeat("x", limit), secret},
			want: strings.Repeat("x", limit), note: fmt.Sprintf("\n[output truncated: %d more bytes not kept]\n", len(secret))},
		{name: "a character straddling the cap", writes: []string{strings.Repeat("x", limit-1), "ééé"},
			want: strings.Repeat("x", limit-1), note: "\n[output truncated: 6 more bytes not kept]\n"},
		{name: "output under the cap is only redacted", writes: []string{"token=" + secret + "\n"}, want: "token=" + Redacted + "\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := &Env{}
			env.SetSecrets([]string{secret})
			c := env.NewCapture()
			for _, w := range tt.writes {
				if n, err := c.Write([]byte(w)); n != len(w) || err != nil {
					t.Fatalf("Write = %d, %v", n, err)
				}
			}
			if len(c.buf) > limit+len(secret)-1 {
				t.Errorf("kept %d bytes, more than the cap and the longest secret", len(c.buf))
			}
			got := c.String()
			if got != tt.want+tt.note {
				t.Errorf("String() ends %q\nwant          %q", tail(got), tail(tt.want+tt.note))
			}
			if part := partOf(got, secret); part != "" {
				t.Errorf("%q shows in %q", part, tail(got))
			}
		})
	}
}

func tail(s string) string { return s[max(0, len(s)-80):] }

func TestEnvSecrets(t *testing.T) {
	var nilEnv *Env
	if nilEnv.Redactor() != nil || nilEnv.NewCapture() == nil {
		t.Error("a nil Env must be usable")
	}
	env := &Env{}
	env.SetSecrets([]string{"ab", ""})
	if env.Redactor() != nil {
		t.Error("secrets too short to redact give no Redactor")
	}
	env.SetSecrets([]string{secret})
	if got := env.Redactor().Redact("say " + secret); got != "say "+Redacted {
		t.Errorf("Redact = %q", got)
	}
}

// FuzzRedactor: Clip agrees with the obvious way of doing it (find every occurrence of
// every secret that starts before the cut, join those that overlap, replace each joined
// region) for up to three secrets that may overlap each other and the text.
func FuzzRedactor(f *testing.F) {
	f.Add("aaaaBBBB", "BBBBcccc", "x", "x aaaaBBBBcccc y", 9)
	f.Add("0123456789", "1234", "5678", "x0123456789y", 12)
	f.Add("abab", "baba", "value", "abababab value", 3)
	f.Add("héllo-wörld", "wörld-secret", "abcd", "xx héllo-wörld-secret yy abcdefgh", 14)
	f.Fuzz(func(t *testing.T, a, b, c, in string, n int) {
		secrets := []string{a, b, c}
		n = ((n % (len(in) + 1)) + len(in) + 1) % (len(in) + 1)
		got, kept := NewRedactor(secrets).Clip(in, n)
		want, wantKept := naiveClip(secrets, in, n)
		if got != want || kept != wantKept {
			t.Fatalf("Clip(%q, %d) with %q = %q, %d\nwant %q, %d", in, n, secrets, got, kept, want, wantKept)
		}
	})
}

// naiveClip is Clip done the slow, obvious way.
func naiveClip(secrets []string, s string, n int) (string, int) {
	type span struct{ start, end int }
	var spans []span
	for _, x := range secrets {
		if len(x) < minSecret || strings.Contains(Redacted, x) {
			continue
		}
		for i := 0; i < n && i+len(x) <= len(s); i++ {
			if s[i:i+len(x)] == x {
				spans = append(spans, span{i, i + len(x)})
			}
		}
	}
	slices.SortFunc(spans, func(p, q span) int { return p.start - q.start })
	var joined []span
	for _, sp := range spans {
		if k := len(joined) - 1; k >= 0 && sp.start < joined[k].end {
			joined[k].end = max(joined[k].end, sp.end)
			continue
		}
		joined = append(joined, sp)
	}
	end := runeCut(s, n)
	if len(joined) > 0 {
		end = max(end, joined[len(joined)-1].end)
	}
	var b strings.Builder
	at := 0
	for _, sp := range joined {
		b.WriteString(s[at:sp.start])
		b.WriteString(Redacted)
		at = sp.end
	}
	b.WriteString(s[at:end])
	return b.String(), end
}

// FuzzClip: a secret inside any text, cut anywhere, shows no part of itself (4 bytes or
// more) in what Clip keeps, and the cut never splits a character.
func FuzzClip(f *testing.F) {
	f.Add("abc ", " def", 5)
	f.Add("", "", 0)
	f.Add("é", "ü\xff", 3)
	f.Fuzz(func(t *testing.T, before, after string, n int) {
		if partOf(before+"\x00"+after, secret) != "" {
			t.Skip() // the text itself holds a part of the secret
		}
		in := before + secret + after
		n = ((n % (len(in) + 1)) + len(in) + 1) % (len(in) + 1)
		got, _ := NewRedactor([]string{secret}).Clip(in, n)
		if part := partOf(got, secret); part != "" {
			t.Fatalf("cut at %d of %q: %q shows in %q", n, in, part, got)
		}
		if utf8.ValidString(in) && !utf8.ValidString(got) {
			t.Fatalf("cut at %d of %q split a character: %q", n, in, got)
		}
	})
}

// TestRedactMapKeys: a secret in a map's key is hidden like one in a value, in data held as
// a map or as a cty object; two keys that held secrets stay two entries.
func TestRedactMapKeys(t *testing.T) {
	secret, other := "hunter2-Key", "hunter2-Other"
	r := &Result{Data: map[string]any{"units": map[string]any{secret: "on", other: "off", "plain": "ok"}}}
	r.Redact([]string{secret, other})
	units := r.Data.(map[string]any)["units"].(map[string]any)
	if len(units) != 3 || units["plain"] != "ok" {
		t.Errorf("map data: %v", units)
	}
	for k := range units {
		if strings.Contains(k, "hunter2") {
			t.Errorf("map data key %q shows the secret", k)
		}
	}
	v := cty.ObjectVal(map[string]cty.Value{"params": cty.MapVal(map[string]cty.Value{
		secret: cty.StringVal("1"), other: cty.StringVal("2"), "plain": cty.StringVal("3")})})
	r = &Result{Data: v}
	r.Redact([]string{secret, other})
	params := r.Data.(cty.Value).GetAttr("params").AsValueMap()
	if len(params) != 3 || params["plain"].AsString() != "3" {
		t.Errorf("cty data: %#v", params)
	}
	for k := range params {
		if strings.Contains(k, "hunter2") {
			t.Errorf("cty data key %q shows the secret", k)
		}
	}
}
