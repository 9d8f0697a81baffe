package history

import (
	"context"
	"database/sql"
	"path/filepath"
	"reflect"
	"testing"
	"time"
)

// TestRunLabel: a run's label and shard are recorded and read back on both backends, and
// Filter.Label selects the runs of one fleet run and nothing else.
func TestRunLabel(t *testing.T) {
	for _, be := range backends() {
		t.Run(be.name, func(t *testing.T) {
			s := be.open(t)
			ctx := context.Background()
			at := time.Date(2026, 6, 1, 3, 0, 0, 0, time.UTC)
			begin := func(label string, shard *Shard, hosts ...string) int64 {
				rec, err := Begin(ctx, s, Run{StartedAt: at, Runbook: "/srv/site.hcl", Mode: ModeExec, Label: label, Shard: shard},
					func(err error) { t.Error(err) })
				if err != nil {
					t.Fatal(err)
				}
				for _, h := range hosts {
					if err := s.RecordHost(ctx, HostResult{RunID: rec.RunID(), Host: h, Counts: Counts{OK: 1}}, nil); err != nil {
						t.Fatal(err)
					}
				}
				at = at.Add(time.Minute)
				return rec.RunID()
			}
			plain := begin("", nil, "a", "b")
			s0 := begin("fleet-2026-06-01", &Shard{Index: 0, Count: 2}, "a")
			s1 := begin("fleet-2026-06-01", &Shard{Index: 1, Count: 2}, "b")
			other := begin("fleet-2026-06-02 <night>", &Shard{Index: 0, Count: 1}, "a", "b")

			runs, err := s.Runs(ctx, Filter{Label: "fleet-2026-06-01"}, 0)
			if err != nil {
				t.Fatal(err)
			}
			if len(runs) != 2 || runs[0].ID != s1 || runs[1].ID != s0 {
				t.Fatalf("runs of the label: %+v", runs)
			}
			if runs[0].Label != "fleet-2026-06-01" || !reflect.DeepEqual(runs[0].Shard, &Shard{Index: 1, Count: 2}) ||
				!reflect.DeepEqual(runs[1].Shard, &Shard{Index: 0, Count: 2}) {
				t.Errorf("label and shard read back: %q %+v, %+v", runs[0].Label, runs[0].Shard, runs[1].Shard)
			}
			all, err := s.Runs(ctx, Filter{}, 0)
			if err != nil || len(all) != 4 {
				t.Fatalf("all runs: %d, %v", len(all), err)
			}
			for _, r := range all {
				switch r.ID {
				case plain:
					if r.Label != "" || r.Shard != nil {
						t.Errorf("a run without a label reads back with %q %+v", r.Label, r.Shard)
					}
				case other:
					if r.Label != "fleet-2026-06-02 <night>" || !reflect.DeepEqual(r.Shard, &Shard{Index: 0, Count: 1}) {
						t.Errorf("run %d: %q %+v", r.ID, r.Label, r.Shard)
					}
				}
			}
			latest, err := s.Latest(ctx, Filter{Label: "fleet-2026-06-01"})
			if err != nil {
				t.Fatal(err)
			}
			if len(latest) != 2 || latest[0].Host.Host != "a" || latest[0].Run.ID != s0 || latest[1].Host.Host != "b" || latest[1].Run.ID != s1 {
				t.Errorf("each host's last run of the label: %+v", latest)
			}
			if none, err := s.Runs(ctx, Filter{Label: "fleet"}, 0); err != nil || len(none) != 0 {
				t.Errorf("a label is matched exactly, not as a prefix: %+v, %v", none, err)
			}
		})
	}
}

// TestRunLabelMigration: a history of version 3 is brought to the label columns in place;
// its runs read as unlabelled and unsharded.
func TestRunLabelMigration(t *testing.T) {
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
			db, err := sql.Open(c.driver, loc)
			if err != nil {
				t.Fatal(err)
			}
			if err := migrateTo(ctx, db, c.d, ms[:3]); err != nil {
				t.Fatal(err)
			}
			var id int64
			if err := db.QueryRowContext(ctx, c.d.rebind(`INSERT INTO runs (started_at, runbook, runbook_sha256, user_name,
				controller, mode, argv) VALUES (?, '/srv/site.hcl', 'abc', 'ops', 'ctl', 'exec', '[]') RETURNING id`),
				c.d.time(time.Date(2026, 2, 1, 0, 0, 0, 0, time.UTC))).Scan(&id); err != nil {
				t.Fatal(err)
			}
			if _, err := db.ExecContext(ctx, "SELECT label FROM runs"); err == nil {
				t.Fatal("the version 3 schema already has the label column")
			}
			db.Close()
			s := openStore(t, loc)
			runs, err := s.Runs(ctx, Filter{}, 0)
			if err != nil || len(runs) != 1 || runs[0].ID != id || runs[0].Label != "" || runs[0].Shard != nil {
				t.Fatalf("the old run after the migration: %+v, %v", runs, err)
			}
			if got, err := s.Runs(ctx, Filter{Label: "x"}, 0); err != nil || len(got) != 0 {
				t.Errorf("label filter on the old run: %+v, %v", got, err)
			}
		})
	}
}
