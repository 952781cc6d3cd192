/**
 * Sources of capture-style workflows (vodcapture, capture_frame, generate_gif, build_thumbnails):
 * a file in the client's storage (a video, or an HLS playlist) or an http(s) HLS URL.
 *
 * UTC times: a clip time given as a UTC timestamp is placed relative to the stream's first
 * `EXT-X-PROGRAM-DATE-TIME` (extrapolated back to the first segment when the tag appears later);
 * a source without that tag accepts offsets only.
 */
import { readFile, stat } from 'node:fs/promises';
import { PermanentTaskError } from '../../../src/errors/task-errors.js';
import { loadMediaPlaylist, parsePlaylist } from '../../../src/media/hls-playlist.js';
import { probeMedia, type MediaInfo } from '../../../src/media/probe.js';
import { formatSeconds, toOffsetSeconds, type MediaTime } from '../../../src/media/timecode.js';
import type { HandlerContext } from '../../../src/workflows/types.js';
import { isUrl } from './params.js';

/** A source ready for FFmpeg. */
export interface ResolvedSource {
  /** As given in the parameters. */
  given: string;
  /** What FFmpeg opens: an absolute path or a URL (a master playlist resolved to its best variant). */
  input: string;
  /** Input options FFmpeg needs for it (local AES playlists need `-allowed_extensions ALL`). */
  inputArgs: string[];
  /** UTC instant of the first frame (HLS with EXT-X-PROGRAM-DATE-TIME), else null. */
  startEpochMs: number | null;
  info: MediaInfo;
}

/**
 * Resolves and probes a source.
 * @throws PermanentTaskError for a missing file, an escaping path, a non-media file, an HTTP error
 *   or a source without video; Error (retryable) when an HLS server cannot be reached.
 */
export async function resolveSource(ctx: HandlerContext, given: string): Promise<ResolvedSource> {
  if (isUrl(given)) {
    const { url, playlist } = await loadMediaPlaylist(given, { signal: ctx.signal, fetch: ctx.fetch });
    if (playlist.segments.length === 0) throw new PermanentTaskError(`HLS source ${given} lists no segments`);
    const info = await probeMedia(url, { signal: ctx.signal });
    if (!info.video) throw new PermanentTaskError(`source ${given} has no video stream`);
    // The playlist's own sum of EXTINF is the duration a player sees.
    if (playlist.totalSeconds > 0) info.durationSeconds = playlist.totalSeconds;
    return { given, input: url, inputArgs: [], startEpochMs: playlist.startEpochMs, info };
  }
  const abs = await ctx.storage.resolve(given);
  const st = await stat(abs).catch(() => null);
  if (!st)
    throw new PermanentTaskError(`source ${JSON.stringify(given)} does not exist in the client storage`);
  if (!st.isFile())
    throw new PermanentTaskError(`source ${JSON.stringify(given)} is a folder; name a file or an HLS URL`);
  let startEpochMs: number | null = null;
  let inputArgs: string[] = [];
  if (abs.toLowerCase().endsWith('.m3u8')) {
    const pl = parsePlaylist(await readFile(abs, 'utf8'), given);
    if (pl.kind === 'media') startEpochMs = pl.startEpochMs;
    inputArgs = ['-allowed_extensions', 'ALL'];
  }
  const info = await probeMedia(abs, { signal: ctx.signal, inputArgs });
  if (!info.video) throw new PermanentTaskError(`source ${JSON.stringify(given)} has no video stream`);
  return { given, input: abs, inputArgs, startEpochMs, info };
}

/**
 * Places a media time in a source.
 * @returns seconds from the source's start.
 * @throws PermanentTaskError when it cannot be placed or lies outside the source.
 */
export function placeTime(source: ResolvedSource, t: MediaTime, name: string, allowEnd = false): number {
  const s = toOffsetSeconds(t, source.startEpochMs);
  if (typeof s === 'string') throw new PermanentTaskError(`${name}: ${s}`);
  const d = source.info.durationSeconds;
  if (s < 0)
    throw new PermanentTaskError(`${name} lies ${formatSeconds(-s)} before the start of ${source.given}`);
  if (d > 0 && (allowEnd ? s > d + 0.001 : s >= d))
    throw new PermanentTaskError(
      `${name} ${formatSeconds(s)} is past the end of ${source.given} (${formatSeconds(d)})`,
    );
  return s;
}
