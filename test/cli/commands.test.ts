/**
 * The CLI's API commands against a real engine (controller and worker roles, the API listening on a
 * free port; the CLI in-process over real HTTP), on both stores: `workflows`, `submit --follow`,
 * `job`, `attempts`, `callbacks`, `jobs`, `logs`, `pause`, `resume`, `priority`, `update`, `break`,
 * `rerun`, `dashboard`, `health`, `settings get|set`, `schedules list|on|off` and `clients list`.
 * Every read command's `--json` prints what the API answers; a refusal prints the API's message
 * with exit code 1; bad arguments exit 2.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import type { FastifyInstance } from 'fastify';
import { buildServer } from '../../src/api/build-server.js';
import type { CliIO } from '../../src/cli/io.js';
import { runCli } from '../../src/cli/program.js';
import { createClient } from '../../src/engine/clients/clients.js';
import { startTestEngine, type TestEngine } from '../helpers/engine.js';
import { createTestStore, forEachStore, type TestStore } from '../helpers/stores.js';
import { waitFor } from '../helpers/wait-for.js';

interface Run {
  code: number;
  out: string;
  lines: string[];
  err: string;
}

forEachStore('CLI commands against an engine', (kind) => {
  let store: TestStore;
  let te: TestEngine;
  let app: FastifyInstance;
  let url: string;
  const keys: Record<string, string> = {};

  before(async () => {
    store = await createTestStore(kind);
    te = await startTestEngine(store, {
      workflows: {
        quick: {
          description: 'one quick task',
          parameters: {
            type: 'object',
            required: ['content_id'],
            properties: {
              content_id: { type: 'string', description: 'a name for the run' },
              seconds: { type: 'number', default: 0 },
            },
          },
          tasks: [{ name: 'only', run: 'sleep', with: { seconds: '{{ parameters.seconds }}' } }],
          outputs: { message: 'all done' },
        },
        flaky: {
          tasks: [
            { name: 'doomed', run: 'fail', with: { message: 'no luck' }, retry_limit: 1, retry_delay: 0 },
          ],
        },
        slow: { tasks: [{ name: 'nap', run: 'sleep', with: { seconds: 600 } }] },
      },
      settings: { max_jobs: 2 },
    });
    app = buildServer(te.engine.ctx);
    url = await app.listen({ host: '127.0.0.1', port: 0 });
    for (const [name, admin] of [
      ['acme', false],
      ['root', true],
    ] as const)
      keys[name] = (await createClient(store.db, { name, admin })).api_key;
  });
  after(async () => {
    await app?.close();
    await te?.stop();
    await store?.dispose();
  });

  /** Runs `task-engine <args>` in-process as `as` (or with no credentials when null). */
  const cli = async (as: string | null, ...args: string[]): Promise<Run> => {
    const out: string[] = [];
    const err: string[] = [];
    const io: CliIO = {
      env: {},
      out: (l) => out.push(l),
      err: (l) => err.push(l),
      onSignal: () => () => undefined,
      exitNow: (code) => {
        throw new Error(`exit ${code}`);
      },
    };
    const conn = as === null ? ['--url', url] : ['--url', url, '--client', as, '--api-key', keys[as]!];
    const code = await runCli(['node', 'task-engine', ...args, ...conn], io, 'test');
    return { code, out: out.join('\n'), lines: out.flatMap((l) => l.split('\n')), err: err.join('\n') };
  };
  /** The API's reply to GET `path` as `as`. */
  const api = async (as: string, path: string): Promise<unknown> => {
    const res = await fetch(`${url}${path}`, { headers: { client: as, 'api-key': keys[as]! } });
    return res.json();
  };
  /** `--json` output as the API's JSON. */
  const jsonOf = (r: Run): unknown => {
    assert.equal(r.code, 0, r.err);
    return JSON.parse(r.out);
  };
  const submitted = (r: Run): number => {
    const id = /^job (\d+) accepted$/m.exec(r.out)?.[1];
    assert.ok(id, `${r.out}\n${r.err}`);
    return Number(id);
  };

  let done = 0;
  let failed = 0;

  test('workflows: a table, one workflow with its parameters and tasks, --json, an unknown name', async () => {
    const list = await cli('acme', 'workflows');
    assert.equal(list.code, 0, list.err);
    assert.match(list.lines[0]!, /^NAME\s+SOURCE\s+TASKS\s+DESCRIPTION$/);
    assert.match(list.out, /^quick\s+common\s+1\s+one quick task$/m);
    assert.deepEqual(jsonOf(await cli('acme', 'workflows', '--json')), await api('acme', '/workflows'));
    const one = await cli('acme', 'workflows', 'quick');
    assert.equal(one.code, 0, one.err);
    assert.match(one.out, /^description:\s+one quick task$/m);
    assert.match(one.out, /^content_id\s+string\s+yes\s+-\s+a name for the run$/m);
    assert.match(one.out, /^seconds\s+number\s+no\s+0\s+-$/m);
    assert.match(one.out, /^only\s+work\s+sleep\s+-$/m);
    const oneJson = jsonOf(await cli('acme', 'workflows', 'quick', '--json')) as { name: string };
    assert.equal(oneJson.name, 'quick');
    const unknown = await cli('acme', 'workflows', 'nope');
    assert.equal(unknown.code, 1);
    assert.match(unknown.err, /no workflow named "nope" for this client; it may submit: flaky, quick, slow/);
  });

  test('submit --follow: exit 0 for a job that succeeds, 1 for one that fails', async () => {
    const ok = await cli('acme', 'submit', 'quick', '--param', 'content_id=cli', '--follow');
    assert.equal(ok.code, 0, ok.err);
    done = submitted(ok);
    assert.match(ok.out, /task only: succeeded/);
    assert.equal(ok.lines.at(-1), `job ${done} completed (succeeded)`);
    const bad = await cli('acme', 'submit', 'flaky', '--follow');
    assert.equal(bad.code, 1);
    failed = submitted(bad);
    assert.match(bad.out, /no luck/);
    assert.equal(bad.lines.at(-1), `job ${failed} completed (failed)`);
    const refused = await cli('acme', 'submit', 'quick');
    assert.equal(refused.code, 1);
    assert.match(refused.err, /POST \/job failed \(400\): parameters are not valid .*content_id/);
  });

  test("job: the record, its tasks with state and progress, the job's and each task's output; --json", async () => {
    const r = await cli('acme', 'job', String(done));
    assert.equal(r.code, 0, r.err);
    assert.match(r.out, new RegExp(`^job:\\s+${done}$`, 'm'));
    assert.match(r.out, /^workflow:\s+quick$/m);
    assert.match(r.out, /^state:\s+completed \(succeeded\)$/m);
    assert.match(r.out, /^parameters:\s+\{"content_id":"cli"\}$/m);
    assert.match(r.out, /^TASK\s+QUEUE\s+STATE\s+PROGRESS\s+ATTEMPTS\s+DURATION\s+NEEDS\s+MESSAGE$/m);
    assert.match(r.out, /^only\s+work\s+succeeded\s+100%\s+1\s+\d/m);
    assert.match(r.out, /^outputs:\n {2}message: all done$/m);
    assert.match(r.out, /^task outputs:\n {2}only: \{"slept_seconds":0\}$/m);
    assert.deepEqual(
      jsonOf(await cli('acme', 'job', String(done), '--json')),
      await api('acme', `/jobs/${done}`),
    );
    const theirs = await cli(null, 'job', String(done));
    assert.equal(theirs.code, 2, 'no credentials: a usage error');
    assert.match(theirs.err, /credentials needed/);
    const missing = await cli('acme', 'job', '999999');
    assert.equal(missing.code, 1);
    assert.equal(missing.err, 'task-engine: GET /jobs/999999 failed (404): job 999999 not found');
    const bad = await cli('acme', 'job', 'abc');
    assert.equal(bad.code, 2);
    assert.match(bad.err, /<id> must be a job id such as 42 \(got "abc"\)/);
  });

  test('attempts and callbacks: tables and --json as the API gives them', async () => {
    const r = await cli('acme', 'attempts', String(failed));
    assert.equal(r.code, 0, r.err);
    assert.match(r.lines[0]!, /^ID\s+TASK\s+NUMBER\s+RUN\s+STATE\s+STARTED\s+DURATION\s+WORKER\s+ERROR$/);
    assert.equal(r.lines.filter((l) => /^\s*\d+\s+doomed\s+[12]\s+1\s+failed\s/.test(l)).length, 2, r.out);
    assert.match(r.out, /no luck/);
    assert.deepEqual(
      jsonOf(await cli('acme', 'attempts', String(failed), '--json')),
      await api('acme', `/jobs/${failed}/attempts`),
    );
    const cb = await cli('acme', 'callbacks', String(done));
    assert.equal(cb.code, 0, cb.err);
    assert.equal(cb.lines.at(-1), '(no callbacks)');
    assert.deepEqual(jsonOf(await cli('acme', 'callbacks', String(done), '--json')), []);
  });

  test('jobs: a table with the filters as options, --json as the API gives it', async () => {
    const r = await cli('acme', 'jobs');
    assert.equal(r.code, 0, r.err);
    assert.match(r.lines[0]!, /^\s*ID\s+STATE\s+FAILED\s+PRI\s+WORKFLOW\s+CLIENT\s+CREATED\s+RUN AT$/);
    assert.match(r.out, new RegExp(`^\\s*${failed}\\s+completed\\s+yes\\s+5\\s+flaky\\s+acme\\s`, 'm'));
    assert.match(r.out, new RegExp(`^\\s*${done}\\s+completed\\s+no\\s+5\\s+quick\\s+acme\\s`, 'm'));
    // The columns line up: every row's CLIENT cell starts where its header does.
    const at = r.lines[0]!.indexOf('CLIENT');
    for (const l of r.lines.slice(1)) assert.equal(l.slice(at, at + 4), 'acme', l);
    assert.deepEqual(jsonOf(await cli('acme', 'jobs', '--json')), await api('acme', '/jobs'));
    const failedOnly = jsonOf(await cli('acme', 'jobs', '--state', 'completed', '--failed', '--json')) as {
      id: number;
    }[];
    assert.deepEqual(
      failedOnly.map((j) => j.id),
      [failed],
    );
    const one = jsonOf(await cli('acme', 'jobs', '--limit', '1', '--asc', '--json')) as { id: number }[];
    assert.deepEqual(
      one.map((j) => j.id),
      [done],
    );
    const searched = jsonOf(await cli('acme', 'jobs', '--search', 'cli', '--json')) as { id: number }[];
    assert.deepEqual(
      searched.map((j) => j.id),
      [done],
    );
    const badState = await cli('acme', 'jobs', '--state', 'sleeping');
    assert.equal(badState.code, 2);
    const badLimit = await cli('acme', 'jobs', '--limit', '5000');
    assert.equal(badLimit.code, 1);
    assert.match(badLimit.err, /GET \/jobs\?limit=5000 failed \(400\): .*limit/);
    const forbidden = await cli('acme', 'jobs', '--for-client', 'root');
    assert.equal(forbidden.code, 1);
    assert.match(forbidden.err, /\(403\)/);
  });

  test('logs: the lines, --json as the API gives it, --follow of an ended job', async () => {
    const r = await cli('acme', 'logs', String(done));
    assert.equal(r.code, 0, r.err);
    assert.match(r.out, /INFO {3}worker task \d+: Task 'only' started/);
    assert.deepEqual(
      jsonOf(await cli('acme', 'logs', String(done), '--json')),
      await api('acme', `/logs/${done}`),
    );
    const all = jsonOf(await cli('acme', 'logs', String(done), '--all', '--json')) as unknown[];
    assert.ok(all.length >= (jsonOf(await cli('acme', 'logs', String(done), '--json')) as unknown[]).length);
    const followed = await cli('acme', 'logs', String(failed), '--follow');
    assert.equal(followed.code, 1, 'the job failed');
    assert.equal(followed.lines.at(-1), `job ${failed} completed (failed)`);
  });

  test('pause, priority, dashboard, resume, update, break and rerun a running job; a refusal is the API message', async () => {
    const slow = submitted(await cli('acme', 'submit', 'slow'));
    await waitFor(
      async () => ((await api('acme', `/jobs/${slow}`)) as { queue_state: string }).queue_state === 'started',
      { timeoutMs: 30_000, what: 'the slow job to start' },
    );
    const prio = await cli('acme', 'priority', String(slow), '3');
    assert.equal(prio.code, 0, prio.err);
    assert.equal(prio.out, `job ${slow}: Performed updates: priority`);
    const paused = await cli('acme', 'pause', String(slow));
    assert.equal(paused.code, 0, paused.err);
    assert.equal(paused.out, `job ${slow}: Performed updates: queue_state`);

    const dash = await cli('acme', 'dashboard');
    assert.equal(dash.code, 0, dash.err);
    assert.match(dash.out, /^engine \S+: max_jobs 2, priority_slots 0$/m);
    assert.match(dash.out, /^started 0, queued 0, scheduled 0, paused 1, pending 0$/m);
    assert.match(dash.out, new RegExp(`^paused\\s+1\\s+${slow}\\s+3\\s+-\\s+slow\\s+acme\\s`, 'm'));
    assert.deepEqual(jsonOf(await cli('acme', 'dashboard', '--json')), await api('acme', '/dashboard'));
    const dashJson = jsonOf(await cli('root', 'dashboard', '--for-client', 'acme', '--json')) as {
      paused: { id: number }[];
    };
    assert.deepEqual(
      dashJson.paused.map((j) => j.id),
      [slow],
    );

    const resumed = await cli('acme', 'resume', String(slow), '--json');
    assert.deepEqual(jsonOf(resumed), { id: slow, result: 'Performed updates: queue_state' });
    const updated = await cli('acme', 'update', String(slow), '--persist', 'yes', '--top-of-queue', 'true');
    assert.equal(updated.code, 0, updated.err);
    assert.equal(updated.out, `job ${slow}: Performed updates: persist, top_of_queue`);
    const nothing = await cli('acme', 'update', String(slow));
    assert.equal(nothing.code, 2);

    const tooHigh = await cli('acme', 'priority', String(slow), '11');
    assert.equal(tooHigh.code, 1);
    assert.match(tooHigh.err, /PATCH \/jobs\/\d+ failed \(400\): priority .*1.*10/);
    assert.equal((await cli('acme', 'priority', String(slow), 'high')).code, 2);
    const refused = await cli('acme', 'pause', String(done));
    assert.equal(refused.code, 1);
    assert.match(
      refused.err,
      new RegExp(
        `^task-engine: PATCH /jobs/${done} failed \\(409\\): job ${done} is completed; only .* can be paused$`,
      ),
    );

    const broken = await cli('acme', 'break', String(slow));
    assert.equal(broken.code, 0, broken.err);
    assert.equal(((await api('acme', `/jobs/${slow}`)) as { queue_state: string }).queue_state, 'broken');
    const rerun = jsonOf(await cli('acme', 'rerun', String(slow), '--json')) as {
      id: number;
      result: string;
    };
    assert.equal(rerun.result, 'accepted');
    const again = (await api('acme', `/jobs/${rerun.id}`)) as { rerun_of: number };
    assert.equal(again.rerun_of, slow);
    const text = await cli('acme', 'break', String(rerun.id));
    assert.equal(text.code, 0, text.err);
    const rerunText = await cli('acme', 'rerun', String(done));
    assert.match(rerunText.out, new RegExp(`^job ${done} rerun as job \\d+ \\(accepted\\)$`));
    const newId = Number(/as job (\d+)/.exec(rerunText.out)![1]);
    await te.waitForState(newId, 'completed', 30_000);
  });

  test('health: a table of the database, queues and counts; --json as the API gives it', async () => {
    const r = await cli('acme', 'health');
    assert.equal(r.code, 0, r.err);
    assert.match(r.out, /^status:\s+(ok|degraded)$/m);
    assert.match(r.out, /^postgres:\s+OK$/m);
    assert.match(r.out, /^QUEUE\s+WORKERS\s+WORKING\s+PENDING$/m);
    assert.match(r.out, /^work\s+1\s+\d+\s+\d+$/m);
    assert.match(r.out, /^completed\s+\d+$/m);
    const h = jsonOf(await cli('acme', 'health', '--json')) as Record<string, unknown>;
    assert.deepEqual(Object.keys(h).sort(), [
      'checks',
      'databases',
      'jobs',
      'queues',
      'reasons',
      'status',
      'tasks',
      'version',
    ]);
  });

  test('settings get and set: values, --json, the API refusing a value or a non-admin', async () => {
    const all = await cli('acme', 'settings', 'get');
    assert.equal(all.code, 0, all.err);
    assert.match(all.out, /^max_jobs\s+2$/m);
    assert.deepEqual(jsonOf(await cli('acme', 'settings', 'get', '--json')), await api('acme', '/settings'));
    assert.equal((await cli('acme', 'settings', 'get', 'max_jobs')).out, '2');
    assert.deepEqual(jsonOf(await cli('acme', 'settings', 'get', 'max_jobs', '--json')), {
      name: 'max_jobs',
      setting: 2,
    });
    const unknown = await cli('acme', 'settings', 'get', 'nope');
    assert.equal(unknown.code, 1);
    assert.match(unknown.err, /no setting named "nope"; the settings are: max_jobs, /);
    const refused = await cli('root', 'settings', 'set', 'max_jobs', '0');
    assert.equal(refused.code, 1);
    assert.match(refused.err, /POST \/settings failed \(400\): setting "max_jobs" must be at least 1/);
    const forbidden = await cli('acme', 'settings', 'set', 'max_jobs', '3');
    assert.equal(forbidden.code, 1);
    assert.match(forbidden.err, /POST \/settings failed \(403\)/);
    const set = await cli('root', 'settings', 'set', 'max_jobs', '3');
    assert.equal(set.code, 0, set.err);
    assert.equal(set.out, 'max_jobs setting updated');
    assert.equal((await cli('acme', 'settings', 'get', 'max_jobs')).out, '3');
  });

  test('schedules list, off and on (admins)', async () => {
    const off = await cli('root', 'schedules', 'off', 'push_jobs');
    assert.equal(off.code, 0, off.err);
    assert.match(off.out, /^schedule "push_jobs" switched off; active: /);
    const list = await cli('root', 'schedules', 'list');
    assert.match(list.out, /^push_jobs\s+no\s+every 30 s\s+\(PushJobs\)/m);
    const listed = jsonOf(await cli('root', 'schedules', 'list', '--json')) as {
      schedules: Record<string, { active: boolean }>;
    };
    assert.deepEqual(listed, await api('root', '/schedules'));
    assert.equal(listed.schedules.push_jobs!.active, false);
    assert.equal((await cli('root', 'schedules', 'on', 'push_jobs')).code, 0);
    const forbidden = await cli('acme', 'schedules', 'off', 'push_jobs');
    assert.equal(forbidden.code, 1);
    assert.match(forbidden.err, /PUT \/scheduler failed \(403\)/);
    const unknown = await cli('root', 'schedules', 'off', 'nope');
    assert.equal(unknown.code, 1);
    assert.match(unknown.err, /\(400\)/);
  });

  test('clients list: every column lines up under its header', async () => {
    const r = await cli('root', 'clients', 'list');
    assert.equal(r.code, 0, r.err);
    const [head, ...rows] = r.lines;
    assert.match(head!, /^NAME\s+ADMIN\s+KEY\s+CREATED\s+REVOKED$/);
    for (const column of ['ADMIN', 'KEY', 'CREATED', 'REVOKED']) {
      const at = head!.indexOf(column);
      for (const row of rows) assert.match(row.slice(at), /^\S/, `${column} of ${row}`);
      for (const row of rows) assert.equal(row[at - 1], ' ', `${column} of ${row}`);
    }
    assert.ok(rows.some((l) => /^root\s+yes\s+…\S{4}\s/.test(l)));
  });
});
