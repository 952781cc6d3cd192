/**
 * The bundled media workflows end to end: jobs submitted through the real HTTP API of a real
 * engine (PGlite store), FFmpeg doing the work, outputs checked with ffprobe, callbacks received
 * on 127.0.0.1. PGlite only, on purpose: what is tested here is FFmpeg's work and the media
 * handlers, which never touch the store; the engine paths these jobs take (submit, claim, results,
 * callbacks) run on both stores in test/integration/, and a second pass would add minutes of
 * encoding and prove nothing more.
 */
import assert from 'node:assert/strict';
import { createDecipheriv } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdir, readFile, readdir, stat, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { pino } from 'pino';
import { runFfmpeg, runFfprobe } from '../../src/media/ffmpeg.js';
import { parsePlaylist } from '../../src/media/hls-playlist.js';
import { probeMedia } from '../../src/media/probe.js';
import { startTaskEngine, type RunningTaskEngine } from '../../src/server.js';
import {
  startCallbackReceiver,
  type CallbackBody,
  type CallbackReceiver,
  type ReceivedCallback,
} from '../helpers/callback-receiver.js';
import { testConfig, writeSettings } from '../helpers/engine.js';
import { trackRunning } from '../helpers/leak-guard.js';
import { createTestStore, type TestStore } from '../helpers/stores.js';
import { waitFor } from '../helpers/wait-for.js';
import { makeTestVideo } from './media-helpers.js';

const CLIENT = 'media-admin';
const KEY = 'media-admin-key-0123456789abcdef';
const SECONDS = 3;

interface TaskReply {
  id: number;
  name: string;
  queue: string;
  state: string;
  error: string | null;
}
/** The job callback (`status` present) or a task event callback, with the fields this file reads. */
interface MediaCallback extends CallbackBody {
  message: string;
  metadata: { duration: number; active?: string };
  files: string[];
}
interface JobReply {
  id: number;
  queue_state: string;
  failed: boolean;
  tasks: TaskReply[];
}

describe('media workflows through the API [pglite]', () => {
  let store: TestStore;
  let running: RunningTaskEngine;
  let untrackEngine: (() => void) | undefined;
  let receiver: CallbackReceiver;
  let clientRoot: string;
  let hls: { base: string; close(): Promise<void> };

  const api = async <T = unknown>(
    method: string,
    p: string,
    body?: unknown,
  ): Promise<{ status: number; body: T }> => {
    const res = await fetch(`${running.url}${p}`, {
      method,
      headers: {
        client: CLIENT,
        'api-key': KEY,
        ...(body === undefined ? {} : { 'content-type': 'application/json' }),
      },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
    return { status: res.status, body: (await res.json()) as T };
  };

  const submit = async (workflow: string, parameters: Record<string, unknown>): Promise<number> => {
    const r = await api<{ id: number }>('POST', '/job', {
      job: { workflow },
      parameters: { rest_endpoints: [receiver.url(`/cb/${workflow}`)], ...parameters },
    });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    return r.body.id;
  };

  const finish = async (id: number, timeoutMs = 90_000): Promise<JobReply> =>
    waitFor(
      async () => {
        const r = await api<JobReply>('GET', `/jobs/${id}`);
        return ['completed', 'broken'].includes(r.body.queue_state) ? r.body : null;
      },
      { timeoutMs, intervalMs: 100, what: `job ${id} to finish` },
    );

  const run = async (
    workflow: string,
    parameters: Record<string, unknown>,
  ): Promise<{ id: number; job: JobReply }> => {
    const id = await submit(workflow, parameters);
    const job = await finish(id);
    return { id, job };
  };

  const logsOf = async (id: number): Promise<string> =>
    ((await api('GET', `/logs/${id}?show_all=1`)).body as { message: string }[])
      .map((l) => l.message)
      .join('\n');

  const bodyOf = (r: ReceivedCallback): MediaCallback => r.body as MediaCallback;

  const jobEnd = async (id: number): Promise<MediaCallback> =>
    bodyOf((await receiver.waitForCount(1, (r) => r.body.job_id === id && 'status' in r.body, 15_000))[0]!);

  const abs = (rel: string): string => path.join(clientRoot, rel);

  const assertOk = async (id: number, job: JobReply): Promise<void> => {
    if (job.failed || job.queue_state !== 'completed')
      assert.fail(
        `job ${id} ${job.queue_state} failed=${job.failed}: ${JSON.stringify(job.tasks)}\n${await logsOf(id)}`,
      );
  };

  before(async () => {
    store = await createTestStore('pglite');
    await writeSettings(store.db, { max_jobs: 4, retry_delay: 1 });
    receiver = await startCallbackReceiver();
    const config = testConfig({
      roles: ['api', 'controller', 'worker'],
      adminClient: CLIENT,
      adminApiKey: KEY,
      workerConcurrency: 4,
    });
    running = await startTaskEngine(config, { db: store.db, logger: pino({ level: 'silent' }) });
    untrackEngine = trackRunning('engine', 'of startTaskEngine (API, controller, worker)', () =>
      running.stop(),
    );
    clientRoot = path.join(config.storageRoot, CLIENT);
    await makeTestVideo(abs('in/clip/source.mp4'), { seconds: SECONDS });
    await mkdir(abs('in/notvideo'), { recursive: true });
    await writeFile(abs('in/notvideo/readme.txt'), 'no video here');
    await mkdir(abs('in/fake'), { recursive: true });
    await writeFile(abs('in/fake/movie.mp4'), 'not really an mp4');
    hls = await startStaticServer(clientRoot);
  });

  after(async () => {
    await running?.stop();
    untrackEngine?.();
    await receiver?.close();
    await hls?.close();
    await store?.dispose();
  });

  it('vodstream makes clear + AES HLS, thumbnail and MP4 that ffprobe reads, and reports them in the callback', async () => {
    const { id, job } = await run('vodstream', {
      content_id: 'asset1',
      source_folder: 'in/clip',
      output_folder: 'out/asset1',
      drm: ['clear', 'aes'],
      generate_mp4: true,
      thumbnail_time: '00:00:01.000',
      segment_duration: 1,
    });
    await assertOk(id, job);
    // One task per step; the ladder has only the lowest rung for a 180-line source.
    const states = Object.fromEntries(job.tasks.map((t) => [t.name, t.state]));
    assert.deepEqual(states, {
      probe: 'succeeded',
      thumbnail: 'succeeded',
      rendition_1: 'succeeded',
      rendition_2: 'skipped',
      rendition_3: 'skipped',
      rendition_4: 'skipped',
      rendition_5: 'skipped',
      rendition_6: 'skipped',
      audio: 'succeeded',
      subtitles: 'skipped',
      package_clear: 'succeeded',
      package_aes: 'succeeded',
      package_cenc: 'skipped',
      mp4: 'succeeded',
      trickplay: 'skipped',
      finalize: 'succeeded',
      remove_staging: 'skipped', // cleanup after a failure only
    });

    const out = abs('out/asset1');
    // The active master is the AES one (enable_drm defaults to true).
    assert.deepEqual(
      await readFile(path.join(out, 'asset1.m3u8')),
      await readFile(path.join(out, 'asset1_aes.m3u8')),
    );

    // The video rendition carries video; the audio is the master's audio-only rendition group.
    const clear = await probeMedia(path.join(out, 'asset1_nodrm/180p/index.m3u8'));
    assert.deepEqual(
      clear.streams.map((s) => s.kind),
      ['video'],
    );
    const played = await probeMedia(path.join(out, 'asset1_nodrm.m3u8'));
    assert.deepEqual(played.streams.map((s) => s.kind).sort(), ['audio', 'video']);
    assert.ok(Math.abs(clear.durationSeconds - SECONDS) <= 0.2, `clear duration ${clear.durationSeconds}`);
    assert.equal(clear.video?.height, 180);
    const media = parsePlaylist(await readFile(path.join(out, 'asset1_nodrm/180p/index.m3u8'), 'utf8'));
    assert.equal(media.kind === 'media' && media.segments.length, SECONDS);
    assert.equal(
      (await readdir(path.join(out, 'asset1_nodrm/180p'))).filter((f) => f.endsWith('.ts')).length,
      SECONDS,
    );

    const thumb = await probeMedia(path.join(out, 'asset1.jpg'));
    assert.deepEqual([thumb.video?.width, thumb.video?.height], [320, 180]);
    const mp4 = await probeMedia(path.join(out, 'asset1.mp4'));
    assert.deepEqual(mp4.streams.map((s) => s.kind).sort(), ['audio', 'video']);
    assert.ok(Math.abs(mp4.durationSeconds - SECONDS) <= 0.2, `mp4 duration ${mp4.durationSeconds}`);

    // AES-128: a segment is not MPEG-TS without the key, and is after decrypting with it.
    const segment = await readFile(path.join(out, 'asset1_aes/180p/segment_00000.ts'));
    // Plain MPEG-TS has the sync byte 0x47 at the start of every 188-byte packet; ciphertext has it
    // there only by chance (1 in 256 each), so the first eight packets all matching is not chance.
    const packetStarts = Array.from({ length: 8 }, (_, i) => segment[i * 188]);
    assert.ok(
      packetStarts.some((b) => b !== 0x47),
      'an encrypted segment must not carry the TS sync byte at every packet start',
    );
    // ffprobe finds no H.264 in it. (It usually refuses the bytes outright, but random bytes are
    // now and then taken for a text or audio format, about 1 key in 40 for a small segment.)
    const probedEncrypted = await probeMedia(path.join(out, 'asset1_aes/180p/segment_00000.ts')).catch(
      () => null,
    );
    assert.notEqual(probedEncrypted?.video?.codec, 'h264', 'an encrypted segment does not probe as H.264');
    const key = await readFile(path.join(out, 'asset1_aes/aes.key'));
    assert.equal(key.length, 16);
    const iv = Buffer.alloc(16); // media sequence 0 is the IV (no IV attribute in the playlist)
    const d = createDecipheriv('aes-128-cbc', key, iv);
    const plain = Buffer.concat([d.update(segment), d.final()]);
    assert.deepEqual(
      Array.from({ length: 8 }, (_, i) => plain[i * 188]),
      Array(8).fill(0x47),
    );
    const decrypted = path.join(out, 'decrypted.ts');
    await writeFile(decrypted, plain);
    assert.equal((await probeMedia(decrypted)).video?.codec, 'h264');
    // FFmpeg itself plays the AES variant through its key.
    const aes = await probeMedia(path.join(out, 'asset1_aes/180p/index.m3u8'), {
      inputArgs: ['-allowed_extensions', 'ALL'],
    });
    assert.ok(Math.abs(aes.durationSeconds - SECONDS) <= 0.2);

    const end = await jobEnd(id);
    assert.equal(end.status, 'completed');
    assert.equal(end.message, 'out/asset1/asset1.m3u8');
    assert.ok(Math.abs(end.metadata.duration - SECONDS) <= 0.2, `metadata.duration ${end.metadata.duration}`);
    assert.deepEqual([...end.files].sort(), [
      'out/asset1/asset1.jpg',
      'out/asset1/asset1.m3u8',
      'out/asset1/asset1.mp4',
      'out/asset1/asset1_aes.m3u8',
      'out/asset1/asset1_aes/180p/index.m3u8',
      'out/asset1/asset1_aes/audio/index.m3u8',
      'out/asset1/asset1_nodrm.m3u8',
      'out/asset1/asset1_nodrm/180p/index.m3u8',
      'out/asset1/asset1_nodrm/audio/index.m3u8',
    ]);
    for (const f of end.files) assert.ok((await stat(abs(f))).size > 0, f);
    // Staging is gone; task progress lines were written.
    assert.ok(!(await readdir(out)).some((f) => f.startsWith('.staging')));
    assert.match(await logsOf(id), /rendition 180p: 100%/);
  });

  it('vodstream with trickplay: true adds I-frame playlists to the clear master and thumbnails, listed in the callback', async () => {
    const { id, job } = await run('vodstream', {
      content_id: 'trick',
      source_folder: 'in/clip',
      output_folder: 'out/trick',
      create_thumbnail: false,
      segment_duration: 1,
      trickplay: true,
      trickplay_thumbnail_interval: 1,
      trickplay_thumbnail_size: 80,
    });
    await assertOk(id, job);
    assert.equal(job.tasks.find((t) => t.name === 'trickplay')?.state, 'succeeded');
    const out = abs('out/trick');
    const master = await readFile(path.join(out, 'trick.m3u8'), 'utf8');
    assert.match(master, /#EXT-X-I-FRAME-STREAM-INF:.*URI="trick_nodrm\/180p\/iframes.m3u8"/);
    const iframes = await readFile(path.join(out, 'trick_nodrm/180p/iframes.m3u8'), 'utf8');
    assert.equal([...iframes.matchAll(/#EXT-X-BYTERANGE:/g)].length, SECONDS); // one key frame per 1 s segment
    const vtt = await readFile(path.join(out, 'trick_trickplay.vtt'), 'utf8');
    assert.equal([...vtt.matchAll(/#xywh=/g)].length, SECONDS);
    const end = await jobEnd(id);
    for (const f of [
      'out/trick/trick_nodrm/180p/iframes.m3u8',
      'out/trick/trick_trickplay.vtt',
      'out/trick/trick_trickplay/sheet_00001.jpg',
    ])
      assert.ok(end.files.includes(f), `${f} in ${JSON.stringify(end.files)}`);
  });

  it('vodremix smart cut: re-encodes only up to the first key frame and from the last one, copies the middle bit for bit', async () => {
    // 6 s, 320x180, 25 fps, a key frame every second (frames 0, 25, 50 ...), with B-frames.
    const src = abs('in/smart/source.mp4');
    await mkdir(path.dirname(src), { recursive: true });
    await runFfmpeg([
      ...['-f', 'lavfi', '-i', 'testsrc2=size=320x180:rate=25:duration=6'],
      ...['-f', 'lavfi', '-i', 'sine=frequency=440:sample_rate=48000:duration=6'],
      ...['-c:v', 'libx264', '-preset', 'veryfast', '-g', '25', '-keyint_min', '25', '-sc_threshold', '0'],
      ...['-pix_fmt', 'yuv420p', '-c:a', 'aac', '-b:a', '64k', '-shortest', src],
    ]);
    const { id, job } = await run('vodremix', {
      output_folder: 'out/smart',
      clips: [
        // Frames 13 to 81: 12 re-encoded (13-24), 50 copied (25-74), 7 re-encoded (75-81).
        { source: 'in/smart/source.mp4', start: '00:00:00.520', end: 3.28, frame_accurate: true },
        // On key frames: 100 to 124, all copied.
        { source: 'in/smart/source.mp4', start: 4, end: '0:05' },
      ],
    });
    await assertOk(id, job);
    const out = abs('out/smart/remix.mp4');
    const info = await probeMedia(out, { countFrames: true });
    assert.equal(info.video?.frames, 69 + 25);
    // Within one frame (0.04 s) of the clips' sum: 2.76 s + 1 s.
    assert.ok(Math.abs(info.durationSeconds - 3.76) <= 0.04, `duration ${info.durationSeconds}`);
    assert.ok(info.audio, 'the remix has audio');
    assert.ok(
      Math.abs((info.audio.durationSeconds ?? 0) - 3.76) <= 0.04,
      `audio ${info.audio.durationSeconds}`,
    );
    const frameBytes = 320 * 180;
    const decode = async (file: string): Promise<Buffer[]> => {
      const raw = `${file}.gray`;
      await runFfmpeg(['-i', file, '-map', '0:v:0', '-f', 'rawvideo', '-pix_fmt', 'gray', raw]);
      const b = await readFile(raw);
      return Array.from({ length: b.length / frameBytes }, (_, i) =>
        b.subarray(i * frameBytes, (i + 1) * frameBytes),
      );
    };
    const [o, s] = [await decode(out), await decode(src)];
    const psnr = (a: Buffer, b: Buffer): number => {
      let se = 0;
      for (let i = 0; i < a.length; i++) se += (a[i]! - b[i]!) ** 2;
      return se === 0 ? Infinity : 10 * Math.log10((255 * 255) / (se / a.length));
    };
    // The first frame is the source's frame at 0.52 s (13), not its neighbours.
    const first = psnr(o[0]!, s[13]!);
    assert.ok(first > 35, `first frame PSNR ${first}`);
    assert.ok(first > psnr(o[0]!, s[12]!) + 10 && first > psnr(o[0]!, s[14]!) + 10);
    // The copied frames decode to exactly the source's frames (a re-encode never would) ...
    for (let i = 0; i < 50; i++)
      assert.ok(o[12 + i]!.equals(s[25 + i]!), `frame ${12 + i} is source frame ${25 + i}`);
    for (let i = 0; i < 25; i++)
      assert.ok(o[69 + i]!.equals(s[100 + i]!), `frame ${69 + i} is source frame ${100 + i}`);
    // ... and the re-encoded ones are close to theirs but not the same bits.
    for (const [oi, si] of [
      [0, 13],
      [11, 24],
      [62, 75],
      [68, 81],
    ] as const) {
      assert.ok(!o[oi]!.equals(s[si]!), `frame ${oi} was re-encoded`);
      assert.ok(psnr(o[oi]!, s[si]!) > 35, `frame ${oi} PSNR ${psnr(o[oi]!, s[si]!)}`);
    }
    assert.match(await logsOf(id), /smart cut of 2 clip\(s\): 3\.760 s, 75 frame\(s\) copied, 19 re-encoded/);
  });

  it('vodremix joins a frame-accurate clip and a key-frame clip of another size into an MP4 and HLS, output and metadata.duration in the callback', async () => {
    await makeTestVideo(abs('in/remix/small.mp4'), { seconds: SECONDS, width: 256, height: 144 });
    const { id, job } = await run('vodremix', {
      output_folder: 'out/remix',
      segment_duration: 1,
      clips: [
        { source: 'in/clip/source.mp4', start: '00:00:00.500', end: 1.5, frame_accurate: true },
        // Not frame-accurate: its only key frame is at 0, so it runs from 0 to the end (3 s).
        { source: 'in/remix/small.mp4', start: 1, end: 2 },
      ],
    });
    await assertOk(id, job);
    // Sources of two sizes cannot be joined by stream copy: every clip is re-encoded.
    assert.match(await logsOf(id), /whole re-encode \(no smart cut\): in\/remix\/small\.mp4 differs/);
    const mp4 = await probeMedia(abs('out/remix/remix.mp4'), { countFrames: true });
    assert.deepEqual([mp4.video?.width, mp4.video?.height], [320, 180]);
    assert.equal(mp4.video?.frames, 25 + 75); // 1 s + 3 s at 25 fps
    assert.ok(Math.abs(mp4.durationSeconds - 4) <= 0.05, `remix duration ${mp4.durationSeconds}`);
    const hlsOut = await probeMedia(abs('out/remix/remix_nodrm/180p/index.m3u8'));
    assert.ok(Math.abs(hlsOut.durationSeconds - 4) <= 0.1, `hls duration ${hlsOut.durationSeconds}`);
    const end = (await jobEnd(id)) as MediaCallback & { output: string[] };
    assert.ok(Math.abs(end.metadata.duration - 4) <= 0.04);
    assert.deepEqual([...end.output].sort(), [
      'out/remix/remix.m3u8',
      'out/remix/remix.mp4',
      'out/remix/remix_nodrm.m3u8',
      'out/remix/remix_nodrm/180p/index.m3u8',
    ]);
    // end before start is a 400 at submission (see "bad inputs"); an end past the source's end is
    // found by the handler, which reads the source.
    const bad = await run('vodremix', {
      output_folder: 'out/bad',
      clips: [{ source: 'in/clip/source.mp4', start: 2, end: 60 }],
    });
    assert.equal(bad.job.failed, true);
    assert.match(
      await logsOf(bad.id),
      /clips\[0\]\.end 0:01:00\.000 is past the end of in\/clip\/source\.mp4/,
    );
    const missing = await run('vodremix', { output_folder: 'out/bad', clips: [{ source: 'in/nope.mp4' }] });
    assert.equal(missing.job.failed, true);
    assert.match(await logsOf(missing.id), /does not exist/);
  });

  it('drmswitch flips the active manifest to clear and back to AES', async () => {
    const folder = abs('out/asset1');
    const first = await run('drmswitch', { content_id: 'asset1', folder: 'out/asset1' });
    await assertOk(first.id, first.job);
    assert.deepEqual(
      first.job.tasks.map((t) => t.name),
      ['get_filenames', 'prepare_switch', 'rename_manifests'],
    );
    assert.deepEqual(
      await readFile(path.join(folder, 'asset1.m3u8')),
      await readFile(path.join(folder, 'asset1_nodrm.m3u8')),
    );
    const end = await jobEnd(first.id);
    assert.equal(end.message, 'out/asset1/asset1.m3u8');
    assert.equal(end.metadata.active, 'clear');
    const second = await run('drmswitch', { content_id: 'asset1', folder: 'out/asset1' });
    await assertOk(second.id, second.job);
    assert.deepEqual(
      await readFile(path.join(folder, 'asset1.m3u8')),
      await readFile(path.join(folder, 'asset1_aes.m3u8')),
    );
  });

  it('drmswitch builds the missing AES variant of a clear-only asset, and refuses without drm: ["aes"]', async () => {
    const made = await run('vodstream', {
      content_id: 'plain',
      source_folder: 'in/clip',
      output_folder: 'out/plain',
      create_thumbnail: false,
      segment_duration: 1,
    });
    await assertOk(made.id, made.job);
    assert.ok(!(await exists(abs('out/plain/plain_aes.m3u8'))));
    const refused = await run('drmswitch', { content_id: 'plain', folder: 'out/plain' });
    assert.equal(refused.job.failed, true);
    assert.match(await logsOf(refused.id), /give drm: \["aes"\]/);
    const built = await run('drmswitch', { content_id: 'plain', folder: 'out/plain', drm: ['aes'] });
    await assertOk(built.id, built.job);
    const folder = abs('out/plain');
    assert.deepEqual(
      await readFile(path.join(folder, 'plain.m3u8')),
      await readFile(path.join(folder, 'plain_aes.m3u8')),
    );
    const aes = await probeMedia(path.join(folder, 'plain_aes/180p/index.m3u8'), {
      inputArgs: ['-allowed_extensions', 'ALL'],
    });
    assert.ok(Math.abs(aes.durationSeconds - SECONDS) <= 0.2);
    assert.notEqual((await readFile(path.join(folder, 'plain_aes/180p/segment_00000.ts')))[0], 0x47);
  });

  it('createmp4 remuxes an HLS VOD folder (its AES active variant) into an MP4', async () => {
    const { id, job } = await run('createmp4', {
      source_folder: 'out/asset1',
      content_id: 'asset1',
      mp4_filename: 'again.mp4',
    });
    await assertOk(id, job);
    const mp4 = await probeMedia(abs('out/asset1/again.mp4'));
    assert.deepEqual(mp4.streams.map((s) => s.kind).sort(), ['audio', 'video']);
    assert.ok(Math.abs(mp4.durationSeconds - SECONDS) <= 0.2, `duration ${mp4.durationSeconds}`);
    assert.deepEqual((await jobEnd(id)).files, ['out/asset1/again.mp4']);
  });

  it('capture_frame, generate_gif and build_thumbnails make images of the right size and count', async () => {
    const frame = await run('capture_frame', {
      source: 'in/clip/source.mp4',
      frame_time: 1.5,
      output_folder: 'out/images',
      image_filename: 'frame.png',
    });
    await assertOk(frame.id, frame.job);
    const png = await probeMedia(abs('out/images/frame.png'));
    assert.deepEqual([png.video?.codec, png.video?.width, png.video?.height], ['png', 320, 180]);

    const gif = await run('generate_gif', {
      source: 'in/clip/source.mp4',
      start_at: '0:00.5',
      duration: 2,
      fps: 10,
      height: 90,
      output_folder: 'out/images',
      gif_filename: 'clip.gif',
    });
    await assertOk(gif.id, gif.job);
    const g = await probeMedia(abs('out/images/clip.gif'), { countFrames: true });
    assert.equal(g.video?.codec, 'gif');
    assert.deepEqual([g.video?.width, g.video?.height], [160, 90]);
    assert.ok(Math.abs((g.video?.frames ?? 0) - 20) <= 1, `frames ${g.video?.frames}`);

    const fast = await run('generate_gif', {
      source: 'in/clip/source.mp4',
      start_at: 0,
      duration: 2,
      fps: 10,
      width: 100,
      playback_speed: 2,
      reverse: true,
      output_folder: 'out/images',
      gif_filename: 'fast.gif',
    });
    await assertOk(fast.id, fast.job);
    const f = await probeMedia(abs('out/images/fast.gif'), { countFrames: true });
    assert.equal(f.video?.width, 100);
    assert.ok(Math.abs((f.video?.frames ?? 0) - 10) <= 1, `frames at 2x ${f.video?.frames}`);

    const thumbs = await run('build_thumbnails', {
      source: 'in/clip/source.mp4',
      content_id: 'clip',
      preview_thumbnails_interval: 1,
      thumbnail_width: 80,
    });
    await assertOk(thumbs.id, thumbs.job);
    // Default output_folder and filename_prefix come from content_id.
    const sprite = await probeMedia(abs('clip/clip.jpg'));
    assert.deepEqual([sprite.video?.width, sprite.video?.height], [3 * 80, 46]);
    const vtt = await readFile(abs('clip/clip.vtt'), 'utf8');
    assert.match(vtt, /^WEBVTT\n/);
    const cues = [...vtt.matchAll(/^(\S+) --> (\S+)\n(\S+)$/gm)];
    assert.deepEqual(
      cues.map((c) => [c[1], c[2], c[3]]),
      [
        ['00:00:00.000', '00:00:01.000', 'clip.jpg#xywh=0,0,80,46'],
        ['00:00:01.000', '00:00:02.000', 'clip.jpg#xywh=80,0,80,46'],
        ['00:00:02.000', '00:00:03.000', 'clip.jpg#xywh=160,0,80,46'],
      ],
    );
  });

  it('vodcapture joins a storage clip and HLS clips (offset and UTC against EXT-X-PROGRAM-DATE-TIME) on the capture queue', async () => {
    const { id, job } = await run('vodcapture', {
      content_id: 'cap',
      output_folder: 'out/cap',
      generate_mp4: true,
      segment_duration: 1,
      clips: [
        { source: 'in/clip/source.mp4', start: '00:00:00.500', end: 1.5 },
        { source: `${hls.base}/out/asset1/asset1_nodrm.m3u8`, start: 1, end: '00:00:02' },
        // The PDT route stamps the stream as starting at 2024-05-01T10:00:00Z.
        // A rendition playlist of the asset, which is video only: its audio is found through the
        // asset's master beside the variant folder.
        {
          source: `${hls.base}/pdt/out/asset1/asset1_nodrm/180p/index.m3u8`,
          start: '2024-05-01T10:00:01.000Z',
          end: '2024-05-01T10:00:02.000Z',
        },
        // The AES master in the storage: its variant and its (encrypted) audio group.
        { source: 'out/asset1/asset1_aes.m3u8', start: 0, end: 1 },
      ],
    });
    await assertOk(id, job);
    assert.equal(job.tasks.find((t) => t.name === 'capture')?.queue, 'capture');
    // The asset's renditions are video only, yet every clip came with its audio.
    assert.deepEqual(
      (await probeMedia(abs('out/asset1/asset1_nodrm/180p/index.m3u8'))).streams.map((s) => s.kind),
      ['video'],
    );
    const logs = await logsOf(id);
    assert.equal(logs.match(/\(audio from its audio rendition group\)/g)?.length, 3, logs);
    const mp4 = await probeMedia(abs('out/cap/cap.mp4'));
    assert.deepEqual(mp4.streams.map((s) => s.kind).sort(), ['audio', 'video']);
    assert.ok(Math.abs(mp4.durationSeconds - 4) <= 0.2, `mp4 duration ${mp4.durationSeconds}`);
    await assertAudioLasts(abs('out/cap/cap.mp4'), 4);
    const vod = await probeMedia(abs('out/cap/cap_nodrm.m3u8'));
    assert.ok(Math.abs(vod.durationSeconds - 4) <= 0.2, `capture duration ${vod.durationSeconds}`);
    assert.deepEqual(vod.streams.map((s) => s.kind).sort(), ['audio', 'video']);
    const end = await jobEnd(id);
    assert.equal(end.message, 'out/cap/cap.m3u8');
    assert.ok(Math.abs(end.metadata.duration - 4) <= 0.01);
  });

  it('an asset made before the audio group (TS renditions carrying their audio) still works for vodcapture and createmp4', async () => {
    // The old shape, as vodstream wrote it: the audio muxed into the rendition, no EXT-X-MEDIA.
    const dir = abs('out/old/old_nodrm/180p');
    await mkdir(dir, { recursive: true });
    await runFfmpeg([
      '-i',
      abs('in/clip/source.mp4'),
      '-c',
      'copy',
      '-f',
      'hls',
      '-hls_time',
      '1',
      '-hls_playlist_type',
      'vod',
      '-hls_segment_filename',
      path.join(dir, 'segment_%05d.ts'),
      path.join(dir, 'index.m3u8'),
    ]);
    const master =
      '#EXTM3U\n#EXT-X-VERSION:3\n# task-engine-variant: clear\n#EXT-X-INDEPENDENT-SEGMENTS\n' +
      '#EXT-X-STREAM-INF:BANDWIDTH=400000,RESOLUTION=320x180,CODECS="avc1.64000d,mp4a.40.2"\nold_nodrm/180p/index.m3u8\n';
    await writeFile(abs('out/old/old_nodrm.m3u8'), master);
    await writeFile(abs('out/old/old.m3u8'), master);
    const { id, job } = await run('vodcapture', {
      content_id: 'capold',
      output_folder: 'out/capold',
      generate_mp4: true,
      generate_vod: false,
      clips: [
        { source: 'out/old/old_nodrm.m3u8', start: 0, end: 1 },
        { source: `${hls.base}/out/old/old_nodrm/180p/index.m3u8`, start: 1, end: 2 },
      ],
    });
    await assertOk(id, job);
    assert.doesNotMatch(await logsOf(id), /audio rendition group/);
    const mp4 = await probeMedia(abs('out/capold/capold.mp4'));
    assert.deepEqual(mp4.streams.map((s) => s.kind).sort(), ['audio', 'video']);
    assert.ok(Math.abs(mp4.durationSeconds - 2) <= 0.2, `mp4 duration ${mp4.durationSeconds}`);
    await assertAudioLasts(abs('out/capold/capold.mp4'), 2);
    const remux = await run('createmp4', {
      source_folder: 'out/old',
      content_id: 'old',
      mp4_filename: 'old.mp4',
    });
    await assertOk(remux.id, remux.job);
    assert.deepEqual((await probeMedia(abs('out/old/old.mp4'))).streams.map((s) => s.kind).sort(), [
      'audio',
      'video',
    ]);
  });

  it('asset_delete deletes files and reports missing ones; voddelete deletes an asset then a folder', async () => {
    const del = await run('asset_delete', { files: ['out/images/frame.png', 'out/images/nope.png'] });
    await assertOk(del.id, del.job);
    assert.ok(!(await exists(abs('out/images/frame.png'))));
    assert.deepEqual((await jobEnd(del.id)).files, ['out/images/frame.png']);

    const one = await run('voddelete', { folder: 'out/plain', content_id: 'plain' });
    await assertOk(one.id, one.job);
    assert.ok(!(await exists(abs('out/plain'))), 'emptied folder removed');
    assert.equal((await jobEnd(one.id)).message, 'out/plain');

    const all = await run('voddelete', { folder: 'out/cap' });
    await assertOk(all.id, all.job);
    assert.ok(!(await exists(abs('out/cap'))));
  });

  it('bad inputs: escaping paths and unsupported DRM are a 400 at submission, naming what is accepted', async () => {
    for (const [workflow, parameters, pattern] of [
      ['vodstream', { content_id: 'x', source_folder: '../other-client' }, /source_folder/],
      ['vodstream', { content_id: 'x', source_folder: '/etc' }, /source_folder/],
      [
        'vodstream',
        { content_id: 'x', source_folder: 'in/clip', drm: ['widevine'] },
        /drm\[0\] must be one of: "clear", "aes"/,
      ],
      ['asset_delete', { files: ['a/../../b'] }, /files\[0\]/],
      ['trickplay', { content_id: 'x' }, /source_folder is required/],
      ['vodremix', { output_folder: 'o' }, /clips is required/],
      ['vodremix', { output_folder: 'o', clips: [{ source: 'a.mp4', start: 'soon' }] }, /clips\[0\]\.start/],
      // Minutes and seconds of 60 or more are refused at submission, as the handler would refuse them.
      [
        'vodremix',
        { output_folder: 'o', clips: [{ source: 'a.mp4', start: '00:75:00' }] },
        /clips\[0\]\.start/,
      ],
      ['vodremix', { output_folder: 'o', clips: [{ source: 'a.mp4', end: '1:00:60.5' }] }, /clips\[0\]\.end/],
      // end not after start, in seconds or hh:mm:ss.fff (or mixed), names the clip.
      [
        'vodremix',
        { output_folder: 'o', clips: [{ source: 'a.mp4', start: 2, end: 1 }] },
        /parameters\.clips\[0\]: end 1 must be after start 2/,
      ],
      [
        'vodremix',
        {
          output_folder: 'o',
          clips: [{ source: 'a.mp4' }, { source: 'a.mp4', start: '00:00:02.000', end: '00:00:01.500' }],
        },
        /parameters\.clips\[1\]: end "00:00:01.500" must be after start "00:00:02.000"/,
      ],
      [
        'vodremix',
        { output_folder: 'o', clips: [{ source: 'a.mp4', start: '0:01', end: 1 }] },
        /clips\[0\]: end 1/,
      ],
      ['vodremix', { output_folder: 'o', clips: [{ source: 'http://x/a.m3u8' }] }, /clips\[0\]\.source/],
      ['vodremix', { output_folder: 'o', output_file: 'a.mov', clips: [{ source: 'a.mp4' }] }, /output_file/],
      [
        'trickplay',
        { content_id: 'x', source_folder: 'o', trickplay_thumbnail_quality: 101 },
        /trickplay_thumbnail_quality/,
      ],
      [
        'trickplay',
        { content_id: 'x', source_folder: 'o', trickplay_thumbnail_interval: 0 },
        /trickplay_thumbnail_interval/,
      ],
      [
        'vodstream',
        { content_id: 'x', source_folder: 'in/clip', trickplay_thumbnail_size: -1 },
        /trickplay_thumbnail_size/,
      ],
      [
        'vodcapture',
        { content_id: 'x', output_folder: 'o', clips: [{ source: '/abs.mp4' }] },
        /clips\[0\]\.source/,
      ],
    ] as const) {
      const r = await api<{ error: string }>('POST', '/job', { job: { workflow }, parameters });
      assert.equal(r.status, 400, `${workflow} ${JSON.stringify(parameters)}: ${JSON.stringify(r.body)}`);
      assert.match(r.body.error, pattern);
    }
  });

  it('vodcapture clips: an end not after its start is a 400 naming the clip; a valid clip is accepted and captured', async () => {
    for (const [clips, pattern] of [
      [
        [{ source: 'in/clip/source.mp4', start: 2, end: 1 }],
        /parameters\.clips\[0\]: end 1 must be after start 2/,
      ],
      [
        [{ source: 'in/clip/source.mp4', start: 1.5, end: 1.5 }],
        /parameters\.clips\[0\]: end 1\.5 must be after start 1\.5/,
      ],
      [
        [
          { source: 'in/clip/source.mp4', end: 1 },
          { source: 'https://example.com/live.m3u8', start: '00:00:02.000', end: '00:00:01.500' },
        ],
        /parameters\.clips\[1\]: end "00:00:01\.500" must be after start "00:00:02\.000"/,
      ],
      [
        [{ source: 'in/clip/source.mp4', start: '0:02', end: 1 }],
        /parameters\.clips\[0\]: end 1 must be after start "0:02"/,
      ],
    ] as const) {
      const parameters = { content_id: 'order', output_folder: 'out/order', clips };
      const r = await api<{ error: string }>('POST', '/job', { job: { workflow: 'vodcapture' }, parameters });
      assert.equal(r.status, 400, `${JSON.stringify(clips)}: ${JSON.stringify(r.body)}`);
      assert.match(r.body.error, pattern);
    }
    // In order (mixed notations): accepted, and the capture lasts end - start.
    const { id, job } = await run('vodcapture', {
      content_id: 'order',
      output_folder: 'out/order',
      generate_vod: false,
      generate_mp4: true,
      create_thumbnail: false,
      clips: [{ source: 'in/clip/source.mp4', start: '00:00:00.500', end: 1.5 }],
    });
    await assertOk(id, job);
    const mp4 = await probeMedia(abs('out/order/order.mp4'));
    assert.ok(Math.abs(mp4.durationSeconds - 1) <= 0.1, `mp4 duration ${mp4.durationSeconds}`);
  });

  it('bad inputs fail the job with the reason in its log and callback, never a hang', async () => {
    const closed = await closedPort();
    const cases: [string, Record<string, unknown>, RegExp][] = [
      ['vodstream', { content_id: 'm', source_folder: 'in/missing' }, /does not exist/],
      ['vodstream', { content_id: 'n', source_folder: 'in/notvideo' }, /no video source.*readme\.txt/],
      ['vodstream', { content_id: 'f', source_folder: 'in/fake' }, /movie\.mp4: not readable as media/],
      [
        'vodstream',
        { content_id: 't', source_folder: 'in/clip', thumbnail_time: 5 },
        /thumbnail_time .* past the end/,
      ],
      [
        'vodcapture',
        {
          content_id: 'u',
          output_folder: 'out/u',
          clips: [{ source: `http://127.0.0.1:${closed}/live/index.m3u8` }],
        },
        new RegExp(
          `cannot fetch HLS playlist http://127\\.0\\.0\\.1:${closed}/live/index\\.m3u8: ECONNREFUSED`,
        ),
      ],
    ];
    const ids = await Promise.all(cases.map(([w, p]) => submit(w, p)));
    for (const [i, id] of ids.entries()) {
      const job = await finish(id, 30_000);
      assert.equal(job.failed, true, `case ${i}`);
      const failed = job.tasks.find((t) => t.state === 'failed');
      assert.match(failed?.error ?? '', cases[i]![2]);
      assert.match(await logsOf(id), cases[i]![2]);
      const fail = await receiver.waitForCount(
        1,
        (r) => r.body.job_id === id && r.body.event === 'fail',
        15_000,
      );
      assert.match(bodyOf(fail[0]!).message, cases[i]![2]);
      assert.equal((await jobEnd(id)).status, 'failed');
    }
  });

  it('a vodstream that fails after encoding leaves no staging folder (cleanup task remove_staging)', async () => {
    // A folder where finalize must write the active master playlist: finalize fails for good,
    // after the renditions were encoded into the job's staging folder.
    await mkdir(abs('out/forced/forced.m3u8'), { recursive: true });
    const { id, job } = await run('vodstream', {
      content_id: 'forced',
      source_folder: 'in/clip',
      output_folder: 'out/forced',
      create_thumbnail: false,
    });
    assert.equal(job.failed, true, JSON.stringify(job.tasks));
    const byName = new Map(job.tasks.map((t) => [t.name, t]));
    assert.equal(byName.get('finalize')?.state, 'failed');
    assert.equal(byName.get('rendition_1')?.state, 'succeeded');
    assert.equal(byName.get('remove_staging')?.state, 'succeeded');
    assert.match(await logsOf(id), new RegExp(`removed out/forced/\\.staging-${id}`));
    const left = (await readdir(abs('out/forced'))).filter((f) => f.startsWith('.staging-'));
    assert.deepEqual(left, []);
    assert.equal((await jobEnd(id)).status, 'failed');
  });

  it('a symlink leading out of the client root fails the task', async () => {
    const { symlink } = await import('node:fs/promises');
    await symlink(path.dirname(clientRoot), abs('in/escape'));
    const { id, job } = await run('vodstream', { content_id: 's', source_folder: 'in/escape' });
    assert.equal(job.failed, true);
    assert.match(await logsOf(id), /leads outside the client storage root through a symbolic link/);
  });
});

/** Asserts the first audio stream of `file` lasts `seconds` (within 0.15 s), from its decoded packets. */
async function assertAudioLasts(file: string, seconds: number): Promise<void> {
  const out = await runFfprobe([
    '-v',
    'error',
    '-select_streams',
    'a:0',
    '-show_entries',
    'packet=pts_time,duration_time',
    '-of',
    'csv=p=0',
    file,
  ]);
  const rows = out
    .trim()
    .split('\n')
    .map((l) => l.split(',').map(Number));
  assert.ok(rows.length > 0, `${file} has audio packets`);
  const first = rows[0]![0]!;
  const last = rows.at(-1)!;
  const lasts = last[0]! + (last[1] ?? 0) - first;
  assert.ok(Math.abs(lasts - seconds) <= 0.15, `${file}: audio lasts ${lasts} s, not ${seconds} s`);
}

/** A port on 127.0.0.1 that nothing listens on (bound, then closed). */
async function closedPort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((resolve) => s.listen(0, '127.0.0.1', resolve));
  const { port } = s.address() as AddressInfo;
  await new Promise<void>((resolve) => s.close(() => resolve()));
  return port;
}

async function exists(p: string): Promise<boolean> {
  return stat(p).then(
    () => true,
    () => false,
  );
}

/**
 * Serves `root` over HTTP on 127.0.0.1. Paths under `/pdt/` serve the same files, with media
 * playlists stamped `#EXT-X-PROGRAM-DATE-TIME:2024-05-01T10:00:00.000Z` before the first segment.
 */
async function startStaticServer(root: string): Promise<{ base: string; close(): Promise<void> }> {
  const server: Server = createServer((req, res) => {
    void (async () => {
      let p = decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname);
      const pdt = p.startsWith('/pdt/');
      if (pdt) p = p.slice(4);
      const file = path.join(root, path.normalize(p));
      if (!file.startsWith(root) || !(await exists(file))) {
        res.writeHead(404).end();
        return;
      }
      if (file.endsWith('.m3u8')) {
        let text = await readFile(file, 'utf8');
        if (pdt) text = text.replace('#EXTINF', '#EXT-X-PROGRAM-DATE-TIME:2024-05-01T10:00:00.000Z\n#EXTINF');
        res.writeHead(200, { 'content-type': 'application/vnd.apple.mpegurl' }).end(text);
        return;
      }
      res.writeHead(200, { 'content-type': 'video/mp2t' });
      createReadStream(file).pipe(res);
    })();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    base: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
