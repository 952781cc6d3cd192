/**
 * `task-engine demo` (and `npm run demo`): the main job on a real video, end to end.
 *
 * 1. Uses the engine at `--url` (or `TASK_ENGINE_URL`, with `--client`/`--api-key`), or the local
 *    engine that holds the data folder when credentials are given; otherwise starts the embedded
 *    engine in this process on a free port, with a client `demo-media` whose key is issued afresh
 *    (`connection.ts`).
 * 2. Makes a short test video with FFmpeg (the lavfi `testsrc2` picture and a sine tone) in the
 *    client's storage: `demo/<content_id>/source.mp4` (`video.ts`).
 * 3. Starts a callback receiver on 127.0.0.1 (`receiver.ts`) and submits `vodstream` with
 *    `rest_endpoints` pointing at it (clear + AES-128 variants, an MP4, a thumbnail).
 * 4. Shows each task's progress live (`progress-view.ts`): one bar per task (cli-progress) on a
 *    terminal, plain lines otherwise; task states and progress (the `progress` the media handlers
 *    report from FFmpeg) come from `GET /jobs/<id>`.
 * 5. Prints the callbacks received, the files made and how to play the result (`run-demo.ts`).
 * Exits 0 on success; on failure throws a `CliError` carrying the reason (exit 1).
 */
import type { Command } from 'commander';
import type { CliIO } from '../../io.js';
import { runDemo } from './run-demo.js';
import type { DemoOptions } from './types.js';

export { DEMO_MEDIA_CLIENT } from './connection.js';
export { runDemo } from './run-demo.js';
export type { DemoOptions, DemoResult } from './types.js';
export { makeDemoVideo } from './video.js';

function defaultIO(): CliIO {
  return {
    env: process.env,
    out: (l) => process.stdout.write(`${l}\n`),
    err: (l) => process.stderr.write(`${l}\n`),
    onSignal(signals, fn) {
      for (const s of signals) process.on(s, fn);
      return () => {
        for (const s of signals) process.off(s, fn);
      };
    },
    exitNow: (code) => process.exit(code),
  };
}

/** Registers `demo` on the program. `io` defaults to the process's streams and environment. */
export function registerDemoCommand(program: Command, io: CliIO = defaultIO()): void {
  program
    .command('demo')
    .description(
      'make a test video, run the vodstream workflow on it with live progress, and show the result',
    )
    .option('--url <url>', 'use the engine at this URL instead of starting one (env TASK_ENGINE_URL)')
    .option('--client <name>', 'client name for --url (env TASK_ENGINE_CLIENT)')
    .option('--api-key <key>', 'API key for --url (env TASK_ENGINE_API_KEY)')
    .option('--seconds <n>', 'length of the test video in seconds', '10')
    .option('--size <WxH>', 'picture size of the test video', '640x360')
    .option('--storage-root <dir>', "the engine's storage root (env TASK_ENGINE_STORAGE_ROOT)")
    .option('--timeout <seconds>', 'give up after this long', '600')
    .option('--plain', 'plain line output even on a terminal')
    .action(async (opts: DemoOptions) => {
      await runDemo(io, opts);
    });
}
