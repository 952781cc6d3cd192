/**
 * "Why is it waiting?": the `waiting` object of `GET /jobs/<id>` and `/dashboard` rows, and of
 * `task-engine why <id>`. For a queued job the answer comes from the pure functions admission
 * itself runs (`chooseFairJobs`, `blockerOf` in src/engine/controller/admission.ts) over the same
 * reads (`readAdmissionState`, `readFairCandidates`), so it says what admission would do now:
 * start it (`starting`), or which rule holds it back. Scheduled, pending and paused jobs say what
 * they wait for; a started job whose ready task does not run is explained by
 * {@link explainReadyTasks}; running and ended jobs wait for nothing (null).
 */
import { explainReadyTasks } from './task-waiting.js';
import type { Queryable } from '../../store/executor.js';
import {
  countQueuedByClient,
  countSlotsFreedSince,
  findJobsWithReadyTasks,
  readAdmissionState,
  readFairCandidates,
  readSlotHolders,
  readWaitingJobs,
  type SlotHolderRow,
  type WaitingJobRow,
} from '../../store/queries/admission.js';
import {
  addKeyCounts,
  admissionOrder,
  blockerOf,
  candidateParams,
  chooseFairJobs,
  copySnapshot,
  limitsOf,
  snapshotOf,
  uniqueCandidates,
  type AdmissionSnapshot,
  type FairCandidate,
} from '../controller/admission.js';
import { redactUrl } from '../callbacks/redact-url.js';
import { formatTimestamp } from '../jobs/time.js';

/** The codes of `waiting.reason`. */
export type WaitingReason =
  | 'starting'
  | 'scheduled_run_at'
  | 'semaphore_closed'
  | 'max_jobs_reached'
  | 'reserved_for_priority'
  | 'client_quota'
  | 'fair_share'
  | 'concurrency_key'
  | 'paused'
  | 'no_worker_for_queue'
  | 'workers_busy'
  | 'task_too_heavy';

/** Why a job is not running: a stable code, a sentence, and where it stands. */
export interface Waiting {
  reason: WaitingReason;
  /** One or two sentences naming what it waits for (the slots' holders, the key, the semaphore's answer …). */
  detail: string;
  /** Its `position` (1-based rank in its state's list as `/dashboard` orders it), or null. */
  position: number | null;
  /** How many queued jobs admission would start before this one (queued jobs only), or null. */
  ahead: number | null;
  /** When it may start (ISO-8601), from its `run_at` or the recent rate of slots freeing; null without a basis. */
  estimated_start_at: string | null;
  /** For a started job: the ready task that does not run. */
  task?: string;
}

/** How far back the rate of slots freeing is measured, in ms (15 minutes). */
export const FREE_RATE_WINDOW_MS = 15 * 60_000;

/** Most slot holders named in a detail. */
const NAMED_HOLDERS = 10;

/** Everything `waiting` reads once, for one job or a whole dashboard list. */
export interface WaitingContext {
  now: Date;
  /** The slots now. */
  before: AdmissionSnapshot;
  /** The slots after the pass admission would run now ({@link chosen} started). */
  after: AdmissionSnapshot;
  /** The jobs that pass would start, in order. */
  chosen: FairCandidate[];
  /** The queue heads read (every client's first few). */
  candidates: FairCandidate[];
  /** Who would get the next slot to free after that pass (null: nobody may take one). */
  next: FairCandidate | null;
  /** Queued jobs per client, before the pass. */
  queued: Map<string, number>;
  /** Each client's first head, for ties in the order estimate. */
  heads: Map<string, FairCandidate>;
  /** Slot holders, by id (some of them: enough to name). */
  holders: SlotHolderRow[];
  /** Slots freed in the last {@link FREE_RATE_WINDOW_MS}, in all and per client. */
  freed: { all: number; byClient: Map<string, number> };
}

/**
 * Reads what explaining the jobs `jobs` needs, in a handful of statements independent of how many
 * jobs: the admission state and every client's first heads (as admission reads them, at least one
 * per client), queued counts per client, slot holders (by id, and of the jobs' clients and keys),
 * and the slots freed recently. Then runs the pass admission would run now ({@link chooseFairJobs}
 * on a copy) and the pick of the next slot to free. No locks: a snapshot, true as of its reads.
 */
export async function readWaitingContext(
  q: Queryable,
  jobs: readonly WaitingJobRow[],
  now: Date,
): Promise<WaitingContext> {
  const before = snapshotOf(await readAdmissionState.first(q, {}));
  const free = Math.max(0, before.settings.max_jobs - before.r);
  const rows = await readFairCandidates.rows(q, candidateParams(before, Math.min(free, 1_000), 1));
  addKeyCounts(before, rows);
  for (const j of jobs)
    if (j.concurrency_key !== null && !before.keys.has(j.concurrency_key))
      before.keys.set(j.concurrency_key, Number(j.key_held));
  const candidates = uniqueCandidates(rows);
  const after = copySnapshot(before);
  const chosen = chooseFairJobs(candidates, after);
  const taken = new Set(chosen.map((c) => c.id));
  // The next slot to free: one more slot than are held after the pass.
  const probe = copySnapshot(after);
  probe.settings = { ...probe.settings, max_jobs: probe.r + 1 };
  const next =
    chooseFairJobs(
      candidates.filter((c) => !taken.has(c.id)),
      probe,
    )[0] ?? null;
  const [queuedRows, holders, freedRows] = await Promise.all([
    countQueuedByClient.rows(q, {}),
    readSlotHolders.rows(q, {
      limit: 200,
      clients: [...new Set(jobs.map((j) => j.client))],
      keys: [...new Set(jobs.map((j) => j.concurrency_key).filter((k): k is string => k !== null))],
    }),
    countSlotsFreedSince.rows(q, { since: new Date(now.getTime() - FREE_RATE_WINDOW_MS) }),
  ]);
  const queued = new Map(queuedRows.map((r) => [r.client, Number(r.n)]));
  const heads = new Map<string, FairCandidate>();
  for (const c of [...candidates].sort(admissionOrder)) if (!heads.has(c.client)) heads.set(c.client, c);
  const byClient = new Map(freedRows.map((r) => [r.client, Number(r.n)]));
  const all = [...byClient.values()].reduce((a, b) => a + b, 0);
  return { now, before, after, chosen, candidates, next, queued, heads, holders, freed: { all, byClient } };
}

/**
 * Estimates how many queued jobs admission starts before `job`, if slots freed one at a time and
 * no job ended meanwhile: its client's jobs before it (`ownAhead`), plus, of every other client
 * `d`, the jobs it would be given first under fair share — those taken while `d`'s
 * `held / weight` stays below the client's own at `job`'s turn (a tie counts when `d`'s first job
 * comes first in admission order). Quotas, keys and reserved slots only delay, so they are left
 * out. Pure; exported for tests.
 * @param s - the slots after the pass admission would run now.
 * @param queued - queued jobs per client, not counting those that pass starts.
 */
export function estimateAhead(
  job: FairCandidate,
  ownAhead: number,
  s: AdmissionSnapshot,
  queued: ReadonlyMap<string, number>,
  heads: ReadonlyMap<string, FairCandidate>,
): number {
  const wj = limitsOf(s, job.client).weight;
  const hj = (s.held.get(job.client) ?? 0) + ownAhead;
  let ahead = ownAhead;
  for (const [client, n] of queued) {
    if (client === job.client || n <= 0) continue;
    const wd = limitsOf(s, client).weight;
    const hd = s.held.get(client) ?? 0;
    // d's i-th next job (i = 0, 1 …) comes first while (hd + i) / wd < hj / wj, i.e. i * wj < big.
    const big = hj * wd - hd * wj;
    let before = big <= 0 ? 0 : Math.ceil(big / wj);
    if (big >= 0 && big % wj === 0) {
      const head = heads.get(client);
      if (!head || admissionOrder(head, job) < 0) before++;
    }
    ahead += Math.min(n, before);
  }
  return ahead;
}

/** `n job(s)`. */
function plural(n: number, word: string): string {
  return `${n} ${word}${n === 1 ? '' : 's'}`;
}

/** Names holders: `12, 13 (paused, a task still running) and 3 more`. */
function nameHolders(holders: readonly SlotHolderRow[], total: number): string {
  const shown = holders
    .slice(0, NAMED_HOLDERS)
    .map((h) => (h.queue_state === 'paused' ? `${h.id} (paused, a task still running)` : String(h.id)));
  const more = total - shown.length;
  return shown.length === 0 ? 'none' : `${shown.join(', ')}${more > 0 ? ` and ${more} more` : ''}`;
}

function share(s: AdmissionSnapshot, client: string): string {
  return `${plural(s.held.get(client) ?? 0, 'slot')} held at weight ${limitsOf(s, client).weight}`;
}

/** `now + slots / rate` as ISO, or null without a rate. */
function etaFromRate(now: Date, slots: number, freed: number): string | null {
  if (freed <= 0) return null;
  const perMs = freed / FREE_RATE_WINDOW_MS;
  return formatTimestamp(new Date(now.getTime() + Math.round(slots / perMs)));
}

/**
 * Explains one queued job from the context: `starting` when the pass admission would run now
 * starts it; else the first rule that holds it back after that pass ({@link blockerOf}); when the
 * slots are simply all held, `fair_share` if the next slot to free would go to another client
 * further below its share, `max_jobs_reached` otherwise. Pure.
 * @param ownAhead - queued jobs of its client before it in admission order.
 */
export function explainQueued(
  job: FairCandidate,
  ownAhead: number,
  position: number | null,
  c: WaitingContext,
): Waiting {
  const index = c.chosen.findIndex((j) => j.id === job.id);
  const ownChosen = c.chosen.filter((j) => j.client === job.client && admissionOrder(j, job) < 0).length;
  const queued = new Map(c.queued);
  for (const j of c.chosen) queued.set(j.client, (queued.get(j.client) ?? 1) - 1);
  const base = { position };
  if (index >= 0)
    return {
      ...base,
      reason: 'starting',
      detail: 'a slot is free for it: admission starts it on its next pass (within milliseconds)',
      ahead: index,
      estimated_start_at: formatTimestamp(c.now),
    };
  const s = c.after;
  const ahead = c.chosen.length + estimateAhead(job, Math.max(0, ownAhead - ownChosen), s, queued, c.heads);
  const limits = limitsOf(s, job.client);
  const held = s.held.get(job.client) ?? 0;
  const M = s.settings.max_jobs;
  const blocker = blockerOf(job, s);
  const holdersOf = (pred: (h: SlotHolderRow) => boolean) => c.holders.filter(pred);
  const allHeld = `all ${M} slots (max_jobs) are held, by jobs ${nameHolders(c.holders, s.r)}`;
  const eta = etaFromRate(c.now, ahead + 1, c.freed.all);
  switch (blocker) {
    case 'concurrency_key': {
      const key = job.concurrency_key!;
      const n = s.keys.get(key) ?? 0;
      return {
        ...base,
        reason: 'concurrency_key',
        detail: `concurrency key ${JSON.stringify(key)} is held by ${plural(n, 'job')} (limit ${job.concurrency_limit ?? 1}): ${nameHolders(
          holdersOf((h) => h.concurrency_key === key),
          n,
        )}`,
        ahead,
        estimated_start_at: null,
      };
    }
    case 'client_quota':
      return {
        ...base,
        reason: 'client_quota',
        detail: `client "${job.client}" holds ${held} of its ${plural(limits.quota!, 'slot')} (its own max_jobs), by jobs ${nameHolders(
          holdersOf((h) => h.client === job.client),
          held,
        )}`,
        ahead,
        estimated_start_at: etaFromRate(
          c.now,
          Math.max(0, ownAhead - ownChosen) + 1,
          c.freed.byClient.get(job.client) ?? 0,
        ),
      };
    case 'reserved_for_priority': {
      const globalReserve = s.r >= M - s.settings.priority_slots;
      const detail = globalReserve
        ? `${s.r} of ${M} slots are held and the other ${plural(M - s.r, 'slot')} are reserved for priority jobs (priority_slots ${s.settings.priority_slots}); this job has priority ${job.priority}, and only priority <= ${limits.priorityThreshold} counts as priority`
        : `client "${job.client}" keeps ${limits.prioritySlots} of its ${limits.quota ?? M} slots for its priority jobs (priority <= ${limits.priorityThreshold}) and holds ${held}; this job has priority ${job.priority}`;
      return { ...base, reason: 'reserved_for_priority', detail, ahead, estimated_start_at: eta };
    }
    case 'max_jobs_reached': {
      const next = c.next;
      if (
        next &&
        next.id !== job.id &&
        next.client !== job.client &&
        isFurtherBelow(s, next.client, job.client)
      )
        return {
          ...base,
          reason: 'fair_share',
          detail: `${allHeld}; the next slot to free goes to client "${next.client}" (${share(s, next.client)}), further below its share than "${job.client}" (${share(s, job.client)})`,
          ahead,
          estimated_start_at: eta,
        };
      return {
        ...base,
        reason: 'max_jobs_reached',
        detail: `${allHeld}; ${next?.id === job.id ? 'this job takes the next one to free' : `${plural(ahead, 'job')} start before this one`}`,
        ahead,
        estimated_start_at: eta,
      };
    }
    case null:
      // Not among the heads read, yet it may start: the pass after the next one takes it.
      return {
        ...base,
        reason: 'starting',
        detail: 'a slot is free for it: admission starts it within a pass or two',
        ahead,
        estimated_start_at: formatTimestamp(c.now),
      };
  }
}

/** Whether client `a` holds fewer slots per unit of weight than `b` in `s`. */
function isFurtherBelow(s: AdmissionSnapshot, a: string, b: string): boolean {
  return (s.held.get(a) ?? 0) * limitsOf(s, b).weight < (s.held.get(b) ?? 0) * limitsOf(s, a).weight;
}

/** A row of {@link readWaitingJobs} as a fair candidate. */
function candidateOf(row: WaitingJobRow): FairCandidate {
  return uniqueCandidates([row])[0]!;
}

/**
 * Explains a job that is not queued (scheduled, pending, paused) from its row. Pure.
 * @returns null for a started, completed or broken job.
 */
export function explainNotQueued(row: WaitingJobRow, position: number | null): Waiting | null {
  const base = { position, ahead: null };
  switch (row.queue_state) {
    case 'scheduled':
      return {
        ...base,
        reason: 'scheduled_run_at',
        detail: `it runs at its run_at, ${formatTimestamp(row.run_at)}${row.semaphore_url ? ', then waits for its semaphore' : ''}`,
        estimated_start_at: formatTimestamp(row.run_at),
      };
    case 'pending': {
      const target = row.semaphore_url ? redactUrl(row.semaphore_url) : '(none)';
      const detail =
        row.semaphore_checked_at === null
          ? `its semaphore ${target} has not been asked yet; it is asked within seconds by the scheduler`
          : `its semaphore ${target} answered ${row.semaphore_answer ?? 'not yet'} at ${formatTimestamp(row.semaphore_checked_at)}; next check at ${formatTimestamp(row.semaphore_next_check_at)}`;
      return { ...base, reason: 'semaphore_closed', detail, estimated_start_at: null };
    }
    case 'paused': {
      const running = row.running_tasks;
      return {
        ...base,
        reason: 'paused',
        detail:
          `it was paused; PATCH {"queue_state": "queued"} resumes it` +
          (running.length > 0
            ? `; its running task${running.length === 1 ? '' : 's'} ${running.join(', ')} still hold${running.length === 1 ? 's' : ''} a slot until ${running.length === 1 ? 'it ends' : 'they end'}`
            : ''),
        estimated_start_at: null,
      };
    }
    default:
      return null;
  }
}

/**
 * The `waiting` object of job `id` (`GET /jobs/<id>`): see the module comment. Reads a few
 * statements; no locks.
 * @param position - its `position`, as the record shows it.
 * @returns null when the job runs or has ended, or does not exist.
 */
export async function explainJob(
  q: Queryable,
  id: number,
  position: number | null,
  now: Date,
): Promise<Waiting | null> {
  const row = await readWaitingJobs.first(q, { ids: [id], ranked: true });
  if (!row) return null;
  if (row.queue_state === 'started') {
    const task = await explainReadyTasks(q, id, now);
    return task
      ? {
          reason: task.reason as WaitingReason,
          detail: task.detail,
          task: task.task,
          position,
          ahead: null,
          estimated_start_at: null,
        }
      : null;
  }
  if (row.queue_state !== 'queued') return explainNotQueued(row, position);
  const c = await readWaitingContext(q, [row], now);
  return explainQueued(candidateOf(row), Number(row.own_ahead ?? 0), position, c);
}

/**
 * The `waiting` objects of many jobs at once (`/dashboard` rows): reads them with
 * {@link readWaitingJobs}, then {@link explainRows}.
 * @param rows - the jobs, with their positions; queued ones in admission order (a prefix of the
 *   queue, as `/dashboard` lists it), so each one's rank in its client's queue is its rank among
 *   the listed jobs of that client.
 * @returns id → waiting (null for a job that waits for nothing).
 */
export async function explainJobs(
  q: Queryable,
  rows: readonly { id: number; position: number }[],
  now: Date,
): Promise<Map<number, Waiting | null>> {
  if (rows.length === 0) return new Map();
  const read = await readWaitingJobs.rows(q, { ids: rows.map((r) => r.id), ranked: false });
  const byId = new Map(read.map((r) => [Number(r.id), r]));
  return explainRows(
    q,
    rows.flatMap((r) => {
      const row = byId.get(r.id);
      return row ? [{ row, position: r.position }] : [];
    }),
    now,
  );
}

/**
 * The `waiting` objects of jobs already read with the columns of {@link readWaitingJobs} (as the
 * `/dashboard` lists read them): one {@link readWaitingContext} for the queued ones; of the
 * started ones, only those with a ready task (found in one statement) get
 * {@link explainReadyTasks}' answer, the others null.
 * @param rows - the rows with their positions; queued ones in admission order (see {@link explainJobs}).
 * @returns id → waiting (null for a job that waits for nothing).
 */
export async function explainRows(
  q: Queryable,
  rows: readonly { row: WaitingJobRow; position: number }[],
  now: Date,
): Promise<Map<number, Waiting | null>> {
  const out = new Map<number, Waiting | null>();
  if (rows.length === 0) return out;
  const queuedRows = rows.map((r) => r.row).filter((r) => r.queue_state === 'queued');
  const startedIds = rows.filter((r) => r.row.queue_state === 'started').map((r) => Number(r.row.id));
  const [c, ready] = await Promise.all([
    queuedRows.length > 0 ? readWaitingContext(q, queuedRows, now) : null,
    startedIds.length > 0 ? findJobsWithReadyTasks.rows(q, { ids: startedIds }) : [],
  ]);
  const ownRank = new Map<string, number>();
  for (const { row, position } of rows) {
    const id = Number(row.id);
    if (row.queue_state === 'queued' && c) {
      const rank = ownRank.get(row.client) ?? 0;
      ownRank.set(row.client, rank + 1);
      out.set(id, explainQueued(candidateOf(row), rank, position, c));
    } else if (row.queue_state === 'started') out.set(id, null);
    else out.set(id, explainNotQueued(row, position));
  }
  // A started job waits only when a ready task of it does not run: one read per started job
  // that has a ready task (at most as many as there are slots, in practice).
  const withReady = new Set(ready.map((r) => Number(r.job_id)));
  const started = rows.filter((r) => withReady.has(Number(r.row.id)));
  const answers = await Promise.all(started.map((r) => explainReadyTasks(q, Number(r.row.id), now)));
  started.forEach((r, i) => {
    const task = answers[i];
    out.set(
      Number(r.row.id),
      task
        ? {
            reason: task.reason as WaitingReason,
            detail: task.detail,
            task: task.task,
            position: r.position,
            ahead: null,
            estimated_start_at: null,
          }
        : null,
    );
  });
  return out;
}
