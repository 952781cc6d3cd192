/**
 * Scheduler leader election (SPEC section 8): each process with the scheduler role tries
 * `db.tryLock(LOCK_KEYS.schedulerLeader)` (a session advisory lock on its own connection) every
 * `retryMs`. The holder is the leader; when it stops it releases the lock, and when it dies (or
 * its lock connection drops) PostgreSQL frees the lock, so another process takes over within
 * about `retryMs`. A leader that sees its lock connection gone steps down at once. On PGlite the
 * one process is always the leader.
 */
import type { Logger } from 'pino';
import type { SessionLock } from '../../store/executor.js';
import { LOCK_KEYS } from '../../store/executor.js';
import type { ClockTimer } from '../clock.js';
import type { EngineContext, Service } from '../context.js';
import { BackgroundWork } from './background.js';

/** What the election calls when leadership changes. */
export interface LeaderElectionOptions {
  /** Milliseconds between attempts (and between checks of a held lock). */
  retryMs: number;
  /** This process became the leader; awaited before the next attempt is planned. */
  onElected: () => Promise<void>;
  /** The lock connection was lost: stop leading at once (timers only; runs finish on their own). */
  onLost: () => void;
}

/** The leader election of one process. */
export interface LeaderElection extends Service {
  /** True while this process holds the lock and is not stopping. */
  readonly isLeader: boolean;
  /**
   * Stops trying and stops leading (`isLeader` is false from now on), waiting for an attempt in
   * progress, but keeps the lock so no other process leads while this one's runs finish.
   */
  halt(): Promise<void>;
}

/**
 * Creates the election. `start()` makes the first attempt before it returns; `stop()` halts and
 * releases the lock. Never throws out of its loop: a failed attempt is logged and retried.
 */
export function createLeaderElection(
  ctx: EngineContext,
  log: Logger,
  options: LeaderElectionOptions,
): LeaderElection {
  const background = new BackgroundWork(log, 'leader election');
  let lock: SessionLock | null = null;
  let timer: ClockTimer | null = null;
  let started = false;
  let stopping = false;

  const isLeader = (): boolean => lock !== null && lock.held && !stopping;

  const elect = async (): Promise<void> => {
    timer = null;
    if (stopping) return;
    try {
      if (lock && !lock.held) {
        log.warn('scheduler: the leader lock connection was lost; no longer the scheduler leader');
        options.onLost();
        await lock.release().catch(() => undefined);
        lock = null;
      }
      if (!lock) {
        const got = await ctx.db.tryLock(LOCK_KEYS.schedulerLeader);
        if (got && stopping) await got.release();
        else if (got) {
          lock = got;
          log.info('scheduler: this process is now the scheduler leader');
          await options.onElected();
        }
      }
    } catch (err) {
      log.error({ err }, 'scheduler: leader election step failed; retrying');
    } finally {
      if (!stopping) timer = ctx.clock.setTimeout(() => background.track(elect()), options.retryMs);
    }
  };

  const halt = async (): Promise<void> => {
    stopping = true;
    timer?.cancel();
    timer = null;
    await background.drain();
  };

  return {
    name: 'scheduler-leader-election',
    get isLeader() {
      return isLeader();
    },
    async start() {
      if (started) return;
      started = true;
      await elect();
    },
    halt,
    async stop() {
      await halt();
      if (lock) await lock.release().catch(() => undefined);
      lock = null;
    },
  };
}
