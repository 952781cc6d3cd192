/**
 * `package_clear` / `package_aes`: packages the staged renditions as one HLS variant of the asset
 * (clear, or AES-128 encrypted with a key written beside it). Inputs: `plan`, `variant`.
 */
import { PermanentTaskError } from '../../src/errors/task-errors.js';
import type { HandlerContext } from '../../src/workflows/types.js';
import { rel } from './lib/params.js';
import { packageVariant, readPlan, stagedRenditions, type Variant } from './lib/vod.js';

/** @returns `{variant, files}` with client-relative playlist paths. */
export default async function packageHls(
  ctx: HandlerContext,
): Promise<{ variant: Variant; files: string[] }> {
  const plan = readPlan(ctx);
  const variant = ctx.inputs.variant;
  if (variant !== 'clear' && variant !== 'aes')
    throw new PermanentTaskError(`inputs.variant must be "clear" or "aes" (got ${JSON.stringify(variant)})`);
  const renditions = await stagedRenditions(ctx, plan);
  const out = await ctx.storage.resolve(plan.output_folder);
  const files = await packageVariant(
    ctx,
    out,
    plan.content_id,
    variant,
    renditions,
    plan.segment_duration,
    plan.duration,
    plan.aes_key_url,
  );
  return { variant, files: files.map((f) => rel(ctx, f)) };
}
