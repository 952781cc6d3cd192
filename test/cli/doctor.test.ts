/**
 * `task-engine doctor` against real binaries: the system FFmpeg 5 passes (exit 0, a line per tool
 * with path and version, both encoders ok); a PATH whose ffmpeg is old and lacks libx264, or an
 * FFPROBE_PATH that names no executable, fails with exit 1 naming what is wrong.
 */
import assert from 'node:assert/strict';
import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import type { CliIO } from '../../src/cli/io.js';
import { runCli } from '../../src/cli/program.js';
import { parseEncoders, parseToolVersion } from '../../src/media/tool-check.js';

async function doctor(
  env: Record<string, string | undefined>,
): Promise<{ code: number; out: string; err: string }> {
  const out: string[] = [];
  const err: string[] = [];
  const io: CliIO = {
    env,
    out: (l) => out.push(l),
    err: (l) => err.push(l),
    onSignal: () => () => undefined,
    exitNow: (code) => {
      throw new Error(`exit ${code}`);
    },
  };
  const code = await runCli(['node', 'task-engine', 'doctor'], io, 'test');
  return { code, out: out.join('\n'), err: err.join('\n') };
}

let dir: string;
before(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'doctor-'));
  // An "old" FFmpeg: a real executable that reports 4.4 and lists aac but no libx264.
  const fake = path.join(dir, 'ffmpeg');
  await writeFile(
    fake,
    [
      '#!/bin/sh',
      'case "$*" in',
      '  *-encoders*) printf " V....D libx265              H.265\\n A....D aac                  AAC\\n";;',
      '  *) echo "ffmpeg version 4.4.2 Copyright (c) 2000-2021";;',
      'esac',
    ].join('\n') + '\n',
  );
  await chmod(fake, 0o755);
});
after(async () => rm(dir, { recursive: true, force: true }));

test('the system FFmpeg passes: path and version per tool, encoders ok, exit 0', async () => {
  const r = await doctor({ PATH: '/usr/bin:/bin' });
  assert.equal(r.code, 0, r.err);
  assert.match(r.out, /^ffmpeg: \/usr\/bin\/ffmpeg \(version 5\./m);
  assert.match(r.out, /^ffprobe: \/usr\/bin\/ffprobe \(version 5\./m);
  assert.match(r.out, /encoders: libx264 ok, aac ok/);
});

test('an old ffmpeg without libx264 on PATH: exit 1 naming the encoder and the old version', async () => {
  const r = await doctor({ PATH: `${dir}:/usr/bin:/bin` });
  assert.equal(r.code, 1);
  assert.match(r.out, new RegExp(`^ffmpeg: ${dir}/ffmpeg \\(version 4\\.4\\.2\\)`, 'm'));
  assert.match(r.out, /libx264 MISSING, aac ok/);
  assert.match(r.err, /lacks the encoder\(s\) libx264/);
  assert.match(r.err, /ffmpeg is older than version 5/);
  assert.match(r.err, /different versions/);
});

test('FFPROBE_PATH naming no executable: exit 1 naming the variable', async () => {
  const r = await doctor({ PATH: '/usr/bin:/bin', FFPROBE_PATH: path.join(dir, 'nope') });
  assert.equal(r.code, 1);
  assert.match(r.out, /^ffprobe: MISSING \(FFPROBE_PATH is set to .*nope/m);
});

test('version and encoder parsing', () => {
  assert.deepEqual(parseToolVersion('ffmpeg version 5.1.9-0+deb12u1 Copyright'), {
    version: '5.1.9-0+deb12u1',
    major: 5,
  });
  assert.deepEqual(parseToolVersion('ffmpeg version N-47683-g0e8eb07980-static https://x'), {
    version: 'N-47683-g0e8eb07980-static',
    major: null,
  });
  assert.deepEqual(parseToolVersion('ffmpeg version n6.1 Copyright').major, 6);
  const enc = parseEncoders(' V..... = Video\n ------\n V....D libx264   H.264\n A....D aac   AAC\n');
  assert.deepEqual([...enc].sort(), ['aac', 'libx264']);
});
