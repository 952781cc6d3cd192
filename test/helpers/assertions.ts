/** Assertions shared by the integration tests. */
import assert from 'node:assert/strict';
import { isEngineError } from '../../src/errors/catalogue.js';

/**
 * Asserts that `p` rejects with an {@link EngineError} of `code` whose message mentions every one
 * of `parts`.
 */
export async function rejects(p: Promise<unknown>, code: string, ...parts: string[]): Promise<void> {
  await assert.rejects(p, (err: unknown) => {
    assert.ok(isEngineError(err), `expected an EngineError, got ${String(err)}`);
    assert.equal(err.code, code, err.message);
    for (const part of parts)
      assert.ok(err.message.includes(part), `"${err.message}" should mention "${part}"`);
    return true;
  });
}
