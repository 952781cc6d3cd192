/**
 * Fails a test file that leaves an engine, an engine process or a child process running.
 *
 * The helpers that start things register them here ({@link trackRunning}): engines started
 * through `startTestEngine`/`createIdleEngine`, engine processes from `spawnEngineProcess`, CLI
 * processes from `test/helpers/cli.ts`. After the file's last test, a root `after` hook lists what
 * is still running — plus any live child process of the test process that no helper registered
 * (a raw `spawn` in a test) — names the test during which each was started and where, stops it
 * (so the file can exit) and throws, which fails the file.
 *
 * `scripts/run-tests.mjs` preloads this module into every test file (`--import`), so files that
 * use no helper are checked too; importing it from a helper registers the same hooks once. Its
 * `after` hook is the file's first root hook, so it runs before any root-level `after` of the
 * file itself: stop engines and processes in the suite's (`describe`'s) `after` or in the test.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { after, beforeEach } from 'node:test';

/** Something a test started that must be stopped before its file ends. */
interface Running {
  kind: 'engine' | 'engine process' | 'child process';
  label: string;
  /** The test that was running (or had last started) when it was started. */
  test: string;
  /** The caller's frame in a test file, `file:line`. */
  site: string;
  /** The process id, for processes (so the /proc scan does not count it twice). */
  pid?: number;
  /** Stops it after the leak was reported (best effort, bounded). */
  stop: () => Promise<void> | void;
}

interface Guard {
  running: Set<Running>;
  currentTest: string;
}

const KEY = Symbol.for('task-engine.test.leak-guard');
const registry = globalThis as { [KEY]?: Guard };
const firstLoad = registry[KEY] === undefined;
const guard: Guard = (registry[KEY] ??= {
  running: new Set(),
  currentTest: '(a before hook, before any test)',
});

/** The first stack frame outside test/helpers/, as `path:line`. */
function callerSite(): string {
  const frames = (new Error().stack ?? '').split('\n').slice(1);
  const frame = frames.find((f) => !f.includes('/test/helpers/') && !f.includes('node:')) ?? frames[0] ?? '';
  const m = /(?:file:\/\/)?(\/[^\s():]+):(\d+)/.exec(frame);
  return m ? `${m[1]!.replace(/^.*?\/(test|src|bench)\//, '$1/')}:${m[2]}` : frame.trim();
}

/**
 * Registers something that now runs; call the returned function once it has stopped.
 * @param stop how to stop it should the test leak it (called by the guard, after the report).
 */
export function trackRunning(
  kind: Running['kind'],
  label: string,
  stop: () => Promise<void> | void,
  pid?: number,
): () => void {
  const entry: Running = {
    kind,
    label,
    test: guard.currentTest,
    site: callerSite(),
    stop,
    ...(pid ? { pid } : {}),
  };
  guard.running.add(entry);
  return () => {
    guard.running.delete(entry);
  };
}

/** Live (not zombie) child processes of this process: pid and command line. */
function liveChildren(): { pid: number; command: string }[] {
  const kids: { pid: number; command: string }[] = [];
  let tasks: string[];
  try {
    tasks = readdirSync(`/proc/${process.pid}/task`);
  } catch {
    return kids; // no /proc (not Linux): only registered things are checked
  }
  for (const tid of tasks) {
    let list: string;
    try {
      list = readFileSync(`/proc/${process.pid}/task/${tid}/children`, 'utf8');
    } catch {
      continue;
    }
    for (const pid of list.trim().split(/\s+/).filter(Boolean).map(Number)) {
      try {
        const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
        const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
        if (state === 'Z' || state === 'X') continue;
        const command = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').join(' ').trim();
        // tsx's esbuild service lives as long as the test process: it is the loader, not a leak.
        if (/\/esbuild(\s|$)/.test(command) && command.includes('--service')) continue;
        kids.push({ pid, command });
      } catch {
        // exited meanwhile
      }
    }
  }
  return kids;
}

/** Stops `fn`'s work or gives up after `ms`, so a stuck stop cannot hang the file. */
async function bounded(fn: () => Promise<void> | void, ms: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([
    Promise.resolve()
      .then(fn)
      .catch(() => undefined),
    new Promise<void>((resolve) => (timer = setTimeout(resolve, ms))),
  ]);
  clearTimeout(timer);
}

async function checkForLeaks(): Promise<void> {
  const leaked = [...guard.running];
  const tracked = new Set(leaked.map((r) => r.pid).filter((p) => p !== undefined));
  const strays = liveChildren().filter((c) => !tracked.has(c.pid));
  if (leaked.length === 0 && strays.length === 0) return;
  const lines = [
    ...leaked.map((r) => `- ${r.kind} ${r.label}, started in "${r.test}" at ${r.site}`),
    ...strays.map(
      (c) =>
        `- child process ${c.pid} (${c.command.slice(0, 120)}), started by no helper (the last test to start was "${guard.currentTest}")`,
    ),
  ];
  for (const r of leaked) await bounded(r.stop, 5_000);
  guard.running.clear();
  for (const c of strays)
    try {
      process.kill(c.pid, 'SIGKILL');
    } catch {
      // gone
    }
  throw new Error(
    `the tests of this file left running (stop them in an after hook or at the end of the test):\n${lines.join('\n')}`,
  );
}

if (firstLoad) {
  beforeEach((t) => {
    guard.currentTest = t.name;
  });
  after(checkForLeaks);
}
