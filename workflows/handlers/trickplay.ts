/**
 * trickplay (and vodstream's `trickplay` task): trick play for an HLS and/or DASH VOD asset folder.
 * - For every clear video rendition (MPEG-TS, or fMP4/CMAF with its init segment) and every CENC
 *   CMAF rendition (`SAMPLE-AES-CTR`, vodstream's `cenc` variant) named by a multi-variant
 *   playlist in the folder, an I-frame playlist `iframes.m3u8` beside its media playlist (a CENC
 *   one with the media playlist's `EXT-X-KEY`), listed in the multi-variant playlist as an
 *   `EXT-X-I-FRAME-STREAM-INF` (see src/media/trickplay.ts). AES-128 renditions (whole segments
 *   encrypted) are skipped with a log line saying so.
 * - With `trickplay_thumbnails`, sprite sheets `<content_id>_trickplay/sheet_NNNNN.jpg` of
 *   `trickplay_tile_columns` x `trickplay_tile_rows` thumbnails, one every
 *   `trickplay_thumbnail_interval` seconds (the first frame at or after each cue start), taken
 *   from the highest clear video rendition (else an AES-128 one, which FFmpeg decrypts through
 *   its key URI; for CENC only, vodstream's staged clear encode or the folder's source video; a
 *   DASH-only asset's highest clear Representation), and a WebVTT index
 *   `<content_id>_trickplay.vtt` pointing into them with `#xywh=` fragments.
 * - In every MPD of the folder: a trick-mode AdaptationSet per video AdaptationSet (key-frame byte
 *   ranges of its CMAF segments; CENC sets keep their ContentProtection) and, with thumbnails, a
 *   thumbnail tile AdaptationSet over the sheets (src/media/dash-trickplay.ts).
 * Inputs: `plan` (optional; vodstream's probe output: its output folder and content id are used).
 */
import { mkdir, readdir, readFile, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import { PermanentTaskError } from '../../src/errors/task-errors.js';
import {
  fmp4TrickSegments,
  mpdPeriodBase,
  readMpdVideoSets,
  TRICKMODE_SCHEME,
  writeMpdTrickplay,
  type ThumbnailTiles,
  type TrickModeSet,
} from '../../src/media/dash-trickplay.js';
import { runFfmpeg } from '../../src/media/ffmpeg.js';
import { reportFfmpegProgress } from '../../src/media/ffmpeg-progress.js';
import { parsePlaylist } from '../../src/media/hls-playlist.js';
import { probeMedia } from '../../src/media/probe.js';
import {
  addIFrameStreams,
  buildIFramePlaylist,
  spriteLayout,
  vttTimestamp,
  type IFrameStream,
} from '../../src/media/trickplay.js';
import type { HandlerContext } from '../../src/workflows/types.js';
import { contentId, optBool, optNumber, outputFolder, reqString, rel } from './lib/params.js';
import { writeFileAtomic } from './lib/vod.js';
import { pickSourceVideo } from './vod-probe.js';

/** Name of the I-frame playlist written beside each media playlist. */
export const IFRAME_PLAYLIST = 'iframes.m3u8';

/** JPEG `-q:v` (2 best … 31 worst) for `trickplay_thumbnail_quality` 1 (worst) … 100 (best). */
export function jpegQscale(quality: number): number {
  return Math.round(31 - ((quality - 1) * 29) / 99);
}

/** @returns `{message, files, metadata}`: files are client-relative. */
export default async function trickplay(ctx: HandlerContext): Promise<unknown> {
  const p = ctx.parameters;
  const plan = ctx.inputs.plan as
    { output_folder?: string; content_id?: string; staging?: string; rungs?: { name: string }[] } | undefined;
  const fromVodstream = !!plan && typeof plan.output_folder === 'string';
  const id = fromVodstream ? plan.content_id! : contentId(p);
  const folderRel = fromVodstream ? plan.output_folder! : reqString(p, 'source_folder');
  const outRel = fromVodstream ? plan.output_folder! : outputFolder(p, folderRel);
  const thumbs = optBool(p, 'trickplay_thumbnails', fromVodstream ? optBool(p, 'trickplay', false) : true);
  const interval = optNumber(p, 'trickplay_thumbnail_interval', 10, { min: 0.1, max: 3600 });
  const size = optNumber(p, 'trickplay_thumbnail_size', 0, { min: 0, max: 4096, integer: true });
  const quality = optNumber(p, 'trickplay_thumbnail_quality', 30, { min: 1, max: 100, integer: true });
  const cols = optNumber(p, 'trickplay_tile_columns', 10, { min: 1, max: 100, integer: true });
  const rowsMax = optNumber(p, 'trickplay_tile_rows', 10, { min: 1, max: 100, integer: true });
  const dashTrickMode = optBool(p, 'trickplay_dash_trick_mode', false);
  const folder = await ctx.storage.resolve(folderRel);
  const out = await ctx.storage.resolve(outRel);
  const names = await readdir(folder).catch(() => {
    throw new PermanentTaskError(
      `source_folder ${JSON.stringify(folderRel)} does not exist in the client storage`,
    );
  });

  // Every file the MPDs name must lie inside the client storage: checked before anything is
  // written, so a refused MPD fails the task before the HLS I-frame playlists are made.
  if (dashTrickMode) await checkMpdPaths(ctx, folder, names);

  // Multi-variant playlists of the folder and the media playlists they name.
  const masters: {
    file: string;
    text: string;
    variants: {
      media: string;
      uri: string;
      bw: number;
      w: number | null;
      h: number | null;
      codecs: string | null;
    }[];
  }[] = [];
  for (const n of names.filter((f) => f.endsWith('.m3u8')).sort()) {
    const file = path.join(folder, n);
    const text = await readFile(file, 'utf8');
    const pl = parsePlaylist(text, n);
    if (pl.kind !== 'master') continue;
    masters.push({
      file,
      text,
      variants: pl.variants
        .filter((v) => !/^[a-z]+:/i.test(v.uri))
        .map((v) => ({
          media: path.resolve(folder, v.uri),
          uri: v.uri,
          bw: v.bandwidth,
          w: v.width,
          h: v.height,
          codecs: v.codecs,
        })),
    });
  }
  const files: string[] = [];
  const built = new Map<string, { bandwidth: number; entries: number; cenc: boolean } | null>();
  let iframeCount = 0;
  for (const m of masters) {
    const streams: IFrameStream[] = [];
    for (const v of m.variants) {
      if (!built.has(v.media)) {
        await ctx.storage.resolve(rel(ctx, v.media));
        const r = await buildIFramePlaylist(v.media, { signal: ctx.signal });
        if ('skipped' in r) {
          ctx.log(`no I-frame playlist for ${rel(ctx, v.media)}: ${r.skipped}`);
          built.set(v.media, null);
        } else {
          const target = path.join(path.dirname(v.media), IFRAME_PLAYLIST);
          await writeFileAtomic(target, r.text);
          files.push(rel(ctx, target));
          iframeCount += 1;
          built.set(v.media, {
            bandwidth: r.bandwidth,
            entries: r.entries.length,
            cenc: r.method === 'SAMPLE-AES-CTR',
          });
          ctx.log(
            `I-frame playlist ${rel(ctx, target)}: ${r.entries.length} key frames, peak ${Math.round(r.bandwidth / 1000)} kb/s` +
              (r.method ? ` (CENC: the media playlist's EXT-X-KEY carried over)` : '') +
              (r.leftOut
                ? ` (${r.leftOut} key frame(s) inside fMP4 fragments left out: no range holds them alone)`
                : ''),
          );
        }
      }
      const b = built.get(v.media);
      if (!b) continue;
      const videoCodecs = (v.codecs ?? '')
        .split(',')
        .map((c) => c.trim())
        .filter((c) => /^(avc|hvc|hev)/.test(c))
        .join(',');
      streams.push({
        uri: path.posix.join(path.posix.dirname(v.uri), IFRAME_PLAYLIST),
        bandwidth: b.bandwidth,
        width: v.w,
        height: v.h,
        codecs: videoCodecs || null,
      });
    }
    const next = addIFrameStreams(m.text, streams);
    if (next !== m.text) await writeFileAtomic(m.file, next);
  }

  let metadata: Record<string, unknown> = { iframe_playlists: iframeCount };
  let sheetInfo: {
    dir: string;
    files: string[];
    columns: number;
    rows: number;
    w: number;
    h: number;
  } | null = null;
  if (thumbs) {
    // The highest video rendition (any master): clear first, then skipped ones (AES-128, which
    // FFmpeg reads through its key URI), CENC last (FFmpeg 5.1 cannot read fragmented CENC: then
    // the staged clear encode or a source video is read instead); else a source video in the folder.
    const rank = (media: string): number => {
      const b = built.get(media);
      return b ? (b.cenc ? 0 : 2) : 1;
    };
    const candidates = masters
      .flatMap((m) => m.variants)
      .sort((a, b) => rank(b.media) - rank(a.media) || b.bw - a.bw);
    let input: string | null = candidates[0]?.media ?? null;
    let inputArgs: string[] = input ? ['-allowed_extensions', 'ALL'] : [];
    if (input && rank(input) === 0) {
      // Only CENC renditions: vodstream's staged clear encode of the top rung has the same
      // frames; else a source video in the folder.
      const top = fromVodstream ? plan?.rungs?.[0]?.name : undefined;
      const staged =
        top && plan?.staging ? path.join(await ctx.storage.resolve(plan.staging), `${top}.mp4`) : null;
      if (staged && (await stat(staged).catch(() => null))?.isFile()) input = staged;
      else
        input = (
          await pickSourceVideo(ctx, folderRel).catch(() => {
            throw new PermanentTaskError(
              `${folderRel} has only CENC video renditions, which FFmpeg cannot read, and no clear source video to take thumbnails from; set trickplay_thumbnails to false or add a clear variant`,
            );
          })
        ).file;
      inputArgs = [];
    }
    // A DASH-only asset has no HLS playlists: its highest clear Representation, through a media
    // playlist written in the work folder over the asset's own init segment and segments.
    if (!input) input = await dashThumbnailSource(ctx, folder, names);
    if (!input) {
      input = (await pickSourceVideo(ctx, folderRel)).file;
      inputArgs = [];
    }
    const info = await probeMedia(input, { signal: ctx.signal, inputArgs });
    const v = info.video;
    if (!v || !(info.durationSeconds > 0))
      throw new PermanentTaskError(`${rel(ctx, input)} has no video to take thumbnails from`);
    const duration = info.durationSeconds;
    const srcW = v.width ?? 16;
    const srcH = v.height ?? 9;
    const scale = size > 0 ? size / Math.max(srcW, srcH) : 1;
    const w = Math.max(2, Math.round((srcW * scale) / 2) * 2);
    const h = Math.max(2, Math.round((srcH * scale) / 2) * 2);
    const count = Math.max(1, Math.ceil(duration / interval - 1e-6));
    const columns = Math.min(cols, count);
    const layout = spriteLayout(count, columns, rowsMax);
    const rows = Math.min(rowsMax, Math.ceil(count / columns));
    const dirName = `${id}_trickplay`;
    const dir = path.join(out, dirName);
    await rm(dir, { recursive: true, force: true });
    await mkdir(dir, { recursive: true });
    await runFfmpeg(
      [
        ...inputArgs,
        '-i',
        input,
        '-map',
        '0:v:0',
        '-an',
        '-vf',
        `setpts=PTS-STARTPTS,select='gte(t\\,selected_n*${interval})',scale=${w}:${h},tile=${columns}x${rows}`,
        '-vsync',
        'vfr',
        '-q:v',
        String(jpegQscale(quality)),
        '-start_number',
        '1',
        path.join(dir, 'sheet_%05d.jpg'),
      ],
      {
        signal: ctx.signal,
        durationSeconds: duration,
        onProgress: reportFfmpegProgress(ctx, { label: 'trickplay thumbnails' }),
      },
    );
    const cues = ['WEBVTT', ''];
    for (let i = 0; i < count; i++) {
      const sheet = Math.floor(i / layout.perSheet);
      const k = i % layout.perSheet;
      cues.push(
        `${vttTimestamp(i * interval)} --> ${vttTimestamp(Math.min((i + 1) * interval, duration))}`,
        `${dirName}/sheet_${String(sheet + 1).padStart(5, '0')}.jpg#xywh=${(k % columns) * w},${Math.floor(k / columns) * h},${w},${h}`,
        '',
      );
    }
    const vtt = path.join(out, `${id}_trickplay.vtt`);
    await writeFileAtomic(vtt, cues.join('\n'));
    const sheets = (await readdir(dir)).filter((f) => f.endsWith('.jpg')).sort();
    files.push(rel(ctx, vtt), ...sheets.map((s) => rel(ctx, path.join(dir, s))));
    sheetInfo = { dir, files: sheets, columns, rows, w, h };
    ctx.log(
      `${count} thumbnails of ${w}x${h} every ${interval} s in ${sheets.length} sheet(s) of ${columns}x${rows}: ${rel(ctx, vtt)}`,
    );
    metadata = {
      ...metadata,
      thumbnails: count,
      sheets: sheets.length,
      columns,
      rows,
      width: w,
      height: h,
      interval,
      duration,
    };
  }
  const dash = await addDashTrickplay(ctx, folder, names, sheetInfo, interval, dashTrickMode);
  metadata = { ...metadata, dash_trick_mode_sets: dash.trickSets, dash_manifests: dash.files.length };
  if (iframeCount === 0 && !thumbs && dash.trickSets === 0)
    throw new PermanentTaskError(
      `nothing made: ${folderRel} has no clear or CENC video rendition (MPEG-TS or fMP4), no DASH video set with CMAF segments, and trickplay_thumbnails is false`,
    );
  return { message: files[0] ?? '', files, metadata };
}

/**
 * Checks that every init segment and segment named by the single-Period MPDs at the top of
 * `folder` lies inside the client storage (local ones; remote ones are skipped later).
 * @throws PermanentTaskError from `ctx.storage.resolve` for a path that leaves the storage.
 */
async function checkMpdPaths(ctx: HandlerContext, folder: string, names: string[]): Promise<void> {
  for (const n of names.filter((f) => f.endsWith('.mpd'))) {
    const text = await readFile(path.join(folder, n), 'utf8');
    if ((text.match(/<Period\b/g) ?? []).length !== 1) continue;
    const base = path.resolve(folder, mpdPeriodBase(text));
    for (const set of readMpdVideoSets(text))
      for (const r of set.representations)
        for (const u of [r.initialization, ...r.segments])
          if (!/^[a-z]+:/i.test(u)) await ctx.storage.resolve(rel(ctx, path.resolve(base, u)));
  }
}

/**
 * Adds trick play to every DASH MPD at the top of `folder` (src/media/dash-trickplay.ts): with
 * `trickMode` (the `trickplay_dash_trick_mode` parameter) a trick-mode AdaptationSet per video
 * AdaptationSet (key-frame byte ranges of its fMP4 segments, its ContentProtection copied, so CENC
 * sets get one too), and a thumbnail tile AdaptationSet over the sprite sheets when they were made.
 * Trick-mode sets of an earlier run are removed when `trickMode` is off. The files the MPDs name
 * were checked against the client storage first ({@link checkMpdPaths}). Each MPD is rewritten
 * atomically; the key frames of a Representation are read once even when two MPDs (the active
 * copy and its variant) name it.
 * @returns the client-relative MPDs rewritten and how many trick-mode sets they got in all.
 */
async function addDashTrickplay(
  ctx: HandlerContext,
  folder: string,
  names: string[],
  sheets: { dir: string; files: string[]; columns: number; rows: number; w: number; h: number } | null,
  interval: number,
  trickMode: boolean,
): Promise<{ files: string[]; trickSets: number }> {
  const files: string[] = [];
  let trickSets = 0;
  const cache = new Map<string, Awaited<ReturnType<typeof fmp4TrickSegments>> | null>();
  for (const n of names.filter((f) => f.endsWith('.mpd')).sort()) {
    const file = path.join(folder, n);
    const text = await readFile(file, 'utf8');
    if ((text.match(/<Period\b/g) ?? []).length !== 1) {
      ctx.log(`no DASH trick play for ${n}: only an MPD with one Period is rewritten`);
      continue;
    }
    const base = path.resolve(folder, mpdPeriodBase(text));
    const trick: TrickModeSet[] = [];
    // Trick-mode sets only when asked (trickplay_dash_trick_mode); an earlier run's are removed.
    for (const set of trickMode ? readMpdVideoSets(text) : []) {
      for (const u of set.unreadable)
        ctx.log(`no DASH trick mode for ${n} representation ${u.id}: ${u.reason}`);
      if (set.id === null) {
        ctx.log(`no DASH trick mode for a video AdaptationSet of ${n}: it has no id to refer to`);
        continue;
      }
      const t: TrickModeSet = {
        mainId: set.id,
        contentProtection: set.contentProtection,
        representations: [],
      };
      for (const r of set.representations) {
        const init = path.resolve(base, r.initialization);
        if (/^[a-z]+:/i.test(r.initialization) || r.segments.some((u) => /^[a-z]+:/i.test(u))) {
          ctx.log(`no DASH trick mode for ${n} representation ${r.id}: its segments are not local files`);
          continue;
        }
        if (!cache.has(init)) {
          const k = await fmp4TrickSegments(base, r.initialization, r.segments);
          cache.set(init, k.segments.length ? k : null);
          if (k.leftOut)
            ctx.log(
              `${n} representation ${r.id}: ${k.leftOut} key frame(s) inside fMP4 fragments left out of the trick mode set`,
            );
        }
        const k = cache.get(init);
        if (!k) {
          ctx.log(`no DASH trick mode for ${n} representation ${r.id}: no fragment starts with a key frame`);
          continue;
        }
        if (k.timescale !== r.timescale)
          ctx.log(
            `${n} representation ${r.id}: MPD timescale ${r.timescale}, init segment ${k.timescale}; the init segment's is used`,
          );
        t.representations.push({
          main: r,
          timescale: k.timescale,
          initialization: r.initialization,
          segments: k.segments,
        });
      }
      if (t.representations.length) trick.push(t);
    }
    let tiles: ThumbnailTiles | null = null;
    if (sheets && sheets.files.length) {
      const sizes = await Promise.all(
        sheets.files.map(async (f) => (await stat(path.join(sheets.dir, f))).size),
      );
      const relDir = path.relative(base, sheets.dir).split(path.sep).join('/');
      tiles = {
        media: `${relDir}/sheet_$Number%05d$.jpg`,
        startNumber: 1,
        sheets: sheets.files.length,
        columns: sheets.columns,
        rows: sheets.rows,
        tileWidth: sheets.w,
        tileHeight: sheets.h,
        interval,
        maxSheetBytes: Math.max(...sizes),
      };
    }
    if (!trick.length && !tiles && !text.includes(TRICKMODE_SCHEME)) continue;
    const next = writeMpdTrickplay(text, trick, tiles);
    if (next !== text) await writeFileAtomic(file, next);
    files.push(rel(ctx, file));
    trickSets += trick.length;
    const cenc = trick.some((t) => t.contentProtection.length > 0);
    ctx.log(
      `DASH ${n}: ${trick.length} trick mode AdaptationSet(s)` +
        `${trick.length ? ` (${trick.map((t) => `${t.representations.length} representation(s), ${t.representations[0]!.segments.length} key frames`).join('; ')}${cenc ? ", with the main set's ContentProtection" : ''})` : ''}` +
        `${tiles ? `, thumbnail tiles over ${tiles.sheets} sheet(s) of ${tiles.columns}x${tiles.rows}` : ''}`,
    );
  }
  return { files, trickSets };
}

/**
 * For thumbnails of a DASH-only asset: the highest-bandwidth Representation of a clear video
 * AdaptationSet (no ContentProtection) of the folder's MPDs, as an HLS media playlist in
 * `ctx.workdir` (`EXT-X-MAP` and segments by absolute path, durations from the SegmentTimeline),
 * which FFmpeg reads like a rendition's own playlist.
 * @returns the playlist path, or null when no MPD has a clear video Representation.
 */
async function dashThumbnailSource(
  ctx: HandlerContext,
  folder: string,
  names: string[],
): Promise<string | null> {
  let best: {
    base: string;
    rep: ReturnType<typeof readMpdVideoSets>[number]['representations'][number];
  } | null = null;
  for (const n of names.filter((f) => f.endsWith('.mpd')).sort()) {
    const text = await readFile(path.join(folder, n), 'utf8');
    const base = path.resolve(folder, mpdPeriodBase(text));
    for (const set of readMpdVideoSets(text)) {
      if (set.contentProtection.length) continue;
      for (const rep of set.representations)
        if (!best || Number(rep.attrs.bandwidth ?? 0) > Number(best.rep.attrs.bandwidth ?? 0))
          best = { base, rep };
    }
  }
  if (!best) return null;
  const { base, rep } = best;
  const local = (u: string): string => {
    if (/^[a-z]+:/i.test(u)) throw new PermanentTaskError(`DASH segment ${u} is not a local file`);
    return path.resolve(base, u);
  };
  for (const u of [rep.initialization, ...rep.segments]) await ctx.storage.resolve(rel(ctx, local(u)));
  const durations = rep.timeline.flatMap((r) => Array.from({ length: r.r + 1 }, () => r.d / rep.timescale));
  const lines = [
    '#EXTM3U',
    '#EXT-X-VERSION:7',
    `#EXT-X-TARGETDURATION:${Math.max(1, Math.ceil(Math.max(...durations) - 1e-3))}`,
    '#EXT-X-PLAYLIST-TYPE:VOD',
    `#EXT-X-MAP:URI="${local(rep.initialization)}"`,
    ...rep.segments.flatMap((u, i) => [`#EXTINF:${(durations[i] ?? 0).toFixed(6)},`, local(u)]),
    '#EXT-X-ENDLIST',
    '',
  ];
  const file = path.join(ctx.workdir, 'dash-thumbnail-source.m3u8');
  await writeFileAtomic(file, lines.join('\n'));
  ctx.log(
    `thumbnails from DASH representation ${rep.id} (${rel(ctx, local(rep.initialization))} and its segments)`,
  );
  return file;
}
