/**
 * Limits and the output shape of the `exec` handler, shared by its input, process and output
 * modules (see `exec.ts` for the handler itself).
 */

/**
 * Limits of the `exec` handler. A mutable object so tests can shorten the kill delay; the engine
 * never changes it.
 */
export const EXEC_LIMITS = {
  /** Delay between SIGTERM and SIGKILL after an abort, in ms (SPEC: 10 s). */
  killGraceMs: 10_000,
  /** Bytes of each stream kept (the tail) in the task output. */
  captureBytes: 64 * 1024,
  /** Largest stdout parsed with `output: json`, in bytes. */
  jsonBytes: 8 * 1024 * 1024,
  /** Output lines written to the job log per attempt. */
  logLines: 1000,
  /** Output bytes written to the job log per attempt. */
  logBytes: 256 * 1024,
  /** Longest single log line in characters; longer lines are logged in pieces of this size. */
  lineBytes: 8 * 1024,
  /** After the program exits, how long to wait for its streams to close before killing leftovers, in ms. */
  exitDrainMs: 2_000,
};

/** What `exec` returns. */
export interface ExecOutput {
  exit_code: number;
  stdout: string;
  stderr: string;
  json?: unknown;
}
