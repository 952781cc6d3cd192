/**
 * capture_frame: one frame of `source` (storage file or HLS URL) at `frame_time` (offset or UTC),
 * saved as `image_filename` (JPEG, or PNG when the name ends in .png) in `output_folder`.
 */
import { mkdir, stat } from 'node:fs/promises';
import path from 'node:path';
import { PermanentTaskError } from '../../src/errors/task-errors.js';
import { runFfmpeg } from '../../src/media/ffmpeg.js';
import { formatSeconds } from '../../src/media/timecode.js';
import type { HandlerContext } from '../../src/workflows/types.js';
import { fileName, outputFolder, reqString, reqTime, rel } from './lib/params.js';
import { placeTime, resolveSource } from './lib/source.js';

/** @returns `{message, files, metadata}` with client-relative paths. */
export default async function captureFrame(ctx: HandlerContext): Promise<unknown> {
  const p = ctx.parameters;
  const name = fileName(p, 'image_filename', undefined);
  if (!/\.(jpe?g|png)$/i.test(name))
    throw new PermanentTaskError(
      `parameters.image_filename must end with .jpg, .jpeg or .png (got ${JSON.stringify(name)})`,
    );
  const out = await ctx.storage.resolve(outputFolder(p));
  const src = await resolveSource(ctx, reqString(p, 'source'));
  const at = placeTime(src, reqTime(p, 'frame_time'), 'frame_time');
  await mkdir(out, { recursive: true });
  const file = path.join(out, name);
  await runFfmpeg(
    [
      '-ss',
      at.toFixed(3),
      ...src.inputArgs,
      '-i',
      src.input,
      '-frames:v',
      '1',
      ...(/\.png$/i.test(name) ? [] : ['-q:v', '2']),
      file,
    ],
    { signal: ctx.signal },
  );
  const st = await stat(file).catch(() => null);
  if (!st || st.size === 0)
    throw new PermanentTaskError(`no frame found at ${formatSeconds(at)} in ${src.given}`);
  ctx.log(`frame at ${formatSeconds(at)} of ${src.given} saved as ${rel(ctx, file)}`);
  return {
    message: rel(ctx, file),
    files: [rel(ctx, file)],
    metadata: {
      frame_time: at,
      width: src.info.video?.width ?? null,
      height: src.info.video?.height ?? null,
    },
  };
}
