/**
 * vodstream `probe`: finds the source video in `source_folder`, reads its shape with ffprobe,
 * checks the options against it (fail fast: no video, `thumbnail_time` past the end, unsupported
 * DRM) and returns the plan the later tasks follow.
 */
import { readdir, stat } from 'node:fs/promises';
import path from 'node:path';
import { PermanentTaskError } from '../../src/errors/task-errors.js';
import { probeMedia, type MediaInfo } from '../../src/media/probe.js';
import { formatSeconds, toOffsetSeconds } from '../../src/media/timecode.js';
import type { HandlerContext } from '../../src/workflows/types.js';
import {
  contentId,
  fileName,
  optBool,
  optNumber,
  optString,
  outputFolder,
  readDrm,
  reqString,
  reqTime,
  rel,
} from './lib/params.js';
import { chooseRungs, MAX_RENDITIONS, rungSlots } from './lib/ladder.js';
import { chooseLadder, type SubtitleTrack, type VodPlan } from './lib/vod.js';

/** File extensions taken as video sources, as the original product lists them (plus ts, webm). */
export const VIDEO_EXTENSIONS = ['.mp4', '.mov', '.mpg', '.mpeg', '.mkv', '.avi', '.m4v', '.ts', '.webm'];

/**
 * Picks the source video of a folder (or the file itself): the largest file with a video
 * extension that ffprobe reads with a video stream.
 * @throws PermanentTaskError naming the folder and what it holds when there is none.
 */
export async function pickSourceVideo(
  ctx: HandlerContext,
  folderRel: string,
): Promise<{ file: string; info: MediaInfo }> {
  const abs = await ctx.storage.resolve(folderRel);
  let st;
  try {
    st = await stat(abs);
  } catch {
    throw new PermanentTaskError(
      `source_folder ${JSON.stringify(folderRel)} does not exist in the client storage`,
    );
  }
  let candidates: string[];
  let others: string[] = [];
  if (st.isFile()) candidates = [abs];
  else {
    const entries = (await readdir(abs, { withFileTypes: true })).filter((e) => e.isFile());
    candidates = entries
      .filter((e) => VIDEO_EXTENSIONS.includes(path.extname(e.name).toLowerCase()))
      .map((e) => path.join(abs, e.name));
    others = entries
      .map((e) => e.name)
      .filter((n) => !VIDEO_EXTENSIONS.includes(path.extname(n).toLowerCase()));
    const sizes = new Map<string, number>();
    for (const c of candidates) sizes.set(c, (await stat(c)).size);
    candidates.sort((a, b) => (sizes.get(b) ?? 0) - (sizes.get(a) ?? 0));
  }
  const problems: string[] = [];
  for (const file of candidates) {
    await ctx.storage.resolve(rel(ctx, file)); // a symlinked file must not lead out either
    try {
      const info = await probeMedia(file, { signal: ctx.signal });
      if (info.video && (info.video.width ?? 0) > 0) return { file, info };
      problems.push(`${path.basename(file)}: no video stream`);
    } catch (err) {
      if (!(err instanceof PermanentTaskError)) throw err;
      problems.push(`${path.basename(file)}: not readable as media`);
    }
  }
  throw new PermanentTaskError(
    `no video source in ${JSON.stringify(folderRel)}: looked for ${VIDEO_EXTENSIONS.join(', ')}` +
      (problems.length ? `; ${problems.join('; ')}` : '') +
      (others.length
        ? `; other files: ${others.slice(0, 10).join(', ')}`
        : candidates.length
          ? ''
          : '; the folder holds no video file'),
  );
}

/** The `probe` task of vodstream. @returns a {@link VodPlan}. */
export default async function vodProbe(ctx: HandlerContext): Promise<VodPlan> {
  const p = ctx.parameters;
  const id = contentId(p);
  const sourceFolder = reqString(p, 'source_folder');
  const drm = readDrm(p, ['clear'], false, true);
  const formats = readFormats(p);
  const segmentFormat = readSegmentFormat(p, formats, drm);
  const enableDrm = optBool(p, 'enable_drm', true);
  const out = outputFolder(p, sourceFolder);
  const segment = optNumber(p, 'segment_duration', 4, { min: 1, max: 30 });
  const perTask = optNumber(p, 'renditions_per_task', 1, { min: 1, max: MAX_RENDITIONS, integer: true });
  const createThumbnail = optBool(p, 'create_thumbnail', true);
  const generateMp4 = optBool(p, 'generate_mp4', false);
  const mp4Filename = fileName(p, 'mp4_filename', `${id}.mp4`, '.mp4');
  const thumbT = p.thumbnail_time === undefined ? 0 : toOffsetSeconds(reqTime(p, 'thumbnail_time'), null);
  if (typeof thumbT === 'string') throw new PermanentTaskError(`parameters.thumbnail_time: ${thumbT}`);

  const { file, info } = await pickSourceVideo(ctx, sourceFolder);
  const v = info.video!;
  const duration = info.durationSeconds;
  if (!(duration > 0))
    throw new PermanentTaskError(`${rel(ctx, file)} has no duration; is it a still image?`);
  if (createThumbnail && thumbT >= duration)
    throw new PermanentTaskError(
      `thumbnail_time ${formatSeconds(thumbT)} is past the end of the source (${formatSeconds(duration)}); use a time before the end`,
    );
  const ladder = chooseLadder(v.height ?? 0);
  const { rungs, dropped } = chooseRungs(
    p.renditions as { height: number; video_bitrate_kbps?: number }[] | undefined,
    v.width ?? 0,
    v.height ?? 0,
  );
  const subtitles = await findSubtitles(ctx, p, sourceFolder, file);
  const plan: VodPlan = {
    content_id: id,
    source: rel(ctx, file),
    output_folder: out,
    staging: `${out ? `${out}/` : ''}.staging-${ctx.job.id}`,
    duration,
    width: v.width ?? 0,
    height: v.height ?? 0,
    fps: v.fps ?? null,
    has_audio: info.audio !== null,
    ladder,
    rungs,
    slots: rungSlots(rungs, perTask),
    formats,
    segment_format: segmentFormat,
    shared_audio: info.audio !== null,
    subtitles,
    write_keys: optBool(p, 'write_keys', true),
    drm: {
      clear: drm.clear,
      aes: drm.aes,
      cenc: drm.cenc,
      active:
        drm.aes && (enableDrm || !drm.clear)
          ? 'aes'
          : drm.cenc && (enableDrm || !drm.clear)
            ? 'cenc'
            : 'clear',
    },
    aes_key_url: optString(p, 'aes_key_url') ?? null,
    segment_duration: segment,
    create_thumbnail: createThumbnail,
    thumbnail_time: thumbT,
    generate_mp4: generateMp4,
    mp4_filename: mp4Filename,
    delete_source: optBool(p, 'delete_source', false),
  };
  ctx.log(
    `source ${plan.source}: ${plan.width}x${plan.height}` +
      `${plan.fps ? ` ${plan.fps.toFixed(2)} fps` : ''}, ${formatSeconds(duration)}, ` +
      `${plan.has_audio ? 'with' : 'no'} audio; renditions ${rungs.map((r) => `${r.width}x${r.height}@${Math.round(r.video_bitrate / 1000)}k`).join(', ')}` +
      `${dropped.length ? ` (${dropped.map((h) => `${h}p`).join(', ')} left out: above the source, never upscaled)` : ''}; ` +
      `${segmentFormat === 'cmaf' ? 'CMAF' : 'MPEG-TS'} segments for ${formats.join(' + ')}; ` +
      `${subtitles.length} subtitle track(s); ` +
      `variants ${[drm.clear && 'clear', drm.aes && 'aes', drm.cenc && 'cenc'].filter(Boolean).join(' + ')} (active: ${plan.drm.active})`,
  );
  return plan;
}

/** Reads `formats` (default `["hls"]`). */
export function readFormats(p: Record<string, unknown>): ('hls' | 'dash')[] {
  const v = p.formats ?? ['hls'];
  if (!Array.isArray(v) || v.length === 0 || v.some((f) => f !== 'hls' && f !== 'dash'))
    throw new PermanentTaskError('parameters.formats must be a non-empty list of "hls" and "dash"');
  return [...new Set(v as ('hls' | 'dash')[])];
}

/**
 * Reads `segment_format`: `cmaf` by default when DASH or CENC is asked for, else `ts`; checks it
 * against the formats and DRM (the workflow schema already refuses these at submission).
 */
export function readSegmentFormat(
  p: Record<string, unknown>,
  formats: ('hls' | 'dash')[],
  drm: { aes: boolean; cenc: boolean },
): 'ts' | 'cmaf' {
  const given = p.segment_format;
  if (given !== undefined && given !== 'ts' && given !== 'cmaf')
    throw new PermanentTaskError('parameters.segment_format must be "cmaf" or "ts"');
  const f = given ?? (formats.includes('dash') || drm.cenc ? 'cmaf' : 'ts');
  if (f === 'ts' && formats.includes('dash'))
    throw new PermanentTaskError('parameters.segment_format "ts" cannot be used with DASH; use "cmaf"');
  if (f === 'ts' && drm.cenc)
    throw new PermanentTaskError('parameters.drm "cenc" needs segment_format "cmaf"');
  if (f === 'cmaf' && drm.aes)
    throw new PermanentTaskError(
      'parameters.drm "aes" (AES-128) needs segment_format "ts"; use "cenc" with CMAF',
    );
  return f;
}

const LANG = /^[a-z]{2,3}(-[A-Za-z0-9]{1,8})*$/;

/**
 * The subtitle tracks of a job: the `subtitles` parameter when given; otherwise every `.srt` file
 * beside the source in `source_folder` (a file `name.<lang>.srt` gives the language, e.g.
 * `movie.fr.srt`; others are `und`).
 */
export async function findSubtitles(
  ctx: HandlerContext,
  p: Record<string, unknown>,
  sourceFolder: string,
  sourceFile: string,
): Promise<SubtitleTrack[]> {
  const tracks: Omit<SubtitleTrack, 'id'>[] = [];
  if (Array.isArray(p.subtitles)) {
    for (const [i, raw] of (p.subtitles as Record<string, unknown>[]).entries()) {
      const file = reqString(raw ?? {}, 'file', `parameters.subtitles[${i}]`);
      const abs = await ctx.storage.resolve(file);
      if (!(await stat(abs).catch(() => null))?.isFile())
        throw new PermanentTaskError(
          `parameters.subtitles[${i}].file ${JSON.stringify(file)} does not exist`,
        );
      const language = optString(raw, 'language', 'und', `parameters.subtitles[${i}]`);
      tracks.push({ file, language, name: optString(raw, 'name', language, `parameters.subtitles[${i}]`) });
    }
  } else {
    const folderAbs = await ctx.storage.resolve(sourceFolder);
    if (path.dirname(sourceFile) === folderAbs) {
      const names = (await readdir(folderAbs)).filter((n) => n.toLowerCase().endsWith('.srt')).sort();
      for (const n of names) {
        const parts = n.slice(0, -4).split('.');
        const lang = parts.length > 1 && LANG.test(parts.at(-1)!) ? parts.at(-1)! : 'und';
        const file = rel(ctx, path.join(folderAbs, n));
        await ctx.storage.resolve(file);
        tracks.push({ file, language: lang, name: lang });
      }
    }
  }
  const used = new Set<string>();
  return tracks.map((t) => {
    let id = t.language.replace(/[^A-Za-z0-9-]/g, '') || 'und';
    for (let n = 2; used.has(id); n++) id = `${t.language}-${n}`;
    used.add(id);
    return { ...t, id };
  });
}
