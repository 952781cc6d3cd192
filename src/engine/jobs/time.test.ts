import { it } from 'node:test';
import assert from 'node:assert/strict';
import { formatTimestamp, parseTimestamp, parseTimestampIn } from './time.js';
import { isEngineError } from '../../errors/catalogue.js';

const iso = (text: string) => {
  const r = parseTimestamp(text);
  return r.ok ? r.date.toISOString() : `error: ${r.problem}`;
};

it('reads timestamps without a zone as UTC, and honours Z and offsets', () => {
  assert.equal(iso('2030-06-19T17:00:30.000'), '2030-06-19T17:00:30.000Z');
  assert.equal(iso('2030-06-19T17:00:30'), '2030-06-19T17:00:30.000Z');
  assert.equal(iso('2030-06-19T17:00:30.5'), '2030-06-19T17:00:30.500Z');
  assert.equal(iso('2030-06-19T17:00:30.123456'), '2030-06-19T17:00:30.123Z');
  assert.equal(iso('2030-06-19T17:00:30Z'), '2030-06-19T17:00:30.000Z');
  assert.equal(iso('2030-06-19T19:00:30+02:00'), '2030-06-19T17:00:30.000Z');
  assert.equal(iso('2030-06-19T12:30:30-0430'), '2030-06-19T17:00:30.000Z');
  assert.equal(iso('2024-02-29T00:00:00'), '2024-02-29T00:00:00.000Z');
  assert.equal(iso('0099-01-01T00:00:00Z'), '0099-01-01T00:00:00.000Z');
});

it('refuses impossible dates and anything outside the format', () => {
  for (const bad of [
    '2030-02-30T00:00:00',
    '2030-02-29T00:00:00',
    '2100-02-29T00:00:00',
    '2030-13-01T00:00:00',
    '2030-00-10T00:00:00',
    '2030-04-31T00:00:00',
    '2030-01-01T24:00:00',
    '2030-01-01T23:60:00',
    '2030-01-01T23:59:60',
    '2030-01-01T00:00:00+25:00',
    '0000-01-01T00:00:00',
    '2030-01-01',
    '2030-01-01 10:00:00',
    '2030-1-01T10:00:00',
    '2030-01-01T10:00',
    '2030-01-01T10:00:00.',
    '2030-01-01T10:00:00 Z',
    'now',
    '',
  ])
    assert.match(iso(bad), /^error: /, bad);
});

it('throws a 400 naming the field and the accepted format, and never reads a non-string as now', () => {
  for (const value of [undefined, null, 0, 1893456000, {}, 'tomorrow']) {
    assert.throws(
      () => parseTimestampIn('run_at', value),
      (e: unknown) =>
        isEngineError(e, 'VALIDATION_FAILED') &&
        e.message.startsWith('run_at') &&
        e.message.includes('yyyy-MM-ddTHH:mm:ss'),
    );
  }
});

it('formats instants as ISO UTC with milliseconds', () => {
  assert.equal(formatTimestamp(new Date(Date.UTC(2020, 8, 24, 11, 55, 33, 755))), '2020-09-24T11:55:33.755Z');
  assert.equal(formatTimestamp(null), null);
});
