/**
 * Staging for jobs whose `source_storage` or `destination_storage` is not `local`
 * (docs/storage.md). Handlers keep working on local files: their `ctx.storage` is rooted at the
 * job's staging folder `<storage root>/.staging/<client>/<job id>/` instead of the client folder.
 *
 * - **Stage-in**, on demand: when a handler resolves a path that does not exist in the staging
 *   folder, the object (or every object under the folder) of that name is streamed from the
 *   source storage into it first, through a temporary file and a rename. Each fetched file is
 *   recorded (path, size, mtime) in `<job id>.fetched.jsonl` beside the folder. Paths under a
 *   `.staging-*` folder are never fetched.
 * - **Publish**: when the job's last task succeeds (the one task without `when` that no other
 *   such task needs), every file of the staging folder is streamed to the destination storage,
 *   except fetched files left as they were and `.staging-*` folders. Fetched files the job
 *   deleted (`delete_source`) are then deleted from the source storage, and the staging folder
 *   is removed. A publish that fails removes what it had uploaded and fails the task, so a failed
 *   job publishes nothing.
 * - After a cleanup task (`when`), the staging folder of a failed job is removed.
 *
 * The staging folder lives under the storage root, which several hosts share when they run
 * workers of one engine; a job's tasks may so run on different hosts.
 */
import { appendFile, mkdir, readdir, readFile, rename, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import type { StorageBackend } from './backends.js';
import { createStorageContext, normaliseStoragePath, type ClientStorage } from './storage.js';

/** The job's staging folder. */
export function stagingFolder(storageRoot: string, client: string, jobId: number): string {
  return path.join(storageRoot, '.staging', client, String(jobId));
}

function fetchedLog(storageRoot: string, client: string, jobId: number): string {
  return `${stagingFolder(storageRoot, client, jobId)}.fetched.jsonl`;
}

/** What is known of one fetched file. */
interface FetchedEntry {
  path: string;
  size: number;
  mtimeMs: number;
}

async function readFetched(file: string): Promise<Map<string, FetchedEntry>> {
  const text = await readFile(file, 'utf8').catch(() => '');
  const out = new Map<string, FetchedEntry>();
  for (const line of text.split('\n')) {
    if (!line) continue;
    try {
      const e = JSON.parse(line) as FetchedEntry;
      out.set(e.path, e);
    } catch {
      /* a torn last line: ignored */
    }
  }
  return out;
}

const isStagingPart = (rel: string): boolean => rel.split('/').some((p) => p.startsWith('.staging-'));

/**
 * The `ctx.storage` of a task of a staged job: rooted at the staging folder, fetching missing
 * paths from `source` as the module header says.
 * @param log - a job log line writer (object names only, never credentials).
 */
export function stagedStorageContext(
  storageRoot: string,
  client: string,
  jobId: number,
  openSource: () => Promise<StorageBackend>,
  log: (line: string) => void,
  signal?: AbortSignal,
): ClientStorage {
  const inner = createStorageContext(path.join(storageRoot, '.staging', client), String(jobId));
  const checked = new Set<string>();
  const logFile = fetchedLog(storageRoot, client, jobId);
  let source: Promise<StorageBackend> | null = null;
  const fetchMissing = async (rel: string, abs: string): Promise<void> => {
    if (isStagingPart(rel)) return;
    for (const c of checked) if (c === '' || rel === c || rel.startsWith(`${c}/`)) return;
    if (await stat(abs).catch(() => null)) return;
    checked.add(rel);
    source ??= openSource();
    const backend = await source;
    const objects = await backend.list(rel, signal);
    let bytes = 0;
    for (const o of objects) {
      const target = await inner.resolve(o.path);
      if (await stat(target).catch(() => null)) continue;
      await mkdir(path.dirname(target), { recursive: true });
      const tmp = `${target}.fetch-${process.pid}-${Math.random().toString(36).slice(2)}`;
      try {
        await backend.download(o.path, tmp, signal);
        await rename(tmp, target);
      } catch (err) {
        await rm(tmp, { force: true });
        throw err;
      }
      const st = await stat(target);
      bytes += st.size;
      await appendFile(logFile, `${JSON.stringify({ path: o.path, size: st.size, mtimeMs: st.mtimeMs })}\n`);
    }
    if (objects.length)
      log(
        `fetched ${objects.length} file(s), ${bytes} bytes, of ${rel || '(root)'} from ${backend.kind} storage`,
      );
  };
  return {
    client,
    root: inner.root,
    async resolve(relative: string): Promise<string> {
      const abs = await inner.resolve(relative);
      await fetchMissing(normaliseStoragePath(relative), abs);
      return abs;
    },
    relative: (absolute) => inner.relative(absolute),
  };
}

async function walk(abs: string, rel: string, out: string[]): Promise<void> {
  const entries = await readdir(abs, { withFileTypes: true }).catch(() => []);
  for (const e of entries) {
    const r = rel ? `${rel}/${e.name}` : e.name;
    if (e.isDirectory()) {
      if (!e.name.startsWith('.staging-')) await walk(path.join(abs, e.name), r, out);
    } else if (e.isFile() && !/\.(fetch|part)-\d+-/.test(e.name)) out.push(r);
  }
}

/**
 * Publishes a staged job's outputs to `destination` (see the module header) and removes the
 * staging folder.
 * @returns the client-relative paths published.
 * @throws the back-end's error after removing what it had uploaded.
 */
export async function publishStaged(
  storageRoot: string,
  client: string,
  jobId: number,
  destination: StorageBackend,
  openSource: () => Promise<StorageBackend>,
  log: (line: string) => void,
  signal?: AbortSignal,
): Promise<string[]> {
  const root = stagingFolder(storageRoot, client, jobId);
  const fetched = await readFetched(fetchedLog(storageRoot, client, jobId));
  const files: string[] = [];
  await walk(root, '', files);
  const toPublish: string[] = [];
  for (const f of files.sort()) {
    const was = fetched.get(f);
    if (was) {
      const st = await stat(path.join(root, f));
      if (st.size === was.size && st.mtimeMs === was.mtimeMs) continue;
    }
    toPublish.push(f);
  }
  const done: string[] = [];
  let bytes = 0;
  try {
    for (const f of toPublish) {
      await destination.upload(path.join(root, f), f, signal);
      bytes += (await stat(path.join(root, f))).size;
      done.push(f);
    }
  } catch (err) {
    for (const f of done) await destination.remove(f).catch(() => undefined);
    log(
      `publishing to ${destination.kind} storage failed; removed the ${done.length} file(s) already published`,
    );
    throw err;
  }
  log(`published ${done.length} file(s), ${bytes} bytes, to ${destination.kind} storage`);
  const present = new Set(files);
  const deleted = [...fetched.keys()].filter((f) => !present.has(f));
  if (deleted.length) {
    const source = await openSource();
    for (const f of deleted) await source.remove(f);
    log(`deleted ${deleted.length} source file(s) from ${source.kind} storage`);
  }
  await removeStaging(storageRoot, client, jobId);
  return done;
}

/** Removes a job's staging folder and its fetch record (no error when absent). */
export async function removeStaging(storageRoot: string, client: string, jobId: number): Promise<void> {
  await rm(stagingFolder(storageRoot, client, jobId), { recursive: true, force: true });
  await rm(fetchedLog(storageRoot, client, jobId), { force: true });
}
