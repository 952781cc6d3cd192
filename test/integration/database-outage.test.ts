/**
 * A database outage under a real `task-engine serve` process (PostgreSQL only): the engine reaches
 * PostgreSQL through a TCP relay of the test's own, which drops every connection and refuses new
 * ones for about five seconds. Meanwhile every request gets an HTTP answer with a JSON body, a 503
 * (or a 2xx where no database is needed), never a dropped connection; the process stays up and,
 * once the relay is back, goes on by itself: the jobs submitted before end, a new one completes,
 * `/readyz` is 200.
 */
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { startCli, type CliProcess } from '../helpers/cli.js';
import { createTestStore, storeKinds, type TestStore } from '../helpers/stores.js';
import { startTcpRelay, type TcpRelay } from '../helpers/tcp-relay.js';
import { waitFor } from '../helpers/wait-for.js';

const ADMIN = 'outage-admin';
const KEY = 'outage-admin-key-0123456789';
const OUTAGE_MS = 5_000;

const hasPostgres = storeKinds().includes('postgres');

void describe(
  'a database outage under task-engine serve',
  { skip: !hasPostgres && 'needs TEST_DATABASE_URL' },
  () => {
    let store: TestStore;
    let relay: TcpRelay;
    let proc: CliProcess;
    let url: string;
    let workflowsDir: string | undefined;
    before(async () => {
      store = await createTestStore('postgres');
      const dbUrl = new URL(store.databaseUrl!);
      relay = await startTcpRelay({ port: Number(dbUrl.port || 5432) });
      dbUrl.host = `127.0.0.1:${relay.port}`;
      workflowsDir = mkdtempSync(path.join(tmpdir(), 'te-outage-'));
      mkdirSync(path.join(workflowsDir, 'common'));
      for (const [name, seconds] of [
        ['slow', 2],
        ['quick', 0.05],
      ] as const)
        writeFileSync(
          path.join(workflowsDir, 'common', `${name}.yaml`),
          `name: ${name}\ntasks:\n  - name: rest\n    run: sleep\n    with: { seconds: ${seconds} }\n`,
        );
      proc = startCli(['serve'], {
        DATABASE_URL: dbUrl.toString(),
        TASK_ENGINE_WORKFLOWS_DIR: workflowsDir,
        TASK_ENGINE_PORT: '0',
        TASK_ENGINE_ADMIN_CLIENT: ADMIN,
        TASK_ENGINE_ADMIN_API_KEY: KEY,
        TASK_ENGINE_LOG_LEVEL: 'error',
      });
      url = await Promise.race([
        waitFor(() => /listening on (http:\/\/\S+)/.exec(proc.stdout())?.[1], { timeoutMs: 60_000 }),
        proc.exited.then((code) => {
          throw new Error(`serve exited with ${code} before listening:\n${proc.stdout()}\n${proc.stderr()}`);
        }),
      ]);
    });
    after(async () => {
      if (proc && proc.child.exitCode === null && proc.child.signalCode === null) {
        proc.child.kill('SIGKILL');
        await proc.exited;
      }
      await relay?.down().catch(() => undefined); // close the relay: a listening server keeps the file running
      await store?.dispose();
      if (workflowsDir) rmSync(workflowsDir, { recursive: true, force: true });
    });

    const call = async (
      method: string,
      route: string,
      body?: unknown,
    ): Promise<{ status: number; type: string; text: string }> => {
      const res = await fetch(url + route, {
        method,
        headers: {
          client: ADMIN,
          'api-key': KEY,
          ...(body === undefined ? {} : { 'content-type': 'application/json' }),
        },
        ...(body === undefined ? {} : { body: JSON.stringify(body) }),
        signal: AbortSignal.timeout(10_000),
      });
      return { status: res.status, type: res.headers.get('content-type') ?? '', text: await res.text() };
    };
    const submit = async (workflow: string): Promise<number> => {
      const r = await call('POST', '/job', { job: { workflow }, parameters: {} });
      assert.equal(r.status, 200, r.text);
      return (JSON.parse(r.text) as { id: number }).id;
    };

    void it('answers JSON 503s while the database is away, stays up, and goes on once it is back', async () => {
      const before = [await submit('slow'), await submit('slow'), await submit('quick')];
      // The first slow task is running when the database goes: it ends (2 s) inside the outage (5 s).
      await waitFor(
        async () => {
          const r = await call('GET', `/jobs/${before[0]}`);
          return (JSON.parse(r.text) as { tasks?: { state: string }[] }).tasks?.[0]?.state === 'running';
        },
        { timeoutMs: 10_000, intervalMs: 50, what: 'the first slow task running' },
      );
      await relay.down();
      const faults: string[] = [];
      const statuses = new Map<string, number>();
      const until = Date.now() + OUTAGE_MS;
      while (Date.now() < until) {
        const routes: [string, string, unknown?][] = [
          ['GET', '/jobs?limit=5'],
          ['GET', '/health'],
          ['GET', `/jobs/${before[0]}`],
          ['POST', '/job', { job: { workflow: 'quick' }, parameters: {} }],
        ];
        await Promise.all(
          routes.map(async ([method, route, body]) => {
            const what = `${method} ${route}`;
            try {
              const r = await call(method, route, body);
              statuses.set(`${what} ${r.status}`, (statuses.get(`${what} ${r.status}`) ?? 0) + 1);
              if (!/^application\/json/.test(r.type))
                faults.push(`${what}: ${r.status} ${r.type} ${r.text.slice(0, 100)}`);
              else JSON.parse(r.text);
              if (r.status !== 503 && !(r.status >= 200 && r.status < 300))
                faults.push(`${what}: ${r.status} ${r.text.slice(0, 200)}`);
            } catch (err) {
              const cause = (err as { cause?: { code?: string; message?: string } }).cause;
              faults.push(`${what}: no answer (${String(err)} ${cause?.code ?? cause?.message ?? ''})`);
            }
          }),
        );
        await new Promise((resolve) => setTimeout(resolve, 200));
      }
      assert.equal(
        proc.child.exitCode,
        null,
        `the engine exited during the outage:\n${proc.stderr().slice(-3000)}`,
      );
      assert.deepEqual(
        faults,
        [],
        `answers during the outage: ${JSON.stringify([...statuses])}\n${proc.stderr().slice(-3000)}`,
      );
      assert.ok(statuses.size > 0);
      await relay.up();

      await waitFor(async () => (await call('GET', '/readyz').catch(() => null))?.status === 200, {
        timeoutMs: 15_000,
        what: '/readyz 200 again',
      });
      const fresh = await submit('quick');
      let seen = '';
      const ended = await waitFor(
        async () => {
          const states = await Promise.all(
            [...before, fresh].map(async (id) => {
              const r = await call('GET', `/jobs/${id}`);
              return r.status === 200
                ? (JSON.parse(r.text) as {
                    queue_state: string;
                    failed: boolean;
                    tasks: { attempts: number; state: string }[];
                  })
                : null;
            }),
          );
          seen = JSON.stringify(states.map((s) => [s?.queue_state, s?.tasks.map((t) => t.state)]));
          return states.every((s) => s?.queue_state === 'completed') ? states : undefined;
        },
        // Well under stall recovery (stall_timeout 30 s): a result that ended during the outage is
        // written once the database is back, and a task whose claim's answer was lost runs, neither
        // left to recovery.
        { timeoutMs: 20_000, intervalMs: 250, what: 'the jobs of before the outage and a new one completed' },
      ).catch((err: unknown) => {
        throw new Error(`${String(err)}; last seen (job, tasks): ${seen}\n${proc.stderr().slice(-3000)}`);
      });
      assert.deepEqual(
        ended.map((s) => s?.failed),
        [false, false, false, false],
      );
      assert.deepEqual(
        ended.map((s) => s?.tasks.map((t) => t.attempts)),
        [[1], [1], [1], [1]],
        'each task ran once: the slow task that ended during the outage kept its result',
      );
      assert.equal(proc.child.exitCode, null);
      proc.child.kill('SIGTERM');
      assert.equal(await proc.exited, 0);
    });
  },
);
