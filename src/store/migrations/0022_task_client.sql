-- The client of a task's job, kept on the task row (written with the task at submission; a job's
-- client never changes), so the task counter triggers of migration 0018 count by the task's own
-- row instead of joining `jobs` on each of a task's state-changing statements.
--
-- A task written without it (by an engine older than this migration, during an upgrade) is still
-- counted under its job's client: the triggers fall back to reading the job when `client` is null.

ALTER TABLE tasks ADD COLUMN IF NOT EXISTS client text;

-- No task may be written while the column is filled and the triggers are replaced.
LOCK TABLE jobs, tasks IN SHARE ROW EXCLUSIVE MODE;

UPDATE tasks t SET client = j.client FROM jobs j WHERE j.id = t.job_id AND t.client IS NULL;

CREATE OR REPLACE FUNCTION te_task_state_counts() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'INSERT' THEN
    INSERT INTO task_state_counts AS c (client, state, shard, n)
    SELECT COALESCE(t.client, (SELECT j.client FROM jobs j WHERE j.id = t.job_id)), t.state,
           pg_backend_pid(), count(*)
      FROM new_rows t
     GROUP BY 1, 2 ORDER BY 1, 2
    ON CONFLICT (client, state, shard) DO UPDATE SET n = c.n + excluded.n;
  ELSIF TG_OP = 'UPDATE' THEN
    -- Only rows whose state moved count; a statement that moves none (progress, heartbeats)
    -- writes nothing.
    INSERT INTO task_state_counts AS c (client, state, shard, n)
    SELECT COALESCE(n.client, (SELECT j.client FROM jobs j WHERE j.id = n.job_id)), v.state,
           pg_backend_pid(), sum(v.d)
      FROM new_rows n JOIN old_rows o ON o.id = n.id AND n.state <> o.state
     CROSS JOIN LATERAL (VALUES (n.state, 1), (o.state, -1)) AS v (state, d)
     GROUP BY 1, 2 HAVING sum(v.d) <> 0 ORDER BY 1, 2
    ON CONFLICT (client, state, shard) DO UPDATE SET n = c.n + excluded.n;
  ELSE
    INSERT INTO task_state_counts AS c (client, state, shard, n)
    SELECT COALESCE(t.client, j.client, d.client), t.state, pg_backend_pid(), -count(*)
      FROM old_rows t
      LEFT JOIN jobs j ON t.client IS NULL AND j.id = t.job_id
      LEFT JOIN (SELECT DISTINCT job_id, client FROM state_count_deleted_jobs) d
        ON t.client IS NULL AND d.job_id = t.job_id
     GROUP BY 1, 2 ORDER BY 1, 2
    ON CONFLICT (client, state, shard) DO UPDATE SET n = c.n + excluded.n;
    DELETE FROM state_count_deleted_jobs s WHERE s.job_id IN (SELECT job_id FROM old_rows);
  END IF;
  RETURN NULL;
END $$;
