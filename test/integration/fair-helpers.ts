/**
 * Shared by the fair-share, waiting and multi-process admission tests: their workflows and a
 * sampler of the jobs holding slots.
 */
import type { Queryable } from '../../src/store/executor.js';

/** The workflows of these tests. */
export const FAIR_WORKFLOWS = {
  quick: { tasks: [{ name: 'quick', run: 'sleep', with: { seconds: 0 } }] },
  hold: {
    parameters: { type: 'object', properties: { seconds: { type: 'number' } } },
    tasks: [{ name: 'hold', run: 'sleep', with: { seconds: '{{ parameters.seconds }}' } }],
  },
  keyed: {
    parameters: {
      type: 'object',
      properties: { content_id: { type: 'string' }, seconds: { type: 'number' } },
    },
    concurrency: { key: 'content-{{ parameters.content_id }}', limit: 1 },
    tasks: [{ name: 'hold', run: 'sleep', with: { seconds: '{{ parameters.seconds }}' } }],
  },
  /** The whole key is one parameter: a job without it renders the empty key. */
  keyed_whole: {
    parameters: {
      type: 'object',
      properties: { content_id: { type: 'string' }, seconds: { type: 'number' } },
    },
    concurrency: { key: '{{ parameters.content_id }}', limit: 1 },
    tasks: [{ name: 'hold', run: 'sleep', with: { seconds: '{{ parameters.seconds }}' } }],
  },
  flaky: {
    tasks: [{ name: 'boom', run: 'fail', with: { message: 'no luck' } }],
  },
};

/**
 * Samples, every `intervalMs` until `done()`, the most jobs seen holding a slot at once per group
 * (`groupSql`: an expression over `jobs j`, e.g. `j.client`). Slots are held by started jobs and
 * paused jobs with a running task.
 */
export async function sampleHolders(
  db: Queryable,
  groupSql: 'j.client' | 'j.concurrency_key',
  done: () => Promise<boolean>,
  options: { intervalMs: number; timeoutMs: number },
): Promise<{ max: Map<string, number>; samples: number }> {
  const max = new Map<string, number>();
  let samples = 0;
  const deadline = Date.now() + options.timeoutMs;
  for (;;) {
    const { rows } = await db.query<{ g: string | null; n: number }>(
      `SELECT ${groupSql} AS g, count(*)::int AS n FROM jobs j
        WHERE j.queue_state = 'started'
           OR (j.queue_state = 'paused' AND EXISTS (SELECT 1 FROM tasks t WHERE t.job_id = j.id AND t.state = 'running'))
        GROUP BY 1`,
    );
    samples++;
    for (const r of rows) if (r.g !== null) max.set(r.g, Math.max(max.get(r.g) ?? 0, r.n));
    if (await done()) return { max, samples };
    if (Date.now() >= deadline)
      throw new Error(`not done within ${options.timeoutMs} ms (${samples} samples)`);
    await new Promise((r) => setTimeout(r, options.intervalMs));
  }
}
