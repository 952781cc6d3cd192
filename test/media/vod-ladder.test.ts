/**
 * vodstream's adaptive ladder, CMAF (HLS + DASH over one set of segments), CENC and subtitles,
 * end to end through the real HTTP API of a real engine (PGlite store) with FFmpeg doing the work;
 * outputs checked with ffprobe and by reading the fMP4 boxes.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createDecipheriv } from 'node:crypto';
import { mkdir, readFile, readdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { pino } from 'pino';
import { parseAttributes, parsePlaylist } from '../../src/media/hls-playlist.js';
import { find, readBoxes, type Box } from '../../src/media/fmp4.js';
import { runFfmpeg, runFfprobe } from '../../src/media/ffmpeg.js';
import { probeMedia } from '../../src/media/probe.js';
import { startTaskEngine, type RunningTaskEngine } from '../../src/server.js';
import { startCallbackReceiver, type CallbackReceiver } from '../helpers/callback-receiver.js';
import { testConfig, writeSettings } from '../helpers/engine.js';
import { trackRunning } from '../helpers/leak-guard.js';
import { createTestStore, type TestStore } from '../helpers/stores.js';
import { waitFor } from '../helpers/wait-for.js';
import { assertFmp4RangesDecode } from './media-helpers.js';
import { listAssetRenditions } from '../../workflows/handlers/lib/asset-renditions.js';
import { alignedX264Args, chooseRungs, rungSlots } from '../../workflows/handlers/lib/ladder.js';

const exec = promisify(execFile);
const CLIENT = 'ladder-admin';
const KEY = 'ladder-admin-key-0123456789abcdef';
const SECONDS = 8;
const SEG = 2;

interface JobReply {
  id: number;
  queue_state: string;
  failed: boolean;
  tasks: { name: string; state: string; error: string | null }[];
}

/** Key-frame times of a file's video, seconds. */
async function keyFrameTimes(file: string): Promise<number[]> {
  const { stdout } = await exec('ffprobe', [
    '-v',
    'error',
    '-select_streams',
    'v:0',
    '-skip_frame',
    'nokey',
    '-show_entries',
    'frame=best_effort_timestamp_time',
    '-of',
    'csv=p=0',
    file,
  ]);
  const times = stdout
    .split('\n')
    .filter(Boolean)
    .map((l) => Number(l.split(',')[0]));
  // Relative to the first frame: an fMP4 without an edit list starts at its composition offset.
  return times.map((t) => Math.round((t - times[0]!) * 1000) / 1000);
}

/** A tiny XML reader: elements with attributes and children (enough for an MPD). */
interface El {
  name: string;
  attrs: Record<string, string>;
  children: El[];
  text: string;
}
function parseXml(text: string): El {
  const root: El = { name: '#root', attrs: {}, children: [], text: '' };
  const stack = [root];
  const re = /<(\/?)([A-Za-z_][\w:.-]*)([^>]*?)(\/?)>|([^<]+)/g;
  let m: RegExpExecArray | null;
  const body = text.replace(/<\?xml[^>]*\?>/, '');
  while ((m = re.exec(body))) {
    if (m[5] !== undefined) {
      stack.at(-1)!.text += m[5].trim();
      continue;
    }
    if (m[1]) {
      const top = stack.pop()!;
      assert.equal(top.name, m[2], 'XML tags must nest');
      continue;
    }
    const attrs: Record<string, string> = {};
    for (const a of m[3]!.matchAll(/([\w:.-]+)="([^"]*)"/g)) attrs[a[1]!] = a[2]!;
    const el: El = { name: m[2]!, attrs, children: [], text: '' };
    stack.at(-1)!.children.push(el);
    if (!m[4]) stack.push(el);
  }
  assert.equal(stack.length, 1, 'XML elements must all be closed');
  return root;
}
const kids = (el: El, name: string): El[] => el.children.filter((c) => c.name === name);

/**
 * The `moof` a segment (or an I-frame byte range, whose `mdat` is cut short after the key frame)
 * starts with; only its own boxes are read.
 */
function leadingMoof(buf: Buffer): Box {
  assert.equal(buf.toString('latin1', 4, 8), 'moof', 'the bytes start with a moof box');
  return readBoxes(buf, 0, buf.readUInt32BE(0))[0]!;
}

/** The first `traf`'s boxes, its `trun` data offset (from the moof start) and sample sizes. */
function trunSamples(buf: Buffer, moof: Box): { inTraf: Box[]; dataOffset: number; sizes: number[] } {
  const traf = readBoxes(buf, moof.body, moof.end).find((b) => b.type === 'traf')!;
  const inTraf = readBoxes(buf, traf.body, traf.end);
  const trun = inTraf.find((b) => b.type === 'trun')!;
  const tflags = buf.readUInt32BE(trun.body) & 0xffffff;
  assert.ok(tflags & 0x01 && tflags & 0x200, 'trun gives a data offset and every sample size');
  const count = buf.readUInt32BE(trun.body + 4);
  let p = trun.body + 8;
  const dataOffset = buf.readInt32BE(p);
  p += 4;
  if (tflags & 0x04) p += 4;
  const sizes: number[] = [];
  for (let i = 0; i < count; i++) {
    if (tflags & 0x100) p += 4;
    sizes.push(buf.readUInt32BE(p));
    p += 4;
    if (tflags & 0x400) p += 4;
    if (tflags & 0x800) p += 4;
  }
  return { inTraf, dataOffset, sizes };
}

/**
 * Decrypts CENC (`cenc`, AES-128-CTR) samples in place, written for this test from ISO/IEC 23001-7:
 * IVs and subsample maps come from each fragment's `senc`, sample sizes from `trun`.
 * @param samples how many samples to decrypt (an I-frame range holds only the first).
 */
function decryptFragment(seg: Buffer, key: Buffer, samples = Infinity): Buffer {
  const buf = Buffer.from(seg);
  const moof = leadingMoof(buf);
  const { inTraf, dataOffset, sizes } = trunSamples(buf, moof);
  const senc = inTraf.find((b) => b.type === 'senc');
  assert.ok(senc, 'each CENC fragment carries its IVs in a senc box');
  const sflags = buf.readUInt32BE(senc.body) & 0xffffff;
  let q = senc.body + 8;
  let at = moof.start + dataOffset;
  for (const size of sizes.slice(0, samples)) {
    assert.ok(at + size <= buf.length, 'every sample decrypted lies inside the bytes given');
    const iv = Buffer.concat([buf.subarray(q, q + 8), Buffer.alloc(8)]);
    q += 8;
    const d = createDecipheriv('aes-128-ctr', key, iv);
    if (sflags & 0x2) {
      const n = buf.readUInt16BE(q);
      q += 2;
      let o = at;
      for (let i = 0; i < n; i++) {
        const clear = buf.readUInt16BE(q);
        const prot = buf.readUInt32BE(q + 2);
        q += 6;
        o += clear;
        d.update(buf.subarray(o, o + prot)).copy(buf, o);
        o += prot;
      }
    } else d.update(buf.subarray(at, at + size)).copy(buf, at);
    at += size;
  }
  // FFmpeg 5.1 refuses fragments whose encryption info it cannot index ("Incorrect number of
  // samples in encryption info"); once decrypted, the boxes are renamed `free` (same sizes).
  for (const b of inTraf)
    if (['senc', 'saiz', 'saio'].includes(b.type)) buf.write('free', b.start + 4, 'latin1');
  return buf;
}

/** The init segment with its protection signalling renamed away: `encv`/`enca` back to the `frma` format, `sinf` and `pssh` to `free`. */
function clearInit(init: Buffer): Buffer {
  const buf = Buffer.from(init);
  const stsd = find(buf, 'moov/trak/mdia/minf/stbl/stsd')!;
  const entry = readBoxes(buf, stsd.body + 8, stsd.end)[0]!;
  const sinf = readBoxes(buf, entry.body + (entry.type === 'encv' ? 78 : 28), entry.end).find(
    (b) => b.type === 'sinf',
  )!;
  const frma = readBoxes(buf, sinf.body, sinf.end).find((b) => b.type === 'frma')!;
  buf.write(buf.toString('latin1', frma.body, frma.body + 4), entry.start + 4, 'latin1');
  buf.write('free', sinf.start + 4, 'latin1');
  const pssh = find(buf, 'moov/pssh');
  if (pssh) buf.write('free', pssh.start + 4, 'latin1');
  return buf;
}

function stripSignalling(seg: Buffer): Buffer {
  const buf = Buffer.from(seg);
  const moof = leadingMoof(buf);
  const traf = readBoxes(buf, moof.body, moof.end).find((b) => b.type === 'traf')!;
  for (const b of readBoxes(buf, traf.body, traf.end))
    if (['senc', 'saiz', 'saio'].includes(b.type)) buf.write('free', b.start + 4, 'latin1');
  return buf;
}

async function framemd5(file: string): Promise<{ ok: boolean; out: string }> {
  try {
    const { stdout, stderr } = await exec('ffmpeg', [
      '-v',
      'error',
      '-i',
      file,
      '-map',
      '0:v',
      '-f',
      'framemd5',
      '-',
    ]);
    return {
      ok: stderr.trim() === '',
      out: stdout
        .split('\n')
        .filter((l) => !l.startsWith('#'))
        .join('\n'),
    };
  } catch (err) {
    return { ok: false, out: String((err as { stdout?: string }).stdout ?? '') };
  }
}

/** The entries of an I-frame playlist: `EXTINF` duration (as written), byte range and segment. */
function iframeEntries(text: string): { duration: string; length: number; offset: number; uri: string }[] {
  return [...text.matchAll(/#EXTINF:([\d.]+),\n#EXT-X-BYTERANGE:(\d+)@(\d+)\n(\S+)/g)].map((m) => ({
    duration: m[1]!,
    length: Number(m[2]),
    offset: Number(m[3]),
    uri: m[4]!,
  }));
}

/**
 * Checks each entry of a CENC rendition's I-frame playlist against the clear rendition cut from
 * the same track: the range is the `moof`, the `mdat` header and exactly the first sample; that
 * sample, decrypted with `key` and the IV (and subsample map) of the fragment's `senc`, after the
 * init segment with its protection signalling removed, decodes as one I frame of `width` x
 * `height` equal to the clear rendition's frame at the same entry; undecrypted it does not.
 * @returns the number of entries.
 */
async function assertCencRangesDecrypt(
  cencDir: string,
  clearDir: string,
  key: Buffer,
  [width, height]: [number, number],
  scratch: string,
): Promise<number> {
  const text = await readFile(path.join(cencDir, 'iframes.m3u8'), 'utf8');
  const init = clearInit(await readFile(path.join(cencDir, 'init.mp4')));
  const clearText = await readFile(path.join(clearDir, 'iframes.m3u8'), 'utf8');
  const clearInitSeg = await readFile(path.join(clearDir, 'init.mp4'));
  const entries = iframeEntries(text);
  const clearEntries = iframeEntries(clearText);
  assert.ok(entries.length > 0);
  assert.deepEqual(
    entries.map((e) => [e.duration, e.uri]),
    clearEntries.map((e) => [e.duration, e.uri]),
    'the CENC and clear I-frame playlists have the same key frames',
  );
  for (const [i, e] of entries.entries()) {
    const seg = await readFile(path.join(cencDir, e.uri));
    const part = seg.subarray(e.offset, e.offset + e.length);
    assert.equal(part.length, e.length, `range ${i} lies inside ${e.uri}`);
    const moof = leadingMoof(part);
    const { dataOffset, sizes } = trunSamples(part, moof);
    assert.equal(
      part.toString('latin1', moof.end + 4, moof.end + 8),
      'mdat',
      `range ${i}: the mdat follows the moof`,
    );
    assert.equal(dataOffset, moof.end + 8, `range ${i}: the first sample starts the mdat`);
    assert.equal(e.length, dataOffset + sizes[0]!, `range ${i} ends with its first sample`);

    const dec = path.join(scratch, `cenc_range_${i}.mp4`);
    await writeFile(dec, Buffer.concat([init, decryptFragment(part, key, 1)]));
    const probed = JSON.parse(
      await runFfprobe([
        '-select_streams',
        'v:0',
        '-show_frames',
        '-show_entries',
        'frame=key_frame,pict_type,width,height',
        '-of',
        'json',
        dec,
      ]),
    ) as { frames: { key_frame: number; pict_type: string; width: number; height: number }[] };
    assert.equal(probed.frames.length, 1, `range ${i} decrypted decodes as one frame`);
    assert.deepEqual(
      [
        probed.frames[0]!.key_frame,
        probed.frames[0]!.pict_type,
        probed.frames[0]!.width,
        probed.frames[0]!.height,
      ],
      [1, 'I', width, height],
      `range ${i}`,
    );
    const clearFile = path.join(scratch, `clear_range_${i}.mp4`);
    const c = clearEntries[i]!;
    const clearSeg = await readFile(path.join(clearDir, c.uri));
    await writeFile(
      clearFile,
      Buffer.concat([clearInitSeg, clearSeg.subarray(c.offset, c.offset + c.length)]),
    );
    const clearFrame = await framemd5(clearFile);
    const decFrame = await framemd5(dec);
    assert.equal(clearFrame.out.trim().split('\n').length, 1, `clear range ${i} is one frame`);
    assert.equal(decFrame.out, clearFrame.out, `range ${i} decrypted equals the clear key frame`);
    // Without the key: the same bytes with only the signalling removed, samples still encrypted.
    const enc = path.join(scratch, `cenc_range_${i}_nokey.mp4`);
    await writeFile(enc, Buffer.concat([init, stripSignalling(part)]));
    const encFrame = await framemd5(enc);
    assert.ok(
      !encFrame.ok || encFrame.out !== clearFrame.out,
      `range ${i} does not decode to the picture without the key`,
    );
  }
  return entries.length;
}

describe('the ladder', () => {
  it('caps the default ladder at the source height, never upscales, keeps widths even', () => {
    const hd = chooseRungs(undefined, 1920, 1080).rungs;
    assert.deepEqual(
      hd.map((r) => [r.width, r.height, r.video_bitrate]),
      [
        [1920, 1080, 5_000_000],
        [1280, 720, 2_800_000],
        [854, 480, 1_400_000],
        [640, 360, 800_000],
      ],
    );
    const small = chooseRungs(undefined, 1280, 534);
    // 1280x534 (2.40:1): 480 lines are 1150.6 wide, 360 lines 862.9; both rounded to even.
    assert.deepEqual(
      small.rungs.map((r) => `${r.width}x${r.height}`),
      ['1150x480', '862x360'],
    );
    assert.deepEqual(small.dropped, [1080, 720]);
    for (const r of small.rungs) assert.equal(r.width % 2, 0);
    // Every asked height is above a 181-line source: one rung at its own height, rounded down to even.
    const tiny = chooseRungs([{ height: 720, video_bitrate_kbps: 2000 }], 320, 181);
    assert.deepEqual(
      tiny.rungs.map((r) => [r.width, r.height, r.video_bitrate]),
      [[318, 180, 2_000_000]],
    );
    assert.throws(() => chooseRungs([{ height: 360 }, { height: 360 }], 640, 360), /asked for twice/);
  });

  it('packs rungs into fewer task slots by pixels, largest first, at most renditions_per_task each', () => {
    const hd = chooseRungs(undefined, 1920, 1080).rungs;
    const one = rungSlots(hd);
    assert.deepEqual(
      Object.values(one).map((s) => (s && !Array.isArray(s) ? s.name : s)),
      ['1080p', '720p', '480p', '360p', null, null],
    );
    const names = (slots: ReturnType<typeof rungSlots>): (string[] | null)[] =>
      Object.values(slots).map((s) =>
        Array.isArray(s) ? s.map((r) => r.name) : s === null ? null : [s.name],
      );
    // 1080p alone outweighs the rest, so the others go to the second task until it is full.
    assert.deepEqual(names(rungSlots(hd, 2)), [['1080p', '360p'], ['720p', '480p'], null, null, null, null]);
    // Three per task still makes two tasks; the lighter one takes the three smaller rungs.
    assert.deepEqual(names(rungSlots(hd, 3)), [['1080p'], ['720p', '480p', '360p'], null, null, null, null]);
    assert.deepEqual(names(rungSlots(hd, 4)), [
      ['1080p', '720p', '480p', '360p'],
      null,
      null,
      null,
      null,
      null,
    ]);
  });

  it('fixes the GOP to the segment and turns scene cuts off', () => {
    const args = alignedX264Args(800_000, 2, 25).join(' ');
    assert.match(args, /-g 50 -keyint_min 50 -sc_threshold 0/);
    assert.match(args, /-force_key_frames expr:gte\(t,n_forced\*2\)/);
    assert.match(args, /-profile:v high -pix_fmt yuv420p -b:v 800000 -maxrate 880000 -bufsize 1600000/);
  });

  // The smart cut (lib/smart-cut.ts) is the one other libx264 writer on purpose: its re-encoded
  // head and tail are spliced to a stream-copied middle, so they take the source stream's own
  // profile, level and key frames, not the ladder's fixed GOP and bitrate.
  it('has one x264 rule: no workflow handler but lib/ladder.ts (and the smart cut) writes libx264 options', async () => {
    const root = fileURLToPath(new URL('../../workflows/handlers/', import.meta.url));
    const files = [
      ...(await readdir(root)).map((f) => path.join(root, f)),
      ...(await readdir(path.join(root, 'lib'))).map((f) => path.join(root, 'lib', f)),
    ].filter((f) => f.endsWith('.ts'));
    const writers: string[] = [];
    for (const f of files)
      if ((await readFile(f, 'utf8')).includes("'libx264'")) writers.push(path.relative(root, f));
    assert.deepEqual(writers.sort(), ['lib/ladder.ts', 'lib/smart-cut.ts']);
  });
});

describe('vodstream ladder, CMAF, DASH and CENC [pglite]', () => {
  let store: TestStore;
  let running: RunningTaskEngine;
  let untrack: (() => void) | undefined;
  let receiver: CallbackReceiver;
  let root: string;
  const abs = (rel: string): string => path.join(root, rel);

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
  const run = async (
    parameters: Record<string, unknown>,
    workflow = 'vodstream',
    expectFailure = false,
  ): Promise<{ id: number; job: JobReply }> => {
    const r = await api<{ id: number }>('POST', '/job', {
      job: { workflow },
      parameters: { rest_endpoints: [receiver.url('/cb')], ...parameters },
    });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    const job = await waitFor(
      async () => {
        const j = await api<JobReply>('GET', `/jobs/${r.body.id}`);
        return ['completed', 'broken'].includes(j.body.queue_state) ? j.body : null;
      },
      { timeoutMs: 240_000, intervalMs: 200, what: `job ${r.body.id}` },
    );
    if (job.failed !== expectFailure) {
      const logs = (await api<{ message: string }[]>('GET', `/logs/${r.body.id}?show_all=1`)).body;
      assert.fail(`job failed: ${JSON.stringify(job.tasks)}\n${logs.map((l) => l.message).join('\n')}`);
    }
    return { id: r.body.id, job };
  };

  before(async () => {
    store = await createTestStore('pglite');
    await writeSettings(store.db, { max_jobs: 2, retry_delay: 1 });
    receiver = await startCallbackReceiver();
    const config = testConfig({
      roles: ['api', 'controller', 'worker'],
      adminClient: CLIENT,
      adminApiKey: KEY,
      workerConcurrency: 2,
    });
    running = await startTaskEngine(config, { db: store.db, logger: pino({ level: 'silent' }) });
    untrack = trackRunning('engine', 'of startTaskEngine', () => running.stop());
    root = path.join(config.storageRoot, CLIENT);
    await mkdir(abs('in/film'), { recursive: true });
    // Noise makes the picture hard enough to compress that the encoder needs its whole target rate.
    await runFfmpeg([
      '-f',
      'lavfi',
      '-i',
      `testsrc2=size=640x360:rate=25:duration=${SECONDS},noise=alls=30:allf=t`,
      '-f',
      'lavfi',
      '-i',
      `sine=frequency=440:sample_rate=48000:duration=${SECONDS}`,
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
      abs('in/film/source.mp4'),
    ]);
    await writeFile(
      abs('in/film/source.en.srt'),
      '1\n00:00:01,000 --> 00:00:03,000\nHello there\n\n2\n00:00:04,500 --> 00:00:06,000\nSecond cue\n',
    );
  });

  after(async () => {
    await running?.stop();
    untrack?.();
    await receiver?.close();
    await store?.dispose();
  });

  it('refuses bad values with a 400 that says what is accepted', async () => {
    const bad = async (parameters: Record<string, unknown>, re: RegExp): Promise<void> => {
      const r = await api<{ error?: string; message?: string }>('POST', '/job', {
        job: { workflow: 'vodstream' },
        parameters: { content_id: 'x', source_folder: 'in/film', ...parameters },
      });
      assert.equal(r.status, 400, JSON.stringify(r.body));
      assert.match(JSON.stringify(r.body), re);
    };
    await bad({ renditions: [{ height: 361 }] }, /renditions\[0\]\.height/);
    await bad({ renditions: [{ height: 360, video_bitrate_kbps: 'lots' }] }, /video_bitrate_kbps/);
    await bad({ renditions: [] }, /renditions/);
    await bad(
      { formats: ['dash'], segment_format: 'ts' },
      /segment_format must be \\"cmaf\\" \(DASH needs CMAF/,
    );
    await bad({ drm: ['aes'], formats: ['hls', 'dash'] }, /formats is not accepted \(aes/);
    await bad({ drm: ['cenc'], segment_format: 'ts' }, /cenc needs CMAF/);
    await bad({ formats: ['hls', 'smooth'] }, /formats\[1\] must be one of/);
    await bad({ subtitles: [{ file: 'in/film/source.txt' }] }, /subtitles\[0\]\.file/);
  });

  let cencId = 0;
  it('makes a 360/240 ladder (never 480: no upscaling) as clear + CENC CMAF with HLS and DASH over the same segments', async () => {
    const { id, job } = await run({
      content_id: 'film',
      source_folder: 'in/film',
      output_folder: 'out/film',
      renditions: [
        { height: 480, video_bitrate_kbps: 1200 },
        { height: 360, video_bitrate_kbps: 900 },
        { height: 240, video_bitrate_kbps: 450 },
      ],
      formats: ['hls', 'dash'],
      drm: ['clear', 'cenc'],
      segment_duration: SEG,
      create_thumbnail: false,
      trickplay: true,
      trickplay_thumbnails: false,
    });
    cencId = id;
    const states = Object.fromEntries(job.tasks.map((t) => [t.name, t.state]));
    assert.equal(states.rendition_1, 'succeeded');
    assert.equal(states.rendition_2, 'succeeded');
    assert.equal(states.rendition_3, 'skipped');
    assert.equal(states.audio, 'succeeded');
    assert.equal(states.subtitles, 'succeeded');
    assert.equal(states.package_cenc, 'succeeded');
    const out = abs('out/film');

    // The multi-variant playlist.
    const master = await readFile(path.join(out, 'film_nodrm.m3u8'), 'utf8');
    const inf = master
      .split('\n')
      .filter((l) => l.startsWith('#EXT-X-STREAM-INF:'))
      .map((l) => parseAttributes(l.slice(18)));
    assert.deepEqual(
      inf.map((a) => a.RESOLUTION),
      ['640x360', '426x240'],
    );
    for (const a of inf) {
      assert.match(a.CODECS!, /^avc1\.64[0-9a-f]{4},mp4a\.40\.2$/);
      assert.ok(Number(a.BANDWIDTH) >= Number(a['AVERAGE-BANDWIDTH']) && Number(a['AVERAGE-BANDWIDTH']) > 0);
      assert.equal(a['FRAME-RATE'], '25.000');
      assert.equal(a.AUDIO, 'audio');
      assert.equal(a.SUBTITLES, 'subs');
    }
    const media = master
      .split('\n')
      .filter((l) => l.startsWith('#EXT-X-MEDIA:'))
      .map((l) => parseAttributes(l.slice(13)));
    assert.deepEqual(
      media.map((m) => [m.TYPE, m.LANGUAGE ?? null]),
      [
        ['AUDIO', null],
        ['SUBTITLES', 'en'],
      ],
    );

    // Each rendition: resolution, bit rate within 15 % of the target, key frames on the segment grid.
    const targets: Record<string, number> = { '360p': 900_000, '240p': 450_000 };
    const starts: Record<string, number[]> = {};
    const hlsDurations: Record<string, number[]> = {};
    for (const [name, target] of Object.entries(targets)) {
      const dir = path.join(out, 'film_nodrm', name);
      const joined = path.join(out, `${name}.joined.mp4`);
      const pl = parsePlaylist(await readFile(path.join(dir, 'index.m3u8'), 'utf8'));
      assert.equal(pl.kind, 'media');
      if (pl.kind !== 'media') return;
      hlsDurations[name] = pl.segments.map((s) => Math.round(s.durationSeconds * 1000) / 1000);
      starts[name] = pl.segments.map((s) => Math.round(s.startSeconds * 1000) / 1000);
      const parts = [await readFile(path.join(dir, 'init.mp4'))];
      let bytes = 0;
      for (const s of pl.segments) {
        const b = await readFile(path.join(dir, s.uri));
        bytes += b.length;
        parts.push(b);
      }
      await writeFile(joined, Buffer.concat(parts));
      const info = await probeMedia(joined);
      assert.deepEqual([info.video?.width, info.video?.height], name === '360p' ? [640, 360] : [426, 240]);
      const rate = (bytes * 8) / pl.totalSeconds;
      assert.ok(
        Math.abs(rate - target) / target <= 0.15,
        `${name}: ${Math.round(rate)} b/s against ${target}`,
      );
      const keys = await keyFrameTimes(joined);
      assert.deepEqual(keys, starts[name], `${name}: a key frame starts every segment, and only there`);
    }
    assert.deepEqual(starts['360p'], starts['240p'], 'segments start at the same times in every rendition');
    assert.equal(starts['360p']!.length, SECONDS / SEG);
    assert.ok(!(await readdir(path.join(out, 'film_nodrm'))).includes('480p'));

    // The MPD: same segments, same durations.
    const mpd = parseXml(await readFile(path.join(out, 'film_nodrm.mpd'), 'utf8'));
    const period = kids(kids(mpd, 'MPD')[0]!, 'Period')[0]!;
    assert.equal(kids(period, 'BaseURL')[0]!.text, 'film_nodrm/');
    const sets = kids(period, 'AdaptationSet');
    // trickplay: true adds no DASH trick-mode set unless trickplay_dash_trick_mode asks for one
    // (test/media/dash-trickplay.test.ts), so the MPD keeps the sets packaging wrote.
    assert.deepEqual(
      sets.map((s) => s.attrs.contentType),
      ['video', 'audio', 'text'],
    );
    for (const rep of kids(sets[0]!, 'Representation')) {
      const tmpl = kids(rep, 'SegmentTemplate')[0]!;
      const ts = Number(tmpl.attrs.timescale);
      const durations: number[] = [];
      for (const s of kids(kids(tmpl, 'SegmentTimeline')[0]!, 'S'))
        for (let i = 0; i <= Number(s.attrs.r ?? 0); i++)
          durations.push(Math.round((Number(s.attrs.d) / ts) * 1000) / 1000);
      assert.deepEqual(durations, hlsDurations[rep.attrs.id!], `MPD and HLS agree on ${rep.attrs.id}`);
      assert.equal(tmpl.attrs.media, `${rep.attrs.id}/segment_$Number%05d$.m4s`);
      assert.match(rep.attrs.codecs!, /^avc1\.64/);
    }
    assert.equal(kids(sets[2]!, 'Representation')[0]!.children[0]!.text, 'subs/en/subtitles.vtt');

    // SRT became WebVTT.
    const vtt = await readFile(path.join(out, 'film_nodrm/subs/en/subtitles.vtt'), 'utf8');
    assert.match(vtt, /^WEBVTT/);
    assert.match(vtt, /(00:)?00:01\.000 --> (00:)?00:03\.000\nHello there/);

    // CENC: the MPD says how to get the key; the callback lists the key id only.
    const cmpd = await readFile(path.join(out, 'film_cenc.mpd'), 'utf8');
    const keys = JSON.parse(await readFile(path.join(out, 'keys.json'), 'utf8')) as Record<string, string>;
    const [kid, keyHex] = Object.entries(keys)[0]!;
    const kidUuid = `${kid.slice(0, 8)}-${kid.slice(8, 12)}-${kid.slice(12, 16)}-${kid.slice(16, 20)}-${kid.slice(20)}`;
    assert.match(cmpd, new RegExp(`cenc:default_KID="${kidUuid}"`));
    assert.match(cmpd, /urn:uuid:1077efec-c0b2-4d02-ace3-3c1e52e2fb4b/);
    const init = await readFile(path.join(out, 'film_cenc/360p/init.mp4'));
    const pssh = find(init, 'moov/pssh')!;
    assert.equal(
      init.subarray(pssh.body + 4, pssh.body + 20).toString('hex'),
      '1077efecc0b24d02ace33c1e52e2fb4b',
    );
    const end = (
      await receiver.waitForCount(1, (r) => r.body.job_id === id && 'status' in r.body, 15_000)
    )[0]!;
    const text = JSON.stringify(end.body);
    assert.ok(text.includes(kid) && !text.includes(keyHex), 'the callback carries the key id, never the key');
    const logs = JSON.stringify((await api('GET', `/logs/${id}?show_all=1`)).body);
    assert.ok(logs.includes(kid) && !logs.includes(keyHex), 'the logs never carry the key');
    const reply = JSON.stringify((await api('GET', `/jobs/${id}`)).body);
    assert.ok(!reply.includes(keyHex), 'the job reply never carries the key');

    // Not decodable without the key; decodable, and equal to the clear variant, with it.
    const pl = parsePlaylist(await readFile(path.join(out, 'film_cenc/360p/index.m3u8'), 'utf8'));
    assert.ok(pl.kind === 'media');
    const segs = await Promise.all(pl.segments.map((s) => readFile(path.join(out, 'film_cenc/360p', s.uri))));
    const encFile = path.join(out, 'enc.mp4');
    const decFile = path.join(out, 'dec.mp4');
    await writeFile(encFile, Buffer.concat([init, ...segs]));
    await writeFile(
      decFile,
      Buffer.concat([clearInit(init), ...segs.map((s) => decryptFragment(s, Buffer.from(keyHex, 'hex')))]),
    );
    const clearFile = path.join(out, '360p.joined.mp4');
    const clear = await framemd5(clearFile);
    // Without the key: the same file with only the signalling removed (the samples still encrypted).
    await writeFile(encFile, Buffer.concat([clearInit(init), ...segs.map((s) => stripSignalling(s))]));
    const enc = await framemd5(encFile);
    const dec = await framemd5(decFile);
    assert.ok(clear.ok && dec.ok, 'the decrypted file decodes without errors');
    assert.equal(dec.out, clear.out, 'decrypted frames equal the clear variant');
    assert.ok(!enc.ok || enc.out !== clear.out, 'the encrypted file does not decode to the picture');

    // Trick play: an I-frame playlist per CMAF rendition, clear and CENC, one entry per key frame
    // (= segment). Clear: each range a moof that decodes with the init segment as one key frame.
    // CENC: the media playlist's EXT-X-KEY as written, and each range decrypts (key from keys.json,
    // IV from the fragment's senc) to the clear key frame. Both masters list their I-frame streams.
    assert.equal(states.trickplay, 'succeeded');
    const sizes: Record<string, [number, number]> = { '360p': [640, 360], '240p': [426, 240] };
    for (const name of ['360p', '240p']) {
      const dir = path.join(out, 'film_nodrm', name);
      const text = await readFile(path.join(dir, 'iframes.m3u8'), 'utf8');
      assert.match(text, /#EXT-X-I-FRAMES-ONLY\n#EXT-X-MAP:URI="init.mp4"\n/);
      assert.doesNotMatch(text, /EXT-X-KEY/);
      assert.equal(
        await assertFmp4RangesDecode(dir, text, out),
        SECONDS / SEG,
        `${name}: one entry per segment`,
      );
      const cencDir = path.join(out, 'film_cenc', name);
      const keyLines = (await readFile(path.join(cencDir, 'index.m3u8'), 'utf8'))
        .split('\n')
        .filter((l) => l.startsWith('#EXT-X-KEY:'));
      assert.equal(keyLines.length, 1);
      assert.match(keyLines[0]!, /^#EXT-X-KEY:METHOD=SAMPLE-AES-CTR,KEYFORMAT="urn:uuid:1077efec-/);
      const cencText = await readFile(path.join(cencDir, 'iframes.m3u8'), 'utf8');
      assert.ok(
        cencText.includes(`#EXT-X-I-FRAMES-ONLY\n${keyLines[0]}\n#EXT-X-MAP:URI="init.mp4"\n`),
        cencText,
      );
      assert.equal(
        await assertCencRangesDecrypt(cencDir, dir, Buffer.from(keyHex, 'hex'), sizes[name]!, out),
        SECONDS / SEG,
        `${name} CENC: one entry per segment`,
      );
    }
    for (const variant of ['nodrm', 'cenc']) {
      const withIframes = await readFile(path.join(out, `film_${variant}.m3u8`), 'utf8');
      const iframeInf = withIframes
        .split('\n')
        .filter((l) => l.startsWith('#EXT-X-I-FRAME-STREAM-INF:'))
        .map((l) => parseAttributes(l.slice(26)));
      assert.deepEqual(
        iframeInf.map((a) => [a.RESOLUTION, a.URI]),
        [
          ['640x360', `film_${variant}/360p/iframes.m3u8`],
          ['426x240', `film_${variant}/240p/iframes.m3u8`],
        ],
      );
      for (const a of iframeInf) {
        assert.match(a.CODECS!, /^avc1\.64[0-9a-f]{4}$/);
        assert.ok(Number(a.BANDWIDTH) > 0);
      }
    }
    // The active master is the CENC one (enable_drm defaults to true), with its I-frame streams.
    assert.equal(
      await readFile(path.join(out, 'film.m3u8'), 'utf8'),
      await readFile(path.join(out, 'film_cenc.m3u8'), 'utf8'),
    );
    const trickLogs = (await api<{ message: string }[]>('GET', `/logs/${id}?show_all=1`)).body.map(
      (l) => l.message,
    );
    assert.ok(
      trickLogs.some((l) =>
        /I-frame playlist out\/film\/film_cenc\/360p\/iframes\.m3u8: 4 key frames.*CENC/.test(l),
      ),
      trickLogs.join('\n'),
    );

    const listed = await listAssetRenditions(out, 'film');
    assert.deepEqual(
      listed.map((r) => [r.variant, r.kind, r.name, r.segment_format, r.height]),
      ['clear', 'cenc'].flatMap((v) => [
        [v, 'video', '360p', 'cmaf', 360],
        [v, 'video', '240p', 'cmaf', 240],
        [v, 'audio', 'audio', 'cmaf', null],
        [v, 'subtitles', 'subs/en', 'cmaf', null],
      ]),
    );
  });

  it('renditions_per_task 2 encodes a three-rung ladder in two tasks, one decode each, with the same aligned outputs', async () => {
    const { id, job } = await run({
      content_id: 'packed',
      source_folder: 'in/film',
      output_folder: 'out/packed',
      renditions: [
        { height: 360, video_bitrate_kbps: 900 },
        { height: 240, video_bitrate_kbps: 450 },
        { height: 180, video_bitrate_kbps: 300 },
      ],
      renditions_per_task: 2,
      segment_duration: SEG,
      create_thumbnail: false,
    });
    const states = Object.fromEntries(job.tasks.map((t) => [t.name, t.state]));
    assert.equal(states.rendition_1, 'succeeded');
    assert.equal(states.rendition_2, 'succeeded');
    assert.equal(states.rendition_3, 'skipped');
    const detail = await api<{ tasks: { name: string; output: unknown }[] }>('GET', `/jobs/${id}`);
    const outputs = Object.fromEntries(detail.body.tasks.map((t) => [t.name, t.output]));
    assert.deepEqual(
      (outputs.rendition_1 as { name: string }[]).map((r) => r.name),
      ['360p'],
    );
    assert.deepEqual(
      (outputs.rendition_2 as { name: string }[]).map((r) => r.name),
      ['240p', '180p'],
    );
    const logs = (await api<{ message: string }[]>('GET', `/logs/${id}`)).body.map((l) => l.message);
    assert.ok(logs.some((m) => /^encoding 180p 320x180 .*\(with 240p \+ 180p, one decode\)$/.test(m)));
    const master = await readFile(abs('out/packed/packed_nodrm.m3u8'), 'utf8');
    assert.deepEqual(
      master
        .split('\n')
        .filter((l) => l.startsWith('#EXT-X-STREAM-INF:'))
        .map((l) => parseAttributes(l.slice(18)).RESOLUTION),
      ['640x360', '426x240', '320x180'],
    );
    const keys: number[][] = [];
    for (const r of ['360p', '240p', '180p']) {
      const info = await probeMedia(abs(`out/packed/packed_nodrm/${r}/index.m3u8`));
      assert.equal(
        `${info.video?.width}x${info.video?.height}`,
        { '360p': '640x360', '240p': '426x240', '180p': '320x180' }[r],
      );
      keys.push(await keyFrameTimes(abs(`out/packed/packed_nodrm/${r}/index.m3u8`)));
    }
    assert.deepEqual(keys[1], keys[0]);
    assert.deepEqual(keys[2], keys[0]);
    assert.deepEqual(
      keys[0],
      Array.from({ length: SECONDS / SEG }, (_, i) => i * SEG),
    );
  });

  it('takes trickplay thumbnails of a CENC-only asset from the staged clear encode', async () => {
    const { id } = await run({
      content_id: 'sealed',
      source_folder: 'in/film',
      output_folder: 'out/sealed',
      renditions: [{ height: 240, video_bitrate_kbps: 450 }],
      formats: ['hls'],
      drm: ['cenc'],
      segment_duration: SEG,
      create_thumbnail: false,
      trickplay: true,
      trickplay_thumbnail_interval: 2,
    });
    const vtt = await readFile(abs('out/sealed/sealed_trickplay.vtt'), 'utf8');
    assert.equal(vtt.match(/#xywh=/g)?.length, SECONDS / 2);
    const sheet = await probeMedia(abs('out/sealed/sealed_trickplay/sheet_00001.jpg'));
    assert.ok((sheet.video?.width ?? 0) >= 426, `sheet width ${sheet.video?.width}`);
    const logs = (await api<{ message: string }[]>('GET', `/logs/${id}`)).body.map((l) => l.message);
    assert.ok(
      logs.some((m) => /^4 thumbnails of 426x240 every 2 s/.test(m)),
      logs.join('\n'),
    );
  });

  it('keeps TS renditions with shared audio and makes no keys file when asked', async () => {
    void cencId;
    const { job } = await run({
      content_id: 'ts',
      source_folder: 'in/film',
      output_folder: 'out/ts',
      renditions: [{ height: 240, video_bitrate_kbps: 400 }],
      segment_duration: SEG,
      create_thumbnail: false,
      subtitles: [{ file: 'in/film/source.en.srt', language: 'en', name: 'English' }],
    });
    assert.equal(Object.fromEntries(job.tasks.map((t) => [t.name, t.state])).audio, 'succeeded');
    const master = await readFile(abs('out/ts/ts_nodrm.m3u8'), 'utf8');
    assert.match(master, /TYPE=SUBTITLES,GROUP-ID="subs",NAME="English",LANGUAGE="en"/);
    // The audio is its own audio-only rendition group, as in CMAF ladders; the video carries video only.
    assert.match(
      master,
      /#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="audio",NAME="audio",DEFAULT=YES,AUTOSELECT=YES,CHANNELS="2",URI="ts_nodrm\/audio\/index.m3u8"/,
    );
    assert.match(
      master,
      /#EXT-X-STREAM-INF:[^\n]*CODECS="avc1\.[0-9a-f]{6},mp4a\.40\.2"[^\n]*,AUDIO="audio"/,
    );
    const video = await probeMedia(abs('out/ts/ts_nodrm/240p/index.m3u8'));
    assert.deepEqual(
      video.streams.map((s) => s.kind),
      ['video'],
    );
    const audioOnly = await probeMedia(abs('out/ts/ts_nodrm/audio/index.m3u8'));
    assert.deepEqual(
      audioOnly.streams.map((s) => s.kind),
      ['audio'],
    );
    assert.ok(
      Math.abs(audioOnly.durationSeconds - SECONDS) < 0.2,
      `audio lasts ${audioOnly.durationSeconds} s`,
    );
    // FFmpeg playing the master takes the video rendition and the audio group together.
    const played = await probeMedia(abs('out/ts/ts_nodrm.m3u8'));
    assert.deepEqual(played.streams.map((s) => s.kind).sort(), ['audio', 'video']);
    await runFfmpeg([
      '-v',
      'error',
      '-i',
      abs('out/ts/ts_nodrm.m3u8'),
      '-map',
      '0:v:0',
      '-map',
      '0:a:0',
      '-f',
      'null',
      '-',
    ]);
    assert.match(
      await readFile(abs('out/ts/ts_nodrm/subs/en/subtitles.vtt'), 'utf8'),
      /X-TIMESTAMP-MAP=MPEGTS:\d+/,
    );
    assert.deepEqual(
      (await listAssetRenditions(abs('out/ts'), 'ts')).map((r) => [r.kind, r.name, r.segment_format]),
      [
        ['video', '240p', 'ts'],
        ['audio', 'audio', 'ts'],
        ['subtitles', 'subs/en', 'ts'],
      ],
    );
    assert.ok(!(await readdir(abs('out/ts'))).includes('keys.json'));

    // drmswitch builds the AES variant of this TS asset and carries the subtitles over.
    await run({ content_id: 'ts', folder: 'out/ts', drm: ['aes'] }, 'drmswitch');
    assert.match(
      await readFile(abs('out/ts/ts_aes.m3u8'), 'utf8'),
      /TYPE=SUBTITLES,GROUP-ID="subs",NAME="English"/,
    );
    assert.match(
      await readFile(abs('out/ts/ts_aes.m3u8'), 'utf8'),
      /TYPE=AUDIO,GROUP-ID="audio"[^\n]*URI="ts_aes\/audio\/index.m3u8"/,
    );
    assert.match(await readFile(abs('out/ts/ts_aes/audio/index.m3u8'), 'utf8'), /#EXT-X-KEY:METHOD=AES-128/);
    // createmp4 on the TS asset muxes its audio group in.
    await run({ source_folder: 'out/ts', content_id: 'ts', mp4_filename: 'ts.mp4' }, 'createmp4');
    assert.deepEqual((await probeMedia(abs('out/ts/ts.mp4'))).streams.map((s) => s.kind).sort(), [
      'audio',
      'video',
    ]);
    const vtt = await readFile(abs('out/ts/ts_aes/subs/en/subtitles.vtt'), 'utf8');
    assert.equal(vtt.match(/X-TIMESTAMP-MAP/g)?.length, 1);
  });

  it("createmp4 takes a CMAF asset's audio group; drmswitch refuses CMAF assets with a reason", async () => {
    await run({ source_folder: 'out/film', content_id: 'film', mp4_filename: 'film.mp4' }, 'createmp4');
    const mp4 = await probeMedia(abs('out/film/film.mp4'));
    assert.deepEqual(mp4.streams.map((s) => s.kind).sort(), ['audio', 'video']);
    assert.equal(mp4.video?.height, 360);
    const { id } = await run({ content_id: 'film', folder: 'out/film', drm: ['aes'] }, 'drmswitch', true);
    const logs = JSON.stringify((await api('GET', `/logs/${id}?show_all=1`)).body);
    assert.match(logs, /is a CMAF asset; drmswitch switches MPEG-TS assets/);
  });
});
