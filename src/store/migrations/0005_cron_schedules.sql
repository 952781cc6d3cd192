-- User schedules (issue 11, part 4): a workflow submitted on a cron expression in a time zone.
-- `next_run_at` is the schedule's cursor: the earliest slot not yet handled (submitted or
-- skipped). The leader handles every slot from it up to now in one transaction with the row
-- locked, and moves it past now in that same transaction, so a slot is handled once however many
-- engines run and whoever leads. NULL while the schedule is switched off.
CREATE TABLE cron_schedules (
  name         text PRIMARY KEY,
  client       text NOT NULL,
  cron         text NOT NULL,
  timezone     text NOT NULL,
  workflow     text NOT NULL,
  parameters   jsonb NOT NULL DEFAULT '{}'::jsonb,
  priority     integer NOT NULL DEFAULT 5 CHECK (priority BETWEEN 1 AND 10),
  overlap      text NOT NULL CHECK (overlap IN ('skip', 'allow')),
  catch_up     text NOT NULL CHECK (catch_up IN ('none', 'latest', 'all')),
  description  text,
  active       boolean NOT NULL DEFAULT true,
  next_run_at  timestamptz,
  last_run_at  timestamptz,          -- when the last job was submitted
  last_slot    timestamptz,          -- the slot of that job
  last_job_id  bigint,               -- that job (for overlap: skip); may since have been cleaned up
  created_at   timestamptz NOT NULL,
  updated_at   timestamptz NOT NULL
);
CREATE INDEX cron_schedules_due_idx ON cron_schedules (next_run_at) WHERE active;

-- The schedule and slot a job was submitted for. Unique per (schedule, slot): a second
-- submission for a slot cannot commit, whatever happens to the leader.
ALTER TABLE jobs ADD COLUMN schedule text, ADD COLUMN scheduled_for timestamptz;
CREATE UNIQUE INDEX jobs_schedule_slot_idx ON jobs (schedule, scheduled_for) WHERE schedule IS NOT NULL;
