/**
 * createmp4: an MP4 from an HLS VOD folder — the highest-bandwidth rendition of the asset's master
 * playlist (the active one `<content_id>.m3u8`, else its clear or AES variant, else the only master
 * in the folder) remuxed without re-encoding, with the audio rendition of its `AUDIO` group muxed in
 * when it has one; AES-128 segments are decrypted with the key beside them.
 */
import { mkdir, readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { PermanentTaskError } from '../../src/errors/task-errors.js';
import { runFfmpeg } from '../../src/media/ffmpeg.js';
import { reportFfmpegProgress } from '../../src/media/ffmpeg-progress.js';
import { parsePlaylist, variantAudioUri } from '../../src/media/hls-playlist.js';
import { probeMedia } from '../../src/media/probe.js';
import type { HandlerContext } from '../../src/workflows/types.js';
import { contentId, fileName, outputFolder, reqString, rel } from './lib/params.js';
import { assetPaths, exists } from './lib/vod.js';

async function findMaster(folderAbs: string, id: string | undefined): Promise<string> {
  if (id) {
    const p = assetPaths(folderAbs, id);
    for (const f of [p.active, p.clear, p.aes]) if (await exists(f)) return f;
    throw new PermanentTaskError(
      `no master playlist for content ${id} in the folder (looked for ${id}.m3u8, ${id}_nodrm.m3u8, ${id}_aes.m3u8)`,
    );
  }
  const names = await readdir(folderAbs).catch(() => null);
  if (!names) throw new PermanentTaskError('source_folder does not exist in the client storage');
  const masters: string[] = [];
  for (const n of names.filter((x) => x.endsWith('.m3u8')).sort()) {
    const pl = parsePlaylist(await readFile(path.join(folderAbs, n), 'utf8'), n);
    if (pl.kind === 'master') masters.push(n);
  }
  // A folder made by vodstream holds <id>.m3u8 and its variants: take the active one.
  const active = masters.filter((m) => !/_(nodrm|aes)\.m3u8$/.test(m));
  const pick = active.length === 1 ? active[0] : masters.length === 1 ? masters[0] : undefined;
  if (!pick)
    throw new PermanentTaskError(
      masters.length === 0
        ? 'source_folder holds no HLS master playlist'
        : `source_folder holds several assets (${masters.join(', ')}); give content_id`,
    );
  return path.join(folderAbs, pick);
}

/** @returns `{message, files, metadata: {duration}}`. */
export default async function createMp4(ctx: HandlerContext): Promise<unknown> {
  const p = ctx.parameters;
  const sourceFolder = reqString(p, 'source_folder');
  const id = p.content_id === undefined ? undefined : contentId(p);
  const folderAbs = await ctx.storage.resolve(sourceFolder);
  const master = await findMaster(folderAbs, id);
  const pl = parsePlaylist(await readFile(master, 'utf8'), rel(ctx, master));
  let media = master;
  let audioPlaylist: string | null = null;
  if (pl.kind === 'master') {
    const best = [...pl.variants].sort((a, b) => b.bandwidth - a.bandwidth)[0];
    if (!best) throw new PermanentTaskError(`${rel(ctx, master)} lists no variants`);
    media = path.resolve(path.dirname(master), best.uri);
    await ctx.storage.resolve(rel(ctx, media));
    // CMAF and (since audio became its own group there too) MPEG-TS ladders keep the audio in an
    // audio-only rendition group; older TS assets carry it in each rendition.
    const audio = variantAudioUri(pl, best);
    if (audio) {
      audioPlaylist = path.resolve(path.dirname(master), audio);
      await ctx.storage.resolve(rel(ctx, audioPlaylist));
    }
  }
  const name = fileName(p, 'mp4_filename', `${id ?? path.basename(master, '.m3u8')}.mp4`, '.mp4');
  const out = await ctx.storage.resolve(outputFolder(p, sourceFolder));
  await mkdir(out, { recursive: true });
  const file = path.join(out, name);
  const inputArgs = ['-allowed_extensions', 'ALL'];
  const info = await probeMedia(media, { signal: ctx.signal, inputArgs });
  await runFfmpeg(
    [
      ...inputArgs,
      '-i',
      media,
      ...(audioPlaylist
        ? [...inputArgs, '-i', audioPlaylist, '-map', '0:v:0', '-map', '1:a:0']
        : ['-map', '0']),
      '-c',
      'copy',
      '-bsf:a',
      'aac_adtstoasc',
      '-movflags',
      '+faststart',
      file,
    ],
    {
      signal: ctx.signal,
      durationSeconds: info.durationSeconds,
      onProgress: reportFfmpegProgress(ctx, { label: 'mp4' }),
    },
  );
  ctx.log(`MP4 written from ${rel(ctx, media)}: ${rel(ctx, file)}`);
  return { message: rel(ctx, file), files: [rel(ctx, file)], metadata: { duration: info.durationSeconds } };
}
