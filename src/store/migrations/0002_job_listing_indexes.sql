-- Indexes for the /jobs listing at a million rows (measured by `npm run bench list-jobs`):
-- each order_by column gets an index with id as the tie-breaker, and content_id gets a trigram
-- index so `search` can use both trigram indexes (content_id OR parameters) at once.
CREATE INDEX IF NOT EXISTS jobs_updated_id_idx ON jobs (updated_at, id);
CREATE INDEX IF NOT EXISTS jobs_priority_id_idx ON jobs (priority, id);
CREATE INDEX IF NOT EXISTS jobs_run_at_id_idx ON jobs (run_at, id);
CREATE INDEX IF NOT EXISTS jobs_workflow_id_idx ON jobs (workflow, id);
CREATE INDEX IF NOT EXISTS jobs_content_id_trgm_idx ON jobs USING gin (content_id gin_trgm_ops);
