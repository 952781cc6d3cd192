/**
 * Group commit of attempt results. Results that finish close together are written in one
 * transaction, which turns many commits (each a disk flush on the server) and many round trips
 * into a few: the jobs of the whole batch are locked by one statement, its successes are recorded
 * by two more however many there are ({@link writeSuccesses}), and only failures and hand-backs
 * are applied one by one. A few batches may be in flight at once (one per connection), so a slow
 * batch does not hold the others back.
 */
import type { Queryable } from '../../store/executor.js';
import type { EngineContext } from '../context.js';
import { createGroupCommit } from '../group-commit.js';
import { lockJobs, writeSuccesses, type SuccessResult } from './results.js';

/** Writes results, batched. */
export interface ResultWriter {
  /**
   * Queues a successful attempt for the next batch and resolves with its outcome once the batch
   * has committed: `recorded`, or `stale` when the attempt was no longer the task's live attempt.
   * @throws the commit's error (when the result, written alone, still fails).
   */
  success(result: SuccessResult): Promise<'recorded' | 'stale'>;
  /**
   * Queues `apply` (one other result — a failure, a hand-back — for job `jobId`) for the next
   * batch and resolves with its outcome once the batch has committed. The job is already locked
   * by the batch's transaction when `apply` runs.
   * @throws the error `apply` threw when written alone, or the commit's error.
   */
  write<T>(jobId: number, apply: (tx: Queryable) => Promise<T>): Promise<T>;
  /** Waits until everything queued is written. */
  drain(): Promise<void>;
}

type Item =
  | { kind: 'success'; jobId: number; result: SuccessResult }
  | { kind: 'apply'; jobId: number; apply: (tx: Queryable) => Promise<unknown> };

/**
 * Creates a {@link ResultWriter}.
 *
 * A batch locks the jobs of all its results first, in job-id order, so concurrent batches (of
 * this process or another) take job locks in one global order and cannot deadlock each other.
 * When a batch fails as a whole (one result's statement failed, a serialisation problem), its
 * results are written again one transaction each, so one bad result never holds back the rest.
 * @param options.maxBatch - most results per transaction; default 64.
 * @param options.parallel - batches in flight at once; default 2 (1 on PGlite, which has one
 *   connection). Fewer batches in flight make each one larger under load: fewer round trips and
 *   commits per result.
 */
export function createResultWriter(
  ctx: EngineContext,
  options: { maxBatch?: number; parallel?: number } = {},
): ResultWriter {
  const { db, logger } = ctx;

  /** Writes `batch` in `tx`; returns each item's outcome in batch order. */
  const apply = async (tx: Queryable, batch: Item[]): Promise<unknown[]> => {
    const locked = await lockJobs(
      tx,
      batch.map((i) => i.jobId).sort((a, b) => a - b),
    );
    const out: unknown[] = new Array(batch.length);
    const successes = batch.flatMap((item, i) => (item.kind === 'success' ? [{ item, i }] : []));
    if (successes.length > 0) {
      const outcomes = await writeSuccesses(
        tx,
        ctx,
        successes.map((s) => s.item.result),
        locked,
      );
      successes.forEach((s, k) => (out[s.i] = outcomes[k]));
    }
    for (let i = 0; i < batch.length; i++) {
      const item = batch[i]!;
      if (item.kind === 'apply') out[i] = await item.apply(tx);
    }
    return out;
  };

  const group = createGroupCommit<Item, unknown>({
    writeBatch: (batch) => db.transaction((tx) => apply(tx, batch)),
    maxBatch: options.maxBatch ?? 64,
    parallel: db.kind === 'pglite' ? 1 : (options.parallel ?? 2),
    onBatchFailure: (err, results) =>
      logger.warn({ err, results }, 'batched result write failed; writing one by one'),
  });

  return {
    success: (result) =>
      group.write({ kind: 'success', jobId: result.jobId, result }) as Promise<'recorded' | 'stale'>,
    write: <T>(jobId: number, fn: (tx: Queryable) => Promise<T>) =>
      group.write({ kind: 'apply', jobId, apply: fn }) as Promise<T>,
    drain: () => group.drain(),
  };
}
