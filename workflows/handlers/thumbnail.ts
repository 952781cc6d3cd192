/**
 * `thumbnail`: one JPEG frame of the source at `thumbnail_time`, saved as `<content_id>.jpg` in the
 * output folder. Reads the source file, or the largest staged rendition when the plan has no
 * source file (vodcapture). Inputs: `plan`.
 */
import { mkdir, stat } from 'node:fs/promises';
import path from 'node:path';
import { PermanentTaskError } from '../../src/errors/task-errors.js';
import { runFfmpeg } from '../../src/media/ffmpeg.js';
import { formatSeconds } from '../../src/media/timecode.js';
import type { HandlerContext } from '../../src/workflows/types.js';
import { rel } from './lib/params.js';
import { readPlan, stagedRenditions } from './lib/vod.js';

/** @returns `{file}` (client-relative). */
export default async function thumbnail(ctx: HandlerContext): Promise<{ file: string }> {
  const plan = readPlan(ctx);
  const input = plan.source
    ? await ctx.storage.resolve(plan.source)
    : (await stagedRenditions(ctx, plan))[0]!.input;
  if (plan.thumbnail_time >= plan.duration)
    throw new PermanentTaskError(
      `thumbnail_time ${formatSeconds(plan.thumbnail_time)} is past the end of the source (${formatSeconds(plan.duration)})`,
    );
  const out = await ctx.storage.resolve(plan.output_folder);
  await mkdir(out, { recursive: true });
  const file = path.join(out, `${plan.content_id}.jpg`);
  await runFfmpeg(['-ss', String(plan.thumbnail_time), '-i', input, '-frames:v', '1', '-q:v', '2', file], {
    signal: ctx.signal,
  });
  const st = await stat(file).catch(() => null);
  if (!st || st.size === 0)
    throw new PermanentTaskError(
      `no frame at ${formatSeconds(plan.thumbnail_time)} in the source; use an earlier thumbnail_time`,
    );
  ctx.log(`thumbnail at ${formatSeconds(plan.thumbnail_time)}: ${rel(ctx, file)}`);
  return { file: rel(ctx, file) };
}
