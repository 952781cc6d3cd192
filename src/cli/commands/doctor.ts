/**
 * `task-engine doctor`: prints the FFmpeg and ffprobe binaries the engine would use (path and
 * version, one line each), checks the encoders the media workflows need (`libx264`, `aac`) and
 * exits 1 naming whatever is missing or too old (a version older than 5). ffmpeg and ffprobe of
 * different versions are a warning only.
 */
import type { Command } from 'commander';
import { checkMediaTools, REQUIRED_ENCODERS } from '../../media/tool-check.js';
import { CliExit, type CliIO } from '../io.js';

/** Registers `doctor`. */
export function registerDoctorCommand(program: Command, io: CliIO): void {
  program
    .command('doctor')
    .description('check the FFmpeg and ffprobe the media workflows use (paths, versions, encoders)')
    .action(() => {
      const r = checkMediaTools(io.env);
      for (const t of [r.ffmpeg, r.ffprobe])
        io.out(
          t.path && !t.error
            ? `${t.tool}: ${t.path} (version ${t.version ?? 'unknown'})`
            : `${t.tool}: MISSING (${t.error})`,
        );
      if (r.ffmpeg.path && !r.ffmpeg.error)
        io.out(
          `encoders: ${REQUIRED_ENCODERS.map((e) => `${e} ${r.missingEncoders.includes(e) ? 'MISSING' : 'ok'}`).join(', ')}`,
        );
      for (const w of r.warnings) io.err(`warning: ${w}`);
      const problems = [...r.problems, ...r.outdated.map((t) => `${t} is older than version 5`)];
      if (problems.length) {
        for (const p of problems) io.err(`problem: ${p}`);
        throw new CliExit(1);
      }
      io.out('ok');
    });
}
