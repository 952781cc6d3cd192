/**
 * Trick play in DASH, end to end through the HTTP API of a real engine (PGlite store) with FFmpeg:
 * vodstream with `formats: ["hls", "dash"]`, clear + CENC CMAF and `trickplay: true`. The MPDs are
 * parsed with fast-xml-parser and checked against the files: the trick-mode AdaptationSet names
 * its main set, each `mediaRange` starts at a `moof` and covers that fragment's sync sample, the
 * ranges are the HLS I-frame playlist's entries, init + one range decodes as one frame of the
 * rendition's size, a CENC range decrypted with the job's key decodes to the clear range's frame,
 * and the thumbnail tile set's sheets and durations are the sheets written.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createDecipheriv } from 'node:crypto';
import { mkdir, readFile, readdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { XMLParser, XMLValidator } from 'fast-xml-parser';
import { pino } from 'pino';
import { THUMBNAIL_TILE_SCHEME, TRICKMODE_SCHEME } from '../../src/media/dash-trickplay.js';
import { runFfmpeg, runFfprobe } from '../../src/media/ffmpeg.js';
import { find, fragmentSamples, initTrackInfo, readBoxes } from '../../src/media/fmp4.js';
import { probeMedia } from '../../src/media/probe.js';
import { startTaskEngine, type RunningTaskEngine } from '../../src/server.js';
import { startCallbackReceiver, type CallbackReceiver } from '../helpers/callback-receiver.js';
import { testConfig, writeSettings } from '../helpers/engine.js';
import { trackRunning } from '../helpers/leak-guard.js';
import { createTestStore, type TestStore } from '../helpers/stores.js';
import { waitFor } from '../helpers/wait-for.js';
import trickplay from '../../workflows/handlers/trickplay.js';
import { runHandlerDirect } from './media-helpers.js';

const exec = promisify(execFile);
const CLIENT = 'dashtrick-admin';
const KEY = 'dashtrick-admin-key-0123456789abcdef';
const SECONDS = 6;
const SEG = 2;
const INTERVAL = 1;

interface JobReply {
  id: number;
  queue_state: string;
  failed: boolean;
  tasks: { name: string; state: string; error: string | null }[];
}

type Node = Record<string, unknown>;
/** The children named `name` of a parsed element (fast-xml-parser gives one object or a list). */
const all = (n: Node | undefined, name: string): Node[] => {
  const v = n?.[name];
  return v === undefined ? [] : Array.isArray(v) ? (v as Node[]) : [v as Node];
};
const attr = (n: Node, name: string): string | undefined => n[`@_${name}`] as string | undefined;

function parseMpd(text: string): Node {
  assert.equal(XMLValidator.validate(text), true, 'the MPD is well-formed XML');
  const doc = new XMLParser({ ignoreAttributes: false, parseAttributeValue: false }).parse(text) as Node;
  return all(all(doc, 'MPD')[0], 'Period')[0]!;
}

/** The `<S>` elements of a SegmentTimeline as a list of `[t, d]`, repeats expanded. */
function expand(timeline: Node): [number, number][] {
  const out: [number, number][] = [];
  for (const s of all(timeline, 'S')) {
    let t =
      attr(s, 't') !== undefined ? Number(attr(s, 't')) : out.length ? out.at(-1)![0] + out.at(-1)![1] : 0;
    for (let i = 0; i <= Number(attr(s, 'r') ?? 0); i++) {
      out.push([t, Number(attr(s, 'd'))]);
      t += Number(attr(s, 'd'));
    }
  }
  return out;
}

const essential = (n: Node): Node[] => all(n, 'EssentialProperty');

/**
 * Decrypts the first sample of a CENC trick-mode range (`moof` + `mdat` header + key frame) with
 * `key`, written for this test from ISO/IEC 23001-7: the IV and subsample map are the `senc`'s
 * first entry; `senc`, `saiz` and `saio` are then renamed `free` (same sizes) because FFmpeg 5.1
 * refuses encryption info for samples the range does not hold.
 */
function decryptRange(range: Buffer, key: Buffer | null): Buffer {
  const buf = Buffer.from(range);
  // The range ends inside the mdat: read the moof only.
  const moof = readBoxes(buf, 0, buf.readUInt32BE(0))[0]!;
  assert.equal(moof.type, 'moof');
  const traf = readBoxes(buf, moof.body, moof.end).find((b) => b.type === 'traf')!;
  const inTraf = readBoxes(buf, traf.body, traf.end);
  const trun = inTraf.find((b) => b.type === 'trun')!;
  const senc = inTraf.find((b) => b.type === 'senc');
  assert.ok(senc, 'the range carries the fragment senc');
  const at = moof.start + buf.readInt32BE(trun.body + 8);
  if (key) {
    const iv = Buffer.concat([buf.subarray(senc.body + 8, senc.body + 16), Buffer.alloc(8)]);
    const d = createDecipheriv('aes-128-ctr', key, iv);
    assert.ok(buf.readUInt32BE(senc.body) & 0x2, 'video samples are encrypted by subsamples');
    const n = buf.readUInt16BE(senc.body + 16);
    let o = at;
    for (let i = 0; i < n; i++) {
      const q = senc.body + 18 + i * 6;
      o += buf.readUInt16BE(q);
      const prot = buf.readUInt32BE(q + 2);
      d.update(buf.subarray(o, o + prot)).copy(buf, o);
      o += prot;
    }
  }
  for (const b of inTraf)
    if (['senc', 'saiz', 'saio'].includes(b.type)) buf.write('free', b.start + 4, 'latin1');
  return buf;
}

/** A CENC init segment made clear: `encv` back to its `frma` format, `sinf` and `pssh` renamed `free`. */
function clearInit(init: Buffer): Buffer {
  const buf = Buffer.from(init);
  const stsd = find(buf, 'moov/trak/mdia/minf/stbl/stsd')!;
  const entry = readBoxes(buf, stsd.body + 8, stsd.end)[0]!;
  const sinf = readBoxes(buf, entry.body + 78, entry.end).find((b) => b.type === 'sinf')!;
  const frma = readBoxes(buf, sinf.body, sinf.end).find((b) => b.type === 'frma')!;
  buf.write(buf.toString('latin1', frma.body, frma.body + 4), entry.start + 4, 'latin1');
  buf.write('free', sinf.start + 4, 'latin1');
  const pssh = find(buf, 'moov/pssh');
  if (pssh) buf.write('free', pssh.start + 4, 'latin1');
  return buf;
}

/** The MD5s of a file's decoded video frames (ffmpeg framemd5), one a line; '' when it does not decode. */
async function frameMd5s(file: string): Promise<string> {
  try {
    const { stdout } = await exec('ffmpeg', [
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
    return stdout
      .split('\n')
      .filter((l) => l && !l.startsWith('#'))
      .map((l) => l.split(',').at(-1)!.trim())
      .join('\n');
  } catch {
    return '';
  }
}

describe('vodstream DASH trick play [pglite]', () => {
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

  /** Runs a vodstream job through the API and waits for it; fails with its tasks and log when it fails. */
  const runJob = async (parameters: Record<string, unknown>): Promise<void> => {
    const r = await api<{ id: number }>('POST', '/job', {
      job: { workflow: 'vodstream' },
      parameters: { rest_endpoints: [receiver.url('/cb')], ...parameters },
    });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    const job = await waitFor(
      async () => {
        const j = await api<JobReply>('GET', `/jobs/${r.body.id}`);
        return ['completed', 'broken'].includes(j.body.queue_state) ? j.body : null;
      },
      { timeoutMs: 180_000, intervalMs: 200, what: `job ${r.body.id}` },
    );
    const logs = (await api<{ message: string }[]>('GET', `/logs/${r.body.id}?show_all=1`)).body;
    assert.equal(job.failed, false, `${JSON.stringify(job.tasks)}\n${logs.map((l) => l.message).join('\n')}`);
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
    await mkdir(abs('in/clip'), { recursive: true });
    await runFfmpeg([
      '-f',
      'lavfi',
      '-i',
      `testsrc2=size=320x180:rate=25:duration=${SECONDS}`,
      '-f',
      'lavfi',
      '-i',
      `sine=frequency=440:sample_rate=48000:duration=${SECONDS}`,
      '-c:v',
      'libx264',
      '-preset',
      'ultrafast',
      '-pix_fmt',
      'yuv420p',
      '-c:a',
      'aac',
      '-shortest',
      abs('in/clip/source.mp4'),
    ]);
  });

  after(async () => {
    await running?.stop();
    untrack?.();
    await receiver?.close();
    await store?.dispose();
  });

  it('adds trick-mode sets over the key frames of the CMAF segments and a thumbnail tile set to the MPDs', async () => {
    await runJob({
      content_id: 'clip',
      source_folder: 'in/clip',
      output_folder: 'out/clip',
      renditions: [
        { height: 180, video_bitrate_kbps: 300 },
        { height: 144, video_bitrate_kbps: 200 },
      ],
      formats: ['hls', 'dash'],
      drm: ['clear', 'cenc'],
      segment_duration: SEG,
      create_thumbnail: false,
      trickplay: true,
      trickplay_dash_trick_mode: true,
      trickplay_thumbnail_interval: INTERVAL,
      trickplay_thumbnail_size: 64,
      trickplay_tile_columns: 2,
      trickplay_tile_rows: 2,
    });
    const out = abs('out/clip');
    const scratch = abs('scratch');
    await mkdir(scratch, { recursive: true });

    const period = parseMpd(await readFile(path.join(out, 'clip_nodrm.mpd'), 'utf8'));
    assert.equal(all(period, 'BaseURL')[0], 'clip_nodrm/');
    const base = path.join(out, 'clip_nodrm');
    const sets = all(period, 'AdaptationSet');
    // Everything written before stays, in its place; the trick-mode and image sets come last.
    assert.deepEqual(
      sets.map((s) => attr(s, 'contentType')),
      ['video', 'audio', 'video', 'image'],
    );
    assert.equal(new Set(sets.map((s) => attr(s, 'id'))).size, sets.length, 'AdaptationSet ids are unique');
    const [main, , trick, image] = sets as [Node, Node, Node, Node];
    assert.equal(essential(main).length, 0);
    assert.deepEqual(
      essential(trick).map((e) => [attr(e, 'schemeIdUri'), attr(e, 'value')]),
      [[TRICKMODE_SCHEME, attr(main, 'id')]],
      'the trick-mode set names the main set',
    );
    const mainReps = all(main, 'Representation');
    const trickReps = all(trick, 'Representation');
    assert.deepEqual(
      trickReps.map((t) => attr(t, 'id')),
      mainReps.map((m) => `${attr(m, 'id')}_trick`),
    );
    for (const [i, tr] of trickReps.entries()) {
      const mr = mainReps[i]!;
      const name = attr(mr, 'id')!;
      for (const a of ['codecs', 'width', 'height']) assert.equal(attr(tr, a), attr(mr, a), `${name} ${a}`);
      assert.equal(attr(tr, 'codingDependency'), 'false');
      // 2 s GOPs at 25 fps: 50 frames from one key frame to the next.
      assert.equal(attr(tr, 'maxPlayoutRate'), String(SEG * 25));
      assert.ok(Number(attr(tr, 'bandwidth')) > 0);
      const list = all(tr, 'SegmentList')[0]!;
      const tmpl = all(mr, 'SegmentTemplate')[0]!;
      assert.equal(attr(list, 'timescale'), attr(tmpl, 'timescale'), `${name}: the main set's timescale`);
      assert.deepEqual(
        expand(all(list, 'SegmentTimeline')[0]!),
        expand(all(tmpl, 'SegmentTimeline')[0]!),
        `${name}: the trick timeline is the main timeline (one key frame per segment)`,
      );
      const initUri = attr(all(list, 'Initialization')[0]!, 'sourceURL')!;
      assert.equal(initUri, `${name}/init.mp4`);
      const init = await readFile(path.join(base, initUri));
      const { trex } = initTrackInfo(init);
      const urls = all(list, 'SegmentURL');
      // The same ranges as the HLS I-frame playlist of the rendition.
      const hls = await readFile(path.join(base, name, 'iframes.m3u8'), 'utf8');
      const hlsRanges = [...hls.matchAll(/#EXT-X-BYTERANGE:(\d+)@(\d+)\n(\S+)/g)].map(
        (m) => `${name}/${m[3]}@${Number(m[2])}-${Number(m[2]) + Number(m[1]) - 1}`,
      );
      assert.equal(urls.length, SECONDS / SEG);
      assert.equal(urls.length, hlsRanges.length, `${name}: as many ranges as I-frame playlist entries`);
      assert.deepEqual(
        urls.map((u) => `${attr(u, 'media')}@${attr(u, 'mediaRange')}`),
        hlsRanges,
      );
      for (const [k, u] of urls.entries()) {
        const [a, b] = attr(u, 'mediaRange')!.split('-').map(Number) as [number, number];
        const file = await readFile(path.join(base, attr(u, 'media')!));
        assert.ok(b < file.length, `range ${k} lies inside the file`);
        assert.equal(file.toString('latin1', a + 4, a + 8), 'moof', `${name} range ${k} starts at a moof`);
        const frag = fragmentSamples(file, trex).find((f) => f.moofStart === a)!;
        assert.ok(frag.samples[0]!.sync, `${name} range ${k}: its first sample is a sync sample`);
        assert.equal(
          b + 1,
          frag.samples[0]!.offset + frag.samples[0]!.size,
          'the range ends with the key frame',
        );
        // init + the range: exactly one frame, of the rendition's size.
        const cut = path.join(scratch, `${name}_${k}.mp4`);
        await writeFile(cut, Buffer.concat([init, file.subarray(a, b + 1)]));
        const probed = JSON.parse(
          await runFfprobe([
            '-select_streams',
            'v:0',
            '-show_frames',
            '-show_entries',
            'frame=key_frame,width,height',
            '-of',
            'json',
            cut,
          ]),
        ) as { frames: { key_frame: number; width: number; height: number }[] };
        assert.deepEqual(
          probed.frames.map((f) => [f.key_frame, f.width, f.height]),
          [[1, Number(attr(mr, 'width')), Number(attr(mr, 'height'))]],
          `${name} range ${k} decodes as one key frame`,
        );
      }
    }

    // Thumbnail tiles: 6 s every 1 s = 6 thumbnails of 64x36, sheets of 2x2: 2 sheets.
    const sheets = (await readdir(path.join(out, 'clip_trickplay'))).filter((f) => f.endsWith('.jpg')).sort();
    assert.deepEqual(sheets, ['sheet_00001.jpg', 'sheet_00002.jpg']);
    assert.equal(attr(image, 'mimeType'), 'image/jpeg');
    const irep = all(image, 'Representation')[0]!;
    assert.deepEqual(
      essential(irep).map((e) => [attr(e, 'schemeIdUri'), attr(e, 'value')]),
      [[THUMBNAIL_TILE_SCHEME, '2x2']],
    );
    const sheet = await probeMedia(path.join(out, 'clip_trickplay', sheets[0]!));
    assert.deepEqual(
      [Number(attr(irep, 'width')), Number(attr(irep, 'height'))],
      [sheet.video?.width, sheet.video?.height],
    );
    assert.deepEqual([sheet.video?.width, sheet.video?.height], [2 * 64, 2 * 36]);
    const itmpl = all(image, 'SegmentTemplate')[0]!;
    const sheetSeconds = Number(attr(itmpl, 'duration')) / Number(attr(itmpl, 'timescale'));
    assert.equal(sheetSeconds, 4 * INTERVAL, 'one sheet lasts its thumbnails times the interval');
    const mpdRoot = all(
      new XMLParser({ ignoreAttributes: false }).parse(
        await readFile(path.join(out, 'clip_nodrm.mpd'), 'utf8'),
      ) as Node,
      'MPD',
    )[0]!;
    const total = Number(/PT([\d.]+)S/.exec(attr(mpdRoot, 'mediaPresentationDuration')!)![1]);
    assert.equal(
      Math.ceil(total / sheetSeconds - 1e-6),
      sheets.length,
      'the template addresses every sheet, no more',
    );
    const start = Number(attr(itmpl, 'startNumber'));
    for (let n = start; n < start + sheets.length; n++) {
      const uri = attr(itmpl, 'media')!.replace('$Number%05d$', String(n).padStart(5, '0'));
      const file = path.resolve(base, uri);
      assert.equal(path.dirname(file), path.join(out, 'clip_trickplay'), `${uri} resolves to a sheet`);
      assert.ok(sheets.includes(path.basename(file)));
    }
    // The VTT index agrees: 6 cues, 4 in the first sheet.
    const vtt = await readFile(path.join(out, 'clip_trickplay.vtt'), 'utf8');
    assert.equal([...vtt.matchAll(/sheet_00001\.jpg#xywh/g)].length, 4);
    assert.equal([...vtt.matchAll(/sheet_00002\.jpg#xywh/g)].length, 2);

    // CENC: the trick-mode set carries the main set's ContentProtection, over the encrypted segments.
    const ctext = await readFile(path.join(out, 'clip_cenc.mpd'), 'utf8');
    const csets = all(parseMpd(ctext), 'AdaptationSet');
    assert.deepEqual(
      csets.map((s) => attr(s, 'contentType')),
      ['video', 'audio', 'video', 'image'],
    );
    const protection = (s: Node): string =>
      JSON.stringify(
        all(s, 'ContentProtection').map((c) => [
          attr(c, 'schemeIdUri'),
          attr(c, 'cenc:default_KID'),
          c['cenc:pssh'],
        ]),
      );
    assert.ok(all(csets[0], 'ContentProtection').length >= 2);
    assert.equal(protection(csets[2]!), protection(csets[0]!), 'the same ContentProtection as the main set');
    // Each CENC range, decrypted with the job's key, decodes to the frame of the clear range;
    // without the key it does not.
    const keys = JSON.parse(await readFile(path.join(out, 'keys.json'), 'utf8')) as Record<string, string>;
    const key = Buffer.from(Object.values(keys)[0]!, 'hex');
    const cbase = path.join(out, 'clip_cenc');
    const clearReps = all(trick, 'Representation');
    for (const [i, tr] of all(csets[2], 'Representation').entries()) {
      const list = all(tr, 'SegmentList')[0]!;
      const clearList = all(clearReps[i], 'SegmentList')[0]!;
      const urls = all(list, 'SegmentURL');
      const clearUrls = all(clearList, 'SegmentURL');
      assert.equal(urls.length, SECONDS / SEG);
      assert.equal(urls.length, clearUrls.length);
      const init = clearInit(
        await readFile(path.join(cbase, attr(all(list, 'Initialization')[0]!, 'sourceURL')!)),
      );
      const plainInit = await readFile(
        path.join(base, attr(all(clearList, 'Initialization')[0]!, 'sourceURL')!),
      );
      const cut = async (dir: string, u: Node): Promise<Buffer> => {
        const [a, b] = attr(u, 'mediaRange')!.split('-').map(Number) as [number, number];
        return (await readFile(path.join(dir, attr(u, 'media')!))).subarray(a, b + 1);
      };
      for (const [k, u] of urls.entries()) {
        const range = await cut(cbase, u);
        assert.equal(range.toString('latin1', 4, 8), 'moof', `CENC range ${k} starts at a moof`);
        const ref = path.join(scratch, `clear_${i}_${k}.mp4`);
        await writeFile(ref, Buffer.concat([plainInit, await cut(base, clearUrls[k]!)]));
        const want = await frameMd5s(ref);
        assert.equal(want.split('\n').length, 1, 'the clear range is one frame');
        const dec = path.join(scratch, `dec_${i}_${k}.mp4`);
        await writeFile(dec, Buffer.concat([init, decryptRange(range, key)]));
        assert.equal(await frameMd5s(dec), want, `CENC ${attr(u, 'media')}: decrypted, the clear key frame`);
        const enc = path.join(scratch, `enc_${i}_${k}.mp4`);
        await writeFile(enc, Buffer.concat([init, decryptRange(range, null)]));
        assert.notEqual(
          await frameMd5s(enc),
          want,
          `CENC ${attr(u, 'media')}: not the picture without the key`,
        );
      }
    }
    // The active MPD is a byte copy of the active variant's, trick play included.
    assert.equal(await readFile(path.join(out, 'clip.mpd'), 'utf8'), ctext);
  });

  it('the trickplay workflow on the folder writes the same MPD again, and drops the image set without thumbnails', async () => {
    const out = abs('out/clip');
    const mpd = path.join(out, 'clip_nodrm.mpd');
    const before = await readFile(mpd, 'utf8');
    const params = {
      content_id: 'clip',
      source_folder: 'out/clip',
      trickplay_dash_trick_mode: true,
      trickplay_thumbnail_interval: INTERVAL,
      trickplay_thumbnail_size: 64,
      trickplay_tile_columns: 2,
      trickplay_tile_rows: 2,
    };
    const storageRoot = path.dirname(root);
    const again = await runHandlerDirect(trickplay, { storageRoot, client: CLIENT, parameters: params });
    assert.equal(await readFile(mpd, 'utf8'), before, 'running again gives the same MPD');
    assert.equal((again.output as { metadata: Record<string, unknown> }).metadata.dash_trick_mode_sets, 3);
    assert.ok(
      again.logs.some((l) => /^DASH clip_nodrm\.mpd: 1 trick mode AdaptationSet/.test(l)),
      again.logs.join('\n'),
    );
    await runHandlerDirect(trickplay, {
      storageRoot,
      client: CLIENT,
      parameters: { ...params, trickplay_thumbnails: false },
    });
    const text = await readFile(mpd, 'utf8');
    assert.deepEqual(
      all(parseMpd(text), 'AdaptationSet').map((s) => attr(s, 'contentType')),
      ['video', 'audio', 'video'],
    );
    // Only the image set went: the rest is byte for byte what it was.
    assert.equal(
      text,
      before.replace(/ *<AdaptationSet id="3" contentType="image"[\s\S]*?<\/AdaptationSet>\n/, ''),
    );
  });
  it('DASH only (no HLS playlists): the trick-mode set and thumbnails from the DASH segments', async () => {
    await runJob({
      content_id: 'dash',
      source_folder: 'in/clip',
      output_folder: 'out/dash',
      renditions: [{ height: 144, video_bitrate_kbps: 200 }],
      formats: ['dash'],
      drm: ['clear'],
      segment_duration: SEG,
      create_thumbnail: false,
      trickplay: true,
      trickplay_dash_trick_mode: true,
      trickplay_thumbnail_interval: INTERVAL,
      trickplay_thumbnail_size: 64,
      trickplay_tile_columns: 3,
      trickplay_tile_rows: 1,
    });
    const out = abs('out/dash');
    assert.ok(!(await readdir(path.join(out, 'dash_nodrm/144p'))).some((f) => f.endsWith('.m3u8')), 'no HLS');
    const sets = all(parseMpd(await readFile(path.join(out, 'dash_nodrm.mpd'), 'utf8')), 'AdaptationSet');
    assert.deepEqual(
      sets.map((s) => attr(s, 'contentType')),
      ['video', 'audio', 'video', 'image'],
    );
    const urls = all(all(all(sets[2], 'Representation')[0], 'SegmentList')[0], 'SegmentURL');
    assert.equal(urls.length, SECONDS / SEG);
    const [a, b] = attr(urls[1]!, 'mediaRange')!.split('-').map(Number) as [number, number];
    const base = path.join(out, 'dash_nodrm');
    const cut = path.join(out, 'range.mp4');
    await writeFile(
      cut,
      Buffer.concat([
        await readFile(path.join(base, '144p/init.mp4')),
        (await readFile(path.join(base, attr(urls[1]!, 'media')!))).subarray(a, b + 1),
      ]),
    );
    assert.equal((await frameMd5s(cut)).split('\n').filter(Boolean).length, 1, 'init + range is one frame');
    // 6 thumbnails in sheets of 3x1, taken from the DASH segments.
    const sheets = (await readdir(path.join(out, 'dash_trickplay'))).filter((f) => f.endsWith('.jpg'));
    assert.equal(sheets.length, 2);
    const itmpl = all(sets[3], 'SegmentTemplate')[0]!;
    assert.equal(Number(attr(itmpl, 'duration')) / Number(attr(itmpl, 'timescale')), 3 * INTERVAL);
    const sheet = await probeMedia(path.join(out, 'dash_trickplay', sheets[0]!));
    assert.deepEqual([sheet.video?.width, sheet.video?.height], [3 * 64, 36]);
  });
});
