#!/usr/bin/env node
/**
 * The `task-engine` executable. The only place that reads `process.env` and calls `process.exit`.
 */
import { readFileSync } from 'node:fs';
import { runCli } from './program.js';
import type { CliIO } from './io.js';

function packageVersion(): string {
  try {
    const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as {
      version?: string;
    };
    return pkg.version ?? '0.0.0';
  } catch {
    return '0.0.0';
  }
}

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
};

const code = await runCli(process.argv, io, packageVersion());
// Let stdout drain, then end: open handles (a lingering socket) must not keep the CLI alive.
process.stdout.write('', () => process.exit(code));
