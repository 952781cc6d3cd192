-- The trace of a job (docs/tracing.md): the ids made at submission, so that whichever engine runs
-- an attempt parents its span on the job's span, and whichever engine writes the job's end
-- re-creates and exports the job span once (`ended`). Only written while tracing is on.
CREATE TABLE IF NOT EXISTS job_traces (
  job_id          bigint PRIMARY KEY REFERENCES jobs(id) ON DELETE CASCADE,
  -- 32 lowercase hex digits (W3C trace-id).
  trace_id        text NOT NULL,
  -- The job span's id, 16 lowercase hex digits.
  span_id         text NOT NULL,
  -- The span of an incoming `traceparent` on POST /job, or null for a root job span.
  parent_span_id  text,
  -- W3C trace-flags (bit 0: sampled).
  trace_flags     smallint NOT NULL,
  -- Set once the job span was exported.
  ended           boolean NOT NULL DEFAULT false
);
