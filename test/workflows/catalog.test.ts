import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { after, describe, it } from 'node:test';
import pino from 'pino';
import { BUNDLED_WORKFLOWS_DIR } from '../../src/config/load-config.js';
import { WorkflowCatalogError, loadCatalog, reloadOnSignal } from '../../src/workflows/catalog.js';
import { waitFor } from '../helpers/wait-for.js';

const GOOD = resolve('test/fixtures/workflows/good');
const temps: string[] = [];
after(() => Promise.all(temps.map((d) => rm(d, { recursive: true, force: true }))));

/** A workflows folder holding `files` (path → text). */
async function folder(files: Record<string, string>): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'te-catalog-'));
  temps.push(dir);
  for (const [path, text] of Object.entries(files)) {
    await mkdir(dirname(join(dir, path)), { recursive: true });
    await writeFile(join(dir, path), text);
  }
  return dir;
}

const MINIMAL = 'name: ok\ntasks:\n  - name: a\n    run: sleep\n    with: { seconds: 0 }\n';

describe('loadCatalog', () => {
  it('loads common and client definitions, resolving needs, queues and defaults', async () => {
    const catalog = await loadCatalog(GOOD);
    assert.equal(catalog.dir, GOOD);
    const common = catalog.resolve('other', 'pipeline')!;
    assert.equal(common.source, 'common');
    assert.equal(common.file, join(GOOD, 'common', 'pipeline.yaml'));
    const tasks = Object.fromEntries(common.definition.tasks.map((t) => [t.name, t]));
    assert.deepEqual(tasks.start!.needs, []);
    assert.deepEqual(tasks.left!.needs, ['start'], 'omitted needs = the task above');
    assert.deepEqual(tasks.join!.needs, ['left', 'right']);
    assert.deepEqual(tasks.independent!.needs, [], 'needs: [] starts at once');
    assert.equal(tasks.left!.queue, 'media-heavy');
    assert.equal(tasks.start!.queue, 'work');
    assert.equal(tasks.right!.timeout, undefined, 'timeout 0 means no limit');
    assert.equal(tasks.join!.retry_limit, 2);
    assert.equal(tasks.join!.retry_delay, 0.5);
    assert.equal(tasks.join!.continue_on_error, true);
    assert.equal(tasks.join!.if, '{{ tasks.right.output.stdout }}');
    assert.deepEqual(common.definition.outputs, { message: '{{ tasks.right.output.stdout }}' });
    const props = common.definition.parameters.properties as Record<string, unknown>;
    assert.ok(
      'rest_endpoints' in props && 'custom_data' in props,
      'every workflow accepts rest_endpoints and custom_data',
    );
    assert.deepEqual(catalog.queues(), ['light', 'media-heavy', 'work']);
  });

  it('gives a client its own copy first and the common ones otherwise', async () => {
    const catalog = await loadCatalog(GOOD);
    const own = catalog.resolve('acme', 'pipeline')!;
    assert.equal(own.source, 'client');
    assert.equal(own.definition.description, "acme's own pipeline.");
    assert.equal(catalog.resolve('acme', 'shared')!.source, 'common');
    assert.equal(catalog.resolve('acme', 'nope'), null);
    assert.deepEqual(
      catalog.list('acme').map((w) => [w.definition.name, w.source]),
      [
        ['pipeline', 'client'],
        ['shared', 'common'],
      ],
    );
    assert.deepEqual(
      catalog.list('other').map((w) => [w.definition.name, w.source]),
      [
        ['pipeline', 'common'],
        ['shared', 'common'],
      ],
    );
    // Folders that are not client names (handlers/, _drafts/, Not-A-Client/) are never read as definitions.
    assert.equal(catalog.resolve('handlers', 'config'), null);
  });

  it('loads the bundled workflows, demo included', async () => {
    const catalog = await loadCatalog(BUNDLED_WORKFLOWS_DIR);
    const demo = catalog.resolve('anyone', 'demo')!;
    assert.equal(demo.source, 'common');
    assert.deepEqual(
      demo.definition.tasks.map((t) => [t.name, t.run, t.needs]),
      [
        ['hello', 'exec', []],
        ['wait', 'sleep', ['hello']],
        ['report', 'exec', ['hello', 'wait']],
      ],
    );
  });

  it('fails when the folder does not exist', async () => {
    await assert.rejects(
      loadCatalog('/nonexistent/workflows'),
      /workflows folder \/nonexistent\/workflows cannot be read/,
    );
  });

  const task = (extra: string, run = 'sleep\n    with: { seconds: 0 }') =>
    `  - name: a\n    run: ${run}\n${extra}`;
  const bad: [string, string, RegExp][] = [
    ['invalid YAML', 'name: bad\ntasks: [\n', /not valid YAML/],
    ['duplicate YAML keys', 'name: bad\nname: bad\ntasks: []\n', /not valid YAML: Map keys must be unique/],
    ['invalid JSON', '{"name": "bad",', /not valid JSON/],
    [
      'name differs from the file name',
      MINIMAL.replace('name: ok', 'name: other'),
      /name "other" must equal the file name "bad"/,
    ],
    ['no tasks', 'name: bad\ntasks: []\n', /tasks must NOT have fewer than 1 items/],
    [
      'an ordinary task that needs a cleanup task',
      `name: bad\ntasks:\n  - name: clean\n    run: sleep\n    when: always\n  - name: after\n    run: sleep\n    needs: [clean]\n`,
      /tasks\.after\.needs names "clean", a cleanup task \(when: always\), which runs only after every other task has ended/,
    ],
    [
      'unknown top-level field',
      `name: bad\nsteps: 1\ntasks:\n${task('')}`,
      /steps is not a known field \(accepted: name, description, parameters, tasks, outputs, concurrency\)/,
    ],
    [
      'unknown task field',
      `name: bad\ntasks:\n${task('    retries: 2\n')}`,
      /tasks\[0\]\.retries is not a known field/,
    ],
    [
      'bad task name',
      `name: bad\ntasks:\n  - name: Bad-Name\n    run: fail\n`,
      /tasks\[0\]\.name "Bad-Name" is not accepted: lower-case letters, digits and _/,
    ],
    [
      'duplicate task names',
      `name: bad\ntasks:\n${task('')}${task('')}`,
      /task name "a" is used more than once/,
    ],
    [
      'needs an unknown task',
      `name: bad\ntasks:\n${task('    needs: [ghost]\n')}`,
      /tasks\.a\.needs names "ghost", which is not a task of this workflow/,
    ],
    [
      'needs itself',
      `name: bad\ntasks:\n${task('    needs: [a]\n')}`,
      /tasks\.a\.needs names the task itself/,
    ],
    [
      'needs cycle',
      'name: bad\ntasks:\n  - { name: a, run: fail, needs: [c] }\n  - { name: b, run: fail, needs: [a] }\n  - { name: c, run: fail, needs: [b] }\n',
      /needs form a cycle: a -> c -> b -> a/,
    ],
    [
      'run neither built-in nor module',
      `name: bad\ntasks:\n  - name: a\n    run: shell\n`,
      /run "shell" is not a built-in handler \(exec, http, sleep, fail\) or a module path/,
    ],
    [
      'module missing',
      `name: bad\ntasks:\n  - name: a\n    run: handlers/missing.ts\n`,
      /module file .*handlers\/missing\.ts does not exist/,
    ],
    [
      'module outside the folder',
      `name: bad\ntasks:\n  - name: a\n    run: ../outside.js\n`,
      /points outside the workflows folder/,
    ],
    [
      'module by absolute path',
      `name: bad\ntasks:\n  - name: a\n    run: /etc/passwd.js\n`,
      /is an absolute path/,
    ],
    [
      'bad queue name',
      `name: bad\ntasks:\n${task('    queue: Heavy Queue\n')}`,
      /tasks\[0\]\.queue "Heavy Queue" is not accepted/,
    ],
    [
      'negative timeout',
      `name: bad\ntasks:\n${task('    timeout: -1\n')}`,
      /tasks\[0\]\.timeout must be >= 0/,
    ],
    [
      'fractional retry_limit',
      `name: bad\ntasks:\n${task('    retry_limit: 1.5\n')}`,
      /tasks\[0\]\.retry_limit must be integer/,
    ],
    [
      'negative retry_delay',
      `name: bad\ntasks:\n${task('    retry_delay: -2\n')}`,
      /tasks\[0\]\.retry_delay must be >= 0/,
    ],
    [
      'parameters that do not compile',
      `name: bad\nparameters: { type: object, properties: { a: { tpye: string } } }\ntasks:\n${task('')}`,
      /parameters is not a usable JSON Schema: strict mode: unknown keyword: "tpye"/,
    ],
    [
      'reference default cycle',
      `name: bad\nparameters: { type: object, properties: { a: { type: string, default: '{b}' }, b: { type: string, default: '{a}' } } }\ntasks:\n${task('')}`,
      /defaults refer to each other in a cycle/,
    ],
    [
      'template that does not parse',
      `name: bad\ntasks:\n${task('', 'exec\n    with: { command: echo, args: ["{{ constructor.constructor(\'x\')() }}"] }')}`,
      /tasks\.a\.with\.args\[0\]: template expression .* starts with "constructor"/,
    ],
    [
      'unclosed template',
      `name: bad\ntasks:\n${task("    if: '{{ parameters.x'\n")}`,
      /tasks\.a\.if: template .* without a closing/,
    ],
    [
      'template on an undeclared parameter',
      `name: bad\ntasks:\n${task('', "exec\n    with: { command: echo, args: ['{{ parameters.nope }}'] }")}`,
      /refers to parameter nope, which the parameters schema does not declare/,
    ],
    [
      'template on a task that may not have run',
      "name: bad\ntasks:\n  - { name: a, run: fail }\n  - { name: b, run: fail, needs: [], with: { message: '{{ tasks.a.output }}' } }\n",
      /tasks\.b\.with\.message: \{\{ tasks\.a\.output \}\} reads task a, which is not among the tasks this one needs/,
    ],
    [
      'template on an unknown task',
      "name: bad\ntasks:\n  - { name: a, run: fail }\noutputs: { m: '{{ tasks.zz.output }}' }\n",
      /outputs\.m: \{\{ tasks\.zz\.output \}\} refers to task zz/,
    ],
    [
      'template on an unknown job field',
      "name: bad\ntasks:\n  - { name: a, run: fail, with: { message: '{{ job.secret }}' } }\n",
      /job offers job\.id, job\.client, job\.workflow, job\.priority/,
    ],
    [
      'unknown built-in input',
      `name: bad\ntasks:\n${task('', 'exec\n    with: { command: echo, arg: [x] }')}`,
      /tasks\.a\.with\.arg is not an input of exec \(accepted: command, args, cwd, env, output, progress, progress_duration\)/,
    ],
    [
      'missing required built-in input',
      `name: bad\ntasks:\n  - name: a\n    run: http\n`,
      /tasks\.a\.with\.url is required by http/,
    ],
    [
      'exec args not an array',
      `name: bad\ntasks:\n${task('', "exec\n    with: { command: echo, args: 'a b' }")}`,
      /with\.args must be an array/,
    ],
  ];
  for (const [what, text, pattern] of bad) {
    it(`rejects a file with ${what}, naming the path and the problem`, async () => {
      const ext = text.startsWith('{') ? 'json' : 'yaml';
      const dir = await folder({ [`common/bad.${ext}`]: text, 'common/ok.yaml': MINIMAL });
      await assert.rejects(loadCatalog(dir), (err: Error) => {
        assert.ok(err instanceof WorkflowCatalogError, err.message);
        assert.ok(err.message.includes(join(dir, 'common', `bad.${ext}`)), err.message);
        assert.match(err.message, pattern);
        assert.equal(err.files.length, 1, 'only the bad file is reported');
        return true;
      });
    });
  }

  it('rejects a module handler reached through a symlink that leads outside', async () => {
    const dir = await folder({
      'common/bad.yaml': 'name: bad\ntasks:\n  - { name: a, run: handlers/link.js }\n',
    });
    const outside = await folder({ 'evil.js': 'export default async () => 1;' });
    await mkdir(join(dir, 'handlers'));
    await symlink(join(outside, 'evil.js'), join(dir, 'handlers', 'link.js'));
    await assert.rejects(loadCatalog(dir), /leads outside the workflows folder through a symlink/);
  });

  it('reports every bad file and every problem at once, and two files for one workflow', async () => {
    const dir = await folder({
      'common/one.yaml': 'name: wrong\ntasks:\n  - { name: a, run: shell }\n',
      'acme/two.yaml': 'name: two\ntasks:\n  - { name: a, run: fail, queue: BAD }\n',
      'common/dup.yaml': MINIMAL.replace('name: ok', 'name: dup'),
      'common/dup.json': '{"name": "dup", "tasks": [{"name": "a", "run": "fail"}]}',
    });
    await assert.rejects(loadCatalog(dir), (err: Error) => {
      assert.ok(err instanceof WorkflowCatalogError);
      assert.deepEqual(err.files.map((f) => f.file).sort(), [
        join(dir, 'acme', 'two.yaml'),
        join(dir, 'common', 'dup.json'),
        join(dir, 'common', 'dup.yaml'),
        join(dir, 'common', 'one.yaml'),
      ]);
      const one = err.files.find((f) => f.file.endsWith('one.yaml'))!;
      assert.equal(one.problems.length, 2, one.problems.join('\n'));
      assert.match(err.message, /defined by more than one file/);
      return true;
    });
  });

  it('reload picks up changes and keeps the old set when a file is bad', async () => {
    const dir = await folder({ 'common/ok.yaml': MINIMAL });
    const catalog = await loadCatalog(dir);
    assert.deepEqual(
      catalog.list('x').map((w) => w.definition.name),
      ['ok'],
    );
    await writeFile(
      join(dir, 'common', 'more.yaml'),
      MINIMAL.replace('name: ok', 'name: more').replace('run: sleep', 'run: sleep\n    queue: extra'),
    );
    await catalog.reload();
    assert.deepEqual(
      catalog.list('x').map((w) => w.definition.name),
      ['more', 'ok'],
    );
    assert.deepEqual(catalog.queues(), ['extra', 'work']);
    await writeFile(join(dir, 'common', 'broken.yaml'), 'name: broken\ntasks: nope\n');
    await assert.rejects(catalog.reload(), /broken\.yaml/);
    assert.deepEqual(
      catalog.list('x').map((w) => w.definition.name),
      ['more', 'ok'],
      'the old set stays',
    );
    await rm(join(dir, 'common', 'broken.yaml'));
    await Promise.all([catalog.reload(), catalog.reload()]);
    assert.deepEqual(
      catalog.list('x').map((w) => w.definition.name),
      ['more', 'ok'],
    );
  });

  it('calls onReload listeners after a successful reload only, with the new set in place', async () => {
    const dir = await folder({ 'common/ok.yaml': MINIMAL });
    const catalog = await loadCatalog(dir);
    const seen: string[][] = [];
    const off = catalog.onReload!(() => {
      seen.push(catalog.queues());
    });
    catalog.onReload!(() => {
      throw new Error('a listener that throws does not undo the reload');
    });
    await writeFile(
      join(dir, 'common', 'fresh.yaml'),
      MINIMAL.replace('name: ok', 'name: fresh').replace('run: sleep', 'run: sleep\n    queue: fresh'),
    );
    await catalog.reload();
    assert.deepEqual(seen, [['fresh', 'work']]);
    await writeFile(join(dir, 'common', 'broken.yaml'), 'name: broken\ntasks: nope\n');
    await assert.rejects(catalog.reload(), /broken\.yaml/);
    assert.equal(seen.length, 1, 'a failed reload calls no listener');
    await rm(join(dir, 'common', 'broken.yaml'));
    off();
    await catalog.reload();
    assert.equal(seen.length, 1, 'a removed listener is not called');
  });

  it('reloads on SIGHUP through reloadOnSignal', async () => {
    const dir = await folder({ 'common/ok.yaml': MINIMAL });
    const catalog = await loadCatalog(dir);
    const stop = reloadOnSignal(catalog, pino({ level: 'silent' }));
    try {
      await writeFile(join(dir, 'common', 'late.yaml'), MINIMAL.replace('name: ok', 'name: late'));
      process.kill(process.pid, 'SIGHUP');
      await waitFor(() => catalog.resolve('x', 'late'), { what: 'the reload after SIGHUP' });
    } finally {
      stop();
    }
  });
});
