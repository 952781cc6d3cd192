/**
 * Which FFmpeg and ffprobe the engine uses, their versions and the encoders the media workflows
 * need. Backs `task-engine doctor` and the warning logged at start.
 *
 * The binaries are located as `locateTool` does (`FFMPEG_PATH` / `FFPROBE_PATH`, then `PATH`,
 * then the npm-shipped static builds as the last resort). The workflows are written for FFmpeg 5
 * or newer (Debian 12's 5.1): older builds (the npm-shipped one is a 2018 snapshot) lack options
 * and fixes the HLS packaging relies on, and an ffprobe of another version than FFmpeg may read
 * streams differently.
 */
import { spawnSync } from 'node:child_process';
import { locateTool, type MediaTool } from './ffmpeg.js';

/** The oldest FFmpeg major version the media workflows are written for. */
export const MIN_FFMPEG_MAJOR = 5;

/** Encoders the shipped media workflows use (H.264 video, AAC audio). */
export const REQUIRED_ENCODERS = ['libx264', 'aac'] as const;

/** One located tool. */
export interface ToolReport {
  tool: MediaTool;
  /** Absolute path, or null when the tool was not found. */
  path: string | null;
  /** The version word after `<tool> version` (e.g. `5.1.9-0+deb12u1`), or null. */
  version: string | null;
  /** Major version number, or null when it cannot be read (snapshot builds such as `N-47683-…`). */
  major: number | null;
  /** Why the tool is unusable (not found, does not run), else null. */
  error: string | null;
}

/** The whole check. */
export interface MediaToolsReport {
  ffmpeg: ToolReport;
  ffprobe: ToolReport;
  /** Tools older than {@link MIN_FFMPEG_MAJOR} (or of an unreadable version). */
  outdated: MediaTool[];
  /** Required encoders FFmpeg does not list in `ffmpeg -encoders`. */
  missingEncoders: string[];
  /** Conditions worth a warning: a version older than 5, versions that differ. */
  warnings: string[];
  /** Conditions that stop the media workflows: a tool missing, an encoder missing. */
  problems: string[];
}

/**
 * Parses the first line of `<tool> -version`.
 * @returns the version word and its major number (null when not numeric).
 */
export function parseToolVersion(output: string): { version: string | null; major: number | null } {
  const m = /^\S+ version (\S+)/m.exec(output);
  if (!m) return { version: null, major: null };
  const major = /^n?(\d+)\./.exec(m[1]!);
  return { version: m[1]!, major: major ? Number(major[1]) : null };
}

function inspect(tool: MediaTool, env: NodeJS.ProcessEnv): ToolReport {
  let bin: string;
  try {
    bin = locateTool(tool, env);
  } catch (err) {
    return { tool, path: null, version: null, major: null, error: (err as Error).message };
  }
  const res = spawnSync(bin, ['-hide_banner', '-version'], { encoding: 'utf8', timeout: 15_000, env });
  if (res.status !== 0)
    return {
      tool,
      path: bin,
      version: null,
      major: null,
      error: `${bin} -version failed (${res.error?.message ?? `exit ${res.status}`})`,
    };
  return { tool, path: bin, ...parseToolVersion(res.stdout), error: null };
}

/**
 * Lists the encoder names in the output of `ffmpeg -encoders`.
 * @returns names such as `libx264`, `aac`.
 */
export function parseEncoders(output: string): Set<string> {
  const names = new Set<string>();
  for (const line of output.split('\n')) {
    const m = /^\s*[VASD][A-Z.]{5}\s+(\S+)/.exec(line);
    if (m && m[1] !== '=') names.add(m[1]!);
  }
  return names;
}

/**
 * Locates both tools, reads their versions and checks the required encoders (spawns each tool
 * once or twice; a few hundred ms).
 * @param env where `FFMPEG_PATH` / `FFPROBE_PATH` / `PATH` are read (default `process.env`).
 */
export function checkMediaTools(env: NodeJS.ProcessEnv = process.env): MediaToolsReport {
  const ffmpeg = inspect('ffmpeg', env);
  const ffprobe = inspect('ffprobe', env);
  const warnings: string[] = [];
  const problems: string[] = [];
  const missingEncoders: string[] = [];
  const outdated: MediaTool[] = [];
  for (const t of [ffmpeg, ffprobe]) {
    if (t.error) problems.push(`${t.tool}: ${t.error}`);
    else if (t.major === null || t.major < MIN_FFMPEG_MAJOR) {
      outdated.push(t.tool);
      warnings.push(
        `${t.tool} at ${t.path} is version ${t.version ?? 'unknown'}, older than ${MIN_FFMPEG_MAJOR} (or not a release); install FFmpeg ${MIN_FFMPEG_MAJOR} or newer (Debian: apt-get install ffmpeg) or set ${t.tool === 'ffmpeg' ? 'FFMPEG_PATH' : 'FFPROBE_PATH'}`,
      );
    }
  }
  if (!ffmpeg.error && !ffprobe.error && ffmpeg.version !== ffprobe.version)
    warnings.push(
      `ffmpeg (${ffmpeg.version ?? 'unknown'}) and ffprobe (${ffprobe.version ?? 'unknown'}) are different versions; use the two from one build`,
    );
  if (ffmpeg.path && !ffmpeg.error) {
    const res = spawnSync(ffmpeg.path, ['-hide_banner', '-encoders'], {
      encoding: 'utf8',
      timeout: 15_000,
      env,
    });
    const have = res.status === 0 ? parseEncoders(res.stdout) : new Set<string>();
    for (const e of REQUIRED_ENCODERS) if (!have.has(e)) missingEncoders.push(e);
    if (missingEncoders.length)
      problems.push(`ffmpeg at ${ffmpeg.path} lacks the encoder(s) ${missingEncoders.join(', ')}`);
  }
  return { ffmpeg, ffprobe, outdated, missingEncoders, warnings, problems };
}

/**
 * The start-up warnings only (a tool older than 5, versions that differ, a tool not found),
 * without blocking: each tool's `-version` runs as a child process. Never rejects.
 * @returns warning lines, empty when all is well.
 */
export async function mediaToolWarnings(env: NodeJS.ProcessEnv = process.env): Promise<string[]> {
  const { execFile } = await import('node:child_process');
  const version = (tool: MediaTool): Promise<ToolReport> =>
    new Promise((resolve) => {
      let bin: string;
      try {
        bin = locateTool(tool, env);
      } catch (err) {
        resolve({ tool, path: null, version: null, major: null, error: (err as Error).message });
        return;
      }
      execFile(bin, ['-hide_banner', '-version'], { timeout: 15_000, env }, (err, stdout) =>
        resolve(
          err
            ? { tool, path: bin, version: null, major: null, error: `${bin} -version failed: ${err.message}` }
            : { tool, path: bin, ...parseToolVersion(String(stdout)), error: null },
        ),
      );
    });
  const [ffmpeg, ffprobe] = await Promise.all([version('ffmpeg'), version('ffprobe')]);
  const out: string[] = [];
  for (const t of [ffmpeg, ffprobe]) {
    if (t.error) out.push(`${t.tool}: ${t.error}; the media workflows will fail`);
    else if (t.major === null || t.major < MIN_FFMPEG_MAJOR)
      out.push(
        `${t.tool} at ${t.path} is version ${t.version ?? 'unknown'}, older than ${MIN_FFMPEG_MAJOR}: install FFmpeg ${MIN_FFMPEG_MAJOR} or newer (Debian: apt-get install ffmpeg); run task-engine doctor`,
      );
  }
  if (!ffmpeg.error && !ffprobe.error && ffmpeg.version !== ffprobe.version)
    out.push(`ffmpeg (${ffmpeg.version}) and ffprobe (${ffprobe.version}) are different versions`);
  return out;
}
