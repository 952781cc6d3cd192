/**
 * drmswitch `get_filenames`: finds the asset's masters, which variant is active, and the variant to
 * switch to — the one given by `enable_drm` (true = AES-128, false = clear), or the other one when
 * `enable_drm` is not given. Enabling AES on an asset without an AES variant needs `drm: ["aes"]`.
 */
import { PermanentTaskError } from '../../src/errors/task-errors.js';
import type { HandlerContext } from '../../src/workflows/types.js';
import { switchTarget, type SwitchState } from './lib/drm-switch.js';
import { readDrm, rel } from './lib/params.js';
import { activeVariant, exists } from './lib/vod.js';

/** @returns {@link SwitchState}. */
export default async function getFilenames(ctx: HandlerContext): Promise<SwitchState> {
  const { id, folder, paths } = await switchTarget(ctx);
  const drm = readDrm(ctx.parameters, [], true);
  const hasClear = await exists(paths.clear);
  const hasAes = await exists(paths.aes);
  if (!hasClear && !hasAes)
    throw new PermanentTaskError(
      `no VOD asset ${id} in ${JSON.stringify(folder)} (neither ${id}_nodrm.m3u8 nor ${id}_aes.m3u8 exists)`,
    );
  if ((await exists(paths.cenc)) || (await exists(paths.cencMpd)) || (await exists(paths.clearMpd)))
    throw new PermanentTaskError(
      `${id} in ${JSON.stringify(folder)} is a CMAF asset; drmswitch switches MPEG-TS assets (clear and AES-128) only`,
    );
  const active = await activeVariant(paths);
  const e = ctx.parameters.enable_drm;
  const target: 'clear' | 'aes' =
    typeof e === 'boolean'
      ? e
        ? 'aes'
        : 'clear'
      : active === 'aes'
        ? 'clear'
        : active === 'clear'
          ? 'aes'
          : hasClear
            ? 'clear'
            : 'aes';
  if (target === 'aes' && !hasAes && !drm.aes)
    throw new PermanentTaskError(
      `content ${id} has no AES-128 variant yet; to enable DRM give drm: ["aes"] so it can be built`,
    );
  ctx.log(
    `asset ${id}: clear ${hasClear ? rel(ctx, paths.clear) : 'missing'}, AES ${hasAes ? rel(ctx, paths.aes) : 'missing'}, active ${active ?? 'none'}; switching to ${target}`,
  );
  return { content_id: id, folder, active, has_clear: hasClear, has_aes: hasAes, target };
}
