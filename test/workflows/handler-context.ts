/**
 * Builds a real {@link HandlerContext} for handler tests: a scratch folder and a storage root
 * under the OS temp folder, a log that records every line, and an AbortController.
 */
import { createGuardedFetch } from '../../src/engine/egress/guarded-fetch.js';
import { readFileSync } from 'node:fs';
import { mkdtemp, mkdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve as resolvePath } from 'node:path';
import pino from 'pino';
import { PermanentTaskError } from '../../src/errors/task-errors.js';
import type { HandlerContext } from '../../src/workflows/types.js';

/** A context plus what the test needs to drive and inspect it. */
export interface TestHandlerContext {
  ctx: HandlerContext;
  logs: { message: string; severity: number }[];
  /** Every `ctx.progress` call, in order. */
  progress: { fraction: number; message?: string; detail?: Record<string, unknown> }[];
  controller: AbortController;
  /** Removes the scratch and storage folders. */
  cleanup(): Promise<void>;
}

/** Creates a context whose `inputs` are `inputs`; `overrides` replace any other field. */
export async function makeHandlerContext(
  inputs: Record<string, unknown>,
  overrides: Partial<HandlerContext> = {},
): Promise<TestHandlerContext> {
  const base = await mkdtemp(join(tmpdir(), 'te-handler-'));
  const workdir = join(base, 'work');
  const root = join(base, 'storage', 'acme');
  await mkdir(workdir, { recursive: true });
  await mkdir(root, { recursive: true });
  const logs: { message: string; severity: number }[] = [];
  const progress: TestHandlerContext['progress'] = [];
  const controller = new AbortController();
  const ctx: HandlerContext = {
    parameters: {},
    job: { id: 41, client: 'acme', workflow: 'test', priority: 5 },
    task: { id: 7, name: 'step', queue: 'work' },
    attempt: { id: 99, number: 1 },
    inputs,
    log: (message, severity = 1) => {
      logs.push({ message, severity });
    },
    progress: (fraction, message, detail) => {
      progress.push({
        fraction,
        ...(message !== undefined ? { message } : {}),
        ...(detail ? { detail } : {}),
      });
    },
    signal: controller.signal,
    workdir,
    storage: {
      root,
      resolve: (relative: string) => {
        const p = resolvePath(root, relative);
        if (!p.startsWith(root + '/'))
          return Promise.reject(new PermanentTaskError(`path ${relative} leaves the storage root`));
        return Promise.resolve(p);
      },
    },
    tasks: {},
    logger: pino({ level: 'silent' }),
    fetch: createGuardedFetch().fetch,
    ...overrides,
  };
  return { ctx, logs, progress, controller, cleanup: () => rm(base, { recursive: true, force: true }) };
}

/** True while a process with `pid` runs (a zombie, dead but not yet reaped, counts as gone). */
export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return false;
  }
}
