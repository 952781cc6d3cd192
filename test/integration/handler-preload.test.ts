/**
 * Preloading task handlers at worker start (config `preloadHandlers`, `TASK_ENGINE_PRELOAD_HANDLERS`):
 * a worker loads the module handlers of the tasks on its queues when it starts, so the first task
 * does not wait for its module; it loads nothing for queues it does not serve; a module that cannot
 * load is logged at start (and the task that needs it still fails with the load error); each
 * module is loaded once whether preloaded or not. Off, nothing is loaded before a task needs it.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import { after, before, it } from 'node:test';
import { pino } from 'pino';
import { moduleHandlerRuns } from '../../src/engine/workers/handler-setup.js';
import { startTestEngine, type TestEngine } from '../helpers/engine.js';
import { createFixtureCatalog } from '../helpers/fixture-catalog.js';
import { createTestStore, forEachStore, type TestStore } from '../helpers/stores.js';
import { waitFor } from '../helpers/wait-for.js';

/** A handler module whose top level appends a line to `marker` each time it is evaluated. */
function markingModule(marker: string): string {
  return `import { appendFileSync } from 'node:fs';
appendFileSync(${JSON.stringify(marker)}, 'loaded\\n');
export default async function () { return { ok: true }; }
`;
}

it('lists the module handlers of the served queues once each, without built-ins', () => {
  const wf = (tasks: { run: string; queue: string }[]) => ({ definition: { tasks } });
  const runs = moduleHandlerRuns(
    [
      wf([
        { run: 'handlers/a.ts', queue: 'work' },
        { run: 'sleep', queue: 'work' },
        { run: 'handlers/b.mjs', queue: 'media' },
      ]),
      wf([
        { run: 'handlers/a.ts', queue: 'work' },
        { run: 'handlers/c.js', queue: 'work' },
        { run: 'exec', queue: 'work' },
      ]),
    ],
    ['work'],
  );
  assert.deepEqual(runs, ['handlers/a.ts', 'handlers/c.js']);
});

forEachStore('handler preloading', (kind) => {
  let store: TestStore;
  let dir: string;
  const engines: TestEngine[] = [];

  before(async () => {
    store = await createTestStore(kind);
    dir = await mkdtemp(path.join(tmpdir(), 'te-preload-'));
  });
  after(async () => {
    for (const e of engines) await e.stop();
    await store.dispose();
  });

  /** A catalog in its own folder: `mine` on queue work, `theirs` on queue elsewhere, `broken`. */
  function catalogWith(name: string) {
    const markers = {
      mine: path.join(dir, `${name}-mine.txt`),
      theirs: path.join(dir, `${name}-theirs.txt`),
    };
    const catalog = createFixtureCatalog({
      [`${name}_mine`]: { tasks: [{ name: 'one', run: 'handlers/mine.mjs' }] },
      [`${name}_theirs`]: { tasks: [{ name: 'one', run: 'handlers/theirs.mjs', queue: 'elsewhere' }] },
      [`${name}_broken`]: { tasks: [{ name: 'one', run: 'handlers/broken.mjs', retry_limit: 0 }] },
    });
    mkdirSync(path.join(catalog.dir, 'handlers'), { recursive: true });
    writeFileSync(path.join(catalog.dir, 'handlers', 'mine.mjs'), markingModule(markers.mine));
    writeFileSync(path.join(catalog.dir, 'handlers', 'theirs.mjs'), markingModule(markers.theirs));
    writeFileSync(path.join(catalog.dir, 'handlers', 'broken.mjs'), 'export default async function ( {\n');
    return { catalog, markers };
  }

  /** A logger whose JSON lines are kept in `lines`. */
  function capturingLogger(): { logger: pino.Logger; lines: Record<string, unknown>[] } {
    const lines: Record<string, unknown>[] = [];
    const stream = new Writable({
      write(chunk: Buffer, _enc, done) {
        for (const l of chunk.toString('utf8').split('\n')) if (l.trim()) lines.push(JSON.parse(l) as never);
        done();
      },
    });
    return { logger: pino({ level: 'debug' }, stream), lines };
  }

  it('on: loads the served queues’ modules at start, once, and logs the one that cannot load', async () => {
    const { catalog, markers } = catalogWith('on');
    const { logger, lines } = capturingLogger();
    const te = await startTestEngine(store, {
      catalog,
      queues: ['work'],
      logger,
      config: { preloadHandlers: true },
    });
    engines.push(te);
    // Before any job: the module of queue work is loaded; that of queue elsewhere is not.
    await waitFor(() => existsSync(markers.mine), { what: 'the work-queue module to be preloaded' });
    const warned = await waitFor(
      () => lines.find((l) => l.msg === 'a task handler could not be loaded') ?? null,
      { what: 'the broken module to be reported' },
    );
    assert.equal(warned.run, 'handlers/broken.mjs');
    assert.equal(warned.level, 40);
    assert.match(String(warned.error), /./);
    const done = await waitFor(() => lines.find((l) => l.msg === 'task handlers preloaded') ?? null, {
      what: 'the preload to end',
    });
    assert.equal(done.loaded, 1);
    assert.equal(done.of, 2);
    assert.equal(existsSync(markers.theirs), false, 'a module of a queue not served was loaded');

    // A job that runs the preloaded module does not load it again.
    const id = await te.submit('on_mine');
    assert.equal((await te.waitForState(id, ['completed', 'broken'])).failed, false);
    assert.equal(readFileSync(markers.mine, 'utf8'), 'loaded\n');
    // The broken module's task still fails with the load error.
    const bad = await te.submit('on_broken');
    const row = await te.waitForState(bad, ['completed', 'broken']);
    assert.equal(row.failed, true);
    const [task] = await te.tasks(bad);
    assert.match(String(task?.error), /handlers\/broken\.mjs.*cannot be loaded|could not be loaded/); // Stopped, so the next engine on this store runs the next test's jobs itself.
    await te.stop();
  });

  it('off: nothing is loaded before a task needs it, then once', async () => {
    const { catalog, markers } = catalogWith('off');
    const te = await startTestEngine(store, {
      catalog,
      queues: ['work'],
      config: { preloadHandlers: false },
    });
    engines.push(te);
    // A claim pass has run once the engine is started; give a preload (were it on) time to show.
    await new Promise((r) => setTimeout(r, 500));
    assert.equal(existsSync(markers.mine), false, 'a module was loaded with preloading off');
    const id = await te.submit('off_mine');
    assert.equal((await te.waitForState(id, ['completed', 'broken'])).failed, false);
    assert.equal(readFileSync(markers.mine, 'utf8'), 'loaded\n');
  });
});
