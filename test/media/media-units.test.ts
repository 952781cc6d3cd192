/**
 * Unit tests of the media building blocks: locating and running FFmpeg (progress, abort, errors),
 * probing, storage path rules (absolute, `..`, symlinks), media times and HLS playlists.
 */
import assert from 'node:assert/strict';
import { mkdir, symlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { PermanentTaskError } from '../../src/errors/task-errors.js';
import { locateTool, parseProgressBlock, runFfmpeg, MediaToolError } from '../../src/media/ffmpeg.js';
import { parsePlaylist, variantAudioUri, writeMasterPlaylist } from '../../src/media/hls-playlist.js';
import { probeMedia } from '../../src/media/probe.js';
import { parseMediaTime, toOffsetSeconds } from '../../src/media/timecode.js';
import { checkStoragePath, createStorageContext, resolveOutputBase } from '../../src/storage/storage.js';
import { makeTestVideo, tempStorageRoot } from './media-helpers.js';

describe('media: ffmpeg and ffprobe', () => {
  let tmp: Awaited<ReturnType<typeof tempStorageRoot>>;
  let video: string;
  before(async () => {
    tmp = await tempStorageRoot();
    video = await makeTestVideo(path.join(tmp.root, 'v.mp4'), { seconds: 2 });
  });
  after(() => tmp.cleanup());

  it('locates ffmpeg and ffprobe (FFMPEG_PATH, PATH, or the npm package build)', () => {
    assert.match(locateTool('ffmpeg'), /ffmpeg(\.exe)?$/);
    assert.match(locateTool('ffprobe'), /ffprobe(\.exe)?$/);
    // With an empty PATH the npm package's static build is found.
    assert.match(locateTool('ffmpeg', { PATH: '' }), /@ffmpeg-installer/);
  });

  it('a wrong FFMPEG_PATH is a permanent task error naming the variable, not a hang', () => {
    assert.throws(
      () => locateTool('ffmpeg', { FFMPEG_PATH: '/nonexistent/ffmpeg', PATH: '' }),
      (err: unknown) =>
        err instanceof PermanentTaskError && /FFMPEG_PATH.*not an executable/.test(err.message),
    );
  });

  it('probes duration, streams, size and frame rate', async () => {
    const info = await probeMedia(video);
    assert.ok(Math.abs(info.durationSeconds - 2) < 0.2, `duration ${info.durationSeconds}`);
    assert.deepEqual(
      info.streams.map((s) => s.kind),
      ['video', 'audio'],
    );
    assert.equal(info.video?.width, 320);
    assert.equal(info.video?.height, 180);
    assert.equal(info.video?.fps, 25);
    assert.equal(info.video?.codec, 'h264');
    assert.equal(info.audio?.codec, 'aac');
  });

  it('a file that is not media is a permanent error naming it', async () => {
    const txt = path.join(tmp.root, 'notes.mp4');
    await writeFile(txt, 'this is not a video\n');
    await assert.rejects(
      probeMedia(txt),
      (err: unknown) => err instanceof PermanentTaskError && /notes\.mp4/.test(err.message),
    );
  });

  it('reports progress percentages and ends at 100', async () => {
    const seen: number[] = [];
    await runFfmpeg(['-i', video, '-c:v', 'libx264', '-preset', 'ultrafast', '-f', 'null', '-'], {
      durationSeconds: 2,
      onProgress: (p) => {
        if (p.percent !== null) seen.push(p.percent);
      },
    });
    assert.ok(seen.length >= 1);
    assert.equal(seen.at(-1), 100);
    assert.ok(
      seen.every((v, i) => i === 0 || v >= seen[i - 1]!),
      'monotonic',
    );
  });

  it('parses -progress blocks (out_time_us, out_time fallback, end)', () => {
    const p = parseProgressBlock(['frame=50', 'out_time_us=1500000', 'speed=2.5x', 'progress=continue'], 3);
    assert.equal(p.outTimeSeconds, 1.5);
    assert.equal(p.percent, 50);
    assert.equal(p.speed, 2.5);
    assert.equal(p.done, false);
    const q = parseProgressBlock(['out_time=00:00:02.250000', 'progress=end'], 3);
    assert.equal(q.outTimeSeconds, 2.25);
    assert.equal(q.percent, 100);
  });

  it('an abort kills the running process at once', async () => {
    const ac = new AbortController();
    const started = Date.now();
    const run = runFfmpeg(
      ['-re', '-f', 'lavfi', '-i', 'testsrc2=size=320x180:rate=25:duration=60', '-f', 'null', '-'],
      {
        signal: ac.signal,
      },
    );
    setTimeout(() => ac.abort(new Error('job broken')), 300);
    await assert.rejects(run, /job broken/);
    assert.ok(Date.now() - started < 5000, 'ended well before the 60 s input');
  });

  it('a failing command rejects with the tail of its error output', async () => {
    await assert.rejects(
      runFfmpeg(['-i', path.join(tmp.root, 'missing.mp4'), '-f', 'null', '-']),
      (err: unknown) => err instanceof MediaToolError && /No such file/.test(err.message),
    );
  });
});

describe('media: storage paths', () => {
  let tmp: Awaited<ReturnType<typeof tempStorageRoot>>;
  before(async () => {
    tmp = await tempStorageRoot();
  });
  after(() => tmp.cleanup());

  it('resolves client-relative paths under <root>/<client>/', async () => {
    const s = createStorageContext(tmp.root, 'acme');
    assert.equal(s.root, path.join(tmp.root, 'acme'));
    assert.equal(await s.resolve('a/b/c.mp4'), path.join(tmp.root, 'acme', 'a/b/c.mp4'));
    assert.equal(await s.resolve('a/../b'), path.join(tmp.root, 'acme', 'b'));
  });

  it('rejects absolute paths and .. escapes with a permanent error', async () => {
    const s = createStorageContext(tmp.root, 'acme');
    for (const bad of ['/etc/passwd', '../other/x', 'a/../../x', 'C:\\x', '\\\\server\\share'])
      await assert.rejects(s.resolve(bad), PermanentTaskError, bad);
    assert.match(checkStoragePath('../x') ?? '', /inside the client storage root/);
    assert.equal(checkStoragePath('a/b'), null);
  });

  it('rejects a symlink that leads out of the client root, also below it', async () => {
    const s = createStorageContext(tmp.root, 'acme');
    await mkdir(path.join(tmp.root, 'secret'), { recursive: true });
    await mkdir(s.root, { recursive: true });
    await symlink(path.join(tmp.root, 'secret'), path.join(s.root, 'link'));
    await assert.rejects(s.resolve('link'), /symbolic link/);
    await assert.rejects(s.resolve('link/not-yet-there/file.mp4'), /symbolic link/);
    // A symlink that stays inside is fine.
    await mkdir(path.join(s.root, 'real'), { recursive: true });
    await symlink(path.join(s.root, 'real'), path.join(s.root, 'inside'));
    assert.equal(await s.resolve('inside/x'), path.join(s.root, 'inside/x'));
  });

  it('output_root names a sub-folder key; anything else is refused', () => {
    assert.equal(resolveOutputBase(undefined), '');
    assert.equal(resolveOutputBase('published'), 'published');
    assert.throws(() => resolveOutputBase('../x'), PermanentTaskError);
    assert.throws(() => resolveOutputBase('a/b'), PermanentTaskError);
  });

  it('refuses client names that are not folder-safe', () => {
    assert.throws(() => createStorageContext(tmp.root, '../x'));
  });
});

describe('media: times and playlists', () => {
  it('parses offsets, seconds and UTC timestamps', () => {
    assert.deepEqual(parseMediaTime('1:34.000'), { kind: 'offset', seconds: 94 });
    assert.deepEqual(parseMediaTime('01:00:02.5'), { kind: 'offset', seconds: 3602.5 });
    assert.deepEqual(parseMediaTime(12.5), { kind: 'offset', seconds: 12.5 });
    assert.deepEqual(parseMediaTime('7'), { kind: 'offset', seconds: 7 });
    assert.deepEqual(parseMediaTime('2024-05-01T10:00:00.500'), {
      kind: 'utc',
      epochMs: Date.UTC(2024, 4, 1, 10, 0, 0, 500),
    });
    assert.deepEqual(parseMediaTime('2024-05-01T12:00:00+02:00'), {
      kind: 'utc',
      epochMs: Date.UTC(2024, 4, 1, 10),
    });
    assert.equal(parseMediaTime('2030-02-30T00:00:00'), null);
    assert.equal(parseMediaTime('1:75'), null);
    assert.equal(parseMediaTime(-1), null);
    assert.equal(parseMediaTime('soon'), null);
  });

  it('places UTC times against EXT-X-PROGRAM-DATE-TIME, and refuses them without it', () => {
    const text = [
      '#EXTM3U',
      '#EXT-X-TARGETDURATION:2',
      '#EXTINF:2.0,',
      'a.ts',
      '#EXT-X-PROGRAM-DATE-TIME:2024-05-01T10:00:02.000Z',
      '#EXTINF:2.0,',
      'b.ts',
      '#EXT-X-ENDLIST',
    ].join('\n');
    const pl = parsePlaylist(text);
    assert.equal(pl.kind, 'media');
    if (pl.kind !== 'media') return;
    // The tag on the second segment is extrapolated back to the first.
    assert.equal(pl.startEpochMs, Date.UTC(2024, 4, 1, 10, 0, 0));
    assert.equal(pl.totalSeconds, 4);
    assert.equal(pl.ended, true);
    assert.equal(
      toOffsetSeconds({ kind: 'utc', epochMs: Date.UTC(2024, 4, 1, 10, 0, 3) }, pl.startEpochMs),
      3,
    );
    assert.match(String(toOffsetSeconds({ kind: 'utc', epochMs: 0 }, null)), /EXT-X-PROGRAM-DATE-TIME/);
  });

  it('writes and reads back a master playlist, highest bandwidth first', () => {
    const text = writeMasterPlaylist(
      [
        {
          uri: 'a/360p/index.m3u8',
          bandwidth: 900_000,
          width: 640,
          height: 360,
          codecs: 'avc1.64001e,mp4a.40.2',
        },
        {
          uri: 'a/720p/index.m3u8',
          bandwidth: 3_000_000,
          width: 1280,
          height: 720,
          codecs: 'avc1.64001f,mp4a.40.2',
        },
      ],
      ['task-engine-variant: clear'],
    );
    const pl = parsePlaylist(text);
    assert.equal(pl.kind, 'master');
    if (pl.kind !== 'master') return;
    assert.deepEqual(
      pl.variants.map((v) => [v.uri, v.height, v.codecs]),
      [
        ['a/720p/index.m3u8', 720, 'avc1.64001f,mp4a.40.2'],
        ['a/360p/index.m3u8', 360, 'avc1.64001e,mp4a.40.2'],
      ],
    );
    assert.throws(() => parsePlaylist('<html>'), PermanentTaskError);
  });

  it("finds a variant's audio rendition: its AUDIO group, DEFAULT=YES first; none without a group or a URI", () => {
    const pl = parsePlaylist(
      [
        '#EXTM3U',
        '#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="aac",NAME="fr",DEFAULT=NO,URI="a/fr/index.m3u8"',
        '#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="aac",NAME="en",DEFAULT=YES,URI="a/en/index.m3u8"',
        '#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="muxed",NAME="main",DEFAULT=YES',
        '#EXT-X-MEDIA:TYPE=SUBTITLES,GROUP-ID="aac",NAME="s",URI="s/index.m3u8"',
        '#EXT-X-STREAM-INF:BANDWIDTH=3000000,AUDIO="aac"',
        'a/720p/index.m3u8',
        '#EXT-X-STREAM-INF:BANDWIDTH=2000000,AUDIO="muxed"',
        'a/480p/index.m3u8',
        '#EXT-X-STREAM-INF:BANDWIDTH=1000000',
        'a/360p/index.m3u8',
        '',
      ].join('\n'),
    );
    assert.ok(pl.kind === 'master');
    assert.deepEqual(
      pl.variants.map((v) => [v.audio, variantAudioUri(pl, v)]),
      [
        ['aac', 'a/en/index.m3u8'],
        ['muxed', null],
        [null, null],
      ],
    );
  });
});
