-- A task's transaction (modules/txn): the network change ran in it, and the column holds
-- how it ended as JSON (id, state, module, armed, why, restored, verification, verified,
-- error, deadline, within_ms). NULL for tasks that ran in none, and for every task recorded
-- before this migration.

ALTER TABLE task_results ADD COLUMN txn TEXT;
