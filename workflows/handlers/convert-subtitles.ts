/**
 * vodstream `subtitles`: converts the job's SRT files to WebVTT in the staging folder. Inputs: `plan`.
 */
import type { HandlerContext } from '../../src/workflows/types.js';
import { readPlan } from './lib/vod.js';
import { convertSubtitles } from './lib/vod-ladder.js';

/** @returns `{tracks: [{id, language, name, file}]}` (client-relative SRT files). */
export default async function convertSubtitlesTask(ctx: HandlerContext): Promise<unknown> {
  const plan = readPlan(ctx);
  const subs = await convertSubtitles(ctx, plan);
  return { tracks: subs.map(({ id, language, name, file }) => ({ id, language, name, file })) };
}
