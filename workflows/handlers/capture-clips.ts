/**
 * vodcapture `capture` (queue `capture`): cuts every clip frame-accurately and joins them in one
 * FFmpeg run (concat filter) to one common size, frame rate and audio format — the staged rendition
 * the packaging and MP4 tasks read. Inputs: `plan` (the prepare output, with `clips`).
 *
 * HLS sources are first copied (no re-encode) to a local MP4: only the segments overlapping the
 * clip for a remote playlist. An HLS source whose audio is a separate rendition (the audio group of
 * an asset packaged by vodstream) has that audio playlist copied the same way, and the clip's
 * audio is taken from it. Cutting then seeks in that file; FFmpeg's HLS and MPEG-TS seeking
 * is not reliable enough to cut from the stream directly.
 */
import { mkdir, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { PermanentTaskError } from '../../src/errors/task-errors.js';
import { runFfmpeg } from '../../src/media/ffmpeg.js';
import { reportFfmpegProgress } from '../../src/media/ffmpeg-progress.js';
import { loadMediaPlaylist } from '../../src/media/hls-playlist.js';
import { probeMedia } from '../../src/media/probe.js';
import type { HandlerContext } from '../../src/workflows/types.js';
import type { CaptureClip } from './capture-prepare.js';
import { alignedX264Args } from './lib/ladder.js';
import { AUDIO_BITRATE, describeStaged, readPlan, videoBitrateFor } from './lib/vod.js';

/**
 * One HLS playlist (a rendition, or an audio-only rendition) of a clip copied (no re-encode) to a
 * local MP4, and where the clip starts in it. A remote playlist is first cut down to the segments
 * overlapping the clip. `kind` picks the streams copied: `av` the video and the audio when there
 * is one (a rendition that carries its audio), `a` the audio only.
 */
async function copyPlaylist(
  ctx: HandlerContext,
  c: { input: string; inputArgs: string[]; start: number; duration: number },
  file: string,
  kind: 'av' | 'a',
): Promise<{ file: string; inputArgs: string[]; start: number }> {
  let input = c.input;
  let start = c.start;
  let inputArgs = c.inputArgs;
  if (/^https?:/i.test(c.input)) {
    const { url, playlist } = await loadMediaPlaylist(c.input, { signal: ctx.signal, fetch: ctx.fetch });
    const end = c.start + c.duration;
    const picked = playlist.segments.filter(
      (s) => s.startSeconds + s.durationSeconds > c.start && s.startSeconds < end,
    );
    if (!playlist.encrypted && picked.length > 0) {
      // A local playlist of just the segments the clip needs, pointing at the remote segments.
      const sub = file.replace(/\.mp4$/, '.m3u8');
      const target = Math.ceil(Math.max(...picked.map((s) => s.durationSeconds)));
      const lines = [
        '#EXTM3U',
        '#EXT-X-VERSION:3',
        `#EXT-X-TARGETDURATION:${target}`,
        '#EXT-X-PLAYLIST-TYPE:VOD',
      ];
      for (const s of picked)
        lines.push(`#EXTINF:${s.durationSeconds.toFixed(6)},`, new URL(s.uri, url).toString());
      lines.push('#EXT-X-ENDLIST');
      await writeFile(sub, `${lines.join('\n')}\n`);
      input = sub;
      start = c.start - picked[0]!.startSeconds;
      inputArgs = ['-protocol_whitelist', 'file,http,https,tcp,tls,crypto'];
    }
  }
  await runFfmpeg(
    [
      ...inputArgs,
      '-i',
      input,
      ...(kind === 'av' ? ['-map', '0:v:0', '-map', '0:a:0?'] : ['-map', '0:a:0', '-vn']),
      '-c',
      'copy',
      '-bsf:a',
      'aac_adtstoasc',
      file,
    ],
    { signal: ctx.signal },
  );
  return { file, inputArgs: [], start };
}

/**
 * A clip's inputs as local files, and where the clip starts in each: the video (with its audio
 * when the source carries it), and the separate audio rendition when the source has one (an HLS
 * asset whose audio is its own rendition group). Each file starts at its own first segment, so
 * each gets its own start.
 */
async function localInput(
  ctx: HandlerContext,
  c: CaptureClip,
  staging: string,
  n: number,
): Promise<{
  file: string;
  inputArgs: string[];
  start: number;
  audio: { file: string; inputArgs: string[]; start: number } | null;
}> {
  const isPlaylist = /^https?:/i.test(c.input) || c.input.toLowerCase().endsWith('.m3u8');
  const video = isPlaylist
    ? await copyPlaylist(ctx, c, path.join(staging, `source_${n}.mp4`), 'av')
    : { file: c.input, inputArgs: c.inputArgs, start: c.start };
  const audio = c.audio
    ? await copyPlaylist(
        ctx,
        { ...c.audio, start: c.start, duration: c.duration },
        path.join(staging, `source_${n}_audio.mp4`),
        'a',
      )
    : null;
  return { ...video, audio };
}

/**
 * Reads a capture or remix plan and empties its staging folder, for the tasks that write the
 * staged rendition from the plan's clips (this file's task and vodremix's `remix-clips.ts`).
 *
 * @returns the plan, its clips (at least one) and the staging folder's absolute path.
 * @throws PermanentTaskError when the plan lists no clips.
 */
export async function readClipPlan(ctx: HandlerContext): Promise<{
  plan: ReturnType<typeof readPlan> & { clips?: CaptureClip[] };
  clips: CaptureClip[];
  staging: string;
}> {
  const plan = readPlan(ctx) as ReturnType<typeof readPlan> & { clips?: CaptureClip[] };
  const clips = plan.clips ?? [];
  if (clips.length === 0) throw new PermanentTaskError('the plan lists no clips');
  const staging = await ctx.storage.resolve(plan.staging);
  await rm(staging, { recursive: true, force: true });
  await mkdir(staging, { recursive: true });
  return { plan, clips, staging };
}

/** @returns the staged rendition's description and the clip count. */
export default async function captureClips(ctx: HandlerContext): Promise<unknown> {
  const { plan, clips, staging } = await readClipPlan(ctx);
  const fps = plan.fps && plan.fps > 0 && plan.fps <= 120 ? plan.fps : 25;
  const vbr = videoBitrateFor(plan.height);
  const { width: w, height: h } = plan;
  const args: string[] = [];
  const graph: string[] = [];
  const pads: string[] = [];
  let inputs = 0;
  for (const [i, c] of clips.entries()) {
    const src = await localInput(ctx, c, staging, i);
    ctx.log(
      `clip ${i + 1}/${clips.length}: ${c.source} from ${src.start.toFixed(3)} s for ${c.duration.toFixed(3)} s` +
        (src.audio ? ` (its audio rendition from ${src.audio.start.toFixed(3)} s)` : ''),
    );
    args.push(...src.inputArgs, '-ss', src.start.toFixed(3), '-t', c.duration.toFixed(3), '-i', src.file);
    const v = inputs++;
    let a = v;
    if (src.audio) {
      args.push(
        ...src.audio.inputArgs,
        '-ss',
        src.audio.start.toFixed(3),
        '-t',
        c.duration.toFixed(3),
        '-i',
        src.audio.file,
      );
      a = inputs++;
    }
    graph.push(
      `[${v}:v:0]setpts=PTS-STARTPTS,scale=${w}:${h}:force_original_aspect_ratio=decrease,` +
        `pad=${w}:${h}:(ow-iw)/2:(oh-ih)/2,setsar=1,fps=${fps},trim=duration=${c.duration.toFixed(3)},format=yuv420p[v${i}]`,
    );
    pads.push(`[v${i}]`);
    if (plan.has_audio) {
      graph.push(
        `[${a}:a:0]asetpts=PTS-STARTPTS,aresample=48000,aformat=sample_fmts=fltp:channel_layouts=stereo,atrim=duration=${c.duration.toFixed(3)}[a${i}]`,
      );
      pads.push(`[a${i}]`);
    }
  }
  graph.push(
    `${pads.join('')}concat=n=${clips.length}:v=1:a=${plan.has_audio ? 1 : 0}[v]${plan.has_audio ? '[a]' : ''}`,
  );
  const name = `${plan.height}p`;
  const joined = path.join(staging, `${name}.mp4`);
  await runFfmpeg(
    [
      ...args,
      '-filter_complex',
      graph.join(';'),
      '-map',
      '[v]',
      ...(plan.has_audio ? ['-map', '[a]'] : []),
      ...alignedX264Args(vbr, plan.segment_duration, fps),
      ...(plan.has_audio ? ['-c:a', 'aac', '-b:a', String(AUDIO_BITRATE)] : []),
      '-movflags',
      '+faststart',
      joined,
    ],
    {
      signal: ctx.signal,
      durationSeconds: plan.duration,
      onProgress: reportFfmpegProgress(ctx, { label: 'capture' }),
    },
  );
  for (let i = 0; i < clips.length; i++)
    for (const f of [
      `source_${i}.mp4`,
      `source_${i}.m3u8`,
      `source_${i}_audio.mp4`,
      `source_${i}_audio.m3u8`,
    ])
      await rm(path.join(staging, f), { force: true });
  const sidecar = await describeStaged(staging, name, joined);
  // FFmpeg exits 0 with a short file when a range holds no frames: check what was cut.
  const got = (await probeMedia(joined, { signal: ctx.signal })).durationSeconds;
  if (!(got >= plan.duration * 0.9))
    throw new PermanentTaskError(
      `the capture gave ${got.toFixed(3)} s of media instead of ${plan.duration.toFixed(3)} s`,
    );
  ctx.log(`captured ${clips.length} clip(s): ${got.toFixed(3)} s joined into ${name}`);
  return { ...sidecar, clips: clips.length };
}
