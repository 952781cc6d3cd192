/**
 * drmswitch `rename_manifests`: makes the target variant the active master `<content_id>.m3u8`
 * (copied through a temporary file and renamed, so a player never reads half a playlist).
 * Inputs: `state`.
 */
import type { HandlerContext } from '../../src/workflows/types.js';
import { readState, switchTarget } from './lib/drm-switch.js';
import { rel } from './lib/params.js';
import { activate, listAssetFiles } from './lib/vod.js';

/** @returns `{message: active master, files, metadata: {active, previous}}`. */
export default async function renameManifests(ctx: HandlerContext): Promise<unknown> {
  const state = readState(ctx);
  const { paths } = await switchTarget(ctx);
  await activate(paths, state.target);
  ctx.log(
    `active manifest ${rel(ctx, paths.active)} is now ${state.target === 'aes' ? 'AES-128' : 'clear'} (was ${state.active ?? 'none'})`,
  );
  return {
    message: rel(ctx, paths.active),
    files: (await listAssetFiles(paths.out, state.content_id)).map((f) => rel(ctx, f)),
    metadata: { active: state.target, previous: state.active },
  };
}
