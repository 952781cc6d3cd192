/**
 * Group commit: items that arrive while earlier ones are being written are written together, by
 * one call that writes a whole batch (one transaction or one statement: one round trip and one
 * commit for many items). Used for task results (`workers/result-writer.ts`) and submissions
 * (`jobs/submit.ts`).
 */

/** A batching queue over a batch writer. */
export interface GroupCommit<I, O> {
  /**
   * Queues `item` for the next batch; resolves with its outcome once that batch is written.
   * @throws the error its batch threw when the item was written alone.
   */
  write(item: I): Promise<O>;
  /** Waits until every batch in flight has been written. */
  drain(): Promise<void>;
}

/** Options of {@link createGroupCommit}. */
export interface GroupCommitOptions<I, O> {
  /**
   * Writes a batch atomically and returns each item's outcome, in the order given. When it
   * throws for a batch of several, each item is written again alone, so one bad item never holds
   * back the others.
   */
  writeBatch: (items: I[]) => Promise<O[]>;
  /** Most items per batch. */
  maxBatch: number;
  /** Batches in flight at once (at least 1). */
  parallel: number;
  /** Told when a batch of several failed and is being written one by one. */
  onBatchFailure?: (error: unknown, size: number) => void;
}

/** Creates a {@link GroupCommit}. */
export function createGroupCommit<I, O>(options: GroupCommitOptions<I, O>): GroupCommit<I, O> {
  const { writeBatch, maxBatch } = options;
  const parallel = Math.max(1, options.parallel);
  const queue: { item: I; resolve: (v: O) => void; reject: (e: unknown) => void }[] = [];
  const inFlight = new Set<Promise<void>>();

  const flush = async (batch: typeof queue): Promise<void> => {
    let outcomes: O[];
    try {
      outcomes = await writeBatch(batch.map((p) => p.item));
    } catch (error) {
      if (batch.length === 1) {
        batch[0]!.reject(error);
        return;
      }
      options.onBatchFailure?.(error, batch.length);
      for (const p of batch) {
        try {
          p.resolve((await writeBatch([p.item]))[0]!);
        } catch (err) {
          p.reject(err);
        }
      }
      return;
    }
    batch.forEach((p, i) => p.resolve(outcomes[i]!));
  };

  const pump = (): void => {
    while (queue.length > 0 && inFlight.size < parallel) {
      const p: Promise<void> = flush(queue.splice(0, maxBatch)).finally(() => {
        inFlight.delete(p);
        pump();
      });
      inFlight.add(p);
    }
  };

  return {
    write(item) {
      return new Promise<O>((resolve, reject) => {
        queue.push({ item, resolve, reject });
        pump();
      });
    },
    async drain() {
      while (inFlight.size > 0) await Promise.all([...inFlight]);
    },
  };
}
