package history

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/runbook/runbook/modules"
)

func (s *sqlStore) BeginRun(ctx context.Context, r Run) (int64, error) {
	argv, err := json.Marshal(r.Argv)
	if err != nil {
		return 0, err
	}
	if r.StartedAt.IsZero() {
		r.StartedAt = time.Now()
	}
	var id int64
	var shardIndex, shardCount int
	if r.Shard != nil {
		shardIndex, shardCount = r.Shard.Index, r.Shard.Count
	}
	err = s.db.QueryRowContext(ctx, s.d.rebind(`INSERT INTO runs (started_at, runbook, runbook_sha256, user_name, controller, mode, argv,
		label, shard_index, shard_count)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id`),
		s.d.time(r.StartedAt), RunbookKey(r.Runbook), r.RunbookSHA256, r.User, r.Controller, r.Mode, string(argv),
		r.Label, shardIndex, shardCount).Scan(&id)
	if err != nil {
		return 0, fmt.Errorf("record run: %w", err)
	}
	return id, nil
}

const insertHostResult = `INSERT INTO host_results
	(run_id, host, status, ok, changed, drift, unknown, skipped, failed, unreachable, reboot_required, duration_ms)
	VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
	ON CONFLICT (run_id, host) DO UPDATE SET status = excluded.status, ok = excluded.ok, changed = excluded.changed,
	drift = excluded.drift, unknown = excluded.unknown, skipped = excluded.skipped, failed = excluded.failed,
	unreachable = excluded.unreachable, reboot_required = excluded.reboot_required, duration_ms = excluded.duration_ms`

const insertTaskResult = `INSERT INTO task_results
	(run_id, host, seq, play, task, module, item, handler, status, msg, diff_before_header, diff_before,
	diff_after_header, diff_after, reboot_required, changed, duration_ms, txn, warnings, nics)
	VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`

func (s *sqlStore) RecordHost(ctx context.Context, h HostResult, tasks []TaskResult) error {
	return s.RecordHosts(ctx, []HostRecord{{Result: h, Tasks: tasks}})
}

func (s *sqlStore) RecordHosts(ctx context.Context, hosts []HostRecord) (err error) {
	if len(hosts) == 0 {
		return nil
	}
	hostStmt, taskStmt, err := s.statements(ctx)
	if err != nil {
		return fmt.Errorf("record host %s: %w", hosts[0].Result.Host, err)
	}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			_ = tx.Rollback()
		}
	}()
	hs := tx.StmtContext(ctx, hostStmt)
	defer hs.Close()
	ts := tx.StmtContext(ctx, taskStmt)
	defer ts.Close()
	for _, r := range hosts {
		if err := recordHost(ctx, hs, ts, r.Result, r.Tasks); err != nil {
			return err
		}
	}
	return tx.Commit()
}

// recordHost writes one host's result and tasks with the transaction's statements.
func recordHost(ctx context.Context, hostStmt, stmt *sql.Stmt, h HostResult, tasks []TaskResult) error {
	c := h.Counts
	if h.Status == "" {
		h.Status = c.HostStatus()
	}
	_, err := hostStmt.ExecContext(ctx,
		h.RunID, h.Host, h.Status, c.OK, c.Changed, c.Drift, c.Unknown, c.Skipped, c.Failed, c.Unreachable, h.RebootRequired,
		h.Duration.Milliseconds())
	if err != nil {
		return fmt.Errorf("record host %s: %w", h.Host, err)
	}
	for _, t := range tasks {
		var bh, b, ah, a any
		if t.Diff != nil {
			bh, b, ah, a = t.Diff.BeforeHeader, t.Diff.Before, t.Diff.AfterHeader, t.Diff.After
		}
		var txn any
		if t.Transaction != nil {
			j, err := json.Marshal(t.Transaction)
			if err != nil {
				return fmt.Errorf("record task %q of %s: transaction: %w", t.Task, h.Host, err)
			}
			txn = string(j)
		}
		var warnings, nics any
		if len(t.Warnings) > 0 {
			j, err := json.Marshal(t.Warnings)
			if err != nil {
				return fmt.Errorf("record task %q of %s: warnings: %w", t.Task, h.Host, err)
			}
			warnings = string(j)
		}
		if len(t.NICs) > 0 {
			j, err := json.Marshal(t.NICs)
			if err != nil {
				return fmt.Errorf("record task %q of %s: NICs: %w", t.Task, h.Host, err)
			}
			nics = string(j)
		}
		if _, err := stmt.ExecContext(ctx, h.RunID, h.Host, t.Seq, t.Play, t.Task, t.Module, t.Item, t.Handler, t.Status, t.Msg,
			bh, b, ah, a, t.RebootRequired, t.Changed, t.Duration.Milliseconds(), txn, warnings, nics); err != nil {
			return fmt.Errorf("record task %q of %s: %w", t.Task, h.Host, err)
		}
	}
	return nil
}

func (s *sqlStore) FinishRun(ctx context.Context, r Run) error {
	if r.FinishedAt.IsZero() {
		r.FinishedAt = time.Now()
	}
	c := r.Counts
	_, err := s.exec(ctx, `UPDATE runs SET finished_at = ?, exit_code = ?, interrupted = ?, hosts = ?, ok = ?, changed = ?,
		drift = ?, unknown = ?, skipped = ?, failed = ?, unreachable = ?, duration_ms = ? WHERE id = ?`,
		s.d.time(r.FinishedAt), r.ExitCode, r.Interrupted, r.Hosts, c.OK, c.Changed, c.Drift, c.Unknown, c.Skipped, c.Failed,
		c.Unreachable, r.Duration.Milliseconds(), r.ID)
	if err != nil {
		return fmt.Errorf("finish run %d: %w", r.ID, err)
	}
	return nil
}

const runCols = `r.id, r.started_at, r.finished_at, r.runbook, r.runbook_sha256, r.user_name, r.controller, r.mode, r.argv,
	r.exit_code, r.interrupted, r.hosts, r.ok, r.changed, r.drift, r.unknown, r.skipped, r.failed, r.unreachable, r.duration_ms,
	r.label, r.shard_index, r.shard_count`

const hostCols = `h.run_id, h.host, h.status, h.ok, h.changed, h.drift, h.unknown, h.skipped, h.failed, h.unreachable,
	h.reboot_required, h.duration_ms`

type runScan struct {
	r                      Run
	started, finished      dbTime
	argv                   string
	ms                     int64
	shardIndex, shardCount int
}

func (x *runScan) dest() []any {
	c := &x.r.Counts
	return []any{&x.r.ID, &x.started, &x.finished, &x.r.Runbook, &x.r.RunbookSHA256, &x.r.User, &x.r.Controller, &x.r.Mode,
		&x.argv, &x.r.ExitCode, &x.r.Interrupted, &x.r.Hosts, &c.OK, &c.Changed, &c.Drift, &c.Unknown, &c.Skipped, &c.Failed,
		&c.Unreachable, &x.ms, &x.r.Label, &x.shardIndex, &x.shardCount}
}

func (x *runScan) run() Run {
	r := x.r
	if x.shardCount > 0 {
		r.Shard = &Shard{Index: x.shardIndex, Count: x.shardCount}
	}
	r.StartedAt, r.FinishedAt = x.started.t, x.finished.t
	r.Duration = time.Duration(x.ms) * time.Millisecond
	_ = json.Unmarshal([]byte(x.argv), &r.Argv)
	return r
}

type hostScan struct {
	h  HostResult
	ms int64
}

func (x *hostScan) dest() []any {
	c := &x.h.Counts
	return []any{&x.h.RunID, &x.h.Host, &x.h.Status, &c.OK, &c.Changed, &c.Drift, &c.Unknown, &c.Skipped, &c.Failed,
		&c.Unreachable, &x.h.RebootRequired, &x.ms}
}

// result is the scanned row. Its status is read from its counts, the rule every row is
// written with (Counts.HostStatus): a row written before that rule ranked unknown (as ok or
// changed) reads as the rule says now, as the drift streak's query does.
func (x *hostScan) result() HostResult {
	h := x.h
	h.Duration = time.Duration(x.ms) * time.Millisecond
	h.Status = h.Counts.HostStatus()
	return h
}

// in writes "col IN (?, ?, ...)" and its arguments; no values means no filter, a condition
// that always holds.
func in[T any](col string, values []T) (string, []any) {
	if len(values) == 0 {
		return "1 = 1", nil
	}
	marks := strings.TrimSuffix(strings.Repeat("?, ", len(values)), ", ")
	a := make([]any, len(values))
	for i, v := range values {
		a[i] = v
	}
	return col + " IN (" + marks + ")", a
}

// runWhere is the condition on runs r for f.
func runWhere(f Filter) (string, []any) {
	conds := []string{"1 = 1"}
	var a []any
	if f.Runbook != "" {
		conds = append(conds, "r.runbook = ?")
		a = append(a, RunbookKey(f.Runbook))
	}
	if f.Mode != "" {
		conds = append(conds, "r.mode = ?")
		a = append(a, f.Mode)
	}
	if f.Label != "" {
		conds = append(conds, "r.label = ?")
		a = append(a, f.Label)
	}
	return strings.Join(conds, " AND "), a
}

func (s *sqlStore) Runs(ctx context.Context, f Filter, n int) ([]Run, error) {
	where, a := runWhere(f)
	if len(f.Hosts) > 0 {
		cond, ha := in("h.host", f.Hosts)
		where += " AND EXISTS (SELECT 1 FROM host_results h WHERE h.run_id = r.id AND " + cond + ")"
		a = append(a, ha...)
	}
	q := "SELECT " + runCols + " FROM runs r WHERE " + where + " ORDER BY r.id DESC"
	if n > 0 {
		q += " LIMIT ?"
		a = append(a, n)
	}
	rows, err := s.query(ctx, q, a...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []Run
	for rows.Next() {
		var x runScan
		if err := rows.Scan(x.dest()...); err != nil {
			return nil, err
		}
		out = append(out, x.run())
	}
	return out, rows.Err()
}

func (s *sqlStore) hostRuns(ctx context.Context, q string, a ...any) ([]HostRun, error) {
	rows, err := s.query(ctx, q, a...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []HostRun
	for rows.Next() {
		var rs runScan
		var hs hostScan
		if err := rows.Scan(append(rs.dest(), hs.dest()...)...); err != nil {
			return nil, err
		}
		out = append(out, HostRun{Run: rs.run(), Host: hs.result()})
	}
	return out, rows.Err()
}

func (s *sqlStore) Latest(ctx context.Context, f Filter) ([]HostRun, error) {
	where, a := runWhere(f)
	hostCond, ha := in("h.host", f.Hosts)
	a = append(a, ha...)
	q := `SELECT ` + runCols + `, ` + hostCols + `
		FROM host_results h JOIN runs r ON r.id = h.run_id
		JOIN (SELECT h.host AS host, MAX(h.run_id) AS run_id FROM host_results h JOIN runs r ON r.id = h.run_id
		      WHERE ` + where + ` AND ` + hostCond + ` GROUP BY h.host) lastrun
		  ON lastrun.host = h.host AND lastrun.run_id = h.run_id
		ORDER BY h.host`
	return s.hostRuns(ctx, q, a...)
}

func (s *sqlStore) HostRuns(ctx context.Context, runIDs []int64, hosts []string) ([]HostRun, error) {
	if len(runIDs) == 0 {
		return nil, nil
	}
	runCond, a := in("h.run_id", runIDs)
	hostCond, ha := in("h.host", hosts)
	a = append(a, ha...)
	q := `SELECT ` + runCols + `, ` + hostCols + ` FROM host_results h JOIN runs r ON r.id = h.run_id
		WHERE ` + runCond + ` AND ` + hostCond + ` ORDER BY h.run_id DESC, h.host`
	return s.hostRuns(ctx, q, a...)
}

func (s *sqlStore) FirstDrifted(ctx context.Context, f Filter) (map[string]Run, error) {
	where, wa := runWhere(f)
	hostCond, ha := in("h.host", f.Hosts)
	var a []any
	a = append(a, wa...)
	a = append(a, ha...)
	a = append(a, wa...)
	a = append(a, ha...)
	// The streak starts after the host's last run that positively showed it in sync: no
	// drift, no failure, nothing unreachable, and no task whose outcome check could not
	// predict (unknown), which says nothing either way.
	q := `SELECT h.host, MIN(h.run_id) FROM host_results h JOIN runs r ON r.id = h.run_id
		LEFT JOIN (SELECT h.host AS host, MAX(h.run_id) AS run_id FROM host_results h JOIN runs r ON r.id = h.run_id
		           WHERE ` + where + ` AND ` + hostCond + ` AND h.drift = 0 AND h.failed = 0 AND h.unreachable = 0 AND h.unknown = 0
		           GROUP BY h.host) insync ON insync.host = h.host
		WHERE ` + where + ` AND ` + hostCond + ` AND h.drift > 0 AND (insync.run_id IS NULL OR h.run_id > insync.run_id)
		GROUP BY h.host`
	rows, err := s.query(ctx, q, a...)
	if err != nil {
		return nil, err
	}
	first := map[string]int64{}
	var ids []int64
	for rows.Next() {
		var host string
		var id int64
		if err := rows.Scan(&host, &id); err != nil {
			rows.Close()
			return nil, err
		}
		first[host] = id
		ids = append(ids, id)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	out := map[string]Run{}
	if len(ids) == 0 {
		return out, nil
	}
	runs, err := s.runsByID(ctx, ids)
	if err != nil {
		return nil, err
	}
	for host, id := range first {
		out[host] = runs[id]
	}
	return out, nil
}

func (s *sqlStore) runsByID(ctx context.Context, ids []int64) (map[int64]Run, error) {
	cond, a := in("r.id", ids)
	rows, err := s.query(ctx, "SELECT "+runCols+" FROM runs r WHERE "+cond, a...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[int64]Run{}
	for rows.Next() {
		var x runScan
		if err := rows.Scan(x.dest()...); err != nil {
			return nil, err
		}
		out[x.r.ID] = x.run()
	}
	return out, rows.Err()
}

// taskCols are the columns of a task result, as tasks reads them.
const taskCols = `t.run_id, t.host, t.seq, t.play, t.task, t.module, t.item, t.handler, t.status, t.msg,
	t.diff_before_header, t.diff_before, t.diff_after_header, t.diff_after, t.reboot_required, t.changed, t.duration_ms, t.txn,
	t.warnings, t.nics`

func (s *sqlStore) Tasks(ctx context.Context, runID int64, host string, statuses ...string) ([]TaskResult, error) {
	cond, sa := in("t.status", statuses)
	a := append([]any{runID, host}, sa...)
	return s.tasks(ctx, `SELECT `+taskCols+` FROM task_results t WHERE t.run_id = ? AND t.host = ? AND `+cond+` ORDER BY t.seq`, a...)
}

func (s *sqlStore) TransactionTasks(ctx context.Context, runIDs []int64, hosts []string) ([]TaskResult, error) {
	if len(runIDs) == 0 {
		return nil, nil
	}
	runCond, a := in("t.run_id", runIDs)
	hostCond, ha := in("t.host", hosts)
	a = append(a, ha...)
	return s.tasks(ctx, `SELECT `+taskCols+` FROM task_results t WHERE `+runCond+` AND `+hostCond+` AND t.txn IS NOT NULL
		ORDER BY t.run_id, t.host, t.seq`, a...)
}

func (s *sqlStore) NoteTasks(ctx context.Context, runIDs []int64, hosts []string) ([]TaskResult, error) {
	if len(runIDs) == 0 {
		return nil, nil
	}
	runCond, a := in("t.run_id", runIDs)
	hostCond, ha := in("t.host", hosts)
	a = append(a, ha...)
	return s.tasks(ctx, `SELECT `+taskCols+` FROM task_results t WHERE `+runCond+` AND `+hostCond+`
		AND (t.warnings IS NOT NULL OR t.nics IS NOT NULL) ORDER BY t.run_id, t.host, t.seq`, a...)
}

// tasks runs q, which selects taskCols, and reads its rows.
func (s *sqlStore) tasks(ctx context.Context, q string, a ...any) ([]TaskResult, error) {
	rows, err := s.query(ctx, q, a...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []TaskResult
	for rows.Next() {
		var t TaskResult
		var bh, b, ah, af, txn, warnings, nics sql.NullString
		var ms int64
		if err := rows.Scan(&t.RunID, &t.Host, &t.Seq, &t.Play, &t.Task, &t.Module, &t.Item, &t.Handler, &t.Status, &t.Msg,
			&bh, &b, &ah, &af, &t.RebootRequired, &t.Changed, &ms, &txn, &warnings, &nics); err != nil {
			return nil, err
		}
		if b.Valid || af.Valid {
			t.Diff = &modules.Diff{BeforeHeader: bh.String, Before: b.String, AfterHeader: ah.String, After: af.String}
		}
		if txn.Valid {
			t.Transaction = new(modules.Transaction)
			if err := json.Unmarshal([]byte(txn.String), t.Transaction); err != nil {
				return nil, fmt.Errorf("run %d, host %s, task %q: its transaction is not readable: %w", t.RunID, t.Host, t.Task, err)
			}
		}
		if warnings.Valid {
			if err := json.Unmarshal([]byte(warnings.String), &t.Warnings); err != nil {
				return nil, fmt.Errorf("run %d, host %s, task %q: its warnings are not readable: %w", t.RunID, t.Host, t.Task, err)
			}
		}
		if nics.Valid {
			if err := json.Unmarshal([]byte(nics.String), &t.NICs); err != nil {
				return nil, fmt.Errorf("run %d, host %s, task %q: its NICs are not readable: %w", t.RunID, t.Host, t.Task, err)
			}
		}
		t.Duration = time.Duration(ms) * time.Millisecond
		out = append(out, t)
	}
	return out, rows.Err()
}

func (s *sqlStore) TopDrift(ctx context.Context, runIDs []int64, hosts []string, limit int) ([]TaskCount, error) {
	if len(runIDs) == 0 {
		return nil, nil
	}
	runCond, a := in("t.run_id", runIDs)
	hostCond, ha := in("t.host", hosts)
	a = append(a, ha...)
	// A for_each task drifting on several elements counts once per run and host.
	q := `SELECT d.runbook, d.play, d.task, d.module, COUNT(*) AS n, COUNT(DISTINCT d.host) AS hosts, MAX(d.run_id)
		FROM (SELECT DISTINCT r.runbook AS runbook, t.play AS play, t.task AS task, t.module AS module, t.host AS host,
		             t.run_id AS run_id
		      FROM task_results t JOIN runs r ON r.id = t.run_id
		      WHERE t.status = 'drift' AND ` + runCond + ` AND ` + hostCond + `) d
		GROUP BY d.runbook, d.play, d.task, d.module
		ORDER BY n DESC, hosts DESC, d.play, d.task`
	if limit > 0 {
		q += " LIMIT ?"
		a = append(a, limit)
	}
	rows, err := s.query(ctx, q, a...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []TaskCount
	for rows.Next() {
		var c TaskCount
		if err := rows.Scan(&c.Runbook, &c.Play, &c.Task, &c.Module, &c.Count, &c.Hosts, &c.LastRun); err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	return out, rows.Err()
}

func (s *sqlStore) LastFailedHosts(ctx context.Context, runbookPath string) ([]string, error) {
	// The last run of the runbook that recorded any host: a controller killed before any
	// host finished tells nothing about the hosts.
	rows, err := s.query(ctx, `SELECT h.host FROM host_results h
		WHERE h.run_id = (SELECT MAX(r.id) FROM runs r WHERE r.runbook = ?
		                  AND EXISTS (SELECT 1 FROM host_results x WHERE x.run_id = r.id))
		AND (h.failed > 0 OR h.unreachable > 0) ORDER BY h.host`, RunbookKey(runbookPath))
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var h string
		if err := rows.Scan(&h); err != nil {
			return nil, err
		}
		out = append(out, h)
	}
	return out, rows.Err()
}
