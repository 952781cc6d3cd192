import assert from 'node:assert/strict';
import { fitConcurrencyKey } from '../../workflows/task-concurrency.js';
import { it } from 'node:test';
import { admissionOrder, chooseJobs, mergeCandidates } from './admission.js';

const s = (max_jobs: number, priority_slots: number, priority_threshold = 5) => ({
  max_jobs,
  priority_slots,
  priority_threshold,
});
const q = (...priorities: number[]) => priorities.map((priority, i) => ({ id: i + 1, priority }));

it('chooseJobs fills free slots in queue order up to max_jobs', () => {
  assert.deepEqual(chooseJobs(q(5, 5, 5, 5), 0, s(2, 0)), [1, 2]);
  assert.deepEqual(chooseJobs(q(5, 5), 2, s(2, 0)), []);
});

it('chooseJobs keeps priority_slots for priority jobs (max_jobs 5, priority_slots 2)', () => {
  // Three non-priority jobs already started: only priority jobs may take the last two slots.
  assert.deepEqual(chooseJobs(q(8, 2, 8, 3, 1), 3, s(5, 2)), [2, 4]);
  // Nothing started: three general slots for anything, then two for priority work only.
  assert.deepEqual(chooseJobs(q(8, 8, 8, 8, 2), 0, s(5, 2)), [1, 2, 3, 5]);
});

it('chooseJobs skips an ineligible head instead of blocking behind it', () => {
  assert.deepEqual(chooseJobs(q(8, 3), 2, s(3, 1)), [2]);
});

it('chooseJobs treats priority == priority_threshold as a priority job', () => {
  assert.deepEqual(chooseJobs(q(6, 5), 1, s(2, 1, 5)), [2]);
});

const c = (id: number, priority: number, top_of_queue = false, queued_at: number | null = 0) => ({
  id,
  priority,
  top_of_queue,
  queued_at: queued_at === null ? null : new Date(queued_at),
});

it('admissionOrder: top_of_queue, then priority, then queued_at (none last), then id', () => {
  const sorted = [
    c(1, 5, false, 10),
    c(2, 5, true, 20),
    c(3, 1, false, 30),
    c(4, 1, false, null),
    c(5, 1, false, 30),
  ]
    .sort(admissionOrder)
    .map((j) => j.id);
  assert.deepEqual(sorted, [2, 3, 5, 4, 1]);
});

it('mergeCandidates keeps each job once, in admission order', () => {
  // The general heads, then the priority heads (which overlap them).
  const merged = mergeCandidates([
    c(1, 8, false, 1),
    c(2, 3, false, 2),
    c(2, 3, false, 2),
    c(3, 2, false, 3),
  ]);
  assert.deepEqual(
    merged.map((j) => j.id),
    [3, 2, 1],
  );
});

// ---- fair share, quotas, keys ----

import {
  blockerOf,
  candidateParams,
  chooseFairJobs,
  clientLimits,
  renderConcurrency,
  type AdmissionSnapshot,
  type ClientLimits,
  type FairCandidate,
} from './admission.js';
import { SETTING_DEFAULTS } from '../settings.js';

/** A snapshot: global settings, per-client limits, slots held per client, keys held. */
const snap = (
  settings: Partial<AdmissionSnapshot['settings']>,
  held: Record<string, number> = {},
  clients: Record<string, Partial<ClientLimits>> = {},
  keys: Record<string, number> = {},
): AdmissionSnapshot => {
  const g = { ...SETTING_DEFAULTS, ...settings };
  return {
    settings: g,
    clients: new Map(
      Object.entries(clients).map(([name, l]) => [name, { ...clientLimits(g, undefined), ...l }]),
    ),
    held: new Map(Object.entries(held)),
    r: Object.values(held).reduce((a, b) => a + b, 0),
    keys: new Map(Object.entries(keys)),
  };
};
let nextId = 1;
/** A queued job of `client`; ids grow with each call, so FIFO is call order. */
const fj = (client: string, priority = 5, extra: Partial<FairCandidate> = {}): FairCandidate => {
  const id = nextId++;
  return {
    id,
    client,
    priority,
    top_of_queue: false,
    queued_at: new Date(id),
    concurrency_key: null,
    concurrency_limit: null,
    ...extra,
  };
};
const ids = (jobs: FairCandidate[]) => jobs.map((j) => j.id);

it('chooseFairJobs with one client and only global settings is exactly chooseJobs (random cases)', () => {
  let seed = 42;
  const rand = (n: number) => {
    seed = (seed * 1103515245 + 12345) % 2 ** 31;
    return seed % n;
  };
  for (let round = 0; round < 500; round++) {
    const max_jobs = 1 + rand(8);
    const priority_slots = rand(max_jobs + 1);
    const priority_threshold = 1 + rand(10);
    const r = rand(max_jobs + 2);
    const queue = Array.from({ length: rand(12) }, () =>
      fj('only', 1 + rand(10), { top_of_queue: rand(5) === 0 }),
    );
    const sorted = [...queue].sort(admissionOrder);
    const expected = chooseJobs(sorted, r, { max_jobs, priority_slots, priority_threshold });
    const got = ids(
      chooseFairJobs(queue, snap({ max_jobs, priority_slots, priority_threshold }, { only: r })),
    );
    assert.deepEqual(
      got,
      expected,
      `round ${round}: max_jobs ${max_jobs}, priority_slots ${priority_slots}, r ${r}`,
    );
  }
});

it('chooseFairJobs gives each slot to the client with the fewest slots per unit of weight', () => {
  // a (weight 1) and b (weight 3), nothing held, 4 slots: a's head is older, so a wins the tie at
  // 0 held; then b until it holds 3 (3/3 = 1/1), then the tie goes to the older head again.
  const a = [fj('a'), fj('a'), fj('a')];
  const b = [fj('b'), fj('b'), fj('b'), fj('b')];
  const s = snap({ max_jobs: 4 }, {}, { b: { weight: 3 } });
  const chosen = chooseFairJobs([...b, ...a], s);
  assert.deepEqual(ids(chosen), [a[0]!.id, b[0]!.id, b[1]!.id, b[2]!.id]);
  assert.equal(s.held.get('a'), 1);
  assert.equal(s.held.get('b'), 3);
  assert.equal(s.r, 4);
});

it("chooseFairJobs: a backlog of one client never starves another client's single job", () => {
  const backlog = Array.from({ length: 50 }, () => fj('big'));
  const single = fj('small');
  // big already holds 3 of 4 slots; the one free slot goes to small, though big's jobs are older.
  const chosen = chooseFairJobs([...backlog, single], snap({ max_jobs: 4 }, { big: 3 }));
  assert.deepEqual(ids(chosen), [single.id]);
});

it("chooseFairJobs: priority and FIFO decide within a client; top_of_queue jumps its own client's queue only", () => {
  const a1 = fj('a', 5);
  const a2 = fj('a', 2);
  const b1 = fj('b', 5, { top_of_queue: true });
  // a holds 1, b holds 1: equal shares, tie broken by admission order of the heads (b's top_of_queue first).
  const chosen = chooseFairJobs([a1, a2, b1], snap({ max_jobs: 5 }, { a: 1, b: 1 }));
  assert.deepEqual(ids(chosen), [b1.id, a2.id, a1.id]);
  // b further above its share: its top_of_queue job does not take the slot from a.
  const again = chooseFairJobs([a1, b1], snap({ max_jobs: 3 }, { a: 0, b: 2 }));
  assert.deepEqual(ids(again), [a1.id]);
});

it('chooseFairJobs never takes a client past its quota, and gives its share to others', () => {
  const a = Array.from({ length: 5 }, () => fj('a'));
  const b = Array.from({ length: 5 }, () => fj('b'));
  const s = snap({ max_jobs: 6 }, { a: 1 }, { a: { quota: 2 } });
  const chosen = chooseFairJobs([...a, ...b], s);
  assert.equal(chosen.filter((j) => j.client === 'a').length, 1);
  assert.equal(s.held.get('a'), 2);
  assert.equal(s.held.get('b'), 4, 'the slots a may not take go to b');
  assert.equal(blockerOf(a[4]!, s), 'client_quota');
});

it('chooseFairJobs: at most `limit` jobs hold a concurrency key, counting the holders already started', () => {
  const key = { concurrency_key: 'content-1', concurrency_limit: 1 };
  const k1 = fj('a', 5, key);
  const k2 = fj('a', 5, key);
  const other = fj('a');
  assert.deepEqual(ids(chooseFairJobs([k1, k2, other], snap({ max_jobs: 5 }))), [k1.id, other.id]);
  // A holder already started: neither starts; the job behind them does.
  const s = snap({ max_jobs: 5 }, { a: 1 }, {}, { 'content-1': 1 });
  assert.deepEqual(ids(chooseFairJobs([k1, k2, other], s)), [other.id]);
  assert.equal(blockerOf(k2, s), 'concurrency_key');
  // limit 2 across clients.
  const two = { concurrency_key: 'shared', concurrency_limit: 2 };
  const x = [fj('a', 5, two), fj('b', 5, two), fj('a', 5, two)];
  assert.deepEqual(ids(chooseFairJobs(x, snap({ max_jobs: 5 }))), [x[0]!.id, x[1]!.id]);
});

it('chooseFairJobs keeps reserved slots for priority jobs, whichever client is below its share', () => {
  // max_jobs 4, priority_slots 2, 2 held by b: only priority jobs may start; a's head is not one.
  const aLow = fj('a', 8);
  const bHigh = fj('b', 2);
  const s = snap({ max_jobs: 4, priority_slots: 2 }, { b: 2 });
  assert.deepEqual(ids(chooseFairJobs([aLow, bHigh], s)), [bHigh.id]);
  assert.equal(blockerOf(aLow, s), 'reserved_for_priority');
  // A client's own priority_slots: it keeps 1 of its quota 2 for its priority jobs.
  const own = snap({ max_jobs: 10 }, { c: 1 }, { c: { quota: 2, prioritySlots: 1 } });
  const cLow = fj('c', 8);
  const cHigh = fj('c', 3);
  assert.deepEqual(ids(chooseFairJobs([cLow, cHigh], own)), [cHigh.id]);
  // A client's own priority_threshold decides which of its jobs are priority jobs.
  const t = snap({ max_jobs: 2, priority_slots: 1 }, { z: 1 }, { y: { priorityThreshold: 8 } });
  const y8 = fj('y', 8);
  const z8 = fj('z', 8);
  assert.deepEqual(ids(chooseFairJobs([z8, y8], t)), [y8.id]);
});

it('blockerOf reports key, then quota, then max_jobs, then reserved slots', () => {
  const j = fj('a', 8, { concurrency_key: 'k', concurrency_limit: 1 });
  assert.equal(
    blockerOf(j, snap({ max_jobs: 1 }, { a: 1 }, { a: { quota: 1 } }, { k: 1 })),
    'concurrency_key',
  );
  assert.equal(blockerOf(j, snap({ max_jobs: 1 }, { a: 1 }, { a: { quota: 1 } })), 'client_quota');
  assert.equal(blockerOf(j, snap({ max_jobs: 1 }, { b: 1 })), 'max_jobs_reached');
  assert.equal(blockerOf(j, snap({ max_jobs: 2, priority_slots: 1 }, { b: 1 })), 'reserved_for_priority');
  assert.equal(blockerOf(j, snap({ max_jobs: 2 }, { b: 1 })), null);
});

it("candidateParams lowers each client's read to what its quota leaves and reads only priority heads past its general slots", () => {
  const s = snap(
    { max_jobs: 10, priority_slots: 2 },
    { a: 3, b: 1 },
    { a: { quota: 4 }, b: { prioritySlots: 1, quota: 2 } },
  );
  const p = candidateParams(s, 6);
  const at = (c: string) => p.clients.indexOf(c);
  assert.equal(p.limits[at('a')], 1);
  assert.equal(p.limits[at('b')], 1);
  assert.equal(p.generalOk[at('a')], true);
  assert.equal(p.generalOk[at('b')], false, 'b holds 1 = quota 2 - its priority_slots 1');
  assert.equal(p.limit, 6);
  assert.equal(p.generalFree, true);
});

it('renderConcurrency renders the key by the rule of task keys: empty is the shared key "", long ones hashed', () => {
  const def = {
    name: 'w',
    parameters: {},
    tasks: [],
    concurrency: { key: '{{ job.client }}:{{ parameters.content_id }}', limit: 2 },
  };
  const job = { client: 'acme', workflow: 'w', priority: 5, resolvedParameters: { content_id: 42 } };
  assert.deepEqual(renderConcurrency(def, job), { key: 'acme:42', limit: 2 });
  const whole = { ...def, concurrency: { key: '{{ parameters.content_id }}', limit: 1 } };
  // A missing value does not lift the limit: such jobs share the key "".
  assert.deepEqual(renderConcurrency(whole, { ...job, resolvedParameters: {} }), { key: '', limit: 1 });
  assert.equal(renderConcurrency({ ...def, concurrency: undefined }, job), null);
  const long = renderConcurrency(whole, { ...job, resolvedParameters: { content_id: 'x'.repeat(2000) } });
  assert.equal(long?.key, fitConcurrencyKey('x'.repeat(2000)));
  assert.match(long.key, /^x{200}#[0-9a-f]{32}$/);
  const unicode = renderConcurrency(whole, { ...job, resolvedParameters: { content_id: 'ключ-😀' } });
  assert.equal(unicode?.key, 'ключ-😀');
});
