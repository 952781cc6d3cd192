/**
 * `GET /events` over real HTTP (the API listening on a free port, read with fetch and
 * eventsource-parser), on both stores. On PostgreSQL the jobs run in a separate engine process
 * while this process's API serves the stream, so every event crosses processes through the
 * database's notifications; on PGlite one engine runs both.
 */
import assert from 'node:assert/strict';
import { after, before, it } from 'node:test';
import type { FastifyInstance } from 'fastify';
import { buildServer } from '../../src/api/build-server.js';
import { createClient } from '../../src/engine/clients/clients.js';
import type { Engine } from '../../src/engine/engine.js';
import { cleanupEvents } from '../../src/engine/maintenance/cleanup.js';
import {
  createIdleEngine,
  spawnEngineProcess,
  startTestEngine,
  writeSettings,
  type EngineProcess,
  type TestEngine,
} from '../helpers/engine.js';
import { createFixtureCatalog } from '../helpers/fixture-catalog.js';
import { createTestStore, forEachStore, type TestStore } from '../helpers/stores.js';
import { waitFor } from '../helpers/wait-for.js';
import { openEventStream, type SseEvent, type SseStream } from './events-helpers.js';

const catalog = () =>
  createFixtureCatalog({
    two_steps: {
      tasks: [
        { name: 'first', run: 'exec', with: { command: 'echo', args: ['first says hello'] } },
        {
          name: 'second',
          run: 'exec',
          with: {
            command: 'sh',
            args: ['-c', 'for i in 1 2 3 4 5 6; do echo "line $i"; sleep 0.25; done'],
          },
        },
      ],
    },
    quick: { tasks: [{ name: 'only', run: 'exec', with: { command: 'echo', args: ['quick'] } }] },
  });

interface Client {
  name: string;
  headers: Record<string, string>;
}

const jobEvents = (events: SseEvent[], jobId: number) =>
  events.filter((e) => (e.data.job_id as number) === jobId);
const ended = (jobId: number) => (events: SseEvent[]) =>
  events.some((e) => e.event === 'job' && e.data.job_id === jobId && e.data.queue_state === 'completed');

forEachStore('GET /events', (kind) => {
  let store: TestStore;
  let api: Engine;
  let runner: TestEngine | null = null;
  let proc: EngineProcess | null = null;
  let app: FastifyInstance;
  let base: string;
  let root: Client;
  let acme: Client;
  let other: Client;
  const streams: SseStream[] = [];

  const open = async (as: Client, query = '', headers: Record<string, string> = {}) => {
    const s = await openEventStream(`${base}/events${query}`, { ...as.headers, ...headers });
    streams.push(s);
    return s;
  };
  const submit = async (as: Client, workflow: string): Promise<number> => {
    const res = await fetch(`${base}/job`, {
      method: 'POST',
      headers: { ...as.headers, 'content-type': 'application/json' },
      body: JSON.stringify({ job: { workflow }, parameters: {} }),
    });
    const body = (await res.json()) as { id: number };
    assert.equal(res.status, 200, JSON.stringify(body));
    return body.id;
  };
  const getJson = async (as: Client, path: string) => {
    const res = await fetch(`${base}${path}`, { headers: as.headers });
    return res.json();
  };
  /** The ids the events table holds for a job, as a stream of `kinds` (visible log lines only) shows them. */
  const tableIds = async (jobId: number, kinds = ['job', 'task', 'log']) =>
    (
      await store.db.query<{ id: number }>(
        `SELECT e.id FROM events e LEFT JOIN logs l ON l.id = e.log_id
          WHERE e.job_id = $1 AND e.kind = ANY($2::text[]) AND (e.kind <> 'log' OR l.visible)
          ORDER BY e.id`,
        [jobId, kinds],
      )
    ).rows.map((r) => Number(r.id));
  const waitForJob = (id: number) =>
    waitFor(
      async () =>
        (await store.db.query<{ s: string }>(`SELECT queue_state AS s FROM jobs WHERE id = $1`, [id])).rows[0]
          ?.s === 'completed',
      { timeoutMs: 30_000, intervalMs: 50, what: `job ${id} to complete` },
    );

  before(async () => {
    store = await createTestStore(kind);
    const workflows = catalog();
    await writeSettings(store.db, { max_jobs: 10 });
    if (kind === 'postgres') {
      proc = await spawnEngineProcess({ databaseUrl: store.databaseUrl!, workflowsDir: workflows.dir });
      api = await createIdleEngine(store, workflows);
    } else {
      runner = await startTestEngine(store, { catalog: workflows });
      api = runner.engine;
    }
    app = buildServer(api.ctx);
    await app.listen({ host: '127.0.0.1', port: 0 });
    base = `http://127.0.0.1:${(app.server.address() as { port: number }).port}`;
    const make = async (name: string, admin: boolean): Promise<Client> => {
      const c = await createClient(store.db, { name, admin });
      return { name, headers: { client: name, 'api-key': c.api_key } };
    };
    root = await make('root', true);
    acme = await make('acme', false);
    other = await make('other', false);
  });
  after(async () => {
    for (const s of streams) s.close();
    await app?.close();
    await proc?.stop();
    await runner?.stop();
    await api?.stop();
    await store?.dispose();
  });

  it("streams a job's events in order: job queued → started → completed, each task ready → running → succeeded, ids strictly increasing", async () => {
    const s = await open(acme);
    assert.equal(s.status, 200);
    assert.match(s.contentType, /^text\/event-stream/);
    const id = await submit(acme, 'two_steps');
    await s.waitFor(ended(id), `job ${id} to complete`);
    assert.equal(s.retry, 2000);
    const mine = jobEvents(s.events, id);
    const ids = mine.map((e) => e.id!);
    for (let i = 1; i < ids.length; i++) assert.ok(ids[i]! > ids[i - 1]!, `ids increase: ${ids.join(',')}`);
    assert.deepEqual(
      mine.filter((e) => e.event === 'job').map((e) => [e.data.queue_state, e.data.previous_state]),
      [
        ['queued', null],
        ['started', 'queued'],
        ['completed', 'started'],
      ],
    );
    const jobEvent = mine.find((e) => e.event === 'job')!;
    assert.equal(jobEvent.data.client, 'acme');
    assert.equal(jobEvent.data.workflow, 'two_steps');
    assert.equal(jobEvent.data.failed, false);
    for (const name of ['first', 'second']) {
      const states = mine.filter((e) => e.event === 'task' && e.data.name === name).map((e) => e.data.state);
      assert.deepEqual(states, ['ready', 'running', 'succeeded'], `task ${name}`);
    }
    const task = mine.find((e) => e.event === 'task')!;
    for (const field of ['job_id', 'task_id', 'name', 'state', 'progress', 'previous_state', 'attempts'])
      assert.ok(field in task.data, `task event has ${field}`);
    assert.ok(!mine.some((e) => e.event === 'log'), 'no log lines without job_id');
    // Exactly the table's job and task rows of this job.
    assert.deepEqual(ids, await tableIds(id, ['job', 'task']));
    s.close();
  });

  it('a reconnect with Last-Event-ID in the middle of a running job misses nothing and repeats nothing', async () => {
    const id = await submit(acme, 'two_steps');
    const a = await open(acme, `?job_id=${id}&last_event_id=0`);
    await a.waitFor(
      (ev) => ev.some((e) => e.event === 'log' && e.data.message === 'line 1'),
      'the first line of the second task',
    );
    a.close();
    await a.waitForEnd();
    const lastSeen = a.events.at(-1)!.id!;
    // Events happen while the client is away: wait for two more of them in the table.
    const missed = await waitFor(
      async () => {
        const later = (await tableIds(id)).filter((e) => e > lastSeen);
        return later.length >= 2 ? later : null;
      },
      { timeoutMs: 20_000, what: 'events after the disconnect' },
    );
    const b = await open(acme, `?job_id=${id}`, { 'last-event-id': String(lastSeen) });
    await b.waitFor(ended(id), `job ${id} to complete`);
    const first = a.events.map((e) => e.id!);
    const second = b.events.map((e) => e.id!);
    assert.ok(second[0]! > lastSeen, 'the replay starts after Last-Event-ID');
    assert.equal(new Set([...first, ...second]).size, first.length + second.length, 'no duplicate');
    assert.deepEqual([...first, ...second], await tableIds(id), 'the union is every event of the job');
    assert.deepEqual(second.slice(0, 2), missed.slice(0, 2), 'the events committed while away were replayed');
    b.close();
  });

  it("a non-admin sees only its own jobs' events; an admin sees every client's, or one client's with ?client=", async () => {
    const sa = await open(acme);
    const so = await open(other);
    const sr = await open(root);
    const sra = await open(root, '?client=acme');
    const ja = await submit(acme, 'quick');
    const jo = await submit(other, 'quick');
    await sr.waitFor((ev) => ended(ja)(ev) && ended(jo)(ev), 'both jobs to complete (admin)');
    await sa.waitFor(ended(ja), "acme's job to complete");
    await so.waitFor(ended(jo), "other's job to complete");
    await sra.waitFor(ended(ja), "acme's job to complete (admin, client=acme)");
    // Events of a job can follow its completion (the last task's, in commit order): the admin's
    // stream may be ahead of other's when the waits above return, so let other catch up first.
    const adminSaw = jobEvents(sr.events, jo).length;
    await so.waitFor(
      (ev) => jobEvents(ev, jo).length >= adminSaw,
      "other to get every event the admin got of other's job",
    );
    const jobsOf = (s: SseStream) => new Set(s.events.map((e) => e.data.job_id as number));
    assert.ok(!jobsOf(sa).has(jo), 'acme does not see the job of other');
    assert.ok(!jobsOf(so).has(ja), 'other does not see the job of acme');
    assert.ok(!jobsOf(sra).has(jo), 'client=acme leaves out the job of other');
    assert.ok(
      sa.events.filter((e) => e.event === 'job').every((e) => e.data.client === 'acme'),
      'every job event acme got is of acme',
    );
    assert.deepEqual(
      jobEvents(sr.events, jo).map((e) => e.id),
      jobEvents(so.events, jo).map((e) => e.id),
      "the admin got the same events of other's job as other did",
    );
    for (const s of [sa, so, sr, sra]) s.close();

    const forbidden = await open(acme, '?client=other');
    assert.equal(forbidden.status, 403);
    assert.match(forbidden.error!.error, /client filter is for admins/);
    const hidden = await open(acme, `?job_id=${jo}`);
    assert.equal(hidden.status, 404, "another client's job is not found, as GET /jobs/<id> answers");
    assert.equal(hidden.error!.id, jo);
  });

  it("?job_id= streams that job's log lines in order, exactly as /logs returns them (hidden lines only with show_all)", async () => {
    const id = await submit(acme, 'two_steps');
    const visible = await open(acme, `?job_id=${id}&kinds=log&last_event_id=0`);
    const all = await open(acme, `?job_id=${id}&kinds=log,job&last_event_id=0&show_all=true`);
    await all.waitFor(ended(id), `job ${id} to complete`);
    await waitForJob(id);
    // The job's last log line ("completed") is written with its end: wait until both have it.
    const logs = (await getJson(acme, `/logs/${id}`)) as { message: string }[];
    const logsAll = (await getJson(acme, `/logs/${id}?show_all=1`)) as unknown[];
    await visible.waitFor((ev) => ev.length >= logs.length, `${logs.length} visible lines`);
    await all.waitFor(
      (ev) => ev.filter((e) => e.event === 'log').length >= logsAll.length,
      `${logsAll.length} lines`,
    );
    assert.deepEqual(
      visible.events.map((e) => e.data),
      logs,
    );
    assert.ok(visible.events.every((e) => e.event === 'log'));
    assert.deepEqual(
      all.events.filter((e) => e.event === 'log').map((e) => e.data),
      logsAll,
    );
    assert.ok(logsAll.length > logs.length, 'the job has hidden (DEBUG) lines, which show_all adds');
    assert.ok(logs.some((l) => l.message === 'line 6'));
    visible.close();
    all.close();
  });

  it('bad parameters answer 400 saying what is accepted; no credentials 401; an unknown job 404', async () => {
    const cases: [string, Record<string, string>, RegExp][] = [
      ['?job_id=abc', {}, /job_id must be a job id \(a positive whole number\)/],
      ['?job_id=0', {}, /job_id must be a job id/],
      ['?kinds=job,jobs', {}, /kinds must be a comma list of job, task, log.*"jobs"/],
      ['?kinds=log', {}, /log lines are streamed for one job only: give job_id/],
      ['?last_event_id=-1', {}, /last_event_id must be the id of an event/],
      ['', { 'last-event-id': 'abc' }, /the Last-Event-ID header must be the id of an event/],
      ['?show_all=maybe', {}, /show_all accepts 1 \(or true\) and 0 \(or false\)/],
      [
        '?since=5',
        {},
        /unknown query parameter "since"; accepted: job_id, kinds, client, last_event_id, show_all/,
      ],
      ['?kinds=job&kinds=task', {}, /kinds was given 2 times; give it once/],
    ];
    for (const [query, headers, message] of cases) {
      const s = await open(acme, query, headers);
      assert.equal(s.status, 400, `${query} ${JSON.stringify(headers)}`);
      assert.match(s.contentType, /^application\/json/);
      assert.match(s.error!.error, message);
    }
    const anonymous = await openEventStream(`${base}/events`, {});
    assert.equal(anonymous.status, 401);
    const unknown = await open(acme, '?job_id=999999');
    assert.equal(unknown.status, 404);
    assert.match(unknown.error!.error, /job 999999 not found/);
  });

  it('a Last-Event-ID older than the retained window gets event: reset, then live events', async () => {
    const id = await submit(acme, 'quick');
    await waitForJob(id);
    const ids = await tableIds(id, ['job', 'task']);
    assert.ok(ids.length >= 4);
    // The job's events up to its second are made older than the window and swept.
    const cutAt = ids[1]!;
    await store.db.query(`UPDATE events SET created_at = created_at - interval '2 hours' WHERE id <= $1`, [
      cutAt,
    ]);
    const { events: deleted } = await cleanupEvents(api.ctx);
    assert.ok(deleted >= 2, `deleted ${deleted}`);
    const oldest = Number(
      (await store.db.query<{ id: number }>(`SELECT min(id) AS id FROM events`)).rows[0]!.id,
    );
    assert.equal(oldest, cutAt + 1, 'the sweep deleted a prefix of the ids, up to the cut');

    // Resuming from the last deleted id misses nothing: it replays from the oldest kept.
    const fine = await open(acme, `?job_id=${id}&kinds=job,task`, { 'last-event-id': String(cutAt) });
    await fine.waitFor(ended(id), 'the replay up to the end of the job');
    assert.ok(!fine.events.some((e) => e.event === 'reset'));
    assert.deepEqual(
      fine.events.map((e) => e.id),
      ids.slice(2),
    );
    fine.close();

    const s = await open(acme, '', { 'last-event-id': String(ids[0]! - 1) });
    await s.waitFor((ev) => ev.length > 0, 'the reset');
    const reset = s.events[0]!;
    assert.equal(reset.event, 'reset');
    assert.equal(reset.data.reason, 'too_old');
    assert.equal(reset.data.oldest_id, oldest);
    assert.match(reset.data.message as string, /no longer kept/);
    assert.ok(
      typeof reset.id === 'number' && reset.id >= ids.at(-1)!,
      'the reset carries the id it goes on from',
    );
    const next = await submit(acme, 'quick');
    await s.waitFor(ended(next), 'live events after the reset');
    assert.ok(
      s.events.slice(1).every((e) => e.id! > reset.id!),
      'live events follow the reset id',
    );
    s.close();

    const ahead = await open(acme, '?last_event_id=900000000');
    await ahead.waitFor((ev) => ev.length > 0, 'the reset for an id never handed out');
    assert.equal(ahead.events[0]!.event, 'reset');
    assert.equal(ahead.events[0]!.data.reason, 'unknown_id');
    ahead.close();
  });

  it('an event id left missing by a rolled-back transaction delays later events by about 2 s, never longer', async () => {
    const id = await submit(acme, 'quick');
    await waitForJob(id);
    const s = await open(acme, `?job_id=${id}&kinds=log`);
    // Let the hub catch up with everything committed so far.
    await new Promise((r) => setTimeout(r, 500));
    const insertLog = `INSERT INTO logs (job_id, task_id, severity, progname, message, visible, created_at, updated_at)
                       VALUES ($1, 0, 1, 'api', $2, true, now(), now())`;
    await assert.rejects(
      store.db.transaction(async (tx) => {
        await tx.query(insertLog, [id, 'rolled back']);
        throw new Error('roll back');
      }),
      /roll back/,
    );
    const committedAt = Date.now();
    await store.db.query(insertLog, [id, 'after the gap']);
    await s.waitFor(
      (ev) => ev.some((e) => e.data.message === 'after the gap'),
      'the line after the gap',
      15_000,
    );
    const waited = Date.now() - committedAt;
    assert.ok(waited >= 1_500, `held back while the gap could still fill (${waited} ms)`);
    assert.ok(!s.events.some((e) => e.data.message === 'rolled back'));
    s.close();
  });

  it(
    "an event of a transaction that commits after a later one's arrives first, in id order",
    { skip: kind === 'pglite' ? 'PGlite runs one transaction at a time' : false },
    async () => {
      const id = await submit(acme, 'quick');
      await waitForJob(id);
      const s = await open(acme, `?job_id=${id}&kinds=log`);
      await new Promise((r) => setTimeout(r, 500));
      const insertLog = `INSERT INTO logs (job_id, task_id, severity, progname, message, visible, created_at, updated_at)
                         VALUES ($1, 0, 1, 'api', $2, true, now(), now())`;
      let release!: () => void;
      const held = new Promise<void>((r) => (release = r));
      let inserted!: () => void;
      const hasId = new Promise<void>((r) => (inserted = r));
      const slow = store.db.transaction(async (tx) => {
        await tx.query(insertLog, [id, 'slow']);
        inserted();
        await held;
      });
      await hasId;
      await store.db.query(insertLog, [id, 'fast']);
      await new Promise((r) => setTimeout(r, 300));
      assert.equal(s.events.length, 0, 'the later id waits for the earlier one');
      release();
      await slow;
      await s.waitFor((ev) => ev.length >= 2, 'both lines');
      assert.deepEqual(
        s.events.map((e) => e.data.message),
        ['slow', 'fast'],
      );
      s.close();
    },
  );
});
