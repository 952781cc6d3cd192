/** The demo's test video: its size option and the FFmpeg command that makes it. */
import path from 'node:path';
import { runFfmpeg } from '../../../media/ffmpeg.js';
import { CliError } from '../../io.js';

/** Reads `--size WIDTHxHEIGHT`. @throws CliError (exit 2) for anything but even sizes of 32 to 9999. */
export function parseSize(size: string): { width: number; height: number } {
  const m = /^(\d{2,4})x(\d{2,4})$/.exec(size);
  if (!m) throw new CliError(`--size ${JSON.stringify(size)} must be WIDTHxHEIGHT, e.g. 640x360`, 2);
  const width = Number(m[1]);
  const height = Number(m[2]);
  if (width % 2 || height % 2 || width < 32 || height < 32)
    throw new CliError('--size needs even numbers of at least 32, e.g. 640x360', 2);
  return { width, height };
}

/** Makes the demo's test video: `testsrc2` picture with a timer and a 440 Hz tone, H.264/AAC. */
export async function makeDemoVideo(
  file: string,
  seconds: number,
  width: number,
  height: number,
): Promise<void> {
  const { mkdir } = await import('node:fs/promises');
  await mkdir(path.dirname(file), { recursive: true });
  await runFfmpeg([
    '-f',
    'lavfi',
    '-i',
    `testsrc2=size=${width}x${height}:rate=25:duration=${seconds}`,
    '-f',
    'lavfi',
    '-i',
    `sine=frequency=440:beep_factor=4:sample_rate=48000:duration=${seconds}`,
    '-c:v',
    'libx264',
    '-preset',
    'veryfast',
    '-pix_fmt',
    'yuv420p',
    '-c:a',
    'aac',
    '-b:a',
    '128k',
    '-shortest',
    '-movflags',
    '+faststart',
    file,
  ]);
}
