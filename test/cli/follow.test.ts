/**
 * `logs --follow` against a small real HTTP server that speaks the engine's contract (`GET
 * /jobs/<id>`, `GET /logs/<id>`, and `GET /events` as Server-Sent Events): the job is read once the
 * stream is open, then task events move the progress and log events print lines, each entry once;
 * a `reset` reads the job again; the job's end ends the command with 0 when it completed without
 * failure and 1 otherwise; with `--json` each entry is a line of JSON; a terminal gets one bar per
 * task; an engine without `/events` is followed by reading the job every second.
 */
import assert from 'node:assert/strict';
import { createServer, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { PassThrough } from 'node:stream';
import { after, before, describe, test } from 'node:test';
import type { CliIO } from '../../src/cli/io.js';
import { runCli } from '../../src/cli/program.js';
import { waitFor } from '../helpers/wait-for.js';

interface FakeTask {
  id: number;
  name: string;
  state: string;
  progress: number | null;
  progress_message: string | null;
}
interface FakeLog {
  id: number;
  job_id: number;
  severity: number;
  severity_description: string;
  progname: string;
  message: string;
  created_at: string;
  task_id: number;
  visible: boolean;
}

/** A pretend engine with one job (id 5) whose state the test moves, and the events it sends. */
class FakeEngine {
  job = { id: 5, queue_state: 'started', failed: false, tasks: [] as FakeTask[] };
  logs: FakeLog[] = [];
  streams = new Set<ServerResponse>();
  reads = { jobs: 0, logs: 0, events: 0 };
  eventsEnabled = true;
  eventQueries: string[] = [];
  private nextEventId = 100;
  private server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://x');
    if (req.headers.client !== 'acme' || req.headers['api-key'] !== 'key') {
      res.writeHead(401, { 'content-type': 'application/json' }).end('{"error":"wrong credentials"}');
      return;
    }
    if (url.pathname === '/jobs/5') {
      this.reads.jobs++;
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(this.job));
    } else if (url.pathname === '/logs/5') {
      this.reads.logs++;
      const all = url.searchParams.get('show_all') === '1';
      res
        .writeHead(200, { 'content-type': 'application/json' })
        .end(JSON.stringify(this.logs.filter((l) => all || l.visible)));
    } else if (url.pathname === '/events' && this.eventsEnabled) {
      this.reads.events++;
      this.eventQueries.push(url.search);
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      res.write(': hello\n\n');
      this.streams.add(res);
      res.on('close', () => this.streams.delete(res));
    } else res.writeHead(404, { 'content-type': 'application/json' }).end('{"error":"not found"}');
  });
  url = '';

  async start(): Promise<void> {
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }
  async stop(): Promise<void> {
    for (const s of this.streams) s.destroy();
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
  /** Resets the job to started with tasks `a` and `b` and one log line. */
  reset(): void {
    this.job = {
      id: 5,
      queue_state: 'started',
      failed: false,
      tasks: [
        { id: 51, name: 'a', state: 'running', progress: 0.1, progress_message: null },
        { id: 52, name: 'b', state: 'waiting', progress: null, progress_message: null },
      ],
    };
    this.logs = [];
    this.reads = { jobs: 0, logs: 0, events: 0 };
    this.eventQueries = [];
    this.addLog('job started');
  }
  private send(event: string, data: unknown): void {
    const id = this.nextEventId++;
    for (const s of this.streams) s.write(`id: ${id}\nevent: ${event}\ndata: ${JSON.stringify(data)}\n\n`);
  }
  addLog(message: string, opts: { visible?: boolean; send?: boolean; taskId?: number } = {}): FakeLog {
    const entry: FakeLog = {
      id: this.logs.length + 1,
      job_id: 5,
      severity: opts.visible === false ? 0 : 1,
      severity_description: opts.visible === false ? 'DEBUG' : 'INFO',
      progname: 'worker',
      message,
      created_at: '2030-01-01T00:00:00.000Z',
      task_id: opts.taskId ?? 0,
      visible: opts.visible !== false,
    };
    this.logs.push(entry);
    if (opts.send) this.send('log', entry);
    return entry;
  }
  task(id: number, change: Partial<FakeTask>): void {
    const t = this.job.tasks.find((x) => x.id === id)!;
    const previous = t.state;
    Object.assign(t, change);
    this.send('task', {
      job_id: 5,
      task_id: t.id,
      name: t.name,
      queue: 'work',
      state: t.state,
      previous_state: previous,
      attempts: 1,
      progress: t.progress,
      progress_message: t.progress_message,
      progress_detail: null,
    });
  }
  end(queueState: string, failed: boolean): void {
    const previous = this.job.queue_state;
    this.job.queue_state = queueState;
    this.job.failed = failed;
    this.send('job', {
      job_id: 5,
      client: 'acme',
      workflow: 'w',
      queue_state: queueState,
      failed,
      priority: 5,
      run: 1,
      previous_state: previous,
    });
  }
  sendReset(): void {
    this.send('reset', {});
  }
}

/** A terminal for the bars: a stream that says it is a TTY and keeps what is written. */
function fakeTerminal(): { stream: NodeJS.WriteStream; text: () => string } {
  const stream = new PassThrough() as unknown as NodeJS.WriteStream & PassThrough;
  let text = '';
  stream.on('data', (d: Buffer) => (text += d.toString()));
  Object.assign(stream, {
    isTTY: true,
    columns: 120,
    rows: 40,
    cursorTo: () => true,
    moveCursor: () => true,
  });
  return { stream, text: () => text };
}

void describe('CLI --follow through the event stream', () => {
  const engine = new FakeEngine();
  before(() => engine.start());
  after(() => engine.stop());

  const run = (args: string[], terminal?: NodeJS.WriteStream) => {
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
      ...(terminal ? { terminal } : {}),
    };
    const conn = ['--url', engine.url, '--client', 'acme', '--api-key', 'key'];
    const code = runCli(['node', 'task-engine', 'logs', ...args, ...conn], io, 'test');
    return { code, out, err };
  };
  /** Waits until the command has opened the stream and read the job and its log. */
  const connected = () =>
    waitFor(() => engine.streams.size === 1 && engine.reads.logs >= 1, {
      what: 'the stream and the first read',
    });

  test('reads the job once the stream is open, then shows task progress and each log line once', async () => {
    engine.reset();
    const r = run(['5', '--follow']);
    await connected();
    assert.deepEqual(engine.eventQueries, ['?job_id=5&kinds=job,task,log']);
    engine.task(51, { progress: 0.3 });
    engine.task(51, { progress: 0.6, progress_message: 'frame 60 of 100' });
    engine.addLog('hidden detail', { visible: false, send: true });
    engine.addLog('a is done', { send: true, taskId: 51 });
    engine.task(51, { state: 'succeeded', progress: 1 });
    engine.task(52, { state: 'running', progress: 0 });
    // Written before the end but (like a line committed with it) only seen by the last read.
    engine.addLog('job has completed successfully');
    engine.task(52, { state: 'succeeded', progress: 1 });
    engine.end('completed', false);
    assert.equal(await r.code, 0, r.err.join('\n'));
    assert.deepEqual(r.out, [
      'task a: running 10%',
      'task b: waiting',
      '2030-01-01T00:00:00.000Z  INFO   worker: job started',
      'task a: running 30%',
      'task a: running 60% frame 60 of 100',
      '2030-01-01T00:00:00.000Z  INFO   worker task 51: a is done',
      'task a: succeeded',
      'task b: running 0%',
      'task b: succeeded',
      '2030-01-01T00:00:00.000Z  INFO   worker: job has completed successfully',
      'job 5 completed (succeeded)',
    ]);
    assert.equal(engine.reads.jobs, 2, 'read once when the stream opened and once at the end');
    await waitFor(() => engine.streams.size === 0, { what: 'the command to close its stream' });
  });

  test('a job that fails or is broken ends the command with exit code 1', async () => {
    for (const [state, failed, line] of [
      ['completed', true, 'job 5 completed (failed)'],
      ['broken', false, 'job 5 broken'],
    ] as const) {
      engine.reset();
      const r = run(['5', '--follow']);
      await connected();
      engine.end(state, failed);
      assert.equal(await r.code, 1);
      assert.equal(r.out.at(-1), line);
      assert.deepEqual(r.err, [], 'no message of its own: the last line says why');
    }
  });

  test('an already ended job is shown and ends at once; --all shows DEBUG entries', async () => {
    engine.reset();
    engine.addLog('debug line', { visible: false });
    engine.job.queue_state = 'completed';
    const r = run(['5', '--follow', '--all']);
    assert.equal(await r.code, 0);
    assert.ok(r.out.some((l) => l.endsWith('DEBUG  worker: debug line')));
    assert.deepEqual(engine.eventQueries, ['?job_id=5&kinds=job,task,log&show_all=1']);
    assert.equal(r.out.at(-1), 'job 5 completed (succeeded)');
  });

  test('a reset event reads the job again; entries already printed are not repeated', async () => {
    engine.reset();
    const r = run(['5', '--follow']);
    await connected();
    engine.addLog('missed while away');
    engine.job.tasks[0]!.state = 'succeeded';
    engine.sendReset();
    await waitFor(() => engine.reads.jobs === 2, { what: 'the job to be read again' });
    engine.end('completed', false);
    assert.equal(await r.code, 0);
    assert.equal(r.out.filter((l) => l.endsWith('worker: job started')).length, 1);
    assert.ok(r.out.includes('2030-01-01T00:00:00.000Z  INFO   worker: missed while away'));
    assert.ok(r.out.includes('task a: succeeded'));
  });

  test('--json prints each entry as a line of JSON, as the API gives it, and no progress', async () => {
    engine.reset();
    const r = run(['5', '--follow', '--json']);
    await connected();
    engine.task(51, { progress: 0.9 });
    const sent = engine.addLog('streamed', { send: true });
    engine.end('completed', false);
    assert.equal(await r.code, 0);
    assert.deepEqual(
      r.out.map((l) => JSON.parse(l) as unknown),
      [engine.logs[0], sent],
    );
  });

  test('on a terminal: one bar per task, log lines printed above them', async () => {
    engine.reset();
    const term = fakeTerminal();
    const r = run(['5', '--follow'], term.stream);
    await connected();
    engine.task(51, { progress: 0.5 });
    engine.addLog('between the bars', { send: true });
    engine.task(51, { state: 'succeeded', progress: 1 });
    engine.task(52, { state: 'succeeded', progress: 1 });
    engine.end('completed', false);
    assert.equal(await r.code, 0);
    const text = term.text();
    assert.match(text, / a +\|█+\| 100% succeeded/);
    assert.match(text, / b +\|█+\| 100% succeeded/);
    assert.match(text, /INFO {3}worker: between the bars/);
    assert.deepEqual(r.out, ['job 5 completed (succeeded)'], 'only the end line on standard output');
  });

  test('an engine without /events is followed by reading the job every second', async () => {
    engine.reset();
    engine.eventsEnabled = false;
    try {
      const r = run(['5', '--follow']);
      await waitFor(() => engine.reads.logs >= 1, { what: 'the first read' });
      engine.addLog('seen by polling');
      engine.job.queue_state = 'completed';
      assert.equal(await r.code, 0);
      assert.ok(r.out.includes('2030-01-01T00:00:00.000Z  INFO   worker: seen by polling'));
      assert.equal(r.out.at(-1), 'job 5 completed (succeeded)');
    } finally {
      engine.eventsEnabled = true;
    }
  });

  test('Ctrl-C stops following (exit 130) and closes the stream; the job is left alone', async () => {
    engine.reset();
    const handlers: ((s: NodeJS.Signals) => void)[] = [];
    const io: CliIO = {
      env: {},
      out: () => undefined,
      err: () => undefined,
      onSignal: (_signals, fn) => {
        handlers.push(fn);
        return () => handlers.splice(handlers.indexOf(fn), 1);
      },
      exitNow: () => {
        throw new Error('exit');
      },
    };
    const code = runCli(
      [
        'node',
        'task-engine',
        'logs',
        '5',
        '--follow',
        '--url',
        engine.url,
        '--client',
        'acme',
        '--api-key',
        'key',
      ],
      io,
      'test',
    );
    await connected();
    for (const fn of [...handlers]) fn('SIGINT');
    assert.equal(await code, 130);
    assert.equal(handlers.length, 0, 'the signal handler is removed');
    await waitFor(() => engine.streams.size === 0, { what: 'the stream to close' });
    assert.equal(engine.job.queue_state, 'started');
  });

  test('refused credentials are the API message with exit code 1', async () => {
    const out: string[] = [];
    const err: string[] = [];
    const io: CliIO = {
      env: {},
      out: (l) => out.push(l),
      err: (l) => err.push(l),
      onSignal: () => () => undefined,
      exitNow: () => {
        throw new Error('exit');
      },
    };
    const code = await runCli(
      [
        'node',
        'task-engine',
        'logs',
        '5',
        '--follow',
        '--url',
        engine.url,
        '--client',
        'acme',
        '--api-key',
        'bad',
      ],
      io,
      'test',
    );
    assert.equal(code, 1);
    assert.match(err.join('\n'), /failed \(401\): wrong credentials/);
  });
});
