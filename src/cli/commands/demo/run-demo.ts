/**
 * The demo run itself: make the video, submit `vodstream`, follow its progress, then print the
 * callbacks received, the files made and how to play them (see `index.ts` for the steps).
 */
import { accessSync, constants as fsConstants } from 'node:fs';
import path from 'node:path';
import { callApi, type ApiConnection } from '../../http-client.js';
import { CliError, type CliIO } from '../../io.js';
import { connectDemoEngine, type DemoEngine } from './connection.js';
import { barView, lineView, type ProgressView } from './progress-view.js';
import { startReceiver, type DemoReceiver } from './receiver.js';
import type { DemoOptions, DemoResult, JobReply } from './types.js';
import { makeDemoVideo, parseSize } from './video.js';

/** Runs the demo. @throws CliError with the reason on failure. */
export async function runDemo(io: CliIO, opts: DemoOptions = {}): Promise<DemoResult> {
  const seconds = Number(opts.seconds ?? 10);
  if (!Number.isFinite(seconds) || seconds < 1 || seconds > 600)
    throw new CliError('--seconds must be a number from 1 to 600', 2);
  const { width, height } = parseSize(opts.size ?? '640x360');
  const timeoutMs = Number(opts.timeout ?? 600) * 1000;
  const engine = await connectDemoEngine(io, opts);
  const { running, conn, storageRoot } = engine;

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
    const job = await followJob(conn, jobId, view, timeoutMs);
    view.stop();
    view = null;

    await printCallbacks(io, receiver);
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
    printResult(io, engine, { outputDir, manifest, contentId, files });
    return { jobId, job, callbacks: receiver.received, outputDir, manifest, files };
  } finally {
    view?.stop();
    await receiver.close();
    if (running) await running.stop();
  }
}

/**
 * Polls the job every 250 ms, showing each task's state and its `progress` (what the handlers
 * report through `ctx.progress`), until the job is completed or broken.
 * @returns the job as last read. @throws CliError when it has not finished by `timeoutMs`.
 */
async function followJob(
  conn: ApiConnection,
  jobId: number,
  view: ProgressView,
  timeoutMs: number,
): Promise<JobReply> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const job = await callApi<JobReply>(conn, 'GET', `/jobs/${jobId}`);
    for (const t of job.tasks ?? [])
      view.update(t, typeof t.progress === 'number' ? Math.min(100, t.progress * 100) : null);
    if (['completed', 'broken'].includes(job.queue_state)) return job;
    if (Date.now() > deadline) throw new CliError(`job ${jobId} did not finish within ${timeoutMs / 1000} s`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

/** Whether a callback body is the job-end callback (it has a `status`). */
function isJobEnd(b: unknown): boolean {
  return typeof b === 'object' && b !== null && 'status' in b;
}

/** Waits up to 15 s for the job-end callback, then prints every callback received. */
async function printCallbacks(io: CliIO, receiver: DemoReceiver): Promise<void> {
  // The job-end callback is delivered on the callback queue, shortly after the job ends.
  const endDeadline = Date.now() + 15_000;
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
}

/** Prints the files made, how to play them and, on a first embedded start, the admin key. */
function printResult(
  io: CliIO,
  engine: DemoEngine,
  made: { outputDir: string; manifest: string; contentId: string; files: string[] },
): void {
  const { outputDir, manifest, contentId, files } = made;
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
  const admin = engine.running?.bootstrap.demoClient;
  if (admin) {
    // The embedded engine was started for the first time by this demo: its admin key is shown only now.
    io.out('');
    io.out(`This first start also created the admin client "${admin.name}" for this data folder.`);
    io.out(`Its API key is shown only this once: ${admin.api_key}`);
    io.out(
      `Run the engine with \`npm start\` and send the headers  client: ${admin.name}  api-key: <that key>.`,
    );
  }
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
