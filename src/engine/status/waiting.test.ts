import assert from 'node:assert/strict';
import { it } from 'node:test';
import {
  chooseFairJobs,
  clientLimits,
  type AdmissionSnapshot,
  type FairCandidate,
} from '../controller/admission.js';
import { SETTING_DEFAULTS } from '../settings.js';
import { estimateAhead, explainNotQueued } from './waiting.js';
import type { WaitingJobRow } from '../../store/queries/admission.js';

const snapshot = (held: Record<string, number>, weights: Record<string, number>): AdmissionSnapshot => {
  const g = { ...SETTING_DEFAULTS, max_jobs: 1_000_000 };
  return {
    settings: g,
    clients: new Map(
      Object.entries(weights).map(([c, w]) => [c, { ...clientLimits(g, undefined), weight: w }]),
    ),
    held: new Map(Object.entries(held)),
    r: Object.values(held).reduce((a, b) => a + b, 0),
    keys: new Map(),
  };
};

/** Queues of `counts[c]` jobs per client, FIFO by a global clock interleaving the clients. */
function queues(counts: Record<string, number>): FairCandidate[] {
  const out: FairCandidate[] = [];
  let t = 0;
  const clients = Object.keys(counts);
  const max = Math.max(...Object.values(counts));
  for (let i = 0; i < max; i++)
    for (const c of clients)
      if (i < counts[c]!)
        out.push({
          id: ++t,
          client: c,
          priority: 5,
          top_of_queue: false,
          queued_at: new Date(t),
          concurrency_key: null,
          concurrency_limit: null,
        });
  return out;
}

it('estimateAhead matches the order chooseFairJobs gives when slots free one by one (within ties)', () => {
  let seed = 7;
  const rand = (n: number) => {
    seed = (seed * 1103515245 + 12345) % 2 ** 31;
    return seed % n;
  };
  for (let round = 0; round < 200; round++) {
    const names = ['a', 'b', 'c', 'd'].slice(0, 2 + rand(3));
    const counts = Object.fromEntries(names.map((c) => [c, 1 + rand(15)]));
    const held = Object.fromEntries(names.map((c) => [c, rand(4)]));
    const weights = Object.fromEntries(names.map((c) => [c, 1 + rand(4)]));
    const jobs = queues(counts);
    const order = chooseFairJobs(jobs, snapshot(held, weights));
    assert.equal(order.length, jobs.length);
    const queued = new Map(Object.entries(counts));
    const heads = new Map(names.map((c) => [c, jobs.find((j) => j.client === c)!]));
    for (const job of jobs) {
      const own = jobs.filter((j) => j.client === job.client && j.id < job.id).length;
      const actual = order.findIndex((j) => j.id === job.id);
      const estimate = estimateAhead(job, own, snapshot(held, weights), queued, heads);
      assert.ok(
        Math.abs(estimate - actual) <= names.length - 1,
        `round ${round}: job ${job.id} of ${job.client}: estimate ${estimate}, actual ${actual}`,
      );
    }
  }
});

it("estimateAhead: weights 1 and 3, nothing held — the light client's second job comes after 3 heavy ones", () => {
  const jobs = queues({ light: 3, heavy: 9 });
  const light2 = jobs.filter((j) => j.client === 'light')[1]!;
  const order = chooseFairJobs(jobs, snapshot({}, { light: 1, heavy: 3 }));
  // light, heavy, heavy, heavy, then a tie (1 ÷ 1 = 3 ÷ 3) that light's older job wins.
  assert.equal(
    order.findIndex((j) => j.id === light2.id),
    4,
  );
  // The estimate breaks that tie by the clients' first jobs (heavy's is older than light2): one off.
  const heads = new Map([
    ['light', jobs[0]!],
    ['heavy', jobs[1]!],
  ]);
  const queued = new Map([
    ['light', 3],
    ['heavy', 9],
  ]);
  assert.equal(estimateAhead(light2, 1, snapshot({}, { light: 1, heavy: 3 }), queued, heads), 5);
});

it('explainNotQueued: scheduled, pending (asked or not), paused with and without a running task; null otherwise', () => {
  const row = (over: Partial<WaitingJobRow>): WaitingJobRow => ({
    id: 1,
    client: 'c',
    priority: 5,
    top_of_queue: false,
    queued_at: null,
    concurrency_key: null,
    concurrency_limit: null,
    key_held: 0,
    queue_state: 'queued',
    run_at: new Date('2030-01-01T00:00:00Z'),
    semaphore_url: null,
    semaphore_answer: null,
    semaphore_checked_at: null,
    semaphore_next_check_at: null,
    running_tasks: [],
    own_ahead: null,
    ...over,
  });
  const scheduled = explainNotQueued(row({ queue_state: 'scheduled' }), 4);
  assert.equal(scheduled?.reason, 'scheduled_run_at');
  assert.equal(scheduled?.estimated_start_at, '2030-01-01T00:00:00.000Z');
  assert.equal(scheduled?.position, 4);
  const notAsked = explainNotQueued(
    row({ queue_state: 'pending', semaphore_url: 'https://x.test/s?token=1' }),
    1,
  );
  assert.equal(notAsked?.reason, 'semaphore_closed');
  assert.match(notAsked.detail, /https:\/\/x\.test\/s\?… has not been asked yet/);
  const asked = explainNotQueued(
    row({
      queue_state: 'pending',
      semaphore_url: 'https://x.test/s',
      semaphore_answer: 'HTTP 423',
      semaphore_checked_at: new Date('2030-01-01T00:00:05Z'),
      semaphore_next_check_at: new Date('2030-01-01T00:00:15Z'),
    }),
    1,
  );
  assert.match(
    asked!.detail,
    /answered HTTP 423 at 2030-01-01T00:00:05.000Z; next check at 2030-01-01T00:00:15.000Z/,
  );
  assert.match(
    explainNotQueued(row({ queue_state: 'paused', running_tasks: ['encode'] }), 1)!.detail,
    /encode still holds a slot/,
  );
  assert.doesNotMatch(explainNotQueued(row({ queue_state: 'paused' }), 1)!.detail, /slot/);
  assert.equal(explainNotQueued(row({ queue_state: 'completed' }), 1), null);
});
