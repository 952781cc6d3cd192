import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { InMemorySpanExporter, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base';
import { ConfigError, loadConfig } from '../../config/load-config.js';
import type { Queryable } from '../../store/executor.js';
import { TraceFlags } from '@opentelemetry/api';
import { createEngineTracing, formatTraceparent, parseTraceparent } from './tracing.js';

/** These tests end no job: a database that refuses every statement. */
const noDatabase: Queryable = {
  query: () => Promise.reject(new Error('no database in this test')),
  exec: () => Promise.reject(new Error('no database in this test')),
};

describe('tracing settings (OTEL_* variables)', () => {
  it('is off without the variables, and with OTEL_TRACES_EXPORTER=none whatever else is set', () => {
    assert.equal(loadConfig({}).tracing, undefined);
    assert.equal(loadConfig({ OTEL_SERVICE_NAME: 'x' }).tracing, undefined);
    assert.equal(
      loadConfig({ OTEL_TRACES_EXPORTER: 'none', OTEL_EXPORTER_OTLP_ENDPOINT: 'http://c:4318' }).tracing,
      undefined,
    );
  });

  it('an endpoint turns OTLP on; the traces endpoint wins; the service name defaults to task-engine', () => {
    assert.deepEqual(loadConfig({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://c:4318/' }).tracing, {
      exporter: 'otlp',
      serviceName: 'task-engine',
      otlpUrl: 'http://c:4318/v1/traces',
    });
    assert.deepEqual(
      loadConfig({
        OTEL_EXPORTER_OTLP_ENDPOINT: 'http://c:4318',
        OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'https://t.example/traces',
        OTEL_SERVICE_NAME: 'media-engine',
      }).tracing,
      { exporter: 'otlp', serviceName: 'media-engine', otlpUrl: 'https://t.example/traces' },
    );
    assert.deepEqual(loadConfig({ OTEL_TRACES_EXPORTER: 'console' }).tracing, {
      exporter: 'console',
      serviceName: 'task-engine',
    });
  });

  it('refuses an unknown exporter and an endpoint that is not an http(s) URL, naming the variable', () => {
    assert.throws(
      () => loadConfig({ OTEL_TRACES_EXPORTER: 'zipkin' }),
      (e: unknown) =>
        e instanceof ConfigError && /OTEL_TRACES_EXPORTER must be otlp, console or none/.test(e.message),
    );
    assert.throws(
      () => loadConfig({ OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'ftp://c/x' }),
      (e: unknown) => e instanceof ConfigError && /OTEL_EXPORTER_OTLP_TRACES_ENDPOINT/.test(e.message),
    );
  });
});

describe('traceparent', () => {
  it('reads version 00 headers and refuses malformed or all-zero ones', () => {
    const tp = '00-0AF7651916CD43DD8448EB211C80319C-b7ad6b7169203331-01';
    assert.deepEqual(parseTraceparent(` ${tp} `), {
      traceId: '0af7651916cd43dd8448eb211c80319c',
      spanId: 'b7ad6b7169203331',
      traceFlags: 1,
      isRemote: true,
    });
    for (const bad of [
      undefined,
      42,
      '',
      '01-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01',
      '00-00000000000000000000000000000000-b7ad6b7169203331-01',
      '00-0af7651916cd43dd8448eb211c80319c-0000000000000000-01',
      '00-0af7651916cd43dd8448eb211c80319c-b7ad6b716920333-01',
    ])
      assert.equal(parseTraceparent(bad), null, String(bad));
    assert.equal(
      formatTraceparent('0af7651916cd43dd8448eb211c80319c', 'b7ad6b7169203331', 0),
      tp.toLowerCase().replace(/01$/, '00'),
    );
  });

  it('new job traces: fresh ids, or the incoming trace with its span as parent; nothing exported', async () => {
    const exporter = new InMemorySpanExporter();
    const tracing = createEngineTracing(
      { exporter: 'otlp', serviceName: 't', spanProcessor: new SimpleSpanProcessor(exporter) },
      '0.0.0',
      noDatabase,
    );
    const a = tracing.newJobTrace(undefined, new Date());
    const b = tracing.newJobTrace(undefined, new Date());
    assert.match(a.traceId, /^[0-9a-f]{32}$/);
    assert.match(a.spanId, /^[0-9a-f]{16}$/);
    assert.notEqual(a.traceId, b.traceId);
    assert.equal(a.parentSpanId, null);
    assert.equal(a.traceFlags, 1, 'sampled by the default sampler');
    const c = tracing.newJobTrace('00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01', new Date());
    assert.equal(c.traceId, '0af7651916cd43dd8448eb211c80319c');
    assert.equal(c.parentSpanId, 'b7ad6b7169203331');
    assert.notEqual(c.spanId, 'b7ad6b7169203331');
    const unsampled = tracing.newJobTrace(
      '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00',
      new Date(),
    );
    assert.equal(unsampled.traceFlags, 0, 'the parent-based sampler follows the caller');
    assert.equal(exporter.getFinishedSpans().length, 0);
    await tracing.shutdown();
  });

  it('OTEL_TRACES_SAMPLER=parentbased_traceidratio: the ratio decides for new traces, the caller for continued ones; unsampled attempts export nothing', async () => {
    const saved = { s: process.env.OTEL_TRACES_SAMPLER, a: process.env.OTEL_TRACES_SAMPLER_ARG };
    try {
      process.env.OTEL_TRACES_SAMPLER = 'parentbased_traceidratio';
      process.env.OTEL_TRACES_SAMPLER_ARG = '0.25';
      const exporter = new InMemorySpanExporter();
      const tracing = createEngineTracing(
        { exporter: 'otlp', serviceName: 't', spanProcessor: new SimpleSpanProcessor(exporter) },
        '0.0.0',
        noDatabase,
      );
      const roots = Array.from({ length: 400 }, () => tracing.newJobTrace(undefined, new Date()));
      const sampled = roots.filter((r) => (r.traceFlags & TraceFlags.SAMPLED) !== 0).length;
      assert.ok(sampled > 50 && sampled < 150, `about a quarter of 400 new traces sampled: ${sampled}`);
      const followed = tracing.newJobTrace(
        '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01',
        new Date(),
      );
      assert.equal(followed.traceFlags, 1, "a sampled caller's trace is sampled whatever the ratio");
      const info = { jobId: 1, client: 'c', workflow: 'w', task: 't', queue: 'work', attempt: 1 };
      const unsampled = roots.find((r) => r.traceFlags === 0)!;
      const quiet = tracing.startAttempt(unsampled, info)!;
      assert.match(
        quiet.traceparent,
        new RegExp(`^00-${unsampled.traceId}-[0-9a-f]{16}-00$`),
        'propagated, unsampled',
      );
      quiet.end('succeeded');
      const loud = tracing.startAttempt(followed, info)!;
      assert.match(loud.traceparent, /-01$/);
      loud.end('succeeded');
      assert.deepEqual(
        exporter.getFinishedSpans().map((s) => s.spanContext().traceId),
        [followed.traceId],
        'only the sampled attempt is exported',
      );
      assert.equal(tracing.startAttempt(null, info), null, 'no span for a job without a trace');
      await tracing.shutdown();
    } finally {
      for (const [k, v] of [
        ['OTEL_TRACES_SAMPLER', saved.s],
        ['OTEL_TRACES_SAMPLER_ARG', saved.a],
      ] as const)
        if (v === undefined) delete process.env[k];
        else process.env[k] = v;
    }
  });
});
