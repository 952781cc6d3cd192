/**
 * `npm run bench ladder`: a four-rendition ladder (1080/720/480/360) of a 60 s 1080p source, made
 * (1) by the engine — a vodstream job (CMAF, HLS + DASH, clear) whose rendition tasks are shared by
 * two worker processes against one PostgreSQL store — and (2) by one FFmpeg command line that makes
 * the same ladder in one process (`split` filter, four x264 outputs, the audio once, HLS through
 * `-var_stream_map`). Same machine, same run, one after the other. Prints the wall time and the CPU
 * time (user + sys of every process involved, FFmpeg included: the children's times from
 * /proc/self/stat once they have been reaped) of each.
 *
 * Environment: `BENCH_DATABASE_URL` (default TEST_DATABASE_URL, else
 * postgres://postgres@127.0.0.1:5432/test; the database `te_bench_ladder` is made on that server
 * and dropped at the end), `LADDER_BENCH_SECONDS` (60), `LADDER_BENCH_SIZE` (1920x1080),
 * `LADDER_BENCH_WORKER_CONCURRENCY` (2 tasks per worker process), `LADDER_BENCH_PER_TASK` (the
 * vodstream `renditions_per_task` values to run the engine with, `1,2`: each rendition its own task,
 * then two rungs per task from one decode), `LADDER_BENCH_WORKER_NODE_ARGS` (extra Node options for
 * the worker processes, space-separated: `--cpu-prof --cpu-prof-dir=<dir>` profiles them),
 * `LADDER_BENCH_WORKERS` (`dist`: the compiled CLI, the default when `dist/` is newer than `src/`;
 * `src`: the sources through tsx), `LADDER_BENCH_ROUNDS` (3: rounds of the one command and each
 * engine run, interleaved; the figures are medians, and the ratios medians of each round's ratio).
 */
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { mkdtemp, mkdir, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import pgPkg from 'pg';
import { pino } from 'pino';
import { locateFfmpeg } from '../src/media/ffmpeg.js';
import { startTaskEngine } from '../src/server.js';
import { testConfig } from '../test/helpers/engine.js';
import { BENCH_BASE_URL, adminQuery } from './helpers/bench-setup.js';

const { Client } = pgPkg;
const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const BASE_URL = BENCH_BASE_URL;
const DB_NAME = 'te_bench_ladder';
const seconds = Number(process.env.LADDER_BENCH_SECONDS ?? 60);
const [width, height] = (process.env.LADDER_BENCH_SIZE ?? '1920x1080').split('x').map(Number) as [
  number,
  number,
];
const perWorker = Number(process.env.LADDER_BENCH_WORKER_CONCURRENCY ?? 2);
/** Extra Node options for the worker processes (`LADDER_BENCH_WORKER_NODE_ARGS`, space-separated), e.g. `--cpu-prof --cpu-prof-dir=/tmp/prof`. */
const WORKER_NODE_ARGS = (process.env.LADDER_BENCH_WORKER_NODE_ARGS ?? '').split(' ').filter(Boolean);

/** The newest modification time (ms) of the files under `dir`. */
function newestMtime(dir: string): number {
  let newest = 0;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    newest = Math.max(newest, e.isDirectory() ? newestMtime(p) : statSync(p).mtimeMs);
  }
  return newest;
}

/**
 * What the worker processes run (`LADDER_BENCH_WORKERS`): `dist` — the compiled CLI, as a
 * deployment runs it (the default when `dist/cli/main.js` is newer than every file of `src/`) —
 * or `src`, the sources through tsx (the default otherwise, with a note).
 */
const WORKER_ENTRY: { label: string; args: string[] } = (() => {
  const dist = path.join(ROOT, 'dist/cli/main.js');
  const wanted = process.env.LADDER_BENCH_WORKERS;
  const fresh = existsSync(dist) && statSync(dist).mtimeMs >= newestMtime(path.join(ROOT, 'src'));
  if (wanted === 'dist' || (wanted === undefined && fresh)) {
    if (!existsSync(dist)) throw new Error('LADDER_BENCH_WORKERS=dist: run npm run build first');
    return { label: 'dist/cli/main.js (compiled)', args: [dist] };
  }
  if (wanted === undefined)
    console.log(
      'note: dist/ is missing or older than src/ (npm run build): the workers run the sources through tsx',
    );
  return {
    label: 'src/cli/main.ts through tsx',
    args: ['--import', 'tsx', path.join(ROOT, 'src/cli/main.ts')],
  };
})();
const perTaskValues = (process.env.LADDER_BENCH_PER_TASK ?? '1,2').split(',').map(Number);
const CLIENT = 'bench';
const KEY = 'bench-key-0123456789abcdef';
const LADDER = [
  { height: 1080, kbps: 5000 },
  { height: 720, kbps: 2800 },
  { height: 480, kbps: 1400 },
  { height: 360, kbps: 800 },
].filter((r) => r.height <= height);
const SEG = 4;
const TICK = 100; // USER_HZ on Linux

/** CPU seconds of this process and its reaped children (utime, stime, cutime, cstime). */
function cpuSeconds(): { self: number; children: number } {
  const stat = readFileSync('/proc/self/stat', 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // Fields after the command: state(3) … utime(14) stime(15) cutime(16) cstime(17), 1-based in proc(5).
  const n = (i: number): number => Number(f[i - 3]);
  return { self: (n(14) + n(15)) / TICK, children: (n(16) + n(17)) / TICK };
}

/** CPU seconds (user + sys) a running process has spent itself, from /proc/<pid>/stat. */
function processCpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(f[11]) + Number(f[12])) / TICK;
}

const adminSql = adminQuery;

const tmp = await mkdtemp(path.join(os.tmpdir(), 'te-ladder-bench-'));
const ff = locateFfmpeg();
const source = path.join(tmp, 'storage', CLIENT, 'in', 'source.mp4');
await mkdir(path.dirname(source), { recursive: true });
console.log(`worker processes run ${WORKER_ENTRY.label}`);
console.log(`making a ${seconds} s ${width}x${height} source …`);
execFileSync(ff, [
  '-hide_banner',
  '-loglevel',
  'error',
  '-f',
  'lavfi',
  '-i',
  `testsrc2=size=${width}x${height}:rate=25:duration=${seconds}`,
  '-f',
  'lavfi',
  '-i',
  `sine=frequency=440:sample_rate=48000:duration=${seconds}`,
  '-c:v',
  'libx264',
  '-preset',
  'ultrafast',
  '-crf',
  '18',
  '-pix_fmt',
  'yuv420p',
  '-c:a',
  'aac',
  '-shortest',
  source,
]);

// 1. One FFmpeg command line: split filter, four outputs, the audio once.
const gop = 25 * SEG;
const split = `[0:v]split=${LADDER.length}${LADDER.map((_, i) => `[s${i}]`).join('')};${LADDER.map(
  (r, i) => `[s${i}]scale=-2:${r.height},setsar=1[v${i}]`,
).join(';')}`;
const oneOut = path.join(tmp, 'one');
const oneArgs = [
  '-hide_banner',
  '-loglevel',
  'error',
  '-y',
  '-i',
  source,
  '-filter_complex',
  split,
  ...LADDER.flatMap((_, i) => ['-map', `[v${i}]`]),
  '-map',
  '0:a:0',
  '-c:v',
  'libx264',
  '-preset',
  'veryfast',
  '-profile:v',
  'high',
  '-pix_fmt',
  'yuv420p',
  ...LADDER.flatMap((r, i) => [
    `-b:v:${i}`,
    `${r.kbps}k`,
    `-maxrate:v:${i}`,
    `${Math.round(r.kbps * 1.1)}k`,
    `-bufsize:v:${i}`,
    `${r.kbps * 2}k`,
  ]),
  '-g',
  String(gop),
  '-keyint_min',
  String(gop),
  '-sc_threshold',
  '0',
  '-flags',
  '+cgop',
  '-force_key_frames',
  `expr:gte(t,n_forced*${SEG})`,
  '-c:a',
  'aac',
  '-b:a',
  '128k',
  '-ac',
  '2',
  '-ar',
  '48000',
  '-f',
  'hls',
  '-hls_time',
  String(SEG),
  '-hls_playlist_type',
  'vod',
  '-hls_list_size',
  '0',
  '-master_pl_name',
  'master.m3u8',
  '-var_stream_map',
  ['a:0,agroup:aud', ...LADDER.map((_, i) => `v:${i},agroup:aud`)].join(' '),
  '-hls_segment_filename',
  path.join(oneOut, '%v', 'segment_%05d.ts'),
  path.join(oneOut, '%v', 'index.m3u8'),
];
/** Runs the one FFmpeg command line once: its wall and CPU seconds (FFmpeg and this process). */
async function runOneCommand(): Promise<{ wall: number; cpu: number }> {
  await rm(oneOut, { recursive: true, force: true });
  await mkdir(oneOut, { recursive: true });
  const cpu0 = cpuSeconds();
  const t0 = performance.now();
  await new Promise<void>((resolve, reject) => {
    const p = spawn(ff, oneArgs, { stdio: ['ignore', 'inherit', 'inherit'] });
    p.on('error', reject);
    p.on('exit', (code) => (code === 0 ? resolve() : reject(new Error(`ffmpeg exited with ${code}`))));
  });
  const wall = (performance.now() - t0) / 1000;
  const cpu1 = cpuSeconds();
  return { wall, cpu: cpu1.children - cpu0.children + (cpu1.self - cpu0.self) };
}

let engineRunCount = 0;
// 2. The engine: API + controller here, two worker processes; once per renditions_per_task value.
async function runEngine(
  perTask: number,
): Promise<{ wall: number; cpu: number; startWall: number; startCpu: number; timeline: string }> {
  await adminSql(`DROP DATABASE IF EXISTS ${DB_NAME} WITH (FORCE)`);
  await adminSql(`CREATE DATABASE ${DB_NAME}`);
  const u = new URL(BASE_URL);
  u.pathname = `/${DB_NAME}`;
  const dbUrl = u.toString();
  const config = testConfig({
    dataDir: tmp,
    storageRoot: path.join(tmp, 'storage'),
    databaseUrl: dbUrl,
    roles: ['api', 'controller'],
    adminClient: CLIENT,
    adminApiKey: KEY,
  });
  const running = await startTaskEngine(config, { logger: pino({ level: 'silent' }) });
  const workers: ChildProcess[] = [];
  const cpu0 = cpuSeconds();
  const tStart = performance.now();
  for (let i = 0; i < 2; i++)
    workers.push(
      spawn(process.execPath, [...WORKER_NODE_ARGS, ...WORKER_ENTRY.args, 'worker'], {
        stdio: ['ignore', 'pipe', 'inherit'],
        env: {
          ...process.env,
          DATABASE_URL: dbUrl,
          TASK_ENGINE_STORAGE_ROOT: config.storageRoot,
          TASK_ENGINE_WORKFLOWS_DIR: config.workflowsDir,
          TASK_ENGINE_DATA_DIR: path.join(tmp, `worker-${perTask}-${i}`),
          TASK_ENGINE_WORKER_CONCURRENCY: String(perWorker),
          // info: the bench waits for each worker's "task handlers preloaded" line.
          TASK_ENGINE_LOG_LEVEL: 'info',
        },
      }),
    );
  const api = async <T>(method: string, p: string, body?: unknown): Promise<T> => {
    const res = await fetch(`${running.url}${p}`, {
      method,
      headers: { client: CLIENT, 'api-key': KEY, ...(body ? { 'content-type': 'application/json' } : {}) },
      ...(body ? { body: JSON.stringify(body) } : {}),
    });
    return (await res.json()) as T;
  };
  // Each worker says when it has loaded its task handlers (it starts claiming before that).
  const preloaded = workers.map(
    (w) =>
      new Promise<void>((resolve, reject) => {
        let seen = '';
        let ready = false;
        // Read to the end either way, so the worker never blocks on a full pipe.
        w.stdout!.on('data', (chunk: Buffer) => {
          if (ready) return;
          seen = (seen + chunk.toString('utf8')).slice(-8192);
          if (seen.includes('"task handlers preloaded"')) {
            ready = true;
            resolve();
          }
        });
        w.on('exit', (code) => reject(new Error(`a worker exited with ${code} before it was ready`)));
      }),
  );
  // The workers are ready once both have registered and preloaded their handlers; the CPU they spent starting is read from
  // /proc (they have no children yet), so the job's own cost can be told from the start-up.
  const pg = new Client({ connectionString: dbUrl });
  await pg.connect();
  for (;;) {
    const r = await pg
      .query<{ n: number }>('SELECT count(*)::int AS n FROM workers WHERE stopped_at IS NULL')
      .catch(() => ({ rows: [{ n: 0 }] }));
    if ((r.rows[0]?.n ?? 0) >= workers.length) break;
    await new Promise((r) => setTimeout(r, 50));
  }
  await pg.end();
  await Promise.all(preloaded);
  const startWall = (performance.now() - tStart) / 1000;
  const startCpu =
    workers.reduce((a, w) => a + processCpuSeconds(w.pid!), 0) + (cpuSeconds().self - cpu0.self);
  const t0 = performance.now();
  interface JobReply {
    queue_state: string;
    failed: boolean;
    tasks: {
      name: string;
      state: string;
      error: string | null;
      started_at: string | null;
      finished_at: string | null;
    }[];
  }
  const submittedAt = Date.now();
  const { id } = await api<{ id: number }>('POST', '/job', {
    job: { workflow: 'vodstream' },
    parameters: {
      content_id: 'bench',
      source_folder: 'in',
      output_folder: `out-${perTask}-${++engineRunCount}`,
      renditions: LADDER.map((r) => ({ height: r.height, video_bitrate_kbps: r.kbps })),
      formats: ['hls', 'dash'],
      segment_duration: SEG,
      create_thumbnail: false,
      renditions_per_task: perTask,
    },
  });
  let job: JobReply;
  for (;;) {
    job = await api<JobReply>('GET', `/jobs/${id}`);
    if (['completed', 'broken'].includes(job.queue_state)) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  const engineWall = (performance.now() - t0) / 1000;
  // Stop the workers and reap them, so their CPU time (and their FFmpeg children's) is counted.
  await Promise.all(
    workers.map(
      (w) =>
        new Promise<void>((resolve) => {
          w.on('exit', () => resolve());
          w.kill('SIGTERM');
        }),
    ),
  );
  const cpu1 = cpuSeconds();
  const engineCpu = cpu1.children - cpu0.children + (cpu1.self - cpu0.self);
  await running.stop();
  await adminSql(`DROP DATABASE IF EXISTS ${DB_NAME} WITH (FORCE)`);
  if (job.failed) {
    console.error('the job failed:', JSON.stringify(job.tasks));
    process.exit(1);
  }
  // Where the wall time went: each task that ran, from submission (s), in the order it started.
  const timeline = job.tasks
    .filter((t) => t.started_at && t.finished_at)
    .sort((a, b) => Date.parse(a.started_at!) - Date.parse(b.started_at!))
    .map(
      (t) =>
        `${t.name} ${((Date.parse(t.started_at!) - submittedAt) / 1000).toFixed(2)}–` +
        `${((Date.parse(t.finished_at!) - submittedAt) / 1000).toFixed(2)}`,
    )
    .join(', ');
  return { wall: engineWall, cpu: engineCpu - startCpu, startWall, startCpu, timeline };
}
const rounds = Number(process.env.LADDER_BENCH_ROUNDS ?? 3);
type EngineRun = {
  perTask: number;
  wall: number;
  cpu: number;
  startWall: number;
  startCpu: number;
  timeline: string;
};
const oneRuns: { wall: number; cpu: number }[] = [];
const engineRuns: EngineRun[] = [];
// Rounds interleave the two sides, so a slow spell of the machine falls on both.
for (let round = 1; round <= rounds; round++) {
  const one = await runOneCommand();
  oneRuns.push(one);
  console.log(
    `round ${round}: one FFmpeg command wall ${one.wall.toFixed(1)} s, CPU ${one.cpu.toFixed(1)} s`,
  );
  for (const perTask of perTaskValues) {
    const r = { perTask, ...(await runEngine(perTask)) };
    engineRuns.push(r);
    console.log(
      `round ${round}: engine renditions_per_task ${perTask} wall ${r.wall.toFixed(1)} s, CPU ${r.cpu.toFixed(1)} s ` +
        `(${(r.wall / one.wall).toFixed(3)}x / ${(r.cpu / one.cpu).toFixed(3)}x); tasks (s from submission): ${r.timeline}`,
    );
  }
}
await rm(tmp, { recursive: true, force: true });
const median = (xs: number[]): number => {
  const v = [...xs].sort((a, b) => a - b);
  const m = Math.floor(v.length / 2);
  return v.length % 2 ? v[m]! : (v[m - 1]! + v[m]!) / 2;
};
const oneWall = median(oneRuns.map((r) => r.wall));
const oneCpu = median(oneRuns.map((r) => r.cpu));
console.log(`medians of ${rounds} interleaved round(s):`);
console.log(
  `input: ${seconds} s ${width}x${height} 25 fps; ladder ${LADDER.map((r) => `${r.height}p@${r.kbps}k`).join(', ')}; ` +
    `${os.cpus().length} CPU(s)`,
);
console.log(
  `one FFmpeg process (split filter, ${LADDER.length} outputs, HLS): wall ${oneWall.toFixed(1)} s, CPU ${oneCpu.toFixed(1)} s`,
);
for (const perTask of perTaskValues) {
  const runs = engineRuns.filter((r) => r.perTask === perTask);
  const r = {
    perTask,
    wall: median(runs.map((x) => x.wall)),
    cpu: median(runs.map((x) => x.cpu)),
    startWall: median(runs.map((x) => x.startWall)),
    startCpu: median(runs.map((x) => x.startCpu)),
  };
  console.log(
    `engine, renditions_per_task ${r.perTask} (${Math.ceil(LADDER.length / r.perTask)} rendition tasks), 2 worker processes x ${perWorker} tasks ` +
      `(vodstream CMAF HLS+DASH), from submission to the end, workers already running: wall ${r.wall.toFixed(1)} s, CPU ${r.cpu.toFixed(1)} s ` +
      `(every process: API + controller, workers, FFmpeg); the workers' start before it: ${r.startWall.toFixed(1)} s, CPU ${r.startCpu.toFixed(1)} s`,
  );
  const ratios = runs.map((x, i) => ({ wall: x.wall / oneRuns[i]!.wall, cpu: x.cpu / oneRuns[i]!.cpu }));
  console.log(
    `engine (renditions_per_task ${r.perTask}) / one process, median of the rounds' ratios: ` +
      `wall ${median(ratios.map((x) => x.wall)).toFixed(3)}x, CPU ${median(ratios.map((x) => x.cpu)).toFixed(3)}x`,
  );
  console.log(
    `engine (renditions_per_task ${r.perTask}) / one process, ratio of medians: wall ${(r.wall / oneWall).toFixed(2)}x, CPU ${(r.cpu / oneCpu).toFixed(2)}x; ` +
      `with the workers' start: wall ${((r.wall + r.startWall) / oneWall).toFixed(2)}x, CPU ${((r.cpu + r.startCpu) / oneCpu).toFixed(2)}x`,
  );
}
