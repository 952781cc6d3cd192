/**
 * Recording helpers the engine's write paths call when `ctx.metrics` is set (each is a few map
 * lookups and additions; nothing here touches the database).
 */
import type { EngineMetrics } from './metrics.js';

/**
 * Counts the jobs a statement finished: each listed finish whose job id is in `finished` (the
 * ids `applyEffects` returned) adds one to `task_engine_jobs_finished_total{client, workflow,
 * outcome}`. Called inside the writing transaction, right after the statement.
 */
export function countFinishedJobs(
  m: EngineMetrics,
  finishes: readonly { jobId: number; failed: boolean }[],
  finished: ReadonlySet<number>,
  jobOf: (id: number) => { client: string; workflow: string } | undefined,
): void {
  for (const f of finishes) {
    if (!finished.has(f.jobId)) continue;
    const job = jobOf(f.jobId);
    if (job) m.jobsFinished.labels(job.client, job.workflow, f.failed ? 'failed' : 'completed').inc();
  }
}

/**
 * Counts jobs an admission pass started: `task_engine_admissions_total{client}` and, for a job
 * with a `queued_at`, `task_engine_queued_to_started_seconds{client}` (clamped at 0).
 */
export function countAdmissions(
  m: EngineMetrics,
  jobs: readonly { client: string; queued_at: Date | null }[],
  now: Date,
): void {
  for (const j of jobs) {
    m.admissions.labels(j.client).inc();
    if (j.queued_at)
      m.queuedToStarted.labels(j.client).observe(Math.max(0, (now.getTime() - j.queued_at.getTime()) / 1000));
  }
}
