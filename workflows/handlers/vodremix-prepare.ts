/**
 * vodremix `prepare`: reads `clips` (storage files; `start`/`end` offsets; per-clip
 * `frame_accurate`) through vodcapture's prepare (same checks: unknown file, end before start,
 * times past the source's end), then moves the cut points of clips that are not frame-accurate
 * onto key frames: `start` back to the key frame at or before it, `end` on to the key frame at or
 * after it (or the source's end), so such a clip covers at least the range asked for.
 */
import path from 'node:path';
import { PermanentTaskError } from '../../src/errors/task-errors.js';
import { runFfprobe } from '../../src/media/ffmpeg.js';
import { probeMedia } from '../../src/media/probe.js';
import { formatSeconds } from '../../src/media/timecode.js';
import type { HandlerContext } from '../../src/workflows/types.js';
import capturePrepare, { type CaptureClip } from './capture-prepare.js';
import { fileName, isUrl } from './lib/params.js';
import type { VodPlan } from './lib/vod.js';

/** Presentation times (seconds, from the first frame) of the key frames of a file's first video stream. */
export async function keyFrameTimes(file: string, signal?: AbortSignal): Promise<number[]> {
  const json = JSON.parse(
    await runFfprobe(
      [
        '-select_streams',
        'v:0',
        '-skip_frame',
        'nokey',
        '-show_frames',
        '-show_entries',
        'frame=pts_time',
        '-of',
        'json',
        file,
      ],
      { signal },
    ),
  ) as { frames?: { pts_time?: string }[] };
  const t = (json.frames ?? []).map((f) => Number(f.pts_time)).filter(Number.isFinite);
  const first = t.length ? Math.min(...t) : 0;
  return t.map((x) => x - first).sort((a, b) => a - b);
}

/** @returns the plan (a VodPlan with `clips`). */
export default async function vodremixPrepare(
  ctx: HandlerContext,
): Promise<VodPlan & { clips: CaptureClip[] }> {
  const p = ctx.parameters;
  const outputFile = fileName(p, 'output_file', 'remix.mp4', '.mp4');
  const raw = Array.isArray(p.clips) ? (p.clips as Record<string, unknown>[]) : [];
  for (const [i, c] of raw.entries())
    if (typeof c?.source === 'string' && isUrl(c.source))
      throw new PermanentTaskError(`clips[${i}].source must be a file in the client storage`);
  const plan = await capturePrepare({
    ...ctx,
    parameters: {
      ...p,
      content_id: typeof p.content_id === 'string' ? p.content_id : path.basename(outputFile, '.mp4'),
      generate_vod: true,
      generate_mp4: true,
      mp4_filename: outputFile,
      create_thumbnail: false,
      clips: raw.map((c) => ({ source: c.source, start: c.start, end: c.end })),
    },
  });
  for (const [i, c] of plan.clips.entries()) {
    if (raw[i]?.frame_accurate === true) continue;
    const keys = await keyFrameTimes(c.input, ctx.signal);
    const end = c.start + c.duration;
    const s = Math.max(0, ...keys.filter((k) => k <= c.start + 1e-6));
    const after = keys.filter((k) => k >= end - 1e-6);
    const e = after.length
      ? Math.min(...after)
      : (await probeMedia(c.input, { signal: ctx.signal })).durationSeconds || end;
    ctx.log(
      `clips[${i}] on key frames: ${formatSeconds(s)} to ${formatSeconds(e)} (asked ${formatSeconds(c.start)} to ${formatSeconds(end)})`,
    );
    c.start = s;
    c.duration = e - s;
  }
  plan.duration = plan.clips.reduce((a, c) => a + c.duration, 0);
  return plan;
}
