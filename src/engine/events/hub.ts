/**
 * The event hub of one engine process: it reads the `events` table (migration 0009) when the
 * database says rows were added, and hands each event to the subscribers of `GET /events`
 * (`stream.ts`), in id order.
 *
 * How it reads. The hub LISTENs on `CHANNELS.events` (the triggers send `te_events` once per
 * statement, delivered on commit) and on each notification reads `id > cursor` in id order, in
 * batches, and fans the rows out. It does not poll the table: besides notifications it reads only
 * while a gap is open (below) and once every {@link EventHubOptions.safetyIntervalMs} (30 s) as a
 * safety net for notifications lost while the LISTEN connection reconnected.
 *
 * Gaps. Ids come from a sequence, so a transaction takes its ids when it writes and they become
 * visible when it commits: a row whose id is not `cursor + 1` means the ids in between belong to a
 * transaction that has not committed yet (its rows will come, with their own notification) or that
 * rolled back (they never will). The hub delivers the contiguous run up to the hole and holds the
 * rest back, re-reading every {@link EventHubOptions.gapRecheckMs} (150 ms). Once the hole has
 * stayed missing for {@link EventHubOptions.gapWaitMs} (2 s) the hub skips it and goes on. So
 * events always reach a subscriber in id order (a resume from `Last-Event-ID` cannot miss one that
 * was still to come), and a rolled-back transaction delays the events after it by at most about
 * 2 s. An event of a transaction that commits more than 2 s after a later id was committed is not
 * delivered live (a resumed stream's replay, which reads the table, still has it).
 *
 * Subscribers. One hub per engine context ({@link eventHubOf}), created on the first subscriber and
 * stopped with the engine ({@link stopEventHub}). While nobody subscribes it reads nothing; the
 * first subscriber starts it at the newest committed id. A subscription starts paused at the hub's
 * cursor (`after`): the stream replays `after`-bounded history from the table, then resumes, and
 * the live events queued meanwhile follow without a gap or a duplicate. A subscriber whose queue
 * grows beyond {@link EventHubOptions.maxQueued} events (a consumer that does not read) is closed
 * as `slow`; its client reconnects with `Last-Event-ID` and replays from the table.
 */
import type { Logger } from 'pino';
import { EngineError } from '../../errors/catalogue.js';
import { readEventWindow, readEvents, type EventRow } from '../../store/queries/events.js';
import type { ClockTimer } from '../clock.js';
import type { EngineContext } from '../context.js';
import { CHANNELS } from '../signals.js';
import { repeatEvery } from '../workers/repeat.js';
import { matchesFilter, toEngineEvent, type EventFilter } from './records.js';
import { EVENT_KINDS, type EngineEvent } from './types.js';

/** Tuning of an {@link EventHub}; every field has a default. */
export interface EventHubOptions {
  /** While a gap is open, re-read it this often (ms); default 150. */
  gapRecheckMs?: number;
  /** Skip a gap that stayed missing this long (ms); default 2 000. */
  gapWaitMs?: number;
  /** Safety-net re-read while subscribed (ms); default 30 000. */
  safetyIntervalMs?: number;
  /** Rows per read; default 500. */
  batchSize?: number;
  /** Events queued for one subscriber before it is closed as too slow; default 5 000. */
  maxQueued?: number;
  /** Pause before reading again after a failed read (ms); default 1 000. */
  retryMs?: number;
}

/** Why the hub closed a subscription: its consumer fell too far behind, or the engine stops. */
export type CloseReason = 'slow' | 'stopped';

/** Where a subscription's events go (an HTTP response, in `GET /events`). */
export interface EventSink {
  /** Takes one event. Returns false when the consumer's buffer is full: the hub waits for {@link drained}. */
  send(event: EngineEvent): boolean;
  /** Resolves once the consumer takes more. */
  drained(): Promise<void>;
  /** The hub closed the subscription (not called after the subscriber's own `close()`). */
  closed(reason: CloseReason): void;
}

/** A subscriber's handle. */
export interface Subscription {
  /**
   * The hub's cursor when the subscription began: every later event (id greater) that passes the
   * filter reaches the sink, in id order; events up to it were handled before (read them from the
   * table to replay them).
   */
  readonly after: number;
  /**
   * Starts sending (the subscription begins paused, queueing). Events with an id up to `skipUpTo`
   * are dropped: they were sent by the replay.
   */
  resume(skipUpTo: number): void;
  /** Ends the subscription (idempotent); the sink is not told. */
  close(): void;
}

const ALL_KINDS = [...EVENT_KINDS];

/** One subscription: its filter, its queue and its flow control. */
class Subscriber implements Subscription {
  private queue: EngineEvent[] = [];
  private paused = true;
  private waiting = false;
  private lastSent: number;
  private ended = false;

  constructor(
    readonly after: number,
    private readonly filter: EventFilter,
    private readonly sink: EventSink,
    private readonly maxQueued: number,
    private readonly onEnd: (s: Subscriber) => void,
  ) {
    this.lastSent = after;
  }

  /** Queues `event` when it passes the filter, and sends what it can. */
  offer(event: EngineEvent): void {
    if (this.ended || !matchesFilter(this.filter, event)) return;
    this.queue.push(event);
    if (this.queue.length > this.maxQueued) {
      this.end('slow');
      return;
    }
    if (!this.paused && !this.waiting) this.flush();
  }

  resume(skipUpTo: number): void {
    if (this.ended) return;
    this.lastSent = Math.max(this.lastSent, skipUpTo);
    this.paused = false;
    if (!this.waiting) this.flush();
  }

  close(): void {
    if (this.ended) return;
    this.ended = true;
    this.queue = [];
    this.onEnd(this);
  }

  /** Closes the subscription and tells the sink why. */
  end(reason: CloseReason): void {
    if (this.ended) return;
    this.close();
    this.sink.closed(reason);
  }

  private flush(): void {
    let i = 0;
    while (i < this.queue.length && !this.ended) {
      const event = this.queue[i++]!;
      if (event.id <= this.lastSent) continue;
      this.lastSent = event.id;
      if (!this.sink.send(event)) {
        this.queue = this.queue.slice(i);
        this.waiting = true;
        this.sink.drained().then(
          () => {
            this.waiting = false;
            if (!this.ended) this.flush();
          },
          () => this.close(),
        );
        return;
      }
    }
    this.queue = [];
  }
}

/** The hub of one engine process; see the module comment. */
export class EventHub {
  private readonly log: Logger;
  private readonly opts: Required<EventHubOptions>;
  private readonly subscribers = new Set<Subscriber>();
  /** The id up to which every event was delivered or skipped. */
  private cursor = 0;
  private active = false;
  private stopped = false;
  private activating: Promise<void> | null = null;
  private unlisten: (() => Promise<void>) | null = null;
  /** Reads and activations run one after another on this chain. */
  private chain: Promise<void> = Promise.resolve();
  private passQueued = false;
  /** An open gap: every id below `before` (and above the cursor) was missing since `since` (epoch ms). */
  private gap: { before: number; since: number } | null = null;
  private recheckTimer: ClockTimer | null = null;
  private safetyTimer: ClockTimer | null = null;

  constructor(
    private readonly ctx: EngineContext,
    options: EventHubOptions = {},
  ) {
    this.log = ctx.logger.child({ service: 'events' });
    this.opts = {
      gapRecheckMs: options.gapRecheckMs ?? 150,
      gapWaitMs: options.gapWaitMs ?? 2_000,
      safetyIntervalMs: options.safetyIntervalMs ?? 30_000,
      batchSize: options.batchSize ?? 500,
      maxQueued: options.maxQueued ?? 5_000,
      retryMs: options.retryMs ?? 1_000,
    };
  }

  /** Subscribers now. */
  get size(): number {
    return this.subscribers.size;
  }

  /**
   * Subscribes `sink` to the events that pass `filter`, starting (paused) after the hub's cursor.
   * Starts the hub when it is idle (LISTEN, cursor at the newest committed id).
   * @throws {EngineError} `STORE_UNAVAILABLE` (503) once the hub is stopping; the driver's error
   * when the database cannot be read.
   */
  async subscribe(filter: EventFilter, sink: EventSink): Promise<Subscription> {
    for (;;) {
      if (this.stopped)
        throw new EngineError('STORE_UNAVAILABLE', 'the engine is stopping; connect to /events again later');
      if (this.active) {
        // Taking the cursor and joining the subscribers in one synchronous step: every event up to
        // the cursor was fanned out before, every later one will reach this subscriber.
        const sub = new Subscriber(this.cursor, filter, sink, this.opts.maxQueued, (s) => this.leave(s));
        this.subscribers.add(sub);
        return sub;
      }
      this.activating ??= this.activate().finally(() => {
        this.activating = null;
      });
      await this.activating;
    }
  }

  /**
   * Stops the hub: every subscription is closed (`stopped`), timers end, the LISTEN goes, and a
   * read in progress is waited for. Idempotent.
   */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    for (const s of [...this.subscribers]) s.end('stopped');
    this.deactivate();
    await this.activating?.catch(() => undefined);
    const unlisten = this.unlisten;
    this.unlisten = null;
    if (unlisten) await unlisten().catch(() => undefined);
    await this.chain;
  }

  private async activate(): Promise<void> {
    if (!this.unlisten) {
      const unlisten = await this.ctx.db.listen(CHANNELS.events, () => this.schedule());
      if (this.stopped) {
        await unlisten().catch(() => undefined);
        return;
      }
      this.unlisten = unlisten;
    }
    const run = this.chain.then(async () => {
      const window = await readEventWindow.first(this.ctx.db, {});
      if (this.stopped) return;
      // The newest committed id; on an empty table (everything swept) the sequence's last value,
      // so the first new event is not taken for the end of a gap.
      this.cursor = Number(window?.newest_id ?? window?.last_allocated_id ?? 0);
      this.gap = null;
      this.active = true;
      this.safetyTimer = repeatEvery(this.ctx.clock, this.opts.safetyIntervalMs, () => this.schedule());
    });
    this.chain = run.catch(() => undefined);
    await run;
    // A commit between the LISTEN and the read above may have been notified before the hub was
    // active; one read now takes it.
    this.schedule();
  }

  private leave(s: Subscriber): void {
    this.subscribers.delete(s);
    if (this.subscribers.size === 0) this.deactivate();
  }

  /** Idle: nothing is read until the next subscriber starts the hub again (at the newest id then). */
  private deactivate(): void {
    this.active = false;
    this.gap = null;
    this.recheckTimer?.cancel();
    this.recheckTimer = null;
    this.safetyTimer?.cancel();
    this.safetyTimer = null;
  }

  /** Queues one read pass, unless one is queued already. */
  private schedule(): void {
    if (!this.active || this.stopped || this.passQueued) return;
    this.passQueued = true;
    this.chain = this.chain
      .then(async () => {
        this.passQueued = false;
        await this.readPass();
      })
      .catch((err: unknown) => {
        this.passQueued = false;
        this.log.warn({ err }, 'reading the events table failed; trying again');
        this.armRecheck(this.opts.retryMs);
      });
  }

  /** Reads `id > cursor` batch after batch until it is caught up or held by a gap. */
  private async readPass(): Promise<void> {
    for (;;) {
      if (!this.active || this.stopped) return;
      const rows = await readEvents.rows(this.ctx.db, {
        after: this.cursor,
        upTo: null,
        client: null,
        jobId: null,
        kinds: ALL_KINDS,
        limit: this.opts.batchSize,
      });
      if (!this.active || this.stopped) return;
      if (this.deliver(rows) === 'held' || rows.length < this.opts.batchSize) return;
    }
  }

  /**
   * Fans out the contiguous run of `rows` (in id order) that follows the cursor, applying the gap
   * rule of the module comment.
   * @returns `held` when a gap stopped the run (a re-read is armed), else `done`.
   */
  private deliver(rows: readonly EventRow[]): 'held' | 'done' {
    for (const row of rows) {
      const id = Number(row.id);
      const expected = this.cursor + 1;
      if (id > expected) {
        const now = this.ctx.clock.now().getTime();
        if (!this.gap || expected >= this.gap.before) this.gap = { before: id, since: now };
        if (now - this.gap.since < this.opts.gapWaitMs) {
          this.armRecheck(this.opts.gapRecheckMs);
          return 'held';
        }
        this.log.debug(
          { from: expected, to: id - 1, waitedMs: now - this.gap.since },
          'event ids stayed missing (a rolled-back or long transaction); skipped',
        );
      }
      this.cursor = id;
      const event = toEngineEvent(row);
      if (event) for (const s of this.subscribers) s.offer(event);
    }
    this.gap = null;
    return 'done';
  }

  private armRecheck(ms: number): void {
    if (this.recheckTimer || !this.active || this.stopped) return;
    this.recheckTimer = this.ctx.clock.setTimeout(() => {
      this.recheckTimer = null;
      this.schedule();
    }, ms);
  }
}

const hubs = new WeakMap<EngineContext, EventHub>();
const stoppedContexts = new WeakSet<EngineContext>();

/**
 * The event hub of the engine whose context is `ctx`, created (idle) on first use.
 * @throws {EngineError} `STORE_UNAVAILABLE` (503) once the engine has stopped its hub.
 */
export function eventHubOf(ctx: EngineContext): EventHub {
  if (stoppedContexts.has(ctx))
    throw new EngineError('STORE_UNAVAILABLE', 'the engine is stopping; connect to /events again later');
  let hub = hubs.get(ctx);
  if (!hub) {
    hub = new EventHub(ctx);
    hubs.set(ctx, hub);
  }
  return hub;
}

/** Stops the hub of `ctx` (if it was ever created) and refuses new ones; the engine calls it at stop. */
export async function stopEventHub(ctx: EngineContext): Promise<void> {
  stoppedContexts.add(ctx);
  const hub = hubs.get(ctx);
  hubs.delete(ctx);
  await hub?.stop();
}
