/**
 * Reading a media file's (or URL's) shape with ffprobe: duration, streams, picture size, frame rate.
 */
import { PermanentTaskError } from '../errors/task-errors.js';
import { MediaToolError, runFfprobe, runTool, type RunToolOptions } from './ffmpeg.js';

/** One elementary stream as ffprobe reports it, reduced to what the workflows use. */
export interface MediaStream {
  index: number;
  /** ffprobe's `codec_type`: `video`, `audio`, `subtitle`, `data`, `attachment`. */
  kind: string;
  /** ffprobe's `codec_name` (`h264`, `aac`, `mjpeg`, …). */
  codec: string | null;
  /** Seconds, when the container states it per stream. */
  durationSeconds: number | null;
  /** Video only: pixels. */
  width?: number;
  height?: number;
  /** Video only: frames per second from `avg_frame_rate` (or `r_frame_rate`), null when unknown. */
  fps?: number | null;
  /** Video only: frame count when the container states it (or when `countFrames` was asked). */
  frames?: number | null;
  /** Codec profile as ffprobe names it (`High`, `Main`, `LC`), when known. */
  profile?: string | null;
  /** Codec level as ffprobe reports it (H.264: `31` for 3.1), when known. */
  level?: number | null;
  /** Audio only. */
  sampleRate?: number;
  channels?: number;
  /** Bits per second, when known. */
  bitRate: number | null;
}

/** What {@link probeMedia} returns. */
export interface MediaInfo {
  /** Container duration, seconds (0 for a still image without one). */
  durationSeconds: number;
  /** ffprobe's `format_name` (`mov,mp4,m4a,3gp,3g2,mj2`, `hls`, `gif`, …). */
  formatName: string;
  /** Total bit rate, bits per second, when known. */
  bitRate: number | null;
  sizeBytes: number | null;
  streams: MediaStream[];
  /** The first video stream, or null. */
  video: MediaStream | null;
  /** The first audio stream, or null. */
  audio: MediaStream | null;
}

/** Options of {@link probeMedia}. */
export interface ProbeOptions extends RunToolOptions {
  /** Decode the video to count frames exactly (`-count_frames`; slower). */
  countFrames?: boolean;
  /** Extra input options placed before the input (e.g. `-allowed_extensions ALL`). */
  inputArgs?: string[];
}

function num(v: unknown): number | null {
  const n = typeof v === 'number' ? v : typeof v === 'string' && v.trim() !== '' ? Number(v) : NaN;
  return Number.isFinite(n) ? n : null;
}

/** Parses an ffprobe rate such as `30000/1001` or `25/1`; null for `0/0` or junk. */
export function parseRate(v: unknown): number | null {
  if (typeof v !== 'string') return null;
  const m = /^(\d+(?:\.\d+)?)(?:\/(\d+(?:\.\d+)?))?$/.exec(v.trim());
  if (!m) return null;
  const a = Number(m[1]);
  const b = m[2] === undefined ? 1 : Number(m[2]);
  if (!a || !b) return null;
  return a / b;
}

/** Turns ffprobe's `-print_format json -show_format -show_streams` output into {@link MediaInfo}. */
export function parseProbeJson(json: unknown): MediaInfo {
  const root = (json ?? {}) as { streams?: Record<string, unknown>[]; format?: Record<string, unknown> };
  const streams: MediaStream[] = (root.streams ?? []).map((s) => {
    const kind = typeof s.codec_type === 'string' ? s.codec_type : 'unknown';
    const out: MediaStream = {
      index: num(s.index) ?? 0,
      kind,
      codec: typeof s.codec_name === 'string' ? s.codec_name : null,
      durationSeconds: num(s.duration),
      bitRate: num(s.bit_rate),
    };
    if (kind === 'video') {
      out.width = num(s.width) ?? 0;
      out.height = num(s.height) ?? 0;
      out.fps = parseRate(s.avg_frame_rate) ?? parseRate(s.r_frame_rate);
      out.frames = num(s.nb_read_frames) ?? num(s.nb_frames);
      out.profile = typeof s.profile === 'string' ? s.profile : null;
      out.level = num(s.level);
    } else if (kind === 'audio') {
      out.sampleRate = num(s.sample_rate) ?? 0;
      out.channels = num(s.channels) ?? 0;
      out.profile = typeof s.profile === 'string' ? s.profile : null;
    }
    return out;
  });
  const format = root.format ?? {};
  let durationSeconds = num(format.duration);
  if (durationSeconds === null) {
    const perStream = streams.map((s) => s.durationSeconds ?? 0);
    durationSeconds = perStream.length ? Math.max(...perStream) : 0;
  }
  return {
    durationSeconds,
    formatName: typeof format.format_name === 'string' ? format.format_name : 'unknown',
    bitRate: num(format.bit_rate),
    sizeBytes: num(format.size),
    streams,
    video: streams.find((s) => s.kind === 'video') ?? null,
    audio: streams.find((s) => s.kind === 'audio') ?? null,
  };
}

/**
 * Probes a file path or URL with ffprobe. When ffprobe dies on a signal — the static ffprobe build
 * shipped by `@ffprobe-installer` crashes on HLS playlists and on any network input — the input is
 * read with FFmpeg instead and its stream summary parsed ({@link parseFfmpegInputSummary}).
 * @param input a local path or an http(s) URL (HLS playlists included).
 * @throws PermanentTaskError when the input cannot be read as media (not a media file, missing
 *   file, unreachable URL) — the message names the input and the tool's reason; AbortError on abort.
 */
export async function probeMedia(input: string, options: ProbeOptions = {}): Promise<MediaInfo> {
  const isUrl = /^https?:/i.test(input);
  const args = ['-print_format', 'json', '-show_format', '-show_streams'];
  if (options.countFrames) args.push('-count_frames');
  if (isUrl) args.push('-rw_timeout', '10000000');
  args.push(...(options.inputArgs ?? []), '-i', input);
  let stdout: string;
  try {
    stdout = await runFfprobe(args, options);
  } catch (err) {
    if (
      err instanceof MediaToolError &&
      err.exitCode === null &&
      err.stderrTail === '' &&
      !options.signal?.aborted
    )
      return probeWithFfmpeg(input, options, isUrl);
    if (err instanceof MediaToolError) throw notMedia(input, err);
    throw err;
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(stdout);
  } catch (err) {
    throw new PermanentTaskError(`ffprobe returned unreadable output for ${input}`, { cause: err });
  }
  return parseProbeJson(parsed);
}

function notMedia(input: string, err: MediaToolError): PermanentTaskError {
  const lines = err.stderrTail
    .trim()
    .split('\n')
    .filter((l) => l && !/At least one output file must be specified/.test(l));
  const reason = lines.at(-1) ?? `exit code ${err.exitCode}`;
  return new PermanentTaskError(`cannot read ${input} as media: ${reason}`, { cause: err });
}

async function probeWithFfmpeg(input: string, options: ProbeOptions, isUrl: boolean): Promise<MediaInfo> {
  const args = [
    '-hide_banner',
    '-nostdin',
    ...(isUrl ? ['-rw_timeout', '10000000'] : []),
    ...(options.inputArgs ?? []),
    '-i',
    input,
  ];
  try {
    // With no output FFmpeg prints the input summary and exits 1 ("At least one output file…").
    await runTool('ffmpeg', args, options);
  } catch (err) {
    if (!(err instanceof MediaToolError)) throw err;
    const info = parseFfmpegInputSummary(err.stderrTail);
    if (!info) throw notMedia(input, err);
    return info;
  }
  throw new PermanentTaskError(`cannot read ${input} as media: unexpected FFmpeg output`);
}

function clockToSeconds(text: string): number | null {
  const m = /^(\d+):(\d+):(\d+(?:\.\d+)?)$/.exec(text);
  return m ? Number(m[1]) * 3600 + Number(m[2]) * 60 + Number(m[3]) : null;
}

/**
 * Parses the `Input #0` summary FFmpeg prints on stderr (`Duration: …`, `Stream #0:n: Video: …`).
 * @returns the media info, or null when there is no input summary (the input was not readable).
 */
export function parseFfmpegInputSummary(stderr: string): MediaInfo | null {
  const head = /Input #0, ([^,\s]+(?:,[^,\s]+)*), from/.exec(stderr);
  if (!head) return null;
  const dur = /Duration: (\d+:\d+:\d+(?:\.\d+)?)/.exec(stderr);
  const br = /bitrate: (\d+) kb\/s/.exec(stderr);
  const streams: MediaStream[] = [];
  const re = /Stream #0:(\d+)[^:]*: (Video|Audio|Subtitle|Data): ([a-z0-9_]+)(?: \(([^)]*)\))?([^\n]*)/g;
  let m: RegExpExecArray | null;
  while ((m = re.exec(stderr))) {
    const kind = m[2]!.toLowerCase();
    const rest = m[5] ?? '';
    const sBr = /(\d+) kb\/s/.exec(rest);
    const s: MediaStream = {
      index: Number(m[1]),
      kind,
      codec: m[3] ?? null,
      durationSeconds: null,
      bitRate: sBr ? Number(sBr[1]) * 1000 : null,
    };
    if (kind === 'video') {
      const size = /, (\d{2,5})x(\d{2,5})/.exec(rest);
      const fps = /, ([\d.]+) fps/.exec(rest);
      s.width = size ? Number(size[1]) : 0;
      s.height = size ? Number(size[2]) : 0;
      s.fps = fps ? Number(fps[1]) : null;
      s.frames = null;
      s.profile = m[4] && !m[4].includes('/') ? m[4] : null;
      s.level = null;
    } else if (kind === 'audio') {
      const hz = /(\d+) Hz/.exec(rest);
      const layout = /Hz, ([^,]+)/.exec(rest)?.[1] ?? '';
      s.sampleRate = hz ? Number(hz[1]) : 0;
      s.channels =
        layout === 'mono'
          ? 1
          : layout === 'stereo'
            ? 2
            : Number(/(\d+) channels/.exec(layout)?.[1] ?? (layout.startsWith('5.1') ? 6 : 0));
      s.profile = m[4] && !m[4].includes('/') ? m[4] : null;
    }
    streams.push(s);
  }
  return {
    durationSeconds: (dur && clockToSeconds(dur[1]!)) ?? 0,
    formatName: head[1]!,
    bitRate: br && Number(br[1]) > 0 ? Number(br[1]) * 1000 : null,
    sizeBytes: null,
    streams,
    video: streams.find((x) => x.kind === 'video') ?? null,
    audio: streams.find((x) => x.kind === 'audio') ?? null,
  };
}

/**
 * The RFC 6381 `CODECS` entry of a stream for HLS master playlists: `avc1.PPCCLL` for H.264 (from
 * its profile and level), `mp4a.40.2` for AAC-LC (`mp4a.40.5` for HE-AAC), `hvc1` for HEVC.
 * @returns the entry, or null for codecs HLS masters do not name here.
 */
export function rfc6381Codec(stream: MediaStream): string | null {
  if (stream.codec === 'h264') {
    const profiles: Record<string, string> = {
      Baseline: '4200',
      'Constrained Baseline': '42e0',
      Main: '4d40',
      High: '6400',
    };
    const p = profiles[stream.profile ?? ''] ?? '6400';
    const level = Math.max(10, Math.min(62, stream.level ?? 40));
    return `avc1.${p}${level.toString(16).padStart(2, '0')}`;
  }
  if (stream.codec === 'aac') return stream.profile === 'HE-AAC' ? 'mp4a.40.5' : 'mp4a.40.2';
  if (stream.codec === 'mp3') return 'mp4a.40.34';
  if (stream.codec === 'hevc') return 'hvc1.1.6.L93.B0';
  return null;
}
