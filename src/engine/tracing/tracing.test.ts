import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { InMemorySpanExporter, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base';
import { ConfigError, loadConfig } from '../../config/load-config.js';
import { createEngineTracing, formatTraceparent, parseTraceparent } from './tracing.js';

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
});
