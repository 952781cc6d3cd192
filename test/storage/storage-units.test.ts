/**
 * The storage seam without servers: the job parameters' kinds, the last task a staged job
 * publishes after, the split of a storage body into settings and secrets, and staging with the
 * `local` back-end on both sides (fetch on demand, publish only outputs, the source's copy kept
 * apart from the original, delete_source carried to the source).
 */
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { localBackend } from '../../src/storage/backends.js';
import { lastTaskName, parseStorageBody, readStorageKinds } from '../../src/storage/client-storage.js';
import { publishStaged, stagedStorageContext, stagingFolder } from '../../src/storage/job-staging.js';
import type { TaskDefinition } from '../../src/workflows/types.js';

let root: string;
before(async () => {
  root = await mkdtemp(path.join(tmpdir(), 'storage-units-'));
});
after(async () => rm(root, { recursive: true, force: true }));

test('source_storage / destination_storage: any case, destination defaults to source, unknown refused', () => {
  assert.deepEqual(readStorageKinds({}), { source: 'local', destination: 'local' });
  assert.deepEqual(readStorageKinds({ source_storage: 'S3' }), { source: 's3', destination: 's3' });
  assert.deepEqual(readStorageKinds({ source_storage: 'Azure_Blob', destination_storage: 'LOCAL' }), {
    source: 'azure_blob',
    destination: 'local',
  });
  assert.match(
    readStorageKinds({ destination_storage: 'gcs' }) as string,
    /destination_storage must be one of local, s3, azure_blob/,
  );
  assert.match(readStorageKinds({ source_storage: 3 }) as string, /source_storage/);
});

test('the last task: the one main task nothing else needs; cleanup tasks do not count', () => {
  const t = (name: string, needs: string[], when?: 'failed'): TaskDefinition => ({
    name,
    needs,
    run: 'sleep',
    queue: 'work',
    ...(when ? { when } : {}),
  });
  assert.equal(
    lastTaskName([t('a', []), t('b', ['a']), t('c', ['a']), t('d', ['b', 'c']), t('x', [], 'failed')]),
    'd',
  );
  assert.equal(lastTaskName([t('a', []), t('b', ['a']), t('c', ['a'])]), null);
});

test('a storage body is split into shown settings and stored secrets', () => {
  const s3 = parseStorageBody('s3', {
    endpoint: 'http://127.0.0.1:9000',
    region: 'r',
    bucket: 'b1',
    prefix: '/p/q/',
    access_key_id: 'id',
    secret_access_key: 'sk',
  });
  assert.deepEqual(s3.secrets, { access_key_id: 'id', secret_access_key: 'sk' });
  assert.equal(s3.settings.prefix, 'p/q');
  assert.ok(!JSON.stringify(s3.settings).includes('sk'));
  const az = parseStorageBody('azure_blob', {
    connection_string:
      'DefaultEndpointsProtocol=http;AccountName=a;AccountKey=KEY==;BlobEndpoint=http://127.0.0.1:1/a;',
    container: 'media',
  });
  assert.equal(az.settings.endpoint, 'http://127.0.0.1:1/a');
  assert.ok(!JSON.stringify(az.settings).includes('KEY=='));
});

test('staging with local storage: sources fetched on demand, only outputs published, originals untouched', async () => {
  const storageRoot = path.join(root, 'sr');
  const client = 'acme';
  const src = path.join(storageRoot, client, 'in');
  await mkdir(src, { recursive: true });
  await writeFile(path.join(src, 'a.txt'), 'original');
  await writeFile(path.join(src, 'b.txt'), 'source b');
  const source = localBackend(storageRoot, client);
  const destRoot = path.join(root, 'dest');
  const destination = localBackend(destRoot, client);
  const logs: string[] = [];
  const ctx = stagedStorageContext(
    storageRoot,
    client,
    7,
    () => Promise.resolve(source),
    (l) => logs.push(l),
  );
  assert.equal(ctx.root, stagingFolder(storageRoot, client, 7));
  const folder = await ctx.resolve('in');
  assert.equal(await readFile(path.join(folder, 'a.txt'), 'utf8'), 'original');
  assert.match(logs.join('\n'), /fetched 2 file\(s\)/);
  // The job rewrites a fetched file in place, deletes one, and writes an output.
  await writeFile(path.join(folder, 'a.txt'), 'changed');
  await rm(path.join(folder, 'b.txt'));
  await mkdir(path.join(ctx.root, 'out/.staging-7'), { recursive: true });
  await writeFile(path.join(ctx.root, 'out/.staging-7/tmp.ts'), 'scratch');
  await writeFile(path.join(ctx.root, 'out/result.txt'), 'made');
  await assert.rejects(ctx.resolve('../escape'), /must stay inside/);
  const published = await publishStaged(
    storageRoot,
    client,
    7,
    destination,
    () => Promise.resolve(source),
    (l) => logs.push(l),
  );
  assert.deepEqual(published, ['in/a.txt', 'out/result.txt']);
  assert.equal(await readFile(path.join(destRoot, client, 'out/result.txt'), 'utf8'), 'made');
  assert.equal(await stat(path.join(destRoot, client, 'out/.staging-7')).catch(() => null), null);
  // The staged copy was a copy: rewriting it did not change the original; the deleted one is gone.
  assert.equal(await readFile(path.join(src, 'a.txt'), 'utf8'), 'original');
  assert.equal(await stat(path.join(src, 'b.txt')).catch(() => null), null);
  assert.equal(await stat(ctx.root).catch(() => null), null);
});
