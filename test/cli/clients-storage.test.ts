/**
 * `task-engine clients storage set|show|remove` on the embedded store (a temporary data folder):
 * settings are read from a file, credentials are never printed, a bad body is refused with the
 * API's message, and `show` of a client without object storage says so.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import type { CliIO } from '../../src/cli/io.js';
import { runCli } from '../../src/cli/program.js';

let dir: string;
const env = (): Record<string, string> => ({
  TASK_ENGINE_DATA_DIR: path.join(dir, 'data'),
  TASK_ENGINE_LOG_LEVEL: 'silent',
});

async function cli(...args: string[]): Promise<{ code: number; out: string; err: string }> {
  const out: string[] = [];
  const err: string[] = [];
  const io: CliIO = {
    env: env(),
    out: (l) => out.push(l),
    err: (l) => err.push(l),
    onSignal: () => () => undefined,
    exitNow: (code) => {
      throw new Error(`exit ${code}`);
    },
  };
  const code = await runCli(['node', 'task-engine', ...args], io, 'test');
  return { code, out: out.join('\n'), err: err.join('\n') };
}

before(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'clients-storage-'));
});
after(async () => rm(dir, { recursive: true, force: true }));

test('set, show and remove a client storage without printing its credentials', async () => {
  assert.equal((await cli('clients', 'add', 'acme')).code, 0);
  const file = path.join(dir, 's3.json');
  await writeFile(
    file,
    JSON.stringify({
      endpoint: 'http://127.0.0.1:9000',
      region: 'us-east-1',
      bucket: 'media',
      access_key_id: 'AKIDEXAMPLE',
      secret_access_key: 'very-secret-value',
    }),
  );
  const set = await cli('clients', 'storage', 'set', 'acme', 's3', '--file', file);
  assert.equal(set.code, 0, set.err);
  assert.match(set.out, /s3 storage set/);
  const shown = await cli('clients', 'storage', 'show', 'acme');
  assert.equal(shown.code, 0, shown.err);
  assert.match(shown.out, /^s3: .*"bucket":"media"/m);
  for (const r of [set, shown]) assert.ok(!/very-secret-value|AKIDEXAMPLE/.test(r.out + r.err));

  await writeFile(file, JSON.stringify({ region: 'x' }));
  const bad = await cli('clients', 'storage', 'set', 'acme', 's3', '--file', file);
  assert.notEqual(bad.code, 0);
  assert.match(bad.err, /endpoint is required/);
  const missing = await cli('clients', 'storage', 'set', 'acme', 's3', '--file', path.join(dir, 'nope.json'));
  assert.equal(missing.code, 2);

  assert.equal((await cli('clients', 'storage', 'remove', 'acme', 's3')).code, 0);
  assert.match((await cli('clients', 'storage', 'show', 'acme')).out, /no object storage configured/);
  assert.equal((await cli('clients', 'storage', 'remove', 'acme', 's3')).code, 1);
});
