/** Session advisory locks (leader election), each on its own connection (`src/store/pg-session-lock.ts`). */
import { defineQuery } from './define-query.js';

/** Takes the session advisory lock `key` if it is free, without waiting. */
export const tryAdvisoryLock = defineQuery<{ key: number }, { ok: boolean }>(
  'try-advisory-lock',
  'SELECT pg_try_advisory_lock($key) AS ok',
);

/** Releases the session advisory lock `key` held by this connection. */
export const releaseAdvisoryLock = defineQuery<{ key: number }>(
  'release-advisory-lock',
  'SELECT pg_advisory_unlock($key)',
);
