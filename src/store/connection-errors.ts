/**
 * Which driver errors mean "the database cannot be reached" rather than a fault of the statement:
 * the API answers them with a 503 (`STORE_UNAVAILABLE`), never a 500.
 */

/**
 * Socket error codes (Node.js) and PostgreSQL SQLSTATEs of a connection that failed or was ended
 * by the server: classes 08 (connection exception) and 57P01–57P03 (admin/crash shutdown, cannot
 * connect now), per the PostgreSQL manual, appendix A "Error Codes".
 */
const CONNECTION_ERROR_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ETIMEDOUT',
  'EPIPE',
  'EHOSTUNREACH',
  'ENETUNREACH',
  '57P01',
  '57P02',
  '57P03',
  '08000',
  '08001',
  '08003',
  '08004',
  '08006',
]);

/**
 * Messages of `pg` and `pg-pool` for a lost or unusable connection; these errors carry no `code`
 * (e.g. "Connection terminated unexpectedly" when the socket closes under a query).
 */
const CONNECTION_ERROR_MESSAGES =
  /^(Connection terminated( unexpectedly| due to connection timeout)?|timeout exceeded when trying to connect|Client has encountered a connection error and is not queryable|Client was closed and is not queryable|Cannot use a pool after calling end on the pool)$/;

/**
 * True when `err` (or an error in its `cause` chain, up to 5 deep) is a lost or refused database
 * connection: a code of {@link CONNECTION_ERROR_CODES} or a `pg` connection message.
 */
export function isStoreConnectionError(err: unknown): boolean {
  let e: unknown = err;
  for (let depth = 0; depth < 5 && e !== null && typeof e === 'object'; depth++) {
    const { code, message, cause } = e as { code?: unknown; message?: unknown; cause?: unknown };
    if (typeof code === 'string' && CONNECTION_ERROR_CODES.has(code)) return true;
    if (typeof message === 'string' && CONNECTION_ERROR_MESSAGES.test(message)) return true;
    e = cause;
  }
  return false;
}
