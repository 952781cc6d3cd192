#!/usr/bin/env node
/**
 * The `task-engine` executable. The only place that reads `process.env` and calls `process.exit`.
 */
import { ENGINE_VERSION } from '../engine/engine.js';
import { runCli } from './program.js';
import type { CliIO } from './io.js';

const io: CliIO = {
  env: process.env,
  out: (line) => process.stdout.write(`${line}\n`),
  err: (line) => process.stderr.write(`${line}\n`),
  onSignal(signals, fn) {
    for (const s of signals) process.on(s, fn);
    return () => {
      for (const s of signals) process.off(s, fn);
    };
  },
  exitNow: (code) => process.exit(code),
  ...(process.stdout.isTTY ? { terminal: process.stdout } : {}),
};

const code = await runCli(process.argv, io, ENGINE_VERSION);
// Let stdout drain, then end: open handles (a lingering socket) must not keep the CLI alive.
process.stdout.write('', () => process.exit(code));
