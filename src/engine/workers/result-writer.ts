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
  | {
      kind: 'success';
      jobId: number;
      result: SuccessResult;
      resolve: (v: unknown) => void;
      reject: (e: unknown) => void;
    }
  | {
      kind: 'apply';
      jobId: number;
      apply: (tx: Queryable) => Promise<unknown>;
      resolve: (v: unknown) => void;
      reject: (e: unknown) => void;
    };

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
  const maxBatch = options.maxBatch ?? 64;
  const parallel = db.kind === 'pglite' ? 1 : Math.max(1, options.parallel ?? 2);
  const queue: Item[] = [];
  const inFlight = new Set<Promise<void>>();

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

  const writeBatch = async (batch: Item[]): Promise<void> => {
    batch.sort((a, b) => a.jobId - b.jobId);
    let values: unknown[];
    try {
      values = await db.transaction((tx) => apply(tx, batch));
    } catch (error) {
      if (batch.length === 1) {
        batch[0]!.reject(error);
        return;
      }
      logger.warn({ err: error, results: batch.length }, 'batched result write failed; writing one by one');
      for (const item of batch) {
        try {
          item.resolve((await db.transaction((tx) => apply(tx, [item])))[0]);
        } catch (err) {
          item.reject(err);
        }
      }
      return;
    }
    batch.forEach((item, i) => item.resolve(values[i]));
  };

  const pump = (): void => {
    while (queue.length > 0 && inFlight.size < parallel) {
      const p: Promise<void> = writeBatch(queue.splice(0, maxBatch)).finally(() => {
        inFlight.delete(p);
        pump();
      });
      inFlight.add(p);
    }
  };

  return {
    success(result) {
      return new Promise((resolve, reject) => {
        queue.push({
          kind: 'success',
          jobId: result.jobId,
          result,
          resolve: resolve as (v: unknown) => void,
          reject,
        });
        pump();
      });
    },
    write<T>(jobId: number, fn: (tx: Queryable) => Promise<T>): Promise<T> {
      return new Promise<T>((resolve, reject) => {
        queue.push({ kind: 'apply', jobId, apply: fn, resolve: resolve as (v: unknown) => void, reject });
        pump();
      });
    },
    async drain() {
      while (inFlight.size > 0) await Promise.all([...inFlight]);
    },
  };
}
