/**
 * trickplay on a real HLS folder (FFmpeg-made, 2 key frames per MPEG-TS segment): I-frame
 * playlist entries equal the key frames and every byte range decodes on its own; the
 * multi-variant playlist lists it; sprite sheets and the WebVTT index match the duration and
 * interval. And on an FFmpeg-made fMP4 rendition (init segment + `.m4s`, one fragment per 2 s
 * segment holding two key frames): one entry per fragment, each range a `moof` that decodes
 * with the init segment as exactly one key frame. An AES-128 rendition is skipped with a log
 * line (CENC CMAF renditions are checked end to end, decrypted, in vod-ladder.test.ts).
 */
import assert from 'node:assert/strict';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { runFfmpeg, runFfprobe } from '../../src/media/ffmpeg.js';
import { probeMedia } from '../../src/media/probe.js';
import { buildIFramePlaylist } from '../../src/media/trickplay.js';
import trickplay, { IFRAME_PLAYLIST } from '../../workflows/handlers/trickplay.js';
import { assertFmp4RangesDecode, runHandlerDirect, tempStorageRoot } from './media-helpers.js';

const SECONDS = 7;

describe('trickplay handler', () => {
  let root: { root: string; cleanup(): Promise<void> };
  let client: string;
  before(async () => {
    root = await tempStorageRoot();
    client = path.join(root.root, 'media-test');
    const dir = path.join(client, 'asset/a_nodrm/180p');
    await mkdir(dir, { recursive: true });
    // 1 s GOPs, 2 s segments: key frames at segment starts and in the middle of segments.
    await runFfmpeg([
      '-f',
      'lavfi',
      '-i',
      `testsrc=size=320x180:rate=25:duration=${SECONDS}`,
      '-f',
      'lavfi',
      '-i',
      `sine=frequency=440:sample_rate=48000:duration=${SECONDS}`,
      '-c:v',
      'libx264',
      '-preset',
      'ultrafast',
      '-g',
      '25',
      '-pix_fmt',
      'yuv420p',
      '-c:a',
      'aac',
      '-shortest',
      '-f',
      'hls',
      '-hls_time',
      '2',
      '-hls_playlist_type',
      'vod',
      '-hls_segment_filename',
      path.join(dir, 'segment_%05d.ts'),
      path.join(dir, 'index.m3u8'),
    ]);
    const master =
      '#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-STREAM-INF:BANDWIDTH=500000,RESOLUTION=320x180,CODECS="avc1.42c00d,mp4a.40.2"\na_nodrm/180p/index.m3u8\n';
    await writeFile(path.join(client, 'asset/a_nodrm.m3u8'), master);
    await writeFile(path.join(client, 'asset/a.m3u8'), master);
  });
  after(() => root.cleanup());

  it('writes I-frame playlists whose ranges decode, and thumbnails for the duration and interval', async () => {
    const run = await runHandlerDirect(trickplay, {
      storageRoot: root.root,
      parameters: {
        content_id: 'a',
        source_folder: 'asset',
        output_folder: 'asset',
        trickplay_thumbnail_interval: 0.5,
        trickplay_thumbnail_size: 64,
        trickplay_tile_columns: 4,
        trickplay_tile_rows: 3,
      },
    });
    const out = run.output as { files: string[]; metadata: Record<string, number> };
    const dir = path.join(client, 'asset/a_nodrm/180p');
    // Key frames of the whole rendition, from ffprobe over the playlist.
    const frames = JSON.parse(
      await runFfprobe([
        '-select_streams',
        'v:0',
        '-skip_frame',
        'nokey',
        '-show_frames',
        '-show_entries',
        'frame=key_frame',
        '-of',
        'json',
        path.join(dir, 'index.m3u8'),
      ]),
    ) as { frames: { key_frame: number }[] };
    const keyCount = frames.frames.filter((f) => f.key_frame === 1).length;
    assert.equal(keyCount, SECONDS);
    const text = await readFile(path.join(dir, IFRAME_PLAYLIST), 'utf8');
    assert.match(text, /^#EXTM3U\n/);
    assert.match(text, /#EXT-X-I-FRAMES-ONLY/);
    const entries = [...text.matchAll(/#EXTINF:([\d.]+),\n#EXT-X-BYTERANGE:(\d+)@(\d+)\n(\S+)/g)];
    assert.equal(entries.length, keyCount);
    const total = entries.reduce((a, e) => a + Number(e[1]), 0);
    assert.ok(Math.abs(total - SECONDS) < 0.05, `durations sum ${total}`);
    assert.ok(
      entries.some((e) => Number(e[3]) > 1000),
      'some key frames lie inside a segment',
    );
    for (const [i, e] of entries.entries()) {
      const seg = await readFile(path.join(dir, e[4]!));
      const part = seg.subarray(Number(e[3]), Number(e[3]) + Number(e[2]));
      const cut = path.join(root.root, `range_${i}.ts`);
      await writeFile(cut, part);
      const probed = JSON.parse(
        await runFfprobe([
          '-count_frames',
          '-select_streams',
          'v:0',
          '-show_entries',
          'stream=codec_name,nb_read_frames,width',
          '-of',
          'json',
          cut,
        ]),
      ) as { streams: { codec_name: string; nb_read_frames: string; width: number }[] };
      assert.equal(probed.streams[0]?.codec_name, 'h264', `range ${i}`);
      assert.equal(Number(probed.streams[0]?.nb_read_frames), 1, `range ${i} decodes one frame`);
    }
    // Both masters (the active copy and its variant) list the I-frame stream, still byte-equal.
    const master = await readFile(path.join(client, 'asset/a_nodrm.m3u8'), 'utf8');
    assert.match(master, /#EXT-X-VERSION:4/);
    assert.match(
      master,
      /#EXT-X-I-FRAME-STREAM-INF:BANDWIDTH=\d+,RESOLUTION=320x180,CODECS="avc1.42c00d",URI="a_nodrm\/180p\/iframes.m3u8"/,
    );
    assert.equal(await readFile(path.join(client, 'asset/a.m3u8'), 'utf8'), master);
    // 7 s every 0.5 s = 14 thumbnails of 64x36 in sheets of 4x3: 2 sheets (12 + 2).
    assert.equal(out.metadata.thumbnails, 14);
    assert.equal(out.metadata.sheets, 2);
    const s1 = await probeMedia(path.join(client, 'asset/a_trickplay/sheet_00001.jpg'));
    assert.deepEqual([s1.video?.width, s1.video?.height], [4 * 64, 3 * 36]);
    const s2 = await probeMedia(path.join(client, 'asset/a_trickplay/sheet_00002.jpg'));
    assert.equal(s2.video?.width, 4 * 64);
    const vtt = await readFile(path.join(client, 'asset/a_trickplay.vtt'), 'utf8');
    const cues = [...vtt.matchAll(/^(\S+) --> (\S+)\n(\S+)$/gm)].map((c) => [c[1], c[2], c[3]]);
    assert.equal(cues.length, 14);
    assert.deepEqual(cues[0], ['00:00:00.000', '00:00:00.500', 'a_trickplay/sheet_00001.jpg#xywh=0,0,64,36']);
    assert.deepEqual(cues[5], [
      '00:00:02.500',
      '00:00:03.000',
      'a_trickplay/sheet_00001.jpg#xywh=64,36,64,36',
    ]);
    assert.deepEqual(cues[13], [
      '00:00:06.500',
      '00:00:07.000',
      'a_trickplay/sheet_00002.jpg#xywh=64,0,64,36',
    ]);
    assert.ok(out.files.includes('asset/a_nodrm/180p/iframes.m3u8'));
    // Running again gives the same masters (no duplicated I-frame lines).
    await runHandlerDirect(trickplay, {
      storageRoot: root.root,
      parameters: { content_id: 'a', source_folder: 'asset', trickplay_thumbnails: false },
    });
    assert.equal(await readFile(path.join(client, 'asset/a_nodrm.m3u8'), 'utf8'), master);
  });

  it('writes I-frame playlists for fMP4 renditions: EXT-X-MAP, and each range a moof that decodes as one key frame', async () => {
    const dir = path.join(client, 'fmp4/f_nodrm/180p');
    await mkdir(dir, { recursive: true });
    await runFfmpeg([
      '-f',
      'lavfi',
      '-i',
      `testsrc2=size=320x180:rate=25:duration=${SECONDS}`,
      '-c:v',
      'libx264',
      '-preset',
      'veryfast',
      '-g',
      '25',
      '-pix_fmt',
      'yuv420p',
      '-f',
      'hls',
      '-hls_time',
      '2',
      '-hls_playlist_type',
      'vod',
      '-hls_segment_type',
      'fmp4',
      '-hls_fmp4_init_filename',
      'init.mp4',
      '-hls_segment_filename',
      path.join(dir, 'segment_%05d.m4s'),
      path.join(dir, 'index.m3u8'),
    ]);
    await writeFile(
      path.join(client, 'fmp4/f_nodrm.m3u8'),
      '#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-STREAM-INF:BANDWIDTH=500000,RESOLUTION=320x180,CODECS="avc1.64000d"\nf_nodrm/180p/index.m3u8\n',
    );
    const run = await runHandlerDirect(trickplay, {
      storageRoot: root.root,
      parameters: { content_id: 'f', source_folder: 'fmp4', trickplay_thumbnails: false },
    });
    const segments = (await readFile(path.join(dir, 'index.m3u8'), 'utf8')).match(/\.m4s$/gm)!.length;
    assert.equal(segments, Math.ceil(SECONDS / 2));
    const text = await readFile(path.join(dir, IFRAME_PLAYLIST), 'utf8');
    assert.match(text, /#EXT-X-VERSION:7\n/);
    assert.match(text, /#EXT-X-I-FRAMES-ONLY\n#EXT-X-MAP:URI="init.mp4"\n/);
    const entries = await assertFmp4RangesDecode(dir, text, root.root);
    // One fragment per segment, each starting with a key frame; the key frame in the middle of
    // each 2 s fragment has no range of its own and is left out (and logged).
    assert.equal(entries, segments);
    assert.ok(
      run.logs.some((l) =>
        /I-frame playlist fmp4\/f_nodrm\/180p\/iframes.m3u8: 4 key frames.*3 key frame\(s\) inside fMP4 fragments left out/.test(
          l,
        ),
      ),
      run.logs.join('\n'),
    );
    assert.match(
      await readFile(path.join(client, 'fmp4/f_nodrm.m3u8'), 'utf8'),
      /#EXT-X-I-FRAME-STREAM-INF:BANDWIDTH=\d+,RESOLUTION=320x180,CODECS="avc1.64000d",URI="f_nodrm\/180p\/iframes.m3u8"/,
    );
  });
  it('skips AES-128 renditions (whole segments encrypted) with a log line, and still serves the clear master beside them', async () => {
    const make = async (dir: string, extra: string[]): Promise<void> => {
      await mkdir(dir, { recursive: true });
      await runFfmpeg([
        '-f',
        'lavfi',
        '-i',
        'testsrc2=size=160x90:rate=25:duration=2',
        '-c:v',
        'libx264',
        '-preset',
        'ultrafast',
        '-g',
        '25',
        '-pix_fmt',
        'yuv420p',
        '-f',
        'hls',
        '-hls_time',
        '1',
        '-hls_playlist_type',
        'vod',
        ...extra,
        '-hls_segment_filename',
        path.join(dir, 'segment_%05d.ts'),
        path.join(dir, 'index.m3u8'),
      ]);
    };
    const base = path.join(client, 'aes');
    await make(path.join(base, 'k_nodrm/90p'), []);
    const aesDir = path.join(base, 'k_aes/90p');
    await mkdir(aesDir, { recursive: true });
    await writeFile(path.join(aesDir, 'key.bin'), Buffer.alloc(16, 0x2a));
    await writeFile(path.join(root.root, 'keyinfo.txt'), `key.bin\n${path.join(aesDir, 'key.bin')}\n`);
    await make(aesDir, ['-hls_key_info_file', path.join(root.root, 'keyinfo.txt')]);
    assert.match(await readFile(path.join(aesDir, 'index.m3u8'), 'utf8'), /#EXT-X-KEY:METHOD=AES-128/);
    const inf = '#EXT-X-STREAM-INF:BANDWIDTH=200000,RESOLUTION=160x90,CODECS="avc1.42c00b"';
    const aesMaster = `#EXTM3U\n#EXT-X-VERSION:3\n${inf}\nk_aes/90p/index.m3u8\n`;
    await writeFile(
      path.join(base, 'k_nodrm.m3u8'),
      `#EXTM3U\n#EXT-X-VERSION:3\n${inf}\nk_nodrm/90p/index.m3u8\n`,
    );
    await writeFile(path.join(base, 'k_aes.m3u8'), aesMaster);
    const run = await runHandlerDirect(trickplay, {
      storageRoot: root.root,
      parameters: { content_id: 'k', source_folder: 'aes', trickplay_thumbnails: false },
    });
    assert.ok(
      run.logs.includes(
        'no I-frame playlist for aes/k_aes/90p/index.m3u8: index.m3u8 is encrypted (METHOD=AES-128); I-frame playlists are made for clear and CENC (SAMPLE-AES-CTR) renditions only',
      ),
      run.logs.join('\n'),
    );
    await assert.rejects(readFile(path.join(aesDir, IFRAME_PLAYLIST)), { code: 'ENOENT' });
    assert.equal(await readFile(path.join(base, 'k_aes.m3u8'), 'utf8'), aesMaster);
    assert.match(
      await readFile(path.join(base, 'k_nodrm.m3u8'), 'utf8'),
      /#EXT-X-I-FRAME-STREAM-INF:BANDWIDTH=\d+,RESOLUTION=160x90,CODECS="avc1.42c00b",URI="k_nodrm\/90p\/iframes.m3u8"/,
    );
    assert.deepEqual((run.output as { metadata: { iframe_playlists: number } }).metadata.iframe_playlists, 1);
  });
  it('builds no I-frame playlist for other encryption: SAMPLE-AES, CENC on MPEG-TS, or a key changed mid-playlist', async () => {
    const dir = path.join(client, 'keys');
    await mkdir(dir, { recursive: true });
    const ctr =
      '#EXT-X-KEY:METHOD=SAMPLE-AES-CTR,KEYFORMAT="urn:uuid:1077efec-c0b2-4d02-ace3-3c1e52e2fb4b",URI="data:,x"';
    const cases: [string, string, RegExp][] = [
      [
        'sample-aes.m3u8',
        `#EXT-X-KEY:METHOD=SAMPLE-AES,URI="skd://k"\n#EXT-X-MAP:URI="init.mp4"\n#EXTINF:1,\ns0.m4s\n`,
        /encrypted \(METHOD=SAMPLE-AES\)/,
      ],
      ['ctr-ts.m3u8', `${ctr}\n#EXTINF:1,\ns0.ts\n`, /SAMPLE-AES-CTR on MPEG-TS/],
      [
        'rotation.m3u8',
        `${ctr}\n#EXT-X-MAP:URI="init.mp4"\n#EXTINF:1,\ns0.m4s\n${ctr.replace('x"', 'y"')}\n#EXTINF:1,\ns1.m4s\n`,
        /changes its EXT-X-KEY after the first segment/,
      ],
    ];
    for (const [name, body, why] of cases) {
      await writeFile(
        path.join(dir, name),
        `#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-TARGETDURATION:1\n${body}#EXT-X-ENDLIST\n`,
      );
      const r = await buildIFramePlaylist(path.join(dir, name));
      assert.ok('skipped' in r, name);
      assert.match(r.skipped, why);
    }
  });
});
