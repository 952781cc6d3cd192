/**
 * OpenTelemetry traces of real runs on both stores, read from the SDK's in-memory exporter: one
 * job span with an attempt span per attempt under it, an incoming `traceparent` continued, the
 * context passed to `exec` children, `http` targets and callback receivers; and nothing at all
 * from an engine with tracing off.
 */
import assert from 'node:assert/strict';
import { after, before, it } from 'node:test';
import { SpanStatusCode } from '@opentelemetry/api';
import { InMemorySpanExporter, SimpleSpanProcessor, type ReadableSpan } from '@opentelemetry/sdk-trace-base';
import type { FastifyInstance } from 'fastify';
import { buildServer } from '../../src/api/build-server.js';
import { createClient } from '../../src/engine/clients/clients.js';
import { patchJob, rerunJob } from '../../src/engine/jobs/service.js';
import { parseTraceparent } from '../../src/engine/tracing/tracing.js';
import { startTestEngine, type TestEngine } from '../helpers/engine.js';
import { startReceiver, type Receiver } from '../helpers/http-receiver.js';
import { createTestStore, forEachStore, type TestStore } from '../helpers/stores.js';
import { waitFor } from '../helpers/wait-for.js';

const endpoints = { type: 'object', properties: { rest_endpoints: { type: 'array' } } };

forEachStore('tracing', (kind) => {
  let store: TestStore;
  let te: TestEngine;
  let plain: TestEngine;
  let rx: Receiver;
  let app: FastifyInstance;
  let auth: Record<string, string>;
  const exporter = new InMemorySpanExporter();

  before(async () => {
    store = await createTestStore(kind);
    rx = await startReceiver(() => ({ status: 200 }));
    te = await startTestEngine(store, {
      settings: { retry_delay: 0 },
      queues: ['work'],
      config: {
        tracing: {
          exporter: 'otlp',
          serviceName: 'task-engine-test',
          spanProcessor: new SimpleSpanProcessor(exporter),
        },
      },
      workflows: {
        two: {
          parameters: endpoints,
          tasks: [
            { name: 'shell', run: 'exec', with: { command: 'sh', args: ['-c', 'echo "$TRACEPARENT"'] } },
            { name: 'call', run: 'http', with: { url: `${rx.url}/target` } },
          ],
        },
        flaky: {
          tasks: [
            {
              name: 'flaky',
              run: 'exec',
              with: { command: 'sh', args: ['-c', 'test "$TASK_ENGINE_ATTEMPT" -ge 2'] },
              retry_limit: 2,
              retry_delay: 0,
            },
          ],
        },
        stuck: {
          tasks: [{ name: 'stuck', run: 'exec', with: { command: 'sleep', args: ['30'] } }],
        },
        doomed: {
          tasks: [{ name: 'doomed', run: 'fail', with: { message: 'no', permanent: true }, retry_limit: 0 }],
        },
      },
    });
    app = buildServer(te.engine.ctx);
    await app.ready();
    const c = await createClient(store.db, { name: 'trace-admin', admin: true });
    auth = { client: 'trace-admin', 'api-key': c.api_key };
  });
  after(async () => {
    await app?.close();
    await plain?.stop();
    await te?.stop();
    await rx?.close();
    await store?.dispose();
  });

  const spansOfJob = (id: number): ReadableSpan[] =>
    exporter.getFinishedSpans().filter((s) => s.attributes['job.id'] === id);
  const jobSpan = async (id: number): Promise<ReadableSpan> => {
    await waitFor(() => spansOfJob(id).some((s) => s.name.startsWith('job ')), {
      timeoutMs: 10_000,
      what: `the job span of job ${id}`,
    });
    const spans = spansOfJob(id).filter((s) => s.name.startsWith('job '));
    assert.equal(spans.length, 1, 'one job span');
    return spans[0]!;
  };
  const attemptSpans = (id: number): ReadableSpan[] =>
    spansOfJob(id)
      .filter((s) => s.name.startsWith('task '))
      .sort((a, b) => Number(a.attributes.attempt) - Number(b.attributes.attempt));

  void it('a job of two tasks: one job span, two attempt spans under it; TRACEPARENT, http header and callbacks carry the trace', async () => {
    const id = await te.submit('two', { rest_endpoints: [`${rx.url}/cb`] });
    await te.waitForState(id, 'completed', 10_000);
    const job = await jobSpan(id);
    assert.equal(job.name, 'job two');
    assert.equal(job.parentSpanContext, undefined, 'a root span without an incoming traceparent');
    assert.equal(job.attributes.workflow, 'two');
    assert.equal(job.attributes.client, 'test-client');
    assert.equal(job.attributes.outcome, 'completed');
    assert.equal(job.status.code, SpanStatusCode.OK);
    assert.equal(job.resource.attributes['service.name'], 'task-engine-test');
    const attempts = spansOfJob(id).filter((s) => s.name.startsWith('task '));
    assert.deepEqual(attempts.map((s) => s.name).sort(), ['task call', 'task shell']);
    const { traceId, spanId } = job.spanContext();
    for (const a of attempts) {
      assert.equal(a.spanContext().traceId, traceId);
      assert.equal(a.parentSpanContext?.spanId, spanId, 'parent: the job span');
      assert.equal(a.attributes['job.id'], id);
      assert.equal(a.attributes.workflow, 'two');
      assert.equal(a.attributes.client, 'test-client');
      assert.equal(a.attributes.queue, 'work');
      assert.equal(a.attributes.attempt, 1);
      assert.equal(a.attributes.outcome, 'succeeded');
    }
    // The span's start is the submission time, its end the job's end.
    const row = await te.job(id);
    const startMs = job.startTime[0] * 1000 + job.startTime[1] / 1e6;
    const { rows } = await store.db.query<{ created_at: Date }>('SELECT created_at FROM jobs WHERE id = $1', [
      id,
    ]);
    assert.ok(Math.abs(startMs - rows[0]!.created_at.getTime()) < 2, 'starts at the submission');
    assert.ok(row.finished_at);

    const shell = attempts.find((s) => s.name === 'task shell')!;
    const out = (await te.tasks(id)).find((t) => t.name === 'shell')!.output as { stdout: string };
    const fromChild = parseTraceparent(out.stdout.trim());
    assert.ok(fromChild, `TRACEPARENT in the child: ${out.stdout}`);
    assert.equal(fromChild.traceId, traceId);
    assert.equal(fromChild.spanId, shell.spanContext().spanId);

    const call = attempts.find((s) => s.name === 'task call')!;
    const target = rx.on('/target');
    assert.equal(target.length, 1);
    const fromHttp = parseTraceparent(target[0]!.headers.traceparent);
    assert.equal(fromHttp?.traceId, traceId);
    assert.equal(fromHttp?.spanId, call.spanContext().spanId);

    await waitFor(() => rx.on('/cb').some((r) => r.raw.includes('"status"')), {
      timeoutMs: 10_000,
      what: 'the job-end callback',
    });
    const callbacks = rx.on('/cb');
    assert.ok(callbacks.length >= 5);
    for (const r of callbacks) {
      const tp = parseTraceparent(r.headers.traceparent);
      assert.equal(tp?.traceId, traceId, 'callbacks carry the trace');
      assert.equal(tp?.spanId, spanId, "callbacks' parent: the job span");
    }
    // Exported once: the trace row is marked ended.
    const { rows: tr } = await store.db.query<{ ended: boolean }>(
      'SELECT ended FROM job_traces WHERE job_id = $1',
      [id],
    );
    assert.deepEqual(tr, [{ ended: true }]);
    // A second end of the same job (another engine, a repeated write) exports nothing.
    const count = exporter.getFinishedSpans().length;
    te.engine.ctx.tracing!.jobsEnded([id], new Date());
    await te.engine.ctx.tracing!.flushJobEnds();
    assert.equal(exporter.getFinishedSpans().length, count);
  });

  void it('attempt spans and callbacks take the trace ids from their claims: no read of the trace per attempt or delivery', async () => {
    const metrics = te.engine.ctx.metrics!;
    const statements = async (): Promise<Map<string, number>> => {
      const counts = new Map<string, number>();
      for (const v of (await metrics.queryDuration.get()).values)
        if (v.metricName?.endsWith('_count')) counts.set(String(v.labels.query), v.value);
      return counts;
    };
    const before = await statements();
    const id = await te.submit('two', { rest_endpoints: [`${rx.url}/reads`] });
    await te.waitForState(id, 'completed', 10_000);
    const job = await jobSpan(id);
    await waitFor(() => rx.on('/reads').some((r) => r.raw.includes('"status"')), {
      timeoutMs: 10_000,
      what: 'the job-end callback',
    });
    const after = await statements();
    const ran = (name: string): number => (after.get(name) ?? 0) - (before.get(name) ?? 0);
    assert.ok(ran('claim-ready-tasks-traced') >= 2, 'the claims read the trace ids');
    assert.equal(ran('claim-ready-tasks'), 0, 'no claim without them while tracing is on');
    assert.equal(ran('read-job-trace'), 0, 'no read of the trace per attempt or per delivery');
    assert.equal(attemptSpans(id).length, 2);
    for (const r of rx.on('/reads'))
      assert.equal(parseTraceparent(r.headers.traceparent)?.spanId, job.spanContext().spanId);
  });

  void it('ids made by the submitting engine are the ones the running engine exports', async () => {
    const apiExporter = new InMemorySpanExporter();
    const api = await startTestEngine(store, {
      start: false,
      roles: ['api'],
      config: {
        tracing: {
          exporter: 'otlp',
          serviceName: 'api',
          spanProcessor: new SimpleSpanProcessor(apiExporter),
        },
      },
      workflows: { flaky: { tasks: [{ name: 'flaky', run: 'exec', with: { command: 'true' } }] } },
    });
    try {
      const id = await api.submit('flaky');
      const { rows } = await store.db.query<{ trace_id: string; span_id: string }>(
        'SELECT trace_id, span_id FROM job_traces WHERE job_id = $1',
        [id],
      );
      await te.waitForState(id, 'completed', 10_000);
      const job = await jobSpan(id);
      assert.equal(job.spanContext().traceId, rows[0]!.trace_id);
      assert.equal(job.spanContext().spanId, rows[0]!.span_id);
      assert.ok(attemptSpans(id).every((a) => a.parentSpanContext?.spanId === rows[0]!.span_id));
      assert.equal(apiExporter.getFinishedSpans().length, 0, 'the submitting engine exports nothing');
    } finally {
      await api.stop();
    }
  });

  void it('a failed and retried attempt makes two attempt spans; a failed job ends with ERROR', async () => {
    const flaky = await te.submit('flaky');
    await te.waitForState(flaky, 'completed', 10_000);
    const fj = await jobSpan(flaky);
    assert.equal(fj.status.code, SpanStatusCode.OK);
    const tries = attemptSpans(flaky);
    assert.deepEqual(
      tries.map((s) => [s.attributes.attempt, s.attributes.outcome, s.status.code]),
      [
        [1, 'failed', SpanStatusCode.ERROR],
        [2, 'succeeded', SpanStatusCode.OK],
      ],
    );
    assert.ok(tries.every((s) => s.parentSpanContext?.spanId === fj.spanContext().spanId));

    const doomed = await te.submit('doomed');
    const row = await te.waitForState(doomed, 'completed', 10_000);
    assert.equal(row.failed, true);
    const dj = await jobSpan(doomed);
    assert.equal(dj.status.code, SpanStatusCode.ERROR);
    assert.equal(dj.attributes.outcome, 'failed');
    const [only] = attemptSpans(doomed);
    assert.equal(only?.status.code, SpanStatusCode.ERROR);
    assert.equal(only?.status.message, 'no');
  });

  void it('a broken job: its span ends with ERROR and outcome broken, the running attempt with cancel', async () => {
    const id = await te.submit('stuck');
    await waitFor(async () => (await te.attempts(id, 'stuck')).length === 1, {
      timeoutMs: 10_000,
      what: 'the attempt of the stuck task',
    });
    await patchJob(te.engine.ctx, { client: 'test-client', admin: true }, String(id), {
      queue_state: 'broken',
    });
    const job = await jobSpan(id);
    assert.equal(job.attributes.outcome, 'broken');
    assert.equal(job.status.code, SpanStatusCode.ERROR);
    await waitFor(() => attemptSpans(id).length === 1, { timeoutMs: 10_000, what: 'the attempt span' });
    assert.equal(attemptSpans(id)[0]!.attributes.outcome, 'cancel');
    assert.equal(attemptSpans(id)[0]!.parentSpanContext?.spanId, job.spanContext().spanId);
  });

  void it('a rerun starts a trace of its own, with its job span and attempt spans', async () => {
    const first = await te.submit('flaky');
    await te.waitForState(first, 'completed', 10_000);
    const original = await jobSpan(first);
    const { id } = await rerunJob(te.engine.ctx, { client: 'test-client', admin: true }, String(first));
    await te.waitForState(id, 'completed', 10_000);
    const rerun = await jobSpan(id);
    assert.notEqual(rerun.spanContext().traceId, original.spanContext().traceId);
    assert.ok(attemptSpans(id).length >= 1);
    assert.ok(attemptSpans(id).every((a) => a.parentSpanContext?.spanId === rerun.spanContext().spanId));
  });

  void it('an incoming traceparent on POST /job becomes the trace and the parent of the job span', async () => {
    const incoming = '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01';
    const res = await app.inject({
      method: 'POST',
      url: '/job',
      headers: { ...auth, traceparent: incoming },
      payload: { job: { workflow: 'flaky' } },
    });
    assert.equal(res.statusCode, 200, res.body);
    const { id } = res.json<{ id: number }>();
    await te.waitForState(id, 'completed', 10_000);
    const job = await jobSpan(id);
    assert.equal(job.spanContext().traceId, '0af7651916cd43dd8448eb211c80319c');
    assert.equal(job.parentSpanContext?.spanId, 'b7ad6b7169203331');
    assert.equal(job.attributes.client, 'trace-admin');
    for (const a of attemptSpans(id))
      assert.equal(a.spanContext().traceId, '0af7651916cd43dd8448eb211c80319c');

    // A malformed header is ignored: a new trace.
    const bad = await app.inject({
      method: 'POST',
      url: '/job',
      headers: { ...auth, traceparent: 'not-a-traceparent' },
      payload: { job: { workflow: 'doomed' } },
    });
    assert.equal(bad.statusCode, 200, bad.body);
    const badId = bad.json<{ id: number }>().id;
    await te.waitForState(badId, 'completed', 10_000);
    assert.equal((await jobSpan(badId)).parentSpanContext, undefined);
  });

  void it('tracing off: no trace row, no spans, no TRACEPARENT and no traceparent on callbacks', async () => {
    // The traced engine stops first, so only the engine with tracing off sends callbacks.
    await te.stop();
    plain = await startTestEngine(store, {
      queues: ['plain'],
      workflows: {
        quiet: {
          parameters: endpoints,
          tasks: [
            {
              name: 'quiet',
              queue: 'plain',
              run: 'exec',
              with: { command: 'sh', args: ['-c', 'echo "[$TRACEPARENT]"'] },
            },
          ],
        },
      },
    });
    const id = await plain.submit('quiet', { rest_endpoints: [`${rx.url}/quiet`] });
    await plain.waitForState(id, 'completed', 10_000);
    await waitFor(() => rx.on('/quiet').some((r) => r.raw.includes('"status"')), {
      timeoutMs: 10_000,
      what: 'the job-end callback of the untraced job',
    });
    assert.ok(rx.on('/quiet').length >= 3);
    for (const r of rx.on('/quiet')) assert.equal(r.headers.traceparent, undefined);
    const out = (await plain.tasks(id))[0]!.output as { stdout: string };
    assert.equal(out.stdout.trim(), '[]');
    assert.deepEqual(spansOfJob(id), []);
    const { rows } = await store.db.query('SELECT 1 FROM job_traces WHERE job_id = $1', [id]);
    assert.equal(rows.length, 0);
  });
});
