/**
 * The adaptive ladder of vodstream: which renditions a source is encoded to, and the encoder
 * settings that keep every rendition's key frames on the same instants so a player can switch
 * between them at any segment boundary.
 */
import { PermanentTaskError } from '../../../src/errors/task-errors.js';

/** The most renditions one job may ask for (each is a task slot `rendition_1` … `rendition_6`). */
export const MAX_RENDITIONS = 6;

/** The default ladder (lines → video kb/s), largest first. */
export const DEFAULT_LADDER: readonly { height: number; video_bitrate_kbps: number }[] = [
  { height: 1080, video_bitrate_kbps: 5000 },
  { height: 720, video_bitrate_kbps: 2800 },
  { height: 480, video_bitrate_kbps: 1400 },
  { height: 360, video_bitrate_kbps: 800 },
];

/** One rendition to encode. */
export interface Rung {
  /** Folder name, e.g. `720p`. */
  name: string;
  /** Pixels; even numbers. */
  width: number;
  height: number;
  /** Target video bit rate, bits per second. */
  video_bitrate: number;
}

/** Default video bit rate (kb/s) for a height not in the default ladder: 800 kb/s at 360 lines, scaled by area. */
export function defaultKbpsFor(height: number): number {
  const rung = DEFAULT_LADDER.find((r) => r.height === height);
  if (rung) return rung.video_bitrate_kbps;
  return Math.max(150, Math.round((800 * (height / 360) ** 2) / 10) * 10);
}

/** The even width of `height` lines at the source's aspect ratio (square pixels assumed). */
export function widthFor(height: number, sourceWidth: number, sourceHeight: number): number {
  const w = Math.round((sourceWidth * height) / sourceHeight / 2) * 2;
  return Math.max(2, w);
}

/**
 * Chooses the renditions for a source: the asked ones (or {@link DEFAULT_LADDER}) not above the
 * source's height — a source is never upscaled. When every asked height is above the source, one
 * rendition at the source's own height (even) is made, with the bit rate asked for the smallest
 * rung (or the default for that height). Largest first.
 * @param asked `renditions` as given (validated by the workflow schema), or undefined.
 * @throws PermanentTaskError when two renditions ask for the same height.
 */
export function chooseRungs(
  asked: { height: number; video_bitrate_kbps?: number }[] | undefined,
  sourceWidth: number,
  sourceHeight: number,
): { rungs: Rung[]; dropped: number[] } {
  const list = (asked ?? DEFAULT_LADDER).map((r) => ({
    height: r.height,
    kbps: r.video_bitrate_kbps ?? defaultKbpsFor(r.height),
  }));
  const seen = new Set<number>();
  for (const r of list) {
    if (seen.has(r.height))
      throw new PermanentTaskError(
        `parameters.renditions: height ${r.height} is asked for twice; give each height once`,
      );
    seen.add(r.height);
  }
  list.sort((a, b) => b.height - a.height);
  const fits = list.filter((r) => r.height <= sourceHeight);
  const dropped = list.filter((r) => r.height > sourceHeight).map((r) => r.height);
  if (fits.length === 0) {
    const h = Math.max(2, sourceHeight - (sourceHeight % 2));
    const smallest = list[list.length - 1]!;
    fits.push({ height: h, kbps: asked ? smallest.kbps : defaultKbpsFor(h) });
  }
  const rungs = fits.map((r) => ({
    name: `${r.height}p`,
    width: widthFor(r.height, sourceWidth, sourceHeight),
    height: r.height,
    video_bitrate: r.kbps * 1000,
  }));
  return { rungs, dropped };
}

/**
 * The task slots `r1` … `r6` of the workflow (null = slot not used, the task is skipped).
 *
 * With `perTask` 1 (the default) each rung is its own slot, so every rendition is its own task
 * and several workers share one asset. With a larger `perTask` the rungs are packed into
 * `ceil(rungs / perTask)` slots, each holding a list of at most `perTask` rungs that one task
 * encodes from a single decode of the source: fewer decodes when the workers are few. Rungs go
 * largest first to the slot with the fewest pixels per second so far (longest-processing-time
 * first), so the tasks take about the same time.
 * @param perTask rungs per task, 1 … {@link MAX_RENDITIONS}.
 */
export function rungSlots(rungs: Rung[], perTask = 1): Record<string, Rung | Rung[] | null> {
  const out: Record<string, Rung | Rung[] | null> = {};
  if (perTask <= 1) {
    for (let i = 0; i < MAX_RENDITIONS; i++) out[`r${i + 1}`] = rungs[i] ?? null;
    return out;
  }
  const groups: { rungs: Rung[]; load: number }[] = Array.from(
    { length: Math.ceil(rungs.length / perTask) },
    () => ({ rungs: [], load: 0 }),
  );
  for (const r of [...rungs].sort((a, b) => b.width * b.height - a.width * a.height)) {
    const open = groups.filter((g) => g.rungs.length < perTask);
    const g = open.reduce((a, b) => (b.load < a.load ? b : a));
    g.rungs.push(r);
    g.load += r.width * r.height;
  }
  for (let i = 0; i < MAX_RENDITIONS; i++) out[`r${i + 1}`] = groups[i]?.rungs ?? null;
  return out;
}

/** The VBV of {@link alignedX264Args}: max rate and buffer size as multiples of the target rate. */
export const X264_VBV = { maxrate: 1.1, bufsize: 2 } as const;

/**
 * The one x264 rule of the media workflows: the encoder arguments of every H.264 rendition the
 * engine makes (vodstream's ladder rungs in lib/vod-ladder.ts, {@link encodeRendition} in
 * lib/vod.ts, vodcapture's and vodremix's joined capture in capture-clips.ts). Nothing else
 * writes `-c:v libx264` options for packaged renditions.
 *
 * Source of the rule: the ladder section of docs/media-packaging.md ("Aligned key frames",
 * "Rate"), which follows RFC 8216 (`EXT-X-INDEPENDENT-SEGMENTS`: every segment starts with a key
 * frame, so a player switches renditions at any segment boundary) and Apple's HLS Authoring
 * Specification for Apple Devices (key frames aligned across the variants of a multi-variant
 * playlist; peak rate bounded near the average).
 *
 * - **Key frames aligned**: a key frame forced at every multiple of `segmentSeconds`
 *   (`-force_key_frames expr:gte(t,n_forced*D)`, by time, so every rendition of the same source
 *   gets the same instants), no scene-cut key frames (`-sc_threshold 0`), closed GOPs (`+cgop`).
 * - **Fixed GOP**: `-g` and `-keyint_min` of `fps × segmentSeconds` frames (25 fps when the rate is
 *   unknown).
 * - **Profile/level**: H.264 High (`-profile:v high`), 8-bit 4:2:0 (`-pix_fmt yuv420p`); the level
 *   is left to x264, which picks the lowest that fits the size, frame rate and VBV.
 * - **Rate**: ABR at `videoBitrate` with VBV: `-maxrate` {@link X264_VBV}.maxrate × and `-bufsize`
 *   {@link X264_VBV}.bufsize × the target; preset `veryfast`.
 *
 * @param videoBitrate target video bit rate, bits per second.
 * @param segmentSeconds segment duration, seconds (the key frame interval).
 * @param fps the source's frame rate (frames per second), or null when unknown.
 * @returns FFmpeg output options, from `-c:v libx264` on (no input, filter or output file).
 */
export function alignedX264Args(videoBitrate: number, segmentSeconds: number, fps: number | null): string[] {
  const gop = Math.max(1, Math.round((fps && fps > 0 ? fps : 25) * segmentSeconds));
  return [
    '-c:v',
    'libx264',
    '-preset',
    'veryfast',
    '-profile:v',
    'high',
    '-pix_fmt',
    'yuv420p',
    '-b:v',
    String(videoBitrate),
    '-maxrate',
    String(Math.round(videoBitrate * X264_VBV.maxrate)),
    '-bufsize',
    String(Math.round(videoBitrate * X264_VBV.bufsize)),
    '-g',
    String(gop),
    '-keyint_min',
    String(gop),
    '-sc_threshold',
    '0',
    '-flags',
    '+cgop',
    '-force_key_frames',
    `expr:gte(t,n_forced*${segmentSeconds})`,
  ];
}
