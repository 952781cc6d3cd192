/**
 * The text of job log lines (SPEC section 10), built here and nowhere else, so a wording is
 * changed in one place and the tests and docs that quote it can find it.
 */

/** Which definitions a job runs with (`jobs.definition_source`). */
export type DefinitionSource = 'common' | 'client' | (string & {});

/**
 * The line that says which definitions a job uses. Submission, the first claim of each task and
 * the first delivery of each callback write it, each in the wording it has always had for a
 * client's own definitions (`where`); the common wording is the same for all three.
 * @param client - the client's name (the callback's wording names it).
 */
export function definitionsLine(
  source: DefinitionSource,
  where: 'submit' | 'claim' | 'callback',
  client = '',
): string {
  if (source !== 'client') return 'No client definitions. Using common definitions.';
  if (where === 'claim') return 'Client definitions found. Using client definitions.';
  if (where === 'callback') return `Using client definitions of ${client}.`;
  return 'Using client definitions.';
}

/**
 * A task's attempt started (its log line). The claim statement writes this line itself, in SQL,
 * in the same round trip as the claim (`claimReadyTasks`); this is its TypeScript statement, which
 * `test/integration/callback-targets.test.ts` holds the SQL to.
 */
export function taskStartedLine(task: string, attempt: number): string {
  return attempt > 1 ? `Task '${task}' started (attempt ${attempt})` : taskStartedMessage(task);
}

/** The `message` of a task's `start` callback (the claim builds it in SQL, like {@link taskStartedLine}). */
export function taskStartedMessage(task: string): string {
  return `Task '${task}' started`;
}

/**
 * A ready task needs more slots than any live worker of its queue has (written once per task, by
 * a worker of that queue that cannot take it; docs/task-slots-and-concurrency.md).
 */
export function taskTooHeavyLine(task: string, slots: number, queue: string, largest: number): string {
  return `Task '${task}' needs ${slots} worker slots, more than any live worker of queue '${queue}' has (the largest has ${largest}); it waits until a worker with ${slots} slots takes that queue`;
}

/** A task's attempt succeeded. */
export function taskCompletedLine(task: string): string {
  return `'${task}' completed successfully`;
}

/** How a failed attempt ended, for its log lines: `failed`, or `stalled` when its worker went quiet. */
export type FailureVerb = 'failed' | 'stalled';

/** An attempt failed and the task will run again after `delay` seconds (attempt `next` of `of`). */
export function taskRetryingLine(
  task: string,
  verb: FailureVerb,
  error: string,
  delay: number,
  next: number,
  of: number,
): string {
  return `Task '${task}' ${verb}: ${error}; retrying in ${formatSeconds(delay)}s (attempt ${next} of ${of})`;
}

/** Why a task that failed for good was not retried (see {@link taskFailedLine}). */
export type FinalFailureReason =
  | { kind: 'permanent' }
  | { kind: 'sibling-failed'; sibling: string }
  | { kind: 'retries-used'; attempts: number };

/** A task failed for good; `continues` when its job goes on (`continue_on_error`). */
export function taskFailedLine(
  task: string,
  verb: FailureVerb,
  error: string,
  reason: FinalFailureReason,
  continues: boolean,
): string {
  const why =
    reason.kind === 'permanent'
      ? ' (permanent failure, not retried)'
      : reason.kind === 'sibling-failed'
        ? ` (not retried: task '${reason.sibling}' has already failed the job)`
        : reason.attempts > 1
          ? ` (after ${reason.attempts} attempts)`
          : '';
  return `'${task}' ${verb}: ${error}${why}${continues ? '; continuing (continue_on_error)' : ''}`;
}

/** A running attempt was given back unfinished (worker shutdown). */
export function taskHandedBackLine(task: string, reason: string): string {
  return `Task '${task}' handed back (${reason}); it will run again without using a retry`;
}

/** Why the controller skips a task. */
export type SkipReason =
  | { kind: 'sibling-failed'; sibling: string }
  | { kind: 'condition-false'; condition: string }
  | { kind: 'not-failed' };

/** A task is skipped. */
export function taskSkippedLine(task: string, reason: SkipReason): string {
  if (reason.kind === 'not-failed')
    return `Task '${task}' skipped: it runs only when the job fails (when: failed)`;
  return reason.kind === 'sibling-failed'
    ? `Task '${task}' skipped: task '${reason.sibling}' failed`
    : `Task '${task}' skipped: condition ${JSON.stringify(reason.condition)} is false`;
}

/** A task's `if` could not be rendered; it is skipped. */
export function conditionErrorLine(task: string, condition: string, error: string): string {
  return `Task '${task}': condition ${JSON.stringify(condition)} could not be evaluated (${error}); skipping it`;
}

/** The workflow's `outputs` could not be rendered when the job finished. */
export function outputsErrorLine(error: string): string {
  return `workflow outputs could not be rendered: ${error}`;
}

/** Why a job failed, as stored in `jobs.error`: the first task that failed it. */
export function jobFailureReason(task: string, error: string | null): string {
  return `task '${task}' failed${error ? `: ${error}` : ''}`;
}

/** The job finished: `reason` (from {@link jobFailureReason}) when it failed, else null. */
export function jobFinishedLine(reason: string | null): string {
  return reason !== null ? `job has failed: ${reason}` : 'job has completed successfully';
}

/** Seconds as the log lines print them: an integer as is, else up to three decimals. */
export function formatSeconds(s: number): string {
  return Number.isInteger(s) ? String(s) : s.toFixed(3).replace(/0+$/, '');
}
