-- Exact job and task counts kept by the database, for `/health` and the `/metrics` gauges.
--
-- `job_state_counts` holds, per (client, queue_state, failed, superseded = rerun_by IS NOT NULL),
-- and `task_state_counts` per (client of the task's job, state), a number of rows `n`. Triggers on
-- `jobs` and `tasks` add each statement's change to them in the transaction that made it, so they
-- move exactly when the rows do: a rolled-back change moves nothing, and no code path can forget
-- them. The count of a group is the sum of `n` over its rows.
--
-- Each session adds to its own rows (`shard` = its backend pid), so two transactions never wait
-- for each other on a counter row (and never deadlock on one): a statement trigger aggregates its
-- transition tables into one delta per group and upserts it into the session's row. One row's `n`
-- may be negative (a job inserted by one session and finished by another); the sum is exact.
-- `te_compact_state_counts()` (run by the `cleanup_jobs` schedule) folds the rows of sessions that
-- have ended into shard 0 and drops groups that fell to zero, so the tables stay as small as the
-- number of groups times the live sessions.
--
-- A job's `client` never changes once written, so task counts follow their job's client without
-- watching it. Deleting a job deletes its tasks by ON DELETE CASCADE; by then the job row is gone
-- and the tasks' trigger cannot read its client, so the jobs' DELETE trigger (which fires first)
-- leaves the deleted jobs' clients in `state_count_deleted_jobs` for the tasks' trigger of the
-- same statement to read and remove.

CREATE TABLE IF NOT EXISTS job_state_counts (
  client      text    NOT NULL,
  queue_state text    NOT NULL,
  failed      boolean NOT NULL,
  superseded  boolean NOT NULL,
  shard       integer NOT NULL,
  n           bigint  NOT NULL,
  PRIMARY KEY (client, queue_state, failed, superseded, shard)
);

CREATE TABLE IF NOT EXISTS task_state_counts (
  client text    NOT NULL,
  state  text    NOT NULL,
  shard  integer NOT NULL,
  n      bigint  NOT NULL,
  PRIMARY KEY (client, state, shard)
);

-- Written and emptied within one statement; committed rows are leftovers (jobs without tasks)
-- that compaction deletes.
CREATE UNLOGGED TABLE IF NOT EXISTS state_count_deleted_jobs (
  job_id bigint NOT NULL,
  client text   NOT NULL
);

CREATE OR REPLACE FUNCTION te_job_state_counts() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'INSERT' THEN
    INSERT INTO job_state_counts AS c (client, queue_state, failed, superseded, shard, n)
    SELECT client, queue_state, failed, rerun_by IS NOT NULL, pg_backend_pid(), count(*)
      FROM new_rows GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3, 4
    ON CONFLICT (client, queue_state, failed, superseded, shard) DO UPDATE SET n = c.n + excluded.n;
  ELSIF TG_OP = 'UPDATE' THEN
    INSERT INTO job_state_counts AS c (client, queue_state, failed, superseded, shard, n)
    SELECT client, queue_state, failed, superseded, pg_backend_pid(), sum(d) FROM (
        SELECT client, queue_state, failed, rerun_by IS NOT NULL AS superseded, 1 AS d FROM new_rows
        UNION ALL
        SELECT client, queue_state, failed, rerun_by IS NOT NULL, -1 FROM old_rows
      ) x
     GROUP BY 1, 2, 3, 4 HAVING sum(d) <> 0 ORDER BY 1, 2, 3, 4
    ON CONFLICT (client, queue_state, failed, superseded, shard) DO UPDATE SET n = c.n + excluded.n;
  ELSE
    INSERT INTO job_state_counts AS c (client, queue_state, failed, superseded, shard, n)
    SELECT client, queue_state, failed, rerun_by IS NOT NULL, pg_backend_pid(), -count(*)
      FROM old_rows GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3, 4
    ON CONFLICT (client, queue_state, failed, superseded, shard) DO UPDATE SET n = c.n + excluded.n;
    INSERT INTO state_count_deleted_jobs (job_id, client) SELECT id, client FROM old_rows;
  END IF;
  RETURN NULL;
END $$;

CREATE OR REPLACE FUNCTION te_task_state_counts() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'INSERT' THEN
    INSERT INTO task_state_counts AS c (client, state, shard, n)
    SELECT j.client, t.state, pg_backend_pid(), count(*)
      FROM new_rows t JOIN jobs j ON j.id = t.job_id
     GROUP BY 1, 2 ORDER BY 1, 2
    ON CONFLICT (client, state, shard) DO UPDATE SET n = c.n + excluded.n;
  ELSIF TG_OP = 'UPDATE' THEN
    -- Only rows whose state moved count; a statement that moves none (progress, heartbeats)
    -- reads no job and writes nothing.
    INSERT INTO task_state_counts AS c (client, state, shard, n)
    SELECT j.client, v.state, pg_backend_pid(), sum(v.d)
      FROM new_rows n JOIN old_rows o ON o.id = n.id AND n.state <> o.state
     CROSS JOIN LATERAL (VALUES (n.state, 1), (o.state, -1)) AS v (state, d)
      JOIN jobs j ON j.id = n.job_id
     GROUP BY 1, 2 HAVING sum(v.d) <> 0 ORDER BY 1, 2
    ON CONFLICT (client, state, shard) DO UPDATE SET n = c.n + excluded.n;
  ELSE
    INSERT INTO task_state_counts AS c (client, state, shard, n)
    SELECT COALESCE(j.client, d.client), t.state, pg_backend_pid(), -count(*)
      FROM old_rows t
      LEFT JOIN jobs j ON j.id = t.job_id
      LEFT JOIN (SELECT DISTINCT job_id, client FROM state_count_deleted_jobs) d ON d.job_id = t.job_id
     GROUP BY 1, 2 ORDER BY 1, 2
    ON CONFLICT (client, state, shard) DO UPDATE SET n = c.n + excluded.n;
    DELETE FROM state_count_deleted_jobs s WHERE s.job_id IN (SELECT job_id FROM old_rows);
  END IF;
  RETURN NULL;
END $$;

CREATE OR REPLACE FUNCTION te_state_counts_truncate() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_TABLE_NAME = 'jobs' THEN
    DELETE FROM job_state_counts;
    DELETE FROM state_count_deleted_jobs;
  ELSE
    DELETE FROM task_state_counts;
  END IF;
  RETURN NULL;
END $$;

-- Folds the counter rows of sessions that have ended into shard 0 and deletes the groups whose
-- count is zero; deletes leftover rows of `state_count_deleted_jobs`. Never waits for a row a live
-- session holds (SKIP LOCKED), and returns at once if another compaction is running (advisory
-- transaction lock 7310005). Returns the counter rows removed.
CREATE OR REPLACE FUNCTION te_compact_state_counts() RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
  rows_before bigint;
  rows_after bigint;
BEGIN
  IF NOT pg_try_advisory_xact_lock(7310005) THEN RETURN 0; END IF;
  SELECT (SELECT count(*) FROM job_state_counts) + (SELECT count(*) FROM task_state_counts) INTO rows_before;
  WITH gone AS (
    DELETE FROM job_state_counts WHERE ctid IN (
      SELECT ctid FROM job_state_counts
       WHERE shard <> 0 AND shard NOT IN (SELECT pid FROM pg_stat_activity WHERE pid IS NOT NULL)
       FOR UPDATE SKIP LOCKED)
    RETURNING client, queue_state, failed, superseded, n
  )
  INSERT INTO job_state_counts AS c (client, queue_state, failed, superseded, shard, n)
  SELECT client, queue_state, failed, superseded, 0, sum(n) FROM gone
   GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3, 4
  ON CONFLICT (client, queue_state, failed, superseded, shard) DO UPDATE SET n = c.n + excluded.n;
  DELETE FROM job_state_counts WHERE shard = 0 AND n = 0;
  WITH gone AS (
    DELETE FROM task_state_counts WHERE ctid IN (
      SELECT ctid FROM task_state_counts
       WHERE shard <> 0 AND shard NOT IN (SELECT pid FROM pg_stat_activity WHERE pid IS NOT NULL)
       FOR UPDATE SKIP LOCKED)
    RETURNING client, state, n
  )
  INSERT INTO task_state_counts AS c (client, state, shard, n)
  SELECT client, state, 0, sum(n) FROM gone GROUP BY 1, 2 ORDER BY 1, 2
  ON CONFLICT (client, state, shard) DO UPDATE SET n = c.n + excluded.n;
  DELETE FROM task_state_counts WHERE shard = 0 AND n = 0;
  DELETE FROM state_count_deleted_jobs;
  SELECT (SELECT count(*) FROM job_state_counts) + (SELECT count(*) FROM task_state_counts) INTO rows_after;
  RETURN rows_before - rows_after;
END $$;

-- No write to either table may be in flight while the triggers are created and the counts
-- backfilled: the lock waits for open writers and holds new ones until this migration commits.
LOCK TABLE jobs, tasks IN SHARE ROW EXCLUSIVE MODE;

DROP TRIGGER IF EXISTS jobs_state_counts_insert ON jobs;
CREATE TRIGGER jobs_state_counts_insert AFTER INSERT ON jobs
  REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION te_job_state_counts();
DROP TRIGGER IF EXISTS jobs_state_counts_update ON jobs;
CREATE TRIGGER jobs_state_counts_update AFTER UPDATE ON jobs
  REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION te_job_state_counts();
DROP TRIGGER IF EXISTS jobs_state_counts_delete ON jobs;
CREATE TRIGGER jobs_state_counts_delete AFTER DELETE ON jobs
  REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION te_job_state_counts();
DROP TRIGGER IF EXISTS jobs_state_counts_truncate ON jobs;
CREATE TRIGGER jobs_state_counts_truncate AFTER TRUNCATE ON jobs
  FOR EACH STATEMENT EXECUTE FUNCTION te_state_counts_truncate();

DROP TRIGGER IF EXISTS tasks_state_counts_insert ON tasks;
CREATE TRIGGER tasks_state_counts_insert AFTER INSERT ON tasks
  REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION te_task_state_counts();
DROP TRIGGER IF EXISTS tasks_state_counts_update ON tasks;
CREATE TRIGGER tasks_state_counts_update AFTER UPDATE ON tasks
  REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION te_task_state_counts();
DROP TRIGGER IF EXISTS tasks_state_counts_delete ON tasks;
CREATE TRIGGER tasks_state_counts_delete AFTER DELETE ON tasks
  REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION te_task_state_counts();
DROP TRIGGER IF EXISTS tasks_state_counts_truncate ON tasks;
CREATE TRIGGER tasks_state_counts_truncate AFTER TRUNCATE ON tasks
  FOR EACH STATEMENT EXECUTE FUNCTION te_state_counts_truncate();

DELETE FROM job_state_counts;
INSERT INTO job_state_counts (client, queue_state, failed, superseded, shard, n)
SELECT client, queue_state, failed, rerun_by IS NOT NULL, 0, count(*) FROM jobs GROUP BY 1, 2, 3, 4;
DELETE FROM task_state_counts;
INSERT INTO task_state_counts (client, state, shard, n)
SELECT j.client, t.state, 0, count(*) FROM tasks t JOIN jobs j ON j.id = t.job_id GROUP BY 1, 2;
