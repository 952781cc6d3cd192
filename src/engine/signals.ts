/**
 * Wake-up channels. Every change that makes work ready sends `pg_notify` inside its transaction
 * (delivered on commit; PGlite delivers in-process), and the loops LISTEN. Timers are safety nets.
 */
import type { Queryable } from '../store/executor.js';
import { sendNotification } from '../store/queries/notify.js';

export const CHANNELS = {
  /** A job became queued, left `started`, or a setting changed: run admission. Payload: reason. */
  admission: 'te_admission',
  /** A task became ready. Payload: the queue name. */
  tasks: 'te_tasks',
  /** A job was broken or an attempt cancelled. Payload: the job id. */
  cancel: 'te_cancel',
  /** Callback deliveries were enqueued. Payload: the job id. */
  callbacks: 'te_callbacks',
  /** A job's run_at / semaphore changed, or a schedule was switched. Payload: job id or schedule name. */
  scheduler: 'te_scheduler',
  /** A job ended (completed, failed or broken). Payload: the job id. Used by CLI followers and tests. */
  jobEnded: 'te_job_ended',
  /** A client's key or status changed: forget verified keys. Payload: the client name. */
  clients: 'te_clients',
  /**
   * Rows were added to `events` (sent by the triggers of migration 0009, once per statement).
   * Payload: empty. Read by the `/events` hub.
   */
  events: 'te_events',
} as const;

export type Channel = (typeof CHANNELS)[keyof typeof CHANNELS];

/** Sends a wake-up on `channel` (delivered when the surrounding transaction commits). */
export async function notify(q: Queryable, channel: Channel, payload: string | number = ''): Promise<void> {
  await sendNotification.run(q, { channel, payload: String(payload) });
}
