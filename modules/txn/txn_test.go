package txn

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/runbook/runbook/modules"
)

// TestMain lets the test binary stand in for the helper's `txn` subcommands, so the
// watchdog test runs a real detached process.
func TestMain(m *testing.M) {
	if len(os.Args) > 2 && os.Args[1] == "txn" {
		fs := flag.NewFlagSet("txn", flag.ExitOnError)
		dir := fs.String("dir", "", "")
		id := fs.String("id", "", "")
		_ = fs.Parse(os.Args[3:])
		mgr := &Manager{Dir: *dir}
		var err error
		switch os.Args[2] {
		case CmdWatch:
			_, err = mgr.Watch(*id)
		case CmdRollback:
			_, err = mgr.Rollback(*id, "test")
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// fakeRestorer is a runtime state of one string.
type fakeRestorer struct {
	state    *string
	failWith error
	restored int
}

func (f *fakeRestorer) Restore(raw json.RawMessage) ([]string, error) {
	var want string
	if err := json.Unmarshal(raw, &want); err != nil {
		return nil, err
	}
	if f.failWith != nil {
		return nil, f.failWith
	}
	if *f.state == want {
		return nil, nil
	}
	f.restored++
	old := *f.state
	*f.state = want
	return []string{fmt.Sprintf("state %s → %s", old, want)}, nil
}

func (f *fakeRestorer) Verify(raw json.RawMessage) ([]string, error) {
	var want string
	_ = json.Unmarshal(raw, &want)
	if *f.state != want {
		return []string{fmt.Sprintf("state is %s, not %s", *f.state, want)}, nil
	}
	return nil, nil
}

type fixture struct {
	t     *testing.T
	m     *Manager
	dir   string // files live here
	state string
	fr    *fakeRestorer
	now   time.Time
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	f := &fixture{t: t, dir: t.TempDir(), state: "before", now: time.Now()}
	f.fr = &fakeRestorer{state: &f.state}
	f.m = &Manager{Dir: filepath.Join(t.TempDir(), "txn"),
		Arm:       func(*Manager, *Journal) (Arm, error) { return Arm{How: "none"}, nil },
		Disarm:    func(*Manager, *Journal) error { return nil },
		Restorers: map[string]Restorer{"fake": f.fr},
		Now:       func() time.Time { return f.now }}
	return f
}

func (f *fixture) write(name, content string, mode os.FileMode) string {
	p := filepath.Join(f.dir, name)
	if err := os.WriteFile(p, []byte(content), mode); err != nil {
		f.t.Fatal(err)
	}
	if err := os.Chmod(p, mode); err != nil {
		f.t.Fatal(err)
	}
	return p
}

func (f *fixture) begin(timeout time.Duration, paths ...string) *Journal {
	f.t.Helper()
	files, err := Snapshot(paths)
	if err != nil {
		f.t.Fatal(err)
	}
	raw, _ := json.Marshal(f.state)
	j, _, err := f.m.Begin("", "interface", timeout, files, map[string]json.RawMessage{"fake": raw})
	if err != nil {
		f.t.Fatal(err)
	}
	return j
}

func read(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		return "<" + err.Error() + ">"
	}
	return string(b)
}

func TestRollbackRestoresFilesAndRuntime(t *testing.T) {
	f := newFixture(t)
	cfg := f.write("ifcfg-eth0", "DEVICE=eth0\nMTU=1500\n", 0o640)
	made := filepath.Join(f.dir, "ifcfg-bond0")
	j := f.begin(time.Minute, cfg, made)
	// The change.
	f.write("ifcfg-eth0", "DEVICE=eth0\nMTU=9000\n", 0o600)
	f.write("ifcfg-bond0", "DEVICE=bond0\n", 0o644)
	f.state = "after"

	o, err := f.m.Rollback(j.ID, "test")
	if err != nil {
		t.Fatal(err)
	}
	if o.State != modules.TxnRolledBack || !o.Verified || len(o.Verification) != 0 {
		t.Fatalf("outcome %+v", o)
	}
	if got := read(t, cfg); got != "DEVICE=eth0\nMTU=1500\n" {
		t.Errorf("ifcfg-eth0 = %q", got)
	}
	if fi, _ := os.Stat(cfg); fi.Mode().Perm() != 0o640 {
		t.Errorf("mode %v, want 0640", fi.Mode().Perm())
	}
	if _, err := os.Stat(made); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the file the change made is still there: %v", err)
	}
	if f.state != "before" {
		t.Errorf("runtime state %q", f.state)
	}
	want := []string{cfg + ": written back", made + ": removed (made by the transaction)", "state after → before"}
	if strings.Join(o.Restored, "|") != strings.Join(want, "|") {
		t.Errorf("restored %q, want %q", o.Restored, want)
	}
	// The journal is gone, the outcome kept; a second rollback and a late confirm report it.
	if _, err := os.Stat(f.m.journalPath(j.ID)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("journal left: %v", err)
	}
	for _, again := range []func() (*Outcome, error){
		func() (*Outcome, error) { return f.m.Rollback(j.ID, "again") },
		func() (*Outcome, error) { return f.m.Confirm(j.ID) },
	} {
		o2, err := again()
		if err != nil || o2.State != modules.TxnRolledBack || o2.Why != "test" {
			t.Errorf("after the rollback: %+v, %v", o2, err)
		}
	}
	if f.fr.restored != 1 {
		t.Errorf("restorer ran %d times", f.fr.restored)
	}
}

func TestConfirm(t *testing.T) {
	f := newFixture(t)
	cfg := f.write("cfg", "old\n", 0o644)
	j := f.begin(time.Minute, cfg)
	f.write("cfg", "new\n", 0o644)
	f.state = "after"
	o, err := f.m.Confirm(j.ID)
	if err != nil || o.State != modules.TxnConfirmed {
		t.Fatalf("confirm: %+v, %v", o, err)
	}
	if read(t, cfg) != "new\n" || f.state != "after" {
		t.Errorf("a confirmed change was undone: %q %q", read(t, cfg), f.state)
	}
	// Confirmed stays confirmed; nothing is left to recover; a new transaction may begin.
	if o, err := f.m.Confirm(j.ID); err != nil || o.State != modules.TxnConfirmed {
		t.Errorf("second confirm: %+v, %v", o, err)
	}
	if out, err := f.m.Recover(); err != nil || len(out) != 0 {
		t.Errorf("recover after confirm: %v, %v", out, err)
	}
	f.begin(time.Minute)
}

func TestConfirmAfterDeadlineRollsBack(t *testing.T) {
	f := newFixture(t)
	cfg := f.write("cfg", "old\n", 0o644)
	j := f.begin(20*time.Second, cfg)
	f.write("cfg", "new\n", 0o644)
	f.now = f.now.Add(21 * time.Second)
	o, err := f.m.Confirm(j.ID)
	if err != nil || o.State != modules.TxnRolledBack {
		t.Fatalf("late confirm: %+v, %v", o, err)
	}
	if read(t, cfg) != "old\n" {
		t.Errorf("cfg = %q", read(t, cfg))
	}
}

func TestOneTransactionAtATime(t *testing.T) {
	f := newFixture(t)
	j := f.begin(time.Minute)
	_, _, err := f.m.Begin("", "bond", time.Minute, nil, nil)
	if !errors.Is(err, ErrPending) || !strings.Contains(err.Error(), j.ID) {
		t.Fatalf("second begin: %v", err)
	}
}

func TestRecover(t *testing.T) {
	tests := []struct {
		name     string
		change   func(f *fixture, j *Journal)
		rollback bool
	}{
		{"armed and in time: kept", func(*fixture, *Journal) {}, false},
		{"past the deadline and the grace", func(f *fixture, j *Journal) { f.now = j.Deadline.Add(staleGrace + time.Second) }, true},
		{"past the deadline, within the grace: left to its timer", func(f *fixture, j *Journal) { f.now = j.Deadline.Add(time.Second) }, false},
		{"made in another boot", func(f *fixture, j *Journal) { j.BootID = "another"; _ = f.m.write(j) }, true},
		{"its watchdog is gone", func(f *fixture, j *Journal) {
			j.Armed = Arm{How: "watchdog", PID: os.Getpid(), Start: 1}
			_ = f.m.write(j)
		}, true},
		{"another network namespace: not ours", func(f *fixture, j *Journal) {
			j.NetNS, j.BootID = "net:[1]", "another"
			_ = f.m.write(j)
		}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			cfg := f.write("cfg", "old\n", 0o644)
			j := f.begin(time.Minute, cfg)
			f.write("cfg", "new\n", 0o644)
			tc.change(f, j)
			out, err := f.m.Recover()
			if err != nil {
				t.Fatal(err)
			}
			if got := len(out) == 1; got != tc.rollback {
				t.Fatalf("rolled back %v, want %v (%+v)", got, tc.rollback, out)
			}
			want := "new\n"
			if tc.rollback {
				want = "old\n"
				if out[0].ID != j.ID || out[0].State != modules.TxnRolledBack {
					t.Errorf("outcome %+v", out[0])
				}
			}
			if got := read(t, cfg); got != want {
				t.Errorf("cfg = %q, want %q", got, want)
			}
		})
	}
}

func TestRollbackThatFailsSaysSo(t *testing.T) {
	f := newFixture(t)
	j := f.begin(time.Minute)
	f.state = "after"
	f.fr.failWith = errors.New("EIO")
	o, err := f.m.Rollback(j.ID, "test")
	if err != nil {
		t.Fatal(err)
	}
	if o.State != modules.TxnRollbackFailed || o.Verified || !strings.Contains(o.Error, "EIO") ||
		len(o.Verification) != 1 || o.Verification[0] != "state is after, not before" {
		t.Fatalf("outcome %+v", o)
	}
}

// TestRollbackOfNone: a rollback of an id no apply began (the controller lost an answer
// that began nothing) says so and records it, so that an apply still on its way with that
// id cannot begin it afterwards; on a host without a transactions directory it says so
// without making one.
func TestRollbackOfNone(t *testing.T) {
	f := newFixture(t)
	j := f.begin(time.Minute) // makes the directory
	if _, err := f.m.Confirm(j.ID); err != nil {
		t.Fatal(err)
	}
	id := NewID()
	if _, err := f.m.Rollback(id, "lost"); !errors.Is(err, ErrNoTransaction) {
		t.Fatalf("rollback of none: %v", err)
	}
	if o, err := f.m.Confirm(id); err != nil || o.State != modules.TxnNone {
		t.Errorf("after: %+v %v", o, err)
	}
	if _, err := f.m.Confirm(f.m.Dir); err == nil {
		t.Error("a path was taken for an id")
	}
	late := newFixture(t)
	late.m.Dir = f.m.Dir
	if _, _, err := late.m.Begin(id, "interface", time.Minute, nil, nil); err == nil || !strings.Contains(err.Error(), "was used before") {
		t.Errorf("a late apply began the id the controller had rolled back: %v", err)
	}
	none := &Manager{Dir: filepath.Join(t.TempDir(), "none")}
	if _, err := none.Rollback(id, "lost"); !errors.Is(err, ErrNoTransaction) {
		t.Errorf("no directory: %v", err)
	}
	if _, err := os.Stat(none.Dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the rollback made %s", none.Dir)
	}
}

func TestBadIDsAndDirectories(t *testing.T) {
	f := newFixture(t)
	for _, id := range []string{"", "../../etc/passwd", "0123456789abcdef0123456X", strings.Repeat("a", 25)} {
		if _, err := f.m.Confirm(id); err == nil || !strings.Contains(err.Error(), "not a transaction id") {
			t.Errorf("Confirm(%q): %v", id, err)
		}
		if _, err := f.m.Rollback(id, ""); err == nil {
			t.Errorf("Rollback(%q) accepted", id)
		}
	}
	open := &Manager{Dir: filepath.Join(t.TempDir(), "open")}
	if err := os.Mkdir(open.Dir, 0o777); err != nil {
		t.Fatal(err)
	}
	_ = os.Chmod(open.Dir, 0o777)
	if _, _, err := open.Begin("", "bond", time.Minute, nil, nil); err == nil || !strings.Contains(err.Error(), "refusing") {
		t.Errorf("a directory others can write was used: %v", err)
	}
	if _, _, err := (&Manager{}).Begin("", "bond", time.Minute, nil, nil); err == nil || !strings.Contains(err.Error(), "use become") {
		t.Errorf("no directory: %v", err)
	}
	if _, err := Snapshot(make([]string, maxFiles+1)); err == nil {
		t.Error("more files than a journal keeps were accepted")
	}
}

// TestWatchdogRollsBackAlone arms a real watchdog: a detached process in its own session
// (this test binary standing in for the helper). The process that armed it is not needed:
// at the deadline the watchdog restores the file by itself; a confirmed transaction's
// watchdog ends without touching anything.
func TestWatchdogRollsBackAlone(t *testing.T) {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	for _, confirm := range []bool{false, true} {
		t.Run(fmt.Sprintf("confirm=%v", confirm), func(t *testing.T) {
			dir := t.TempDir()
			m := &Manager{Dir: filepath.Join(dir, "txn"), Helper: exe, Root: dir}
			cfg := filepath.Join(dir, "cfg")
			if err := os.WriteFile(cfg, []byte("old\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			files, err := Snapshot([]string{cfg})
			if err != nil {
				t.Fatal(err)
			}
			if systemdHere() {
				t.Skip("systemd is PID 1 here; the watchdog is armed only without it (TestSystemdTimer covers the other)")
			}
			j, _, err := m.Begin("", "interface", 2*time.Second, files, nil)
			if err != nil {
				t.Fatal(err)
			}
			if j.Armed.How != "watchdog" || j.Armed.PID <= 0 {
				t.Fatalf("armed %+v", j.Armed)
			}
			pid := j.Armed.PID
			t.Cleanup(func() {
				if st, err := procStart(pid); err == nil && st == j.Armed.Start {
					_ = syscall.Kill(pid, syscall.SIGKILL)
				}
			})
			if sid, _ := syscall.Getpgid(pid); sid != pid {
				t.Errorf("the watchdog's process group is %d, not its own (%d)", sid, pid)
			}
			if err := os.WriteFile(cfg, []byte("new\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			if confirm {
				if o, err := m.Confirm(j.ID); err != nil || o.State != modules.TxnConfirmed {
					t.Fatalf("confirm: %+v %v", o, err)
				}
			}
			deadline := time.Now().Add(15 * time.Second)
			for time.Now().Before(deadline) {
				if _, err := procStart(pid); err != nil {
					break
				}
				time.Sleep(100 * time.Millisecond)
			}
			if _, err := procStart(pid); err == nil {
				t.Fatal("the watchdog did not end")
			}
			want, state := "old\n", modules.TxnRolledBack
			if confirm {
				want, state = "new\n", modules.TxnConfirmed
			}
			if got := read(t, cfg); got != want {
				t.Errorf("cfg = %q, want %q", got, want)
			}
			o, err := m.outcome(j.ID)
			if err != nil || o == nil || o.State != state {
				t.Errorf("outcome %+v, %v", o, err)
			}
		})
	}
}

// TestDeadlineOnTheBootClock: a wall clock stepped past the deadline (NTP, right after a
// network change) does not roll back a confirmation in time; the boot clock counts.
func TestDeadlineOnTheBootClock(t *testing.T) {
	m := &Manager{Dir: filepath.Join(t.TempDir(), "txn"),
		Arm:    func(*Manager, *Journal) (Arm, error) { return Arm{How: "none"}, nil },
		Disarm: func(*Manager, *Journal) error { return nil }}
	j, _, err := m.Begin("", "interface", time.Minute, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if j.BootDeadline == 0 {
		t.Fatal("no deadline on the boot clock")
	}
	// As if the wall clock had jumped two minutes ahead since.
	j.Deadline = time.Now().Add(-time.Minute)
	if err := m.write(j); err != nil {
		t.Fatal(err)
	}
	if left := m.Left(j); left < 50*time.Second || left > time.Minute {
		t.Errorf("left %s", left)
	}
	if o, err := m.Confirm(j.ID); err != nil || o.State != modules.TxnConfirmed {
		t.Fatalf("confirm in time by the boot clock: %+v %v", o, err)
	}
	// From another boot the wall clock is all there is.
	j.BootID = "another"
	if left := m.Left(j); left > 0 {
		t.Errorf("another boot's journal has %s left", left)
	}
}

// TestAgain: a transaction rolled back while its apply still ran is restored once more
// when the apply finishes, from the journal the apply kept; a pending or confirmed one is
// left alone.
func TestAgain(t *testing.T) {
	f := newFixture(t)
	cfg := f.write("cfg", "old\n", 0o644)
	j := f.begin(time.Minute, cfg)
	if o, again, err := f.m.Again(j); again || err != nil {
		t.Fatalf("pending: %+v %v %v", o, again, err)
	}
	f.write("cfg", "half\n", 0o644)
	if _, err := f.m.Rollback(j.ID, "the controller lost the connection"); err != nil {
		t.Fatal(err)
	}
	f.write("cfg", "the rest\n", 0o644) // the apply went on
	f.state = "after"
	o, again, err := f.m.Again(j)
	if err != nil || !again || o.State != modules.TxnRolledBack || !strings.Contains(o.Why, "and again once the change") {
		t.Fatalf("again: %+v %v %v", o, again, err)
	}
	if read(t, cfg) != "old\n" || f.state != "before" {
		t.Errorf("after again: %q %q", read(t, cfg), f.state)
	}
	if len(o.Restored) != 3 {
		t.Errorf("restored %q: want the first rollback's line and both of the second's", o.Restored)
	}
	c := newFixture(t)
	cj := c.begin(time.Minute)
	if _, err := c.m.Confirm(cj.ID); err != nil {
		t.Fatal(err)
	}
	if _, again, err := c.m.Again(cj); again || err != nil {
		t.Errorf("a confirmed transaction was restored again: %v %v", again, err)
	}
}
