/**
 * The process log of a real `serve` process through a short lifecycle: every log line is one JSON
 * object with exactly one `msg` key, each request has one info line (method, route, status, time,
 * client) without the API key, and the "common definitions" line is written once per job.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { startCli, type CliProcess } from '../helpers/cli.js';
import { waitFor } from '../helpers/wait-for.js';

/** How often `"key":` occurs at the top level of one JSON line (counted in the raw text). */
function topLevelKeyCount(line: string, key: string): number {
  let depth = 0;
  let count = 0;
  for (let i = 0; i < line.length; i++) {
    const c = line[i];
    if (c === '"') {
      let j = i + 1;
      while (j < line.length && line[j] !== '"') j += line[j] === '\\' ? 2 : 1;
      const text = line.slice(i + 1, j);
      if (depth === 1 && text === key && line[j + 1] === ':') count++;
      i = j;
    } else if (c === '{' || c === '[') depth++;
    else if (c === '}' || c === ']') depth--;
  }
  return count;
}

void describe('process log lines', () => {
  let dataDir: string;
  let server: CliProcess | null = null;

  before(async () => {
    dataDir = await mkdtemp(path.join(tmpdir(), 'te-logs-'));
  });
  after(async () => {
    if (server && server.child.exitCode === null) {
      server.child.kill('SIGTERM');
      await server.exited;
    }
    await rm(dataDir, { recursive: true, force: true });
  });

  void it('every log line is one JSON object with one msg; one request line each; definitions once per job', async () => {
    const key = 'log-test-admin-key-0123456789';
    server = startCli(['serve'], {
      TASK_ENGINE_DATA_DIR: dataDir,
      TASK_ENGINE_PORT: '0',
      TASK_ENGINE_LOG_LEVEL: 'debug',
      TASK_ENGINE_ADMIN_CLIENT: 'ops',
      TASK_ENGINE_ADMIN_API_KEY: key,
    });
    const out = server.stdout;
    const url = await waitFor(() => /listening on (http:\/\/127\.0\.0\.1:\d+)/.exec(out())?.[1], {
      timeoutMs: 120_000,
      what: `serve to print its URL (stderr: ${server.stderr()})`,
    });
    const headers = { 'content-type': 'application/json', client: 'ops', 'api-key': key };
    const submit = async (body: unknown): Promise<Response> =>
      fetch(`${url}/job`, { method: 'POST', headers, body: JSON.stringify(body) });
    // A job whose callbacks are refused (nothing listens on port 9 of 127.0.0.1).
    const ok = await submit({
      job: { workflow: 'demo' },
      parameters: { content_id: 'a', seconds: 0, rest_endpoints: ['http://127.0.0.1:9/refused'] },
    });
    assert.equal(ok.status, 200, await ok.clone().text());
    const { id } = (await ok.json()) as { id: number };
    const bad = await submit({ job: { workflow: 'no-such-workflow' } });
    assert.equal(bad.status, 400);
    const missing = await fetch(`${url}/jobs/999999`, { headers });
    assert.equal(missing.status, 404);
    await waitFor(
      async () => {
        const r = await fetch(`${url}/jobs/${id}`, { headers });
        return ((await r.json()) as { queue_state?: string }).queue_state === 'completed';
      },
      { timeoutMs: 60_000, what: 'the demo job to complete' },
    );
    const logs = (await (await fetch(`${url}/logs/${id}?show_all=1`, { headers })).json()) as {
      message: string;
    }[];
    const definitions = logs.filter((l) => l.message === 'No client definitions. Using common definitions.');
    assert.equal(definitions.length, 1, JSON.stringify(logs.map((l) => l.message)));

    server.child.kill('SIGTERM');
    assert.equal(await server.exited, 0);
    const lines = `${out()}\n${server.stderr()}`.split('\n').filter((l) => l.startsWith('{'));
    assert.ok(lines.length > 5, 'log lines were written');
    for (const line of lines) {
      const parsed = JSON.parse(line) as Record<string, unknown>;
      assert.equal(typeof parsed.msg, 'string', line);
      assert.equal(topLevelKeyCount(line, 'msg'), 1, `one msg key: ${line}`);
      assert.ok(!line.includes(key), `no API key in: ${line}`);
      assert.ok(!('jobId' in parsed) && !('taskId' in parsed), `snake_case ids: ${line}`);
    }
    const requests = lines
      .map((l) => JSON.parse(l) as Record<string, unknown>)
      .filter((l) => l.msg === 'request');
    const post = requests.filter((r) => r.method === 'POST' && r.route === '/job');
    assert.deepEqual(
      post.map((r) => r.status),
      [200, 400],
    );
    for (const r of requests) {
      assert.equal(r.level, 30);
      assert.equal(typeof r.ms, 'number');
      assert.equal(typeof r.status, 'number');
    }
    assert.ok(post.every((r) => r.client === 'ops'));
    assert.ok(requests.some((r) => r.status === 404 && r.route === '/jobs/:id'));
  });
});
