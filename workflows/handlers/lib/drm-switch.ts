/**
 * Shared reading of drmswitch's parameters and of the asset's state.
 */
import { PermanentTaskError } from '../../../src/errors/task-errors.js';
import { joinStoragePath, resolveOutputBase } from '../../../src/storage/storage.js';
import type { HandlerContext } from '../../../src/workflows/types.js';
import { contentId, reqString } from './params.js';
import { assetPaths, type AssetPaths } from './vod.js';

/** The asset a drmswitch job works on. */
export async function switchTarget(
  ctx: HandlerContext,
): Promise<{ id: string; folder: string; paths: AssetPaths }> {
  const id = contentId(ctx.parameters);
  const folder = joinStoragePath(
    resolveOutputBase(ctx.parameters.output_root),
    reqString(ctx.parameters, 'folder'),
  );
  const abs = await ctx.storage.resolve(folder);
  return { id, folder, paths: assetPaths(abs, id) };
}

/** What `get_filenames` hands on. */
export interface SwitchState {
  content_id: string;
  folder: string;
  active: 'clear' | 'aes' | null;
  has_clear: boolean;
  has_aes: boolean;
  target: 'clear' | 'aes';
}

/** Reads the state from a task input. */
export function readState(ctx: HandlerContext): SwitchState {
  const s = ctx.inputs.state as SwitchState | undefined;
  if (!s || (s.target !== 'clear' && s.target !== 'aes'))
    throw new PermanentTaskError(
      'task input "state" is missing: the workflow must pass the get_filenames output',
    );
  return s;
}
