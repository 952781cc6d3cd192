/**
 * The chaos run (`npm run chaos`): several engine processes on one PostgreSQL database, a stream
 * of jobs with callbacks to a local receiver, `kill -9` of a random engine every few seconds with
 * an immediate restart, and storms of PATCH requests (pause, resume, break, priority). At the end
 * every job must have reached a final state, no task may have succeeded twice, each job has
 * exactly one job-end callback per target, `max_jobs` was never exceeded (sampled), and the
 * `/health` counts equal what the listings say.
 *
 * Bounded in time and count, loopback only. Settings (environment):
 * - `CHAOS_DATABASE_URL` — a PostgreSQL server (default postgres://postgres@127.0.0.1:5432/test);
 *   the run creates and drops its own database on it.
 * - `CHAOS_KILLS` (default 50) — kill cycles to run; `CHAOS_KILL_EVERY_MS` (default 2000).
 * - `CHAOS_ENGINES` (default 3) — engine processes; `CHAOS_MAX_JOBS` (default 4).
 * - `CHAOS_RESTART_POSTGRES=1` — also restart the PostgreSQL server once under load, with
 *   `CHAOS_PG_RESTART_COMMAND` (default `pg_ctlcluster --skip-systemctl-redirect <version> main
 *   restart`); only on a machine whose server nothing else is using.
 * - `CHAOS_DB_OUTAGE_SECONDS` (default 8; 0 for none) — once, a third of the way through, the
 *   database goes away for the engines for that long: the engines reach PostgreSQL through a TCP
 *   relay of this run's own, which then drops every connection and refuses new ones. Only this
 *   run's engines see the outage; the server and its other databases are untouched. Every API
 *   answer meanwhile must be a JSON 503, within 10 s (no hang, no HTML, no 500).
 * - `CHAOS_RESULTS` — a file to append the run's figures to (one JSON line).
 * Exit code 0 when every check holds, 1 otherwise (each failed check is printed).
 */
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { appendFileSync, mkdtempSync, readdirSync } from 'node:fs';
import { createServer, type IncomingMessage } from 'node:http';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { startTcpRelay } from '../test/helpers/tcp-relay.js';

const ROOT = fileURLToPath(new URL('../', import.meta.url));
const BASE_URL = process.env.CHAOS_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
const KILLS = Number(process.env.CHAOS_KILLS ?? 50);
const KILL_EVERY_MS = Number(process.env.CHAOS_KILL_EVERY_MS ?? 2000);
const ENGINES = Number(process.env.CHAOS_ENGINES ?? 3);
const MAX_JOBS = Number(process.env.CHAOS_MAX_JOBS ?? 4);
const RESTART_PG = process.env.CHAOS_RESTART_POSTGRES === '1';
const OUTAGE_SECONDS = Number(process.env.CHAOS_DB_OUTAGE_SECONDS ?? 8);
const ADMIN = 'chaos';
const KEY = 'chaos-admin-key-0123456789';

const dbName = `chaos_${Date.now()}`;
const dbUrl = (() => {
  const u = new URL(BASE_URL);
  u.pathname = `/${dbName}`;
  return u.toString();
})();

/** The engines' way to PostgreSQL; {@link startTcpRelay}. */
let engineDbUrl = dbUrl;

interface Engine {
  slot: number;
  child: ChildProcess;
  url: Promise<string>;
  exited: Promise<number | null>;
}

const engines: (Engine | null)[] = [];
const killed = new Set<Engine>();
const problems: string[] = [];
const figures = {
  kills: 0,
  restarts: 0,
  jobs: 0,
  patches: 0,
  refusedRequests: 0,
  non_json_answers: 0,
  max_started_seen: 0,
  samples: 0,
  pg_restarts: 0,
  json_503s_during_outage: 0,
  db_outages: 0,
  outage_requests: 0,
  job_end_receipts: 0,
  duplicate_receipts: 0,
};

function log(line: string): void {
  process.stdout.write(`[chaos ${new Date().toISOString().slice(11, 23)}] ${line}\n`);
}

/** Starts `task-engine serve` number `slot` on the chaos database; resolves its URL once it listens. */
function startEngine(slot: number): Engine {
  const child = spawn(process.execPath, ['--import', 'tsx', path.join(ROOT, 'src/cli/main.ts'), 'serve'], {
    cwd: ROOT,
    env: {
      PATH: process.env.PATH ?? '',
      HOME: process.env.HOME ?? '',
      DATABASE_URL: engineDbUrl,
      TASK_ENGINE_PORT: '0',
      TASK_ENGINE_DATA_DIR: mkdtempSync(path.join(tmpdir(), `chaos-${slot}-`)),
      TASK_ENGINE_ADMIN_CLIENT: ADMIN,
      TASK_ENGINE_ADMIN_API_KEY: KEY,
      TASK_ENGINE_LOG_LEVEL: 'error',
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  const url = new Promise<string>((resolve, reject) => {
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      const m = /listening on (http:\/\/\S+)/.exec(out);
      if (m) resolve(m[1]!);
    });
    child.stderr.on('data', (d: Buffer) => (out += d.toString()));
    child.once('exit', (code, signal) =>
      reject(new Error(`engine ${slot} exited (${code ?? signal}) before listening: ${out.slice(-2000)}`)),
    );
  });
  url.catch(() => undefined);
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return { slot, child, url, exited };
}

async function liveUrl(): Promise<string | null> {
  const candidates = engines.filter((e): e is Engine => e !== null);
  const e = candidates[Math.floor(Math.random() * candidates.length)];
  if (!e) return null;
  return Promise.race([e.url, new Promise<null>((r) => setTimeout(() => r(null), 5000))]).catch(() => null);
}

/** One API call with a timeout; records non-JSON answers (never allowed) and refusals. */
async function api(
  base: string,
  method: string,
  route: string,
  body?: unknown,
  timeoutMs = 15_000,
): Promise<{ status: number; json: unknown }> {
  const res = await fetch(base + route, {
    method,
    headers: {
      client: ADMIN,
      'api-key': KEY,
      ...(body === undefined ? {} : { 'content-type': 'application/json' }),
    },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    signal: AbortSignal.timeout(timeoutMs),
  });
  const text = await res.text();
  let json: unknown = null;
  try {
    json = text === '' ? null : JSON.parse(text);
  } catch {
    figures.non_json_answers++;
    problems.push(`${method} ${route} answered ${res.status} with non-JSON: ${text.slice(0, 120)}`);
  }
  if (res.status >= 400) figures.refusedRequests++;
  if (res.status >= 500 && res.status !== 503)
    problems.push(`${method} ${route} answered ${res.status}: ${text.slice(0, 200)}`);
  return { status: res.status, json };
}

/**
 * What the receiver saw of job-end callbacks: per job, per target path, the distinct `webhook-id`
 * values and the raw number of receipts. Delivery is at-least-once across a crash (a delivery sent,
 * then its engine killed before the outcome was recorded, is sent again with the same
 * `webhook-id`), so "exactly one" is one distinct `webhook-id` per job per target; the raw
 * duplicates are reported and must not exceed the number of kills.
 */
interface Receipts {
  ids: Set<string>;
  receipts: number;
}

/** The receiver's two targets (two URLs of one server), so "per target" is checked too. */
const TARGETS = ['/hook-a', '/hook-b'];

async function startReceiver(): Promise<{
  urls: string[];
  ends: Map<number, Map<string, Receipts>>;
  close: () => void;
}> {
  const ends = new Map<number, Map<string, Receipts>>();
  const server = createServer((req: IncomingMessage, res) => {
    let body = '';
    req.on('data', (d: Buffer) => (body += d.toString()));
    req.on('end', () => {
      try {
        const b = JSON.parse(body) as { job_id?: number; status?: string; task_id?: number };
        if (b.job_id !== undefined && b.status !== undefined && b.task_id === undefined) {
          const byTarget = ends.get(b.job_id) ?? new Map<string, Receipts>();
          ends.set(b.job_id, byTarget);
          const target = req.url ?? '';
          const seen = byTarget.get(target) ?? { ids: new Set<string>(), receipts: 0 };
          byTarget.set(target, seen);
          seen.receipts++;
          seen.ids.add(String(req.headers['webhook-id'] ?? ''));
        }
      } catch {
        /* not a callback body */
      }
      res.writeHead(200).end('ok');
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as { port: number }).port;
  return {
    urls: TARGETS.map((t) => `http://127.0.0.1:${port}${t}`),
    ends,
    close: () => server.close(),
  };
}

function pgRestartCommand(): string[] {
  if (process.env.CHAOS_PG_RESTART_COMMAND) return ['sh', '-c', process.env.CHAOS_PG_RESTART_COMMAND];
  const version = readdirSync('/etc/postgresql')[0]!;
  return ['pg_ctlcluster', '--skip-systemctl-redirect', version, 'main', 'restart'];
}

async function main(): Promise<void> {
  const started = Date.now();
  const admin = new pg.Client({ connectionString: BASE_URL });
  await admin.connect();
  await admin.query(`CREATE DATABASE ${dbName}`);
  await admin.end();
  log(`database ${dbName}; ${ENGINES} engines; ${KILLS} kill cycles every ${KILL_EVERY_MS} ms`);

  const receiver = await startReceiver();
  const relay = await startTcpRelay({
    host: new URL(dbUrl).hostname,
    port: Number(new URL(dbUrl).port || 5432),
  });
  engineDbUrl = (() => {
    const u = new URL(dbUrl);
    u.port = String(relay.port);
    return u.toString();
  })();
  // The first engine migrates; the others start once it listens.
  engines[0] = startEngine(0);
  const first = await engines[0].url;
  for (let i = 1; i < ENGINES; i++) engines[i] = startEngine(i);
  await Promise.all(engines.map((e) => e!.url));
  await api(first, 'POST', '/settings', { name: 'max_jobs', setting: MAX_JOBS });
  await api(first, 'POST', '/settings', { name: 'retry_delay', setting: 0 });

  const sampler = new pg.Client({ connectionString: dbUrl });
  await sampler.connect();
  sampler.on('error', () => undefined);
  let stop = false;
  let pgDown = false;
  const jobIds: number[] = [];

  const sampling = (async () => {
    while (!stop) {
      try {
        const r = await sampler.query<{ n: number }>(
          "SELECT count(*)::int AS n FROM jobs WHERE queue_state = 'started'",
        );
        const n = r.rows[0]!.n;
        figures.samples++;
        figures.max_started_seen = Math.max(figures.max_started_seen, n);
        if (n > MAX_JOBS) problems.push(`sampled ${n} started jobs with max_jobs ${MAX_JOBS}`);
      } catch {
        /* the database is restarting */
      }
      await new Promise((r) => setTimeout(r, 100));
    }
  })();

  const submitting = (async () => {
    let n = 0;
    while (!stop) {
      const base = await liveUrl();
      if (base) {
        try {
          const r = await api(base, 'POST', '/job', {
            job: { workflow: 'demo', priority: 1 + (n % 10) },
            parameters: {
              content_id: `chaos-${n}`,
              seconds: Math.random() * 0.5,
              rest_endpoints: receiver.urls,
            },
          });
          const id = (r.json as { id?: number } | null)?.id;
          if (r.status < 300 && typeof id === 'number') {
            jobIds.push(id);
            figures.jobs++;
          } else if (pgDown && r.status === 503) figures.json_503s_during_outage++;
        } catch {
          /* the engine was killed mid-request: the client retries with another */
        }
      }
      n++;
      await new Promise((r) => setTimeout(r, 150));
    }
  })();

  const storming = (async () => {
    while (!stop) {
      const base = await liveUrl();
      const id = jobIds[Math.floor(Math.random() * jobIds.length)];
      if (base && id !== undefined) {
        const change = [
          { queue_state: 'paused' },
          { queue_state: 'queued' },
          { queue_state: 'broken' },
          { priority: 1 + Math.floor(Math.random() * 10) },
        ][Math.floor(Math.random() * 4)];
        try {
          await api(base, 'PATCH', `/jobs/${id}`, change);
          figures.patches++;
        } catch {
          /* killed mid-request */
        }
      }
      await new Promise((r) => setTimeout(r, 120));
    }
  })();

  for (let k = 0; k < KILLS; k++) {
    await new Promise((r) => setTimeout(r, KILL_EVERY_MS * (0.5 + Math.random())));
    const slot = Math.floor(Math.random() * ENGINES);
    const victim = engines[slot];
    if (!victim) continue;
    victim.url.catch(() => undefined);
    killed.add(victim);
    victim.child.kill('SIGKILL');
    await victim.exited;
    figures.kills++;
    engines[slot] = startEngine(slot);
    figures.restarts++;
    const restarted = engines[slot];
    restarted.url.catch((err: unknown) => {
      // Killing an engine that was still starting is part of the run; any other exit is not.
      if (!killed.has(restarted)) problems.push(`restart of engine ${slot} failed: ${String(err)}`);
    });
    if (OUTAGE_SECONDS > 0 && k === Math.floor(KILLS / 3)) {
      // No engine may be starting when the database goes away (a start without one exits).
      await Promise.allSettled(engines.map(async (e) => e?.url));
      log(`database away for the engines for ${OUTAGE_SECONDS} s`);
      await relay.down();
      pgDown = true;
      const until = Date.now() + OUTAGE_SECONDS * 1000;
      while (Date.now() < until) {
        for (const e of engines) {
          const url = await e?.url.catch(() => null);
          if (!url) continue;
          for (const route of ['/jobs?limit=5', '/health', `/jobs/${jobIds[0] ?? 1}`]) {
            figures.outage_requests++;
            try {
              const r = await api(url, 'GET', route, undefined, 10_000);
              if (r.status === 503 && r.json !== null) figures.json_503s_during_outage++;
              else problems.push(`GET ${route} answered ${r.status} while the database was away`);
            } catch (err) {
              problems.push(
                `GET ${route} gave no answer within 10 s while the database was away: ${String(err)}`,
              );
            }
          }
        }
        await new Promise((r) => setTimeout(r, 250));
      }
      await relay.up();
      pgDown = false;
      figures.db_outages++;
      log('database back');
    }
    if (RESTART_PG && k === Math.floor(KILLS / 2)) {
      log('restarting PostgreSQL');
      pgDown = true;
      const [cmd, ...args] = pgRestartCommand();
      execFileSync(cmd!, args, { stdio: 'inherit' });
      pgDown = false;
      figures.pg_restarts++;
      await sampler.end().catch(() => undefined);
    }
    if (k % 10 === 9) log(`${k + 1} kills, ${figures.jobs} jobs, ${figures.patches} patches`);
  }
  stop = true;
  await Promise.all([submitting, storming, sampling]);

  // Wind down: let every job end. Paused jobs are resumed (a paused job is not final).
  const urls = await Promise.allSettled(engines.map(async (e) => e!.url));
  const base = urls.find((u): u is PromiseFulfilledResult<string> => u.status === 'fulfilled')?.value;
  if (base === undefined) throw new Error('no engine is listening after the kill cycles');
  const db = new pg.Client({ connectionString: dbUrl });
  await db.connect();
  const deadline = Date.now() + 180_000;
  for (;;) {
    const paused = await db.query<{ id: number }>("SELECT id FROM jobs WHERE queue_state = 'paused'");
    for (const r of paused.rows)
      await api(base, 'PATCH', `/jobs/${r.id}`, { queue_state: 'queued' }).catch(() => undefined);
    const live = await db.query<{ n: number }>(
      "SELECT count(*)::int AS n FROM jobs WHERE queue_state NOT IN ('completed', 'broken')",
    );
    const pendingCallbacks = await db.query<{ n: number }>(
      "SELECT count(*)::int AS n FROM callback_deliveries WHERE state IN ('pending', 'delivering')",
    );
    if (live.rows[0]!.n === 0 && pendingCallbacks.rows[0]!.n === 0) break;
    if (Date.now() > deadline) {
      problems.push(
        `${live.rows[0]!.n} jobs not final and ${pendingCallbacks.rows[0]!.n} callbacks undelivered after the wind-down`,
      );
      break;
    }
    await new Promise((r) => setTimeout(r, 500));
  }

  // Checks.
  const twice = await db.query<{ task_id: number; n: number }>(
    "SELECT task_id, count(*)::int AS n FROM attempts WHERE state = 'succeeded' GROUP BY task_id HAVING count(*) > 1",
  );
  for (const r of twice.rows) problems.push(`task ${r.task_id} succeeded ${r.n} times`);
  const ended = await db.query<{ id: number; run: number }>(
    "SELECT id, run FROM jobs WHERE queue_state = 'completed' OR (queue_state = 'broken' AND started_at IS NOT NULL)",
  );
  const completed = await db.query<{ id: number }>("SELECT id FROM jobs WHERE queue_state = 'completed'");
  for (const r of completed.rows) {
    const byTarget = receiver.ends.get(Number(r.id));
    for (const target of TARGETS) {
      const seen = byTarget?.get(target);
      const distinct = seen?.ids.size ?? 0;
      figures.job_end_receipts += seen?.receipts ?? 0;
      figures.duplicate_receipts += (seen?.receipts ?? 0) - distinct;
      if (distinct === 1) continue;
      const rows = await db.query<{ id: number; state: string; last_status: number | null }>(
        "SELECT id, state, last_status FROM callback_deliveries WHERE job_id = $1 AND kind = 'job' AND target_url LIKE $2",
        [r.id, `%${target}`],
      );
      problems.push(
        `job ${r.id} has ${distinct} distinct job-end callbacks at ${target} (expected 1; webhook-ids ` +
          `${JSON.stringify([...(seen?.ids ?? [])])}); its deliveries: ${JSON.stringify(rows.rows)}`,
      );
    }
  }
  if (figures.duplicate_receipts > figures.kills)
    problems.push(
      `${figures.duplicate_receipts} duplicate job-end receipts, more than the ${figures.kills} kills`,
    );
  const health = (await api(base, 'GET', '/health')).json as { jobs: Record<string, number> };
  const byState = await db.query<{ queue_state: string; failed: boolean; n: number }>(
    'SELECT queue_state, failed, count(*)::int AS n FROM jobs GROUP BY 1, 2',
  );
  const truth: Record<string, number> = {};
  for (const r of byState.rows) {
    const key = r.queue_state === 'completed' && r.failed ? 'failed' : r.queue_state;
    truth[key] = (truth[key] ?? 0) + r.n;
  }
  for (const state of [
    'queued',
    'started',
    'completed',
    'failed',
    'broken',
    'paused',
    'pending',
    'scheduled',
  ]) {
    const said = health.jobs[state] ?? 0;
    if (said !== (truth[state] ?? 0))
      problems.push(`/health says ${said} ${state} jobs, the table holds ${truth[state] ?? 0}`);
  }
  for (const state of ['completed', 'broken']) {
    const listed = (await api(base, 'GET', `/jobs?state=${state}&limit=1000`)).json as unknown[];
    const inTable = byState.rows.filter((r) => r.queue_state === state).reduce((a, r) => a + r.n, 0);
    if (listed.length !== Math.min(inTable, 1000))
      problems.push(`/jobs?state=${state} lists ${listed.length}, the table holds ${inTable}`);
  }
  await db.end();
  await sampler.end().catch(() => undefined);

  for (const e of engines) {
    if (!e) continue;
    killed.add(e);
    e.child.kill('SIGKILL');
  }
  await Promise.all(engines.map(async (e) => e?.exited));
  // The relay's listening socket would otherwise keep the run from exiting.
  await relay.down();
  receiver.close();
  const cleanup = new pg.Client({ connectionString: BASE_URL });
  await cleanup.connect();
  await cleanup.query(`DROP DATABASE IF EXISTS ${dbName} WITH (FORCE)`).catch(() => undefined);
  await cleanup.end();

  const result = {
    at: new Date().toISOString(),
    seconds: Math.round((Date.now() - started) / 1000),
    engines: ENGINES,
    max_jobs: MAX_JOBS,
    ended_jobs: ended.rows.length,
    ...figures,
    problems: problems.length,
  };
  log(JSON.stringify(result));
  if (process.env.CHAOS_RESULTS) appendFileSync(process.env.CHAOS_RESULTS, JSON.stringify(result) + '\n');
  for (const p of problems.slice(0, 50)) log(`PROBLEM: ${p}`);
  process.exitCode = problems.length === 0 ? 0 : 1;
}

main().catch((err: unknown) => {
  for (const e of engines) e?.child.kill('SIGKILL');
  process.stderr.write(`chaos run failed: ${err instanceof Error ? err.stack : String(err)}\n`);
  process.exitCode = 1;
});
