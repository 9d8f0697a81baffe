package turns

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestTurns(t *testing.T) {
	for _, tc := range []struct {
		name  string
		n     int
		taken int           // turns taken (and kept) before the probe
		hold  time.Duration // 0: kept until given back
		// the probe gets in at once, after the hold ran out, or not before its context ends
		want string
	}{
		{"no limit", 0, 1000, 0, "at once"},
		{"a negative limit is none", -1, 10, 0, "at once"},
		{"a turn free", 3, 2, 0, "at once"},
		{"full", 3, 3, 0, "context ended"},
		{"one turn", 1, 1, 0, "context ended"},
		{"full, until a caller outlasts the hold", 2, 2, 100 * time.Millisecond, "after the hold"},
		{"full, the context ends before the hold", 1, 1, time.Hour, "context ended"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tu := &Turns{Hold: tc.hold}
			var leaves []func()
			for i := 0; i < tc.taken; i++ {
				leave, err := tu.Enter(context.Background(), tc.n)
				if err != nil {
					t.Fatal(err)
				}
				leaves = append(leaves, leave)
			}
			stop := errors.New("run interrupted")
			ctx, cancel := context.WithCancelCause(context.Background())
			defer cancel(nil)
			time.AfterFunc(500*time.Millisecond, func() { cancel(stop) })
			t0 := time.Now()
			leave, err := tu.Enter(ctx, tc.n)
			waited := time.Since(t0)
			got := "at once"
			switch {
			case err != nil:
				if !errors.Is(err, stop) {
					t.Fatalf("Enter = %v, want the context's cause", err)
				}
				got = "context ended"
			case tc.hold > 0 && waited >= tc.hold && waited < 500*time.Millisecond:
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
			if got == "context ended" {
				// A turn given back lets the next caller in.
				leaves[0]()
				l, err := tu.Enter(context.Background(), tc.n)
				if err != nil {
					t.Fatalf("after a turn was given back: %v", err)
				}
				l()
			}
			// Giving a turn back twice (a caller done after its hold ran out) frees one only.
			for _, l := range leaves {
				l()
				l()
			}
			if n := len(tu.ch); n != 0 {
				t.Errorf("%d turns still taken after every caller left", n)
			}
		})
	}
}
