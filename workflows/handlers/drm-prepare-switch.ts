/**
 * drmswitch `prepare_switch`: builds the target variant when it is missing, by repackaging the other
 * variant's renditions without re-encoding (AES segments are decrypted with their key on the way).
 * Inputs: `state` (the get_filenames output).
 */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { PermanentTaskError } from '../../src/errors/task-errors.js';
import { parsePlaylist, variantAudioUri } from '../../src/media/hls-playlist.js';
import type { HandlerContext } from '../../src/workflows/types.js';
import { readState, switchTarget } from './lib/drm-switch.js';
import { optString, rel } from './lib/params.js';
import type { StagedAudio, StagedSubtitle } from './lib/media-parts.js';
import { packageVariant, type RenditionSource } from './lib/vod.js';

/** @returns `{built, files}`. */
export default async function prepareSwitch(ctx: HandlerContext): Promise<unknown> {
  const state = readState(ctx);
  const { paths } = await switchTarget(ctx);
  const has = state.target === 'aes' ? state.has_aes : state.has_clear;
  if (has) {
    ctx.log(`${state.target} variant exists; nothing to build`);
    return { built: false, files: [] };
  }
  const from = state.target === 'aes' ? paths.clear : paths.aes;
  const master = parsePlaylist(await readFile(from, 'utf8'), rel(ctx, from));
  if (master.kind !== 'master') throw new PermanentTaskError(`${rel(ctx, from)} is not a master playlist`);
  const firstMedia = path.resolve(path.dirname(from), master.variants[0]?.uri ?? '');
  const cmaf = (await readFile(firstMedia, 'utf8').catch(() => '')).includes('#EXT-X-MAP:');
  if (cmaf)
    throw new PermanentTaskError(
      `${rel(ctx, from)} is a CMAF asset; drmswitch rebuilds MPEG-TS variants only (package CENC with vodstream drm: ["cenc"])`,
    );
  // An MPEG-TS ladder's audio-only rendition is carried over, as are subtitle renditions. An asset
  // made before the audio was its own group carries the audio in each rendition: it is copied with them.
  const audioUri = master.variants[0] ? variantAudioUri(master, master.variants[0]) : null;
  let audio: StagedAudio | null = null;
  if (audioUri) {
    const input = path.resolve(path.dirname(from), audioUri);
    await ctx.storage.resolve(rel(ctx, input));
    const codecs = master.variants[0]?.codecs?.split(',').find((c) => c.startsWith('mp4a')) ?? 'mp4a.40.2';
    audio = { input, inputArgs: ['-allowed_extensions', 'ALL'], codecs, bitrate: 0 };
  }
  // Subtitle renditions are carried over to the new variant.
  const subtitles: StagedSubtitle[] = [];
  for (const m of master.media.filter((x) => x.TYPE === 'SUBTITLES' && x.URI)) {
    const pl = path.resolve(path.dirname(from), m.URI!);
    const vtt = path.join(path.dirname(pl), 'subtitles.vtt');
    await ctx.storage.resolve(rel(ctx, vtt));
    const language = m.LANGUAGE ?? 'und';
    subtitles.push({
      id: path.basename(path.dirname(pl)),
      language,
      name: m.NAME ?? language,
      file: '',
      vtt,
    });
  }
  const renditions: RenditionSource[] = [];
  let segment = 4;
  let duration = 0;
  for (const v of master.variants) {
    const input = path.resolve(path.dirname(from), v.uri);
    await ctx.storage.resolve(rel(ctx, input));
    const media = parsePlaylist(await readFile(input, 'utf8'), rel(ctx, input));
    if (media.kind === 'media') {
      duration = Math.max(duration, media.totalSeconds);
      segment = Math.max(1, Math.round(Math.max(...media.segments.map((s) => s.durationSeconds), 1)));
    }
    renditions.push({
      name: path.basename(path.dirname(input)),
      input,
      inputArgs: ['-allowed_extensions', 'ALL'],
      width: v.width ?? 0,
      height: v.height ?? 0,
      bandwidth: v.bandwidth,
      codecs: v.codecs ?? 'avc1.640028,mp4a.40.2',
      fps: null,
    });
  }
  ctx.log(`building the ${state.target} variant from ${rel(ctx, from)} (${renditions.length} rendition(s))`);
  const files = await packageVariant(
    ctx,
    paths.out,
    state.content_id,
    state.target,
    renditions,
    segment,
    duration,
    optString(ctx.parameters, 'aes_key_url') ?? null,
    { audio, subtitles },
  );
  return { built: true, files: files.map((f) => rel(ctx, f)) };
}
