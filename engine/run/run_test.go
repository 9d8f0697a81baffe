package run

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/zclconf/go-cty/cty"

	"github.com/runbook/runbook/engine/config"
	"github.com/runbook/runbook/engine/plan"
	"github.com/runbook/runbook/inventory"
	"github.com/runbook/runbook/modules"
	_ "github.com/runbook/runbook/modules/standard"
)

// fakeHost is a host whose only state is a set of paths; the fake executor runs the file
// module against it (check → drift, apply → changed, then ok) and the command module as
// "exit 1 when argv[0] is false". It stands in for the helper in these unit tests of the
// engine's logic; the real helper is tested against lab hosts.
type fakeHost struct {
	mu    sync.Mutex
	paths map[string]bool
	calls []string
	name  string
	log   *globalLog // every host's calls in the order they happened, when set
	osID  string     // the facts' os.id; "" means "debian"
	// ran records each command as "argv[0] as IDENTITY", and facts as "facts as IDENTITY".
	ran []string
	// starts lists the identities whose helper was started, in order.
	starts []Identity
	// startFails names identities (Identity.String()) whose helper cannot start.
	startFails map[string]bool
	// startBlocks names identities whose helper start waits until it is cancelled; their
	// channel is closed when it begins waiting.
	startBlocks map[string]chan struct{}
	// connects and closes count the connections opened and closed.
	connects, closes int
	open             bool // a connection is open
	// hooks run (without the host's lock) before the command whose argv[0] names them.
	hooks map[string]func()
	// pipes, when set, makes its executors Pipeliners that run chains as the helper does
	// (pipeline_test.go).
	pipes *chains
}

// fakeConn is a connection to a fakeHost: it starts a "helper" per identity, and once
// closed runs nothing more.
type fakeConn struct {
	h       *fakeHost
	helpers map[Identity]fakeExec
	closed  bool
}

func (c *fakeConn) Executor(ctx context.Context, id Identity) (Executor, error) {
	if ch := c.h.startBlocks[id.String()]; ch != nil {
		close(ch)
		<-ctx.Done()
		return nil, fmt.Errorf("%s: starting the helper as %s: %w", c.h.name, id, ctx.Err())
	}
	c.h.mu.Lock()
	defer c.h.mu.Unlock()
	if c.closed {
		return nil, fmt.Errorf("%w: the connection is closed", ErrUnreachable)
	}
	if x, ok := c.helpers[id]; ok {
		return c.h.pipes.executor(x), nil
	}
	if c.h.startFails[id.String()] {
		return nil, fmt.Errorf("%s: become password rejected by sudo (for user %s)", c.h.name, id.User)
	}
	c.h.starts = append(c.h.starts, id)
	x := fakeExec{h: c.h, id: id, conn: c}
	c.helpers[id] = x
	return c.h.pipes.executor(x), nil
}

func (c *fakeConn) Close() error {
	c.h.mu.Lock()
	defer c.h.mu.Unlock()
	if !c.closed {
		c.closed = true
		c.h.closes++
		c.h.open = false
	}
	return nil
}

// Facts answers the facts op with the host's OS id and records the call.
func (x fakeExec) Facts(context.Context) (map[string]any, error) {
	x.h.mu.Lock()
	defer x.h.mu.Unlock()
	if x.conn.closed {
		return nil, fmt.Errorf("%w: the connection is closed", ErrUnreachable)
	}
	x.h.calls = append(x.h.calls, "facts")
	x.h.ran = append(x.h.ran, "facts as "+x.id.String())
	id := x.h.osID
	if id == "" {
		id = "debian"
	}
	return map[string]any{"os": map[string]any{"id": id}}, nil
}

type fakeExec struct {
	h    *fakeHost
	id   Identity
	conn *fakeConn
}

func (x fakeExec) Run(_ context.Context, c Call, apply bool) (*modules.Result, error) {
	module, args := c.Module, c.Args
	if args.ContainsMarked() {
		return nil, fmt.Errorf("%s: the executor got marked arguments", module)
	}
	x.h.mu.Lock()
	defer x.h.mu.Unlock()
	if x.conn.closed {
		return nil, fmt.Errorf("%w: the connection is closed", ErrUnreachable)
	}
	mode := "check"
	if apply {
		mode = "apply"
	}
	switch module {
	case "file":
		p := args.GetAttr("path").AsString()
		x.h.calls = append(x.h.calls, mode+" file "+p)
		if x.h.paths[p] {
			return &modules.Result{Status: modules.StatusOK}, nil
		}
		if !apply {
			return &modules.Result{Status: modules.StatusDrift, Diff: &modules.Diff{Before: "", After: p}}, nil
		}
		x.h.paths[p] = true
		return &modules.Result{Status: modules.StatusChanged}, nil
	case "command":
		argv := args.GetAttr("argv").AsValueSlice()
		x.h.ran = append(x.h.ran, argv[0].AsString()+" as "+x.id.String())
		if hook := x.h.hooks[argv[0].AsString()]; hook != nil {
			x.h.mu.Unlock()
			hook()
			x.h.mu.Lock()
		}
		if x.h.log != nil {
			x.h.log.add(x.h.name + " " + argv[0].AsString() + " start")
			if argv[0].AsString() == "slow" {
				x.h.mu.Unlock()
				time.Sleep(40 * time.Millisecond)
				x.h.mu.Lock()
			}
			defer x.h.log.add(x.h.name + " " + argv[0].AsString() + " end")
		}
		if argv[0].AsString() == "panic" || (argv[0].AsString() == "panic-on-a" && x.h.name == "a") {
			// a bug on the task's path, as a panic in evaluation or a module would be
			panic("boom in the executor")
		}
		if argv[0].AsString() == "drop" || (argv[0].AsString() == "drop-on-a" && x.h.name == "a") {
			return nil, fmt.Errorf("%w: connection to %s lost: EOF", ErrUnreachable, "fake")
		}
		x.h.calls = append(x.h.calls, mode+" command "+argv[0].AsString())
		if argv[0].AsString() == "false" {
			return &modules.Result{Status: modules.StatusChanged, Data: wireData("command", map[string]any{"rc": 1})},
				&modules.Failure{Msg: "command exited 1", Stderr: "boom " + strings.Join(stringsOf(argv), " ")}
		}
		if !apply {
			return &modules.Result{Status: modules.StatusDrift}, nil
		}
		return &modules.Result{Status: modules.StatusChanged, Data: wireData("command", map[string]any{"rc": 0, "stdout": "hello"})}, nil
	}
	return nil, fmt.Errorf("fake executor has no module %s", module)
}

// globalLog records events of all hosts in one order.
type globalLog struct {
	mu     sync.Mutex
	events []string
}

func (g *globalLog) add(e string) {
	g.mu.Lock()
	g.events = append(g.events, e)
	g.mu.Unlock()
}

func stringsOf(vs []cty.Value) []string {
	out := make([]string, len(vs))
	for i, v := range vs {
		out[i] = v.AsString()
	}
	return out
}

// single is a connection whose every identity runs on the one executor x.
type single struct{ x Executor }

func (s single) Executor(context.Context, Identity) (Executor, error) { return s.x, nil }
func (single) Close() error                                           { return nil }

type fakeConnector struct {
	hosts       map[string]*fakeHost
	unreachable map[string]bool
	panics      map[string]bool // hosts whose connection panics (a bug in the connector)
	panicMsg    string          // what it panics with, when not "boom in the connector"
	// blocks: hosts whose connect waits until it is cancelled; the channel is closed when
	// it begins waiting
	blocks map[string]chan struct{}
}

func (c *fakeConnector) Connect(ctx context.Context, to Endpoint) (Connection, error) {
	h := to.Host
	if ch := c.blocks[h.Name]; ch != nil {
		close(ch)
		<-ctx.Done()
		return nil, fmt.Errorf("%s: dial tcp 127.0.0.1:22: %w", h.Name, ctx.Err())
	}
	if c.panics[h.Name] {
		if c.panicMsg != "" {
			panic(c.panicMsg)
		}
		panic("boom in the connector")
	}
	if c.unreachable[h.Name] {
		return nil, errors.New("dial tcp 127.0.0.1:1: connection refused")
	}
	fh := c.hosts[h.Name]
	fh.mu.Lock()
	defer fh.mu.Unlock()
	if fh.open {
		// the engine keeps one connection per host
		panic("a second connection to " + h.Name + " while one is open")
	}
	fh.open = true
	fh.connects++
	return &fakeConn{h: fh, helpers: map[Identity]fakeExec{}}, nil
}

type recorder struct {
	mu      sync.Mutex
	results []Result
}

func (r *recorder) HostStarted(string)     {}
func (r *recorder) HostDone(string, Stats) {}
func (r *recorder) TaskDone(res Result) {
	r.mu.Lock()
	r.results = append(r.results, res)
	r.mu.Unlock()
}

// lines renders results as "host task[item] status" sorted, for comparisons.
func (r *recorder) lines() []string {
	var out []string
	for _, res := range r.results {
		name := res.Task
		if res.Item != "" {
			name += "[" + res.Item + "]"
		}
		out = append(out, fmt.Sprintf("%s %s %s", res.Host, name, res.Status))
	}
	sort.Strings(out)
	return out
}

type lab struct {
	t    *testing.T
	rb   *config.Runbook
	inv  *inventory.Inventory
	conn *fakeConnector
}

func newLab(t *testing.T, runbook string, hosts ...string) *lab {
	t.Helper()
	rb, diags := config.Parse([]config.Source{{Name: "t.hcl", Src: []byte(runbook)}}, config.Inputs{})
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	var inv strings.Builder
	for _, h := range hosts {
		fmt.Fprintf(&inv, "host %q {\n  address = \"127.0.0.1\"\n}\n", h)
	}
	fmt.Fprintf(&inv, "group \"kvm\" {\n  hosts = [%s]\n}\n", `"`+strings.Join(hosts, `", "`)+`"`)
	iv, idiags := inventory.Parse("inv.hcl", []byte(inv.String()))
	if idiags.HasErrors() {
		t.Fatal(idiags)
	}
	c := &fakeConnector{hosts: map[string]*fakeHost{}, unreachable: map[string]bool{}}
	for _, h := range hosts {
		c.hosts[h] = &fakeHost{name: h, paths: map[string]bool{}}
	}
	return &lab{t: t, rb: rb, inv: iv, conn: c}
}

func (l *lab) run(check bool, opts plan.Options) (*Recap, *recorder) {
	l.t.Helper()
	pl, diags := plan.Build(l.rb, l.inv, opts)
	if diags.HasErrors() {
		l.t.Fatal(diags)
	}
	rec := &recorder{}
	e := &Engine{Runbook: l.rb, Connector: l.conn, Observer: rec, Options: Options{Forks: 4, Check: check}}
	return e.Run(context.Background(), pl), rec
}

func eq(t *testing.T, got, want []string) {
	t.Helper()
	sort.Strings(want)
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("got:\n  %s\nwant:\n  %s", strings.Join(got, "\n  "), strings.Join(want, "\n  "))
	}
}

const dirsRunbook = `
play "p" {
  hosts = "kvm"
  task "dir" {
    notify = ["reload", "reload2"]
    file {
      path  = "/srv/${host.name}"
      state = "directory"
    }
  }
  task "again" {
    notify = ["reload"]
    file {
      path  = "/srv/${host.name}"
      state = "directory"
    }
  }
  handler "reload" {
    command {
      argv = ["reload"]
    }
  }
  handler "reload2" {
    command {
      argv = ["reload2"]
    }
  }
}
`

func TestTimelineAndHandlers(t *testing.T) {
	l := newLab(t, dirsRunbook, "a", "b")

	recap, rec := l.run(true, plan.Options{})
	// In check mode, handlers that drifting tasks notify report what they would do.
	eq(t, rec.lines(), []string{"a dir drift", "a again drift", "a reload drift", "a reload2 drift",
		"b dir drift", "b again drift", "b reload drift", "b reload2 drift"})
	if recap.ExitCode() != ExitDrift {
		t.Errorf("check with drift: exit %d", recap.ExitCode())
	}
	if l.conn.hosts["a"].paths["/srv/a"] {
		t.Fatal("check mode changed the host")
	}

	recap, rec = l.run(false, plan.Options{})
	eq(t, rec.lines(), []string{"a dir changed", "a again ok", "a reload changed", "a reload2 changed",
		"b dir changed", "b again ok", "b reload changed", "b reload2 changed"})
	if recap.ExitCode() != ExitOK {
		t.Errorf("apply: exit %d", recap.ExitCode())
	}
	if n := strings.Count(strings.Join(l.conn.hosts["a"].calls, ","), "apply command reload,"); n != 1 {
		t.Errorf("handler ran %d times, want once: %v", n, l.conn.hosts["a"].calls)
	}

	recap, rec = l.run(true, plan.Options{})
	eq(t, rec.lines(), []string{"a dir ok", "a again ok", "b dir ok", "b again ok"})
	if recap.ExitCode() != ExitOK {
		t.Errorf("in sync: exit %d", recap.ExitCode())
	}
	_, rec = l.run(false, plan.Options{})
	eq(t, rec.lines(), []string{"a dir ok", "a again ok", "b dir ok", "b again ok"})
}

const failRunbook = `
play "p" {
  hosts = "kvm"
  task "breaks" {
    when       = host.name == "a"
    on_failure = "continue"
    command {
      argv = ["false"]
    }
  }
  task "needs breaks" {
    depends_on = ["breaks"]
    command {
      argv = ["true"]
    }
  }
  task "stops a" {
    when = host.name == "a"
    command {
      argv = ["false", "--token", var.token]
    }
  }
  task "after" {
    command {
      argv = ["true"]
    }
  }
}
variable "token" {
  default   = "hunter2-secret"
  sensitive = true
}
`

func TestFailuresStayOnTheirHost(t *testing.T) {
	l := newLab(t, failRunbook, "a", "b", "c")
	l.conn.unreachable["c"] = true
	recap, rec := l.run(false, plan.Options{})
	eq(t, rec.lines(), []string{
		"a breaks failed", "a needs breaks skipped", "a stops a failed",
		"b breaks skipped", "b needs breaks changed", "b stops a skipped", "b after changed",
		"c connect unreachable",
	})
	if recap.ExitCode() != ExitFailed {
		t.Errorf("exit %d, want %d", recap.ExitCode(), ExitFailed)
	}
	for _, r := range rec.results {
		if strings.Contains(r.Msg, "hunter2-secret") {
			t.Errorf("secret in message: %q", r.Msg)
		}
		if r.Host == "a" && r.Task == "stops a" && !strings.Contains(r.Msg, "command exited 1") {
			t.Errorf("failure message lost: %q", r.Msg)
		}
	}
	// Only unreachable: exit 3.
	l2 := newLab(t, dirsRunbook, "a", "b")
	l2.conn.unreachable["b"] = true
	if recap, _ := l2.run(false, plan.Options{}); recap.ExitCode() != ExitUnreachable {
		t.Errorf("exit %d, want %d", recap.ExitCode(), ExitUnreachable)
	}
}

const resultsRunbook = `
play "p" {
  hosts = "kvm"
  task "probe" {
    command {
      argv = ["echo"]
    }
  }
  task "dirs" {
    for_each = toset(["x", "y"])
    when     = task["probe"].stdout == "hello" && each.value != "y"
    file {
      path = "/d/${each.value}"
    }
  }
}
`

func TestDroppedConnectionIsUnreachable(t *testing.T) {
	src := `
play "one" {
  hosts = "kvm"
  task "t" {
    command {
      argv = [host.name == "a" ? "drop" : "true"]
    }
  }
  task "after" {
    command {
      argv = ["true"]
    }
  }
}
play "two" {
  hosts = "kvm"
  task "later" {
    command {
      argv = ["true"]
    }
  }
}`
	l := newLab(t, src, "a", "b")
	recap, rec := l.run(false, plan.Options{})
	eq(t, rec.lines(), []string{"a t unreachable", "b t changed", "b after changed", "b later changed"})
	if recap.ExitCode() != ExitUnreachable {
		t.Errorf("exit %d", recap.ExitCode())
	}
}

func TestResultsAndForEach(t *testing.T) {
	l := newLab(t, resultsRunbook, "a")
	_, rec := l.run(false, plan.Options{})
	eq(t, rec.lines(), []string{"a probe changed", "a dirs[x] changed", "a dirs[y] skipped"})
}

// TestSerialMaxFail: after each batch, failed*100/size > max_fail_percentage stops the run
// (later batches and later plays); at or under the threshold it goes on.
func TestSerialMaxFail(t *testing.T) {
	const src = `
play "p" {
  hosts               = "kvm"
  serial              = %s
  max_fail_percentage = %d
  task "t" {
    command {
      argv = [contains(%s, host.name) ? "false" : "true"]
    }
  }
}
play "later" {
  hosts = "kvm"
  task "u" {
    command {
      argv = ["true"]
    }
  }
}`
	tests := []struct {
		name    string
		serial  string
		mfp     int
		failing string
		want    []string
		stopped string
	}{
		{name: "zero tolerance stops at the first failure", serial: "1", mfp: 0, failing: `["a"]`,
			want: []string{"a t failed"}, stopped: `play "p" stopped after batch 1: 1 of 1 hosts failed (100% > max_fail_percentage 0)`},
		{name: "exactly at the threshold goes on", serial: "2", mfp: 50, failing: `["a"]`,
			want: []string{"a t failed", "b t changed", "c t changed", "d t changed", "b u changed", "c u changed", "d u changed"}},
		{name: "over the threshold in the second batch", serial: "[1, 3]", mfp: 50, failing: `["c", "d"]`,
			want:    []string{"a t changed", "b t changed", "c t failed", "d t failed"},
			stopped: `play "p" stopped after batch 2: 2 of 3 hosts failed (66.67% > max_fail_percentage 50)`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := newLab(t, fmt.Sprintf(src, tt.serial, tt.mfp, tt.failing), "a", "b", "c", "d")
			recap, rec := l.run(false, plan.Options{})
			eq(t, rec.lines(), tt.want)
			if recap.Stopped != tt.stopped {
				t.Errorf("stopped = %q, want %q", recap.Stopped, tt.stopped)
			}
		})
	}
}

func TestBatches(t *testing.T) {
	tests := []struct {
		n      int
		serial []config.Batch
		want   string
	}{
		{5, nil, "[[0 5]]"},
		{0, nil, "[]"},
		{5, []config.Batch{{Count: 2}}, "[[0 2] [2 4] [4 5]]"},
		{10, []config.Batch{{Count: 1}, {Percent: 50}}, "[[0 1] [1 6] [6 10]]"},
		{3, []config.Batch{{Percent: 10}}, "[[0 1] [1 2] [2 3]]"},
	}
	for _, tt := range tests {
		if got := fmt.Sprint(Batches(tt.n, tt.serial)); got != tt.want {
			t.Errorf("Batches(%d, %v) = %s, want %s", tt.n, tt.serial, got, tt.want)
		}
	}
}

func TestCancelStopsTheRun(t *testing.T) {
	l := newLab(t, dirsRunbook, "a")
	pl, _ := plan.Build(l.rb, l.inv, plan.Options{})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	e := &Engine{Runbook: l.rb, Connector: l.conn, Options: Options{Forks: 1}}
	recap := e.Run(ctx, pl)
	if !recap.Interrupted || recap.ExitCode() == ExitOK {
		t.Errorf("recap = %+v", recap)
	}
}

// TestFactsGatheredLazilyOnce: facts are asked for only when an expression uses them, once
// per host for the whole run (across plays), and play vars may use them.
func TestFactsGatheredLazilyOnce(t *testing.T) {
	tests := []struct {
		name      string
		runbook   string
		wantCalls map[string][]string
		want      []string
	}{
		{
			name: "no facts used",
			runbook: `
play "p" {
  hosts = "kvm"
  task "d" {
    file {
      path  = "/srv/x"
      state = "directory"
    }
  }
}`,
			wantCalls: map[string][]string{"a": {"apply file /srv/x"}, "b": {"apply file /srv/x"}},
			want:      []string{"a d changed", "b d changed"},
		},
		{
			name: "when and args use facts, in two plays",
			runbook: `
play "p" {
  hosts = "kvm"
  task "plain" {
    file {
      path  = "/srv/plain"
      state = "directory"
    }
  }
  task "debian only" {
    when = facts.os.id == "debian"
    file {
      path  = "/srv/deb"
      state = "directory"
    }
  }
  task "named by os" {
    file {
      path  = "/srv/${facts.os.id}"
      state = "directory"
    }
  }
}
play "q" {
  hosts = "kvm"
  vars = {
    dir = "/srv/q-${facts.os.id}"
  }
  task "from vars" {
    file {
      path  = host.vars.dir
      state = "directory"
    }
  }
}`,
			wantCalls: map[string][]string{
				"a": {"apply file /srv/plain", "facts", "apply file /srv/deb", "apply file /srv/debian", "apply file /srv/q-debian"},
				"b": {"apply file /srv/plain", "facts", "apply file /srv/el", "apply file /srv/q-el"},
			},
			want: []string{"a plain changed", "a debian only changed", "a named by os changed", "a from vars changed",
				"b plain changed", "b debian only skipped", "b named by os changed", "b from vars changed"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := newLab(t, tt.runbook, "a", "b")
			l.conn.hosts["b"].osID = "el"
			_, rec := l.run(false, plan.Options{})
			eq(t, rec.lines(), tt.want)
			for h, want := range tt.wantCalls {
				got := l.conn.hosts[h].calls
				if strings.Join(got, "; ") != strings.Join(want, "; ") {
					t.Errorf("%s calls:\n  got  %v\n  want %v", h, got, want)
				}
			}
		})
	}
}

// TestStrategies: with linear every host finishes a task before any host starts the next
// (also with fewer forks than hosts); with free a fast host runs ahead of a slow one.
func TestStrategies(t *testing.T) {
	const rb = `
play "p" {
  hosts    = "kvm"
  strategy = "%s"
  task "one" {
    command {
      argv = [host.name == "a" ? "slow" : "fast1"]
    }
  }
  task "two" {
    command {
      argv = ["second"]
    }
  }
  task "three" {
    command {
      argv = ["third"]
    }
  }
}`
	tests := []struct {
		strategy string
		forks    int
		linear   bool
	}{
		{"linear", 4, true},
		{"linear", 1, true},
		{"free", 4, false},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%s/forks=%d", tt.strategy, tt.forks), func(t *testing.T) {
			l := newLab(t, fmt.Sprintf(rb, tt.strategy), "a", "b", "c")
			log := &globalLog{}
			for name, h := range l.conn.hosts {
				h.name, h.log = name, log
			}
			pl, diags := plan.Build(l.rb, l.inv, plan.Options{})
			if diags.HasErrors() {
				t.Fatal(diags)
			}
			rec := &recorder{}
			e := &Engine{Runbook: l.rb, Connector: l.conn, Observer: rec, Options: Options{Forks: tt.forks}}
			done := make(chan *Recap)
			go func() { done <- e.Run(context.Background(), pl) }()
			select {
			case recap := <-done:
				if code := recap.ExitCode(); code != 0 {
					t.Fatalf("exit %d: %v", code, rec.lines())
				}
			case <-time.After(10 * time.Second):
				t.Fatalf("run did not finish (deadlock?); events so far: %v", log.events)
			}
			// The first "second" start must come after every host's first task ended.
			firstSecond, lastOneEnd := -1, -1
			for i, ev := range log.events {
				if strings.HasSuffix(ev, " second start") && firstSecond < 0 {
					firstSecond = i
				}
				if strings.HasSuffix(ev, "slow end") || strings.HasSuffix(ev, "fast1 end") {
					lastOneEnd = i
				}
			}
			if got := firstSecond > lastOneEnd; got != tt.linear {
				t.Errorf("task two started after all of task one ended: %v, want %v\n%s", got, tt.linear, strings.Join(log.events, "\n"))
			}
			if len(log.events) != 18 {
				t.Errorf("%d events, want 18 (3 hosts × 3 tasks × start/end)", len(log.events))
			}
		})
	}
}

// TestRunOnce: a run_once task runs on one host of each serial batch; the others take its
// result (so later expressions can use it), and a failure there fails them too.
func TestRunOnce(t *testing.T) {
	const rb = `
play "p" {
  hosts  = "kvm"
  serial = [%d]
  task "once" {
    run_once = true
    command {
      argv = ["%s"]
    }
  }
  task "after" {
    file {
      path  = "/srv/${task.once.status}"
      state = "directory"
    }
  }
}`
	tests := []struct {
		name     string
		serial   int
		argv     string
		wantOnce int // hosts that really ran it
		want     map[Status]int
	}{
		{name: "one batch", serial: 4, argv: "migrate", wantOnce: 1, want: map[Status]int{Changed: 1 + 4, OK: 3}},
		{name: "two batches", serial: 2, argv: "migrate", wantOnce: 2, want: map[Status]int{Changed: 2 + 4, OK: 2}},
		{name: "failure fails the batch", serial: 4, argv: "false", wantOnce: 1, want: map[Status]int{Failed: 4}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := newLab(t, fmt.Sprintf(rb, tt.serial, tt.argv), "a", "b", "c", "d")
			_, rec := l.run(false, plan.Options{})
			ran := 0
			for _, h := range l.conn.hosts {
				for _, c := range h.calls {
					if c == "apply command "+tt.argv {
						ran++
					}
				}
			}
			if ran != tt.wantOnce {
				t.Errorf("the run_once task ran on %d hosts, want %d", ran, tt.wantOnce)
			}
			got := map[Status]int{}
			for _, r := range rec.results {
				got[r.Status]++
				if r.Task == "after" && r.Status == Changed && !l.conn.hosts[r.Host].paths["/srv/changed"] {
					t.Errorf("%s: task.once.status did not carry over", r.Host)
				}
			}
			if fmt.Sprint(got) != fmt.Sprint(tt.want) {
				t.Errorf("statuses %v, want %v\n%v", got, tt.want, rec.lines())
			}
		})
	}
}

// TestRunOnceTakeover: when the host that runs a run_once task drops off, the task has not
// failed: the next host of the batch runs it, and the rest take that result.
func TestRunOnceTakeover(t *testing.T) {
	l := newLab(t, `
play "p" {
  hosts = "kvm"
  task "once" {
    run_once = true
    command {
      argv = ["drop-on-a"]
    }
  }
}`, "a", "b", "c")
	rec := &recorder{}
	e := &Engine{Runbook: l.rb, Connector: l.conn, Observer: rec, Options: Options{Forks: 1}}
	pl, diags := plan.Build(l.rb, l.inv, plan.Options{})
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	recap := e.Run(context.Background(), pl)
	got := map[string]Status{}
	for _, r := range rec.results {
		got[r.Host] = r.Status
	}
	if got["a"] != Unreachable || got["b"] != Changed || got["c"] != OK || recap.ExitCode() != ExitUnreachable {
		t.Errorf("statuses %v (exit %d), want a unreachable, b changed (took it over), c ok\n%v", got, recap.ExitCode(), rec.lines())
	}
}

// TestForceHandlers: a host that fails after notifying a handler skips it, unless
// ForceHandlers says it must run.
func TestForceHandlers(t *testing.T) {
	const src = `
play "p" {
  hosts = "kvm"
  task "config" {
    notify = ["reload"]
    file {
      path  = "/srv/conf"
      state = "directory"
    }
  }
  task "breaks" {
    command {
      argv = ["false"]
    }
  }
  handler "reload" {
    command {
      argv = ["reload"]
    }
  }
}`
	for _, force := range []bool{false, true} {
		t.Run(fmt.Sprint("force=", force), func(t *testing.T) {
			l := newLab(t, src, "a")
			pl, _ := plan.Build(l.rb, l.inv, plan.Options{})
			rec := &recorder{}
			e := &Engine{Runbook: l.rb, Connector: l.conn, Observer: rec, Options: Options{Forks: 1, ForceHandlers: force}}
			if code := e.Run(context.Background(), pl).ExitCode(); code != ExitFailed {
				t.Errorf("exit %d, want %d", code, ExitFailed)
			}
			want := []string{"a config changed", "a breaks failed"}
			if force {
				want = append(want, "a reload changed")
			}
			eq(t, rec.lines(), want)
		})
	}
}

// TestCheckModeRegisteredValues: in check mode a command does not run, so it registers no
// rc; a later when that tests task.probe.rc reads null (and skips) instead of failing, and a
// skipped task registers its declared fields as null too.
func TestCheckModeRegisteredValues(t *testing.T) {
	const src = `
play "p" {
  hosts = "kvm"
  task "probe" {
    command {
      argv = ["probe"]
    }
  }
  task "never" {
    when = false
    command {
      argv = ["never"]
    }
  }
  task "after probe" {
    when = task.probe.rc == 0 && task.never.stdout == null
    file {
      path  = "/srv/x"
      state = "directory"
    }
  }
}`
	l := newLab(t, src, "a")
	_, rec := l.run(true, plan.Options{})
	eq(t, rec.lines(), []string{"a probe drift", "a never skipped", "a after probe skipped"})
	_, rec = l.run(false, plan.Options{})
	eq(t, rec.lines(), []string{"a probe changed", "a never skipped", "a after probe changed"})
}

// TestFactsNotGatheredForAnEmptyPlay: a play whose vars use facts but that has no task
// selected neither connects nor gathers facts, and does not fail.
func TestFactsNotGatheredForAnEmptyPlay(t *testing.T) {
	const src = `
play "p" {
  hosts = "kvm"
  vars = {
    dir = "/srv/${facts.os.id}"
  }
  task "a" {
    file {
      path  = host.vars.dir
      state = "directory"
    }
  }
}
play "q" {
  hosts = "kvm"
  task "b" {
    file {
      path  = "/srv/b"
      state = "directory"
    }
  }
}`
	l := newLab(t, src, "a")
	recap, rec := l.run(false, plan.Options{Task: "b"})
	eq(t, rec.lines(), []string{"a b changed"})
	if calls := l.conn.hosts["a"].calls; strings.Join(calls, "; ") != "apply file /srv/b" || recap.ExitCode() != ExitOK {
		t.Errorf("calls %v, exit %d", calls, recap.ExitCode())
	}
}
