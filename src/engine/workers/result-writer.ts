/**
 * Group commit of attempt results. Results that finish close together are written in one
 * transaction, which turns many commits (each a disk flush on the server) and many round trips
 * into a few: the jobs of the whole batch are locked by one statement, and its outcomes —
 * successes, failures and hand-backs alike — are recorded by two more however many there are
 * ({@link writeOutcomes}; one more to read the retry settings when a failure is among them).
 * Results queued with `write` (a function of the transaction) run after them, one by one. A few
 * batches may be in flight at once (one per connection), so a slow batch does not hold the
 * others back.
 */
import type { Queryable } from '../../store/executor.js';
import type { EngineContext } from '../context.js';
import { createGroupCommit } from '../group-commit.js';
import type { HandoffEnds } from './claim-loop.js';
import {
  lockJobs,
  writeOutcomes,
  type AttemptFailure,
  type AttemptOutcome,
  type AttemptRef,
  type FailureOutcome,
  type SuccessResult,
} from './results.js';

/** Writes results, batched. */
export interface ResultWriter {
  /**
   * Queues a successful attempt for the next batch and resolves with its outcome once the batch
   * has committed: `recorded`, or `stale` when the attempt was no longer the task's live attempt.
   * @throws the commit's error (when the result, written alone, still fails).
   */
  success(result: SuccessResult): Promise<'recorded' | 'stale'>;
  /**
   * Queues a failed (or stalled) attempt for the next batch, recorded with the batch's other
   * outcomes (see `writeFailure` for what it does), and resolves once the batch has committed.
   * @throws the commit's error (when the result, written alone, still fails).
   */
  failure(ref: AttemptRef, failure: AttemptFailure): Promise<FailureOutcome>;
  /**
   * Queues the hand-back of a running attempt at shutdown for the next batch: attempt
   * `cancelled`, task back to `ready` at once without using a retry (see `planOutcomes`).
   * @throws the commit's error (when the result, written alone, still fails).
   */
  handBack(ref: AttemptRef, reason?: string): Promise<'handed-back' | 'stale'>;
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

/**
 * The hand-off claim each batch offers before its commit, with the queues it made tasks ready on
 * (the claim loop's `claimWithin`, which decides whether to claim): null, or the two ends of which
 * the writer calls one.
 */
export type HandoffClaim = (tx: Queryable, readyQueues: ReadonlySet<string>) => Promise<HandoffEnds | null>;

type Item =
  | { kind: 'outcome'; jobId: number; outcome: AttemptOutcome }
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
 * @param options.handoff - when set, each batch offers the pool a claim in the same transaction,
 *   after its writes (the claim loop decides: when the batch made tasks ready on its queues, or
 *   slots it freed are not yet claimed for): one statement more in it, and one pass, commit and
 *   notification fewer before the freed slot or the job's next task is used.
 */
export function createResultWriter(
  ctx: EngineContext,
  options: { maxBatch?: number; parallel?: number; handoff?: HandoffClaim } = {},
): ResultWriter {
  const { db, logger } = ctx;

  /** Writes `batch` in `tx`; returns each item's outcome in batch order. */
  const apply = async (tx: Queryable, batch: Item[], readyQueues: Set<string>): Promise<unknown[]> => {
    const locked = await lockJobs(
      tx,
      batch.map((i) => i.jobId).sort((a, b) => a - b),
    );
    const out: unknown[] = new Array(batch.length);
    const outcomes = batch.flatMap((item, i) => (item.kind === 'outcome' ? [{ item, i }] : []));
    if (outcomes.length > 0) {
      const results = await writeOutcomes(
        tx,
        ctx,
        outcomes.map((o) => o.item.outcome),
        locked,
        readyQueues,
      );
      outcomes.forEach((o, k) => (out[o.i] = results[k]));
    }
    for (let i = 0; i < batch.length; i++) {
      const item = batch[i]!;
      if (item.kind === 'apply') out[i] = await item.apply(tx);
    }
    return out;
  };

  /**
   * Writes one batch in one transaction, offering the hand-off claim last in it; its tasks start
   * once the commit is known (or are forgotten with it).
   */
  const writeBatch = async (batch: Item[]): Promise<unknown[]> => {
    const handoff: { ends: HandoffEnds | null } = { ends: null };
    try {
      const out = await db.transaction(async (tx) => {
        const readyQueues = new Set<string>();
        const results = await apply(tx, batch, readyQueues);
        if (options.handoff) handoff.ends = await options.handoff(tx, readyQueues);
        return results;
      });
      handoff.ends?.committed();
      return out;
    } catch (error) {
      handoff.ends?.rolledBack(error);
      throw error;
    }
  };

  const group = createGroupCommit<Item, unknown>({
    writeBatch,
    maxBatch: options.maxBatch ?? 64,
    parallel: db.kind === 'pglite' ? 1 : (options.parallel ?? 2),
    onBatchFailure: (err, results) =>
      logger.warn({ err, results }, 'batched result write failed; writing one by one'),
  });

  return {
    success: ({ outputJson, ...ref }) =>
      group.write({
        kind: 'outcome',
        jobId: ref.jobId,
        outcome: { kind: 'success', ref, outputJson },
      }) as Promise<'recorded' | 'stale'>,
    failure: (ref, failure) =>
      group.write({
        kind: 'outcome',
        jobId: ref.jobId,
        outcome: { kind: 'failure', ref, failure },
      }) as Promise<FailureOutcome>,
    handBack: (ref, reason = 'worker shutdown') =>
      group.write({
        kind: 'outcome',
        jobId: ref.jobId,
        outcome: { kind: 'hand_back', ref, reason },
      }) as Promise<'handed-back' | 'stale'>,
    write: <T>(jobId: number, fn: (tx: Queryable) => Promise<T>) =>
      group.write({ kind: 'apply', jobId, apply: fn }) as Promise<T>,
    drain: () => group.drain(),
  };
}
