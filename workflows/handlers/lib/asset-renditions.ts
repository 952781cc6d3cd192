/**
 * Listing the renditions of a packaged VOD asset (vodstream, vodcapture, drmswitch), for tasks
 * that add to an asset after it was packaged (I-frame playlists, thumbnails per rendition, …).
 */
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { parsePlaylist } from '../../../src/media/hls-playlist.js';
import { assetPaths, exists, type PackagedVariant } from './vod.js';

/** One rendition of one variant of an asset. */
export interface AssetRendition {
  variant: PackagedVariant;
  kind: 'video' | 'audio' | 'subtitles';
  /** Folder name inside the variant folder: `720p`, `audio`, `subs/en`. */
  name: string;
  /** Absolute rendition folder. */
  folder: string;
  /** Absolute HLS media playlist (`index.m3u8`), or null for a DASH-only asset. */
  playlist: string | null;
  /** `ts` (MPEG-TS segments) or `cmaf` (`init.mp4` + `.m4s`). */
  segment_format: 'ts' | 'cmaf';
  /** Video only: pixels; BANDWIDTH from the master (0 when unknown). */
  width: number | null;
  height: number | null;
  bandwidth: number;
}

/**
 * The renditions of asset `contentId` in absolute folder `outAbs`, by variant (`clear`, `aes`,
 * `cenc`), video largest first, then audio, then subtitles. Read from each variant's master
 * playlist (`<id>_nodrm.m3u8`, `<id>_aes.m3u8`, `<id>_cenc.m3u8`); a variant with only a DASH MPD
 * is listed from its folders. Variants not packaged are left out.
 */
export async function listAssetRenditions(outAbs: string, contentId: string): Promise<AssetRendition[]> {
  const p = assetPaths(outAbs, contentId);
  const out: AssetRendition[] = [];
  const variants: [PackagedVariant, string, string][] = [
    ['clear', p.clear, p.clearDir],
    ['aes', p.aes, p.aesDir],
    ['cenc', p.cenc, p.cencDir],
  ];
  for (const [variant, master, dir] of variants) {
    if (!(await exists(dir))) continue;
    const entries = await readdir(dir, { withFileTypes: true });
    const cmaf = await isCmaf(
      dir,
      entries.map((e) => e.name),
    );
    const fmt: 'ts' | 'cmaf' = cmaf ? 'cmaf' : 'ts';
    const list: AssetRendition[] = [];
    if (await exists(master)) {
      const pl = parsePlaylist(await readFile(master, 'utf8'), master);
      if (pl.kind !== 'master') continue;
      for (const v of [...pl.variants].sort((a, b) => b.bandwidth - a.bandwidth)) {
        const playlist = path.resolve(path.dirname(master), v.uri);
        list.push({
          variant,
          kind: 'video',
          name: path.relative(dir, path.dirname(playlist)).split(path.sep).join('/'),
          folder: path.dirname(playlist),
          playlist,
          segment_format: fmt,
          width: v.width,
          height: v.height,
          bandwidth: v.bandwidth,
        });
      }
      for (const m of pl.media) {
        if (!m.URI) continue;
        const playlist = path.resolve(path.dirname(master), m.URI);
        list.push({
          variant,
          kind: m.TYPE === 'SUBTITLES' ? 'subtitles' : 'audio',
          name: path.relative(dir, path.dirname(playlist)).split(path.sep).join('/'),
          folder: path.dirname(playlist),
          playlist,
          segment_format: fmt,
          width: null,
          height: null,
          bandwidth: 0,
        });
      }
    } else {
      for (const e of entries.filter((x) => x.isDirectory()).sort((a, b) => b.name.localeCompare(a.name))) {
        const m = /^(\d+)p$/.exec(e.name);
        if (!m && e.name !== 'audio') continue;
        const playlist = path.join(dir, e.name, 'index.m3u8');
        list.push({
          variant,
          kind: m ? 'video' : 'audio',
          name: e.name,
          folder: path.join(dir, e.name),
          playlist: (await exists(playlist)) ? playlist : null,
          segment_format: fmt,
          width: null,
          height: m ? Number(m[1]) : null,
          bandwidth: 0,
        });
      }
      list.sort((a, b) => (b.height ?? -1) - (a.height ?? -1));
    }
    out.push(...list);
  }
  return out;
}

async function isCmaf(dir: string, names: string[]): Promise<boolean> {
  for (const n of names) if (await exists(path.join(dir, n, 'init.mp4'))) return true;
  return false;
}
