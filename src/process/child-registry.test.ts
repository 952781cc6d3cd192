/**
 * The child process registry on real processes: orphaned process groups are killed, live engines'
 * children and reused pids are not.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import {
  chmodSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, afterEach, before, describe, it } from 'node:test';
import { runFfmpeg } from '../media/ffmpeg.js';
import {
  childRegistryDir,
  configureChildRegistry,
  isSameProcessRunning,
  readProcessStat,
  reapOrphanedChildren,
  trackChild,
  untrackChild,
  type ChildRecord,
} from './child-registry.js';
import { waitFor } from '../../test/helpers/wait-for.js';

const hasProc = readProcessStat(process.pid) !== null;
const bootId = hasProc ? readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim() : '';

/** A detached `sh -c script` (its own process group) and the pids it prints on its first line. */
interface Group {
  child: ChildProcess;
  pid: number;
  ticks: number;
  printed: number[];
}

const started: ChildProcess[] = [];
const strayPids: number[] = [];

async function startGroup(script: string): Promise<Group> {
  const child = spawn('sh', ['-c', script], { detached: true, stdio: ['ignore', 'pipe', 'ignore'] });
  started.push(child);
  const pid = child.pid!;
  const ticks = readProcessStat(pid)!.startTicks;
  const line = await new Promise<string>((resolve) => {
    let out = '';
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      if (out.includes('\n')) resolve(out.split('\n')[0]!);
    });
  });
  const printed = line
    .split(' ')
    .filter(Boolean)
    .map((s) => Number(s));
  strayPids.push(pid, ...printed);
  return { child, pid, ticks, printed };
}

/** A process standing for an engine process: `sleep`, not detached. */
function startFakeEngine(): { child: ChildProcess; pid: number; ticks: number; exited: Promise<void> } {
  const child = spawn('sleep', ['60'], { stdio: 'ignore' });
  started.push(child);
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  return { child, pid: child.pid!, ticks: readProcessStat(child.pid!)!.startTicks, exited };
}

function alive(pid: number): boolean {
  const stat = readProcessStat(pid);
  return stat !== null && stat.state !== 'Z' && stat.state !== 'X';
}

function writeRecord(name: string, record: Partial<ChildRecord>): string {
  const full: ChildRecord = {
    version: 1,
    bootId,
    enginePid: 0,
    engineStartTicks: 0,
    childPid: 0,
    childStartTicks: 0,
    group: true,
    startedAt: new Date().toISOString(),
    ...record,
  };
  mkdirSync(childRegistryDir(), { recursive: true, mode: 0o700 });
  const file = path.join(childRegistryDir(), name);
  writeFileSync(file, JSON.stringify(full));
  return file;
}

async function deadEngine(): Promise<{ pid: number; ticks: number }> {
  const e = startFakeEngine();
  e.child.kill('SIGKILL');
  await e.exited;
  return { pid: e.pid, ticks: e.ticks };
}

void describe('child process registry', { skip: hasProc ? false : 'needs /proc (Linux)' }, () => {
  let dir: string;

  before(() => {
    dir = mkdtempSync(path.join(tmpdir(), 'te-children-test-'));
    configureChildRegistry({ dir: path.join(dir, 'registry') });
  });
  afterEach(() => {
    rmSync(childRegistryDir(), { recursive: true, force: true });
  });
  after(() => {
    // Each group's leader pid is also its group id: kill the groups, then any stray pid.
    for (const pid of [...strayPids.map((p) => -p), ...strayPids]) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
    for (const c of started) c.kill('SIGKILL');
    configureChildRegistry({ dir: undefined });
    rmSync(dir, { recursive: true, force: true });
  });

  it('trackChild records this process and the child; a live engine’s child is never reaped; untrackChild forgets it', async () => {
    const g = await startGroup('echo; sleep 60');
    assert.deepEqual(trackChild(g.pid), { tracked: true });
    const files = readdirSync(childRegistryDir());
    assert.deepEqual(files, [`e${process.pid}-c${g.pid}.json`]);
    const record = JSON.parse(readFileSync(path.join(childRegistryDir(), files[0]!), 'utf8')) as ChildRecord;
    assert.equal(record.enginePid, process.pid);
    assert.equal(record.engineStartTicks, readProcessStat(process.pid)!.startTicks);
    assert.equal(record.childPid, g.pid);
    assert.equal(record.childStartTicks, g.ticks);
    assert.equal(record.group, true);
    assert.equal(record.bootId, bootId);

    assert.equal(await reapOrphanedChildren(), 0);
    assert.ok(alive(g.pid), 'the child of a live engine process still runs');
    assert.equal(readdirSync(childRegistryDir()).length, 1);

    untrackChild(g.pid);
    assert.deepEqual(readdirSync(childRegistryDir()), []);
    untrackChild(g.pid); // twice is fine
  });

  it('kills the whole process group of a child whose engine process died, and deletes the record', async () => {
    const engine = startFakeEngine();
    const g = await startGroup('sleep 60 & echo $!; wait');
    const [grandchild] = g.printed;
    const file = writeRecord('orphan.json', {
      enginePid: engine.pid,
      engineStartTicks: engine.ticks,
      childPid: g.pid,
      childStartTicks: g.ticks,
    });

    assert.equal(await reapOrphanedChildren(), 0, 'the engine still runs: nothing is reaped');
    assert.ok(alive(g.pid) && alive(grandchild!));
    assert.ok(existsSync(file));

    engine.child.kill('SIGKILL');
    await engine.exited;
    assert.equal(await reapOrphanedChildren(), 1);
    // reapOrphanedChildren waits for them to be gone before it returns.
    assert.ok(!alive(g.pid), 'the child is gone');
    assert.ok(!alive(grandchild!), 'the grandchild in its group is gone');
    assert.ok(!existsSync(file), 'the record is deleted');
  });

  it('treats an engine pid now held by another process (other start time) as gone', async () => {
    const g = await startGroup('echo; sleep 60');
    writeRecord('reused-engine.json', {
      enginePid: process.pid,
      engineStartTicks: readProcessStat(process.pid)!.startTicks - 1,
      childPid: g.pid,
      childStartTicks: g.ticks,
    });
    assert.equal(await reapOrphanedChildren(), 1);
    assert.ok(!alive(g.pid));
  });

  it('never kills a process that got a recorded child pid later (other start time)', async () => {
    const engine = await deadEngine();
    const g = await startGroup('echo; sleep 60');
    const file = writeRecord('reused-child.json', {
      enginePid: engine.pid,
      engineStartTicks: engine.ticks,
      childPid: g.pid,
      childStartTicks: g.ticks - 1,
    });
    assert.equal(await reapOrphanedChildren(), 0);
    assert.ok(alive(g.pid), 'the unrelated process still runs');
    assert.ok(!existsSync(file), 'the stale record is deleted');
  });

  it('kills what the child left in its group when the child itself has exited', async () => {
    const engine = await deadEngine();
    const g = await startGroup('sleep 60 & echo $!; sleep 0.3');
    const [grandchild] = g.printed;
    await new Promise<void>((resolve) => g.child.once('exit', () => resolve()));
    assert.ok(!alive(g.pid) && alive(grandchild!));
    writeRecord('leader-gone.json', {
      enginePid: engine.pid,
      engineStartTicks: engine.ticks,
      childPid: g.pid,
      childStartTicks: g.ticks,
    });
    assert.equal(await reapOrphanedChildren(), 1);
    assert.ok(!alive(grandchild!));
  });

  it('with group false kills only the child itself', async () => {
    const engine = await deadEngine();
    const g = await startGroup('sleep 60 & echo $!; wait');
    const [grandchild] = g.printed;
    writeRecord('single.json', {
      enginePid: engine.pid,
      engineStartTicks: engine.ticks,
      childPid: g.pid,
      childStartTicks: g.ticks,
      group: false,
    });
    assert.equal(await reapOrphanedChildren(), 1);
    assert.ok(!alive(g.pid));
    assert.ok(alive(grandchild!), 'only the recorded pid was signalled');
    process.kill(-g.pid, 'SIGKILL');
  });

  it('deletes records of an earlier boot, of a live engine whose child is gone, and keeps going past bad files', async () => {
    const g = await startGroup('echo; sleep 60');
    const engine = await deadEngine();
    const otherBoot = writeRecord('other-boot.json', {
      bootId: '00000000-0000-0000-0000-000000000000',
      enginePid: engine.pid,
      engineStartTicks: engine.ticks,
      childPid: g.pid,
      childStartTicks: g.ticks,
    });
    const gone = await deadEngine();
    const debris = writeRecord('debris.json', {
      enginePid: process.pid,
      engineStartTicks: readProcessStat(process.pid)!.startTicks,
      childPid: gone.pid,
      childStartTicks: gone.ticks,
    });
    const bad = path.join(childRegistryDir(), 'bad.json');
    writeFileSync(bad, '{"version":1,');
    const negative = writeRecord('negative.json', {
      enginePid: engine.pid,
      engineStartTicks: engine.ticks,
      childPid: -1,
      childStartTicks: 0,
    });
    assert.equal(await reapOrphanedChildren(), 0);
    assert.ok(alive(g.pid), 'a record of an earlier boot kills nothing');
    assert.ok(!existsSync(otherBoot));
    assert.ok(!existsSync(debris));
    assert.ok(existsSync(bad), 'a fresh unreadable file may be one being written: kept for now');
    assert.ok(existsSync(negative));
  });

  it('refuses a registry folder that other users can write', async () => {
    const g = await startGroup('echo; sleep 60');
    trackChild(g.pid);
    chmodSync(childRegistryDir(), 0o777);
    const result = trackChild(g.pid);
    assert.equal(result.tracked, false);
    assert.match(result.problem ?? '', /writable by other users/);
    const warnings: string[] = [];
    const logger = {
      debug: () => undefined,
      warn: (_o: object, msg: string) => warnings.push(msg),
      error: () => undefined,
    };
    assert.equal(await reapOrphanedChildren({ logger }), 0);
    assert.equal(warnings.length, 1);
    untrackChild(g.pid);
  });

  it('FFmpeg is tracked (its pid alone) while it runs and forgotten when it ends', async () => {
    const controller = new AbortController();
    const run = runFfmpeg(['-re', '-f', 'lavfi', '-i', 'anullsrc', '-t', '30', '-f', 'null', '-'], {
      signal: controller.signal,
      killGraceMs: 500,
    });
    run.catch(() => undefined);
    const record = await waitFor(() => {
      const files = existsSync(childRegistryDir()) ? readdirSync(childRegistryDir()) : [];
      return files.length === 1
        ? (JSON.parse(readFileSync(path.join(childRegistryDir(), files[0]!), 'utf8')) as ChildRecord)
        : null;
    });
    strayPids.push(record.childPid);
    assert.equal(record.enginePid, process.pid);
    assert.equal(record.group, false);
    assert.ok(alive(record.childPid));
    assert.match(readFileSync(`/proc/${record.childPid}/cmdline`, 'utf8'), /ffmpeg/);
    controller.abort();
    await assert.rejects(run);
    assert.deepEqual(readdirSync(childRegistryDir()), []);
  });

  it('never kills its own process group, even when a record names it and its leader is gone', async () => {
    // A detached `sh` (group leader) starts a node process in its group and exits. That node
    // process writes a record naming its own group as a dead engine's child, then reaps: the
    // group (the reaper itself) must be left alone — as a CI runner's or a shell's group must.
    const engine = await deadEngine();
    const script = `
      const m = await import(process.env.REG_MODULE);
      m.configureChildRegistry({ dir: process.env.REG_DIR });
      const me = m.readProcessStat(process.pid);
      for (let i = 0; i < 200 && m.readProcessStat(me.pgid)?.state && m.readProcessStat(me.pgid).state !== 'Z'; i++)
        await new Promise((r) => setTimeout(r, 10));
      const { mkdirSync, writeFileSync, existsSync } = await import('node:fs');
      mkdirSync(process.env.REG_DIR, { recursive: true, mode: 0o700 });
      const file = process.env.REG_DIR + '/own-group.json';
      writeFileSync(file, JSON.stringify({ version: 1, bootId: process.env.BOOT_ID,
        enginePid: Number(process.env.ENGINE_PID), engineStartTicks: Number(process.env.ENGINE_TICKS),
        childPid: me.pgid, childStartTicks: m.readProcessStat(me.pgid)?.startTicks ?? 0, group: true,
        startedAt: new Date().toISOString() }));
      const reaped = await m.reapOrphanedChildren();
      console.log('reaped ' + reaped + ' record ' + (existsSync(file) ? 'kept' : 'deleted'));`;
    const child = spawn(
      'sh',
      ['-c', `"${process.execPath}" --import tsx --input-type=module -e "$0" & exit 0`, script],
      {
        detached: true,
        stdio: ['ignore', 'pipe', 'inherit'],
        env: {
          ...process.env,
          REG_MODULE: new URL('./child-registry.ts', import.meta.url).href,
          REG_DIR: childRegistryDir(),
          BOOT_ID: bootId,
          ENGINE_PID: String(engine.pid),
          ENGINE_TICKS: String(engine.ticks),
        },
      },
    );
    started.push(child);
    strayPids.push(child.pid!);
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    // The pipe closes when the node process (the last holder) ends, however it ends.
    await new Promise<void>((resolve) => child.stdout.once('close', () => resolve()));
    assert.equal(out.trim(), 'reaped 0 record deleted', 'the reaper ran to its end, alive');
  });

  it('isSameProcessRunning checks pid and start time', () => {
    const ticks = readProcessStat(process.pid)!.startTicks;
    assert.equal(isSameProcessRunning(process.pid, ticks), true);
    assert.equal(isSameProcessRunning(process.pid, ticks + 1), false);
  });
});
