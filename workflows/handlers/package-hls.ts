/**
 * `package_clear` / `package_aes` / `package_cenc`: packages the staged renditions as one variant of
 * the asset. MPEG-TS (`segment_format: ts`): HLS, clear or AES-128 with a key written beside it.
 * CMAF (`segment_format: cmaf`): fMP4 segments with HLS and/or DASH manifests, clear or CENC
 * (`keys.json` in the output folder unless `write_keys` is false). Inputs: `plan`, `variant`.
 */
import { chmod, readFile } from 'node:fs/promises';
import { PermanentTaskError } from '../../src/errors/task-errors.js';
import type { HandlerContext } from '../../src/workflows/types.js';
import { newCencKey, packageCmaf, type CencKey } from './lib/cmaf.js';
import { rel } from './lib/params.js';
import {
  assetPaths,
  packageVariant,
  readPlan,
  stagedRenditions,
  writeFileAtomic,
  type PackagedVariant,
} from './lib/vod.js';
import { stagedAudio, stagedSubtitles } from './lib/vod-ladder.js';

/** @returns `{variant, files, key_ids}` with client-relative paths; never a key. */
export default async function packageHls(
  ctx: HandlerContext,
): Promise<{ variant: PackagedVariant; files: string[]; key_ids: string[] }> {
  const plan = readPlan(ctx);
  const variant = ctx.inputs.variant;
  if (variant !== 'clear' && variant !== 'aes' && variant !== 'cenc')
    throw new PermanentTaskError(
      `inputs.variant must be "clear", "aes" or "cenc" (got ${JSON.stringify(variant)})`,
    );
  const cmaf = plan.segment_format === 'cmaf';
  if (cmaf && variant === 'aes')
    throw new PermanentTaskError('AES-128 is for MPEG-TS segments; CMAF variants are clear or cenc');
  if (!cmaf && variant === 'cenc') throw new PermanentTaskError('CENC needs segment_format "cmaf"');
  const renditions = await stagedRenditions(ctx, plan);
  const audio = await stagedAudio(ctx, plan);
  const subtitles = await stagedSubtitles(ctx, plan);
  const out = await ctx.storage.resolve(plan.output_folder);
  if (!cmaf) {
    const files = await packageVariant(
      ctx,
      out,
      plan.content_id,
      variant as 'clear' | 'aes',
      renditions,
      plan.segment_duration,
      plan.duration,
      plan.aes_key_url,
      { audio, subtitles },
    );
    return { variant, files: files.map((f) => rel(ctx, f)), key_ids: [] };
  }
  let key: CencKey | null = null;
  if (variant === 'cenc') {
    key = newCencKey();
    const keysFile = assetPaths(out, plan.content_id).keysJson;
    if (plan.write_keys !== false) {
      // Keys of other assets in the same folder are kept.
      const prior = await readFile(keysFile, 'utf8')
        .then((t) => JSON.parse(t) as Record<string, string>)
        .catch(() => ({}));
      await writeFileAtomic(keysFile, `${JSON.stringify({ ...prior, [key.kid]: key.key }, null, 2)}\n`);
      await chmod(keysFile, 0o600);
      ctx.log(`CENC key id ${key.kid}; its key is in ${rel(ctx, keysFile)}`);
    } else ctx.log(`CENC key id ${key.kid}; write_keys is false, so the key is not stored by the engine`);
  }
  const files = await packageCmaf(ctx, plan, variant as 'clear' | 'cenc', renditions, audio, subtitles, key);
  return { variant, files: files.map((f) => rel(ctx, f)), key_ids: key ? [key.kid] : [] };
}
