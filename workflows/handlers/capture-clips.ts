/**
 * vodcapture `capture` (queue `capture`): cuts every clip frame-accurately and joins them in one
 * FFmpeg run (concat filter) to one common size, frame rate and audio format — the staged rendition
 * the packaging and MP4 tasks read. Inputs: `plan` (the prepare output, with `clips`).
 *
 * HLS sources are first copied (no re-encode) to a local MP4: only the segments overlapping the
 * clip for a remote playlist. Cutting then seeks in that file; FFmpeg's HLS and MPEG-TS seeking
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
import { AUDIO_BITRATE, describeStaged, readPlan, videoBitrateFor } from './lib/vod.js';

/** A clip's input as a local file, and where the clip starts in it. */
async function localInput(
  ctx: HandlerContext,
  c: CaptureClip,
  staging: string,
  n: number,
): Promise<{ file: string; inputArgs: string[]; start: number }> {
  const isUrl = /^https?:/i.test(c.input);
  const isPlaylist = isUrl || c.input.toLowerCase().endsWith('.m3u8');
  if (!isPlaylist) return { file: c.input, inputArgs: c.inputArgs, start: c.start };
  let input = c.input;
  let start = c.start;
  let inputArgs = c.inputArgs;
  if (isUrl) {
    const { url, playlist } = await loadMediaPlaylist(c.input, { signal: ctx.signal, fetch: ctx.fetch });
    const end = c.start + c.duration;
    const picked = playlist.segments.filter(
      (s) => s.startSeconds + s.durationSeconds > c.start && s.startSeconds < end,
    );
    if (!playlist.encrypted && picked.length > 0) {
      // A local playlist of just the segments the clip needs, pointing at the remote segments.
      const sub = path.join(staging, `source_${n}.m3u8`);
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
  const file = path.join(staging, `source_${n}.mp4`);
  await runFfmpeg(
    [
      ...inputArgs,
      '-i',
      input,
      '-map',
      '0:v:0',
      '-map',
      '0:a:0?',
      '-c',
      'copy',
      '-bsf:a',
      'aac_adtstoasc',
      file,
    ],
    {
      signal: ctx.signal,
    },
  );
  return { file, inputArgs: [], start };
}

/** @returns the staged rendition's description and the clip count. */
export default async function captureClips(ctx: HandlerContext): Promise<unknown> {
  const plan = readPlan(ctx) as ReturnType<typeof readPlan> & { clips?: CaptureClip[] };
  const clips = plan.clips ?? [];
  if (clips.length === 0) throw new PermanentTaskError('the plan lists no clips');
  const staging = await ctx.storage.resolve(plan.staging);
  await rm(staging, { recursive: true, force: true });
  await mkdir(staging, { recursive: true });
  const fps = plan.fps && plan.fps > 0 && plan.fps <= 120 ? plan.fps : 25;
  const vbr = videoBitrateFor(plan.height);
  const { width: w, height: h } = plan;
  const args: string[] = [];
  const graph: string[] = [];
  const pads: string[] = [];
  for (const [i, c] of clips.entries()) {
    const src = await localInput(ctx, c, staging, i);
    ctx.log(
      `clip ${i + 1}/${clips.length}: ${c.source} from ${src.start.toFixed(3)} s for ${c.duration.toFixed(3)} s`,
    );
    args.push(...src.inputArgs, '-ss', src.start.toFixed(3), '-t', c.duration.toFixed(3), '-i', src.file);
    graph.push(
      `[${i}:v:0]setpts=PTS-STARTPTS,scale=${w}:${h}:force_original_aspect_ratio=decrease,` +
        `pad=${w}:${h}:(ow-iw)/2:(oh-ih)/2,setsar=1,fps=${fps},trim=duration=${c.duration.toFixed(3)},format=yuv420p[v${i}]`,
    );
    pads.push(`[v${i}]`);
    if (plan.has_audio) {
      graph.push(
        `[${i}:a:0]asetpts=PTS-STARTPTS,aresample=48000,aformat=sample_fmts=fltp:channel_layouts=stereo,atrim=duration=${c.duration.toFixed(3)}[a${i}]`,
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
      '-c:v',
      'libx264',
      '-preset',
      'veryfast',
      '-profile:v',
      'high',
      '-b:v',
      String(vbr),
      '-force_key_frames',
      `expr:gte(t,n_forced*${plan.segment_duration})`,
      '-sc_threshold',
      '0',
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
    for (const f of [`source_${i}.mp4`, `source_${i}.m3u8`]) await rm(path.join(staging, f), { force: true });
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
