/**
 * The job service: everything the API does to jobs (seed "Job Endpoints" and "Log Endpoints",
 * SPEC sections 4, 5 and 10). Every function takes the authenticated {@link Viewer}: a non-admin
 * sees and changes only its own jobs, and another client's job answers 404 exactly like a missing
 * one. Every failure is an {@link EngineError} with a catalogue code.
 */
import { assertJobStorage } from '../../storage/client-storage.js';
import { assertEgressAllowed, submissionUrls } from './egress-check.js';
import { explainJob, type Waiting } from '../status/waiting.js';
import type { EngineContext } from '../context.js';
import { EngineError } from '../../errors/catalogue.js';
import { validateParameters } from '../../workflows/parameters.js';
import type { WorkflowDefinition } from '../../workflows/types.js';
import { CHANNELS, notify } from '../signals.js';
import {
  readJobLogs,
  readJobTasks,
  rescheduleJobState,
  setJobRerunBy,
  setJobPersist,
  setJobPriority,
  setJobTopOfQueue,
} from '../../store/queries/jobs.js';
import { breakJob, pauseJob, queueJobNow, writeTransition } from './control.js';
import {
  isPlainObject,
  parseFlag,
  parseHttpUrl,
  parseInteger,
  parseJobId,
  rejectUnknownFields,
  resolveWorkflow,
  withJobId,
} from './input.js';
import { appendLog } from './job-log.js';
import { parseListQuery, runListQuery } from './list.js';
import {
  computePositions,
  findVisibleJob,
  type JobRecord,
  type LogRecord,
  type TaskRecord,
  toJobRecord,
  toLogRecord,
  toTaskRecord,
  type Viewer,
} from './records.js';
import {
  initialState,
  insertJob,
  type InsertOutcome,
  type JobToInsert,
  readSubmission,
  type SubmissionInput,
  submissionFingerprint,
  type SubmissionRequest,
  submissionLogMessage,
  submissionWriter,
} from './submit.js';
import { describe, formatTimestamp, parseTimestampIn } from './time.js';
import { assertTransition, FINAL_STATES, JOB_STATES, type JobState, TRANSITIONS } from './transitions.js';

export { breakJob, pauseJob } from './control.js';
export type { Viewer, JobRecord, TaskRecord, LogRecord, DashboardJobRecord } from './records.js';

/**
 * Submits a job (`POST /job`). Reads the body (see {@link readSubmission}), resolves the workflow
 * for the viewer's client (its own copy first, then the common one), validates the parameters
 * against the workflow's schema (every problem listed), and writes in ONE statement (atomic) the
 * job (parameters as submitted, resolved parameters, the definition frozen), its search row, its
 * tasks, its first log entries, and the wake-up for admission or the scheduler (see
 * {@link insertJob}); submissions that arrive together share that statement (see
 * {@link submissionWriter}). Nothing is written when anything fails.
 *
 * With `job.idempotency_key`, a key this client used within the `idempotency_retention` window
 * (setting, seconds) answers the job it made and writes nothing, however many submissions of it
 * arrive at once, on one engine or several (docs/api.md, "Idempotent submission").
 * @returns the job's id: new, or the one the idempotency key already answers with.
 * @throws {EngineError} `VALIDATION_FAILED` (400) for a bad body or parameters; `UNKNOWN_WORKFLOW`
 * (400) listing the workflows the client may submit; `CONFLICT` (409, with the holder's id) when
 * the idempotency key answers a job submitted with different content.
 */
export async function submitJob(
  ctx: EngineContext,
  viewer: Viewer,
  body: unknown,
  request: SubmissionRequest,
): Promise<{ id: number }> {
  const prepared = await prepareSubmission(ctx, viewer, body, request);
  return answerSubmission(prepared, await submissionWriter(ctx.db).write(prepared.item));
}

/** A submission read, validated and checked, ready to write (see {@link prepareSubmission}). */
export interface PreparedSubmission {
  /** The body as read. */
  input: SubmissionInput;
  /** What to write ({@link insertJobs} of submit.ts). */
  item: JobToInsert;
}

/**
 * Everything {@link submitJob} does before writing, for one body: reads it, resolves the workflow
 * for the viewer's client, validates the parameters, checks egress (callback and semaphore URLs)
 * and client storage, and builds the row to write, submitted at `ctx.clock.now()`. Writes nothing.
 * `POST /job` and `POST /jobs/batch` (per item) both go through it, so an item of a batch is
 * refused exactly as the same body would be.
 * @throws {EngineError} as {@link submitJob} does before writing (400 `VALIDATION_FAILED` or
 * `UNKNOWN_WORKFLOW`, 403 for a refused egress or storage target).
 */
export async function prepareSubmission(
  ctx: EngineContext,
  viewer: Viewer,
  body: unknown,
  request: SubmissionRequest,
): Promise<PreparedSubmission> {
  const input = readSubmission(viewer, body);
  const resolved = resolveWorkflow(ctx.catalog, viewer.client, input.workflow);
  const validation = validateParameters(resolved.definition, input.parameters);
  if (!validation.ok)
    throw new EngineError(
      'VALIDATION_FAILED',
      `parameters are not valid for workflow "${input.workflow}": ${validation.problems.join('; ')}`,
      { details: validation.problems },
    );
  await assertEgressAllowed(ctx.egress, submissionUrls(input.parameters, input.semaphoreUrl));
  await assertJobStorage(ctx.db, viewer.client, validation.resolved, resolved.definition);
  const now = ctx.clock.now();
  const item: JobToInsert = {
    job: {
      client: viewer.client,
      workflow: resolved.definition.name,
      priority: input.priority,
      persist: input.persist,
      topOfQueue: input.topOfQueue,
      runAt: input.runAt ?? now,
      semaphoreUrl: input.semaphoreUrl,
      parameters: input.parameters,
      resolvedParameters: validation.resolved,
      definition: resolved.definition,
      definitionSource: resolved.source,
      rerunOf: null,
      idempotency:
        input.idempotencyKey === null
          ? null
          : { key: input.idempotencyKey, fingerprint: submissionFingerprint(input) },
    },
    now,
    firstLog: submissionLogMessage(request, body),
    ...(ctx.tracing ? { trace: ctx.tracing.newJobTrace(request.headers.traceparent, now) } : {}),
  };
  return { input, item };
}

/**
 * The answer to a written submission: its id, or — when its idempotency key answers a job
 * submitted with different content — the 409.
 * @throws {EngineError} `CONFLICT` (409, with the holder's id).
 */
export function answerSubmission(prepared: PreparedSubmission, outcome: InsertOutcome): { id: number } {
  if (!outcome.created && !outcome.sameContent)
    throw new EngineError(
      'CONFLICT',
      `job.idempotency_key ${JSON.stringify(prepared.input.idempotencyKey)} was already used for job ${outcome.id} ` +
        'with different content (workflow, priority, run_at, semaphore_url, persist, top_of_queue or parameters); ' +
        `send the same submission again to get job ${outcome.id}, or use a new key for a new job`,
      { jobId: outcome.id },
    );
  return { id: outcome.id };
}

/**
 * Lists jobs (`GET /jobs`) with the filters of SPEC 5.5 (see `list.ts`): newest first, 10 by
 * default. A non-admin sees only its own jobs.
 * @throws {EngineError} `VALIDATION_FAILED` (400) for any bad filter value; `FORBIDDEN` (403)
 * when a non-admin filters on another client.
 */
export async function listJobs(
  ctx: EngineContext,
  viewer: Viewer,
  query: Record<string, unknown>,
): Promise<JobRecord[]> {
  const filter = parseListQuery(viewer, query);
  return runListQuery(ctx.db, viewer, filter);
}

/**
 * Reads one job with its tasks (`GET /jobs/<id>`), tasks in definition order.
 * @throws {EngineError} `VALIDATION_FAILED` (400) when the id is not a positive whole number;
 * `JOB_NOT_FOUND` (404) when no such job is visible to the viewer.
 */
export async function getJob(ctx: EngineContext, viewer: Viewer, idText: string): Promise<JobDetail> {
  const id = parseJobId(idText);
  const row = await findVisibleJob(ctx.db, viewer, id);
  const positions = await computePositions(ctx.db, [row]);
  const tasks = await readJobTasks.rows(ctx.db, { jobId: id });
  const { schedule, scheduled_for } = row;
  const now = ctx.clock.now();
  const position = positions.get(id) ?? 1;
  return {
    ...toJobRecord(row, position),
    schedule,
    scheduled_for: formatTimestamp(scheduled_for),
    outputs: row.outputs ?? null,
    error: row.error,
    waiting: await explainJob(ctx.db, id, position, now),
    tasks: tasks.map((t) => toTaskRecord(t, now.getTime())),
  };
}

/** `GET /jobs/<id>`: the job record, its schedule, its results and its tasks. */
export type JobDetail = JobRecord & {
  schedule: string | null;
  scheduled_for: string | null;
  /** What the workflow's `outputs` rendered (the job-end callback's extra keys); null until it ended. */
  outputs: Record<string, unknown> | null;
  /** Why it failed or was broken, or null. */
  error: string | null;
  /** Why it is not running (src/engine/status/waiting.ts); null when it runs or has ended. */
  waiting: Waiting | null;
  tasks: TaskRecord[];
};

/** Fields `PATCH /jobs/<id>` accepts (`sempahore_url` is the seed's spelling of `semaphore_url`). */
export const PATCH_FIELDS = [
  'persist',
  'priority',
  'queue_state',
  'run_at',
  'semaphore_url',
  'sempahore_url',
  'top_of_queue',
  'client',
] as const;

/** `queue_state` values a PATCH may ask for. */
export const PATCH_QUEUE_STATES = ['paused', 'broken', 'queued'] as const;

/** States whose `run_at` / `semaphore_url` may change (any state with a `reschedule` transition). */
export const RESCHEDULABLE_STATES: readonly JobState[] = JOB_STATES.filter((s) =>
  Object.values(TRANSITIONS[s]).some((causes) => causes?.includes('reschedule')),
);

interface PatchInput {
  /** Field names in the order given, as the reply lists them. */
  fields: string[];
  persist?: boolean;
  priority?: number;
  topOfQueue?: boolean;
  queueState?: (typeof PATCH_QUEUE_STATES)[number];
  runAt?: Date;
  /** null clears the semaphore. */
  semaphoreUrl?: string | null;
}

function readPatch(viewer: Viewer, body: unknown): PatchInput {
  if (!isPlainObject(body))
    throw new EngineError(
      'VALIDATION_FAILED',
      `the body must be a JSON object of fields to update; got ${describe(body)}`,
    );
  rejectUnknownFields('PATCH /jobs/<id>', body, PATCH_FIELDS);
  if (body.client !== undefined && body.client !== null && body.client !== viewer.client)
    throw new EngineError(
      'VALIDATION_FAILED',
      `body client ${describe(body.client)} does not match the authenticated client "${viewer.client}"`,
    );
  if (body.semaphore_url !== undefined && body.sempahore_url !== undefined)
    throw new EngineError('VALIDATION_FAILED', 'give semaphore_url or sempahore_url, not both');
  const out: PatchInput = { fields: Object.keys(body).filter((k) => k !== 'client') };
  if (out.fields.length === 0)
    throw new EngineError(
      'VALIDATION_FAILED',
      `nothing to update; accepted fields: ${PATCH_FIELDS.filter((f) => f !== 'client' && f !== 'sempahore_url').join(', ')}`,
    );
  if (body.persist !== undefined) out.persist = parseFlag('persist', body.persist);
  if (body.priority !== undefined) out.priority = parseInteger('priority', body.priority, 1, 10);
  if (body.top_of_queue !== undefined) out.topOfQueue = parseFlag('top_of_queue', body.top_of_queue);
  if (body.queue_state !== undefined) {
    const qs = body.queue_state;
    if (typeof qs !== 'string' || !(PATCH_QUEUE_STATES as readonly string[]).includes(qs))
      throw new EngineError(
        'VALIDATION_FAILED',
        `queue_state ${describe(qs)} is not accepted; accepted: ${PATCH_QUEUE_STATES.join(', ')}`,
      );
    out.queueState = qs as PatchInput['queueState'];
  }
  if (body.run_at !== undefined) out.runAt = parseTimestampIn('run_at', body.run_at);
  const sem = body.semaphore_url !== undefined ? body.semaphore_url : body.sempahore_url;
  const semField = body.semaphore_url !== undefined ? 'semaphore_url' : 'sempahore_url';
  if (sem !== undefined) out.semaphoreUrl = sem === null || sem === '' ? null : parseHttpUrl(semField, sem);
  if (out.queueState !== undefined && (out.runAt !== undefined || out.semaphoreUrl !== undefined))
    throw new EngineError(
      'VALIDATION_FAILED',
      'queue_state cannot be combined with run_at or semaphore_url in one request; send them separately',
    );
  return out;
}

/**
 * Updates a job (`PATCH /jobs/<id>`): `persist`, `priority`, `top_of_queue`, `run_at`,
 * `semaphore_url` (or `sempahore_url`), `queue_state` (`paused`, `broken`, `queued`); `client`
 * may be given and must match. All in one transaction with the job row locked: any refusal
 * changes nothing. Rules (docs/jobs.md):
 * - `priority` / `top_of_queue` on a job that has not ended; a queued job is re-ordered at once.
 * - `persist` on any job.
 * - `run_at` / `semaphore_url` on scheduled, pending or queued jobs: a future `run_at` → scheduled;
 *   otherwise pending when a semaphore must be checked, else queued.
 * - `queue_state`: paused (from queued, scheduled, pending, started), broken (from any live
 *   state; see {@link breakJob}), queued (resume a paused job, or force a scheduled/pending job due now).
 * @returns `{id, result: "Performed updates: <fields>"}`.
 * @throws {EngineError} `VALIDATION_FAILED` (400), `JOB_NOT_FOUND` (404), `STATE_CONFLICT` (409).
 */
export async function patchJob(
  ctx: EngineContext,
  viewer: Viewer,
  idText: string,
  body: unknown,
): Promise<{ id: number; result: string }> {
  const id = parseJobId(idText);
  const patch = withJobId(id, () => readPatch(viewer, body));
  if (patch.semaphoreUrl)
    await assertEgressAllowed(ctx.egress, [{ field: 'semaphore_url', url: patch.semaphoreUrl }]);
  const now = ctx.clock.now();
  await ctx.db.transaction(async (tx) => {
    const job = await findVisibleJob(tx, viewer, id, { forUpdate: true });
    const state = job.queue_state;
    const log = (message: string) => appendLog(tx, { jobId: id, progname: 'api', message, now });
    const ended = FINAL_STATES.includes(state);
    let reorder = false;

    if (patch.persist !== undefined) {
      await setJobPersist.run(tx, { id, persist: patch.persist, now });
      await log(`persist changed from ${job.persist} to ${patch.persist}`);
    }
    if (patch.priority !== undefined || patch.topOfQueue !== undefined) {
      if (ended)
        throw new EngineError(
          'STATE_CONFLICT',
          `job ${id} is ${state}; priority and top_of_queue can only be changed on jobs that have not ended`,
          { jobId: id },
        );
      if (patch.priority !== undefined) {
        await setJobPriority.run(tx, { id, priority: patch.priority, now });
        await log(`priority changed from ${job.priority} to ${patch.priority}`);
      }
      if (patch.topOfQueue !== undefined) {
        await setJobTopOfQueue.run(tx, { id, topOfQueue: patch.topOfQueue, now });
        await log(`top_of_queue changed from ${job.top_of_queue} to ${patch.topOfQueue}`);
      }
      reorder = state === 'queued';
    }

    if (patch.runAt !== undefined || patch.semaphoreUrl !== undefined) {
      if (!RESCHEDULABLE_STATES.includes(state))
        throw new EngineError(
          'STATE_CONFLICT',
          `job ${id} is ${state}; only ${RESCHEDULABLE_STATES.join(', ')} jobs can be rescheduled (run_at, semaphore_url)`,
          { jobId: id },
        );
      const runAt = patch.runAt ?? job.run_at ?? now;
      const semaphoreUrl = patch.semaphoreUrl !== undefined ? patch.semaphoreUrl : job.semaphore_url;
      // A queued job already passed its semaphore: only a new semaphore sends it back to pending.
      const semaphoreToCheck = patch.semaphoreUrl !== undefined || state !== 'queued' ? semaphoreUrl : null;
      const target = initialState(runAt, semaphoreToCheck, now);
      if (target !== state) assertTransition(id, state, target, 'reschedule');
      await writeTransition(
        tx,
        rescheduleJobState,
        { id, from: state, to: target, now, runAt, semaphoreUrl },
        target,
      );
      if (patch.runAt !== undefined)
        await log(`run_at changed from "${job.run_at?.toISOString() ?? ''}" to "${runAt.toISOString()}"`);
      if (patch.semaphoreUrl !== undefined)
        await log(`semaphore_url changed from "${job.semaphore_url ?? ''}" to "${semaphoreUrl ?? ''}"`);
      if (target !== state) await log(`queue_state changed from ${state} to ${target}`);
      if (target === 'scheduled') await log(`Job will run at: "${runAt.toISOString()}"`);
      if (target === 'queued') reorder = true;
      else await notify(tx, CHANNELS.scheduler, id);
    }

    if (patch.queueState === 'paused') await pauseJob(tx, id, { now });
    else if (patch.queueState === 'broken')
      await breakJob(tx, id, 'broken by request (PATCH queue_state)', { now, ctx });
    else if (patch.queueState === 'queued') await queueJobNow(tx, id, { now });

    if (reorder) await notify(tx, CHANNELS.admission, 'job_queued');
  });
  return { id, result: `Performed updates: ${patch.fields.join(', ')}` };
}

/** Body fields a rerun accepts: none but the optional `client` (seed: "Body Params: None"). */
export const RERUN_FIELDS = ['client'] as const;

/**
 * Reads a rerun body: none, `{}`, or `{"client": <the authenticated client>}`. A rerun repeats
 * the original's parameters (seed: "rerun a job with exactly the same parameters"), so any other
 * field (`parameters`, `priority` …) is refused rather than silently ignored.
 * @throws {EngineError} `VALIDATION_FAILED` naming the fields.
 */
function readRerunBody(viewer: Viewer, body: unknown): void {
  if (body === undefined || body === null) return;
  if (!isPlainObject(body))
    throw new EngineError(
      'VALIDATION_FAILED',
      `the body of POST /jobs/<id>/rerun must be empty or a JSON object; got ${describe(body)}`,
    );
  const unknown = Object.keys(body).filter((k) => !(RERUN_FIELDS as readonly string[]).includes(k));
  if (unknown.length > 0)
    throw new EngineError(
      'VALIDATION_FAILED',
      `POST /jobs/<id>/rerun takes no ${unknown.map((k) => JSON.stringify(k)).join(', ')}: a rerun runs the ` +
        'original job again with exactly the same workflow, priority and parameters; send no body ' +
        '(or only "client"), or submit a new job with POST /job to change them',
    );
  if (body.client !== undefined && body.client !== null && body.client !== viewer.client)
    throw new EngineError(
      'VALIDATION_FAILED',
      `body client ${describe(body.client)} does not match the authenticated client "${viewer.client}"`,
    );
}

/**
 * Reruns a job (`POST /jobs/<id>/rerun`): a new job with the same workflow, priority, persist flag
 * and submitted parameters, using the original's frozen definition and resolved parameters, fresh
 * state (queued now, no run_at wait, no semaphore), `rerun_of` = the original. The original
 * becomes broken (seed: "the original job's queue state will be set to broken"): a live one is
 * broken as by PATCH (attempts cancelled, job-end callback if it had started); a completed one is
 * marked broken (its content is superseded) and keeps its `failed` flag; a broken one stays
 * broken. Its `rerun_by` becomes the new job. One transaction.
 * @param body - the request body: none, or only `client` (see {@link readRerunBody}).
 * @returns the NEW job's id.
 * @throws {EngineError} `VALIDATION_FAILED` (400) for a bad id or any body field but `client`;
 * `JOB_NOT_FOUND` (404).
 */
export async function rerunJob(
  ctx: EngineContext,
  viewer: Viewer,
  idText: string,
  body?: unknown,
): Promise<{ id: number; result: 'accepted' }> {
  const id = parseJobId(idText);
  try {
    readRerunBody(viewer, body);
  } catch (err) {
    if (err instanceof EngineError) throw new EngineError(err.code, err.message, { jobId: id });
    throw err;
  }
  const now = ctx.clock.now();
  const newId = await ctx.db.transaction(async (tx) => {
    const orig = await findVisibleJob(tx, viewer, id, { forUpdate: true });
    const created = await insertJob(
      tx,
      {
        client: orig.client,
        workflow: orig.workflow,
        priority: orig.priority,
        persist: orig.persist,
        topOfQueue: false,
        runAt: now,
        semaphoreUrl: null,
        parameters: orig.parameters,
        resolvedParameters: orig.resolved_parameters,
        definition: orig.definition as WorkflowDefinition,
        definitionSource: orig.definition_source === 'client' ? 'client' : 'common',
        rerunOf: id,
      },
      now,
      JSON.stringify({
        path: `POST /jobs/${id}/rerun`,
        rerun_of: id,
        parameters: orig.parameters,
        payload: 'job_created',
      }),
      ctx.tracing?.newJobTrace(undefined, now),
    );
    const reason = `superseded by rerun as job ${created.id}`;
    if (orig.queue_state === 'broken')
      await appendLog(tx, {
        now,
        jobId: id,
        progname: 'api',
        message: `Job rerun as job ${created.id}; it stays broken`,
      });
    else
      await breakJob(tx, id, reason, {
        now,
        ctx,
        cause: orig.queue_state === 'completed' ? 'rerun' : 'break',
      });
    await setJobRerunBy.run(tx, { id, rerunBy: created.id, now });
    return created.id;
  });
  return { id: newId, result: 'accepted' };
}

/**
 * Reads a job's log (`GET /logs/<id>`) in order. Hidden entries (`visible: false`, DEBUG) only
 * with `showAll` (`?show_all=1`).
 * @throws {EngineError} `VALIDATION_FAILED` (400) for a bad id; `JOB_NOT_FOUND` (404).
 */
export async function getJobLogs(
  ctx: EngineContext,
  viewer: Viewer,
  idText: string,
  opts: { showAll: boolean },
): Promise<LogRecord[]> {
  const id = parseJobId(idText);
  await findVisibleJob(ctx.db, viewer, id);
  const rows = await readJobLogs.rows(ctx.db, { jobId: id, showAll: opts.showAll });
  return rows.map(toLogRecord);
}
