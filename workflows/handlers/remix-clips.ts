/**
 * vodremix `remix`: joins the plan's clips into the staged rendition by smart cut (see
 * `lib/smart-cut.ts`: only the frames between a cut point and the nearest key frame are
 * re-encoded, the rest is stream-copied). When a smart cut is not possible (a source that is not
 * H.264 8-bit 4:2:0, sources that differ in size, profile, level or frame timing, an open GOP) it
 * re-encodes every clip as vodcapture does (`capture-clips.ts`), and the log says why.
 * Inputs: `plan` (the prepare output, with `clips`).
 */
import { readdir, rm } from 'node:fs/promises';
import path from 'node:path';
import { PermanentTaskError } from '../../src/errors/task-errors.js';
import { probeMedia } from '../../src/media/probe.js';
import type { HandlerContext } from '../../src/workflows/types.js';
import captureClips, { readClipPlan } from './capture-clips.js';
import { smartCut } from './lib/smart-cut.js';
import { AUDIO_BITRATE, describeStaged } from './lib/vod.js';

/** @returns the staged rendition's description, the clip count, and `smart_cut` (frames copied and re-encoded) or `smart_cut: null`. */
export default async function remixClips(ctx: HandlerContext): Promise<unknown> {
  const { plan, clips, staging } = await readClipPlan(ctx);
  const name = `${plan.height}p`;
  const result = await smartCut(clips, {
    staging,
    name,
    withAudio: plan.has_audio,
    audioBitrate: AUDIO_BITRATE,
    signal: ctx.signal,
    log: (line) => ctx.log(line),
  });
  if (typeof result === 'string') {
    ctx.log(`whole re-encode (no smart cut): ${result}`);
    return { ...((await captureClips(ctx)) as Record<string, unknown>), smart_cut: null };
  }
  for (const f of await readdir(staging))
    if (/^part_\d+\.ts$|^parts\.ffconcat$|^audio\.m4a$/.test(f))
      await rm(path.join(staging, f), { force: true });
  const got = await probeMedia(result.file, { signal: ctx.signal });
  const frames = result.encodedFrames + result.copiedFrames;
  if (typeof got.video?.frames === 'number' && got.video.frames !== frames)
    throw new PermanentTaskError(`the smart cut gave ${got.video.frames} frames instead of ${frames}`);
  const sidecar = await describeStaged(staging, name, result.file);
  ctx.log(
    `smart cut of ${clips.length} clip(s): ${result.duration.toFixed(3)} s, ${result.copiedFrames} frame(s) copied, ${result.encodedFrames} re-encoded`,
  );
  return {
    ...sidecar,
    clips: clips.length,
    smart_cut: { copied_frames: result.copiedFrames, encoded_frames: result.encodedFrames },
  };
}
