package tail

import (
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"
)

func TestBufferKeepsTheEnd(t *testing.T) {
	b := &Buffer{Max: 8}
	for _, s := range []string{"hello ", "world", "!"} {
		b.Write([]byte(s))
	}
	if got := b.String(); got != "o world!" {
		t.Errorf("got %q", got)
	}
}

func TestBufferReadFrom(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   string
		max  int
		want string
	}{
		{"short", "exited 3", 64, "exited 3"},
		{"longer than the read buffer, kept whole", strings.Repeat("x", 1500) + "end", 4096, strings.Repeat("x", 1500) + "end"},
		{"longer than Max, the end kept", strings.Repeat("y", 2000) + "the end", 7, "the end"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := &Buffer{Max: tc.max}
			n, err := io.Copy(b, iotest.OneByteReader(strings.NewReader(tc.in)))
			if err != nil || n != int64(len(tc.in)) {
				t.Fatalf("io.Copy = %d, %v; want %d, nil", n, err, len(tc.in))
			}
			if got := b.String(); got != tc.want {
				t.Errorf("kept %q, want %q", got, tc.want)
			}
		})
	}
	// An error other than the end is returned, with what came before it kept.
	b := &Buffer{Max: 64}
	boom := errors.New("connection lost")
	if _, err := b.ReadFrom(iotest.TimeoutReader(strings.NewReader("partial"))); err == nil {
		t.Fatal("a failing reader: no error")
	}
	if _, err := b.ReadFrom(io.MultiReader(strings.NewReader("a"), iotest.ErrReader(boom))); !errors.Is(err, boom) {
		t.Fatalf("ReadFrom = %v, want %v", err, boom)
	}
}
