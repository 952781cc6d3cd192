/**
 * Helpers for the media tests: tiny real test videos made with FFmpeg, ffprobe checks, and a
 * hand-built handler context for running one module handler directly.
 */
import assert from 'node:assert/strict';
import { createGuardedFetch } from '../../src/engine/egress/guarded-fetch.js';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import pino from 'pino';
import { runFfmpeg, runFfprobe } from '../../src/media/ffmpeg.js';
import { createStorageContext } from '../../src/storage/storage.js';
import type { HandlerContext, TaskHandler } from '../../src/workflows/types.js';

/** Options of {@link makeTestVideo}. */
export interface TestVideoOptions {
  seconds?: number;
  width?: number;
  height?: number;
  fps?: number;
  audio?: boolean;
}

/**
 * Writes an H.264/AAC MP4 of the lavfi `testsrc2` pattern with a sine tone (default 3 s, 320x180,
 * 25 fps, with audio) to `file`.
 */
export async function makeTestVideo(file: string, o: TestVideoOptions = {}): Promise<string> {
  const { seconds = 3, width = 320, height = 180, fps = 25, audio = true } = o;
  await mkdir(path.dirname(file), { recursive: true });
  await runFfmpeg([
    '-f',
    'lavfi',
    '-i',
    `testsrc2=size=${width}x${height}:rate=${fps}:duration=${seconds}`,
    ...(audio ? ['-f', 'lavfi', '-i', `sine=frequency=440:sample_rate=48000:duration=${seconds}`] : []),
    '-c:v',
    'libx264',
    '-preset',
    'ultrafast',
    '-pix_fmt',
    'yuv420p',
    ...(audio ? ['-c:a', 'aac', '-b:a', '64k'] : []),
    '-shortest',
    '-movflags',
    '+faststart',
    file,
  ]);
  return file;
}

/** A temporary storage root; `cleanup()` removes it. */
export async function tempStorageRoot(): Promise<{ root: string; cleanup(): Promise<void> }> {
  const root = await mkdtemp(path.join(os.tmpdir(), 'te-media-'));
  return { root, cleanup: () => rm(root, { recursive: true, force: true }) };
}

/** What a direct handler run recorded. */
export interface DirectRun {
  output: unknown;
  logs: string[];
  /** Every `ctx.progress` call, in order. */
  progress: { fraction: number; message?: string; detail?: Record<string, unknown> }[];
}

let nextId = 1000;

/**
 * Runs one module handler with a hand-built context (for tests of a handler on its own).
 * @param outputs earlier tasks' outputs by name (for `ctx.tasks`).
 */
export async function runHandlerDirect(
  handler: TaskHandler,
  opts: {
    storageRoot: string;
    client?: string;
    parameters: Record<string, unknown>;
    inputs?: Record<string, unknown>;
    jobId?: number;
    signal?: AbortSignal;
  },
): Promise<DirectRun> {
  const logs: string[] = [];
  const progress: DirectRun['progress'] = [];
  const workdir = await mkdtemp(path.join(os.tmpdir(), 'te-work-'));
  const id = nextId++;
  const ctx: HandlerContext = {
    parameters: opts.parameters,
    job: { id: opts.jobId ?? id, client: opts.client ?? 'media-test', workflow: 'test', priority: 5 },
    task: { id, name: 'test', queue: 'work' },
    attempt: { id, number: 1 },
    inputs: opts.inputs ?? {},
    log: (m) => logs.push(m),
    progress: (fraction, message, detail) => {
      progress.push({
        fraction,
        ...(message !== undefined ? { message } : {}),
        ...(detail ? { detail } : {}),
      });
    },
    signal: opts.signal ?? new AbortController().signal,
    workdir,
    storage: createStorageContext(opts.storageRoot, opts.client ?? 'media-test'),
    tasks: {},
    logger: pino({ level: 'silent' }),
    fetch: createGuardedFetch().fetch,
  };
  try {
    return { output: await handler(ctx), logs, progress };
  } finally {
    await rm(workdir, { recursive: true, force: true });
  }
}

/**
 * Checks every entry of an fMP4 I-frame playlist: its range starts with a `moof` box, and the
 * init segment followed by the range decodes (ffprobe) as exactly one frame, a key frame, at the
 * entry's time. Key frame times of the whole rendition come from ffprobe over the media playlist.
 * @returns the number of entries.
 */
export async function assertFmp4RangesDecode(dir: string, text: string, scratch: string): Promise<number> {
  const init = await readFile(path.join(dir, /#EXT-X-MAP:URI="([^"]+)"/.exec(text)![1]!));
  const entries = [...text.matchAll(/#EXTINF:([\d.]+),\n#EXT-X-BYTERANGE:(\d+)@(\d+)\n(\S+)/g)];
  assert.ok(entries.length > 0, 'entries');
  let t = 0;
  let first = 0;
  for (const [i, e] of entries.entries()) {
    const seg = await readFile(path.join(dir, e[4]!));
    const part = seg.subarray(Number(e[3]), Number(e[3]) + Number(e[2]));
    assert.equal(part.length, Number(e[2]), `range ${i} lies inside ${e[4]}`);
    assert.equal(part.toString('latin1', 4, 8), 'moof', `range ${i} starts with a moof box`);
    const cut = path.join(scratch, `fmp4_range_${i}.mp4`);
    await writeFile(cut, Buffer.concat([init, part]));
    const probed = JSON.parse(
      await runFfprobe([
        '-select_streams',
        'v:0',
        '-show_frames',
        '-show_entries',
        'frame=key_frame,pict_type,pts_time',
        '-of',
        'json',
        cut,
      ]),
    ) as { frames: { key_frame: number; pict_type: string; pts_time: string }[] };
    assert.equal(probed.frames.length, 1, `range ${i} decodes as one frame`);
    assert.equal(probed.frames[0]!.key_frame, 1, `range ${i} is a key frame`);
    assert.equal(probed.frames[0]!.pict_type, 'I');
    // The frame lies at the entry's time: the EXTINF durations before it, from the first entry.
    const pts = Number(probed.frames[0]!.pts_time);
    if (i === 0) first = pts;
    assert.ok(Math.abs(pts - first - t) < 0.002, `range ${i} at ${pts - first} s, playlist says ${t} s`);
    t += Number(e[1]);
  }
  return entries.length;
}
