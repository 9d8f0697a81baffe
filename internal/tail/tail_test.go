package tail

import "testing"

func TestBufferKeepsTheEnd(t *testing.T) {
	b := &Buffer{Max: 8}
	for _, s := range []string{"hello ", "world", "!"} {
		b.Write([]byte(s))
	}
	if got := b.String(); got != "o world!" {
		t.Errorf("got %q", got)
	}
}
