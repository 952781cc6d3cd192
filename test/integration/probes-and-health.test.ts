/**
 * `/livez`, `/readyz` and the checks of `/health` against real stores: readiness follows a
 * PostgreSQL that goes away (a TCP proxy in front of it is stopped) and comes back; `/health` is
 * degraded while a queue has ready work and no live worker.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { pino } from 'pino';
import type { FastifyInstance } from 'fastify';
import { buildServer } from '../../src/api/build-server.js';
import { createClient } from '../../src/engine/clients/clients.js';
import { createEngine, type Engine } from '../../src/engine/engine.js';
import { startTestEngine, testConfig, type TestEngine } from '../helpers/engine.js';
import { createFixtureCatalog } from '../helpers/fixture-catalog.js';
import { createTestStore, forEachStore, storeKinds, type TestStore } from '../helpers/stores.js';
import { startTcpRelay, type TcpRelay } from '../helpers/tcp-relay.js';
import { waitFor } from '../helpers/wait-for.js';

const hasPostgres = storeKinds().includes('postgres');

describe('GET /readyz follows the database', { skip: !hasPostgres && 'needs TEST_DATABASE_URL' }, () => {
  let store: TestStore;
  let engine: Engine;
  let app: FastifyInstance;
  let proxy: TcpRelay;
  before(async () => {
    store = await createTestStore('postgres');
    const url = new URL(store.databaseUrl!);
    proxy = await startTcpRelay({ port: Number(url.port || 5432) });
    url.host = `127.0.0.1:${proxy.port}`;
    const catalog = createFixtureCatalog({});
    // The engine opens its own pool through the proxy (and so owns and closes it).
    engine = await createEngine(
      testConfig({ databaseUrl: url.toString(), workflowsDir: catalog.dir, roles: ['api'] }),
      {
        catalog,
        logger: pino({ level: 'silent' }),
      },
    );
    app = buildServer(engine.ctx);
    await app.ready();
  });
  after(async () => {
    await app?.close();
    await engine?.stop();
    await proxy?.down();
    await store?.dispose();
  });

  void it('is 200 with the database, 503 JSON without it, 200 again once it is back; /livez stays 200', async () => {
    const ready = () => app.inject({ method: 'GET', url: '/readyz' });
    const ok = await ready();
    assert.equal(ok.statusCode, 200, ok.body);
    assert.deepEqual((JSON.parse(ok.body) as { status: string }).status, 'ok');
    await proxy.down();
    const down = await ready();
    assert.equal(down.statusCode, 503, down.body);
    assert.match(String(down.headers['content-type']), /^application\/json/);
    const body = JSON.parse(down.body) as { error: string; status: string; checks: { database: string } };
    assert.match(body.error, /^database: /);
    assert.equal(body.checks.database, 'unavailable');
    const live = await app.inject({ method: 'GET', url: '/livez' });
    assert.equal(live.statusCode, 200);
    await proxy.up();
    await waitFor(async () => (await ready()).statusCode === 200, {
      timeoutMs: 10_000,
      what: '/readyz 200 again',
    });
  });
});

forEachStore('/health checks', (kind) => {
  let store: TestStore;
  let te: TestEngine;
  let app: FastifyInstance;
  let admin: Record<string, string>;
  before(async () => {
    store = await createTestStore(kind);
    // Workers serve only `other`: the `work` queue's tasks have no live worker.
    te = await startTestEngine(store, {
      queues: ['other'],
      workflows: { stuck: { tasks: [{ name: 'wait', run: 'sleep', with: { seconds: 0 } }] } },
    });
    app = buildServer(te.engine.ctx);
    await app.ready();
    const a = await createClient(store.db, { name: 'health-admin', admin: true });
    admin = { client: 'health-admin', 'api-key': a.api_key };
  });
  after(async () => {
    await app?.close();
    await te?.stop();
    await store?.dispose();
  });

  void it('is degraded with a reason while a queue has ready tasks and no live worker; counts match /jobs', async () => {
    const health = async () => {
      const res = await app.inject({ method: 'GET', url: '/health', headers: admin });
      assert.equal(res.statusCode, 200, res.body);
      return JSON.parse(res.body) as {
        status: string;
        reasons: string[];
        checks: Record<string, { status: string; [k: string]: unknown }>;
        jobs: Record<string, number>;
        queues: Record<string, { workers: number; pending: number }>;
      };
    };
    const first = await health();
    // No scheduler role in this engine: no leader.
    assert.equal(first.checks.scheduler!.status, 'degraded');
    assert.equal(first.checks.controller!.status, 'ok');
    assert.equal(first.checks.database!.status, 'ok');
    assert.equal(typeof first.checks.database!.round_trip_ms, 'number');
    assert.ok(!first.reasons.some((r) => r.includes('queue "work"')));
    const id = await te.submit('stuck');
    await te.waitForState(id, 'started', 5_000);
    await waitFor(async () => (await health()).checks.workers!.status === 'degraded', {
      timeoutMs: 5_000,
      what: 'the work queue reported stranded',
    });
    const h = await health();
    assert.equal(h.status, 'degraded');
    assert.ok(
      h.reasons.some((r) => r === 'queue "work" has 1 ready task(s) and no live worker'),
      JSON.stringify(h.reasons),
    );
    assert.equal(h.queues.work!.workers, 0);
    assert.equal(h.queues.work!.pending, 1);
    assert.deepEqual((h.checks.workers!.queues as Record<string, unknown>).work, { ready: 1, workers: 0 });
    // The job counts are those of GET /jobs?state=.
    for (const state of ['started', 'queued', 'completed']) {
      const res = await app.inject({ method: 'GET', url: `/jobs?state=${state}`, headers: admin });
      assert.equal(res.statusCode, 200, res.body);
      const listed = JSON.parse(res.body) as { total?: number; jobs?: unknown[] } | unknown[];
      const n = Array.isArray(listed) ? listed.length : (listed.total ?? listed.jobs?.length ?? -1);
      assert.equal(h.jobs[state], n, `jobs.${state}`);
    }
  });
});
