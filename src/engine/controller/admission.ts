/**
 * Admission (SPEC section 5.4): moving queued jobs into execution slots, with slots reserved for
 * priority work, correct however many engine processes run it at once.
 */
import { LOCK_KEYS, type Queryable } from '../../store/executor.js';
import {
  type AdmissionCandidateRow,
  lockAdmission,
  readAdmissionCandidates,
  readAdmissionState,
  startAdmittedJobs,
} from '../../store/queries/admission.js';
import type { EngineContext } from '../context.js';
import { jobEdge } from '../jobs/transitions.js';
import { parseSettings, type EngineSettings } from '../settings.js';
import { advanceLockedJobs } from './advance.js';

/** Most jobs one admission pass starts; a full pass is followed by another at once. */
export const MAX_JOBS_PER_PASS = 1_000;

/** The edge admission takes. */
const ADMIT = jobEdge('queued', 'started', 'admit');

/**
 * Chooses which queued jobs may start now, given `r` slots taken. Pure; exported for tests.
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

/**
 * Runs one admission pass (SPEC 5.4) and returns how many jobs it started.
 *
 * One transaction: `pg_advisory_xact_lock(LOCK_KEYS.admission)` serialises admission across every
 * engine process (so `R` can never exceed `max_jobs`), the settings are read fresh, `R` counted,
 * the candidates picked by {@link chooseJobs}, each moved `queued → started` (edge `admit`, its `from` in
 * the statement's `WHERE`, so a job paused or broken meanwhile is left alone), logged ("job started", progname
 * controller), and advanced (its first tasks made ready, workers notified on commit).
 * @throws the driver's error (nothing is changed then).
 */
export async function admitJobs(ctx: EngineContext): Promise<number> {
  return ctx.db.transaction(async (tx) => {
    await lockAdmission.run(tx, { key: LOCK_KEYS.admission });
    // Settings and R in one round trip (after the lock, so R counts every earlier admission).
    const state = await readAdmissionState.first(tx, {});
    const { known } = parseSettings(
      Object.entries(state?.settings ?? {}).map(([name, value]) => ({ name, value })),
    );
    const r = Number(state?.r ?? 0);
    // At most MAX_JOBS_PER_PASS per pass (a huge max_jobs must not become a huge LIMIT); the
    // controller runs another pass at once when a pass was full.
    const free = Math.min(known.max_jobs - r, MAX_JOBS_PER_PASS);
    if (free <= 0) return 0;
    const candidates = await pickCandidates(tx, known, r, free);
    const ids = chooseJobs(candidates, r, known);
    if (ids.length === 0) return 0;
    // Start them and log "job started" in one statement; the rows come back locked.
    const startedJobs = await startAdmittedJobs.rows(tx, { ids, from: ADMIT.from, now: ctx.clock.now() });
    if (startedJobs.length === 0) return 0;
    // Advance in admission order so the first-admitted job's tasks are made ready first.
    const order = new Map(ids.map((id, i) => [id, i]));
    startedJobs.sort((a, b) => order.get(a.id)! - order.get(b.id)!);
    await advanceLockedJobs(tx, ctx, startedJobs);
    return startedJobs.length;
  });
}

/**
 * Reads the queued jobs admission may start: the first `free` of the general order when general
 * slots remain, plus the first priority jobs (enough to fill every free slot), so a long run of
 * ineligible jobs at the head costs one indexed read, never a scan of the whole queue.
 * @returns the candidates in admission order ({@link admissionOrder}), each once.
 */
async function pickCandidates(
  tx: Queryable,
  s: EngineSettings,
  r: number,
  free: number,
): Promise<AdmissionCandidateRow[]> {
  const general = s.max_jobs - s.priority_slots;
  const rows = await readAdmissionCandidates.rows(tx, {
    limit: free,
    threshold: s.priority_threshold,
    generalFree: r < general,
  });
  return mergeCandidates(rows);
}

/** Merges the two candidate lists into one, each job once, in admission order. Pure; exported for tests. */
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
