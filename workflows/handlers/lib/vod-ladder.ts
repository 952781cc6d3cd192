/**
 * vodstream's ladder encodes: one video-only MP4 per rendition (each its own task, so several
 * workers share an asset), the audio once (`<staging>/shared/audio.mp4`, shared by every rendition),
 * and SRT sidecars converted to WebVTT (`<staging>/shared/subs/<id>.vtt`).
 */
import { mkdir, readFile, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { PermanentTaskError } from '../../../src/errors/task-errors.js';
import { runFfmpeg } from '../../../src/media/ffmpeg.js';
import { reportFfmpegProgress } from '../../../src/media/ffmpeg-progress.js';
import { probeMedia, rfc6381Codec } from '../../../src/media/probe.js';
import type { HandlerContext } from '../../../src/workflows/types.js';
import { alignedX264Args, type Rung } from './ladder.js';
import { type StagedAudio, type StagedSubtitle } from './media-parts.js';
import { AUDIO_BITRATE, type VodPlan } from './vod.js';

async function sharedDir(ctx: HandlerContext, plan: VodPlan): Promise<string> {
  const dir = path.join(await ctx.storage.resolve(plan.staging), 'shared');
  await mkdir(dir, { recursive: true });
  return dir;
}

/**
 * Encodes one rung of the ladder to a video-only H.264 MP4 in the staging folder, with key frames
 * aligned to `segment_duration` (see {@link alignedX264Args}), and writes its sidecar.
 */
export async function encodeRung(
  ctx: HandlerContext,
  plan: VodPlan,
  sourceAbs: string,
  rung: Rung,
): Promise<{ name: string; width: number; height: number; codecs: string }> {
  const staging = await ctx.storage.resolve(plan.staging);
  await mkdir(staging, { recursive: true });
  const file = path.join(staging, `${rung.name}.mp4`);
  const args = [
    '-i',
    sourceAbs,
    '-map',
    '0:v:0',
    '-an',
    '-sn',
    '-vf',
    `scale=${rung.width}:${rung.height},setsar=1`,
    ...alignedX264Args(rung.video_bitrate, plan.segment_duration, plan.fps),
    '-movflags',
    '+faststart',
    file,
  ];
  ctx.log(
    `encoding ${rung.name} ${rung.width}x${rung.height} (${Math.round(rung.video_bitrate / 1000)} kb/s video, ` +
      `key frame every ${plan.segment_duration} s) from ${plan.source ?? 'the capture'}`,
  );
  await runFfmpeg(args, {
    signal: ctx.signal,
    durationSeconds: plan.duration,
    onProgress: reportFfmpegProgress(ctx, { label: `rendition ${rung.name}` }),
  });
  const info = await probeMedia(file);
  const v = info.video;
  if (!v) throw new Error(`rendition ${rung.name} has no video stream`);
  const sidecar = {
    name: rung.name,
    file: path.basename(file),
    width: v.width ?? rung.width,
    height: v.height ?? rung.height,
    bandwidth: Math.round((info.bitRate ?? rung.video_bitrate) * 1.2),
    codecs: rfc6381Codec(v) ?? 'avc1.640028',
    fps: v.fps ?? null,
    video_bitrate: rung.video_bitrate,
  };
  await writeFile(path.join(staging, `${rung.name}.json`), JSON.stringify(sidecar, null, 2));
  return sidecar;
}

/** Encodes the source's first audio stream once: AAC-LC 48 kHz stereo at {@link AUDIO_BITRATE}. */
export async function encodeSharedAudio(
  ctx: HandlerContext,
  plan: VodPlan,
  sourceAbs: string,
): Promise<StagedAudio> {
  const dir = await sharedDir(ctx, plan);
  const file = path.join(dir, 'audio.mp4');
  await runFfmpeg(
    [
      '-i',
      sourceAbs,
      '-map',
      '0:a:0',
      '-vn',
      '-sn',
      '-c:a',
      'aac',
      '-b:a',
      String(AUDIO_BITRATE),
      '-ac',
      '2',
      '-ar',
      '48000',
      '-movflags',
      '+faststart',
      file,
    ],
    {
      signal: ctx.signal,
      durationSeconds: plan.duration,
      onProgress: reportFfmpegProgress(ctx, { label: 'audio' }),
    },
  );
  const info = await probeMedia(file);
  if (!info.audio) throw new Error('the audio encode has no audio stream');
  const out: StagedAudio = {
    input: file,
    codecs: rfc6381Codec(info.audio) ?? 'mp4a.40.2',
    bitrate: info.audio.bitRate ?? AUDIO_BITRATE,
  };
  await writeFile(path.join(dir, 'audio.json'), JSON.stringify({ ...out, input: 'audio.mp4' }));
  ctx.log(`audio encoded once for every rendition: AAC ${Math.round(out.bitrate / 1000)} kb/s`);
  return out;
}

/** The staged shared audio, or null when the job has none. */
export async function stagedAudio(ctx: HandlerContext, plan: VodPlan): Promise<StagedAudio | null> {
  if (!plan.shared_audio) return null;
  const dir = path.join(await ctx.storage.resolve(plan.staging), 'shared');
  const raw = await readFile(path.join(dir, 'audio.json'), 'utf8').catch(() => null);
  if (raw === null) throw new PermanentTaskError(`the shared audio was not encoded (no ${plan.staging}/shared/audio.json)`);
  const s = JSON.parse(raw) as StagedAudio;
  return { ...s, input: path.join(dir, 'audio.mp4') };
}

/**
 * Converts the job's SRT files to WebVTT with FFmpeg's `webvtt` encoder.
 * @throws PermanentTaskError naming the file when FFmpeg cannot read it as SRT.
 */
export async function convertSubtitles(ctx: HandlerContext, plan: VodPlan): Promise<StagedSubtitle[]> {
  const dir = path.join(await sharedDir(ctx, plan), 'subs');
  await mkdir(dir, { recursive: true });
  const out: StagedSubtitle[] = [];
  for (const t of plan.subtitles ?? []) {
    const src = await ctx.storage.resolve(t.file);
    const vtt = path.join(dir, `${t.id}.vtt`);
    try {
      await runFfmpeg(['-f', 'srt', '-i', src, '-c:s', 'webvtt', '-f', 'webvtt', vtt], { signal: ctx.signal });
    } catch (err) {
      if (ctx.signal.aborted) throw err;
      throw new PermanentTaskError(`subtitles ${t.file} could not be read as SRT: ${(err as Error).message}`, {
        cause: err,
      });
    }
    ctx.log(`subtitles ${t.file} (${t.language}) converted to WebVTT`);
    out.push({ ...t, vtt });
  }
  return out;
}

/** The staged WebVTT files of the job (none when it has no subtitles). */
export async function stagedSubtitles(ctx: HandlerContext, plan: VodPlan): Promise<StagedSubtitle[]> {
  if (!plan.subtitles?.length) return [];
  const dir = path.join(await ctx.storage.resolve(plan.staging), 'shared', 'subs');
  const out: StagedSubtitle[] = [];
  for (const t of plan.subtitles) {
    const vtt = path.join(dir, `${t.id}.vtt`);
    if (!(await stat(vtt).catch(() => null)))
      throw new PermanentTaskError(`subtitles ${t.file} were not converted (no ${t.id}.vtt in staging)`);
    out.push({ ...t, vtt });
  }
  return out;
}

