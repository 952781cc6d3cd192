/**
 * Reading and writing the parts of HLS playlists (RFC 8216) the media workflows need: the variants
 * of a master playlist, the segments of a media playlist with their durations and
 * `EXT-X-PROGRAM-DATE-TIME`, and writing a master playlist. Everything else in a playlist is kept
 * by FFmpeg, which does the actual reading of streams.
 */
import { PermanentTaskError } from '../errors/task-errors.js';

/** A variant (`EXT-X-STREAM-INF`) of a master playlist. */
export interface HlsVariant {
  /** URI as written (relative or absolute). */
  uri: string;
  bandwidth: number;
  width: number | null;
  height: number | null;
  codecs: string | null;
  /** `AUDIO` attribute: the `GROUP-ID` of the audio rendition group it plays with, or null. */
  audio: string | null;
}

/** A segment of a media playlist. */
export interface HlsSegment {
  uri: string;
  durationSeconds: number;
  /** Offset of the segment's start from the playlist's first segment, seconds. */
  startSeconds: number;
  /** UTC instant of the segment's start when the playlist carries EXT-X-PROGRAM-DATE-TIME. */
  programDateTimeMs: number | null;
}

/** A parsed playlist: either a master (variants) or a media playlist (segments). */
export type HlsPlaylist =
  | {
      kind: 'master';
      variants: HlsVariant[];
      /** `EXT-X-MEDIA` lines as attribute maps (audio and subtitle renditions). */
      media: Record<string, string>[];
    }
  | {
      kind: 'media';
      segments: HlsSegment[];
      totalSeconds: number;
      /** `EXT-X-ENDLIST` present (a VOD or a finished event). */
      ended: boolean;
      /** True when any `EXT-X-KEY` other than `METHOD=NONE` appears. */
      encrypted: boolean;
      /** UTC instant of the first segment (extrapolated back from the first PDT tag), or null. */
      startEpochMs: number | null;
    };

/** Parses `KEY=VALUE,KEY="VALUE"` attribute lists. */
export function parseAttributes(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  const re = /([A-Z0-9-]+)=("[^"]*"|[^,]*)/g;
  let m: RegExpExecArray | null;
  while ((m = re.exec(text))) {
    const raw = m[2] ?? '';
    out[m[1]!] = raw.startsWith('"') ? raw.slice(1, -1) : raw;
  }
  return out;
}

/**
 * Parses playlist text.
 * @throws PermanentTaskError when the text does not start with `#EXTM3U`.
 */
export function parsePlaylist(text: string, source = 'playlist'): HlsPlaylist {
  const lines = text
    .replace(/^\uFEFF/, '')
    .split(/\r?\n/)
    .map((l) => l.trim());
  if (lines[0] !== '#EXTM3U')
    throw new PermanentTaskError(`${source} is not an HLS playlist (no #EXTM3U header)`);
  const variants: HlsVariant[] = [];
  const media: Record<string, string>[] = [];
  const segments: HlsSegment[] = [];
  let pendingInf: Record<string, string> | null = null;
  let pendingDuration: number | null = null;
  let pendingPdt: number | null = null;
  let offset = 0;
  let ended = false;
  let encrypted = false;
  let startEpochMs: number | null = null;
  for (const line of lines.slice(1)) {
    if (!line) continue;
    if (line.startsWith('#EXT-X-STREAM-INF:')) pendingInf = parseAttributes(line.slice(18));
    else if (line.startsWith('#EXT-X-MEDIA:')) media.push(parseAttributes(line.slice(13)));
    else if (line.startsWith('#EXTINF:')) pendingDuration = Number.parseFloat(line.slice(8));
    else if (line.startsWith('#EXT-X-PROGRAM-DATE-TIME:')) {
      const ms = Date.parse(line.slice(25));
      pendingPdt = Number.isFinite(ms) ? ms : null;
    } else if (line === '#EXT-X-ENDLIST') ended = true;
    else if (line.startsWith('#EXT-X-KEY:')) {
      if (parseAttributes(line.slice(11)).METHOD !== 'NONE') encrypted = true;
    } else if (!line.startsWith('#')) {
      if (pendingInf) {
        const res = /^(\d+)x(\d+)$/.exec(pendingInf.RESOLUTION ?? '');
        variants.push({
          uri: line,
          bandwidth: Number(pendingInf.BANDWIDTH ?? 0) || 0,
          width: res ? Number(res[1]) : null,
          height: res ? Number(res[2]) : null,
          codecs: pendingInf.CODECS ?? null,
          audio: pendingInf.AUDIO ?? null,
        });
        pendingInf = null;
      } else if (pendingDuration !== null) {
        const duration = Number.isFinite(pendingDuration) ? pendingDuration : 0;
        if (pendingPdt !== null && startEpochMs === null) startEpochMs = pendingPdt - offset * 1000;
        const pdt = pendingPdt ?? (startEpochMs === null ? null : startEpochMs + offset * 1000);
        segments.push({ uri: line, durationSeconds: duration, startSeconds: offset, programDateTimeMs: pdt });
        offset += duration;
        pendingDuration = null;
        pendingPdt = null;
      }
    }
  }
  if (variants.length > 0) return { kind: 'master', variants, media };
  return { kind: 'media', segments, totalSeconds: offset, ended, encrypted, startEpochMs };
}

/**
 * The URI (as written) of the audio rendition a variant plays with: the `EXT-X-MEDIA` of
 * `TYPE=AUDIO` in the variant's `AUDIO` group that has a `URI`, the `DEFAULT=YES` one first
 * (RFC 8216 4.3.4.1.1). Null when the variant names no audio group, or when the group's members
 * have no URI (their audio is then inside the variant's own segments).
 */
export function variantAudioUri(
  master: Extract<HlsPlaylist, { kind: 'master' }>,
  variant: HlsVariant,
): string | null {
  if (!variant.audio) return null;
  const group = master.media.filter((m) => m.TYPE === 'AUDIO' && m['GROUP-ID'] === variant.audio && m.URI);
  return (group.find((m) => m.DEFAULT === 'YES') ?? group[0])?.URI ?? null;
}

/** One rendition for {@link writeMasterPlaylist}. */
export interface MasterEntry {
  uri: string;
  /** Peak bits per second (BANDWIDTH). */
  bandwidth: number;
  width: number;
  height: number;
  /** RFC 6381 codecs, e.g. `avc1.64001f,mp4a.40.2`. */
  codecs: string;
  frameRate?: number | null;
  /** Average bits per second over the whole rendition (AVERAGE-BANDWIDTH), when measured. */
  averageBandwidth?: number | null;
}

/** An `EXT-X-MEDIA` rendition of a master playlist (an audio-only or a subtitle group member). */
export interface MasterMedia {
  type: 'AUDIO' | 'SUBTITLES';
  groupId: string;
  name: string;
  language?: string | null;
  uri: string;
  default?: boolean;
}

/** Options of {@link writeMasterPlaylist}. */
export interface MasterOptions {
  /** `EXT-X-VERSION` (3 by default; 7 for fMP4 media playlists). */
  version?: number;
  /** Audio and subtitle renditions; every variant names their groups (AUDIO=, SUBTITLES=). */
  media?: MasterMedia[];
  /** Writes `EXT-X-INDEPENDENT-SEGMENTS` (every segment starts with a key frame). */
  independentSegments?: boolean;
}

/**
 * Writes a master playlist listing `entries` highest bandwidth first. `comment` lines (without
 * `#`) are written after the header as plain comments, which players ignore. Attributes follow
 * RFC 8216 section 4.3.4.2 (`BANDWIDTH`, `AVERAGE-BANDWIDTH`, `RESOLUTION`, `CODECS`, `FRAME-RATE`)
 * and 4.3.4.1 (`EXT-X-MEDIA`).
 */
export function writeMasterPlaylist(
  entries: MasterEntry[],
  comment: string[] = [],
  options: MasterOptions = {},
): string {
  const sorted = [...entries].sort((a, b) => b.bandwidth - a.bandwidth);
  const lines = ['#EXTM3U', `#EXT-X-VERSION:${options.version ?? 3}`, ...comment.map((c) => `# ${c}`)];
  if (options.independentSegments) lines.push('#EXT-X-INDEPENDENT-SEGMENTS');
  const media = options.media ?? [];
  for (const m of media) {
    const attrs = [`TYPE=${m.type}`, `GROUP-ID="${m.groupId}"`, `NAME="${m.name.replace(/"/g, "'")}"`];
    if (m.language) attrs.push(`LANGUAGE="${m.language}"`);
    attrs.push(`DEFAULT=${m.default ? 'YES' : 'NO'}`, `AUTOSELECT=YES`);
    if (m.type === 'AUDIO') attrs.push('CHANNELS="2"');
    attrs.push(`URI="${m.uri}"`);
    lines.push(`#EXT-X-MEDIA:${attrs.join(',')}`);
  }
  const audio = media.find((m) => m.type === 'AUDIO');
  const subs = media.find((m) => m.type === 'SUBTITLES');
  for (const e of sorted) {
    const attrs = [`BANDWIDTH=${Math.round(e.bandwidth)}`];
    if (e.averageBandwidth) attrs.push(`AVERAGE-BANDWIDTH=${Math.round(e.averageBandwidth)}`);
    attrs.push(`RESOLUTION=${e.width}x${e.height}`, `CODECS="${e.codecs}"`);
    if (e.frameRate) attrs.push(`FRAME-RATE=${e.frameRate.toFixed(3)}`);
    if (audio) attrs.push(`AUDIO="${audio.groupId}"`);
    if (subs) attrs.push(`SUBTITLES="${subs.groupId}"`);
    lines.push(`#EXT-X-STREAM-INF:${attrs.join(',')}`, e.uri);
  }
  return `${lines.join('\n')}\n`;
}

/**
 * Fetches playlist text over HTTP(S).
 * @throws PermanentTaskError for an answer other than 2xx or a body that is not a playlist;
 *   Error (retryable) when the server cannot be reached or does not answer within `timeoutMs`.
 */
export async function fetchPlaylist(
  url: string,
  options: {
    fetch: (url: string, init?: RequestInit) => Promise<Response>;
    signal?: AbortSignal;
    timeoutMs?: number;
  },
): Promise<{ text: string; playlist: HlsPlaylist }> {
  const timeout = AbortSignal.timeout(options.timeoutMs ?? 10_000);
  const signal = options.signal ? AbortSignal.any([options.signal, timeout]) : timeout;
  let res: Response;
  try {
    res = await options.fetch(url, { signal, redirect: 'follow' });
  } catch (err) {
    if (options.signal?.aborted) throw err;
    const cause = (err as { cause?: { code?: string; message?: string } }).cause;
    const why = timeout.aborted
      ? `no answer within ${(options.timeoutMs ?? 10_000) / 1000} s`
      : (cause?.code ?? cause?.message ?? String(err));
    throw new Error(`cannot fetch HLS playlist ${url}: ${why}`, { cause: err });
  }
  if (!res.ok) throw new PermanentTaskError(`cannot fetch HLS playlist ${url}: HTTP ${res.status}`);
  const text = await res.text();
  return { text, playlist: parsePlaylist(text, url) };
}

/**
 * Resolves a source URL to a media playlist: a master playlist's highest-bandwidth variant is
 * followed once.
 * @returns the media playlist URL and its parsed content, and for a master whose chosen variant
 *   plays with a separate audio rendition ({@link variantAudioUri}) that rendition's absolute
 *   URL (`audioUrl`, else null; also null when `url` is a media playlist).
 * @throws as {@link fetchPlaylist}; PermanentTaskError for a master without variants.
 */
export async function loadMediaPlaylist(
  url: string,
  options: {
    fetch: (url: string, init?: RequestInit) => Promise<Response>;
    signal?: AbortSignal;
    timeoutMs?: number;
  },
): Promise<{ url: string; playlist: Extract<HlsPlaylist, { kind: 'media' }>; audioUrl: string | null }> {
  const first = await fetchPlaylist(url, options);
  if (first.playlist.kind === 'media') return { url, playlist: first.playlist, audioUrl: null };
  const best = [...first.playlist.variants].sort((a, b) => b.bandwidth - a.bandwidth)[0];
  if (!best) throw new PermanentTaskError(`HLS master playlist ${url} lists no variants`);
  const variantUrl = new URL(best.uri, url).toString();
  const second = await fetchPlaylist(variantUrl, options);
  if (second.playlist.kind !== 'media')
    throw new PermanentTaskError(`HLS variant ${variantUrl} of ${url} is not a media playlist`);
  const audio = variantAudioUri(first.playlist, best);
  return {
    url: variantUrl,
    playlist: second.playlist,
    audioUrl: audio ? new URL(audio, url).toString() : null,
  };
}
