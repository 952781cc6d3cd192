/**
 * Task weights (`slots`) and task concurrency keys (`concurrency`) in definition files: what the
 * loader accepts and normalises, what it refuses and how it says so, and how a key is rendered at
 * submission (docs/task-slots-and-concurrency.md).
 */
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, describe, it } from 'node:test';
import { resolveTasks } from '../../src/engine/jobs/submit.js';
import { WorkflowCatalogError, loadCatalog } from '../../src/workflows/catalog.js';
import {
  MAX_CONCURRENCY_KEY_LENGTH,
  fitConcurrencyKey,
  renderConcurrencyKey,
} from '../../src/workflows/task-concurrency.js';

const temps: string[] = [];
after(() => Promise.all(temps.map((d) => rm(d, { recursive: true, force: true }))));

async function folder(files: Record<string, string>): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'te-slots-def-'));
  temps.push(dir);
  for (const [path, text] of Object.entries(files)) {
    await mkdir(dirname(join(dir, path)), { recursive: true });
    await writeFile(join(dir, path), text);
  }
  return dir;
}

const ENCODE = `name: encode
parameters:
  type: object
  properties:
    content_id: { type: string }
tasks:
  - name: probe
    run: sleep
    with: { seconds: 0 }
  - name: transcode
    run: sleep
    with: { seconds: 0 }
    slots: 4
    concurrency: { key: "encode:{{ job.client }}:{{ parameters.content_id }}", limit: 2 }
`;

describe('task slots and concurrency in definitions', () => {
  it('loads slots and concurrency, leaving tasks without them as they were', async () => {
    const dir = await folder({ 'common/encode.yaml': ENCODE });
    const catalog = await loadCatalog(dir);
    const def = catalog.resolve('acme', 'encode')!.definition;
    const [probe, transcode] = def.tasks;
    assert.equal(probe!.slots, undefined);
    assert.equal(probe!.concurrency, undefined);
    assert.equal(transcode!.slots, 4);
    assert.deepEqual(transcode!.concurrency, {
      key: 'encode:{{ job.client }}:{{ parameters.content_id }}',
      limit: 2,
    });
    // The task rows a submission writes: slots default 1, the key rendered for this job.
    const rows = resolveTasks(def, {
      parameters: { content_id: 'c-9' },
      job: { client: 'acme', workflow: 'encode', priority: 5 },
    });
    assert.deepEqual(
      rows.map((r) => [r.name, r.slots, r.concurrency_key, r.concurrency_limit]),
      [
        ['probe', 1, null, null],
        ['transcode', 4, 'encode:acme:c-9', 2],
      ],
    );
  });

  const task = (extra: string) =>
    `name: bad\ntasks:\n  - name: a\n    run: sleep\n    with: { seconds: 0 }\n${extra}`;
  const bad: [string, string, RegExp][] = [
    [
      'slots 0',
      task('    slots: 0\n'),
      /tasks\[0\]\.slots 0 is not accepted: the worker slots the task takes while it runs, a whole number from 1 to 1000/,
    ],
    ['slots 1001', task('    slots: 1001\n'), /tasks\[0\]\.slots 1001 is not accepted: .*from 1 to 1000/],
    ['fractional slots', task('    slots: 1.5\n'), /tasks\[0\]\.slots must be integer/],
    ['slots as text', task('    slots: "4"\n'), /tasks\[0\]\.slots must be integer/],
    [
      'concurrency without a limit',
      task('    concurrency: { key: k }\n'),
      /tasks\[0\]\.concurrency\.limit is required/,
    ],
    [
      'concurrency without a key',
      task('    concurrency: { limit: 1 }\n'),
      /tasks\[0\]\.concurrency\.key is required/,
    ],
    [
      'concurrency limit 0',
      task('    concurrency: { key: k, limit: 0 }\n'),
      /tasks\[0\]\.concurrency\.limit 0 is not accepted: how many running tasks may hold the key at once/,
    ],
    [
      'an empty key',
      task('    concurrency: { key: "", limit: 1 }\n'),
      /tasks\[0\]\.concurrency\.key "" is not accepted/,
    ],
    [
      'an unknown concurrency field',
      task('    concurrency: { key: k, limit: 1, scope: all }\n'),
      /tasks\[0\]\.concurrency\.scope is not a known field \(accepted: key, limit\)/,
    ],
    ['concurrency as a number', task('    concurrency: 2\n'), /tasks\[0\]\.concurrency must be object/],
    [
      'a key on job.id',
      task('    concurrency: { key: "k{{ job.id }}", limit: 1 }\n'),
      /tasks\.a\.concurrency\.key: \{\{ job\.id \}\} is not accepted: a concurrency key is rendered when the job is submitted, so it may read parameters\.<name> and job\.client, job\.workflow, job\.priority/,
    ],
    [
      'a key on a task output',
      task('    concurrency: { key: "{{ tasks.a.output }}", limit: 1 }\n'),
      /tasks\.a\.concurrency\.key: \{\{ tasks\.a\.output \}\} is not accepted/,
    ],
    [
      'a key on an undeclared parameter',
      task('    concurrency: { key: "{{ parameters.nope }}", limit: 1 }\n'),
      /tasks\.a\.concurrency\.key: \{\{ parameters\.nope \}\} refers to parameter nope, which the parameters schema does not declare/,
    ],
    [
      'a key that does not parse',
      task('    concurrency: { key: "{{ parameters.x", limit: 1 }\n'),
      /tasks\.a\.concurrency\.key: template .* without a closing/,
    ],
  ];
  for (const [what, text, pattern] of bad) {
    it(`refuses ${what}, naming the field and what is accepted`, async () => {
      const dir = await folder({ 'common/bad.yaml': text });
      await assert.rejects(loadCatalog(dir), (err: Error) => {
        assert.ok(err instanceof WorkflowCatalogError, err.message);
        assert.match(err.message, pattern);
        return true;
      });
    });
  }
});

describe('renderConcurrencyKey', () => {
  const scope = {
    parameters: { id: 42, flag: true, obj: { a: 1 }, text: 'x' },
    job: { client: 'acme', workflow: 'encode', priority: 3 },
  };
  it('renders text, numbers, booleans, objects and job fields; a missing value is empty', () => {
    assert.equal(renderConcurrencyKey('plain', scope), 'plain');
    assert.equal(renderConcurrencyKey('{{ parameters.id }}', scope), '42');
    assert.equal(renderConcurrencyKey('{{ parameters.flag }}', scope), 'true');
    assert.equal(renderConcurrencyKey('{{ parameters.obj }}', scope), '{"a":1}');
    assert.equal(
      renderConcurrencyKey('{{ job.client }}/{{ job.workflow }}/{{ job.priority }}', scope),
      'acme/encode/3',
    );
    assert.equal(renderConcurrencyKey('{{ parameters.missing }}', scope), '');
    assert.equal(renderConcurrencyKey('k:{{ parameters.missing }}', scope), 'k:');
  });
  it('shortens a long key to a readable head and a digest, keeping distinct keys distinct', () => {
    const a = fitConcurrencyKey('x'.repeat(300));
    const b = fitConcurrencyKey(`${'x'.repeat(299)}y`);
    assert.ok(a.length <= MAX_CONCURRENCY_KEY_LENGTH, `${a.length} characters`);
    assert.ok(a.startsWith('x'.repeat(200) + '#'));
    assert.notEqual(a, b);
    assert.equal(fitConcurrencyKey('short'), 'short');
    // A cut never leaves half a surrogate pair.
    const emoji = fitConcurrencyKey(`${'x'.repeat(199)}😀${'y'.repeat(100)}`);
    assert.ok(!/[\uD800-\uDBFF]#/.test(emoji));
  });
});
