/**
 * trickplay (and vodstream's `trickplay` task): trick play for an HLS VOD asset folder.
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
 *   its key URI; CENC last, or the folder's source video), and a WebVTT index
 *   `<content_id>_trickplay.vtt` pointing into them with `#xywh=` fragments.
 * Inputs: `plan` (optional; vodstream's probe output: its output folder and content id are used).
 */
import { mkdir, readdir, readFile, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import { PermanentTaskError } from '../../src/errors/task-errors.js';
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
  const folder = await ctx.storage.resolve(folderRel);
  const out = await ctx.storage.resolve(outRel);
  const names = await readdir(folder).catch(() => {
    throw new PermanentTaskError(
      `source_folder ${JSON.stringify(folderRel)} does not exist in the client storage`,
    );
  });

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
  if (iframeCount === 0 && !thumbs)
    throw new PermanentTaskError(
      `nothing made: ${folderRel} has no clear or CENC video rendition (MPEG-TS or fMP4) and trickplay_thumbnails is false`,
    );
  return { message: files[0] ?? '', files, metadata };
}
