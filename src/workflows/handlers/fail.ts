/**
 * The `fail` built-in handler (SPEC section 12): always fails. For testing workflows, retries and
 * `continue_on_error`.
 */
import { PermanentTaskError } from '../../errors/task-errors.js';
import type { HandlerContext } from '../types.js';

/** Inputs `fail` accepts; none is required. */
export const FAIL_INPUTS = ['message', 'permanent'] as const;

/**
 * Throws. `inputs.message` (default `fail task failed on purpose`) becomes the error message; with
 * `inputs.permanent: true` the error is a {@link PermanentTaskError}, so no retry is made.
 * @throws Error or PermanentTaskError, always.
 */
// eslint-disable-next-line @typescript-eslint/require-await -- async so that its throw rejects the promise, as every handler's does
export async function failHandler(ctx: HandlerContext): Promise<never> {
  const raw = ctx.inputs.message;
  const message =
    raw === undefined || raw === null || raw === ''
      ? 'fail task failed on purpose'
      : typeof raw === 'string'
        ? raw
        : JSON.stringify(raw);
  if (ctx.inputs.permanent === true) throw new PermanentTaskError(message);
  throw new Error(message);
}
