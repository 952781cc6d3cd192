/**
 * vodstream `rendition_<h>`: encodes the source to one rung of the ladder (H.264/AAC MP4 in the
 * job's staging folder). Inputs: `plan` (the probe output), `height` (lines).
 */
import { PermanentTaskError } from '../../src/errors/task-errors.js';
import type { HandlerContext } from '../../src/workflows/types.js';
import { optNumber } from './lib/params.js';
import { encodeRendition, readPlan } from './lib/vod.js';

/** @returns the rendition's description (name, size, bandwidth, codecs, staged file). */
export default async function encodeRenditionTask(ctx: HandlerContext): Promise<unknown> {
  const plan = readPlan(ctx);
  const height = optNumber(ctx.inputs, 'height', 0, { min: 2, max: 4320, integer: true }, 'inputs');
  if (!plan.source) throw new PermanentTaskError('the plan names no source file to encode');
  const source = await ctx.storage.resolve(plan.source);
  return encodeRendition(ctx, plan, source, height);
}
