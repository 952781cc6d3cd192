import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { findUnstorableText, MAX_BODY_DEPTH, scanJsonText } from './input-guard.js';

/** Scans text that must be valid JSON (as the body parser only scans what JSON.parse accepted). */
function scan(text: string): ReturnType<typeof scanJsonText> {
  JSON.parse(text);
  return scanJsonText(text);
}

describe('scanJsonText', () => {
  it('finds a repeated key at any depth and names its path', () => {
    assert.deepEqual(scan('{"a":1,"a":2}'), { kind: 'duplicate-key', path: 'body.a', text: 'a' });
    assert.deepEqual(scan('{"job":{"workflow":"x","priority":1,"workflow":"y"}}'), {
      kind: 'duplicate-key',
      path: 'body.job.workflow',
      text: 'workflow',
    });
    assert.deepEqual(scan('{"p":{"list":[{"k":1},{"k":1,"j":2,"k":3}]}}'), {
      kind: 'duplicate-key',
      path: 'body.p.list[1].k',
      text: 'k',
    });
    assert.deepEqual(scan('[1, {"x y": 1, "x y": 2}]'), {
      kind: 'duplicate-key',
      path: 'body[1]["x y"]',
      text: 'x y',
    });
  });

  it('compares keys as decoded text: an escaped spelling of a key is the same key', () => {
    assert.deepEqual(scan('{"ab":1,"\\u0061b":2}'), { kind: 'duplicate-key', path: 'body.ab', text: 'ab' });
    assert.equal(scan('{"a\\"b":1,"a\\\\":2,"a":3}'), null);
  });

  it('accepts the same key in different objects, and keys that only look alike', () => {
    assert.equal(scan('{"a":{"a":{"a":1}},"b":[{"a":1},{"a":2}],"A":1,"a ":2}'), null);
    assert.equal(scan('{"s":"{\\"a\\":1,\\"a\\":2}","t":"a,\\"a\\""}'), null, 'JSON inside strings is text');
  });

  it('finds an integer literal beyond ±(2^53 - 1) and names its field', () => {
    assert.deepEqual(scan('{"parameters":{"id":3544790567247868102}}'), {
      kind: 'unsafe-integer',
      path: 'body.parameters.id',
      text: '3544790567247868102',
    });
    assert.deepEqual(scan('{"a":[1,-9007199254740992]}'), {
      kind: 'unsafe-integer',
      path: 'body.a[1]',
      text: '-9007199254740992',
    });
    assert.deepEqual(scan('9007199254740992'), {
      kind: 'unsafe-integer',
      path: 'body',
      text: '9007199254740992',
    });
  });

  it('accepts safe integers, fractions and exponents, and digits inside strings', () => {
    assert.equal(
      scan('[9007199254740991,-9007199254740991,0,-0,1.5,1e300,3544790567247868102.5,2E+3]'),
      null,
    );
    assert.equal(scan('{"id":"3544790567247868102","3544790567247868102":true}'), null);
  });

  it('scans a large body quickly and a deep one without exhausting the stack', () => {
    const big = JSON.stringify({
      items: Array.from({ length: 20_000 }, (_, i) => ({ id: i, name: `n${i}` })),
    });
    const started = performance.now();
    assert.equal(scan(big), null);
    assert.ok(performance.now() - started < 500, 'a 0.5 MB body scans in well under a second');
    assert.equal(scanJsonText('['.repeat(100_000) + ']'.repeat(100_000)), null);
  });
});

describe('findUnstorableText', () => {
  it('accepts clean values and names the path of the first NUL or lone surrogate, in values and in keys', () => {
    assert.equal(findUnstorableText({ a: [1, 'two', { three: null }], b: 'emoji \u{1F600}' }, 'body'), null);
    assert.equal(
      findUnstorableText({ a: [1, { deeper: ['fine', 'x\u0000y'] }] }, 'body'),
      'body.a[1].deeper[1] contains a NUL character or an unpaired surrogate, which cannot be stored; send valid UTF-8 text without NUL',
    );
    assert.equal(
      findUnstorableText({ list: [{ 'k\ud800': 1 }] }, 'query'),
      'query.list[0] has a key with a NUL character or an unpaired surrogate; send valid UTF-8 text without NUL',
    );
  });

  it(`refuses nesting of ${MAX_BODY_DEPTH} levels and accepts one less, without exhausting the stack`, () => {
    const nest = (levels: number): unknown => {
      let v: unknown = 'leaf';
      for (let i = 0; i < levels; i++) v = [v];
      return v;
    };
    assert.equal(findUnstorableText(nest(MAX_BODY_DEPTH), 'body'), null);
    assert.match(
      findUnstorableText(nest(MAX_BODY_DEPTH + 1), 'body') ?? '',
      /is nested deeper than 100 levels/,
    );
    assert.match(findUnstorableText(nest(200_000), 'body') ?? '', /is nested deeper than 100 levels/);
  });
});
