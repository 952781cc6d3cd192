/**
 * `task-engine schedules add | list | rm` against a listening API (in-process CLI, real HTTP).
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { runCli } from '../../src/cli/program.js';
import type { CliIO } from '../../src/cli/io.js';
import { createApiHarness, type ApiHarness } from '../api/harness.js';
import { forEachStore } from '../helpers/stores.js';

forEachStore('CLI schedules', (kind) => {
  let h: ApiHarness;
  let url: string;
  before(async () => {
    h = await createApiHarness(kind);
    url = await h.app.listen({ host: '127.0.0.1', port: 0 });
  });
  after(() => h.close());

  const cli = async (...args: string[]) => {
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
    };
    const conn = ['--url', url, '--client', 'acme', '--api-key', h.acme.apiKey];
    const code = await runCli(['node', 'task-engine', 'schedules', ...args, ...conn], io, 'test');
    return { code, out: out.join('\n'), err: err.join('\n') };
  };

  void test('add, list and rm go through the API as the given client', async () => {
    const add = await cli(
      'add',
      'cli-nightly',
      '--cron',
      '0 3 * * *',
      '--timezone',
      'America/New_York',
      '--workflow',
      'greet',
      '--param',
      'content_id=from-cli',
      '--param',
      'seconds:=0',
      '--catch-up',
      'none',
    );
    assert.equal(add.code, 0, add.err);
    assert.match(add.out, /^schedule "cli-nightly" added; next run at \d{4}-\d\d-\d\dT0[78]:00:00\.000Z$/);
    const { rows } = await h.store.db.query<{ client: string; parameters: unknown; catch_up: string }>(
      "SELECT client, parameters, catch_up FROM cron_schedules WHERE name = 'cli-nightly'",
    );
    assert.deepEqual(rows, [
      { client: 'acme', parameters: { content_id: 'from-cli', seconds: 0 }, catch_up: 'none' },
    ]);

    const list = await cli('list');
    assert.equal(list.code, 0, list.err);
    assert.match(list.out, /^cli-nightly\s+yes\s+0 3 \* \* \* \(America\/New_York\)\s+greet\s+\d{4}-/m);
    assert.match(list.out, /^push_jobs\s+yes\s+every 30 s\s+\(PushJobs\)/m);
    const listed = JSON.parse((await cli('list', '--json')).out) as {
      result: string;
      schedules: Record<string, { workflow?: string }>;
    };
    assert.equal(listed.result, 'ok');
    assert.equal(listed.schedules['cli-nightly']!.workflow, 'greet');

    const bad = await cli('add', 'cli-bad', '--cron', '0 3 * *', '--workflow', 'greet');
    assert.equal(bad.code, 1);
    assert.match(bad.err, /POST \/schedules failed \(400\): cron "0 3 \* \*" is not accepted/);

    const rm = await cli('rm', 'cli-nightly');
    assert.equal(rm.code, 0, rm.err);
    assert.equal(rm.out, 'schedule "cli-nightly" deleted');
    const again = await cli('rm', 'cli-nightly');
    assert.equal(again.code, 1);
    assert.match(again.err, /\(404\): schedule "cli-nightly" not found/);
  });
});
