/**
 * asset_delete: deletes individual files (not folders; voddelete deletes folders). Files that do not
 * exist are reported in `missing` and do not fail the task, so a repeated delete succeeds.
 */
import { rm, stat } from 'node:fs/promises';
import { PermanentTaskError } from '../../src/errors/task-errors.js';
import type { HandlerContext } from '../../src/workflows/types.js';

/** @returns `{message, files: deleted, missing}`. */
export default async function assetDelete(ctx: HandlerContext): Promise<unknown> {
  const list = ctx.parameters.files;
  if (!Array.isArray(list) || list.some((f) => typeof f !== 'string'))
    throw new PermanentTaskError('parameters.files must be a list of file paths in the client storage');
  // Resolve every path first: one bad path fails the task before anything is deleted.
  const targets: { given: string; abs: string }[] = [];
  for (const given of list as string[]) targets.push({ given, abs: await ctx.storage.resolve(given) });
  const deleted: string[] = [];
  const missing: string[] = [];
  for (const t of targets) {
    const st = await stat(t.abs).catch(() => null);
    if (!st) missing.push(t.given);
    else if (st.isDirectory())
      throw new PermanentTaskError(
        `${JSON.stringify(t.given)} is a folder; asset_delete deletes files (use voddelete)`,
      );
  }
  for (const t of targets) {
    if (missing.includes(t.given)) continue;
    await rm(t.abs, { force: true });
    deleted.push(t.given);
  }
  ctx.log(`deleted ${deleted.length} file(s)${missing.length ? `; not found: ${missing.join(', ')}` : ''}`);
  return { message: `deleted ${deleted.length} file(s)`, files: deleted, missing };
}
