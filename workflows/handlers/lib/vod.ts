/**
 * The VOD asset shared by vodstream, vodcapture, drmswitch and createmp4: how renditions are
 * encoded, how HLS variants are packaged (clear and AES-128), and the manifest convention.
 *
 * Layout of an asset `<content_id>` in its output folder `<out>` (client-relative):
 * ```
 * <out>/<content_id>.m3u8           the ACTIVE master playlist: a byte copy of one of the two below
 * <out>/<content_id>_nodrm.m3u8     clear master      -> <content_id>_nodrm/<h>p/index.m3u8 + segment_NNNNN.ts
 *                                   vodstream ladders: + <content_id>_nodrm/audio/index.m3u8, the audio
 *                                   group (EXT-X-MEDIA TYPE=AUDIO) the video-only renditions name
 * <out>/<content_id>_aes.m3u8       AES-128 master    -> <content_id>_aes/<h>p/index.m3u8 + encrypted segments
 * <out>/<content_id>_aes/aes.key    the 16-byte AES key; aes.keyinfo beside it (FFmpeg key info file)
 * <out>/<content_id>.jpg            thumbnail (create_thumbnail)
 * <out>/<content_id>.mp4            MP4 (generate_mp4; name from mp4_filename)
 * <out>/.staging-<job id>/          rendition MP4s while the job runs; removed by `finalize`
 * ```
 * Which variant is active is read by comparing the active master's bytes with the two variants;
 * each master also carries a `# task-engine-variant: clear|aes` comment line (players ignore it).
 */
import { randomBytes } from 'node:crypto';
import { copyFile, mkdir, readdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { PermanentTaskError } from '../../../src/errors/task-errors.js';
import { runFfmpeg } from '../../../src/media/ffmpeg.js';
import { reportFfmpegProgress } from '../../../src/media/ffmpeg-progress.js';
import { writeMasterPlaylist, type MasterEntry, type MasterMedia } from '../../../src/media/hls-playlist.js';
import { probeMedia, rfc6381Codec } from '../../../src/media/probe.js';
import type { HandlerContext } from '../../../src/workflows/types.js';
import { alignedX264Args, type Rung } from './ladder.js';
import {
  measurePlaylist,
  tsStartPts,
  writeSubtitleRendition,
  type StagedAudio,
  type StagedSubtitle,
  type SubtitleTrack,
} from './media-parts.js';

export type { SubtitleTrack } from './media-parts.js';

/** A variant of the asset. */
export type Variant = 'clear' | 'aes';

/** Every variant vodstream may package: `cenc` is the CENC-encrypted CMAF variant. */
export type PackagedVariant = Variant | 'cenc';

/** The ladder slots a source may be encoded to, largest first. */
export const LADDER = [1080, 720, 480, 360] as const;

/** Target video bit rate (bits/s) for a rendition height. */
export function videoBitrateFor(height: number): number {
  if (height >= 1080) return 5_000_000;
  if (height >= 720) return 2_800_000;
  if (height >= 480) return 1_400_000;
  if (height >= 360) return 800_000;
  return Math.max(200_000, Math.round((800_000 * height) / 360));
}

/** Audio bit rate of every rendition, bits/s. */
export const AUDIO_BITRATE = 128_000;

/**
 * Picks the renditions for a source of `sourceHeight`: each ladder height no larger than the
 * source; when the source is smaller than the smallest slot, one rendition at the source height
 * (rounded down to even) in the smallest slot. Keys are `r1080`, `r720`, `r480`, `r360`; null = none.
 */
export function chooseLadder(sourceHeight: number): Record<string, number | null> {
  const out: Record<string, number | null> = {};
  for (const h of LADDER) out[`r${h}`] = h <= sourceHeight ? h : null;
  const smallest = LADDER[LADDER.length - 1]!;
  if (sourceHeight < smallest) out[`r${smallest}`] = Math.max(2, sourceHeight - (sourceHeight % 2));
  return out;
}

/** What the plan task (vodstream's `probe`, vodcapture's `prepare`) hands to the later tasks. */
export interface VodPlan {
  content_id: string;
  /** Client-relative source file (vodstream), or null (vodcapture: made by the capture task). */
  source: string | null;
  /** Client-relative output folder. */
  output_folder: string;
  /** Client-relative staging folder for rendition MP4s. */
  staging: string;
  duration: number;
  width: number;
  height: number;
  fps: number | null;
  has_audio: boolean;
  ladder: Record<string, number | null>;
  /** vodstream: the renditions to encode, largest first (see lib/ladder.ts). */
  rungs?: Rung[];
  /** vodstream: the rendition task slots `r1` … `r6` (null = skipped). */
  slots?: Record<string, Rung | Rung[] | null>;
  /** vodstream: manifests to write over the segments (default `["hls"]`). */
  formats?: ('hls' | 'dash')[];
  /** vodstream: `ts` (MPEG-TS, HLS only) or `cmaf` (fMP4 segments for HLS and DASH). Default `ts`. */
  segment_format?: 'ts' | 'cmaf';
  /** vodstream: audio is encoded once by the `audio` task and shared by every rendition. */
  shared_audio?: boolean;
  /** vodstream: SRT files made into WebVTT subtitle renditions. */
  subtitles?: SubtitleTrack[];
  /** vodstream: write `keys.json` beside a CENC variant (default true). */
  write_keys?: boolean;
  drm: { clear: boolean; aes: boolean; cenc?: boolean; active: PackagedVariant };
  /** URI written into AES playlists for the key; null = the relative `../aes.key`. */
  aes_key_url: string | null;
  segment_duration: number;
  create_thumbnail: boolean;
  thumbnail_time: number;
  generate_mp4: boolean;
  mp4_filename: string;
  delete_source: boolean;
}

/** Reads the plan handed over in a task's `with: { plan: "{{ tasks.<plan task>.output }}" }`. */
export function readPlan(ctx: HandlerContext): VodPlan {
  const plan = ctx.inputs.plan as VodPlan | undefined;
  if (!plan || typeof plan !== 'object' || typeof plan.output_folder !== 'string')
    throw new PermanentTaskError('task input "plan" is missing: the workflow must pass the plan task output');
  return plan;
}

/** Absolute paths of an asset's files. */
export interface AssetPaths {
  out: string;
  active: string;
  clear: string;
  aes: string;
  clearDir: string;
  aesDir: string;
  key: string;
  keyinfo: string;
  /** CMAF CENC master, its folder, the DASH manifests and the key file. */
  cenc: string;
  cencDir: string;
  activeMpd: string;
  clearMpd: string;
  cencMpd: string;
  keysJson: string;
}

/** The paths of asset `contentId` in absolute folder `out` (see the module layout). */
export function assetPaths(out: string, contentId: string): AssetPaths {
  return {
    out,
    active: path.join(out, `${contentId}.m3u8`),
    clear: path.join(out, `${contentId}_nodrm.m3u8`),
    aes: path.join(out, `${contentId}_aes.m3u8`),
    clearDir: path.join(out, `${contentId}_nodrm`),
    aesDir: path.join(out, `${contentId}_aes`),
    key: path.join(out, `${contentId}_aes`, 'aes.key'),
    keyinfo: path.join(out, `${contentId}_aes`, 'aes.keyinfo'),
    cenc: path.join(out, `${contentId}_cenc.m3u8`),
    cencDir: path.join(out, `${contentId}_cenc`),
    activeMpd: path.join(out, `${contentId}.mpd`),
    clearMpd: path.join(out, `${contentId}_nodrm.mpd`),
    cencMpd: path.join(out, `${contentId}_cenc.mpd`),
    keysJson: path.join(out, 'keys.json'),
  };
}

/** A rendition ready to package: an input FFmpeg can read with `-c copy`. */
export interface RenditionSource {
  /** Folder name in the variant, e.g. `720p`. */
  name: string;
  /** Absolute input path (an MP4 or an HLS media playlist). */
  input: string;
  /** Extra input options (e.g. `-allowed_extensions ALL` for an AES playlist). */
  inputArgs: string[];
  width: number;
  height: number;
  /** Peak bits per second for BANDWIDTH. */
  bandwidth: number;
  codecs: string;
  fps: number | null;
  /**
   * True when `input` is already the single-track fragmented MP4 that CMAF packaging cuts into
   * segments (a fragment per key frame, as vodstream's ladder encodes write it): packaging splits
   * it as it is instead of remuxing it first. Absent for older staged files and other inputs.
   */
  fragmented?: boolean;
}

/** The sidecar JSON written beside each staged rendition MP4. */
type RenditionSidecar = Omit<RenditionSource, 'input' | 'inputArgs'> & { file: string };

export async function exists(p: string): Promise<boolean> {
  try {
    await stat(p);
    return true;
  } catch {
    return false;
  }
}

/**
 * Encodes `sourceAbs` to an H.264/AAC MP4 of `height` lines into the staging folder, with the
 * encoder arguments of {@link alignedX264Args} (key frames every `segment_duration` seconds so every
 * rendition's segments line up) at {@link videoBitrateFor} the height.
 * @returns the sidecar describing it.
 */
export async function encodeRendition(
  ctx: HandlerContext,
  plan: VodPlan,
  sourceAbs: string,
  height: number,
): Promise<RenditionSidecar> {
  const staging = await ctx.storage.resolve(plan.staging);
  await mkdir(staging, { recursive: true });
  const name = `${height}p`;
  const file = path.join(staging, `${name}.mp4`);
  const vbr = videoBitrateFor(height);
  const seg = plan.segment_duration;
  const args = [
    '-i',
    sourceAbs,
    '-map',
    '0:v:0',
    ...(plan.has_audio ? ['-map', '0:a:0'] : []),
    '-vf',
    `scale=-2:${height}`,
    ...alignedX264Args(vbr, seg, plan.fps),
    ...(plan.has_audio ? ['-c:a', 'aac', '-b:a', String(AUDIO_BITRATE), '-ac', '2', '-ar', '48000'] : []),
    '-movflags',
    '+faststart',
    file,
  ];
  ctx.log(`encoding ${name} (${Math.round(vbr / 1000)} kb/s video) from ${plan.source ?? 'the capture'}`);
  await runFfmpeg(args, {
    signal: ctx.signal,
    durationSeconds: plan.duration,
    onProgress: reportFfmpegProgress(ctx, { label: `rendition ${name}` }),
  });
  return describeStaged(staging, name, file);
}

/** Probes a staged rendition MP4 and writes its sidecar. */
export async function describeStaged(staging: string, name: string, file: string): Promise<RenditionSidecar> {
  const info = await probeMedia(file);
  const v = info.video;
  if (!v) throw new Error(`rendition ${name} has no video stream`);
  const codecs = [rfc6381Codec(v), info.audio ? rfc6381Codec(info.audio) : null].filter(Boolean).join(',');
  const measured = info.bitRate ?? videoBitrateFor(v.height ?? 0) + (info.audio ? AUDIO_BITRATE : 0);
  const sidecar: RenditionSidecar = {
    name,
    file: path.basename(file),
    width: v.width ?? 0,
    height: v.height ?? 0,
    // Peak is above the average; 1.2x the measured average is a usual BANDWIDTH estimate.
    bandwidth: Math.round(measured * 1.2),
    codecs,
    fps: v.fps ?? null,
  };
  await writeFile(path.join(staging, `${name}.json`), JSON.stringify(sidecar, null, 2));
  return sidecar;
}

/** The staged renditions (largest first). @throws PermanentTaskError when there are none. */
export async function stagedRenditions(ctx: HandlerContext, plan: VodPlan): Promise<RenditionSource[]> {
  const staging = await ctx.storage.resolve(plan.staging);
  const names = (await readdir(staging).catch(() => [] as string[])).filter((f) => f.endsWith('.json'));
  const out: RenditionSource[] = [];
  for (const n of names) {
    const s = JSON.parse(await readFile(path.join(staging, n), 'utf8')) as RenditionSidecar;
    out.push({ ...s, input: path.join(staging, s.file), inputArgs: [] });
  }
  if (out.length === 0) throw new PermanentTaskError(`no renditions were made in ${plan.staging}`);
  return out.sort((a, b) => b.height - a.height);
}

/**
 * Packages `renditions` as one HLS variant of the asset: per rendition a media playlist and
 * MPEG-TS segments of `segmentSeconds`, then the variant's master playlist. With `extras.audio` (the
 * shared audio of a ladder) the audio is its own audio-only rendition `audio/index.m3u8` in an
 * `EXT-X-MEDIA TYPE=AUDIO` group that every variant names (`AUDIO="audio"`), and the video
 * renditions carry video only; without it each rendition keeps the audio of its input. For `aes`, a key is
 * created when `aes.key` does not exist yet (kept otherwise, so a rebuilt variant stays playable
 * with keys already handed out), and segments are AES-128-CBC encrypted (IV = media sequence number,
 * the HLS default).
 * @returns client-relative paths of the playlists written.
 */
export async function packageVariant(
  ctx: HandlerContext,
  outAbs: string,
  contentId: string,
  variant: Variant,
  renditions: RenditionSource[],
  segmentSeconds: number,
  durationSeconds: number,
  keyUrl: string | null,
  extras: { audio?: StagedAudio | null; subtitles?: StagedSubtitle[] } = {},
): Promise<string[]> {
  const paths = assetPaths(outAbs, contentId);
  const dir = variant === 'aes' ? paths.aesDir : paths.clearDir;
  // Rebuild from scratch, but keep an existing AES key.
  let keptKey: Buffer | null = null;
  if (variant === 'aes' && (await exists(paths.key))) keptKey = await readFile(paths.key);
  await rm(dir, { recursive: true, force: true });
  await mkdir(dir, { recursive: true });
  if (variant === 'aes') {
    await writeFile(paths.key, keptKey ?? randomBytes(16), { mode: 0o600 });
    // Line 1: the key URI written into playlists; line 2: the key file FFmpeg reads (relative to
    // its working directory, the variant folder, so no absolute server path is stored).
    await writeFile(paths.keyinfo, `${keyUrl ?? '../aes.key'}\naes.key\n`);
  }
  const audio = extras.audio ?? null;
  const hlsArgs = (rdir: string): string[] => [
    '-c',
    'copy',
    '-f',
    'hls',
    '-hls_time',
    String(segmentSeconds),
    '-hls_playlist_type',
    'vod',
    '-hls_list_size',
    '0',
    '-hls_segment_filename',
    path.join(rdir, 'segment_%05d.ts'),
    ...(variant === 'aes' ? ['-hls_key_info_file', paths.keyinfo] : []),
    path.join(rdir, 'index.m3u8'),
  ];
  const parts = renditions.length + (audio ? 1 : 0);
  // The shared audio is its own audio-only rendition (EXT-X-MEDIA TYPE=AUDIO), as in CMAF variants;
  // the video renditions then carry video only.
  let audioMeasured: { peak: number; average: number } | null = null;
  if (audio) {
    const adir = path.join(dir, 'audio');
    await mkdir(adir, { recursive: true });
    await runFfmpeg(
      [...(audio.inputArgs ?? []), '-i', audio.input, '-map', '0:a:0', '-vn', ...hlsArgs(adir)],
      {
        signal: ctx.signal,
        cwd: variant === 'aes' ? dir : undefined,
        durationSeconds,
        onProgress: reportFfmpegProgress(ctx, {
          label: `packaging ${variant} audio (1/${parts})`,
          part: { index: 0, count: parts },
        }),
      },
    );
    audioMeasured = await measurePlaylist(path.join(adir, 'index.m3u8'));
  }
  const entries: MasterEntry[] = [];
  let n = audio ? 1 : 0;
  for (const r of renditions) {
    n += 1;
    const rdir = path.join(dir, r.name);
    await mkdir(rdir, { recursive: true });
    const playlist = path.join(rdir, 'index.m3u8');
    const args = [
      ...r.inputArgs,
      '-i',
      r.input,
      ...(audio ? ['-map', '0:v:0', '-an'] : ['-map', '0']),
      ...hlsArgs(rdir),
    ];
    await runFfmpeg(args, {
      signal: ctx.signal,
      cwd: variant === 'aes' ? dir : undefined,
      durationSeconds,
      onProgress: reportFfmpegProgress(ctx, {
        label: `packaging ${variant} ${r.name} (${n}/${parts})`,
        part: { index: n - 1, count: parts },
      }),
    });
    const measured = await measurePlaylist(playlist);
    entries.push({
      uri: `${path.basename(dir)}/${r.name}/index.m3u8`,
      bandwidth: (measured.peak || r.bandwidth) + (audioMeasured?.peak ?? 0),
      averageBandwidth: measured.average ? measured.average + (audioMeasured?.average ?? 0) : null,
      width: r.width,
      height: r.height,
      codecs: audio ? `${r.codecs.split(',')[0]},${audio.codecs}` : r.codecs,
      frameRate: r.fps,
    });
  }
  const media: MasterMedia[] = [];
  if (audio)
    media.push({
      type: 'AUDIO',
      groupId: 'audio',
      name: 'audio',
      uri: `${path.basename(dir)}/audio/index.m3u8`,
      default: true,
    });
  const subs = extras.subtitles ?? [];
  if (subs.length) {
    const first = renditions[0]!;
    const pts = await tsStartPts(path.join(dir, first.name, 'segment_00000.ts'));
    for (const [i, sub] of subs.entries())
      media.push({
        type: 'SUBTITLES',
        groupId: 'subs',
        name: sub.name,
        language: sub.language,
        default: i === 0,
        uri: `${path.basename(dir)}/${await writeSubtitleRendition(dir, sub, durationSeconds, pts)}`,
      });
  }
  const master = variant === 'aes' ? paths.aes : paths.clear;
  await writeFileAtomic(
    master,
    writeMasterPlaylist(entries, [`task-engine-variant: ${variant}`], {
      media,
      version: 3,
      independentSegments: true,
    }),
  );
  ctx.log(
    `${variant === 'aes' ? 'AES-128' : 'clear'} HLS written: ${path.basename(master)} with ${entries.length} rendition(s)`,
  );
  return listAssetFiles(outAbs, contentId);
}

/** Writes a file through a temporary name and a rename, so readers never see half a playlist. */
export async function writeFileAtomic(file: string, data: string | Buffer): Promise<void> {
  const tmp = `${file}.tmp-${process.pid}-${randomBytes(3).toString('hex')}`;
  await writeFile(tmp, data);
  await rename(tmp, file);
}

/** Which variant the active master is a copy of, or null (no active master / matches neither). */
export async function activeVariant(paths: AssetPaths): Promise<Variant | null> {
  if (!(await exists(paths.active))) return null;
  const active = await readFile(paths.active);
  for (const [v, p] of [
    ['clear', paths.clear],
    ['aes', paths.aes],
  ] as const) {
    if ((await exists(p)) && active.equals(await readFile(p))) return v;
  }
  return null;
}

/**
 * Makes `variant` the active master (copy through a temporary file and rename); for a CMAF
 * variant with a DASH manifest, its MPD becomes the active `<content_id>.mpd` the same way.
 */
export async function activate(paths: AssetPaths, variant: PackagedVariant): Promise<void> {
  const from = variant === 'aes' ? paths.aes : variant === 'cenc' ? paths.cenc : paths.clear;
  const mpd = variant === 'cenc' ? paths.cencMpd : variant === 'clear' ? paths.clearMpd : null;
  const hasHls = await exists(from);
  const hasMpd = mpd !== null && (await exists(mpd));
  if (!hasHls && !hasMpd)
    throw new PermanentTaskError(`cannot activate ${variant}: ${path.basename(from)} does not exist`);
  for (const [src, dst] of [
    [hasHls ? from : null, paths.active],
    [hasMpd ? mpd : null, paths.activeMpd],
  ] as const) {
    if (!src) continue;
    const tmp = `${dst}.tmp-${process.pid}`;
    await copyFile(src, tmp);
    await rename(tmp, dst);
  }
}

async function walk(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const e of await readdir(dir, { withFileTypes: true }).catch(() => [])) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) out.push(...(await walk(p)));
    else out.push(p);
  }
  return out;
}

/**
 * The asset's files for callbacks, absolute: masters, media playlists and the key info — segments
 * are left out (the media playlists list them) so a long asset's callback stays small.
 */
export async function listAssetFiles(outAbs: string, contentId: string): Promise<string[]> {
  const p = assetPaths(outAbs, contentId);
  const files: string[] = [];
  for (const f of [p.active, p.clear, p.aes, p.cenc, p.activeMpd, p.clearMpd, p.cencMpd])
    if (await exists(f)) files.push(f);
  for (const d of [p.clearDir, p.aesDir, p.cencDir])
    files.push(...(await walk(d)).filter((f) => f.endsWith('.m3u8') || f.endsWith('.vtt')).sort());
  return files;
}

/** Every file under a folder, absolute (for listings of the demo and tests). */
export async function listTree(dir: string): Promise<string[]> {
  return (await walk(dir)).sort();
}

/** Sums the sizes of files, bytes. */
export async function totalSize(files: string[]): Promise<number> {
  let n = 0;
  for (const f of files) n += (await stat(f).catch(() => ({ size: 0 }))).size;
  return n;
}

/** Removes a staging folder (never the output folder itself). */
export async function removeStaging(ctx: HandlerContext, plan: VodPlan): Promise<void> {
  if (!path.posix.basename(plan.staging).startsWith('.staging-')) return;
  await rm(await ctx.storage.resolve(plan.staging), { recursive: true, force: true });
}
