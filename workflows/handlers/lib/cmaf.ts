/**
 * CMAF packaging of vodstream: every track (each video rendition, the shared audio) is cut once
 * into fMP4 segments — `<track>/init.mp4` + `<track>/segment_NNNNN.m4s` — and both manifests are
 * written over the same files: HLS media playlists (`EXT-X-MAP`) with a master playlist, and a DASH
 * MPD (`SegmentTemplate` + `SegmentTimeline`, timing read from each fragment's `tfdt`/`trun`).
 * The `cenc` variant encrypts the segments with CENC `cenc` (AES-128-CTR) under one key per job.
 *
 * Layout in the output folder `<out>`:
 * ```
 * <out>/<id>_nodrm.m3u8, <id>_nodrm.mpd      clear CMAF
 * <out>/<id>_nodrm/<h>p/…, audio/…, subs/<lang>/subtitles.vtt + index.m3u8
 * <out>/<id>_cenc.m3u8, <id>_cenc.mpd, <id>_cenc/…   CENC CMAF
 * <out>/keys.json                             {"<kid hex>": "<key hex>"} (unless write_keys: false)
 * ```
 */
import { randomBytes } from 'node:crypto';
import { mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { runFfmpeg } from '../../../src/media/ffmpeg.js';
import { reportFfmpegProgress } from '../../../src/media/ffmpeg-progress.js';
import { writeMasterPlaylist, type MasterEntry, type MasterMedia } from '../../../src/media/hls-playlist.js';
import {
  avcCodecString,
  CLEARKEY_SYSTEM_ID,
  clearKeyPssh,
  encryptFragment,
  encryptInit,
  splitFragmented,
  type SplitMp4,
} from '../../../src/media/fmp4.js';
import type { HandlerContext } from '../../../src/workflows/types.js';
import {
  assetPaths,
  exists,
  listAssetFiles,
  writeFileAtomic,
  type RenditionSource,
  type VodPlan,
} from './vod.js';
import {
  measurePlaylist,
  writeSubtitleRendition,
  type StagedAudio,
  type StagedSubtitle,
} from './media-parts.js';

/** A CENC key of a job. The key itself goes only to `keys.json`, never to logs or outputs. */
export interface CencKey {
  kid: string;
  key: string;
}

/**
 * The `-movflags` of a CMAF video track as packaging cuts it: an empty `moov` and one `moof` per
 * key frame (one GOP = one segment). Encoders that write their output so spare the remux.
 */
export const FRAGMENTED_VIDEO_FLAGS = '+empty_moov+default_base_moof+frag_keyframe';

/** One track after cutting. */
interface Track {
  name: string;
  kind: 'video' | 'audio';
  split: SplitMp4;
  codecs: string;
  width?: number;
  height?: number;
  fps?: number | null;
}

/**
 * Fragments a staged track into a fragmented MP4 in `workAbs` (once per job; reused by every
 * variant) and splits it. Video fragments start at each key frame (one GOP = one segment); audio
 * fragments are cut every `segmentSeconds`. A video input already fragmented that way
 * (`fragmented`: vodstream's ladder encodes write {@link FRAGMENTED_VIDEO_FLAGS}) is split as it
 * is, without the remux.
 */
async function cutTrack(
  ctx: HandlerContext,
  input: string,
  kind: 'video' | 'audio',
  workAbs: string,
  name: string,
  segmentSeconds: number,
  durationSeconds: number,
  fragmented = false,
): Promise<SplitMp4> {
  if (fragmented) return splitFragmented(await readFile(input));
  const file = path.join(workAbs, `${name}.frag.mp4`);
  if (!(await exists(file))) {
    await mkdir(workAbs, { recursive: true });
    const tmp = `${file}.${process.pid}-${randomBytes(3).toString('hex')}.mp4`;
    await runFfmpeg(
      [
        '-i',
        input,
        '-map',
        kind === 'video' ? '0:v:0' : '0:a:0',
        '-c',
        'copy',
        '-f',
        'mp4',
        '-movflags',
        kind === 'video' ? FRAGMENTED_VIDEO_FLAGS : '+empty_moov+default_base_moof',
        ...(kind === 'audio' ? ['-frag_duration', String(Math.round(segmentSeconds * 1e6))] : []),
        tmp,
      ],
      {
        signal: ctx.signal,
        durationSeconds,
        onProgress: reportFfmpegProgress(ctx, { label: `cmaf ${name}` }),
      },
    );
    await rename(tmp, file);
  }
  return splitFragmented(await readFile(file));
}

/** Writes a track's segments and its HLS media playlist into `dir`. */
async function writeTrack(dir: string, track: Track, key: CencKey | null): Promise<void> {
  await rm(dir, { recursive: true, force: true });
  await mkdir(dir, { recursive: true });
  const k = key ? Buffer.from(key.key, 'hex') : null;
  await writeFile(
    path.join(dir, 'init.mp4'),
    key ? encryptInit(track.split.init, key.kid) : track.split.init,
  );
  const ts = track.split.timescale;
  const lines = ['#EXTM3U', '#EXT-X-VERSION:7'];
  const max = Math.max(...track.split.fragments.map((f) => f.duration / ts), 1);
  lines.push(
    `#EXT-X-TARGETDURATION:${Math.ceil(max - 1e-3)}`,
    '#EXT-X-MEDIA-SEQUENCE:0',
    '#EXT-X-PLAYLIST-TYPE:VOD',
    '#EXT-X-INDEPENDENT-SEGMENTS',
  );
  if (key) {
    const pssh = clearKeyPssh([key.kid]).toString('base64');
    lines.push(
      `#EXT-X-KEY:METHOD=SAMPLE-AES-CTR,KEYFORMAT="urn:uuid:${uuid(CLEARKEY_SYSTEM_ID)}",KEYFORMATVERSIONS="1",URI="data:text/plain;base64,${pssh}"`,
    );
  }
  lines.push('#EXT-X-MAP:URI="init.mp4"');
  for (const [i, f] of track.split.fragments.entries()) {
    const name = `segment_${String(i).padStart(5, '0')}.m4s`;
    await writeFile(path.join(dir, name), k ? encryptFragment(f.bytes, k, track.kind === 'video') : f.bytes);
    lines.push(`#EXTINF:${(f.duration / ts).toFixed(6)},`, name);
  }
  lines.push('#EXT-X-ENDLIST', '');
  await writeFile(path.join(dir, 'index.m3u8'), lines.join('\n'));
}

function uuid(hex: string): string {
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

function isoDuration(seconds: number): string {
  return `PT${seconds.toFixed(3)}S`;
}

function xml(v: string | number): string {
  return String(v).replace(/&/g, '&amp;').replace(/"/g, '&quot;').replace(/</g, '&lt;');
}

/** The `SegmentTimeline` of a track: runs of equal durations as `<S t d r>`. */
function timeline(split: SplitMp4): string {
  const runs: { t: number; d: number; r: number }[] = [];
  for (const f of split.fragments) {
    const last = runs.at(-1);
    if (last && last.d === f.duration && last.t + last.d * (last.r + 1) === f.start) last.r += 1;
    else runs.push({ t: f.start, d: f.duration, r: 0 });
  }
  return runs.map((r) => `<S t="${r.t}" d="${r.d}"${r.r ? ` r="${r.r}"` : ''}/>`).join('');
}

/** The DASH MPD of a variant (ISO/IEC 23009-1, isoff-live profile; ClearKey per DASH-IF IOP). */
function writeMpd(
  base: string,
  video: (Track & { bandwidth: number })[],
  audio: (Track & { bandwidth: number }) | null,
  subs: { id: string; language: string; name: string; vtt: string }[],
  durationSeconds: number,
  segmentSeconds: number,
  key: CencKey | null,
): string {
  const protection = key
    ? [
        `<ContentProtection schemeIdUri="urn:mpeg:dash:mp4protection:2011" value="cenc" cenc:default_KID="${uuid(key.kid)}"/>`,
        `<ContentProtection schemeIdUri="urn:uuid:${uuid(CLEARKEY_SYSTEM_ID)}" value="ClearKey1.0"><cenc:pssh>${clearKeyPssh([key.kid]).toString('base64')}</cenc:pssh></ContentProtection>`,
        `<ContentProtection schemeIdUri="urn:uuid:e2719d58-a985-b3c9-781a-b030af78d30e" value="ClearKey1.0"/>`,
      ].join('\n      ')
    : '';
  const rep = (t: Track & { bandwidth: number }): string => {
    const attrs =
      t.kind === 'video'
        ? ` width="${t.width}" height="${t.height}"${t.fps ? ` frameRate="${fpsText(t.fps)}"` : ''} sar="1:1"`
        : ' audioSamplingRate="48000"';
    return [
      `      <Representation id="${xml(t.name)}" bandwidth="${t.bandwidth}" codecs="${xml(t.codecs)}"${attrs}>`,
      ...(t.kind === 'audio'
        ? [
            '        <AudioChannelConfiguration schemeIdUri="urn:mpeg:dash:23003:3:audio_channel_configuration:2011" value="2"/>',
          ]
        : []),
      `        <SegmentTemplate timescale="${t.split.timescale}" initialization="${xml(t.name)}/init.mp4" media="${xml(t.name)}/segment_$Number%05d$.m4s" startNumber="0">`,
      `          <SegmentTimeline>${timeline(t.split)}</SegmentTimeline>`,
      '        </SegmentTemplate>',
      '      </Representation>',
    ].join('\n');
  };
  const sets: string[] = [];
  let id = 0;
  if (video.length) {
    const maxW = Math.max(...video.map((v) => v.width ?? 0));
    const maxH = Math.max(...video.map((v) => v.height ?? 0));
    sets.push(
      [
        `    <AdaptationSet id="${id++}" contentType="video" mimeType="video/mp4" segmentAlignment="true" startWithSAP="1" maxWidth="${maxW}" maxHeight="${maxH}">`,
        ...(protection ? [`      ${protection}`] : []),
        ...video.map(rep),
        '    </AdaptationSet>',
      ].join('\n'),
    );
  }
  if (audio)
    sets.push(
      [
        `    <AdaptationSet id="${id++}" contentType="audio" mimeType="audio/mp4" lang="und" segmentAlignment="true" startWithSAP="1">`,
        ...(protection ? [`      ${protection}`] : []),
        rep(audio),
        '    </AdaptationSet>',
      ].join('\n'),
    );
  for (const s of subs)
    sets.push(
      [
        `    <AdaptationSet id="${id++}" contentType="text" mimeType="text/vtt" lang="${xml(s.language)}">`,
        `      <Label>${xml(s.name)}</Label>`,
        `      <Representation id="sub_${xml(s.id)}" bandwidth="256">`,
        `        <BaseURL>subs/${xml(s.id)}/subtitles.vtt</BaseURL>`,
        '      </Representation>',
        '    </AdaptationSet>',
      ].join('\n'),
    );
  return [
    '<?xml version="1.0" encoding="UTF-8"?>',
    `<MPD xmlns="urn:mpeg:dash:schema:mpd:2011" xmlns:cenc="urn:mpeg:cenc:2013" profiles="urn:mpeg:dash:profile:isoff-live:2011" type="static" mediaPresentationDuration="${isoDuration(durationSeconds)}" minBufferTime="${isoDuration(segmentSeconds)}">`,
    `  <Period id="0" start="PT0S">`,
    `    <BaseURL>${xml(base)}/</BaseURL>`,
    ...sets,
    '  </Period>',
    '</MPD>',
    '',
  ].join('\n');
}

function fpsText(fps: number): string {
  const n = Math.round(fps * 1001);
  if (Math.abs(fps - Math.round(fps)) < 0.001) return String(Math.round(fps));
  return n % 1000 === 0 ? `${n}/1001` : fps.toFixed(3);
}

/** Makes a job's CENC key (random 16-byte KID and key). */
export function newCencKey(): CencKey {
  return { kid: randomBytes(16).toString('hex'), key: randomBytes(16).toString('hex') };
}

/**
 * Packages the staged tracks as one CMAF variant (`clear` or `cenc`) with the manifests in
 * `plan.formats`.
 * @returns the absolute paths of the asset's playlists and manifests, and the key id (cenc).
 */
export async function packageCmaf(
  ctx: HandlerContext,
  plan: VodPlan,
  variant: 'clear' | 'cenc',
  renditions: RenditionSource[],
  audio: StagedAudio | null,
  subtitles: StagedSubtitle[],
  key: CencKey | null,
): Promise<string[]> {
  const out = await ctx.storage.resolve(plan.output_folder);
  const paths = assetPaths(out, plan.content_id);
  const dir = variant === 'cenc' ? paths.cencDir : paths.clearDir;
  const base = path.basename(dir);
  const work = path.join(await ctx.storage.resolve(plan.staging), 'cmaf');
  const formats = plan.formats ?? ['hls'];
  await rm(dir, { recursive: true, force: true });
  await mkdir(dir, { recursive: true });
  const video: (Track & { bandwidth: number; average: number })[] = [];
  for (const r of renditions) {
    const split = await cutTrack(
      ctx,
      r.input,
      'video',
      work,
      r.name,
      plan.segment_duration,
      plan.duration,
      r.fragmented === true,
    );
    const t: Track = {
      name: r.name,
      kind: 'video',
      split,
      codecs: avcCodecString(split.init) ?? r.codecs.split(',')[0]!,
      width: r.width,
      height: r.height,
      fps: r.fps,
    };
    await writeTrack(path.join(dir, r.name), t, key);
    const m = await measurePlaylist(path.join(dir, r.name, 'index.m3u8'));
    video.push({ ...t, bandwidth: m.peak, average: m.average });
  }
  let audioTrack: (Track & { bandwidth: number; average: number }) | null = null;
  if (audio) {
    const split = await cutTrack(
      ctx,
      audio.input,
      'audio',
      work,
      'audio',
      plan.segment_duration,
      plan.duration,
    );
    const t: Track = { name: 'audio', kind: 'audio', split, codecs: audio.codecs };
    await writeTrack(path.join(dir, 'audio'), t, key);
    const m = await measurePlaylist(path.join(dir, 'audio', 'index.m3u8'));
    audioTrack = { ...t, bandwidth: m.peak, average: m.average };
  }
  const media: MasterMedia[] = [];
  if (audioTrack)
    media.push({
      type: 'AUDIO',
      groupId: 'audio',
      name: 'audio',
      uri: `${base}/audio/index.m3u8`,
      default: true,
    });
  for (const [i, s] of subtitles.entries())
    media.push({
      type: 'SUBTITLES',
      groupId: 'subs',
      name: s.name,
      language: s.language,
      default: i === 0,
      uri: `${base}/${await writeSubtitleRendition(dir, s, plan.duration, null)}`,
    });
  const written: string[] = [];
  if (formats.includes('hls')) {
    const entries: MasterEntry[] = video.map((v) => ({
      uri: `${base}/${v.name}/index.m3u8`,
      bandwidth: v.bandwidth + (audioTrack?.bandwidth ?? 0),
      averageBandwidth: v.average + (audioTrack?.average ?? 0),
      width: v.width ?? 0,
      height: v.height ?? 0,
      codecs: audioTrack ? `${v.codecs},${audioTrack.codecs}` : v.codecs,
      frameRate: v.fps ?? null,
    }));
    const master = variant === 'cenc' ? paths.cenc : paths.clear;
    await writeFileAtomic(
      master,
      writeMasterPlaylist(entries, [`task-engine-variant: ${variant}`], {
        version: 7,
        media,
        independentSegments: true,
      }),
    );
    written.push(master);
  }
  if (formats.includes('dash')) {
    const mpd = variant === 'cenc' ? paths.cencMpd : paths.clearMpd;
    await writeFileAtomic(
      mpd,
      writeMpd(base, video, audioTrack, subtitles, plan.duration, plan.segment_duration, key),
    );
    written.push(mpd);
  }
  if (!formats.includes('hls')) {
    // DASH only: the HLS media playlists are not wanted.
    for (const t of [...video, ...(audioTrack ? [audioTrack] : [])])
      await rm(path.join(dir, t.name, 'index.m3u8'), { force: true });
    for (const s of subtitles) await rm(path.join(dir, 'subs', s.id, 'index.m3u8'), { force: true });
  }
  ctx.log(
    `${variant === 'cenc' ? `CENC (key id ${key?.kid})` : 'clear'} CMAF written: ${video.length} video rendition(s)` +
      `${audioTrack ? ' + audio' : ''}${subtitles.length ? ` + ${subtitles.length} subtitle track(s)` : ''}, ` +
      `${video[0]?.split.fragments.length ?? 0} segments each, manifests ${written.map((w) => path.basename(w)).join(', ')}`,
  );
  return listAssetFiles(out, plan.content_id);
}
