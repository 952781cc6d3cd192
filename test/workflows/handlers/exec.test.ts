import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, afterEach, describe, it } from 'node:test';
import { PermanentTaskError } from '../../../src/errors/task-errors.js';
import { EXEC_LIMITS, execHandler } from '../../../src/workflows/handlers/exec.js';
import { waitFor } from '../../helpers/wait-for.js';
import { isAlive, makeHandlerContext, type TestHandlerContext } from '../handler-context.js';

const defaults = { ...EXEC_LIMITS };
const contexts: TestHandlerContext[] = [];
async function context(inputs: Record<string, unknown>): Promise<TestHandlerContext> {
  const c = await makeHandlerContext(inputs);
  contexts.push(c);
  return c;
}
const stray: number[] = [];

after(async () => {
  for (const pid of stray) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
  await Promise.all(contexts.map((c) => c.cleanup()));
});

describe('exec handler', () => {
  // Inside the describe: on Node 20 a file-level afterEach does not run between nested tests.
  afterEach(() => {
    Object.assign(EXEC_LIMITS, defaults);
  });
  it('passes shell metacharacters in args literally and never runs them', async () => {
    const marker = join('/tmp', `te-pwned-${process.pid}-${Date.now()}`);
    const args = [
      `$(touch ${marker})`,
      `; touch ${marker}`,
      '`id`',
      `&& touch ${marker}`,
      '| cat',
      '\'quoted\' "double"',
    ];
    const { ctx } = await context({ command: 'printf', args: ['%s\\n', ...args] });
    const out = await execHandler(ctx);
    assert.equal(out.exit_code, 0);
    assert.equal(out.stdout, args.map((a) => `${a}\n`).join(''));
    assert.equal(existsSync(marker), false, 'the command substitution must not have run');
  });

  it('returns stdout and stderr, streams each line to the job log, and parses JSON output', async () => {
    const { ctx, logs } = await context({
      command: 'sh',
      args: ['-c', 'echo "{\\"a\\": [1, 2]}"; echo warn >&2'],
      output: 'json',
    });
    const out = await execHandler(ctx);
    assert.deepEqual(out.json, { a: [1, 2] });
    assert.equal(out.stdout, '{"a": [1, 2]}\n');
    assert.equal(out.stderr, 'warn\n');
    const lines = logs.filter((l) => l.severity === 1).map((l) => l.message);
    assert.deepEqual(lines.sort(), ['stderr: warn', '{"a": [1, 2]}'].sort());
  });

  it('fails with the exit code and the tail of stderr on a non-zero exit', async () => {
    const { ctx } = await context({
      command: 'sh',
      args: ['-c', 'echo doing; echo "disk on fire" >&2; exit 3'],
    });
    await assert.rejects(execHandler(ctx), (err: Error) => {
      assert.ok(!(err instanceof PermanentTaskError), 'a non-zero exit is retryable');
      assert.match(err.message, /exited with code 3/);
      assert.match(err.message, /disk on fire/);
      return true;
    });
  });

  it('fails permanently with a clear message when the command does not exist', async () => {
    const { ctx } = await context({ command: 'no-such-program-te', args: [] });
    await assert.rejects(execHandler(ctx), (err: Error) => {
      assert.ok(err instanceof PermanentTaskError);
      assert.match(err.message, /command "no-such-program-te" was not found/);
      return true;
    });
  });

  it('rejects non-string args and a bad output mode before running anything', async () => {
    const a = await context({ command: 'echo', args: ['ok', null] });
    await assert.rejects(execHandler(a.ctx), /args\[1\] must be a string, number or boolean/);
    const b = await context({ command: 'echo', output: 'yaml' });
    await assert.rejects(execHandler(b.ctx), /"output" must be "text" or "json"/);
    const c = await context({ command: '' });
    await assert.rejects(execHandler(c.ctx), PermanentTaskError);
  });

  it('fails when output: json gets stdout that is not JSON', async () => {
    const { ctx } = await context({ command: 'echo', args: ['not json'], output: 'json' });
    await assert.rejects(execHandler(ctx), /not JSON/);
  });

  it('bounds the logged lines with one "output truncated" line and keeps only the tail of stdout', async () => {
    EXEC_LIMITS.logLines = 5;
    EXEC_LIMITS.captureBytes = 1024;
    const { ctx, logs } = await context({
      command: 'sh',
      args: ['-c', 'i=0; while [ $i -lt 2000 ]; do echo "line $i"; i=$((i+1)); done'],
    });
    const out = await execHandler(ctx);
    const lines = logs.filter((l) => l.severity >= 1).map((l) => l.message);
    assert.deepEqual(lines.slice(0, 5), ['line 0', 'line 1', 'line 2', 'line 3', 'line 4']);
    assert.equal(lines.length, 6);
    assert.match(lines[5]!, /^output truncated/);
    assert.ok(out.stdout.length <= 1024, `stdout kept ${out.stdout.length} bytes`);
    assert.ok(out.stdout.endsWith('line 1999\n'));
  });

  it('cuts very long lines in the log', async () => {
    EXEC_LIMITS.lineBytes = 100;
    const { ctx, logs } = await context({
      command: 'sh',
      args: ['-c', 'head -c 1000 /dev/zero | tr "\\0" x; echo'],
    });
    await execHandler(ctx);
    const lines = logs.filter((l) => l.severity === 1).map((l) => l.message);
    assert.equal(lines.join(''), 'x'.repeat(1000));
    assert.ok(lines.length >= 10);
    assert.ok(lines.every((l) => l.length <= 100));
  });

  it('splits a long line the same way when its newline comes in the same write', async () => {
    EXEC_LIMITS.lineBytes = 100;
    const { ctx, logs } = await context({
      command: process.execPath,
      args: ['-e', "process.stdout.write('y'.repeat(1000) + '\\n')"],
    });
    await execHandler(ctx);
    const lines = logs.filter((l) => l.severity === 1).map((l) => l.message);
    assert.deepEqual(
      lines,
      Array.from({ length: 10 }, () => 'y'.repeat(100)),
    );
  });

  it('gives the program a minimal environment plus env, never the engine environment', async () => {
    process.env.TE_SECRET_FOR_TEST = 'do-not-leak';
    try {
      const { ctx } = await context({ command: 'env', env: { GREETING: 'hi', COUNT: 3 } });
      const out = await execHandler(ctx);
      const env = Object.fromEntries(
        out.stdout
          .trim()
          .split('\n')
          .map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]),
      );
      assert.equal(env.GREETING, 'hi');
      assert.equal(env.COUNT, '3');
      assert.equal(env.TASK_ENGINE_JOB_ID, '41');
      assert.equal(env.HOME, ctx.workdir);
      assert.equal(env.TE_SECRET_FOR_TEST, undefined);
      assert.equal(env.DATABASE_URL, undefined);
    } finally {
      delete process.env.TE_SECRET_FOR_TEST;
    }
  });

  it('runs in the scratch folder by default, accepts cwd inside it or the storage root, refuses others', async () => {
    const a = await context({ command: 'pwd' });
    assert.equal((await execHandler(a.ctx)).stdout.trim(), a.ctx.workdir);
    const b = await context({ command: 'pwd', cwd: 'sub' });
    await mkdir(join(b.ctx.workdir, 'sub'));
    assert.equal((await execHandler(b.ctx)).stdout.trim(), join(b.ctx.workdir, 'sub'));
    const c = await context({ command: 'pwd' });
    c.ctx.inputs.cwd = c.ctx.storage.root;
    assert.equal((await execHandler(c.ctx)).stdout.trim(), c.ctx.storage.root);
    const d = await context({ command: 'pwd', cwd: '/etc' });
    await assert.rejects(execHandler(d.ctx), /outside the attempt's scratch folder/);
    const e = await context({ command: 'pwd', cwd: '../..' });
    await assert.rejects(execHandler(e.ctx), /outside the attempt's scratch folder/);
    const f = await context({ command: 'pwd', cwd: 'missing' });
    await assert.rejects(execHandler(f.ctx), /does not exist/);
  });

  it('on abort kills the child and its grandchild within 2 s', async () => {
    const { ctx, controller } = await context({
      command: 'sh',
      args: ['-c', 'sleep 30 & echo $! > grandchild.pid; echo $$ > child.pid; wait'],
    });
    const run = execHandler(ctx);
    run.catch(() => undefined);
    const pids = await waitFor(
      async () => {
        try {
          return [
            Number(await readFile(join(ctx.workdir, 'child.pid'), 'utf8')),
            Number(await readFile(join(ctx.workdir, 'grandchild.pid'), 'utf8')),
          ];
        } catch {
          return null;
        }
      },
      { what: 'pid files' },
    );
    stray.push(...pids);
    assert.ok(pids.every(isAlive));
    const started = Date.now();
    controller.abort(new Error('job broken'));
    await assert.rejects(run, /was stopped: job broken/);
    await waitFor(() => pids.every((p) => !isAlive(p)), {
      timeoutMs: 2000,
      what: 'child and grandchild to die',
    });
    assert.ok(Date.now() - started < 2000);
  });

  it('sends SIGKILL after the grace delay to processes that ignore SIGTERM', async () => {
    EXEC_LIMITS.killGraceMs = 300;
    const { ctx, controller } = await context({
      command: 'sh',
      args: ['-c', 'trap "" TERM; sleep 30 & echo $! > grandchild.pid; echo $$ > child.pid; wait; wait'],
    });
    const run = execHandler(ctx);
    run.catch(() => undefined);
    const pids = await waitFor(
      async () => {
        try {
          return [
            Number(await readFile(join(ctx.workdir, 'child.pid'), 'utf8')),
            Number(await readFile(join(ctx.workdir, 'grandchild.pid'), 'utf8')),
          ];
        } catch {
          return null;
        }
      },
      { what: 'pid files' },
    );
    stray.push(...pids);
    controller.abort();
    await new Promise((r) => setTimeout(r, 100));
    assert.ok(pids.every(isAlive), 'SIGTERM is ignored, so both still run before the grace delay');
    await assert.rejects(run, /was stopped/);
    await waitFor(() => pids.every((p) => !isAlive(p)), { timeoutMs: 2000, what: 'SIGKILL to end both' });
  });

  it('does not start when the signal is already aborted', async () => {
    const marker = join('/tmp', `te-not-started-${process.pid}-${Date.now()}`);
    const { ctx, controller } = await context({ command: 'touch', args: [marker] });
    controller.abort();
    await assert.rejects(execHandler(ctx), /was stopped/);
    assert.equal(existsSync(marker), false);
  });

  it('kills background processes the program leaves behind when it exits', async () => {
    const { ctx } = await context({ command: 'sh', args: ['-c', 'sleep 30 >/dev/null 2>&1 & echo $!'] });
    const out = await execHandler(ctx);
    const pid = Number(out.stdout.trim());
    stray.push(pid);
    await waitFor(() => !isAlive(pid), { timeoutMs: 2000, what: 'the leftover sleep to be killed' });
  });

  it('finishes even when a leftover process holds the output pipe open', async () => {
    EXEC_LIMITS.exitDrainMs = 200;
    const { ctx } = await context({ command: 'sh', args: ['-c', 'sleep 30 & echo started'] });
    const started = Date.now();
    const out = await execHandler(ctx);
    assert.equal(out.stdout, 'started\n');
    assert.ok(Date.now() - started < 3000);
  });

  it('runs a program given by path relative to cwd', async () => {
    const { ctx } = await context({ command: './hello.sh' });
    await writeFile(join(ctx.workdir, 'hello.sh'), '#!/bin/sh\necho "from script $1"\n', { mode: 0o755 });
    ctx.inputs.args = ['arg'];
    assert.equal((await execHandler(ctx)).stdout, 'from script arg\n');
  });
});
