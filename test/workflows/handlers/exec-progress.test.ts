/**
 * Progress of `exec` programs: `::progress` lines (parsed, taken out of the output and the log)
 * and FFmpeg's `-progress pipe:1` blocks with `progress: ffmpeg`, on real processes.
 */
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { PermanentTaskError } from '../../../src/errors/task-errors.js';
import { execHandler } from '../../../src/workflows/handlers/exec.js';
import { ControlLineFilter, parseProgressLine } from '../../../src/workflows/handlers/exec-progress.js';
import { makeHandlerContext, type TestHandlerContext } from '../handler-context.js';

const contexts: TestHandlerContext[] = [];
async function context(inputs: Record<string, unknown>): Promise<TestHandlerContext> {
  const c = await makeHandlerContext(inputs);
  contexts.push(c);
  return c;
}
after(() => Promise.all(contexts.map((c) => c.cleanup())));

describe('::progress lines', () => {
  it('reads a fraction or a percentage and the rest of the line as the message', () => {
    assert.deepEqual(parseProgressLine('::progress 0.42 encoding part 2'), {
      fraction: 0.42,
      message: 'encoding part 2',
    });
    assert.deepEqual(parseProgressLine('::progress 1'), { fraction: 1, message: null });
    assert.deepEqual(parseProgressLine('::progress\t.5\t half way '), { fraction: 0.5, message: 'half way' });
    assert.deepEqual(parseProgressLine('::progress 42% of the files'), {
      fraction: 0.42,
      message: 'of the files',
    });
    assert.deepEqual(parseProgressLine('::progress 0'), { fraction: 0, message: null });
  });

  it('is not a progress line unless it starts with "::progress" and a space', () => {
    for (const line of [
      'progress 0.5',
      ' ::progress 0.5',
      '::progressive 0.5',
      'x ::progress 0.5',
      '::PROGRESS 0.5',
    ])
      assert.equal(parseProgressLine(line), null, line);
  });

  it('names the accepted forms for a malformed value', () => {
    for (const line of [
      '::progress',
      '::progress abc',
      '::progress -0.1',
      '::progress 1.5',
      '::progress NaN',
      '::progress 0,5',
    ]) {
      const r = parseProgressLine(line);
      assert.ok(r && 'problem' in r, line);
      assert.match(r.problem, /::progress 0\.42|from 0 to 1/, line);
    }
    const over = parseProgressLine('::progress 42')!;
    assert.ok('problem' in over && /42%/.test(over.problem), 'suggests the percentage form');
  });

  it('the filter passes every other byte on unchanged, however the stream is cut', () => {
    const text =
      'first line\n::progress 0.1 a\n::prog but not\n::progress 0.5\r\nlast ::progress 0.9\n' +
      `${'x'.repeat(3000)}\n::progress 0.75 end\nno newline at the end ::progress`;
    const bytes = Buffer.from(`${text}é\n`, 'utf8');
    const expected =
      'first line\n::prog but not\nlast ::progress 0.9\n' +
      `${'x'.repeat(3000)}\nno newline at the end ::progress` +
      'é\n';
    // Every cut into two pieces, and cuts of every single byte.
    const cuts: number[][] = [];
    for (let i = 0; i <= bytes.length; i += 7) cuts.push([i]);
    cuts.push([...Array(bytes.length).keys()]);
    for (const at of cuts) {
      const passed: Buffer[] = [];
      const taken: string[] = [];
      const f = new ControlLineFilter(
        (s) => ('::progress'.startsWith(s.slice(0, 10)) && s.length <= 10) || /^::progress[ \t\r\n]/.test(s),
        (line) => (parseProgressLine(line) ? (taken.push(line), true) : false),
        (c) => passed.push(Buffer.from(c)),
      );
      let prev = 0;
      for (const a of [...at, bytes.length]) {
        f.write(bytes.subarray(prev, a));
        prev = a;
      }
      f.end();
      assert.equal(
        Buffer.concat(passed).toString('utf8'),
        expected,
        `cut at ${at.length > 3 ? 'every byte' : at.join(',')}`,
      );
      assert.deepEqual(taken, ['::progress 0.1 a', '::progress 0.5', '::progress 0.75 end']);
    }
  });
});

describe('exec progress', () => {
  it('reports ::progress lines and takes them out of stdout, the log and the JSON', async () => {
    const { ctx, logs, progress } = await context({
      command: 'sh',
      args: [
        '-c',
        'echo "::progress 0.2 step one"; echo "{\\"a\\": 1"; echo "::progress 50%"; echo "}"; printf "::progress 0.9 almost"',
      ],
      output: 'json',
    });
    const out = await execHandler(ctx);
    assert.deepEqual(out.json, { a: 1 });
    assert.equal(out.stdout, '{"a": 1\n}\n');
    assert.deepEqual(progress, [
      { fraction: 0.2, message: 'step one' },
      { fraction: 0.5 },
      { fraction: 0.9, message: 'almost' },
    ]);
    // The output lines logged (the command line itself, at debug level, names the arguments).
    assert.deepEqual(
      logs.filter((l) => l.severity === 1).map((l) => l.message),
      ['{"a": 1', '}'],
    );
  });

  it('a malformed progress line is taken out with one warning per attempt', async () => {
    const { ctx, logs, progress } = await context({
      command: 'sh',
      args: ['-c', 'echo "::progress lots"; echo "::progress 7"; echo done'],
    });
    const out = await execHandler(ctx);
    assert.equal(out.stdout, 'done\n');
    assert.deepEqual(progress, []);
    const warnings = logs.filter((l) => l.severity === 2);
    assert.equal(warnings.length, 1, JSON.stringify(logs));
    assert.match(warnings[0]!.message, /exec: progress line "::progress lots" was ignored/);
  });

  it('progress: none leaves stdout alone; a bad progress input is refused before running', async () => {
    const { ctx, progress } = await context({ command: 'echo', args: ['::progress 0.5'], progress: 'none' });
    assert.equal((await execHandler(ctx)).stdout, '::progress 0.5\n');
    assert.deepEqual(progress, []);
    const bad = await context({ command: 'echo', progress: 'percent' });
    await assert.rejects(
      execHandler(bad.ctx),
      (e: unknown) =>
        e instanceof PermanentTaskError &&
        /"progress" must be one of "lines", "ffmpeg", "none"/.test(e.message),
    );
    const badDuration = await context({ command: 'echo', progress: 'ffmpeg', progress_duration: 'long' });
    await assert.rejects(execHandler(badDuration.ctx), /progress_duration/);
  });

  it('progress: ffmpeg reads a real FFmpeg run: the fraction of progress_duration, fps, speed, time left', async () => {
    const { ctx, logs, progress } = await context({
      command: 'ffmpeg',
      args: [
        ...['-hide_banner', '-nostdin', '-nostats', '-loglevel', 'error', '-progress', 'pipe:1', '-re'],
        ...['-f', 'lavfi', '-i', 'testsrc2=size=160x90:rate=25:duration=2', '-f', 'null', '-'],
      ],
      progress: 'ffmpeg',
      progress_duration: 2,
    });
    const out = await execHandler(ctx);
    assert.equal(out.stdout, '', 'the key=value blocks are taken out');
    assert.ok(!logs.some((l) => /out_time|progress=/.test(l.message)), 'nor logged');
    const fractions = progress.map((p) => p.fraction);
    assert.ok(fractions.length >= 3, fractions.join(', '));
    assert.ok(
      fractions.every((f, i) => i === 0 || f >= fractions[i - 1]!),
      fractions.join(', '),
    );
    assert.equal(fractions.at(-1), 1);
    const mid = progress.find((p) => p.fraction > 0.2 && p.fraction < 1)!;
    assert.match(mid.message!, /^00:00:0\d of 00:00:02 at [\d.]+x$/);
    assert.equal(mid.detail!.duration_seconds, 2);
    assert.equal(typeof mid.detail!.speed, 'number');
    assert.equal(typeof mid.detail!.eta_seconds, 'number');
  });

  it('progress: ffmpeg without progress_duration takes the Duration FFmpeg prints on stderr', async () => {
    const { ctx, progress } = await context({
      command: 'sh',
      args: [
        '-c',
        // A real input file, so FFmpeg prints its input summary (with Duration) at the default log level.
        'ffmpeg -hide_banner -nostdin -loglevel error -f lavfi -i testsrc2=size=160x90:rate=25:duration=2 -c:v mpeg4 in.mp4 && ' +
          'ffmpeg -hide_banner -nostdin -nostats -progress pipe:1 -re -i in.mp4 -f null -',
      ],
      progress: 'ffmpeg',
    });
    const out = await execHandler(ctx);
    assert.match(out.stderr, /Duration: 00:00:02/);
    const fractions = progress.map((p) => p.fraction);
    assert.ok(
      fractions.some((f) => f > 0 && f < 1),
      fractions.join(', '),
    );
    assert.equal(fractions.at(-1), 1);
    assert.equal(progress.at(-1)!.detail!.duration_seconds, 2);
  });
});
