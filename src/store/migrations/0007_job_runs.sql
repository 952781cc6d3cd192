-- Retry from the failed step (POST /jobs/<id>/retry): a job may run more than once. `run` counts
-- the runs of a job (1 for the first), `retried_at` is when the last retry was asked for and
-- `retried_from` the task it resumed from. Attempts and callback deliveries carry the run they
-- belong to: the retry budget of a task is counted within one run, and the job-end callback is
-- sent once per run and target instead of once per job.
ALTER TABLE jobs ADD COLUMN run integer NOT NULL DEFAULT 1;
ALTER TABLE jobs ADD COLUMN retried_at timestamptz;
ALTER TABLE jobs ADD COLUMN retried_from text;
ALTER TABLE attempts ADD COLUMN run integer NOT NULL DEFAULT 1;
ALTER TABLE callback_deliveries ADD COLUMN run integer NOT NULL DEFAULT 1;
DROP INDEX callback_deliveries_job_end_uidx;
CREATE UNIQUE INDEX callback_deliveries_job_end_uidx
  ON callback_deliveries (job_id, run, target_url) WHERE kind = 'job';
