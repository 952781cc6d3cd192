/**
 * `task-engine clients rotate-secret` and `end-rotation` as real processes on an embedded data
 * folder: the new secret is printed once, the previous one stays valid until the rotation ends.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, test } from 'node:test';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const MAIN = path.join(ROOT, 'src/cli/main.ts');

function runCli(
  args: string[],
  dataDir: string,
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env))
    if (!k.startsWith('TASK_ENGINE_') && k !== 'DATABASE_URL') env[k] = v;
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', MAIN, ...args], {
      cwd: ROOT,
      env: { ...env, TASK_ENGINE_LOG_LEVEL: 'warn', TASK_ENGINE_DATA_DIR: dataDir },
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`task-engine ${args.join(' ')} did not finish: ${stdout}${stderr}`));
    }, 120_000);
    child.on('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

void describe('task-engine clients rotate-secret / end-rotation', () => {
  let dataDir: string;
  before(async () => {
    dataDir = await mkdtemp(path.join(tmpdir(), 'te-cli-rotation-'));
  });
  after(() => rm(dataDir, { recursive: true, force: true }));

  void test('rotates with an overlap, ends it, and refuses an unknown client', async () => {
    const add = await runCli(['clients', 'add', 'hooks', '--json'], dataDir);
    assert.equal(add.code, 0, add.stderr);
    const created = JSON.parse(add.stdout) as { signing_secret: string };

    const rotate = await runCli(['clients', 'rotate-secret', 'hooks', '--json'], dataDir);
    assert.equal(rotate.code, 0, rotate.stderr);
    const rotated = JSON.parse(rotate.stdout) as {
      name: string;
      signing_secret: string;
      previous_valid: boolean;
    };
    assert.equal(rotated.name, 'hooks');
    assert.equal(rotated.previous_valid, true);
    assert.notEqual(rotated.signing_secret, created.signing_secret);

    const end = await runCli(['clients', 'end-rotation', 'hooks'], dataDir);
    assert.equal(end.code, 0, end.stderr);
    assert.match(end.stdout, /the previous signing secret no longer signs callbacks/);

    const sudden = await runCli(['clients', 'rotate-secret', 'hooks', '--no-keep-previous'], dataDir);
    assert.equal(sudden.code, 0, sudden.stderr);
    assert.match(sudden.stdout, /signing_secret: \S{43}\n/);
    assert.match(sudden.stdout, /The previous secret no longer signs callbacks/);

    const unknown = await runCli(['clients', 'rotate-secret', 'nobody'], dataDir);
    assert.equal(unknown.code, 1);
    assert.match(unknown.stderr, /no active client named "nobody"/);
  });
});
