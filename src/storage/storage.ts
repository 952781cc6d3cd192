/**
 * Local media storage (SPEC section 13): each client's files live under `<storageRoot>/<client>/`
 * and every path in job parameters is relative to that folder. A path that escapes it — absolute,
 * climbing out with `..`, or through a symlink leading outside — is refused.
 *
 * Two checks, in two places:
 * - {@link checkStoragePath} is pure syntax (no file system) and backs the `"format": "storage-path"`
 *   keyword of workflow schemas, so an escaping path is a 400 at submission;
 * - {@link StorageContext.resolve} repeats it and also follows symlinks (the realpath of the deepest
 *   existing ancestor must stay inside the client root), so a path that becomes dangerous later
 *   fails the task with a {@link PermanentTaskError}.
 *
 * `output_root`: the original product maps a root *key* (such as `output_root`) to a configured folder
 * of the client (for example `content/vod`). Without per-client configuration, a root key here names
 * a sub-folder of the client root of the same name: `output_root: "published"` puts outputs under
 * `<client root>/published/<output_folder>`. Absent (the default), outputs are relative to the client
 * root like every other path. See {@link resolveOutputBase}.
 */
import { mkdir, realpath } from 'node:fs/promises';
import path from 'node:path';
import { PermanentTaskError } from '../errors/task-errors.js';
import type { StorageContext } from '../workflows/types.js';

/** The JSON Schema `format` name for client-relative storage paths. */
export const STORAGE_PATH_FORMAT = 'storage-path';

/** Allowed root keys for `output_root`: a single folder name. */
export const ROOT_KEY_PATTERN = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$/;

/** Client names as SPEC 4 defines them; the storage folder is named after the client. */
const CLIENT_PATTERN = /^[a-z0-9][a-z0-9_-]{0,62}$/;

/**
 * Checks the syntax of a client-relative storage path without touching the file system.
 * Accepts `""` and `"."` (the client root itself), forward or back slashes as separators.
 * @returns null when acceptable, else a message saying why and what is accepted.
 */
export function checkStoragePath(value: string): string | null {
  if (value.includes('\0')) return 'must not contain NUL characters';
  if (value.startsWith('/') || value.startsWith('\\') || /^[A-Za-z]:/.test(value))
    return 'must be relative to the client storage root, not absolute';
  const parts = value.split(/[\\/]+/);
  let depth = 0;
  for (const part of parts) {
    if (part === '' || part === '.') continue;
    if (part === '..') {
      depth -= 1;
      if (depth < 0) return 'must stay inside the client storage root (it climbs out with "..")';
    } else depth += 1;
  }
  return null;
}

/** Normalises a checked relative path to forward slashes without `.`/empty parts (`""` for the root). */
export function normaliseStoragePath(value: string): string {
  const n = path.posix.normalize(value.replace(/\\/g, '/'));
  return n === '.' || n === './' ? '' : n.replace(/^\.\//, '').replace(/\/+$/, '');
}

function isInside(root: string, candidate: string): boolean {
  const rel = path.relative(root, candidate);
  return rel === '' || (!rel.startsWith('..') && !path.isAbsolute(rel));
}

/** The client storage context with a few helpers the media handlers use. */
export interface ClientStorage extends StorageContext {
  /** The client this storage belongs to. */
  readonly client: string;
  /** The path of `absolute` relative to the client root, with forward slashes. */
  relative(absolute: string): string;
}

/**
 * Creates the storage context of `client` under `storageRoot` (which need not exist yet; the
 * client folder is created on first resolve).
 * @throws Error when `client` is not a valid client name (it becomes a folder name).
 */
export function createStorageContext(storageRoot: string, client: string): ClientStorage {
  if (!CLIENT_PATTERN.test(client))
    throw new Error(`invalid client name for storage: ${JSON.stringify(client)}`);
  const root = path.resolve(storageRoot, client);
  let realRoot: Promise<string> | null = null;
  const ensureRoot = (): Promise<string> => {
    realRoot ??= mkdir(root, { recursive: true })
      .then(() => realpath(root))
      .catch((err: unknown) => {
        realRoot = null;
        throw err;
      });
    return realRoot;
  };
  return {
    client,
    root,
    async resolve(relative: string): Promise<string> {
      if (typeof relative !== 'string')
        throw new PermanentTaskError(`storage path must be a string, got ${typeof relative}`);
      const problem = checkStoragePath(relative);
      if (problem) throw new PermanentTaskError(`storage path ${JSON.stringify(relative)} ${problem}`);
      const absolute = path.resolve(root, normaliseStoragePath(relative) || '.');
      if (!isInside(root, absolute))
        throw new PermanentTaskError(
          `storage path ${JSON.stringify(relative)} must stay inside the client storage root`,
        );
      const rootReal = await ensureRoot();
      // Follow symlinks: the deepest part of the path that exists must really be inside the root.
      let probe = absolute;
      for (;;) {
        try {
          const real = await realpath(probe);
          if (!isInside(rootReal, real))
            throw new PermanentTaskError(
              `storage path ${JSON.stringify(relative)} leads outside the client storage root through a symbolic link`,
            );
          break;
        } catch (err) {
          if (err instanceof PermanentTaskError) throw err;
          const code = (err as NodeJS.ErrnoException).code;
          if (code !== 'ENOENT' && code !== 'ENOTDIR') throw err;
          const parent = path.dirname(probe);
          if (parent === probe) break;
          probe = parent;
        }
      }
      return absolute;
    },
    relative(absolute: string): string {
      return path.relative(root, absolute).split(path.sep).join('/');
    },
  };
}

/**
 * The client-relative folder outputs go under for a given `output_root` key: `""` (the client
 * root) when the key is absent or empty, else the key itself as a sub-folder (see the module note).
 * @throws PermanentTaskError when the key is not a single folder name.
 */
export function resolveOutputBase(outputRoot: unknown): string {
  if (outputRoot === undefined || outputRoot === null || outputRoot === '') return '';
  if (typeof outputRoot !== 'string' || !ROOT_KEY_PATTERN.test(outputRoot) || outputRoot === '..')
    throw new PermanentTaskError(
      `output_root ${JSON.stringify(outputRoot)} is not a root key: use a single folder name of letters, digits, ".", "_" or "-"`,
    );
  return outputRoot;
}

/** Joins client-relative path parts with `/`, skipping empty ones. */
export function joinStoragePath(...parts: string[]): string {
  return normaliseStoragePath(parts.filter((p) => p !== '' && p !== '.').join('/'));
}
