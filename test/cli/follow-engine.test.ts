/**
 * `--follow` against a real engine's event stream (`GET /events`), on both stores: the progress an
 * `exec` task reports (`::progress` lines) reaches the plain lines and the bars as it happens, the
 * log lines arrive in order and once each, and the command ends with the job (0 when it succeeded,
 * 1 when it failed); another client's job is the API's 404.
 */
import assert from 'node:assert/strict';
import { PassThrough } from 'node:stream';
import { after, before, test } from 'node:test';
import type { FastifyInstance } from 'fastify';
import { buildServer } from '../../src/api/build-server.js';
import type { CliIO } from '../../src/cli/io.js';
import { runCli } from '../../src/cli/program.js';
import { createClient } from '../../src/engine/clients/clients.js';
import { startTestEngine, type TestEngine } from '../helpers/engine.js';
import { createTestStore, forEachStore, type TestStore } from '../helpers/stores.js';

/**
 * A shell script that reports its progress in three steps, 1.2 s apart: further apart than the
 * engine writes progress (at most every 500 ms), so each step is written and sent as an event.
 */
const STEPS = [
  'echo "::progress 0.25 step one"',
  'sleep 1.2',
  'echo "::progress 0.5 step two"',
  'sleep 1.2',
  'echo "::progress 75% step three"',
  'sleep 1.2',
  'echo done',
].join('; ');

forEachStore('CLI --follow against the engine', (kind) => {
  let store: TestStore;
  let te: TestEngine;
  let app: FastifyInstance;
  let url: string;
  const keys: Record<string, string> = {};

  before(async () => {
    store = await createTestStore(kind);
    te = await startTestEngine(store, {
      workflows: {
        steps: {
          tasks: [
            { name: 'first', run: 'exec', with: { command: 'sh', args: ['-c', STEPS] } },
            { name: 'second', run: 'sleep', with: { seconds: 0 } },
          ],
        },
        doomed: { tasks: [{ name: 'only', run: 'fail', with: { message: 'no luck', permanent: true } }] },
      },
    });
    app = buildServer(te.engine.ctx);
    url = await app.listen({ host: '127.0.0.1', port: 0 });
    for (const name of ['acme', 'other']) keys[name] = (await createClient(store.db, { name })).api_key;
  });
  after(async () => {
    await app?.close();
    await te?.stop();
    await store?.dispose();
  });

  const cli = async (as: string, args: string[], terminal?: NodeJS.WriteStream) => {
    const out: string[] = [];
    const err: string[] = [];
    const io: CliIO = {
      env: {},
      out: (l) => out.push(l),
      err: (l) => err.push(l),
      onSignal: () => () => undefined,
      exitNow: (code) => {
        throw new Error(`exit ${code}`);
      },
      ...(terminal ? { terminal } : {}),
    };
    const conn = ['--url', url, '--client', as, '--api-key', keys[as]!];
    const code = await runCli(['node', 'task-engine', ...args, ...conn], io, 'test');
    return { code, out, err: err.join('\n') };
  };

  test("plain lines: the task's progress as it reports it, each log line once, then the end", async () => {
    const r = await cli('acme', ['submit', 'steps', '--follow']);
    assert.equal(r.code, 0, r.err);
    const id = Number(/^job (\d+) accepted$/.exec(r.out[0]!)![1]);
    const progress = r.out.filter((l) => l.startsWith('task first: running '));
    assert.ok(
      progress.includes('task first: running 25% step one') &&
        progress.includes('task first: running 50% step two') &&
        progress.includes('task first: running 75% step three'),
      r.out.join('\n'),
    );
    assert.ok(r.out.indexOf('task first: succeeded') > r.out.indexOf('task first: running 75% step three'));
    assert.ok(r.out.includes('task second: succeeded'));
    const logged = (await (
      await fetch(`${url}/logs/${id}`, { headers: { client: 'acme', 'api-key': keys.acme! } })
    ).json()) as { message: string }[];
    const printed = r.out.filter((l) => /^\d{4}-\d\d-\d\dT/.test(l));
    assert.deepEqual(
      printed.map((l) => l.slice(l.indexOf(': ') + 2)),
      logged.map((e) => e.message),
      'every visible log line, in order, once',
    );
    assert.equal(r.out.at(-1), `job ${id} completed (succeeded)`);
  });

  test('bars on a terminal: one per task, filled from the task progress, and the end line', async () => {
    const terminal = new PassThrough() as unknown as NodeJS.WriteStream & PassThrough;
    let drawn = '';
    terminal.on('data', (d: Buffer) => (drawn += d.toString()));
    Object.assign(terminal, { isTTY: true, columns: 160, rows: 40 });
    const r = await cli('acme', ['submit', 'steps', '--follow'], terminal);
    assert.equal(r.code, 0, r.err);
    assert.match(drawn, / first +\|█{15}░{15}\| {2}50% running {2}step two/);
    assert.match(drawn, / first +\|█{30}\| 100% succeeded/);
    assert.match(drawn, / second +\|█{30}\| 100% succeeded/);
    assert.match(drawn, /worker task \d+: done/);
    assert.match(r.out.at(-1)!, /^job \d+ completed \(succeeded\)$/);
  });

  test('a job that fails ends --follow with exit code 1; another client cannot follow it', async () => {
    const r = await cli('acme', ['submit', 'doomed', '--follow']);
    assert.equal(r.code, 1);
    const id = Number(/^job (\d+) accepted$/.exec(r.out[0]!)![1]);
    assert.ok(r.out.some((l) => l.includes('no luck')));
    assert.equal(r.out.at(-1), `job ${id} completed (failed)`);
    const theirs = await cli('other', ['logs', String(id), '--follow']);
    assert.equal(theirs.code, 1);
    assert.match(theirs.err, new RegExp(`failed \\(404\\): job ${id} not found`));
  });
});
