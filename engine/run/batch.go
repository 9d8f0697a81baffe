package run

import (
	"context"
	"fmt"
	"sync"

	"github.com/runbook/runbook/engine/config"
	"github.com/runbook/runbook/engine/plan"
	"github.com/runbook/runbook/inventory"
)

// play runs one play in serial batches. Within a batch, with the free strategy every host
// runs its tasks on its own, holding one of the forks for its whole play; with the linear
// strategy every host of the batch finishes task i before any starts task i+1, and a fork
// is held per task (so hosts waiting for the others hold none).
//
// After each batch, max_fail_percentage compares the hosts of that batch that failed or were
// unreachable in this play with the batch's size: when failed*100/size is greater than the
// setting, no further batch and no later play runs, and play returns false.
func (e *Engine) play(ctx context.Context, pi int, p *plan.Play) bool {
	forks := e.Options.Forks
	if p.Play.Forks > 0 {
		forks = p.Play.Forks
	}
	if forks < 1 {
		forks = 1
	}
	strategy := p.Play.Strategy
	if strategy == "" {
		strategy = e.Options.Strategy
	}
	linear := strategy == config.StrategyLinear
	// Hosts that failed or were unreachable in an earlier play take no part.
	e.mu.Lock()
	live := make([]*inventory.Host, 0, len(p.Hosts))
	for _, h := range p.Hosts {
		if !e.dead[h.Name] {
			live = append(live, h)
		}
	}
	e.mu.Unlock()
	for bi, batch := range Batches(len(live), p.Play.Serial) {
		hosts := live[batch[0]:batch[1]]
		sem := make(chan struct{}, forks)
		b := &batchRun{once: map[string]*onceRun{}}
		if linear {
			b.step = newStepper(len(hosts))
			b.slot = func() func() {
				sem <- struct{}{}
				return func() { <-sem }
			}
		}
		var wg sync.WaitGroup
		var failedMu sync.Mutex
		failed := 0
		for i, h := range hosts {
			if ctx.Err() != nil {
				if b.step != nil {
					for range hosts[i:] {
						b.step.leave()
					}
				}
				break
			}
			if !linear {
				sem <- struct{}{}
			}
			wg.Add(1)
			go func(h *inventory.Host) {
				defer wg.Done()
				if linear {
					defer b.step.leave()
				} else {
					defer func() { <-sem }()
				}
				ok := e.host(ctx, p, h, b)
				if !ok {
					failedMu.Lock()
					failed++
					failedMu.Unlock()
					// A host that failed may be half done: later plays leave it alone.
					e.mu.Lock()
					e.dead[h.Name] = true
					e.mu.Unlock()
				}
				e.doneWith(h.Name, pi, ok)
			}(h)
		}
		wg.Wait()
		if mfp := p.Play.MaxFailPercentage; mfp != nil && len(hosts) > 0 {
			if pct := float64(failed) * 100 / float64(len(hosts)); pct > *mfp {
				e.recap.Stopped = fmt.Sprintf("play %q stopped after batch %d: %d of %d hosts failed (%.4g%% > max_fail_percentage %g)",
					p.Play.Name, bi+1, failed, len(hosts), pct, *mfp)
				return false
			}
		}
	}
	return true
}

// batchRun is what the hosts of one serial batch share.
type batchRun struct {
	once map[string]*onceRun // run_once tasks by name
	mu   sync.Mutex
	// step and slot are set with the linear strategy: the barrier between tasks, and a
	// fork taken for the length of one task.
	step *stepper
	slot func() (release func())
}

// stepper is a reusable barrier for a changing number of hosts: wait returns when every
// host still in the play has arrived; leave takes a host out (finished, failed, or never
// started).
type stepper struct {
	mu      sync.Mutex
	cond    *sync.Cond
	active  int
	arrived int
	gen     int
}

func newStepper(n int) *stepper {
	s := &stepper{active: n}
	s.cond = sync.NewCond(&s.mu)
	return s
}

func (s *stepper) wait() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.arrived++
	if s.arrived >= s.active {
		s.next()
		return
	}
	for g := s.gen; g == s.gen; {
		s.cond.Wait()
	}
}

func (s *stepper) leave() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.active--
	if s.arrived > 0 && s.arrived >= s.active {
		s.next()
	}
}

func (s *stepper) next() {
	s.arrived = 0
	s.gen++
	s.cond.Broadcast()
}

// Batches splits n hosts into serial batches [from, to). Without a serial plan there is one
// batch; the last batch size repeats until every host is covered.
func Batches(n int, serial []config.Batch) [][2]int {
	if n == 0 {
		return nil
	}
	if len(serial) == 0 {
		return [][2]int{{0, n}}
	}
	var out [][2]int
	for from, i := 0, 0; from < n; i++ {
		b := serial[min(i, len(serial)-1)]
		size := b.Count
		if size == 0 {
			size = int(float64(n) * b.Percent / 100)
			if size < 1 {
				size = 1
			}
		}
		to := min(from+size, n)
		out = append(out, [2]int{from, to})
		from = to
	}
	return out
}
