import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { PROGRESS_LIMITS, readProgressReport } from './progress-report.js';

describe('readProgressReport', () => {
  it('keeps a fraction from 0 to 1 and clamps one outside', () => {
    assert.deepEqual(readProgressReport(0.42), {
      value: { fraction: 0.42, message: null, detail: null },
      problems: [],
    });
    assert.equal(readProgressReport(1.7).value?.fraction, 1);
    assert.equal(readProgressReport(-3).value?.fraction, 0);
    assert.equal(readProgressReport(-0).value?.fraction, 0);
  });

  it('ignores a fraction that is not a finite number, saying what is accepted', () => {
    for (const bad of [NaN, Infinity, -Infinity, '0.5', null, undefined, {}, 10n]) {
      const r = readProgressReport(bad);
      assert.equal(r.value, null, typeof bad);
      assert.match(r.problems[0]!, /must be a finite number from 0 to 1/);
    }
  });

  it('makes the message one trimmed line of at most 200 characters', () => {
    assert.equal(readProgressReport(0.1, '  encoding\n720p\t ').value?.message, 'encoding 720p');
    assert.equal(readProgressReport(0.1, '   ').value?.message, null);
    const long = readProgressReport(0.1, 'é'.repeat(500)).value!.message!;
    assert.equal([...long].length, PROGRESS_LIMITS.messageChars);
    assert.ok(long.endsWith('…'));
    const notText = readProgressReport(0.1, { a: 1 });
    assert.equal(notText.value?.message, null);
    assert.match(notText.problems[0]!, /message an object was dropped: it must be a string/);
  });

  it('keeps a small JSON object as detail and drops anything else (the fraction still counts)', () => {
    assert.equal(
      readProgressReport(0.5, 'm', { fps: 25, speed: 2.1 }).value?.detail,
      '{"fps":25,"speed":2.1}',
    );
    for (const bad of [[1, 2], 'fast', 3]) {
      const r = readProgressReport(0.5, undefined, bad);
      assert.equal(r.value?.fraction, 0.5);
      assert.equal(r.value?.detail, null);
      assert.match(r.problems[0]!, /must be a JSON object/);
    }
    const big = readProgressReport(0.5, undefined, { blob: 'x'.repeat(PROGRESS_LIMITS.detailBytes) });
    assert.equal(big.value?.detail, null);
    assert.match(big.problems[0]!, /more than the 2048 accepted/);
    const cyclic: Record<string, unknown> = {};
    cyclic.self = cyclic;
    assert.match(readProgressReport(0.5, undefined, cyclic).problems[0]!, /not JSON/);
  });
});
