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
import { FRAGMENTED_VIDEO_FLAGS } from './cmaf.js';
import { alignedX264Args, type Rung } from './ladder.js';
import { type StagedAudio, type StagedSubtitle } from './media-parts.js';
import { AUDIO_BITRATE, type VodPlan } from './vod.js';

async function sharedDir(ctx: HandlerContext, plan: VodPlan): Promise<string> {
  const dir = path.join(await ctx.storage.resolve(plan.staging), 'shared');
  await mkdir(dir, { recursive: true });
  return dir;
}

/** What a rendition task leaves beside each rung's MP4 in the staging folder (`<name>.json`). */
export interface RungSidecar {
  name: string;
  file: string;
  width: number;
  height: number;
  bandwidth: number;
  codecs: string;
  fps: number | null;
  video_bitrate: number;
  /**
   * The file is written with {@link FRAGMENTED_VIDEO_FLAGS}: already the CMAF track packaging cuts,
   * so no remux pass is needed (other readers — the MP4 and MPEG-TS packagers, probes — read a
   * fragmented MP4 like any other). Sidecars written before this field have no such flag.
   */
  fragmented: true;
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
): Promise<RungSidecar> {
  return (await encodeRungs(ctx, plan, sourceAbs, [rung]))[0]!;
}

/**
 * Encodes several rungs from one decode of the source: one FFmpeg process whose `split` filter
 * feeds a scaler and an x264 encoder per rung (the same {@link alignedX264Args} as one rung alone,
 * so the outputs are the same files a task per rung would make). Used when vodstream's
 * `renditions_per_task` packs rungs into one task.
 * @param rungs one or more rungs, each written to `<staging>/<name>.mp4` with its sidecar.
 * @returns the sidecars, in the order of `rungs`.
 * @throws Error when FFmpeg fails or an output has no video stream.
 */
export async function encodeRungs(
  ctx: HandlerContext,
  plan: VodPlan,
  sourceAbs: string,
  rungs: Rung[],
): Promise<RungSidecar[]> {
  const staging = await ctx.storage.resolve(plan.staging);
  await mkdir(staging, { recursive: true });
  const files = rungs.map((r) => path.join(staging, `${r.name}.mp4`));
  const outputs = (i: number): string[] => [
    ...alignedX264Args(rungs[i]!.video_bitrate, plan.segment_duration, plan.fps),
    '-movflags',
    FRAGMENTED_VIDEO_FLAGS,
    files[i]!,
  ];
  const scale = (r: Rung): string => `scale=${r.width}:${r.height},setsar=1`;
  const args =
    rungs.length === 1
      ? ['-i', sourceAbs, '-map', '0:v:0', '-an', '-sn', '-vf', scale(rungs[0]!), ...outputs(0)]
      : [
          '-i',
          sourceAbs,
          '-filter_complex',
          `[0:v:0]split=${rungs.length}${rungs.map((_, i) => `[s${i}]`).join('')};` +
            rungs.map((r, i) => `[s${i}]${scale(r)}[v${i}]`).join(';'),
          ...rungs.flatMap((_, i) => ['-map', `[v${i}]`, '-an', '-sn', ...outputs(i)]),
        ];
  const names = rungs.map((r) => r.name).join(' + ');
  for (const rung of rungs)
    ctx.log(
      `encoding ${rung.name} ${rung.width}x${rung.height} (${Math.round(rung.video_bitrate / 1000)} kb/s video, ` +
        `key frame every ${plan.segment_duration} s) from ${plan.source ?? 'the capture'}` +
        (rungs.length > 1 ? ` (with ${names}, one decode)` : ''),
    );
  await runFfmpeg(args, {
    signal: ctx.signal,
    durationSeconds: plan.duration,
    onProgress: reportFfmpegProgress(ctx, { label: `rendition ${names}` }),
  });
  const sidecars: RungSidecar[] = [];
  const infos = await Promise.all(files.map((f) => probeMedia(f)));
  for (const [i, rung] of rungs.entries()) {
    const info = infos[i]!;
    const v = info.video;
    if (!v) throw new Error(`rendition ${rung.name} has no video stream`);
    const sidecar: RungSidecar = {
      name: rung.name,
      file: path.basename(files[i]!),
      width: v.width ?? rung.width,
      height: v.height ?? rung.height,
      bandwidth: Math.round((info.bitRate ?? rung.video_bitrate) * 1.2),
      codecs: rfc6381Codec(v) ?? 'avc1.640028',
      fps: v.fps ?? null,
      video_bitrate: rung.video_bitrate,
      fragmented: true,
    };
    await writeFile(path.join(staging, `${rung.name}.json`), JSON.stringify(sidecar, null, 2));
    sidecars.push(sidecar);
  }
  return sidecars;
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
      // Not fragmented: FFmpeg 5.1 writes no edit list into a fragmented MP4, so the AAC
      // encoder's priming samples would stay in, and the MP4 made from this file (generate_mp4,
      // createmp4) would have its audio one frame late. CMAF packaging remuxes it (cheap).
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
  if (raw === null)
    throw new PermanentTaskError(`the shared audio was not encoded (no ${plan.staging}/shared/audio.json)`);
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
      await runFfmpeg(['-f', 'srt', '-i', src, '-c:s', 'webvtt', '-f', 'webvtt', vtt], {
        signal: ctx.signal,
      });
    } catch (err) {
      if (ctx.signal.aborted) throw err;
      throw new PermanentTaskError(
        `subtitles ${t.file} could not be read as SRT: ${(err as Error).message}`,
        {
          cause: err,
        },
      );
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
