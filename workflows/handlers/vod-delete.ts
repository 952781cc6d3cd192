/**
 * voddelete: deletes a VOD folder. With `content_id`, only that asset's files in the folder are
 * deleted (its masters, variant folders, thumbnail and `<content_id>.mp4`), and the folder too when
 * nothing else is left. The client root itself can never be deleted.
 */
import { readdir, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import { PermanentTaskError } from '../../src/errors/task-errors.js';
import { joinStoragePath, resolveOutputBase } from '../../src/storage/storage.js';
import type { HandlerContext } from '../../src/workflows/types.js';
import { contentId, reqString, rel } from './lib/params.js';
import { assetPaths, exists } from './lib/vod.js';

/** @returns `{message: deleted folder, files: deleted paths}`. */
export default async function vodDelete(ctx: HandlerContext): Promise<unknown> {
  const p = ctx.parameters;
  const folder = joinStoragePath(resolveOutputBase(p.output_root), reqString(p, 'folder'));
  if (folder === '')
    throw new PermanentTaskError(
      'parameters.folder must name a folder inside the client storage, not its root',
    );
  const abs = await ctx.storage.resolve(folder);
  const st = await stat(abs).catch(() => null);
  if (!st)
    throw new PermanentTaskError(`folder ${JSON.stringify(folder)} does not exist in the client storage`);
  if (!st.isDirectory())
    throw new PermanentTaskError(`${JSON.stringify(folder)} is a file; use asset_delete for files`);
  if (p.content_id === undefined) {
    await rm(abs, { recursive: true, force: true });
    ctx.log(`deleted folder ${folder}`);
    return { message: folder, files: [folder] };
  }
  const id = contentId(p);
  const a = assetPaths(abs, id);
  const candidates = [
    a.active,
    a.clear,
    a.aes,
    a.clearDir,
    a.aesDir,
    path.join(abs, `${id}.jpg`),
    path.join(abs, `${id}.mp4`),
  ];
  const found: string[] = [];
  for (const c of candidates) if (await exists(c)) found.push(c);
  if (found.length === 0)
    throw new PermanentTaskError(
      `folder ${JSON.stringify(folder)} holds no asset ${id} (no ${id}.m3u8, ${id}_nodrm.m3u8 or ${id}_aes.m3u8)`,
    );
  for (const f of found) await rm(f, { recursive: true, force: true });
  const rest = await readdir(abs);
  if (rest.length === 0) await rm(abs, { recursive: true, force: true });
  ctx.log(`deleted asset ${id} from ${folder}${rest.length === 0 ? ' and the emptied folder' : ''}`);
  return { message: folder, files: found.map((f) => rel(ctx, f)) };
}
