-- The `search` filter of /jobs moves to an insert-only side table. A job's `content_id` and
-- `parameters` never change after submission, but the job row is updated at every state change
-- (queued → started → completed), and such updates also change indexed columns, so each one
-- re-inserted every trigram of the row into both trigram GIN indexes on `jobs`. Here the trigram
-- indexes sit on rows that are written once, with the job, and never updated.
CREATE TABLE job_search (
  job_id           bigint PRIMARY KEY REFERENCES jobs(id) ON DELETE CASCADE,
  content_id       text,           -- jobs.content_id
  parameters_text  text NOT NULL   -- jobs.parameters::text (the jsonb's text form)
);

INSERT INTO job_search (job_id, content_id, parameters_text)
SELECT id, content_id, parameters::text FROM jobs;

CREATE INDEX job_search_content_id_trgm_idx ON job_search USING gin (content_id gin_trgm_ops);
CREATE INDEX job_search_parameters_trgm_idx ON job_search USING gin (parameters_text gin_trgm_ops);

DROP INDEX IF EXISTS jobs_search_trgm_idx;
DROP INDEX IF EXISTS jobs_content_id_trgm_idx;
