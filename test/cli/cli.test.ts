/**
 * The `task-engine` command line as a real process: `serve` on a free port answers `GET /`; a
 * second process refuses to open the data folder the server holds; after a clean stop the folder
 * is free again; bad configuration exits 2 naming every bad field.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, test } from 'node:test';
import { waitFor } from '../helpers/wait-for.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const MAIN = path.join(ROOT, 'src/cli/main.ts');

/** Environment without the caller's engine settings, plus `extra`. */
function cleanEnv(extra: Record<string, string>): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env))
    if (!k.startsWith('TASK_ENGINE_') && k !== 'DATABASE_URL') env[k] = v;
  return { ...env, TASK_ENGINE_LOG_LEVEL: 'warn', ...extra };
}

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs the CLI to completion. */
function runCli(args: string[], env: Record<string, string>, timeoutMs = 120_000): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', MAIN, ...args], {
      cwd: ROOT,
      env: cleanEnv(env),
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`task-engine ${args.join(' ')} did not finish: ${stdout}${stderr}`));
    }, timeoutMs);
    child.on('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

void describe('task-engine command line', () => {
  let dataDir: string;
  let server: ChildProcess | null = null;
  let serverOut = '';
  let serverErr = '';
  let url = '';

  before(async () => {
    dataDir = await mkdtemp(path.join(tmpdir(), 'te-cli-'));
  });
  after(async () => {
    if (server && server.exitCode === null) server.kill('SIGKILL');
    await rm(dataDir, { recursive: true, force: true });
  });

  void test('bad configuration exits 2 with one message naming every bad field', async () => {
    const run = await runCli(['serve'], {
      TASK_ENGINE_DATA_DIR: dataDir,
      TASK_ENGINE_PORT: 'abc',
      TASK_ENGINE_ROLES: 'api,boss',
      TASK_ENGINE_WORKER_CONCURRENCY: '0',
    });
    assert.equal(run.code, 2);
    assert.match(run.stderr, /invalid configuration/);
    assert.match(run.stderr, /TASK_ENGINE_PORT/);
    assert.match(run.stderr, /TASK_ENGINE_ROLES: "boss"/);
    assert.match(run.stderr, /TASK_ENGINE_WORKER_CONCURRENCY/);
    assert.equal(existsSync(path.join(dataDir, 'task-engine.lock')), false, 'nothing was started');
  });

  void test('worker without DATABASE_URL exits 2 saying why', async () => {
    const run = await runCli(['worker', '--queues', 'work'], { TASK_ENGINE_DATA_DIR: dataDir });
    assert.equal(run.code, 2);
    assert.match(run.stderr, /DATABASE_URL/);
  });

  void test('serve on a free port prints its URL and the demo client, and answers GET /', async () => {
    server = spawn(process.execPath, ['--import', 'tsx', MAIN, 'serve'], {
      cwd: ROOT,
      env: cleanEnv({ TASK_ENGINE_DATA_DIR: dataDir, TASK_ENGINE_PORT: '0' }),
    });
    server.stdout!.on('data', (d: Buffer) => (serverOut += d.toString()));
    server.stderr!.on('data', (d: Buffer) => (serverErr += d.toString()));
    url = await waitFor(() => /listening on (http:\/\/127\.0\.0\.1:\d+)/.exec(serverOut)?.[1], {
      timeoutMs: 120_000,
      what: `serve to print its URL (stderr: ${serverErr})`,
    });
    const res = await fetch(`${url}/`);
    assert.equal(res.status, 200);
    assert.deepEqual(await res.json(), { result: 'alive' });
    const key = /shown only this once:\s+(\S+)/.exec(serverOut)?.[1];
    assert.ok(key, 'the demo client key is printed');
    assert.match(serverOut, new RegExp(`curl -s -X POST ${url}/job .*'api-key: ${key}'.*"workflow":"demo"`));
    const jobs = await fetch(`${url}/jobs`, { headers: { client: 'demo-client', 'api-key': key } });
    assert.equal(jobs.status, 200);
  });

  void test('submit --follow runs the demo workflow through the API and prints its log to the end', async () => {
    const key = /shown only this once:\s+(\S+)/.exec(serverOut)![1]!;
    const run = await runCli(
      ['submit', 'demo', '--param', 'content_id=from-cli', '--param', 'seconds:=0', '--follow'],
      {
        TASK_ENGINE_DATA_DIR: dataDir,
        TASK_ENGINE_CLIENT: 'demo-client',
        TASK_ENGINE_API_KEY: key,
      },
    );
    assert.equal(run.code, 0, run.stderr);
    const id = /^job (\d+) accepted$/m.exec(run.stdout)?.[1];
    assert.ok(id, run.stdout);
    assert.match(run.stdout, /api: .*"content_id":"from-cli","seconds":0/);
    assert.match(run.stdout, /'hello' completed successfully/);
    assert.match(run.stdout, new RegExp(`job ${id} completed \\(succeeded\\)`));
    const jobs = await fetch(`${url}/jobs/${id}`, { headers: { client: 'demo-client', 'api-key': key } });
    assert.equal(((await jobs.json()) as { queue_state: string }).queue_state, 'completed');
  });

  void test('clients add refuses cleanly while the server holds the data folder', async () => {
    assert.ok(server && server.exitCode === null, 'the server runs');
    const run = await runCli(['clients', 'add', 'intruder'], { TASK_ENGINE_DATA_DIR: dataDir });
    assert.equal(run.code, 1);
    assert.match(run.stderr, new RegExp(`in use by process ${server.pid}`));
    assert.match(run.stderr, /--url/);
    assert.equal(run.stdout.includes('api_key'), false);
  });

  void test('SIGTERM stops the server cleanly and frees the folder; clients add then works', async () => {
    assert.ok(server);
    const exited = new Promise<number | null>((resolve) => server!.on('exit', (code) => resolve(code)));
    server.kill('SIGTERM');
    assert.equal(await exited, 0, serverErr);
    assert.equal(existsSync(path.join(dataDir, 'task-engine.lock')), false);
    const add = await runCli(['clients', 'add', 'newcomer', '--json'], { TASK_ENGINE_DATA_DIR: dataDir });
    assert.equal(add.code, 0, add.stderr);
    const created = JSON.parse(add.stdout) as { name: string; admin: boolean; api_key: string };
    assert.equal(created.name, 'newcomer');
    assert.equal(created.admin, false);
    assert.match(created.api_key, /^[A-Za-z0-9_-]{43}$/);
  });
});
