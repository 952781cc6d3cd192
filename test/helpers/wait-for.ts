/**
 * Polls `condition` until it returns a truthy value or `timeoutMs` passes.
 * @returns the truthy value.
 * @throws Error naming `what` when the deadline passes.
 */
export async function waitFor<T>(
  condition: () => T | Promise<T>,
  options: { timeoutMs?: number; intervalMs?: number; what?: string } = {},
): Promise<NonNullable<T>> {
  const deadline = Date.now() + (options.timeoutMs ?? 10_000);
  let last: unknown;
  for (;;) {
    try {
      const v = await condition();
      if (v) return v;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline)
      throw new Error(
        `timed out after ${options.timeoutMs ?? 10_000} ms waiting for ${options.what ?? 'condition'}`,
        {
          cause: last,
        },
      );
    await new Promise((r) => setTimeout(r, options.intervalMs ?? 20));
  }
}
