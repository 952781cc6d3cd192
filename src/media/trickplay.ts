/**
 * Trick play for HLS VOD assets: HLS I-frame playlists (RFC 8216 4.3.3.6 `EXT-X-I-FRAMES-ONLY`,
 * 4.3.4.3 `EXT-X-I-FRAME-STREAM-INF`) built from the key frames of MPEG-TS and fMP4/CMAF
 * renditions, and thumbnail sprite sheets with a WebVTT index (`<sheet>.jpg#xywh=x,y,w,h`).
 *
 * MPEG-TS: key frames come from ffprobe `-show_packets` on each segment: a key frame's byte range
 * starts at its PES packet's first TS packet (`pos`), moved back over the PAT/PMT (and SDT) packets
 * the muxer writes just before it, so each range can be decoded on its own; it ends where the next
 * video packet starts (or at the end of the segment file).
 *
 * fMP4 (segments `.m4s` after an `EXT-X-MAP` init segment): the boxes of each segment are read
 * (src/media/fmp4.ts); a fragment (`moof` + `mdat`) whose first sample is a sync sample gives one
 * entry whose byte range starts at the `moof` and ends with that sample's last byte in the `mdat`
 * — the `moof`, the `mdat` header and the key frame, as Apple's HLS authoring specification
 * describes I-frame playlists for fMP4. The playlist carries the media playlist's `EXT-X-MAP`, so
 * a player decodes init + range alone. A key frame later inside a fragment cannot be cut out that
 * way (the range would have to hold the frames before it): it is left out and counted in
 * `leftOut`. vodstream's CMAF segments are one fragment per key frame, so none is left out there.
 *
 * Encryption: CENC fMP4 renditions (`EXT-X-KEY` `METHOD=SAMPLE-AES-CTR`, ISO/IEC 23001-7 scheme
 * `cenc`, as vodstream's `cenc` variant writes them) get an I-frame playlist made the same way: the
 * boxes and the `trun` sample flags are clear, only sample data is encrypted, and each fragment's
 * `moof` carries the IVs (`senc`) of its samples, so init + range decrypts and decodes on its own.
 * The playlist carries the media playlist's `EXT-X-KEY` lines unchanged, before its `EXT-X-MAP`.
 * Whole-segment encryption (`AES-128`, AES-CBC over the file) is skipped: a byte range from the
 * middle of a CBC-encrypted file cannot be decrypted without the bytes before it. `SAMPLE-AES`
 * (not made by this engine) is skipped too.
 */
import { open, readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import { PermanentTaskError } from '../errors/task-errors.js';
import { runFfprobe } from './ffmpeg.js';
import { fragmentSamples, initTrackInfo } from './fmp4.js';
import { parseAttributes } from './hls-playlist.js';

/** One key frame entry of an I-frame playlist. */
export interface IFrameEntry {
  /** Segment URI as written in the media playlist. */
  uri: string;
  /** Byte offset of the range in the segment file. */
  offset: number;
  /** Length of the range, bytes. */
  length: number;
  /** Presentation time of the key frame from the playlist start, seconds. */
  time: number;
  /** Time until the next key frame (or the playlist end), seconds. */
  duration: number;
}

/** What {@link buildIFramePlaylist} made. */
export interface IFramePlaylist {
  /** Playlist text. */
  text: string;
  entries: IFrameEntry[];
  /** Peak bits per second of the ranges (BANDWIDTH of the EXT-X-I-FRAME-STREAM-INF). */
  bandwidth: number;
  average: number;
  /** fMP4: key frames inside a fragment (not its first sample), which get no entry. */
  leftOut: number;
  /** `SAMPLE-AES-CTR` for a CENC rendition (its `EXT-X-KEY` carried over), null when clear. */
  method: 'SAMPLE-AES-CTR' | null;
}

interface MediaSegment {
  uri: string;
  duration: number;
  start: number;
}

/**
 * Reads the segments of a media playlist, its `EXT-X-MAP` and its CENC `EXT-X-KEY` lines (as
 * written, in order; all before the first segment).
 * @throws PermanentTaskError when it is not one this module handles (see the module comment).
 */
function readSegments(
  text: string,
  where: string,
): { segments: MediaSegment[]; kind: 'ts' | 'fmp4'; map: string | null; keyLines: string[] } {
  const lines = text
    .replace(/^\uFEFF/, '')
    .split(/\r?\n/)
    .map((l) => l.trim());
  if (lines[0] !== '#EXTM3U') throw new PermanentTaskError(`${where} is not an HLS playlist`);
  const segments: MediaSegment[] = [];
  let dur: number | null = null;
  let kind: 'ts' | 'fmp4' = 'ts';
  let map: string | null = null;
  const keyLines: string[] = [];
  let t = 0;
  for (const line of lines) {
    if (line.startsWith('#EXT-X-MAP:')) {
      kind = 'fmp4';
      const a = parseAttributes(line.slice(11));
      if (a.BYTERANGE)
        throw new PermanentTaskError(
          `${where} has an init segment byte range; only whole files are supported`,
        );
      if (map !== null && a.URI !== map)
        throw new PermanentTaskError(`${where} changes its init segment; only one EXT-X-MAP is supported`);
      map = a.URI ?? null;
    } else if (line.startsWith('#EXT-X-BYTERANGE:'))
      throw new PermanentTaskError(
        `${where} already uses byte ranges; only one file per segment is supported`,
      );
    else if (line.startsWith('#EXT-X-KEY:')) {
      const method = parseAttributes(line.slice(11)).METHOD;
      if (method === 'NONE') continue;
      if (method !== 'SAMPLE-AES-CTR')
        throw new PermanentTaskError(
          `${where} is encrypted (METHOD=${method ?? '?'}); I-frame playlists are made for clear and CENC (SAMPLE-AES-CTR) renditions only`,
        );
      if (segments.length > 0)
        throw new PermanentTaskError(
          `${where} changes its EXT-X-KEY after the first segment; only one key for the whole playlist is supported`,
        );
      keyLines.push(line);
    } else if (line.startsWith('#EXTINF:')) dur = Number.parseFloat(line.slice(8));
    else if (line && !line.startsWith('#') && dur !== null) {
      segments.push({ uri: line, duration: dur, start: t });
      t += dur;
      dur = null;
    }
  }
  if (segments.some((s) => /\.(m4s|mp4|cmfv)$/i.test(s.uri))) kind = 'fmp4';
  if (kind === 'fmp4' && map === null)
    throw new PermanentTaskError(`${where} has fMP4 segments but no EXT-X-MAP init segment`);
  if (kind === 'ts' && keyLines.length > 0)
    throw new PermanentTaskError(
      `${where} has SAMPLE-AES-CTR on MPEG-TS segments; CENC I-frame playlists are made for fMP4 only`,
    );
  return { segments, kind, map, keyLines };
}

const TS = 188;

/** PIDs of the PAT (0), SDT (0x11) and the PMTs the PAT at the file start names. */
function tablePids(head: Buffer): Set<number> {
  const pids = new Set([0, 0x11]);
  for (let p = 0; p + TS <= head.length; p += TS) {
    if (head[p] !== 0x47) break;
    const pid = ((head[p + 1]! & 0x1f) << 8) | head[p + 2]!;
    if (pid !== 0 || !(head[p + 1]! & 0x40)) continue;
    const ptr = head[p + 4]!;
    const s = p + 5 + ptr;
    const sectionLength = ((head[s + 1]! & 0x0f) << 8) | head[s + 2]!;
    for (let i = s + 8; i + 4 <= s + 3 + sectionLength - 4; i += 4) {
      const program = (head[i]! << 8) | head[i + 1]!;
      if (program !== 0) pids.add(((head[i + 2]! & 0x1f) << 8) | head[i + 3]!);
    }
  }
  return pids;
}

/**
 * Builds the I-frame playlist of an HLS media playlist whose segments are MPEG-TS files, or fMP4
 * files after an `EXT-X-MAP` init segment (CMAF), clear or CENC-encrypted (`SAMPLE-AES-CTR`: its
 * `EXT-X-KEY` lines are copied as written).
 * @param playlistFile absolute path of the media playlist (segment URIs relative to it).
 * @returns the playlist, or `{skipped}` saying why (whole-segment encryption — AES-128 — or
 *   SAMPLE-AES, a key change mid-playlist, byte ranges, remote segments, no key frames).
 * @throws Error when ffprobe cannot read a TS segment, or an fMP4 segment's boxes are truncated.
 */
export async function buildIFramePlaylist(
  playlistFile: string,
  options: { signal?: AbortSignal } = {},
): Promise<IFramePlaylist | { skipped: string }> {
  let parsed;
  try {
    parsed = readSegments(await readFile(playlistFile, 'utf8'), path.basename(playlistFile));
  } catch (err) {
    if (err instanceof PermanentTaskError) return { skipped: err.message };
    throw err;
  }
  const dir = path.dirname(playlistFile);
  const total = parsed.segments.reduce((a, s) => a + s.duration, 0);
  for (const seg of parsed.segments)
    if (/^[a-z]+:/i.test(seg.uri)) return { skipped: `segment ${seg.uri} is not a local file` };
  if (parsed.map !== null && /^[a-z]+:/i.test(parsed.map))
    return { skipped: `init segment ${parsed.map} is not a local file` };
  const { keys, leftOut } =
    parsed.kind === 'fmp4'
      ? await fmp4KeyFrames(dir, parsed.map!, parsed.segments)
      : { keys: await tsKeyFrames(dir, parsed.segments, options.signal), leftOut: 0 };
  if (keys.length === 0) return { skipped: `${path.basename(playlistFile)} has no key frames` };
  const entries: IFrameEntry[] = keys.map((k, i) => ({
    ...k,
    duration: Math.max(0.001, (i + 1 < keys.length ? keys[i + 1]!.time : total) - k.time),
  }));
  const target = Math.max(1, Math.ceil(Math.max(...entries.map((e) => e.duration)) - 1e-6));
  const lines = [
    '#EXTM3U',
    // EXT-X-MAP in an I-frames-only playlist needs version 5; fMP4 segments version 6 (7 as the
    // CMAF media playlists are written).
    parsed.kind === 'fmp4' ? '#EXT-X-VERSION:7' : '#EXT-X-VERSION:4',
    `#EXT-X-TARGETDURATION:${target}`,
    '#EXT-X-MEDIA-SEQUENCE:0',
    '#EXT-X-PLAYLIST-TYPE:VOD',
    '#EXT-X-I-FRAMES-ONLY',
  ];
  // The media playlist's key lines apply to the init segment and every range, as there.
  lines.push(...parsed.keyLines);
  if (parsed.map !== null) lines.push(`#EXT-X-MAP:URI="${parsed.map}"`);
  for (const e of entries)
    lines.push(`#EXTINF:${e.duration.toFixed(6)},`, `#EXT-X-BYTERANGE:${e.length}@${e.offset}`, e.uri);
  lines.push('#EXT-X-ENDLIST');
  const rates = entries.map((e) => (e.length * 8) / e.duration);
  const bytes = entries.reduce((a, e) => a + e.length, 0);
  return {
    text: `${lines.join('\n')}\n`,
    entries,
    bandwidth: Math.round(Math.max(...rates)),
    average: Math.round((bytes * 8) / Math.max(total, 0.001)),
    leftOut,
    method: parsed.keyLines.length > 0 ? 'SAMPLE-AES-CTR' : null,
  };
}

/**
 * Key frames of fMP4 segments: one entry per fragment that starts with a sync sample, its range
 * from the fragment's `moof` to the end of that sample's data; times from the samples' decode
 * times (the track's timescale from the init segment), measured from the playlist's first sample.
 */
async function fmp4KeyFrames(
  dir: string,
  map: string,
  segments: MediaSegment[],
): Promise<{ keys: Omit<IFrameEntry, 'duration'>[]; leftOut: number }> {
  const { timescale, trex } = initTrackInfo(await readFile(path.resolve(dir, map)));
  const keys: Omit<IFrameEntry, 'duration'>[] = [];
  let leftOut = 0;
  let first: number | null = null;
  for (const seg of segments) {
    const buf = await readFile(path.resolve(dir, seg.uri));
    for (const frag of fragmentSamples(buf, trex)) {
      const head = frag.samples[0];
      if (!head) continue;
      first ??= head.decodeTime;
      leftOut += frag.samples.slice(1).filter((x) => x.sync).length;
      if (!head.sync) continue;
      keys.push({
        uri: seg.uri,
        offset: frag.moofStart,
        length: head.offset + head.size - frag.moofStart,
        time: (head.decodeTime - first) / timescale,
      });
    }
  }
  return { keys, leftOut };
}

/** Key frames of MPEG-TS segments (see the module comment). */
async function tsKeyFrames(
  dir: string,
  segments: MediaSegment[],
  signal: AbortSignal | undefined,
): Promise<Omit<IFrameEntry, 'duration'>[]> {
  const keys: Omit<IFrameEntry, 'duration'>[] = [];
  let firstPts: number | null = null;
  for (const seg of segments) {
    const file = path.resolve(dir, seg.uri);
    const size = (await stat(file)).size;
    const json = JSON.parse(
      await runFfprobe(
        [
          '-select_streams',
          'v:0',
          '-show_packets',
          '-show_entries',
          'packet=pts_time,flags,pos',
          '-of',
          'json',
          file,
        ],
        { signal },
      ),
    ) as { packets?: { pts_time?: string; flags?: string; pos?: string }[] };
    const packets = (json.packets ?? []).filter((p) => p.pos !== undefined);
    if (packets.length === 0) continue;
    const fh = await open(file, 'r');
    try {
      const head = Buffer.alloc(Math.min(size, TS * 8));
      await fh.read(head, 0, head.length, 0);
      const tables = tablePids(head);
      for (const [i, p] of packets.entries()) {
        const pts = Number(p.pts_time);
        firstPts ??= pts - seg.start;
        if (!p.flags?.startsWith('K')) continue;
        const pos = Number(p.pos);
        const end = i + 1 < packets.length ? Number(packets[i + 1]!.pos) : size;
        // Move back over the PAT/PMT/SDT packets written just before the key frame.
        let start = pos;
        const one = Buffer.alloc(3);
        while (start >= TS) {
          await fh.read(one, 0, 3, start - TS);
          const pid = ((one[1]! & 0x1f) << 8) | one[2]!;
          if (one[0] !== 0x47 || !tables.has(pid)) break;
          start -= TS;
        }
        keys.push({ uri: seg.uri, offset: start, length: end - start, time: pts - (firstPts ?? 0) });
      }
    } finally {
      await fh.close();
    }
  }
  return keys;
}

/** One I-frame stream for {@link addIFrameStreams}. */
export interface IFrameStream {
  uri: string;
  bandwidth: number;
  width: number | null;
  height: number | null;
  /** The video part of the rendition's CODECS. */
  codecs: string | null;
}

/**
 * Rewrites a multi-variant playlist with `streams` as `EXT-X-I-FRAME-STREAM-INF` lines (replacing
 * any written before, so running again gives the same text), `EXT-X-VERSION` raised to at least 4
 * when there is one (the protocol version that brought I-frame playlists); with none (every
 * rendition skipped, e.g. AES-128) the text is left as it was.
 */
export function addIFrameStreams(master: string, streams: IFrameStream[]): string {
  const lines = master
    .replace(/\n+$/, '')
    .split(/\r?\n/)
    .filter((l) => !l.startsWith('#EXT-X-I-FRAME-STREAM-INF:'))
    .map((l) => {
      const m = /^#EXT-X-VERSION:(\d+)$/.exec(l);
      return m && streams.length > 0 && Number(m[1]) < 4 ? '#EXT-X-VERSION:4' : l;
    });
  for (const s of streams) {
    const attrs = [`BANDWIDTH=${s.bandwidth}`];
    if (s.width && s.height) attrs.push(`RESOLUTION=${s.width}x${s.height}`);
    if (s.codecs) attrs.push(`CODECS="${s.codecs}"`);
    attrs.push(`URI="${s.uri}"`);
    lines.push(`#EXT-X-I-FRAME-STREAM-INF:${attrs.join(',')}`);
  }
  return `${lines.join('\n')}\n`;
}

/** Sprite sheet layout of `count` thumbnails in sheets of `columns` x `rows`. */
export function spriteLayout(
  count: number,
  columns: number,
  rows: number,
): { sheets: number; perSheet: number; lastSheetRows: number } {
  const perSheet = columns * rows;
  const sheets = Math.max(1, Math.ceil(count / perSheet));
  const last = count - (sheets - 1) * perSheet;
  return { sheets, perSheet, lastSheetRows: Math.ceil(last / columns) };
}

/** `hh:mm:ss.fff` for WebVTT cues. */
export function vttTimestamp(seconds: number): string {
  const ms = Math.round(seconds * 1000);
  const h = Math.floor(ms / 3_600_000);
  const m = Math.floor((ms % 3_600_000) / 60_000);
  const s = Math.floor((ms % 60_000) / 1000);
  const r = ms % 1000;
  return `${String(h).padStart(2, '0')}:${String(m).padStart(2, '0')}:${String(s).padStart(2, '0')}.${String(r).padStart(3, '0')}`;
}
