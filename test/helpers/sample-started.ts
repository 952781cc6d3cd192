/**
 * The max-started sampler: polls how many of a set of jobs are `started` at once until all of them
 * are `completed`, for the tests that prove admission never exceeds `max_jobs`.
 */
import type { Queryable } from '../../src/store/executor.js';

/** What {@link sampleMaxStarted} saw. */
export interface StartedSamples {
  /** The most jobs of the set seen `started` at once. */
  max: number;
  /** How many samples were taken. */
  samples: number;
}

/**
 * Samples every `intervalMs` until every job of `ids` is completed.
 * @throws Error when they have not all completed within `timeoutMs`, saying how many had.
 */
export async function sampleMaxStarted(
  db: Queryable,
  ids: number[],
  options: { intervalMs: number; timeoutMs: number },
): Promise<StartedSamples> {
  let max = 0;
  let samples = 0;
  const deadline = Date.now() + options.timeoutMs;
  for (;;) {
    const { rows } = await db.query<{ started: number; done: number }>(
      `SELECT count(*) FILTER (WHERE queue_state = 'started') AS started,
              count(*) FILTER (WHERE queue_state = 'completed') AS done
         FROM jobs WHERE id = ANY($1::bigint[])`,
      [ids],
    );
    samples++;
    max = Math.max(max, rows[0]!.started);
    if (rows[0]!.done === ids.length) return { max, samples };
    if (Date.now() >= deadline)
      throw new Error(
        `only ${rows[0]!.done} of ${ids.length} jobs completed within ${options.timeoutMs / 1000} s (max ${max} started at once over ${samples} samples)`,
      );
    await new Promise((r) => setTimeout(r, options.intervalMs));
  }
}
