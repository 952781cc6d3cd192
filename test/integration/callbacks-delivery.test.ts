import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { after, afterEach, before, it } from 'node:test';
import { createCallbackDispatcher } from '../../src/engine/callbacks/dispatcher.js';
import { taskEventBody } from '../../src/engine/callbacks/bodies.js';
import { enqueueJobEnd } from '../../src/engine/callbacks/enqueue.js';
import { verifyCallbackSignature } from '../../src/engine/callbacks/signing.js';
import { ManualClock, type Clock } from '../../src/engine/clock.js';
import type { Service } from '../../src/engine/context.js';
import { applyEffects, emptyEffects } from '../../src/engine/controller/advance.js';
import { SEVERITY } from '../../src/engine/jobs/job-log.js';
import type { Executor, Queryable } from '../../src/store/executor.js';
import {
  insertClient,
  insertDelivery,
  insertJob,
  jobLogs,
  putSetting,
  testContext,
} from '../helpers/factories.js';
import { startReceiver, type Receiver } from '../helpers/http-receiver.js';
import { createTestStore, forEachStore, type TestStore } from '../helpers/stores.js';
import { waitFor } from '../helpers/wait-for.js';

/** Paths answer by rule: `/fail2` fails twice then accepts, `/hang` never answers, `/500` always 500, `/flaky-first` fails its first request. */
function replyFor(path: string, n: number) {
  if (path.startsWith('/fail2')) return { status: n < 2 ? 503 : 200 };
  if (path.startsWith('/hang')) return { hang: true };
  if (path.startsWith('/500')) return { status: 500 };
  if (path.startsWith('/flaky-first')) return { status: n === 0 ? 502 : 204 };
  return { status: 200 };
}

async function deliveryRow(s: TestStore, id: number) {
  const { rows } = await s.db.query<{
    state: string;
    attempts: number;
    last_status: number | null;
    last_error: string | null;
  }>('SELECT state, attempts, last_status, last_error FROM callback_deliveries WHERE id = $1', [id]);
  return rows[0]!;
}

/**
 * Waits until attempt `attempts` of delivery `id` has failed and its retry is recorded (the row is
 * `pending` again), so the dispatcher's next timer is the retry's and not an earlier look-again.
 */
async function retryRecorded(s: TestStore, id: number, attempts: number): Promise<void> {
  await waitFor(
    async () => {
      const row = await deliveryRow(s, id);
      return row.state === 'pending' && row.attempts === attempts;
    },
    { what: `retry after attempt ${attempts} recorded` },
  );
}

forEachStore('callback dispatcher', (kind) => {
  let s: TestStore;
  let rx: Receiver;
  let dispatchers: Service[] = [];
  const start = async (opts: Parameters<typeof createCallbackDispatcher>[1] = {}, clock?: Clock) => {
    const d = createCallbackDispatcher(testContext(s.db, clock ? { clock } : {}), {
      random: () => 0,
      ...opts,
    });
    dispatchers.push(d);
    await d.start();
    return d;
  };

  before(async () => {
    s = await createTestStore(kind);
    rx = await startReceiver((req, n) => replyFor(req.path, n));
  });
  afterEach(async () => {
    for (const d of dispatchers) await d.stop();
    dispatchers = [];
  });
  after(async () => {
    await rx.close();
    await s.dispose();
  });

  void it('retries an endpoint that fails twice with 1 s then 2 s backoff and delivers on the third attempt', async () => {
    const jobId = await insertJob(s.db, { queue_state: 'started' });
    // Time moves only when the test says so; rows inserted with SQL now() are already due.
    const clock = new ManualClock();
    const t0 = clock.now().getTime();
    await start({}, clock);
    await s.db.transaction((tx) =>
      applyEffects(
        tx,
        {
          ...emptyEffects(),
          taskCallbacks: [
            {
              jobId,
              taskId: 7,
              event: 'start',
              target: `${rx.url}/fail2/a`,
              body: JSON.stringify(
                taskEventBody(
                  {
                    id: jobId,
                    workflow: 'demo',
                    content_id: 'c1',
                    client: 'test-client',
                    resolved_parameters: {},
                  },
                  { id: 7, name: 'hello' },
                  'start',
                  '',
                  1,
                  new Date(),
                ),
              ),
            },
          ],
        },
        new Date(),
      ),
    );
    // Each failed attempt leaves the dispatcher's timer on the retry's due time: 1 s after the
    // first failure, 2 s after the second. The retry is not sent a millisecond before it.
    const deliveryId = (
      await s.db.query<{ id: number }>('SELECT id FROM callback_deliveries WHERE job_id = $1', [jobId])
    ).rows[0]!.id;
    await retryRecorded(s, deliveryId, 1);
    await waitFor(() => clock.nextTimerAt() === t0 + 1_000, { what: 'first retry due in 1 s' });
    assert.equal(rx.on('/fail2/a').length, 1);
    await clock.advance(999);
    assert.equal(rx.on('/fail2/a').length, 1, 'not retried before 1 s');
    await clock.advance(1);
    await waitFor(() => rx.on('/fail2/a').length === 2, { what: 'second attempt' });
    await retryRecorded(s, deliveryId, 2);
    await waitFor(() => clock.nextTimerAt() === t0 + 3_000, { what: 'second retry due 2 s later' });
    await clock.advance(1_999);
    assert.equal(rx.on('/fail2/a').length, 2, 'not retried before 2 s');
    await clock.advance(1);
    await waitFor(() => rx.on('/fail2/a').length >= 3, { what: 'third attempt' });
    const hits = rx.on('/fail2/a');
    assert.deepEqual(
      hits.map((h) => h.headers['x-task-engine-attempt']),
      ['1', '2', '3'],
    );
    assert.equal(
      new Set(hits.map((h) => h.headers['x-task-engine-delivery'])).size,
      1,
      'same delivery id each attempt',
    );
    const { rows } = await s.db.query<{ id: number }>(
      'SELECT id FROM callback_deliveries WHERE job_id = $1',
      [jobId],
    );
    await waitFor(async () => (await deliveryRow(s, rows[0]!.id)).state === 'delivered', {
      what: 'delivered',
    });
    const row = await deliveryRow(s, rows[0]!.id);
    assert.equal(row.attempts, 3);
    assert.equal(row.last_status, 200);

    const logs = (await jobLogs(s.db, jobId)).filter((l) => l.progname === 'callback');
    assert.equal(logs.length, 3, JSON.stringify(logs));
    assert.match(
      logs[0]!.message,
      /callback 'start' of task 'hello' to http:\/\/127\.0\.0\.1:\d+\/fail2\/a attempt 1 of 6 failed: HTTP 503; retrying in 1 s/,
    );
    assert.equal(logs[0]!.severity, SEVERITY.WARN);
    assert.match(logs[1]!.message, /attempt 2 of 6 failed: HTTP 503; retrying in 2 s/);
    assert.match(logs[2]!.message, /delivered: HTTP 200 \(attempt 3,/);
    assert.equal(logs[2]!.severity, SEVERITY.INFO);
  });

  void it('a hanging endpoint does not delay deliveries to other targets; stop() hands its delivery back', async () => {
    const slowJob = await insertJob(s.db, { queue_state: 'started' });
    const fastJob = await insertJob(s.db, { queue_state: 'started' });
    const hung = await insertDelivery(s.db, {
      job_id: slowJob,
      target_url: `${rx.url}/hang/x`,
      event: 'start',
    });
    const d = await start();
    await waitFor(() => rx.on('/hang/x').length === 1, { what: 'hanging request sent' });
    // Several callbacks to the hanging target from other jobs, plus one to a healthy target.
    for (let i = 0; i < 3; i++) {
      const j = await insertJob(s.db, { queue_state: 'started' });
      await insertDelivery(s.db, { job_id: j, target_url: `${rx.url}/hang/x`, event: 'start' });
    }
    const t0 = Date.now();
    await s.db.transaction((tx) =>
      enqueueJobEnd(tx, [`${rx.url}/ok/fast`], {
        job_id: fastJob,
        status: 'completed',
        workflow: 'demo',
        content_id: null,
        custom_data: { a: 1 },
        time: new Date().toISOString(),
        client: 'test-client',
      }),
    );
    await waitFor(() => rx.on('/ok/fast').length === 1, { timeoutMs: 5_000, what: 'fast delivery' });
    // Well under the 10 s request timeout the hanging target's requests are waiting out.
    assert.ok(Date.now() - t0 < 5_000, `fast target served in ${Date.now() - t0} ms`);
    assert.deepEqual((JSON.parse(rx.on('/ok/fast')[0]!.raw) as { custom_data: unknown }).custom_data, {
      a: 1,
    });
    // At most two requests in flight to the hanging target from this process.
    assert.equal(rx.on('/hang/x').length, 2);
    assert.equal((await deliveryRow(s, hung)).state, 'delivering');
    await d.stop();
    const back = await deliveryRow(s, hung);
    assert.equal(back.state, 'pending', 'stop() puts the delivery back');
    assert.equal(back.attempts, 0, 'an attempt cut by shutdown is not counted');
    await s.db.query(`UPDATE callback_deliveries SET state = 'failed' WHERE target_url LIKE '%/hang/%'`);
  });

  void it('delivers a job’s callbacks to one target in order, even when the first needs a retry', async () => {
    const jobId = await insertJob(s.db, { queue_state: 'started' });
    const target = `${rx.url}/flaky-first/order`;
    const other = `${rx.url}/ok/order-other`;
    const flakyIds: number[] = [];
    for (let i = 1; i <= 5; i++) {
      flakyIds.push(
        await insertDelivery(s.db, { job_id: jobId, target_url: target, event: 'start', body: { seq: i } }),
      );
      await insertDelivery(s.db, { job_id: jobId, target_url: other, event: 'start', body: { seq: i } });
    }
    // The dispatchers' clock stands still until the test moves it, so the first callback's retry
    // (due 1 s after its failure) cannot become due while the other target is being served, however
    // slowly this machine runs.
    const clock = new ManualClock();
    const t0 = clock.now().getTime();
    await start({}, clock);
    await start({}, clock); // two dispatchers compete for the same rows
    await waitFor(() => rx.on('/ok/order-other').length === 5, { timeoutMs: 30_000, what: 'other target' });
    // The retry of the first does not hold the other target back: all five were delivered while
    // the flaky target's first callback was still waiting out its backoff, and nothing after it
    // was sent to the flaky target meanwhile.
    assert.equal(rx.on('/flaky-first/order').length, 1, 'only the failed first attempt so far');
    assert.deepEqual(
      rx.on('/ok/order-other').map((r) => (JSON.parse(r.raw) as { seq: number }).seq),
      [1, 2, 3, 4, 5],
    );
    await retryRecorded(s, flakyIds[0]!, 1);
    await waitFor(() => clock.nextTimerAt() === t0 + 1_000, { what: 'a dispatcher waiting for the retry' });
    await clock.advance(999);
    assert.equal(rx.on('/flaky-first/order').length, 1, 'the retry waits for its backoff');
    // Move time to the retry's due time: the dispatchers' timers fire.
    await clock.advance(1);
    await waitFor(() => rx.on('/flaky-first/order').length === 6, {
      timeoutMs: 30_000,
      what: 'six requests',
    });
    const seq = rx.on('/flaky-first/order').map((r) => (JSON.parse(r.raw) as { seq: number }).seq);
    assert.deepEqual(seq, [1, 1, 2, 3, 4, 5]);
    assert.equal(rx.on('/ok/order-other').length, 5, 'each delivered once');
  });

  void it('signs the raw body with the client’s signing secret; unsigned without a secret', async () => {
    const secret = 'sec_' + 'x'.repeat(40);
    await insertClient(s.db, { name: 'signer', signing_secret: secret });
    await insertClient(s.db, { name: 'plain' });
    const signedJob = await insertJob(s.db, { client: 'signer', queue_state: 'started' });
    const plainJob = await insertJob(s.db, { client: 'plain', queue_state: 'started' });
    await insertDelivery(s.db, {
      job_id: signedJob,
      target_url: `${rx.url}/ok/signed`,
      body: { job_id: signedJob, msg: 'héllo' },
    });
    await insertDelivery(s.db, { job_id: plainJob, target_url: `${rx.url}/ok/plain` });
    await start();
    await waitFor(() => rx.on('/ok/signed').length === 1 && rx.on('/ok/plain').length === 1, {
      what: 'both',
    });
    const req = rx.on('/ok/signed')[0]!;
    const expected = 'sha256=' + createHmac('sha256', secret).update(req.raw).digest('hex');
    assert.equal(req.headers['x-task-engine-signature'], expected);
    assert.ok(verifyCallbackSignature(secret, req.raw, req.headers['x-task-engine-signature']));
    assert.ok(!verifyCallbackSignature('wrong', req.raw, req.headers['x-task-engine-signature']));
    const ts = Number(req.headers['x-task-engine-timestamp']);
    assert.ok(Math.abs(ts - Date.now() / 1000) < 5, 'timestamp is the send time in Unix seconds');
    assert.equal(req.headers['content-type'], 'application/json');
    assert.equal((JSON.parse(req.raw) as { msg: string }).msg, 'héllo');
    const plain = rx.on('/ok/plain')[0]!;
    assert.equal(plain.headers['x-task-engine-signature'], undefined);
    assert.ok(plain.headers['x-task-engine-timestamp']);
  });

  void it('gives up after callback_retry_limit retries, logs it, and then delivers the next callback', async () => {
    await putSetting(s.db, 'callback_retry_limit', 1);
    try {
      const jobId = await insertJob(s.db, { queue_state: 'started' });
      const first = await insertDelivery(s.db, {
        job_id: jobId,
        target_url: `${rx.url}/500/giveup`,
        event: 'complete',
      });
      await insertDelivery(s.db, { job_id: jobId, target_url: `${rx.url}/500/giveup`, event: 'fail' });
      const clock = new ManualClock();
      await start({}, clock);
      // The one retry is due 1 s after the first failure.
      await retryRecorded(s, first, 1);
      await waitFor(() => clock.nextTimerAt() === clock.now().getTime() + 1_000, { what: 'retry due' });
      await clock.advance(1_000);
      await waitFor(async () => (await deliveryRow(s, first)).state === 'failed', {
        timeoutMs: 5_000,
        what: 'given up',
      });
      const row = await deliveryRow(s, first);
      assert.equal(row.attempts, 2, 'first attempt plus one retry');
      assert.equal(row.last_status, 500);
      // The next callback of the job for that target is not blocked forever by a given-up one.
      await waitFor(
        () => rx.on('/500/giveup').some((r) => r.headers['x-task-engine-delivery'] !== String(first)),
        {
          what: 'second callback attempted',
        },
      );
      const logs = (await jobLogs(s.db, jobId)).filter((l) => l.message.includes("callback 'complete'"));
      assert.equal(logs.length, 2);
      assert.equal(logs[1]!.severity, SEVERITY.ERROR);
      assert.match(
        logs[1]!.message,
        /attempt 2 failed: HTTP 500; giving up after 2 attempts \(callback_retry_limit 1\)/,
      );
    } finally {
      await putSetting(s.db, 'callback_retry_limit', 5);
    }
  });

  void it('re-sends a delivery whose dispatcher crashed (expired lease), not one whose lease is still valid', async () => {
    // Only this test's deliveries are undelivered, so the dispatcher's timer follows them alone.
    await s.db.query(
      `UPDATE callback_deliveries SET state = 'failed' WHERE state IN ('pending', 'delivering')`,
    );
    const jobId = await insertJob(s.db, { queue_state: 'started' });
    const clock = new ManualClock();
    const t0 = clock.now().getTime();
    const past = new Date(t0 - 60_000);
    const future = new Date(t0 + 60_000);
    const crashed = await insertDelivery(s.db, {
      job_id: jobId,
      target_url: `${rx.url}/ok/crashed`,
      state: 'delivering',
      attempts: 1,
      next_attempt_at: past,
      locked_until: past,
    });
    const leased = await insertDelivery(s.db, {
      job_id: await insertJob(s.db, { queue_state: 'started' }),
      target_url: `${rx.url}/ok/leased`,
      state: 'delivering',
      attempts: 1,
      next_attempt_at: future,
      locked_until: future,
    });
    await start({}, clock);
    await waitFor(async () => (await deliveryRow(s, crashed)).state === 'delivered', { what: 're-sent' });
    assert.equal(rx.on('/ok/crashed').length, 1);
    assert.equal(rx.on('/ok/crashed')[0]!.headers['x-task-engine-attempt'], '2');
    assert.equal((await deliveryRow(s, crashed)).attempts, 2);
    // Half-way through the live lease the dispatcher claims again (its safety timer, 30 s) and
    // still leaves the leased delivery alone; its next wake-up is then the lease's expiry.
    await waitFor(() => clock.nextTimerAt() === t0 + 30_000, { what: 'dispatcher idle' });
    await clock.advance(30_000);
    await waitFor(() => clock.nextTimerAt() === future.getTime(), {
      what: 'waiting for the lease to expire',
    });
    assert.equal(rx.on('/ok/leased').length, 0, 'a live lease is respected');
    assert.equal((await deliveryRow(s, leased)).state, 'delivering');
    await s.db.query(`UPDATE callback_deliveries SET state = 'failed' WHERE id = $1`, [leased]);
  });

  void it('keeps trying to record a delivered callback while the database cannot be reached, and sends it once', async () => {
    await s.db.query(
      `UPDATE callback_deliveries SET state = 'failed' WHERE state IN ('pending', 'delivering')`,
    );
    const jobId = await insertJob(s.db, { queue_state: 'started' });
    // The first two outcome writes fail as a dropped connection does (before anything is written).
    let refused = 0;
    const db: Executor = Object.create(s.db) as Executor;
    Object.assign(db, {
      kind: s.db.kind,
      query: s.db.query.bind(s.db),
      exec: s.db.exec.bind(s.db),
      transaction: <T>(fn: (tx: Queryable) => Promise<T>) => {
        if (refused < 2) {
          refused++;
          return Promise.reject(new Error('Connection terminated unexpectedly'));
        }
        return s.db.transaction(fn);
      },
      listen: s.db.listen.bind(s.db),
      tryLock: s.db.tryLock.bind(s.db),
      close: s.db.close.bind(s.db),
    });
    const id = await insertDelivery(s.db, { job_id: jobId, target_url: `${rx.url}/ok/outage` });
    const d = createCallbackDispatcher(testContext(db), { random: () => 0 });
    dispatchers.push(d);
    await d.start();
    // Recorded after two pauses (0.2 s, 0.4 s), long before the lease (30 s) would send it again.
    await waitFor(async () => (await deliveryRow(s, id)).state === 'delivered', {
      timeoutMs: 5_000,
      what: 'the delivery recorded',
    });
    assert.equal(refused, 2);
    assert.equal(rx.on('/ok/outage').length, 1);
    assert.equal((await deliveryRow(s, id)).attempts, 1);
  });

  void it('two dispatchers deliver each of many callbacks exactly once', async () => {
    const ids: number[] = [];
    for (let j = 0; j < 10; j++) {
      const jobId = await insertJob(s.db, { queue_state: 'started' });
      for (let i = 0; i < 3; i++)
        ids.push(
          await insertDelivery(s.db, {
            job_id: jobId,
            target_url: `${rx.url}/ok/many-${j % 3}`,
            body: { j, i },
          }),
        );
    }
    await Promise.all([start(), start()]);
    await waitFor(
      async () => {
        const { rows } = await s.db.query<{ n: number }>(
          `SELECT count(*) AS n FROM callback_deliveries WHERE id = ANY($1::bigint[]) AND state = 'delivered'`,
          [ids],
        );
        return rows[0]!.n === ids.length;
      },
      // Exactly-once is the point, not speed: on PGlite every statement runs on this thread and
      // both dispatchers share its one connection, so a loaded machine needs well over 8 s.
      { timeoutMs: 40_000, intervalMs: 200, what: 'all delivered' },
    );
    const got = rx.requests
      .filter((r) => r.path.startsWith('/ok/many-'))
      .map((r) => r.headers['x-task-engine-delivery']);
    assert.equal(got.length, ids.length);
    assert.equal(new Set(got).size, ids.length);
  });
});
