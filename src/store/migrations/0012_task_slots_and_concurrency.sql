-- Task weights and task concurrency keys (docs/task-slots-and-concurrency.md).
--
-- slots: the worker slots a task takes while it runs. A worker's capacity in slots is its
--   `workers.concurrency` (TASK_ENGINE_WORKER_CONCURRENCY): no separate column.
-- concurrency_key / concurrency_limit: at most `limit` running tasks hold the key at once, across
--   every engine process. The key is rendered from the definition's template when the job is
--   submitted (parameters and job.client / job.workflow / job.priority) and kept by retries.
-- too_heavy_reported_at: when the job log was told that no live worker of the task's queue has
--   enough slots for it (written once per task).
ALTER TABLE tasks ADD COLUMN IF NOT EXISTS slots integer NOT NULL DEFAULT 1 CHECK (slots BETWEEN 1 AND 1000);
ALTER TABLE tasks ADD COLUMN IF NOT EXISTS concurrency_key text;
ALTER TABLE tasks ADD COLUMN IF NOT EXISTS concurrency_limit integer CHECK (concurrency_limit >= 1);
ALTER TABLE tasks ADD CONSTRAINT tasks_concurrency_key_and_limit
  CHECK ((concurrency_key IS NULL) = (concurrency_limit IS NULL));
ALTER TABLE tasks ADD COLUMN IF NOT EXISTS too_heavy_reported_at timestamptz;

-- Counting the running holders of a key (the claim and "why is it waiting").
CREATE INDEX IF NOT EXISTS tasks_concurrency_running_idx ON tasks (concurrency_key)
  WHERE state = 'running' AND concurrency_key IS NOT NULL;

-- The running holders of each of `keys`, counted after taking, per key, the transaction-scoped
-- advisory lock (7310012, hashtext(key)). Called by the claim statement for the keys of the tasks it
-- is about to take; the locks are held until that statement commits.
--
-- Why this is correct on READ COMMITTED: a plain statement counts with the snapshot taken when it
-- began, so two engines claiming at once could both count 0 holders and both take a task. Here the
-- lock serialises every claim of the key, and this function is VOLATILE, so each query in it takes
-- a new snapshot: the count runs after the lock is granted, when the claim that held the lock
-- before has committed, and so sees the tasks that claim took. A task leaving `running` that has
-- not committed yet still counts (the answer errs on the safe side, never above the limit).
-- Locks are taken in the order of their lock ids (hashtext, then the key), so two claims never wait
-- for each other in a cycle; two keys with one hash only share a lock. Nothing else takes these
-- locks, and a claim waits for nothing else (its row locks are SKIP LOCKED), so a wait here always
-- ends when another claim commits. On PGlite (one connection) the locks are granted at once.
CREATE OR REPLACE FUNCTION te_concurrency_holders(keys text[])
  RETURNS TABLE (key text, held integer) LANGUAGE plpgsql VOLATILE AS $$
DECLARE
  k text;
BEGIN
  FOR k IN SELECT u.k FROM (SELECT DISTINCT x AS k FROM unnest(keys) AS x WHERE x IS NOT NULL) AS u
            ORDER BY hashtext(u.k), u.k LOOP
    PERFORM pg_advisory_xact_lock(7310012, hashtext(k));
  END LOOP;
  RETURN QUERY
    SELECT u.k, (SELECT count(*)::int FROM tasks t WHERE t.state = 'running' AND t.concurrency_key = u.k)
      FROM (SELECT DISTINCT x AS k FROM unnest(keys) AS x WHERE x IS NOT NULL) AS u;
END $$;

-- A keyed task that stops running frees its key: wake every worker pool (`te_tasks` with an
-- empty payload is "any queue"), since tasks waiting for the key may be on any queue. Sent once
-- per transaction (PostgreSQL folds equal notifications), delivered on commit.
CREATE OR REPLACE FUNCTION te_task_key_released() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  PERFORM pg_notify('te_tasks', '');
  RETURN NULL;
END $$;

DROP TRIGGER IF EXISTS tasks_key_released ON tasks;
CREATE TRIGGER tasks_key_released AFTER UPDATE OF state ON tasks
  FOR EACH ROW WHEN (OLD.state = 'running' AND NEW.state <> 'running' AND OLD.concurrency_key IS NOT NULL)
  EXECUTE FUNCTION te_task_key_released();
