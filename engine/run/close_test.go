package run

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/runbook/runbook/engine/plan"
)

// barrierConn is a fakeConn whose Close returns only once every host's Close has begun (or
// after a while, noting that it gave up): connections closed one after another never get
// there.
type barrierConn struct {
	*fakeConn
	b *closeBarrier
}

type closeBarrier struct {
	arrived sync.WaitGroup
	all     chan struct{}
	mu      sync.Mutex
	gaveUp  int
}

func (x barrierConn) Close() error {
	x.b.arrived.Done()
	select {
	case <-x.b.all:
	case <-time.After(5 * time.Second):
		x.b.mu.Lock()
		x.b.gaveUp++
		x.b.mu.Unlock()
	}
	return x.fakeConn.Close()
}

type barrierConnector struct {
	fakeConnector
	b *closeBarrier
}

func (c *barrierConnector) Connect(ctx context.Context, to Endpoint) (Connection, error) {
	x, err := c.fakeConnector.Connect(ctx, to)
	if err != nil {
		return nil, err
	}
	return barrierConn{x.(*fakeConn), c.b}, nil
}

// TestCloseAllAtOnce: at the end of a run, the hosts' connections are closed at the same
// time, not one after another (each Close may wait seconds for its helper to exit).
func TestCloseAllAtOnce(t *testing.T) {
	hosts := []string{"a", "b", "c", "d", "e", "f"}
	l := newLab(t, `play "p" {
  hosts = "kvm"
  task "t" {
    file {
      path = "/x"
    }
  }
}`, hosts...)
	b := &closeBarrier{all: make(chan struct{})}
	b.arrived.Add(len(hosts))
	go func() { b.arrived.Wait(); close(b.all) }()
	conn := &barrierConnector{fakeConnector: *l.conn, b: b}
	pl, diags := plan.Build(l.rb, l.inv, plan.Options{})
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	e := &Engine{Runbook: l.rb, Connector: conn, Observer: &recorder{}, Options: Options{Forks: 1}}
	e.Run(context.Background(), pl)
	if b.gaveUp != 0 {
		t.Errorf("%d of %d connections were closed one after another, not at once", b.gaveUp, len(hosts))
	}
}
