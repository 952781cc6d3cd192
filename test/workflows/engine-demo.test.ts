/**
 * The loader, templates and handlers inside the real engine, on both stores: the bundled demo
 * workflow runs to completion with its outputs, and a client override with a module handler
 * receives its rendered inputs and context.
 */
import assert from 'node:assert/strict';
import { cp, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { after, before, it } from 'node:test';
import { BUNDLED_WORKFLOWS_DIR } from '../../src/config/load-config.js';
import { loadCatalog } from '../../src/workflows/catalog.js';
import { TEST_CLIENT, startTestEngine, type TestEngine } from '../helpers/engine.js';
import { createTestStore, forEachStore, type TestStore } from '../helpers/stores.js';

forEachStore('workflows: bundled demo and module handlers in the engine', (kind) => {
  let store: TestStore;
  let te: TestEngine;
  let dir: string;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'te-wf-engine-'));
    await cp(join(BUNDLED_WORKFLOWS_DIR, 'common', 'demo.yaml'), join(dir, 'common', 'demo.yaml'));
    await cp(resolve('test/fixtures/workflows/good/handlers'), join(dir, 'handlers'), { recursive: true });
    await cp(
      resolve('test/fixtures/workflows/good/common/shared.json'),
      join(dir, TEST_CLIENT, 'shared.json'),
    );
    store = await createTestStore(kind);
    te = await startTestEngine(store, { catalog: await loadCatalog(dir), settings: { max_jobs: 4 } });
  });
  after(async () => {
    await te?.stop();
    await store?.dispose();
    await rm(dir, { recursive: true, force: true });
  });

  it('runs the demo: hello, wait, report, with message and metadata outputs', async () => {
    const id = await te.submit('demo', { content_id: 'clip-7', seconds: 0.1 });
    const job = await te.waitForState(id, 'completed', 20_000);
    assert.equal(job.failed, false);
    const tasks = await te.tasks(id);
    assert.deepEqual(
      tasks.map((t) => [t.name, t.state]),
      [
        ['hello', 'succeeded'],
        ['wait', 'succeeded'],
        ['report', 'succeeded'],
      ],
    );
    const hello = tasks[0]!.output as { stdout: string };
    const report = tasks[2]!.output as { json: { wait: unknown; job: { id: number } } };
    assert.equal(hello.stdout, 'hello clip-7');
    assert.deepEqual(report.json.wait, { slept_seconds: 0.1 });
    assert.equal(report.json.job.id, id);
    assert.equal(job.outputs?.message, 'hello clip-7');
    const logs = await te.logs(id);
    assert.ok(
      logs.some((l) => l.message === 'hello clip-7'),
      'the exec output line is in the job log',
    );
  });

  it("runs a client's own workflow with a module handler", async () => {
    const id = await te.submit('shared', {});
    const job = await te.waitForState(id, 'completed', 20_000);
    assert.equal(job.failed, false);
    const [task] = await te.tasks(id);
    assert.deepEqual(task!.output, { kind: 'mjs', inputs: {}, task: 'only' });
  });
});
