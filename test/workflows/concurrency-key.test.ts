/**
 * A workflow's job concurrency key (`concurrency: {key, limit}`) as the loader checks it: the key
 * may read declared parameters and job.client / job.workflow / job.priority only.
 */
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, it } from 'node:test';
import { loadDefinitionFile } from '../../src/workflows/catalog.js';

const temps: string[] = [];
after(() => Promise.all(temps.map((d) => rm(d, { recursive: true, force: true }))));

async function load(concurrency: string) {
  const dir = await mkdtemp(join(tmpdir(), 'te-concurrency-'));
  temps.push(dir);
  await mkdir(join(dir, 'common'));
  const file = join(dir, 'common', 'enc.yaml');
  await writeFile(
    file,
    `name: enc\nparameters:\n  type: object\n  properties:\n    content_id: { type: string }\n${concurrency}tasks:\n  - name: a\n    run: sleep\n    with: { seconds: 0 }\n`,
  );
  return loadDefinitionFile(file, dir);
}

it('keeps a valid concurrency key in the definition', async () => {
  const r = await load('concurrency:\n  key: "{{ job.client }}/{{ parameters.content_id }}"\n  limit: 2\n');
  assert.deepEqual(r.problems, undefined);
  assert.deepEqual(r.definition?.concurrency, {
    key: '{{ job.client }}/{{ parameters.content_id }}',
    limit: 2,
  });
});

for (const [label, yaml, problem] of [
  [
    'job.id',
    'concurrency:\n  key: "{{ job.id }}"\n  limit: 1\n',
    /concurrency\.key: \{\{ job\.id \}\} is not accepted: a concurrency key is rendered when the job is submitted/,
  ],
  [
    'a task output',
    'concurrency:\n  key: "{{ tasks.a.output }}"\n  limit: 1\n',
    /is not accepted: a concurrency key is rendered when the job is submitted, so it may read parameters\.<name> and job\.client, job\.workflow, job\.priority/,
  ],
  [
    'an undeclared parameter',
    'concurrency:\n  key: "{{ parameters.nope }}"\n  limit: 1\n',
    /parameter nope, which the parameters schema does not declare/,
  ],
  ['a limit of 0', 'concurrency:\n  key: "k"\n  limit: 0\n', /concurrency.limit must be >= 1/],
  ['no limit', 'concurrency:\n  key: "k"\n', /concurrency.limit is required/],
  [
    'an unknown field',
    'concurrency:\n  key: "k"\n  limit: 1\n  per: client\n',
    /concurrency.per is not a known field \(accepted: key, limit\)/,
  ],
] as const)
  it(`refuses a concurrency key with ${label}`, async () => {
    const r = await load(yaml);
    assert.ok(r.problems, 'refused');
    assert.ok(
      r.problems.some((p) => problem.test(p)),
      r.problems.join('\n'),
    );
  });
