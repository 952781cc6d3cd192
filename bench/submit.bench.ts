/**
 * Submission over real HTTP (a listening server, not `app.inject`), on PostgreSQL (a fresh
 * `te_bench_batch` database), the load generator in its own process (bench/http-load.ts):
 *
 * 1. `POST /job` at 64 in flight against a bare Fastify route (`POST /job` on a second server that
 *    parses the same body with Fastify's JSON parser and answers `{"id", "result"}`), interleaved,
 *    rounds alternating; the ratio of the medians is the figure (aim: ≥ 0.5);
 * 2. `POST /jobs/batch` with batches of 100 and of 1,000 jobs (`BENCH_BATCH_INFLIGHT` in flight,
 *    default 8), in jobs/s.
 *
 * Per part: requests/s, jobs/s, and CPU per job of the engine process and of the database's
 * PostgreSQL backends (Linux /proc). The engine has the `api` role only, as a dedicated API
 * process would: the jobs are written (queued) and not run. Logger silent (the default `info`
 * writes one line per request).
 *
 * `npm run bench submit`. Environment: `BENCH_DATABASE_URL` (default TEST_DATABASE_URL, else
 * postgres://postgres@127.0.0.1:5432/test), `BENCH_SECONDS` per measurement (default 8),
 * `BENCH_ROUNDS` (default 3), `BENCH_INFLIGHT` (default 64), `BENCH_BATCH_INFLIGHT` (default 8),
 * `BENCH_ONLY` (comma list of `single`, `batch`; default both; `job` alone runs POST /job without the
 * bare route, for profiling: `node --cpu-prof --import tsx bench/submit.bench.ts`).
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { cpus, loadavg, tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import Fastify from 'fastify';
import { pino } from 'pino';
import { buildServer } from '../src/api/build-server.js';
import { createClient } from '../src/engine/clients/clients.js';
import { createEngine } from '../src/engine/engine.js';
import type { Executor } from '../src/store/executor.js';
import { openStore } from '../src/store/open-store.js';
import { loadConfig } from '../src/config/load-config.js';
import { createFixtureCatalog } from '../test/helpers/fixture-catalog.js';
import { BENCH_BASE_URL, adminQuery } from './helpers/bench-setup.js';

const BASE_URL = BENCH_BASE_URL;
const DB_NAME = 'te_bench_batch';
const SECONDS = Number(process.env.BENCH_SECONDS ?? 8);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const INFLIGHT = Number(process.env.BENCH_INFLIGHT ?? 64);
const BATCH_INFLIGHT = Number(process.env.BENCH_BATCH_INFLIGHT ?? 8);
const ONLY = new Set((process.env.BENCH_ONLY ?? 'single,batch').split(','));
const HERE = path.dirname(fileURLToPath(import.meta.url));

const catalog = createFixtureCatalog({
  noop1: {
    parameters: { type: 'object', properties: { content_id: { type: 'string' } } },
    tasks: [{ name: 'a', run: 'sleep', with: { seconds: 0 } }],
  },
});

const admin = adminQuery;

/** CPU time (ms) used so far by this database's PostgreSQL backends (see engine.bench.ts). */
async function serverCpuMs(db: Executor, known: Map<number, number>): Promise<number> {
  const { rows } = await db.query<{ pid: number }>(
    `SELECT pid FROM pg_stat_activity WHERE datname = current_database()`,
  );
  for (const { pid } of rows) {
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      known.set(pid, ((Number(fields[11]) + Number(fields[12])) * 1000) / 100);
    } catch {
      // not Linux, or another host
    }
  }
  let ms = 0;
  for (const v of known.values()) ms += v;
  return ms;
}

interface LoadResult {
  requests: number;
  jobs: number;
  secs: number;
  errors: number;
  firstError: string | null;
}

/** Runs bench/http-load.ts in its own process and returns what it measured. */
function load(options: Record<string, unknown>): Promise<LoadResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(
      process.execPath,
      ['--import', 'tsx', path.join(HERE, 'http-load.ts'), JSON.stringify(options)],
      { stdio: ['ignore', 'pipe', 'inherit'] },
    );
    let out = '';
    child.stdout.on('data', (c: Buffer) => (out += c.toString()));
    child.on('error', reject);
    child.on('exit', (code) => {
      if (code !== 0) reject(new Error(`http-load exited with ${code}`));
      else resolve(JSON.parse(out) as LoadResult);
    });
  });
}

interface Measured {
  rps: number;
  jobsPerSec: number;
  engineMsPerJob: number;
  dbMsPerJob: number;
}

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

async function main(): Promise<void> {
  await admin(`DROP DATABASE IF EXISTS ${DB_NAME} WITH (FORCE)`);
  await admin(`CREATE DATABASE ${DB_NAME}`);
  const u = new URL(BASE_URL);
  u.pathname = `/${DB_NAME}`;
  const db = await openStore({ databaseUrl: u.toString() });
  const engine = await createEngine(
    // Not test/helpers/engine.ts: it loads node:test, whose async hooks slow every request.
    loadConfig({
      TASK_ENGINE_DATABASE_URL: u.toString(),
      TASK_ENGINE_WORKFLOWS_DIR: catalog.dir,
      TASK_ENGINE_ROLES: 'api',
      TASK_ENGINE_LOG_LEVEL: 'silent',
      TASK_ENGINE_DATA_DIR: mkdtempSync(path.join(tmpdir(), 'te-bench-submit-data-')),
    }),
    { db, catalog, logger: pino({ level: 'silent' }) },
  );
  const client = await createClient(db, { name: 'bench' });
  const headers = { client: 'bench', 'api-key': client.api_key };

  const app = buildServer(engine.ctx);
  await app.listen({ host: '127.0.0.1', port: 0 });
  const apiUrl = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`;

  let bareId = 0;
  const bare = Fastify({ logger: false });
  // An async handler, as the engine's routes are.
  // eslint-disable-next-line @typescript-eslint/require-await
  bare.post('/job', async () => ({ id: ++bareId, result: 'accepted' }));
  await bare.listen({ host: '127.0.0.1', port: 0 });
  const bareUrl = `http://127.0.0.1:${(bare.server.address() as AddressInfo).port}/job`;

  const dir = mkdtempSync(path.join(tmpdir(), 'te-bench-submit-'));
  const item = { job: { workflow: 'noop1' }, parameters: { content_id: 'bench-content-1' } };
  const files: Record<string, string> = {};
  for (const [name, body] of Object.entries({
    single: item,
    batch100: Array.from({ length: 100 }, () => item),
    batch1000: Array.from({ length: 1000 }, () => item),
  })) {
    files[name] = path.join(dir, `${name}.json`);
    writeFileSync(files[name], JSON.stringify(body));
  }

  const measure = async (
    url: string,
    file: string,
    inflight: number,
    jobsPerRequest: number,
    engineSide: boolean,
  ): Promise<Measured> => {
    const pids = new Map<number, number>();
    const db0 = engineSide ? await serverCpuMs(db, pids) : 0;
    const cpu0 = process.cpuUsage();
    const r = await load({
      url,
      headers,
      bodyFile: file,
      inflight,
      seconds: SECONDS,
      jobsPerRequest,
      countAccepted: jobsPerRequest > 1,
    });
    const cpu = process.cpuUsage(cpu0);
    const dbMs = engineSide ? (await serverCpuMs(db, pids)) - db0 : 0;
    if (r.errors > 0) throw new Error(`${r.errors} requests failed, first: ${r.firstError}`);
    return {
      rps: r.requests / r.secs,
      jobsPerSec: r.jobs / r.secs,
      engineMsPerJob: (cpu.user + cpu.system) / 1000 / r.jobs,
      dbMsPerJob: dbMs / r.jobs,
    };
  };
  const vacuum = () => db.query('VACUUM (ANALYZE) jobs, tasks, logs, job_search');

  console.log(
    `machine: ${cpus().length} × ${cpus()[0]?.model ?? '?'}; load average at start ${loadavg()
      .map((x) => x.toFixed(2))
      .join(' ')}; ${SECONDS} s per measurement, ${ROUNDS} rounds`,
  );
  const fmt = (label: string, m: Measured) =>
    `  ${label.padEnd(44)} ${m.rps.toFixed(0).padStart(7)} req/s ${m.jobsPerSec.toFixed(0).padStart(7)} jobs/s` +
    (m.engineMsPerJob > 0 || m.dbMsPerJob > 0
      ? `   CPU/job: engine ${m.engineMsPerJob.toFixed(3)} ms, PostgreSQL ${m.dbMsPerJob.toFixed(3)} ms`
      : '');

  // Warm-up: JIT, connection pool, caches.
  if (!ONLY.has('job'))
    await load({
      url: bareUrl,
      headers,
      bodyFile: files.single,
      inflight: INFLIGHT,
      seconds: 2,
      jobsPerRequest: 1,
    });
  await load({
    url: `${apiUrl}/job`,
    headers,
    bodyFile: files.single,
    inflight: INFLIGHT,
    seconds: 2,
    jobsPerRequest: 1,
  });

  if (ONLY.has('job'))
    console.log(
      fmt(
        `engine POST /job (${INFLIGHT} in flight)`,
        await measure(`${apiUrl}/job`, files.single!, INFLIGHT, 1, true),
      ),
    );

  if (ONLY.has('single')) {
    const bareRuns: Measured[] = [];
    const jobRuns: Measured[] = [];
    for (let round = 1; round <= ROUNDS; round++) {
      await vacuum();
      const b = await measure(bareUrl, files.single!, INFLIGHT, 1, false);
      bareRuns.push(b);
      console.log(fmt(`round ${round}: bare Fastify POST /job (${INFLIGHT} in flight)`, b));
      const j = await measure(`${apiUrl}/job`, files.single!, INFLIGHT, 1, true);
      jobRuns.push(j);
      console.log(fmt(`round ${round}: engine POST /job (${INFLIGHT} in flight)`, j));
    }
    const bareMedian = median(bareRuns.map((m) => m.rps));
    const jobMedian = median(jobRuns.map((m) => m.rps));
    console.log(
      `POST /job ${jobMedian.toFixed(0)}/s against the bare route's ${bareMedian.toFixed(0)}/s (medians): ratio ${(jobMedian / bareMedian).toFixed(2)}× (aim ≥ 0.5×)`,
    );
  }

  if (ONLY.has('batch')) {
    for (const size of [100, 1000]) {
      const runs: Measured[] = [];
      for (let round = 1; round <= ROUNDS; round++) {
        await vacuum();
        const m = await measure(`${apiUrl}/jobs/batch`, files[`batch${size}`]!, BATCH_INFLIGHT, size, true);
        runs.push(m);
        console.log(fmt(`round ${round}: POST /jobs/batch × ${size} (${BATCH_INFLIGHT} in flight)`, m));
      }
      console.log(
        `POST /jobs/batch of ${size}: ${median(runs.map((m) => m.jobsPerSec)).toFixed(0)} jobs/s (median)`,
      );
    }
  }

  console.log(
    `load average at end ${loadavg()
      .map((x) => x.toFixed(2))
      .join(' ')}`,
  );
  await bare.close();
  await app.close();
  await engine.stop();
  await db.close();
  await admin(`DROP DATABASE IF EXISTS ${DB_NAME} WITH (FORCE)`);
}

await main();
