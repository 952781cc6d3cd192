/**
 * The worker pool's claim loop: when to claim ready tasks and for how many slots. Claims run as
 * passes (one claim statement each), woken by `CHANNELS.tasks` notifications for its queues (an
 * empty payload, sent when a task holding a concurrency key stops running, wakes every pool), by
 * a freed slot, by a timer armed for the earliest delayed retry, and by a slow safety-net poll.
 * Slots are the pool's capacity (its concurrency); a task takes its `slots` of them. The hand-off
 * claim ({@link ClaimLoop.claimWithin}) is the same statement run by the result writer inside the
 * transaction that records a result, so the slot that result frees, or the job's next task, is
 * filled without a pass, a commit and a notification of its own (docs/architecture.md "Workers").
 *
 * With hand-off claims on, a slot freed by an ended handler does not wake the loop: the result
 * write that follows claims for it. Every event that may leave a free slot unfilled (a freed slot,
 * a notification, a wake-up that could not run) takes a number from `demand`; a claim that asked
 * for every free slot (no other claim held some) and took less, with nothing passed over, has seen
 * every ready task and satisfies the demand numbered up to its start. A retry waiting for its
 * due time keeps the demand open until its timer is armed. An attempt that leaves the runner
 * wakes the loop only when its freed slot's number is not yet satisfied, and the notification of
 * the pool's own hand-off commit is not acted on when that hand-off was such a complete claim.
 *
 * A claim whose connection is lost after it was sent may have committed all the same, its answer
 * never arriving: its tasks would stay `running` with nobody running them until stall recovery.
 * Its time is kept (`lostClaims`) and looked at twice: at once, before any further claim, and again
 * {@link SECOND_LOOK_MS} later (the server may still have been running the statement when the
 * client saw its connection drop), while claims go on. A look is one statement
 * ({@link readLostClaimedTasks}: this worker's running attempts started at those times, not run
 * here, their heartbeats stamped), made with no claim in flight, so every claim that answered has
 * handed its tasks over; what it finds runs as claimed.
 */
import { isStoreConnectionError } from '../../store/connection-errors.js';
import type { Queryable } from '../../store/executor.js';
import type { ClockTimer } from '../clock.js';
import type { EngineContext } from '../context.js';
import { backoffAfterFailuresMs } from '../retry-pauses.js';
import { CHANNELS } from '../signals.js';
import {
  claimReady,
  msUntilNextDue,
  readLostClaimedTasks,
  reportTooHeavyTasks,
  type ClaimedTask,
  type ClaimOptions,
} from './claim.js';
import { repeatEvery } from './repeat.js';

/** Claim passes one worker pool keeps in flight at most (see {@link ClaimLoop.wake}). */
const MAX_CLAIMS_IN_FLIGHT = 2;

/** After a hand-off claim failed, how long claims go by passes only (ms). */
const HANDOFF_PAUSE_MS = 60_000;

/** When the tasks of a claim whose answer was lost are looked for the second time, in ms after the first look. */
const SECOND_LOOK_MS = 3_000;

/** Failed looks for the tasks of lost claims, for another reason than a lost connection, before they are left to stall recovery. */
const LOOK_TRIES = 5;

/** How long the notification of this pool's own hand-off commit is expected, in ms of real time. */
const OWN_NOTICE_MS = 1_000;

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
  /**
   * The attempts the pool runs now (every one handed to `onClaimed` whose result is not yet
   * written): left out when the tasks of a claim whose answer was lost are looked for.
   */
  knownAttemptIds: () => number[];
  /**
   * Whether the result writer runs hand-off claims ({@link ClaimLoop.claimWithin}); then a freed
   * slot waits for its result write to claim for it. Default false: every freed slot wakes a pass.
   */
  handoff?: boolean;
}

/** The claim loop service. */
export interface ClaimLoop {
  /** Listens on `CHANNELS.tasks`, starts the poll and makes a first pass. */
  start(): Promise<void>;
  /** Stops claiming (timers, listener) and waits for the passes in flight. Idempotent. */
  stop(): Promise<void>;
  /** Asks for a claim pass soon. */
  wake(): void;
  /**
   * An attempt gave its slots back (its handler ended): wakes a pass, unless hand-off claims are
   * on (its result write will claim for it).
   * @returns the token to give {@link ClaimLoop.attemptDone} for that attempt.
   */
  slotFreed(): number;
  /**
   * An attempt whose slots were freed with `token` has left the runner (its result is recorded):
   * wakes a pass unless a complete claim has run since that slot was freed. `boundFreed`: its
   * leaving itself raised the free slots (always wakes).
   */
  attemptDone(token: number, boundFreed: boolean): void;
  /** Replaces the queues (duplicates dropped), re-reads the next due time and asks for a pass. */
  setQueues(queues: string[]): void;
  /**
   * The hand-off claim: when `readyQueues` (queues the result transaction `tx` made tasks ready
   * on) meets this loop's queues, or a freed slot or notification is not yet satisfied, and slots
   * are free, claims in `tx` before its commit with the same statement as a pass (tasks with a
   * concurrency key left to passes), for the free slots no other claim has asked for. The claimed
   * tasks start only when the caller reports the commit.
   * @returns null when no claim was made (nothing to claim for, no free slot, stopped, or a
   *   hand-off claim failed in the last minute); else the two ends, exactly one of which the
   *   caller must call: `committed` (the tasks run) or `rolledBack` (nothing was claimed; a pass
   *   is asked for).
   * @throws the claim statement's error (`tx` is then unusable: the caller's transaction fails,
   *   and hand-off claims stop for a minute so the caller's retry goes without them).
   */
  claimWithin(tx: Queryable, readyQueues: ReadonlySet<string>): Promise<HandoffEnds | null>;
}

/** The two ends of a hand-off claim ({@link ClaimLoop.claimWithin}): the caller calls one. */
export interface HandoffEnds {
  committed(): void;
  /**
   * The transaction failed with `error`. When that is a lost connection (the commit's answer may
   * be what was lost), the tasks the claim took are looked for before the next claim.
   */
  rolledBack(error?: unknown): void;
}

/** A one-shot timer that keeps only the earliest of the times it is armed for. */
interface DueTimer {
  timer: ClockTimer | null;
  /** When it fires (ms of the engine's clock); Infinity when not armed. */
  at: number;
  /** Armed for a delayed task's due time: the pass it wakes re-reads the next one. */
  reread: boolean;
}

/** A claim whose answer was lost (see the module comment). */
interface LostClaim {
  /** The claim's `now`: its attempts' `started_at`. */
  at: Date;
  /** Looks still to make. */
  looks: number;
  /** When the next look is due (ms of the engine's clock). */
  lookAt: number;
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
  const due: DueTimer = { timer: null, at: Infinity, reread: false };
  /** Set when a retry was scheduled: the next under-full claim re-reads the earliest due time. */
  let dueCheck = true;
  let lastDueCheck = 0;
  /** Set when the last pass took nothing but passed tasks over for their key (see claimPass). */
  let heldBackIdle = false;
  /** When tasks too heavy for every live worker were last looked for (ms of the clock); -Infinity: never. */
  let lastHeavyCheck = -Infinity;
  let poll: ClockTimer | null = null;
  let unlisten: (() => Promise<void>) | null = null;
  /** Numbers events that may leave a free slot unfilled (see the module comment). */
  let demand = 0;
  /** The `demand` number at the start of the latest complete claim. */
  let satisfied = 0;
  /** Per queue: when a hand-off claim, complete, expected its commit's notification (performance.now). */
  const ownNotices = new Map<string, number[]>();
  /** When a hand-off claim last failed (ms of the clock): none are tried for a minute after. */
  let lastHandoffFailure = -Infinity;
  /**
   * Claims whose answer was lost with the connection: they may have taken tasks. While a look at
   * one is due, no claim runs; the look runs instead.
   */
  let lostClaims: LostClaim[] = [];
  /** Attempts found by looks and handed to the runner (never handed twice); emptied with `lostClaims`. */
  const adopted = new Set<number>();
  /** Looks in a row that failed for another reason than a lost connection. */
  let lookFailures = 0;

  /** Keeps claim `at` as lost (see the module comment). */
  const claimLost = (at: Date): void => {
    lostClaims.push({ at, looks: 2, lookAt: clock.now().getTime() });
  };
  /**
   * Whether a look at a lost claim is due; when one is kept but not yet due, makes sure the due
   * timer fires for it (the timer keeps only its earliest time, which may be another's).
   */
  const lookDue = (): boolean => {
    if (lostClaims.length === 0) return false;
    const now = clock.now().getTime();
    const next = Math.min(...lostClaims.map((c) => c.lookAt));
    if (next <= now) return true;
    armDueTimer(next - now);
    return false;
  };

  const handoffOn = (): boolean =>
    options.handoff === true && clock.now().getTime() - lastHandoffFailure >= HANDOFF_PAUSE_MS;

  /** A claim that started at `startedAt` took less than it asked for, passing nothing over. */
  const satisfy = (startedAt: number): void => {
    if (startedAt > satisfied) satisfied = startedAt;
  };

  /** Drops the expected notifications older than {@link OWN_NOTICE_MS} from `times` (oldest first). */
  const dropExpired = (times: number[], now: number): void => {
    while (times.length > 0 && times[0]! < now - OWN_NOTICE_MS) times.shift();
  };

  /** True (and forgets it) when a notification on `queue` is one a complete hand-off expected. */
  const ownNotice = (queue: string): boolean => {
    const times = ownNotices.get(queue);
    if (!times) return false;
    dropExpired(times, performance.now());
    const mine = times.shift() !== undefined;
    if (times.length === 0) ownNotices.delete(queue);
    return mine;
  };

  const wake = (): void => {
    if (stopped) return;
    demand++;
    if (lookDue()) {
      // Looked for with no claim in flight, so every claim that answered has handed its tasks over.
      if (claimsInFlight > 0) {
        again = true;
        return;
      }
      claimsInFlight++;
      const pass: Promise<void> = adoptLostClaims().finally(() => {
        claimsInFlight--;
        passes.delete(pass);
        if (again) {
          again = false;
          wake();
        }
      });
      passes.add(pass);
      return;
    }
    const free = options.freeSlots() - reserved;
    if (claimsInFlight > 0 && (free <= 0 || claimsInFlight >= MAX_CLAIMS_IN_FLIGHT)) {
      again = true;
      return;
    }
    if (free <= 0) return;
    // A claim can see every ready task only when it asks for all the free slots: with another
    // claim holding some, a task needing more slots than it asked for is passed over unseen.
    const whole = reserved === 0;
    claimsInFlight++;
    reserved += free;
    const pass: Promise<void> = claimPass(free, whole ? demand : null).finally(() => {
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

  /**
   * Arms the due timer to wake the loop in `ms`, unless it is armed for earlier already.
   * `reread`: `ms` is a delayed task's due time (the woken pass re-reads the next one).
   */
  const armDueTimer = (ms: number, reread = false): void => {
    const at = clock.now().getTime() + ms;
    if (reread) due.reread = true;
    if (due.timer && due.at <= at) return;
    due.timer?.cancel();
    due.at = at;
    // 2 ms late, so the task's `run_after` has surely passed when the claim reads it. Armed for a
    // delayed task, the pass it wakes re-reads the next due time when it is not full: should it
    // not take the task this timer was for (passed over, taken elsewhere), the timer is armed
    // again instead of the wait falling to the poll.
    due.timer = clock.setTimeout(() => {
      due.timer = null;
      due.at = Infinity;
      if (due.reread) dueCheck = true;
      due.reread = false;
      wake();
    }, ms + 2);
  };

  /** What a claim of this pool for `free` slots at `now` asks for (`skipKeyed`: a hand-off claim). */
  const claimOptions = (free: number, skipKeyed: boolean, now: Date): ClaimOptions => ({
    queues,
    freeSlots: free,
    capacity: options.capacity,
    workerId: options.workerId,
    clock,
    now,
    traced: ctx.tracing !== undefined,
    skipKeyed,
  });

  /** One claim pass for `free` slots, started at demand number `startedAt`; never rejects. */
  const claimPass = async (free: number, startedAt: number | null): Promise<void> => {
    let claimed: ClaimedTask[];
    let heldBack: number;
    const now = clock.now();
    try {
      ({ tasks: claimed, heldBack } = await claimReady(ctx.db, claimOptions(free, false, now)));
      claimFailures = 0;
    } catch (err) {
      claimFailures++;
      again = false;
      if (isStoreConnectionError(err)) claimLost(now);
      ctx.logger.error({ err }, 'claiming tasks failed; retrying');
      armDueTimer(backoffAfterFailuresMs(claimFailures));
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
      if (heldBack === 0 && startedAt !== null) satisfy(startedAt);
      if (dueCheck || clock.now().getTime() - lastDueCheck > pollMs) await readNextDue();
      if (clock.now().getTime() - lastHeavyCheck > pollMs) await reportHeavy();
    }
  };

  /**
   * Looks for the tasks that the lost claims due for a look took, and runs them (see the module
   * comment); a claim looked at twice is forgotten. When the read fails it is tried again with the
   * claims' back-off: while the connection is lost, until it answers; for another error,
   * {@link LOOK_TRIES} times, after which the claims are left to stall recovery. Never rejects.
   */
  const adoptLostClaims = async (): Promise<void> => {
    const now = clock.now().getTime();
    const looked = lostClaims.filter((c) => c.lookAt <= now);
    // Read before the statement: an attempt that ends meanwhile is then still left out.
    const known = [...options.knownAttemptIds(), ...adopted];
    let tasks: ClaimedTask[];
    try {
      tasks = await readLostClaimedTasks(
        ctx.db,
        options.workerId,
        looked.map((c) => c.at),
        known,
        clock.now(),
      );
      claimFailures = 0;
      lookFailures = 0;
    } catch (err) {
      claimFailures++;
      again = false;
      if (!isStoreConnectionError(err) && ++lookFailures >= LOOK_TRIES) {
        ctx.logger.error(
          { err, claims: lostClaims.length },
          'looking for the tasks of claims whose answer was lost keeps failing; leaving them to stall recovery',
        );
        lostClaims = [];
        adopted.clear();
        lookFailures = 0;
        again = true;
        return;
      }
      ctx.logger.error({ err }, 'looking for the tasks of claims whose answer was lost failed; retrying');
      armDueTimer(backoffAfterFailuresMs(claimFailures));
      return;
    }
    const next = clock.now().getTime() + SECOND_LOOK_MS;
    for (const c of looked) {
      c.looks--;
      c.lookAt = next;
    }
    lostClaims = lostClaims.filter((c) => c.looks > 0);
    if (lostClaims.length > 0) armDueTimer(SECOND_LOOK_MS);
    else adopted.clear();
    if (tasks.length > 0)
      ctx.logger.warn(
        { tasks: tasks.map((t) => ({ jobId: t.job.id, taskId: t.taskId, attemptId: t.attemptId })) },
        'claims whose answer was lost with the database connection had taken tasks; running them',
      );
    // Handed over even when stopping, as a committed hand-off claim's are: the runner gives them
    // back without using a retry, where leaving them would have them recovered as stalled.
    for (const task of tasks) {
      if (lostClaims.length > 0) adopted.add(task.attemptId);
      options.onClaimed(task);
    }
    again = true; // claim as usual now
  };

  const claimWithin: ClaimLoop['claimWithin'] = async (tx, readyQueues) => {
    if (stopped || !handoffOn() || lookDue()) return null;
    const ours = [...readyQueues].filter((q) => queueSet.has(q));
    // Nothing made ready here, and every freed slot and notification already seen by a complete claim.
    if (ours.length === 0 && satisfied >= demand) return null;
    const free = options.freeSlots() - reserved;
    if (free <= 0) return null;
    const startedAt = demand;
    const whole = reserved === 0;
    claimsInFlight++;
    reserved += free;
    let settled = false;
    const release = (): void => {
      if (settled) return;
      settled = true;
      claimsInFlight--;
      reserved -= free;
    };
    let claimed: ClaimedTask[];
    let heldBack: number;
    const now = clock.now();
    try {
      // Keyed tasks go to passes: the engine that ended a key's holder would otherwise take the
      // key's next task in the same transaction, before any other engine hears of it.
      ({ tasks: claimed, heldBack } = await claimReady(tx, claimOptions(free, true, now)));
    } catch (err) {
      lastHandoffFailure = clock.now().getTime();
      release();
      ctx.logger.warn({ err }, 'hand-off claim failed; claiming by passes for a minute');
      if (again) {
        again = false;
        wake();
      }
      throw err;
    }
    const slots = claimed.reduce((n, t) => n + t.slots, 0);
    const complete = slots < free && heldBack === 0 && whole;
    // The commit notifies each queue it made tasks ready on; a complete claim took them already.
    // Expected now: the notification may arrive before the commit's answer does.
    const expected = complete ? ours : [];
    const at = performance.now();
    for (const q of expected) {
      const times = ownNotices.get(q);
      if (!times) ownNotices.set(q, [at]);
      else {
        dropExpired(times, at); // bounded while no notification comes (the listener reconnecting)
        times.push(at);
      }
    }
    return {
      committed() {
        if (settled) return;
        release();
        for (const task of claimed) options.onClaimed(task);
        if (complete) satisfy(startedAt);
        // Full or passed over: more may be ready. A wake-up that came meanwhile was kept for us.
        if (!complete || again) {
          again = false;
          wake();
        } else if (dueCheck) void readNextDue(); // a retry was scheduled: arm its timer
      },
      rolledBack(error) {
        if (settled) return;
        release();
        // Lost with the connection: the commit may have gone through (see the module comment).
        if (claimed.length > 0 && isStoreConnectionError(error)) claimLost(now);
        for (const q of expected) {
          const times = ownNotices.get(q);
          const i = times?.lastIndexOf(at) ?? -1;
          if (times && i >= 0) times.splice(i, 1);
          if (times?.length === 0) ownNotices.delete(q);
        }
        again = false;
        wake();
      },
    };
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
      if (ms !== null) armDueTimer(ms, true);
    } catch (err) {
      ctx.logger.warn({ err }, 'reading the next retry time failed');
    }
  };

  return {
    wake,
    claimWithin,
    slotFreed() {
      const token = ++demand;
      if (!handoffOn()) wake();
      return token;
    },
    attemptDone(token, boundFreed) {
      if (boundFreed || satisfied < token || dueCheck || !handoffOn()) wake();
    },
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
        else if (queue !== '' && ownNotice(queue)) return;
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
