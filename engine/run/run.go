// Package run executes a plan: every selected host at once (bounded by forks), tasks in order
// on each host. A host has one connection, opened before its first play and closed as soon as
// it has no more plays to run; on it, one helper per identity (the login user, or a become
// user) that some task of the host runs as, each started the first time a task needs it.
// Hosts are independent: a failed or unreachable host never stops another.
package run

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/zclconf/go-cty/cty"

	"github.com/runbook/runbook/engine/config"
	"github.com/runbook/runbook/engine/controller"
	"github.com/runbook/runbook/engine/plan"
	"github.com/runbook/runbook/inventory"
	"github.com/runbook/runbook/modules"
)

// Status is the outcome of one task on one host.
type Status string

// Statuses, in the order a recap lists them.
const (
	OK          Status = "ok"
	Changed     Status = "changed"
	Drift       Status = "drift"
	Unknown     Status = "unknown"
	Skipped     Status = "skipped"
	Failed      Status = "failed"
	Unreachable Status = "unreachable"
)

// Result is one task (or one for_each element of it) on one host.
type Result struct {
	Host    string
	Play    string
	Task    string
	Module  string
	Item    string // the for_each key, "" without for_each
	Handler bool
	Status  Status
	Msg     string
	Diff    *modules.Diff
	// Data is what the module registered: an object with one attribute per field its Info
	// declares in Returns, each of its declared type; cty.NilVal when it registered nothing.
	Data     cty.Value
	Warnings []string
	// RebootRequired says the change takes full effect only after a reboot.
	RebootRequired bool
	Duration       time.Duration
}

// Observer receives a run's events as they happen; views implement it. Calls for one host
// come in order; calls for different hosts may come concurrently.
type Observer interface {
	HostStarted(host string)
	TaskDone(r Result)
	HostDone(host string, s Stats)
}

// ErrUnreachable marks executor errors that mean the host itself is gone (a dropped
// connection), not that the task failed.
var ErrUnreachable = errors.New("host unreachable")

// Executor runs modules on one host as one identity: the helper process behind one
// session of the host's connection. The Connection that handed it out ends it.
type Executor interface {
	Run(ctx context.Context, module string, args cty.Value, apply bool) (*modules.Result, error)
}

// Connection is one connection to a host, which hands out an executor per identity.
type Connection interface {
	// Executor returns the executor that runs tasks as id, starting its helper on the
	// connection the first time id is asked for; later calls with id return the same
	// executor. An error means the helper could not start: the host is unreachable as id.
	Executor(ctx context.Context, id Identity) (Executor, error)
	// Close ends every helper started on the connection, then the connection.
	Close() error
}

// Connector connects to hosts; an error means the host is unreachable. Connect starts no
// helper.
type Connector interface {
	Connect(ctx context.Context, h *inventory.Host) (Connection, error)
}

// Options tune a run.
type Options struct {
	Forks int
	// Check runs every module in check mode: nothing changes, drift is reported.
	Check bool
	// HostTimeout bounds everything one host does in one play; 0 means no bound.
	HostTimeout time.Duration
	// ForceHandlers runs the notified handlers of a host even when a task failed on it.
	ForceHandlers bool
	// Strategy is the default for plays that set none: config.StrategyFree ("" too) or
	// config.StrategyLinear.
	Strategy string
}

// Stats counts one host's results.
type Stats struct {
	OK, Changed, Drift, Unknown, Skipped, Failed, Unreachable int
	RebootRequired                                            bool
}

func (s *Stats) add(st Status, n int) {
	switch st {
	case OK:
		s.OK += n
	case Changed:
		s.Changed += n
	case Drift:
		s.Drift += n
	case Unknown:
		s.Unknown += n
	case Skipped:
		s.Skipped += n
	case Failed:
		s.Failed += n
	case Unreachable:
		s.Unreachable += n
	}
}

// Recap is a whole run's outcome.
type Recap struct {
	Hosts    map[string]*Stats
	Duration time.Duration
	// Interrupted is set when the run was cancelled before it finished.
	Interrupted bool
	// Stopped says why the run stopped early because too many hosts failed
	// (max_fail_percentage); "" when it did not.
	Stopped string
}

// Exit codes, as documented for the CLI: the lowest non-zero that applies wins.
const (
	ExitOK          = 0
	ExitFailed      = 2
	ExitUnreachable = 3
	ExitDrift       = 4
)

// ExitCode summarises the recap.
func (r *Recap) ExitCode() int {
	failed, unreachable, drift := false, false, false
	for _, s := range r.Hosts {
		failed = failed || s.Failed > 0
		unreachable = unreachable || s.Unreachable > 0
		drift = drift || s.Drift > 0
	}
	switch {
	case failed || r.Interrupted:
		return ExitFailed
	case unreachable:
		return ExitUnreachable
	case drift:
		return ExitDrift
	}
	return ExitOK
}

// Engine runs plans.
type Engine struct {
	Runbook   *config.Runbook
	Connector Connector
	Observer  Observer
	Options   Options

	mu    sync.Mutex
	conns map[string]Connection // open connections by host
	// last is the index of the last play with tasks that each host takes part in: its
	// connection is closed once that play is done with it.
	last    map[string]int
	closing sync.WaitGroup       // connections being closed
	dead    map[string]bool      // hosts that failed or were unreachable: later plays skip them
	facts   map[string]cty.Value // facts by host, gathered when first needed
	// helpers lists, by host, the identities whose helper runs on its open connection, in
	// the order they started.
	helpers map[string][]Identity
	recap   *Recap
}

// Run executes the plan and returns its recap. Cancelling ctx stops every host at its next
// task boundary (a running task is cancelled) and returns the recap so far.
func (e *Engine) Run(ctx context.Context, pl *plan.Plan) *Recap {
	start := time.Now()
	e.conns = map[string]Connection{}
	e.last = map[string]int{}
	e.dead = map[string]bool{}
	e.helpers = map[string][]Identity{}
	e.recap = &Recap{Hosts: map[string]*Stats{}}
	defer e.closeAll()
	for i, p := range pl.Plays {
		if len(p.Tasks) == 0 {
			continue // such a play connects to nobody
		}
		for _, h := range p.Hosts {
			e.last[h.Name] = i
		}
	}
	for i, p := range pl.Plays {
		if ctx.Err() != nil {
			break
		}
		if !e.play(ctx, i, p) {
			break
		}
	}
	e.recap.Duration = time.Since(start)
	e.recap.Interrupted = ctx.Err() != nil
	return e.recap
}

// closeHost ends the host's helpers and connection, when it has them, without waiting: each
// Close waits a little for its helpers to exit, and neither the host's fork nor the other
// hosts should wait for that. closeAll waits for every close.
func (e *Engine) closeHost(name string) {
	e.mu.Lock()
	c := e.conns[name]
	delete(e.conns, name)
	delete(e.helpers, name)
	e.mu.Unlock()
	if c == nil {
		return
	}
	e.closing.Add(1)
	go func() {
		defer e.closing.Done()
		_ = c.Close()
	}()
}

// closeAll ends the connections still open (a run cut short leaves some), all at once, and
// waits until every close, these and those begun earlier, is done.
func (e *Engine) closeAll() {
	e.mu.Lock()
	names := make([]string, 0, len(e.conns))
	for name := range e.conns {
		names = append(names, name)
	}
	e.mu.Unlock()
	for _, name := range names {
		e.closeHost(name)
	}
	e.closing.Wait()
}

// doneWith closes the host's connection when play i was the last it takes part in, or
// when the host failed or is unreachable (later plays skip it).
func (e *Engine) doneWith(h string, i int, ok bool) {
	e.mu.Lock()
	last, dead := e.last[h], e.dead[h]
	e.mu.Unlock()
	if !ok || dead || last <= i {
		e.closeHost(h)
	}
}

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

// onceRun is one run_once task of a batch: the first host to reach it runs it, the others
// wait for its result.
type onceRun struct {
	done   chan struct{}
	host   string
	status Status
	result cty.Value
}

// claim returns the task's onceRun and whether the caller is the host that runs it.
func (b *batchRun) claim(task, host string) (*onceRun, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if o, ok := b.once[task]; ok {
		return o, false
	}
	o := &onceRun{done: make(chan struct{}), host: host}
	b.once[task] = o
	return o, true
}

// release gives up a claim so that the next host to ask runs the task.
func (b *batchRun) release(task string, o *onceRun) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.once[task] == o {
		delete(b.once, task)
	}
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

// hostRun is the state of one host in one play.
type hostRun struct {
	stage  string // what the host is doing outside a task, for a bug report
	e      *Engine
	p      *plan.Play
	b      *batchRun
	h      *inventory.Host
	conn   Connection
	become HostBecome // what the host's inventory says about become
	// startFailed is set when a helper could not start: that was reported as the host's
	// "connect" step, and the host is unreachable.
	startFailed bool
	vars        cty.Value
	results     map[string]cty.Value
	statuses    map[string]Status // per task: its overall status
	notified    map[string]bool
	stats       *Stats
	// delivering is the result being handed to the observer, counted already: when the
	// observer panics on it, the failure that reports the bug takes its place in the count.
	delivering *Result
}

// host runs a play's tasks on one host; it returns false when the host failed or was
// unreachable.
func (e *Engine) host(ctx context.Context, p *plan.Play, h *inventory.Host, b *batchRun) bool {
	e.mu.Lock()
	stats := e.recap.Hosts[h.Name]
	if stats == nil {
		stats = &Stats{}
		e.recap.Hosts[h.Name] = stats
	}
	dead := e.dead[h.Name]
	e.mu.Unlock()
	if dead {
		return false
	}
	if e.Options.HostTimeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, e.Options.HostTimeout)
		defer cancel()
	}
	hr := &hostRun{e: e, p: p, h: h, b: b, stats: stats, results: map[string]cty.Value{},
		statuses: map[string]Status{}, notified: map[string]bool{}}
	ok := hr.guardedRun(ctx)
	hr.hostDone()
	return ok
}

// guardedRun is run with a net under it: a panic on this host's path (a bug, in runbook
// or in a view) fails the host with a message to report, and the run goes on with the
// other hosts.
func (hr *hostRun) guardedRun(ctx context.Context) (ok bool) {
	defer func() {
		if p := recover(); p != nil {
			ok = false
			hr.markDead()
			hr.reportBug(Result{Task: hr.stage}, p, hr.hostSecrets)
		}
	}()
	hr.stage = "start"
	if hr.e.Observer != nil {
		hr.e.Observer.HostStarted(hr.h.Name)
	}
	return hr.run(ctx)
}

// hostDone tells the observer the host is done. A panic there (a bug in a view) is
// dropped: there is nothing left to show for the host, and the run must go on.
func (hr *hostRun) hostDone() {
	defer func() { _ = recover() }()
	if hr.e.Observer == nil {
		return
	}
	hr.e.mu.Lock()
	s := *hr.stats
	hr.e.mu.Unlock()
	hr.e.Observer.HostDone(hr.h.Name, s)
}

// hostSecrets returns the sensitive strings in scope on the host's path outside a task:
// the runbook's variables and locals, and the host's variables.
func (hr *hostRun) hostSecrets() []string {
	vars := hr.vars
	if vars == cty.NilVal {
		vars = config.InventoryVars(inventory.CtyValue(hr.h.Vars))
	}
	return config.ContextSecrets(hr.e.Runbook.EvalContext(config.Scope{Host: hr.h.Name, Groups: hr.h.Groups, Vars: vars, Facts: hr.facts()}))
}

// reportBug reports r as failed with the internal error that p (a recovered panic) is,
// hiding the secrets that scope returns, and returns what it reported. When the panic
// came from the observer, on a result that was counted already, the failure replaces
// that result in the count. A panic while reporting (in an observer) is dropped: the
// result cannot be shown, but the run must go on.
func (hr *hostRun) reportBug(r Result, p any, scope func() []string) (reported Result) {
	defer func() {
		// counted, not shown
		hr.delivering = nil
		_ = recover()
	}()
	site := panicSite()
	r.Status, r.Msg = Failed, internalError(p, site)
	var secrets []string
	func() {
		defer func() {
			if recover() != nil {
				// the secrets are unknown, and the panic's own words might hold one
				r.Msg = internalError("(its message is not shown)", site)
			}
		}()
		secrets = scope()
	}()
	redactResult(&r, secrets)
	if d := hr.delivering; d != nil {
		hr.count(*d, -1)
		hr.delivering = nil
	}
	reported = r
	hr.report(r)
	return r
}

// internalError is the message for a recovered panic: what it said and where, for a bug
// report.
func internalError(p any, site string) string {
	return fmt.Sprintf("internal error (a bug in runbook; please report it): %v at %s", p, site)
}

// panicSite names the innermost function of runbook's own on the panicking stack, and the
// function that panicked when that is another (a library's).
func panicSite() string {
	pcs := make([]uintptr, 64)
	frames := runtime.CallersFrames(pcs[:runtime.Callers(1, pcs)])
	inPanic, site := false, ""
	for {
		f, more := frames.Next()
		switch {
		case f.Function == "runtime.gopanic":
			inPanic = true
		case !inPanic || strings.HasPrefix(f.Function, "runtime."):
		case strings.HasPrefix(f.Function, "github.com/runbook/runbook/"):
			at := fmt.Sprintf("%s (%s:%d)", shortName(f.Function), shortFile(f.File), f.Line)
			if site != "" {
				at += " in " + site
			}
			return at
		case site == "":
			site = shortName(f.Function)
		}
		if !more {
			break
		}
	}
	if site == "" {
		return "an unknown place"
	}
	return site
}

// shortName drops a function's package path: "config.(*Task).Items".
func shortName(fn string) string {
	return fn[strings.LastIndexByte(fn, '/')+1:]
}

// shortFile keeps a file's directory and name: "config/eval.go".
func shortFile(path string) string {
	dir, file := filepath.Split(path)
	return filepath.Join(filepath.Base(dir), file)
}

func (hr *hostRun) report(r Result) {
	r.Host, r.Play = hr.h.Name, hr.p.Play.Name
	hr.count(r, 1)
	if hr.e.Observer != nil {
		hr.delivering = &r
		hr.e.Observer.TaskDone(r)
		hr.delivering = nil
	}
}

// count adds r to the host's stats (n = 1) or takes it out again (n = -1).
func (hr *hostRun) count(r Result, n int) {
	hr.e.mu.Lock()
	defer hr.e.mu.Unlock()
	hr.stats.add(r.Status, n)
	if r.RebootRequired && n > 0 {
		hr.stats.RebootRequired = true
	}
}

func (hr *hostRun) run(ctx context.Context) bool {
	hr.stage = "play vars"
	if len(hr.p.Tasks) == 0 {
		if hr.p.Play.VarsUseFacts {
			return true // nothing to run, and no reason to connect for the vars' facts
		}
		_, diags := hr.e.Runbook.HostVars(hr.p.Play, hr.h.Name, hr.h.Groups, inventory.CtyValue(hr.h.Vars))
		if diags.HasErrors() {
			hr.report(Result{Task: "play vars", Status: Failed, Msg: diagText(diags)})
			return false
		}
		return true
	}
	hr.stage = "become"
	hb, err := InventoryBecome(hr.h)
	if err != nil {
		hr.report(Result{Task: "become", Status: Failed, Msg: strings.TrimPrefix(err.Error(), "host "+hr.h.Name+": ")})
		return false
	}
	hr.become = hb
	// Play vars that use facts need the host first; others are evaluated before connecting,
	// so a bad expression costs no connection.
	connect := func() bool {
		hr.stage = "connect"
		defer hr.slot()()
		c, err := hr.connection(ctx)
		if err != nil {
			if ctx.Err() != nil {
				// the run was cancelled (or the host's time is up) while connecting
				hr.report(Result{Task: "connect", Status: Failed, Msg: hr.interrupted(err).Error()})
				return false
			}
			hr.connectFailed(err)
			return false
		}
		hr.conn = c
		return true
	}
	facts := cty.NilVal
	if hr.p.Play.VarsUseFacts {
		if !connect() {
			return false
		}
		hr.stage = "gather facts"
		if st, msg := hr.ensureFacts(ctx, nil); st != OK {
			if !hr.startFailed {
				hr.report(Result{Task: "gather facts", Status: st, Msg: msg})
			}
			if st == Unreachable {
				hr.markDead()
			}
			return false
		}
		facts = hr.facts()
	}
	hr.stage = "play vars"
	vars, diags := hr.e.Runbook.HostVarsFacts(hr.p.Play, hr.h.Name, hr.h.Groups, inventory.CtyValue(hr.h.Vars), facts)
	if diags.HasErrors() {
		hr.report(Result{Task: "play vars", Status: Failed, Msg: diagText(diags)})
		return false
	}
	hr.vars = vars
	if hr.conn == nil && !connect() {
		return false
	}
	ok := true
	for i, t := range hr.p.Tasks {
		if ctx.Err() != nil {
			return false
		}
		if hr.b.step != nil && i > 0 {
			hr.b.step.wait()
			if ctx.Err() != nil {
				return false
			}
		}
		hr.stage = t.Name
		st := hr.taskInSlot(ctx, t)
		hr.statuses[t.Name] = st
		if st == Failed {
			ok = false
			if t.OnFailure != config.OnFailureContinue {
				// The host stops here; handlers do not run on a host that failed, as
				// their trigger may be half done, unless --force-handlers says they must.
				if hr.e.Options.ForceHandlers {
					hr.handlers(ctx)
				}
				return false
			}
		}
		if st == Unreachable {
			// The connection is gone: later plays skip this host rather than reuse it.
			hr.e.mu.Lock()
			hr.e.dead[hr.h.Name] = true
			hr.e.mu.Unlock()
			return false
		}
	}
	if !hr.handlers(ctx) {
		ok = false
	}
	return ok
}

// handlers runs the play's notified handlers, in the order the play lists them; it returns
// false when one failed. When the host becomes unreachable, the rest do not run.
func (hr *hostRun) handlers(ctx context.Context) bool {
	ok := true
	for _, h := range hr.p.Play.Handlers {
		if !hr.notified[h.Name] || ctx.Err() != nil {
			continue
		}
		hr.stage = "handler " + h.Name
		switch hr.taskInSlot(ctx, h) {
		case Failed:
			ok = false
		case Unreachable:
			// the connection is gone, or the handler's helper could not start
			hr.markDead()
			return false
		}
	}
	return ok
}

// taskInSlot runs one task holding a fork under the linear strategy, and gives the fork
// back however the task ends: a panic that leaves it taken would stop the batch's other
// hosts for good.
func (hr *hostRun) taskInSlot(ctx context.Context, t *config.Task) Status {
	defer hr.slot()()
	return hr.task(ctx, t)
}

// slot takes a fork for one step under the linear strategy; it returns the release.
func (hr *hostRun) slot() func() {
	if hr.b == nil || hr.b.slot == nil {
		return func() {}
	}
	return hr.b.slot()
}

func (hr *hostRun) markDead() {
	hr.e.mu.Lock()
	hr.e.dead[hr.h.Name] = true
	hr.e.mu.Unlock()
}

// FactGatherer is implemented by executors that can report the host's facts (the helper's
// facts op). Facts are gathered once per host and run, when an expression first needs them.
type FactGatherer interface {
	Facts(ctx context.Context) (map[string]any, error)
}

// facts returns the host's facts gathered so far, or cty.NilVal.
func (hr *hostRun) facts() cty.Value {
	hr.e.mu.Lock()
	defer hr.e.mu.Unlock()
	if v, ok := hr.e.facts[hr.h.Name]; ok {
		return v
	}
	return cty.NilVal
}

// ensureFacts gathers the host's facts unless that was done already (facts are gathered
// once per host and run, by the helper factsIdentity picks for task t, nil for the play's
// vars). It returns OK, or the status and message of the failure; when the helper could not
// start, that was reported already (startFailed).
func (hr *hostRun) ensureFacts(ctx context.Context, t *config.Task) (Status, string) {
	if hr.facts() != cty.NilVal {
		return OK, ""
	}
	x, err := hr.executor(ctx, hr.factsIdentity(t))
	if err != nil {
		return startStatus(err), err.Error()
	}
	g, ok := x.(FactGatherer)
	if !ok {
		return Failed, "this connection cannot gather facts"
	}
	data, err := g.Facts(ctx)
	if err != nil {
		if errors.Is(err, ErrUnreachable) {
			return Unreachable, strings.TrimPrefix(err.Error(), hr.h.Name+": ")
		}
		return Failed, "gathering facts: " + err.Error()
	}
	m := map[string]cty.Value{}
	for k, v := range data {
		m[k] = inventory.CtyValue(v)
	}
	hr.e.mu.Lock()
	if hr.e.facts == nil {
		hr.e.facts = map[string]cty.Value{}
	}
	hr.e.facts[hr.h.Name] = cty.ObjectVal(m)
	hr.e.mu.Unlock()
	return OK, ""
}

// connection returns the host's connection, opening it on the host's first play.
func (hr *hostRun) connection(ctx context.Context) (Connection, error) {
	hr.e.mu.Lock()
	c := hr.e.conns[hr.h.Name]
	hr.e.mu.Unlock()
	if c != nil {
		return c, nil
	}
	c, err := hr.e.Connector.Connect(ctx, hr.h)
	if err != nil {
		return nil, err
	}
	hr.e.mu.Lock()
	hr.e.conns[hr.h.Name] = c
	hr.e.mu.Unlock()
	return c, nil
}

// connectFailed reports that the host could not be connected to, or that a helper could not
// start on it, as the host's "connect" step: the host is unreachable.
func (hr *hostRun) connectFailed(err error) {
	// Results already carry the host name; transport errors start with it too.
	hr.report(Result{Task: "connect", Status: Unreachable, Msg: strings.TrimPrefix(err.Error(), hr.h.Name+": ")})
	hr.markDead()
}

// factsIdentity is the identity whose helper gathers the host's facts for task t (nil: for
// the play's vars): a helper already running on the host, the task's own identity when it
// is one of them, else the play's, else the first started; when none runs yet, the play's
// identity (the login user's when the play does not become). The task's own identity is
// never started just for facts: its when, which may be what needs them, may skip it, and
// a task that is skipped starts no helper.
func (hr *hostRun) factsIdentity(t *config.Task) Identity {
	play := EffectiveIdentity(nil, hr.p.Play, hr.become)
	hr.e.mu.Lock()
	running := hr.e.helpers[hr.h.Name]
	hr.e.mu.Unlock()
	if t != nil && slices.Contains(running, hr.identity(t)) {
		return hr.identity(t)
	}
	if len(running) == 0 || slices.Contains(running, play) {
		return play
	}
	return running[0]
}

// executor returns the executor of identity id on the host's connection; its helper starts
// the first time id is needed. A helper that cannot start is reported as connectFailed, and
// startFailed set. When the run (or the host's time) ended meanwhile, the failure is that
// interruption, not the host's: nothing is reported here, the host is not marked
// unreachable, and the error says "interrupted".
func (hr *hostRun) executor(ctx context.Context, id Identity) (Executor, error) {
	x, err := hr.conn.Executor(ctx, id)
	if err != nil {
		if ctx.Err() != nil {
			return nil, hr.interrupted(err)
		}
		hr.startFailed = true
		hr.connectFailed(err)
		return nil, err
	}
	hr.e.mu.Lock()
	if !slices.Contains(hr.e.helpers[hr.h.Name], id) {
		hr.e.helpers[hr.h.Name] = append(hr.e.helpers[hr.h.Name], id)
	}
	hr.e.mu.Unlock()
	return x, nil
}

// startStatus is the status of a step whose helper could not start with err: failed when
// the run was interrupted meanwhile, else unreachable.
func startStatus(err error) Status {
	var ie *interruptedError
	if errors.As(err, &ie) {
		return Failed
	}
	return Unreachable
}

// interruptedError is a helper's start cut short by the run's cancellation or the host's
// timeout.
type interruptedError struct {
	msg string // without the host's name, which results carry
	err error
}

func (e *interruptedError) Error() string { return "interrupted: " + e.msg }
func (e *interruptedError) Unwrap() error { return e.err }

// interrupted is err, the failure of a connect or a helper's start that the run's
// cancellation (or the host's timeout) cut short.
func (hr *hostRun) interrupted(err error) error {
	return &interruptedError{msg: strings.TrimPrefix(strings.TrimPrefix(err.Error(), hr.h.Name+": "), "interrupted: "), err: err}
}

// identity is the identity task (or handler) t runs as on this host.
func (hr *hostRun) identity(t *config.Task) Identity {
	return EffectiveIdentity(t, hr.p.Play, hr.become)
}

// task runs one task (all its for_each elements) and returns its overall status.
func (hr *hostRun) task(ctx context.Context, t *config.Task) Status {
	if !t.RunOnce || t.IsHandler || hr.b == nil {
		return hr.runTask(ctx, t)
	}
	var o *onceRun
	r := Result{Task: t.Name, Module: t.Module}
	for {
		var mine bool
		o, mine = hr.b.claim(t.Name, hr.h.Name)
		if mine {
			// the hosts waiting for the result are let go however this ends
			defer close(o.done)
			st := hr.runTask(ctx, t)
			o.status, o.result = st, hr.results[t.Name]
			if st == Unreachable {
				// The host dropped off, so the task did not fail: another host of the
				// batch takes it over.
				hr.b.release(t.Name, o)
			}
			return st
		}
		// Another host of the batch runs it; this one takes its result.
		select {
		case <-o.done:
		case <-ctx.Done():
			r.Status, r.Msg = Failed, "cancelled while waiting for the run_once task on "+o.host
			hr.report(r)
			return Failed
		}
		if o.status != Unreachable {
			break
		}
	}
	switch o.status {
	case Failed, Unreachable:
		r.Status, r.Msg = Failed, fmt.Sprintf("run_once: the task failed on %s", o.host)
	case Skipped:
		r.Status, r.Msg = Skipped, fmt.Sprintf("run_once: skipped on %s", o.host)
	default:
		r.Status, r.Msg = OK, fmt.Sprintf("run_once: ran on %s (%s)", o.host, o.status)
	}
	if o.result != cty.NilVal {
		hr.results[t.Name] = o.result
	}
	hr.report(r)
	return r.Status
}

// runTask runs one task (all its for_each elements) on this host. A panic in it (a bug,
// in evaluation, anywhere on the task's path, or in a view) becomes the task's failure on
// this host, recorded like any other failure.
func (hr *hostRun) runTask(ctx context.Context, t *config.Task) (status Status) {
	base := Result{Task: t.Name, Module: t.Module, Handler: t.IsHandler}
	out := &taskOutcome{single: t.ForEach == nil, overall: Skipped, perItem: map[string]cty.Value{}}
	// secrets are the sensitive strings in scope for every element: computed once, as
	// walking the facts for each element would cost as much as the element itself
	var secrets []string
	scoped := false
	defer func() {
		if p := recover(); p != nil {
			r := base
			scope := hr.hostSecrets
			if scoped {
				scope = func() []string { return append(slices.Clip(secrets), eachSecrets(out.cur)...) }
			}
			if out.cur != nil {
				r.Item = out.curLabel
			}
			r = hr.reportBug(r, p, scope)
			r.Status = Failed
			out.add(r)
			status = hr.finishTask(t, out)
		}
	}()
	for _, dep := range t.DependsOn {
		if st := hr.statuses[dep.Name]; st == Failed || st == Unreachable || (st == Skipped && hr.results[dep.Name] == cty.NilVal) {
			r := base
			r.Status, r.Msg = Skipped, fmt.Sprintf("skipped: depends on %q, which did not succeed", dep.Name)
			hr.report(r)
			return Skipped
		}
	}
	if t.UsesFacts {
		if st, msg := hr.ensureFacts(ctx, t); st != OK {
			if hr.startFailed {
				return Unreachable
			}
			r := base
			r.Status, r.Msg = st, msg
			hr.report(r)
			return st
		}
	}
	scope := config.Scope{Host: hr.h.Name, Groups: hr.h.Groups, Vars: hr.vars, Tasks: hr.results, Facts: hr.facts()}
	ectx := hr.e.Runbook.EvalContext(scope)
	secrets, scoped = config.ContextSecrets(ectx), true
	items, diags := t.Items(ectx)
	if diags.HasErrors() {
		r := base
		r.Status, r.Msg = Failed, diagText(diags)
		hr.report(r)
		return Failed
	}
	if out.single {
		items = []config.Item{{}}
	}
	for i, it := range items {
		s := scope
		if !out.single {
			s.Each = &it
			out.hidden = out.hidden || it.Hidden()
		}
		out.cur, out.curLabel = &it, itemLabel(it, i, out.single)
		r := hr.item(ctx, t, s, secrets)
		r.Item = out.curLabel
		if hr.startFailed {
			// reported as the host's connect step; the host stops
			out.add(r)
			return hr.finishTask(t, out)
		}
		hr.report(r)
		out.add(r)
		if r.Status == Failed && t.OnFailure != config.OnFailureContinue {
			break
		}
	}
	return hr.finishTask(t, out)
}

// taskOutcome gathers one task's results on one host, element by element.
type taskOutcome struct {
	single  bool // no for_each
	overall Status
	last    cty.Value            // the last element's result
	perItem map[string]cty.Value // the results by for_each key
	hidden  bool                 // some key is sensitive
	// cur is the element being run, and curLabel how results show it
	cur      *config.Item
	curLabel string
}

// add records the result of the current element.
func (o *taskOutcome) add(r Result) {
	o.overall = worse(o.overall, r.Status)
	o.last = resultValue(r)
	if !o.single && o.cur != nil {
		o.perItem[keyString(o.cur.Key)] = o.last
	}
	o.cur, o.curLabel = nil, ""
}

// finishTask makes the task's outcome what later tasks see as task.NAME, notifies its
// handlers when it changed something, and returns its status.
func (hr *hostRun) finishTask(t *config.Task, o *taskOutcome) Status {
	if o.single {
		hr.results[t.Name] = o.last
	} else {
		results := objectOrEmpty(o.perItem)
		if o.hidden {
			// its attribute names are the sensitive keys
			results = results.Mark(config.Sensitive)
		}
		hr.results[t.Name] = cty.ObjectVal(map[string]cty.Value{
			"results": results,
			"changed": cty.BoolVal(o.overall == Changed),
			"status":  cty.StringVal(string(o.overall)),
		})
	}
	if o.overall == Changed || (hr.e.Options.Check && o.overall == Drift) {
		for _, n := range t.Notify {
			hr.notified[n.Name] = true
		}
	}
	return o.overall
}

// eachSecrets returns the sensitive strings of a for_each element.
func eachSecrets(it *config.Item) []string {
	if it == nil || it.Key == cty.NilVal {
		return nil
	}
	return append(config.SensitiveStrings(it.Key), config.SensitiveStrings(it.Value)...)
}

// worse combines statuses: failed beats changed beats drift beats ok beats skipped.
func worse(a, b Status) Status {
	rank := map[Status]int{Skipped: 0, OK: 1, Unknown: 2, Drift: 3, Changed: 4, Failed: 5, Unreachable: 6}
	if rank[b] > rank[a] {
		return b
	}
	return a
}

// item runs one element of a task: when, args, then the module (with retries).
func (hr *hostRun) item(ctx context.Context, t *config.Task, s config.Scope, taskSecrets []string) Result {
	start := time.Now()
	r := Result{Task: t.Name, Module: t.Module, Handler: t.IsHandler}
	done := func(st Status, msg string) Result {
		r.Status, r.Msg, r.Duration = st, msg, time.Since(start)
		return r
	}
	rb := hr.e.Runbook
	ectx := rb.EvalContext(s)
	run, diags := t.WhenTrue(ectx)
	if diags.HasErrors() {
		return done(Failed, diagText(diags))
	}
	if !run {
		return done(Skipped, "skipped: when is false")
	}
	m, args, diags := t.Args(ectx)
	if diags.HasErrors() {
		return done(Failed, diagText(diags))
	}
	apply := !hr.e.Options.Check
	if t.CheckMode != nil {
		apply = !*t.CheckMode
	}
	// what ContextSecrets(ectx) returns, without walking the task's scope once more
	scope := append(slices.Clip(taskSecrets), eachSecrets(s.Each)...)
	secrets := append(secretStrings(args), scope...)
	// The host learns only the values its arguments already hold.
	vals := heldIn(args, scope)
	// The helper of the task's identity, started now when it is the first task that needs
	// it: once, outside the attempts, which never start a helper again (a rejected become
	// password is not tried twice) and outside the task's timeout.
	var x Executor
	if _, local := controller.RunnerFor(t.Module); !local {
		var err error
		if x, err = hr.executor(ctx, hr.identity(t)); err != nil {
			return done(startStatus(err), err.Error())
		}
		// starting the helper is the connection's time, not the task's
		start = time.Now()
	}
	attempts := t.Retries + 1
	var res *modules.Result
	var err error
	for attempt := 1; attempt <= attempts; attempt++ {
		res, err = hr.runModule(WithSecrets(ctx, vals), x, t, m, args, apply, ectx)
		if ctx.Err() != nil {
			break
		}
		if t.Until != nil && err == nil {
			uctx := rb.EvalContext(config.Scope{Host: s.Host, Groups: s.Groups, Vars: s.Vars, Tasks: s.Tasks, Each: s.Each, Facts: s.Facts,
				Self: resultValue(fromModule(r, res, nil))})
			okUntil, udiags := t.UntilTrue(uctx)
			if udiags.HasErrors() {
				return done(Failed, diagText(udiags))
			}
			if okUntil {
				break
			}
			err = fmt.Errorf("until condition still false after %d attempt(s)", attempt)
		} else if err == nil {
			break
		}
		if attempt < attempts && t.Delay > 0 {
			select {
			case <-ctx.Done():
			case <-time.After(t.Delay):
			}
		}
	}
	if res != nil {
		res.Redact(secrets)
	}
	r = fromModule(r, res, err)
	if ctx.Err() != nil && r.Status == Failed {
		r.Msg = "interrupted: " + r.Msg
	}
	if (t.ChangedWhen != nil || t.FailedWhen != nil) && ctx.Err() == nil {
		vctx := rb.EvalContext(config.Scope{Host: s.Host, Groups: s.Groups, Vars: s.Vars, Tasks: s.Tasks, Each: s.Each, Facts: s.Facts, Self: resultValue(r)})
		changed, hasChanged, failed, hasFailed, vdiags := t.Verdict(vctx)
		switch {
		case vdiags.HasErrors():
			r.Status, r.Msg = Failed, diagText(vdiags)
		case hasFailed && failed:
			r.Status = Failed
			if r.Msg == "" {
				r.Msg = "failed_when is true"
			}
		case hasFailed && !failed && r.Status == Failed:
			r.Status = OK
		}
		if hasChanged && r.Status != Failed {
			switch {
			case !changed && (r.Status == Changed || r.Status == Drift):
				r.Status = OK
			case changed && r.Status == OK:
				r.Status = Changed
				if !apply {
					r.Status = Drift
				}
			}
		}
	}
	r.Duration = time.Since(start)
	if t.Sensitive {
		r.Diff, r.Msg = nil, modules.Redacted
		r.Data = cty.NilVal
	} else if len(secrets) > 0 {
		redactResult(&r, secrets)
	}
	return r
}

// runModule runs one attempt. args keep their sensitive marks for the executor, which tells
// the helper which arguments must never be shown; controller-side code gets plain values.
func (hr *hostRun) runModule(ctx context.Context, x Executor, t *config.Task, m modules.Module, args cty.Value, apply bool, ectx *hcl.EvalContext) (*modules.Result, error) {
	plain, _ := args.UnmarkDeep()
	if t.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, t.Timeout)
		defer cancel()
	}
	cenv := &controller.Env{Dir: hr.e.Runbook.Dir, EvalContext: ectx}
	if runOnController, ok := controller.RunnerFor(t.Module); ok {
		return runOnController(ctx, cenv, plain)
	}
	if prepare, ok := controller.PreparerFor(t.Module); ok {
		prepared, err := prepare(ctx, cenv, plain)
		if err != nil {
			return nil, err
		}
		// Preparing (reading src, rendering a template) works on plain values; put the marks
		// back so the helper is told which arguments are secret and hides them in diffs.
		args = remark(args, prepared)
	}
	res, err := x.Run(ctx, t.Module, args, apply)
	if err != nil && ctx.Err() != nil && t.Timeout > 0 && errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return res, fmt.Errorf("timed out after %s", t.Timeout)
	}
	return res, err
}

// remark marks the attributes of prepared that came from sensitive arguments: those whose
// original value carried a mark, and content rendered from any sensitive input.
func remark(orig, prepared cty.Value) cty.Value {
	if !orig.ContainsMarked() || prepared.IsNull() || !prepared.Type().IsObjectType() {
		return prepared
	}
	attrs := prepared.AsValueMap()
	for name, v := range attrs {
		if orig.Type().IsObjectType() && orig.Type().HasAttribute(name) {
			if ov := orig.GetAttr(name); ov.ContainsMarked() || (name == "content" && !ov.RawEquals(v)) {
				attrs[name] = v.Mark(config.Sensitive)
			}
		} else if name == "content" {
			attrs[name] = v.Mark(config.Sensitive)
		}
	}
	return cty.ObjectVal(attrs)
}

func fromModule(r Result, res *modules.Result, err error) Result {
	if res != nil {
		r.Diff, r.Msg, r.Warnings, r.RebootRequired = res.Diff, res.Msg, res.Warnings, res.RebootRequired
		data, derr := dataValue(r.Module, res.Data)
		if derr != nil && err == nil {
			err = derr
		}
		r.Data = data
		switch res.Status {
		case modules.StatusChanged:
			r.Status = Changed
		case modules.StatusDrift:
			r.Status = Drift
		case modules.StatusUnknown:
			r.Status = Unknown
		default:
			r.Status = OK
		}
	}
	if err != nil {
		r.Status = Failed
		if errors.Is(err, ErrUnreachable) {
			r.Status = Unreachable
		}
		msg := err.Error()
		var f *modules.Failure
		if errors.As(err, &f) && f.Stderr != "" {
			msg += ": " + strings.TrimSpace(f.Stderr)
		}
		if r.Msg != "" && r.Msg != msg {
			msg = r.Msg + ": " + msg
		}
		r.Msg = msg
	}
	return r
}

// dataValue is a module's registered data as an object of its declared Returns types: the
// executor already converted what came over the protocol; what a module run on the
// controller returned is converted here.
func dataValue(module string, data any) (cty.Value, error) {
	switch d := data.(type) {
	case nil:
		return cty.NilVal, nil
	case cty.Value:
		return d, nil
	}
	def, ok := modules.Lookup(module)
	if !ok {
		return cty.NilVal, fmt.Errorf("data of unknown module %q", module)
	}
	return def.Value(data, nil)
}

// resultValue is what task["name"] shows later: the module's registered data plus status.
// Every field the module declares is there: one it did not report (the task was skipped,
// or check mode could not know it, e.g. a command's rc when the command did not run) is
// null, so a later when that tests it reads null instead of failing.
func resultValue(r Result) cty.Value {
	m := map[string]cty.Value{}
	if info, ok := modules.InfoOf(r.Module); ok && r.Module != "" {
		for _, f := range info.Returns {
			ty := f.Type
			if ty == cty.NilType {
				ty = cty.DynamicPseudoType
			}
			m[f.Name] = cty.NullVal(ty)
		}
	}
	if r.Data != cty.NilVal && !r.Data.IsNull() && r.Data.Type().IsObjectType() {
		for k, v := range r.Data.AsValueMap() {
			m[k] = v
		}
	}
	m["status"] = cty.StringVal(string(r.Status))
	m["changed"] = cty.BoolVal(r.Status == Changed)
	m["failed"] = cty.BoolVal(r.Status == Failed)
	m["skipped"] = cty.BoolVal(r.Status == Skipped)
	m["msg"] = cty.StringVal(r.Msg)
	return cty.ObjectVal(m)
}

// itemLabel is how results show a for_each element: its key, or for a sensitive key
// its position, "(sensitive value #2)".
func itemLabel(it config.Item, i int, single bool) string {
	switch {
	case single:
		return ""
	case it.Hidden():
		return fmt.Sprintf("(sensitive value #%d)", i+1)
	}
	return keyString(it.Key)
}

func keyString(k cty.Value) string {
	k, _ = k.Unmark()
	switch {
	case k.IsNull() || !k.IsKnown():
		return ""
	case k.Type() == cty.String:
		return k.AsString()
	case k.Type() == cty.Number:
		return k.AsBigFloat().Text('f', -1)
	}
	return fmt.Sprintf("%#v", k)
}

func objectOrEmpty(m map[string]cty.Value) cty.Value {
	if len(m) == 0 {
		return cty.EmptyObjectVal
	}
	return cty.ObjectVal(m)
}

// secretStrings collects every string in args that carries the sensitive mark.
func secretStrings(args cty.Value) []string {
	out := config.SensitiveStrings(args)
	sort.Strings(out)
	return out
}

// heldIn returns the values that some string of args holds: the sensitive values a task
// may have put inside a longer string ("echo ${var.token}"), which the host may print back
// alone. Values the arguments do not hold are never sent to the host.
func heldIn(args cty.Value, vals []string) []string {
	var strs []string
	_ = cty.Walk(args, func(_ cty.Path, x cty.Value) (bool, error) {
		x, _ = x.Unmark()
		if x.IsKnown() && !x.IsNull() && x.Type() == cty.String {
			strs = append(strs, x.AsString())
		}
		return true, nil
	})
	var out []string
	for _, v := range vals {
		for _, s := range strs {
			if v != "" && strings.Contains(s, v) {
				out = append(out, v)
				break
			}
		}
	}
	return out
}

type secretsKey struct{}

// WithSecrets returns ctx carrying the values of sensitive variables that a task's
// arguments may hold inside longer strings. An Executor sends them along with the task, so
// that the host redacts them too (before it shortens anything), not only the values of the
// arguments that are marked sensitive as a whole.
func WithSecrets(ctx context.Context, vals []string) context.Context {
	if len(vals) == 0 {
		return ctx
	}
	return context.WithValue(ctx, secretsKey{}, vals)
}

// Secrets returns the values WithSecrets put in ctx.
func Secrets(ctx context.Context) []string {
	vals, _ := ctx.Value(secretsKey{}).([]string)
	return vals
}

func redactResult(r *Result, secrets []string) {
	r.Msg = modules.NewRedactor(secrets).Redact(r.Msg)
}

func diagText(diags hcl.Diagnostics) string {
	var parts []string
	for _, d := range diags {
		if d.Severity != hcl.DiagError {
			continue
		}
		s := d.Summary
		if d.Detail != "" {
			s += ": " + d.Detail
		}
		if d.Subject != nil {
			s += " (" + d.Subject.String() + ")"
		}
		parts = append(parts, s)
	}
	return strings.Join(parts, "; ")
}
