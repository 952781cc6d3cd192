/**
 * The job state machine (SPEC section 5.3) as one table. Every change of `queue_state` in the
 * engine is an edge of {@link TRANSITIONS}, checked in one of two ways:
 *
 * - a statement the engine runs on its own (admission, finish, due, semaphore) declares its edge
 *   with {@link jobEdge} when its module loads, so an edge missing from the table fails at
 *   start-up and in the unit tests; the edge's `from` is passed to the statement and used in
 *   its `WHERE`, so the table and the SQL cannot disagree;
 * - a change a person asks for (PATCH, rerun) is checked at run time with {@link assertTransition}
 *   against the state just read, which explains a refusal as a 409.
 *
 * Either way the state is written with the expected state in the SQL `WHERE`, so a race lost is
 * seen (zero rows) and handled or reported, never silently applied.
 */
import { EngineError } from '../../errors/catalogue.js';

/** `queue_state` values, indexed by the numeric id that `/jobs?state=` takes. */
export const JOB_STATES = [
  'queued',
  'started',
  'completed',
  'pending',
  'broken',
  'scheduled',
  'paused',
] as const;
export type JobState = (typeof JOB_STATES)[number];

/**
 * Final states: a run of the job has ended. Only two things move a job out of them: a rerun marks
 * the completed original broken (cause `rerun`; the rerun is a new job), and a retry queues a
 * completed-failed or broken job for a new run of the same job (cause `retry`).
 */
export const FINAL_STATES: readonly JobState[] = ['completed', 'broken'];

/** Who asks for a transition: the engine itself, or a person through PATCH/rerun. */
export type TransitionCause =
  | 'submit'
  | 'due' // scheduler: run_at passed (to pending or queued)
  | 'semaphore' // scheduler: semaphore answered go
  | 'admit' // controller: a slot was free
  | 'finish' // controller: last task ended
  | 'pause' // PATCH queue_state=paused
  | 'break' // PATCH queue_state=broken, or rerun of the job
  | 'resume' // PATCH queue_state=queued
  | 'reschedule' // PATCH run_at / semaphore_url on a waiting job
  | 'rerun' // POST /jobs/<id>/rerun of a completed job: the original's content is superseded
  | 'retry'; // POST /jobs/<id>/retry of a completed-failed or broken job: a new run of the same job

/** The allowed transitions: from → to → the causes that may take it. */
export const TRANSITIONS: Readonly<Record<JobState, Partial<Record<JobState, readonly TransitionCause[]>>>> =
  {
    scheduled: {
      scheduled: ['reschedule'],
      pending: ['due', 'reschedule'],
      queued: ['due', 'resume', 'reschedule'],
      paused: ['pause'],
      broken: ['break'],
    },
    pending: {
      scheduled: ['reschedule'],
      pending: ['reschedule'],
      queued: ['semaphore', 'resume', 'reschedule'],
      paused: ['pause'],
      broken: ['break'],
    },
    queued: {
      scheduled: ['reschedule'],
      pending: ['reschedule'],
      started: ['admit'],
      paused: ['pause'],
      broken: ['break'],
    },
    started: {
      completed: ['finish'],
      paused: ['pause'],
      broken: ['break'],
    },
    paused: {
      queued: ['resume'],
      broken: ['break'],
    },
    completed: {
      broken: ['rerun'],
      queued: ['retry'],
    },
    broken: {
      queued: ['retry'],
    },
  };

/** States a job may be in for a person to ask for `target` through PATCH. */
export function statesAllowing(target: JobState, cause: TransitionCause): JobState[] {
  return JOB_STATES.filter((from) => TRANSITIONS[from][target]?.includes(cause));
}

/** Whether `from → to` is allowed for `cause`. */
export function canTransition(from: JobState, to: JobState, cause: TransitionCause): boolean {
  return TRANSITIONS[from][to]?.includes(cause) ?? false;
}

/** One declared edge (or set of edges sharing a target and cause). */
export interface JobEdge {
  readonly from: readonly JobState[];
  readonly to: JobState;
  readonly cause: TransitionCause;
}

/**
 * Declares the edges a statement takes: `from` (one state or several) → `to` for `cause`.
 * Call it at module level next to the call of the statement, and pass `edge.from` to it for its
 * `WHERE` (`queue_state = ANY($from::text[])`), so the table and the SQL cannot disagree.
 * @throws Error naming the edge when the table does not allow it.
 */
export function jobEdge(from: JobState | readonly JobState[], to: JobState, cause: TransitionCause): JobEdge {
  const froms: readonly JobState[] = typeof from === 'string' ? [from] : from;
  for (const f of froms)
    if (!canTransition(f, to, cause))
      throw new Error(`job transition ${f} → ${to} (${cause}) is not in the table`);
  return { from: froms, to, cause };
}

/**
 * Checks a transition and explains a refusal.
 * @throws {EngineError} `STATE_CONFLICT` (409) naming the job, its state and the states that allow it.
 */
export function assertTransition(jobId: number, from: JobState, to: JobState, cause: TransitionCause): void {
  if (canTransition(from, to, cause)) return;
  const allowed = statesAllowing(to, cause);
  const verb = VERBS[cause] ?? `moved to ${to}`;
  throw new EngineError(
    'STATE_CONFLICT',
    `job ${jobId} is ${from}; only ${listOr(allowed)} jobs can be ${verb}`,
    { jobId },
  );
}

const VERBS: Partial<Record<TransitionCause, string>> = {
  pause: 'paused',
  break: 'broken',
  resume: 'queued (resumed)',
  reschedule: 'rescheduled',
  admit: 'started',
  finish: 'completed',
  rerun: 'broken by a rerun',
  retry: 'retried',
};

function listOr(items: readonly string[]): string {
  if (items.length === 0) return 'no';
  if (items.length === 1) return items[0]!;
  return `${items.slice(0, -1).join(', ')} or ${items.at(-1)}`;
}
