/**
 * The life of `/events` streams around them: the server closing, the engine stopping, the
 * keep-alive comment, a subscriber that does not read, and the `event_retention` setting. Real
 * HTTP and real stores.
 */
import assert from 'node:assert/strict';
import { after, before, it } from 'node:test';
import type { FastifyInstance } from 'fastify';
import { pino } from 'pino';
import { buildServer } from '../../src/api/build-server.js';
import { createClient } from '../../src/engine/clients/clients.js';
import { ManualClock } from '../../src/engine/clock.js';
import { createEngine, type Engine } from '../../src/engine/engine.js';
import { EventHub, eventHubOf, type CloseReason } from '../../src/engine/events/hub.js';
import { createSchedulerService } from '../../src/engine/scheduler/scheduler-service.js';
import type { EngineEvent } from '../../src/engine/events/types.js';
import { createIdleEngine, guardEngine, submitAs, testConfig } from '../helpers/engine.js';
import { createFixtureCatalog } from '../helpers/fixture-catalog.js';
import { createTestStore, forEachStore, type TestStore } from '../helpers/stores.js';
import { waitFor } from '../helpers/wait-for.js';
import { openEventStream } from './events-helpers.js';

const catalog = createFixtureCatalog({
  quick: { tasks: [{ name: 'only', run: 'exec', with: { command: 'echo', args: ['quick'] } }] },
});

forEachStore('GET /events: the life of a stream', (kind) => {
  let store: TestStore;
  let headers: Record<string, string>;
  let rootHeaders: Record<string, string>;

  /** An engine (not started: API only) and its server listening on a free port. */
  const serve = async (engine: Engine): Promise<{ app: FastifyInstance; url: string }> => {
    const app = buildServer(engine.ctx);
    await app.listen({ host: '127.0.0.1', port: 0 });
    return { app, url: `http://127.0.0.1:${(app.server.address() as { port: number }).port}` };
  };

  before(async () => {
    store = await createTestStore(kind);
    const acme = await createClient(store.db, { name: 'acme' });
    headers = { client: 'acme', 'api-key': acme.api_key };
    const root = await createClient(store.db, { name: 'root', admin: true });
    rootHeaders = { client: 'root', 'api-key': root.api_key };
  });
  after(() => store?.dispose());

  it('closing the server ends the open streams at once (it does not wait for them)', async () => {
    const engine = await createIdleEngine(store, catalog);
    const { app, url } = await serve(engine);
    const s = await openEventStream(`${url}/events`, headers);
    assert.equal(s.status, 200);
    await s.waitFor(() => s.retry === 2000, 'the retry field');
    const closing = app.close();
    const outcome = await Promise.race([
      closing.then(() => 'closed'),
      new Promise((r) => setTimeout(r, 5_000, 'still open')),
    ]);
    if (outcome !== 'closed') {
      s.close(); // lets the server close, so the failure below is the only one
      await closing;
    }
    assert.equal(outcome, 'closed', 'the server closed within 5 s with a stream open');
    await s.waitForEnd(5_000);
    assert.ok(
      s.comments.some((c) => c.startsWith('closed: the engine is stopping')),
      s.comments.join('|'),
    );
    await engine.stop();
  });

  it('a client that goes away leaves no subscription behind; HEAD /events is not a route', async () => {
    const engine = await createIdleEngine(store, catalog);
    const { app, url } = await serve(engine);
    try {
      const streams = await Promise.all([1, 2, 3].map(() => openEventStream(`${url}/events`, headers)));
      await Promise.all(streams.map((s) => s.waitFor(() => s.retry === 2000, 'the retry field')));
      const hub = eventHubOf(engine.ctx);
      assert.equal(hub.size, 3);
      for (const s of streams) s.close();
      await waitFor(() => hub.size === 0, { timeoutMs: 5_000, what: 'the subscriptions to end' });
      const head = await fetch(`${url}/events`, { method: 'HEAD', headers });
      assert.equal(head.status, 404);
    } finally {
      await app.close();
      await engine.stop();
    }
  });

  it('stopping the engine ends its streams; a new stream then answers 503', async () => {
    const engine = await createIdleEngine(store, catalog);
    const { app, url } = await serve(engine);
    try {
      const s = await openEventStream(`${url}/events`, headers);
      await s.waitFor(() => s.retry === 2000, 'the retry field');
      await engine.stop();
      await s.waitForEnd(5_000);
      assert.ok(
        s.comments.some((c) => c.includes('reconnect with Last-Event-ID')),
        s.comments.join('|'),
      );
      const late = await openEventStream(`${url}/events`, headers);
      assert.equal(late.status, 503);
      assert.match(late.error!.error, /the engine is stopping/);
    } finally {
      await app.close();
    }
  });

  it('sends "retry: 2000" first and a keep-alive comment every 15 s of the engine clock', async () => {
    const clock = new ManualClock(Date.now());
    const engine = guardEngine(
      await createEngine(testConfig({ databaseUrl: store.databaseUrl, workflowsDir: catalog.dir }), {
        db: store.db,
        catalog,
        clock,
        logger: pino({ level: 'silent' }),
      }),
      `manual clock on ${kind}`,
    );
    const { app, url } = await serve(engine);
    try {
      const s = await openEventStream(`${url}/events`, headers);
      await s.waitFor(() => s.retry === 2000, 'the retry field');
      await clock.advance(14_000);
      await new Promise((r) => setTimeout(r, 100));
      assert.equal(s.comments.filter((c) => c === 'keep-alive').length, 0, 'not before 15 s');
      await clock.advance(1_000);
      await s.waitFor(() => s.comments.includes('keep-alive'), 'the first keep-alive');
      await clock.advance(15_000);
      await s.waitFor(
        () => s.comments.filter((c) => c === 'keep-alive').length === 2,
        'the second keep-alive',
      );
      s.close();
    } finally {
      await app.close();
      await engine.stop();
    }
  });

  it('closes a subscriber that does not read once its queue passes the bound, and goes idle without subscribers', async () => {
    const engine = await createIdleEngine(store, catalog);
    const hub = new EventHub(engine.ctx, { maxQueued: 3 });
    try {
      const jobId = await submitAs(engine, 'quick', {}, {}, 'acme');
      const got: EngineEvent[] = [];
      let closed: CloseReason | null = null;
      const sub = await hub.subscribe(
        { client: 'acme', jobId, kinds: new Set(['log']), showAll: true },
        {
          send: (e) => {
            got.push(e);
            return false; // the buffer is full from now on, and never drains
          },
          drained: () => new Promise<void>(() => undefined),
          closed: (reason) => {
            closed = reason;
          },
        },
      );
      sub.resume(sub.after);
      assert.equal(hub.size, 1);
      await store.db.query(
        `INSERT INTO logs (job_id, task_id, severity, progname, message, visible, created_at, updated_at)
         SELECT $1, 0, 1, 'api', 'line ' || g, true, now(), now() FROM generate_series(1, 10) g`,
        [jobId],
      );
      await waitFor(() => closed, { timeoutMs: 10_000, what: 'the slow subscriber to be closed' });
      assert.equal(closed, 'slow');
      assert.equal(got.length, 1, 'one event was taken before the buffer was full');
      assert.equal(hub.size, 0, 'the hub has no subscriber left');
    } finally {
      await hub.stop();
      await engine.stop();
    }
  });

  it('event_retention is a known setting: default 900 s, at least 10', async () => {
    const engine = await createIdleEngine(store, catalog);
    const { app, url } = await serve(engine);
    try {
      const post = (setting: unknown) =>
        fetch(`${url}/settings`, {
          method: 'POST',
          headers: { ...rootHeaders, 'content-type': 'application/json' },
          body: JSON.stringify({ name: 'event_retention', setting }),
        });
      const list = (await (await fetch(`${url}/settings`, { headers })).json()) as {
        settings: Record<string, unknown>;
      };
      assert.equal(list.settings.event_retention, 900);
      const low = await post(5);
      assert.equal(low.status, 400);
      assert.match(
        ((await low.json()) as { error: string }).error,
        /event_retention" must be at least 10 and at most 604800/,
      );
      assert.equal((await post('60')).status, 200);
      assert.equal((await post(900)).status, 200);
    } finally {
      await app.close();
      await engine.stop();
    }
  });

  it('the recover_stalled_tasks maintenance run deletes the events older than event_retention', async () => {
    const engine = await createIdleEngine(store, catalog);
    const jobId = await submitAs(engine, 'quick', {}, {}, 'acme');
    await store.db.query(
      `INSERT INTO logs (job_id, task_id, severity, progname, message, visible, created_at, updated_at)
       SELECT $1, 0, 1, 'api', 'old ' || g, true, now(), now() FROM generate_series(1, 5) g`,
      [jobId],
    );
    const ids = (
      await store.db.query<{ id: number }>(`SELECT id FROM events WHERE job_id = $1 ORDER BY id`, [jobId])
    ).rows.map((r) => Number(r.id));
    const cut = ids[3]!;
    await store.db.query(`UPDATE events SET created_at = created_at - interval '1 hour' WHERE id <= $1`, [
      cut,
    ]);
    const noop = () => Promise.resolve(0);
    const scheduler = createSchedulerService(engine.ctx, {
      handlers: { queue_scheduled_jobs: noop, push_jobs: noop, cleanup_jobs: noop },
      timing: { recover_stalled_tasks: { everySeconds: 0.2, firstInSeconds: 0.1 } },
    });
    await scheduler.start();
    try {
      await waitFor(
        async () =>
          Number(
            (
              await store.db.query<{ id: number }>(`SELECT min(id) AS id FROM events WHERE job_id = $1`, [
                jobId,
              ])
            ).rows[0]!.id,
          ) ===
          cut + 1,
        { timeoutMs: 15_000, what: 'the old events to be deleted' },
      );
      const left = (
        await store.db.query<{ id: number }>(`SELECT id FROM events WHERE job_id = $1 ORDER BY id`, [jobId])
      ).rows.map((r) => Number(r.id));
      assert.deepEqual(left, ids.slice(4), 'the events of the last hour stay');
    } finally {
      await scheduler.stop();
      await engine.stop();
    }
  });

  it("after every event was swept, the reset's id resumes without another reset", async () => {
    const engine = await createIdleEngine(store, catalog);
    const { app, url } = await serve(engine);
    try {
      await submitAs(engine, 'quick', {}, {}, 'acme');
      await store.db.query(`DELETE FROM events`);
      const allocated = Number(
        (await store.db.query<{ v: number }>(`SELECT last_value AS v FROM events_id_seq`)).rows[0]!.v,
      );
      const first = await openEventStream(`${url}/events?last_event_id=1`, headers);
      await first.waitFor((ev) => ev.length > 0, 'the reset');
      assert.equal(first.events[0]!.event, 'reset');
      assert.equal(first.events[0]!.data.oldest_id, allocated + 1);
      assert.equal(first.events[0]!.id, allocated, 'the stream goes on from the last id handed out');
      first.close();
      const again = await openEventStream(`${url}/events`, {
        ...headers,
        'last-event-id': String(first.events[0]!.id),
      });
      const jobId = await submitAs(engine, 'quick', {}, {}, 'acme');
      await again.waitFor((ev) => ev.length > 0, "the new job's event");
      assert.equal(again.events[0]!.event, 'job');
      assert.equal(again.events[0]!.data.job_id, jobId);
      assert.ok(again.events[0]!.id! > allocated);
      again.close();
    } finally {
      await app.close();
      await engine.stop();
    }
  });
});
