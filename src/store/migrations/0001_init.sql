-- Task Engine schema, version 1. Forward-only: later changes go in new numbered files.
-- Every timestamp is timestamptz and stored in UTC.

CREATE EXTENSION IF NOT EXISTS pg_trgm;

-- API clients (tenants). Keys are stored as SHA-256 hashes of random 32-byte keys.
CREATE TABLE clients (
  name            text PRIMARY KEY,
  key_hash        text NOT NULL,
  key_last4       text NOT NULL,
  admin           boolean NOT NULL DEFAULT false,
  signing_secret  text,
  created_at      timestamptz NOT NULL DEFAULT now(),
  updated_at      timestamptz NOT NULL DEFAULT now(),
  revoked_at      timestamptz
);

-- Engine settings (SPEC section 9). Values are text; known names are validated as integers.
CREATE TABLE settings (
  name        text PRIMARY KEY,
  value       text NOT NULL,
  created_at  timestamptz NOT NULL DEFAULT now(),
  updated_at  timestamptz NOT NULL DEFAULT now()
);

-- Jobs: one submission of a workflow.
CREATE TABLE jobs (
  id                  bigserial PRIMARY KEY,
  client              text NOT NULL,
  workflow            text NOT NULL,
  priority            integer NOT NULL DEFAULT 5 CHECK (priority BETWEEN 1 AND 10),
  top_of_queue        boolean NOT NULL DEFAULT false,
  queue_state         text NOT NULL CHECK (queue_state IN
                        ('queued','started','completed','pending','broken','scheduled','paused')),
  failed              boolean NOT NULL DEFAULT false,
  persist             boolean NOT NULL DEFAULT false,
  parameters          jsonb NOT NULL DEFAULT '{}'::jsonb,  -- as submitted
  resolved_parameters jsonb NOT NULL DEFAULT '{}'::jsonb,  -- defaults applied
  definition          jsonb NOT NULL,                      -- the workflow definition used, frozen
  definition_source   text NOT NULL DEFAULT 'common',      -- 'common' or 'client'
  content_id          text,
  run_at              timestamptz NOT NULL DEFAULT now(),
  semaphore_url       text,
  queued_at           timestamptz,                         -- when it last became queued (FIFO key)
  started_at          timestamptz,
  finished_at         timestamptz,
  outputs             jsonb,                               -- rendered `outputs` at job end
  error               text,
  rerun_of            bigint,
  created_at          timestamptz NOT NULL DEFAULT now(),
  updated_at          timestamptz NOT NULL DEFAULT now()
);
-- Admission order: top_of_queue first, then priority ascending, then FIFO.
CREATE INDEX jobs_admission_idx ON jobs (top_of_queue DESC, priority, queued_at, id) WHERE queue_state = 'queued';
CREATE INDEX jobs_started_idx ON jobs (id) WHERE queue_state = 'started';
CREATE INDEX jobs_due_idx ON jobs (run_at) WHERE queue_state IN ('scheduled', 'pending');
-- /jobs listing filters.
CREATE INDEX jobs_created_idx ON jobs (created_at, id);
CREATE INDEX jobs_state_created_idx ON jobs (queue_state, created_at, id);
CREATE INDEX jobs_state_id_idx ON jobs (queue_state, id);
CREATE INDEX jobs_client_id_idx ON jobs (client, id);
CREATE INDEX jobs_client_state_id_idx ON jobs (client, queue_state, id);
CREATE INDEX jobs_failed_id_idx ON jobs (id) WHERE failed;
CREATE INDEX jobs_persist_id_idx ON jobs (id) WHERE persist;
CREATE INDEX jobs_content_id_idx ON jobs (content_id);
CREATE INDEX jobs_search_trgm_idx ON jobs USING gin ((parameters::text) gin_trgm_ops);
CREATE INDEX jobs_cleanup_idx ON jobs (finished_at) WHERE queue_state IN ('completed', 'broken') AND NOT persist;

-- Tasks: the steps of a job, created at submission from the frozen definition.
CREATE TABLE tasks (
  id                  bigserial PRIMARY KEY,
  job_id              bigint NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,
  name                text NOT NULL,
  position            integer NOT NULL,                    -- index in the definition
  queue               text NOT NULL DEFAULT 'work',
  state               text NOT NULL DEFAULT 'waiting' CHECK (state IN
                        ('waiting','ready','running','succeeded','failed','skipped','cancelled')),
  needs               text[] NOT NULL DEFAULT '{}',
  attempts            integer NOT NULL DEFAULT 0,          -- attempts started so far
  current_attempt_id  bigint,
  run_after           timestamptz NOT NULL DEFAULT now(),  -- earliest start (retry delay)
  output              jsonb,
  error               text,
  started_at          timestamptz,
  finished_at         timestamptz,
  created_at          timestamptz NOT NULL DEFAULT now(),
  updated_at          timestamptz NOT NULL DEFAULT now(),
  UNIQUE (job_id, name)
);
-- The claim query: ready tasks of a queue, oldest first.
CREATE INDEX tasks_claim_idx ON tasks (queue, run_after, id) WHERE state = 'ready';
CREATE INDEX tasks_running_idx ON tasks (queue) WHERE state = 'running';
CREATE INDEX tasks_job_idx ON tasks (job_id, position);

-- Attempts: one run of a task by a worker. A stale attempt can never overwrite a newer one:
-- every result is written with `WHERE id = <attempt> AND state = 'running'`.
CREATE TABLE attempts (
  id            bigserial PRIMARY KEY,
  task_id       bigint NOT NULL REFERENCES tasks(id) ON DELETE CASCADE,
  job_id        bigint NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,
  number        integer NOT NULL,                          -- 1-based attempt number of the task
  worker_id     text,
  state         text NOT NULL DEFAULT 'running' CHECK (state IN
                  ('running','succeeded','failed','cancelled','stalled')),
  heartbeat_at  timestamptz NOT NULL DEFAULT now(),
  started_at    timestamptz NOT NULL DEFAULT now(),
  finished_at   timestamptz,
  error         text,
  UNIQUE (task_id, number)
);
CREATE INDEX attempts_running_idx ON attempts (heartbeat_at) WHERE state = 'running';
CREATE INDEX attempts_job_idx ON attempts (job_id);

-- Per-job log (SPEC section 10). Severity: 0 DEBUG, 1 INFO, 2 WARN, 3 ERROR, 4 FATAL.
CREATE TABLE logs (
  id          bigserial PRIMARY KEY,
  job_id      bigint NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,
  task_id     bigint NOT NULL DEFAULT 0,
  severity    smallint NOT NULL DEFAULT 1 CHECK (severity BETWEEN 0 AND 5),
  progname    text NOT NULL,
  message     text NOT NULL,
  visible     boolean NOT NULL DEFAULT true,
  created_at  timestamptz NOT NULL DEFAULT now(),
  updated_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX logs_job_idx ON logs (job_id, id);

-- Schedules (SPEC section 8): the definitions live in code; this keeps the switch and run times.
CREATE TABLE schedules (
  name         text PRIMARY KEY,
  active       boolean NOT NULL DEFAULT true,
  last_run_at  timestamptz,
  next_run_at  timestamptz,
  updated_at   timestamptz NOT NULL DEFAULT now()
);

-- Worker registrations with heartbeats.
CREATE TABLE workers (
  id            text PRIMARY KEY,
  queues        text[] NOT NULL,
  concurrency   integer NOT NULL,
  host          text NOT NULL,
  pid           integer NOT NULL,
  roles         text[] NOT NULL DEFAULT '{}',
  started_at    timestamptz NOT NULL DEFAULT now(),
  heartbeat_at  timestamptz NOT NULL DEFAULT now(),
  stopped_at    timestamptz
);
CREATE INDEX workers_alive_idx ON workers (heartbeat_at) WHERE stopped_at IS NULL;

-- Callback outbox (SPEC section 7): one row per (event, target). Delivered in order per
-- (job, target) by the `callback` queue.
CREATE TABLE callback_deliveries (
  id               bigserial PRIMARY KEY,
  job_id           bigint NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,
  task_id          bigint NOT NULL DEFAULT 0,
  kind             text NOT NULL CHECK (kind IN ('task', 'job')),
  event            text NOT NULL,                          -- start | complete | fail | completed | failed
  target_url       text NOT NULL,
  body             jsonb NOT NULL,
  state            text NOT NULL DEFAULT 'pending' CHECK (state IN ('pending','delivering','delivered','failed')),
  attempts         integer NOT NULL DEFAULT 0,
  next_attempt_at  timestamptz NOT NULL DEFAULT now(),
  locked_until     timestamptz,
  last_status      integer,
  last_error       text,
  created_at       timestamptz NOT NULL DEFAULT now(),
  delivered_at     timestamptz
);
CREATE INDEX callback_deliveries_due_idx ON callback_deliveries (next_attempt_at, id) WHERE state IN ('pending', 'delivering');
CREATE INDEX callback_deliveries_order_idx ON callback_deliveries (job_id, target_url, id);
-- The job-end callback is sent exactly once per job and target.
CREATE UNIQUE INDEX callback_deliveries_job_end_uidx ON callback_deliveries (job_id, target_url) WHERE kind = 'job';
