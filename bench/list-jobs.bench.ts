/**
 * `npm run bench list-jobs`: `GET /jobs` (every filter) and `GET /dashboard` over real HTTP (a
 * listening server on 127.0.0.1, requests one at a time with keep-alive), at 1,000,000 jobs and
 * then with 100,000 more jobs queued.
 *
 * Creates the database `te_bench` on the PostgreSQL server of BENCH_DATABASE_URL (default
 * postgres://postgres@127.0.0.1:5432/te_bench), migrates it, loads 1,000,000 jobs with
 * `INSERT … SELECT generate_series` and their `job_search` rows from them (indexes of both tables
 * dropped for the load and rebuilt after, as the schema defines them), runs VACUUM ANALYZE, and
 * times every case. Then it adds 100,000 queued jobs (40 % of client-00, priorities mostly 5, 1 %
 * `top_of_queue`, queued over the last hour), vacuums, and times every case again. In each phase
 * every case runs with `position` computed as the engine does (`ranges`) and the former way
 * (`window`, a `row_number()` over the whole state, with the former `/dashboard` statement), so
 * one run shows before and after; p50/p99 per case (goal: p99 <= 25 ms). The database is dropped
 * at the end unless BENCH_KEEP=1. BENCH_ROWS, BENCH_QUEUED, BENCH_RUNS (default 100) and
 * BENCH_WINDOW_RUNS (default 20; 0 skips the former way) override the sizes; BENCH_REUSE=1 reuses
 * a kept database as it is (no load, no added queue).
 *
 * Spread of the rows: 20 clients (client-00 has ~40 % of the jobs), 8 workflows, priorities
 * mostly 5, created over the last 365 days in id order; ~95 % completed (3 % of those failed),
 * ~4 % broken, 2 % persist; the newest ~1,000 jobs are live (queued, started, scheduled, pending,
 * paused). Parameters look like a media job's: content_id (a UUID), folders, callback URLs, DRM list.
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import pino from 'pino';
import { buildServer } from '../src/api/build-server.js';
import { loadConfig } from '../src/config/load-config.js';
import { createClient } from '../src/engine/clients/clients.js';
import { createEngine } from '../src/engine/engine.js';
import { type PositionMethod, setPositionMethod } from '../src/engine/jobs/records.js';
import { openStore } from '../src/store/open-store.js';
import type { Executor } from '../src/store/executor.js';
import { loadCatalog } from '../src/workflows/catalog.js';

const url = new URL(process.env.BENCH_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/te_bench');
const dbName = url.pathname.slice(1) || 'te_bench';
if (!/^[a-z_][a-z0-9_]*$/.test(dbName))
  throw new Error(`bench database name ${dbName} is not a plain identifier`);
const adminUrl = new URL(url);
adminUrl.pathname = '/postgres';
const ROWS = Number(process.env.BENCH_ROWS ?? 1_000_000);
const RUNS = Number(process.env.BENCH_RUNS ?? 100);
const WINDOW_RUNS = Number(process.env.BENCH_WINDOW_RUNS ?? 20);
const QUEUED = Number(process.env.BENCH_QUEUED ?? 100_000);
const WORKFLOWS = fileURLToPath(new URL('../workflows/', import.meta.url));
/** Only these cases (comma list of name prefixes), for investigating one filter. */
const ONLY = process.env.BENCH_ONLY?.split(',') ?? null;
const GOAL_P99_MS = 25;

async function admin(sql: string): Promise<void> {
  const c = new pg.Client({ connectionString: adminUrl.toString() });
  await c.connect();
  try {
    await c.query(sql);
  } finally {
    await c.end();
  }
}

function elapsed(start: bigint): number {
  return Number(process.hrtime.bigint() - start) / 1e6;
}

/** Loads ROWS jobs with the jobs indexes dropped, then rebuilds them as the migrations define them. */
async function load(db: Executor): Promise<void> {
  let t = process.hrtime.bigint();
  // Load without the jobs indexes, then rebuild them exactly as the migrations define them.
  const { rows: indexes } = await db.query<{ indexname: string; indexdef: string }>(
    `SELECT indexname, indexdef FROM pg_indexes
      WHERE tablename IN ('jobs', 'job_search') AND indexname NOT IN ('jobs_pkey', 'job_search_pkey')`,
  );
  for (const ix of indexes) await db.query(`DROP INDEX ${ix.indexname}`);
  await db.query(
    `INSERT INTO jobs (client, workflow, priority, queue_state, failed, persist, parameters, resolved_parameters,
                         definition, content_id, run_at, queued_at, started_at, finished_at, created_at, updated_at)
       SELECT client, workflow, priority, state, state = 'completed' AND r4 < 0.03, r5 < 0.02,
              params, params, '{"name":"bench","tasks":[]}'::jsonb, cid,
              CASE WHEN state = 'scheduled' THEN now() + (r3 * interval '30 days') ELSE created END,
              CASE WHEN state = 'queued' THEN created END,
              CASE WHEN state IN ('started', 'completed', 'paused') THEN created + interval '5 seconds' END,
              CASE WHEN state IN ('completed', 'broken') THEN created + (r3 * interval '2 hours') END,
              created,
              created + (r3 * interval '2 hours')
       FROM (
         SELECT i, r3, r4, r5,
                CASE WHEN r1 < 0.4 THEN 'client-00' ELSE 'client-' || lpad((1 + floor(r1 * 1000)::int % 19)::text, 2, '0') END AS client,
                (ARRAY['vodstream','vodcapture','drmswitch','createmp4','capture_frame','generate_gif','build_thumbnails','voddelete'])[1 + i % 8] AS workflow,
                CASE WHEN r2 < 0.7 THEN 5 ELSE 1 + floor(r2 * 1000)::int % 10 END AS priority,
                CASE
                  WHEN i > $1::int - 1000 THEN (ARRAY['queued','queued','queued','started','scheduled','scheduled','scheduled','pending','paused','queued'])[1 + i % 10]
                  WHEN r3 < 0.04 THEN 'broken'
                  ELSE 'completed'
                END AS state,
                cid,
                jsonb_build_object(
                  'content_id', cid,
                  'source_folder', 'input/' || cid,
                  'output_folder', 'vod/' || cid,
                  'drm', jsonb_build_array('widevine', 'playready'),
                  'rest_endpoints', jsonb_build_array('https://hub.example.com/api/event/taskenginecallback')
                ) AS params,
                now() - interval '365 days' + (i * (interval '365 days' / $1::int)) AS created
         FROM (
           SELECT i, random() AS r1, random() AS r2, random() AS r3, random() AS r4, random() AS r5,
                  substr(md5(i::text), 1, 8) || '-' || substr(md5(i::text), 9, 4) || '-' || substr(md5(i::text), 13, 4) || '-' ||
                  substr(md5(i::text), 17, 4) || '-' || substr(md5(i::text), 21, 12) AS cid
           FROM generate_series(1, $1::int) AS i
         ) g
       ) s`,
    [ROWS],
  );
  // Every job has its search row, as submission writes it.
  await db.query(
    `INSERT INTO job_search (job_id, content_id, parameters_text) SELECT id, content_id, parameters::text FROM jobs`,
  );
  console.log(`loaded ${ROWS.toLocaleString('en')} rows in ${(elapsed(t) / 1000).toFixed(1)} s`);
  t = process.hrtime.bigint();
  await db.transaction(async (tx) => {
    await tx.query(`SET LOCAL maintenance_work_mem = '256MB'`);
    for (const ix of indexes) await tx.query(ix.indexdef);
  });
  await db.query('VACUUM ANALYZE jobs');
  await db.query('VACUUM ANALYZE job_search');
  console.log(`rebuilt ${indexes.length} indexes and analyzed in ${(elapsed(t) / 1000).toFixed(1)} s`);
}

/** Adds QUEUED queued jobs (and their search rows), then vacuums. */
async function addQueue(db: Executor): Promise<void> {
  const t = process.hrtime.bigint();
  await db.query(
    `WITH j AS (
       INSERT INTO jobs (client, workflow, priority, queue_state, persist, parameters, resolved_parameters,
                         definition, content_id, run_at, queued_at, created_at, updated_at, top_of_queue)
       SELECT CASE WHEN random() < 0.4 THEN 'client-00' ELSE 'client-' || lpad((1 + i % 19)::text, 2, '0') END,
              'vodstream', CASE WHEN random() < 0.7 THEN 5 ELSE 1 + i % 10 END, 'queued', false,
              jsonb_build_object('content_id', md5(i::text)), jsonb_build_object('content_id', md5(i::text)),
              '{"name":"bench","tasks":[]}'::jsonb, md5(i::text), now(),
              now() - interval '1 hour' + i * (interval '1 hour' / $1::int),
              now() - interval '1 hour' + i * (interval '1 hour' / $1::int), now(), random() < 0.01
         FROM generate_series(1, $1::int) AS i
       RETURNING id, content_id, parameters)
     INSERT INTO job_search (job_id, content_id, parameters_text) SELECT id, content_id, parameters::text FROM j`,
    [QUEUED],
  );
  await db.query('VACUUM ANALYZE jobs');
  await db.query('VACUUM ANALYZE job_search');
  console.log(`added ${QUEUED.toLocaleString('en')} queued jobs in ${(elapsed(t) / 1000).toFixed(1)} s`);
}

/** Timings of one case: p50 and p99 in ms, and the rows of the last reply. */
interface Timing {
  p50: number;
  p99: number;
  rows: number;
}

/** GETs `path` `runs` times (after 3 warm-ups) and returns the p50/p99. */
async function time(
  base: string,
  headers: Record<string, string>,
  path: string,
  runs: number,
): Promise<Timing> {
  let rows = 0;
  const once = async (): Promise<void> => {
    const res = await fetch(base + path, { headers });
    const text = await res.text();
    if (res.status !== 200) throw new Error(`GET ${path}: ${res.status} ${text.slice(0, 200)}`);
    const body = JSON.parse(text) as unknown;
    rows = Array.isArray(body) ? body.length : ((body as { queued?: unknown[] }).queued?.length ?? 0);
  };
  for (let i = 0; i < 3; i++) await once();
  const times: number[] = [];
  for (let i = 0; i < runs; i++) {
    const start = process.hrtime.bigint();
    await once();
    times.push(elapsed(start));
  }
  times.sort((a, b) => a - b);
  const pick = (q: number) => times[Math.min(times.length - 1, Math.ceil(q * times.length) - 1)]!;
  return { p50: pick(0.5), p99: pick(0.99), rows };
}

async function main(): Promise<void> {
  console.log(`list-jobs: ${ROWS.toLocaleString('en')} jobs in ${dbName}, ${RUNS} runs per filter`);
  const reuse = process.env.BENCH_REUSE === '1';
  if (!reuse) {
    await admin(`DROP DATABASE IF EXISTS ${dbName} WITH (FORCE)`);
    await admin(`CREATE DATABASE ${dbName}`);
  }
  const db = await openStore({ databaseUrl: url.toString() });
  try {
    if (reuse) console.log('reusing the loaded database (BENCH_REUSE=1)');
    else await load(db);

    const config = loadConfig({
      TASK_ENGINE_ROLES: 'api',
      TASK_ENGINE_WORKFLOWS_DIR: WORKFLOWS,
      TASK_ENGINE_LOG_LEVEL: 'silent',
    });
    const catalog = await loadCatalog(WORKFLOWS);
    const engine = await createEngine(config, { db, catalog, logger: pino({ level: 'silent' }) });
    const app = buildServer(engine.ctx);
    await app.listen({ port: 0, host: '127.0.0.1' });
    const address = app.server.address();
    if (address === null || typeof address === 'string') throw new Error('the server has no port');
    const base = `http://127.0.0.1:${address.port}`;
    const credentials = async (name: string, isAdmin: boolean): Promise<Record<string, string>> => {
      await db.query('DELETE FROM clients WHERE name = $1', [name]);
      const c = await createClient(db, { name, admin: isAdmin });
      return { client: name, 'api-key': c.api_key };
    };
    const adminViewer = await credentials('bench-admin', true);
    const client03 = await credentials('client-03', false);
    const client00 = await credentials('client-00', false);

    const { rows: sample } = await db.query<{ id: number; content_id: string }>(
      `SELECT id, content_id FROM jobs WHERE id % 20011 = 7 ORDER BY id LIMIT 50`,
    );
    const ids = sample.map((r) => r.id).join(',');
    const cid = sample[10]!.content_id;
    const day = (daysAgo: number) => new Date(Date.now() - daysAgo * 86_400_000).toISOString().slice(0, 19);

    const listings: [string, Record<string, string>, Record<string, string>][] = [
      ['none (last 10)', adminViewer, {}],
      ['limit=1000', adminViewer, { limit: '1000' }],
      ['offset=500', adminViewer, { offset: '500' }],
      ['asc=1', adminViewer, { asc: '1' }],
      ['state=0 (queued)', adminViewer, { state: '0' }],
      ['state=0 asc (oldest queued)', adminViewer, { state: '0', asc: '1' }],
      ['state=0 limit=1000', adminViewer, { state: '0', limit: '1000' }],
      [
        'state=0 order_by=position asc limit=100',
        adminViewer,
        { state: '0', order_by: 'position', asc: '1', limit: '100' },
      ],
      [
        'state=0 order_by=position asc offset=50000',
        adminViewer,
        { state: '0', order_by: 'position', asc: '1', limit: '100', offset: '50000' },
      ],
      ['state=1 (started)', adminViewer, { state: '1' }],
      ['state=2 (completed)', adminViewer, { state: '2' }],
      ['state=3 (paused)', adminViewer, { state: '3' }],
      ['state=4 (broken)', adminViewer, { state: '4' }],
      ['state=5 (scheduled)', adminViewer, { state: '5' }],
      ['state=6 (pending)', adminViewer, { state: '6' }],
      ['client=client-07 (admin)', adminViewer, { client: 'client-07' }],
      ['non-admin (own jobs)', client03, {}],
      ['non-admin, client-00 (40 %)', client00, {}],
      ['failed=1', adminViewer, { failed: '1' }],
      ['failed=0', adminViewer, { failed: '0' }],
      ['persist=1', adminViewer, { persist: '1' }],
      ['persist=0', adminViewer, { persist: '0' }],
      ['from/to (one day, 200 days ago)', adminViewer, { from: day(200), to: day(199) }],
      ['from (last 7 days)', adminViewer, { from: day(7) }],
      ['to (older than 300 days)', adminViewer, { to: day(300) }],
      ['from/to asc', adminViewer, { from: day(200), to: day(100), asc: '1' }],
      ['job_ids (50)', adminViewer, { job_ids: ids }],
      ['search content_id (full)', adminViewer, { search: cid }],
      ['search content_id (first 8)', adminViewer, { search: cid.slice(0, 8) }],
      ['search (no match)', adminViewer, { search: 'no-such-content-anywhere' }],
      ['search (common word)', adminViewer, { search: 'playready' }],
      ['order_by=created_at', adminViewer, { order_by: 'created_at' }],
      ['order_by=updated_at', adminViewer, { order_by: 'updated_at' }],
      ['order_by=priority', adminViewer, { order_by: 'priority' }],
      ['order_by=priority asc', adminViewer, { order_by: 'priority', asc: '1' }],
      ['order_by=run_at', adminViewer, { order_by: 'run_at' }],
      ['order_by=client', adminViewer, { order_by: 'client' }],
      ['order_by=workflow', adminViewer, { order_by: 'workflow' }],
      ['order_by=queue_state', adminViewer, { order_by: 'queue_state' }],
      ['client + state=2', adminViewer, { client: 'client-07', state: '2' }],
      ['client + failed=1', adminViewer, { client: 'client-07', failed: '1' }],
      ['non-admin + state=0', client00, { state: '0' }],
      ['non-admin + from/to', client03, { from: day(200), to: day(150) }],
      ['non-admin + search', client00, { search: cid.slice(0, 8) }],
      ['state=2 + failed=1', adminViewer, { state: '2', failed: '1' }],
      ['state=2 + order_by=updated_at', adminViewer, { state: '2', order_by: 'updated_at' }],
      ['state=4 + persist=1', adminViewer, { state: '4', persist: '1' }],
      ['search + state=2', adminViewer, { search: cid.slice(0, 8), state: '2' }],
    ];
    const cases: [string, Record<string, string>, string][] = listings.map(([name, headers, query]) => [
      name,
      headers,
      `/jobs?${new URLSearchParams(query).toString()}`,
    ]);
    cases.push(
      ['/dashboard (admin)', adminViewer, '/dashboard'],
      ['/dashboard ?client=client-07 (admin)', adminViewer, '/dashboard?client=client-07'],
      ['/dashboard (non-admin client-03)', client03, '/dashboard'],
      ['/dashboard (non-admin client-00)', client00, '/dashboard'],
    );

    const phase = async (label: string): Promise<string[]> => {
      const { rows: queued } = await db.query<{ n: string }>(
        "SELECT count(*) AS n FROM jobs WHERE queue_state = 'queued'",
      );
      console.log(
        `\n${label} (${queued[0]!.n} queued); load ${readFileSync('/proc/loadavg', 'utf8').trim()}`,
      );
      console.log(
        `${'case'.padEnd(40)} ${'ranges p50'.padStart(10)} ${'p99'.padStart(8)} ${'window p50'.padStart(11)} ${'p99'.padStart(8)}  rows`,
      );
      const over: string[] = [];
      const f = (n: number | undefined, w: number) => (n === undefined ? '-' : n.toFixed(2)).padStart(w);
      for (const [name, headers, path] of cases) {
        if (ONLY && !ONLY.some((o) => name.startsWith(o))) continue;
        const run = async (method: PositionMethod, runs: number): Promise<Timing | undefined> => {
          if (runs <= 0) return undefined;
          setPositionMethod(method);
          try {
            return await time(base, headers, path, runs);
          } finally {
            setPositionMethod('ranges');
          }
        };
        const after = (await run('ranges', RUNS))!;
        const before = await run('window', WINDOW_RUNS);
        console.log(
          `${name.padEnd(40)} ${f(after.p50, 10)} ${f(after.p99, 8)} ${f(before?.p50, 11)} ${f(before?.p99, 8)}  ${String(after.rows).padStart(4)}${after.p99 > GOAL_P99_MS ? '   OVER GOAL' : ''}`,
        );
        if (after.p99 > GOAL_P99_MS) over.push(`${name} (${label})`);
      }
      return over;
    };

    try {
      const over = await phase(reuse ? 'reused database' : `${ROWS.toLocaleString('en')} jobs`);
      if (!reuse && QUEUED > 0) {
        await addQueue(db);
        over.push(
          ...(await phase(`${ROWS.toLocaleString('en')} jobs + ${QUEUED.toLocaleString('en')} queued`)),
        );
      }
      console.log(
        over.length === 0
          ? `\nevery case under the p99 goal of ${GOAL_P99_MS} ms`
          : `\n${over.length} case(s) over the p99 goal of ${GOAL_P99_MS} ms: ${over.join(', ')}`,
      );
    } finally {
      await app.close();
      await engine.stop();
    }
  } finally {
    await db.close();
    if (process.env.BENCH_KEEP !== '1') await admin(`DROP DATABASE IF EXISTS ${dbName} WITH (FORCE)`);
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
