/**
 * One `GET /events` stream, apart from HTTP: subscribe to the hub first, then replay what the
 * client missed from the table (`Last-Event-ID`), then go on live — with no gap and no duplicate,
 * because the replay reads exactly the ids up to where the subscription starts
 * (`Subscription.after`) and the live part drops what the replay sent. When the requested id is
 * older than the retained window (or was never handed out), the stream starts with a `reset`
 * instead and goes on live: the client reloads its state.
 */
import { readEventWindow, readEvents } from '../../store/queries/events.js';
import type { EngineContext } from '../context.js';
import { eventHubOf, type EventSink, type Subscription } from './hub.js';
import { matchesFilter, toEngineEvent, type EventFilter } from './records.js';

/** Rows per replay read. */
export const REPLAY_BATCH_SIZE = 500;

/** `event: reset` — the stream could not resume where the client asked; reload state, then follow. */
export interface ResetEventData {
  /** `too_old`: events after that id were deleted (the window is `event_retention` seconds); `unknown_id`: no event had that id yet. */
  reason: 'too_old' | 'unknown_id';
  /** Human-readable explanation. */
  message: string;
  /** The oldest event id still retained (the next id to come when none is). */
  oldest_id: number;
}

/** Where a stream's events go. */
export interface EventStreamOutput extends EventSink {
  /**
   * Writes the reset notice; `resumeId` is the id the stream goes on from (sent as its SSE `id`, so
   * a later reconnect resumes from there). Returns false when the consumer's buffer is full.
   */
  reset(data: ResetEventData, resumeId: number): boolean;
}

/** A stream that is subscribed and ready to start. */
export interface PreparedEventStream {
  /** The live subscription (close it when the client goes). */
  subscription: Subscription;
  /** What {@link PreparedEventStream.start} sends first instead of a replay, or null. */
  reset: ResetEventData | null;
  /**
   * Sends the reset or the replay, then lets the live events flow. Stops early when `signal`
   * aborts (the client went away).
   * @throws the driver's error when the replay cannot be read (the subscription is closed then).
   */
  start(signal: AbortSignal): Promise<void>;
}

/**
 * Subscribes a stream and works out how it starts (nothing is sent yet).
 * @param lastEventId - the client's `Last-Event-ID` (resume after it), or null for live events only.
 * @throws {EngineError} `STORE_UNAVAILABLE` (503) when the engine is stopping; the driver's error.
 */
export async function prepareEventStream(
  ctx: EngineContext,
  filter: EventFilter,
  lastEventId: number | null,
  out: EventStreamOutput,
): Promise<PreparedEventStream> {
  const subscription = await eventHubOf(ctx).subscribe(filter, out);
  let reset: ResetEventData | null = null;
  try {
    if (lastEventId !== null) {
      const w = await readEventWindow.first(ctx.db, {});
      const allocated = Number(w?.last_allocated_id ?? 0);
      const oldest = w?.oldest_id != null ? Number(w.oldest_id) : allocated + 1;
      if (lastEventId + 1 < oldest)
        reset = {
          reason: 'too_old',
          message: `events after ${lastEventId} are no longer kept (the oldest kept is ${oldest}); reload the state, then follow`,
          oldest_id: oldest,
        };
      else if (lastEventId > allocated)
        reset = {
          reason: 'unknown_id',
          message: `no event has the id ${lastEventId} (the newest is ${allocated}); reload the state, then follow`,
          oldest_id: oldest,
        };
    }
  } catch (err) {
    subscription.close();
    throw err;
  }
  return {
    subscription,
    reset,
    async start(signal) {
      try {
        if (reset) {
          out.reset(reset, subscription.after);
          subscription.resume(subscription.after);
          return;
        }
        const sent =
          lastEventId === null
            ? subscription.after
            : await replay(ctx, filter, lastEventId, out, subscription.after, signal);
        subscription.resume(Math.max(sent, lastEventId ?? 0));
      } catch (err) {
        subscription.close();
        throw err;
      }
    },
  };
}

/**
 * Sends the events `after < id <= upTo` that pass `filter`, from the table, waiting for the
 * consumer when its buffer is full.
 * @returns the last id read (`after` when there was nothing).
 */
async function replay(
  ctx: EngineContext,
  filter: EventFilter,
  after: number,
  out: EventSink,
  upTo: number,
  signal: AbortSignal,
): Promise<number> {
  let cursor = after;
  while (cursor < upTo && !signal.aborted) {
    const rows = await readEvents.rows(ctx.db, {
      after: cursor,
      upTo,
      client: filter.client,
      jobId: filter.jobId,
      kinds: [...filter.kinds],
      limit: REPLAY_BATCH_SIZE,
    });
    for (const row of rows) {
      if (signal.aborted) return cursor;
      cursor = Number(row.id);
      const event = toEngineEvent(row);
      if (event && matchesFilter(filter, event) && !out.send(event)) await out.drained();
    }
    if (rows.length < REPLAY_BATCH_SIZE) break;
  }
  return cursor;
}
