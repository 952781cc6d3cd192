/**
 * SPEC section 3, `TASK_ENGINE_WORKER_CONCURRENCY`: tasks run at once per process. A slot is
 * given back when the handler ends (its result is then written in the background), so handlers
 * running at once must still never exceed the concurrency.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, it } from 'node:test';
import { startTestEngine, type TestEngine } from '../helpers/engine.js';
import { createTestStore, forEachStore, type TestStore } from '../helpers/stores.js';

forEachStore('runtime: worker slots', (kind) => {
  let store: TestStore;
  let te: TestEngine;
  let dir: string;

  before(async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'te-slots-'));
    store = await createTestStore(kind);
    te = await startTestEngine(store, {
      concurrency: 2,
      settings: { max_jobs: 10 },
      workflows: {
        mark: {
          parameters: { type: 'object', properties: { file: { type: 'string' } } },
          tasks: [
            {
              name: 'mark',
              run: 'exec',
              // Appends "+1" when the handler starts and "-1" when it ends (one line each).
              with: {
                command: 'sh',
                args: ['-c', 'echo 1 >> "$0"; sleep 0.3; echo -1 >> "$0"', '{{ parameters.file }}'],
              },
            },
            { name: 'after', run: 'sleep', with: { seconds: 0 } },
          ],
        },
      },
    });
  });
  after(async () => {
    await te?.stop();
    await store?.dispose();
    rmSync(dir, { recursive: true, force: true });
  });

  it('runs at most `concurrency` handlers at once, and uses every slot', async () => {
    const file = path.join(dir, 'marks');
    const ids = await Promise.all(Array.from({ length: 8 }, () => te.submit('mark', { file })));
    for (const id of ids) assert.equal((await te.waitForState(id, 'completed', 30_000)).failed, false);
    let running = 0;
    let most = 0;
    for (const line of readFileSync(file, 'utf8').trim().split('\n')) {
      running += Number(line);
      most = Math.max(most, running);
    }
    assert.equal(running, 0, 'every start has its end');
    assert.equal(most, 2, `at most 2 handlers at once with concurrency 2 (saw ${most})`);
  });
});
