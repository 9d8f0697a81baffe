package remote

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestGate(t *testing.T) {
	for _, tc := range []struct {
		name   string
		n      int
		enters int  // taken and kept before the probe
		waits  bool // the probe must wait
	}{
		{"under the limit", 3, 2, false},
		{"at the limit", 3, 3, true},
		{"one place", 1, 1, true},
		{"no limit", -1, 1000, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var g gate
			var releases []func()
			for i := 0; i < tc.enters; i++ {
				r, err := g.enter(context.Background(), tc.n)
				if err != nil {
					t.Fatalf("enter %d: %v", i, err)
				}
				releases = append(releases, r)
			}
			cause := errors.New("run interrupted")
			ctx, cancel := context.WithCancelCause(context.Background())
			time.AfterFunc(50*time.Millisecond, func() { cancel(cause) })
			r, err := g.enter(ctx, tc.n)
			if tc.waits {
				if !errors.Is(err, cause) {
					t.Fatalf("a full gate: enter = %v, want the context's cause", err)
				}
				// A place given back lets the next one in.
				releases[0]()
				r, err = g.enter(context.Background(), tc.n)
				if err != nil {
					t.Fatalf("after a release: %v", err)
				}
				r()
				return
			}
			if err != nil {
				t.Fatalf("enter: %v", err)
			}
			r()
		})
	}
}
