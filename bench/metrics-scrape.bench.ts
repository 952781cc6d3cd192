/**
 * `npm run bench metrics-scrape`: `GET /metrics` over HTTP on a database of many jobs, and the
 * plans of the statements a scrape runs.
 *
 * Needs a database already loaded by `bench/health.bench.ts` (1,000,000 jobs by default), kept
 * with `BENCH_KEEP=1`: `BENCH_DATABASE_URL=postgres://postgres@127.0.0.1:5432/te_bench_health
 * BENCH_KEEP=1 npm run bench health`, then `BENCH_DATABASE_URL=<the same> npm run bench
 * metrics-scrape`. Nothing is written to it but the engine's own rows (migrations are applied
 * already; an API-only engine registers no worker).
 *
 * It serves the engine's HTTP API on a local port with metrics on and a metrics token, and times:
 * - warm scrapes: `BENCH_RUNS` (default 200) `GET /metrics` one after the other, most answered
 *   from the database snapshot kept for `SNAPSHOT_TTL_MS` (5 s);
 * - cold scrapes: `BENCH_COLD_RUNS` (default 12) `GET /metrics` spaced just over that TTL apart,
 *   so each reads the database (the snapshot statement and the settings);
 * and prints `EXPLAIN (ANALYZE, BUFFERS)` of each statement of the snapshot, with a line per
 * statement saying whether its plan scans `jobs` or `tasks` sequentially.
 */
import type { AddressInfo } from 'node:net';
import { pino } from 'pino';
import { buildServer } from '../src/api/build-server.js';
import { createEngine } from '../src/engine/engine.js';
import { SNAPSHOT_TTL_MS } from '../src/engine/metrics/db-gauges.js';
import { openStore } from '../src/store/open-store.js';
import { readMetricsSnapshot } from '../src/store/queries/metrics.js';
import { readSettingRows } from '../src/store/queries/settings.js';
import { testConfig } from '../test/helpers/engine.js';
import { createFixtureCatalog } from '../test/helpers/fixture-catalog.js';
import { BENCH_BASE_URL, NOOP_WORKFLOWS } from './helpers/bench-setup.js';

const RUNS = Number(process.env.BENCH_RUNS ?? 200);
const COLD_RUNS = Number(process.env.BENCH_COLD_RUNS ?? 12);
const TOKEN = 'bench-metrics-token-0123456789';

function summary(label: string, ms: number[]): string {
  const s = [...ms].sort((a, b) => a - b);
  const q = (p: number) => s[Math.min(s.length - 1, Math.floor(p * s.length))]!.toFixed(2);
  return `${label}: p50 ${q(0.5)} ms, p99 ${q(0.99)} ms, max ${s[s.length - 1]!.toFixed(2)} ms (${s.length} runs)`;
}

async function main(): Promise<void> {
  if (!process.env.BENCH_DATABASE_URL) {
    console.log(
      'metrics scrape: skipped (set BENCH_DATABASE_URL to a database loaded by bench/health.bench.ts)',
    );
    return;
  }
  const db = await openStore({ databaseUrl: BENCH_BASE_URL });
  const catalog = createFixtureCatalog(NOOP_WORKFLOWS);
  try {
    const { rows } = await db.query<{ n: string }>(
      `SELECT COALESCE(sum(n), 0)::text AS n FROM job_state_counts`,
    );
    console.log(
      `metrics scrape: ${Number(rows[0]!.n).toLocaleString('en')} jobs (counters) in ${new URL(BENCH_BASE_URL).pathname.slice(1)}`,
    );

    // The plans, on parameters as a scrape sends them.
    const statements = [
      { name: readMetricsSnapshot.name, text: readMetricsSnapshot.text, params: [new Date(), 30] },
      { name: readSettingRows.name, text: readSettingRows.text, params: [] as unknown[] },
    ];
    for (const st of statements) {
      const plan = await db.query<{ 'QUERY PLAN': string }>(
        `EXPLAIN (ANALYZE, BUFFERS) ${st.text}`,
        st.params.length ? st.params : undefined,
      );
      const lines = plan.rows.map((r) => r['QUERY PLAN']);
      const scans = lines.filter((l) => /Seq Scan on (jobs|tasks)\b/.test(l));
      console.log(`\n--- EXPLAIN (ANALYZE, BUFFERS) ${st.name}\n${lines.join('\n')}`);
      console.log(
        `${st.name}: ${scans.length ? `SEQUENTIAL SCAN of ${scans.map((l) => l.trim()).join('; ')}` : 'no sequential scan of jobs or tasks'}`,
      );
    }

    const engine = await createEngine(
      testConfig({
        databaseUrl: BENCH_BASE_URL,
        workflowsDir: catalog.dir,
        roles: [],
        metrics: true,
        metricsToken: TOKEN,
      }),
      { db, catalog, logger: pino({ level: 'silent' }) },
    );
    const app = buildServer(engine.ctx);
    await app.listen({ host: '127.0.0.1', port: 0 });
    const url = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}/metrics`;
    const scrape = async (): Promise<number> => {
      const t0 = performance.now();
      const res = await fetch(url, { headers: { authorization: `Bearer ${TOKEN}` } });
      const text = await res.text();
      if (res.status !== 200) throw new Error(`GET /metrics answered ${res.status}: ${text.slice(0, 200)}`);
      if (!/^task_engine_db_snapshot_up 1$/m.test(text))
        throw new Error('the database snapshot did not answer');
      return performance.now() - t0;
    };
    try {
      for (let i = 0; i < 5; i++) await scrape();
      const warm: number[] = [];
      for (let i = 0; i < RUNS; i++) warm.push(await scrape());
      const cold: number[] = [];
      for (let i = 0; i < COLD_RUNS; i++) {
        await new Promise((r) => setTimeout(r, SNAPSHOT_TTL_MS + 100));
        cold.push(await scrape());
      }
      console.log(`\n${summary('GET /metrics, warm (snapshot kept)', warm)}`);
      console.log(summary(`GET /metrics, cold (database read, ${SNAPSHOT_TTL_MS + 100} ms apart)`, cold));
      const body = await (await fetch(url, { headers: { authorization: `Bearer ${TOKEN}` } })).text();
      console.log(
        `response: ${(body.length / 1024).toFixed(1)} KiB, ${body.split('\n').filter((l) => l && !l.startsWith('#')).length} samples`,
      );
    } finally {
      await app.close();
      await engine.stop();
    }
  } finally {
    await db.close();
  }
}

await main();
