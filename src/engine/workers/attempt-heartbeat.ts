/**
 * The attempt heartbeat of a worker pool: every period, one UPDATE stamps `heartbeat_at` on
 * every attempt this process runs (so stall recovery leaves them alone), and one read finds those
 * no longer live (broken, recovered as stalled, superseded), which are then aborted.
 */
import { selectLiveAttempts, touchAttemptHeartbeats } from '../../store/queries/workers.js';
import type { ClockTimer } from '../clock.js';
import type { EngineContext } from '../context.js';
import { repeatEvery } from './repeat.js';

/** Options of {@link createAttemptHeartbeat}. */
export interface AttemptHeartbeatOptions {
  /** Heartbeat period in ms (keep well under the `stall_timeout` setting). */
  intervalMs: number;
  /** The attempts to stamp: those whose handler runs and is not aborted. */
  liveAttemptIds: () => number[];
  /** Told of each stamped attempt found no longer live (it is to be aborted). */
  onLost: (attemptId: number) => void;
}

/** The attempt heartbeat service. */
export interface AttemptHeartbeat {
  /** Starts beating every `intervalMs`. */
  start(): void;
  /** Stops the timer (a beat in flight finishes on its own). Idempotent. */
  stop(): void;
  /** One beat now; never rejects, and is skipped while the previous beat is still running. */
  beat(): Promise<void>;
}

/** Creates the {@link AttemptHeartbeat}. */
export function createAttemptHeartbeat(
  ctx: EngineContext,
  options: AttemptHeartbeatOptions,
): AttemptHeartbeat {
  let timer: ClockTimer | null = null;
  let running = false;

  const beat = async (): Promise<void> => {
    if (running) return;
    const ids = options.liveAttemptIds();
    if (ids.length === 0) return;
    running = true;
    try {
      await touchAttemptHeartbeats.run(ctx.db, { attemptIds: ids, now: ctx.clock.now() });
      // An attempt is still live when it is `running` and its task still runs it.
      const rows = await selectLiveAttempts.rows(ctx.db, { attemptIds: ids });
      const alive = new Set(rows.map((r) => r.id));
      for (const id of ids) if (!alive.has(id)) options.onLost(id);
    } catch (err) {
      ctx.logger.warn({ err }, 'attempt heartbeat failed');
    } finally {
      running = false;
    }
  };

  return {
    start() {
      timer ??= repeatEvery(ctx.clock, options.intervalMs, () => void beat());
    },
    stop() {
      timer?.cancel();
      timer = null;
    },
    beat,
  };
}
