/**
 * Admission (SPEC section 5.4): moving queued jobs into execution slots, with slots reserved for
 * priority work, each client's quota and fair share, and job concurrency keys, correct however
 * many engine processes run it at once.
 *
 * The choice is pure ({@link chooseFairJobs} over {@link blockerOf}); `GET /jobs/<id>`'s
 * `waiting` (src/engine/status/waiting.ts) runs the very same functions over the same reads to
 * say why a job waits.
 */
import { countAdmissions } from '../metrics/record.js';
import { LOCK_KEYS } from '../../store/executor.js';
import {
  type AdmissionCandidateRow,
  type FairCandidateRow,
  lockAdmission,
  readAdmissionState,
  readFairCandidates,
  startAdmittedJobs,
} from '../../store/queries/admission.js';
import { renderConcurrencyKey } from '../../workflows/task-concurrency.js';
import type { WorkflowDefinition } from '../../workflows/types.js';
import type { EngineContext } from '../context.js';
import { jobEdge } from '../jobs/transitions.js';
import { CHANNELS, notify } from '../signals.js';
import {
  parseClientSettings,
  parseSettings,
  type ClientOverrides,
  type EngineSettings,
} from '../settings.js';
import { advanceLockedJobs } from './advance.js';

/** Most jobs one admission pass starts; a full pass is followed by another at once. */
export const MAX_JOBS_PER_PASS = 1_000;

/** Most candidate reads in one pass (a read is repeated only when concurrency keys held it back). */
const MAX_ROUNDS_PER_PASS = 4;

/** The edge admission takes. */
const ADMIT = jobEdge('queued', 'started', 'admit');

/**
 * Chooses which queued jobs may start now, given `r` slots taken, for one client with the global
 * settings only. Pure; exported for tests (the single-client case of {@link chooseFairJobs},
 * which admission runs).
 *
 * A job is a priority job when `priority <= priority_threshold`. While `r < max_jobs -
 * priority_slots` any job may start; beyond that only priority jobs may, up to `max_jobs`. The
 * head of the queue is skipped when it may not start (it never blocks the jobs behind it).
 * @param queue - queued jobs in admission order (top_of_queue desc, priority, queued_at, id).
 * @returns the ids to start, in admission order.
 */
export function chooseJobs(
  queue: readonly { id: number; priority: number }[],
  r: number,
  settings: Pick<EngineSettings, 'max_jobs' | 'priority_slots' | 'priority_threshold'>,
): number[] {
  const general = settings.max_jobs - settings.priority_slots;
  const chosen: number[] = [];
  let taken = r;
  for (const job of queue) {
    if (taken >= settings.max_jobs) break;
    const priorityJob = job.priority <= settings.priority_threshold;
    if (priorityJob || taken < general) {
      chosen.push(job.id);
      taken++;
    }
  }
  return chosen;
}

/** What admission knows of one client: its own settings resolved against the global ones. */
export interface ClientLimits {
  /** Its own `max_jobs`: it never holds more slots. Null: only the global `max_jobs` bounds it. */
  quota: number | null;
  /** Its share under fair share (its own `weight`, else the global one, default 1). */
  weight: number;
  /** Its own `priority_slots`: slots of its quota (or of `max_jobs`) kept for its priority jobs; 0 when it has none. */
  prioritySlots: number;
  /** Its jobs are priority jobs at `priority <=` this (its own `priority_threshold`, else the global one). */
  priorityThreshold: number;
}

/** Resolves a client's limits from the global settings and its own values. Pure. */
export function clientLimits(global: EngineSettings, own: ClientOverrides | undefined): ClientLimits {
  return {
    quota: own?.max_jobs ?? null,
    weight: Math.max(1, own?.weight ?? global.weight),
    prioritySlots: own?.priority_slots ?? 0,
    priorityThreshold: own?.priority_threshold ?? global.priority_threshold,
  };
}

/** The slots as admission sees them: settings, who holds what. Counts are changed by a choice. */
export interface AdmissionSnapshot {
  settings: Pick<EngineSettings, 'max_jobs' | 'priority_slots' | 'priority_threshold' | 'weight'>;
  /** Each client's limits; a client not in the map has the global ones (see {@link limitsOf}). */
  clients: ReadonlyMap<string, ClientLimits>;
  /** Slots held per client: started jobs, plus paused jobs that still have a task running. */
  held: Map<string, number>;
  /** Slots held in all. */
  r: number;
  /** Jobs holding each concurrency key (held exactly like slots). */
  keys: Map<string, number>;
}

/** A queued job as the fair choice sees it. */
export interface FairCandidate {
  id: number;
  client: string;
  priority: number;
  top_of_queue: boolean;
  queued_at: Date | null;
  concurrency_key: string | null;
  concurrency_limit: number | null;
}

/** Why a queued job may not start now (the `waiting.reason` codes that admission decides). */
export type Blocker = 'concurrency_key' | 'client_quota' | 'max_jobs_reached' | 'reserved_for_priority';

/** The limits of `client` in `s`: its own, else the global settings with no quota. */
export function limitsOf(s: AdmissionSnapshot, client: string): ClientLimits {
  return (
    s.clients.get(client) ?? {
      quota: null,
      weight: Math.max(1, s.settings.weight),
      prioritySlots: 0,
      priorityThreshold: s.settings.priority_threshold,
    }
  );
}

/** Whether `job` is a priority job for its client's threshold. */
export function isPriorityJob(
  s: AdmissionSnapshot,
  job: Pick<FairCandidate, 'client' | 'priority'>,
): boolean {
  return job.priority <= limitsOf(s, job.client).priorityThreshold;
}

/**
 * Why `job` may not start in state `s`, or null when it may. Pure. The rules, in the order they
 * are reported:
 * 1. `concurrency_key`: as many jobs as its `concurrency_limit` hold its key;
 * 2. `client_quota`: its client holds its own `max_jobs` slots;
 * 3. `max_jobs_reached`: `R >= max_jobs`;
 * 4. `reserved_for_priority`: it is not a priority job and either `R >= max_jobs - priority_slots`
 *    or its client holds `(its max_jobs, else max_jobs) - its own priority_slots` slots.
 */
export function blockerOf(job: FairCandidate, s: AdmissionSnapshot): Blocker | null {
  const limits = limitsOf(s, job.client);
  const held = s.held.get(job.client) ?? 0;
  if (job.concurrency_key !== null && (s.keys.get(job.concurrency_key) ?? 0) >= (job.concurrency_limit ?? 1))
    return 'concurrency_key';
  if (limits.quota !== null && held >= limits.quota) return 'client_quota';
  if (s.r >= s.settings.max_jobs) return 'max_jobs_reached';
  if (job.priority > limits.priorityThreshold) {
    if (s.r >= s.settings.max_jobs - s.settings.priority_slots) return 'reserved_for_priority';
    if (held >= (limits.quota ?? s.settings.max_jobs) - limits.prioritySlots) return 'reserved_for_priority';
  }
  return null;
}

/** Copies a snapshot (its counts), so a choice can be tried without changing the original. */
export function copySnapshot(s: AdmissionSnapshot): AdmissionSnapshot {
  return { ...s, held: new Map(s.held), keys: new Map(s.keys) };
}

/** Counts `job` as holding a slot (and its key) in `s`. */
function take(s: AdmissionSnapshot, job: FairCandidate): void {
  s.held.set(job.client, (s.held.get(job.client) ?? 0) + 1);
  s.r++;
  if (job.concurrency_key !== null)
    s.keys.set(job.concurrency_key, (s.keys.get(job.concurrency_key) ?? 0) + 1);
}

/**
 * Whether client `a` (holding `ha` slots at weight `wa`) is further below its weighted share than
 * `b`: `ha / wa < hb / wb`, compared without division. Zero when equal.
 */
function compareShare(ha: number, wa: number, hb: number, wb: number): number {
  return ha * wb - hb * wa;
}

/**
 * Chooses which queued jobs start now, one free slot at a time. Pure; exported for tests and for
 * `waiting`. Each slot goes to the client **furthest below its weighted share** — the least slots
 * held per unit of weight (`held / weight`) — among the clients that have a job that may start
 * ({@link blockerOf} is null); a tie goes to the job first in admission order
 * ({@link admissionOrder}). Within a client, its first job that may start, in admission order
 * (top_of_queue, priority, FIFO); one that may not is skipped, never blocking the ones behind it.
 * With one client this is exactly {@link chooseJobs}.
 * @param candidates - queued jobs, any order (sorted here), each once.
 * @param s - the state before the choice; changed in place to the state after it (counts only).
 * @returns the jobs to start, in the order they were given their slots.
 */
export function chooseFairJobs(candidates: readonly FairCandidate[], s: AdmissionSnapshot): FairCandidate[] {
  const queues = new Map<string, FairCandidate[]>();
  for (const job of [...candidates].sort(admissionOrder)) {
    let q = queues.get(job.client);
    if (!q) queues.set(job.client, (q = []));
    q.push(job);
  }
  const chosen: FairCandidate[] = [];
  while (s.r < s.settings.max_jobs && queues.size > 0) {
    let best: { client: string; job: FairCandidate; held: number; weight: number } | null = null;
    for (const [client, q] of queues) {
      // A job that may not start now cannot later in the same choice (counts only grow): drop it.
      let index = 0;
      while (index < q.length && blockerOf(q[index]!, s) !== null) index++;
      if (index > 0) q.splice(0, index);
      if (q.length === 0) {
        queues.delete(client);
        continue;
      }
      const job = q[0]!;
      const held = s.held.get(client) ?? 0;
      const weight = limitsOf(s, client).weight;
      const cmp = best === null ? -1 : compareShare(held, weight, best.held, best.weight);
      if (cmp < 0 || (cmp === 0 && admissionOrder(job, best!.job) < 0)) best = { client, job, held, weight };
    }
    if (best === null) break;
    queues.get(best.client)!.shift();
    take(s, best.job);
    chosen.push(best.job);
  }
  return chosen;
}

/**
 * The per-client parameters of the candidate read for a pass with `free` slots: each client's
 * limit (`free`, lowered to what its quota leaves; 0 reads nothing), priority threshold, whether
 * it may take a general (non-reserved) slot, and whether its priority heads must be read too
 * (only when some slot is reserved for priority work: else its first heads are the answer). Clients without own settings or slots get
 * the statement's defaults. Pure; exported for `waiting`, which reads at least one head of every
 * client (`minimum` 1) to see who would come next.
 */
export function candidateParams(
  s: AdmissionSnapshot,
  free: number,
  minimum = 0,
): {
  clients: string[];
  limits: number[];
  thresholds: number[];
  generalOk: boolean[];
  priorityHalf: boolean[];
  limit: number;
  threshold: number;
  generalFree: boolean;
  priorityHalfDefault: boolean;
} {
  const generalFree = s.r < s.settings.max_jobs - s.settings.priority_slots;
  // With no slot reserved, every job may take any slot: the general heads are the whole answer.
  const reserved = s.settings.priority_slots > 0;
  const out = {
    clients: [] as string[],
    limits: [] as number[],
    thresholds: [] as number[],
    generalOk: [] as boolean[],
    priorityHalf: [] as boolean[],
    limit: Math.max(free, minimum),
    threshold: s.settings.priority_threshold,
    generalFree: generalFree || minimum > 0,
    priorityHalfDefault: reserved || !generalFree,
  };
  for (const client of new Set([...s.clients.keys(), ...s.held.keys()])) {
    const limits = limitsOf(s, client);
    const held = s.held.get(client) ?? 0;
    const room = limits.quota === null ? free : Math.min(free, limits.quota - held);
    out.clients.push(client);
    out.limits.push(Math.max(room, minimum));
    out.thresholds.push(limits.priorityThreshold);
    const generalOk = generalFree && held < (limits.quota ?? s.settings.max_jobs) - limits.prioritySlots;
    out.generalOk.push(minimum > 0 || generalOk);
    out.priorityHalf.push(reserved || limits.prioritySlots > 0 || !generalOk);
  }
  return out;
}

/** Builds the snapshot from the rows of `readAdmissionState` (and the key counts of candidates). */
export function snapshotOf(
  state: {
    settings: Record<string, string> | null;
    client_settings: { client: string; name: string; value: string }[] | null;
    held: Record<string, number | string> | null;
  } | null,
): AdmissionSnapshot {
  const { known } = parseSettings(
    Object.entries(state?.settings ?? {}).map(([name, value]) => ({ name, value })),
  );
  const clients = new Map<string, ClientLimits>();
  for (const [client, own] of parseClientSettings(state?.client_settings ?? []))
    clients.set(client, clientLimits(known, own));
  const held = new Map<string, number>();
  let r = 0;
  for (const [client, n] of Object.entries(state?.held ?? {})) {
    held.set(client, Number(n));
    r += Number(n);
  }
  return { settings: known, clients, held, r, keys: new Map() };
}

/** Records the key counts the candidate rows carry into `s.keys`. */
export function addKeyCounts(s: AdmissionSnapshot, rows: readonly FairCandidateRow[]): void {
  for (const row of rows)
    if (row.concurrency_key !== null && !s.keys.has(row.concurrency_key))
      s.keys.set(row.concurrency_key, Number(row.key_held));
}

/** Each candidate once (a job may come back from both halves of the read), as a {@link FairCandidate}. */
export function uniqueCandidates(rows: readonly FairCandidateRow[]): FairCandidate[] {
  const seen = new Set<number>();
  const out: FairCandidate[] = [];
  for (const r of rows) {
    const id = Number(r.id);
    if (seen.has(id)) continue;
    seen.add(id);
    out.push({
      id,
      client: r.client,
      priority: r.priority,
      top_of_queue: r.top_of_queue,
      queued_at: r.queued_at,
      concurrency_key: r.concurrency_key,
      concurrency_limit: r.concurrency_limit === null ? null : Number(r.concurrency_limit),
    });
  }
  return out;
}

/**
 * Runs one admission pass (SPEC 5.4 with fair share, quotas and keys) and returns how many jobs
 * it started.
 *
 * One transaction: `pg_advisory_xact_lock(LOCK_KEYS.admission)` serialises admission across every
 * engine process (so `R` can never exceed `max_jobs`, a client its quota, or a key its limit), the
 * settings and slots are read fresh (`readAdmissionState`), the queue heads of each client read
 * (`readFairCandidates`), the jobs picked by {@link chooseFairJobs}, each moved
 * `queued → started` (edge `admit`, its `from` in the statement's `WHERE`, so a job paused or
 * broken meanwhile is left alone), logged ("job started", progname controller), and advanced (its
 * first tasks made ready, workers notified on commit). When concurrency keys held back a
 * client's whole read while slots remain, the heads are read again (the started jobs now count
 * as holders), a few times at most, and then another pass is asked for (a notification at commit).
 * @throws the driver's error (nothing is changed then).
 */
export async function admitJobs(ctx: EngineContext): Promise<number> {
  return ctx.db.transaction(async (tx) => {
    await lockAdmission.run(tx, { key: LOCK_KEYS.admission });
    // Settings, per-client settings and slots held in one round trip (after the lock, so they
    // count every earlier admission).
    const s = snapshotOf(await readAdmissionState.first(tx, {}));
    let startedCount = 0;
    for (let round = 0; round < MAX_ROUNDS_PER_PASS; round++) {
      // At most MAX_JOBS_PER_PASS per pass (a huge max_jobs must not become a huge LIMIT); the
      // controller runs another pass at once when a pass was full.
      const free = Math.min(s.settings.max_jobs - s.r, MAX_JOBS_PER_PASS - startedCount);
      if (free <= 0) break;
      const params = candidateParams(s, free);
      const rows = await readFairCandidates.rows(tx, params);
      addKeyCounts(s, rows);
      const candidates = uniqueCandidates(rows);
      const chosen = chooseFairJobs(candidates, s);
      if (chosen.length === 0) break;
      const ids = chosen.map((j) => j.id);
      // Start them and log "job started" in one statement; the rows come back locked.
      const startedJobs = await startAdmittedJobs.rows(tx, { ids, from: ADMIT.from, now: ctx.clock.now() });
      // Advance in admission order so the first-admitted job's tasks are made ready first.
      const order = new Map(ids.map((id, i) => [id, i]));
      startedJobs.sort((a, b) => order.get(a.id)! - order.get(b.id)!);
      await advanceLockedJobs(tx, ctx, startedJobs);
      if (ctx.metrics) {
        const started = new Set(startedJobs.map((j) => j.id));
        countAdmissions(
          ctx.metrics,
          chosen.filter((j) => started.has(j.id)),
          ctx.clock.now(),
        );
      }
      startedCount += startedJobs.length;
      // Read again only when slots remain and a job read was held back by a concurrency key that
      // jobs started in this round now fill: the read skips full keys, so the next one looks
      // past them to the rest of the queue.
      if (startedJobs.length < chosen.length || !heldBackByKeys(candidates, chosen, s)) break;
      // Still held back after the last round: ask for another pass once this one has committed.
      if (round === MAX_ROUNDS_PER_PASS - 1) await notify(tx, CHANNELS.admission, 'keys held back');
    }
    return startedCount;
  });
}

/** Whether slots remain in `s` and a candidate not chosen may not start because of its concurrency key. */
function heldBackByKeys(
  candidates: readonly FairCandidate[],
  chosen: readonly FairCandidate[],
  s: AdmissionSnapshot,
): boolean {
  if (s.r >= s.settings.max_jobs) return false;
  const taken = new Set(chosen.map((j) => j.id));
  return candidates.some((j) => !taken.has(j.id) && blockerOf(j, s) === 'concurrency_key');
}

/** Merges candidate lists into one, each job once, in admission order. Pure; exported for tests. */
export function mergeCandidates(rows: readonly AdmissionCandidateRow[]): AdmissionCandidateRow[] {
  const seen = new Set<number>();
  const all = rows.filter((j) => !seen.has(j.id) && seen.add(j.id));
  return all.sort(admissionOrder);
}

/**
 * The admission order of SPEC 5.4 as a comparator: top_of_queue first, then priority (lower
 * first), then FIFO by queued_at (a job without one last), then id. Pure; exported for tests.
 */
export function admissionOrder(a: AdmissionCandidateRow, b: AdmissionCandidateRow): number {
  if (a.top_of_queue !== b.top_of_queue) return a.top_of_queue ? -1 : 1;
  if (a.priority !== b.priority) return a.priority - b.priority;
  const ta = a.queued_at ? a.queued_at.getTime() : Infinity;
  const tb = b.queued_at ? b.queued_at.getTime() : Infinity;
  if (ta !== tb) return ta < tb ? -1 : 1;
  return a.id - b.id;
}

/**
 * Renders a workflow's job concurrency key for a new job (at submission, and again when a retry
 * changes the parameters): the `concurrency.key` template with the job's resolved parameters and
 * `job.client`, `job.workflow`, `job.priority`, by the one rule of both levels,
 * `renderConcurrencyKey` (src/workflows/task-concurrency.ts; docs/task-slots-and-concurrency.md):
 * values as their text, a missing value the empty string (jobs whose key renders empty share the
 * key `""` and its limit), a key over 255 characters fitted with a hash. Pure.
 * @returns the key and limit, or null when the workflow declares none.
 */
export function renderConcurrency(
  definition: WorkflowDefinition,
  job: { client: string; workflow: string; priority: number; resolvedParameters: Record<string, unknown> },
): { key: string; limit: number } | null {
  const c = definition.concurrency;
  if (!c) return null;
  const key = renderConcurrencyKey(c.key, {
    parameters: job.resolvedParameters,
    job: { client: job.client, workflow: job.workflow, priority: job.priority },
  });
  return { key, limit: c.limit };
}
