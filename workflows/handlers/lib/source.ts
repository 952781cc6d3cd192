/**
 * Sources of capture-style workflows (vodcapture, capture_frame, generate_gif, build_thumbnails):
 * a file in the client's storage (a video, or an HLS playlist) or an http(s) HLS URL.
 *
 * HLS: a master playlist is resolved to its highest-bandwidth variant. When that variant plays
 * with a separate audio rendition (`AUDIO="<group>"` and an `EXT-X-MEDIA TYPE=AUDIO` with a URI,
 * as vodstream writes MPEG-TS and CMAF ladders), the source also carries that audio rendition, so
 * a capture keeps its sound. A media playlist given directly that has no audio of its own is
 * looked up in the asset layout: `<variant>/<rendition>/index.m3u8` is a rendition of the master
 * `<variant>.m3u8` beside the variant folder; when that master lists it with an audio group, that
 * audio is used. Older assets whose MPEG-TS renditions carry the audio themselves are read as
 * before (no audio group, the audio is in the segments).
 *
 * UTC times: a clip time given as a UTC timestamp is placed relative to the stream's first
 * `EXT-X-PROGRAM-DATE-TIME` (extrapolated back to the first segment when the tag appears later);
 * a source without that tag accepts offsets only.
 */
import { readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import { PermanentTaskError } from '../../../src/errors/task-errors.js';
import {
  fetchPlaylist,
  loadMediaPlaylist,
  parsePlaylist,
  variantAudioUri,
  type HlsPlaylist,
} from '../../../src/media/hls-playlist.js';
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
  /**
   * The separate audio rendition `input` plays with (an audio-only HLS media playlist: absolute
   * path or URL, and its input options), or null when the audio, if any, is inside `input`.
   */
  audio: { input: string; inputArgs: string[] } | null;
  /** The probe of `input`; with `audio`, its audio stream is the audio rendition's. */
  info: MediaInfo;
}

type MasterPlaylist = Extract<HlsPlaylist, { kind: 'master' }>;

/** `<variant>.m3u8` beside the variant folder of a rendition playlist `<variant>/<rendition>/x.m3u8`. */
function layoutMaster(media: string): string | null {
  const variantDir = path.posix.dirname(path.posix.dirname(media));
  if (!variantDir || variantDir === '.' || variantDir === path.posix.dirname(variantDir)) return null;
  return `${variantDir}.m3u8`;
}

/** The master playlist at client-relative `rel`, or null when there is none (or it is something else). */
async function readLocalMaster(ctx: HandlerContext, rel: string): Promise<MasterPlaylist | null> {
  try {
    const pl = parsePlaylist(await readFile(await ctx.storage.resolve(rel), 'utf8'), rel);
    return pl.kind === 'master' ? pl : null;
  } catch {
    return null;
  }
}

/** Adds the audio stream of the rendition `audio` to `info` (when it has one). @returns whether it had. */
async function addAudio(
  ctx: HandlerContext,
  info: MediaInfo,
  audio: { input: string; inputArgs: string[] },
): Promise<boolean> {
  const a = await probeMedia(audio.input, { signal: ctx.signal, inputArgs: audio.inputArgs });
  if (!a.audio) return false;
  info.audio = a.audio;
  info.streams.push(a.audio);
  return true;
}

/**
 * Resolves and probes a source.
 * @throws PermanentTaskError for a missing file, an escaping path, a non-media file, an HTTP error
 *   or a source without video; Error (retryable) when an HLS server cannot be reached.
 */
export async function resolveSource(ctx: HandlerContext, given: string): Promise<ResolvedSource> {
  if (isUrl(given)) {
    const { url, playlist, audioUrl } = await loadMediaPlaylist(given, {
      signal: ctx.signal,
      fetch: ctx.fetch,
    });
    if (playlist.segments.length === 0) throw new PermanentTaskError(`HLS source ${given} lists no segments`);
    const info = await probeMedia(url, { signal: ctx.signal });
    if (!info.video) throw new PermanentTaskError(`source ${given} has no video stream`);
    // The playlist's own sum of EXTINF is the duration a player sees.
    if (playlist.totalSeconds > 0) info.durationSeconds = playlist.totalSeconds;
    let audio: ResolvedSource['audio'] = null;
    let audioRef = info.audio ? null : audioUrl;
    if (!info.audio && !audioRef) {
      // A rendition playlist of an asset: its audio group through the master beside the variant folder.
      const masterUrl = layoutMaster(new URL(url).pathname);
      if (masterUrl) {
        const abs = new URL(masterUrl, url).toString();
        const master = await fetchPlaylist(abs, { signal: ctx.signal, fetch: ctx.fetch }).catch(() => null);
        const v =
          master?.playlist.kind === 'master'
            ? master.playlist.variants.find((x) => new URL(x.uri, abs).toString() === url)
            : undefined;
        const uri = v && master?.playlist.kind === 'master' ? variantAudioUri(master.playlist, v) : null;
        if (uri) audioRef = new URL(uri, abs).toString();
      }
    }
    if (audioRef) {
      const candidate = { input: audioRef, inputArgs: [] };
      if (await addAudio(ctx, info, candidate)) audio = candidate;
    }
    return { given, input: url, inputArgs: [], startEpochMs: playlist.startEpochMs, audio, info };
  }
  const abs = await ctx.storage.resolve(given);
  const st = await stat(abs).catch(() => null);
  if (!st)
    throw new PermanentTaskError(`source ${JSON.stringify(given)} does not exist in the client storage`);
  if (!st.isFile())
    throw new PermanentTaskError(`source ${JSON.stringify(given)} is a folder; name a file or an HLS URL`);
  let startEpochMs: number | null = null;
  let inputArgs: string[] = [];
  let input = abs;
  let audioRel: string | null = null;
  if (abs.toLowerCase().endsWith('.m3u8')) {
    inputArgs = ['-allowed_extensions', 'ALL'];
    let pl = parsePlaylist(await readFile(abs, 'utf8'), given);
    if (pl.kind === 'master') {
      // The highest-bandwidth variant, and the audio rendition it plays with.
      const best = [...pl.variants].sort((a, b) => b.bandwidth - a.bandwidth)[0];
      if (!best || /^[a-z]+:/i.test(best.uri))
        throw new PermanentTaskError(`HLS master playlist ${given} lists no local variant`);
      const mediaRel = path.posix.join(path.posix.dirname(given), best.uri);
      const audioUri = variantAudioUri(pl, best);
      if (audioUri) audioRel = path.posix.join(path.posix.dirname(given), audioUri);
      input = await ctx.storage.resolve(mediaRel);
      pl = parsePlaylist(
        await readFile(input, 'utf8').catch(() => {
          throw new PermanentTaskError(
            `variant ${best.uri} of ${given} does not exist in the client storage`,
          );
        }),
        mediaRel,
      );
    } else {
      // A rendition playlist of an asset: its audio group through the master beside the variant folder.
      const masterRel = layoutMaster(path.posix.normalize(given));
      const master = masterRel ? await readLocalMaster(ctx, masterRel) : null;
      if (master && masterRel) {
        const here = path.posix.normalize(given);
        const v = master.variants.find((x) => path.posix.join(path.posix.dirname(masterRel), x.uri) === here);
        const audioUri = v ? variantAudioUri(master, v) : null;
        if (audioUri) audioRel = path.posix.join(path.posix.dirname(masterRel), audioUri);
      }
    }
    if (pl.kind === 'media') startEpochMs = pl.startEpochMs;
  }
  const info = await probeMedia(input, { signal: ctx.signal, inputArgs });
  if (!info.video) throw new PermanentTaskError(`source ${JSON.stringify(given)} has no video stream`);
  let audio: ResolvedSource['audio'] = null;
  if (audioRel && !info.audio) {
    // The audio folder is resolved whole, so an object-storage source fetches its segments too.
    await ctx.storage.resolve(path.posix.dirname(audioRel));
    const candidate = { input: await ctx.storage.resolve(audioRel), inputArgs };
    if (await addAudio(ctx, info, candidate)) audio = candidate;
  }
  return { given, input, inputArgs, startEpochMs, audio, info };
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
