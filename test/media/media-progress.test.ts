/**
 * A vodstream job on a real video reports its encode's progress from FFmpeg: the encode task's
 * `task` events (written by the tasks trigger at each progress write) rise to 1, with FFmpeg's
 * fps, speed and time left as detail; on both stores, through the bundled workflows.
 */
import assert from 'node:assert/strict';
import path from 'node:path';
import { after, before, it } from 'node:test';
import { loadCatalog } from '../../src/workflows/catalog.js';
import { startTestEngine, TEST_CLIENT, testConfig, type TestEngine } from '../helpers/engine.js';
import { createTestStore, forEachStore, type TestStore } from '../helpers/stores.js';
import { makeTestVideo } from './media-helpers.js';

const SECONDS = 20;

interface TaskEvent {
  state: string;
  progress: number | null;
  progress_message: string | null;
  progress_detail: Record<string, unknown> | null;
}

forEachStore('vodstream progress', (kind) => {
  let store: TestStore;
  let te: TestEngine;

  before(async () => {
    store = await createTestStore(kind);
    const catalog = await loadCatalog(testConfig().workflowsDir);
    te = await startTestEngine(store, {
      catalog,
      settings: { max_jobs: 2 },
      // Writes more often than the default, so the short encode of a test gives several values.
      engine: { progressIntervalMs: 150 },
    });
    const clientRoot = path.join(te.engine.ctx.config.storageRoot, TEST_CLIENT);
    // 640x360: the ladder's one rung is 360p, an encode of a few seconds.
    await makeTestVideo(path.join(clientRoot, 'in/clip/source.mp4'), {
      seconds: SECONDS,
      width: 640,
      height: 360,
    });
  });

  after(async () => {
    await te?.stop();
    await store?.dispose();
  });

  it('reports rising progress for the encode, ending at 1', async () => {
    const id = await te.submit('vodstream', {
      content_id: 'progress1',
      source_folder: 'in/clip',
      output_folder: 'out/progress1',
      drm: ['clear'],
      create_thumbnail: false,
    });
    const job = await te.waitForState(id, ['completed', 'broken'], 180_000);
    const tasks = await te.tasks(id);
    assert.ok(!job.failed, `job failed: ${JSON.stringify(tasks.map((t) => [t.name, t.state, t.error]))}`);
    const encode = tasks.find((t) => t.name === 'rendition_1')!;
    assert.equal(encode.state, 'succeeded');

    const { rows } = await store.db.query<{ data: TaskEvent }>(
      `SELECT data FROM events WHERE kind = 'task' AND task_id = $1 ORDER BY id`,
      [encode.id],
    );
    const events = rows.map((r) => r.data);
    // The events of the progress writes; the state events around them repeat the value they saw.
    const values = events.map((e) => e.progress).filter((p): p is number => p !== null);
    const distinct = values.filter((v, i) => i === 0 || v !== values[i - 1]);
    assert.ok(distinct.length >= 3, `several progress values: ${values.join(', ')}`);
    assert.ok(
      distinct.every((v, i) => i === 0 || v > distinct[i - 1]!),
      `strictly rising: ${distinct.join(', ')}`,
    );
    assert.equal(distinct.at(-1), 1);
    assert.equal(events.at(-1)!.state, 'succeeded');

    const mid = events.find((e) => e.progress !== null && e.progress > 0 && e.progress < 1)!;
    assert.match(mid.progress_message!, /^rendition 360p: \d\d:\d\d:\d\d of 00:00:20 at [\d.]+x$/);
    const detail = mid.progress_detail!;
    assert.equal(detail.duration_seconds, SECONDS);
    assert.equal(typeof detail.speed, 'number');
    assert.equal(typeof detail.eta_seconds, 'number');
    assert.ok('fps' in detail);
    // The packaging task reports too, and every task that ran ends at 1.
    const pkg = tasks.find((t) => t.name === 'package_clear')!;
    const { rows: final } = await store.db.query<{ name: string; progress: number | null }>(
      `SELECT name, progress FROM tasks WHERE job_id = $1 AND state = 'succeeded' ORDER BY position`,
      [id],
    );
    assert.ok(final.length >= 4);
    assert.ok(
      final.every((t) => t.progress === 1),
      JSON.stringify(final),
    );
    assert.ok(pkg);
  });
});
