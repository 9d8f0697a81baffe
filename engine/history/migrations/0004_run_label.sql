-- A run's place in a fleet run: the label that the shards (or the regional controllers) of
-- one fleet run share (--run-label; '' for a run without one), and the shard of the fleet
-- the run covered (--shard i/n, or the Indexed Job's or Nomad's index): shard_count 0 for a
-- run that was not sharded. Every run recorded before this migration reads as neither.

ALTER TABLE runs ADD COLUMN label TEXT NOT NULL DEFAULT '';
ALTER TABLE runs ADD COLUMN shard_index INTEGER NOT NULL DEFAULT 0;
ALTER TABLE runs ADD COLUMN shard_count INTEGER NOT NULL DEFAULT 0;
CREATE INDEX runs_label ON runs (label, id);
