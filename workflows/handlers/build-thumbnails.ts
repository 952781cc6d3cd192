/**
 * build_thumbnails: timeline preview images — one sprite JPEG holding a thumbnail every
 * `preview_thumbnails_interval` seconds (a grid up to 10 wide) and a WebVTT file whose cues point
 * into it with media fragments (`<prefix>.jpg#xywh=x,y,w,h`), as players' thumbnail tracks expect.
 * Each thumbnail is the first frame at or after its cue start.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { PermanentTaskError } from '../../src/errors/task-errors.js';
import { runFfmpeg } from '../../src/media/ffmpeg.js';
import type { HandlerContext } from '../../src/workflows/types.js';
import { fileName, optNumber, outputFolder, reqString, rel } from './lib/params.js';
import { resolveSource } from './lib/source.js';

/** Most thumbnails per sprite row. */
export const SPRITE_COLUMNS = 10;

function vttTime(seconds: number): string {
  const ms = Math.round(seconds * 1000);
  const h = Math.floor(ms / 3_600_000);
  const m = Math.floor((ms % 3_600_000) / 60_000);
  const s = Math.floor((ms % 60_000) / 1000);
  const r = ms % 1000;
  return `${String(h).padStart(2, '0')}:${String(m).padStart(2, '0')}:${String(s).padStart(2, '0')}.${String(r).padStart(3, '0')}`;
}

/** @returns `{message, files: [sprite, vtt], metadata}`. */
export default async function buildThumbnails(ctx: HandlerContext): Promise<unknown> {
  const p = ctx.parameters;
  const prefix = fileName(p, 'filename_prefix', typeof p.content_id === 'string' ? p.content_id : undefined);
  const interval = optNumber(p, 'preview_thumbnails_interval', 10, { min: 0.1, max: 3600 });
  const thumbWidth = optNumber(p, 'thumbnail_width', 160, { min: 16, max: 1920, integer: true });
  const fallbackFps = optNumber(p, 'video_fps', 24, { min: 1, max: 240 });
  const out = await ctx.storage.resolve(
    outputFolder(p, typeof p.content_id === 'string' ? p.content_id : undefined),
  );
  const src = await resolveSource(ctx, reqString(p, 'source'));
  const v = src.info.video!;
  const duration = src.info.durationSeconds;
  if (!(duration > 0)) throw new PermanentTaskError(`source ${src.given} has no duration`);
  const count = Math.max(1, Math.ceil(duration / interval - 1e-6));
  const cols = Math.min(count, SPRITE_COLUMNS);
  const rows = Math.ceil(count / cols);
  const w = thumbWidth - (thumbWidth % 2);
  const srcW = v.width ?? 16;
  const srcH = v.height ?? 9;
  const h = Math.max(2, Math.round((w * srcH) / srcW / 2) * 2);
  await mkdir(out, { recursive: true });
  const sprite = path.join(out, `${prefix}.jpg`);
  const vtt = path.join(out, `${prefix}.vtt`);
  // selected_n counts frames already picked: pick the first frame at or after each k * interval.
  const filter = `select='gte(t\\,selected_n*${interval})',scale=${w}:${h},tile=${cols}x${rows}`;
  await runFfmpeg(
    [
      ...src.inputArgs,
      '-i',
      src.input,
      '-an',
      '-vf',
      filter,
      '-vsync',
      'vfr',
      '-frames:v',
      '1',
      '-q:v',
      '3',
      sprite,
    ],
    { signal: ctx.signal },
  );
  const cues = ['WEBVTT', ''];
  for (let i = 0; i < count; i++) {
    const start = i * interval;
    const end = Math.min((i + 1) * interval, duration);
    cues.push(
      `${vttTime(start)} --> ${vttTime(end)}`,
      `${path.basename(sprite)}#xywh=${(i % cols) * w},${Math.floor(i / cols) * h},${w},${h}`,
      '',
    );
  }
  await writeFile(vtt, cues.join('\n'));
  ctx.log(
    `${count} thumbnails of ${w}x${h} every ${interval} s in a ${cols}x${rows} sprite: ${rel(ctx, sprite)}, ${rel(ctx, vtt)}` +
      (v.fps ? '' : ` (source states no frame rate; assumed ${fallbackFps} fps)`),
  );
  return {
    message: rel(ctx, vtt),
    files: [rel(ctx, sprite), rel(ctx, vtt)],
    metadata: { count, interval, columns: cols, rows, width: w, height: h, duration },
  };
}
