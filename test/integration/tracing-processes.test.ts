/**
 * Traces from a real engine process configured by the standard variables only: it exports its
 * spans with the SDK's OTLP/HTTP exporter to a local receiver, for a job whose trace ids another
 * engine made at submission.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { InMemorySpanExporter, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base';
import {
  spawnEngineProcess,
  startTestEngine,
  type EngineProcess,
  type TestEngine,
} from '../helpers/engine.js';
import { createFixtureCatalog } from '../helpers/fixture-catalog.js';
import { startReceiver, type Receiver } from '../helpers/http-receiver.js';
import { createTestStore, storeKinds, type TestStore } from '../helpers/stores.js';
import { waitFor } from '../helpers/wait-for.js';

void describe(
  'tracing: an engine process exporting over OTLP/HTTP',
  { skip: !storeKinds().includes('postgres') },
  () => {
    let store: TestStore;
    let rx: Receiver;
    let api: TestEngine;
    let proc: EngineProcess | undefined;
    const catalog = createFixtureCatalog({
      traced: { tasks: [{ name: 'step', run: 'exec', with: { command: 'true' } }] },
    });

    before(async () => {
      store = await createTestStore('postgres');
      rx = await startReceiver(() => ({ status: 200 }));
      // Submissions only: the process runs the job.
      api = await startTestEngine(store, {
        catalog,
        start: false,
        roles: ['api'],
        config: {
          tracing: {
            exporter: 'otlp',
            serviceName: 'api',
            spanProcessor: new SimpleSpanProcessor(new InMemorySpanExporter()),
          },
        },
      });
    });
    after(async () => {
      await proc?.kill().catch(() => undefined);
      await api?.stop();
      await rx?.close();
      await store?.dispose();
    });

    void it('the job and attempt spans reach the collector (OTLP/HTTP JSON) with the stored ids and the service name', async () => {
      proc = await spawnEngineProcess({
        databaseUrl: store.databaseUrl!,
        workflowsDir: catalog.dir,
        env: { OTEL_EXPORTER_OTLP_ENDPOINT: rx.url, OTEL_SERVICE_NAME: 'proc-engine' },
      });
      const id = await api.submit('traced');
      await api.waitForState(id, 'completed', 15_000);
      // A graceful stop flushes the batch.
      assert.equal(await proc.stop(), 0, proc.output());
      proc = undefined;
      await waitFor(() => rx.on('/v1/traces').length > 0, { timeoutMs: 10_000, what: 'an OTLP export' });
      const exports = rx.on('/v1/traces');
      assert.ok(exports.every((r) => r.method === 'POST'));
      assert.match(String(exports[0]!.headers['content-type']), /^application\/json/);
      const bodies = exports.map((r) => JSON.parse(r.raw) as OtlpBody);
      const services = bodies.flatMap((b) =>
        b.resourceSpans.map(
          (rs) => rs.resource.attributes.find((a) => a.key === 'service.name')?.value.stringValue,
        ),
      );
      assert.ok(services.length > 0 && services.every((s) => s === 'proc-engine'), JSON.stringify(services));
      const spans = bodies.flatMap((b) =>
        b.resourceSpans.flatMap((rs) => rs.scopeSpans.flatMap((ss) => ss.spans)),
      );
      const { rows } = await store.db.query<{ trace_id: string; span_id: string }>(
        'SELECT trace_id, span_id FROM job_traces WHERE job_id = $1',
        [id],
      );
      const stored = rows[0]!;
      const job = spans.filter((s) => s.name === 'job traced');
      const step = spans.filter((s) => s.name === 'task step');
      assert.equal(job.length, 1, 'one job span');
      assert.equal(step.length, 1, 'one attempt span');
      assert.equal(job[0]!.traceId.toLowerCase(), stored.trace_id);
      assert.equal(
        job[0]!.spanId.toLowerCase(),
        stored.span_id,
        'the job span has the id made at submission',
      );
      assert.equal(step[0]!.traceId.toLowerCase(), stored.trace_id);
      assert.equal(step[0]!.parentSpanId?.toLowerCase(), stored.span_id);
    });
  },
);

/** The parts of an OTLP/HTTP JSON export the test reads. */
interface OtlpBody {
  resourceSpans: {
    resource: { attributes: { key: string; value: { stringValue?: string } }[] };
    scopeSpans: { spans: { traceId: string; spanId: string; parentSpanId?: string; name: string }[] }[];
  }[];
}
