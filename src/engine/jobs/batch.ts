/**
 * Bulk submission (`POST /jobs/batch`): up to {@link MAX_BATCH_JOBS} submissions in one call, each
 * exactly a `POST /job` body, each read, validated and checked by the same code as `POST /job`
 * ({@link prepareSubmission}), each answered on its own. The good items are written together,
 * set-based ({@link insertJobs}: one statement, one commit for the whole batch); a bad item is
 * answered with its error and nothing of it is written. See docs/api.md, "Bulk submission".
 */
import { EngineError } from '../../errors/catalogue.js';
import { isStoreConnectionError } from '../../store/connection-errors.js';
import type { EngineContext } from '../context.js';
import type { Viewer } from './records.js';
import { answerSubmission, prepareSubmission, type PreparedSubmission } from './service.js';
import { insertJobs, type InsertOutcome, type JobToInsert, type SubmissionRequest } from './submit.js';
import { describe } from './time.js';

/** Most submissions one batch may hold. */
export const MAX_BATCH_JOBS = 1000;

/** Items prepared at once (egress checks may wait on DNS, storage checks on the database). */
const PREPARE_CONCURRENCY = 16;

/** The answer for one item of a batch, at its index (0-based, the order given). */
export type BatchItemResult =
  /** Written, or answered by its idempotency key: the id `POST /job` would answer. */
  | { index: number; id: number; result: 'accepted' }
  /**
   * Refused: nothing of it was written. `status` and `error` (and `id` when a job is concerned)
   * are what `POST /job` would have answered for this body.
   */
  | { index: number; status: number; error: string; id?: number };

/** Options of {@link submitJobBatch}. */
export interface BatchOptions {
  /**
   * A check run on each item before it is prepared (the HTTP route refuses there what its hooks
   * refuse for `POST /job`: a body `client` that is not the caller, a body over 1 MiB).
   * @returns the item's error, or null to go on.
   */
  checkItem?: (item: unknown, index: number) => EngineError | null;
}

/**
 * Reads the list of a batch: a JSON array of 1 to {@link MAX_BATCH_JOBS} submissions.
 * @throws {EngineError} `VALIDATION_FAILED` (400) for anything else, naming what is accepted.
 */
export function readBatch(body: unknown): unknown[] {
  const shape = `a JSON array of 1 to ${MAX_BATCH_JOBS} submissions, each a POST /job body like {"job": {"workflow": "<name>"}, "parameters": {…}}`;
  if (!Array.isArray(body))
    throw new EngineError('VALIDATION_FAILED', `the body must be ${shape}; got ${describe(body)}`);
  if (body.length === 0)
    throw new EngineError('VALIDATION_FAILED', `the body must be ${shape}; got an empty array`);
  if (body.length > MAX_BATCH_JOBS)
    throw new EngineError(
      'VALIDATION_FAILED',
      `the body must be ${shape}; got ${body.length} submissions; split them into batches of at most ${MAX_BATCH_JOBS}`,
    );
  return body;
}

/**
 * Submits a batch (`POST /jobs/batch`). Per item, in order: the item is read, validated and checked
 * exactly as `POST /job` does it ({@link prepareSubmission}: workflow, parameters, priority, run_at,
 * semaphore_url, idempotency key, egress rules for callback and semaphore URLs, client storage),
 * as the viewer's client. Then every good item is written by ONE statement ({@link insertJobs}):
 * one round trip, one commit, and one wake-up of admission (and of the scheduler) for the batch.
 * Should that statement fail for a reason other than the database being unreachable, the good
 * items are written again in halves until the item that fails is alone, so it never takes the
 * others with it. Idempotency keys behave per item as in `POST /job`, a key repeated inside the
 * batch included (the later items answer the first one's job, or a 409 when their content differs).
 *
 * Mixed batches: the good items are written and the bad ones are not — the result lists both.
 * @returns one result per item, in the order given.
 * @throws {EngineError} `VALIDATION_FAILED` (400) when `body` is not an array of 1 to
 * {@link MAX_BATCH_JOBS} items; a database connection error (nothing or only whole halves
 * written: the result of each written item is lost with the request, so retry with idempotency keys).
 */
export async function submitJobBatch(
  ctx: EngineContext,
  viewer: Viewer,
  body: unknown,
  request: SubmissionRequest,
  options: BatchOptions = {},
): Promise<BatchItemResult[]> {
  const items = readBatch(body);
  const results = new Array<BatchItemResult>(items.length);
  const prepared: { index: number; p: PreparedSubmission }[] = [];

  let next = 0;
  const prepareNext = async (): Promise<void> => {
    while (next < items.length) {
      const index = next++;
      const item = items[index];
      try {
        const refused = options.checkItem?.(item, index);
        if (refused) throw refused;
        const p = await prepareSubmission(ctx, viewer, item, request);
        p.item.sharedWake = true;
        prepared.push({ index, p });
      } catch (err) {
        if (!(err instanceof EngineError) || err.status >= 500) throw err;
        results[index] = refusal(index, err);
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(PREPARE_CONCURRENCY, items.length) }, prepareNext));
  prepared.sort((a, b) => a.index - b.index);

  const outcomes = await writeSplitting(
    ctx,
    prepared.map((x) => x.p.item),
  );
  prepared.forEach(({ index, p }, i) => {
    const outcome = outcomes[i]!;
    if (outcome instanceof Error) {
      results[index] = { index, status: 500, error: 'internal error: the item could not be written' };
      return;
    }
    try {
      results[index] = { index, id: answerSubmission(p, outcome).id, result: 'accepted' };
    } catch (err) {
      if (!(err instanceof EngineError)) throw err;
      results[index] = refusal(index, err);
    }
  });
  return results;
}

/** The result of a refused item: the JSON error `POST /job` answers, with the item's index. */
function refusal(index: number, err: EngineError): BatchItemResult {
  return {
    index,
    status: err.status,
    error: err.message,
    ...(err.jobId !== undefined ? { id: err.jobId } : {}),
  };
}

/**
 * Writes `items` by one statement; when it fails (not for the connection), writes each half
 * again the same way, so that only an item that fails alone is answered with its error.
 * @returns per item, its outcome or the error of the statement that wrote it alone.
 * @throws a connection error (the database is unreachable: writing more pieces would not help).
 */
async function writeSplitting(ctx: EngineContext, items: JobToInsert[]): Promise<(InsertOutcome | Error)[]> {
  if (items.length === 0) return [];
  try {
    return await insertJobs(ctx.db, items);
  } catch (err) {
    if (isStoreConnectionError(err)) throw err;
    if (items.length === 1) {
      ctx.logger.error({ err }, 'a submission of a batch could not be written');
      return [err instanceof Error ? err : new Error(String(err))];
    }
    const half = Math.ceil(items.length / 2);
    return [
      ...(await writeSplitting(ctx, items.slice(0, half))),
      ...(await writeSplitting(ctx, items.slice(half))),
    ];
  }
}
