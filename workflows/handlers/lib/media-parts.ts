/**
 * The media pieces of an HLS variant besides the video renditions: the shared audio, subtitle
 * tracks (SRT made into WebVTT renditions), and measuring a media playlist's bit rates.
 */
import { mkdir, readFile, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { runFfprobe } from '../../../src/media/ffmpeg.js';
import { parsePlaylist } from '../../../src/media/hls-playlist.js';

/** A subtitle track taken from an SRT file. */
export interface SubtitleTrack {
  /** Client-relative SRT file. */
  file: string;
  /** BCP 47 language tag (`und` when unknown). */
  language: string;
  /** Name shown by players. */
  name: string;
  /** Folder name inside a variant (`subs/<id>`), unique per job. */
  id: string;
}

/** The shared audio of a job, as staged by the `audio` task. */
export interface StagedAudio {
  /** Absolute path of the AAC MP4 (or of an audio-only HLS media playlist, with `inputArgs`). */
  input: string;
  /** Extra FFmpeg input options (e.g. `-allowed_extensions ALL` for an AES playlist). */
  inputArgs?: string[];
  /** RFC 6381 codec, e.g. `mp4a.40.2`. */
  codecs: string;
  bitrate: number;
}

/** A subtitle track converted to WebVTT. */
export interface StagedSubtitle extends SubtitleTrack {
  /** Absolute path of the `.vtt` file. */
  vtt: string;
}

/**
 * Peak and average bit rate of a media playlist's segments (RFC 8216 4.3.4.2: BANDWIDTH is the
 * largest segment bit rate, AVERAGE-BANDWIDTH the whole playlist's), from the files' sizes.
 * An fMP4 playlist's init segment counts towards the average.
 */
export async function measurePlaylist(playlistAbs: string): Promise<{ peak: number; average: number }> {
  const text = await readFile(playlistAbs, 'utf8');
  const pl = parsePlaylist(text, playlistAbs);
  if (pl.kind !== 'media') throw new Error(`${playlistAbs} is not a media playlist`);
  const dir = path.dirname(playlistAbs);
  let total = 0;
  let peak = 0;
  for (const seg of pl.segments) {
    const size = (await stat(path.join(dir, seg.uri))).size;
    total += size;
    if (seg.durationSeconds > 0.5) peak = Math.max(peak, (size * 8) / seg.durationSeconds);
  }
  const map = /#EXT-X-MAP:URI="([^"]+)"/.exec(text)?.[1];
  if (map) total += (await stat(path.join(dir, map))).size;
  const average = pl.totalSeconds > 0 ? (total * 8) / pl.totalSeconds : 0;
  return { peak: Math.round(Math.max(peak, average)), average: Math.round(average) };
}

/** The start time of an MPEG-TS segment in 90 kHz units (for WebVTT `X-TIMESTAMP-MAP`). */
export async function tsStartPts(segmentAbs: string): Promise<number> {
  const out = await runFfprobe([
    '-v',
    'error',
    '-show_entries',
    'format=start_time',
    '-of',
    'default=noprint_wrappers=1:nokey=1',
    segmentAbs,
  ]).catch(() => '');
  const s = Number.parseFloat(out.trim());
  return Number.isFinite(s) ? Math.round(s * 90_000) : 0;
}

/**
 * Writes a subtitle rendition into a variant folder: `subs/<id>/subtitles.vtt` and a one-segment
 * media playlist `subs/<id>/index.m3u8` covering the whole asset. For MPEG-TS variants the cue
 * times are mapped to the segments' clock with `X-TIMESTAMP-MAP` (RFC 8216 3.5).
 * @returns the playlist's path relative to the variant folder.
 */
export async function writeSubtitleRendition(
  variantDir: string,
  sub: StagedSubtitle,
  durationSeconds: number,
  mpegtsStart: number | null,
): Promise<string> {
  const dir = path.join(variantDir, 'subs', sub.id);
  await mkdir(dir, { recursive: true });
  // A WebVTT file taken from another variant already has a map: it is replaced.
  let vtt = (await readFile(sub.vtt, 'utf8')).replace(/^X-TIMESTAMP-MAP=[^\n]*\n/m, '');
  if (mpegtsStart !== null)
    vtt = vtt.replace(
      /^(\uFEFF?WEBVTT[^\n]*\n)/,
      `$1X-TIMESTAMP-MAP=MPEGTS:${mpegtsStart},LOCAL:00:00:00.000\n`,
    );
  await writeFile(path.join(dir, 'subtitles.vtt'), vtt);
  const target = Math.max(1, Math.ceil(durationSeconds));
  await writeFile(
    path.join(dir, 'index.m3u8'),
    [
      '#EXTM3U',
      '#EXT-X-VERSION:3',
      `#EXT-X-TARGETDURATION:${target}`,
      '#EXT-X-MEDIA-SEQUENCE:0',
      '#EXT-X-PLAYLIST-TYPE:VOD',
      `#EXTINF:${durationSeconds.toFixed(6)},`,
      'subtitles.vtt',
      '#EXT-X-ENDLIST',
      '',
    ].join('\n'),
  );
  return `subs/${sub.id}/index.m3u8`;
}
