import assert from 'node:assert/strict';
import { cp, mkdtemp, rm, symlink, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { PermanentTaskError } from '../../../src/errors/task-errors.js';
import { execHandler } from '../../../src/workflows/handlers/exec.js';
import { resolveHandler } from '../../../src/workflows/handlers/registry.js';
import { sleepHandler } from '../../../src/workflows/handlers/sleep.js';
import { makeHandlerContext, type TestHandlerContext } from '../handler-context.js';

const FIXTURE = resolve('test/fixtures/workflows/good');

describe('handler registry', () => {
  let dir: string;
  const contexts: TestHandlerContext[] = [];
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'te-registry-'));
    await cp(join(FIXTURE, 'handlers'), join(dir, 'handlers'), { recursive: true });
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
    await Promise.all(contexts.map((c) => c.cleanup()));
  });

  it('resolves built-ins by name', async () => {
    assert.equal(await resolveHandler('exec', dir), execHandler);
    assert.equal(await resolveHandler('sleep', dir), sleepHandler);
  });

  it('loads a TypeScript module handler and hands it the context', async () => {
    const handler = await resolveHandler('handlers/echo-ctx.ts', FIXTURE);
    const c = await makeHandlerContext(
      { plan: { a: 1 } },
      { parameters: { content_id: 'x' }, tasks: { probe: { output: 1, state: 'succeeded' } } },
    );
    contexts.push(c);
    const out = (await handler(c.ctx)) as Record<string, unknown>;
    assert.equal(out.kind, 'ts');
    assert.deepEqual(out.inputs, { plan: { a: 1 } });
    assert.deepEqual(out.parameters, { content_id: 'x' });
    assert.deepEqual(out.job, { id: 41, client: 'acme', workflow: 'test', priority: 5 });
    assert.deepEqual(out.task, { id: 7, name: 'step', queue: 'work' });
    assert.deepEqual(out.attempt, { id: 99, number: 1 });
    assert.equal(out.workdir, c.ctx.workdir);
    assert.equal(out.storage_root, c.ctx.storage.root);
    assert.equal(out.aborted, false);
    assert.deepEqual(out.tasks, { probe: { output: 1, state: 'succeeded' } });
    assert.deepEqual(c.logs, [{ message: 'echo-ctx ran for task step', severity: 1 }]);
  });

  it('loads a JavaScript module handler', async () => {
    const handler = await resolveHandler('handlers/echo-ctx.mjs', dir);
    const c = await makeHandlerContext({ n: 2 });
    contexts.push(c);
    assert.deepEqual(await handler(c.ctx), { kind: 'mjs', inputs: { n: 2 }, task: 'step' });
  });

  it('caches a module per file and reloads it when the file changes', async () => {
    const file = join(dir, 'handlers', 'versioned.mjs');
    await writeFile(file, 'export default async () => 1;\n');
    const first = await resolveHandler('handlers/versioned.mjs', dir);
    assert.equal(await resolveHandler('handlers/versioned.mjs', dir), first);
    await writeFile(file, 'export default async () => 2;\n');
    const later = new Date(Date.now() + 5000);
    await utimes(file, later, later);
    const second = await resolveHandler('handlers/versioned.mjs', dir);
    assert.notEqual(second, first);
    const c = await makeHandlerContext({});
    contexts.push(c);
    assert.equal(await second(c.ctx), 2);
  });

  it('refuses unknown names, missing files, paths outside the folder and modules without a default export', async () => {
    await symlink('/etc/hostname', join(dir, 'handlers', 'escape.js'));
    for (const [run, pattern] of [
      ['shell', /is not a built-in handler/],
      ['handlers/missing.ts', /does not exist/],
      ['../outside.ts', /outside the workflows folder/],
      ['/etc/passwd.js', /absolute path/],
      ['handlers/escape.js', /symlink/],
      ['handlers/no-default.mjs', /no default export function/],
    ] as const) {
      await assert.rejects(resolveHandler(run, dir), (err: Error) => {
        assert.ok(err instanceof PermanentTaskError, `${run}: ${err.message}`);
        assert.match(err.message, pattern, run);
        return true;
      });
    }
  });
});
