package remote

import (
	"context"
	"sync"
)

// gate lets at most n callers in at once; its zero value is ready. n is read by the first
// enter; n < 0 means no limit.
type gate struct {
	once sync.Once
	ch   chan struct{}
}

// enter waits for a place, or for ctx to end, and returns the function that gives the
// place back.
func (g *gate) enter(ctx context.Context, n int) (func(), error) {
	g.once.Do(func() {
		if n > 0 {
			g.ch = make(chan struct{}, n)
		}
	})
	if g.ch == nil {
		return func() {}, nil
	}
	select {
	case g.ch <- struct{}{}:
		return func() { <-g.ch }, nil
	case <-ctx.Done():
		return nil, context.Cause(ctx)
	}
}
