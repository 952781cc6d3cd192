/**
 * The `task-engine` command line as a real process: `serve` on a free port answers `GET /`; a
 * second process refuses to open the data folder the server holds; after a clean stop the folder
 * is free again; bad configuration exits 2 naming every bad field.
 */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { runCli, startCli, type CliProcess } from '../helpers/cli.js';
import { waitFor } from '../helpers/wait-for.js';

void describe('task-engine command line', () => {
  let dataDir: string;
  let server: CliProcess | null = null;
  let url = '';

  before(async () => {
    dataDir = await mkdtemp(path.join(tmpdir(), 'te-cli-'));
  });
  after(async () => {
    if (server && server.child.exitCode === null) {
      server.child.kill('SIGKILL');
      await server.exited;
    }
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
    server = startCli(['serve'], { TASK_ENGINE_DATA_DIR: dataDir, TASK_ENGINE_PORT: '0' });
    const serverOut = server.stdout;
    url = await waitFor(() => /listening on (http:\/\/127\.0\.0\.1:\d+)/.exec(serverOut())?.[1], {
      timeoutMs: 120_000,
      what: `serve to print its URL (stderr: ${server.stderr()})`,
    });
    const res = await fetch(`${url}/`);
    assert.equal(res.status, 200);
    assert.deepEqual(await res.json(), { result: 'alive' });
    const key = /shown only this once:\s+(\S+)/.exec(serverOut())?.[1];
    assert.ok(key, 'the demo client key is printed');
    assert.match(
      serverOut(),
      new RegExp(`curl -s -X POST ${url}/job .*'api-key: ${key}'.*"workflow":"demo"`),
    );
    const jobs = await fetch(`${url}/jobs`, { headers: { client: 'demo-client', 'api-key': key } });
    assert.equal(jobs.status, 200);
  });

  void test('submit --follow runs the demo workflow through the API and prints its log to the end', async () => {
    const key = /shown only this once:\s+(\S+)/.exec(server!.stdout())![1]!;
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

  void test("API commands find the local engine through the data folder's lock, else the default port", async () => {
    const key = /shown only this once:\s+(\S+)/.exec(server!.stdout())![1]!;
    const env = {
      TASK_ENGINE_DATA_DIR: dataDir,
      TASK_ENGINE_CLIENT: 'demo-client',
      TASK_ENGINE_API_KEY: key,
    };
    const lock = JSON.parse(await readFile(path.join(dataDir, 'task-engine.lock'), 'utf8')) as {
      url?: string;
    };
    assert.equal(lock.url, url, 'serve records its URL in the lock once it listens');
    const health = await runCli(['health', '--json'], env);
    assert.equal(health.code, 0, health.stderr);
    assert.equal((JSON.parse(health.stdout) as { databases: { postgres: string } }).databases.postgres, 'OK');
    const elsewhere = await mkdtemp(path.join(tmpdir(), 'te-cli-nolock-'));
    try {
      const none = await runCli(['health'], {
        ...env,
        TASK_ENGINE_DATA_DIR: elsewhere,
        TASK_ENGINE_PORT: '1',
      });
      assert.equal(none.code, 1);
      assert.match(none.stderr, /cannot reach the engine at http:\/\/127\.0\.0\.1:1 /);
    } finally {
      await rm(elsewhere, { recursive: true, force: true });
    }
  });

  void test('retry resumes a broken job with a changed parameter and refuses a job that succeeded', async () => {
    const key = /shown only this once:\s+(\S+)/.exec(server!.stdout())![1]!;
    const env = {
      TASK_ENGINE_DATA_DIR: dataDir,
      TASK_ENGINE_CLIENT: 'demo-client',
      TASK_ENGINE_API_KEY: key,
    };
    const headers = { client: 'demo-client', 'api-key': key, 'content-type': 'application/json' };
    const submitted = await runCli(
      ['submit', 'demo', '--param', 'content_id=to-retry', '--param', 'seconds:=600'],
      env,
    );
    const id = /^job (\d+) accepted$/m.exec(submitted.stdout)![1]!;
    await waitFor(
      async () => {
        const res = await fetch(`${url}/jobs/${id}`, { headers });
        const job = (await res.json()) as { tasks: { name: string; state: string }[] };
        return job.tasks.find((t) => t.name === 'wait')?.state === 'running';
      },
      { timeoutMs: 30_000, what: 'the wait task to run' },
    );
    const broken = await fetch(`${url}/jobs/${id}`, {
      method: 'PATCH',
      headers,
      body: JSON.stringify({ queue_state: 'broken' }),
    });
    assert.equal(broken.status, 200);
    const run = await runCli(['retry', id, '--param', 'seconds:=0', '--follow'], env);
    assert.equal(run.code, 0, run.stderr);
    assert.match(run.stdout, new RegExp(`^job ${id} accepted for retry$`, 'm'));
    assert.match(
      run.stdout,
      /Job retried from task wait \(was broken; 2 tasks to run again; parameters changed: seconds\)/,
    );
    assert.match(run.stdout, new RegExp(`job ${id} completed \\(succeeded\\)`));
    const again = await runCli(['retry', id], env);
    assert.equal(again.code, 1);
    assert.match(
      again.stderr,
      /\(409\).*only failed \(completed with failed: true\) or broken jobs can be retried/,
    );
  });

  void test('clients add refuses cleanly while the server holds the data folder', async () => {
    assert.ok(server && server.child.exitCode === null, 'the server runs');
    const run = await runCli(['clients', 'add', 'intruder'], { TASK_ENGINE_DATA_DIR: dataDir });
    assert.equal(run.code, 1);
    assert.match(run.stderr, new RegExp(`in use by process ${server.child.pid}`));
    assert.match(run.stderr, /--url/);
    assert.equal(run.stdout.includes('api_key'), false);
  });

  void test('SIGTERM stops the server cleanly and frees the folder; clients add then works', async () => {
    assert.ok(server);
    server.child.kill('SIGTERM');
    assert.equal(await server.exited, 0, server.stderr());
    assert.equal(existsSync(path.join(dataDir, 'task-engine.lock')), false);
    const add = await runCli(['clients', 'add', 'newcomer', '--json'], { TASK_ENGINE_DATA_DIR: dataDir });
    assert.equal(add.code, 0, add.stderr);
    const created = JSON.parse(add.stdout) as { name: string; admin: boolean; api_key: string };
    assert.equal(created.name, 'newcomer');
    assert.equal(created.admin, false);
    assert.match(created.api_key, /^[A-Za-z0-9_-]{43}$/);
  });
});
