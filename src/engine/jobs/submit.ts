/**
 * Job submission (`POST /job`, SPEC section 5.1): reading the body, resolving the workflow,
 * validating parameters, and writing the job with its tasks and first log entries in one
 * transaction.
 */
import type { Executor, Queryable } from '../../store/executor.js';
import { sha256Hex } from '../clients/keys.js';
import { insertJobs as insertJobsQuery, type InsertJobsParams } from '../../store/queries/jobs.js';
import { EngineError } from '../../errors/catalogue.js';
import {
  hasTemplatedConcurrencyKey,
  taskWeightColumns,
  type ConcurrencyKeyScope,
  type TaskWeightColumns,
} from '../../workflows/task-concurrency.js';
import type { WorkflowDefinition } from '../../workflows/types.js';
import { renderConcurrency } from '../controller/admission.js';
import { createGroupCommit } from '../group-commit.js';
import { SETTING_DEFAULTS } from '../settings.js';
import { CHANNELS } from '../signals.js';
import { isPlainObject, parseFlag, parseHttpUrl, parseInteger, rejectUnknownFields } from './input.js';
import { fitLogMessage } from './job-log.js';
import type { Viewer } from './records.js';
import { describe, parseTimestampIn } from './time.js';
import type { JobState } from './transitions.js';
import type { JobTraceIds } from '../tracing/tracing.js';

/** Fields accepted inside `job`. */
export const JOB_FIELDS = [
  'workflow',
  'priority',
  'run_at',
  'semaphore_url',
  'persist',
  'top_of_queue',
  'idempotency_key',
] as const;

/** Longest `job.idempotency_key` accepted, in characters. */
export const MAX_IDEMPOTENCY_KEY_LENGTH = 255;

/** The setting that holds how long a `job.idempotency_key` answers with its job, in seconds. */
export const IDEMPOTENCY_RETENTION_SETTING = 'idempotency_retention';

/** Default priority (SPEC 5.4). */
export const DEFAULT_PRIORITY = 5;

/** A submission body, read and checked (parameters not yet validated against the workflow). */
export interface SubmissionInput {
  workflow: string;
  priority: number;
  /** Null = now. */
  runAt: Date | null;
  semaphoreUrl: string | null;
  persist: boolean;
  /** Admit before every other queued job (SPEC 5.4). */
  topOfQueue: boolean;
  parameters: Record<string, unknown>;
  /** `job.idempotency_key`, or null. */
  idempotencyKey: string | null;
}

/**
 * Reads `job.idempotency_key`: a string of 1 to {@link MAX_IDEMPOTENCY_KEY_LENGTH} characters
 * (code points), no control characters, taken exactly as given (no trimming: `"a "` and `"a"`
 * are two keys).
 * @throws {EngineError} `VALIDATION_FAILED` naming the field and what is accepted.
 */
export function parseIdempotencyKey(value: unknown): string {
  const accepted = `a string of 1 to ${MAX_IDEMPOTENCY_KEY_LENGTH} characters without control characters, e.g. a UUID`;
  if (
    typeof value !== 'string' ||
    value.length === 0 ||
    Array.from(value).length > MAX_IDEMPOTENCY_KEY_LENGTH ||
    // Every control character: C0, DEL and C1 (U+0080 to U+009F, such as NEL and CSI).
    /\p{Cc}/u.test(value) ||
    // A lone surrogate (`"\ud800"` in the JSON) would reach the database as U+FFFD, so two keys would meet.
    /\p{Cs}/u.test(value)
  )
    throw new EngineError(
      'VALIDATION_FAILED',
      `job.idempotency_key must be ${accepted}; got ${describe(value)}`,
    );
  return value;
}

/**
 * Reads a `POST /job` body. Unknown top-level fields are ignored; unknown fields inside `job` are
 * refused (SPEC section 4). A `null` optional field counts as absent.
 * @throws {EngineError} `VALIDATION_FAILED` (400) naming what is wrong and what is accepted.
 */
export function readSubmission(viewer: Viewer, body: unknown): SubmissionInput {
  if (!isPlainObject(body))
    throw new EngineError(
      'VALIDATION_FAILED',
      `the body must be a JSON object like {"job": {"workflow": "<name>"}, "parameters": {…}}; got ${describe(body)}`,
    );
  if (body.client !== undefined && body.client !== null && body.client !== viewer.client)
    throw new EngineError(
      'VALIDATION_FAILED',
      `body client ${describe(body.client)} does not match the authenticated client "${viewer.client}"`,
    );
  const job = body.job;
  if (!isPlainObject(job))
    throw new EngineError(
      'VALIDATION_FAILED',
      `job must be an object with at least "workflow"; got ${describe(job)}`,
    );
  rejectUnknownFields('job', job, JOB_FIELDS);
  if (typeof job.workflow !== 'string' || job.workflow.trim() === '')
    throw new EngineError(
      'VALIDATION_FAILED',
      `job.workflow must be a workflow name; got ${describe(job.workflow)}`,
    );
  const present = (v: unknown): boolean => v !== undefined && v !== null;
  const parameters = present(body.parameters) ? body.parameters : {};
  if (!isPlainObject(parameters))
    throw new EngineError('VALIDATION_FAILED', `parameters must be an object; got ${describe(parameters)}`);
  return {
    workflow: job.workflow.trim(),
    priority: present(job.priority) ? parseInteger('job.priority', job.priority, 1, 10) : DEFAULT_PRIORITY,
    runAt: present(job.run_at) ? parseTimestampIn('job.run_at', job.run_at) : null,
    semaphoreUrl: present(job.semaphore_url) ? parseHttpUrl('job.semaphore_url', job.semaphore_url) : null,
    persist: present(job.persist) ? parseFlag('job.persist', job.persist) : false,
    topOfQueue: present(job.top_of_queue) ? parseFlag('job.top_of_queue', job.top_of_queue) : false,
    parameters,
    idempotencyKey: present(job.idempotency_key) ? parseIdempotencyKey(job.idempotency_key) : null,
  };
}

/** JSON text with object keys sorted at every level, so equal content gives equal text. */
function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  if (typeof value === 'object' && value !== null) {
    const entries = Object.keys(value)
      .sort()
      .map((k) => `${JSON.stringify(k)}:${canonicalJson((value as Record<string, unknown>)[k])}`);
    return `{${entries.join(',')}}`;
  }
  return JSON.stringify(value) ?? 'null';
}

/**
 * The fingerprint of a submission's content, stored with its idempotency key: sha-256 (hex) of
 * the values read from the body — workflow, priority, run_at (null when not given), semaphore_url,
 * persist, top_of_queue and the parameters as submitted, key order not mattering. Two submissions
 * that say the same thing (`"priority": "2"` and `2`, `run_at` with or without `Z`) have the same
 * fingerprint; the key itself and the body's `client` are not part of it. Pure.
 */
export function submissionFingerprint(input: SubmissionInput): string {
  const content = canonicalJson({
    workflow: input.workflow,
    priority: input.priority,
    run_at: input.runAt?.toISOString() ?? null,
    semaphore_url: input.semaphoreUrl,
    persist: input.persist,
    top_of_queue: input.topOfQueue,
    parameters: input.parameters,
  });
  return sha256Hex(content);
}

/** Header names whose values are masked in the job log (keys, tokens, credentials). */
const SECRET_HEADER =
  /(^|[-_])(api[-_]?key|auth[-_]?key|key|authorization|auth|token|secret|password|cookie|signature)([-_]|$)/i;

/** Most header names whose {@link SECRET_HEADER} answer is remembered (past this, each is tested). */
const MAX_KNOWN_HEADER_NAMES = 256;

/** Header name → whether it is secret, for the names seen so far (a request sends the same few). */
const knownHeaderNames = new Map<string, boolean>();

/** Whether header `name` holds a secret ({@link SECRET_HEADER}), remembered per name. */
function isSecretHeader(name: string): boolean {
  let secret = knownHeaderNames.get(name);
  if (secret === undefined) {
    secret = SECRET_HEADER.test(name);
    if (knownHeaderNames.size < MAX_KNOWN_HEADER_NAMES) knownHeaderNames.set(name, secret);
  }
  return secret;
}

/**
 * Masks a secret: every character but the last 4 becomes `*` (values of 8 characters or fewer
 * are masked whole, since their last 4 would give away too much).
 */
export function maskSecret(value: string): string {
  if (value.length <= 8) return '*'.repeat(value.length);
  return '*'.repeat(value.length - 4) + value.slice(-4);
}

/**
 * Copies request headers for the job log with every key-like header (`api-key`, `x-api-key`,
 * `x-auth-key`, `authorization`, cookies, tokens, secrets) masked but its last 4 characters
 * (SPEC section 10; the seed shows `"HTTP_API_KEY":"****…3e2d"`).
 */
export function maskHeaders(headers: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const name of Object.keys(headers)) {
    const value = headers[name];
    if (value === undefined) continue;
    if (!isSecretHeader(name)) out[name] = value;
    else if (Array.isArray(value)) out[name] = value.map((v) => maskSecret(String(v)));
    else out[name] = maskSecret(typeof value === 'string' ? value : JSON.stringify(value));
  }
  return out;
}

/** Where a submission came from, for the first log entry. */
export interface SubmissionRequest {
  /** `POST /job` (a bare path gets `POST ` in front). */
  path: string;
  remoteAddr: string;
  headers: Record<string, unknown>;
}

/** The message of the first log entry: `{path, remote_addr, headers, parameters: <body>, payload: "job_created"}`. */
export function submissionLogMessage(request: SubmissionRequest, body: unknown): string {
  const path = request.path.startsWith('/') ? `POST ${request.path}` : request.path;
  return JSON.stringify({
    path,
    remote_addr: request.remoteAddr,
    headers: maskHeaders(request.headers),
    parameters: body,
    payload: 'job_created',
  });
}

/** Everything needed to write a new job. */
export interface NewJob {
  client: string;
  workflow: string;
  priority: number;
  persist: boolean;
  topOfQueue: boolean;
  runAt: Date;
  semaphoreUrl: string | null;
  parameters: Record<string, unknown>;
  resolvedParameters: Record<string, unknown>;
  definition: WorkflowDefinition;
  definitionSource: 'client' | 'common';
  rerunOf: number | null;
  /** `job.idempotency_key` and the fingerprint of the submission ({@link submissionFingerprint}); none when absent. */
  idempotency?: { key: string; fingerprint: string } | null;
}

/** `content_id` of a job: the resolved parameter when it is a string or number, else null. */
export function contentIdOf(resolved: Record<string, unknown>): string | null {
  const v = resolved.content_id;
  return typeof v === 'string' ? v : typeof v === 'number' ? String(v) : null;
}

/** The first state of a new job (SPEC 5.3): scheduled if `run_at` is in the future, else pending if it has a semaphore, else queued. */
export function initialState(runAt: Date, semaphoreUrl: string | null, now: Date): JobState {
  if (runAt.getTime() > now.getTime()) return 'scheduled';
  return semaphoreUrl ? 'pending' : 'queued';
}

/**
 * The tasks of a definition with `needs` resolved: given in the file wins; omitted means the
 * task above (none for the first). Each carries its `slots` and its concurrency key rendered
 * against `scope` (`taskWeightColumns`, docs/task-slots-and-concurrency.md).
 */
export function resolveTasks(
  def: WorkflowDefinition,
  scope: ConcurrencyKeyScope = {
    parameters: {},
    job: { client: '', workflow: def.name, priority: DEFAULT_PRIORITY },
  },
): ({ name: string; queue: string; needs: string[] } & TaskWeightColumns)[] {
  return def.tasks.map((t, i) => ({
    name: t.name,
    queue: t.queue || 'work',
    needs: Array.isArray(t.needs) ? t.needs : i === 0 ? [] : [def.tasks[i - 1]!.name],
    ...taskWeightColumns(t, scope),
  }));
}

/** One submission to write: the job, when it was submitted, and its first log entry. */
export interface JobToInsert {
  job: NewJob;
  /** The submission time: `created_at`, `updated_at`, and `queued_at` of a queued job. */
  now: Date;
  /** The message of the first log entry (cut like every log message when too long). */
  firstLog: string;
  /** The job's trace ids (tracing on: src/engine/tracing), written with the job. */
  trace?: JobTraceIds;
  /**
   * Wake the scheduler (a scheduled or pending job) with the payload `0` instead of the job's id,
   * so that the wake-ups of many jobs written together collapse into one at commit
   * (`POST /jobs/batch`). The scheduler treats every numeric payload alike.
   */
  sharedWake?: boolean;
}

/** What writing one submission did. */
export type InsertOutcome =
  /** A new job, in its first state. */
  | { created: true; id: number; state: JobState }
  /**
   * Nothing written: its idempotency key already answers with job `id` (taken within the
   * retention window, by an earlier submission or by one before it in the same batch).
   * `sameContent` tells whether that job was submitted with the same content (fingerprint).
   */
  | { created: false; id: number; sameContent: boolean };

/**
 * Writes new jobs in ONE statement, `insertJobs` of src/store/queries/jobs.ts (see {@link insertJob}
 * for what each gets). All or nothing: when the statement fails, none of them is written.
 * A job with an idempotency key is written only if its key is free (never taken, or taken longer
 * ago than the `idempotency_retention` setting); otherwise its outcome names the job that holds
 * the key. Two jobs of one call with the same client and key are sent once: the later ones get
 * the first one's outcome (as a duplicate), exactly as if they had come in a later batch.
 * @returns per job, in the order given, what was written.
 * @throws the driver's error when the statement fails.
 */
export async function insertJobs(q: Queryable, items: readonly JobToInsert[]): Promise<InsertOutcome[]> {
  if (items.length === 0) return [];
  // Per item, the index of the submission sent for it; a key seen earlier in this call is not sent again.
  const sent: JobToInsert[] = [];
  const sentFor = new Array<number>(items.length);
  const firstWithKey = new Map<string, number>();
  items.forEach((item, i) => {
    const key = item.job.idempotency?.key;
    const slot = key === undefined ? undefined : firstWithKey.get(`${item.job.client}\u0000${key}`);
    if (slot !== undefined) sentFor[i] = slot;
    else {
      const index = sent.push(item) - 1;
      sentFor[i] = index;
      if (key !== undefined) firstWithKey.set(`${item.job.client}\u0000${key}`, index);
    }
  });
  const { params, states } = insertParams(sent);
  const rows = await insertJobsQuery.rows(q, params);
  const bySlot = new Array<(typeof rows)[number]>(sent.length);
  for (const r of rows) bySlot[Number(r.ord) - 1] = r;
  return items.map((item, i): InsertOutcome => {
    const slot = sentFor[i]!;
    const row = bySlot[slot]!;
    const id = Number(row.id);
    if (row.created && sent[slot] === item) return { created: true, id, state: states[slot]! };
    // A duplicate: of a key held before this batch (the holder's fingerprint comes back), or of
    // the submission sent for it in this batch, which now holds the key.
    const holder = row.created ? sent[slot]!.job.idempotency?.fingerprint : row.key_fingerprint;
    return { created: false, id, sameContent: item.job.idempotency?.fingerprint === holder };
  });
}

/** The arrays of the `insertJobs` statement for `items` (no two with one client and key), and each job's first state. */
function insertParams(items: readonly JobToInsert[]): { params: InsertJobsParams; states: JobState[] } {
  const p: InsertJobsParams = {
    clients: [],
    workflows: [],
    priorities: [],
    states: [],
    persists: [],
    parameters: [],
    resolvedParameters: [],
    definitions: [],
    definitionSources: [],
    contentIds: [],
    runAts: [],
    semaphoreUrls: [],
    queuedAts: [],
    rerunOfs: [],
    createdAts: [],
    topOfQueues: [],
    notifyChannels: [],
    notifyPayloads: [],
    tasks: [],
    logJobs: [],
    logMessages: [],
    idempotencyKeys: [],
    fingerprints: [],
    concurrencyKeys: [],
    concurrencyLimits: [],
    traceJobs: [],
    traceIds: [],
    traceSpanIds: [],
    traceParentSpanIds: [],
    traceFlags: [],
    retentionSetting: IDEMPOTENCY_RETENTION_SETTING,
    defaultRetentionSeconds: SETTING_DEFAULTS.idempotency_retention,
  };
  const states: JobState[] = [];
  items.forEach(({ job, now, firstLog, trace, sharedWake }, i) => {
    if (trace) {
      p.traceJobs.push(i + 1);
      p.traceIds.push(trace.traceId);
      p.traceSpanIds.push(trace.spanId);
      p.traceParentSpanIds.push(trace.parentSpanId);
      p.traceFlags.push(trace.traceFlags);
    }
    const state = initialState(job.runAt, job.semaphoreUrl, now);
    states.push(state);
    p.clients.push(job.client);
    p.workflows.push(job.workflow);
    p.priorities.push(job.priority);
    p.states.push(state);
    p.persists.push(job.persist);
    p.parameters.push(JSON.stringify(job.parameters));
    p.resolvedParameters.push(JSON.stringify(job.resolvedParameters));
    p.definitions.push(definitionText(job.definition));
    p.definitionSources.push(job.definitionSource);
    p.contentIds.push(contentIdOf(job.resolvedParameters));
    p.runAts.push(job.runAt.toISOString());
    p.semaphoreUrls.push(job.semaphoreUrl);
    p.queuedAts.push(state === 'queued' ? now.toISOString() : null);
    p.rerunOfs.push(job.rerunOf);
    p.createdAts.push(now.toISOString());
    p.topOfQueues.push(job.topOfQueue);
    p.notifyChannels.push(state === 'queued' ? CHANNELS.admission : CHANNELS.scheduler);
    p.notifyPayloads.push(state === 'queued' ? 'job_queued' : sharedWake ? '0' : null);
    p.tasks.push(tasksText(job));
    p.idempotencyKeys.push(job.idempotency?.key ?? null);
    p.fingerprints.push(job.idempotency?.fingerprint ?? null);
    const concurrency = renderConcurrency(job.definition, job);
    p.concurrencyKeys.push(concurrency?.key ?? null);
    p.concurrencyLimits.push(concurrency?.limit ?? null);
    const messages = [
      fitLogMessage(firstLog),
      job.definitionSource === 'client'
        ? 'Using client definitions.'
        : 'No client definitions. Using common definitions.',
    ];
    if (state === 'scheduled') messages.push(fitLogMessage(`Job will run at: "${job.runAt.toISOString()}"`));
    if (state === 'pending')
      messages.push(fitLogMessage(`Job is waiting for its semaphore: "${job.semaphoreUrl ?? ''}"`));
    for (const m of messages) {
      p.logJobs.push(i + 1);
      p.logMessages.push(m);
    }
  });
  return { params: p, states };
}

/**
 * Writes a new job in ONE statement: the job row, its search row, its tasks (all `waiting`), its
 * log lines — `firstLog` (the submission entry), the "definitions" line and, when scheduled or
 * pending, the run-at or semaphore line — and the wake-up of admission (queued) or the scheduler
 * (scheduled, pending). Atomic on its own; runs equally inside the caller's transaction.
 * @param firstLog - the message of the first log entry (cut like every log message when too long).
 * @param trace - the job's trace ids (tracing on), written into `job_traces` by the same statement.
 * @returns what was written: the new id and its state, or (a job with an idempotency key that is
 * taken) the id of the job holding the key.
 * @throws the driver's error when the statement fails (nothing is written then).
 */
export async function insertJob(
  q: Queryable,
  job: NewJob,
  now: Date,
  firstLog: string,
  trace?: JobTraceIds,
): Promise<InsertOutcome> {
  const [outcome] = await insertJobs(q, [{ job, now, firstLog, ...(trace ? { trace } : {}) }]);
  return outcome!;
}

// A definition object is shared by every submission of its workflow until the catalog reloads:
// its JSON and its resolved tasks are made once per object.
const definitionTexts = new WeakMap<WorkflowDefinition, string>();
const taskTexts = new WeakMap<WorkflowDefinition, string>();

function definitionText(def: WorkflowDefinition): string {
  let text = definitionTexts.get(def);
  if (text === undefined) {
    text = JSON.stringify(def);
    definitionTexts.set(def, text);
  }
  return text;
}

/** The tasks JSON of `job`; made once per definition unless a concurrency key depends on the job. */
function tasksText(job: NewJob): string {
  const def = job.definition;
  if (hasTemplatedConcurrencyKey(def.tasks))
    return JSON.stringify(
      resolveTasks(def, {
        parameters: job.resolvedParameters,
        job: { client: job.client, workflow: job.workflow, priority: job.priority },
      }),
    );
  let text = taskTexts.get(def);
  if (text === undefined) {
    text = JSON.stringify(resolveTasks(def));
    taskTexts.set(def, text);
  }
  return text;
}

/** Writes submissions, batched (see {@link submissionWriter}). */
export interface SubmissionWriter {
  /**
   * Queues a submission for the next batch and resolves once the batch has committed.
   * @returns what was written (see {@link InsertOutcome}).
   * @throws the driver's error when the submission, written alone, still fails.
   */
  write(item: JobToInsert): Promise<InsertOutcome>;
}

/** Most submissions written by one statement. */
export const MAX_SUBMISSION_BATCH = 64;

const writers = new WeakMap<Executor, SubmissionWriter>();

/**
 * The submission writer of `db` (one per executor): group commit of `POST /job`. A submission
 * that finds no batch in flight is written at once; submissions that arrive while batches are
 * in flight wait for one to finish and are then written together, up to
 * {@link MAX_SUBMISSION_BATCH} by one statement ({@link insertJobs}): one round trip and one commit
 * for all of them. One batch is in flight at a time: while it is, the process reads the next
 * requests, and the next batch is the larger for it (on the 2-core bench machine this took less
 * CPU per job on both sides, and no less throughput, than two batches in flight).
 * A batch is all or nothing; when it fails as a whole, its submissions are written again one by
 * one, so one bad submission never fails the others.
 */
export function submissionWriter(db: Executor): SubmissionWriter {
  let writer = writers.get(db);
  if (!writer) {
    writer = createGroupCommit({
      writeBatch: (items: JobToInsert[]) => insertJobs(db, items),
      maxBatch: MAX_SUBMISSION_BATCH,
      parallel: 1,
    });
    writers.set(db, writer);
  }
  return writer;
}
