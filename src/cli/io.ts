/**
 * What every CLI command gets from `main.ts`: the environment, output streams and signal
 * subscription. Commands never touch `process.env` or call `process.exit` themselves.
 */

/** The command line's view of its process. */
export interface CliIO {
  /** The environment (`process.env` in main). */
  env: Record<string, string | undefined>;
  /** Writes a line to standard output. */
  out(line: string): void;
  /** Writes a line to standard error. */
  err(line: string): void;
  /** Calls `fn` on each of `signals`; returns an unsubscribe function. */
  onSignal(signals: NodeJS.Signals[], fn: (signal: NodeJS.Signals) => void): () => void;
  /** Ends the process at once with `code` (a second Ctrl-C while stopping). */
  exitNow(code: number): never;
  /**
   * Standard output when it is a terminal, for live displays (progress bars); absent otherwise
   * (a pipe, a file, a test), where commands print plain lines instead.
   */
  terminal?: NodeJS.WriteStream;
}

/** A failure the CLI reports as one message and an exit code (1 by default; 2 for usage/config). */
export class CliError extends Error {
  constructor(
    message: string,
    readonly exitCode: number = 1,
  ) {
    super(message);
    this.name = 'CliError';
  }
}

/**
 * Ends a command with `exitCode` and no message of its own: what the command printed says why
 * (e.g. `submit --follow` of a job that failed).
 */
export class CliExit extends Error {
  constructor(readonly exitCode: number) {
    super(`exit ${exitCode}`);
    this.name = 'CliExit';
  }
}

/** Resolves on the first of `signals` (SIGINT / SIGTERM for the long-running commands). */
export function waitForSignal(io: CliIO, signals: NodeJS.Signals[]): Promise<NodeJS.Signals> {
  return new Promise((resolve) => {
    const off = io.onSignal(signals, (s) => {
      off();
      resolve(s);
    });
  });
}
