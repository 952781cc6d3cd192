/**
 * `finalize` of vodstream and vodcapture: makes the chosen variant the active master
 * (`<content_id>.m3u8`), deletes the source when `delete_source`, removes the staging folder, and
 * returns what the job-end callback carries. Inputs: `plan`.
 */
import { rm } from 'node:fs/promises';
import path from 'node:path';
import { PermanentTaskError } from '../../src/errors/task-errors.js';
import type { HandlerContext } from '../../src/workflows/types.js';
import { fileName, rel } from './lib/params.js';
import { activate, assetPaths, exists, listAssetFiles, readPlan, removeStaging } from './lib/vod.js';

/** The job-end outputs of a VOD workflow. */
export interface VodResult {
  /** Client-relative path of the active master playlist ("" when no VOD was made). */
  message: string;
  /** Client-relative paths of the asset's files (segments left out). */
  files: string[];
  metadata: { duration: number; width: number; height: number; active: string | null };
}

/** @returns {@link VodResult}. */
export default async function vodFinalize(ctx: HandlerContext): Promise<VodResult> {
  const plan = readPlan(ctx);
  const makeVod = ctx.inputs.generate_vod !== false;
  const out = await ctx.storage.resolve(plan.output_folder);
  const paths = assetPaths(out, plan.content_id);
  let active: string | null = null;
  if (makeVod) {
    let variant = plan.drm.active;
    if (!(await exists(variant === 'aes' ? paths.aes : paths.clear))) {
      const other = variant === 'aes' ? 'clear' : 'aes';
      if (!(await exists(other === 'aes' ? paths.aes : paths.clear)))
        throw new PermanentTaskError('no HLS variant was packaged; nothing to activate');
      variant = other;
    }
    await activate(paths, variant);
    active = variant;
    ctx.log(`active manifest: ${rel(ctx, paths.active)} (${variant === 'aes' ? 'AES-128' : 'clear'})`);
  }
  const files = (await listAssetFiles(out, plan.content_id)).map((f) => rel(ctx, f));
  const thumb = path.join(out, `${plan.content_id}.jpg`);
  if (plan.create_thumbnail && (await exists(thumb))) files.push(rel(ctx, thumb));
  if (plan.generate_mp4) {
    const mp4 = path.join(
      out,
      fileName(plan as unknown as Record<string, unknown>, 'mp4_filename', undefined),
    );
    if (await exists(mp4)) files.push(rel(ctx, mp4));
  }
  // vodstream's trickplay task (when it ran): its I-frame playlists, VTT and sprite sheets.
  const trick = (ctx.tasks.trickplay?.output as { files?: unknown } | undefined)?.files;
  if (Array.isArray(trick))
    for (const f of trick) if (typeof f === 'string' && !files.includes(f)) files.push(f);
  await removeStaging(ctx, plan);
  if (plan.delete_source && plan.source) {
    await rm(await ctx.storage.resolve(plan.source), { force: true });
    ctx.log(`source deleted: ${plan.source}`);
  }
  return {
    message: active ? rel(ctx, paths.active) : (files[0] ?? ''),
    files,
    metadata: {
      duration: Math.round(plan.duration * 1000) / 1000,
      width: plan.width,
      height: plan.height,
      active,
    },
  };
}
