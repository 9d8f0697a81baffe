package history

import (
	"context"
	"database/sql"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/runbook/runbook/engine/run"
	"github.com/runbook/runbook/modules"
)

// TestTransactionRoundTrip: each task's transaction is written with its result and read
// back as it was, on both backends; tasks that ran in none read back without one; and
// TransactionTasks finds exactly the tasks that ran in one.
func TestTransactionRoundTrip(t *testing.T) {
	for _, be := range backends() {
		t.Run(be.name, func(t *testing.T) {
			s := be.open(t)
			ctx := context.Background()
			at := time.Date(2026, 3, 1, 2, 0, 0, 0, time.UTC)
			first := record(t, s, runSpec{mode: ModeExec, plays: []string{"kvm1 mgmt=confirmed; kvm2 mgmt=rolled_back"}}, at)
			id := record(t, s, runSpec{mode: ModeExec, plays: []string{"kvm1 motd=changed mgmt=rolled_back bond=confirmed; kvm2 motd=ok"}},
				at.Add(time.Hour))

			tasks, err := s.Tasks(ctx, id, "kvm1")
			if err != nil {
				t.Fatal(err)
			}
			want := []struct {
				task string
				txn  *modules.Transaction
			}{
				{"motd", nil},
				{"mgmt", testTxn("mgmt", modules.TxnRolledBack)},
				{"bond", testTxn("bond", modules.TxnConfirmed)},
			}
			if len(tasks) != len(want) {
				t.Fatalf("tasks = %+v", tasks)
			}
			for i, w := range want {
				got := tasks[i]
				if got.Task != w.task || !reflect.DeepEqual(got.Transaction, w.txn) {
					t.Errorf("task %d: %s with transaction %+v, want %s with %+v", i, got.Task, got.Transaction, w.task, w.txn)
				}
			}
			if tasks[1].Status != HostFailed || tasks[1].Msg != "rolled back (no confirmation came before the deadline)" {
				t.Errorf("rolled back task: status %s, msg %q", tasks[1].Status, tasks[1].Msg)
			}

			tests := []struct {
				name  string
				runs  []int64
				hosts []string
				want  []string // run#:host:task
			}{
				{"both runs, every host", []int64{first, id}, nil, []string{"1:kvm1:mgmt", "1:kvm2:mgmt", "2:kvm1:mgmt", "2:kvm1:bond"}},
				{"one run", []int64{id}, nil, []string{"2:kvm1:mgmt", "2:kvm1:bond"}},
				{"one host", []int64{first, id}, []string{"kvm2"}, []string{"1:kvm2:mgmt"}},
				{"a host without any", []int64{id}, []string{"kvm2"}, nil},
				{"no runs", nil, nil, nil},
			}
			for _, tt := range tests {
				got, err := s.TransactionTasks(ctx, tt.runs, tt.hosts)
				if err != nil {
					t.Fatal(err)
				}
				var names []string
				for _, tr := range got {
					n := "1"
					if tr.RunID == id {
						n = "2"
					}
					names = append(names, n+":"+tr.Host+":"+tr.Task)
					if tr.Transaction == nil || tr.Transaction.ID != "tx-"+tr.Task {
						t.Errorf("%s: %s without its transaction: %+v", tt.name, tr.Task, tr.Transaction)
					}
				}
				if !reflect.DeepEqual(names, tt.want) {
					t.Errorf("%s: TransactionTasks = %v, want %v", tt.name, names, tt.want)
				}
			}
		})
	}
}

// TestTransactionUnreadable: a transaction column that does not hold a transaction is an
// error naming the run, host and task, not a task without one.
func TestTransactionUnreadable(t *testing.T) {
	s := openStore(t, filepath.Join(t.TempDir(), "history.db")).(*sqlStore)
	ctx := context.Background()
	id := record(t, s, runSpec{mode: ModeExec, plays: []string{"kvm1 mgmt=rolled_back"}}, time.Now())
	if _, err := s.exec(ctx, "UPDATE task_results SET txn = ? WHERE run_id = ?", `{"id":`, id); err != nil {
		t.Fatal(err)
	}
	_, err := s.Tasks(ctx, id, "kvm1")
	if err == nil || !strings.Contains(err.Error(), `host kvm1, task "mgmt": its transaction is not readable`) {
		t.Errorf("Tasks of an unreadable transaction: %v", err)
	}
}

// TestMigrationFromVersion1: a history written by the previous schema (version 1, no txn
// column) is brought to the newest version when opened, keeps every row, reads its old
// tasks without a transaction, and records transactions from then on. On both backends.
func TestMigrationFromVersion1(t *testing.T) {
	ms, err := migrations()
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name   string
		loc    func(t *testing.T) string
		driver string
		d      *dialect
	}{
		{"sqlite", func(t *testing.T) string { return filepath.Join(t.TempDir(), "history.db") }, "sqlite", sqliteDialect},
		{"postgres", postgresURL, "pgx", postgresDialect},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ctx := context.Background()
			loc := c.loc(t)
			// The previous version's history: its schema, and a run recorded with the
			// columns it had.
			db, err := sql.Open(c.driver, loc)
			if err != nil {
				t.Fatal(err)
			}
			if err := migrateTo(ctx, db, c.d, ms[:1]); err != nil {
				t.Fatal(err)
			}
			old := &sqlStore{db: db, d: c.d}
			var runID int64
			if err := db.QueryRowContext(ctx, c.d.rebind(`INSERT INTO runs (started_at, runbook, runbook_sha256, user_name,
				controller, mode, argv) VALUES (?, '/srv/site.hcl', 'abc', 'ops', 'ctl', 'exec', '[]') RETURNING id`),
				c.d.time(time.Date(2026, 2, 1, 0, 0, 0, 0, time.UTC))).Scan(&runID); err != nil {
				t.Fatal(err)
			}
			for _, q := range []string{
				`INSERT INTO host_results (run_id, host, status, changed, failed) VALUES (?, 'kvm1', 'failed', 1, 1)`,
				`INSERT INTO task_results (run_id, host, seq, play, task, module, status, msg, diff_before, diff_after, changed)
				 VALUES (?, 'kvm1', 1, 'p', 'motd', 'copy', 'changed', 'updated', 'a', 'b', TRUE)`,
				`INSERT INTO task_results (run_id, host, seq, play, task, module, status, msg) VALUES (?, 'kvm1', 2, 'p', 'mgmt', 'interface', 'failed', 'boom')`,
			} {
				if _, err := old.exec(ctx, q, runID); err != nil {
					t.Fatalf("%v\n%s", err, q)
				}
			}
			if v, err := old.SchemaVersion(ctx); err != nil || v != 1 {
				t.Fatalf("the old history's version: %d, %v", v, err)
			}
			var cols int
			if err := db.QueryRowContext(ctx, `SELECT COUNT(*) FROM task_results WHERE txn IS NULL`).Scan(&cols); err == nil {
				t.Fatal("the version 1 schema already has the txn column")
			}
			db.Close()

			s := openStore(t, loc)
			if v, err := s.SchemaVersion(ctx); err != nil || v != SchemaVersion() || v < 2 {
				t.Fatalf("after the migration: version %d, %v; want %d", v, err, SchemaVersion())
			}
			var n int
			if err := s.(*sqlStore).db.QueryRowContext(ctx, "SELECT COUNT(*) FROM schema_migrations").Scan(&n); err != nil || n != SchemaVersion() {
				t.Errorf("schema_migrations rows = %d, %v", n, err)
			}
			tasks, err := s.Tasks(ctx, runID, "kvm1")
			if err != nil {
				t.Fatal(err)
			}
			if len(tasks) != 2 || tasks[0].Task != "motd" || tasks[0].Msg != "updated" || tasks[0].Diff == nil || tasks[0].Diff.After != "b" ||
				!tasks[0].Changed || tasks[1].Status != HostFailed || tasks[0].Transaction != nil || tasks[1].Transaction != nil {
				t.Errorf("the old run's tasks after the migration: %+v", tasks)
			}
			if got, err := s.TransactionTasks(ctx, []int64{runID}, nil); err != nil || len(got) != 0 {
				t.Errorf("the old run's tasks in transactions: %+v, %v", got, err)
			}
			latest, err := s.Latest(ctx, Filter{})
			if err != nil || len(latest) != 1 || latest[0].Run.ID != runID || latest[0].Host.Status != HostFailed {
				t.Errorf("Latest after the migration: %+v, %v", latest, err)
			}

			// The migrated history records transactions.
			id := record(t, s, runSpec{mode: ModeExec, plays: []string{"kvm1 mgmt=rolled_back"}}, time.Date(2026, 2, 2, 0, 0, 0, 0, time.UTC))
			tasks, err = s.Tasks(ctx, id, "kvm1")
			if err != nil || len(tasks) != 1 || !reflect.DeepEqual(tasks[0].Transaction, testTxn("mgmt", modules.TxnRolledBack)) {
				t.Errorf("a transaction recorded after the migration: %+v, %v", tasks, err)
			}
		})
	}
}

// TestRecorderKeepsItsOwnTransaction: what the Recorder writes is the transaction as the
// task reported it, even if the result's is changed before the host finishes.
func TestRecorderKeepsItsOwnTransaction(t *testing.T) {
	s := openStore(t, filepath.Join(t.TempDir(), "history.db"))
	rec, err := Begin(context.Background(), s, Run{Runbook: "/srv/x.hcl", Mode: ModeExec}, func(err error) { t.Error(err) })
	if err != nil {
		t.Fatal(err)
	}
	txn := testTxn("mgmt", modules.TxnRolledBack)
	rec.TaskDone(run.Result{Host: "a", Task: "mgmt", Status: run.Failed, Transaction: txn})
	txn.State, txn.Restored[0] = modules.TxnConfirmed, "changed afterwards"
	rec.HostDone("a", run.Stats{Failed: 1})
	tasks, err := s.Tasks(context.Background(), rec.RunID(), "a")
	if err != nil || len(tasks) != 1 || !reflect.DeepEqual(tasks[0].Transaction, testTxn("mgmt", modules.TxnRolledBack)) {
		t.Errorf("recorded: %+v, %v", tasks, err)
	}
}
