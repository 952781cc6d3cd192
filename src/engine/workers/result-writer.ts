/**
 * Group commit of attempt results. Results that finish close together are written in one
 * transaction, which turns many commits (each a disk flush on the server) and many connection
 * hand-offs into one. A few batches may be in flight at once (one per connection), so a slow
 * batch does not hold the others back.
 */
import type { Logger } from 'pino';
import type { Executor, Queryable } from '../../store/executor.js';

/** Writes results, batched. */
export interface ResultWriter {
  /**
   * Queues `apply` (one result, for job `jobId`) for the next batch and resolves with its outcome
   * once the batch has committed.
   * @throws the error `apply` threw when written alone, or the commit's error.
   */
  write<T>(jobId: number, apply: (tx: Queryable) => Promise<T>): Promise<T>;
  /** Waits until everything queued is written. */
  drain(): Promise<void>;
}

interface Item {
  jobId: number;
  apply: (tx: Queryable) => Promise<unknown>;
  resolve: (v: unknown) => void;
  reject: (e: unknown) => void;
}

/**
 * Creates a {@link ResultWriter}.
 *
 * Inside a batch the results are applied in job-id order, so concurrent batches (of this process
 * or another) lock job rows in one global order and cannot deadlock each other. When a batch
 * fails as a whole (one result's statement failed, a serialisation problem), its results are
 * written again one transaction each, so one bad result never holds back the rest.
 * @param options.maxBatch - most results per transaction; default 64.
 * @param options.parallel - batches in flight at once; default 4 (1 on PGlite, which has one connection).
 */
export function createResultWriter(
  db: Executor,
  logger: Logger,
  options: { maxBatch?: number; parallel?: number } = {},
): ResultWriter {
  const maxBatch = options.maxBatch ?? 64;
  const parallel = db.kind === 'pglite' ? 1 : Math.max(1, options.parallel ?? 4);
  const queue: Item[] = [];
  const inFlight = new Set<Promise<void>>();

  const writeBatch = async (batch: Item[]): Promise<void> => {
    batch.sort((a, b) => a.jobId - b.jobId);
    let values: unknown[];
    try {
      values = await db.transaction(async (tx) => {
        const out: unknown[] = [];
        for (const item of batch) out.push(await item.apply(tx));
        return out;
      });
    } catch (error) {
      if (batch.length === 1) {
        batch[0]!.reject(error);
        return;
      }
      logger.warn({ err: error, results: batch.length }, 'batched result write failed; writing one by one');
      for (const item of batch) {
        try {
          item.resolve(await db.transaction((tx) => item.apply(tx)));
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
    write<T>(jobId: number, apply: (tx: Queryable) => Promise<T>): Promise<T> {
      return new Promise<T>((resolve, reject) => {
        queue.push({ jobId, apply, resolve: resolve as (v: unknown) => void, reject });
        pump();
      });
    },
    async drain() {
      while (inFlight.size > 0) await Promise.all([...inFlight]);
    },
  };
}
