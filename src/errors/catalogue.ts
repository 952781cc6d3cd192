/**
 * The one catalogue of error codes: each has its HTTP status, whether a retry may help, and a
 * summary. `docs/errors.md` lists the same table. The Fastify error handler is the only place an
 * {@link EngineError} becomes a response.
 */
export const ERROR_CATALOGUE = {
  VALIDATION_FAILED: {
    status: 400,
    retryable: false,
    summary: 'the request or a value in it is not accepted',
  },
  UNKNOWN_WORKFLOW: {
    status: 400,
    retryable: false,
    summary: 'no workflow of that name exists for this client',
  },
  INVALID_JSON: {
    status: 400,
    retryable: false,
    summary: 'the body is not valid JSON, its bytes are not UTF-8, or an object in it repeats a key',
  },
  UNAUTHORIZED: { status: 401, retryable: false, summary: 'missing or wrong client / api-key headers' },
  FORBIDDEN: { status: 403, retryable: false, summary: 'authenticated, but this client may not do that' },
  JOB_NOT_FOUND: { status: 404, retryable: false, summary: 'no job with that id is visible to this client' },
  NOT_FOUND: { status: 404, retryable: false, summary: 'no such route or resource' },
  STATE_CONFLICT: { status: 409, retryable: false, summary: "the job's state does not allow that change" },
  CONFLICT: { status: 409, retryable: false, summary: 'the resource already exists or is in use' },
  PAYLOAD_TOO_LARGE: { status: 413, retryable: false, summary: 'the body is over 1 MiB' },
  UNSUPPORTED_MEDIA_TYPE: {
    status: 415,
    retryable: false,
    summary: 'a body must be sent as application/json',
  },
  STORE_UNAVAILABLE: { status: 503, retryable: true, summary: 'the database cannot be reached' },
  INTERNAL: { status: 500, retryable: true, summary: 'an unexpected fault; the log has the request id' },
} as const;

/** A code from {@link ERROR_CATALOGUE}. */
export type ErrorCode = keyof typeof ERROR_CATALOGUE;

/** Options of {@link EngineError}. */
export interface EngineErrorOptions {
  /** The underlying error; kept, never lost. */
  cause?: unknown;
  /** The job the error concerns; answered as `"id"` in the JSON error body. */
  jobId?: number;
  /** Machine-readable details (e.g. every validation problem). */
  details?: unknown;
}

/**
 * An expected failure with a catalogue code. `message` says what happened, to which id, and what
 * is accepted, e.g. `job 42 is completed; only queued, scheduled, pending or started jobs can be paused`.
 */
export class EngineError extends Error {
  readonly code: ErrorCode;
  readonly status: number;
  readonly jobId: number | undefined;
  readonly details: unknown;
  constructor(code: ErrorCode, message: string, options: EngineErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'EngineError';
    this.code = code;
    this.status = ERROR_CATALOGUE[code].status;
    this.jobId = options.jobId;
    this.details = options.details;
  }
}

/** True when `err` is an {@link EngineError} with `code`. */
export function isEngineError(err: unknown, code?: ErrorCode): err is EngineError {
  return err instanceof EngineError && (code === undefined || err.code === code);
}
