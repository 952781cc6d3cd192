import assert from 'node:assert/strict';
import { it } from 'node:test';
import { isEngineError } from '../errors/catalogue.js';
import { parseSettings, SETTING_DEFAULTS, validateSetting } from './settings.js';

it('parseSettings fills defaults and keeps only integer values of known settings', () => {
  const { known, all } = parseSettings([
    { name: 'max_jobs', value: '7' },
    { name: 'retry_delay', value: 'soon' },
    { name: 'priority_slots', value: '1.5' },
    { name: 'retry_limit', value: '-1' },
    { name: 'night_mode', value: 'on' },
  ]);
  assert.equal(known.max_jobs, 7);
  assert.equal(known.retry_delay, SETTING_DEFAULTS.retry_delay);
  assert.equal(known.priority_slots, SETTING_DEFAULTS.priority_slots);
  assert.equal(known.retry_limit, -1);
  assert.equal(all.night_mode, 'on');
  assert.equal(Object.getPrototypeOf(all), null);
});

it('parseSettings of no rows is the defaults', () => {
  assert.deepEqual({ ...parseSettings([]).known }, { ...SETTING_DEFAULTS });
});

it('validateSetting accepts integers and integer strings within bounds', () => {
  const current = { ...SETTING_DEFAULTS };
  assert.equal(validateSetting('max_jobs', ' 4 ', current), '4');
  assert.equal(validateSetting('max_jobs', 4, current), '4');
  assert.equal(validateSetting('night_mode', true, current), 'true');
});

it('validateSetting refuses non-integers, out-of-bounds values and broken pairs', () => {
  const current = { ...SETTING_DEFAULTS, max_jobs: 3, priority_slots: 2 };
  const refused = (name: string, value: unknown, text: RegExp) =>
    assert.throws(
      () => validateSetting(name, value, current),
      (e: unknown) => isEngineError(e, 'VALIDATION_FAILED') && text.test(e.message),
    );
  refused('max_jobs', '2.5', /must be a whole number/);
  refused('max_jobs', 0, /at least 1 and at most 100000/);
  refused('priority_slots', 4, /must not exceed max_jobs \(3\)/);
  refused('max_jobs', 1, /at least priority_slots \(2\)/);
  refused('night_mode', { a: 1 }, /string, number or boolean/);
});
