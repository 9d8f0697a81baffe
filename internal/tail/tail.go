// Package tail keeps the end of a stream: the last bytes a helper or a ProxyCommand wrote to
// stderr, for error messages, without letting a chatty process grow the controller's memory.
package tail

import (
	"io"
	"sync"
)

// Buffer keeps the last Max bytes written to it. It is safe for concurrent use.
type Buffer struct {
	Max int

	mu sync.Mutex
	b  []byte
}

// Write appends p, dropping the oldest bytes beyond Max.
func (t *Buffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.b = append(t.b, p...)
	if len(t.b) > t.Max {
		t.b = append([]byte(nil), t.b[len(t.b)-t.Max:]...)
	}
	return len(p), nil
}

// String returns what is kept.
func (t *Buffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.b)
}

// ReadFrom writes what r yields until it ends, through a small buffer: a controller keeps
// one such copy going per helper, idle nearly all the time, and io.Copy's own 32 KiB for
// each would be 32 MiB at a thousand hosts.
func (t *Buffer) ReadFrom(r io.Reader) (int64, error) {
	buf := make([]byte, 512)
	var n int64
	for {
		k, err := r.Read(buf)
		if k > 0 {
			_, _ = t.Write(buf[:k])
			n += int64(k)
		}
		if err == io.EOF {
			return n, nil
		}
		if err != nil {
			return n, err
		}
	}
}
