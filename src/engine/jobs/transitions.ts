/**
 * The job state machine (SPEC section 5.3) as one table. Every change of `queue_state` in the
 * engine is checked here first, and written with the current state in the SQL `WHERE`, so a race
 * lost is seen (zero rows) and reported, never silently applied.
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

/** Numeric id of a state (0 queued … 6 paused), as in the seed. */
export function stateId(state: JobState): number {
  return JOB_STATES.indexOf(state);
}

/**
 * Final states: nothing moves a job out of them (rerun makes a new job), except that a rerun
 * marks the completed original broken (cause `rerun`).
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
  | 'rerun'; // POST /jobs/<id>/rerun of a completed job: the original's content is superseded

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
    },
    broken: {},
  };

/** States a job may be in for a person to ask for `target` through PATCH. */
export function statesAllowing(target: JobState, cause: TransitionCause): JobState[] {
  return JOB_STATES.filter((from) => TRANSITIONS[from][target]?.includes(cause));
}

/** Whether `from → to` is allowed for `cause`. */
export function canTransition(from: JobState, to: JobState, cause: TransitionCause): boolean {
  return TRANSITIONS[from][to]?.includes(cause) ?? false;
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
};

function listOr(items: readonly string[]): string {
  if (items.length === 0) return 'no';
  if (items.length === 1) return items[0]!;
  return `${items.slice(0, -1).join(', ')} or ${items.at(-1)}`;
}
