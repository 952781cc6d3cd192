/**
 * The worker pool's claim loop: when to claim ready tasks and for how many slots. Claims run as
 * passes (one claim statement each), woken by `CHANNELS.tasks` notifications for its queues (an
 * empty payload, sent when a task holding a concurrency key stops running, wakes every pool), by
 * a freed slot, by a timer armed for the earliest delayed retry, and by a slow safety-net poll.
 * Slots are the pool's capacity (its concurrency); a task takes its `slots` of them.
 */
import type { ClockTimer } from '../clock.js';
import type { EngineContext } from '../context.js';
import { CHANNELS } from '../signals.js';
import { claimReady, msUntilNextDue, reportTooHeavyTasks, type ClaimedTask } from './claim.js';
import { repeatEvery } from './repeat.js';

/** Claim passes one worker pool keeps in flight at most (see {@link ClaimLoop.wake}). */
const MAX_CLAIMS_IN_FLIGHT = 2;

/** Options of {@link createClaimLoop}. */
export interface ClaimLoopOptions {
  /** This process's id in `workers` (stored in `attempts.worker_id`). */
  workerId: string;
  /** Queues to take tasks from (duplicates dropped). */
  queues: string[];
  /** Safety-net claim poll in ms, for wake-ups that never came. */
  pollIntervalMs: number;
  /** Slots a claim may fill now (the attempt runner's count). */
  freeSlots: () => number;
  /**
   * The pool's whole capacity in slots (its concurrency): a task with more `slots` is never claimed
   * here, and is reported in its job log when no live worker of its queue is big enough.
   */
  capacity: number;
  /** Runs a claimed task. */
  onClaimed: (task: ClaimedTask) => void;
}

/** The claim loop service. */
export interface ClaimLoop {
  /** Listens on `CHANNELS.tasks`, starts the poll and makes a first pass. */
  start(): Promise<void>;
  /** Stops claiming (timers, listener) and waits for the passes in flight. Idempotent. */
  stop(): Promise<void>;
  /** Asks for a claim pass soon. */
  wake(): void;
  /** Replaces the queues (duplicates dropped), re-reads the next due time and asks for a pass. */
  setQueues(queues: string[]): void;
}

/** A one-shot timer that keeps only the earliest of the times it is armed for. */
interface DueTimer {
  timer: ClockTimer | null;
  /** When it fires (ms of the engine's clock); Infinity when not armed. */
  at: number;
}

/**
 * Creates the {@link ClaimLoop}.
 *
 * Claims run as passes, up to {@link MAX_CLAIMS_IN_FLIGHT} at once: a slot that comes free while
 * a pass is on its way to the database starts another pass instead of waiting for it, so under
 * load claiming never becomes the one serial step. Each pass asks for the slots that are free and
 * not already asked for by a pass in flight (`reserved`). A wake-up that finds every free slot
 * reserved, or the most passes in flight, is kept (`again`) and acted on when a pass ends, so a
 * task made ready during a pass is never left waiting for the safety poll.
 */
export function createClaimLoop(ctx: EngineContext, options: ClaimLoopOptions): ClaimLoop {
  const { clock } = ctx;
  const pollMs = options.pollIntervalMs;
  let queues = [...new Set(options.queues)];
  let queueSet = new Set(queues);
  let stopped = true;
  let claimsInFlight = 0;
  /** Slots asked for by claim passes in flight. */
  let reserved = 0;
  const passes = new Set<Promise<void>>();
  let again = false;
  let claimFailures = 0;
  const due: DueTimer = { timer: null, at: Infinity };
  /** Set when a retry was scheduled: the next under-full claim re-reads the earliest due time. */
  let dueCheck = true;
  let lastDueCheck = 0;
  /** Set when the last pass took nothing but passed tasks over for their key (see claimPass). */
  let heldBackIdle = false;
  /** When tasks too heavy for every live worker were last looked for (ms of the clock); -Infinity: never. */
  let lastHeavyCheck = -Infinity;
  let poll: ClockTimer | null = null;
  let unlisten: (() => Promise<void>) | null = null;

  const wake = (): void => {
    if (stopped) return;
    const free = options.freeSlots() - reserved;
    if (claimsInFlight > 0 && (free <= 0 || claimsInFlight >= MAX_CLAIMS_IN_FLIGHT)) {
      again = true;
      return;
    }
    if (free <= 0) return;
    claimsInFlight++;
    reserved += free;
    const pass: Promise<void> = claimPass(free).finally(() => {
      claimsInFlight--;
      reserved -= free;
      passes.delete(pass);
      if (again) {
        again = false;
        wake();
      }
    });
    passes.add(pass);
  };

  /** Arms the due timer to wake the loop in `ms`, unless it is armed for earlier already. */
  const armDueTimer = (ms: number): void => {
    const at = clock.now().getTime() + ms;
    if (due.timer && due.at <= at) return;
    due.timer?.cancel();
    due.at = at;
    // 2 ms late, so the task's `run_after` has surely passed when the claim reads it.
    due.timer = clock.setTimeout(() => {
      due.timer = null;
      due.at = Infinity;
      wake();
    }, ms + 2);
  };

  /** One claim pass for `free` slots; never rejects. */
  const claimPass = async (free: number): Promise<void> => {
    let claimed: ClaimedTask[];
    let heldBack: number;
    try {
      ({ tasks: claimed, heldBack } = await claimReady(ctx.db, {
        queues,
        freeSlots: free,
        capacity: options.capacity,
        workerId: options.workerId,
        clock,
      }));
      claimFailures = 0;
    } catch (err) {
      claimFailures++;
      again = false;
      ctx.logger.error({ err }, 'claiming tasks failed; retrying');
      armDueTimer(Math.min(5_000, 100 * 2 ** Math.min(claimFailures, 6)));
      return;
    }
    let slots = 0;
    for (const task of claimed) {
      slots += task.slots;
      options.onClaimed(task);
    }
    // Full: look again. Tasks passed over for their key: the next statement's snapshot leaves
    // them out and may take what is behind them, so look again too, but not over and over when
    // a pass takes nothing (a heavy task at the head may be what stops it; a freed slot wakes us).
    const heldBackAgain = heldBack > 0 && (claimed.length > 0 || !heldBackIdle);
    heldBackIdle = heldBack > 0 && claimed.length === 0;
    if (slots >= free || heldBackAgain) again = true;
    else {
      if (dueCheck || clock.now().getTime() - lastDueCheck > pollMs) await readNextDue();
      if (clock.now().getTime() - lastHeavyCheck > pollMs) await reportHeavy();
    }
  };

  /** Writes the job log line of tasks too heavy for every live worker (at most once per poll period). */
  const reportHeavy = async (): Promise<void> => {
    lastHeavyCheck = clock.now().getTime();
    try {
      await reportTooHeavyTasks(ctx.db, queues, options.capacity, clock.now());
    } catch (err) {
      ctx.logger.warn({ err }, 'looking for tasks too heavy for every worker failed');
    }
  };

  /** Re-reads the earliest delayed task's due time and arms the timer for it. */
  const readNextDue = async (): Promise<void> => {
    dueCheck = false;
    lastDueCheck = clock.now().getTime();
    try {
      const ms = await msUntilNextDue(ctx.db, queues, clock.now());
      if (ms !== null) armDueTimer(ms);
    } catch (err) {
      ctx.logger.warn({ err }, 'reading the next retry time failed');
    }
  };

  return {
    wake,
    setQueues(next) {
      queues = [...new Set(next)];
      queueSet = new Set(queues);
      dueCheck = true;
      wake();
    },
    async start() {
      if (!stopped) return;
      stopped = false;
      unlisten = await ctx.db.listen(CHANNELS.tasks, (payload) => {
        // Payload: `<queue>`, or `<queue> retry` when a task was put back with a delay.
        const [queue = '', note] = payload.split(' ');
        if (queue !== '' && !queueSet.has(queue)) return;
        if (note === 'retry') dueCheck = true;
        wake();
      });
      poll = repeatEvery(clock, pollMs, wake);
      wake();
    },
    async stop() {
      if (stopped) return;
      stopped = true;
      poll?.cancel();
      due.timer?.cancel();
      poll = due.timer = null;
      due.at = Infinity;
      await Promise.all([...passes]);
      await unlisten?.().catch(() => undefined);
      unlisten = null;
    },
  };
}
