/**
 * Reading job parameters and task inputs inside media handlers. The workflow schema has already
 * validated them at submission and applied defaults; these readers re-check what a handler relies
 * on (a definition copied for a client may have a looser schema) and fail with a
 * {@link PermanentTaskError} naming the parameter and what is accepted.
 */
import path from 'node:path';
import { PermanentTaskError } from '../../../src/errors/task-errors.js';
import { MEDIA_TIME_HINT, parseMediaTime, type MediaTime } from '../../../src/media/timecode.js';
import { joinStoragePath, resolveOutputBase } from '../../../src/storage/storage.js';
import type { HandlerContext } from '../../../src/workflows/types.js';

type Bag = Record<string, unknown>;

/** A required string. */
export function reqString(bag: Bag, name: string, where = 'parameters'): string {
  const v = bag[name];
  if (typeof v !== 'string' || v === '')
    throw new PermanentTaskError(`${where}.${name} is required (a non-empty string)`);
  return v;
}

/** An optional string; `fallback` when absent. */
export function optString(bag: Bag, name: string, fallback: string, where?: string): string;
export function optString(bag: Bag, name: string, fallback?: string, where?: string): string | undefined;
export function optString(
  bag: Bag,
  name: string,
  fallback?: string,
  where = 'parameters',
): string | undefined {
  const v = bag[name];
  if (v === undefined || v === null || v === '') return fallback;
  if (typeof v !== 'string') throw new PermanentTaskError(`${where}.${name} must be a string`);
  return v;
}

/** A boolean; `fallback` when absent. Accepts `"true"`/`"false"` strings from templates. */
export function optBool(bag: Bag, name: string, fallback: boolean, where = 'parameters'): boolean {
  const v = bag[name];
  if (v === undefined || v === null) return fallback;
  if (typeof v === 'boolean') return v;
  if (v === 'true' || v === 'false') return v === 'true';
  throw new PermanentTaskError(`${where}.${name} must be true or false`);
}

/** A number within bounds; `fallback` when absent. Accepts numeric strings. */
export function optNumber(
  bag: Bag,
  name: string,
  fallback: number,
  bounds: { min?: number; max?: number; integer?: boolean } = {},
  where = 'parameters',
): number {
  const v = bag[name];
  if (v === undefined || v === null || v === '') return fallback;
  const n = typeof v === 'number' ? v : typeof v === 'string' ? Number(v) : NaN;
  const { min = -Infinity, max = Infinity, integer = false } = bounds;
  if (!Number.isFinite(n) || n < min || n > max || (integer && !Number.isInteger(n)))
    throw new PermanentTaskError(
      `${where}.${name} must be ${integer ? 'an integer' : 'a number'}${min > -Infinity ? ` >= ${min}` : ''}${max < Infinity ? ` <= ${max}` : ''} (got ${JSON.stringify(v)})`,
    );
  return n;
}

/** A media time (offset or UTC); see {@link parseMediaTime}. */
export function reqTime(bag: Bag, name: string, where = 'parameters'): MediaTime {
  const t = parseMediaTime(bag[name]);
  if (!t)
    throw new PermanentTaskError(
      `${where}.${name} must be ${MEDIA_TIME_HINT} (got ${JSON.stringify(bag[name])})`,
    );
  return t;
}

/** DRM kinds the engine can produce. */
export const SUPPORTED_DRM = ['clear', 'aes'] as const;
/** DRM kinds the original product names that need a licence service this engine does not have. */
export const UNSUPPORTED_DRM = ['playready', 'widevine', 'fairplay', 'cenc'] as const;

/**
 * Reads `drm` (a list; default `["clear"]`).
 * @throws PermanentTaskError for an unknown or unsupported kind, or an empty list when `allowEmpty` is false.
 */
export function readDrm(
  bag: Bag,
  fallback: string[] = ['clear'],
  allowEmpty = false,
  allowCenc = false,
): { clear: boolean; aes: boolean; cenc: boolean } {
  const v = bag.drm ?? fallback;
  if (!Array.isArray(v) || v.some((x) => typeof x !== 'string'))
    throw new PermanentTaskError('parameters.drm must be a list of strings, e.g. ["clear", "aes"]');
  for (const kind of v as string[]) {
    if (allowCenc && kind === 'cenc') continue;
    if ((UNSUPPORTED_DRM as readonly string[]).includes(kind))
      throw new PermanentTaskError(
        `parameters.drm: "${kind}" is not supported by this engine; supported: ${SUPPORTED_DRM.join(', ')} (AES-128 HLS encryption)`,
      );
    if (!(SUPPORTED_DRM as readonly string[]).includes(kind))
      throw new PermanentTaskError(
        `parameters.drm: unknown kind "${kind}"; supported: ${SUPPORTED_DRM.join(', ')}`,
      );
  }
  const out = { clear: v.includes('clear'), aes: v.includes('aes'), cenc: allowCenc && v.includes('cenc') };
  if (!allowEmpty && !out.clear && !out.aes && !out.cenc)
    throw new PermanentTaskError('parameters.drm must name at least one of: clear, aes');
  return out;
}

/**
 * The client-relative folder for outputs: `output_folder` under the `output_root` base (see
 * `resolveOutputBase` in src/storage/storage.ts).
 */
export function outputFolder(params: Bag, fallback?: string): string {
  const folder = optString(params, 'output_folder', fallback);
  if (folder === undefined) throw new PermanentTaskError('parameters.output_folder is required');
  return joinStoragePath(resolveOutputBase(params.output_root), folder);
}

/** A file name (no folder parts), e.g. `mp4_filename`. */
export function fileName(bag: Bag, name: string, fallback: string | undefined, ext?: string): string {
  const v = optString(bag, name, fallback);
  if (!v) throw new PermanentTaskError(`parameters.${name} is required`);
  if (/[\\/\0]/.test(v) || v === '.' || v === '..')
    throw new PermanentTaskError(
      `parameters.${name} must be a plain file name without folders (got ${JSON.stringify(v)})`,
    );
  if (ext && !v.toLowerCase().endsWith(ext))
    throw new PermanentTaskError(`parameters.${name} must end with ${ext} (got ${JSON.stringify(v)})`);
  return v;
}

/** A content id usable in file names. */
export function contentId(params: Bag, fallback?: string): string {
  const v = optString(params, 'content_id', fallback);
  if (!v) throw new PermanentTaskError('parameters.content_id is required');
  if (!/^[A-Za-z0-9][A-Za-z0-9._-]{0,199}$/.test(v))
    throw new PermanentTaskError(
      `parameters.content_id ${JSON.stringify(v)} must be letters, digits, ".", "_" or "-" (it names files)`,
    );
  return v;
}

/** True for http(s) URLs (HLS sources). */
export function isUrl(v: string): boolean {
  return /^https?:\/\//i.test(v);
}

/** `absolute` as a path relative to the client's storage root, with forward slashes. */
export function rel(ctx: Pick<HandlerContext, 'storage'>, absolute: string): string {
  return path.relative(ctx.storage.root, absolute).split(path.sep).join('/');
}
