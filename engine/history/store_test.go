package history

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/runbook/runbook/engine/run"
	"github.com/runbook/runbook/modules"
)

type backend struct {
	name string
	open func(t *testing.T) Store
}

// backends are the stores every test runs against: a SQLite file and a PostgreSQL database.
func backends() []backend {
	return []backend{
		{"sqlite", func(t *testing.T) Store {
			return openStore(t, filepath.Join(t.TempDir(), "state", "history.db"))
		}},
		{"postgres", func(t *testing.T) Store {
			return openStore(t, postgresURL(t))
		}},
	}
}

func openStore(t *testing.T, loc string) Store {
	t.Helper()
	s, err := Open(context.Background(), loc, Options{Create: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// runSpec is one recorded run: "host task=status task=status; host ..." per play. A status
// of rolled_back or confirmed is a network change in a transaction that ended so (testTxn).
type runSpec struct {
	runbook string
	mode    string
	plays   []string
}

// record plays a run through the Recorder, as the engine would call it.
func record(t *testing.T, s Store, rs runSpec, at time.Time) int64 {
	t.Helper()
	if rs.runbook == "" {
		rs.runbook = "/srv/site.hcl"
	}
	if rs.mode == "" {
		rs.mode = ModeCheck
	}
	rec, err := Begin(context.Background(), s, Run{StartedAt: at, Runbook: rs.runbook, RunbookSHA256: "abc", User: "ops",
		Controller: "ctl", Mode: rs.mode, Argv: []string{"runbook", rs.mode, rs.runbook}}, func(err error) { t.Error(err) })
	if err != nil {
		t.Fatal(err)
	}
	recap := &run.Recap{Hosts: map[string]*run.Stats{}, Duration: 2 * time.Second}
	for pi, play := range rs.plays {
		for _, hostSpec := range strings.Split(play, ";") {
			f := strings.Fields(hostSpec)
			if len(f) == 0 {
				continue
			}
			host := f[0]
			st := recap.Hosts[host]
			if st == nil {
				st = &run.Stats{}
				recap.Hosts[host] = st
			}
			rec.HostStarted(host)
			for _, ts := range f[1:] {
				task, status, _ := strings.Cut(ts, "=")
				r := run.Result{Host: host, Play: "play" + string(rune('1'+pi)), Task: task, Module: "file",
					Status: run.Status(status), Duration: 15 * time.Millisecond}
				// A network change: rolled back by the host (failed), or confirmed.
				switch status {
				case modules.TxnRolledBack:
					r.Status, r.Module, r.Msg = run.Failed, "interface", "rolled back (no confirmation came before the deadline)"
					r.Transaction = testTxn(task, modules.TxnRolledBack)
				case modules.TxnConfirmed:
					r.Status, r.Module, r.Msg = run.Changed, "interface", "changed (confirmed over a new connection)"
					r.Transaction = testTxn(task, modules.TxnConfirmed)
				}
				if r.Status == run.Drift || r.Status == run.Changed {
					r.Diff = &modules.Diff{BeforeHeader: "/etc/" + task + " (before)", Before: "old\n",
						AfterHeader: "/etc/" + task + " (after)", After: "new <b>\n"}
				}
				if task == "kernel" {
					r.RebootRequired = true
					st.RebootRequired = true
				}
				switch r.Status {
				case run.OK:
					st.OK++
				case run.Changed:
					st.Changed++
				case run.Drift:
					st.Drift++
				case run.Unknown:
					st.Unknown++
				case run.Failed:
					st.Failed++
				case run.Unreachable:
					st.Unreachable++
				case run.Skipped:
					st.Skipped++
				}
				rec.TaskDone(r)
			}
			rec.HostDone(host, *st)
		}
	}
	if err := rec.Finish(recap); err != nil {
		t.Fatal(err)
	}
	return rec.RunID()
}

func TestStoreQueries(t *testing.T) {
	base := time.Date(2026, 3, 1, 2, 0, 0, 123456000, time.UTC)
	cases := []struct {
		name   string
		runs   []runSpec
		filter Filter
		// latest: host -> "run#:status" (run# counts from 1 in the order recorded)
		latest map[string]string
		// first: host -> run# of the first run of the current drift streak
		first map[string]int
		// top over all runs: "task:count:hosts"
		top []string
		// lastFailed of /srv/site.hcl
		lastFailed []string
	}{
		{
			name: "streak after a sync run",
			runs: []runSpec{
				{plays: []string{"web1 motd=ok sysctl=ok; web2 motd=drift"}},
				{plays: []string{"web1 motd=drift sysctl=ok; web2 motd=drift"}},
				{plays: []string{"web1 motd=drift sysctl=drift; web2 motd=ok"}},
			},
			latest:     map[string]string{"web1": "3:drift", "web2": "3:ok"},
			first:      map[string]int{"web1": 2},
			top:        []string{"motd:4:2", "sysctl:1:1"},
			lastFailed: nil,
		},
		{
			name: "unreachable and failed runs neither break nor start a streak",
			runs: []runSpec{
				{plays: []string{"db1 motd=drift; db2 motd=ok"}},
				{plays: []string{"db1 connect=unreachable; db2 motd=failed"}},
				{plays: []string{"db1 motd=drift; db2 motd=drift"}},
				{plays: []string{"db1 motd=drift; db2 motd=failed"}},
			},
			latest:     map[string]string{"db1": "4:drift", "db2": "4:failed"},
			first:      map[string]int{"db1": 1, "db2": 3},
			top:        []string{"motd:4:2"},
			lastFailed: []string{"db2"},
		},
		{
			name: "a check that could not predict a task is unknown: it neither breaks nor starts a streak",
			runs: []runSpec{
				{plays: []string{"vm1 motd=drift; vm2 motd=ok"}},
				{plays: []string{"vm1 motd=ok nic=unknown; vm2 nic=unknown"}},
				{plays: []string{"vm1 motd=drift; vm2 nic=unknown motd=drift"}},
				{plays: []string{"vm1 motd=drift nic=unknown"}},
			},
			latest: map[string]string{"vm1": "4:drift", "vm2": "3:drift"},
			first:  map[string]int{"vm1": 1, "vm2": 3},
			top:    []string{"motd:4:2"},
		},
		{
			name: "unknown is the host's status when nothing is worse",
			runs: []runSpec{
				{mode: ModeExec, plays: []string{"vm1 motd=changed nic=unknown; vm2 motd=ok nic=unknown skip=skipped; vm3 motd=changed"}},
			},
			latest: map[string]string{"vm1": "1:unknown", "vm2": "1:unknown", "vm3": "1:changed"},
			first:  map[string]int{},
		},
		{
			name: "an exec that fixed the drift ends the streak",
			runs: []runSpec{
				{plays: []string{"app1 motd=drift"}},
				{mode: ModeExec, plays: []string{"app1 motd=changed"}},
				{plays: []string{"app1 motd=ok"}},
			},
			latest: map[string]string{"app1": "3:ok"},
			first:  map[string]int{},
			top:    []string{"motd:1:1"},
		},
		{
			name: "a host seen in two plays keeps one result with both plays' counts",
			runs: []runSpec{
				{plays: []string{"kvm1 motd=ok; kvm2 motd=ok", "kvm1 kernel=drift; kvm2 connect=unreachable"}},
			},
			latest:     map[string]string{"kvm1": "1:drift", "kvm2": "1:unreachable"},
			first:      map[string]int{"kvm1": 1},
			top:        []string{"kernel:1:1"},
			lastFailed: []string{"kvm2"},
		},
		{
			name: "filters: runbook, host and mode",
			runs: []runSpec{
				{runbook: "/srv/a.hcl", plays: []string{"h1 x=drift; h2 x=drift"}},
				{runbook: "/srv/b.hcl", plays: []string{"h1 y=ok; h2 y=failed"}},
				{runbook: "/srv/a.hcl", mode: ModeExec, plays: []string{"h1 x=changed"}},
			},
			filter:     Filter{Runbook: "/srv/a.hcl", Hosts: []string{"h2"}, Mode: ModeCheck},
			latest:     map[string]string{"h2": "1:drift"},
			first:      map[string]int{"h2": 1},
			top:        []string{"x:1:1"},
			lastFailed: nil,
		},
	}
	for _, be := range backends() {
		t.Run(be.name, func(t *testing.T) {
			for _, tc := range cases {
				t.Run(tc.name, func(t *testing.T) {
					s := be.open(t)
					ctx := context.Background()
					var ids []int64
					for i, rs := range tc.runs {
						ids = append(ids, record(t, s, rs, base.Add(time.Duration(i)*24*time.Hour)))
					}
					num := func(id int64) int {
						for i, x := range ids {
							if x == id {
								return i + 1
							}
						}
						return -1
					}

					latest, err := s.Latest(ctx, tc.filter)
					if err != nil {
						t.Fatal(err)
					}
					got := map[string]string{}
					for _, hr := range latest {
						got[hr.Host.Host] = strings.Join([]string{itoa(num(hr.Run.ID)), hr.Host.Status}, ":")
						if !hr.Run.StartedAt.Equal(base.Add(time.Duration(num(hr.Run.ID)-1) * 24 * time.Hour)) {
							t.Errorf("%s: started_at %v does not round-trip", hr.Host.Host, hr.Run.StartedAt)
						}
					}
					if !reflect.DeepEqual(got, tc.latest) {
						t.Errorf("Latest = %v, want %v", got, tc.latest)
					}

					first, err := s.FirstDrifted(ctx, tc.filter)
					if err != nil {
						t.Fatal(err)
					}
					gotFirst := map[string]int{}
					for h, r := range first {
						gotFirst[h] = num(r.ID)
					}
					if !reflect.DeepEqual(gotFirst, tc.first) {
						t.Errorf("FirstDrifted = %v, want %v", gotFirst, tc.first)
					}

					runs, err := s.Runs(ctx, tc.filter, 0)
					if err != nil {
						t.Fatal(err)
					}
					var runIDs []int64
					for _, r := range runs {
						runIDs = append(runIDs, r.ID)
					}
					top, err := s.TopDrift(ctx, runIDs, tc.filter.Hosts, 10)
					if err != nil {
						t.Fatal(err)
					}
					var gotTop []string
					for _, c := range top {
						gotTop = append(gotTop, c.Task+":"+itoa(c.Count)+":"+itoa(c.Hosts))
					}
					if !reflect.DeepEqual(gotTop, tc.top) {
						t.Errorf("TopDrift = %v, want %v", gotTop, tc.top)
					}

					failed, err := s.LastFailedHosts(ctx, "/srv/site.hcl")
					if err != nil {
						t.Fatal(err)
					}
					if !reflect.DeepEqual(failed, tc.lastFailed) {
						t.Errorf("LastFailedHosts = %v, want %v", failed, tc.lastFailed)
					}
				})
			}
		})
	}
}

func itoa(n int) string { return strconv.Itoa(n) }

// testTxn is a transaction of task that ended in state.
func testTxn(task, state string) *modules.Transaction {
	t := &modules.Transaction{ID: "tx-" + task, State: state, Module: "interface", Armed: "systemd", WithinMS: 20000,
		Deadline: time.Date(2026, 3, 1, 2, 0, 20, 0, time.UTC)}
	if state == modules.TxnRolledBack {
		t.Why, t.Verified = "no confirmation came before the deadline", true
		t.Restored = []string{"eth0: state down → up", "/etc/network/interfaces: restored <b> \"quoted\""}
	}
	return t
}

// TestStoreRecordsEverything reads back one run in full: the run row, the host rows and the
// tasks with their diffs, flags and order; and the runs list honours its limit.
func TestStoreRecordsEverything(t *testing.T) {
	for _, be := range backends() {
		t.Run(be.name, func(t *testing.T) {
			s := be.open(t)
			ctx := context.Background()
			at := time.Date(2026, 4, 2, 3, 4, 5, 0, time.UTC)
			record(t, s, runSpec{plays: []string{"n1 a=ok"}}, at.Add(-time.Hour))
			id := record(t, s, runSpec{runbook: "/srv/site.hcl", plays: []string{"n1 a=ok motd=drift kernel=drift b=skipped; n2 c=failed"}}, at)

			runs, err := s.Runs(ctx, Filter{}, 1)
			if err != nil {
				t.Fatal(err)
			}
			if len(runs) != 1 || runs[0].ID != id {
				t.Fatalf("Runs(limit 1) = %+v, want run %d only", runs, id)
			}
			r := runs[0]
			want := Counts{OK: 1, Drift: 2, Skipped: 1, Failed: 1}
			if r.Mode != ModeCheck || r.Runbook != "/srv/site.hcl" || r.ExitCode != run.ExitFailed || r.Hosts != 2 ||
				r.Counts != want || !r.Finished() || r.User != "ops" || r.Controller != "ctl" || r.RunbookSHA256 != "abc" ||
				!reflect.DeepEqual(r.Argv, []string{"runbook", "check", "/srv/site.hcl"}) || r.Duration != 2*time.Second {
				t.Errorf("run = %+v", r)
			}

			hrs, err := s.HostRuns(ctx, []int64{id}, nil)
			if err != nil {
				t.Fatal(err)
			}
			if len(hrs) != 2 || hrs[0].Host.Host != "n1" || hrs[0].Host.Status != HostDrift || !hrs[0].Host.RebootRequired ||
				hrs[1].Host.Status != HostFailed || hrs[1].Host.RebootRequired {
				t.Errorf("host runs = %+v", hrs)
			}

			tasks, err := s.Tasks(ctx, id, "n1")
			if err != nil {
				t.Fatal(err)
			}
			var names []string
			for _, tr := range tasks {
				names = append(names, tr.Task)
			}
			if strings.Join(names, ",") != "a,motd,kernel,b" {
				t.Errorf("tasks in order: %v", names)
			}
			drift, err := s.Tasks(ctx, id, "n1", "drift")
			if err != nil {
				t.Fatal(err)
			}
			if len(drift) != 2 {
				t.Fatalf("drift tasks = %+v", drift)
			}
			d := drift[0]
			if d.Task != "motd" || d.Diff == nil || d.Diff.After != "new <b>\n" || d.Diff.BeforeHeader != "/etc/motd (before)" ||
				d.RebootRequired || !drift[1].RebootRequired || d.Duration != 15*time.Millisecond || d.Seq != 2 {
				t.Errorf("drift task = %+v diff %+v", d, d.Diff)
			}
			if tasks[0].Diff != nil {
				t.Errorf("a task without a diff reads back with one: %+v", tasks[0].Diff)
			}
		})
	}
}

// TestMigrations: opening again applies nothing twice; a schema newer than this build is
// refused; a report never creates a missing file.
func TestMigrations(t *testing.T) {
	if v := SchemaVersion(); v != 4 {
		t.Errorf("SchemaVersion() = %d, want 4", v)
	}
	for _, be := range backends() {
		t.Run(be.name, func(t *testing.T) {
			s := be.open(t)
			ctx := context.Background()
			v, err := s.SchemaVersion(ctx)
			if err != nil || v != SchemaVersion() {
				t.Fatalf("schema version %d, %v", v, err)
			}
			ss := s.(*sqlStore)
			loc := s.Location() // the test server has no password to hide
			again := openStore(t, loc)
			var n int
			if err := again.(*sqlStore).db.QueryRowContext(ctx, "SELECT COUNT(*) FROM schema_migrations").Scan(&n); err != nil || n != SchemaVersion() {
				t.Errorf("schema_migrations rows = %d, %v", n, err)
			}
			if _, err := ss.exec(ctx, "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)", 99, "future", ss.d.time(time.Now())); err != nil {
				t.Fatal(err)
			}
			if _, err := Open(ctx, loc, Options{Create: true}); err == nil || !strings.Contains(err.Error(), "newer than this runbook knows") {
				t.Errorf("opening a newer schema: %v", err)
			}
		})
	}
	missing := filepath.Join(t.TempDir(), "none", "history.db")
	if _, err := Open(context.Background(), missing, Options{}); !errors.Is(err, ErrNotExist) {
		t.Errorf("Open of a missing file without Create: %v", err)
	}
	if _, err := os.Stat(filepath.Dir(missing)); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Open without Create made %s: %v", filepath.Dir(missing), err)
	}
}

func TestDefaultPathAndRedact(t *testing.T) {
	home := t.TempDir()
	cases := []struct {
		env     map[string]string
		want    string
		wantErr string
	}{
		{env: map[string]string{"XDG_STATE_HOME": "/var/state", "HOME": home}, want: "/var/state/runbook/history.db"},
		{env: map[string]string{"XDG_STATE_HOME": "relative", "HOME": home}, want: home + "/.local/state/runbook/history.db"},
		{env: map[string]string{"HOME": home}, want: home + "/.local/state/runbook/history.db"},
		{env: map[string]string{"HOME": "/no-home"}, wantErr: "does not exist"},
		{env: map[string]string{}, wantErr: "neither XDG_STATE_HOME nor HOME"},
	}
	for _, c := range cases {
		got, err := DefaultPath(func(k string) string { return c.env[k] })
		if c.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), c.wantErr) {
				t.Errorf("%v: err %v, want %q", c.env, err, c.wantErr)
			}
			continue
		}
		if err != nil || got != c.want {
			t.Errorf("%v: %q, %v; want %q", c.env, got, err, c.want)
		}
	}
	for in, want := range map[string]string{
		"postgres://ops:s3cret@db:5432/rb":        "postgres://ops:xxxxx@db:5432/rb",
		"postgresql://db/rb?password=s3cret&x=1":  "postgresql://db/rb?password=xxxxx&x=1",
		"/var/lib/runbook/history.db":             "/var/lib/runbook/history.db",
		"postgres://db/rb?sslmode=disable&user=a": "postgres://db/rb?sslmode=disable&user=a",
	} {
		if got := Redact(in); got != want {
			t.Errorf("Redact(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestConcurrentRecorders: hosts finish concurrently, and two controllers record into one
// SQLite file at once; every host and task arrives.
func TestConcurrentRecorders(t *testing.T) {
	path := filepath.Join(t.TempDir(), "history.db")
	a, b := openStore(t, path), openStore(t, path)
	ctx := context.Background()
	done := make(chan int64)
	for _, s := range []Store{a, b} {
		go func(s Store) {
			rec, err := Begin(ctx, s, Run{Runbook: "/srv/x.hcl", Mode: ModeCheck}, func(err error) { t.Error(err) })
			if err != nil {
				t.Error(err)
				done <- 0
				return
			}
			hosts := make(chan struct{}, 20)
			for i := range 20 {
				hosts <- struct{}{}
				go func(i int) {
					defer func() { <-hosts }()
					h := "h" + itoa(i)
					rec.HostStarted(h)
					rec.TaskDone(run.Result{Host: h, Play: "p", Task: "t", Module: "file", Status: run.OK})
					rec.HostDone(h, run.Stats{OK: 1})
				}(i)
			}
			for range cap(hosts) {
				hosts <- struct{}{}
			}
			_ = rec.Finish(&run.Recap{Hosts: map[string]*run.Stats{}})
			done <- rec.RunID()
		}(s)
	}
	ids := []int64{<-done, <-done}
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	hrs, err := a.HostRuns(ctx, ids, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(hrs) != 40 {
		t.Errorf("%d host results, want 40", len(hrs))
	}
	for _, id := range ids {
		tasks, err := a.Tasks(ctx, id, "h7")
		if err != nil || len(tasks) != 1 {
			t.Errorf("run %d h7 tasks: %v %v", id, tasks, err)
		}
	}
}

// TestRecorderInterruptedAndBroken: hosts that finish after the run's context is cancelled
// are still written; a store that fails makes the Recorder warn once and stop, and Finish
// says the record is incomplete.
func TestRecorderInterruptedAndBroken(t *testing.T) {
	s := openStore(t, filepath.Join(t.TempDir(), "history.db"))
	ctx, cancel := context.WithCancel(context.Background())
	rec, err := Begin(ctx, s, Run{Runbook: "/srv/x.hcl", Mode: ModeExec}, func(err error) { t.Error(err) })
	if err != nil {
		t.Fatal(err)
	}
	cancel()
	rec.TaskDone(run.Result{Host: "a", Task: "t", Status: run.Failed, Msg: "interrupted: context canceled"})
	rec.HostDone("a", run.Stats{Failed: 1})
	if err := rec.Finish(&run.Recap{Hosts: map[string]*run.Stats{"a": {Failed: 1}}, Interrupted: true}); err != nil {
		t.Fatal(err)
	}
	runs, err := s.Runs(context.Background(), Filter{}, 0)
	if err != nil || len(runs) != 1 || !runs[0].Interrupted || runs[0].ExitCode != run.ExitFailed {
		t.Fatalf("runs %+v %v", runs, err)
	}
	if tasks, err := s.Tasks(context.Background(), rec.RunID(), "a"); err != nil || len(tasks) != 1 {
		t.Errorf("tasks of the interrupted host: %v %v", tasks, err)
	}

	warned := 0
	rec, err = Begin(context.Background(), s, Run{Runbook: "/srv/x.hcl", Mode: ModeExec}, func(error) { warned++ })
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	rec.HostDone("a", run.Stats{OK: 1})
	rec.HostDone("b", run.Stats{OK: 1})
	if err := rec.Finish(&run.Recap{Hosts: map[string]*run.Stats{}}); err == nil {
		t.Error("Finish after failed writes reported no error")
	}
	if warned != 1 {
		t.Errorf("warned %d times, want once", warned)
	}
}

// flakyStore fails the first n writes of host results, then passes them to the real store.
type flakyStore struct {
	Store
	n int
}

func (f *flakyStore) RecordHost(ctx context.Context, h HostResult, tasks []TaskResult) error {
	return f.RecordHosts(ctx, []HostRecord{{Result: h, Tasks: tasks}})
}

func (f *flakyStore) RecordHosts(ctx context.Context, hosts []HostRecord) error {
	if f.n > 0 {
		f.n--
		return errors.New("database is locked")
	}
	return f.Store.RecordHosts(ctx, hosts)
}

// TestRecorderRetriesAtFinish: a write that fails once loses nothing. The Recorder warns
// once, keeps the failed host and the hosts after it in memory, and Finish writes them all
// with every task, then the run's totals.
func TestRecorderRetriesAtFinish(t *testing.T) {
	s := openStore(t, filepath.Join(t.TempDir(), "history.db"))
	flaky := &flakyStore{Store: s, n: 1}
	warned := 0
	rec, err := Begin(context.Background(), flaky, Run{Runbook: "/srv/x.hcl", Mode: ModeExec}, func(error) { warned++ })
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range []string{"a", "b", "c"} {
		rec.TaskDone(run.Result{Host: h, Task: "t1", Status: run.OK})
		rec.TaskDone(run.Result{Host: h, Task: "t2", Status: run.Changed})
		rec.HostDone(h, run.Stats{OK: 1, Changed: 1})
	}
	recap := &run.Recap{Hosts: map[string]*run.Stats{"a": {OK: 1, Changed: 1}, "b": {OK: 1, Changed: 1}, "c": {OK: 1, Changed: 1}}}
	if err := rec.Finish(recap); err != nil {
		t.Fatalf("Finish after one failed write: %v", err)
	}
	if warned != 1 {
		t.Errorf("warned %d times, want once", warned)
	}
	runs, err := s.Runs(context.Background(), Filter{}, 0)
	if err != nil || len(runs) != 1 || runs[0].FinishedAt.IsZero() || runs[0].Hosts != 3 {
		t.Fatalf("runs %+v %v", runs, err)
	}
	for _, h := range []string{"a", "b", "c"} {
		if tasks, err := s.Tasks(context.Background(), rec.RunID(), h); err != nil || len(tasks) != 2 {
			t.Errorf("host %s: tasks %v %v", h, tasks, err)
		}
	}
}

// TestHostStatusReadFromCounts: a host row's status is what its counts say, also for a row
// written when unknown ranked as in sync.
func TestHostStatusReadFromCounts(t *testing.T) {
	tests := []struct {
		stored string
		counts Counts
		want   string
	}{
		{HostOK, Counts{OK: 2, Unknown: 1}, HostUnknown},
		{HostChanged, Counts{Changed: 1, Unknown: 1}, HostUnknown},
		{HostDrift, Counts{Drift: 1, Unknown: 1}, HostDrift},
		{HostOK, Counts{OK: 3}, HostOK},
		{HostOK, Counts{}, HostOK},
	}
	for _, tt := range tests {
		x := hostScan{h: HostResult{Status: tt.stored, Counts: tt.counts}}
		if got := x.result().Status; got != tt.want {
			t.Errorf("stored %s, counts %+v: got %s, want %s", tt.stored, tt.counts, got, tt.want)
		}
	}
}

// gateStore holds its first write of host results until release is closed, and notes the
// hosts of each write; fail makes the writes after the first fail.
type gateStore struct {
	Store
	release chan struct{}
	fail    bool
	mu      sync.Mutex
	writes  [][]string
}

func (g *gateStore) RecordHosts(ctx context.Context, hosts []HostRecord) error {
	g.mu.Lock()
	var names []string
	for _, h := range hosts {
		names = append(names, h.Result.Host)
	}
	g.writes = append(g.writes, names)
	n := len(g.writes)
	g.mu.Unlock()
	if n == 1 {
		<-g.release
	} else if g.fail {
		return errors.New("database is locked")
	}
	return g.Store.RecordHosts(ctx, hosts)
}

// TestRecorderGroupCommit: hosts that finish while a write is under way are written
// together by the next write, in one transaction, and their HostDone does not wait for it;
// when that write fails, Finish writes them all, every task included.
func TestRecorderGroupCommit(t *testing.T) {
	for _, fail := range []bool{false, true} {
		t.Run(fmt.Sprint("fail=", fail), func(t *testing.T) {
			s := openStore(t, filepath.Join(t.TempDir(), "history.db"))
			g := &gateStore{Store: s, release: make(chan struct{}), fail: fail}
			warned := 0
			rec, err := Begin(context.Background(), g, Run{Runbook: "/srv/x.hcl", Mode: ModeExec}, func(error) { warned++ })
			if err != nil {
				t.Fatal(err)
			}
			done := func(h string) {
				rec.TaskDone(run.Result{Host: h, Task: "t1", Status: run.OK})
				rec.TaskDone(run.Result{Host: h, Task: "t2", Status: run.Changed})
				rec.HostDone(h, run.Stats{OK: 1, Changed: 1})
			}
			first := make(chan struct{})
			go func() { done("a"); close(first) }()
			for {
				g.mu.Lock()
				n := len(g.writes)
				g.mu.Unlock()
				if n == 1 {
					break
				}
				time.Sleep(time.Millisecond)
			}
			returned := make(chan struct{})
			go func() {
				for _, h := range []string{"b", "c", "d"} {
					done(h)
				}
				done("b") // a second play of b: its result replaced, its tasks added
				close(returned)
			}()
			select {
			case <-returned:
			case <-time.After(10 * time.Second):
				t.Fatal("HostDone waited for the write under way")
			}
			close(g.release)
			<-first
			recap := &run.Recap{Hosts: map[string]*run.Stats{}}
			for _, h := range []string{"a", "b", "c", "d"} {
				recap.Hosts[h] = &run.Stats{OK: 1, Changed: 1}
			}
			if err := rec.Finish(recap); err != nil {
				t.Fatalf("Finish: %v", err)
			}
			if want := [][]string{{"a"}, {"b", "c", "d"}}; !reflect.DeepEqual(g.writes, want) {
				t.Errorf("writes %v, want %v", g.writes, want)
			}
			if want := map[bool]int{false: 0, true: 1}[fail]; warned != want {
				t.Errorf("warned %d times, want %d", warned, want)
			}
			for h, n := range map[string]int{"a": 2, "b": 4, "c": 2, "d": 2} {
				if tasks, err := s.Tasks(context.Background(), rec.RunID(), h); err != nil || len(tasks) != n {
					t.Errorf("host %s: %d tasks %v, want %d", h, len(tasks), err, n)
				}
			}
			runs, err := s.Runs(context.Background(), Filter{}, 0)
			if err != nil || len(runs) != 1 || runs[0].Hosts != 4 {
				t.Fatalf("runs %+v %v", runs, err)
			}
		})
	}
}

// panicStore's writes of several hosts panic, as a driver's bug would.
type panicStore struct{ Store }

func (panicStore) RecordHosts(context.Context, []HostRecord) error { panic("driver bug") }

// TestRecorderStorePanics: a store that panics in a write fails that write like an error:
// the run goes on, is warned once, and Finish neither hangs nor loses the hosts.
func TestRecorderStorePanics(t *testing.T) {
	s := openStore(t, filepath.Join(t.TempDir(), "history.db"))
	var warned []error
	rec, err := Begin(context.Background(), panicStore{s}, Run{Runbook: "/srv/x.hcl", Mode: ModeExec}, func(err error) { warned = append(warned, err) })
	if err != nil {
		t.Fatal(err)
	}
	rec.HostDone("a", run.Stats{OK: 1})
	rec.HostDone("b", run.Stats{Changed: 1})
	done := make(chan error, 1)
	go func() {
		done <- rec.Finish(&run.Recap{Hosts: map[string]*run.Stats{"a": {OK: 1}, "b": {Changed: 1}}})
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Finish: %v (its host-by-host writes do not panic)", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Finish hangs after a write panicked")
	}
	if len(warned) != 1 || !strings.Contains(warned[0].Error(), "driver bug") {
		t.Errorf("warned %v", warned)
	}
	runs, err := s.Runs(context.Background(), Filter{}, 0)
	if err != nil || len(runs) != 1 || runs[0].Hosts != 2 {
		t.Fatalf("runs %+v %v", runs, err)
	}
	hrs, err := s.HostRuns(context.Background(), []int64{rec.RunID()}, nil)
	if err != nil || len(hrs) != 2 {
		t.Errorf("hosts recorded: %d %v", len(hrs), err)
	}
}
