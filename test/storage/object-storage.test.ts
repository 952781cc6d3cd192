/**
 * Object storage end to end, against real servers the test starts on 127.0.0.1: Azurite (Azure
 * Blob, in memory) and s3rver (S3, in a temporary folder). A real engine (PGlite store, API,
 * controller and worker) runs the media workflows with FFmpeg: a vodstream job reads its source
 * from Azure and writes its HLS to S3 (checked by listing and downloading the objects and
 * ffprobe-ing them), the reverse for createmp4, and a failed job publishes nothing. The storage
 * endpoints' bad input answers 4xx JSON, secrets are never echoed or logged, non-admins are refused.
 * PGlite only, as the other media tests: the store paths are the ordinary ones.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { createServer } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { pino } from 'pino';
import { azureBackend, s3Backend, type StorageBackend } from '../../src/storage/backends.js';
import { probeMedia } from '../../src/media/probe.js';
import { startTaskEngine, type RunningTaskEngine } from '../../src/server.js';
import { testConfig, writeSettings } from '../helpers/engine.js';
import { trackRunning } from '../helpers/leak-guard.js';
import { createTestStore, type TestStore } from '../helpers/stores.js';
import { waitFor } from '../helpers/wait-for.js';
import { makeTestVideo } from '../media/media-helpers.js';

const ADMIN = 'storage-admin';
const KEY = 'storage-admin-key-0123456789abcdef';
const AZ_ACCOUNT = 'devstoreaccount1';
// Azurite's published development key (not a secret).
const AZ_KEY = 'Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==';
const S3_SECRET = 'S3RVER'; // s3rver accepts S3RVER / S3RVER

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const port = (srv.address() as { port: number }).port;
      srv.close(() => resolve(port));
    });
  });
}

interface JobReply {
  id: number;
  queue_state: string;
  failed: boolean;
  tasks: { name: string; state: string; error: string | null }[];
}

describe('object storage: Azure Blob and S3 sources and destinations [pglite]', () => {
  let store: TestStore;
  let running: RunningTaskEngine;
  let untrack: (() => void) | undefined;
  let tmp: string;
  let azurite: ChildProcess | undefined;
  let untrackAzurite: (() => void) | undefined;
  let s3: { close(): Promise<void> } | undefined;
  let s3Endpoint: string;
  let azConnection: string;
  let azure: StorageBackend;
  let bucket: StorageBackend;
  let storageRoot: string;
  const userKey: Record<string, string> = {};

  const api = async <T = Record<string, unknown>>(
    method: string,
    p: string,
    body?: unknown,
    as: { client: string; key: string } = { client: ADMIN, key: KEY },
  ): Promise<{ status: number; body: T; text: string }> => {
    const res = await fetch(`${running.url}${p}`, {
      method,
      headers: {
        client: as.client,
        'api-key': as.key,
        ...(body === undefined ? {} : { 'content-type': 'application/json' }),
      },
      ...(body === undefined ? {} : { body: typeof body === 'string' ? body : JSON.stringify(body) }),
    });
    const text = await res.text();
    return { status: res.status, body: JSON.parse(text) as T, text };
  };

  const s3Config = (): Record<string, unknown> => ({
    endpoint: s3Endpoint,
    region: 'us-east-1',
    bucket: 'media',
    prefix: 'tenant-a',
    access_key_id: 'S3RVER',
    secret_access_key: S3_SECRET,
    force_path_style: true,
  });
  const azConfig = (): Record<string, unknown> => ({
    connection_string: azConnection,
    container: 'media',
    prefix: 'tenant-a/blobs',
  });

  const submit = async (workflow: string, parameters: Record<string, unknown>): Promise<number> => {
    const r = await api<{ id: number }>('POST', '/job', { job: { workflow }, parameters });
    assert.equal(r.status, 200, r.text);
    return r.body.id;
  };
  const finish = (id: number): Promise<JobReply> =>
    waitFor(
      async () => {
        const r = await api<JobReply>('GET', `/jobs/${id}`);
        return r.body.queue_state === 'completed' ? r.body : null;
      },
      { timeoutMs: 120_000, intervalMs: 200, what: `job ${id} to finish` },
    );
  const logsOf = async (id: number): Promise<string> =>
    (await api<{ message: string }[]>('GET', `/logs/${id}?show_all=1`)).body.map((l) => l.message).join('\n');

  before(async () => {
    tmp = await mkdtemp(path.join(os.tmpdir(), 'te-objstore-'));
    // s3rver in a temporary folder, on a free loopback port.
    const S3rver = createRequire(import.meta.url)('s3rver') as new (o: Record<string, unknown>) => {
      run(): Promise<{ port: number }>;
      close(): Promise<void>;
    };
    const s3rver = new S3rver({
      address: '127.0.0.1',
      port: 0,
      directory: path.join(tmp, 's3'),
      silent: true,
      configureBuckets: [{ name: 'media' }],
    });
    const addr = await s3rver.run();
    s3 = s3rver;
    s3Endpoint = `http://127.0.0.1:${addr.port}`;
    // Azurite's blob service in memory, on a free loopback port.
    const azPort = await freePort();
    azurite = spawn(
      path.resolve('node_modules/.bin/azurite-blob'),
      [
        '--blobHost',
        '127.0.0.1',
        '--blobPort',
        String(azPort),
        '--inMemoryPersistence',
        '--silent',
        '--skipApiVersionCheck',
      ],
      { stdio: 'ignore' },
    );
    const az = azurite;
    untrackAzurite = trackRunning(
      'child process',
      'Azurite blob service',
      () => void az.kill('SIGKILL'),
      az.pid,
    );
    azConnection = `DefaultEndpointsProtocol=http;AccountName=${AZ_ACCOUNT};AccountKey=${AZ_KEY};BlobEndpoint=http://127.0.0.1:${azPort}/${AZ_ACCOUNT};`;
    const { BlobServiceClient } = await import('@azure/storage-blob');
    const container = BlobServiceClient.fromConnectionString(azConnection).getContainerClient('media');
    await waitFor(
      async () => {
        try {
          await container.createIfNotExists();
          return true;
        } catch {
          return null;
        }
      },
      { timeoutMs: 20_000, intervalMs: 200, what: 'Azurite to answer' },
    );
    azure = await azureBackend(
      { container: 'media', prefix: 'tenant-a/blobs' },
      { connection_string: azConnection },
    );
    bucket = await s3Backend(
      {
        endpoint: s3Endpoint,
        region: 'us-east-1',
        bucket: 'media',
        prefix: 'tenant-a',
        force_path_style: true,
      },
      { access_key_id: 'S3RVER', secret_access_key: S3_SECRET },
    );

    store = await createTestStore('pglite');
    await writeSettings(store.db, { max_jobs: 2, retry_delay: 1 });
    const config = testConfig({
      roles: ['api', 'controller', 'worker'],
      adminClient: ADMIN,
      adminApiKey: KEY,
      workerConcurrency: 3,
    });
    storageRoot = config.storageRoot;
    running = await startTaskEngine(config, { db: store.db, logger: pino({ level: 'silent' }) });
    untrack = trackRunning('engine', 'of startTaskEngine (object storage)', () => running.stop());
    const made = await api<{ api_key: string }>('POST', '/clients', { name: 'plain-user', admin: false });
    userKey['plain-user'] = made.body.api_key;

    // Sources: a video in Azure, a video in S3, a fake "video" in S3.
    const local = await makeTestVideo(path.join(tmp, 'src/source.mp4'), { seconds: 2 });
    await azure.upload(local, 'in/clip/source.mp4');
    await bucket.upload(local, 'in2/clip/source.mp4');
    const fake = path.join(tmp, 'src/fake.mp4');
    await (await import('node:fs/promises')).writeFile(fake, 'not really an mp4');
    await bucket.upload(fake, 'bad/movie.mp4');
  });

  after(async () => {
    await running?.stop();
    untrack?.();
    await store?.dispose();
    await s3?.close();
    if (azurite && azurite.exitCode === null && azurite.signalCode === null) {
      const exited = new Promise((resolve) => azurite!.once('exit', resolve));
      azurite.kill('SIGTERM');
      await exited;
    }
    untrackAzurite?.();
    if (tmp) await rm(tmp, { recursive: true, force: true });
  });

  it('storage endpoints: bad input is a 4xx JSON naming the field, secrets never come back, non-admins are refused', async () => {
    const bad: [string, unknown, RegExp][] = [
      ['s3', {}, /endpoint is required/],
      ['s3', { ...s3Config(), endpoint: 'ftp://x' }, /endpoint must be an http/],
      ['s3', { ...s3Config(), bucket: '' }, /bucket/],
      ['s3', { ...s3Config(), force_path_style: 'yes' }, /force_path_style/],
      ['s3', { ...s3Config(), prefix: '../up' }, /prefix/],
      ['s3', { ...s3Config(), extra: 1 }, /unknown field\(s\) extra/],
      ['s3', [1, 2], /JSON object/],
      ['azure_blob', { container: 'media' }, /connection_string, or account_name and account_key/],
      ['azure_blob', { ...azConfig(), container: 'Bad_Name' }, /container/],
      ['azure_blob', { ...azConfig(), account_name: 'x' }, /not both/],
      ['gcs', s3Config(), /./],
    ];
    for (const [kind, body, why] of bad) {
      const r = await api('PUT', `/clients/plain-user/storage/${kind}`, body);
      assert.ok(
        r.status >= 400 && r.status < 500,
        `${kind} ${JSON.stringify(body)} -> ${r.status} ${r.text}`,
      );
      assert.match(r.text, why);
      assert.ok(!r.text.includes(S3_SECRET) && !r.text.includes(AZ_KEY), 'no secret echoed');
    }
    const notJson = await api('PUT', '/clients/plain-user/storage/s3', '{"endpoint": ');
    assert.equal(notJson.status, 400);
    assert.equal((await api('PUT', '/clients/nobody/storage/s3', s3Config())).status, 404);
    // Link-local / metadata addresses are refused by the egress rules.
    const meta = await api('PUT', '/clients/plain-user/storage/s3', {
      ...s3Config(),
      endpoint: 'http://169.254.169.254',
    });
    assert.equal(meta.status, 400, meta.text);
    assert.match(meta.text, /egress/);

    const user = { client: 'plain-user', key: userKey['plain-user']! };
    assert.equal((await api('PUT', '/clients/plain-user/storage/s3', s3Config(), user)).status, 403);
    assert.equal((await api('GET', '/clients/plain-user/storage', undefined, user)).status, 403);
    assert.equal((await api('DELETE', '/clients/plain-user/storage/s3', undefined, user)).status, 403);

    // Configure the admin's own storage (used by the jobs below) and another client's.
    for (const [name, kind, body] of [
      [ADMIN, 's3', s3Config()],
      [ADMIN, 'azure_blob', azConfig()],
      ['plain-user', 's3', s3Config()],
    ] as const) {
      const r = await api('PUT', `/clients/${name}/storage/${kind}`, body);
      assert.equal(r.status, 200, r.text);
      assert.ok(!r.text.includes(S3_SECRET) && !r.text.includes(AZ_KEY) && !r.text.includes('AccountKey'));
    }
    const shown = await api<{ storage: Record<string, Record<string, unknown>> }>(
      'GET',
      `/clients/${ADMIN}/storage`,
    );
    assert.equal(shown.status, 200);
    assert.equal(shown.body.storage.s3!.bucket, 'media');
    assert.equal(shown.body.storage.s3!.prefix, 'tenant-a');
    assert.equal(shown.body.storage.azure_blob!.container, 'media');
    assert.ok(
      !shown.text.includes(S3_SECRET) &&
        !shown.text.includes(AZ_KEY) &&
        !shown.text.includes('secret_access_key'),
    );
    assert.equal((await api('DELETE', '/clients/plain-user/storage/s3')).status, 200);
    assert.equal((await api('DELETE', '/clients/plain-user/storage/s3')).status, 404);
    assert.deepEqual(
      (await api<{ storage: unknown }>('GET', '/clients/plain-user/storage')).body.storage,
      {},
    );
  });

  it('a job naming storage that is not configured, or an unknown kind, is a 400 at submission', async () => {
    const user = { client: 'plain-user', key: userKey['plain-user']! };
    const r = await api(
      'POST',
      '/job',
      {
        job: { workflow: 'vodstream' },
        parameters: { content_id: 'a', source_folder: 'in', source_storage: 'S3' },
      },
      user,
    );
    assert.equal(r.status, 400, r.text);
    assert.match(r.text, /source_storage is s3, but client plain-user has no s3 storage configured/);
    const r2 = await api('POST', '/job', {
      job: { workflow: 'createmp4' },
      parameters: { source_folder: 'x', destination_storage: 'gcs' },
    });
    assert.equal(r2.status, 400, r2.text);
    assert.match(r2.text, /destination_storage/);
  });

  it('vodstream reads its source from Azure Blob and publishes its HLS to S3', async () => {
    const id = await submit('vodstream', {
      content_id: 'asset1',
      source_folder: 'in/clip',
      output_folder: 'out/asset1',
      source_storage: 'AZURE_BLOB',
      destination_storage: 'S3',
      segment_duration: 1,
      generate_mp4: true,
    });
    const job = await finish(id);
    if (job.failed) assert.fail(`${JSON.stringify(job.tasks)}\n${await logsOf(id)}`);
    const objects = (await bucket.list('out/asset1')).map((o) => o.path);
    for (const f of [
      'out/asset1/asset1.m3u8',
      'out/asset1/asset1_nodrm.m3u8',
      'out/asset1/asset1_nodrm/180p/index.m3u8',
      'out/asset1/asset1_nodrm/audio/index.m3u8',
      'out/asset1/asset1.jpg',
      'out/asset1/asset1.mp4',
    ])
      assert.ok(objects.includes(f), `${f} published; have ${objects.join(', ')}`);
    assert.ok(objects.some((o) => /asset1_nodrm\/180p\/segment_\d+\.ts$/.test(o)));
    assert.ok(objects.some((o) => /asset1_nodrm\/audio\/segment_\d+\.ts$/.test(o)));
    assert.ok(!objects.some((o) => o.includes('.staging-')), 'no staging folder published');
    assert.ok(!objects.some((o) => o.startsWith('in/')), 'the source is not copied to the destination');
    // Download the whole asset and play it with ffprobe.
    const dl = path.join(tmp, 'dl1');
    for (const o of objects) {
      await mkdir(path.dirname(path.join(dl, o)), { recursive: true });
      await bucket.download(o, path.join(dl, o));
    }
    // The video rendition is video only; the audio is the master's audio rendition group, which
    // FFmpeg playing the downloaded master follows.
    const info = await probeMedia(path.join(dl, 'out/asset1/asset1_nodrm/180p/index.m3u8'));
    assert.deepEqual(
      info.streams.map((s) => s.kind),
      ['video'],
    );
    assert.ok(Math.abs(info.durationSeconds - 2) <= 0.3, `duration ${info.durationSeconds}`);
    const audio = await probeMedia(path.join(dl, 'out/asset1/asset1_nodrm/audio/index.m3u8'));
    assert.deepEqual(
      audio.streams.map((s) => s.kind),
      ['audio'],
    );
    const played = await probeMedia(path.join(dl, 'out/asset1/asset1_nodrm.m3u8'));
    assert.deepEqual(played.streams.map((s) => s.kind).sort(), ['audio', 'video']);
    const mp4 = await probeMedia(path.join(dl, 'out/asset1/asset1.mp4'));
    assert.equal(mp4.video?.height, 180);
    // The source stays in Azure; nothing was written to the local client folder; staging is gone.
    assert.deepEqual(
      (await azure.list('in/clip')).map((o) => o.path),
      ['in/clip/source.mp4'],
    );
    assert.equal(await stat(path.join(storageRoot, ADMIN, 'out')).catch(() => null), null);
    assert.deepEqual(await readdir(path.join(storageRoot, '.staging', ADMIN)).catch(() => []), []);
    const logs = await logsOf(id);
    assert.match(logs, /fetched 1 file\(s\).*from azure_blob storage/);
    assert.match(logs, /published \d+ file\(s\).*to s3 storage/);
    assert.ok(!logs.includes(AZ_KEY) && !logs.includes(S3_SECRET));
  });

  it('a mezzanine in S3 becomes an adaptive HLS + DASH asset with thumbnails and trick play in Azure Blob', async () => {
    const id = await submit('vodstream', {
      content_id: 'asset3',
      source_folder: 'in2/clip',
      output_folder: 'out/asset3',
      source_storage: 's3',
      destination_storage: 'azure_blob',
      renditions: [{ height: 180 }, { height: 120 }],
      formats: ['hls', 'dash'],
      segment_duration: 1,
      trickplay: true,
      trickplay_thumbnail_interval: 0.5,
    });
    const job = await finish(id);
    if (job.failed) assert.fail(`${JSON.stringify(job.tasks)}\n${await logsOf(id)}`);
    const objects = (await azure.list('out/asset3')).map((o) => o.path);
    for (const f of [
      'out/asset3/asset3.m3u8',
      'out/asset3/asset3.mpd',
      'out/asset3/asset3_nodrm.m3u8',
      'out/asset3/asset3_nodrm.mpd',
      'out/asset3/asset3_nodrm/180p/init.mp4',
      'out/asset3/asset3_nodrm/180p/iframes.m3u8',
      'out/asset3/asset3_nodrm/120p/iframes.m3u8',
      'out/asset3/asset3_trickplay.vtt',
      'out/asset3/asset3_trickplay/sheet_00001.jpg',
      'out/asset3/asset3.jpg',
    ])
      assert.ok(objects.includes(f), `${f} published; have ${objects.join(', ')}`);
    assert.ok(objects.some((o) => /asset3_nodrm\/120p\/segment_\d+\.m4s$/.test(o)));
    assert.ok(!objects.some((o) => o.includes('.staging-')), 'no staging folder published');
    const dl = path.join(tmp, 'dl3');
    for (const o of objects) {
      await mkdir(path.dirname(path.join(dl, o)), { recursive: true });
      await azure.download(o, path.join(dl, o));
    }
    const base = path.join(dl, 'out/asset3');
    // HLS and DASH both play from the downloaded files: the same CMAF segments.
    const hls = await probeMedia(path.join(base, 'asset3_nodrm.m3u8'));
    assert.deepEqual([...new Set(hls.streams.map((x) => x.kind))].sort(), ['audio', 'video']);
    // The MPD carries the thumbnail tile set; no trick-mode set unless asked (FFmpeg 5.1 reading
    // one hangs), so FFmpeg reads it within the timeout.
    const mpd = await readFile(path.join(base, 'asset3_nodrm.mpd'), 'utf8');
    assert.match(mpd, /schemeIdUri="http:\/\/dashif\.org\/thumbnail_tile" value="4x1"/);
    assert.doesNotMatch(mpd, /dashif\.org\/guidelines\/trickmode/);
    const dash = await probeMedia(path.join(base, 'asset3_nodrm.mpd'), {
      signal: AbortSignal.timeout(30_000),
    });
    assert.ok(dash.streams.some((x) => x.kind === 'video'));
    assert.ok(Math.abs(dash.durationSeconds - 2) <= 0.3, `DASH lasts ${dash.durationSeconds} s`);
    const master = await readFile(path.join(base, 'asset3_nodrm.m3u8'), 'utf8');
    assert.equal(master.match(/#EXT-X-I-FRAME-STREAM-INF:/g)?.length, 2);
    // The I-frame playlist's first range decodes on its own after the init segment: one frame.
    const iframes = await readFile(path.join(base, 'asset3_nodrm/180p/iframes.m3u8'), 'utf8');
    const range = /#EXT-X-BYTERANGE:(\d+)@(\d+)\n(\S+)/.exec(iframes)!;
    const seg = await readFile(path.join(base, 'asset3_nodrm/180p', range[3]!));
    const one = path.join(dl, 'one-iframe.mp4');
    await writeFile(
      one,
      Buffer.concat([
        await readFile(path.join(base, 'asset3_nodrm/180p/init.mp4')),
        seg.subarray(Number(range[2]), Number(range[2]) + Number(range[1])),
      ]),
    );
    const frame = await probeMedia(one);
    assert.equal(frame.video?.height, 180);
    const vtt = await readFile(path.join(base, 'asset3_trickplay.vtt'), 'utf8');
    assert.equal(vtt.match(/asset3_trickplay\/sheet_00001\.jpg#xywh=/g)?.length, 4);
    const logs = await logsOf(id);
    assert.match(logs, /fetched 1 file\(s\).*from s3 storage/);
    assert.match(logs, /published \d+ file\(s\).*to azure_blob storage/);
  });

  it('createmp4 reads an HLS folder from S3 and writes the MP4 to Azure Blob', async () => {
    const id = await submit('createmp4', {
      source_folder: 'out/asset1',
      content_id: 'asset1',
      output_folder: 'mp4s',
      mp4_filename: 'remux.mp4',
      source_storage: 's3',
      destination_storage: 'azure_blob',
    });
    const job = await finish(id);
    if (job.failed) assert.fail(`${JSON.stringify(job.tasks)}\n${await logsOf(id)}`);
    assert.deepEqual(
      (await azure.list('mp4s')).map((o) => o.path),
      ['mp4s/remux.mp4'],
    );
    const file = path.join(tmp, 'dl2/remux.mp4');
    await mkdir(path.dirname(file), { recursive: true });
    await azure.download('mp4s/remux.mp4', file);
    // The video comes from the best rendition, the audio from the asset's audio rendition group.
    const info = await probeMedia(file);
    assert.deepEqual(info.streams.map((s) => s.kind).sort(), ['audio', 'video']);
    // Nothing fetched from S3 came back as an output.
    assert.deepEqual((await azure.list('out/asset1')).length, 0);
  });

  it('a failed job publishes nothing and leaves no staging folder', async () => {
    const id = await submit('vodstream', {
      content_id: 'broken',
      source_folder: 'bad',
      output_folder: 'out/broken',
      source_storage: 's3',
      destination_storage: 'azure_blob',
    });
    const job = await finish(id);
    assert.equal(job.failed, true);
    assert.match(await logsOf(id), /no video source/);
    assert.deepEqual(await azure.list('out/broken'), []);
    assert.deepEqual(await bucket.list('out/broken'), []);
    await waitFor(
      async () =>
        (await readdir(path.join(storageRoot, '.staging', ADMIN)).catch(() => [])).length === 0 ? true : null,
      { timeoutMs: 10_000, intervalMs: 100, what: 'the staging folder to be removed' },
    );
  });

  it('a job whose outputs are all made but cannot be published fails and publishes nothing', async () => {
    const id = await submit('vodstream', {
      content_id: 'late',
      source_folder: 'in2/clip',
      output_folder: 'out/late',
      source_storage: 's3',
      destination_storage: 'azure_blob',
      segment_duration: 1,
    });
    // The destination disappears while the job encodes: the publish after finalize cannot open it.
    assert.equal((await api('DELETE', `/clients/${ADMIN}/storage/azure_blob`)).status, 200);
    try {
      const job = await finish(id);
      assert.equal(job.failed, true);
      const finalize = job.tasks.find((t) => t.name === 'finalize');
      assert.equal(finalize?.state, 'failed', JSON.stringify(job.tasks));
      assert.match(finalize?.error ?? '', /no azure_blob storage configured/);
      assert.equal(job.tasks.find((t) => t.name === 'package_clear')?.state, 'succeeded');
      assert.deepEqual(await azure.list('out/late'), []);
      assert.deepEqual(await bucket.list('out/late'), []);
      await waitFor(
        async () =>
          (await readdir(path.join(storageRoot, '.staging', ADMIN)).catch(() => [])).length === 0
            ? true
            : null,
        { timeoutMs: 10_000, intervalMs: 100, what: 'the staging folder to be removed' },
      );
    } finally {
      assert.equal((await api('PUT', `/clients/${ADMIN}/storage/azure_blob`, azConfig())).status, 200);
    }
  });
});
