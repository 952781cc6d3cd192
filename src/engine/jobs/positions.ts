/**
 * The `position` of listed jobs without ranking their whole state: each job's position is 1 plus
 * the number of jobs of its state that come before it in that state's list order (queued jobs in
 * admission order: `top_of_queue` first, then priority ascending, then `queued_at` ascending with
 * no time last, then id; every other state by id).
 *
 * The listed jobs of one state are sorted in that order, and the stretch of the list before each
 * of them is cut into the segments between consecutive listed jobs: the first job's position is 1
 * plus the jobs before it, each next one's the previous position plus the jobs from the previous
 * listed job (included) to it (excluded). Each segment is tiled by a few boxes (at most 7), each
 * one contiguous range of an index in list order (`jobs_admission_idx` for queued jobs,
 * `jobs_state_id_idx` for the others), counted by an index-only range scan
 * (`countJobsInBoxes`). So one page costs one read of the page's keys, and one statement that
 * visits each index entry up to the deepest listed job once: O(depth of the deepest listed job)
 * index entries (tens of nanoseconds each) plus O(listed jobs) index descents, independent of the
 * number of jobs after it and of the other states.
 */
import type { Queryable } from '../../store/executor.js';
import { BOX_KIND, countJobsInBoxes, type CountBoxesParams, readListKeys } from '../../store/queries/jobs.js';

/** A job's place in its state's list order; `q` is `queued_at` as UTC text with microseconds, or null. */
export interface ListKey {
  id: number;
  state: string;
  top: boolean;
  priority: number;
  q: string | null;
}

/** Smallest and largest bounds for the integer ranges of a box. */
const INT_MIN = -2_147_483_648;
const INT_MAX = 2_147_483_647;
const ID_MIN = 0;
const ID_MAX = Number.MAX_SAFE_INTEGER;

/** One box of `countJobsInBoxes` (see `BOX_KIND`). */
export interface Box {
  kind: number;
  state: string;
  t: boolean;
  plo: number;
  phi: number;
  qlo: string | null;
  qhi: string | null;
  idlo: number;
  idhi: number;
}

/** Compares two `queued_at` texts, a missing time last. */
function compareQueuedAt(a: string | null, b: string | null): number {
  if (a === b) return 0;
  if (a === null) return 1;
  if (b === null) return -1;
  return a < b ? -1 : 1;
}

/**
 * Compares two keys of one state in its list order (queued: admission order; others: by id).
 * Pure; exported for tests.
 */
export function compareListKeys(a: ListKey, b: ListKey): number {
  if (a.state === 'queued') {
    if (a.top !== b.top) return a.top ? -1 : 1;
    if (a.priority !== b.priority) return a.priority - b.priority;
    const q = compareQueuedAt(a.q, b.q);
    if (q !== 0) return q;
  }
  return a.id - b.id;
}

const base = (state: string): Box => ({
  kind: BOX_KIND.STATE_ID,
  state,
  t: false,
  plo: 0,
  phi: 0,
  qlo: null,
  qhi: null,
  idlo: ID_MIN,
  idhi: ID_MAX,
});

/** Queued jobs with `top_of_queue = t` and `lo <= priority < hi`. */
function priorityBox(t: boolean, lo: number, hi: number): Box[] {
  return lo < hi ? [{ ...base('queued'), kind: BOX_KIND.PRIORITY, t, plo: lo, phi: hi }] : [];
}

/** Queued jobs with `top_of_queue = t`, `priority = p` and a `queued_at` strictly between the bounds. */
function queuedAtBox(t: boolean, p: number, lo: string, hi: string): Box[] {
  return lo === hi ? [] : [{ ...base('queued'), kind: BOX_KIND.QUEUED_AT, t, plo: p, qlo: lo, qhi: hi }];
}

/** Queued jobs with `top_of_queue = t`, `priority = p`, `queued_at = q` (or NULL) and `lo <= id < hi`. */
function idBox(t: boolean, p: number, q: string | null, lo: number, hi: number): Box[] {
  if (lo >= hi) return [];
  const kind = q === null ? BOX_KIND.ID_AT_NULL : BOX_KIND.ID_AT;
  return [{ ...base('queued'), kind, t, plo: p, qlo: q, idlo: lo, idhi: hi }];
}

/** Within one (`top_of_queue`, priority): the jobs before `k` (by `queued_at`, then id). */
function beforeWithinPriority(k: ListKey): Box[] {
  if (k.q === null)
    return [
      ...queuedAtBox(k.top, k.priority, '-infinity', 'infinity'),
      ...idBox(k.top, k.priority, null, ID_MIN, k.id),
    ];
  return [
    ...queuedAtBox(k.top, k.priority, '-infinity', k.q),
    ...idBox(k.top, k.priority, k.q, ID_MIN, k.id),
  ];
}

/** Within one (`top_of_queue`, priority): `k` and the jobs after it. */
function fromWithinPriority(k: ListKey): Box[] {
  if (k.q === null) return idBox(k.top, k.priority, null, k.id, ID_MAX);
  return [
    ...idBox(k.top, k.priority, k.q, k.id, ID_MAX),
    ...queuedAtBox(k.top, k.priority, k.q, 'infinity'),
    { ...base('queued'), kind: BOX_KIND.QUEUED_AT_NULL, t: k.top, plo: k.priority },
  ];
}

/**
 * Boxes that tile exactly the jobs of `to.state` from `from` (included; null: the start of the
 * list) to `to` (excluded), `from` before `to` in list order. Pure; exported for tests.
 */
export function segmentBoxes(from: ListKey | null, to: ListKey): Box[] {
  if (to.state !== 'queued')
    return [{ ...base(to.state), idlo: from === null ? ID_MIN : from.id, idhi: to.id }];
  if (from === null)
    return [
      ...(to.top ? [] : priorityBox(true, INT_MIN, INT_MAX)),
      ...priorityBox(to.top, INT_MIN, to.priority),
      ...beforeWithinPriority(to),
    ];
  if (from.top !== to.top)
    // from is a top_of_queue job, to is not.
    return [
      ...fromWithinPriority(from),
      ...priorityBox(true, from.priority + 1, INT_MAX),
      ...priorityBox(false, INT_MIN, to.priority),
      ...beforeWithinPriority(to),
    ];
  if (from.priority !== to.priority)
    return [
      ...fromWithinPriority(from),
      ...priorityBox(to.top, from.priority + 1, to.priority),
      ...beforeWithinPriority(to),
    ];
  const t = to.top;
  const p = to.priority;
  if (compareQueuedAt(from.q, to.q) !== 0)
    // from.q is a time (a missing one sorts last), before to.q.
    return [
      ...idBox(t, p, from.q, from.id, ID_MAX),
      ...queuedAtBox(t, p, from.q!, to.q ?? 'infinity'),
      ...idBox(t, p, to.q, ID_MIN, to.id),
    ];
  return idBox(t, p, to.q, from.id, to.id);
}

/**
 * Positions of `keys` (jobs of live states) in their states' lists, from one `countJobsInBoxes`
 * statement (see the module comment for the cost).
 * @returns id → 1-based position.
 */
export async function positionsOfKeys(q: Queryable, keys: readonly ListKey[]): Promise<Map<number, number>> {
  const out = new Map<number, number>();
  if (keys.length === 0) return out;
  const byState = new Map<string, ListKey[]>();
  for (const k of keys) byState.set(k.state, [...(byState.get(k.state) ?? []), k]);
  const p: CountBoxesParams = {
    tags: [],
    kinds: [],
    states: [],
    tops: [],
    plos: [],
    phis: [],
    qlos: [],
    qhis: [],
    idlos: [],
    idhis: [],
  };
  // Segment i of the whole answer: tag i, the jobs between sorted[i - 1] and sorted[i].
  const segments: ListKey[][] = [];
  for (const list of byState.values()) {
    const sorted = [...list].sort(compareListKeys);
    segments.push(sorted);
    sorted.forEach((k, i) => {
      const tag = out.size;
      out.set(k.id, tag);
      for (const b of segmentBoxes(i === 0 ? null : sorted[i - 1]!, k)) {
        p.tags.push(tag);
        p.kinds.push(b.kind);
        p.states.push(b.state);
        p.tops.push(b.t);
        p.plos.push(b.plo);
        p.phis.push(b.phi);
        p.qlos.push(b.qlo);
        p.qhis.push(b.qhi);
        p.idlos.push(b.idlo);
        p.idhis.push(b.idhi);
      }
    });
  }
  const counts = new Map<number, number>();
  if (p.tags.length > 0)
    for (const r of await countJobsInBoxes.rows(q, p)) counts.set(Number(r.tag), Number(r.n));
  for (const sorted of segments) {
    let position = 1;
    for (const k of sorted) {
      position += counts.get(out.get(k.id)!) ?? 0;
      out.set(k.id, position);
    }
  }
  return out;
}

/**
 * Reads the list keys of jobs `ids` (at microsecond precision) and computes their positions in
 * the lists of `stateOf(id)` (the state the caller listed them in; a job whose row is gone is
 * left out).
 * @returns id → 1-based position.
 */
export async function computeListPositions(
  q: Queryable,
  jobs: ReadonlyArray<{ id: number; queue_state: string }>,
): Promise<Map<number, number>> {
  if (jobs.length === 0) return new Map();
  const state = new Map(jobs.map((j) => [Number(j.id), j.queue_state]));
  const rows = await readListKeys.rows(q, { ids: [...state.keys()] });
  const keys: ListKey[] = rows.map((r) => ({
    id: Number(r.id),
    state: state.get(Number(r.id)) ?? r.queue_state,
    top: r.top_of_queue,
    priority: r.priority,
    q: r.queued_at_us,
  }));
  return positionsOfKeys(q, keys);
}
