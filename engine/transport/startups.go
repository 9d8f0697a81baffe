package transport

import (
	"context"
	"sync"
	"time"
)

// startupHold is how long a connection setup keeps its place under Dialer.MaxStartups. A
// setup still going after it goes on without the place.
const startupHold = 5 * time.Second

// startupGate is Dialer.MaxStartups' count of setups in progress; its zero value is ready,
// and it is made on first use with the limit then set.
type startupGate struct {
	once sync.Once
	ch   chan struct{}
	hold time.Duration // 0: startupHold; for tests
}

// enter waits for a place (or for ctx to end) and returns the function that gives it
// back, which may be called any number of times; the place is also given back by itself
// after the hold.
func (g *startupGate) enter(ctx context.Context, n int) (func(), error) {
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
	case <-ctx.Done():
		return nil, context.Cause(ctx)
	}
	var once sync.Once
	leave := func() { once.Do(func() { <-g.ch }) }
	hold := g.hold
	if hold <= 0 {
		hold = startupHold
	}
	t := time.AfterFunc(hold, leave)
	return func() {
		t.Stop()
		leave()
	}, nil
}
