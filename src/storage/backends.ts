/**
 * The storage seam: one {@link StorageBackend} interface with three implementations — `local`
 * (the client's folder under `TASK_ENGINE_STORAGE_ROOT`), `s3` (any S3-compatible endpoint through
 * `@aws-sdk/client-s3`; uploads through `@aws-sdk/lib-storage`'s multipart `Upload`, downloads as
 * ranged GETs) and `azure_blob` (`@azure/storage-blob`; block uploads from a stream, ranged
 * downloads). Paths are client-relative (forward slashes, checked with {@link checkStoragePath});
 * object keys are `<prefix>/<path>`. Files stream from and to disk: nothing is held whole in memory.
 */
import { createReadStream, createWriteStream, constants as fsConstants } from 'node:fs';
import { copyFile, mkdir, readdir, rename, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { PermanentTaskError } from '../errors/task-errors.js';
import { checkStoragePath, createStorageContext, normaliseStoragePath } from './storage.js';

/** The storage kinds a job may name in `source_storage` / `destination_storage`. */
export const STORAGE_KINDS = ['local', 's3', 'azure_blob'] as const;
/** One of {@link STORAGE_KINDS}. */
export type StorageKind = (typeof STORAGE_KINDS)[number];

/** One stored object or file. */
export interface StoredObject {
  /** Client-relative path, forward slashes. */
  path: string;
  /** Bytes. */
  size: number;
}

/** A place a client's files are read from and written to. */
export interface StorageBackend {
  readonly kind: StorageKind;
  /** Where it points, without secrets (for logs), e.g. `s3://bucket/prefix`. */
  readonly description: string;
  /**
   * The object named `target` itself, or every object under the folder `target` (`""` = all).
   * @returns objects sorted by path; empty when there is none.
   */
  list(target: string, signal?: AbortSignal): Promise<StoredObject[]>;
  /** Streams object `from` into the local file `toFile` (whose folder exists). */
  download(from: string, toFile: string, signal?: AbortSignal): Promise<void>;
  /** Streams the local file `fromFile` to object `to`, replacing it. */
  upload(fromFile: string, to: string, signal?: AbortSignal): Promise<void>;
  /** Removes object `target` (no error when it is missing). */
  remove(target: string): Promise<void>;
}

/** A client's S3 settings (`PUT /clients/<name>/storage/s3`). */
export interface S3Settings {
  endpoint?: string;
  region: string;
  bucket: string;
  prefix?: string;
  force_path_style?: boolean;
}
/** S3 credentials (stored in `client_storage.secrets`). */
export interface S3Secrets {
  access_key_id: string;
  secret_access_key: string;
}
/** A client's Azure Blob settings. */
export interface AzureSettings {
  container: string;
  prefix?: string;
  account_name?: string;
  endpoint?: string;
}
/** Azure credentials: a connection string, or an account key (with `account_name` in settings). */
export interface AzureSecrets {
  connection_string?: string;
  account_key?: string;
}

/**
 * Checks and normalises a client-relative path.
 * @throws PermanentTaskError when it is absolute or climbs out.
 */
export function cleanPath(p: string): string {
  const problem = checkStoragePath(p);
  if (problem) throw new PermanentTaskError(`storage path ${JSON.stringify(p)} ${problem}`);
  return normaliseStoragePath(p);
}

function keyOf(prefix: string, p: string): string {
  const rel = cleanPath(p);
  return prefix ? (rel ? `${prefix}/${rel}` : prefix) : rel;
}

function underTarget(prefix: string, target: string, key: string): string | null {
  const base = keyOf(prefix, target);
  if (base !== '' && key !== base && !key.startsWith(`${base}/`)) return null;
  const rel = prefix ? key.slice(prefix.length + 1) : key;
  return rel === '' || rel.endsWith('/') ? null : rel;
}

/** Normalises a configured prefix: no leading/trailing slashes, checked like a path. */
export function cleanPrefix(prefix: string | undefined): string {
  return prefix ? cleanPath(prefix.replace(/^\/+/, '')) : '';
}

/** The `local` back-end: the client's folder under the storage root (symlinks checked). */
export function localBackend(storageRoot: string, client: string): StorageBackend {
  const ctx = createStorageContext(storageRoot, client);
  const walk = async (abs: string, rel: string, out: StoredObject[]): Promise<void> => {
    const entries = await readdir(abs, { withFileTypes: true }).catch(() => []);
    for (const e of entries) {
      const childRel = rel ? `${rel}/${e.name}` : e.name;
      if (e.isDirectory()) await walk(path.join(abs, e.name), childRel, out);
      else if (e.isFile()) out.push({ path: childRel, size: (await stat(path.join(abs, e.name))).size });
    }
  };
  return {
    kind: 'local',
    description: `local ${ctx.root}`,
    async list(target) {
      const rel = cleanPath(target);
      const abs = await ctx.resolve(rel);
      const st = await stat(abs).catch(() => null);
      if (!st) return [];
      if (st.isFile()) return [{ path: rel, size: st.size }];
      const out: StoredObject[] = [];
      await walk(abs, rel, out);
      return out.sort((a, b) => a.path.localeCompare(b.path));
    },
    async download(from, toFile) {
      const abs = await ctx.resolve(cleanPath(from));
      // A copy, never a hard link: a handler that rewrites the staged file in place must not
      // change the client's original. A copy-on-write clone where the file system has them.
      await copyFile(abs, toFile, fsConstants.COPYFILE_FICLONE);
    },
    async upload(fromFile, to) {
      const abs = await ctx.resolve(cleanPath(to));
      await mkdir(path.dirname(abs), { recursive: true });
      const tmp = `${abs}.part-${process.pid}-${Date.now()}`;
      await copyFile(fromFile, tmp);
      await rename(tmp, abs);
    },
    async remove(target) {
      await rm(await ctx.resolve(cleanPath(target)), { force: true });
    },
  };
}

/** Bytes per ranged GET of an S3 or Azure download. */
export const RANGE_BYTES = 8 * 1024 * 1024;
/** Bytes per part of a multipart upload. */
export const PART_BYTES = 8 * 1024 * 1024;

/** The `s3` back-end for `settings` and `secrets`. */
export async function s3Backend(settings: S3Settings, secrets: S3Secrets): Promise<StorageBackend> {
  const { S3Client, ListObjectsV2Command, GetObjectCommand, HeadObjectCommand, DeleteObjectCommand } =
    await import('@aws-sdk/client-s3');
  const { Upload } = await import('@aws-sdk/lib-storage');
  const client = new S3Client({
    region: settings.region,
    ...(settings.endpoint ? { endpoint: settings.endpoint } : {}),
    forcePathStyle: settings.force_path_style === true,
    credentials: { accessKeyId: secrets.access_key_id, secretAccessKey: secrets.secret_access_key },
    maxAttempts: 3,
  });
  const prefix = cleanPrefix(settings.prefix);
  const Bucket = settings.bucket;
  return {
    kind: 's3',
    description: `s3://${Bucket}/${prefix}`,
    async list(target, signal) {
      const base = keyOf(prefix, target);
      const out: StoredObject[] = [];
      let token: string | undefined;
      do {
        const res = await client.send(
          new ListObjectsV2Command({ Bucket, Prefix: base, ContinuationToken: token }),
          { abortSignal: signal },
        );
        for (const o of res.Contents ?? []) {
          const rel = o.Key ? underTarget(prefix, target, o.Key) : null;
          if (rel !== null) out.push({ path: rel, size: o.Size ?? 0 });
        }
        token = res.IsTruncated ? res.NextContinuationToken : undefined;
      } while (token);
      return out.sort((a, b) => a.path.localeCompare(b.path));
    },
    async download(from, toFile, signal) {
      const Key = keyOf(prefix, from);
      const head = await client.send(new HeadObjectCommand({ Bucket, Key }), { abortSignal: signal });
      const total = head.ContentLength ?? 0;
      const out = createWriteStream(toFile);
      try {
        for (let start = 0; start < total; start += RANGE_BYTES) {
          const end = Math.min(start + RANGE_BYTES, total) - 1;
          const res = await client.send(
            new GetObjectCommand({ Bucket, Key, Range: `bytes=${start}-${end}` }),
            { abortSignal: signal },
          );
          await pipeline(res.Body as Readable, out, { end: false });
        }
      } finally {
        await new Promise<void>((resolve, reject) =>
          out.end((err?: Error | null) => (err ? reject(err) : resolve())),
        );
      }
    },
    async upload(fromFile, to, signal) {
      const up = new Upload({
        client,
        params: { Bucket, Key: keyOf(prefix, to), Body: createReadStream(fromFile) },
        partSize: PART_BYTES,
        queueSize: 2,
      });
      const onAbort = (): void => void up.abort();
      signal?.addEventListener('abort', onAbort, { once: true });
      try {
        await up.done();
      } finally {
        signal?.removeEventListener('abort', onAbort);
      }
    },
    async remove(target) {
      await client.send(new DeleteObjectCommand({ Bucket, Key: keyOf(prefix, target) }));
    },
  };
}

/** The blob service URL of Azure settings (an explicit endpoint, else the public one of the account). */
export function azureEndpoint(settings: AzureSettings, secrets: AzureSecrets): string {
  if (secrets.connection_string) {
    const m = /(?:^|;)BlobEndpoint=([^;]+)/i.exec(secrets.connection_string);
    if (m) return m[1]!;
    const acc = /(?:^|;)AccountName=([^;]+)/i.exec(secrets.connection_string)?.[1];
    const suffix =
      /(?:^|;)EndpointSuffix=([^;]+)/i.exec(secrets.connection_string)?.[1] ?? 'core.windows.net';
    const proto = /(?:^|;)DefaultEndpointsProtocol=([^;]+)/i.exec(secrets.connection_string)?.[1] ?? 'https';
    return `${proto}://${acc ?? 'unknown'}.blob.${suffix}`;
  }
  return settings.endpoint ?? `https://${settings.account_name ?? 'unknown'}.blob.core.windows.net`;
}

/** The `azure_blob` back-end for `settings` and `secrets`. */
export async function azureBackend(settings: AzureSettings, secrets: AzureSecrets): Promise<StorageBackend> {
  const { BlobServiceClient, StorageSharedKeyCredential } = await import('@azure/storage-blob');
  const service = secrets.connection_string
    ? BlobServiceClient.fromConnectionString(secrets.connection_string)
    : new BlobServiceClient(
        azureEndpoint(settings, secrets),
        new StorageSharedKeyCredential(settings.account_name ?? '', secrets.account_key ?? ''),
      );
  const container = service.getContainerClient(settings.container);
  const prefix = cleanPrefix(settings.prefix);
  return {
    kind: 'azure_blob',
    description: `azure_blob ${settings.container}/${prefix}`,
    async list(target, signal) {
      const base = keyOf(prefix, target);
      const out: StoredObject[] = [];
      for await (const b of container.listBlobsFlat({ prefix: base, abortSignal: signal })) {
        const rel = underTarget(prefix, target, b.name);
        if (rel !== null) out.push({ path: rel, size: b.properties.contentLength ?? 0 });
      }
      return out.sort((a, b) => a.path.localeCompare(b.path));
    },
    async download(from, toFile, signal) {
      const blob = container.getBlobClient(keyOf(prefix, from));
      const props = await blob.getProperties({ abortSignal: signal });
      const total = props.contentLength ?? 0;
      const out = createWriteStream(toFile);
      try {
        for (let start = 0; start < total; start += RANGE_BYTES) {
          const res = await blob.download(start, Math.min(RANGE_BYTES, total - start), {
            abortSignal: signal,
          });
          await pipeline(res.readableStreamBody as Readable, out, { end: false });
        }
      } finally {
        await new Promise<void>((resolve, reject) =>
          out.end((err?: Error | null) => (err ? reject(err) : resolve())),
        );
      }
    },
    async upload(fromFile, to, signal) {
      const blob = container.getBlockBlobClient(keyOf(prefix, to));
      await blob.uploadStream(createReadStream(fromFile), PART_BYTES, 2, { abortSignal: signal });
    },
    async remove(target) {
      await container.getBlobClient(keyOf(prefix, target)).deleteIfExists();
    },
  };
}
