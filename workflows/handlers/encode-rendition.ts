/**
 * vodstream `rendition_<n>`: encodes the source to one rung of the ladder — a video-only H.264 MP4
 * in the job's staging folder, key frames aligned with every other rung. Inputs: `plan` (the probe
 * output), `rung` (`{name, width, height, video_bitrate}` from `plan.slots`, or a list of them when
 * `renditions_per_task` packs several rungs into one task: then one FFmpeg decode feeds them all).
 */
import { PermanentTaskError } from '../../src/errors/task-errors.js';
import type { HandlerContext } from '../../src/workflows/types.js';
import type { Rung } from './lib/ladder.js';
import { readPlan } from './lib/vod.js';
import { encodeRungs } from './lib/vod-ladder.js';

function isRung(rung: unknown): rung is Rung {
  const r = rung as Rung;
  return (
    typeof rung === 'object' &&
    rung !== null &&
    Number.isInteger(r.height) &&
    Number.isInteger(r.width) &&
    r.video_bitrate > 0 &&
    /^\d+p$/.test(String(r.name))
  );
}

/**
 * @returns the rendition's description (name, size, codecs), or with a list of rungs (vodstream's
 *   `renditions_per_task` above 1) the list of their descriptions.
 */
export default async function encodeRenditionTask(ctx: HandlerContext): Promise<unknown> {
  const plan = readPlan(ctx);
  const given = ctx.inputs.rung;
  const rungs = Array.isArray(given) ? given : [given];
  if (rungs.length === 0 || !rungs.every(isRung))
    throw new PermanentTaskError(
      'inputs.rung must be a rung of the plan ({name, width, height, video_bitrate}) or a list of them',
    );
  if (!plan.source) throw new PermanentTaskError('the plan names no source file to encode');
  const source = await ctx.storage.resolve(plan.source);
  const sidecars = await encodeRungs(ctx, plan, source, rungs);
  return Array.isArray(given) ? sidecars : sidecars[0];
}
