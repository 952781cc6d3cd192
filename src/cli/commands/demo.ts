/**
 * `task-engine demo` (and `npm run demo`): the main job on a real video, end to end.
 *
 * 1. Uses the engine at `--url` (or `TASK_ENGINE_URL`, with `--client`/`--api-key`), or the local
 *    engine that holds the data folder when credentials are given; otherwise starts the embedded
 *    engine in this process on a free port, with a client `demo-media` whose key is issued afresh.
 * 2. Makes a short test video with FFmpeg (the lavfi `testsrc2` picture and a sine tone) in the
 *    client's storage: `demo/<content_id>/source.mp4`.
 * 3. Starts a callback receiver on 127.0.0.1 and submits `vodstream` with `rest_endpoints` pointing
 *    at it (clear + AES-128 variants, an MP4, a thumbnail).
 * 4. Shows each task's progress live: one bar per task (cli-progress) on a terminal, plain lines
 *    otherwise; task states come from `GET /jobs/<id>`, percentages from the `…: n%` lines the
 *    media handlers write to the job log (`GET /logs/<id>`).
 * 5. Prints the callbacks received, the files made and how to play the result.
 * Exits 0 on success; on failure throws a {@link CliError} carrying the reason (exit 1).
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { accessSync, constants as fsConstants } from 'node:fs';
import path from 'node:path';
import cliProgress from 'cli-progress';
import type { Command } from 'commander';
import { pino } from 'pino';
import { loadConfig } from '../../config/load-config.js';
import { readDataDirHolder } from '../../data-dir-lock.js';
import { createClient, revokeClient } from '../../engine/clients/clients.js';
import { isEngineError } from '../../errors/catalogue.js';
import { runFfmpeg } from '../../media/ffmpeg.js';
import { startTaskEngine, type RunningTaskEngine } from '../../server.js';
import { callApi, type ApiConnection } from '../http-client.js';
import { CliError, type CliIO } from '../io.js';

/** The client the embedded demo submits as. */
export const DEMO_MEDIA_CLIENT = 'demo-media';

/** Options of the `demo` command. */
export interface DemoOptions {
  url?: string;
  client?: string;
  apiKey?: string;
  /** Length of the test video, seconds (default 10). */
  seconds?: string;
  /** `WIDTHxHEIGHT` of the test video (default 640x360). */
  size?: string;
  /** Storage root of the engine (when it runs elsewhere on this machine). */
  storageRoot?: string;
  /** Give up after this many seconds (default 600). */
  timeout?: string;
  /** Force plain line output even on a terminal. */
  plain?: boolean;
}

/** What a demo run produced (returned for tests). */
export interface DemoResult {
  jobId: number;
  job: JobReply;
  callbacks: unknown[];
  /** Absolute folder of the outputs. */
  outputDir: string;
  /** Absolute path of the active master playlist. */
  manifest: string;
  files: string[];
}

interface TaskReply {
  id: number;
  name: string;
  queue: string;
  state: string;
  attempts: number;
  error: string | null;
}
interface JobReply {
  id: number;
  queue_state: string;
  failed: boolean;
  tasks?: TaskReply[];
}
interface LogReply {
  id: number;
  task_id: number;
  message: string;
  severity: number;
}

function defaultIO(): CliIO {
  return {
    env: process.env,
    out: (l) => process.stdout.write(`${l}\n`),
    err: (l) => process.stderr.write(`${l}\n`),
    onSignal(signals, fn) {
      for (const s of signals) process.on(s, fn);
      return () => {
        for (const s of signals) process.off(s, fn);
      };
    },
    exitNow: (code) => process.exit(code),
  };
}

/** Registers `demo` on the program. `io` defaults to the process's streams and environment. */
export function registerDemoCommand(program: Command, io: CliIO = defaultIO()): void {
  program
    .command('demo')
    .description(
      'make a test video, run the vodstream workflow on it with live progress, and show the result',
    )
    .option('--url <url>', 'use the engine at this URL instead of starting one (env TASK_ENGINE_URL)')
    .option('--client <name>', 'client name for --url (env TASK_ENGINE_CLIENT)')
    .option('--api-key <key>', 'API key for --url (env TASK_ENGINE_API_KEY)')
    .option('--seconds <n>', 'length of the test video in seconds', '10')
    .option('--size <WxH>', 'picture size of the test video', '640x360')
    .option('--storage-root <dir>', "the engine's storage root (env TASK_ENGINE_STORAGE_ROOT)")
    .option('--timeout <seconds>', 'give up after this long', '600')
    .option('--plain', 'plain line output even on a terminal')
    .action(async (opts: DemoOptions) => {
      await runDemo(io, opts);
    });
}

function parseSize(size: string): { width: number; height: number } {
  const m = /^(\d{2,4})x(\d{2,4})$/.exec(size);
  if (!m) throw new CliError(`--size ${JSON.stringify(size)} must be WIDTHxHEIGHT, e.g. 640x360`, 2);
  const width = Number(m[1]);
  const height = Number(m[2]);
  if (width % 2 || height % 2 || width < 32 || height < 32)
    throw new CliError('--size needs even numbers of at least 32, e.g. 640x360', 2);
  return { width, height };
}

/** A callback receiver on 127.0.0.1. */
async function startReceiver(): Promise<{ url: string; received: unknown[]; close(): Promise<void> }> {
  const received: unknown[] = [];
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      try {
        received.push(JSON.parse(Buffer.concat(chunks).toString('utf8')));
      } catch {
        received.push({ unparsed: Buffer.concat(chunks).toString('utf8') });
      }
      res.writeHead(200, { 'content-type': 'application/json' }).end('{"ok":true}');
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/callbacks`,
    received,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** Live task progress: bars on a terminal, lines elsewhere. */
interface ProgressView {
  update(task: TaskReply, percent: number | null): void;
  stop(): void;
}

function stateLabel(state: string): string {
  return state === 'succeeded' ? 'done' : state;
}

function barView(): ProgressView {
  const multi = new cliProgress.MultiBar(
    {
      format: ' {task} |{bar}| {percentage}% {state}',
      barCompleteChar: '\u2588',
      barIncompleteChar: '\u2591',
      hideCursor: true,
      clearOnComplete: false,
      stopOnComplete: false,
      autopadding: true,
    },
    cliProgress.Presets.shades_classic,
  );
  const bars = new Map<number, cliProgress.SingleBar>();
  return {
    update(task, percent) {
      let bar = bars.get(task.id);
      const payload = { task: task.name.padEnd(16), state: stateLabel(task.state) };
      if (!bar) {
        bar = multi.create(100, 0, payload);
        bars.set(task.id, bar);
      }
      const value = task.state === 'succeeded' || task.state === 'skipped' ? 100 : (percent ?? 0);
      bar.update(Math.round(value), payload);
    },
    stop: () => multi.stop(),
  };
}

function lineView(io: CliIO): ProgressView {
  const last = new Map<number, { state: string; step: number }>();
  return {
    update(task, percent) {
      const prev = last.get(task.id);
      const step = percent === null ? -1 : Math.floor(percent / 25);
      if (!prev || prev.state !== task.state) {
        io.out(
          `  ${task.name.padEnd(16)} ${stateLabel(task.state)}${percent !== null && task.state === 'running' ? ` ${Math.round(percent)}%` : ''}`,
        );
      } else if (task.state === 'running' && step > prev.step && percent !== null) {
        io.out(`  ${task.name.padEnd(16)} ${Math.round(percent)}%`);
      }
      last.set(task.id, { state: task.state, step });
    },
    stop: () => undefined,
  };
}

/** Starts the embedded engine with a fresh key for {@link DEMO_MEDIA_CLIENT}. */
async function startEmbedded(
  io: CliIO,
): Promise<{ running: RunningTaskEngine; conn: ApiConnection; storageRoot: string }> {
  const config = loadConfig({ ...io.env, TASK_ENGINE_PORT: '0', TASK_ENGINE_HOST: '127.0.0.1' });
  const logger = pino({ level: io.env.TASK_ENGINE_LOG_LEVEL ?? 'warn' }, pino.destination(2));
  io.out(`starting the embedded engine (data folder ${config.dataDir})…`);
  const running = await startTaskEngine(config, { logger, purpose: 'demo' });
  const db = running.engine.ctx.db;
  let created;
  try {
    created = await createClient(db, { name: DEMO_MEDIA_CLIENT });
  } catch (err) {
    if (!isEngineError(err, 'CONFLICT')) throw err;
    // The demo's own client from an earlier run: issue it a new key.
    await revokeClient(db, DEMO_MEDIA_CLIENT);
    created = await createClient(db, { name: DEMO_MEDIA_CLIENT });
  }
  return {
    running,
    conn: { url: running.url!, client: created.name, apiKey: created.api_key },
    storageRoot: config.storageRoot,
  };
}

/** Runs the demo. @throws CliError with the reason on failure. */
export async function runDemo(io: CliIO, opts: DemoOptions = {}): Promise<DemoResult> {
  const seconds = Number(opts.seconds ?? 10);
  if (!Number.isFinite(seconds) || seconds < 1 || seconds > 600)
    throw new CliError('--seconds must be a number from 1 to 600', 2);
  const { width, height } = parseSize(opts.size ?? '640x360');
  const timeoutMs = Number(opts.timeout ?? 600) * 1000;
  const client = opts.client ?? io.env.TASK_ENGINE_CLIENT;
  const apiKey = opts.apiKey ?? io.env.TASK_ENGINE_API_KEY;
  const baseConfig = loadConfig(io.env);
  let url = opts.url ?? io.env.TASK_ENGINE_URL;
  if (!url) {
    const holder = await readDataDirHolder(baseConfig.dataDir).catch(() => null);
    if (holder?.url) {
      if (!client || !apiKey)
        throw new CliError(
          `an engine is already running on ${baseConfig.dataDir} (${holder.url}); pass --client and --api-key to use it, or stop it`,
          2,
        );
      url = holder.url;
    }
  }

  let running: RunningTaskEngine | null = null;
  let conn: ApiConnection;
  let storageRoot: string;
  if (url) {
    if (!client || !apiKey)
      throw new CliError(
        '--url needs --client and --api-key (or TASK_ENGINE_CLIENT and TASK_ENGINE_API_KEY)',
        2,
      );
    conn = { url: url.replace(/\/+$/, ''), client, apiKey };
    storageRoot = path.resolve(opts.storageRoot ?? baseConfig.storageRoot);
    io.out(`using the engine at ${conn.url} as ${client} (storage ${storageRoot})`);
  } else {
    ({ running, conn, storageRoot } = await startEmbedded(io));
    io.out(`engine listening on ${conn.url}`);
  }

  const receiver = await startReceiver();
  let view: ProgressView | null = null;
  try {
    const stamp = new Date().toISOString().replace(/[-:]/g, '').replace(/\..*$/, '').replace('T', '-');
    const contentId = `demo-${stamp}`;
    const folder = `demo/${contentId}`;
    const clientRoot = path.join(storageRoot, conn.client);
    const source = path.join(clientRoot, folder, 'source.mp4');
    io.out(`making a ${seconds} s ${width}x${height} test video (picture and sound): ${source}`);
    await makeDemoVideo(source, seconds, width, height);

    const parameters = {
      content_id: contentId,
      source_folder: folder,
      output_folder: `${folder}/vod`,
      drm: ['clear', 'aes'],
      enable_drm: false,
      generate_mp4: true,
      thumbnail_time: Math.min(2, seconds / 2),
      segment_duration: 2,
      rest_endpoints: [receiver.url],
      custom_data: { from: 'task-engine demo' },
    };
    const submitted = await callApi<{ id: number }>(conn, 'POST', '/job', {
      job: { workflow: 'vodstream' },
      parameters,
    });
    const jobId = submitted.id;
    io.out(`submitted vodstream job ${jobId}; progress:`);

    const tty = !opts.plain && process.stdout.isTTY === true && io.env.CI !== 'true';
    view = tty ? barView() : lineView(io);
    const percentByTask = new Map<number, number>();
    let lastLogId = 0;
    const deadline = Date.now() + timeoutMs;
    let job: JobReply;
    for (;;) {
      job = await callApi<JobReply>(conn, 'GET', `/jobs/${jobId}`);
      const logs = await callApi<LogReply[]>(conn, 'GET', `/logs/${jobId}`);
      for (const l of logs) {
        if (l.id <= lastLogId) continue;
        lastLogId = l.id;
        const m = /: (\d{1,3})%$/.exec(l.message);
        if (m && l.task_id) percentByTask.set(l.task_id, Math.min(100, Number(m[1])));
      }
      for (const t of job.tasks ?? []) view.update(t, percentByTask.get(t.id) ?? null);
      if (['completed', 'broken'].includes(job.queue_state)) break;
      if (Date.now() > deadline)
        throw new CliError(`job ${jobId} did not finish within ${timeoutMs / 1000} s`);
      await new Promise((r) => setTimeout(r, 250));
    }
    view.stop();
    view = null;

    // The job-end callback is delivered on the callback queue, shortly after the job ends.
    const endDeadline = Date.now() + 15_000;
    const isJobEnd = (b: unknown): boolean => typeof b === 'object' && b !== null && 'status' in b;
    while (!receiver.received.some(isJobEnd) && Date.now() < endDeadline)
      await new Promise((r) => setTimeout(r, 100));

    io.out('');
    io.out(`callbacks received at ${receiver.url}:`);
    for (const b of receiver.received) {
      const c = b as Record<string, unknown>;
      if ('event' in c)
        io.out(
          `  task ${String(c.task_name).padEnd(16)} ${String(c.event)}${typeof c.message === 'string' && c.message ? `: ${c.message}` : ''}`,
        );
      else
        io.out(
          `  job  ${String(c.status)}: ${JSON.stringify({ message: c.message, files: c.files, metadata: c.metadata })}`,
        );
    }
    if (!receiver.received.some(isJobEnd)) io.out('  (the job-end callback has not arrived yet)');

    if (job.queue_state !== 'completed' || job.failed) {
      const failed = (job.tasks ?? []).filter((t) => t.state === 'failed');
      const reason =
        failed.map((t) => `task ${t.name}: ${t.error ?? 'failed'}`).join('; ') || job.queue_state;
      throw new CliError(`job ${jobId} failed: ${reason} (see: task-engine logs ${jobId})`);
    }
    const end = receiver.received.find(isJobEnd) as { message?: string; files?: string[] } | undefined;
    const outputDir = path.join(clientRoot, folder, 'vod');
    const manifest = path.join(outputDir, `${contentId}.m3u8`);
    const files = (end?.files ?? []).map((f) => path.join(clientRoot, f));
    io.out('');
    io.out(`files made in ${outputDir}:`);
    for (const f of files) io.out(`  ${path.relative(outputDir, f)}`);
    io.out('');
    io.out('play it:');
    if (onPath('ffplay', io.env.PATH)) {
      io.out(`  ffplay ${manifest}`);
      io.out(
        `  ffplay -allowed_extensions ALL ${path.join(outputDir, `${contentId}_aes.m3u8`)}   # the AES-128 variant`,
      );
    } else io.out(`  with ffplay (not installed here; e.g. apt-get install ffmpeg): ffplay ${manifest}`);
    io.out(`  or serve the folder and open it in any HLS player (Safari, VLC, hls.js):`);
    io.out(`  npx http-server ${outputDir} -p 8080 --cors   then   http://127.0.0.1:8080/${contentId}.m3u8`);
    io.out(`  the MP4: ${path.join(outputDir, `${contentId}.mp4`)}`);
    const admin = running?.bootstrap.demoClient;
    if (admin) {
      // The embedded engine was started for the first time by this demo: its admin key is shown only now.
      io.out('');
      io.out(`This first start also created the admin client "${admin.name}" for this data folder.`);
      io.out(`Its API key is shown only this once: ${admin.api_key}`);
      io.out(
        `Run the engine with \`npm start\` and send the headers  client: ${admin.name}  api-key: <that key>.`,
      );
    }
    return { jobId, job, callbacks: receiver.received, outputDir, manifest, files };
  } finally {
    view?.stop();
    await receiver.close();
    if (running) await running.stop();
  }
}

/** Makes the demo's test video: `testsrc2` picture with a timer and a 440 Hz tone, H.264/AAC. */
export async function makeDemoVideo(
  file: string,
  seconds: number,
  width: number,
  height: number,
): Promise<void> {
  const { mkdir } = await import('node:fs/promises');
  await mkdir(path.dirname(file), { recursive: true });
  await runFfmpeg([
    '-f',
    'lavfi',
    '-i',
    `testsrc2=size=${width}x${height}:rate=25:duration=${seconds}`,
    '-f',
    'lavfi',
    '-i',
    `sine=frequency=440:beep_factor=4:sample_rate=48000:duration=${seconds}`,
    '-c:v',
    'libx264',
    '-preset',
    'veryfast',
    '-pix_fmt',
    'yuv420p',
    '-c:a',
    'aac',
    '-b:a',
    '128k',
    '-shortest',
    '-movflags',
    '+faststart',
    file,
  ]);
}

/** Whether an executable named `name` is on `pathVar` (a PATH string). */
function onPath(name: string, pathVar: string | undefined): boolean {
  for (const dir of (pathVar ?? '').split(path.delimiter)) {
    if (!dir) continue;
    try {
      accessSync(path.join(dir, name), fsConstants.X_OK);
      return true;
    } catch {
      // not in this folder
    }
  }
  return false;
}
