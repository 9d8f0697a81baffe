-- The first schema: runs, the hosts of each run, the tasks of each host.
-- {{id}} and {{ts}} are replaced per dialect: an auto-incrementing primary key, and a
-- timestamp (TIMESTAMPTZ in PostgreSQL; in SQLite, TEXT in UTC with fixed-width
-- microseconds, so text order is time order).

CREATE TABLE runs (
  id              {{id}},
  started_at      {{ts}} NOT NULL,
  finished_at     {{ts}},
  runbook         TEXT NOT NULL,
  runbook_sha256  TEXT NOT NULL,
  user_name       TEXT NOT NULL,
  controller      TEXT NOT NULL,
  mode            TEXT NOT NULL CHECK (mode IN ('exec', 'check')),
  argv            TEXT NOT NULL,
  exit_code       INTEGER NOT NULL DEFAULT -1,
  interrupted     BOOLEAN NOT NULL DEFAULT FALSE,
  hosts           INTEGER NOT NULL DEFAULT 0,
  ok              INTEGER NOT NULL DEFAULT 0,
  changed         INTEGER NOT NULL DEFAULT 0,
  drift           INTEGER NOT NULL DEFAULT 0,
  unknown         INTEGER NOT NULL DEFAULT 0,
  skipped         INTEGER NOT NULL DEFAULT 0,
  failed          INTEGER NOT NULL DEFAULT 0,
  unreachable     INTEGER NOT NULL DEFAULT 0,
  duration_ms     BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX runs_runbook ON runs (runbook, id);

CREATE TABLE host_results (
  run_id          BIGINT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
  host            TEXT NOT NULL,
  status          TEXT NOT NULL,
  ok              INTEGER NOT NULL DEFAULT 0,
  changed         INTEGER NOT NULL DEFAULT 0,
  drift           INTEGER NOT NULL DEFAULT 0,
  unknown         INTEGER NOT NULL DEFAULT 0,
  skipped         INTEGER NOT NULL DEFAULT 0,
  failed          INTEGER NOT NULL DEFAULT 0,
  unreachable     INTEGER NOT NULL DEFAULT 0,
  reboot_required BOOLEAN NOT NULL DEFAULT FALSE,
  duration_ms     BIGINT NOT NULL DEFAULT 0,
  PRIMARY KEY (run_id, host)
);
CREATE INDEX host_results_host ON host_results (host, run_id);

CREATE TABLE task_results (
  id                 {{id}},
  run_id             BIGINT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
  host               TEXT NOT NULL,
  seq                INTEGER NOT NULL,
  play               TEXT NOT NULL,
  task               TEXT NOT NULL,
  module             TEXT NOT NULL,
  item               TEXT NOT NULL DEFAULT '',
  handler            BOOLEAN NOT NULL DEFAULT FALSE,
  status             TEXT NOT NULL,
  msg                TEXT NOT NULL DEFAULT '',
  diff_before_header TEXT,
  diff_before        TEXT,
  diff_after_header  TEXT,
  diff_after         TEXT,
  reboot_required    BOOLEAN NOT NULL DEFAULT FALSE,
  changed            BOOLEAN NOT NULL DEFAULT FALSE,
  duration_ms        BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX task_results_run_host ON task_results (run_id, host, seq);
CREATE INDEX task_results_drift ON task_results (status, run_id);
