/**
 * vodcapture `prepare`: resolves every clip (storage file or HLS URL), places its `start`/`end`
 * (offsets, or UTC timestamps against the stream's EXT-X-PROGRAM-DATE-TIME), and returns the plan
 * plus the clip list for the capture task.
 */
import { PermanentTaskError } from '../../src/errors/task-errors.js';
import { MEDIA_TIME_HINT, formatSeconds, parseMediaTime, toOffsetSeconds } from '../../src/media/timecode.js';
import type { HandlerContext } from '../../src/workflows/types.js';
import {
  contentId,
  fileName,
  optBool,
  optNumber,
  optString,
  outputFolder,
  readDrm,
  reqTime,
} from './lib/params.js';
import { placeTime, resolveSource } from './lib/source.js';
import type { VodPlan } from './lib/vod.js';

/** One clip to cut. */
export interface CaptureClip {
  source: string;
  input: string;
  inputArgs: string[];
  start: number;
  duration: number;
  has_audio: boolean;
  /**
   * The separate audio rendition of an HLS source (its audio group; see lib/source.ts), or null
   * when the audio, if any, is inside `input`.
   */
  audio?: { input: string; inputArgs: string[] } | null;
}

/** @returns the plan with `clips`. */
export default async function capturePrepare(
  ctx: HandlerContext,
): Promise<VodPlan & { clips: CaptureClip[] }> {
  const p = ctx.parameters;
  const id = contentId(p);
  const out = outputFolder(p);
  const generateVod = optBool(p, 'generate_vod', true);
  const generateMp4 = optBool(p, 'generate_mp4', false);
  if (!generateVod && !generateMp4)
    throw new PermanentTaskError('nothing to make: set generate_vod and/or generate_mp4 to true');
  const drm = readDrm(p);
  const enableDrm = optBool(p, 'enable_drm', true);
  const rawClips = p.clips;
  if (!Array.isArray(rawClips) || rawClips.length === 0)
    throw new PermanentTaskError('parameters.clips must list at least one clip {source, start, end}');
  const clips: CaptureClip[] = [];
  let first: Awaited<ReturnType<typeof resolveSource>> | null = null;
  for (const [i, raw] of rawClips.entries()) {
    const c = (raw ?? {}) as Record<string, unknown>;
    const where = `clips[${i}]`;
    if (typeof c.source !== 'string' || !c.source)
      throw new PermanentTaskError(`${where}.source is required`);
    const src = await resolveSource(ctx, c.source);
    first ??= src;
    const parse = (name: string): ReturnType<typeof parseMediaTime> => {
      if (c[name] === undefined) return null;
      const t = parseMediaTime(c[name]);
      if (!t) throw new PermanentTaskError(`${where}.${name} must be ${MEDIA_TIME_HINT}`);
      return t;
    };
    const st = parse('start');
    const en = parse('end');
    const start = st ? placeTime(src, st, `${where}.start`) : 0;
    const end = en ? placeTime(src, en, `${where}.end`, true) : src.info.durationSeconds;
    if (!(end > start))
      throw new PermanentTaskError(
        `${where}: end ${formatSeconds(end)} must be after start ${formatSeconds(start)}`,
      );
    clips.push({
      source: c.source,
      input: src.input,
      inputArgs: src.inputArgs,
      start,
      duration: end - start,
      has_audio: src.info.audio !== null,
      audio: src.audio,
    });
    ctx.log(
      `${where}: ${c.source} from ${formatSeconds(start)} to ${formatSeconds(end)}` +
        (src.audio ? ' (audio from its audio rendition group)' : ''),
    );
  }
  const v = first!.info.video!;
  const width = (v.width ?? 2) - ((v.width ?? 2) % 2);
  const height = (v.height ?? 2) - ((v.height ?? 2) % 2);
  const duration = clips.reduce((a, c) => a + c.duration, 0);
  const thumbTime = p.thumbnail_time === undefined ? 0 : toOffsetSeconds(reqTime(p, 'thumbnail_time'), null);
  if (typeof thumbTime === 'string') throw new PermanentTaskError(`parameters.thumbnail_time: ${thumbTime}`);
  const thumbT = thumbTime;
  const createThumbnail = optBool(p, 'create_thumbnail', true) && generateVod;
  if (createThumbnail && thumbT >= duration)
    throw new PermanentTaskError(
      `thumbnail_time ${formatSeconds(thumbT)} is past the end of the capture (${formatSeconds(duration)})`,
    );
  return {
    content_id: id,
    source: null,
    output_folder: out,
    staging: `${out}/.staging-${ctx.job.id}`,
    duration,
    width,
    height,
    fps: v.fps ?? null,
    has_audio: clips.every((c) => c.has_audio),
    ladder: {},
    drm: {
      clear: generateVod && drm.clear,
      aes: generateVod && drm.aes,
      active: drm.aes && (enableDrm || !drm.clear) ? 'aes' : 'clear',
    },
    aes_key_url: optString(p, 'aes_key_url') ?? null,
    segment_duration: optNumber(p, 'segment_duration', 4, { min: 1, max: 30 }),
    create_thumbnail: createThumbnail,
    thumbnail_time: thumbT,
    generate_mp4: generateMp4,
    mp4_filename: fileName(p, 'mp4_filename', `${id}.mp4`, '.mp4'),
    delete_source: false,
    clips,
  };
}
