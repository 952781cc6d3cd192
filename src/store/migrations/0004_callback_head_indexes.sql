-- Callback delivery picks the head of each (job, target) chain: its oldest undelivered delivery.
-- Without these, finding heads meant walking every undelivered row (and, for each, the chain's
-- delivered rows), so each claim cost time in proportion to the backlog and a backlog of a few
-- thousand callbacks drained at a few per second. With them, the dispatcher walks the targets,
-- and inside each target only as far as the heads it can take now.
CREATE INDEX IF NOT EXISTS callback_deliveries_target_due_idx
  ON callback_deliveries (target_url, next_attempt_at, id) WHERE state IN ('pending', 'delivering');
CREATE INDEX IF NOT EXISTS callback_deliveries_chain_open_idx
  ON callback_deliveries (job_id, target_url, id) WHERE state IN ('pending', 'delivering');
