/**
 * `npm run bench media`: a vodstream job end to end through the API of an embedded engine, against
 * the same FFmpeg commands run one after another from a shell script on the same input, in one run.
 * Reports the engine's overhead in percent (goal: under 5 %).
 *
 * The script runs the commands the job's tasks run (probe, thumbnail, one rendition, clear + AES
 * packaging, MP4) sequentially, for a 360-line input so the job encodes one rendition as the script
 * does; the job may run some of them in parallel, so the overhead can come
 * out negative on a multi-core machine. Set MEDIA_BENCH_SECONDS / MEDIA_BENCH_SIZE to change the input.
 */
import { execFileSync } from 'node:child_process';
import { mkdtemp, mkdir, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { pino } from 'pino';
import { locateFfmpeg, locateFfprobe } from '../src/media/ffmpeg.js';
import { startTaskEngine } from '../src/server.js';
import { makeDemoVideo } from '../src/cli/commands/demo/index.js';
import { testConfig } from '../test/helpers/engine.js';

const seconds = Number(process.env.MEDIA_BENCH_SECONDS ?? 30);
const [width, height] = (process.env.MEDIA_BENCH_SIZE ?? '640x360').split('x').map(Number) as [
  number,
  number,
];
const CLIENT = 'bench';
const KEY = 'bench-key-0123456789abcdef';

const tmp = await mkdtemp(path.join(os.tmpdir(), 'te-media-bench-'));
const config = testConfig({
  dataDir: tmp,
  storageRoot: path.join(tmp, 'storage'),
  roles: ['api', 'controller', 'worker'],
  adminClient: CLIENT,
  adminApiKey: KEY,
});
const clientRoot = path.join(config.storageRoot, CLIENT);
const source = path.join(clientRoot, 'in', 'source.mp4');
await makeDemoVideo(source, seconds, width, height);

// 1. The same commands from a shell script.
const ff = locateFfmpeg();
const fp = locateFfprobe();
const out = path.join(tmp, 'script-out');
await mkdir(path.join(out, 'clear'), { recursive: true });
await mkdir(path.join(out, 'aes'), { recursive: true });
await writeFile(path.join(out, 'aes', 'aes.key'), Buffer.alloc(16, 7));
await writeFile(path.join(out, 'aes', 'aes.keyinfo'), '../aes.key\naes.key\n');
const g = `-hide_banner -nostdin -nostats -loglevel error -y`;
const script = `#!/bin/sh
set -e
"${fp}" -v error -print_format json -show_format -show_streams -i "${source}" > /dev/null
"${ff}" ${g} -ss 1 -i "${source}" -frames:v 1 -q:v 2 "${out}/thumb.jpg"
"${ff}" ${g} -i "${source}" -map 0:v:0 -map 0:a:0 -vf scale=-2:${height} -c:v libx264 -preset veryfast -profile:v high -pix_fmt yuv420p -b:v 2800000 -maxrate 2996000 -bufsize 4200000 -force_key_frames "expr:gte(t,n_forced*4)" -sc_threshold 0 -c:a aac -b:a 128000 -ac 2 -ar 48000 -movflags +faststart "${out}/r.mp4"
"${ff}" ${g} -i "${out}/r.mp4" -map 0 -c copy -f hls -hls_time 4 -hls_playlist_type vod -hls_list_size 0 -hls_segment_filename "${out}/clear/segment_%05d.ts" "${out}/clear/index.m3u8"
cd "${out}/aes" && "${ff}" ${g} -i "${out}/r.mp4" -map 0 -c copy -f hls -hls_time 4 -hls_playlist_type vod -hls_list_size 0 -hls_segment_filename "${out}/aes/segment_%05d.ts" -hls_key_info_file "${out}/aes/aes.keyinfo" "${out}/aes/index.m3u8"
"${ff}" ${g} -i "${out}/r.mp4" -map 0 -c copy -movflags +faststart "${out}/out.mp4"
`;
const scriptFile = path.join(tmp, 'vodstream.sh');
await writeFile(scriptFile, script, { mode: 0o755 });
let t = Date.now();
execFileSync('/bin/sh', [scriptFile], { stdio: 'inherit' });
const scriptMs = Date.now() - t;

// 2. The job through the API (engine already started: start-up is not part of a job's time).
const running = await startTaskEngine(config, { logger: pino({ level: 'silent' }) });
/** A job as `GET /jobs/<id>` returns it, with the fields read here. */
interface JobReply {
  queue_state: string;
  failed: boolean;
  tasks: { name: string; state: string }[];
}
const api = async <T>(method: string, p: string, body?: unknown): Promise<T> => {
  const res = await fetch(`${running.url}${p}`, {
    method,
    headers: { client: CLIENT, 'api-key': KEY, ...(body ? { 'content-type': 'application/json' } : {}) },
    ...(body ? { body: JSON.stringify(body) } : {}),
  });
  return (await res.json()) as T;
};
t = Date.now();
const { id } = await api<{ id: number }>('POST', '/job', {
  job: { workflow: 'vodstream' },
  parameters: {
    content_id: 'bench',
    source_folder: 'in',
    output_folder: 'out',
    drm: ['clear', 'aes'],
    generate_mp4: true,
    thumbnail_time: 1,
    segment_duration: 4,
  },
});
let job: JobReply;
for (;;) {
  job = await api<JobReply>('GET', `/jobs/${id}`);
  if (['completed', 'broken'].includes(job.queue_state)) break;
  await new Promise((r) => setTimeout(r, 20));
}
const jobMs = Date.now() - t;
await running.stop();
await rm(tmp, { recursive: true, force: true });
if (job.failed) {
  console.error('the job failed:', JSON.stringify(job.tasks));
  process.exit(1);
}
const renditions = job.tasks.filter((x) => x.name.startsWith('rendition_') && x.state === 'succeeded').length;
const overhead = ((jobMs - scriptMs) / scriptMs) * 100;
console.log(`input: ${seconds} s ${width}x${height} H.264/AAC; renditions encoded by the job: ${renditions}`);
console.log(`shell script (same FFmpeg commands, one rendition): ${(scriptMs / 1000).toFixed(2)} s`);
console.log(`vodstream job through the API, submit to completed:  ${(jobMs / 1000).toFixed(2)} s`);
console.log(`engine overhead: ${overhead.toFixed(1)} % (goal < 5 %)`);
