/**
 * Task concurrency keys and task weights with two engine processes claiming from one PostgreSQL
 * database at once (docs/task-slots-and-concurrency.md): a key of limit 1 is never held twice, a
 * key of limit 2 is held twice but never three times, and a 4-slot task runs beside at most 4
 * one-slot tasks on each worker of 8. PostgreSQL only (an embedded database belongs to one process).
 *
 * The handler (a module in the workflows folder) appends `<pid> +<slots>` when it starts and
 * `<pid> -<slots>` when it ends to one file (O_APPEND, one short line per write), so the exact
 * order of every start and end across both processes is known; a sampler also reads the running
 * holders of each key from the database every 50 ms.
 */
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { Engine } from '../../src/engine/engine.js';
import { createIdleEngine, engineProcessSpawner, submitAs, writeSettings } from '../helpers/engine.js';
import { createFixtureCatalog } from '../helpers/fixture-catalog.js';
import { createTestStore, storeKinds, type TestStore } from '../helpers/stores.js';
import { waitFor } from '../helpers/wait-for.js';

const hasPostgres = storeKinds().includes('postgres');

const MARK_HANDLER = `import { appendFileSync } from 'node:fs';
export default async function (ctx) {
  const { file, ms, slots } = ctx.inputs;
  appendFileSync(file, process.pid + ' +' + slots + '\\n');
  await new Promise((resolve) => setTimeout(resolve, ms));
  appendFileSync(file, process.pid + ' -' + slots + '\\n');
  return null;
}
`;

const PARAMETERS = { type: 'object', properties: { file: { type: 'string' } } };
const mark = (slots: number, ms: number) => ({
  run: 'handlers/mark.mjs',
  with: { file: '{{ parameters.file }}', ms, slots },
});

/** Replays a marks file: per process and overall, the most slots (or tasks) in use at once. */
function replay(file: string): {
  most: number;
  mostPerProcess: number;
  besideHeavy: number;
  processes: number;
  open: number;
} {
  const used = new Map<string, number>();
  const heavy = new Map<string, number>();
  const light = new Map<string, number>();
  let total = 0;
  let most = 0;
  let mostPerProcess = 0;
  let besideHeavy = 0;
  for (const line of readFileSync(file, 'utf8').trim().split('\n')) {
    const [pid = '', change = ''] = line.split(' ');
    const n = Number(change);
    total += Math.sign(n);
    most = Math.max(most, total);
    used.set(pid, (used.get(pid) ?? 0) + n);
    mostPerProcess = Math.max(mostPerProcess, used.get(pid)!);
    if (Math.abs(n) > 1) heavy.set(pid, (heavy.get(pid) ?? 0) + Math.sign(n));
    else light.set(pid, (light.get(pid) ?? 0) + n);
    if ((heavy.get(pid) ?? 0) > 0) besideHeavy = Math.max(besideHeavy, light.get(pid) ?? 0);
  }
  return { most, mostPerProcess, besideHeavy, processes: used.size, open: total };
}

void describe(
  'task concurrency keys and slots across engine processes [postgres]',
  { skip: hasPostgres ? false : 'needs TEST_DATABASE_URL' },
  () => {
    let store: TestStore;
    let local: Engine;
    let dir: string;
    const catalog = createFixtureCatalog({
      solo: {
        parameters: PARAMETERS,
        tasks: [{ name: 'solo', ...mark(1, 5), concurrency: { key: 'solo', limit: 1 } }],
      },
      pair: {
        parameters: PARAMETERS,
        tasks: [{ name: 'pair', ...mark(1, 40), concurrency: { key: 'pair', limit: 2 } }],
      },
      heavy: { parameters: PARAMETERS, tasks: [{ name: 'heavy', ...mark(4, 600), slots: 4 }] },
      small: { parameters: PARAMETERS, tasks: [{ name: 'small', ...mark(1, 150) }] },
    });
    mkdirSync(path.join(catalog.dir, 'handlers'), { recursive: true });
    writeFileSync(path.join(catalog.dir, 'handlers', 'mark.mjs'), MARK_HANDLER);
    const { spawn, killAll } = engineProcessSpawner(() => ({
      databaseUrl: store.databaseUrl!,
      workflowsDir: catalog.dir,
      concurrency: 8,
    }));

    before(async () => {
      dir = mkdtempSync(path.join(tmpdir(), 'te-key-procs-'));
      store = await createTestStore('postgres');
      await writeSettings(store.db, { max_jobs: 400, priority_slots: 0 });
      // Not started: submits jobs, as an API node would.
      local = await createIdleEngine(store, catalog);
      await Promise.all([spawn(), spawn()]);
    });
    after(async () => {
      await killAll();
      await store?.dispose();
      rmSync(dir, { recursive: true, force: true });
    });

    /** Submits `n` jobs of `workflow` at once; returns their ids. */
    const submitMany = (workflow: string, n: number, file: string): Promise<number[]> =>
      Promise.all(Array.from({ length: n }, () => submitAs(local, workflow, { file })));

    /** Waits for `ids` to complete, sampling the running holders of `key` every 50 ms. */
    const runSampling = async (ids: number[], key: string, timeoutMs: number): Promise<number> => {
      let most = 0;
      await waitFor(
        async () => {
          const { rows } = await store.db.query<{ held: number; done: number }>(
            `SELECT (SELECT count(*)::int FROM tasks WHERE state = 'running' AND concurrency_key = $2) AS held,
                    (SELECT count(*)::int FROM jobs WHERE id = ANY($1::bigint[]) AND queue_state = 'completed') AS done`,
            [ids, key],
          );
          most = Math.max(most, rows[0]!.held);
          return rows[0]!.done === ids.length;
        },
        { timeoutMs, intervalMs: 50, what: `${ids.length} jobs of key ${key} to complete` },
      );
      return most;
    };

    it('never runs two holders of a key with limit 1 while two engines claim (300 jobs)', async () => {
      const file = path.join(dir, 'solo');
      writeFileSync(file, '');
      const ids = await submitMany('solo', 300, file);
      const sampled = await runSampling(ids, 'solo', 180_000);
      assert.ok(sampled <= 1, `the database showed ${sampled} running holders of the key at once`);
      const r = replay(file);
      assert.equal(r.open, 0, 'every start has its end');
      assert.equal(r.most, 1, `one handler of the key at a time (saw ${r.most})`);
      assert.equal(r.processes, 2, 'both engines ran tasks of the key');
      const { rows } = await store.db.query<{ n: number }>(
        `SELECT count(*)::int AS n FROM jobs WHERE id = ANY($1::bigint[]) AND NOT failed`,
        [ids],
      );
      assert.equal(rows[0]!.n, 300);
    });

    it('runs two holders of a key with limit 2 at once, never three', async () => {
      const file = path.join(dir, 'pair');
      writeFileSync(file, '');
      const ids = await submitMany('pair', 100, file);
      const sampled = await runSampling(ids, 'pair', 120_000);
      assert.ok(sampled <= 2, `the database showed ${sampled} running holders of the key at once`);
      const r = replay(file);
      assert.equal(r.open, 0);
      assert.equal(r.most, 2, `two handlers of the key at once, never more (saw ${r.most})`);
    });

    it('runs a 4-slot task beside at most 4 one-slot tasks on each worker of 8', async () => {
      const file = path.join(dir, 'slots');
      writeFileSync(file, '');
      const ids: number[] = [];
      for (let round = 0; round < 3; round++) {
        ids.push(...(await submitMany('heavy', 2, file)));
        ids.push(...(await submitMany('small', 12, file)));
      }
      await waitFor(
        async () => {
          const { rows } = await store.db.query<{ done: number }>(
            `SELECT count(*)::int AS done FROM jobs WHERE id = ANY($1::bigint[]) AND queue_state = 'completed'`,
            [ids],
          );
          return rows[0]!.done === ids.length;
        },
        { timeoutMs: 120_000, intervalMs: 50, what: 'the weighted jobs to complete' },
      );
      const r = replay(file);
      assert.equal(r.open, 0);
      assert.ok(r.mostPerProcess <= 8, `at most 8 slots in use on a worker (saw ${r.mostPerProcess})`);
      assert.ok(r.besideHeavy <= 4, `at most 4 one-slot tasks beside a 4-slot one (saw ${r.besideHeavy})`);
      assert.ok(r.besideHeavy >= 1, 'one-slot tasks ran beside a 4-slot one');
    });
  },
);
