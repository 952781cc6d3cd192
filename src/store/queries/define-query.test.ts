import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Queryable } from '../executor.js';
import { defineQuery } from './define-query.js';

/** A Queryable that records what it was sent (the compile step is what is under test here). */
function recorder(): Queryable & { sent: { sql: string; params: readonly unknown[] | undefined }[] } {
  const sent: { sql: string; params: readonly unknown[] | undefined }[] = [];
  return {
    sent,
    query: <R>(sql: string, params?: readonly unknown[]) => {
      sent.push({ sql, params });
      return Promise.resolve({ rows: [] as R[], rowCount: 0 });
    },
    exec: () => Promise.resolve(),
  };
}

describe('defineQuery', () => {
  it('numbers named placeholders by first use and binds a repeated name once', async () => {
    const q = defineQuery<{ b: number; a: string }>('t', 'SELECT $a::text, $b, $a');
    assert.equal(q.text, 'SELECT $1::text, $2, $1');
    assert.deepEqual(q.params, ['a', 'b']);
    const r = recorder();
    await q.run(r, { b: 2, a: 'x' });
    assert.deepEqual(r.sent[0]!.params, ['x', 2]);
  });

  it('binds undefined as null and sends a statement without parameters as plain text', async () => {
    const r = recorder();
    await defineQuery<{ a?: number | undefined }>('t', 'SELECT $a').run(r, { a: undefined });
    assert.deepEqual(r.sent[0]!.params, [null]);
    await defineQuery('u', 'SELECT 1').run(r, {});
    assert.equal(r.sent[1]!.params, undefined);
  });

  it('refuses positional placeholders, dollar quoting and a missing value', async () => {
    assert.throws(() => defineQuery('p', 'SELECT $1'), /positional/);
    assert.throws(() => defineQuery('d', 'SELECT $tag$x$tag$'), /dollar-quoted/);
    const q = defineQuery<{ a: number }>('m', 'SELECT $a');
    await assert.rejects(q.run(recorder(), {} as { a: number }), /parameter a is missing/);
  });
});
