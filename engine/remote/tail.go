package remote

import (
	"io"
	"sync"
)

// tailBuffer keeps the last max bytes written to it: a helper's stderr, for error messages,
// without letting a chatty helper grow the controller's memory.
type tailBuffer struct {
	mu  sync.Mutex
	max int
	b   []byte
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.b = append(t.b, p...)
	if len(t.b) > t.max {
		t.b = append([]byte(nil), t.b[len(t.b)-t.max:]...)
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.b)
}

func copyTo(w io.Writer, r io.Reader) (int64, error) { return io.Copy(w, r) }
