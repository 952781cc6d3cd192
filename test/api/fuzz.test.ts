/**
 * Property-based tests over every route's inputs (fast-check), on both stores: any method, path
 * segment, query, header set and body — odd types, unicode, NUL bytes, SQL metacharacters, huge
 * and deeply nested bodies, odd ids — is answered with JSON, never a 5xx and never a hang, and a
 * refused submission writes nothing while an accepted one writes a whole job.
 *
 * The default run is bounded (`FUZZ_RUNS`, default 100 cases per property); a long run:
 * `FUZZ_RUNS=5000 node scripts/run-tests.mjs test/api/fuzz.test.ts`. A failure prints the
 * shrunk counterexample and the seed to replay it with `FUZZ_SEED`.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import fc from 'fast-check';
import type { InjectOptions, LightMyRequestResponse } from 'fastify';
import { forEachStore } from '../helpers/stores.js';
import { createApiHarness, type ApiHarness, type TestClient } from './harness.js';

const RUNS = Number(process.env.FUZZ_RUNS ?? 100);
const SEED = process.env.FUZZ_SEED === undefined ? undefined : Number(process.env.FUZZ_SEED);
const HANG_MS = 10_000;

const ROUTES: [InjectOptions['method'], string][] = [
  ['GET', '/'],
  ['GET', '/health'],
  ['GET', '/dashboard'],
  ['GET', '/jobs'],
  ['POST', '/job'],
  ['POST', '/jobs/batch'],
  ['GET', '/jobs/:id'],
  ['GET', '/jobs/:id/attempts'],
  ['GET', '/jobs/:id/callbacks'],
  ['PATCH', '/jobs/:id'],
  ['POST', '/jobs/:id/rerun'],
  ['POST', '/jobs/:id/retry'],
  ['GET', '/logs/:id'],
  ['GET', '/settings'],
  ['GET', '/stats'],
  ['GET', '/stats/job-count'],
  ['POST', '/settings'],
  ['GET', '/workflows'],
  ['GET', '/schedules'],
  ['POST', '/schedules'],
  ['DELETE', '/schedules/:name'],
  ['GET', '/clients'],
  ['POST', '/clients'],
  ['DELETE', '/clients/:name'],
  ['POST', '/clients/:name/signing-secret'],
  ['DELETE', '/clients/:name/signing-secret/previous'],
];

/** Strings an attacker or a buggy client sends. */
const nasty = fc.oneof(
  fc.string(),
  fc.string({ unit: 'grapheme', maxLength: 40 }),
  fc.string({ unit: 'binary', maxLength: 40 }),
  fc.constantFrom(
    '',
    ' ',
    '\u0000',
    'a\u0000b',
    "'; DROP TABLE jobs; --",
    '" OR 1=1 --',
    '$1',
    '%s%n',
    '../../etc/passwd',
    '{{ parameters }}',
    '<script>alert(1)</script>',
    '\uD800',
    '🎬'.repeat(50),
    'x'.repeat(5000),
    '-1',
    '0',
    '1e3',
    '0x10',
    '9007199254740993',
    '3544790567247868102',
    'NaN',
    'Infinity',
    'null',
    'true',
    '[]',
    '{}',
  ),
);

/** A path segment: ids, names and junk, percent-encoded as a client would send it. */
const segment = fc.oneof(
  fc.nat({ max: 50 }).map(String),
  nasty.map((s) => {
    try {
      return encodeURIComponent(s) || 'x';
    } catch {
      return '%ED%A0%80'; // a lone surrogate, as invalid UTF-8 on the wire
    }
  }),
);

/** A JSON body of any shape, including deep nesting. */
const jsonBody = fc.oneof(
  fc.jsonValue({ maxDepth: 4 }),
  fc.dictionary(
    fc.constantFrom(
      'job',
      'parameters',
      'name',
      'setting',
      'client',
      'queue_state',
      'priority',
      'run_at',
      'cron',
      'workflow',
      'admin',
      'persist',
    ),
    fc.jsonValue({ maxDepth: 3 }),
  ),
  fc
    .integer({ min: 1, max: 3000 })
    .map((depth) => JSON.parse('['.repeat(depth) + ']'.repeat(depth)) as unknown),
  fc.record(
    {
      job: fc.record(
        { workflow: fc.oneof(fc.constant('greet'), nasty), priority: fc.jsonValue({ maxDepth: 1 }) },
        { requiredKeys: [] },
      ),
      parameters: fc.dictionary(
        fc.oneof(fc.constant('content_id'), fc.constant('seconds'), nasty),
        fc.jsonValue({ maxDepth: 2 }),
      ),
    },
    { requiredKeys: [] },
  ),
);

/** Raw body text sent as JSON: malformed, duplicate keys, huge numbers, NULs, over-large. */
const rawBody = fc.oneof(
  nasty,
  fc.constantFrom(
    '{"job":{"workflow":"greet"},"job":{"workflow":"greet"}}',
    '{"job":{"workflow":"greet","priority":1e400},"parameters":{"content_id":"a"}}',
    '{"job":{"workflow":"greet"},"parameters":{"content_id":"a\\u0000b"}}',
    '{"job":{"workflow":"greet"},"parameters":{"content_id":"a","seconds":3544790567247868102}}',
    '{"__proto__":{"admin":true},"name":"x"}',
    '{"constructor":{"prototype":{"polluted":1}}}',
    '['.repeat(100_000),
    `{"job":{"workflow":"greet"},"parameters":{"content_id":"${'x'.repeat(2_000_000)}"}}`,
  ),
);

function callerOf(h: ApiHarness): fc.Arbitrary<TestClient | null> {
  return fc.constantFrom(h.root, h.acme, null);
}

async function bounded(p: Promise<LightMyRequestResponse>, what: string): Promise<LightMyRequestResponse> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      p,
      new Promise<never>((_r, reject) => {
        timer = setTimeout(() => reject(new Error(`no answer within ${HANG_MS} ms: ${what}`)), HANG_MS);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

/** The reply is JSON (or empty), and not a server error. */
function assertWellFormed(res: LightMyRequestResponse, what: string): void {
  assert.ok(res.statusCode < 500, `${what} answered ${res.statusCode}: ${res.body.slice(0, 300)}`);
  if (res.statusCode === 204 || res.body === '') return;
  const type = String(res.headers['content-type'] ?? '');
  assert.ok(
    type.startsWith('application/json'),
    `${what}: reply is ${type}, not JSON: ${res.body.slice(0, 200)}`,
  );
  const parsed = JSON.parse(res.body) as unknown;
  if (res.statusCode >= 400) {
    assert.equal(
      typeof (parsed as { error?: unknown }).error,
      'string',
      `${what}: an error reply names the error`,
    );
  }
}

async function counts(h: ApiHarness): Promise<{ jobs: number; tasks: number; orphans: number }> {
  const { rows } = await h.store.db.query<{ jobs: number; tasks: number; orphans: number }>(
    `SELECT (SELECT count(*) FROM jobs)::int AS jobs, (SELECT count(*) FROM tasks)::int AS tasks,
            (SELECT count(*) FROM jobs j WHERE NOT EXISTS (SELECT 1 FROM tasks t WHERE t.job_id = j.id))::int AS orphans`,
  );
  return rows[0]!;
}

forEachStore('api: fuzzed inputs', (kind) => {
  let h: ApiHarness;
  before(async () => {
    h = await createApiHarness(kind);
  });
  after(async () => {
    await h?.close();
  });

  void test('any route, segment, query and body is answered JSON, never 5xx, never a hang', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom(...ROUTES),
        segment,
        fc.dictionary(
          fc.oneof(
            fc.constantFrom(
              'state',
              'limit',
              'offset',
              'client',
              'workflow',
              'show_all',
              'severity',
              'search',
              'sort',
              'job_id',
            ),
            nasty,
          ),
          nasty,
          { maxKeys: 4 },
        ),
        fc.option(jsonBody, { nil: undefined }),
        callerOf(h),
        async ([method, template], seg, query, body, as) => {
          const url = template.replace(/:(id|name)/, seg) + '?' + new URLSearchParams(query).toString();
          const what = `${method} ${url.slice(0, 200)}`;
          const res = await bounded(
            h.call(as, method, url, body === undefined ? undefined : JSON.stringify(body), {
              headers: body === undefined ? {} : { 'content-type': 'application/json' },
            }),
            what,
          );
          assertWellFormed(res, what);
        },
      ),
      { numRuns: RUNS * 4, seed: SEED },
    );
  });

  void test('raw JSON text, malformed or hostile, is refused or accepted whole', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom<[InjectOptions['method'], string]>(
          ['POST', '/job'],
          ['POST', '/jobs/batch'],
          ['PATCH', '/jobs/1'],
          ['POST', '/settings'],
          ['POST', '/clients'],
          ['POST', '/schedules'],
        ),
        rawBody,
        async ([method, url], text) => {
          const before = await counts(h);
          const res = await bounded(
            h.call(h.root, method, url, text, { headers: { 'content-type': 'application/json' } }),
            `${method} ${url} with ${text.slice(0, 80)}`,
          );
          assertWellFormed(res, `${method} ${url} with ${text.slice(0, 80)}`);
          const after = await counts(h);
          assert.equal(after.orphans, 0, 'no job without its tasks');
          if (method === 'POST' && url === '/job' && res.statusCode < 300)
            assert.deepEqual(
              [after.jobs, after.tasks],
              [before.jobs + 1, before.tasks + 2],
              'an accepted job is written whole',
            );
          else if (url === '/job') assert.deepEqual(after, before, 'a refused submission writes nothing');
          else if (url === '/jobs/batch' && res.statusCode >= 300)
            assert.deepEqual(after, before, 'a refused batch writes nothing');
        },
      ),
      { numRuns: RUNS, seed: SEED },
    );
  });

  void test('a submission is written whole or not at all, whatever its fields hold', async () => {
    await fc.assert(
      fc.asyncProperty(jsonBody, callerOf(h), async (body, as) => {
        const before = await counts(h);
        const res = await bounded(
          h.call(as, 'POST', '/job', JSON.stringify(body), {
            headers: { 'content-type': 'application/json' },
          }),
          `POST /job ${JSON.stringify(body).slice(0, 200)}`,
        );
        assertWellFormed(res, 'POST /job');
        const after = await counts(h);
        assert.equal(after.orphans, 0, 'no job without its tasks');
        if (res.statusCode < 300) {
          assert.deepEqual([after.jobs, after.tasks], [before.jobs + 1, before.tasks + 2]);
          const { id } = JSON.parse(res.body) as { id: number };
          const read = await h.call(as, 'GET', `/jobs/${id}`);
          assert.equal(read.statusCode, 200, 'the accepted job can be read back');
        } else {
          assert.deepEqual(after, before, `refused (${res.statusCode}) but something was written`);
        }
      }),
      { numRuns: RUNS * 2, seed: SEED },
    );
  });

  void test('a batch answers each item as POST /job answers its body, and writes exactly the accepted ones', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(jsonBody, { minLength: 1, maxLength: 6 }), callerOf(h), async (items, as) => {
        const before = await counts(h);
        const text = JSON.stringify(items);
        const res = await bounded(
          h.call(as, 'POST', '/jobs/batch', text, { headers: { 'content-type': 'application/json' } }),
          `POST /jobs/batch ${text.slice(0, 200)}`,
        );
        assertWellFormed(res, 'POST /jobs/batch');
        const after = await counts(h);
        assert.equal(after.orphans, 0, 'no job without its tasks');
        if (res.statusCode >= 300) {
          assert.deepEqual(after, before, `refused (${res.statusCode}) but something was written`);
          return;
        }
        const reply = JSON.parse(res.body) as {
          accepted: number;
          results: { index: number; id?: number; result?: string; status?: number; error?: string }[];
        };
        assert.deepEqual(
          reply.results.map((r) => r.index),
          items.map((_x, i) => i),
        );
        assert.deepEqual(
          [after.jobs, after.tasks],
          [before.jobs + reply.accepted, before.tasks + 2 * reply.accepted],
          'exactly the accepted items were written, whole',
        );
        for (const [i, r] of reply.results.entries()) {
          const single = await bounded(
            h.call(as, 'POST', '/job', JSON.stringify(items[i]), {
              headers: { 'content-type': 'application/json' },
            }),
            `POST /job item ${i}`,
          );
          if (r.result === 'accepted') {
            assert.ok(single.statusCode < 300, `item ${i} accepted in the batch, ${single.statusCode} alone`);
            assert.equal((await h.call(as, 'GET', `/jobs/${r.id}`)).statusCode, 200);
          } else
            assert.deepEqual(
              { status: r.status, error: r.error },
              { status: single.statusCode, error: (JSON.parse(single.body) as { error: string }).error },
              `item ${i}: the batch and POST /job disagree`,
            );
        }
      }),
      { numRuns: RUNS, seed: SEED },
    );
  });
});
