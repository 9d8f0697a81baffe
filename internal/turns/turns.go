// Package turns lets at most n callers do something at once, the rest waiting their turn:
// the controller's bound on what many hosts share (helper pushes, connection setups).
package turns

import (
	"context"
	"sync"
	"time"
)

// Turns lets at most n callers in at once; its zero value is ready, and n is read by the
// first Enter (n < 1: no limit). With Hold set, a caller that keeps its turn longer than
// Hold gives it up by itself and goes on without it, so that one slow caller does not hold
// the others back.
type Turns struct {
	Hold time.Duration

	once sync.Once
	ch   chan struct{}
}

// Enter waits for a turn, or for ctx to end (its cause is the error), and returns the
// function that gives the turn back. That function may be called any number of times.
func (t *Turns) Enter(ctx context.Context, n int) (func(), error) {
	t.once.Do(func() {
		if n > 0 {
			t.ch = make(chan struct{}, n)
		}
	})
	if t.ch == nil {
		return func() {}, nil
	}
	select {
	case t.ch <- struct{}{}:
	case <-ctx.Done():
		return nil, context.Cause(ctx)
	}
	var once sync.Once
	leave := func() { once.Do(func() { <-t.ch }) }
	if t.Hold <= 0 {
		return leave, nil
	}
	timer := time.AfterFunc(t.Hold, leave)
	return func() {
		timer.Stop()
		leave()
	}, nil
}
