/** `TASK_ENGINE_TABLE_UPKEEP` and `TASK_ENGINE_PRELOAD_HANDLERS`: defaults, accepted values in any case, and a clear refusal otherwise. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ConfigError, loadConfig } from './load-config.js';

describe('loadConfig: TASK_ENGINE_TABLE_UPKEEP', () => {
  it('defaults to auto', () => {
    assert.equal(loadConfig({}).tableUpkeep, 'auto');
  });

  it('takes auto and off in any case', () => {
    assert.equal(loadConfig({ TASK_ENGINE_TABLE_UPKEEP: 'OFF' }).tableUpkeep, 'off');
    assert.equal(loadConfig({ TASK_ENGINE_TABLE_UPKEEP: 'Auto' }).tableUpkeep, 'auto');
  });

  it('refuses anything else, naming the accepted values', () => {
    assert.throws(
      () => loadConfig({ TASK_ENGINE_TABLE_UPKEEP: 'sometimes' }),
      (err: unknown) =>
        err instanceof ConfigError &&
        /TASK_ENGINE_TABLE_UPKEEP must be auto or off \(got "sometimes"\)/.test(err.message),
    );
  });
});

describe('loadConfig: TASK_ENGINE_PRELOAD_HANDLERS', () => {
  it('defaults to on and takes on and off in any case', () => {
    assert.equal(loadConfig({}).preloadHandlers, true);
    assert.equal(loadConfig({ TASK_ENGINE_PRELOAD_HANDLERS: 'OFF' }).preloadHandlers, false);
    assert.equal(loadConfig({ TASK_ENGINE_PRELOAD_HANDLERS: 'On' }).preloadHandlers, true);
  });

  it('refuses anything else, naming the accepted values', () => {
    assert.throws(
      () => loadConfig({ TASK_ENGINE_PRELOAD_HANDLERS: 'lazy' }),
      (err: unknown) =>
        err instanceof ConfigError &&
        /TASK_ENGINE_PRELOAD_HANDLERS must be on or off \(got "lazy"\)/.test(err.message),
    );
  });
});
