-- Task progress, and the event log that feeds `GET /events`.
--
-- Progress: a running task's handler reports a fraction 0..1 (null before it starts), an optional
-- message and optional details (fps, speed, eta_seconds for FFmpeg). Written throttled by the
-- worker; each write also counts as the attempt's heartbeat.
ALTER TABLE tasks ADD COLUMN IF NOT EXISTS progress double precision CHECK (progress BETWEEN 0 AND 1);
ALTER TABLE tasks ADD COLUMN IF NOT EXISTS progress_message text;
ALTER TABLE tasks ADD COLUMN IF NOT EXISTS progress_detail jsonb;
ALTER TABLE tasks ADD COLUMN IF NOT EXISTS progress_at timestamptz;

-- Events: one row per job state change, task state or progress change, and job log line,
-- written by the triggers below in the transaction that made the change, so no code path can
-- forget one and a rolled-back change leaves none. Readers are woken by `te_events` (sent once per
-- statement, delivered on commit) and read `id > last seen`; rows older than the retention window
-- are deleted by maintenance. The table is UNLOGGED (a server crash empties it: a reader then
-- resumes from the live state), its id sequence is not, so ids never go back.
CREATE SEQUENCE IF NOT EXISTS events_id_seq;
CREATE UNLOGGED TABLE IF NOT EXISTS events (
  id          bigint PRIMARY KEY DEFAULT nextval('events_id_seq'),
  job_id      bigint NOT NULL,
  kind        text NOT NULL CHECK (kind IN ('job', 'task', 'log')),
  task_id     bigint NOT NULL DEFAULT 0,
  log_id      bigint,            -- for kind 'log': the logs row (the reader maps it like /logs)
  data        jsonb,             -- for 'job' and 'task': the row's state at the change
  created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS events_job_idx ON events (job_id, id);
CREATE INDEX IF NOT EXISTS events_created_idx ON events (created_at);

CREATE OR REPLACE FUNCTION te_job_events() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'INSERT' THEN
    INSERT INTO events (job_id, kind, data)
    SELECT n.id, 'job', jsonb_build_object(
             'job_id', n.id, 'client', n.client, 'workflow', n.workflow,
             'queue_state', n.queue_state, 'failed', n.failed, 'priority', n.priority,
             'run', n.run, 'previous_state', NULL)
    FROM new_rows n ORDER BY n.id;
  ELSE
    INSERT INTO events (job_id, kind, data)
    SELECT n.id, 'job', jsonb_build_object(
             'job_id', n.id, 'client', n.client, 'workflow', n.workflow,
             'queue_state', n.queue_state, 'failed', n.failed, 'priority', n.priority,
             'run', n.run, 'previous_state', o.queue_state)
    FROM new_rows n JOIN old_rows o ON o.id = n.id
    WHERE n.queue_state IS DISTINCT FROM o.queue_state OR n.failed IS DISTINCT FROM o.failed
       OR n.priority IS DISTINCT FROM o.priority OR n.run IS DISTINCT FROM o.run
    ORDER BY n.id;
  END IF;
  IF FOUND THEN PERFORM pg_notify('te_events', ''); END IF;
  RETURN NULL;
END $$;

CREATE OR REPLACE FUNCTION te_task_events() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO events (job_id, kind, task_id, data)
  SELECT n.job_id, 'task', n.id, jsonb_build_object(
           'job_id', n.job_id, 'task_id', n.id, 'name', n.name, 'queue', n.queue,
           'state', n.state, 'previous_state', o.state, 'attempts', n.attempts,
           'progress', n.progress, 'progress_message', n.progress_message,
           'progress_detail', n.progress_detail)
  FROM new_rows n JOIN old_rows o ON o.id = n.id
  WHERE n.state IS DISTINCT FROM o.state OR n.progress IS DISTINCT FROM o.progress
     OR n.progress_message IS DISTINCT FROM o.progress_message
  ORDER BY n.id;
  IF FOUND THEN PERFORM pg_notify('te_events', ''); END IF;
  RETURN NULL;
END $$;

CREATE OR REPLACE FUNCTION te_log_events() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO events (job_id, kind, task_id, log_id)
  SELECT n.job_id, 'log', n.task_id, n.id FROM new_rows n ORDER BY n.id;
  IF FOUND THEN PERFORM pg_notify('te_events', ''); END IF;
  RETURN NULL;
END $$;

DROP TRIGGER IF EXISTS jobs_events_insert ON jobs;
CREATE TRIGGER jobs_events_insert AFTER INSERT ON jobs
  REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION te_job_events();
DROP TRIGGER IF EXISTS jobs_events_update ON jobs;
CREATE TRIGGER jobs_events_update AFTER UPDATE ON jobs
  REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION te_job_events();
DROP TRIGGER IF EXISTS tasks_events_update ON tasks;
CREATE TRIGGER tasks_events_update AFTER UPDATE ON tasks
  REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION te_task_events();
DROP TRIGGER IF EXISTS logs_events_insert ON logs;
CREATE TRIGGER logs_events_insert AFTER INSERT ON logs
  REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION te_log_events();
