package transport

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestStartupGate(t *testing.T) {
	for _, tc := range []struct {
		name  string
		n     int
		taken int           // places taken (and kept) before the probe
		hold  time.Duration // how long a place is kept at most
		// the probe gets in at once, after the hold ran out, or not before its context ends
		want string
	}{
		{"no limit", 0, 50, time.Hour, "at once"},
		{"a place free", 2, 1, time.Hour, "at once"},
		{"full, until a setup outlasts the hold", 2, 2, 100 * time.Millisecond, "after the hold"},
		{"full, the context ends first", 1, 1, time.Hour, "context ended"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := &startupGate{hold: tc.hold}
			var leaves []func()
			for i := 0; i < tc.taken; i++ {
				leave, err := g.enter(context.Background(), tc.n)
				if err != nil {
					t.Fatal(err)
				}
				leaves = append(leaves, leave)
			}
			stop := errors.New("run interrupted")
			ctx, cancel := context.WithCancelCause(context.Background())
			defer cancel(nil)
			time.AfterFunc(time.Second, func() { cancel(stop) })
			t0 := time.Now()
			leave, err := g.enter(ctx, tc.n)
			waited := time.Since(t0)
			got := "at once"
			switch {
			case err != nil:
				if !errors.Is(err, stop) {
					t.Fatalf("enter = %v, want the context's cause", err)
				}
				got = "context ended"
			case waited >= tc.hold && waited < time.Second:
				got = "after the hold"
			case waited >= 50*time.Millisecond:
				got = "after " + waited.String()
			}
			if got != tc.want {
				t.Fatalf("the probe got in %s, want %s", got, tc.want)
			}
			if leave != nil {
				leave()
			}
			// Leaving twice (a setup done after its hold ran out) frees one place only.
			for _, l := range leaves {
				l()
				l()
			}
			if tc.n > 0 && len(g.ch) != 0 {
				t.Errorf("%d places still taken after every setup left", len(g.ch))
			}
		})
	}
}
