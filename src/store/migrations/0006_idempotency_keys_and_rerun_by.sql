-- Idempotent submission (issue 11, part 3): `job.idempotency_key` on POST /job. One row per
-- (client, key): the job the key answers with, a fingerprint of the submission that made it (so
-- the same key with different content can be told apart), and when the key was taken. The
-- primary key is the unique index the submission statement's `ON CONFLICT` resolves against, so
-- two submissions of one key, on one engine or on two, make one job. A key past the retention
-- window (setting `idempotency_retention`) is taken over by the next submission with it, in the
-- same statement; a key goes with its job when the job is cleaned up (ON DELETE CASCADE).
CREATE TABLE job_idempotency_keys (
  client           text NOT NULL,
  idempotency_key  text NOT NULL,
  job_id           bigint NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,
  fingerprint      text NOT NULL,   -- sha-256 of the submission's content (src/engine/jobs/submit.ts)
  created_at       timestamptz NOT NULL,
  PRIMARY KEY (client, idempotency_key)
);
-- The cascade from a deleted job finds its key through this index, not a scan.
CREATE INDEX job_idempotency_keys_job_idx ON job_idempotency_keys (job_id);

-- The key a job was submitted with (shown on the job; the key's current owner is the table above),
-- and, on the original of a rerun, the newest job that reran it (`rerun_of` links the other way).
ALTER TABLE jobs ADD COLUMN idempotency_key text, ADD COLUMN rerun_by bigint;

-- Jobs rerun before this migration: their newest rerun.
UPDATE jobs o SET rerun_by = r.newest
FROM (SELECT rerun_of, max(id) AS newest FROM jobs WHERE rerun_of IS NOT NULL GROUP BY rerun_of) r
WHERE o.id = r.rerun_of;
