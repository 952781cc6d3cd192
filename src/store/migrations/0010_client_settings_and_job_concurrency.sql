-- Fair scheduling: settings per client, job concurrency keys, and what "why is it waiting" reads.

-- A client's own value of a setting (max_jobs as its quota, weight as its share, priority_slots,
-- priority_threshold, retry_limit, retry_delay). A setting without a row here takes the global
-- value from `settings`. Values are text, validated as integers on write, like `settings`.
CREATE TABLE client_settings (
  client      text NOT NULL,
  name        text NOT NULL,
  value       text NOT NULL,
  created_at  timestamptz NOT NULL DEFAULT now(),
  updated_at  timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (client, name)
);

-- A workflow's `concurrency: {key, limit}`, rendered at submission: at most `concurrency_limit`
-- jobs holding `concurrency_key` at once. A job holds its key exactly while it holds a slot
-- (started, or paused with a task still running). Null for jobs without a key.
ALTER TABLE jobs ADD COLUMN concurrency_key text;
ALTER TABLE jobs ADD COLUMN concurrency_limit integer CHECK (concurrency_limit IS NULL OR concurrency_limit >= 1);
CREATE INDEX jobs_concurrency_holders_idx ON jobs (concurrency_key)
  WHERE concurrency_key IS NOT NULL AND queue_state IN ('started', 'paused');

-- Each client's queue heads in admission order (fair share reads a few heads per client, and
-- walks the distinct clients with queued work along the leading column).
CREATE INDEX jobs_client_admission_idx ON jobs (client, top_of_queue DESC, priority, queued_at, id)
  WHERE queue_state = 'queued';

-- The last answer of a pending job's semaphore and when it is checked next (the checker's memory
-- is the scheduler leader's; this is what `waiting` shows).
ALTER TABLE jobs ADD COLUMN semaphore_answer text;
ALTER TABLE jobs ADD COLUMN semaphore_checked_at timestamptz;
ALTER TABLE jobs ADD COLUMN semaphore_next_check_at timestamptz;

-- The recent rate of slots freeing (jobs that ended after starting), for `estimated_start_at`.
CREATE INDEX jobs_finished_at_idx ON jobs (finished_at) WHERE started_at IS NOT NULL AND finished_at IS NOT NULL;
