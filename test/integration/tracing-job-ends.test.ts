/**
 * Job spans are marked and exported after the transaction that ends the job: a flush that runs
 * while that transaction is still open sees the job unfinished, keeps it, and exports its span on
 * a later flush, once, with the end time noted in the transaction (PostgreSQL: two connections).
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { InMemorySpanExporter, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base';
import { createEngineTracing, type EngineTracing } from '../../src/engine/tracing/tracing.js';
import { createTestStore, storeKinds, type TestStore } from '../helpers/stores.js';

void describe(
  'job spans after the ending transaction [postgres]',
  { skip: storeKinds().includes('postgres') ? false : 'needs TEST_DATABASE_URL' },
  () => {
    let store: TestStore;
    let tracing: EngineTracing;
    const exporter = new InMemorySpanExporter();
    before(async () => {
      store = await createTestStore('postgres');
      tracing = createEngineTracing(
        { exporter: 'otlp', serviceName: 't', spanProcessor: new SimpleSpanProcessor(exporter) },
        '0.0.0',
        store.db,
      );
    });
    after(async () => {
      await tracing?.shutdown();
      await store?.dispose();
    });

    const newJob = async (flags: number): Promise<{ id: number; traceId: string; spanId: string }> => {
      const ids = tracing.newJobTrace(undefined, new Date());
      const { rows } = await store.db.query<{ id: number }>(
        `INSERT INTO jobs (client, workflow, queue_state, definition, created_at)
         VALUES ('acme', 'demo', 'started', '{"name":"demo","tasks":[]}'::jsonb, now()) RETURNING id`,
      );
      const id = Number(rows[0]!.id);
      await store.db.query(
        `INSERT INTO job_traces (job_id, trace_id, span_id, parent_span_id, trace_flags) VALUES ($1, $2, $3, NULL, $4)`,
        [id, ids.traceId, ids.spanId, flags],
      );
      return { id, traceId: ids.traceId, spanId: ids.spanId };
    };
    const jobSpans = (id: number) => exporter.getFinishedSpans().filter((s) => s.attributes['job.id'] === id);

    void test('an end flushed before its commit is exported after it, once, at the noted time', async () => {
      const job = await newJob(1);
      const end = new Date(Date.now() + 5000);
      await store.db.transaction(async (tx) => {
        await tx.query(`UPDATE jobs SET queue_state = 'completed', finished_at = $2 WHERE id = $1`, [
          job.id,
          end,
        ]);
        tracing.jobsEnded([job.id], end);
        await tracing.flushJobEnds();
        assert.equal(jobSpans(job.id).length, 0, 'not exported while the end is not committed');
      });
      await tracing.flushJobEnds();
      const spans = jobSpans(job.id);
      assert.equal(spans.length, 1, 'exported once the end is committed');
      assert.equal(spans[0]!.spanContext().spanId, job.spanId);
      assert.equal(spans[0]!.spanContext().traceId, job.traceId);
      assert.equal(spans[0]!.endTime[0] * 1000 + Math.round(spans[0]!.endTime[1] / 1e6), end.getTime());
      const { rows } = await store.db.query<{ ended: boolean }>(
        'SELECT ended FROM job_traces WHERE job_id = $1',
        [job.id],
      );
      assert.deepEqual(rows, [{ ended: true }]);
      tracing.jobsEnded([job.id], new Date());
      await tracing.flushJobEnds();
      await tracing.flushJobEnds();
      assert.equal(jobSpans(job.id).length, 1, 'a second end exports nothing');
    });

    void test('an unsampled job is neither marked nor exported', async () => {
      const job = await newJob(0);
      await store.db.query(`UPDATE jobs SET queue_state = 'completed', finished_at = now() WHERE id = $1`, [
        job.id,
      ]);
      tracing.jobsEnded([job.id], new Date());
      await tracing.flushJobEnds();
      assert.equal(jobSpans(job.id).length, 0);
      const { rows } = await store.db.query<{ ended: boolean }>(
        'SELECT ended FROM job_traces WHERE job_id = $1',
        [job.id],
      );
      assert.deepEqual(rows, [{ ended: false }]);
    });
  },
);
