/**
 * vodstream `rendition_<n>`: encodes the source to one rung of the ladder — a video-only H.264 MP4
 * in the job's staging folder, key frames aligned with every other rung. Inputs: `plan` (the probe
 * output), `rung` (`{name, width, height, video_bitrate}` from `plan.slots`).
 */
import { PermanentTaskError } from '../../src/errors/task-errors.js';
import type { HandlerContext } from '../../src/workflows/types.js';
import type { Rung } from './lib/ladder.js';
import { readPlan } from './lib/vod.js';
import { encodeRung } from './lib/vod-ladder.js';

/** @returns the rendition's description (name, size, codecs). */
export default async function encodeRenditionTask(ctx: HandlerContext): Promise<unknown> {
  const plan = readPlan(ctx);
  const rung = ctx.inputs.rung as Rung | undefined;
  if (
    !rung ||
    typeof rung !== 'object' ||
    !Number.isInteger(rung.height) ||
    !Number.isInteger(rung.width) ||
    !(rung.video_bitrate > 0) ||
    !/^\d+p$/.test(String(rung.name))
  )
    throw new PermanentTaskError('inputs.rung must be a rung of the plan ({name, width, height, video_bitrate})');
  if (!plan.source) throw new PermanentTaskError('the plan names no source file to encode');
  const source = await ctx.storage.resolve(plan.source);
  return encodeRung(ctx, plan, source, rung);
}
