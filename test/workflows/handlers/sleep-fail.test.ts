import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { PermanentTaskError } from '../../../src/errors/task-errors.js';
import { failHandler } from '../../../src/workflows/handlers/fail.js';
import { sleepHandler } from '../../../src/workflows/handlers/sleep.js';
import { makeHandlerContext, type TestHandlerContext } from '../handler-context.js';

const contexts: TestHandlerContext[] = [];
const context = async (inputs: Record<string, unknown>): Promise<TestHandlerContext> => {
  const c = await makeHandlerContext(inputs);
  contexts.push(c);
  return c;
};
after(() => Promise.all(contexts.map((c) => c.cleanup())));

describe('sleep handler', () => {
  it('waits the given seconds (a number or numeric string) and reports them', async () => {
    const { ctx } = await context({ seconds: 0.2 });
    const started = Date.now();
    assert.deepEqual(await sleepHandler(ctx), { slept_seconds: 0.2 });
    assert.ok(Date.now() - started >= 190);
    const b = await context({ seconds: '0' });
    assert.deepEqual(await sleepHandler(b.ctx), { slept_seconds: 0 });
  });

  it('ends at once when the attempt is aborted', async () => {
    const { ctx, controller } = await context({ seconds: 30 });
    const started = Date.now();
    const run = sleepHandler(ctx);
    setTimeout(() => controller.abort(new Error('timeout after 1 s')), 50);
    await assert.rejects(run, /sleep was stopped: timeout after 1 s/);
    assert.ok(Date.now() - started < 1000);
  });

  it('rejects a missing, negative or non-numeric seconds permanently', async () => {
    for (const seconds of [undefined, -1, 'soon', {}, 8 * 24 * 3600]) {
      const { ctx } = await context({ seconds });
      await assert.rejects(sleepHandler(ctx), PermanentTaskError);
    }
  });
});

describe('fail handler', () => {
  it('throws its message, retryable by default', async () => {
    const { ctx } = await context({ message: 'planned failure' });
    await assert.rejects(
      failHandler(ctx),
      (err: Error) => !(err instanceof PermanentTaskError) && err.message === 'planned failure',
    );
  });

  it('throws a permanent error when asked, and has a default message', async () => {
    const { ctx } = await context({ permanent: true });
    await assert.rejects(
      failHandler(ctx),
      (err: Error) => err instanceof PermanentTaskError && /on purpose/.test(err.message),
    );
  });
});
