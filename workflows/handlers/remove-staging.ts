/**
 * `remove_staging` of vodstream and vodcapture: a cleanup task (`when: failed`) that removes the
 * job's `.staging-<job id>` folder after a failure or a break, so a failed job leaves nothing half
 * made behind (on success `finalize` removes it). The folder is worked out from the parameters as
 * `probe` / `prepare` do, so it is found even when those tasks never ran. Inputs: none.
 */
import { rm } from 'node:fs/promises';
import type { HandlerContext } from '../../src/workflows/types.js';
import { outputFolder } from './lib/params.js';

/** @returns the client-relative folder removed, or null when the parameters name none. */
export default async function removeStaging(ctx: HandlerContext): Promise<{ removed: string | null }> {
  const p = ctx.parameters;
  let out: string;
  try {
    out = outputFolder(p, typeof p.source_folder === 'string' ? p.source_folder : undefined);
  } catch {
    // Parameters that name no output folder: no staging folder was ever made.
    return { removed: null };
  }
  const staging = `${out ? `${out}/` : ''}.staging-${ctx.job.id}`;
  await rm(await ctx.storage.resolve(staging), { recursive: true, force: true });
  ctx.log(`removed ${staging}`);
  return { removed: staging };
}
