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
import {
  activate,
  assetPaths,
  exists,
  listAssetFiles,
  readPlan,
  removeStaging,
  type PackagedVariant,
} from './lib/vod.js';

/** The job-end outputs of a VOD workflow. */
export interface VodResult {
  /** Client-relative path of the active master playlist ("" when no VOD was made). */
  message: string;
  /** Client-relative paths of the asset's files (segments left out). */
  files: string[];
  metadata: {
    duration: number;
    width: number;
    height: number;
    active: string | null;
    /** CENC key ids (hex) of the asset; the keys themselves are only in `keys.json`. */
    key_ids?: string[];
  };
}

/** @returns {@link VodResult}. */
export default async function vodFinalize(ctx: HandlerContext): Promise<VodResult> {
  const plan = readPlan(ctx);
  const makeVod = ctx.inputs.generate_vod !== false;
  const out = await ctx.storage.resolve(plan.output_folder);
  const paths = assetPaths(out, plan.content_id);
  let active: string | null = null;
  if (makeVod) {
    const made = async (v: PackagedVariant): Promise<boolean> =>
      (await exists(v === 'aes' ? paths.aes : v === 'cenc' ? paths.cenc : paths.clear)) ||
      (v === 'clear' && (await exists(paths.clearMpd))) ||
      (v === 'cenc' && (await exists(paths.cencMpd)));
    const order: PackagedVariant[] = [plan.drm.active, 'aes', 'cenc', 'clear'];
    let variant: PackagedVariant | null = null;
    for (const v of order) if (variant === null && (await made(v))) variant = v;
    if (variant === null) throw new PermanentTaskError('no variant was packaged; nothing to activate');
    await activate(paths, variant);
    active = variant;
    ctx.log(
      `active manifest: ${rel(ctx, (await exists(paths.active)) ? paths.active : paths.activeMpd)} (${variant === 'aes' ? 'AES-128' : variant === 'cenc' ? 'CENC' : 'clear'})`,
    );
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
  const keyIds = Object.values(ctx.tasks)
    .map((t) => (t.output as { key_ids?: unknown } | null | undefined)?.key_ids)
    .flatMap((k) => (Array.isArray(k) ? k.filter((x): x is string => typeof x === 'string') : []));
  return {
    message: active
      ? rel(ctx, (await exists(paths.active)) ? paths.active : paths.activeMpd)
      : (files[0] ?? ''),
    files,
    metadata: {
      duration: Math.round(plan.duration * 1000) / 1000,
      width: plan.width,
      height: plan.height,
      active,
      ...(keyIds.length ? { key_ids: keyIds } : {}),
    },
  };
}
