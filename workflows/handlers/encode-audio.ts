/**
 * vodstream `audio`: encodes the source's audio once (AAC-LC 48 kHz stereo) for every rendition to
 * share. Inputs: `plan`.
 */
import { PermanentTaskError } from '../../src/errors/task-errors.js';
import type { HandlerContext } from '../../src/workflows/types.js';
import { readPlan } from './lib/vod.js';
import { encodeSharedAudio } from './lib/vod-ladder.js';

/** @returns `{codecs, bitrate}`. */
export default async function encodeAudioTask(ctx: HandlerContext): Promise<unknown> {
  const plan = readPlan(ctx);
  if (!plan.source) throw new PermanentTaskError('the plan names no source file to encode');
  const a = await encodeSharedAudio(ctx, plan, await ctx.storage.resolve(plan.source));
  return { codecs: a.codecs, bitrate: a.bitrate };
}
