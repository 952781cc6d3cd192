/**
 * Smart cut: joins clips of H.264 files into one MP4, re-encoding only the frames between a cut
 * point and the nearest key frame and stream-copying the key-frame-aligned rest.
 *
 * For a clip [start, end) (the frames whose presentation time is at or after `start` and before
 * `end`, 1 ms tolerance):
 * - head: `start` up to the first key frame at or after it, re-encoded;
 * - middle: that key frame up to the last key frame at or before `end`, stream-copied;
 * - tail: that last key frame up to `end`, re-encoded (the tail is not copied because a B-frame
 *   before `end` may refer to a frame after it).
 * A clip with no key frame inside it is re-encoded whole. Re-encoded parts use libx264 with the
 * source's profile, level, size, pixel format and frame timing (ffprobe), so the parts join as one
 * stream. Parts are joined as MPEG-TS (each key frame carries its SPS/PPS in band, so a decoder
 * switches between the source's and the encoder's parameter sets) and remuxed to MP4 with the
 * source's time scale. Audio is re-encoded once for the whole remix (AAC), each clip's audio cut
 * to its video's exact length, so audio and video stay in step across clips.
 *
 * Not possible (the caller then re-encodes everything): a source that is not a local file, not
 * H.264 in 8-bit 4:2:0 with a baseline/main/high profile, clips whose sources differ in any of the
 * parameters above, or a copied range whose GOP is open (a frame after its key frame in decode
 * order shown before it).
 */
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { runFfmpeg, runFfprobe } from '../../../src/media/ffmpeg.js';
import type { CaptureClip } from '../capture-prepare.js';

/** The video parameters a re-encoded part must share with the copied parts. */
interface VideoFormat {
  profile: string;
  level: number;
  width: number;
  height: number;
  pixFmt: string;
  /** Stream time base, `[num, den]`. */
  timeBase: [number, number];
  frameRate: string;
  sar: string;
  bitRate: number | null;
}

/** One packet of the video stream, in decode order. */
interface Packet {
  pts: number;
  key: boolean;
}

/** One part of the output, in order. */
export interface SmartPart {
  clip: number;
  mode: 'encode' | 'copy';
  /** Seconds from the source's start (as `-ss` counts) of the first frame. */
  from: number;
  frames: number;
  /** Seconds the part lasts (frame times, not a rounded count). */
  seconds: number;
}

/** What {@link smartCut} made. */
export interface SmartCutResult {
  file: string;
  parts: SmartPart[];
  encodedFrames: number;
  copiedFrames: number;
  /** Sum of the clips' exact lengths, seconds. */
  duration: number;
}

const PROFILES: Record<string, string> = {
  High: 'high',
  Main: 'main',
  Baseline: 'baseline',
  'Constrained Baseline': 'baseline',
};
const EPS = 1e-3;

function ratio(text: string | undefined): number {
  const [a, b] = String(text ?? '')
    .split('/')
    .map(Number);
  return a && b ? a / b : NaN;
}

async function probeFormat(
  file: string,
  signal?: AbortSignal,
): Promise<{ format: VideoFormat; start: number } | string> {
  const json = JSON.parse(
    await runFfprobe(['-show_streams', '-show_format', '-select_streams', 'v:0', '-of', 'json', file], {
      signal,
    }),
  ) as { streams?: Record<string, string | number>[]; format?: { start_time?: string } };
  const s = json.streams?.[0];
  if (!s) return 'no video stream';
  if (s.codec_name !== 'h264') return `video codec ${String(s.codec_name)} (smart cut needs H.264)`;
  const profile = PROFILES[String(s.profile)];
  if (!profile) return `H.264 profile ${String(s.profile)} (smart cut needs baseline, main or high)`;
  if (s.pix_fmt !== 'yuv420p' && s.pix_fmt !== 'yuvj420p')
    return `pixel format ${String(s.pix_fmt)} (smart cut needs 8-bit 4:2:0)`;
  const [tn, td] = String(s.time_base).split('/').map(Number);
  if (!tn || !td || !(ratio(String(s.r_frame_rate)) > 0)) return 'no usable time base or frame rate';
  return {
    format: {
      profile,
      level: Number(s.level),
      width: Number(s.width),
      height: Number(s.height),
      pixFmt: String(s.pix_fmt),
      timeBase: [tn, td],
      frameRate: String(s.r_frame_rate),
      sar: String(s.sample_aspect_ratio ?? '1:1'),
      bitRate: Number(s.bit_rate) > 0 ? Number(s.bit_rate) : null,
    },
    start: Number(json.format?.start_time) || 0,
  };
}

async function readPackets(file: string, signal?: AbortSignal): Promise<Packet[]> {
  const csv = await runFfprobe(
    ['-select_streams', 'v:0', '-show_entries', 'packet=pts,flags', '-of', 'csv=p=0', file],
    { signal },
  );
  const out: Packet[] = [];
  for (const line of csv.split('\n')) {
    const [pts, flags] = line.trim().split(',');
    if (pts === undefined || pts === '' || pts === 'N/A') continue;
    out.push({ pts: Number(pts), key: (flags ?? '').includes('K') });
  }
  return out;
}

/** The format fields that must be equal for parts to join, as one comparable string. */
function formatKey(f: VideoFormat): string {
  return JSON.stringify([f.profile, f.level, f.width, f.height, f.pixFmt, f.timeBase, f.frameRate, f.sar]);
}

/**
 * Cuts and joins `clips` into `<staging>/<name>.mp4` by smart cut.
 * @param clips - local files, `start`/`duration` in seconds from each source's start.
 * @param o.withAudio - make one AAC track of `audioBitrate` bit/s from every clip's first audio stream.
 * @returns the result, or a string saying why a smart cut is not possible (nothing is written then
 *   but the part files, which the caller's staging clean-up removes).
 * @throws Error when FFmpeg fails.
 */
export async function smartCut(
  clips: readonly CaptureClip[],
  o: {
    staging: string;
    name: string;
    withAudio: boolean;
    audioBitrate: number;
    signal?: AbortSignal;
    log?: (line: string) => void;
  },
): Promise<SmartCutResult | string> {
  const sources = new Map<string, { format: VideoFormat; start: number; packets: Packet[] }>();
  let key: string | null = null;
  for (const c of clips) {
    if (/^[a-z][a-z0-9+.-]*:/i.test(c.input) || c.input.toLowerCase().endsWith('.m3u8') || c.inputArgs.length)
      return `${c.source} is not a local file`;
    if (sources.has(c.input)) continue;
    const probed = await probeFormat(c.input, o.signal);
    if (typeof probed === 'string') return `${c.source}: ${probed}`;
    const k = formatKey(probed.format);
    if (key !== null && k !== key)
      return `${c.source} differs from the first clip's source in profile, level, size, pixel format or frame timing`;
    key = k;
    sources.set(c.input, { ...probed, packets: await readPackets(c.input, o.signal) });
  }
  const parts: SmartPart[] = [];
  const audioRanges: { input: string; from: number; seconds: number }[] = [];
  for (const [ci, c] of clips.entries()) {
    const src = sources.get(c.input)!;
    const [tn, td] = src.format.timeBase;
    const frameDur = 1 / ratio(src.format.frameRate);
    // Frames in presentation order, with their decode position.
    const frames = src.packets
      .map((p, d) => ({ t: (p.pts * tn) / td - src.start, key: p.key, d }))
      .sort((a, b) => a.t - b.t);
    const n = frames.length;
    const end = c.start + c.duration;
    const i0 = frames.findIndex((f) => f.t >= c.start - EPS);
    if (i0 < 0) return `clips[${ci}] holds no frames`;
    let i1 = frames.findIndex((f) => f.t >= end - EPS);
    if (i1 < 0) i1 = n;
    if (i1 <= i0) return `clips[${ci}] holds no frames`;
    const timeOf = (i: number): number => (i < n ? frames[i]!.t : frames[n - 1]!.t + frameDur);
    const keys: number[] = [];
    for (let i = i0; i < i1; i++) if (frames[i]!.key) keys.push(i);
    const k1 = keys[0] ?? i1;
    const k2 = i1 === n || frames[i1]!.key ? i1 : (keys[keys.length - 1] ?? i1);
    // The copied range must be a run of whole closed GOPs: the packets from k1's onwards in decode
    // order are exactly the frames k1..k2-1.
    let copyable = k2 > k1;
    if (copyable) {
      const d0 = frames[k1]!.d;
      const want = new Set(frames.slice(k1, k2).map((f) => f.d));
      for (let d = d0; d < d0 + (k2 - k1); d++) if (!want.has(d)) copyable = false;
    }
    const push = (mode: 'encode' | 'copy', a: number, b: number): void => {
      if (b > a)
        parts.push({ clip: ci, mode, from: frames[a]!.t, frames: b - a, seconds: timeOf(b) - timeOf(a) });
    };
    if (!copyable) push('encode', i0, i1);
    else {
      push('encode', i0, k1);
      push('copy', k1, k2);
      push('encode', k2, i1);
    }
    audioRanges.push({ input: c.input, from: timeOf(i0), seconds: timeOf(i1) - timeOf(i0) });
  }
  const f = [...sources.values()][0]!.format;
  const list: string[] = ['ffconcat version 1.0'];
  for (const [pi, p] of parts.entries()) {
    const c = clips[p.clip]!;
    const out = path.join(o.staging, `part_${pi}.ts`);
    // Re-encoding decodes from the key frame before -ss and drops the frames before it: half a
    // frame early keeps the first frame whatever the rounding. Stream copy starts at the key
    // frame at or before -ss and keeps it: a quarter frame late lands on the part's key frame.
    const frame = 1 / ratio(f.frameRate);
    const ss = Math.max(0, p.mode === 'copy' ? p.from + frame / 4 : p.from - frame / 2).toFixed(6);
    const common = [
      '-ss',
      ss,
      '-i',
      c.input,
      '-map',
      '0:v:0',
      '-an',
      '-sn',
      '-dn',
      '-frames:v',
      String(p.frames),
    ];
    if (p.mode === 'copy')
      await runFfmpeg([...common, '-c:v', 'copy', '-f', 'mpegts', out], { signal: o.signal });
    else
      await runFfmpeg(
        [
          ...common,
          '-fps_mode',
          'passthrough',
          '-c:v',
          'libx264',
          '-preset',
          'veryfast',
          '-crf',
          '18',
          ...(f.bitRate ? ['-maxrate', String(f.bitRate * 2), '-bufsize', String(f.bitRate * 4)] : []),
          '-profile:v',
          f.profile,
          ...(f.level > 0 ? ['-level:v', String(f.level / 10)] : []),
          '-pix_fmt',
          f.pixFmt,
          '-f',
          'mpegts',
          out,
        ],
        { signal: o.signal },
      );
    list.push(`file '${path.basename(out)}'`, `duration ${p.seconds.toFixed(6)}`);
    o.log?.(
      `clips[${p.clip}] ${p.mode === 'copy' ? 'copied' : 're-encoded'}: ${p.frames} frame(s) from ${p.from.toFixed(3)} s`,
    );
  }
  const listFile = path.join(o.staging, 'parts.ffconcat');
  await writeFile(listFile, `${list.join('\n')}\n`);
  const duration = audioRanges.reduce((a, r) => a + r.seconds, 0);
  let audioArgs: string[] = [];
  if (o.withAudio) {
    const audio = path.join(o.staging, 'audio.m4a');
    const inputs: string[] = [];
    const graph: string[] = [];
    for (const [i, r] of audioRanges.entries()) {
      inputs.push('-ss', r.from.toFixed(6), '-t', r.seconds.toFixed(6), '-i', r.input);
      graph.push(
        `[${i}:a:0]asetpts=PTS-STARTPTS,aresample=48000,aformat=sample_fmts=fltp:channel_layouts=stereo,` +
          `atrim=duration=${r.seconds.toFixed(6)},apad=whole_dur=${r.seconds.toFixed(6)}[a${i}]`,
      );
    }
    graph.push(`${audioRanges.map((_, i) => `[a${i}]`).join('')}concat=n=${audioRanges.length}:v=0:a=1[a]`);
    await runFfmpeg(
      [
        ...inputs,
        '-filter_complex',
        graph.join(';'),
        '-map',
        '[a]',
        '-c:a',
        'aac',
        '-b:a',
        String(o.audioBitrate),
        audio,
      ],
      { signal: o.signal },
    );
    audioArgs = ['-i', audio];
  }
  const file = path.join(o.staging, `${o.name}.mp4`);
  await runFfmpeg(
    [
      '-f',
      'concat',
      '-safe',
      '0',
      '-i',
      listFile,
      ...audioArgs,
      '-map',
      '0:v:0',
      ...(o.withAudio ? ['-map', '1:a:0'] : []),
      '-c',
      'copy',
      // MPEG-TS adds an access unit delimiter to every packet; the MP4 does not need them.
      '-bsf:v',
      'filter_units=remove_types=9',
      '-video_track_timescale',
      String(f.timeBase[1] / f.timeBase[0]),
      '-movflags',
      '+faststart',
      file,
    ],
    { signal: o.signal, durationSeconds: duration },
  );
  const sum = (m: 'encode' | 'copy'): number =>
    parts.filter((p) => p.mode === m).reduce((a, p) => a + p.frames, 0);
  return { file, parts, encodedFrames: sum('encode'), copiedFrames: sum('copy'), duration };
}
