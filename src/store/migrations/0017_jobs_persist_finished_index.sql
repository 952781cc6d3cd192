-- The ended persisted jobs by end time, for the throughput counts of `GET /stats`. Ended jobs that
-- do not persist are read by end time through `jobs_cleanup_idx`; the persisted ones had only
-- `jobs_persist_id_idx`, so each count walked every persisted job (all of them, however old) and
-- read its row: ~350 ms at 20,000 persisted jobs among 1,000,000. This index is as small as the
-- persisted ended jobs and turns that arm into a range read of the window.
CREATE INDEX IF NOT EXISTS jobs_persist_finished_idx ON jobs (finished_at)
  WHERE persist AND queue_state IN ('completed', 'broken');
