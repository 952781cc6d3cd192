/** The wake-up statement (see `src/engine/signals.ts` for the channels and what each means). */
import { defineQuery } from './define-query.js';

/**
 * Sends `payload` on `channel`; PostgreSQL delivers it when the surrounding transaction commits
 * (PGlite in-process). No locks, no state edges.
 */
export const sendNotification = defineQuery<{ channel: string; payload: string }>(
  'send-notification',
  'SELECT pg_notify($channel, $payload)',
);
