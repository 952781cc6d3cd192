-- Fewer index entries per job, and attempt heartbeats that can be HOT.
--
-- `tasks_job_idx (job_id, position)`: every read of a job's tasks filters on `job_id` and sorts a
-- handful of rows; the `(job_id, name)` unique key already finds them by `job_id`. One index entry
-- per task (and per non-HOT task update) less.
DROP INDEX IF EXISTS tasks_job_idx;

-- `jobs_content_id_idx (content_id)`: no query compares `jobs.content_id`; the `search` filter reads
-- `job_search` through its trigram indexes.
DROP INDEX IF EXISTS jobs_content_id_idx;

-- `attempts_running_idx` indexed `heartbeat_at`, so each heartbeat and progress write had to make a
-- new index entry (never HOT). The stall sweep reads the running attempts in id order and tests
-- the heartbeat on the row; an index on `id` of the running attempts serves it, and a heartbeat no
-- longer touches an indexed column. `fillfactor` leaves room on the page for those HOT versions.
CREATE INDEX IF NOT EXISTS attempts_running_id_idx ON attempts (id) WHERE state = 'running';
DROP INDEX IF EXISTS attempts_running_idx;
ALTER TABLE attempts SET (fillfactor = 90);

-- `logs` had a primary key on `id` and `logs_job_idx (job_id, id)`: two entries per log line. Every
-- read of a log goes through its job (`/logs`, the console's pages, and the event feed, which
-- knows the job of each log event); one key on `(job_id, id)` serves them all. `id` stays unique
-- (it comes from the sequence, and the key includes it).
ALTER TABLE logs DROP CONSTRAINT IF EXISTS logs_pkey;
ALTER TABLE logs ADD CONSTRAINT logs_pkey PRIMARY KEY (job_id, id);
DROP INDEX IF EXISTS logs_job_idx;
