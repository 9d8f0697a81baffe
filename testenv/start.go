package testenv

import (
	"context"
	"os"
	"strings"
	"time"
)

// TB is the part of testing.TB that StartTest uses. testenv is linked into cmd/testenv, so
// it does not import testing itself: tests call testlab.Start (testenv/testlab), which
// passes a testing.TB and testing.Short.
type TB interface {
	Helper()
	Cleanup(func())
	TempDir() string
	Log(args ...any)
	Logf(format string, args ...any)
	Errorf(format string, args ...any)
	Fatalf(format string, args ...any)
	Skip(args ...any)
	Skipf(format string, args ...any)
}

// StartTest brings up a lab for a test and tears it down in t.Cleanup; short says whether
// the test runs with -short. Tests call it through testlab.Start.
//
// It skips the test under -short, when not root, or when the tier's
// prerequisites are missing, unless CI=true: then a lab that cannot start
// fails the test, so CI can never silently skip the lab tests. Layers the
// lab asks for are built first; one that cannot be built skips the test in
// the same way.
func StartTest(t TB, short bool, opts Options) *Lab {
	t.Helper()
	if short {
		t.Skip("lab tests do not run with -short")
	}
	if opts.Tier == "" {
		opts.Tier = TierNS
	}
	if err := CheckTier(opts.Tier); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("CI=true and the lab cannot start: %v", err)
		}
		t.Skipf("skipping: %v", err)
	}
	if opts.Dir == "" {
		opts.Dir = t.TempDir()
	}
	if opts.Log == nil {
		opts.Log = testLogWriter{t}
	}
	if len(opts.Layers) > 0 && (opts.Tier == TierSystemd || opts.Tier == TierVM) && !LayersBuilt(opts.Layers) {
		// A layer needs the mirror; where it cannot be built, only the tests
		// that asked for it skip (never under CI=true).
		lctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
		start := time.Now()
		_, err := EnsureLayers(lctx, opts.Layers, logfFor(opts.Log))
		cancel()
		if err != nil {
			if os.Getenv("CI") == "true" {
				t.Fatalf("CI=true and the lab layers %v cannot be built: %v", opts.Layers, err)
			}
			t.Skipf("skipping: lab layers %v cannot be built here: %v", opts.Layers, err)
		}
		t.Logf("lab layers %v built in %s", opts.Layers, time.Since(start).Round(time.Millisecond))
	}
	// Generous: a cold systemd tier, or a vm with the systemd userland, includes a
	// debootstrap; a vm waits up to vmBootTimeout for its boot alone.
	timeout := 2 * time.Minute
	switch {
	case opts.Tier == TierSystemd, opts.Tier == TierVM && opts.VMUserland == VMUserlandSystemd:
		timeout = 12 * time.Minute
	case opts.Tier == TierVM:
		timeout = vmBootTimeout + 2*time.Minute
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	start := time.Now()
	lab, err := Up(ctx, opts)
	if err != nil {
		t.Fatalf("lab up (%s, %d hosts): %v", opts.Tier, opts.Hosts, err)
	}
	t.Logf("lab up: %s tier, %d hosts in %s (%s)", lab.Tier, len(lab.Hosts), time.Since(start).Round(time.Millisecond), lab.Dir)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		if err := lab.Down(ctx); err != nil {
			t.Errorf("lab down: %v", err)
		}
	})
	return lab
}

type testLogWriter struct{ t TB }

func (w testLogWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}
